"""Figures for lever stacks: the cumulative speedup per workload, one lever at a time."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

#: colour per lever family (fixed, so the same lever looks the same in every figure)
FAMILY_COLORS = {
    "baseline": "#9e9e9e",
    "attention": "#1f77b4",
    "precision": "#ff7f0e",
    "layout": "#8c564b",
    "fusion": "#e377c2",
    "compile": "#2ca02c",
    "quantization": "#d62728",
    "decoding": "#9467bd",
}


def stages_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """Flatten ``StackResult.to_dict()`` s (or bench rows) into one row per stage."""
    rows = []
    for res in results:
        for st in res["stages"]:
            dev = st.get("deviation") or {}
            rows.append(
                {
                    "workload": res["workload"],
                    "stage": st["stage"],
                    "lever": st["lever"],
                    "family": st["family"] or "baseline",
                    "status": st["status"],
                    "counted": st.get("counted", st["status"] in ("baseline", "measured")),
                    "latency_s": st["latency_s"],
                    "throughput": st["throughput"],
                    "throughput_unit": st["throughput_unit"],
                    "speedup": st["speedup"],
                    "speedup_vs_prev": st["speedup_vs_prev"],
                    "speedup_kind": st.get("speedup_kind", ""),
                    "compile_s": st["compile_s"],
                    "peak_delta_bytes": st.get("peak_delta_bytes"),
                    "psnr_db": dev.get("psnr_db"),
                    "max_abs": dev.get("max_abs"),
                    "exact_match": dev.get("exact_match"),
                    "agreement": dev.get("agreement"),
                    "kl_mean": dev.get("kl_mean"),
                    "acceptance_rate": (st.get("stats") or {}).get("acceptance_rate"),
                    "target": res.get("target"),
                }
            )
    return pd.DataFrame(rows)


def plot_levers(stages_df: pd.DataFrame, title: str = "") -> Figure:
    """Cumulative speedup after each lever, one panel per workload (log scale).

    Each bar is the end-to-end speedup vs the workload's baseline once that lever is added to
    all the counted levers before it; the label on top is that lever's own factor (vs the
    previous counted stage). Rejected stages (output outside tolerance) are hatched and not
    counted; skipped levers are left out. A dashed line marks the target, if the frame has one.
    """
    df = stages_df[stages_df["status"] != "skipped"].dropna(subset=["speedup"])
    workloads = list(dict.fromkeys(df["workload"]))
    n = max(1, len(workloads))
    fig = Figure(figsize=(max(5.0, 4.6 * n), 4.2))
    axes = [fig.add_subplot(1, n, i + 1) for i in range(n)]
    for ax, wl in zip(axes, workloads, strict=False):
        sub = df[df["workload"] == wl].sort_values("stage")
        xs = range(len(sub))
        colors = [FAMILY_COLORS.get(f, "#555555") for f in sub["family"]]
        bars = ax.bar(xs, sub["speedup"], color=colors, edgecolor="black", linewidth=0.5)
        for bar, (_, row) in zip(bars, sub.iterrows(), strict=False):
            if not row["counted"]:
                bar.set_hatch("//")
                bar.set_alpha(0.45)
            factor = row["speedup_vs_prev"]
            label = "1x" if row["lever"] == "baseline" else f"×{factor:.2f}"
            if row.get("speedup_kind", "").startswith("throughput"):
                label += "\n(thr.)"
            ax.annotate(
                label,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
        target = sub["target"].dropna()
        if len(target):
            ax.axhline(float(target.iloc[0]), ls="--", color="black", lw=0.8)
            ax.annotate(
                f"target {float(target.iloc[0]):g}x",
                (len(sub) - 0.5, float(target.iloc[0])),
                ha="right",
                va="bottom",
                fontsize=7,
            )
        ax.set_yscale("log", base=2)
        top = max(float(sub["speedup"].max()), float(target.max()) if len(target) else 1.0)
        ax.set_ylim(
            min(0.5, float(sub["speedup"].min()) / 1.3), 2 ** math.ceil(math.log2(top * 1.6))
        )
        ax.set_xticks(list(xs), list(sub["lever"]), rotation=45, ha="right", fontsize=8)
        ax.set_title(wl, fontsize=10)
        ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:g}x")
    axes[0].set_ylabel("cumulative speedup vs baseline")
    fig.text(
        0.01, 0.01, "hatched: not counted (rejected: output outside tolerance; or a ~branch)",
        fontsize=7, color="#555555",
    )  # fmt: skip
    fig.suptitle(title or "Optimization levers, applied cumulatively — measured", fontsize=11)
    fig.tight_layout()
    return fig


def plot_lee(table: pd.DataFrame, title: str = "") -> Figure:
    """Stacked-lever speedup per Lee et al. configuration: ours vs the paper's bars, at batch 1
    and at the largest feasible batch (log scale; 1x marked)."""
    fig = Figure(figsize=(9, 0.55 * len(table) + 2.2))
    ax = fig.subplots()
    bars = (
        ("speedup_bs1", "predicted, batch 1", "#1f77b4", None),
        ("paper_bs1", "paper, batch 1", "#1f77b4", "//"),
        ("speedup_max_batch", "predicted, largest batch", "#d62728", None),
        ("paper_max_batch", "paper, largest batch", "#d62728", "//"),
    )
    height = 0.8 / len(bars)
    for k, (col, label, color, hatch) in enumerate(bars):
        y = [i + (k - 1.5) * height for i in range(len(table))]
        ax.barh(y, table[col], height=height, color=color, hatch=hatch, label=label,
                alpha=1.0 if hatch is None else 0.35, edgecolor=color)  # fmt: skip
    ax.set_yticks(range(len(table)))
    labels = zip(table["config"], table["max_batch"], strict=True)
    ax.set_yticklabels([f"{c} (max bs {b})" for c, b in labels])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ticks = [1, 2, 5, 10, 20]
    ax.set_xticks(ticks, [f"{t}x" for t in ticks])
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xlabel("stacked speedup over the reference run (SDPA run; HSTU: PyTorch), log scale")
    ax.legend(loc="upper center", bbox_to_anchor=(0.4, -0.12), ncol=2, fontsize=8)
    ax.set_title(title or "Lee et al.'s stacked levers")
    fig.tight_layout()
    return fig
