"""Apply levers cumulatively, in order, and measure every stage.

Stage 0 is the **baseline**: fp32, math attention, eager (and a dynamic KV cache for decoding).
Each following stage adds one lever to everything before it. Per stage:

* latency: median, min, max and spread of ``repeats`` device-synchronized timed calls after
  ``warmup`` untimed ones (:func:`genscope.machine.timing.summarize_samples`), taken
  **round-robin over all stages** so that load changes on a shared machine hit every stage alike;
* throughput (work items per second: image-steps, or generated tokens for decoding), and the
  speedup vs the baseline and vs the previous measured stage, both as throughput ratios — at
  an unchanged batch size they equal latency ratios; the batching lever changes the batch, so
  its speedup is a throughput speedup (named so in the row);
* the first call, timed on its own: for compiled stages it includes the compilation and is
  reported as ``compile_s`` (first call − steady-state median), never in the latency;
* memory: the stage's weight bytes, and the peak of its calls
  (:class:`~genscope.machine.memory.PeakMemory`: CUDA max allocated, or the process RSS
  high-water mark on CPU) — absolute (``peak_memory_bytes``, which includes the weights of the
  other stages kept alive for interleaving) and above the level at call start
  (``peak_delta_bytes``: activations, workspaces, KV cache);
* output deviation vs the baseline output with the same seed
  (:mod:`genscope.optimize.deviation`) and whether it is within the stated tolerance.

A lever that does not apply is **skipped** with its reason. A stage whose output breaks the
tolerance is **rejected**: it is timed and reported, but later stages are built without it (on
the previous stage's copy, or, if it was applied in place, on a fresh target with the accepted
levers replayed), so it never counts toward a speedup. A lever that raises is **failed**, the
same way.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from genscope.machine.memory import PeakMemory, available_bytes
from genscope.machine.timing import Timing, summarize_samples, synchronize
from genscope.optimize.base import Branch, Lever, LeverContext, LeverSkipped
from genscope.optimize.deviation import tolerance_text, within
from genscope.optimize.targets import Target

BASELINE = "baseline"


@dataclass
class Stage:
    index: int
    lever: str
    status: str  # baseline | measured | skipped | rejected | failed
    reason: str = ""
    family: str = ""
    layer: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    timing: Timing | None = None
    first_call_s: float | None = None
    compile_s: float | None = None
    throughput: float | None = None
    throughput_unit: str = ""
    work_items: int = 0
    speedup: float | None = None
    speedup_vs_prev: float | None = None
    speedup_kind: str = ""
    peak_memory_bytes: int | None = None
    peak_delta_bytes: int | None = None
    weight_bytes: int | None = None
    deviation: dict[str, Any] = field(default_factory=dict)
    within_tolerance: bool | None = None
    tolerance_broken: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    loadavg_1m: float | None = None
    branch: bool = False

    @property
    def counted(self) -> bool:
        return self.status in (BASELINE, "measured") and not self.branch

    def to_dict(self) -> dict[str, Any]:
        t = self.timing
        return {
            "stage": self.index,
            "lever": self.lever,
            "family": self.family,
            "layer": self.layer,
            "status": self.status,
            "reason": self.reason,
            "config": self.config,
            "latency_s": t.median if t else None,
            "latency_min_s": t.min if t else None,
            "latency_max_s": t.max if t else None,
            "latency_spread": t.spread if t else None,
            "repeats": t.repeats if t else 0,
            "warmup": t.warmup if t else 0,
            "first_call_s": self.first_call_s,
            "compile_s": self.compile_s,
            "throughput": self.throughput,
            "throughput_unit": self.throughput_unit,
            "work_items": self.work_items,
            "speedup": self.speedup,
            "speedup_vs_prev": self.speedup_vs_prev,
            "speedup_kind": self.speedup_kind,
            "peak_memory_bytes": self.peak_memory_bytes,
            "peak_delta_bytes": self.peak_delta_bytes,
            "weight_bytes": self.weight_bytes,
            "deviation": self.deviation,
            "within_tolerance": self.within_tolerance,
            "tolerance_broken": self.tolerance_broken,
            "counted": self.counted,
            "branch": self.branch,
            "stats": self.stats,
            "loadavg_1m": self.loadavg_1m,
        }


@dataclass
class StackResult:
    workload: str
    kind: str
    output_kind: str
    device: str
    baseline: str
    tolerance: str
    stages: list[Stage]
    timing_groups: int = 1

    @property
    def measured(self) -> list[Stage]:
        return [s for s in self.stages if s.counted]

    @property
    def final(self) -> Stage:
        return self.measured[-1]

    def speedup(self) -> float:
        """End-to-end speedup of the last counted stage (throughput ratio vs the baseline)."""
        return float(self.final.speedup or 1.0)

    def matched_batch_speedup(self) -> float:
        """The same, over stages at the baseline's batch (a latency ratio)."""
        base_batch = self.stages[0].config.get("batch")
        same = [s for s in self.measured if s.config.get("batch") == base_batch]
        return float(same[-1].speedup or 1.0) if same else 1.0

    def to_dict(self) -> dict[str, Any]:
        final = self.final
        return {
            "workload": self.workload,
            "kind": self.kind,
            "device": self.device,
            "mode": f"measured ({self.device})",
            "baseline": self.baseline,
            "tolerance": self.tolerance,
            "timing_groups": self.timing_groups,
            "speedup": self.speedup(),
            "speedup_matched_batch": self.matched_batch_speedup(),
            "final_stage": final.lever,
            "deviation": final.deviation,
            "levers_counted": [s.lever for s in self.measured[1:]],
            "levers_skipped": {s.lever: s.reason for s in self.stages if s.status == "skipped"},
            "levers_rejected": {
                s.lever: s.reason for s in self.stages if s.status in ("rejected", "failed")
            },
            "stages": [s.to_dict() for s in self.stages],
        }


