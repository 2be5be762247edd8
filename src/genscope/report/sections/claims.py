"""Report section: The claims table: each paper claim beside genscope's number."""

from __future__ import annotations

from genscope.analyses.claims import CLAIMS, claims_html, claims_table
from genscope.report.context import ReportContext
from genscope.report.html import Section


def claim_row_ids() -> list[str]:
    """The HTML anchor of each claims-table row, in table order (one per claim)."""
    return [f"claim-{c.key}" for c in CLAIMS]


def claims_section(ctx: ReportContext) -> list[Section]:
    table = claims_table(ctx.findings)
    return [
        Section(
            "claims",
            "Claims: the papers beside genscope",
            "analytic + measured",
            raw_html=claims_html(table, claim_row_ids()),
            notes=[
                "Each row: a headline claim, genscope's number with its mode and "
                "hardware, and whether it agrees — with one line on why."
            ],
            data_files=[ctx.write_data("claims", table)],
        )
    ]
