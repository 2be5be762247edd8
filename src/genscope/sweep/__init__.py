"""Resumable grid sweeps: a YAML spec → one stored run per grid point, on a local process pool
or a Ray cluster. See :mod:`genscope.sweep.spec` (the spec and point identity),
:mod:`genscope.sweep.executors`, :mod:`genscope.sweep.runner` (skip / run / record) and
:mod:`genscope.sweep.query` (a sweep's runs and events through DuckDB)::

    from genscope.sweep import load_spec, make_executor, run_sweep, load_sweep_events
    report = run_sweep(load_spec("examples/sweeps/sd-resolution.yaml"), make_executor("local"))
    events = load_sweep_events("sd-resolution")   # op events + each run's settings columns
    table = sweep_table("sd-resolution")          # one row per point + scaling.point_metrics

The names are imported lazily, so importing one light submodule (e.g.
``genscope.sweep.executors`` to start the pool's forkserver) does not first import the tracing
stack and every model library through the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genscope.sweep.executors import LocalExecutor, RayExecutor, make_executor
    from genscope.sweep.query import load_sweep_events, load_sweep_runs, sweep_runs, sweep_table
    from genscope.sweep.runner import SweepReport, plan, read_failures, run_sweep, sweep_dir
    from genscope.sweep.spec import Point, SweepSpec, expand, load_spec, parse_spec

#: Public name -> the submodule that defines it.
_EXPORTS: dict[str, str] = {
    "LocalExecutor": "executors",
    "RayExecutor": "executors",
    "make_executor": "executors",
    "load_sweep_events": "query",
    "load_sweep_runs": "query",
    "sweep_runs": "query",
    "sweep_table": "query",
    "SweepReport": "runner",
    "plan": "runner",
    "read_failures": "runner",
    "run_sweep": "runner",
    "sweep_dir": "runner",
    "Point": "spec",
    "SweepSpec": "spec",
    "expand": "spec",
    "load_spec": "spec",
    "parse_spec": "spec",
}

__all__ = [
    "LocalExecutor",
    "Point",
    "RayExecutor",
    "SweepReport",
    "SweepSpec",
    "expand",
    "load_spec",
    "load_sweep_events",
    "load_sweep_runs",
    "make_executor",
    "parse_spec",
    "plan",
    "read_failures",
    "run_sweep",
    "sweep_dir",
    "sweep_runs",
    "sweep_table",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'genscope.sweep' has no attribute {name!r}")
    return getattr(importlib.import_module(f"genscope.sweep.{_EXPORTS[name]}"), name)
