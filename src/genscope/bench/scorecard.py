"""``genscope bench scorecard``: the GPU time model against published end-to-end GPU runs.

Every row of ``costmodel/gpu/scorecard.json`` is a public measurement (source, date, software);
none was used to set a constant. Each distinct (workload, settings) is traced once at full size
on ``meta``, in worker processes two at a time; as each trace arrives, the rows that share it
get their levers applied and are predicted on their GPU (:mod:`genscope.costmodel.gpu.evaluate`)
while the other traces run. Analytic traces and the model are deterministic and each row's
prediction depends only on its trace, so two runs print identical JSON.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from genscope.costmodel.gpu.evaluate import make_predictor, row_settings, setup_key
from genscope.costmodel.gpu.scorecard import load_rows, score, validate_row
from genscope.costmodel.hardware import hardware_names
from genscope.sweep.executors import LocalExecutor, forkserver_context
from genscope.workloads.base import Settings


def bench_scorecard(workers: int = 2) -> dict[str, Any]:
    """``{"mape_pct", "worst_pct", "lever_speedup_mape_pct", "rows", "by_family", "by_gpu"}``."""
    rows = load_rows()
    if workers > 0:
        # The workers import the tracing stack and the rows' model libraries in the pool's
        # forkserver; starting it now lets that overlap with this process's import of the
        # workload registry (every model library) just below.
        forkserver_context({str(r["workload"]) for r in rows}, start=True)
    from genscope.workloads.registry import workload_names

    known = sorted(workload_names())
    for row in rows:  # bad rows fail now, not after a minute of tracing
        validate_row(row, known, hardware_names())
    by_setup: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_setup.setdefault(setup_key(str(row["workload"]), row_settings(row)), []).append(row)
    tasks = [
        {
            "workload": str(shared[0]["workload"]),
            "settings": Settings(size="full", **row_settings(shared[0])).to_dict(),
            "mode": "analytic",
            "hardware": "a100-80g-sxm",
            "sweep": "scorecard",
            "point_id": key,
        }
        # the setups most rows share first: their predictions (here, in this process) then
        # overlap the remaining traces instead of trailing the last one
        for key, shared in sorted(by_setup.items(), key=lambda item: -len(item[1]))
    ]
    traced: dict[str, pd.DataFrame] = {}

    def trace(workload: str, settings: dict[str, Any]) -> pd.DataFrame:
        return traced[setup_key(workload, settings)]

    predict_row = make_predictor(trace)
    seconds: dict[str, float] = {}
    for task, outcome in LocalExecutor(workers).run(tasks):
        if not outcome["ok"]:
            raise RuntimeError(f"tracing {task['workload']} failed: {outcome['error']}")
        traced[task["point_id"]] = outcome["events"]
        for row in by_setup[task["point_id"]]:
            seconds[row["id"]] = predict_row(row)
    return {"name": "scorecard", **score(rows, lambda row: seconds[row["id"]], workloads=known)}
