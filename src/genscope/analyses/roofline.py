"""Arithmetic intensity per op and per phase, placed against GPU ridge points.

Diffusion denoise steps behave like LLM prefill (many tokens per weight read: high intensity,
compute-bound); autoregressive token steps like decode (one token per weight read: low
intensity, memory-bound).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from genscope.costmodel.hardware import HardwareSpec
from genscope.schema import total


def phase_intensity(
    runs: dict[str, pd.DataFrame], hw: list[HardwareSpec], dtype: str
) -> pd.DataFrame:
    """Per (run, component, phase): FLOPs, bytes, intensity, and bound on each spec's ridge."""
    rows = []
    for label, ev in runs.items():
        work = ev[ev["unit"] != "none"]
        flops = total(work, "flops").groupby([work["component"], work["phase"]]).sum()
        nbytes = (
            (total(work, "bytes_read") + total(work, "bytes_written"))
            .groupby([work["component"], work["phase"]])
            .sum()
        )
        for (component, phase), f in flops.items():
            b = nbytes[(component, phase)]
            if f == 0:
                continue
            row = {
                "run": label,
                "component": component,
                "phase": phase,
                "flops": int(f),
                "bytes": int(b),
                "intensity": f / b if b else np.inf,
            }
            for spec in hw:
                row[f"bound_{spec.name}"] = (
                    "compute" if row["intensity"] >= spec.ridge(dtype, "matrix") else "memory"
                )
            rows.append(row)
    return pd.DataFrame(rows)


def op_intensity(events: pd.DataFrame) -> pd.DataFrame:
    """Per-op intensity (FLOP/byte) of ops that do arithmetic, with their category."""
    ev = events[(events["flops"] > 0)]
    out = ev[["component", "phase", "category", "op", "flops", "count"]].copy()
    out["bytes"] = ev["bytes_read"] + ev["bytes_written"]
    out["intensity"] = out["flops"] / out["bytes"]
    return out


def ridge_crossing(batch_table: pd.DataFrame, ridge: float) -> int | None:
    """Smallest batch whose intensity reaches the ridge (None if none does)."""
    hit = batch_table[batch_table["intensity"] >= ridge]
    return int(hit["batch"].min()) if len(hit) else None


def plot_roofline(table: pd.DataFrame, hw: list[HardwareSpec], dtype: str, title: str) -> Figure:
    """Classic roofline: attainable FLOP/s vs intensity per spec, phases as points."""
    fig = Figure(figsize=(8, 4.8))
    ax = fig.subplots()
    x = np.logspace(-1, 4, 200)
    for spec in hw:
        peak, bw = spec.peak(dtype, "matrix"), spec.mem_bw
        ax.plot(
            x, np.minimum(peak, x * bw) / 1e12, lw=1.2, label=f"{spec.name} (ridge {peak / bw:.0f})"
        )
    ref = hw[0]
    for _, r in table.iterrows():
        y = min(ref.peak(dtype, "matrix"), r["intensity"] * ref.mem_bw) / 1e12
        ax.scatter(r["intensity"], y, s=18)
        ax.annotate(
            f"{r['run']}:{r['phase']}",
            (r["intensity"], y),
            fontsize=6,
            alpha=0.8,
            xytext=(3, -8),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("attainable TFLOP/s")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
