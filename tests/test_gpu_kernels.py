"""GPU kernel model: tile/wave counts and flash tiles by hand, and the roofline invariant."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genscope.costmodel.gpu import constants as C
from genscope.costmodel.gpu.device import device_of
from genscope.costmodel.gpu.kernels import flash_time, gemm_time, kernel_times, pad_head_dim
from genscope.costmodel.hardware import get_hardware
from genscope.costmodel.roofline import apply_roofline
from genscope.errors import UserError
from genscope.schema import events_frame

A100 = get_hardware("a100-80g-sxm")
PEAK = 312e12  # dense bf16, A100 datasheet
SMS = 108


def one(x):
    return np.array([float(x)])


def test_gemm_4096_cube_tiles_and_waves():
    # 128x256 tiles: (4096/128)·(4096/256) = 32·16 = 512 CTAs -> ⌈512/108⌉ = 5 waves.
    # 128x128 would need 1024 CTAs -> 10 waves of half the work at 0.95 tile efficiency: slower.
    ceiling = C.pick("gemm.ceiling", "sm80", "a100-80g-sxm")
    assert ceiling == pytest.approx(267.9 / 312, abs=1e-3)
    g = gemm_time(one(1), one(4096), one(4096), one(4096), one(PEAK), one(ceiling), SMS)
    assert (g["tile_m"][0], g["tile_n"][0]) == (128, 256)
    assert g["tiles"][0] == 512 and g["split_k"][0] == 1 and g["waves"][0] == 5
    eff = ceiling * 1.0 * 4096 / (4096 + 32)  # tile 128x256 efficiency 1.0, k_half 32
    expected = 5 * 2 * 128 * 256 * 4096 / (PEAK / SMS * eff)
    assert g["time_s"][0] == pytest.approx(expected, rel=1e-12)
    # 5 waves of 108 slots hold 540 tiles; only 512 are real: quantization costs 540/512.
    ideal = 2 * 4096**3 / (PEAK * eff)
    assert g["time_s"][0] / ideal == pytest.approx(540 / 512, rel=1e-9)


def test_skinny_gemm_splits_k_to_fill_the_sms():
    # M=16 (decode), N=K=4096. 128x256: 16 CTAs, split-K ⌊108/16⌋ = 6 -> 96 CTAs of
    # 2·128·256·(4096/6) = 44.7 MFLOP at tile eff 1.0. 64x128: 32 CTAs, split ⌊108/32⌋ = 3 ->
    # 96 CTAs of 2·64·128·(4096/3) = 22.4 MFLOP at tile eff 0.85: about half the time, chosen.
    g = gemm_time(one(1), one(16), one(4096), one(4096), one(PEAK), one(0.859), SMS)
    assert (g["tile_m"][0], g["tile_n"][0]) == (64, 128)
    assert g["tiles"][0] == 32 and g["split_k"][0] == 3 and g["waves"][0] == 1
    k = 4096 / 3
    expected = 2 * 64 * 128 * k / (PEAK / SMS * 0.859 * 0.85 * k / (k + 32))
    assert g["time_s"][0] == pytest.approx(expected, rel=1e-12)


def test_flash_tiles_for_temporal_attention():
    # Video UNet temporal attention: 2·32·32 spatial positions × 8 heads = 16384 problems of
    # 16 frames, head dim 40 (run as the hdim-64 kernel). One 128-row query tile each:
    # 16384 CTAs -> ⌈16384/108⌉ = 152 waves; the 16 keys pad to one 64-key tile.
    d = pad_head_dim(one(40))
    assert d[0] == 64
    f = flash_time(one(16384), one(16), one(16), d, one(PEAK), one(0.6), SMS)
    assert f["units"][0] == 16384 and f["waves"][0] == 152 and f["kv_pad"][0] == 64
    eff = 0.6 * 16 / (16 + 256)
    per_cta = 4 * 128 * 64 * 64 / (PEAK / SMS * eff)
    assert f["time_s"][0] == pytest.approx(152 * per_cta, rel=1e-12)
    useful = 4 * 16384 * 16 * 16 * 40  # FLOPs the problem needs
    assert f["time_s"][0] > 50 * useful / PEAK  # padding and tiny tiles dominate


def test_flash_long_sequence_near_its_ceiling():
    f = flash_time(one(16 * 108), one(4096), one(4096), one(128), one(PEAK), one(0.72), SMS)
    flops = 4 * 16 * 108 * 4096 * 4096 * 128
    achieved = flops / f["time_s"][0] / PEAK
    assert achieved == pytest.approx(0.72 * 4096 / (4096 + 256), rel=1e-9)


def row(**kw):
    base = dict(
        run_id="t",
        component="unet",
        phase="denoise",
        op="aten.add.Tensor",
        category="elementwise",
        unit="vector",
        dtype="fp16",
        count=1,
    )
    base.update(kw)
    return base


def test_nchw_conv_pays_two_transposes_and_kernels():
    conv = row(
        op="aten.convolution.default",
        category="conv",
        unit="matrix",
        input_shapes="[2,320,64,64];[320,320,3,3];[320]",
        output_shapes="[2,320,64,64]",
        flops=2 * 2 * 64 * 64 * 320 * 320 * 9,
        bytes_read=2 * (2 * 320 * 64 * 64 + 320 * 2880),
        bytes_written=2 * 2 * 320 * 64 * 64,
    )
    ev = events_frame([conv, conv])
    ev["gpu_layout"] = ["nchw", "nhwc"]
    k = kernel_times(ev, device_of(A100))
    assert list(k["kernels"]) == [3, 1]
    assert k["kernel_s"][0] > k["kernel_s"][1]


def test_fp32_conv_uses_tf32_and_matmul_only_when_asked():
    mm = row(
        op="aten.mm.default",
        category="linear",
        unit="matrix",
        dtype="fp32",
        input_shapes="[4096,4096];[4096,4096]",
        output_shapes="[4096,4096]",
        flops=2 * 4096**3,
        bytes_read=2 * 4 * 4096**2,
        bytes_written=4 * 4096**2,
    )
    ev = events_frame([mm])
    dev = device_of(A100)
    plain = kernel_times(ev, dev)
    tf32 = kernel_times(ev, dev, tf32=True)
    assert plain["math"][0] == "fp32" and tf32["math"][0] == "tf32"
    assert plain["kernel_s"][0] > 5 * tf32["kernel_s"][0]  # 19.5 vs 156 TFLOPS


_OPS = [
    ("aten.mm.default", "linear", "matrix"),
    ("aten.bmm.default", "attention", "matrix"),
    ("aten.convolution.default", "conv", "matrix"),
    ("aten.scaled_dot_product_attention", "attention", "matrix"),
    ("aten.add.Tensor", "elementwise", "vector"),
    ("aten.native_group_norm.default", "norm", "vector"),
    ("aten.clone.default", "memory", "vector"),
]


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(_OPS),
    hw=st.sampled_from(["a100-80g-sxm", "h100-sxm", "l40s", "rtx-4090", "a10", "b200", "l4"]),
    dtype=st.sampled_from(["fp16", "bf16", "fp32"]),
    m=st.integers(1, 20000),
    n=st.integers(1, 12288),
    k=st.integers(1, 12288),
    seq=st.integers(1, 8192),
)
def test_no_prediction_below_the_roofline(kind, hw, dtype, m, n, k, seq):
    op, cat, unit = kind
    item = 2 if dtype != "fp32" else 4
    spec = get_hardware(hw)
    r = row(
        op=op,
        category=cat,
        unit=unit,
        dtype=dtype,
        output_shapes=f"[{m},{n}]",
        input_shapes=f"[{m},{k}];[{k},{n}]",
        flops=2 * m * n * k if unit == "matrix" else m * n,
        bytes_read=item * (m * k + k * n),
        bytes_written=item * m * n,
        q_len=seq,
        kv_len=seq,
        heads=8,
        head_dim=min(k, 256),
        batch=1,
    )
    ev = events_frame([r])
    out = kernel_times(ev, device_of(spec))
    assert out["kernel_s"][0] >= out["roofline_s"][0] > 0
    if dtype != "fp32" and cat != "conv":  # NCHW convs add their transposes to the bound
        assert out["roofline_s"][0] == pytest.approx(apply_roofline(ev, spec)["predicted_s"][0])


def test_spec_without_gpu_fields_is_bad_input():
    spec = get_hardware("a100-80g-sxm")
    bare = type(spec).from_dict({**spec.to_dict(), "extra": {"matrix_peak_sparse": {}}})
    with pytest.raises(UserError, match="no GPU model fields"):
        device_of(bare)


def test_every_constant_has_source_and_status():
    for name in C.names():
        e = C.entry(name)
        assert e["source"] and (
            e["status"] == "measured-source" or e["status"].startswith("unverified: ")
        ), name


def test_attention_kernel_choice_is_checked():
    ev = events_frame(
        [
            row(
                op="aten.scaled_dot_product_attention",
                category="attention",
                unit="matrix",
                q_len=64,
                kv_len=64,
                heads=8,
                head_dim=64,
                batch=1,
                flops=1,
                bytes_read=1,
                bytes_written=1,
            )
        ]
    )
    with pytest.raises(UserError, match="does not run on a100-80g-sxm"):
        kernel_times(ev, device_of(A100), attention_kernel="fa3")
    with pytest.raises(UserError, match="choose one of: cudnn, fa2, fa3"):
        kernel_times(ev, device_of(A100), attention_kernel="xformers")
    assert math.isfinite(
        kernel_times(ev, device_of(get_hardware("h100-sxm")), attention_kernel="fa3")["kernel_s"][0]
    )


def test_pandas_alignment_with_nondefault_index():
    ev = events_frame([row(bytes_read=10**6, bytes_written=10**6)] * 3)
    ev.index = pd.Index([10, 20, 30])
    out = kernel_times(ev, device_of(A100))
    assert len(out) == 3 and (out["kernel_s"] > 0).all()


def test_memory_bound_kernel_by_hand():
    # 100 MB read + 100 MB written at 0.88 of 2,039 GB/s, plus one 1.5 us kernel.
    ev = events_frame([row(bytes_read=10**8, bytes_written=10**8, flops=5 * 10**7)])
    k = kernel_times(ev, device_of(A100))
    assert k["kernel_s"][0] == pytest.approx(2e8 / (2.039e12 * 0.88) + 1.5e-6, rel=1e-12)
    assert k["roofline_s"][0] == pytest.approx(2e8 / 2.039e12, rel=1e-12)


def test_group_norm_is_two_kernels_and_two_read_passes():
    gn = row(
        op="aten.native_group_norm.default", category="norm", bytes_read=10**8, bytes_written=10**8
    )
    k = kernel_times(events_frame([gn]), device_of(A100))
    assert k["kernels"][0] == 2
    assert k["kernel_s"][0] == pytest.approx(3e8 / (2.039e12 * 0.88) + 2 * 1.5e-6, rel=1e-12)
