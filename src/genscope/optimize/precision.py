"""Precision lever: fp32 → bf16 (fp16 on CUDA, where tensor cores run both and fp16 keeps
3 more mantissa bits; on CPU bf16 is the format with native dot-product instructions)."""

from __future__ import annotations

import torch

from genscope.optimize.base import Lever, LeverContext, LeverSkipped
from genscope.optimize.targets import Target


def low_precision_dtype(device: str) -> torch.dtype:
    return torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16


class LowPrecision(Lever):
    name = "bf16"
    family = "precision"
    summary = "weights and activations fp32 → bf16 (fp16 on CUDA)"
    lossy = True

    def mutates(self, target: Target) -> bool:
        return True

    def apply(self, target: Target, ctx: LeverContext) -> Target:
        dtype = low_precision_dtype(ctx.device)
        if target.dtype == dtype:
            raise LeverSkipped(f"target already runs in {dtype}")
        for module in target.modules().values():
            for sub in module.modules():
                if type(sub).__module__.startswith("torch.ao.nn.quantized"):
                    raise LeverSkipped(
                        "torch.ao dynamic int8 linears run fp32 kernels only; apply bf16 before "
                        "int8_dynamic"
                    )
            module.to(dtype)
        target.dtype = dtype
        return target
