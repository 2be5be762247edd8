"""``genscope sweep SPEC.yaml``: run a resumable grid of traces on a local pool or Ray."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from genscope.commands._output import emit_json, err_console, out_console

if TYPE_CHECKING:
    from genscope.sweep.runner import SweepReport


def print_plan(report: SweepReport) -> None:
    """One line per point: index, short id, status, what it is, and its run or its error."""
    colors = {"done": "green", "invalid": "red", "pending": "yellow"}
    for row in report.plan or []:
        status = f"[{colors[row['status']]}]{row['status']:<7}[/]"
        tail = (
            f" → {row['run_id']}" if row["run_id"] else f": {row['error']}" if row["error"] else ""
        )
        out_console.print(
            f"{row['index']:>3}  {row['point_id'][:12]}  {status}  {row['label']}{tail}",
            highlight=False,
            soft_wrap=True,
        )
    counts = {s: sum(r["status"] == s for r in report.plan or []) for s in colors}
    out_console.print(
        f"sweep {report.name}: {report.points} points, {counts['done']} done, "
        f"{counts['pending']} to run, {counts['invalid']} invalid (dry run: nothing ran)"
    )


def print_report(report: SweepReport) -> None:
    out_console.print(
        f"sweep {report.name}: {report.points} points — {report.done} done, "
        f"{report.failed} failed, {report.skipped} skipped ({report.elapsed_s:.1f} s)"
    )
    for f in report.failures:
        out_console.print(
            f"  failed {f['point_id'][:12]} {f['label']}: {f['error']}", soft_wrap=True
        )
    if report.run_ids:
        out_console.print(f"runs: genscope runs --sweep {report.name}")


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep_cmd(
        spec: Path = typer.Argument(..., help="Sweep spec (YAML): name + one list per axis."),
        executor: str = typer.Option("local", help="local (process pool) | ray"),
        address: str | None = typer.Option(
            None, help="Ray cluster to join (HEAD:6379 or auto); default: start a local one."
        ),
        workers: int | None = typer.Option(
            None,
            help="local: worker processes (default 1; 0 = in-process). "
            "ray: most points in flight (default: no cap).",
        ),
        num_cpus: float | None = typer.Option(
            None, help="Ray: CPUs per point (overrides the spec's resources; default 1)."
        ),
        num_gpus: float | None = typer.Option(
            None, help="Ray: GPUs per point (overrides the spec's resources; default 0)."
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="List the points and which are done; run nothing."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    ) -> None:
        """Run every point of a grid spec as a stored run; re-running skips completed points.

        Exits 1 if any point failed (the others still ran); failures are in
        <home>/sweeps/NAME/failures.jsonl and are retried on the next run.
        """
        from genscope.sweep import load_spec, make_executor, run_sweep

        sweep_spec = load_spec(spec)
        ex = make_executor(
            executor,
            workers=workers,
            address=address,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            resources=sweep_spec.resources,
        )
        report = run_sweep(sweep_spec, ex, dry_run=dry_run, console=err_console)
        if json_out:
            emit_json(report.to_json())
        elif dry_run:
            print_plan(report)
        else:
            print_report(report)
        if report.failed:
            raise typer.Exit(1)
