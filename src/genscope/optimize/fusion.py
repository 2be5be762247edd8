"""Fusion lever: one GEMM for the Q, K and V projections (diffusers ``fuse_qkv_projections``).

Self-attention's ``to_q``/``to_k``/``to_v`` become one ``to_qkv`` projection; cross-attention's
``to_k``/``to_v`` (both read the text context) become ``to_kv``. Fewer, larger GEMMs: one read
of the activations instead of three.
"""

from __future__ import annotations

from typing import Any

from genscope.optimize.base import Lever, LeverContext, LeverSkipped
from genscope.optimize.targets import DenoiseTarget, Target


class FusedQKV(Lever):
    name = "fused_qkv"
    family = "fusion"
    summary = "Q/K/V projections → one fused GEMM (diffusers fuse_qkv_projections)"
    kinds = ("denoise",)

    def mutates(self, target: Target) -> bool:
        return True

    def applies_to(self, workload: Any, device: str) -> tuple[bool, str]:
        ok, why = super().applies_to(workload, device)
        if not ok:
            return False, (
                "transformers attention modules (Chameleon, Llama) have no fused-QKV API; "
                "only diffusers models expose fuse_qkv_projections()"
            )
        return ok, why

    def apply(self, target: Target, ctx: LeverContext) -> Target:
        unet = getattr(target, "unet", None)
        if not isinstance(target, DenoiseTarget) or not hasattr(unet, "fuse_qkv_projections"):
            raise LeverSkipped("model has no fuse_qkv_projections()")
        if "fused_qkv" in target.applied:
            raise LeverSkipped("already fused")
        if any("int8" in name for name in target.applied):
            raise LeverSkipped("fuse before quantizing (it concatenates float weights)")
        target.unet.fuse_qkv_projections()
        return target
