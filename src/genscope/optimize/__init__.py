"""Optimization levers (Lee et al., arXiv 2410.00215): apply, stack, and measure.

One module per lever family — :mod:`~genscope.optimize.attention` (math → SDPA),
:mod:`~genscope.optimize.precision` (bf16 / fp16), :mod:`~genscope.optimize.layout`
(channels_last), :mod:`~genscope.optimize.compile` (torch.compile, CUDA graphs),
:mod:`~genscope.optimize.fusion` (fused QKV), :mod:`~genscope.optimize.quant` (int8 dynamic and
weight-only), :mod:`~genscope.optimize.decoding` (static KV cache, image-token head, early-exit
speculation, batching). :mod:`~genscope.optimize.stack` applies them cumulatively and measures
latency, throughput, compile time, peak memory and output deviation per stage.

Everything here is measured on the local device and labelled ``measured (<device>)``.
"""

from genscope.optimize.base import Lever, LeverContext, LeverSkipped, target_kind
from genscope.optimize.build import TargetSpec, build_target, resolve
from genscope.optimize.levers import DEFAULT_STACK, LEVERS, parse_levers
from genscope.optimize.stack import StackResult, Stage, run_stack

__all__ = [
    "DEFAULT_STACK",
    "LEVERS",
    "Lever",
    "LeverContext",
    "LeverSkipped",
    "StackResult",
    "Stage",
    "TargetSpec",
    "build_target",
    "optimize",
    "parse_levers",
    "run_stack",
]


def optimize(
    spec: TargetSpec,
    levers: str | None = None,
    *,
    warmup: int = 1,
    repeats: int = 3,
    on_stage=None,
) -> StackResult:
    """Build ``spec``'s baseline target and run the lever stack (``levers``: "a,b,c")."""

    kind = target_kind(resolve(spec.workload))
    chosen, options = parse_levers(levers, kind)
    ctx = LeverContext(device=spec.device, options=options)
    return run_stack(
        lambda: build_target(spec), chosen, ctx, warmup=warmup, repeats=repeats, on_stage=on_stage
    )
