"""Report section: End-to-end speedup of flash over math attention per workload."""

from __future__ import annotations

from genscope.analyses import flash
from genscope.report.context import ReportContext
from genscope.report.html import Section
from genscope.workloads.registry import all_workloads


def flash_section(ctx: ReportContext) -> list[Section]:
    math_runs, flash_runs = ctx.suite("math"), ctx.suite("flash")
    wls = {wl.name: wl for wl in all_workloads()}
    pairs = {n: (math_runs[n].events, flash_runs[n].events) for n in flash_runs}
    table = flash.flash_speedup(
        pairs, {n: w.family for n, w in wls.items()}, {n: w.task for n, w in wls.items()}
    )
    ratio = flash.diffusion_vs_transformer_tti(table)
    if ratio["pairs"]:
        ctx.find(
            "flash_diffusion_vs_transformer",
            ratio["max"],
            f"{ratio['min']:.2f}–{ratio['max']:.2f}x over {ratio['pairs']} model pairs",
        )
    fig = flash.plot_flash_speedup(table, f"Flash attention speedup — {ctx.label}")
    return [
        Section(
            "flash",
            "Flash attention speedup",
            ctx.label,
            figures=[fig],
            table=table,
            notes=[
                "Diffusion/transformer TTI speedup ratio (diffusion model's flash gain over a "
                f"transformer's, all pairs): {ratio['min']:.3f}–{ratio['max']:.3f}x over "
                f"{ratio['pairs']} pairs"
                if ratio["pairs"]
                else "Diffusion/transformer TTI speedup ratio: no model pairs"
            ],
            data_files=[ctx.write_data("flash", table)],
        )
    ]
