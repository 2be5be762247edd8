"""``genscope bench scorecard``: the GPU time model against published end-to-end GPU runs.

Every row of ``costmodel/gpu/scorecard.json`` is a public measurement (source, date, software);
none was used to set a constant. Each distinct (workload, settings) is traced once at full size
on ``meta``, in worker processes two at a time, then every row's levers are applied and the row
is predicted on its GPU (:mod:`genscope.costmodel.gpu.evaluate`). Analytic traces and the
model are deterministic, so two runs print identical JSON.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from genscope.costmodel.gpu.evaluate import row_settings, run_scorecard, setup_key
from genscope.costmodel.gpu.scorecard import load_rows
from genscope.sweep.executors import LocalExecutor
from genscope.workloads.base import Settings
from genscope.workloads.registry import workload_names


def bench_scorecard(workers: int = 2) -> dict[str, Any]:
    """``{"mape_pct", "worst_pct", "lever_speedup_mape_pct", "rows", "by_family", "by_gpu"}``."""
    known = set(workload_names())
    setups = {
        setup_key(str(r["workload"]), row_settings(r)): (str(r["workload"]), row_settings(r))
        for r in load_rows()
        if r["workload"] in known  # an unknown one is reported by the scorer, with the choices
    }
    tasks = [
        {
            "workload": wl,
            "settings": Settings(size="full", **s).to_dict(),
            "mode": "analytic",
            "hardware": "a100-80g-sxm",
            "sweep": "scorecard",
            "point_id": key,
        }
        for key, (wl, s) in setups.items()
    ]
    traced: dict[str, pd.DataFrame] = {}
    for task, outcome in LocalExecutor(workers).run(tasks):
        if not outcome["ok"]:
            raise RuntimeError(f"tracing {task['workload']} failed: {outcome['error']}")
        traced[task["point_id"]] = outcome["events"]

    def trace(workload: str, settings: dict[str, Any]) -> pd.DataFrame:
        return traced[setup_key(workload, settings)]

    return {"name": "scorecard", **run_scorecard(trace, sorted(known))}
