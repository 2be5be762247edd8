"""Report section: Operator breakdown by category, baseline (math) vs flash attention (Golden et
al. Fig. 3).
"""

from __future__ import annotations

import pandas as pd

from genscope.analyses.breakdown import category_breakdown, plot_category_breakdown
from genscope.report.context import ReportContext
from genscope.report.html import Section, format_value, table_html
from genscope.schema import CATEGORIES
from genscope.workloads.registry import all_workloads


def breakdown_section(ctx: ReportContext) -> list[Section]:
    ctx.prefetch(ctx.suite_plan("math") | ctx.suite_plan("flash"))
    math_runs, flash_runs = ctx.suite("math"), ctx.suite("flash")
    runs = {}
    for name in flash_runs:
        runs[f"{name} (math)"] = math_runs[name].events
        runs[f"{name} (flash)"] = flash_runs[name].events
    table = category_breakdown(runs)
    flash_only = table[table["run"].str.endswith("(flash)")].copy()
    flash_only["workload"] = flash_only["run"].str.removesuffix(" (flash)")
    fam = {wl.name: wl.family for wl in all_workloads()}
    task = {wl.name: wl.task for wl in all_workloads()}
    flash_only["family"] = flash_only["workload"].map(fam)
    flash_only["task"] = flash_only["workload"].map(task)
    diff = flash_only[(flash_only.task == "tti") & flash_only.family.str.startswith("diffusion")]
    conv = diff[diff.category == "conv"]
    if len(conv):
        top = conv.loc[conv["share"].idxmax()]
        ctx.find(
            "conv_share_diffusion",
            top["share"],
            f"{top['share']:.0%} ({top['workload']})",
            f"conv is {_flop_share(diff, top['workload'], 'conv'):.0%} of {top['workload']}'s "
            "FLOPs; per diffusion TTI model: " + _shares(conv),
        )
    trans = flash_only[(flash_only.task == "tti") & ~flash_only.family.str.startswith("diffusion")]
    lin = trans[trans.category == "linear"]
    if len(lin):
        top = lin.loc[lin["share"].idxmax()]
        ctx.find(
            "linear_share_transformer",
            top["share"],
            f"{top['share']:.0%} ({top['workload']})",
            "per transformer TTI model: " + _shares(lin),
        )
    figs = [
        plot_category_breakdown(
            table[table["run"].str.endswith("(math)")], f"Baseline (math) attention — {ctx.label}"
        ),
        plot_category_breakdown(
            table[table["run"].str.endswith("(flash)")], f"Flash attention — {ctx.label}"
        ),
    ]
    if ctx.gpu:  # the bound beside the prediction
        bound = category_breakdown(
            {k: v for k, v in runs.items() if k.endswith("(flash)")}, time_col="roofline_s"
        )
        figs.append(
            plot_category_breakdown(
                bound, f"Flash attention — roofline bound on {ctx.hardware} ({ctx.dtype})"
            )
        )
    return [
        Section(
            "breakdown",
            "Operator-category breakdown: baseline vs Flash attention",
            ctx.label,
            figures=figs,
            table=share_pivot(table, "flash"),
            raw_html=(
                "<details><summary>table: baseline (math) attention</summary>"
                f"{table_html(share_pivot(table, 'math'))}</details>"
            ),
            notes=[
                "Share of predicted end-to-end time per operator category, each "
                f"workload at its default settings ({ctx.dtype}); llama is the LLM reference."
            ],
            data_files=[ctx.write_data("breakdown", table)],
        )
    ]


def share_pivot(table: pd.DataFrame, attention: str) -> pd.DataFrame:
    """For reading beside the figure: workload × category (one row per bar of the figure,
    categories in the figure's order, all-zero ones left out), each cell the category's share
    of the workload's time in %. The long table, with times and FLOPs, is breakdown.csv."""
    runs = table[table["run"].str.endswith(f"({attention})")]
    wide = runs.pivot(index="run", columns="category", values="share").fillna(0.0)
    wide = wide.reindex(index=list(dict.fromkeys(runs["run"])))
    wide.index = [str(r).removesuffix(f" ({attention})") for r in wide.index]
    cats = [c for c in CATEGORIES if c in wide.columns] + sorted(
        set(wide.columns) - set(CATEGORIES)
    )
    wide = wide[[c for c in cats if wide[c].sum() > 0]]
    cells = wide.map(lambda v: format_value(v, "%"))
    cells.insert(0, f"workload ({attention})", cells.index)
    return cells.reset_index(drop=True)


def _shares(rows: pd.DataFrame) -> str:
    """``"imagen 66%, sd15 44%, …"``, largest first."""
    ordered = rows.sort_values("share", ascending=False)
    return ", ".join(f"{r.workload} {r.share:.0%}" for r in ordered.itertuples())


def _flop_share(rows: pd.DataFrame, workload: str, category: str) -> float:
    """The category's share of the workload's FLOPs (whatever its kernels make of them)."""
    mine = rows[rows["workload"] == workload]
    total = float(mine["flops"].sum())
    return float(mine.loc[mine["category"] == category, "flops"].sum()) / total if total else 0.0
