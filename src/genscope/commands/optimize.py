"""``genscope optimize``: stack optimization levers on a workload and measure every stage.

The optimize package builds models (diffusers, transformers): it is imported inside the
functions that need it, so that `genscope --help` does not load those libraries.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from genscope.commands import options
from genscope.commands._output import emit_json, err_console, out_console
from genscope.errors import UserError
from genscope.machine.threads import torch_threads
from genscope.workloads.base import parse_res


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s"


def _fmt_bytes(n: float | None) -> str:
    from genscope.machine.memory import human_bytes

    return "—" if n is None else human_bytes(n)


def print_result(result: dict[str, Any]) -> None:
    """One table row per stage (stdout); skipped and rejected levers say why."""
    from genscope.optimize.deviation import deviation_text

    out_console.print(
        f"[bold]{result['workload']}[/] ({result['kind']}) — {result['mode']}; "
        f"baseline: {result['baseline']}"
    )
    table = Table(
        "lever",
        "latency",
        "±",
        "speedup",
        "vs prev",
        "compile",
        "mem Δ",
        "deviation vs baseline",
        title=f"levers, applied cumulatively (tolerance: {result['tolerance']})",
        padding=(0, 1),
    )
    for st in result["stages"]:
        name = f"{st['stage']} {st['lever']}"
        if st["status"] != "measured" and st["status"] != "baseline":
            name += f" [red]({st['status']})[/]" if st["status"] != "skipped" else " [dim](skip)[/]"
        if st["status"] in ("skipped", "failed"):
            table.add_row(name, *["—"] * 7)
            continue
        spread = st["latency_spread"]
        extra = st["stats"].get("acceptance_rate")
        dev = deviation_text(st["deviation"])
        if extra is not None:
            dev += f"; accept {extra:.0%}"
        table.add_row(
            name,
            _fmt_s(st["latency_s"]),
            f"{spread:.0%}" if spread is not None else "—",
            f"{st['speedup']:.2f}x" if st["speedup"] else "—",
            f"{st['speedup_vs_prev']:.2f}x" if st["speedup_vs_prev"] else "—",
            _fmt_s(st["compile_s"]),
            _fmt_bytes(st["peak_delta_bytes"]),
            dev,
        )
    out_console.print(table)
    for st in result["stages"]:
        if st["status"] in ("skipped", "rejected", "failed"):
            out_console.print(f"  {st['lever']}: {st['status']} — {st['reason']}")
    out_console.print(
        f"end to end: [bold]{result['speedup']:.2f}x[/] ({result['final_stage']}; "
        f"{result['speedup_matched_batch']:.2f}x at the baseline's batch), "
        f"deviation {deviation_text(result['deviation'])}"
    )


def _predicted(
    workload: str, hardware: str, levers: str | None, json_out: bool, params: dict[str, Any]
) -> None:
    """``optimize --hardware``: the ladder predicted on a GPU spec (full size unless told)."""
    from genscope.optimize.predicted import predict_ladder

    settings = options.settings_from(params)
    with err_console.status(f"predicting the {workload} ladder on {hardware}"):
        result = predict_ladder(workload, settings, hardware, levers)
    if json_out:
        emit_json(result)
        return
    out_console.print(
        f"[bold]{result['workload']}[/] ({result['kind']}) — {result['mode']}; "
        f"baseline: {result['baseline']}"
    )
    table = Table("lever", "end to end", "loop", "idle", "speedup", "vs prev")
    for st in result["stages"]:
        table.add_row(
            st["lever"],
            _fmt_s(st["predicted_s"]),
            _fmt_s(st["predicted_hot_s"]),
            f"{st['host_bound_share']:.0%}",
            f"{st['speedup']:.2f}x",
            f"{st['speedup_vs_prev']:.2f}x",
        )
    out_console.print(table)


def register(app: typer.Typer) -> None:
    @app.command("optimize")
    def optimize_cmd(
        workload: str = typer.Argument(
            ..., help="Measured: sd15 | chameleon | llama. With --hardware: any workload."
        ),
        size: str | None = typer.Option(
            None,
            help="tiny | small (chameleon, llama) | full (default: tiny; with --hardware: full)",
        ),
        hardware: str | None = typer.Option(
            None,
            help="Predict the ladder on this GPU spec with the GPU time model (no device, "
            "full size on meta) instead of measuring it here.",
        ),
        res: str | None = typer.Option(None, help="Image side N or HxW in pixels (diffusion)."),
        steps: int | None = typer.Option(None, help="Denoise steps per call (diffusion; 1)."),
        levers: str | None = typer.Option(
            None,
            help="Comma-separated, applied in order (default: the workload's stack). "
            "Arguments: compile:MODE, batching:B, speculative:K or KxN (K draft layers, N "
            "draft tokens); a ~ prefix measures a lever as a branch, not carried forward.",
        ),
        repeats: int = typer.Option(3, help="Timed calls per stage (after warm-up)."),
        warmup: int = typer.Option(1, help="Untimed calls per stage (the first call counts)."),
        prompt_len: options.PromptLen = None,
        new_tokens: options.NewTokens = None,
        batch: int = typer.Option(1, help="Baseline batch (images or prompts)."),
        device: str | None = typer.Option(None, help="cpu | cuda (default: cuda if available)."),
        threads: int | None = typer.Option(None, help="CPU intra-op threads (default: torch's)."),
        json_out: options.Json = False,
    ) -> None:
        """Stack levers; per stage: latency, speedup, compile time, memory, output deviation.

        With ``--hardware GPU`` the ladder is predicted by the GPU time model instead.
        """
        if hardware is not None:
            given = {"--device": device, "--threads": threads}
            if any(v is not None for v in given.values()):
                names = ", ".join(k for k, v in given.items() if v is not None)
                raise UserError(f"{names} apply to measured runs, not with --hardware")
            _predicted(workload, hardware, levers, json_out, locals() | {"size": size or "full"})
            return
        size = size or "tiny"
        from genscope.optimize import TargetSpec, build, optimize, parse_levers
        from genscope.optimize.base import target_kind

        if repeats < 1 or warmup < 1:
            raise UserError(f"--repeats and --warmup must be >= 1 (got {repeats}, {warmup})")
        if threads is not None and threads < 1:
            raise UserError(f"--threads must be >= 1 (got {threads})")
        import torch

        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dev not in ("cpu", "cuda") and not dev.startswith("cuda:"):
            raise UserError(f"unknown device {dev!r}; choose one of: cpu, cuda")
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA device is available here; use --device cpu")
        parse_levers(levers, target_kind(build.resolve(workload)))  # bad names fail before building
        spec = TargetSpec(
            workload,
            size=size,
            res=parse_res(res),
            steps=steps,
            prompt_len=prompt_len,
            new_tokens=new_tokens,
            batch=batch,
            device=dev,
        )

        def progress(stage: Any) -> None:
            d = stage.to_dict()
            note = d["reason"] if d["status"] in ("skipped", "failed", "rejected") else ""
            first = f" first call {_fmt_s(d['first_call_s'])}" if d["first_call_s"] else ""
            err_console.print(
                f"[dim]stage {d['stage']} {d['lever']}: {d['status']}{first}[/] {note}"
            )

        with (
            torch_threads(threads or None) as used_threads,
            err_console.status(f"optimizing {workload} ({size}) on {dev}"),
        ):
            result = optimize(
                spec, levers, warmup=warmup, repeats=repeats, on_stage=progress
            ).to_dict()
        result["settings"] = {
            "size": size,
            "res": list(spec.res) if spec.res else None,
            "steps": steps,
            "prompt_len": prompt_len,
            "new_tokens": new_tokens,
            "batch": batch,
            "threads": used_threads,
            "repeats": repeats,
            "warmup": warmup,
        }
        if json_out:
            emit_json(result)
        else:
            print_result(result)
