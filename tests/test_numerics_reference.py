"""The flash reference against baseline, fp64 golden and torch SDPA; the tile rule; errors."""

import math

import pytest
import torch
import torch.nn.functional as F

from genscope.errors import UserError
from genscope.machine.threads import torch_threads
from genscope.numerics import (
    DTYPES,
    Precision,
    baseline_attention,
    deviation,
    dtype_name,
    flash_reference,
    golden_attention,
    tile_sizes,
)
from genscope.numerics.precision import round_to


@pytest.fixture(autouse=True)
def one_thread():
    """Many small ops: one thread avoids OpenMP barrier stalls on a shared CPU (see _threads)."""
    with torch_threads(1):
        yield


def qkv(b=2, h=3, n=96, d=16, n_kv=None, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n_kv = n if n_kv is None else n_kv
    q = torch.randn(b, h, n, d, generator=gen, dtype=dtype)
    k = torch.randn(b, h, n_kv, d, generator=gen, dtype=dtype)
    v = torch.randn(b, h, n_kv, d, generator=gen, dtype=dtype)
    return q, k, v


@pytest.mark.parametrize("algorithm", ["fa2", "fa1"])
@pytest.mark.parametrize(
    ("n", "n_kv", "block_r", "block_c"),
    [(96, 96, 16, 16), (96, 96, 7, 13), (50, 77, 8, 32), (64, 64, 64, 64)],  # incl. ragged tiles
)
def test_fp64_flash_equals_fp64_baseline(algorithm, n, n_kv, block_r, block_c):
    q, k, v = qkv(n=n, n_kv=n_kv)
    flash = flash_reference(q, k, v, block_r, block_c, "fp64", algorithm=algorithm)
    assert flash.dtype == torch.float64
    assert deviation(flash, baseline_attention(q, k, v, "fp64"))["max_abs"] <= 1e-12


@pytest.mark.parametrize(
    "mask_kind", ["none", "causal", "bool", "float"], ids=lambda m: f"mask={m}"
)
def test_fp32_flash_matches_torch_sdpa(mask_kind):
    q, k, v = qkv(n=80, n_kv=80, dtype=torch.float32)
    kwargs = {}
    if mask_kind == "causal":
        kwargs["is_causal"] = True
    elif mask_kind == "bool":
        kwargs["attn_mask"] = torch.rand(80, 80, generator=torch.Generator().manual_seed(1)) > 0.3
        kwargs["attn_mask"][:, 0] = True  # no fully masked row
    elif mask_kind == "float":
        kwargs["attn_mask"] = torch.randn(2, 1, 80, 80, generator=torch.Generator().manual_seed(2))
    ref = F.scaled_dot_product_attention(q, k, v, **kwargs)
    flash = flash_reference(q, k, v, 16, 16, "fp32", **kwargs)
    assert flash.dtype == torch.float32
    assert deviation(flash, ref)["max_abs"] <= 1e-5


def test_golden_is_fp64_baseline_and_matches_sdpa():
    q, k, v = qkv()
    gold = golden_attention(q, k, v, scale=0.3)
    assert torch.equal(gold, baseline_attention(q, k, v, "fp64", scale=0.3))
    assert deviation(gold, F.scaled_dot_product_attention(q, k, v, scale=0.3))["max_abs"] < 1e-13


@pytest.mark.parametrize("dtype", ["bf16", "fp16", "fp32", "fp64"])
def test_vectorized_rows_equal_row_tile_loop(dtype):
    # Every op is row-local, so processing all row tiles at once is the same computation.
    q, k, v = qkv(n=64, d=8)
    a = flash_reference(q, k, v, 16, 8, dtype)
    b = flash_reference(q, k, v, 16, 8, dtype, loop_rows=True)
    assert deviation(a, b)["max_abs"] <= (1e-12 if dtype == "fp64" else 1e-6)


def test_low_precision_outputs_are_representable_and_deviate_more():
    q, k, v = qkv(n=256, d=32)
    devs = {}
    for dt in ("bf16", "fp16", "fp32"):
        qr, kr, vr = (x.to(DTYPES[dt]).double() for x in (q, k, v))  # inputs as stored
        out = flash_reference(qr, kr, vr, 32, 32, dt)
        assert out.dtype == DTYPES[dt]
        devs[dt] = deviation(out, golden_attention(qr, kr, vr))["max_abs"]
    # Fewer mantissa bits, more deviation: bf16 (8) > fp16 (11) > fp32 (24).
    assert devs["bf16"] > devs["fp16"] > devs["fp32"] > 0


def test_bf16_flash_with_small_tiles_deviates_more_than_baseline():
    # Long rows cut into many tiles: l and O are rounded to bf16 after every rescaling.
    q, k, v = qkv(b=1, h=2, n=1024, d=64)
    q, k, v = (x.to(torch.bfloat16).double() for x in (q, k, v))
    gold = golden_attention(q, k, v)
    flash = deviation(flash_reference(q, k, v, 16, 16, "bf16"), gold)["max_abs"]
    base = deviation(baseline_attention(q, k, v, "bf16"), gold)["max_abs"]
    assert flash > 1.5 * base
    # With fp32 accumulators (the CUDA kernels' convention) flash beats bf16 baseline.
    flash32 = deviation(flash_reference(q, k, v, 16, 16, "bf16", accum="fp32"), gold)["max_abs"]
    assert flash32 < base


def test_emulated_bf16_baseline_tracks_native_torch_bf16():
    q, k, v = qkv(b=1, h=2, n=128, d=32)
    qb, kb, vb = (x.to(torch.bfloat16) for x in (q, k, v))
    native = torch.softmax((qb @ kb.transpose(-1, -2)) * (1 / math.sqrt(32)), dim=-1) @ vb
    emulated = baseline_attention(qb, kb, vb, "bf16")
    gold = golden_attention(*(x.double() for x in (qb, kb, vb)))
    d_native, d_emul = deviation(native, gold)["max_abs"], deviation(emulated, gold)["max_abs"]
    assert 0.5 < d_emul / d_native < 2.0
    assert deviation(native, emulated)["max_abs"] <= 2 * 2**-8  # within a couple of bf16 ulps


def test_tile_rule():
    # B_c = ceil(M / 4d), B_r = min(B_c, d): M=8192, d=64 -> ceil(8192/256) = 32 -> (32, 32)
    assert tile_sizes(8192, 64) == (32, 32)
    # M=32768, d=64 -> B_c = 128, B_r = min(128, 64) = 64
    assert tile_sizes(32768, 64) == (64, 128)
    # ceil: M=1000, d=16 -> 1000/64 = 15.6 -> 16
    assert tile_sizes(1000, 16) == (16, 16)


def test_swap_order_swaps_block_dimensions():
    q, k, v = qkv(n=128, d=16)
    swapped = flash_reference(q, k, v, 64, 16, "bf16", swap_order=True)
    assert torch.equal(swapped, flash_reference(q, k, v, 16, 64, "bf16"))


def test_fully_masked_rows_follow_sdpa():
    q, k, v = qkv(b=1, h=1, n=8, d=4)
    mask = torch.ones(8, 8, dtype=torch.bool)
    mask[3] = False
    out = flash_reference(q, k, v, 4, 4, "fp64", attn_mask=mask)
    base = baseline_attention(q, k, v, "fp64", attn_mask=mask)
    rows = [i for i in range(8) if i != 3]
    assert deviation(out[..., rows, :], base[..., rows, :])["max_abs"] < 1e-12
    assert not torch.isfinite(out[..., 3, :]).any()  # 0/0, as baseline softmax gives nan
    assert deviation(out, base)["nonfinite"] == 4


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda q, k, v: flash_reference(q, k, v, 128, 16, "bf16"), "larger than the sequence"),
        (lambda q, k, v: flash_reference(q, k, v, 16, 0, "bf16"), "block_c must be a positive"),
        (lambda q, k, v: flash_reference(q, k, v, 16, 16, "fp8"), "bf16, fp16, fp32, fp64"),
        (lambda q, k, v: baseline_attention(q, k, v, "int8"), "choose one of"),
        (lambda q, k, v: flash_reference(q, k, v, 8, 8, algorithm="fa9"), "fa1, fa2"),
        (lambda q, k, v: tile_sizes(0, 64), "positive"),
        (lambda q, k, v: tile_sizes(-5, 64), "positive"),
    ],
)
def test_bad_input_is_a_one_line_user_error(call, match):
    q, k, v = qkv(n=64)
    with pytest.raises(UserError, match=match) as err:
        call(q, k, v)
    assert "\n" not in str(err.value)


