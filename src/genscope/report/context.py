"""The state every report section shares: output folder, hardware, cached traces, findings.

Sections trace through :meth:`ReportContext.trace` so that runs are shared between them, write
their tables with :meth:`ReportContext.write_data`, and record claim values with
:meth:`ReportContext.find`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from genscope.analyses.claims import Finding
from genscope.api import TraceResult, trace_workload
from genscope.costmodel.hardware import get_hardware
from genscope.costmodel.pricing import has_gpu_model
from genscope.report.html import Section
from genscope.store import write_run
from genscope.sweep.executors import LocalExecutor
from genscope.workloads.base import Settings, Workload
from genscope.workloads.registry import all_workloads, get_workload

ROOFLINE_SPECS = ("a100-80g-sxm", "h100-sxm", "h200-sxm")
_DECODING = ("autoregressive", "encoder-decoder")
#: ``--quick``: decode loops that take a length stop after this many new tokens; Parti's loop is
#: a fixed 1024 image tokens, so it runs its smallest published size instead of 20B.
QUICK_NEW_TOKENS = 16
QUICK_VARIANTS = {"parti": "350m"}
QUICK = (
    f"quick: decode shortened to {QUICK_NEW_TOKENS} new tokens, Parti at 350M, and smaller "
    "resolution/frame/batch sweeps and numerics grids"
)


@dataclass
class ReportContext:
    out: Path
    hardware: str
    quick: bool
    workers: int = 1
    runs: dict[str, TraceResult] = field(default_factory=dict)
    findings: dict[str, Finding] = field(default_factory=dict)
    #: called with a short status line while a section runs many traces
    status: Callable[[str], None] = lambda _text: None

    @property
    def label(self) -> str:
        quick = ", quick" if self.quick else ""
        if self.gpu:
            return f"predicted (GPU time model, {self.hardware}, {self.dtype}{quick})"
        return f"analytic ({self.hardware}{quick})"

    @property
    def gpu(self) -> bool:
        """Whether the report's hardware is priced by the GPU time model."""
        return has_gpu_model(get_hardware(self.hardware))

    @property
    def dtype(self) -> str:
        """The suite's dtype: fp16 on a GPU, as the papers ran (Golden et al.'s SD example and
        Lee et al.'s models are fp16); fp32 elsewhere, where the roofline prices any dtype."""
        return "fp16" if self.gpu else "fp32"

    def trace(self, key: str, workload: str | Workload, settings: Settings) -> TraceResult:
        """Trace once per key and remember it (run ids are listed in the report)."""
        if key not in self.runs:
            self.runs[key] = trace_workload(workload, settings, hardware=self.hardware)
        return self.runs[key]

    def prefetch(self, plan: dict[str, tuple[str, Settings]]) -> None:
        """Trace the planned runs not cached yet, ``workers`` at a time in worker processes.

        Traces are independent and single-threaded (``meta`` tensors), so on a 2-core machine
        two workers halve the wall time. A point that fails here is traced again in-process
        by :meth:`trace`, so its error surfaces where the section needs it.
        """
        todo = {k: v for k, v in plan.items() if k not in self.runs}
        if self.workers < 2 or len(todo) < 2:
            return
        tasks = [
            {
                "workload": wl,
                "settings": s.to_dict(),
                "mode": "analytic",
                "hardware": self.hardware,
                "sweep": "report",
                "point_id": key,
            }
            for key, (wl, s) in todo.items()
        ]
        # long decode loops first, so the pool does not end waiting on one of them
        tasks.sort(key=lambda t: get_workload(t["workload"]).family not in _DECODING)
        for done, (task, outcome) in enumerate(LocalExecutor(self.workers).run(tasks), 1):
            self.status(f"traces {done}/{len(tasks)}")
            if not outcome["ok"]:
                continue
            run_id, meta = outcome["run_id"], outcome["meta"]
            path = write_run(run_id, meta, outcome["events"], outcome["summary"])
            self.runs[task["point_id"]] = TraceResult(
                run_id, meta, outcome["events"], outcome["summary"], str(path)
            )

    def suite_plan(self, attention: str) -> dict[str, tuple[str, Settings]]:
        return {
            f"{wl.name}-{attention}": (wl.name, self.suite_settings(wl, attention))
            for wl in all_workloads()
        }

    def suite_settings(self, wl: Workload, attention: str) -> Settings:
        """Default settings; ``--quick`` shortens decoding (:data:`QUICK`)."""
        base = Settings(size="full", attention=attention, dtype=self.dtype)
        if not self.quick:
            return base
        if "new_tokens" in wl.defaults["full"]:
            return replace(base, new_tokens=QUICK_NEW_TOKENS)
        return replace(base, variant=QUICK_VARIANTS.get(wl.name))

    def suite(self, attention: str) -> dict[str, TraceResult]:
        return {wl: self.trace(key, wl, s) for key, (wl, s) in self.suite_plan(attention).items()}

    def write_data(self, name: str, df: pd.DataFrame) -> str:
        (self.out / "data").mkdir(parents=True, exist_ok=True)
        df.to_csv(self.out / "data" / f"{name}.csv", index=False)
        return f"data/{name}.csv"

    def find(self, key: str, value: float, display: str, detail: str = "", mode: str = "") -> None:
        self.findings[key] = Finding(float(value), display, mode or self.label, detail)


SectionBuilder = Callable[[ReportContext], list[Section]]
