"""``genscope runs`` and ``genscope show``: query the run store (DuckDB over run folders)."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from genscope.commands._output import emit_json, out_console
from genscope.errors import UserError, clip


def register(app: typer.Typer) -> None:
    @app.command("runs")
    def runs_cmd(
        workload: str | None = typer.Option(None, help="Only runs of this workload."),
        sweep: str | None = typer.Option(None, help="Only runs of this sweep."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    ) -> None:
        """List stored runs, newest first; damaged run folders are named with what is wrong."""
        from genscope.store import runs_frame, scan_store

        scan = scan_store()
        df = runs_frame(scan, workload or None, sweep or None)
        if sweep:
            from genscope.sweep.query import with_point_ids

            df = with_point_ids(df, sweep, short=not json_out)
        damaged = [{"run_id": r, "problem": p} for r, p in scan.damaged.items()]
        for d in damaged:  # one line each, on stderr, so stdout stays the table / JSON
            print(f"genscope: damaged run {d['run_id']}: {d['problem']}", file=sys.stderr)
        if json_out:
            records = df.astype(object).where(df.notna(), None).to_dict("records")
            emit_json({"runs": records, "damaged": damaged})
            return
        table = Table(*df.columns, title=f"{len(df)} runs")
        for row in df.itertuples(index=False):
            table.add_row(*("" if v is None else str(v) for v in row))
        out_console.print(table)

    @app.command("show")
    def show_cmd(
        run_id: str = typer.Argument(..., help="A run id from `genscope runs`."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    ) -> None:
        """Show one stored run's metadata and summary."""
        from genscope.commands.trace import print_summary
        from genscope.store import load_run

        meta, events, summary = load_run(run_id)
        try:  # a run.json/summary.json that parses but lacks fields is damaged too
            s = meta["settings"]
            result = {
                "run_id": meta["run_id"],
                "workload": meta["workload"],
                "size": s.get("size"),
                "mode": meta["mode"],
                "hardware": meta["hardware"],
                "dtype": s.get("dtype"),
                "settings": s,
                "params": meta["params"],
                "collapsed_steps": meta.get("collapsed_steps", {}),
                "environment": meta.get("environment"),
                "events": len(events),
                **summary,
                "attention": {"impl": s.get("attention"), **summary["attention"]},
            }
            if not json_out:
                with out_console.capture() as page:  # all or nothing on stdout
                    print_summary(result)
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise UserError(
                f"run {run_id} is damaged: missing or malformed field {clip(err, 60)}"
            ) from None
        if json_out:
            emit_json(result)
        else:
            sys.stdout.write(page.get())
