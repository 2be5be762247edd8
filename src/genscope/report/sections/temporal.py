"""Report section: Temporal vs spatial attention time in the video workloads."""

from __future__ import annotations

from genscope.analyses import temporal
from genscope.costmodel.hardware import get_hardware
from genscope.report.context import ReportContext
from genscope.report.html import Section
from genscope.workloads.registry import get_workload


def temporal_section(ctx: ReportContext) -> list[Section]:
    flash_runs = ctx.suite("flash")
    video = {n: r.events for n, r in flash_runs.items() if get_workload(n).task in ("ttv", "i2v")}
    if not video:
        return []
    hw = get_hardware(ctx.hardware)
    table = temporal.temporal_share(video, hw, "fp32")
    tem = table[table.axis == "temporal"]
    if len(tem):
        top = tem.loc[tem["time_share"].idxmax()]
        ctx.find(
            "temporal_60pct",
            top["time_share"],
            f"{top['time_share']:.0%} ({top['workload']})",
            f"FLOP share only {top['flop_share']:.1%}; fraction of peak "
            f"{top['fraction_of_peak']:.1%}",
        )
    fig = temporal.plot_temporal(table, f"Temporal vs spatial attention — {ctx.label}")
    return [
        Section(
            "temporal",
            "Temporal vs spatial attention in video models",
            ctx.label,
            figures=[fig],
            table=table,
            data_files=[ctx.write_data("temporal", table)],
        )
    ]
