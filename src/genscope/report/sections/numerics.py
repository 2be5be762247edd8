"""Report sections for the numerics of *Is Flash Attention Stable?* (measured on this CPU)."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from genscope.numerics.drift import DriftConfig, drift_curves, run_drift
from genscope.numerics.experiments import SweepConfig, run_sweep, summarize
from genscope.numerics.figures import plot_drift, plot_precision, plot_seq_len, plot_tile_area
from genscope.report.context import ReportContext
from genscope.report.html import Section

LABEL = "measured (cpu)"


def numerics_section(ctx: ReportContext) -> list[Section]:
    """Deviation sweeps vs the FP64 golden reference, and weight drift of a tiny UNet.

    The report runs reduced grids (documented in the notes); ``genscope numerics sweep`` and
    ``genscope numerics drift`` run the full defaults.
    """
    cfg = SweepConfig()
    if ctx.quick:
        cfg = replace(
            cfg,
            dtypes=("bf16", "fp32"),
            seq_lens=(128, 1024, 4096),  # the headline bf16 ratio is taken at the largest N
            srams=(4096, 16384, 65536),
            area_seq_len=1024,
            experiments=("precision", "seq_len", "tile_area"),  # the three figures
        )
    df = run_sweep(cfg)
    summary = summarize(df, cfg)
    ratio = summary.get("bf16_flash_to_baseline_ratio")
    if ratio is not None:
        ctx.find("flash_10x_bf16", float(ratio), f"{ratio:.1f}x (max |Δ| vs FP64 golden)",
                 "N(0,1) inputs, storage = accumulation = bf16, "
                 f"at {summary.get('precision_at')}", mode=LABEL)  # fmt: skip
    directions = {k: v for k, v in summary.items() if isinstance(v, bool)}
    sections = [
        Section(
            "numerics", "Flash vs baseline attention deviation from an FP64 golden reference",
            LABEL, figures=[plot_precision(df), plot_seq_len(df), plot_tile_area(df)],
            table=pd.DataFrame([{"direction": k, "holds": v} for k, v in directions.items()]),
            notes=["Tiled FlashAttention re-implemented with explicit storage/accumulation "
                   "precision (emulated rounding, identical on any CPU); golden = baseline "
                   "attention in fp64 on the same rounded inputs.",
                   f"Directions of the paper's effects, computed from the data: {directions}",
                   f"Grid here: N = {list(cfg.seq_lens)} (tile M = {cfg.fixed_sram}); "
                   f"M = {list(cfg.srams)} at N = {cfg.area_seq_len}; dtypes "
                   f"{list(cfg.dtypes)}; experiments {list(cfg.experiments)} "
                   "(`genscope numerics sweep` runs the full grid)."],
            data_files=[ctx.write_data("numerics_sweep", df)],
        )
    ]  # fmt: skip
    drift_cfg = DriftConfig(steps=8 if ctx.quick else 60, checkpoints=2 if ctx.quick else 6)
    drift_df, drift = run_drift(drift_cfg)
    ctx.find("drift_2to5x", float(drift["lowp_to_flash_ratio"]),
             f"{drift['lowp_to_flash_ratio']:.1f}x (W1, {drift_cfg.steps} steps)",
             "with bf16 autocast on both attention paths the ratio is "
             f"{drift['lowp_to_flash_ratio_lowp_attention']:.2f}x; CPU flash vs math in fp32 "
             "differ only by fp32 rounding", mode=LABEL)  # fmt: skip
    curves = drift_curves(drift_df)
    sections.append(
        Section(
            "drift", "Weight drift by Wasserstein-1 distance (tiny sd15 UNet training)", LABEL,
            figures=[plot_drift(curves)], table=curves,
            notes=[f"{drift_cfg.steps} training steps here (the `genscope numerics drift` "
                   f"default is {DriftConfig().steps}); summary: "
                   + ", ".join(f"{k}={v}" for k, v in drift.items() if not isinstance(v, dict))],
            data_files=[ctx.write_data("drift", curves)],
        )
    )  # fmt: skip
    return sections
