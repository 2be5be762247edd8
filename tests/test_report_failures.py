"""A failed report section is loud: shown in the page, named on stderr, and `genscope report`
exits 2 unless `--keep-going`. The default quick report (about 2 minutes here) runs in the
default suite and must have no failed section, so a broken section fails `make test`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from genscope.cli import main
from genscope.report import build
from genscope.report.html import Section


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def _raising(ctx: Any) -> list[Section]:
    raise RuntimeError("section broke")


def _fine(ctx: Any) -> list[Section]:
    return [Section("fine", "Fine", ctx.label)]


@pytest.mark.parametrize("keep_going", [False, True])
def test_a_failing_default_section_fails_the_command(tmp_path, monkeypatch, capsys, keep_going):
    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path / "home"))
    # the first default section raises; the default list is what the command runs
    name = build.SECTION_BUILDERS[0][0]
    monkeypatch.setattr(build, "SECTION_BUILDERS", [(name, _raising), ("fine", _fine)])
    argv = ["report", "--out", str(tmp_path / "rep"), "--workers", "1"]
    code, _, err = _run(argv + (["--keep-going"] if keep_going else []), capsys)
    page = (tmp_path / "rep" / "index.html").read_text()
    assert f"{name}: not produced" in page and "RuntimeError: section broke" in page
    assert f"section {name!r} failed: RuntimeError: section broke" in err
    if keep_going:
        assert code == 0
    else:
        assert code == 2 and f"1 report section(s) failed: {name}" in err


@pytest.mark.timeout(1500)
def test_the_default_quick_report_has_no_failed_section(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path / "home"))
    page = build.build_report(tmp_path / "rep", quick=True, workers=2, keep_going=False)
    assert "not produced" not in page.read_text()
