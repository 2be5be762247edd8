"""``genscope report``: characterize the suite and write one self-contained HTML page.

Each section is produced by a *section builder*: a function that takes the shared
:class:`ReportContext` and returns :class:`~genscope.report.html.Section` objects. Builders run
in order behind a progress bar; their data tables are written beside the page as CSV.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.progress import Progress

from genscope.analyses.breakdown import category_breakdown, plot_category_breakdown
from genscope.commands._output import err_console
from genscope.environment import environment
from genscope.report.html import Section, render_page
from genscope.tracing import TraceResult, trace_workload
from genscope.workloads.base import Settings


@dataclass
class ReportContext:
    out: Path
    hardware: str
    quick: bool
    runs: dict[str, TraceResult] = field(default_factory=dict)

    def trace(self, key: str, workload: str, settings: Settings) -> TraceResult:
        """Trace once per key and remember it (run ids are listed in the report)."""
        if key not in self.runs:
            self.runs[key] = trace_workload(workload, settings, hardware=self.hardware)
        return self.runs[key]

    def write_data(self, name: str, df: pd.DataFrame) -> str:
        (self.out / "data").mkdir(parents=True, exist_ok=True)
        df.to_csv(self.out / "data" / f"{name}.csv", index=False)
        return f"data/{name}.csv"


SectionBuilder = Callable[[ReportContext], list[Section]]


def breakdown_section(ctx: ReportContext) -> list[Section]:
    runs = {}
    for attention in ("math", "flash"):
        r = ctx.trace(f"sd15-{attention}", "sd15", Settings(size="full", attention=attention))
        runs[f"sd15 ({attention})"] = r.events
    table = category_breakdown(runs)
    label = f"analytic ({ctx.hardware})"
    fig = plot_category_breakdown(table, f"Operator time breakdown, math vs flash — {label}")
    return [
        Section(
            key="breakdown",
            title="Operator-category breakdown: baseline (math) vs Flash attention",
            label=label,
            figures=[fig],
            table=table,
            notes=[
                "Share of predicted end-to-end time per operator category (roofline per op); "
                "sd15 at 512², 50 DDIM steps with CFG, fp32."
            ],
            data_files=[ctx.write_data("breakdown", table)],
        )
    ]


SECTION_BUILDERS: list[tuple[str, SectionBuilder]] = [
    ("operator breakdown", breakdown_section),
]


def build_report(out: Path, hardware: str = "a100-80g-sxm", quick: bool = False) -> Path:
    """Run every section builder and write ``out/index.html`` (atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    ctx = ReportContext(out, hardware, quick)
    sections: list[Section] = []
    with Progress(console=err_console, transient=False) as progress:
        task = progress.add_task("report", total=len(SECTION_BUILDERS))
        for name, builder in SECTION_BUILDERS:
            progress.update(task, description=name)
            sections.extend(builder(ctx))
            progress.advance(task)
    env = environment()
    runs = pd.DataFrame(
        [
            {"key": k, "run_id": r.run_id, "workload": r.meta["workload"]}
            for k, r in ctx.runs.items()
        ]
    )
    sections.append(
        Section(
            key="runs",
            title="Runs and environment",
            label=f"analytic ({hardware})",
            table=runs,
            notes=[f"{k}: {json.dumps(v)}" for k, v in env.items()],
            data_files=[ctx.write_data("runs", runs)],
        )
    )
    page = render_page(
        "genscope report",
        [
            "Where multimodal generative-AI inference spends its time, memory and precision. "
            "Analytic numbers are a roofline over datasheet peaks (no GPU was used); measured "
            "numbers come from this machine and say so.",
        ],
        sections,
        footer=(
            f"genscope {env['genscope']} · git {env['git_sha']} · "
            f"torch {env['packages']['torch']}"
        ),
    )
    tmp = out / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out / "index.html")
    return out / "index.html"
