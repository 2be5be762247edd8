"""Memory of this machine: what a run may still use, and the peak a block of code reached.

**Available** (:func:`available_bytes`): free CUDA memory, or ``MemAvailable`` capped by the
cgroup limit. **Peak** (:class:`PeakMemory`): on CUDA ``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats``; on CPU the process's resident-set high-water mark ``VmHWM``, reset
through ``/proc/self/clear_refs`` (Linux; falls back to the ``getrusage`` high-water mark, which
cannot be reset and so only counts growth beyond the earlier peak).
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import sys
from pathlib import Path
from typing import Any

import torch


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
