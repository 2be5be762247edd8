"""What a lever is: a small, composable transform of a runnable :class:`Target`.

A lever has a ``name``, a ``family`` (which layer of the stack it belongs to, after Lee et al.,
arXiv 2410.00215: application / system software), says whether it applies to a workload on a
device (``applies_to`` → ``(bool, reason)``), and transforms a target (``apply(target, ctx)`` →
target). Levers compose: :mod:`genscope.optimize.stack` applies them cumulatively, in order,
and measures each stage. A lever that cannot apply to the target *as it is now* (for example
weight-only int8 after dynamic int8 already replaced every linear) raises :class:`LeverSkipped`
with the reason; the stack prints it and goes on.

``lossy`` levers change the arithmetic on purpose (lower precision, quantization); the others only
reorder it (fused kernels, layouts, compilation, caching, scheduling), so their outputs must stay
equal to the baseline up to floating-point reordering.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch

from genscope.optimize.targets import Target

Family = Literal[
    "attention", "precision", "layout", "compile", "fusion", "quantization", "decoding"
]
#: Lee et al.'s layers: application levers change what is computed, system-software levers how.
LAYER: dict[str, str] = {
    "attention": "system software",
    "precision": "system software",
    "layout": "system software",
    "compile": "system software",
    "fusion": "system software",
    "quantization": "system software",
    "decoding": "application",
}


class LeverSkipped(Exception):
    """Raised by ``apply`` when the lever cannot apply to the target in its current state."""


@dataclass
class LeverContext:
    """What every lever may read: the device, the workload, and per-lever options."""

    device: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def is_cuda(self) -> bool:
        return torch.device(self.device).type == "cuda"

    def option(self, lever: str, default: Any = None) -> Any:
        return self.options.get(lever, default)


class Lever(ABC):
    """One optimization: ``applies_to`` says where it makes sense, ``apply`` performs it."""

    name: ClassVar[str]
    family: ClassVar[Family]
    summary: ClassVar[str]
    #: changes the arithmetic on purpose (precision, quantization)
    lossy: ClassVar[bool] = False
    #: target kinds it can transform: "denoise" (a diffusion UNet step), "decode" (an AR loop)
    kinds: ClassVar[tuple[str, ...]] = ("denoise", "decode")

    @property
    def layer(self) -> str:
        return LAYER[self.family]

    def applies_to(self, workload: Any, device: str) -> tuple[bool, str]:
        """Whether this lever makes sense for ``workload`` on ``device``, and why (not)."""
        kind = target_kind(workload)
        if kind not in self.kinds:
            return False, f"{self.name} applies to {' / '.join(self.kinds)} targets, not {kind}"
        return True, self.summary

    def mutates(self, target: Target) -> bool:
        """Whether ``apply`` rewrites the target's modules in place (the stack then applies it
        to a copy, so earlier stages stay measurable)."""
        return False

    @abstractmethod
    def apply(self, target: Target, ctx: LeverContext) -> Target:
        """Transform ``target`` (in place is fine) and return it; raise LeverSkipped if moot."""

    def __repr__(self) -> str:
        return f"<lever {self.name}>"


@dataclass(frozen=True)
class Branch:
    """A stack entry measured on top of the current stage but not carried forward (``~name``
    in ``--levers``): it shows what the lever would do there without changing later stages."""

    lever: Lever


def target_kind(workload: Any) -> str:
    """The target kind a workload's optimizable loop is: decode for AR, denoise for diffusion."""
    family = getattr(workload, "family", "")
    if family == "autoregressive":
        return "decode"
    if str(family).startswith("diffusion"):
        return "denoise"
    return str(family) or "unknown"
