"""``genscope numerics {sweep,model,drift}``: the "Is Flash Attention Stable?" method.

Thin layer over :mod:`genscope.numerics`: parse options, show progress on stderr, print one JSON
object (``--json``) or a short human summary, and write tables and figures with ``--out DIR``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from genscope.commands._output import emit_json, err_console
from genscope.errors import UserError, choices_error
from genscope.store import jsonable

numerics_app = typer.Typer(
    name="numerics",
    help="Numeric deviation of Flash attention (Golden et al. 2024): sweeps, in-model, drift.",
    no_args_is_help=True,
)

#: Workloads ``numerics model`` runs: sd15's tiny UNet, built from its shipped config.
MODEL_WORKLOADS = ("sd15",)


def register(app: typer.Typer) -> None:
    app.add_typer(numerics_app, name="numerics")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def _ints(text: str, what: str) -> tuple[int, ...]:
    """'128,256' -> (128, 256); one-line UserError otherwise."""
    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UserError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not vals:
        raise UserError(f"{what} is empty")
    return vals


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _write(out: Path, tables: dict[str, Any], summary: dict[str, Any], figures: dict) -> None:
    """Tables as CSV, the summary as JSON, figures as PNG (figure functions do no I/O)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False)
    (out / "summary.json").write_text(json.dumps(jsonable(summary), indent=2) + "\n")
    for name, fig in figures.items():
        fig.savefig(out / f"{name}.png", dpi=120)
    names = [f"{t}.csv" for t in tables] + ["summary.json"] + [f"{f}.png" for f in figures]
    err_console.print(f"wrote {', '.join(names)} to {out}")


def _fmt(x: object) -> str:
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


@numerics_app.command("sweep")
def sweep(
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    out: Path | None = typer.Option(None, "--out", help="Write sweep.csv, summary, figures."),
    dtypes: str = typer.Option("bf16,fp16,fp32,fp64", help="Storage formats to sweep."),
    accum: str | None = typer.Option(None, help="Accumulator format (default: as storage)."),
    seq_lens: str = typer.Option("128,256,512,1024,2048,4096", help="Sequence lengths N."),
    fixed_sram: int = typer.Option(8192, help="SRAM size M (elements) for the N sweep."),
    sram: str = typer.Option(
        "4096,8192,16384,32768,65536,131072", help="SRAM sizes M (elements) for the tile sweep."
    ),
    area_seq_len: int = typer.Option(2048, help="N for the tile sweep."),
    heads: int = typer.Option(4, help="Attention heads (vectorized)."),
    head_dim: int = typer.Option(64, help="Head dimension d."),
    inputs: str = typer.Option("normal", help="Q/K/V distribution: normal, uniform, outlier."),
    experiments: str = typer.Option(
        "all", help="Comma list of: precision, seq_len, tile_area, swap, square, accum, ..."
    ),
    seed: int = typer.Option(0, help="Seed of Q, K, V."),
) -> None:
    """Deviation of the flash reference and baseline from an fp64 golden value."""
    from genscope.numerics import figures
    from genscope.numerics.experiments import EXPERIMENTS, SweepConfig, plan, run_cases, summarize

    exps = EXPERIMENTS if experiments.strip() == "all" else _names(experiments)
    cfg = SweepConfig(
        dtypes=_names(dtypes),
        seq_lens=_ints(seq_lens, "--seq-lens"),
        fixed_sram=fixed_sram,
        srams=_ints(sram, "--sram"),
        area_seq_len=area_seq_len,
        heads=heads,
        head_dim=head_dim,
        accum=accum,
        inputs=inputs,
        experiments=exps,
        seed=seed,
    ).validated()
    cases = plan(cfg)
    t0 = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task("numerics sweep", total=len(cases))
        df = run_cases(cases, cfg, lambda case: bar.advance(task))
    summary = summarize(df, cfg)
    summary["seconds"] = time.perf_counter() - t0
    if out is not None:
        figs = {
            "precision": figures.plot_precision(df),
            "seq_len": figures.plot_seq_len(df),
            "tile_area": figures.plot_tile_area(df),
        }
        _write(out, {"sweep": df}, summary, figs)
    if json_out:
        emit_json(summary)
        return
    if "precision" in summary:
        table = Table(title="deviation from fp64 golden (max |Δ|) — measured (cpu)")
        for col in ("dtype", "flash", "baseline", "flash−baseline", "ratio"):
            table.add_column(col)
        for dt, r in summary["precision"].items():  # type: ignore[union-attr]
            table.add_row(
                dt,
                *(
                    _fmt(r[k])
                    for k in (
                        "flash_vs_golden_max",
                        "baseline_vs_golden_max",
                        "flash_vs_baseline_max",
                        "ratio_max",
                    )
                ),
            )
        err_console.print(table)
    if "bf16_flash_to_baseline_ratio" in summary:
        at: dict[str, int] = summary["precision_at"]  # type: ignore[assignment]
        ratio = _fmt(summary["bf16_flash_to_baseline_ratio"])
        err_console.print(
            f"[bold]bf16_flash_to_baseline_ratio[/]: {ratio} at N={at['seq_len']}, "
            f"tile {at['block_r']}x{at['block_c']} (paper: ~10x)"
        )
    if "paper_directions_bf16" in summary:
        err_console.print(f"[bold]paper_directions_bf16[/]: {summary['paper_directions_bf16']}")
    if "bf16_grows_with_seq_len_by_inputs" in summary:
        err_console.print(
            f"[bold]bf16 grows_with_seq_len by inputs[/]: "
            f"{summary['bf16_grows_with_seq_len_by_inputs']}"
        )
    err_console.print(f"{summary['cases']} cases in {summary['seconds']:.1f} s")


