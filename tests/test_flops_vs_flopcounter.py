"""Our GEMM/conv FLOPs equal torch's FlopCounterMode exactly on the full SD1.5 UNet.

Both sides are computed here: FlopCounterMode on the UNet with diffusers' math attention
processor (baddbmm → softmax → bmm), and genscope's analytic capture of the same step.
"""

from collections import defaultdict

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
from torch.utils.flop_counter import FlopCounterMode

from genscope.capture.analytic import AnalyticCapture
from genscope.capture.context import Runner
from genscope.schema import events_frame
from genscope.workloads.components import build_component, load_component_config

FAMILIES = {
    "convolution": "conv",
    "mm": "mm/addmm",
    "addmm": "mm/addmm",
    "bmm": "bmm/baddbmm",
    "baddbmm": "bmm/baddbmm",
}


@pytest.fixture(scope="module")
def unet_and_inputs():
    unet = build_component(load_component_config("sd15", "unet"), "full", device="meta")
    x = torch.empty(2, 4, 64, 64, device="meta")  # CFG batch 2, 512² image → 64² latent
    context = torch.empty(2, 77, 768, device="meta")
    return unet, (x, torch.tensor(500, device="meta"), context)


def _family_totals(counts: dict) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for op, flops in counts.items():
        out[FAMILIES[str(op).split(".")[1]]] += flops
    return dict(out)


def test_unet_gemm_and_conv_flops_match_flopcountermode(unet_and_inputs):
    unet, args = unet_and_inputs
    unet.set_attn_processor(AttnProcessor())  # the math path, as FlopCounterMode sees it
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        unet(*args)
    reference = _family_totals(fc.get_flop_counts()["Global"])

    capture = AnalyticCapture(Runner(False), attention="math")
    capture.name_component("unet", unet)
    with torch.no_grad(), capture:
        unet(*args)
    events = events_frame(capture.rows)
    packet = events["op"].str.split(".").str[1]
    ours: dict[str, int] = defaultdict(int)
    for name, flops in zip(packet, events["flops"], strict=True):
        if name in FAMILIES:
            ours[FAMILIES[name]] += int(flops)
    assert set(reference) == {"conv", "mm/addmm", "bmm/baddbmm"}
    assert dict(ours) == reference

    # What we add on top is only norm / softmax / elementwise work, reported separately.
    extra = events[~packet.isin(list(FAMILIES))]
    extra_by_cat = extra.groupby("category")["flops"].sum()
    assert set(extra_by_cat[extra_by_cat > 0].index) <= {"norm", "attention", "elementwise"}
    softmax = extra[extra["op"].str.contains("softmax")]
    assert (softmax["category"] == "attention").all() and softmax["flops"].sum() > 0


def test_unet_flash_path_counts_same_matmul_flops_as_math(unet_and_inputs):
    """SDPA (flash) rows carry the same Q·Kᵀ/P·V FLOPs (+ softmax) as the math path."""
    unet, args = unet_and_inputs
    unet.set_attn_processor(AttnProcessor2_0())  # stock SDPA; genscope swaps it for "math"
    totals = {}
    for attention in ("math", "flash"):
        capture = AnalyticCapture(Runner(False), attention=attention)
        capture.name_component("unet", unet)
        with torch.no_grad(), capture:
            unet(*args)
        ev = events_frame(capture.rows)
        totals[attention] = ev.loc[ev["category"] == "attention", "flops"].sum()
        bytes_attn = (ev["bytes_read"] + ev["bytes_written"])[ev["category"] == "attention"]
        totals[attention + "_bytes"] = bytes_attn.sum()
    assert totals["math"] == totals["flash"]
    # Flash never materializes the N×N scores, so its attention traffic is far smaller.
    assert totals["flash_bytes"] * 5 < totals["math_bytes"]
