"""Temporal vs spatial attention in video models (paper: temporal attention takes >60% of
attention time in TTV even though it has far fewer FLOPs)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from genscope.costmodel.hardware import HardwareSpec
from genscope.schema import total

AXES = ("spatial", "temporal", "joint")


def temporal_share(
    runs: dict[str, pd.DataFrame], hw: HardwareSpec, dtype: str, time_col: str = "predicted_s"
) -> pd.DataFrame:
    """Per workload and axis: attention time and FLOP shares, and achieved fraction of peak
    (FLOPs / (time · matrix peak)) — low for short-sequence, huge-batch temporal attention."""
    rows = []
    peak = hw.peak(dtype, "matrix")
    for name, ev in runs.items():
        attn = ev[ev["category"] == "attention"]
        t_all = float(total(attn, time_col).sum()) or 1.0
        f_all = float(total(attn, "flops").sum()) or 1.0
        for axis in AXES:
            sel = attn[attn["attn_axis"] == axis]
            if sel.empty:
                continue
            t = float(total(sel, time_col).sum())
            f = float(total(sel, "flops").sum())
            rows.append(
                {
                    "workload": name,
                    "axis": axis,
                    "time_s": t,
                    "time_share": t / t_all,
                    "flops": f,
                    "flop_share": f / f_all,
                    "fraction_of_peak": f / (t * peak) if t else 0.0,
                    "q_len_median": float(sel["q_len"].median()),
                }
            )
    return pd.DataFrame(rows)


def plot_temporal(table: pd.DataFrame, title: str) -> Figure:
    fig = Figure(figsize=(7, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    for ax, col, label in (
        (ax1, "time_share", "share of attention time"),
        (ax2, "flop_share", "share of attention FLOPs"),
    ):
        wide = table.pivot(index="workload", columns="axis", values=col).fillna(0)
        bottom = None
        for axis in [a for a in AXES if a in wide]:
            ax.bar(wide.index, wide[axis] * 100, bottom=bottom, label=axis)
            bottom = wide[axis] * 100 if bottom is None else bottom + wide[axis] * 100
        ax.set_ylabel(f"% {label}")
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax2.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
