"""Benchmarks of analytic tracing speed (``genscope bench trace`` / ``suite``)."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from genscope.api import DEFAULT_HARDWARE, trace_built, trace_workload
from genscope.costmodel.hardware import get_hardware
from genscope.machine.timing import timed
from genscope.workloads.base import Settings
from genscope.workloads.registry import all_workloads, get_workload


def bench_trace(repeats: int = 3) -> dict[str, Any]:
    """Full sd15 pipeline trace (CLIP + 50 CFG steps + VAE, 512², analytic) vs FlopCounterMode
    on ONE full UNet step on meta. Both exclude model construction; both warmed up once."""
    wl = get_workload("sd15")
    s = wl.resolve(Settings(size="full"))
    hw = get_hardware(DEFAULT_HARDWARE)
    built = wl.build(s)
    unet = built.models["unet"]
    x = torch.empty(2, 4, 64, 64, device="meta")
    context = torch.empty(2, 77, unet.config.cross_attention_dim, device="meta")
    t = torch.tensor(500, device="meta")

    def flop_counter_step() -> None:
        with torch.no_grad(), FlopCounterMode(display=False):
            unet(x, t, encoder_hidden_states=context)

    def genscope_pipeline() -> None:
        trace_built(wl, built, s, hw, save=False, collapse=True)

    ref, _ = timed(flop_counter_step, warmup=1, repeats=repeats)
    ours, _ = timed(genscope_pipeline, warmup=1, repeats=repeats)
    ratio = ours.median / ref.median
    return {
        "name": "trace",
        "ratio": ratio,
        "target": 2.0,
        "meets_target": ratio <= 2.0,
        "genscope_pipeline_s": {"median": ours.median, "all": list(ours.samples)},
        "flopcounter_unet_step_s": {"median": ref.median, "all": list(ref.samples)},
        "what": "genscope analytic trace of full sd15 (CLIP + 50 CFG DDIM steps, traced once "
        "and counted x50, + VAE decode, 512²) / FlopCounterMode on one full UNet step (meta)",
        "repeats": repeats,
    }


def bench_suite() -> dict[str, Any]:
    """Wall time of a default full-size analytic trace of every workload in the suite."""
    rows = []
    for wl in all_workloads():
        t0 = time.perf_counter()

        trace_workload(wl, Settings(size="full"), save=False)
        rows.append({"workload": wl.name, "seconds": time.perf_counter() - t0})
    total = sum(r["seconds"] for r in rows)
    return {
        "name": "suite",
        "total_s": total,
        "target_s": 60,
        "meets_target": total <= 60,
        "rows": rows,
    }
