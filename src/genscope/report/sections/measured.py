"""Report section: measured runs on this machine — framework overhead ("idle" on a GPU) per
phase, the Lee et al. finding that token-by-token decoding is dominated by it."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from genscope.measure.passes import PassPlan
from genscope.measure.run import measure_workload
from genscope.report.context import ReportContext
from genscope.report.html import Section
from genscope.workloads.base import Settings

RUNS = (("sd15", Settings(size="tiny", steps=2)), ("chameleon-i2t", Settings(size="tiny")))


def measured_section(ctx: ReportContext) -> list[Section]:

    rows = []
    for name, settings in RUNS:
        r = measure_workload(
            name, settings, plan=PassPlan(repeats=2 if ctx.quick else 3), threads=1
        )
        ctx.runs[f"{name}-measured"] = r
        for phase, b in r.summary["overhead"]["by_phase"].items():
            rows.append(
                {
                    "workload": name,
                    "phase": phase,
                    "overhead_s": b["overhead_s"],
                    "overhead_share": b["share"],
                    "wall_median_s": r.summary["wall_s"]["median"],
                }
            )
    table = pd.DataFrame(rows)
    decode = table[(table.workload == "chameleon-i2t") & (table.phase == "decode")]
    if len(decode) and "decode_idle" not in ctx.findings:  # a GPU prediction takes precedence
        share = float(decode.overhead_share.iloc[0])
        ctx.find(
            "decode_idle",
            share,
            f"{share:.0%} of decode wall time outside op kernels",
            "tiny chameleon-i2t, 1 thread",
            mode="measured (cpu)",
        )
    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    labels = [f"{r.workload}:{r.phase}" for r in table.itertuples()]
    ax.barh(labels, table["overhead_share"] * 100, color="#8C8C8C")
    ax.set_xlabel("% of wall time outside op kernels (framework/Python overhead)")
    ax.set_xlim(0, 100)
    ax.set_title("Overhead per phase — measured (cpu)", fontsize=10)
    fig.tight_layout()
    return [
        Section(
            "measured",
            "Measured: overhead per phase (tiny models on this CPU)",
            "measured (cpu)",
            figures=[fig],
            table=table,
            notes=[
                "On a GPU this time is device idle; on the CPU it is host time not "
                "inside dispatch-level aten ops (profiled pass, one thread)."
            ],
            data_files=[ctx.write_data("measured_overhead", table)],
        )
    ]
