"""The memory guard of measured runs: predict the peak on ``meta`` before running anything.

**Prediction** (:func:`predict_peak`): the workload is built on ``meta`` (no memory) and run
once under :class:`LiveBytes`, a ``TorchDispatchMode`` that adds every op's freshly allocated
outputs to a live-bytes counter and subtracts them when the tensor is freed (``weakref``
finalizers); outputs that alias an input (views, in-place ops, per the op schema) allocate
nothing. The predicted peak is parameters + buffers + the highest live-activation count. Fused
(flash) SDPA is run as a shape-only call so the meta decomposition's N×N scores are not counted;
the math baseline materializes them and is counted. Allocator caching, oneDNN/cuBLAS workspaces
and the Python runtime are not modelled.

The guard (:func:`memory_guard`) refuses a run whose prediction exceeds the memory available
(:func:`genscope.machine.memory.available_bytes`) before anything is built or written.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from genscope.capture.attention_impl import MathAttention
from genscope.capture.context import Runner
from genscope.errors import UserError
from genscope.machine.memory import available_bytes, human_bytes
from genscope.workloads.base import Settings, Workload


class LiveBytes(TorchDispatchMode):
    """Counts bytes of live tensors that ops allocate; ``peak`` is the high-water mark."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        out = func(*args, **(kwargs or {}))
        returns = func._schema.returns
        outs, _ = tree_flatten(out)
        for i, t in enumerate(outs):
            if not isinstance(t, torch.Tensor):
                continue
            if i < len(returns) and returns[i].alias_info is not None:
                continue  # a view or an in-place result: no new allocation
            nbytes = t.numel() * t.element_size()
            if nbytes:
                self.live += nbytes
                self.peak = max(self.peak, self.live)
                weakref.finalize(t, self._free, nbytes)
        return out


class _ShapeOnlySDPA(TorchFunctionMode):
    """Fused SDPA as a shape-only call: its output, no N×N scores (flash does not store them)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            q = args[0] if args else kwargs["query"]
            v = args[2] if len(args) > 2 else kwargs["value"]
            return q.new_empty((*q.shape[:-1], v.shape[-1]))
        return func(*args, **kwargs)


@dataclass(frozen=True)
class MemoryPrediction:
    weights_bytes: int
    activations_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.activations_bytes

    def to_dict(self) -> dict[str, int]:
        return {
            "predicted_peak_bytes": self.total_bytes,
            "weights_bytes": self.weights_bytes,
            "activations_bytes": self.activations_bytes,
        }


def predict_peak(wl: Workload, s: Settings) -> MemoryPrediction:
    """Weights + peak live activations of one run of ``wl`` with settings ``s`` (on meta)."""
    meta = replace(s, device="meta")
    built = wl.build(meta)
    weights = sum(
        t.numel() * t.element_size()
        for m in built.models.values()
        for t in (*m.parameters(), *m.buffers())
    )
    live = LiveBytes()
    modes: list[Any] = [] if s.attention == "math" else [_ShapeOnlySDPA()]
    if s.attention == "math":
        modes = [MathAttention()]
    with torch.no_grad(), contextlib.ExitStack() as stack:
        for mode in modes:
            stack.enter_context(mode)
        stack.enter_context(live)
        # Identical steps repeat the same allocations: one traced step gives the peak.
        wl.generate(built, meta, Runner(collapse_identical_steps=True))
    return MemoryPrediction(int(weights), int(live.peak))


def memory_guard(wl: Workload, s: Settings, device: str, force: bool) -> dict[str, Any]:
    """Predict the run's peak memory; refuse (UserError, exit 2) when it will not fit."""
    prediction: MemoryPrediction = predict_peak(wl, s)
    available, source = available_bytes(device)
    info = prediction.to_dict() | {"available_bytes": available, "available_source": source}
    if prediction.total_bytes > available and not force:
        raise UserError(
            f"{wl.name} ({s.size}) on {device}: predicted peak memory "
            f"{human_bytes(prediction.total_bytes)} (weights "
            f"{human_bytes(prediction.weights_bytes)} + activations "
            f"{human_bytes(prediction.activations_bytes)}) exceeds available "
            f"{human_bytes(available)} ({source}); pass --force to run anyway"
        )
    return info
