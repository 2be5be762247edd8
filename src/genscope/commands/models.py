"""``genscope models``: the workload suite."""

from __future__ import annotations

import typer
from rich.table import Table

from genscope.commands._output import emit_json, out_console


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models_cmd(
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    ) -> None:
        """List the suite: name, task, family, components with params, defaults, sources."""
        from genscope.workloads.registry import all_workloads

        described = [wl.describe() for wl in all_workloads()]
        if json_out:
            emit_json({"models": described})
            return
        table = Table("workload", "task", "family", "components (params)", "defaults", "variants")
        for d in described:
            comps = ", ".join(
                f"{name} {(c['published_params'] or 0) / 1e6:,.0f}M ({c['class']})"
                for name, c in d["components"].items()
            )
            defaults = ", ".join(f"{k}={v}" for k, v in d["defaults"].items())
            table.add_row(
                d["name"], d["task"], d["family"], comps, defaults, ",".join(d["variants"])
            )
        out_console.print(table)
