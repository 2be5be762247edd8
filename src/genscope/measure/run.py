"""Measured mode: run the real pipeline on the local device and time every op of it.

``genscope trace W --mode measured`` (and :func:`measure_workload`) produces the *same* op-event
rows as the analytic capture, with ``measured_s`` filled in, plus wall time, memory, and
idle/overhead figures. One measured run is, in order:

1. **Memory guard.** The workload runs once on ``meta`` under a live-bytes counter
   (:func:`genscope.measure.guard.predict_peak`); if weights + peak activations exceed the
   memory available on the device, the run is refused (``--force`` overrides) before anything
   is built or written.
2. **Build** the components with real (random, seeded) weights on the device.
3. **Analytic capture pass** on the real tensors, not collapsing identical steps: the op-event
   rows (shapes, FLOPs, bytes, categories, attention labels, roofline ``predicted_s``). This
   pass also serves as the first warm-up.
4. ``--warmup N`` more plain passes, then ``--repeats N`` **uninstrumented timed passes**
   (device synchronised around each): the end-to-end ``wall_s`` median/min/max/spread, and the
   **peak memory** (the highest of those passes).
   The :class:`~genscope.measure.passes.PassPlan` may ask for more timed passes, until they
   span ``min_seconds``, and for a machine-state probe (:mod:`genscope.machine.state`) around
   every pass, whose state factors go into ``machine_state`` in the summary.
5. **Profiled pass(es)**, spread evenly among the timed passes (with as many as there are
   timed passes: timed 1, profiled 1, timed 2, …), so that both see the same spells of a
   shared machine: every dispatch-level op recorded —
   on CPU by genscope's op observer (:mod:`genscope.capture.observer`, a ``RecordFunction``
   callback that records only the ops the analytic capture sees), on CUDA (or without a C++
   compiler) by ``torch.profiler`` — with cheap module-boundary and phase/step markers
   (:mod:`genscope.capture.profiling`). Every dispatch-level op of the pass is attributed to
   its module path, component, phase, step and category; its time (CPU: the op's inclusive
   host time; CUDA: the summed kernel time it launched) becomes ``measured_s`` of the matching
   analytic row (with several profiled passes, the op's median over them; from 4 passes on,
   over the fastest half). ``--trace-out`` is written from the first profiled pass once all
   passes have run.
6. **Join.** Profiled ops are matched to analytic rows in order within each (phase, step),
   on (component, module path, op); ops only one side saw are kept and counted
   (``attribution`` in the summary).

Which numbers come from where: ``wall_s`` and ``peak_memory_bytes`` from the uninstrumented
passes; ``measured_s``, ``by_category``/``by_component``/``by_phase``/``by_step`` measured
figures, ``overhead`` and ``idle`` from the profiled pass (so they include the recorder's own
small per-op cost: ``instrumentation_ratio`` = profiled wall / uninstrumented median says how
much; ``instrument`` names the recorder used). All measured numbers are labelled
``measured (<device>)``.

A SIGTERM during a measured run raises ``SystemExit(143)`` so ``finally`` blocks run (the
profiler stops, the run folder's staging directory is removed): an interrupted run never leaves
a run folder that looks complete, nor a half-written ``--trace-out`` file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from genscope.analyses.overhead import measured_summary, share, timeline_figures
from genscope.api import (
    DEFAULT_HARDWARE,
    TraceResult,
    assemble_run,
    check_dtype_supported,
    run_meta,
    trace_built,
)
from genscope.capture.profiling import attribute, events_from_profiler, median_over_passes
from genscope.costmodel.hardware import HardwareSpec, get_hardware, local_spec_path
from genscope.errors import UserError, choices_error
from genscope.machine.contention import Contention
from genscope.machine.memory import PeakMemory
from genscope.machine.threads import torch_threads
from genscope.machine.timing import summarize_samples
from genscope.measure.guard import memory_guard
from genscope.measure.join import join, marked_modules
from genscope.measure.passes import (
    PassPlan,
    Profiled,
    commit_trace,
    discard_trace,
    instrument,
    instrument_description,
    plain_pass,
    profiled_pass,
    sigterm_raises,
    spread,
    stage_trace,
    state_scale,
)
from genscope.store import check_store, new_run_id
from genscope.workloads.base import Built, Settings, Workload
from genscope.workloads.registry import get_workload

DEVICES: tuple[str, ...] = ("cpu", "cuda")
ProgressFn = Callable[[str], None]


def measured_label(device: str) -> str:
    return f"measured ({torch.device(device).type})"


def resolve_hardware(hardware: str | HardwareSpec | None, device: str) -> HardwareSpec:
    """The spec ``predicted_s`` uses: as given, else ``<device>-local`` when calibrated."""
    if isinstance(hardware, HardwareSpec):
        return hardware
    if hardware:
        return get_hardware(hardware)
    local = f"{torch.device(device).type}-local"
    if local_spec_path(local).is_file():
        return get_hardware(local)
    return get_hardware(DEFAULT_HARDWARE)


def check_device(device: str) -> None:
    kind = device.split(":")[0]
    if kind not in DEVICES:
        raise choices_error("device", device, DEVICES)
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available (torch {torch.__version__})")


def measure_workload(
    workload: str | Workload,
    settings: Settings | None = None,
    *,
    device: str = "cpu",
    plan: PassPlan | None = None,
    hardware: str | HardwareSpec | None = None,
    trace_out: str | Path | None = None,
    force: bool = False,
    threads: int | None = None,
    save: bool = True,
    progress: ProgressFn | None = None,
) -> TraceResult:
    """Measured run of a suite workload on ``device``; returns a :class:`TraceResult`.

    ``plan`` says how many warm-up, timed and profiled passes run and which count
    (:class:`PassPlan`; default: 1 warm-up, 3 timed, 1 profiled). With several profiled passes
    each op's ``measured_s`` is its median over the passes that count; the timeline figures
    come from the pass with the median wall time among them. ``threads`` sets torch's intra-op
    threads for the run (default: leave it). See the module docstring for the passes and which
    figure comes from which.
    """
    plan = plan or PassPlan()
    say = progress or (lambda msg: None)
    wl = get_workload(workload) if isinstance(workload, str) else workload  # read first
    check_device(device)
    s = wl.resolve(replace(settings or Settings(), device=device))
    hw = resolve_hardware(hardware, device)
    check_dtype_supported(hw, s.dtype)
    if save:
        check_store(write=True)

    staged: list[Path] = []  # --trace-out, staged by the passes, renamed after the run is written
    with sigterm_raises(), torch_threads(threads) as n_threads, _discard_on_error(staged):
        say("predicting peak memory (meta pass)")
        memory = memory_guard(wl, s, device, force)
        say(f"building {wl.name} ({s.size}) on {device}")
        built = wl.build(s)
        say("analytic capture pass (also warm-up 1)")
        started = time.perf_counter()
        analytic = trace_built(wl, built, s, hw, save=False, collapse=False)
        analytic_s = time.perf_counter() - started
        passes = _run_passes(
            wl, built, s, plan, analytic.events, analytic_s, trace_out, say, staged
        )
        cuda = torch.device(device).type == "cuda"
        counted, basis = plan.select(passes.profiled)
        counted.sort(key=lambda p: p.wall_s)
        chosen = counted[len(counted) // 2]
        robust = len(counted) > 1 and median_over_passes(
            [chosen.attribution.ops] + [p.attribution.ops for p in counted if p is not chosen],
            device_time=cuda,
        )
        events, stats = join(
            analytic.events, chosen.attribution.ops, device_time=cuda, marked=passes.marked
        )
        stats["profiled_passes"] = len(passes.profiled)
        stats["op_time"] = f"median over {basis}, op by op" if robust else "one profiled pass"
        label = measured_label(device)

        def add_measured(events: pd.DataFrame, summary: dict[str, Any]) -> None:
            _add_measured_figures(events, summary, device, chosen)
            wall = summarize_samples(passes.wall_s, plan.warmup)
            cpu = summarize_samples(passes.cpu_s, plan.warmup)
            peak = max(passes.peaks, key=lambda p: p.peak)
            summary.update(
                {
                    "measured_label": label,
                    "device": device,
                    "wall_s": wall.to_dict() | {"source": "uninstrumented passes after warm-up"},
                    "cpu_s": cpu.to_dict()
                    | {
                        "source": "process CPU time of the same uninstrumented passes (with one "
                        "intra-op thread: the wall time the run would take on an idle machine)"
                    },
                    "profiled_wall_s": chosen.wall_s,
                    "profiled_cpu_s": chosen.cpu_s,
                    "profiled_state_scale": state_scale(
                        passes.cpu_s, [p.after_timed for p in counted]
                    ),
                    "profiled_wall_with_profiler_start_stop_s": chosen.outer_s,
                    "instrumentation_ratio": share(chosen.wall_s, wall.median),
                    "instrument": instrument_description(device),
                    "threads": n_threads,
                    "component_libraries": built.libraries(),
                    "contention": passes.contention,
                    "machine_state": {
                        "probe_reference_s": passes.probe_reference_s,
                        "timed": passes.timed_states,
                        "profiled": [p.state for p in counted],
                        "source": "genscope.machine.state: mean of the probes around each "
                        "pass / the op model's reference probe time (none without one)",
                    },
                    **peak.to_dict(),
                    "predicted_memory": memory,
                    "attribution": stats,
                    "provenance": {
                        "wall_s": f"{label}: {len(passes.wall_s)} uninstrumented passes after "
                        f"{plan.warmup} warm-up pass(es) and the analytic capture pass",
                        "peak_memory_bytes": f"{label}: over the uninstrumented passes; "
                        + peak.source,
                        "measured_s": f"{label}: {instrument(device)}, "
                        + ("kernel time" if cuda else "host time of each dispatch-level op")
                        + f", per op ({stats['op_time']})",
                        "predicted_s": f"analytic roofline on {hw.name}",
                    },
                }
            )

        meta = run_meta(
            new_run_id(wl.name),
            wl.name,
            s.to_dict(),
            hw,
            built.params(),
            {
                "collapsed_steps": {},
                "capture_s": analytic_s,
                "sources": wl.sources(s.variant),
                "task": wl.task,
                "family": wl.family,
                "device": device,
                "measured_label": label,
                "repeats": len(passes.wall_s),
                "min_seconds": plan.min_seconds,
                "warmup": plan.warmup,
                "threads": n_threads,
                "trace_out": str(trace_out) if trace_out else None,
            },
            mode="measured",
        )
        say("writing run")
        result = assemble_run(
            meta, events, hw, save=save, enrich=add_measured, libraries=built.libraries()
        )
        if trace_out is not None and staged:
            say(f"writing Chrome trace {trace_out}")
            commit_trace(staged.pop(), trace_out)
        return result


@contextmanager
def _discard_on_error(staged: list[Path]) -> Iterator[None]:
    """Remove staged trace files if the run fails or is interrupted (no run, no trace file)."""
    try:
        yield
    except BaseException:
        for path in staged:
            discard_trace(path)
        raise


@dataclass
class _Passes:
    """What the passes of one measured run gave."""

    marked: set[tuple[str, str, str]]
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    peaks: list[PeakMemory] = field(default_factory=list)
    timed_states: list[float] = field(default_factory=list)
    profiled: list[Profiled] = field(default_factory=list)
    contention: dict[str, Any] = field(default_factory=dict)
    probe_reference_s: float | None = None


def _run_passes(
    wl: Workload,
    built: Built,
    s: Settings,
    plan: PassPlan,
    analytic: pd.DataFrame,
    analytic_s: float,
    trace_out: str | Path | None,
    say: ProgressFn,
    staged: list[Path],
) -> _Passes:
    """Warm-up, then timed and profiled passes alternating (:class:`PassPlan`).

    Timed and profiled passes alternate so that both see the same spells of a shared machine.
    ``trace_out`` is staged under a hidden name (appended to ``staged``) once every pass has run;
    :func:`measure_workload` renames it only after the run folder is committed, so an
    interrupted run leaves no trace file.
    """
    device = s.torch_device
    pass_s = analytic_s
    for i in range(plan.warmup):
        say(f"warm-up pass {i + 1}/{plan.warmup}")
        pass_s = plain_pass(wl, built, s)[0]
    repeats = plan.timed_passes(pass_s)
    profile_after = spread(plan.profiled_passes, repeats)
    out = _Passes(marked=marked_modules(analytic))
    contention = Contention()
    probes = plan.probes()

    def state_after_pass() -> float:
        return probes.factor(probes.after()) if probes is not None else math.nan

    first_recording = None
    for i in range(max(repeats, plan.profiled_passes)):
        if i < repeats:
            say(f"timed repeat {i + 1}/{repeats}")
            with PeakMemory(device) as pass_peak:
                w_s, c_s = plain_pass(wl, built, s)
            out.peaks.append(pass_peak)
            out.wall_s.append(w_s)
            out.cpu_s.append(c_s)
            out.timed_states.append(state_after_pass())
        if i not in profile_after:
            continue
        say(f"profiled pass {len(out.profiled) + 1}/{plan.profiled_passes}")
        prof, markers, p_wall, p_outer, p_cpu = profiled_pass(wl, built, s, out.marked)
        state = state_after_pass()
        if not out.profiled and trace_out is not None:
            first_recording = prof
        say("attributing profiled ops")
        att = attribute(events_from_profiler(prof), markers, device)
        out.profiled.append(Profiled(att, p_wall, p_outer, p_cpu, i, state))
        del prof
    if trace_out is not None:
        say(f"staging Chrome trace {trace_out}")
        staged.append(stage_trace(first_recording, trace_out))
    out.contention = contention.finish()
    if "warning" in out.contention:
        out.contention["warning"] = (
            f"other processes used {out.contention['other_processes_cpu_fraction']:.0%} of the "
            "CPUs during the measured passes; wall times are inflated (CPU times less so)"
        )
    out.probe_reference_s = probes.reference() if probes is not None else None
    return out


def _add_measured_figures(
    events: pd.DataFrame, summary: dict[str, Any], device: str, chosen: Profiled
) -> None:
    """Measured totals beside the analytic ones, and the chosen pass's timeline figures."""
    figures = timeline_figures(chosen.attribution, device)
    msum = measured_summary(events)
    for cat, block in summary["by_category"].items():
        block.update(msum["by_category"].get(cat, {"measured_s": 0.0, "measured_share": 0.0}))
    for comp, block in summary["by_component"].items():
        block["measured_s"] = msum["by_component"].get(comp, 0.0)
        wc = figures["wall_by_component"].get(comp or "(none)")
        if wc:
            block["wall_s"] = wc["wall_s"]
    summary["measured_s"] = msum["measured_s"]
    for key in ("by_phase", "by_step", "overhead", "idle"):
        summary[key] = figures[key]
