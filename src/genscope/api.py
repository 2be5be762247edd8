"""The tracing API: workload (or your own model) → op-event table → summary → run store.

``trace_workload("sd15", Settings(...))`` runs a suite workload; :func:`trace` runs any
``nn.Module`` or diffusers pipeline the user hands in. Both return a :class:`TraceResult`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from genscope.analyses.summary import summarize
from genscope.capture.analytic import AnalyticCapture
from genscope.capture.attention_impl import ATTENTION_CHOICES
from genscope.capture.context import AxisRules, Runner
from genscope.costmodel.hardware import HardwareSpec, get_hardware
from genscope.costmodel.roofline import apply_roofline
from genscope.errors import UserError, choices_error
from genscope.machine.environment import environment
from genscope.store import check_store, new_run_id, write_run
from genscope.workloads.base import Built, Settings, Workload
from genscope.workloads.components import count_params
from genscope.workloads.registry import get_workload

DEFAULT_HARDWARE = "a100-80g-sxm"


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
) -> TraceResult:
    """The one run assembler of both capture paths: roofline → summarize → (enrich) → write.

    ``events`` is a capture's op-event table; ``enrich`` adds to the summary in place (the
    measured figures of a measured run) before the run is written.
    """
    events["run_id"] = meta["run_id"]
    events = apply_roofline(events, hw)
    summary = summarize(events)
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
            **(extra_meta or {}),
        },
    )
    return assemble_run(meta, capture.table(), hw, save=save, output=output)


def trace(
    target: nn.Module | Any,
    inputs: Any = None,
    *,
    call: Callable[[], Any] | None = None,
    name: str | None = None,
    hardware: str | HardwareSpec = DEFAULT_HARDWARE,
    attention: str = "flash",
    attn_axis: str = "text",
    save: bool = False,
) -> TraceResult:
    """Trace your own model or diffusers pipeline and get the same result as a suite run.

    ``target`` is an ``nn.Module`` (called as ``target(*inputs)`` / ``target(**inputs)``) or a
    diffusers pipeline (called as ``target(**inputs)``; its modules are named by component).
    Pass ``call`` to run something else while capturing (e.g. a custom loop).
    """
    if attention not in ATTENTION_CHOICES:
        raise choices_error("attention", attention, ATTENTION_CHOICES)
    hw = get_hardware(hardware) if isinstance(hardware, str) else hardware
    components: dict[str, nn.Module]
    if isinstance(target, nn.Module):
        components = {name or type(target).__name__: target}
    elif hasattr(target, "components"):  # diffusers DiffusionPipeline
        components = {k: v for k, v in target.components.items() if isinstance(v, nn.Module)}
    else:
        raise UserError(f"cannot trace a {type(target).__name__}: pass an nn.Module or pipeline")
    runner = Runner(collapse_identical_steps=False)
    axes = AxisRules()
    for component in components:
        axes.add(component, attn_axis)
    capture = AnalyticCapture(runner, axes, attention=attention)  # type: ignore[arg-type]
    for component, module in components.items():
        capture.name_component(component, module)

    def default_call() -> Any:
        if isinstance(inputs, dict):
            return target(**inputs)
        if isinstance(inputs, tuple | list):
            return target(*inputs)
        return target(inputs)

    only = next(iter(components)) if len(components) == 1 else ""
    with torch.no_grad(), capture, runner.phase(only, "forward"):
        output = (call or default_call)()
    label = name or type(target).__name__
    run_id = new_run_id(label)
    settings = {"size": "custom", "dtype": None, "attention": attention}
    params = {c: count_params(m) for c, m in components.items()}
    meta = run_meta(run_id, label, settings, hw, params, {})
    return assemble_run(meta, capture.table(), hw, save=save, output=output)
