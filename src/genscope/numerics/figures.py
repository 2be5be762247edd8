"""Figures of the numerics tables. Each returns a matplotlib Figure and does no file I/O.

Figures are built on ``matplotlib.figure.Figure`` directly: no pyplot, no global backend
switch, and ``savefig`` renders raster formats with Agg.
Every title says "measured (cpu)": these are real computations on this machine's CPU.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

MEASURED = "measured (cpu)"
_DTYPE_COLORS = {"bf16": "tab:red", "fp16": "tab:orange", "fp32": "tab:blue", "fp64": "tab:green"}
_PAIR_COLORS = {
    "flash_vs_baseline": "tab:blue",
    "seed_a_vs_seed_b": "tab:gray",
    "lowp_vs_fp32": "tab:red",
    "flash_vs_baseline_lowp": "tab:purple",
}


def _positive(s: pd.Series) -> pd.Series:
    """Log axes cannot show 0 (fp64 baseline *is* the golden computation)."""
    return s.where(s > 0)


def _empty(fig: Figure, ax: Axes, what: str) -> Figure:
    ax.text(0.5, 0.5, f"no {what} rows", ha="center", va="center", transform=ax.transAxes)
    return fig


def plot_precision(df: pd.DataFrame) -> Figure:
    """Figs. 3-4: deviation from fp64 golden by format, flash beside baseline."""
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    sub = df[df.experiment == "precision"].sort_values("mantissa_bits")
    if sub.empty:
        return _empty(fig, ax, "precision")
    x = np.arange(len(sub))
    w = 0.27
    ax.bar(x - w, _positive(sub.flash_max), w, label="|flash − golden|", color="tab:blue")
    ax.bar(x, _positive(sub.baseline_max), w, label="|baseline − golden|", color="tab:red")
    ax.bar(x + w, _positive(sub.fvb_max), w, label="|flash − baseline|", color="tab:gray")
    for xi, r in zip(x, sub.itertuples(), strict=True):
        if np.isfinite(r.ratio_max):
            ax.annotate(f"{r.ratio_max:.1f}x", (xi - w, r.flash_max), ha="center", va="bottom")
    ax.set_xticks(x, [f"{r.dtype}\n({r.mantissa_bits} bits)" for r in sub.itertuples()])
    ax.set_yscale("log")
    ax.set_ylabel("max |Δ| of attention output")
    r0 = sub.iloc[0]
    ax.set_title(
        f"Flash vs baseline, deviation from fp64 golden — {MEASURED}\n"
        f"N={r0.seq_len}, d={r0.head_dim}, tile {r0.block_r}x{r0.block_c}, inputs {r0.inputs}",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    return fig


def _log2_ticks(ax: Axes, values: pd.Series) -> None:
    vals = sorted({int(v) for v in values})
    ax.set_xscale("log", base=2)
    ax.set_xticks(vals, [str(v) for v in vals], fontsize=7)
    ax.minorticks_off()


def plot_seq_len(df: pd.DataFrame) -> Figure:
    """Fig. 5: deviation against sequence length at a fixed tile, per format and input."""
    fig = Figure(figsize=(14, 4.3), layout="constrained")
    ax_max, ax_ratio, ax_in = fig.subplots(1, 3)
    seq = df[df.experiment == "seq_len"]
    if seq.empty:
        return _empty(fig, ax_max, "seq_len")
    for dt, g in seq.groupby("dtype", sort=False):
        g = g.sort_values("seq_len")
        c = _DTYPE_COLORS.get(str(dt))
        if dt in ("bf16", "fp16"):
            ax_max.plot(g.seq_len, g.flash_max, "o-", color=c, label=f"flash {dt}")
            ax_max.plot(
                g.seq_len, g.baseline_max, "s--", color=c, alpha=0.6, label=f"baseline {dt}"
            )
        if g.ratio_max.notna().any():
            ax_ratio.plot(g.seq_len, g.ratio_max, "o-", color=c, label=str(dt))
    r0 = seq.iloc[0]
    _log2_ticks(ax_max, seq.seq_len)
    ax_max.set(yscale="log", xlabel="sequence length N", ylabel="max |Δ| vs golden")
    ax_max.set_title(f"(a) max |Δ|, inputs {r0['inputs']}", fontsize=9)
    ax_max.legend(fontsize=7)
    _log2_ticks(ax_ratio, seq.seq_len)
    ax_ratio.axhline(1.0, color="k", lw=0.6)
    ax_ratio.set(yscale="log", xlabel="sequence length N", ylabel="flash max / baseline max")
    ax_ratio.set_title("(b) flash-to-baseline ratio (paper: ~10x at bf16)", fontsize=9)
    ax_ratio.legend(fontsize=7)
    bf = df[(df.dtype == "bf16") & df.experiment.isin(["seq_len", "inputs"])]
    bf = bf.drop_duplicates(["inputs", "seq_len"])
    for (dist, g), marker in zip(bf.groupby("inputs", sort=False), "os^", strict=False):
        g = g.sort_values("seq_len")
        ax_in.plot(g.seq_len, g.flash_max, marker + "-", label=f"{dist} max")
        ax_in.plot(g.seq_len, g.flash_mean, marker + ":", label=f"{dist} mean")
        ax_in.plot(g.seq_len, g.flash_std, marker + "--", alpha=0.5, label=f"{dist} std")
    if not bf.empty:
        _log2_ticks(ax_in, bf.seq_len)
    ax_in.set(yscale="log", xlabel="sequence length N", ylabel="|flash − golden|")
    ax_in.set_title("(c) bf16 flash max / mean / std by input distribution", fontsize=9)
    ax_in.legend(fontsize=7, ncol=3)
    fig.suptitle(
        f"Deviation vs sequence length, tile {r0.block_r}x{r0.block_c} fixed — {MEASURED}",
        fontsize=11,
    )
    return fig


def plot_tile_area(df: pd.DataFrame) -> Figure:
    """Fig. 6: deviation against SRAM size M (tile area), with swapped and square tiles.

    One panel per format, each with its own y-range: the formats span 14 decades.
    """
    area = df[df.experiment == "tile_area"]
    dtypes = list(dict.fromkeys(area.dtype)) or ["-"]
    fig = Figure(figsize=(3.6 * len(dtypes), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(dtypes), squeeze=False)[0])
    if area.empty:
        return _empty(fig, axes[0], "tile_area")
    styles = {
        "tile_area": ("o-", "tile rule"),
        "swap": ("x--", "swapped"),
        "square": ("s:", "square"),
    }
    ticks = area.drop_duplicates("sram_m").sort_values("sram_m")
    for ax, dt in zip(axes, dtypes, strict=True):
        for exp, (style, label) in styles.items():
            g = df[(df.experiment == exp) & (df.dtype == dt)].sort_values("sram_m")
            if not g.empty:
                ax.plot(
                    g.sram_m,
                    _positive(g.flash_max),
                    style,
                    label=label,
                    color=_DTYPE_COLORS.get(dt),
                    alpha=1.0 if exp == "tile_area" else 0.6,
                )
        ax.set_xscale("log", base=2)
        ax.set_xticks(
            ticks.sram_m,
            [
                f"{m}\n{r}x{c}"
                for m, r, c in zip(ticks.sram_m, ticks.block_r, ticks.block_c, strict=True)
            ],
            fontsize=6,
        )
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_title(dt, fontsize=10)
        ax.set_xlabel("M (elements) / B_r x B_c", fontsize=8)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("max |flash − golden|")
    r0 = area.iloc[0]
    fig.suptitle(
        f"Deviation vs tile size, N={r0.seq_len}, d={r0.head_dim} — {MEASURED}", fontsize=11
    )
    return fig


_ABBREV = {
    "down_blocks": "down",
    "up_blocks": "up",
    "mid_block": "mid",
    "attentions": "a",
    "transformer_blocks": "tb",
}


def _short(path: str) -> str:
    """down_blocks.0.attentions.0.transformer_blocks.0.attn1 -> down0.a0.tb0.attn1."""
    out: list[str] = []
    for part in path.split("."):
        if part.isdigit() and out:
            out[-1] += part
        else:
            out.append(_ABBREV.get(part, part))
    return ".".join(out)


def plot_dual_path(df: pd.DataFrame) -> Figure:
    """In-model dual path: flash vs baseline per layer across steps, and per layer vs golden."""
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    ax_step, ax_layer = fig.subplots(1, 2)
    ok = df[df.skipped == ""]
    if ok.empty:
        return _empty(fig, ax_step, "compared attention")
    for path, g in ok.groupby("module_path", sort=False):
        g = g.groupby("step").fvb_max.max()
        ax_step.plot(g.index, g.values, "o-", label=_short(str(path)))
    ax_step.set(yscale="log", xlabel="step (model forward)", ylabel="max |flash − baseline|")
    ax_step.set_xticks(sorted(ok.step.unique()))
    ax_step.legend(fontsize=6)
    layer = ok.groupby("module_path", sort=False)[["flash_max", "baseline_max"]].max()
    x = np.arange(len(layer))
    ax_layer.bar(x - 0.2, layer.flash_max, 0.4, label="|flash − golden|", color="tab:blue")
    ax_layer.bar(x + 0.2, layer.baseline_max, 0.4, label="|baseline − golden|", color="tab:red")
    ax_layer.set_xticks(
        x, [_short(str(p)) for p in layer.index], rotation=60, ha="right", fontsize=7
    )
    ax_layer.set(yscale="log", ylabel="max over steps")
    ax_layer.legend(fontsize=7)
    r0 = ok.iloc[0]
    fig.suptitle(
        f"Dual path per attention call ({r0['dtype']}, tile ≤{r0.block_r}x{r0.block_c}) "
        f"— {MEASURED}",
        fontsize=11,
    )
    return fig


def plot_drift(curves: pd.DataFrame) -> Figure:
    """Fig. 8: weight drift vs training step for each pair (``drift.drift_curves`` table)."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_w, ax_m = fig.subplots(1, 2)
    if curves.empty:
        return _empty(fig, ax_w, "drift")
    for pair, g in curves.groupby("pair", sort=False):
        g = g.sort_values("step")
        c = _PAIR_COLORS.get(str(pair))
        ax_w.plot(g.step, _positive(g.wasserstein_mean), "o-", color=c, label=str(pair))
        ax_m.plot(g.step, _positive(g.max_abs), "o-", color=c, label=str(pair))
    ax_w.set(yscale="log", xlabel="training step", ylabel="Wasserstein-1, mean over layers")
    ax_m.set(yscale="log", xlabel="training step", ylabel="max |Δ weight| over layers")
    ax_w.legend(fontsize=8)
    fig.suptitle(f"Weight drift between training runs, tiny sd15 UNet — {MEASURED}", fontsize=11)
    return fig
