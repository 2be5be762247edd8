"""Scaling with resolution and frames: FLOPs/bytes/time by category, attention score memory
(math vs flash), peak activation memory, and fitted log-log exponents.

Expected (papers.md §1.3): math attention score memory ∝ L^4 in the image side L; temporal
attention ∝ F^2 in the number of frames F.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from genscope.schema import total


def score_matrix_bytes(events: pd.DataFrame) -> int:
    """Largest materialized attention score matrix (B·H·Lq·Lk elements) of one call, in bytes.
    Zero on the flash path, which never writes it."""
    attn = events[(events["category"] == "attention")]
    scores = attn[attn["op"].str.contains("baddbmm|softmax")]
    if scores.empty:
        return 0
    return int(scores["bytes_written"].max())


def point_metrics(events: pd.DataFrame, axis_filter: str | None = None) -> dict[str, float]:
    """Totals for one sweep point; optionally only attention of one axis (e.g. temporal)."""
    out: dict[str, float] = {
        "flops": float(total(events, "flops").sum()),
        "bytes": float((total(events, "bytes_read") + total(events, "bytes_written")).sum()),
        "time_s": float(total(events, "predicted_s").sum()),
        "score_matrix_bytes": float(score_matrix_bytes(events)),
        "peak_activation_bytes": float(events["live_bytes"].max()),
    }
    for cat, t in total(events, "predicted_s").groupby(events["category"]).sum().items():
        out[f"time_s_{cat}"] = float(t)
    for cat, f in total(events, "flops").groupby(events["category"]).sum().items():
        out[f"flops_{cat}"] = float(f)
    attn = events[events["category"] == "attention"]
    for axis, df in attn.groupby("attn_axis"):
        out[f"attn_flops_{axis}"] = float(total(df, "flops").sum())
        out[f"attn_time_s_{axis}"] = float(total(df, "predicted_s").sum())
    return out


def fit_power_law(x: pd.Series | np.ndarray, y: pd.Series | np.ndarray) -> tuple[float, float]:
    """Least-squares fit of log y = a·log x + b; returns (exponent a, R²)."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    ok = np.isfinite(lx) & np.isfinite(ly)
    lx, ly = lx[ok], ly[ok]
    if len(lx) < 2:
        return float("nan"), float("nan")
    a, b = np.polyfit(lx, ly, 1)
    pred = a * lx + b
    ss_res = float(((ly - pred) ** 2).sum())
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    return float(a), 1.0 - ss_res / ss_tot if ss_tot else 1.0


def exponents(table: pd.DataFrame, x: str, columns: list[str]) -> pd.DataFrame:
    rows = []
    for col in columns:
        if col not in table or (table[col] <= 0).all():
            continue
        sub = table[table[col] > 0]
        a, r2 = fit_power_law(sub[x], sub[col])
        rows.append({"x": x, "quantity": col, "exponent": a, "r2": r2, "points": len(sub)})
    return pd.DataFrame(rows)


def plot_scaling(
    table: pd.DataFrame, x: str, columns: list[str], title: str, ylabel: str
) -> Figure:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for col in columns:
        if col in table and (table[col] > 0).any():
            sub = table[table[col] > 0]
            ax.plot(sub[x], sub[col], marker="o", label=col)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
