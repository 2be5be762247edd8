"""Compiler lever: ``torch.compile`` with inductor (+ CUDA graphs on CUDA).

* CUDA: ``mode="reduce-overhead"`` — inductor kernels replayed as CUDA graphs, which removes
  the per-kernel launch cost that leaves the GPU idle between decode-step kernels (Lee et al.).
* CPU: inductor's default mode; CUDA graphs do not exist. (Inductor's ``freezing``, which
  bakes weights into the graph as constants, is left off: stages are kept alive side by side
  for interleaved timing, and a graph shared between two stages' modules must not carry one
  stage's weights.)

``compile:MODE`` in ``--levers`` sets the mode (``default``, ``reduce-overhead``,
``max-autotune``, ``max-autotune-no-cudagraphs``). A diffusion UNet is compiled **regionally**
(diffusers' regional compilation, extended from the transformer blocks to the ResNet and
resampling blocks): each block class is traced once per input shape and identical blocks share
the graph, which cut the cold compile of the full SD1.5 UNet here from ~19 to ~14 minutes
(on a loaded 2-core CPU); the glue between blocks stays eager. Decode loops compile the whole
step function. The first call of a compiled stage is
reported as compile time and left out of the steady-state latency.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from genscope.optimize.base import Lever, LeverContext, LeverSkipped
from genscope.optimize.targets import CompileSpec, DenoiseTarget, Target

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: diffusers UNet blocks compiled one by one in regional mode (each class's forward is traced
#: once per distinct input shape; instances share it)
UNET_REGIONS = ("BasicTransformerBlock", "ResnetBlock2D", "Downsample2D", "Upsample2D")


def default_spec(ctx: LeverContext, target: Target) -> CompileSpec:
    mode = ctx.option("compile_mode")
    regional_opt = ctx.option("compile_regional", True)
    regional = UNET_REGIONS if isinstance(target, DenoiseTarget) and regional_opt else ()
    if mode is None:
        if ctx.is_cuda:
            return CompileSpec(mode="reduce-overhead", regional=regional)
        return CompileSpec(mode="default", regional=regional)
    if mode not in COMPILE_MODES:
        raise LeverSkipped(f"unknown compile mode {mode!r}; choose: {', '.join(COMPILE_MODES)}")
    return CompileSpec(mode=mode, regional=regional)


class Compile(Lever):
    name = "compile"
    family = "compile"
    summary = "torch.compile (inductor; CUDA graphs via reduce-overhead on CUDA)"

    def applies_to(self, workload: Any, device: str) -> tuple[bool, str]:
        ok, why = super().applies_to(workload, device)
        if not ok:
            return ok, why
        if torch.device(device).type == "cuda":
            return True, "torch.compile inductor, mode reduce-overhead (CUDA graphs)"
        return True, "torch.compile inductor, default mode (no CUDA graphs on CPU)"

    def mutates(self, target: Target) -> bool:
        return isinstance(target, DenoiseTarget)  # regional compilation compiles blocks in place

    def apply(self, target: Target, ctx: LeverContext) -> Target:
        if target.compile is not None:
            raise LeverSkipped("already compiled")
        # diffusers' resamplers call an lru_cache'd version check; dynamo traces through it
        warnings.filterwarnings("ignore", message=".*functools.lru_cache.*", category=UserWarning)
        target.compile = default_spec(ctx, target)
        return target
