"""Every analysis that feeds a claim, on small hand-made event tables whose answer is worked
out here: breakdown (conv/linear shares), flash speedup and the diffusion/transformer ratio,
temporal share, phase intensity and ridge crossing, and the decode analyses.

Rows often carry ``count > 1``: every total must be value × count.
"""

import math

import pandas as pd
import pytest

from genscope.analyses import decode, flash, roofline, temporal
from genscope.analyses.breakdown import category_breakdown
from genscope.costmodel.hardware import get_hardware
from genscope.schema import CATEGORIES, events_frame

A100 = get_hardware("a100-80g-sxm")  # bf16 ridge 312e12 / 2039e9 = 153.0 FLOP/B
A100_PCIE = get_hardware("a100-40g-pcie")  # bf16 ridge 312e12 / 1555e9 = 200.6 FLOP/B


def ev(*rows):
    return events_frame(list(rows))


# ----------------------------------------------------------------------------- breakdown


def test_category_breakdown_shares_by_hand():
    run = ev(
        {"category": "conv", "predicted_s": 1.0, "flops": 10, "count": 3},  # 3 s, 30 FLOP
        {"category": "linear", "predicted_s": 0.5, "flops": 7, "count": 2},  # 1 s, 14 FLOP
    )
    t = category_breakdown({"a": run}).set_index("category")
    assert list(t.index) == list(CATEGORIES)
    assert t.loc["conv", "time_s"] == 3.0 and t.loc["linear", "time_s"] == 1.0
    assert t.loc["conv", "share"] == 0.75 and t.loc["linear", "share"] == 0.25
    assert t.loc["conv", "flops"] == 30 and t.loc["linear", "flops"] == 14
    assert t.drop(["conv", "linear"])["share"].eq(0).all()
    assert set(t["run"]) == {"a"}


# ----------------------------------------------------------------------------- flash


def _pair(math_rows, flash_rows):
    return ev(*math_rows), ev(*flash_rows)


def _flash_table():
    pairs = {
        # math: attention 1.5 s × 2 + conv 1 s = 4 s; flash: 1 + 1 = 2 s -> e2e 2.0, attention 3.0
        "unet": _pair(
            [
                {"category": "attention", "predicted_s": 1.5, "count": 2},
                {"category": "conv", "predicted_s": 1.0},
            ],
            [
                {"category": "attention", "predicted_s": 0.5, "count": 2},
                {"category": "conv", "predicted_s": 1.0},
            ],
        ),
        # math 0.6 + 2.4 = 3 s; flash 0.1 + 2.4 = 2.5 s -> e2e 1.2
        "dit": _pair(
            [
                {"category": "attention", "predicted_s": 0.6},
                {"category": "linear", "predicted_s": 2.4},
            ],
            [
                {"category": "attention", "predicted_s": 0.1},
                {"category": "linear", "predicted_s": 2.4},
            ],
        ),
        # math 0.5 + 2.0 = 2.5 s; flash 0.25 + 2.0 = 2.25 s -> e2e 10/9
        "ar": _pair(
            [
                {"category": "attention", "predicted_s": 0.5},
                {"category": "linear", "predicted_s": 2.0},
            ],
            [
                {"category": "attention", "predicted_s": 0.25},
                {"category": "linear", "predicted_s": 2.0},
            ],
        ),
        # a TTV diffusion model: never part of the TTI ratio (e2e 10x)
        "video": _pair(
            [{"category": "attention", "predicted_s": 10.0}],
            [{"category": "attention", "predicted_s": 1.0}],
        ),
    }
    families = {
        "unet": "diffusion-unet",
        "dit": "diffusion-dit",
        "ar": "autoregressive",
        "video": "diffusion-unet",
    }
    tasks = {"unet": "tti", "dit": "tti", "ar": "tti", "video": "ttv"}
    return flash.flash_speedup(pairs, families, tasks)


def test_flash_speedup_by_hand():
    t = _flash_table().set_index("workload")
    u = t.loc["unet"]
    assert (u.e2e_math_s, u.e2e_flash_s) == (4.0, 2.0)
    assert u.e2e_speedup == 2.0 and u.attention_speedup == 3.0
    assert u.attention_share_math == 0.75
    assert t.loc["dit", "e2e_speedup"] == pytest.approx(1.2)
    assert t.loc["ar", "e2e_speedup"] == pytest.approx(10 / 9)
    assert t.loc["ar", "attention_speedup"] == 2.0
    assert (t.loc["unet", "family"], t.loc["video", "task"]) == ("diffusion-unet", "ttv")


def test_diffusion_vs_transformer_ratio_by_hand():
    """TTI only: unet 2.0 and dit 1.2 over ar 10/9 -> ratios 1.8 and 1.08 (video excluded)."""
    r = flash.diffusion_vs_transformer_tti(_flash_table())
    assert r["pairs"] == 2
    assert r["max"] == pytest.approx(1.8, rel=1e-12)
    assert r["min"] == pytest.approx(1.08, rel=1e-12)


