"""Figures a reader hovers: per-point tooltips for the roofline and sequence-length plots.

Both plots have hundreds of points and a reader wants to know which op a point is. The figures
stay matplotlib SVG (small, printable, no charting library in the page); each scatter gets an
SVG group id and one tooltip line per point, in drawing order, which
:func:`genscope.report.html.render_section` attaches with a few lines of inline script.
Presentation only: times and FLOPs are read from the events as the sections have them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from genscope.analyses.breakdown import CATEGORY_COLORS
from genscope.costmodel.hardware import HardwareSpec
from genscope.schema import CATEGORIES

#: Ops per workload on the interactive roofline: the most time-consuming ones (the rest are
#: in the CSVs); keeps the page small and the plot legible.
TOP_OPS = 25


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.3g} µs"


def _si(v: float, unit: str) -> str:
    for scale, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {p}{unit}"
    return f"{v:.3g} {unit}"


def op_points(runs: dict[str, pd.DataFrame], top: int = TOP_OPS) -> pd.DataFrame:
    """Per workload, its ``top`` ops by total predicted time, one row per (op, module path,
    input shapes, phase) with totals over repeats and the per-call intensity."""
    frames = []
    for name, ev in runs.items():
        work = ev[ev["flops"] > 0].copy()
        if work.empty:
            continue
        work["time_s"] = work["predicted_s"] * work["count"]
        work["total_flops"] = work["flops"] * work["count"]
        work["nbytes"] = (work["bytes_read"] + work["bytes_written"]) * work["count"]
        keys = ["op", "module_path", "input_shapes", "phase", "category"]
        g = (
            work.groupby(keys, dropna=False)
            .agg(
                time_s=("time_s", "sum"),
                flops=("total_flops", "sum"),
                nbytes=("nbytes", "sum"),
                calls=("count", "sum"),
            )
            .reset_index()
        )
        g = g[g["nbytes"] > 0].nlargest(top, "time_s")
        g.insert(0, "workload", name)
        frames.append(g)
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    out["intensity"] = out["flops"] / out["nbytes"]
    return out


def plot_op_roofline(
    ops: pd.DataFrame, spec: HardwareSpec, dtype: str, title: str, gid: str
) -> tuple[Figure, dict[str, list[str]]]:
    """Ops as points on one spec's roofline, coloured by category; returns the figure and its
    hover texts (op, module path, shape, time, FLOPs, intensity) keyed by the scatter's id."""
    fig = Figure(figsize=(8, 4.6))
    ax = fig.subplots()
    x = np.logspace(-2, 4.5, 200)
    peak, bw = spec.peak(dtype, "matrix"), spec.mem_bw
    ax.plot(x, np.minimum(peak, x * bw) / 1e12, lw=1.2, color="#444")
    ax.axvline(peak / bw, ls=":", color="#999", lw=0.8)
    texts: list[str] = []
    if not ops.empty:
        y = np.minimum(peak, ops["intensity"].to_numpy() * bw) / 1e12
        cats = [c for c in CATEGORIES if c in set(ops["category"])]
        cats += sorted(set(ops["category"]) - set(cats))
        color = {c: CATEGORY_COLORS.get(c, "#555555") for c in cats}
        sizes = 8 + 60 * np.sqrt(ops["time_s"] / ops["time_s"].max())
        sc = ax.scatter(
            ops["intensity"],
            y,
            s=sizes,
            c=[color[c] for c in ops["category"]],
            alpha=0.65,
            edgecolors="none",
            zorder=3,  # above the roof line, which would otherwise take the pointer
        )
        sc.set_gid(gid)
        for c in cats:
            ax.scatter([], [], color=color[c], label=c, s=20)
        ax.legend(fontsize=7, loc="lower right", ncol=2)
        texts = [
            f"{r.workload} · {r.phase} · {r.category}\n{r.op}\nmodule: {r.module_path or '—'}"
            f"\nshapes: {r.input_shapes or '—'}\ntime: {_ms(r.time_s)} over {r.calls:,} call(s)"
            f"\n{_si(r.flops, 'FLOP')}, {_si(r.nbytes, 'B')}, {r.intensity:.3g} FLOP/B"
            for r in ops.itertuples()
        ]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel(f"attainable TFLOP/s on {spec.name}")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig, {gid: texts}


def seqlen_hover(
    calls: dict[str, pd.DataFrame], events: dict[str, pd.DataFrame], gid: str
) -> dict[str, list[str]]:
    """Hover texts for :func:`genscope.analyses.seqlen.plot_seqlen`'s points: per workload
    (one scatter each, id ``{gid}-{i}``) and distinct query length (in ``np.unique`` order,
    as plotted): calls, shapes, module paths, and predicted attention time at that length."""
    out: dict[str, list[str]] = {}
    for i, (name, c) in enumerate(calls.items()):
        ev = events[name]
        attn = ev[ev["category"] == "attention"]
        lens = c["q_len"].astype(float).to_numpy()
        texts = []
        for u in np.unique(lens):
            at = c[lens == u]
            here = attn[attn["q_len"].astype(float) == u]
            t = float((here["predicted_s"] * here["count"]).sum())
            shapes = sorted(
                {
                    f"b{r.batch}×h{r.heads}×q{r.q_len}×kv{r.kv_len}×d{r.head_dim}"
                    for r in at.itertuples()
                }
            )
            mods = list(dict.fromkeys(at["module_path"]))
            more = f" (+{len(mods) - 3} more)" if len(mods) > 3 else ""
            texts.append(
                f"{name} · q_len {int(u):,} · {int(at['count'].sum()):,} call(s)\n"
                f"shapes: {', '.join(shapes[:3])}{' …' if len(shapes) > 3 else ''}\n"
                f"module: {', '.join(mods[:3])}{more}\n"
                f"attention time at this length: {_ms(t)}"
            )
        out[f"{gid}-{i}"] = texts
    return out
