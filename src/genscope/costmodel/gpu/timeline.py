"""Host timeline: one CPU thread issues kernels that a GPU runs asynchronously, in order.

Per op the host spends ``host_s`` (Python/library glue, dispatcher, launches) and then issues
the op's kernels; the device runs them for ``kernel_s``. A kernel starts at the later of its
issue time and the end of the previous kernel. A *sync* op (``.item()`` and friends) makes the
host wait until the device is done before it issues anything else.

Rows with ``count > 1`` stand for repeats. Consecutive rows with the same ``count`` form a
*block* (e.g. one collapsed denoise step) that runs ``count`` times in a row. A block between
syncs is a max-plus map of the lag ``L`` (device-free time minus host time)::

    H_k = Σ_{j≤k} host_j,   P_k = Σ_{j<k} kernel_j,   M = max_k (H_k − P_k)
    L'  = max(L, M) + D − H        device idle inside the block = max(0, M − L)

so a block repeated thousands of times costs a scalar loop, and per-op times come from one
vectorized pass (``np.maximum.accumulate``). Per-op ``issue_s``/``start_s``/``end_s`` are those
of the op's first repetition; its ``idle_s`` (device idle just before it) covers all repeats.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Timeline:
    """Simulated times per op (first repetition) and the run's totals."""

    issue_s: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    idle_s: np.ndarray  # device idle just before this op, summed over its repeats
    wall_s: float  # end of the last kernel or of host work, whichever is later
    busy_s: float  # Σ kernel_s · count

    @property
    def idle_total_s(self) -> float:
        return self.wall_s - self.busy_s

    @property
    def host_bound_share(self) -> float:
        """Share of the wall time the device sits idle waiting for the host (Lee et al.)."""
        return self.idle_total_s / self.wall_s if self.wall_s > 0 else 0.0


def blocks(count: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges of runs of equal ``count``."""
    if len(count) == 0:
        return []
    cuts = np.flatnonzero(np.diff(count) != 0) + 1
    edges = [0, *cuts.tolist(), len(count)]
    return list(itertools.pairwise(edges))


def _segment(h: np.ndarray, d: np.ndarray, lag: float) -> tuple[np.ndarray, ...]:
    """Issue/start/end relative to the segment's host start, for an entering ``lag``."""
    H = np.cumsum(h)
    P = np.cumsum(d) - d
    reach = np.maximum.accumulate(np.maximum(H - P, lag))
    end = np.cumsum(d) + np.maximum(reach, lag)
    start = end - d
    prev_end = np.concatenate(([lag], end[:-1]))
    return H, start, end, np.maximum(start - prev_end, 0.0)


def simulate(
    host_s: np.ndarray,
    kernel_s: np.ndarray,
    count: np.ndarray,
    sync: np.ndarray | None = None,
) -> Timeline:
    """Run the host/device timeline over ops in table order (see the module docstring)."""
    host_s = np.asarray(host_s, dtype=float)
    kernel_s = np.asarray(kernel_s, dtype=float)
    count = np.asarray(count, dtype=np.int64)
    n = len(host_s)
    sync = np.zeros(n, dtype=bool) if sync is None else np.asarray(sync, dtype=bool)
    issue = np.zeros(n)
    start = np.zeros(n)
    end = np.zeros(n)
    idle = np.zeros(n)
    clock = 0.0  # host time
    lag = 0.0  # device-free time minus host time
    for b0, b1 in blocks(count):
        reps = int(count[b0])
        cuts = [b0, *(b0 + np.flatnonzero(sync[b0:b1])).tolist(), b1]
        segs = [(a, z) for a, z in itertools.pairwise(cuts) if z > a]
        summary = []
        for a, z in segs:
            h, d = host_s[a:z], kernel_s[a:z]
            H = np.cumsum(h)
            P = np.cumsum(d) - d
            summary.append((bool(sync[a]), float(np.max(H - P)), float(d.sum()), float(H[-1])))
        exact = [0.0] * len(segs)
        for rep in range(reps):
            last = rep == reps - 1
            for i, ((a, z), (is_sync, M, D, Htot)) in enumerate(zip(segs, summary, strict=True)):
                if is_sync and lag > 0:
                    clock += lag
                    lag = 0.0
                exact[i] += max(0.0, M - lag)
                if rep == 0 or last:
                    Hc, st, en, gap = _segment(host_s[a:z], kernel_s[a:z], lag)
                    if rep == 0:
                        issue[a:z], start[a:z], end[a:z] = clock + Hc, clock + st, clock + en
                        idle[a:z] += gap
                    if last and reps > 1:
                        idle[a:z] += gap * (reps - 1)
                lag = max(lag, M) + D - Htot
                clock += Htot
        for (a, z), total in zip(segs, exact, strict=True):
            approx = idle[a:z].sum()
            if approx > 0:
                idle[a:z] *= total / approx
    busy = float(np.sum(kernel_s * count))
    wall = clock + max(lag, 0.0)
    return Timeline(issue, start, end, idle, wall, busy)
