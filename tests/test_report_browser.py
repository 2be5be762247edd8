"""The report in a real browser: every figure renders, no console errors, labels are text,
tables open on a click, a hoverable point shows its tooltip, and the findings block counts the
claims that claims.csv holds.

Uses Debian's Chromium (``.ci/run`` installs it when missing) driven by Playwright with
``executable_path``, so no browser is downloaded.
"""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from genscope.analyses.breakdown import category_breakdown, plot_category_breakdown
from genscope.costmodel.hardware import get_hardware
from genscope.report.build import build_report
from genscope.report.html import Section
from genscope.report.interactive import op_points, plot_op_roofline
from genscope.workloads.base import Settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
EVIL = "<script>window.__pwned = 1</script>"


def _tiny(ctx, attention):
    return ctx.trace(f"sd15-{attention}", "sd15", Settings(size="tiny", attention=attention))


def small_breakdown(ctx):
    """The breakdown figure on tiny sd15 (the full suite is the report's job, not this test's)."""
    runs = {a: _tiny(ctx, a).events for a in ("math", "flash")}
    table = category_breakdown(runs)
    conv = table[(table.run == "flash") & (table.category == "conv")]["share"]
    ctx.find("conv_share_diffusion", float(conv.max()), f"{conv.max():.0%} (tiny sd15)")
    ctx.find("flash_10x_bf16", 0.5, "0.5x (made up for this test)")  # a second paper, diverging
    fig = plot_category_breakdown(table, f"tiny sd15 — {ctx.label}")
    return [Section("breakdown", "Breakdown", ctx.label, figures=[fig], table=table)]


def small_roofline(ctx):
    """The interactive op roofline on tiny sd15, with hover texts."""
    ops = op_points({"sd15": _tiny(ctx, "flash").events}, top=10)
    fig, hover = plot_op_roofline(ops, get_hardware(ctx.hardware), "bf16", "ops", "hv-test")
    return [Section("roofline", "Roofline", ctx.label, figures=[fig], hover=hover, table=ops)]


def evil_section(ctx):
    """A section whose label and notes try to inject markup."""
    return [Section("evil", f"label {EVIL}", f"analytic {EVIL}", notes=[EVIL])]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:  # traces go to a private store, not the user's
        mp.setenv("GENSCOPE_HOME", str(out / "home"))
        return build_report(
            out,
            builders=[
                ("breakdown", small_breakdown),
                ("roofline", small_roofline),
                ("evil", evil_section),
            ],
        )


def test_report_renders_in_chromium(report):
    from playwright.sync_api import sync_playwright

    claims = pd.read_csv(report.parent / "data" / "claims.csv")
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith("file:") else errors.append(r.url))
        page.goto(report.as_uri())
        sizes = page.eval_on_selector_all(
            "figure.figure svg",
            "els => els.map(e => { const r = e.getBoundingClientRect();"
            " return [r.width, r.height]})",
        )
        pwned = page.evaluate("window.__pwned === undefined")
        evil_text = page.inner_text("#evil")

        # a collapsed table opens on a click
        table = page.locator("#breakdown details table")
        assert not table.is_visible()
        page.click("#breakdown details summary")
        assert table.is_visible()

        # hovering a point shows its op in the tooltip
        assert not page.is_visible("#hover-tip")
        point = page.locator("#hv-test [data-hover]").first
        point.scroll_into_view_if_needed()
        box = point.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        # points overlap: the tooltip is that of the topmost point under the pointer
        expected = page.evaluate(f"document.elementFromPoint({x}, {y}).dataset.hover")
        page.mouse.move(x, y)
        page.wait_for_selector("#hover-tip", state="visible", timeout=2000)
        tip = page.inner_text("#hover-tip")

        counts = dict(
            page.eval_on_selector_all(
                "#findings .claims-count", "els => els.map(e => [e.dataset.paper, e.innerText])"
            )
        )
        browser.close()
    assert sizes and all(w > 50 and h > 50 for w, h in sizes), sizes
    assert errors == []  # no console errors and no network fetches
    assert pwned, "the <script> label ran"
    assert EVIL in evil_text  # shown as text
    assert expected and "aten." in tip and tip.strip() == expected.strip()
    assert "module:" in tip and "shapes:" in tip and "time:" in tip
    for paper, group in claims.groupby("paper"):
        agrees = int((group.verdict == "agrees").sum())
        checked = int(group.verdict.isin(["agrees", "diverges"]).sum())
        assert counts[paper] == f"{agrees} of {checked}", (paper, counts)
    assert set(counts) == set(claims.paper)
    assert sum(int(c.split(" of ")[1]) for c in counts.values()) == 2  # the two findings above
