"""``genscope trace``: characterize one workload run and store it."""

from __future__ import annotations

import typer
from rich.table import Table

from genscope.commands._output import emit_json, err_console, out_console
from genscope.errors import UserError, choices_error
from genscope.workloads.base import Settings


def parse_res(text: str | None) -> tuple[int, int] | None:
    """``512`` or ``512x768`` (height x width)."""
    if text is None:
        return None
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise UserError(f"--res takes N or HxW (e.g. 512 or 576x1024), got {text!r}") from None
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise UserError(f"--res takes N or HxW (e.g. 512 or 576x1024), got {text!r}")


def _fmt(x: float, unit: str) -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def print_summary(result: dict) -> None:
    """Human-readable trace summary (stdout)."""
    out_console.print(
        f"[bold]{result['run_id']}[/]  {result['workload']} ({result['size']}, {result['mode']}, "
        f"{result['dtype']}, {result['settings']['attention']} attention) on {result['hardware']}"
    )
    params = ", ".join(f"{k} {v / 1e6:,.1f}M" for k, v in result["params"].items())
    out_console.print(f"params: {params}")
    if result.get("collapsed_steps"):
        steps = ", ".join(f"{p}: 1 traced x{n}" for p, n in result["collapsed_steps"].items())
        out_console.print(f"identical steps traced once and counted: {steps}")
    out_console.print(
        f"total: {_fmt(result['flops_total'], 'FLOP')}, {_fmt(result['bytes_total'], 'B')}, "
        f"predicted {result['predicted_s'] * 1e3:.2f} ms (analytic roofline)"
    )
    table = Table("category", "FLOPs", "bytes", "time", "share", title="by category")
    rows = sorted(result["by_category"].items(), key=lambda kv: -kv[1]["time_s"])
    for cat, v in rows:
        table.add_row(
            cat,
            _fmt(v["flops"], "FLOP"),
            _fmt(v["bytes"], "B"),
            f"{v['time_s'] * 1e3:.3f} ms",
            f"{v['share']:.1%}",
        )
    out_console.print(table)
    seq = result["seq_len"]
    out_console.print(f"attention seq_len: min {seq['min']}, max {seq['max']}, {seq['distinct']}")
    if result.get("path"):
        out_console.print(f"stored: {result['path']}")


def register(app: typer.Typer) -> None:
    @app.command("trace")
    def trace_cmd(
        workload: str = typer.Argument(..., help="Workload name (see `genscope models`)."),
        size: str = typer.Option("full", help="full (published size, meta device) | tiny"),
        mode: str = typer.Option("analytic", help="analytic | measured"),
        hardware: str = typer.Option(
            "a100-80g-sxm", help="Spec for the roofline (`genscope hardware`)."
        ),
        res: str | None = typer.Option(None, help="Image side N or HxW in pixels."),
        frames: int | None = typer.Option(None, help="Video frames (video workloads)."),
        steps: int | None = typer.Option(None, help="Denoising / decoding steps."),
        batch: int = typer.Option(1, help="Prompts per batch (CFG doubles it inside)."),
        cfg: bool | None = typer.Option(None, "--cfg/--no-cfg", help="Classifier-free guidance."),
        dtype: str = typer.Option("fp32", help="fp32 | bf16 | fp16"),
        attention: str = typer.Option("flash", help="flash (fused SDPA) | math (bmm-softmax-bmm)"),
        variant: str | None = typer.Option(None, help="Model size variant, e.g. 7b."),
        prompt_len: int | None = typer.Option(None, help="Prompt tokens (autoregressive)."),
        new_tokens: int | None = typer.Option(None, help="Generated tokens (autoregressive)."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    ) -> None:
        """Trace a workload: every aten op → op-event table → roofline → run store."""
        from genscope.tracing import trace_workload

        if mode not in ("analytic", "measured"):
            raise choices_error("mode", mode, ["analytic", "measured"])
        if mode == "measured":
            raise UserError("--mode measured is not available yet (issue #4); use analytic")
        settings = Settings(
            size=size,  # type: ignore[arg-type]
            res=parse_res(res),
            frames=frames,
            steps=steps,
            batch=batch,
            cfg=cfg,
            dtype=dtype,
            attention=attention,
            variant=variant,
            prompt_len=prompt_len,
            new_tokens=new_tokens,
        )
        with err_console.status(f"tracing {workload} ({size}, {mode})"):
            result = trace_workload(workload, settings, hardware=hardware).to_json()
        if json_out:
            emit_json(result)
        else:
            print_summary(result)
