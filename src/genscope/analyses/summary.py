"""Run summaries: the totals the CLI prints and ``summary.json`` stores."""

from __future__ import annotations

from typing import Any

import pandas as pd

from genscope.costmodel.gpu import GpuPrediction
from genscope.schema import total

ATTENTION_GROUPS = ("self", "cross", "spatial", "temporal", "joint", "text")


def _block(df: pd.DataFrame) -> dict[str, float]:
    return {
        "flops": int(total(df, "flops").sum()),
        "bytes": int((total(df, "bytes_read") + total(df, "bytes_written")).sum()),
        "time_s": float(total(df, "predicted_s").sum()),
        "roofline_s": float(total(df, "roofline_s").sum()),
    }


def summarize(events: pd.DataFrame) -> dict[str, Any]:
    """Totals by component, category and attention kind/axis, plus sequence-length range."""
    whole = _block(events)
    time_all = whole["time_s"] or 1.0
    by_category = {}
    for cat, df in events.groupby("category", sort=True):
        block = _block(df)
        by_category[str(cat)] = block | {"share": block["time_s"] / time_all}
    attn = events[events["category"] == "attention"]
    attention = {}
    # "unknown" (a bring-your-own call whose axis the shapes do not decide) only when present,
    # so suite results keep exactly their six groups
    unknown = ("unknown",) if (attn["attn_axis"] == "unknown").any() else ()
    for group in (*ATTENTION_GROUPS, *unknown):
        col = "attn_kind" if group in ("self", "cross") else "attn_axis"
        sel = attn[attn[col] == group]
        attention[group] = {k: v for k, v in _block(sel).items() if k != "bytes"}
    seq = attn["q_len"].dropna().astype(int)
    return {
        "flops_total": whole["flops"],
        "bytes_total": whole["bytes"],
        "predicted_s": whole["time_s"],
        "roofline_s": whole["roofline_s"],
        "by_component": {str(c): _block(df) for c, df in events.groupby("component", sort=False)},
        "by_category": by_category,
        "attention": attention,
        "seq_len": {
            "min": int(seq.min()) if len(seq) else None,
            "max": int(seq.max()) if len(seq) else None,
            "distinct": sorted(int(s) for s in seq.unique()),
        },
    }


def time_model_summary(summary: dict[str, Any], prediction: GpuPrediction | None) -> dict[str, Any]:
    """What ``predicted_s`` of the run means, and on a GPU spec the host timeline's figures.

    On a GPU spec the run's ``predicted_s`` is the end-to-end wall time of the host timeline
    (kernels plus the gaps where the GPU waits on Python and launches); ``kernel_s`` is the
    sum of predicted kernel times (what ``by_category`` splits), ``roofline_s`` the bound.
    """
    if prediction is None:
        return {"time_model": "roofline", "kernel_s": summary["predicted_s"]}
    steps = prediction.steps_json()
    return {
        "time_model": "gpu (kernel model + host timeline)",
        "predicted_s": prediction.predicted_s,
        "kernel_s": summary["predicted_s"],
        "roofline_s": prediction.roofline_s,
        "busy_s": prediction.busy_s,
        "idle_s": prediction.idle_s,
        "host_bound_share": prediction.host_bound_share,
        "predicted_idle": {
            "definition": (
                "device idle = wall − busy on the predicted host timeline: the GPU waits for "
                "Python, dispatch and launches (Lee et al.'s GPU idle)"
            ),
            "by_phase": prediction.to_json()["by_phase"],
            "by_step": [s for s in steps if s.get("step", -1) >= 0],
        },
    }
