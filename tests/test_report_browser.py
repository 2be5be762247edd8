"""The report in a real browser: every figure renders, no console errors, labels are text.

Uses Debian's Chromium (``.ci/run`` installs it when missing) driven by Playwright with
``executable_path``, so no browser is downloaded.
"""

import shutil
from pathlib import Path

import pytest

from genscope.analyses.breakdown import category_breakdown, plot_category_breakdown
from genscope.report.build import build_report
from genscope.report.html import Section
from genscope.workloads.base import Settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
EVIL = "<script>window.__pwned = 1</script>"


def small_breakdown(ctx):
    """The breakdown figure on tiny sd15 (the full suite is the report's job, not this test's)."""
    runs = {
        a: ctx.trace(f"sd15-{a}", "sd15", Settings(size="tiny", attention=a)).events
        for a in ("math", "flash")
    }
    table = category_breakdown(runs)
    fig = plot_category_breakdown(table, f"tiny sd15 — {ctx.label}")
    return [Section("breakdown", "Breakdown", ctx.label, figures=[fig], table=table)]


def evil_section(ctx):
    """A section whose label and notes try to inject markup."""
    return [Section("evil", f"label {EVIL}", f"analytic {EVIL}", notes=[EVIL])]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    import os

    os.environ["GENSCOPE_HOME"] = str(out / "home")
    return build_report(out, builders=[("breakdown", small_breakdown), ("evil", evil_section)])


def test_report_renders_in_chromium(report):
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
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
        browser.close()
    assert sizes and all(w > 50 and h > 50 for w, h in sizes), sizes
    assert errors == []  # no console errors and no network fetches
    assert pwned, "the <script> label ran"
    assert EVIL in evil_text  # shown as text
