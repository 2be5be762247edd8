"""Memory-layout lever: ``channels_last`` (NHWC) for convolutional models, the layout oneDNN
and cuDNN convolution kernels run natively (NCHW inputs are reordered around each conv)."""

from __future__ import annotations

import torch

from genscope.optimize.base import Lever, LeverContext, LeverSkipped
from genscope.optimize.targets import DenoiseTarget, Target


class ChannelsLast(Lever):
    name = "channels_last"
    family = "layout"
    summary = "conv weights and activations NCHW → NHWC (channels_last)"
    kinds = ("denoise",)

    def mutates(self, target: Target) -> bool:
        return True

    def applies_to(self, workload, device):  # type: ignore[no-untyped-def]
        ok, why = super().applies_to(workload, device)
        if not ok:
            return False, "no convolutions in an autoregressive decode loop"
        return ok, why

    def apply(self, target: Target, ctx: LeverContext) -> Target:
        if not isinstance(target, DenoiseTarget):
            raise LeverSkipped("channels_last applies to conv models only")
        if target.memory_format == torch.channels_last:
            raise LeverSkipped("already channels_last")
        target.unet.to(memory_format=torch.channels_last)
        target.memory_format = torch.channels_last
        return target
