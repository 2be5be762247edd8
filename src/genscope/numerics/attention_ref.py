"""Readable attention references whose precision and tiling can be varied (Golden et al. 2024).

``flash_reference`` is the FlashAttention forward written out tile by tile: for each tile of
keys/values it updates a running row max ``m``, a running row sum ``l`` and an output
accumulator, rescaling the old state by ``exp(m_old - m_new)``. Those per-tile rescalings are
the approximation the paper blames for Flash's extra deviation, so every intermediate is
rounded explicitly (see :class:`genscope.numerics.precision.Precision` for which tensor is
rounded to which format). ``baseline_attention`` is the usual non-tiled
``softmax(QKᵀ·scale)·V`` in the same precision; ``golden_attention`` is baseline in fp64.

All functions take ``[..., N, d]`` tensors (e.g. ``[batch, heads, N, d]``) and vectorize over
the leading dimensions; only tiles are looped over.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from genscope.errors import UserError, choices_error
from genscope.numerics.precision import DTYPES, Precision, round_to

Algorithm = Literal["fa2", "fa1"]
ALGORITHMS: tuple[str, ...] = ("fa2", "fa1")


def tile_sizes(m: int, d: int) -> tuple[int, int]:
    """FlashAttention-1's tile rule: ``B_c = ceil(M/4d)``, ``B_r = min(ceil(M/4d), d)``.

    ``m`` is the on-chip SRAM size in *elements* (the FlashAttention paper's M); four blocks of
    ``d``-wide rows (Q_i, K_j, V_j, O_i) must fit in it, hence the 4d.
    """
    if not isinstance(m, int) or isinstance(m, bool) or m <= 0:
        raise UserError(f"SRAM size M must be a positive number of elements, got {m!r}")
    if not isinstance(d, int) or isinstance(d, bool) or d <= 0:
        raise UserError(f"head dim d must be a positive integer, got {d!r}")
    b_c = math.ceil(m / (4 * d))
    return min(b_c, d), b_c


def n_kv_tiles(kv_len: int, block_c: int) -> int:
    """Key/value tiles per query row: one online-softmax rescaling per tile after the first."""
    return math.ceil(kv_len / block_c)


def check_tiles(q_len: int, kv_len: int, block_r: int, block_c: int) -> None:
    """Reject tiles that are not positive or do not fit the sequence (one-line UserError)."""
    for name, b in (("block_r", block_r), ("block_c", block_c)):
        if not isinstance(b, int) or isinstance(b, bool) or b <= 0:
            raise UserError(f"{name} must be a positive integer, got {b!r}")
    if block_r > q_len or block_c > kv_len:
        raise UserError(
            f"tile {block_r}x{block_c} (B_r x B_c) is larger than the sequence "
            f"(q_len={q_len}, kv_len={kv_len}); choose block_r <= {q_len} and "
            f"block_c <= {kv_len}, or a smaller SRAM size M"
        )


def mask_bias(
    q_len: int,
    kv_len: int,
    *,
    attn_mask: Tensor | None,
    is_causal: bool,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
) -> Tensor | None:
    """SDPA's masks as one additive bias (``-inf`` where masked), or None without a mask.

    Boolean masks follow SDPA (True = may attend); float masks are added to the scores.
    ``is_causal`` is SDPA's top-left aligned lower triangle.
    """
    bias = None
    if is_causal:
        keep = torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril()
        bias = torch.zeros(q_len, kv_len, dtype=dtype, device=device).masked_fill(~keep, -math.inf)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            extra = torch.zeros(attn_mask.shape, dtype=dtype, device=attn_mask.device)
            extra = extra.masked_fill(~attn_mask, -math.inf)
        else:
            extra = attn_mask.to(dtype)
        bias = extra if bias is None else bias + extra
    return bias


def _prepare(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    prec: Precision,
    scale: float | None,
    attn_mask: Tensor | None,
    is_causal: bool,
) -> tuple[Tensor, Tensor, Tensor, float, Tensor | None]:
    """Checked shapes, inputs rounded to storage precision, the scale, and the mask bias."""
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise UserError(
            f"q/k/v shapes do not match: q {tuple(q.shape)}, k {tuple(k.shape)}, "
            f"v {tuple(v.shape)}; expected [..., N_q, d], [..., N_kv, d], [..., N_kv, d_v]"
        )
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    bias = mask_bias(
        q.shape[-2],
        k.shape[-2],
        attn_mask=attn_mask,
        is_causal=is_causal,
        dtype=prec.work,
        device=q.device,
    )
    return prec.round_storage(q), prec.round_storage(k), prec.round_storage(v), scale, bias


class _InPlace:
    """Rounding in place through reusable low-precision buffers.

    Same arithmetic as ``Precision.round_*``, without allocating (and page-faulting) two fresh
    N x d tensors per op: about 2.5x faster on the output accumulator, which is updated once
    per key/value tile.
    """

    def __init__(self, prec: Precision) -> None:
        self.prec = prec
        self._buffers: dict[tuple, Tensor] = {}

    def _round(self, x: Tensor, fmt: str) -> Tensor:
        target = DTYPES[fmt]
        if target == x.dtype:
            return x
        if x.dtype == torch.float64:  # fp64 -> bf16/fp16 needs round_to's single rounding
            return x.copy_(round_to(x, target))
        key = (tuple(x.shape), target)
        low = self._buffers.get(key)
        if low is None:
            low = self._buffers[key] = torch.empty(x.shape, dtype=target, device=x.device)
        low.copy_(x)  # round to nearest even
        return x.copy_(low)

    def accum(self, x: Tensor) -> Tensor:
        return self._round(x, self.prec.accum)

    def storage(self, x: Tensor) -> Tensor:
        return self._round(x, self.prec.storage)


def _scores(
    q: Tensor,
    k: Tensor,
    scale: float,
    bias: Tensor | None,
    prec: Precision,
    inplace: _InPlace | None = None,
) -> Tensor:
    """S = QKᵀ·scale (+ mask), each op rounded to the accumulator format (in place)."""
    inplace = inplace or _InPlace(prec)
    s = inplace.accum(q @ k.transpose(-1, -2))
    s = inplace.accum(s.mul_(scale))
    if bias is not None:
        fits = torch.broadcast_shapes(s.shape, bias.shape) == s.shape
        s = inplace.accum(s.add_(bias) if fits else s + bias)
    return s


def baseline_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    dtype: str | torch.dtype = "fp32",
    *,
    accum: str | torch.dtype | None = None,
    scale: float | None = None,
    attn_mask: Tensor | None = None,
    is_causal: bool = False,
) -> Tensor:
    """Non-tiled ``softmax(QKᵀ·scale)·V`` as eager PyTorch computes it in ``dtype``.

    Rounded: Q, K, V (storage), QKᵀ and ·scale and +mask (accum), the softmax output P (storage,
    once: softmax is one fused op that reduces in fp32, like ``torch.softmax`` on bf16), and
    P·V (storage). Returns a tensor of the storage dtype.
    """
    prec = Precision.of(dtype, accum)
    q, k, v, scale, bias = _prepare(q, k, v, prec, scale, attn_mask, is_causal)
    s = _scores(q, k, scale, bias, prec)
    p = prec.round_storage(torch.softmax(s, dim=-1))
    out = prec.round_storage(p @ v)
    return out.to(DTYPES[prec.storage])


def golden_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    scale: float | None = None,
    attn_mask: Tensor | None = None,
    is_causal: bool = False,
) -> Tensor:
    """The paper's golden value: baseline attention in fp64 (on the inputs as given)."""
    return baseline_attention(
        q, k, v, "fp64", scale=scale, attn_mask=attn_mask, is_causal=is_causal
    )


def _flash_rows(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    bias: Tensor | None,
    block_c: int,
    scale: float,
    prec: Precision,
    algorithm: Algorithm,
) -> Tensor:
    """One block of query rows against every key/value tile: the online softmax."""
    if algorithm == "fa1":
        return _flash_rows_fa1(q, k, v, bias, block_c, scale, prec)
    rows = q.shape[:-1]
    m = torch.full((*rows, 1), -math.inf, dtype=prec.work, device=q.device)  # running max
    l = torch.zeros((*rows, 1), dtype=prec.work, device=q.device)  # running sum  # noqa: E741
    acc = torch.zeros((*rows, v.shape[-1]), dtype=prec.work, device=q.device)  # output
    pv = torch.empty_like(acc)
    ra, rs = prec.round_accum, prec.round_storage
    inplace = _InPlace(prec)
    for j0 in range(0, k.shape[-2], block_c):
        j1 = min(j0 + block_c, k.shape[-2])
        b = None if bias is None else bias[..., j0:j1]
        s = _scores(q, k[..., j0:j1, :], scale, b, prec, inplace)
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        # Rows masked in every tile so far have m = -inf; subtract 0 there so exp gives 0, not nan.
        m_safe = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
        # FlashAttention-2: P = exp(S - m_new) on the tile; an unnormalized accumulator.
        p = inplace.storage(inplace.accum(s.sub_(m_safe)).exp_())
        alpha = ra(torch.exp(ra(m - m_safe)))  # the per-tile rescaling factor
        l = ra(ra(alpha * l) + ra(p.sum(dim=-1, keepdim=True)))  # noqa: E741
        # acc = round(round(alpha * acc) + round(P @ V_j)), written in place.
        inplace.accum(acc.mul_(alpha))
        inplace.accum(torch.matmul(p, v[..., j0:j1, :], out=pv))
        inplace.accum(acc.add_(pv))
        m = m_new
    return rs(acc / l)  # one division at the end


def _flash_rows_fa1(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    bias: Tensor | None,
    block_c: int,
    scale: float,
    prec: Precision,
) -> Tensor:
    """FlashAttention-1 (Algorithm 1): tile-local softmax, two rescalings per tile, and the
    output renormalized by the running sum after every tile."""
    rows = q.shape[:-1]
    m = torch.full((*rows, 1), -math.inf, dtype=prec.work, device=q.device)
    l = torch.zeros((*rows, 1), dtype=prec.work, device=q.device)  # noqa: E741
    acc = torch.zeros((*rows, v.shape[-1]), dtype=prec.work, device=q.device)
    ra, rs = prec.round_accum, prec.round_storage
    for j0 in range(0, k.shape[-2], block_c):
        j1 = min(j0 + block_c, k.shape[-2])
        s = _scores(q, k[..., j0:j1, :], scale, None if bias is None else bias[..., j0:j1], prec)
        m_tile = s.amax(dim=-1, keepdim=True)
        m_new = torch.maximum(m, m_tile)
        m_safe = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
        m_tile_safe = torch.where(torch.isfinite(m_tile), m_tile, torch.zeros_like(m_tile))
        p = rs(torch.exp(ra(s - m_tile_safe)))
        l_tile = ra(p.sum(dim=-1, keepdim=True))
        alpha = ra(torch.exp(ra(m - m_safe)))
        beta = ra(torch.exp(ra(m_tile - m_safe)))
        l_new = ra(ra(alpha * l) + ra(beta * l_tile))
        old = ra(ra(l * alpha) * acc)
        new = ra(beta * ra(p @ v[..., j0:j1, :]))
        acc = ra(ra(old + new) / l_new)
        l, m = l_new, m_new  # noqa: E741
    return rs(acc)


def flash_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    block_r: int,
    block_c: int,
    dtype: str | torch.dtype = "fp32",
    *,
    accum: str | torch.dtype | None = None,
    swap_order: bool = False,
    scale: float | None = None,
    attn_mask: Tensor | None = None,
    is_causal: bool = False,
    algorithm: Algorithm = "fa2",
    loop_rows: bool = False,
) -> Tensor:
    """Tiled FlashAttention forward in a chosen precision; returns a tensor of ``dtype``.

    ``block_r`` x ``block_c`` is the tile (query rows x key columns). ``swap_order`` swaps the
    two block dimensions (the paper's Fig. 6a), so the column tile becomes ``block_r``.
    ``accum`` defaults to ``dtype``: the paper's re-implementation computes everything in the
    chosen format; pass ``accum="fp32"`` for the CUDA kernels' fp32 softmax state.

    Rounded to storage: Q, K, V, each tile's P = exp(S - m), the output. Rounded to accum:
    every op on S, m, l, the rescale factors and the output accumulator.

    Each query row's result depends only on the column tiling, so by default all row tiles are
    processed at once (``loop_rows=False``); ``loop_rows=True`` walks them one by one as the
    kernel does, for checking that claim.
    """
    if algorithm not in ALGORITHMS:
        raise choices_error("flash algorithm", algorithm, list(ALGORITHMS))
    prec = Precision.of(dtype, accum)
    if swap_order:
        block_r, block_c = block_c, block_r
    check_tiles(q.shape[-2], k.shape[-2], block_r, block_c)
    q, k, v, scale, bias = _prepare(q, k, v, prec, scale, attn_mask, is_causal)
    if bias is not None:  # a view with an explicit row dimension, so row tiles can slice it
        bias = bias.expand(torch.broadcast_shapes(bias.shape, (*q.shape[:-1], k.shape[-2])))
    if not loop_rows:
        out = _flash_rows(q, k, v, bias, block_c, scale, prec, algorithm)
    else:
        outs = []
        for i0 in range(0, q.shape[-2], block_r):
            i1 = min(i0 + block_r, q.shape[-2])
            b = None if bias is None else bias[..., i0:i1, :]
            outs.append(_flash_rows(q[..., i0:i1, :], k, v, b, block_c, scale, prec, algorithm))
        out = torch.cat(outs, dim=-2)
    return out.to(DTYPES[prec.storage])


def deviation(a: Tensor, b: Tensor) -> dict[str, float]:
    """max, mean and std of |a - b| (elementwise, in fp64) and the RMSE.

    Max is the paper's primary metric (an upper bound); mean/std are its sequence-length
    metrics; RMSE is FlashAttention-3's. Non-finite differences (fully masked rows) are
    counted, not averaged.
    """
    diff = (a.to(torch.float64) - b.to(torch.float64)).abs().flatten()
    finite = torch.isfinite(diff)
    n_bad = int((~finite).sum())
    diff = diff[finite]
    if diff.numel() == 0:
        nan = float("nan")
        return {"max_abs": nan, "mean_abs": nan, "std_abs": nan, "rmse": nan, "nonfinite": n_bad}
    return {
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
        "std_abs": float(diff.std(correction=0)),
        "rmse": float(diff.square().mean().sqrt()),
        "nonfinite": n_bad,
    }
