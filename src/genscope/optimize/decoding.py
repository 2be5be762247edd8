"""Autoregressive-decoding levers: static KV cache, image-token head, early-exit speculation,
batching. They act on :class:`~genscope.optimize.decode_target.DecodeTarget` only."""

from __future__ import annotations

from typing import Any

from torch import nn

from genscope.optimize.base import Lever, LeverContext, LeverSkipped
from genscope.optimize.decode_target import DecodeTarget
from genscope.optimize.targets import Target


class _DecodeLever(Lever):
    kinds = ("decode",)

    def applies_to(self, workload: Any, device: str) -> tuple[bool, str]:
        ok, why = super().applies_to(workload, device)
        if not ok:
            return False, (
                f"{self.name} reshapes an autoregressive decode loop; {workload.name} has none"
            )
        return ok, why

    @staticmethod
    def decode_target(target: Target) -> DecodeTarget:
        if not isinstance(target, DecodeTarget):
            raise LeverSkipped("not an autoregressive decode target")
        return target


class StaticKVCache(_DecodeLever):
    name = "static_cache"
    family = "decoding"
    summary = (
        "DynamicCache (grown by concatenation each step) → StaticCache preallocated for prompt + "
        "new tokens, written in place (fixed shapes: one compiled graph, CUDA-graph safe)"
    )

    # a system-software lever in Lee et al.'s table (it lives with torch.compile/CUDA graphs)
    @property
    def layer(self) -> str:
        return "system software"

    def apply(self, target: Target, ctx: LeverContext) -> Target:
        t = self.decode_target(target)
        if t.cache == "static":
            raise LeverSkipped("cache is already static")
        t.cache = "static"
        return t


class ImageHead(_DecodeLever):
    name = "image_head"
    family = "decoding"
    summary = (
        "text-to-image samples only image tokens: compute the LM head for those rows only "
        "(Chameleon: 8,192 of 65,536) instead of all logits then selecting"
    )

    def apply(self, target: Target, ctx: LeverContext) -> Target:
        t = self.decode_target(target)
        if t.vocab is None:
            raise LeverSkipped("this loop samples the whole vocabulary")
        if t.head is not None:
            raise LeverSkipped("head already restricted")
        head = t.model.lm_head
        if type(head) is not nn.Linear:
            raise LeverSkipped("apply image_head before quantizing the head")
        w = head.weight.detach()[t.vocab]
        sliced = nn.Linear(w.shape[1], w.shape[0], bias=head.bias is not None)
        sliced.to(device=w.device, dtype=w.dtype)
        sliced.weight.data.copy_(w)
        if head.bias is not None:
            sliced.bias.data.copy_(head.bias.detach()[t.vocab])
        t.head = sliced.eval()
        return t


class EarlyExitSpeculation(_DecodeLever):
    name = "speculative"
    family = "decoding"
    summary = (
        "LayerSkip-style self-speculative decoding: draft tokens with the first k layers + "
        "LM head, verify them in one full-depth forward, keep the agreeing prefix"
    )

    def apply(self, target: Target, ctx: LeverContext) -> Target:
        t = self.decode_target(target)
        layers = t.model.config.num_hidden_layers
        k = int(ctx.option("draft_layers") or max(1, layers // 4))
        n = int(ctx.option("draft_tokens") or 3)
        if not 1 <= k < layers:
            raise LeverSkipped(f"draft layers must be in 1..{layers - 1} (got {k})")
        if n < 1:
            raise LeverSkipped(f"draft tokens must be >= 1 (got {n})")
        t.draft_layers, t.draft_tokens = k, n
        return t


class Batching(_DecodeLever):
    name = "batching"
    family = "decoding"
    summary = "decode several images together; reported as throughput (tokens/s)"

    def apply(self, target: Target, ctx: LeverContext) -> Target:
        t = self.decode_target(target)
        b = int(ctx.option("batch") or 4)
        if b <= t.batch:
            raise LeverSkipped(f"batch {b} is not larger than the current batch {t.batch}")
        t.batch = b
        return t
