"""Sequence length of every attention call (the paper's TTI/TTV definition of "sequence
length"): distribution, max/min ratio, and values per UNet level."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

_LEVEL = re.compile(r"(down_blocks|up_blocks|mid_block)\.?(\d*)")


def unet_level(module_path: str) -> str:
    """'down_blocks.1.attentions.0.…' → 'down.1'; 'mid_block.…' → 'mid'; else ''."""
    m = _LEVEL.search(module_path)
    if not m:
        return ""
    kind = m.group(1).split("_")[0]
    return "mid" if kind == "mid" else f"{kind}.{m.group(2)}"


def attention_calls(events: pd.DataFrame) -> pd.DataFrame:
    """One row per attention *call* (SDPA rows, or the Q·Kᵀ op of a math-path call)."""
    attn = events[events["category"] == "attention"]
    is_sdpa = attn["op"].str.contains("scaled_dot_product|flash_attention|efficient_attention")
    is_qk = attn["op"].str.contains("baddbmm|bmm") & ~is_sdpa
    # On the math path each call has two GEMMs (Q·Kᵀ, P·V); keep one per call: the softmax row.
    is_softmax = attn["op"].str.contains("softmax")
    calls = attn[is_sdpa | (is_softmax if is_softmax.any() else is_qk)].copy()
    calls["level"] = calls["module_path"].map(unet_level)
    cols = [
        "component",
        "phase",
        "step",
        "module_path",
        "level",
        "attn_kind",
        "attn_axis",
        "q_len",
        "kv_len",
        "heads",
        "head_dim",
        "batch",
        "count",
    ]
    return calls[cols].reset_index(drop=True)


def seqlen_summary(calls: pd.DataFrame) -> dict[str, object]:
    """Weighted distribution of q_len and the max/min ratio (whole run and per component)."""
    q = calls["q_len"].astype(int)
    dist = calls.groupby(q)["count"].sum().sort_index()
    per_comp = {
        str(c): int(df["q_len"].max()) / int(df["q_len"].min())
        for c, df in calls.groupby("component")
    }
    levels = calls[calls["level"] != ""]
    by_level = levels[levels["attn_kind"] == "self"].groupby(["component", "level"])["q_len"].max()
    return {
        "distinct": [int(v) for v in dist.index],
        "calls_per_len": {int(k): int(v) for k, v in dist.items()},
        "max_over_min": int(q.max()) / int(q.min()) if len(q) else float("nan"),
        "max_over_min_by_component": per_comp,
        "self_attention_q_len_by_level": {f"{c}:{lv}": int(v) for (c, lv), v in by_level.items()},
    }


def adjacent_level_ratio(calls: pd.DataFrame, component: str) -> float:
    """Largest ratio between consecutive distinct self-attention lengths in one component
    (the paper's "varies up to 4x" between UNet levels)."""
    lens = sorted(set(calls[(calls.component == component) & (calls.attn_kind == "self")].q_len))
    return max((b / a for a, b in itertools.pairwise(lens)), default=float("nan"))


def plot_seqlen(calls_by_workload: dict[str, pd.DataFrame], title: str, gid: str = "") -> Figure:
    """One row of points per workload, one point per distinct query length. With ``gid``, the
    i-th workload's scatter gets SVG id ``{gid}-{i}`` (for hover text in the report)."""
    fig = Figure(figsize=(7.5, 3.8))
    ax = fig.subplots()
    for i, (_name, calls) in enumerate(calls_by_workload.items()):
        lens = calls["q_len"].astype(float).to_numpy()
        weights = calls["count"].to_numpy()
        uniq = np.unique(lens)
        sizes = [weights[lens == u].sum() for u in uniq]
        sc = ax.scatter(uniq, [i] * len(uniq), s=[10 + 40 * np.log1p(s) for s in sizes], alpha=0.7)
        if gid:
            sc.set_gid(f"{gid}-{i}")
    ax.set_yticks(range(len(calls_by_workload)), list(calls_by_workload), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("attention query length (tokens); marker size ~ log(calls)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
