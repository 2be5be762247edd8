"""The findings block at the top of the report: the bottom line before the first figure.

It says, per paper, how many claims agree out of those checked (read from the claims table the
page builds, so the two cannot disagree), gives the headline numbers with the mode and hardware
each was obtained on (from the findings the sections recorded), and the settings and versions
of the build. Everything is escaped here; the block links to the claims-table rows.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

import pandas as pd

from genscope.analyses.claims import CLAIMS, Finding

#: (reader's label, finding key) for the suite's headline numbers, in display order.
HEADLINES: tuple[tuple[str, str], ...] = (
    ("Conv share of diffusion TTI time (after Flash)", "conv_share_diffusion"),
    ("Flash gain, diffusion vs transformer TTI", "flash_diffusion_vs_transformer"),
    ("Temporal attention share of video models", "temporal_60pct"),
    ("Idle (outside-kernel) share of decode", "decode_idle"),
    ("Levers speedup on Chameleon decode", "levers_388"),
    ("Flash vs math deviation at bf16", "flash_10x_bf16"),
)


def paper_counts(claims: pd.DataFrame) -> pd.DataFrame:
    """Per paper: claims checked (agrees or diverges; 'not measured' is not checked) and
    claims agreeing, in the papers' first-appearance order."""
    papers = list(dict.fromkeys(claims["paper"]))
    rows = []
    for p in papers:
        v = claims.loc[claims["paper"] == p, "verdict"]
        rows.append(
            {
                "paper": p,
                "agrees": int((v == "agrees").sum()),
                "checked": int(v.isin(["agrees", "diverges"]).sum()),
                "claims": len(v),
            }
        )
    return pd.DataFrame(rows)


_MARK = {"agrees": "✓", "diverges": "✗"}


def _claim_link(row_id: str, row: pd.Series) -> str:
    """A one-character link to a claims-table row: ✓ agrees, ✗ diverges, – not measured."""
    v = str(row["verdict"])
    return (
        f'<a href="#{html.escape(row_id)}" class="{html.escape(v.replace(" ", "-"))}" '
        f'title="{html.escape(str(row["claim"]))}">{_MARK.get(v, "–")}</a>'
    )


def findings_html(
    claims: pd.DataFrame,
    row_ids: list[str],
    findings: Mapping[str, Finding],
    settings: list[str],
) -> str:
    """The findings block (escaped HTML). ``claims`` is the page's claims table, ``row_ids``
    its rows' anchors, ``settings`` one line each on how the page was built."""
    e = html.escape
    verdict = dict(zip((c.key for c in CLAIMS), claims["verdict"], strict=False))
    ids = dict(zip((c.key for c in CLAIMS), row_ids, strict=False))
    paper_items = []
    for r in paper_counts(claims).itertuples():
        rows = claims.index[claims["paper"] == r.paper]
        links = " ".join(_claim_link(row_ids[i], claims.loc[i]) for i in rows)
        unmeasured = r.claims - r.checked
        extra = f" ({unmeasured} not measured)" if unmeasured else ""
        paper_items.append(
            f'<li><b class="claims-count" data-paper="{e(r.paper)}">{r.agrees} of {r.checked}'
            f"</b> claims agree — {e(r.paper)}{e(extra)} {links}</li>"
        )
    head_items = []
    for label, key in HEADLINES:
        f = findings.get(key)
        if f is None:
            head_items.append(f"<li>{e(label)}: not measured in this report</li>")
            continue
        v = verdict.get(key, "")
        link = f' <a href="#{e(ids[key])}" class="{e(v)}">{e(v)}</a>' if key in ids else ""
        head_items.append(
            f"<li>{e(label)}: <b>{e(f.display)}</b> <span class='note'>— {e(f.mode)}</span>"
            f"{link}</li>"
        )
    return (
        '<div id="findings"><h2>Findings</h2>'
        f'<div><h3>Claims agreeing, per paper (<a href="#claims">table</a>)</h3>'
        f"<ul>{''.join(paper_items)}</ul></div>"
        f"<div><h3>Headline numbers</h3><ul>{''.join(head_items)}</ul></div>"
        + "".join(f'<p class="settings">{e(s)}</p>' for s in settings)
        + "</div>"
    )
