"""Render report sections into one self-contained HTML page (inline SVG, no network).

Every string that reaches the page goes through ``html.escape``: labels come from workloads,
configs and users, and a label like ``<script>`` must show up as text.

Tables are for reading beside a figure, not for data export (that is ``data/*.csv``): they are
collapsed by default and their numbers are formatted with units (:func:`format_table`). Figures
stay static SVG; a figure can carry per-point hover text (:attr:`Section.hover`), shown by a few
lines of inline script, so the page stays small and needs no charting library or network.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

from genscope.schema import EVENT_COLUMNS

CSS = """
body{font-family:system-ui,sans-serif;margin:1.2rem auto;max-width:1100px;color:#222;
line-height:1.4;padding:0 1rem}
h1{font-size:1.5rem;margin:.2rem 0}
h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.intro{margin:.2rem 0;color:#444;font-size:.9rem}
.label{display:inline-block;font-size:.8rem;padding:.1rem .5rem;border-radius:.6rem;
margin-left:.5rem;font-weight:normal}
.analytic{background:#e8f0fe;color:#1a4fa0}.measured{background:#e6f4ea;color:#1e6b34}
table{border-collapse:collapse;font-size:.82rem;margin:.6rem 0}
td,th{border:1px solid #ddd;padding:.2rem .45rem;text-align:right;white-space:nowrap}
.table-wrap{overflow-x:auto;max-width:100%}#claims td,#claims th{white-space:normal}
th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}
figure{margin:.4rem 0}figure svg{max-width:100%;height:auto}
.note{color:#555;font-size:.88rem;margin:.3rem 0}.agrees{color:#1e6b34}
.diverges{color:#a04b1a}
details{margin:.4rem 0}summary{cursor:pointer;color:#1a4fa0;font-size:.88rem}
code{background:#f4f4f4;padding:0 .2rem}
#findings{border:1px solid #cfd8e3;background:#f8fafc;border-radius:.4rem;padding:.5rem .9rem;
margin:.6rem 0;display:grid;grid-template-columns:1fr 1.35fr;gap:0 1.6rem;font-size:.86rem}
#findings h2{grid-column:1/-1;margin:.1rem 0 .2rem;font-size:1rem;border:0}
#findings h3{font-size:.9rem;margin:.2rem 0}#findings ul{margin:0;padding-left:1.1rem}
#findings .settings{grid-column:1/-1;color:#555;font-size:.8rem;margin:.3rem 0 0}
nav.toc{font-size:.8rem;color:#555;margin:.3rem 0}nav.toc a{white-space:nowrap}
#hover-tip{position:fixed;pointer-events:none;background:#fffbe6;border:1px solid #b8a040;
padding:.3rem .5rem;font-size:.78rem;white-space:pre;display:none;z-index:9;
box-shadow:0 1px 4px #0003}
.hoverable svg{pointer-events:none}.hoverable [data-hover]{pointer-events:all;cursor:crosshair}
@media print{
body{max-width:none;margin:0;font-size:10pt;padding:0}nav.toc,#hover-tip,summary{display:none}
details::details-content{content-visibility:visible;display:contents}
section{break-inside:auto}h2{break-after:avoid}figure{break-inside:avoid}
table{font-size:7.5pt;break-inside:auto}.table-wrap{overflow:visible}
td,th{white-space:normal}tr{break-inside:avoid}a{color:inherit}
#findings{break-inside:avoid;background:none}
}
"""

#: Hover tooltips and print expansion: every ``.hoverable`` figure has a JSON list of lines,
#: one per plotted point in drawing order; the points are the figure's ``<use>``/``<path>``
#: elements inside the group whose id is the figure's hover id. Before printing, every
#: ``<details>`` opens (browsers without ``::details-content`` would print them closed).
SCRIPT = """
(function(){
const tip=document.getElementById('hover-tip');
document.querySelectorAll('script.hover-data').forEach(function(s){
  const texts=JSON.parse(s.textContent);const g=document.getElementById(s.dataset.for);
  if(!g)return;
  const pts=Array.from(g.querySelectorAll('use,path')).filter(function(e){
    return !e.closest('defs');});
  pts.forEach(function(p,i){if(i>=texts.length)return;p.dataset.hover=texts[i];
    p.addEventListener('mouseenter',function(ev){tip.textContent=texts[i];
      tip.style.display='block';tip.style.left=(ev.clientX+12)+'px';
      tip.style.top=(ev.clientY+12)+'px';});
    p.addEventListener('mouseleave',function(){tip.style.display='none';});});
});
let opened=[];
addEventListener('beforeprint',function(){opened=Array.from(
  document.querySelectorAll('details:not([open])'));opened.forEach(function(d){d.open=true;});});
addEventListener('afterprint',function(){opened.forEach(function(d){d.open=false;});});
})();
"""


@dataclass
class Section:
    """One report section: a figure with its table, labelled analytic or measured.

    ``hover`` maps an SVG group id (set with ``artist.set_gid``) to one tooltip text per
    point of that artist, in drawing order.
    """

    key: str
    title: str
    label: str  # e.g. "analytic (a100-80g-sxm)" or "measured (cpu)"
    figures: list[Figure] = field(default_factory=list)
    table: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    data_files: list[str] = field(default_factory=list)
    raw_html: str = ""  # pre-escaped HTML built by this module's helpers only
    hover: dict[str, list[str]] = field(default_factory=dict)


def figure_svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    svg = buf.getvalue()
    return svg[svg.find("<svg") :]


# ---------------------------------------------------------------------------- number formatting
_SCHEMA_UNITS = {c.name: c.unit for c in EVENT_COLUMNS if c.unit}
_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def column_unit(name: str) -> str:
    """The unit of a table column: the schema's for its own columns, else from the name
    (``*_s`` seconds, ``*bytes*`` B, ``*flops*`` FLOP, ``*share*`` a fraction shown in %)."""
    n = name.lower()
    if n in _SCHEMA_UNITS:
        return _SCHEMA_UNITS[n]
    if "share" in n or n.endswith("_frac") or n.startswith("fraction"):
        return "%"
    if n.endswith("_s") or n in ("seconds", "time", "wall"):
        return "s"
    if "bytes" in n:
        return "B"
    if "flops" in n:
        return "FLOP"
    return ""


def _plain(v: float) -> str:
    """A number for reading: integers with thousands separators, floats to 4 significant
    digits, and no exponent notation short of extreme magnitudes."""
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    a = abs(v)
    if a >= 1e6:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:,.4g}" if a < 1e4 else f"{v:,.0f}"
    if a >= 1e-4:
        return f"{v:.4f}".rstrip("0").rstrip(".")
    return f"{v:.3g}".replace("e-0", "e-")


def format_value(v: object, unit: str) -> str:
    """One cell: SI-prefixed FLOP and B (TFLOP, GB), seconds in s/ms/µs, shares in %."""
    if v is None or isinstance(v, bool) or not isinstance(v, int | float):
        try:
            if pd.isna(v):  # type: ignore[arg-type]
                return "—"
        except (TypeError, ValueError):
            pass
        return str(v)
    x = float(v)
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞"
    if unit == "%":
        return f"{x * 100:.1f} %"
    if unit == "s":
        a = abs(x)
        if a == 0:
            return "0"
        if a >= 1:
            return f"{x:,.3g} s" if a < 1000 else f"{x:,.0f} s"
        if a >= 1e-3:
            return f"{x * 1e3:.3g} ms"
        return f"{x * 1e6:.3g} µs"
    if unit in ("FLOP", "B"):
        for scale, prefix in _PREFIXES:
            if abs(x) >= scale:
                return f"{x / scale:.3g} {prefix}{unit}"
        return f"{_plain(x)} {unit}"
    return _plain(x)


def format_table(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` as display strings, each column formatted by :func:`column_unit`."""
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        unit = column_unit(str(col))
        out[col] = [format_value(v, unit) for v in df[col].tolist()]
    return out


def table_html(df: pd.DataFrame) -> str:
    """An escaped HTML table of formatted numbers (pandas' to_html escapes cell text)."""
    body = format_table(df).to_html(index=False, escape=True, border=0)
    return f'<div class="table-wrap">{body}</div>'


#: A run of 7+ digits standing as a number (optionally signed or with decimals), not part of
#: an identifier such as a run id ``20261207-164956-parti-4c143c``.
_DIGITS = re.compile(r"(?<![\w-])-?\d{7,}(?:\.\d+)?(?![\w-])")


def has_raw_long_integer(text: str) -> bool:
    """True if ``text`` holds an unformatted number with more than 6 integer digits."""
    return bool(_DIGITS.search(text))


# ---------------------------------------------------------------------------- page
def _hover_json(texts: list[str]) -> str:
    """JSON safe inside a <script> element (no ``</script>`` can close it early)."""
    return json.dumps(texts).replace("<", "\\u003c").replace(">", "\\u003e")


def render_section(sec: Section) -> str:
    kind = "measured" if sec.label.startswith("measured") else "analytic"
    parts = [
        f'<section id="{html.escape(sec.key)}"><h2>{html.escape(sec.title)}'
        f'<span class="label {kind}">{html.escape(sec.label)}</span></h2>'
    ]
    hoverable = " hoverable" if sec.hover else ""
    parts += [f'<figure class="figure{hoverable}">{figure_svg(f)}</figure>' for f in sec.figures]
    for gid, texts in sec.hover.items():
        parts.append(
            f'<script type="application/json" class="hover-data" '
            f'data-for="{html.escape(gid)}">{_hover_json(texts)}</script>'
        )
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in sec.notes]
    if sec.raw_html:
        parts.append(sec.raw_html)
    if sec.table is not None:
        rows = len(sec.table)
        parts.append(
            f"<details><summary>table ({rows} row{'s' if rows != 1 else ''})</summary>"
            f"{table_html(sec.table)}</details>"
        )
    if sec.data_files:
        links = ", ".join(
            f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in sec.data_files
        )
        parts.append(f'<p class="note">full data (CSV): {links}</p>')
    parts.append("</section>")
    return "\n".join(parts)


def render_page(
    title: str, intro: list[str], sections: list[Section], footer: str, top_html: str = ""
) -> str:
    """The page: title, intro, ``top_html`` (pre-escaped, e.g. the findings block), a compact
    table of contents, the sections, and the hover/print script."""
    toc = " · ".join(
        f'<a href="#{html.escape(s.key)}">{html.escape(s.title)}</a>' for s in sections
    )
    body = "\n".join(render_section(s) for s in sections)
    intro_html = "".join(f'<p class="intro">{html.escape(p)}</p>' for p in intro)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{intro_html}{top_html}"
        f'<nav class="toc">Sections: {toc}</nav>{body}'
        f'<footer class="note">{html.escape(footer)}</footer>'
        f'<div id="hover-tip"></div><script>{SCRIPT}</script></body></html>'
    )
