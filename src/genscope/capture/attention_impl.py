"""The two attention implementations genscope compares, for any model.

Models keep their stock SDPA-based attention. ``flash`` runs SDPA as is (one fused call, no
N×N scores in memory). ``math`` replaces each SDPA call with the explicit baseline —
``baddbmm(Q, Kᵀ)·scale → softmax → bmm(P, V)``, the same ops as diffusers' ``AttnProcessor`` —
so the score matrix is materialized. Swapping at the SDPA call works for every diffusers,
transformers and genscope architecture alike, on ``meta`` and on real tensors.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

Attention = Literal["flash", "math"]
ATTENTION_CHOICES: tuple[str, ...] = ("flash", "math")


def math_sdpa(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    """Baseline attention with SDPA's signature (inference: dropout is ignored)."""
    *lead, lq, d = query.shape
    lk, dv = key.shape[-2], value.shape[-1]
    if key.dim() >= 3 and key.shape[-3] != query.shape[-3] and query.dim() >= 4:
        groups = query.shape[-3] // key.shape[-3]  # grouped-query attention
        key = key.repeat_interleave(groups, dim=-3)
        value = value.repeat_interleave(groups, dim=-3)
    bh = math.prod(lead)
    q = query.reshape(bh, lq, d)
    k = key.expand(*lead, lk, d).reshape(bh, lk, d)
    v = value.expand(*lead, lk, dv).reshape(bh, lk, dv)
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    if is_causal:
        causal = torch.ones(lq, lk, dtype=torch.bool, device=query.device).tril(lk - lq)
        attn_mask = causal if attn_mask is None else attn_mask & causal
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            attn_mask = torch.zeros_like(attn_mask, dtype=query.dtype).masked_fill(
                ~attn_mask, float("-inf")
            )
        bias = attn_mask.expand(*lead, lq, lk).reshape(bh, lq, lk).to(query.dtype)
        scores = torch.baddbmm(bias, q, k.transpose(-1, -2), beta=1.0, alpha=scale)
    else:
        empty = torch.empty(bh, lq, lk, dtype=query.dtype, device=query.device)
        scores = torch.baddbmm(empty, q, k.transpose(-1, -2), beta=0.0, alpha=scale)
    probs = scores.softmax(dim=-1)
    return torch.bmm(probs, v).reshape(*lead, lq, dv)


class MathAttention(TorchFunctionMode):
    """Run every ``F.scaled_dot_product_attention`` call as :func:`math_sdpa`."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        if func is F.scaled_dot_product_attention:
            return math_sdpa(*args, **(kwargs or {}))
        return func(*args, **(kwargs or {}))


def sdpa_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale")
    return dict(zip(names, args, strict=False)) | kwargs