def test_diffusion_vs_transformer_ratio_without_a_pair_is_nan():
    t = _flash_table()
    r = flash.diffusion_vs_transformer_tti(t[t["family"] != "autoregressive"])
    assert r["pairs"] == 0 and math.isnan(r["max"]) and math.isnan(r["min"])


# ----------------------------------------------------------------------------- temporal


def test_temporal_share_by_hand():
    """spatial: 1 ms × 2 = 2 ms, 4 GFLOP × 2; temporal: two rows of 1.5 ms × 2 = 6 ms,
    0.5 GFLOP × 2 each. Attention time 8 ms -> temporal 75 %; FLOPs 10 G -> temporal 20 %.
    Fraction of the fp32 matrix peak (19.5 TFLOP/s): spatial 8e9 / (2e-3 · 19.5e12) = 0.2051,
    temporal 2e9 / (6e-3 · 19.5e12) = 0.01709. The conv row is not attention."""
    run = ev(
        {"category": "attention", "attn_axis": "spatial", "q_len": 4096, "predicted_s": 1e-3,
         "flops": 4_000_000_000, "count": 2},
        {"category": "attention", "attn_axis": "temporal", "q_len": 8, "predicted_s": 1.5e-3,
         "flops": 500_000_000, "count": 2},
        {"category": "attention", "attn_axis": "temporal", "q_len": 16, "predicted_s": 1.5e-3,
         "flops": 500_000_000, "count": 2},
        {"category": "conv", "predicted_s": 10.0, "flops": 10**12},
    )  # fmt: skip
    t = temporal.temporal_share({"v": run}, A100, "fp32").set_index("axis")
    assert list(t.index) == ["spatial", "temporal"]  # no joint rows, no joint line
    assert t.loc["temporal", "time_s"] == pytest.approx(6e-3, rel=1e-12)
    assert t.loc["temporal", "time_share"] == pytest.approx(0.75, rel=1e-12)
    assert t.loc["spatial", "time_share"] == pytest.approx(0.25, rel=1e-12)
    assert t.loc["temporal", "flop_share"] == pytest.approx(0.2, rel=1e-12)
    assert t.loc["spatial", "flops"] == 8e9
    assert t.loc["spatial", "fraction_of_peak"] == pytest.approx(0.205128, rel=1e-5)
    assert t.loc["temporal", "fraction_of_peak"] == pytest.approx(0.017094, rel=1e-4)
    assert t.loc["temporal", "q_len_median"] == 12.0
    assert t.loc["spatial", "q_len_median"] == 4096.0


# ----------------------------------------------------------------------------- roofline phases


def test_phase_intensity_by_hand():
    """unet/denoise: 6000 FLOP over 20 + 10 B, × 2 -> 12000 / 60 = 200 FLOP/B (the view's
    bytes do not count); decoder/decode: 300 / 300 = 1 FLOP/B; text/encode has no FLOPs and
    no row. 200 is above the a100-80g-sxm ridge (153) and below the a100-40g-pcie one (200.6)."""
    run = ev(
        {"component": "unet", "phase": "denoise", "unit": "matrix", "flops": 6000,
         "bytes_read": 20, "bytes_written": 10, "count": 2},
        {"component": "unet", "phase": "denoise", "unit": "none", "bytes_read": 1000},
        {"component": "decoder", "phase": "decode", "unit": "vector", "flops": 300,
         "bytes_read": 200, "bytes_written": 100},
        {"component": "text", "phase": "encode", "unit": "vector", "bytes_read": 64},
    )  # fmt: skip
    t = roofline.phase_intensity({"r": run}, [A100, A100_PCIE], "bf16")
    t = t.set_index(["component", "phase"])
    assert list(t.index) == [("decoder", "decode"), ("unet", "denoise")]
    den, dec = t.loc[("unet", "denoise")], t.loc[("decoder", "decode")]
    assert (den.flops, den.bytes, den.intensity) == (12000, 60, 200.0)
    assert (dec.flops, dec.bytes, dec.intensity) == (300, 300, 1.0)
    assert den["bound_a100-80g-sxm"] == "compute" and den["bound_a100-40g-pcie"] == "memory"
    assert dec["bound_a100-80g-sxm"] == "memory"


def test_ridge_crossing_by_hand():
    sweep = pd.DataFrame({"batch": [64, 16, 4, 1], "intensity": [61.0, 15.5, 3.9, 1.0]})
    assert roofline.ridge_crossing(sweep, 15.5) == 16  # reaching the ridge counts
    assert roofline.ridge_crossing(sweep, 15.6) == 64
    assert roofline.ridge_crossing(sweep, 0.5) == 1
    assert roofline.ridge_crossing(sweep, 153.0) is None


