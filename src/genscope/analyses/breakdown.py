"""Operator-category breakdown: share of (predicted or measured) time per category.

The paper's Fig. "operator breakdown": one stacked bar per model, baseline (math) vs Flash
attention.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from genscope.schema import CATEGORIES, total

#: Stable colours per category across every figure.
CATEGORY_COLORS = {
    "conv": "#4C72B0",
    "linear": "#DD8452",
    "attention": "#C44E52",
    "norm": "#55A868",
    "elementwise": "#8172B3",
    "resample": "#937860",
    "embedding": "#DA8BC3",
    "memory": "#8C8C8C",
    "kv_reorder": "#64B5CD",
    "other": "#CCB974",
}


def category_breakdown(
    runs: dict[str, pd.DataFrame], time_col: str = "predicted_s"
) -> pd.DataFrame:
    """Rows: one per (run label, category) with ``time_s``, ``flops`` and ``share`` of run time."""
    parts = []
    for label, events in runs.items():
        t = total(events, time_col).groupby(events["category"]).sum()
        f = total(events, "flops").groupby(events["category"]).sum()
        df = pd.DataFrame({"time_s": t, "flops": f}).reindex(CATEGORIES, fill_value=0)
        df["share"] = df["time_s"] / df["time_s"].sum()
        df.insert(0, "run", label)
        parts.append(df.rename_axis("category").reset_index())
    return pd.concat(parts, ignore_index=True)


def plot_category_breakdown(table: pd.DataFrame, title: str) -> Figure:
    """Stacked 100% bars, one per run label, categories in a fixed order and colour."""
    wide = table.pivot(index="run", columns="category", values="share").fillna(0)
    wide = wide.reindex(index=list(dict.fromkeys(table["run"])))
    cats = [c for c in CATEGORIES if c in wide.columns and wide[c].sum() > 0]
    fig = Figure(figsize=(max(6.0, 0.9 * len(wide) + 3), 4.2))
    ax = fig.subplots()
    bottom = pd.Series(0.0, index=wide.index)
    for cat in cats:
        ax.bar(
            wide.index, wide[cat] * 100, bottom=bottom * 100, label=cat, color=CATEGORY_COLORS[cat]
        )
        bottom += wide[cat]
    ax.set_ylabel("% of time")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    return fig
