"""The tracing API: workload (or your own model) → op-event table → summary → run store.

``trace_workload("sd15", Settings(...))`` runs a suite workload; :func:`trace` runs any
``nn.Module`` or diffusers pipeline the user hands in. Both return a :class:`TraceResult`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from genscope.analyses.summary import summarize, time_model_summary
from genscope.capture.analytic import AnalyticCapture
from genscope.capture.attention_impl import ATTENTION_CHOICES
from genscope.capture.context import INFER, AxisRules, Runner, Where
from genscope.capture.labels import Lineage, ShapeHints, axis_patterns, check_axis
from genscope.costmodel.hardware import HardwareSpec, get_hardware
from genscope.costmodel.pricing import price
from genscope.errors import UserError, choices_error
from genscope.machine.environment import environment
from genscope.store import check_store, new_run_id, write_run
from genscope.workloads.base import Built, Settings, Workload
from genscope.workloads.components import count_params, model_library
from genscope.workloads.registry import get_workload

DEFAULT_HARDWARE = "a100-80g-sxm"
#: component of a traced pipeline's ops that run outside every module (the scheduler)
PIPELINE_COMPONENT = "pipeline"
#: pipeline components whose calls are the denoising steps, first present wins
DENOISERS = ("unet", "transformer", "prior", "decoder")


@dataclass
class TraceResult:
    """One characterized run: metadata, the op-event table and its summary."""

    run_id: str
    meta: dict[str, Any]
    events: pd.DataFrame
    summary: dict[str, Any]
    path: str | None = None
    output: Any = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The ``genscope trace --json`` object."""
        s = self.meta["settings"]
        return {
            "run_id": self.run_id,
            "workload": self.meta["workload"],
            "size": s.get("size"),
            "mode": self.meta["mode"],
            "hardware": self.meta["hardware"],
            "dtype": s.get("dtype"),
            "settings": s,
            "params": self.meta["params"],
            "collapsed_steps": self.meta.get("collapsed_steps", {}),
            **self.summary,
            # One key serves both: the implementation used and the self/cross/axis split.
            "attention": {"impl": s.get("attention"), **self.summary["attention"]},
            "path": self.path,
        }


def check_dtype_supported(hw: HardwareSpec, dtype: str) -> None:
    """A dtype the target cannot run (no peak for it in the spec) is bad input."""
    if dtype not in hw.matrix_peak:
        raise UserError(
            f"hardware {hw.name} cannot run --dtype {dtype}; "
            f"it has peaks for: {', '.join(sorted(hw.matrix_peak))}"
        )


def run_meta(
    run_id: str,
    workload: str,
    settings: dict[str, Any],
    hw: HardwareSpec,
    params: dict[str, int],
    extra: dict[str, Any],
    mode: str = "analytic",
) -> dict[str, Any]:
    """run.json of one run: what ran, on which spec, when, in which environment."""
    return {
        "run_id": run_id,
        "workload": workload,
        "mode": mode,
        "hardware": hw.name,
        "hardware_spec": hw.to_dict(),
        "settings": settings,
        "params": params,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "environment": environment(),
        "sweep": None,
        **extra,
    }


def assemble_run(
    meta: dict[str, Any],
    events: pd.DataFrame,
    hw: HardwareSpec,
    *,
    save: bool,
    output: Any = None,
    enrich: Callable[[pd.DataFrame, dict[str, Any]], None] | None = None,
    libraries: dict[str, str] | None = None,
) -> TraceResult:
    """The one run assembler of both capture paths: price → summarize → (enrich) → write.

    ``events`` is a capture's op-event table, priced on ``hw`` (:func:`price`: the GPU time
    model on a GPU spec, with ``libraries`` naming each component's model library, else the
    roofline); ``enrich`` adds to the summary in place (the measured figures of a measured
    run) before the run is written.
    """
    events["run_id"] = meta["run_id"]
    events, prediction = price(events, hw, libraries=libraries)
    summary = summarize(events)
    summary.update(time_model_summary(summary, prediction))
    if enrich is not None:
        enrich(events, summary)
    path = str(write_run(meta["run_id"], meta, events, summary)) if save else None
    return TraceResult(meta["run_id"], meta, events, summary, path, output)


def trace_workload(
    workload: str | Workload,
    settings: Settings | None = None,
    *,
    hardware: str | HardwareSpec = DEFAULT_HARDWARE,
    save: bool = True,
    collapse_identical_steps: bool = True,
    extra_meta: dict[str, Any] | None = None,
) -> TraceResult:
    """Analytic trace of a suite workload; full size runs on ``meta``, tiny on real tensors.

    ``extra_meta`` is merged into run.json (a sweep tags its runs with ``sweep``/``point_id``).
    Arguments and the store are checked before any work.
    """
    wl = get_workload(workload) if isinstance(workload, str) else workload
    hw = get_hardware(hardware) if isinstance(hardware, str) else hardware
    s = wl.resolve(settings or Settings())
    check_dtype_supported(hw, s.dtype)
    if save:
        check_store(write=True)
    return trace_built(
        wl, wl.build(s), s, hw, save=save, collapse=collapse_identical_steps, extra_meta=extra_meta
    )


