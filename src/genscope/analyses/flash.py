"""Flash-attention speedup per workload: end to end and attention-only (paper: diffusion TTI
gains 1.1–2.5x more than transformer TTI)."""

from __future__ import annotations

import itertools
import math

import pandas as pd
from matplotlib.figure import Figure

from genscope.schema import total


def _time(events: pd.DataFrame, time_col: str, attention_only: bool = False) -> float:
    ev = events[events["category"] == "attention"] if attention_only else events
    return float(total(ev, time_col).sum())


def flash_speedup(
    pairs: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
    families: dict[str, str],
    tasks: dict[str, str],
    time_col: str = "predicted_s",
) -> pd.DataFrame:
    """One row per workload from (math events, flash events): end-to-end and attention speedups."""
    rows = []
    for name, (math_ev, flash_ev) in pairs.items():
        e2e_m, e2e_f = _time(math_ev, time_col), _time(flash_ev, time_col)
        at_m, at_f = _time(math_ev, time_col, True), _time(flash_ev, time_col, True)
        rows.append(
            {
                "workload": name,
                "family": families[name],
                "task": tasks[name],
                "e2e_math_s": e2e_m,
                "e2e_flash_s": e2e_f,
                "e2e_speedup": e2e_m / e2e_f if e2e_f else math.nan,
                "attention_math_s": at_m,
                "attention_flash_s": at_f,
                "attention_speedup": at_m / at_f if at_f else math.nan,
                "attention_share_math": at_m / e2e_m if e2e_m else math.nan,
            }
        )
    return pd.DataFrame(rows)


DIFFUSION = ("diffusion-unet", "diffusion-dit")
TRANSFORMER = ("masked-token", "autoregressive", "encoder-decoder")


def diffusion_vs_transformer_tti(table: pd.DataFrame) -> dict[str, float]:
    """Ratio of end-to-end flash speedups, every diffusion TTI model over every transformer TTI
    model; the paper reports this ratio as 1.1–2.5x."""
    tti = table[table["task"] == "tti"]
    diff = tti[tti["family"].isin(DIFFUSION)]["e2e_speedup"]
    trans = tti[tti["family"].isin(TRANSFORMER)]["e2e_speedup"]
    ratios = [d / t for d, t in itertools.product(diff, trans)]
    if not ratios:
        return {"min": math.nan, "max": math.nan, "pairs": 0}
    return {"min": min(ratios), "max": max(ratios), "pairs": len(ratios)}


def plot_flash_speedup(table: pd.DataFrame, title: str) -> Figure:
    fig = Figure(figsize=(max(6.0, 0.55 * len(table) + 2), 3.8))
    ax = fig.subplots()
    x = range(len(table))
    ax.bar([i - 0.2 for i in x], table["e2e_speedup"], 0.4, label="end to end", color="#4C72B0")
    ax.bar(
        [i + 0.2 for i in x],
        table["attention_speedup"],
        0.4,
        label="attention only",
        color="#C44E52",
    )
    ax.axhline(1.0, color="#444", lw=0.8)
    ax.set_xticks(list(x), table["workload"], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("speedup (math / flash)")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
