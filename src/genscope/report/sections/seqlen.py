"""Report section: Attention sequence lengths per workload (Golden et al.: diffusion ≈ prefill, AR
≈ decode).
"""

from __future__ import annotations

import json

import pandas as pd

from genscope.analyses import seqlen
from genscope.report.context import ReportContext
from genscope.report.html import Section
from genscope.report.interactive import seqlen_hover


def seqlen_section(ctx: ReportContext) -> list[Section]:
    flash_runs = ctx.suite("flash")
    calls = {n: seqlen.attention_calls(r.events) for n, r in flash_runs.items()}
    calls = {n: c for n, c in calls.items() if len(c)}
    rows = []
    for n, c in calls.items():
        summ = seqlen.seqlen_summary(c)
        rows.append(
            {
                "workload": n,
                "distinct_q_len": str(summ["distinct"][:12]),
                "max_over_min": summ["max_over_min"],
                "per_level": json.dumps(summ["self_attention_q_len_by_level"]),
            }
        )
    table = pd.DataFrame(rows)
    if "sd15" in calls:
        r = seqlen.adjacent_level_ratio(calls["sd15"], "unet")
        ctx.find("seqlen_4x", r, f"{r:.1f}x between adjacent sd15 UNet levels")
    fig = seqlen.plot_seqlen(calls, f"Attention sequence lengths — {ctx.label}", gid="hv-seqlen")
    hover = seqlen_hover(calls, {n: flash_runs[n].events for n in calls}, "hv-seqlen")
    return [
        Section(
            "seqlen",
            "Sequence length of every attention call",
            ctx.label,
            figures=[fig],
            hover=hover,
            notes=["Hover a point for its calls, shapes, module paths and attention time."],
            table=table,
            data_files=[ctx.write_data("seqlen", table)],
        )
    ]
