"""The passes of a measured run: uninstrumented timed passes, profiled passes, and the plan
that says how many of each run and which of them count.

A plain measured run takes a few passes of each. Validation hands in a stricter
:class:`PassPlan` (a minimum span of passes, the machine-state probe around every pass), so that
its noise policy lives in one object instead of in the fields of every measured run.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch.profiler import ProfilerActivity, profile

from genscope.capture import observer
from genscope.capture.attention_impl import MathAttention
from genscope.capture.context import Runner
from genscope.capture.profiling import (
    Attribution,
    MarkedRunner,
    Markers,
    ObservedPass,
    profiler_config,
)
from genscope.errors import UserError
from genscope.machine.state import ProbeLog
from genscope.machine.timing import synchronize
from genscope.workloads.base import Built, Settings, Workload


@dataclass(frozen=True)
class PassPlan:
    """How many passes a measured run takes, and which profiled passes count.

    ``repeats`` uninstrumented timed passes follow ``warmup`` plain ones; ``profiled_passes``
    are spread evenly among the timed ones (:func:`spread`), so both see the same spells of a
    shared machine. ``min_seconds`` adds timed passes until they span that long (estimated from
    the last warm-up pass). ``state_probe_s`` (an op model's reference probe time) times the
    machine-state probe (:mod:`genscope.machine.state`) around every pass.

    Which profiled passes count (:meth:`select`): with 4 or more and no state probe, the fastest
    half by process CPU time (a shared VM spends seconds at a time 1.5–2.5x slower); with a
    probe, all of them (validation divides each by its state factor instead).
    """

    repeats: int = 3
    warmup: int = 1
    profiled_passes: int = 1
    min_seconds: float = 0.0
    state_probe_s: float | None = None

    def __post_init__(self) -> None:
        ok = (
            self.repeats >= 1
            and self.warmup >= 0
            and self.profiled_passes >= 1
            and self.min_seconds >= 0
        )
        if not ok:
            raise UserError(
                "need --repeats >= 1, --warmup >= 0, --profiled-passes >= 1 and "
                f"--min-seconds >= 0, got {self.repeats}, {self.warmup}, "
                f"{self.profiled_passes} and {self.min_seconds}"
            )

    def timed_passes(self, pass_s: float) -> int:
        """Timed passes to run, given the duration of one warm-up pass."""
        return max(self.repeats, math.ceil(self.min_seconds / max(pass_s, 1e-6)))

    def probes(self) -> ProbeLog | None:
        """A probe log against the reference probe time, or None without a probe."""
        probed = self.state_probe_s is not None and math.isfinite(self.state_probe_s)
        return ProbeLog(self.state_probe_s) if probed else None

    def select(self, passes: list[Profiled]) -> tuple[list[Profiled], str]:
        """The profiled passes that count, and a phrase saying which they are."""
        n = len(passes)
        if n >= 4 and self.probes() is None:
            kept = sorted(passes, key=lambda p: p.cpu_s)[: n // 2]
            return kept, f"the fastest {len(kept)} of {n} profiled passes (process CPU time)"
        return list(passes), f"{n} profiled passes"


class Profiled(NamedTuple):
    """One profiled pass: its attributed ops, its timings and the machine state after it."""

    attribution: Attribution
    wall_s: float
    outer_s: float
    cpu_s: float
    after_timed: int  # its loop index: the timed pass just before it, if that many ran
    state: float  # state factor (nan without a state probe)


def spread(profiled: int, timed: int) -> set[int]:
    """After which timed passes (0-based) the ``profiled`` passes run: every pass from the
    first while there are at least as many profiled as timed passes, else spread evenly."""
    if profiled >= timed:
        return set(range(profiled))
    return {(k * timed) // profiled for k in range(profiled)}


def state_scale(cpu_samples: list[float], profiled_at: list[int]) -> float:
    """How much faster the machine ran in the fastest timed pass than around the profiled
    passes: the median, over the profiled passes used, of fastest timed CPU time / mean CPU
    time of the timed passes on either side (timed pass ``i`` precedes profiled pass ``i``).

    A shared VM runs seconds at a time 1.5–2.5x slower; for passes over a second validation
    holds the fastest timed pass against op times from profiled passes that may have run in
    the other state. Scaling those op times by this factor puts both in the fastest pass's
    state.
    """
    if not cpu_samples:
        return 1.0
    fastest = min(cpu_samples)
    ratios = []
    for i in profiled_at:
        near = [cpu_samples[j] for j in (i, i + 1) if j < len(cpu_samples)]
        if near:
            ratios.append(fastest / statistics.mean(near))
    return statistics.median(ratios) if ratios else 1.0


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While active, SIGTERM raises ``SystemExit(143)`` (so ``finally`` blocks run)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _generate(wl: Workload, built: Built, s: Settings, runner: Runner) -> Any:
    with torch.no_grad(), MathAttention() if s.attention == "math" else contextlib.nullcontext():
        return wl.generate(built, s, runner)


def plain_pass(wl: Workload, built: Built, s: Settings) -> tuple[float, float]:
    """One uninstrumented pass: (wall seconds, process CPU seconds), device synchronised."""
    synchronize(s.torch_device)
    t0, c0 = time.perf_counter(), time.process_time()
    _generate(wl, built, s, Runner(collapse_identical_steps=False))
    synchronize(s.torch_device)
    return time.perf_counter() - t0, time.process_time() - c0


def _activities(device: str) -> list[Any]:
    acts = [ProfilerActivity.CPU]
    if torch.device(device).type == "cuda":
        acts.append(ProfilerActivity.CUDA)
    return acts


def instrument(device: str) -> str:
    """Which op recorder a profiled pass on ``device`` uses: ``observer`` (genscope's
    dispatch-level op observer, CPU) or ``torch.profiler`` (CUDA, or no C++ compiler)."""
    if torch.device(device).type == "cpu" and observer.available():
        return "observer"
    return "torch.profiler"


def instrument_description(device: str) -> str:
    if instrument(device) == "observer":
        return (
            "genscope op observer (RecordFunction callback recording dispatch-level ops "
            "only) + Python module and phase/step spans"
        )
    why = observer.error()
    return "torch.profiler (overload names) + module and phase/step ranges" + (
        f"; op observer unavailable: {why}" if why and torch.device(device).type == "cpu" else ""
    )


def profiled_pass(
    wl: Workload, built: Built, s: Settings, only: set[tuple[str, str]] | None = None
) -> tuple[Any, Markers, float, float, float]:
    """One pass with every dispatch-level op recorded, and module and phase/step markers.

    On CPU the ops are recorded by genscope's op observer (:mod:`genscope.capture.observer`)
    when it is available, else (and on CUDA) by torch.profiler. ``only`` restricts module
    markers to those modules (see :func:`marked_modules`). Returns the finished recording
    (a torch.profiler profile or an :class:`ObservedPass`; :func:`events_from_profiler` reads
    either), the markers (to decode it), the wall of the pass itself, the wall including
    recorder start and stop, and the process CPU time of the pass.
    """
    use_observer = instrument(s.torch_device) == "observer"
    markers = Markers(python_spans=use_observer)
    for name, model in built.models.items():
        markers.name_modules(model, name)
    runner = MarkedRunner(markers)
    synchronize(s.torch_device)
    t_outer = time.perf_counter()
    if use_observer:
        recorder: Any = observer.Observer(s.torch_device)
    else:
        recorder = profile(
            activities=_activities(s.torch_device),
            record_shapes=False,
            profile_memory=False,
            with_stack=False,
            experimental_config=profiler_config(),
        )
    with recorder:
        synchronize(s.torch_device)
        t0, c0 = time.perf_counter(), time.process_time()
        with markers.active(only):
            _generate(wl, built, s, runner)
            synchronize(s.torch_device)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    outer = time.perf_counter() - t_outer
    if use_observer:
        return ObservedPass(recorder.recorded, markers.spans), markers, wall, outer, cpu
    return recorder, markers, wall, outer, cpu


def export_trace(prof: Any, path: str | Path) -> Path:
    """Chrome/Perfetto trace of the profiled pass, written atomically (tmp file, rename)."""
    return commit_trace(stage_trace(prof, path), path)


def stage_trace(prof: Any, path: str | Path) -> Path:
    """Write the trace of ``prof`` beside ``path`` under a hidden staging name; return it.

    A measured run stages its trace and commits it (:func:`commit_trace`) only after its run
    folder is committed, so an interrupted run leaves no trace file; :func:`discard_trace`
    removes the staged file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        prof.export_chrome_trace(str(tmp))
    except BaseException:
        discard_trace(tmp)
        raise
    return tmp


def commit_trace(staged: Path, path: str | Path) -> Path:
    """Rename a staged trace to ``path`` (atomic within one file system)."""
    try:
        os.replace(staged, path)
    finally:
        discard_trace(staged)
    return Path(path)


def discard_trace(staged: Path | None) -> None:
    """Remove a staged trace file, if any."""
    if staged is not None:
        with contextlib.suppress(OSError):
            staged.unlink()
