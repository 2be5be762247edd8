"""Memory for measured runs: predict the peak before running, measure it while running.

**Prediction** (:func:`predict_peak`): the workload is built on ``meta`` (no memory) and run
once under :class:`LiveBytes`, a ``TorchDispatchMode`` that adds every op's freshly allocated
outputs to a live-bytes counter and subtracts them when the tensor is freed (``weakref``
finalizers); outputs that alias an input (views, in-place ops, per the op schema) allocate
nothing. The predicted peak is parameters + buffers + the highest live-activation count. Fused
(flash) SDPA is run as a shape-only call so the meta decomposition's N×N scores are not counted;
the math baseline materializes them and is counted. Allocator caching, oneDNN/cuBLAS workspaces
and the Python runtime are not modelled.

**Measurement** (:class:`PeakMemory`): on CUDA ``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats``; on CPU the process's resident-set high-water mark ``VmHWM``, reset
through ``/proc/self/clear_refs`` (Linux; falls back to the ``getrusage`` high-water mark, which
cannot be reset and so only counts growth beyond the earlier peak).
"""

from __future__ import annotations

import contextlib
import re
import resource
import sys
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from genscope.capture.context import Runner
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
        from genscope.capture.attention_impl import MathAttention

        modes = [MathAttention()]
    with torch.no_grad(), contextlib.ExitStack() as stack:
        for mode in modes:
            stack.enter_context(mode)
        stack.enter_context(live)
        # Identical steps repeat the same allocations: one traced step gives the peak.
        wl.generate(built, meta, Runner(collapse_identical_steps=True))
    return MemoryPrediction(int(weights), int(live.peak))


def available_bytes(device: str) -> tuple[int, str]:
    """Memory a run on ``device`` may still use, and where the figure comes from."""
    if torch.device(device).type == "cuda":
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free), "torch.cuda.mem_get_info (free)"
    with contextlib.suppress(OSError, AttributeError):
        text = Path("/proc/meminfo").read_text()
        m = re.search(r"MemAvailable:\s+(\d+) kB", text)
        if m:
            avail = int(m.group(1)) * 1024
            limit, usage = _cgroup_limit()
            if limit is not None and usage is not None:
                return min(avail, max(0, limit - usage)), "cgroup memory.max - memory.current"
            return avail, "/proc/meminfo MemAvailable"
    import os

    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "sysconf(SC_AVPHYS_PAGES)"


def _cgroup_limit() -> tuple[int | None, int | None]:
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        usage = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit != "max":
            return int(limit), int(usage)
    return None, None


def _status_bytes(key: str) -> int | None:
    with contextlib.suppress(OSError):
        m = re.search(rf"{key}:\s+(\d+) kB", Path("/proc/self/status").read_text())
        if m:
            return int(m.group(1)) * 1024
    return None


def rss_bytes() -> int | None:
    """Current resident set size of this process (Linux), or None."""
    return _status_bytes("VmRSS")


class PeakMemory:
    """Peak memory of the code run inside ``with`` (see the module docstring for how)."""

    def __init__(self, device: str) -> None:
        self.device = torch.device(device)
        self.baseline = 0
        self.peak = 0
        self.source = ""

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
            self.source = "torch.cuda.max_memory_allocated (after reset_peak_memory_stats)"
            return self
        self._resettable = False
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            self._resettable = _status_bytes("VmHWM") is not None
        self.baseline = rss_bytes() or 0
        if self._resettable:
            self.source = "process RSS high-water mark (VmHWM, reset via /proc/self/clear_refs)"
        else:
            self._ru0 = _ru_maxrss()
            self.source = "getrusage ru_maxrss (not resettable: growth beyond the earlier peak)"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = int(torch.cuda.max_memory_allocated(self.device))
        elif self._resettable:
            self.peak = _status_bytes("VmHWM") or 0
        else:
            self.peak = max(self.baseline, self.baseline + _ru_maxrss() - self._ru0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "peak_memory_bytes": self.peak,
            "baseline_memory_bytes": self.baseline,
            "peak_above_baseline_bytes": max(0, self.peak - self.baseline),
            "memory_source": self.source,
        }


def _ru_maxrss() -> int:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb if sys.platform == "darwin" else kb * 1024


def human_bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"
