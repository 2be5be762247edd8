"""``genscope bench NAME``: run one benchmark and print its figures."""

import typer

from genscope.bench.registry import BENCHES, get_bench
from genscope.commands._output import emit_json, err_console


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        name: str = typer.Argument(..., help=f"One of: {', '.join(BENCHES)}"),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    ) -> None:
        """Run a benchmark: a ratio (or time) against a baseline measured in the same run."""
        result = get_bench(name)()
        if json_out:
            emit_json(result)
        else:
            for key, value in result.items():
                err_console.print(f"[bold]{key}[/]: {value}")
