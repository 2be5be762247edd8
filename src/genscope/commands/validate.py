"""``genscope validate W``: the analytic prediction held against a measured run on this CPU."""

from __future__ import annotations

import sys
from dataclasses import replace

import typer
from rich.table import Table

from genscope.commands._output import emit_json, out_console
from genscope.workloads.base import Settings, parse_res

#: = genscope.measure.validate.VALIDATION_PLAN's repeats and min_seconds (not imported here:
#: the measurement stack loads diffusers and transformers, which `genscope --help` should not)
REPEATS = 15
MIN_SECONDS = 10.0


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:+.1f}%"


def print_validation(r: dict) -> None:
    cal, roof = r.get("calibrated"), r["roofline"]
    out_console.print(
        f"[bold]{r['workload']}[/] ({r['size']}) — {r['label']}, {r['threads']} thread(s); "
        f"measured = {r['measured_basis']}"
    )
    out_console.print(
        f"measured {r['measured_s'] * 1e3:.2f} ms (median {r['measured_median_s'] * 1e3:.2f} ms, "
        f"wall median {r['measured_wall_s'] * 1e3:.2f} ms)"
    )
    if cal:
        out_console.print(
            f"calibrated op model: predicted {cal['predicted_s'] * 1e3:.2f} ms, error "
            f"{_pct(cal['e2e_error_pct'])}; worst share error {cal['max_share_error_pts']:.1f} "
            f"pts ({cal['worst_category']})"
        )
    out_console.print(
        f"plain roofline ({roof['hardware']}): predicted {roof['predicted_s'] * 1e3:.2f} ms, "
        f"error {_pct(roof['e2e_error_pct'])}; worst op-time share error "
        f"{roof['max_share_error_pts']:.1f} pts ({roof['worst_category']})"
    )
    table = Table(
        "category", "measured", "share", "calibrated", "share", "roofline", title="per category"
    )
    meas, shares = r["measured_by_category_s"], r["measured_shares"]
    cal_s = cal["by_category_s"] if cal else {}
    cal_sh = cal["shares"] if cal else {}
    for cat in sorted(set(meas) | set(cal_s), key=lambda c: -meas.get(c, 0.0)):
        table.add_row(
            cat,
            f"{meas.get(cat, 0) * 1e3:.2f} ms",
            f"{shares.get(cat, 0):.1%}",
            f"{cal_s.get(cat, 0) * 1e3:.2f} ms" if cal else "–",
            f"{cal_sh.get(cat, 0):.1%}" if cal else "–",
            f"{roof['by_category_s'].get(cat, 0) * 1e3:.2f} ms" if cat != "overhead" else "–",
        )
    out_console.print(table)
    verdict = "meets" if r["meets_target"] else "misses"
    t = r["targets"]
    out_console.print(
        f"{verdict} the targets (e2e within ±{t['e2e_error_pct']:.0f}%, shares within "
        f"{t['max_share_error_pts']:.0f} pts)"
    )


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate_cmd(
        workload: str = typer.Argument(..., help="Workload name (see `genscope models`)."),
        size: str = typer.Option("tiny", help="tiny | full (full runs real weights here)."),
        res: str | None = typer.Option(None, help="Image side N or HxW in pixels."),
        frames: int | None = typer.Option(None, help="Video frames (video workloads)."),
        steps: int | None = typer.Option(None, help="Denoising / decoding steps."),
        batch: int = typer.Option(1, help="Prompts per batch."),
        cfg: bool | None = typer.Option(None, "--cfg/--no-cfg", help="Classifier-free guidance."),
        dtype: str = typer.Option("fp32", help="fp32 | bf16"),
        attention: str = typer.Option("flash", help="flash | math"),
        variant: str | None = typer.Option(None, help="Model size variant."),
        prompt_len: int | None = typer.Option(None, help="Prompt tokens (autoregressive)."),
        new_tokens: int | None = typer.Option(None, help="Generated tokens (autoregressive)."),
        threads: int = typer.Option(1, help="torch intra-op threads for the run and op model."),
        repeats: int = typer.Option(
            REPEATS, help="Uninstrumented timed passes (the fastest is compared)."
        ),
        min_seconds: float = typer.Option(
            MIN_SECONDS,
            help="More timed passes until they span this long (the VM's slow spells last seconds).",
        ),
        warmup: int = typer.Option(1, help="Plain warm-up passes after the analytic pass."),
        recalibrate: bool = typer.Option(
            False, "--recalibrate", help="Re-measure the op model (stored in cpu-local)."
        ),
        force: bool = typer.Option(False, "--force", help="Skip the memory guard."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    ) -> None:
        """Predicted (analytic on cpu-local) vs measured, per category and end to end."""
        from genscope.measure.validate import VALIDATION_PLAN, validate_workload

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

        def progress(msg: str) -> None:
            print(f"genscope: validate: {msg}", file=sys.stderr, flush=True)

        result = validate_workload(
            workload,
            settings,
            threads=threads,
            plan=replace(VALIDATION_PLAN, repeats=repeats, min_seconds=min_seconds, warmup=warmup),
            recalibrate=recalibrate,
            force=force,
            progress=progress,
        )
        if json_out:
            emit_json(result)
        else:
            print_validation(result)