def test_fp64_to_bf16_rounds_once():
    # 1 + 2^-8 + 2^-30 lies just above the midpoint of 1 and 1 + 2^-7: nearest is 1 + 2^-7.
    # Through fp32 (torch's cast) it first becomes the midpoint 1 + 2^-8, then ties to even 1.0.
    x = torch.tensor(
        [1 + 2**-8 + 2**-30, -(1 + 2**-8 + 2**-30), 1 + 2**-8, 3.0, float("inf")],
        dtype=torch.float64,
    )
    assert x.to(torch.bfloat16)[0].item() == 1.0  # torch's double rounding
    got = round_to(x, torch.bfloat16).tolist()
    assert got == [1 + 2**-7, -(1 + 2**-7), 1.0, 3.0, float("inf")]
    rand = torch.randn(10_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    nearest = round_to(rand, torch.float16).double()
    # No representable value is nearer: compare with both neighbours.
    up = torch.nextafter(nearest.half(), torch.tensor(float("inf")).half()).double()
    down = torch.nextafter(nearest.half(), torch.tensor(float("-inf")).half()).double()
    err = (nearest - rand).abs()
    assert (err <= (up - rand).abs()).all() and (err <= (down - rand).abs()).all()


def test_dtype_names():
    assert dtype_name(torch.bfloat16) == "bf16"
    assert dtype_name("float16") == "fp16"
    assert Precision.of("bf16").accum == "bf16"
    assert Precision.of("bf16", "fp32").label == "bf16/fp32"
    assert Precision.of("fp16", "fp64").work == torch.float64