@dataclass
class _Live:
    """A prepared stage waiting for its timed rounds."""

    stage: Stage
    target: Target
    run: Callable[..., Any]
    samples: list[float] = field(default_factory=list)
    peak_delta: int = 0
    peak_rss: int = 0


def _call(live: _Live) -> tuple[float, Any]:
    """One synchronized, timed call under the peak-memory meter."""
    dev = live.target.device
    with PeakMemory(dev) as mem:
        synchronize(dev)
        t0 = time.perf_counter()
        out = live.run()
        synchronize(dev)
        elapsed = time.perf_counter() - t0
    live.peak_delta = max(live.peak_delta, mem.peak - mem.baseline)
    live.peak_rss = max(live.peak_rss, mem.peak)
    return elapsed, out


def _first(target: Target, stage: Stage, base: tuple[Any, Any] | None) -> tuple[_Live, Any, Any]:
    """Prepare the stage and make its first call (compilation happens here); return the live
    stage, its output and (decoding) its teacher-forced logits on the baseline's tokens."""
    run = target.prepare()
    live = _Live(stage, target, run)
    stage.first_call_s, out = _call(live)
    forced = None
    if target.output_kind == "tokens":
        tokens = (base[0] if base is not None else out).tokens[0]
        forced = target.forced_logits(run, tokens)  # type: ignore[attr-defined]
    items, unit = target.work_items()
    stage.work_items, stage.throughput_unit = items, f"{unit}/s"
    stage.config = target.describe()
    stage.stats = target.stats(out)
    stage.weight_bytes = target.weight_bytes()
    return live, out, forced


def _rounds(group: list[_Live], warmup: int, repeats: int) -> None:
    """Time every live stage round-robin: ``warmup - 1`` untimed rounds (each stage's first
    call was the first warm-up), then ``repeats`` timed ones, in alternating order. Interleaving
    gives every stage the same exposure to load changes on a shared machine, so the ratios
    between stages stay fair even when absolute times drift."""
    for r in range(max(0, warmup - 1) + repeats):
        for live in group if r % 2 == 0 else reversed(group):
            elapsed, _ = _call(live)
            if r >= max(0, warmup - 1):
                live.samples.append(elapsed)
    for live in group:
        st = live.stage
        st.timing = summarize_samples(live.samples, warmup)
        st.throughput = st.work_items / st.timing.median
        st.compile_s = (
            max(0.0, (st.first_call_s or 0.0) - st.timing.median) if live.target.compile else None
        )
        st.peak_memory_bytes, st.peak_delta_bytes = live.peak_rss, live.peak_delta
        st.loadavg_1m = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    group.clear()  # drop the runners (and the modules only they still hold)


def _room_for_copy(target: Target) -> bool:

    have, _ = available_bytes(target.device)
    return have > 2.5 * target.weight_bytes()


