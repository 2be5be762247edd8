"""The page as a reader sees it, without a browser: tables collapsed, numbers formatted with
units, no long raw integers in table cells, findings counts equal to the claims table."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from genscope.analyses.claims import CLAIMS, claims_table
from genscope.report.build import build_report
from genscope.report.findings import paper_counts
from genscope.report.html import (
    Section,
    format_value,
    has_raw_long_integer,
    render_page,
    table_html,
)


class _Cells(HTMLParser):
    """Text of every table cell (td/th), the numbers a reader sees."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("td", "th"):
            self._depth += 1
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.cells[-1] += data


def cells(page: str) -> list[str]:
    p = _Cells()
    p.feed(page)
    return p.cells


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (569670369280, "FLOP", "570 GFLOP"),
        (2_500_000_000_000, "FLOP", "2.5 TFLOP"),
        (3_221_225_472, "B", "3.22 GB"),
        (6.857e-06, "s", "6.86 µs"),
        (0.0293, "s", "29.3 ms"),
        (0.0293, "%", "2.9 %"),
        (1234567, "", "1,234,567"),
        (0.5, "", "0.5"),
        (float("nan"), "", "—"),
        ("sd15", "", "sd15"),
    ],
)
def test_format_value(value, unit, shown):
    assert format_value(value, unit) == shown


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        ("569670369280", True),
        ("-12345678", True),
        ("1234567.5", True),
        ("flops 569670369280 total", True),
        ("1,234,567", False),
        ("570 GFLOP", False),
        ("123456", False),
        ("20261207-164956-parti-4c143c", False),  # a run id, not a number
    ],
)
def test_has_raw_long_integer(text, raw):
    assert has_raw_long_integer(text) is raw


def test_units_come_from_schema_and_names():
    df = pd.DataFrame(
        {
            "flops": [569670369280],
            "bytes_read": [10**9],
            "predicted_s": [0.002],
            "time_share": [0.25],
            "count": [12345678],
        }
    )
    text = table_html(df)
    for shown in ("570 GFLOP", "1 GB", "2 ms", "25.0 %", "12,345,678"):
        assert shown in text, (shown, text)
    assert not has_raw_long_integer("".join(cells(text)))


def big_numbers(ctx):
    """A section with the raw numbers the report used to print as-is."""
    table = pd.DataFrame(
        {
            "run": ["sd15", "llama"],
            "flops": [569670369280, 1234567890123],
            "bytes": [98765432101, 5555555],
            "count": [1_000_000, 7],
            "share": [0.0293, 0.5],
            "intensity": [6.857e-06, 12345.678],
        }
    )
    ctx.find("conv_share_diffusion", 0.44, "44% (made up)")
    return [
        Section(
            "big", "Big numbers", ctx.label, table=table, data_files=[ctx.write_data("big", table)]
        )
    ]


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("page")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENSCOPE_HOME", str(out / "home"))
        index = build_report(out, builders=[("big", big_numbers)])
    return index.read_text(encoding="utf-8"), out


def test_no_open_details_and_no_raw_integers(page):
    text, _ = page
    assert "<details" in text and "<details open" not in text
    seen = cells(text)
    assert seen, "no table cells"
    raw = [c for c in seen if has_raw_long_integer(c)]
    assert raw == []
    assert "570 GFLOP" in seen and "2.9 %" in seen


def test_every_table_section_links_its_csv(page):
    text, out = page
    for chunk in text.split("<section ")[1:]:
        if "<table" in chunk and 'id="claims"' not in chunk[:40]:
            assert 'href="data/' in chunk, chunk[:80]
    assert (out / "data" / "big.csv").exists()


def test_findings_count_the_claims_csv(page):
    text, out = page
    claims = pd.read_csv(out / "data" / "claims.csv")
    counts = paper_counts(claims)
    assert counts["checked"].sum() == 1 and counts["agrees"].sum() == 1
    for r in counts.itertuples():
        assert f'data-paper="{r.paper}">{r.agrees} of {r.checked}</b>' in text
    assert text.index('id="findings"') < text.index('id="big"')
    assert 'href="#claim-conv_share_diffusion"' in text
    assert 'id="claim-conv_share_diffusion"' in text


def test_render_page_escapes_hover_text():
    sec = Section("s", "S", "analytic", hover={"g": ["</script><b>x</b>"]})
    page = render_page("t", [], [sec], "f")
    assert "</script><b>" not in page and "\\u003c/script" in page


def test_paper_counts_skip_unmeasured():
    table = claims_table({})
    counts = paper_counts(table)
    assert counts["checked"].sum() == 0 and counts["claims"].sum() == len(CLAIMS)
