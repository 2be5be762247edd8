"""Attention lever: the explicit math baseline → fused ``scaled_dot_product_attention``."""

from __future__ import annotations

from typing import Any

import torch

from genscope.optimize.base import Lever, LeverContext, LeverSkipped
from genscope.optimize.targets import Target


class SDPA(Lever):
    """Baseline: every SDPA call runs as ``baddbmm → softmax → bmm`` (genscope's ``math``
    attention, :class:`~genscope.capture.attention_impl.MathAttention`), the N×N scores written
    to memory. Lever: the stock fused SDPA call — Flash or memory-efficient kernels on CUDA,
    PyTorch's tiled flash kernel on CPU; no N×N matrix in memory."""

    name = "sdpa"
    family = "attention"
    summary = "math attention (N×N scores materialized) → fused scaled_dot_product_attention"

    def applies_to(self, workload: Any, device: str) -> tuple[bool, str]:
        ok, why = super().applies_to(workload, device)
        if not ok:
            return ok, why
        kernel = (
            "Flash / memory-efficient CUDA kernels"
            if torch.device(device).type == "cuda"
            else "PyTorch's CPU flash kernel"
        )
        return True, f"{self.summary} ({kernel})"

    def apply(self, target: Target, ctx: LeverContext) -> Target:
        if target.attention == "sdpa":
            raise LeverSkipped("attention is already SDPA")
        target.attention = "sdpa"
        return target