def run_stack(
    factory: Callable[[], Target],
    levers: list[Lever | Branch],
    ctx: LeverContext,
    *,
    warmup: int = 1,
    repeats: int = 3,
    interleave: bool = True,
    on_stage: Callable[[Stage], None] | None = None,
) -> StackResult:
    """Baseline, then each lever on top of the previous stages (see the module docstring).

    Every stage is prepared and called once as it is built (compile time, output, deviation);
    the timed calls then run round-robin over all stages (``interleave``). A lever that
    rewrites modules is applied to a copy so earlier stages keep running as they were; when
    memory is short for a copy, the stages so far are timed first and released.
    """
    target = factory()
    workload = target.workload
    notify = on_stage or (lambda s: None)
    group: list[_Live] = []
    groups = 1

    base = Stage(0, BASELINE, BASELINE, reason="fp32, math attention, eager (no levers)")
    live, base_out, base_logits = _first(target, base, None)
    base.deviation = target.deviation(base_out, base_out, base_logits, base_logits)
    base.within_tolerance = True
    group.append(live)
    stages = [base]
    notify(base)
    accepted: list[Lever] = []

    for i, item in enumerate(levers, start=1):
        branch = isinstance(item, Branch)
        lever = item.lever if isinstance(item, Branch) else item
        stage = Stage(i, lever.name, "skipped", family=lever.family, layer=lever.layer)
        stage.branch = branch
        ok, why = lever.applies_to(workload, ctx.device)
        if not ok:
            stage.reason = why
            stages.append(stage)
            notify(stage)
            continue
        in_place = lever.mutates(target) and not (interleave and _room_for_copy(target))
        if in_place and group:
            _rounds(group, warmup, repeats)  # time the stages so far before mutating in place
            groups += 1
        candidate = target.fork(copy_modules=lever.mutates(target) and not in_place)
        try:
            candidate = lever.apply(candidate, ctx)
            candidate.applied.append(lever.name)
            live, out, forced = _first(candidate, stage, (base_out, base_logits))
        except Exception as err:  # a lever that crashes must not sink the whole stack
            if isinstance(err, LeverSkipped):
                stage.reason = str(err)
            else:
                stage.status, stage.reason = "failed", f"{type(err).__name__}: {err}"
                stage.stats = {"traceback": traceback.format_exc(limit=6)}
            stages.append(stage)
            notify(stage)
            if in_place:  # the target's modules may be half rewritten
                target = _replay(factory, accepted, ctx)
            continue
        stage.deviation = candidate.deviation(base_out, out, base_logits, forced)
        stage.within_tolerance, stage.tolerance_broken = within(
            candidate.output_kind, stage.deviation
        )
        group.append(live)
        if stage.within_tolerance and branch:
            stage.status = "measured"
            stage.reason = f"branch (not carried forward): {lever.summary}"
            if in_place:
                target = _replay(factory, accepted, ctx)
        elif stage.within_tolerance:
            stage.status, stage.reason = "measured", lever.summary
            accepted.append(lever)
            target = candidate
        else:
            stage.status = "rejected"
            stage.reason = (
                f"output outside tolerance ({', '.join(stage.tolerance_broken)}): timed but not "
                "counted; later stages are built without it"
            )
            if in_place:
                target = _replay(factory, accepted, ctx)
        stages.append(stage)
        notify(stage)
    _rounds(group, warmup, repeats)
    _speedups(stages)

    kind_base = "eager, dynamic KV cache, " if target.kind == "decode" else ""
    return StackResult(
        workload=workload.name,
        kind=target.kind,
        output_kind=target.output_kind,
        device=ctx.device,
        baseline=f"fp32, math attention (bmm-softmax-bmm), {kind_base}no compile; "
        f"{base.config.get('unit', '')}",
        tolerance=tolerance_text(target.output_kind),
        stages=stages,
        timing_groups=groups,
    )


def _speedups(stages: list[Stage]) -> None:
    """Throughput ratios vs the baseline and vs the previous counted stage."""
    base = stages[0]
    prev = base
    base.speedup, base.speedup_vs_prev, base.speedup_kind = 1.0, 1.0, "baseline"
    for st in stages[1:]:
        if st.throughput is None or not base.throughput or not prev.throughput:
            continue
        st.speedup = st.throughput / base.throughput
        st.speedup_vs_prev = st.throughput / prev.throughput
        same_batch = st.config.get("batch") == base.config.get("batch")
        st.speedup_kind = "latency (same batch)" if same_batch else "throughput (larger batch)"
        if st.counted:
            prev = st


def _replay(factory: Callable[[], Target], accepted: list[Lever], ctx: LeverContext) -> Target:
    """A fresh baseline with the accepted levers re-applied (after a rejected/failed lever)."""
    target = factory()
    for lever in accepted:
        target = lever.apply(target, ctx)
        target.applied.append(lever.name)
    return target
