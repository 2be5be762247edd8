"""Wall-clock timing done right: warm-up, device synchronisation, median and spread.

Used by measured runs, calibration, levers and benchmarks alike, so every measured number in
genscope is taken the same way.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch


def synchronize(device: str | torch.device) -> None:
    """Wait for queued device work (CUDA is asynchronous; CPU ops are not)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


@dataclass(frozen=True)
class Timing:
    """Repeated measurements of one thing, in seconds."""

    median: float
    min: float
    max: float
    iqr: float
    repeats: int
    warmup: int
    samples: tuple[float, ...]

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the repeats were."""
        return (self.max - self.min) / self.median if self.median else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"spread": self.spread}


def summarize_samples(samples: list[float], warmup: int) -> Timing:
    qs = statistics.quantiles(samples, n=4) if len(samples) >= 2 else [samples[0]] * 3
    return Timing(
        median=statistics.median(samples),
        min=min(samples),
        max=max(samples),
        iqr=qs[2] - qs[0],
        repeats=len(samples),
        warmup=warmup,
        samples=tuple(samples),
    )


def timed(
    fn: Callable[[], Any],
    device: str | torch.device = "cpu",
    *,
    warmup: int = 1,
    repeats: int = 5,
) -> tuple[Timing, Any]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; return the last output."""
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0")
    out = None
    for _ in range(warmup):
        out = fn()
    synchronize(device)
    samples = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        out = fn()
        synchronize(device)
        samples.append(time.perf_counter() - t0)
    return summarize_samples(samples, warmup), out


def time_calls(
    fn: Callable[[], object],
    sync: Callable[[], None],
    *,
    warmup: int,
    repeats: int,
    min_repeat_s: float,
) -> tuple[list[float], int]:
    """Seconds per call for each repeat, and the calls per repeat.

    After ``warmup`` calls, one more timed call sizes the loop so a repeat lasts about
    ``min_repeat_s``; the device is synchronised around every timed region.
    """
    for _ in range(warmup):
        fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    single = max(time.perf_counter() - t0, 1e-9)
    calls = max(1, math.ceil(min_repeat_s / single))
    per_call: list[float] = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        per_call.append((time.perf_counter() - t0) / calls)
    return per_call, calls
