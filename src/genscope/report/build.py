"""``genscope report``: characterize the suite and write one self-contained HTML page.

Each section is produced by a *section builder*: a function of the shared
:class:`ReportContext` that returns :class:`~genscope.report.html.Section` objects and may
record :class:`~genscope.analyses.claims.Finding` s for the claims table. Builders run in order
behind a progress bar; traces are cached in the context so sections share runs; every table is
written beside the page as CSV. A builder that fails does not sink the report: its section says
what failed, the page's introduction lists every failed section, and stderr gets one line each.

The page opens with a findings block (claims agreeing per paper, headline numbers, settings),
read from the same claims table and findings the claims section shows; the claims table itself
comes after the figures, so the first screen is the bottom line and the first figure.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

import pandas as pd
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from genscope.analyses.claims import claims_table
from genscope.console import err_console
from genscope.errors import UserError, clip
from genscope.machine.environment import environment
from genscope.report.context import QUICK, ReportContext, SectionBuilder
from genscope.report.findings import findings_html
from genscope.report.html import Section, render_page
from genscope.report.sections.breakdown import breakdown_section
from genscope.report.sections.claims import claim_row_ids, claims_section
from genscope.report.sections.decode import decode_section
from genscope.report.sections.flash import flash_section
from genscope.report.sections.levers import levers_section
from genscope.report.sections.levers_predicted import levers_predicted_section
from genscope.report.sections.measured import measured_section
from genscope.report.sections.numerics import numerics_section
from genscope.report.sections.roofline import roofline_section
from genscope.report.sections.scaling import scaling_section
from genscope.report.sections.seqlen import seqlen_section
from genscope.report.sections.suite import suite_section
from genscope.report.sections.temporal import temporal_section
from genscope.store import check_store

#: (progress label, builder), in page order; the claims section follows once all have run.
SECTION_BUILDERS: list[tuple[str, SectionBuilder]] = [
    ("suite", suite_section),
    ("operator breakdown", breakdown_section),
    ("flash speedup", flash_section),
    ("roofline", roofline_section),
    ("sequence length", seqlen_section),
    ("scaling", scaling_section),
    ("temporal attention", temporal_section),
    ("decode", decode_section),
    ("measured", measured_section),
    ("numerics", numerics_section),
    ("levers", levers_section),
    ("predicted levers", levers_predicted_section),
]


def _failed(name: str, err: BaseException) -> Section:
    return Section(
        key=f"failed-{name.replace(' ', '-')}",
        title=f"{name}: not produced",
        label="error",
        notes=[f"{type(err).__name__}: {err}", traceback.format_exc(limit=3)],
    )


def build_report(
    out: Path,
    hardware: str = "a100-80g-sxm",
    quick: bool = False,
    builders: list[tuple[str, SectionBuilder]] | None = None,
    workers: int = 1,
    keep_going: bool = True,
) -> Path:
    """Run every section builder (or the given ones) and write ``out/index.html`` atomically.

    ``workers`` > 1 traces a section's independent runs in that many worker processes. A
    section that fails is shown as failed in the page; without ``keep_going`` the page is
    still written and then a :class:`~genscope.errors.UserError` names the failed sections.
    """
    check_store(write=True)  # the report stores its runs: an unusable store fails up front
    out.mkdir(parents=True, exist_ok=True)
    ctx = ReportContext(out, hardware, quick, workers)
    sections: list[Section] = []
    builders = SECTION_BUILDERS if builders is None else builders
    columns = (
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    seconds: dict[str, float] = {}
    failed: dict[str, str] = {}  # section -> one-line reason; said in the page and on stderr
    with Progress(*columns, console=err_console) as progress:
        task = progress.add_task("report", total=len(builders) + 1)
        ctx.status = lambda text: progress.update(task, description=f"{name}: {text}")
        for name, builder in builders:
            progress.update(task, description=name)
            start = time.perf_counter()
            try:
                sections.extend(builder(ctx))
            except Exception as err:  # a broken section must not sink the whole report
                sections.append(_failed(name, err))
                failed[name] = f"{type(err).__name__}: {clip(err, 160)}"
            seconds[name] = time.perf_counter() - start
            progress.advance(task)
        progress.update(task, description="claims")
        sections.extend(claims_section(ctx))
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
            label=ctx.label,
            table=runs,
            notes=[
                *(f"{k}: {json.dumps(v)}" for k, v in env.items()),
                "seconds per section (this machine): "
                + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()),
            ],
            data_files=[ctx.write_data("runs", runs)],
        )
    )
    pkgs = env.get("packages", {})
    settings = [
        f"Settings: mode {QUICK if quick else 'full'}; {ctx.label}; {workers} trace worker(s).",
        f"Versions: genscope {env['genscope']} (git {str(env['git_sha'])[:12]}), "
        + ", ".join(f"{k} {v}" for k, v in pkgs.items())
        + f", python {env.get('python')}; measured parts on {env.get('cpu')} "
        f"(cpu_count {env.get('cpu_count')}).",
    ]
    top = findings_html(claims_table(ctx.findings), claim_row_ids(), ctx.findings, settings)
    page = render_page(
        "genscope report",
        [
            "Where multimodal generative-AI inference spends its time, memory and precision. "
            "GPU numbers are predictions of genscope's GPU time model (kernels plus a host "
            "timeline, scored against published runs; no GPU was used), with the roofline beside "
            "them as the bound; measured numbers come from this machine's CPU and say so.",
            *(
                [f"Sections that failed ({len(failed)}): {', '.join(failed)}; each says why below."]
                if failed
                else []
            ),
        ],
        sections,
        footer=(
            f"genscope {env['genscope']} · git {env['git_sha']} · torch {env['packages']['torch']}"
        ),
        top_html=top,
    )
    for name, reason in failed.items():
        print(f"genscope: report: section {name!r} failed: {reason}", file=sys.stderr)
    tmp = out / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out / "index.html")
    if failed and not keep_going:
        raise UserError(
            f"{len(failed)} report section(s) failed: {', '.join(failed)} (the page at "
            f"{out / 'index.html'} shows why; --keep-going exits 0 anyway)"
        )
    return out / "index.html"
