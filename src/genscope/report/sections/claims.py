"""Report section: The claims table: each paper claim beside genscope's number."""

from __future__ import annotations

from genscope.analyses.claims import claims_html, claims_table
from genscope.report.context import ReportContext
from genscope.report.html import Section


def claims_section(ctx: ReportContext) -> list[Section]:
    table = claims_table(ctx.findings)
    return [
        Section(
            "claims",
            "Claims: the papers beside genscope",
            "analytic + measured",
            raw_html=claims_html(table),
            notes=[
                "Each row: a headline claim, genscope's number with its mode and "
                "hardware, and whether it agrees — with one line on why."
            ],
            data_files=[ctx.write_data("claims", table)],
        )
    ]