@numerics_app.command("model")
def model(
    workload: str = typer.Argument(..., help=f"Workload: {', '.join(MODEL_WORKLOADS)}."),
    size: str = typer.Option("tiny", "--size", help="Model size (only tiny runs for real)."),
    steps: int = typer.Option(4, help="Denoising steps."),
    dtype: str = typer.Option("bf16", help="Format of the flash/baseline references."),
    accum: str | None = typer.Option(None, help="Accumulator format (default: as dtype)."),
    block_r: int = typer.Option(16, help="Row tile (clamped to each call's q_len)."),
    block_c: int = typer.Option(16, help="Column tile (clamped to each call's kv_len)."),
    seed: int = typer.Option(0, help="Seed of latents and text embeddings."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    out: Path | None = typer.Option(None, "--out", help="Write calls.csv, layers.csv, figure."),
) -> None:
    """Flash reference vs baseline on every attention call of a real tiny generation."""
    from genscope.numerics import figures
    from genscope.numerics.dualpath import dual_path, per_layer
    from genscope.numerics.precision import Precision
    from genscope.numerics.tiny_sd15 import build_tiny_unet, generation

    if workload not in MODEL_WORKLOADS:
        raise choices_error("workload for numerics model", workload, list(MODEL_WORKLOADS))
    if size != "tiny":
        raise choices_error("size for numerics model (full sizes live on meta)", size, ["tiny"])
    if steps <= 0:
        raise UserError(f"--steps must be positive, got {steps}")
    prec = Precision.of(dtype, accum)
    unet = build_tiny_unet(seed)
    run = generation(unet, steps, seed=seed)
    t0 = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task(f"{workload} dual path", total=None)
        df = dual_path(
            unet, run, dtype=prec.storage, accum=prec.accum, block_r=block_r, block_c=block_c
        )
        bar.update(task, completed=1, total=1)
    layers = per_layer(df)
    ok = df[df.skipped == ""]
    summary: dict[str, Any] = {
        "measured": "cpu",
        "workload": workload,
        "component": "unet",
        "size": size,
        "steps": steps,
        "dtype": prec.storage,
        "accum": prec.accum,
        "block_r": block_r,
        "block_c": block_c,
        "calls": len(df),
        "skipped": int((df.skipped != "").sum()),
        "max_flash_vs_baseline": float(ok.fvb_max.max()) if len(ok) else None,
        "max_flash_vs_golden": float(ok.flash_max.max()) if len(ok) else None,
        "max_baseline_vs_golden": float(ok.baseline_max.max()) if len(ok) else None,
        "median_flash_to_baseline_ratio": float(ok.ratio_max.median()) if len(ok) else None,
        "max_sdpa_vs_golden": float(ok.sdpa_max.max()) if len(ok) else None,
        "layers": layers.to_dict(orient="records"),
        "seconds": time.perf_counter() - t0,
    }
    if out is not None:
        _write(
            out, {"calls": df, "layers": layers}, summary, {"dual_path": figures.plot_dual_path(df)}
        )
    if json_out:
        emit_json(summary)
        return
    table = Table(title=f"{workload} tiny: worst case per attention layer — measured (cpu)")
    cols = ["module_path", "calls", "q_len", "kv_len", "fvb_max", "flash_max", "baseline_max"]
    for c in cols:
        table.add_column(c)
    for r in layers.to_dict(orient="records"):
        table.add_row(*(_fmt(r[c]) for c in cols))
    err_console.print(table)
    for key in ("calls", "skipped", "median_flash_to_baseline_ratio", "seconds"):
        err_console.print(f"[bold]{key}[/]: {_fmt(summary[key])}")


@numerics_app.command("drift")
def drift(
    steps: int = typer.Option(200, help="Training steps per run."),
    checkpoints: int = typer.Option(10, help="Weight comparisons over the run (plus step 0)."),
    batch: int = typer.Option(8, help="Batch size."),
    lr: float = typer.Option(1e-3, help="AdamW learning rate."),
    low_precision: str = typer.Option("bf16", help="Autocast format of the low-precision run."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    out: Path | None = typer.Option(None, "--out", help="Write drift.csv, curves, figure."),
) -> None:
    """Weight drift of flash vs baseline, seed A vs B, and low precision vs fp32 training."""
    from genscope.numerics import figures
    from genscope.numerics.drift import DriftConfig, drift_curves, run_drift

    cfg = DriftConfig(
        steps=steps, checkpoints=checkpoints, batch=batch, lr=lr, low_precision=low_precision
    ).validated()
    with _progress() as bar:
        task = bar.add_task("training 5 runs in lockstep", total=cfg.steps)
        df, summary = run_drift(cfg, lambda step, losses: bar.update(task, completed=step))
    curves = drift_curves(df)
    if out is not None:
        _write(
            out,
            {"drift": df, "drift_curves": curves},
            summary,
            {"drift": figures.plot_drift(curves)},
        )
    if json_out:
        emit_json(summary)
        return
    for key in (
        "final_wasserstein_mean",
        "lowp_to_flash_ratio",
        "lowp_to_flash_ratio_lowp_attention",
        "flash_bounded_by_seed",
        "paper_ratio",
        "seconds",
    ):
        err_console.print(f"[bold]{key}[/]: {_fmt(summary[key])}")
