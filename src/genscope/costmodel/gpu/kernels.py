"""Kernel model: the device time of the kernel(s) each aten op launches on an NVIDIA GPU.

Four classes, each priced from shapes, dtype and the constants in ``constants.json``:

* **gemm** (mm/addmm/bmm/baddbmm and other matrix-unit ops): output ``[L, M, N]``,
  ``K = flops / (2·L·M·N)``. For each CTA tile ``TM×TN`` of :data:`gemm.tiles`:
  ``tiles = L·⌈M/TM⌉·⌈N/TN⌉``; when tiles cannot fill the SMs, split-K by
  ``s = min(⌊SMs/tiles⌋, ⌊K/splitk_min_k⌋)``; ``waves = ⌈tiles·s/SMs⌉``;
  ``t = waves · 2·TM·TN·(K/s) / (peak/SMs · ceiling · tile_eff · (K/s)/((K/s)+k_half))``.
  The cheapest tile wins, as a cuBLAS heuristic would pick it.
* **conv** (cuDNN implicit GEMM): ``M = N·H·W`` of the output, ``N = C_out``, the same tile
  model times :data:`conv.efficiency`; NCHW Tensor-Core convs pay two layout transposes
  (extra kernels and traffic) unless the op is marked channels-last.
* **attention** (flash SDPA): work units ``batch·heads·⌈q/128⌉``; each unit does
  ``4·128·kv_pad·d`` padded FLOPs (``kv_pad`` = kv rounded up to the key tile), so tiny
  temporal sequences waste most of a tile; ``waves = ⌈units/SMs⌉``; the ceiling depends on
  the kernel (FA2/FA3/cuDNN), the arch and the head dim, and ramps with ``kv/(kv+kv_half)``.
* **memory** (elementwise, norms, reductions, copies): ``passes·bytes / (bw·stream_fraction)``
  or vector compute, whichever is longer, per kernel launched.

Every kernel adds a fixed device time (:data:`kernel.fixed_s`). The result is never below the
roofline ``max(flops/peak, bytes/bw)`` of the same math mode: :func:`kernel_times` enforces it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genscope.costmodel.gpu import constants as C
from genscope.costmodel.gpu.device import Device
from genscope.dtypes import ITEMSIZE
from genscope.errors import UserError, choices_error
from genscope.schema import parse_shapes

#: SDPA overloads priced as one fused flash kernel.
ATTENTION_OPS: frozenset[str] = frozenset(
    {
        "aten.scaled_dot_product_attention",
        "aten.scaled_dot_product_attention.default",
        "aten._scaled_dot_product_flash_attention.default",
        "aten._scaled_dot_product_efficient_attention.default",
        "aten._scaled_dot_product_cudnn_attention.default",
        "aten._flash_attention_forward.default",
        "aten._efficient_attention_forward.default",
    }
)
#: Flash kernels a spec may run; ``None`` picks what PyTorch's SDPA dispatches to (FA2).
ATTENTION_KERNELS: tuple[str, ...] = ("fa2", "fa3", "cudnn")
#: Copies that usually change layout (``.contiguous()`` after a permute/transpose).
STRIDED_COPIES: frozenset[str] = frozenset({"aten.clone.default", "aten.contiguous.default"})


def _first_shape(s: object) -> tuple[int, ...]:
    if not isinstance(s, str) or not s:
        return ()
    return parse_shapes(s)[0]


def classify(events: pd.DataFrame) -> pd.Series:
    """Kernel class per row: ``none`` (views), ``attention``, ``conv``, ``gemm`` or ``memory``."""
    op = events["op"].astype(str)
    unit = events["unit"].fillna("vector").astype(str)
    cls = np.where(unit == "none", "none", "memory").astype(object)
    cls = np.where((unit == "matrix") & (cls != "none"), "gemm", cls)
    cls = np.where(op.str.contains("convolution") & (unit != "none"), "conv", cls)
    cls = np.where(op.isin(ATTENTION_OPS) & (unit != "none"), "attention", cls)
    return pd.Series(cls, index=events.index, dtype="string")


def math_mode(dtype: pd.Series, kclass: pd.Series, *, tf32: bool) -> pd.Series:
    """Peak key each matrix kernel uses: fp32 convs run TF32 (cuDNN's default on Ampere+),
    fp32 matmuls run TF32 only when ``tf32`` (PyTorch's ``allow_tf32``) is set."""
    d = dtype.fillna("fp32").astype(str).replace({"": "fp32"})
    d = d.where(d.isin(list(ITEMSIZE)), "fp32")
    is_fp32 = d == "fp32"
    to_tf32 = is_fp32 & ((kclass == "conv") | ((kclass.isin(["gemm", "attention"])) & tf32))
    return d.where(~to_tf32, "tf32")


def _gemm_dims(events: pd.DataFrame, kclass: pd.Series) -> tuple[np.ndarray, ...]:
    """(L, M, N, K) per row from the first output shape and the FLOP count."""
    n = len(events)
    L = np.ones(n)
    M = np.ones(n)
    N = np.ones(n)
    shapes = events["output_shapes"].astype(object).map(_first_shape)
    for i, (shape, cls) in enumerate(zip(shapes, kclass, strict=True)):
        if not shape:
            continue
        numel = float(np.prod(shape))
        if cls == "conv" and len(shape) >= 3:
            N[i] = shape[1]
            M[i] = numel / max(shape[1], 1)
        elif len(shape) >= 3:
            N[i], M[i] = shape[-1], shape[-2]
            L[i] = numel / max(shape[-1] * shape[-2], 1)
        else:
            N[i] = shape[-1]
            M[i] = numel / max(shape[-1], 1)
    flops = events["flops"].to_numpy(dtype=float)
    K = flops / np.maximum(2.0 * L * M * N, 1.0)
    return L, M, N, K


def gemm_time(
    L: np.ndarray,
    M: np.ndarray,
    N: np.ndarray,
    K: np.ndarray,
    peak: np.ndarray,
    ceiling: np.ndarray,
    sm_count: int,
) -> dict[str, np.ndarray]:
    """Tile/wave-quantized compute time of GEMMs (no memory term, no fixed cost).

    Returns ``time_s``, the chosen ``tile_m``/``tile_n``, ``tiles`` (CTAs before split-K),
    ``split_k`` and ``waves`` per GEMM.
    """
    k_half = float(C.value("gemm.k_half"))
    split_min = float(C.value("gemm.splitk_min_k"))
    tile_eff = C.value("gemm.tile_efficiency")
    best = np.full(len(M), np.inf)
    out = {k: np.zeros(len(M)) for k in ("tile_m", "tile_n", "tiles", "split_k", "waves")}
    per_sm = peak / sm_count
    for tm, tn in C.value("gemm.tiles"):
        tiles = L * np.ceil(M / tm) * np.ceil(N / tn)
        fill = np.floor(sm_count / np.maximum(tiles, 1))
        split = np.where(tiles < sm_count, np.minimum(fill, np.floor(K / split_min)), 1.0)
        split = np.maximum(split, 1.0)
        waves = np.ceil(tiles * split / sm_count)
        k_per = K / split
        eff = ceiling * tile_eff[f"{tm}x{tn}"] * k_per / (k_per + k_half)
        t = waves * 2.0 * tm * tn * k_per / (per_sm * np.maximum(eff, 1e-9))
        better = t < best
        best = np.where(better, t, best)
        for key, val in (("tile_m", tm), ("tile_n", tn), ("tiles", tiles), ("split_k", split)):
            out[key] = np.where(better, val, out[key])
        out["waves"] = np.where(better, waves, out["waves"])
    out["time_s"] = np.where(K > 0, best, 0.0)
    return out


def pad_head_dim(d: np.ndarray) -> np.ndarray:
    """Head dim the flash kernel runs: the smallest instantiated one ≥ ``d``."""
    dims = np.array(C.value("attn.head_dims"), dtype=float)
    idx = np.minimum(np.searchsorted(dims, d), len(dims) - 1)
    return np.maximum(dims[idx], d)


def flash_time(
    bh: np.ndarray,
    q: np.ndarray,
    kv: np.ndarray,
    d: np.ndarray,
    peak: np.ndarray,
    ceiling: np.ndarray,
    sm_count: int,
) -> dict[str, np.ndarray]:
    """Compute time of a flash forward kernel over ``bh`` = batch·heads problems.

    ``units = bh·⌈q/tile_m⌉`` CTAs, ``waves = ⌈units/SMs⌉``; each CTA does
    ``4·tile_m·kv_pad·d`` FLOPs at ``ceiling·kv/(kv+kv_half)`` of its SM's share of peak.
    """
    tm = float(C.value("attn.tile_m"))
    tn = float(C.value("attn.tile_n"))
    kv_half = float(C.value("attn.kv_half"))
    units = bh * np.ceil(q / tm)
    kv_pad = np.ceil(kv / tn) * tn
    waves = np.ceil(units / sm_count)
    eff = ceiling * kv / (kv + kv_half)
    per_unit = 4.0 * tm * kv_pad * d / (peak / sm_count * np.maximum(eff, 1e-9))
    return {"time_s": waves * per_unit, "units": units, "waves": waves, "kv_pad": kv_pad}


def _attention_ceiling(dev: Device, impl: str, head_dim: np.ndarray) -> np.ndarray:
    table = C.value("attn.ceiling")
    if impl not in table:
        raise choices_error("attention kernel", impl, list(table))
    by_arch = table[impl]
    if dev.arch not in by_arch:
        valid = [k for k, v in table.items() if dev.arch in v]
        raise UserError(
            f"attention kernel {impl!r} does not run on {dev.name} ({dev.arch}); "
            f"choose one of: {', '.join(valid)}"
        )
    row = by_arch[dev.arch]
    return np.where(head_dim <= 64, row["64"], row["128"])


def _peaks(dev: Device, mode: pd.Series, unit: str) -> np.ndarray:
    out = np.zeros(len(mode))
    for m in mode.unique():
        key = "fp32" if unit == "vector" and m in ("tf32", "int8", "fp8") else str(m)
        out[(mode == m).to_numpy()] = dev.spec.peak(key, unit)  # type: ignore[arg-type]
    return out


def _matrix_ceiling(dev: Device, mode: pd.Series) -> np.ndarray:
    hw, arch = dev.name, dev.arch
    table = {
        "fp16": C.pick("gemm.ceiling", arch, hw),
        "bf16": C.pick("gemm.ceiling", arch, hw),
        "fp32": C.pick("gemm.ceiling_fp32_simt", arch, hw),
        "fp64": C.pick("gemm.ceiling_fp32_simt", arch, hw),
        "tf32": C.pick("gemm.ceiling_tf32", arch, hw),
        "int8": C.pick("gemm.ceiling_int8", arch, hw),
        "fp8": C.pick("gemm.ceiling_fp8", arch, hw),
    }
    return mode.map(table).astype(float).to_numpy()


def kernel_times(
    events: pd.DataFrame,
    dev: Device,
    *,
    tf32: bool = False,
    attention_kernel: str = "fa2",
) -> pd.DataFrame:
    """Per-op kernel model: a frame aligned with ``events`` (per single op, not × count).

    Columns: ``kclass``, ``math``, ``kernel_s`` (device time of all the op's kernels),
    ``roofline_s`` (datasheet bound of the same math mode), ``kernels`` (launches),
    ``tiles`` and ``waves`` (GEMM/conv CTAs, or flash work units).
    """
    if attention_kernel not in ATTENTION_KERNELS:
        raise choices_error("attention kernel", attention_kernel, ATTENTION_KERNELS)
    ev = events.reset_index(drop=True)
    n = len(ev)
    kclass = classify(ev)
    mode = math_mode(ev["dtype"], kclass, tf32=tf32)
    spec = dev.spec
    bw = spec.mem_bw
    stream = float(C.pick("mem.stream_fraction", dev.arch, dev.name))
    fixed = C.value("kernel.fixed_s")
    flops = ev["flops"].to_numpy(dtype=float)
    rbytes = ev["bytes_read"].to_numpy(dtype=float)
    wbytes = ev["bytes_written"].to_numpy(dtype=float)
    nbytes = rbytes + wbytes
    kernel_s = np.zeros(n)
    roof = np.zeros(n)
    kernels = np.zeros(n)
    tiles = np.zeros(n)
    waves = np.zeros(n)
    kc = kclass.to_numpy(dtype=object)
    layout = (
        ev["gpu_layout"].fillna("nchw").astype(str).to_numpy()
        if "gpu_layout" in ev
        else np.full(n, "nchw")
    )
    fused_kernels = ev["gpu_kernels"].to_numpy(dtype=float) if "gpu_kernels" in ev else None

    # -- gemm and conv -------------------------------------------------------------------
    mm = (kc == "gemm") | (kc == "conv")
    if mm.any():
        sub = ev[mm]
        L, M, N, K = _gemm_dims(sub, kclass[mm])
        peak = _peaks(dev, mode[mm], "matrix")
        ceil = _matrix_ceiling(dev, mode[mm])
        is_conv = kc[mm] == "conv"
        ceil = np.where(is_conv, ceil * float(C.pick("conv.efficiency", dev.arch, dev.name)), ceil)
        g = gemm_time(L, M, N, K, peak, ceil, dev.sm_count)
        mem_s = nbytes[mm] / (bw * stream)
        fixed_mm = np.where(is_conv, fixed["conv"], fixed["gemm"])
        t = np.maximum(g["time_s"], mem_s) + fixed_mm
        # NCHW Tensor-Core convs: cuDNN transposes input and output to NHWC and back.
        tc = mode[mm].isin(["fp16", "bf16", "tf32", "int8", "fp8"]).to_numpy()
        nchw = is_conv & tc & (layout[mm] != "nhwc")
        passes = float(C.value("conv.nchw_extra_passes"))
        in_shape = sub["input_shapes"].astype(object).map(_first_shape)
        item = mode[mm].map(lambda m: ITEMSIZE.get(m, 4) if m != "tf32" else 4).to_numpy()
        in_bytes = np.array([float(np.prod(s)) if s else 0.0 for s in in_shape]) * item
        extra_bytes = passes * (in_bytes + wbytes[mm])
        strided = float(C.value("mem.strided_fraction"))
        t = t + np.where(nchw, extra_bytes / (bw * stream * strided) + passes * fixed["memory"], 0)
        kernel_s[mm] = t
        kernels[mm] = 1 + np.where(nchw, passes, 0)
        roof_extra = np.where(nchw, extra_bytes / bw, 0.0)
        roof[mm] = np.maximum(flops[mm] / peak, nbytes[mm] / bw) + roof_extra
        tiles[mm] = g["tiles"] * g["split_k"]
        waves[mm] = g["waves"]

    # -- flash attention -----------------------------------------------------------------
    at = kc == "attention"
    if at.any():
        sub = ev[at]
        q = sub["q_len"].astype("Float64").fillna(1).to_numpy(dtype=float)
        kv = sub["kv_len"].astype("Float64").fillna(1).to_numpy(dtype=float)
        d = pad_head_dim(sub["head_dim"].astype("Float64").fillna(64).to_numpy(dtype=float))
        heads = sub["heads"].astype("Float64").fillna(1).to_numpy(dtype=float)
        batch = sub["batch"].astype("Float64").fillna(1).to_numpy(dtype=float)
        peak = _peaks(dev, mode[at], "matrix")
        ceil = _attention_ceiling(dev, attention_kernel, d)
        # FlashAttention needs fp16/bf16: PyTorch runs fp32 SDPA in its memory-efficient kernel
        # on CUDA cores (SDPA backend selection, torch.nn.attention docs), priced here at the
        # fp32 SIMT GEMM ceiling of the same FMA pipes
        simt = mode[at].isin(["fp32", "fp64"]).to_numpy()
        if simt.any():
            ceil = np.where(simt, _matrix_ceiling(dev, mode[at]), ceil)
        f = flash_time(batch * heads, q, kv, d, peak, ceil, dev.sm_count)
        mem_s = nbytes[at] / (bw * stream)
        kernel_s[at] = np.maximum(f["time_s"], mem_s) + fixed["attention"]
        kernels[at] = 1
        roof[at] = np.maximum(flops[at] / peak, nbytes[at] / bw)
        tiles[at] = f["units"]
        waves[at] = f["waves"]

    # -- memory-bound kernels ------------------------------------------------------------
    me = kc == "memory"
    if me.any():
        sub = ev[me]
        table = C.value("mem.op_passes")
        ops = sub["op"].astype(str)
        k = ops.map(lambda o: table.get(o, {}).get("kernels", 1)).to_numpy(dtype=float)
        passes = ops.map(lambda o: table.get(o, {}).get("read_passes", 1)).to_numpy(dtype=float)
        if fused_kernels is not None:
            k = np.where(np.isnan(fused_kernels[me]), k, fused_kernels[me])
        frac = np.where(ops.isin(STRIDED_COPIES), float(C.value("mem.strided_fraction")), 1.0)
        traffic = rbytes[me] * passes + wbytes[me]
        vpeak = _peaks(dev, mode[me], "vector")
        t = np.maximum(traffic / (bw * stream * frac), flops[me] / vpeak)
        kernel_s[me] = t + k * fixed["memory"]
        kernels[me] = k
        roof[me] = np.maximum(flops[me] / vpeak, nbytes[me] / bw)

    kernel_s = np.maximum(kernel_s, roof)  # the bound holds by construction; keep it explicit
    return pd.DataFrame(
        {
            "kclass": kclass.to_numpy(),
            "math": mode.to_numpy(),
            "kernel_s": kernel_s,
            "roofline_s": roof,
            "kernels": kernels,
            "tiles": tiles,
            "waves": waves,
        }
    )
