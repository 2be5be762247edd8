"""``genscope report``: the main job."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from genscope.commands._output import emit_json, err_console

#: One analytic trace is single-threaded; more than a few workers mostly costs memory.
DEFAULT_WORKERS = min(os.cpu_count() or 1, 4)


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        out: Path = typer.Option(Path("genscope-report"), help="Output folder."),
        hardware: str = typer.Option("a100-80g-sxm", help="Spec for analytic sections."),
        quick: bool = typer.Option(False, help="Fewer/smaller runs (≤ 2 minutes)."),
        workers: int = typer.Option(
            DEFAULT_WORKERS, min=1, help="Worker processes for the suite's analytic traces."
        ),
        keep_going: bool = typer.Option(
            False, "--keep-going", help="Exit 0 even when a section failed (it says so)."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    ) -> None:
        """Characterize the suite and write one self-contained HTML report."""
        from genscope.costmodel.hardware import get_hardware

        get_hardware(hardware)  # validate before any work
        if workers > 1:  # the workers' imports then overlap with ours
            from genscope.sweep.executors import forkserver_context
            from genscope.workloads.registry import workload_names

            forkserver_context(set(workload_names()), start=True)
        from genscope.report.build import build_report

        path = build_report(
            out, hardware=hardware, quick=quick, workers=workers, keep_going=keep_going
        )
        if json_out:
            emit_json({"report": str(path.resolve())})
        else:
            err_console.print(f"report written: {path.resolve()}")
