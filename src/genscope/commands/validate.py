"""``genscope validate W``: the analytic prediction held against a measured run on this CPU."""

from __future__ import annotations

import sys
from dataclasses import replace

import typer
from rich.table import Table

from genscope.commands import options
from genscope.commands._output import emit_json, out_console

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
        workload: options.Workload,
        size: str = typer.Option("tiny", help="tiny | full (full runs real weights here)."),
        res: options.Res = None,
        frames: options.Frames = None,
        steps: options.Steps = None,
        batch: options.Batch = 1,
        cfg: options.Cfg = None,
        dtype: options.Dtype = "fp32",
        attention: options.Attention = "flash",
        variant: options.Variant = None,
        prompt_len: options.PromptLen = None,
        new_tokens: options.NewTokens = None,
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
        force: options.Force = False,
        json_out: options.Json = False,
    ) -> None:
        """Predicted (analytic on cpu-local) vs measured, per category and end to end."""
        from genscope.measure.validate import VALIDATION_PLAN, validate_workload

        settings = options.settings_from(locals())

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
