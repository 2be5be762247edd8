"""Render report sections into one self-contained HTML page (inline SVG, no network).

Every string that reaches the page goes through ``html.escape``: labels come from workloads,
configs and users, and a label like ``<script>`` must show up as text.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2.2rem;border-bottom:1px solid #ddd}
.label{display:inline-block;font-size:.8rem;padding:.1rem .5rem;border-radius:.6rem;
margin-left:.5rem}
.analytic{background:#e8f0fe;color:#1a4fa0}.measured{background:#e6f4ea;color:#1e6b34}
table{border-collapse:collapse;font-size:.82rem;margin:.6rem 0}
td,th{border:1px solid #ddd;padding:.2rem .45rem;text-align:right}
th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}
figure{margin:.6rem 0}figure svg{max-width:100%;height:auto}
.note{color:#555;font-size:.88rem}.agrees{color:#1e6b34}.diverges{color:#a04b1a}
details{margin:.4rem 0}code{background:#f4f4f4;padding:0 .2rem}
"""


@dataclass
class Section:
    """One report section: a figure with its table, labelled analytic or measured."""

    key: str
    title: str
    label: str  # e.g. "analytic (a100-80g-sxm)" or "measured (cpu)"
    figures: list[Figure] = field(default_factory=list)
    table: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    data_files: list[str] = field(default_factory=list)
    raw_html: str = ""  # pre-escaped HTML built by this module's helpers only


def figure_svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    svg = buf.getvalue()
    return svg[svg.find("<svg") :]


def table_html(df: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    """An escaped HTML table (pandas' to_html escapes cell text by default)."""
    return df.to_html(index=False, escape=True, border=0, float_format=float_format.format)


def render_section(sec: Section) -> str:
    kind = "measured" if sec.label.startswith("measured") else "analytic"
    parts = [
        f'<section id="{html.escape(sec.key)}"><h2>{html.escape(sec.title)}'
        f'<span class="label {kind}">{html.escape(sec.label)}</span></h2>'
    ]
    parts += [f'<figure class="figure">{figure_svg(f)}</figure>' for f in sec.figures]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in sec.notes]
    if sec.raw_html:
        parts.append(sec.raw_html)
    if sec.table is not None:
        parts.append(f"<details open><summary>table</summary>{table_html(sec.table)}</details>")
    if sec.data_files:
        links = ", ".join(
            f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in sec.data_files
        )
        parts.append(f'<p class="note">data: {links}</p>')
    parts.append("</section>")
    return "\n".join(parts)


def render_page(title: str, intro: list[str], sections: list[Section], footer: str) -> str:
    toc = "".join(
        f'<li><a href="#{html.escape(s.key)}">{html.escape(s.title)}</a></li>' for s in sections
    )
    body = "\n".join(render_section(s) for s in sections)
    intro_html = "".join(f"<p>{html.escape(p)}</p>" for p in intro)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{intro_html}<ul>{toc}</ul>{body}"
        f'<footer class="note">{html.escape(footer)}</footer></body></html>'
    )
