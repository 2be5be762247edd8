"""Report section: The suite: every workload, its components and parameter counts, and its default
trace.
"""

from __future__ import annotations

import json

import pandas as pd

from genscope.report.context import ReportContext
from genscope.report.html import Section
from genscope.workloads.registry import all_workloads


def suite_section(ctx: ReportContext) -> list[Section]:
    rows = []
    for wl in all_workloads():
        d = wl.describe()
        rows.append(
            {
                "workload": wl.name,
                "task": wl.task,
                "family": wl.family,
                "components": ", ".join(d["components"]),
                "params (B)": sum((c["published_params"] or 0) for c in d["components"].values())
                / 1e9,
                "defaults": json.dumps(d["defaults"]),
                "description": wl.description,
            }
        )
    table = pd.DataFrame(rows)
    return [
        Section(
            "suite",
            "The model suite",
            ctx.label,
            table=table,
            notes=[
                "Every component is built from a shipped config through its "
                "maintained class with random weights; full size on the meta device."
            ],
            data_files=[ctx.write_data("suite", table)],
        )
    ]
