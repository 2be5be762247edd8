"""Resumable grid sweeps: a YAML spec → one stored run per grid point, on a local process pool
or a Ray cluster. See :mod:`genscope.sweep.spec` (the spec and point identity),
:mod:`genscope.sweep.executors`, :mod:`genscope.sweep.runner` (skip / run / record) and
:mod:`genscope.sweep.query` (a sweep's runs and events through DuckDB)::

    from genscope.sweep import load_spec, make_executor, run_sweep, load_sweep_events
    report = run_sweep(load_spec("examples/sweeps/sd-resolution.yaml"), make_executor("local"))
    events = load_sweep_events("sd-resolution")   # op events + each run's settings columns
    table = sweep_table("sd-resolution")          # one row per point + scaling.point_metrics
"""

from genscope.sweep.executors import LocalExecutor, RayExecutor, make_executor
from genscope.sweep.query import load_sweep_events, load_sweep_runs, sweep_runs, sweep_table
from genscope.sweep.runner import SweepReport, plan, read_failures, run_sweep, sweep_dir
from genscope.sweep.spec import Point, SweepSpec, expand, load_spec, parse_spec

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