def test_op_intensity_by_hand():
    run = ev(
        {"category": "linear", "op": "mm", "flops": 800, "bytes_read": 150, "bytes_written": 50},
        {"category": "memory", "op": "view", "unit": "none"},
    )
    t = roofline.op_intensity(run)
    assert list(t["op"]) == ["mm"]
    assert t["bytes"].iloc[0] == 200 and t["intensity"].iloc[0] == 4.0


# ----------------------------------------------------------------------------- decode


def test_step_composition_by_hand():
    run = ev(
        {"phase": "encode", "step": None, "category": "conv", "predicted_s": 9.0},
        {"phase": "prefill", "step": 0, "category": "linear", "predicted_s": 1.0, "count": 2},
        {"phase": "prefill", "step": 0, "category": "attention", "predicted_s": 0.5},
        {"phase": "decode", "step": 1, "category": "linear", "predicted_s": 0.1},
        {"phase": "decode", "step": 1, "category": "attention", "predicted_s": 0.05},
        {"phase": "decode", "step": 2, "category": "linear", "predicted_s": 0.1},
    )
    t = decode.step_composition(run).set_index("step")
    assert sorted(t.columns) == ["attention", "linear"]  # the encode conv is not a step
    assert list(t.index) == [0, 1, 2]
    assert list(t["linear"]) == [2.0, 0.1, 0.1]
    assert list(t["attention"]) == [0.5, 0.05, 0.0]


def test_kv_cache_bytes_by_hand():
    """SDPA inputs Q;K;V. Step 1: one bf16 layer, K and V [1,8,5,64] -> 2 · 2560 · 2 B =
    10240 B. Step 2: two fp32 layers, K and V [1,8,6,64] -> 2 · (2 · 3072 · 4 B) = 49152 B."""
    sdpa = "aten._scaled_dot_product_flash_attention.default"
    run = ev(
        {"phase": "decode", "step": 1, "category": "attention", "op": sdpa, "dtype": "bf16",
         "kv_len": 5, "input_shapes": "[1,8,1,64];[1,8,5,64];[1,8,5,64]"},
        {"phase": "decode", "step": 2, "category": "attention", "op": sdpa, "dtype": "fp32",
         "kv_len": 6, "input_shapes": "[1,8,1,64];[1,8,6,64];[1,8,6,64]"},
        {"phase": "decode", "step": 2, "category": "attention", "op": sdpa, "dtype": "fp32",
         "kv_len": 6, "input_shapes": "[1,8,1,64];[1,8,6,64];[1,8,6,64]"},
        {"phase": "decode", "step": 2, "category": "linear", "op": "aten.mm.default",
         "input_shapes": "[1,512];[512,512]"},
    )  # fmt: skip
    t = decode.kv_cache_bytes(run)
    assert t.to_dict("records") == [
        {"step": 1, "kv_len": 5, "kv_bytes": 10240},
        {"step": 2, "kv_len": 6, "kv_bytes": 49152},
    ]


def test_linear_attention_share_by_hand():
    """Batch 1 decode: linear 3 ms × 2, attention 1 ms × 2, norm 2 ms -> 10 ms: linear 60 %,
    attention 20 %. Intensity over ops that launch: FLOPs 100·2 + 20·2 = 240, bytes
    100·2 + 10·2 + 40 = 260 -> 240/260 (the view's 1000 B and the prefill row do not count).
    Batch 4: linear only, 400 FLOP over 100 B."""
    b1 = ev(
        {"phase": "prefill", "category": "linear", "predicted_s": 5.0, "flops": 10**6},
        {"phase": "decode", "category": "linear", "unit": "matrix", "predicted_s": 3e-3,
         "flops": 100, "bytes_read": 50, "bytes_written": 50, "count": 2},
        {"phase": "decode", "category": "attention", "unit": "matrix", "predicted_s": 1e-3,
         "flops": 20, "bytes_read": 10, "count": 2},
        {"phase": "decode", "category": "norm", "unit": "vector", "predicted_s": 2e-3,
         "bytes_read": 40},
        {"phase": "decode", "category": "memory", "unit": "none", "bytes_read": 1000},
    )  # fmt: skip
    b4 = ev(
        {"phase": "decode", "category": "linear", "unit": "matrix", "predicted_s": 1e-3,
         "flops": 400, "bytes_read": 100},
    )  # fmt: skip
    t = decode.linear_attention_share({4: b4, 1: b1})
    assert list(t["batch"]) == [1, 4]
    one, four = t.iloc[0], t.iloc[1]
    assert one.linear_share == pytest.approx(0.6, rel=1e-12)
    assert one.attention_share == pytest.approx(0.2, rel=1e-12)
    assert one.decode_time_s == pytest.approx(10e-3, rel=1e-12)
    assert one.intensity == pytest.approx(240 / 260, rel=1e-12)
    assert (four.linear_share, four.attention_share, four.intensity) == (1.0, 0.0, 4.0)
