"""Autoregressive decoding (Lee et al.): per-step latency composition, KV-cache growth, and the
linear vs attention balance as batch grows."""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from genscope.analyses.breakdown import CATEGORY_COLORS
from genscope.schema import total


def _shape(text: str, index: int) -> tuple[int, ...]:
    parts = [p for p in text.split(";") if p]
    return tuple(int(x) for x in parts[index].strip("[]").split(",")) if len(parts) > index else ()


def step_composition(events: pd.DataFrame, time_col: str = "predicted_s") -> pd.DataFrame:
    """Per decode step: time per category (rows: step; columns: categories)."""
    ev = events[events["phase"].isin(["prefill", "decode"])]
    t = total(ev, time_col).groupby([ev["step"], ev["category"]]).sum().unstack(fill_value=0.0)
    return t.reset_index()


def kv_cache_bytes(events: pd.DataFrame) -> pd.DataFrame:
    """KV bytes attention reads per step (the cache size): K and V inputs of each attention
    call, summed per step. Works for SDPA rows (inputs: Q;K;V) and math rows (Kᵀ / V GEMMs)."""
    attn = events[(events["category"] == "attention") & events["phase"].isin(["prefill", "decode"])]
    sdpa = attn[attn["op"].str.contains("scaled_dot_product|flash|efficient")]
    itemsize = {"fp32": 4, "bf16": 2, "fp16": 2}
    rows = []
    for step, df in sdpa.groupby("step"):
        size = sum(
            (math.prod(_shape(s, 1)) + math.prod(_shape(s, 2))) * itemsize.get(d, 4)
            for s, d in zip(df["input_shapes"], df["dtype"], strict=True)
        )
        rows.append({"step": int(step), "kv_len": int(df["kv_len"].max()), "kv_bytes": size})
    return pd.DataFrame(rows)


def linear_attention_share(runs_by_batch: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Decode-phase time share of linear vs attention as batch grows."""
    rows = []
    for batch, ev in sorted(runs_by_batch.items()):
        dec = ev[ev["phase"] == "decode"]
        t = total(dec, "predicted_s")
        whole = float(t.sum()) or 1.0
        by = t.groupby(dec["category"]).sum()
        work = dec[dec["unit"] != "none"]
        f = float(total(work, "flops").sum())
        b = float((total(work, "bytes_read") + total(work, "bytes_written")).sum())
        rows.append(
            {
                "batch": batch,
                "linear_share": float(by.get("linear", 0.0)) / whole,
                "attention_share": float(by.get("attention", 0.0)) / whole,
                "decode_time_s": whole,
                "intensity": f / b if b else math.nan,
            }
        )
    return pd.DataFrame(rows)


def plot_decode(comp: pd.DataFrame, kv: pd.DataFrame, title: str) -> Figure:
    fig = Figure(figsize=(9, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    cats = [c for c in comp.columns if c != "step"]
    ax1.stackplot(comp["step"], *[comp[c] * 1e3 for c in cats], labels=cats)
    ax1.set_xlabel("step (0 = prefill)")
    ax1.set_ylabel("predicted ms per step")
    ax1.set_yscale("symlog", linthresh=0.01)
    ax1.legend(fontsize=6, loc="upper right")
    if not kv.empty:
        ax2.plot(kv["kv_len"], kv["kv_bytes"] / 2**20)
    ax2.set_xlabel("KV length (tokens)")
    ax2.set_ylabel("KV cache read per step (MiB)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_decode_grid(panels: dict[str, tuple[pd.DataFrame, pd.DataFrame]], title: str) -> Figure:
    """Small multiples of :func:`plot_decode`: one column per workload (``name → (composition,
    kv)``), time per step on top and KV-cache read below, one shared legend, so workloads are
    compared at a glance instead of one figure each."""
    n = max(len(panels), 1)
    fig = Figure(figsize=(min(2.4 * n, 12.5), 5.0))
    axes = fig.subplots(2, n, squeeze=False)
    cats: list[str] = []
    for comp, _kv in panels.values():
        cats += [c for c in comp.columns if c != "step" and c not in cats]
    colors = {c: CATEGORY_COLORS.get(c, "#555555") for c in cats}
    for j, (name, (comp, kv)) in enumerate(panels.items()):
        top, bottom = axes[0][j], axes[1][j]
        here = [c for c in cats if c in comp.columns]
        top.stackplot(
            comp["step"], *[comp[c] * 1e3 for c in here], colors=[colors[c] for c in here]
        )
        top.set_yscale("symlog", linthresh=0.01)
        top.set_title(name, fontsize=9)
        top.set_xlabel("step (0 = prefill)", fontsize=7)
        if not kv.empty:
            bottom.plot(kv["kv_len"], kv["kv_bytes"] / 2**20, color="#444")
        bottom.set_xlabel("KV length (tokens)", fontsize=7)
        for ax in (top, bottom):
            ax.tick_params(labelsize=6)
    axes[0][0].set_ylabel("predicted ms per step", fontsize=7)
    axes[1][0].set_ylabel("KV cache read per step (MiB)", fontsize=7)
    handles = [Patch(color=colors[c], label=c) for c in cats]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(cats), 8), fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