def trace_built(
    wl: Workload,
    built: Built,
    s: Settings,
    hw: HardwareSpec,
    *,
    save: bool,
    collapse: bool,
    extra_meta: dict[str, Any] | None = None,
) -> TraceResult:
    """Trace already-built components (so benchmarks can time capture without construction)."""
    collapse_identical_steps = collapse
    runner = Runner(collapse_identical_steps)
    capture = AnalyticCapture(runner, wl.axis_rules(), attention=s.attention)
    for name, model in built.models.items():
        capture.name_component(name, model)
    started = time.perf_counter()
    with torch.no_grad(), capture:
        output = wl.generate(built, s, runner)
    run_id = new_run_id(wl.name)
    meta = run_meta(
        run_id,
        wl.name,
        s.to_dict(),
        hw,
        built.params(),
        {
            "collapsed_steps": runner.collapsed,
            "capture_s": time.perf_counter() - started,
            "sources": wl.sources(s.variant),
            "task": wl.task,
            "family": wl.family,
            "libraries": built.libraries(),
            **(extra_meta or {}),
        },
    )
    return assemble_run(
        meta, capture.table(), hw, save=save, output=output, libraries=built.libraries()
    )


def trace(
    target: nn.Module | Any,
    inputs: Any = None,
    *,
    call: Callable[[], Any] | None = None,
    name: str | None = None,
    hardware: str | HardwareSpec = DEFAULT_HARDWARE,
    attention: str = "flash",
    attn_axis: str | Mapping[str, str] | None = None,
    save: bool = False,
) -> TraceResult:
    """Trace your own model or diffusers pipeline and get the same result as a suite run.

    ``target`` is an ``nn.Module`` (called as ``target(*inputs)`` / ``target(**inputs)``) or a
    diffusers pipeline (called as ``target(**inputs)``; its modules are named by component).
    Pass ``call`` to run something else while capturing (e.g. a custom loop).

    Attention labels: ``attn_axis=None`` infers each call's axis from its shapes (``unknown``
    when they allow no single reading); a string sets one axis for the whole model; a mapping
    ``{"module.path.glob": axis}`` sets it per module (first match wins, the rest inferred).
    Axes: spatial, temporal, joint, text, unknown. Self vs cross comes from the tensors (see
    :mod:`genscope.capture.labels`). In a pipeline, ops outside every component (the scheduler)
    are component ``pipeline``, and each call of the denoiser (``unet``/``transformer``) starts
    a numbered ``denoise`` step.
    """
    if attention not in ATTENTION_CHOICES:
        raise choices_error("attention", attention, ATTENTION_CHOICES)
    hw = get_hardware(hardware) if isinstance(hardware, str) else hardware
    default_axis, rules = INFER, []
    if isinstance(attn_axis, str):
        default_axis = check_axis(attn_axis)
    elif attn_axis is not None:
        rules = axis_patterns(attn_axis)
    components: dict[str, nn.Module]
    pipeline = False
    if isinstance(target, nn.Module):
        components = {name or type(target).__name__: target}
    elif hasattr(target, "components"):  # diffusers DiffusionPipeline
        components = {k: v for k, v in target.components.items() if isinstance(v, nn.Module)}
        pipeline = True
    else:
        raise UserError(f"cannot trace a {type(target).__name__}: pass an nn.Module or pipeline")
    if save:
        check_store(write=True)
    runner = Runner(collapse_identical_steps=False)
    axes = AxisRules()
    for component in [*components, "", PIPELINE_COMPONENT]:
        axes.add(component, default_axis, rules)
    capture = AnalyticCapture(runner, axes, attention=attention)  # type: ignore[arg-type]
    hints, lineage = ShapeHints(), Lineage()
    capture.recorder.hints, capture.recorder.lineage = hints, lineage
    for component, module in components.items():
        capture.name_component(component, module)
        lineage.exclude(module)
    denoiser = next((c for c in DENOISERS if c in components), None) if pipeline else None
    steps = [0]

    def on_call(component: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            hints.add_call(module, args, kwargs)
            if component == denoiser:  # one denoiser call = one denoising step
                runner.where = Where("", "denoise", steps[0], 1)
                steps[0] += 1

        return hook

    handles = [
        m.register_forward_pre_hook(on_call(c), with_kwargs=True) for c, m in components.items()
    ]

    def default_call() -> Any:
        if isinstance(inputs, dict):
            return target(**inputs)
        if isinstance(inputs, tuple | list):
            return target(*inputs)
        return target(inputs)

    only = next(iter(components)) if len(components) == 1 and not pipeline else ""
    try:
        with torch.no_grad(), capture, runner.phase(only, "forward"):
            output = (call or default_call)()
    finally:
        for h in handles:
            h.remove()
    events = capture.table()
    if pipeline:
        events = _pipeline_labels(events, denoiser)
    label = name or type(target).__name__
    run_id = new_run_id(label)  # the folder name is a slug; the full name stays in run.json
    settings = {"size": "custom", "dtype": None, "attention": attention}
    params = {c: count_params(m) for c, m in components.items()}
    meta = run_meta(run_id, label, settings, hw, params, {})
    libraries = {c: model_library(m) for c, m in components.items()}
    return assemble_run(meta, events, hw, save=save, output=output, libraries=libraries)


def _pipeline_labels(events: pd.DataFrame, denoiser: str | None) -> pd.DataFrame:
    """Ops outside every component go to ``pipeline``; only the denoiser's and the pipeline's
    own ops (the scheduler) carry denoise step numbers."""
    events = events.copy()
    outside = events["component"].fillna("") == ""
    events.loc[outside, "component"] = PIPELINE_COMPONENT
    stepped = events["component"].isin([denoiser, PIPELINE_COMPONENT])
    events.loc[~stepped, "step"] = pd.NA
    events.loc[~stepped & (events["phase"] == "denoise"), "phase"] = "forward"
    return events
