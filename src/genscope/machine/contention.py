"""How much of the machine *other* processes used while genscope measured.

On a shared 2-core box one busy neighbour halves a 2-thread GEMM; calibration and measured runs
record it (and warn) instead of silently publishing a contended number.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _system_busy_s() -> float | None:
    """Non-idle CPU seconds of the whole machine since boot (Linux ``/proc/stat``), incl. steal."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        idle = ticks[3] + ticks[4]  # idle + iowait
        return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")
    return None


#: Other processes using more than this share of all CPUs during a run make the numbers suspect.
CONTENTION_WARN = 0.1


class Contention:
    """How much of the machine *other* processes used while we measured.

    On a shared 2-core box one busy neighbour halves a 2-thread GEMM, so the spec records it
    (and warns) instead of silently publishing a contended number as this machine's ceiling.
    """

    def __init__(self) -> None:
        self.load_before = _loadavg()
        self.wall = time.perf_counter()
        self.own = time.process_time()
        self.busy = _system_busy_s()

    def finish(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.wall
        own = time.process_time() - self.own
        busy_now = _system_busy_s()
        ncpu = os.cpu_count()  # /proc/stat counts every CPU of the machine, not just ours
        other = None
        if self.busy is not None and busy_now is not None and ncpu:
            other = max(0.0, (busy_now - self.busy - own) / (wall * ncpu))
        out: dict[str, Any] = {
            "duration_s": wall,
            "loadavg_1m_before": self.load_before,
            "loadavg_1m_after": _loadavg(),
            "other_processes_cpu_fraction": other,
        }
        if other is not None and other > CONTENTION_WARN:
            out["warning"] = (
                f"other processes used {other:.0%} of the CPUs during calibration; "
                "the measured ceilings are likely low; re-run on an idle machine"
            )
        return out
