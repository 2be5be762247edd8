"""Slow lever checks: torch.compile (minutes of inductor C++ compilation on a CPU), the bench
machinery end to end, and the report section's real live run."""

from __future__ import annotations

import pytest
import torch

from genscope.optimize import LEVERS, LeverContext, TargetSpec, build_target
from genscope.optimize.stack import run_stack

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_compiled_static_cache_decode_matches_eager_and_speculation_stays_exact(levers_settled):
    factory = lambda: build_target(TargetSpec("chameleon", size="tiny", new_tokens=12))  # noqa: E731
    levers = [LEVERS[n] for n in ("sdpa", "static_cache", "compile", "speculative")]
    res = run_stack(factory, levers, LeverContext("cpu", {"draft_layers": 1}), repeats=1)
    levers_settled(res.stages)
    st = {s.lever: s for s in res.stages}
    assert st["compile"].status == "measured" and st["compile"].compile_s > 0
    for name in ("compile", "speculative"):
        assert st[name].deviation["exact_match"] == 1.0, st[name].deviation
        assert st[name].deviation["kl_mean"] <= 1e-8
    assert 0 <= st["speculative"].stats["acceptance_rate"] <= 1


def test_compiled_unet_step_within_tolerance(levers_settled):
    factory = lambda: build_target(TargetSpec("sd15", size="tiny", steps=1))  # noqa: E731
    res = run_stack(factory, [LEVERS["sdpa"], LEVERS["compile"]], LeverContext("cpu"), repeats=1)
    levers_settled(res.stages)
    compiled = res.stages[-1]
    assert compiled.status == "measured", compiled.reason
    assert compiled.deviation["max_abs"] <= 1e-4 and compiled.compile_s > 0


def test_bench_quick_rows(tmp_path, monkeypatch, levers_settled):
    from genscope.bench.optimize import bench_optimize, latest_bench

    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path))
    out = bench_optimize(quick=True, repeats=1, threads=1)
    assert [r["workload"] for r in out["rows"]] == ["sd15", "chameleon"]
    for row in out["rows"]:
        assert {"workload", "speedup", "deviation", "stages", "target", "meets_target"} <= set(row)
        assert row["stages"][0]["lever"] == "baseline"
        levers_settled(row["stages"])  # no lever crashed: each measured, rejected or skipped
        assert [s["lever"] for s in row["stages"] if s["status"] == "measured"], row["workload"]
    assert latest_bench()["rows"][0]["workload"] == "sd15"


def test_levers_section_live_quick(tmp_path, monkeypatch, levers_settled):
    from genscope.report.context import ReportContext
    from genscope.report.sections import levers as report_section

    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path / "home"))
    live, real = [], report_section._live
    monkeypatch.setattr(report_section, "_live", lambda quick: live.extend(real(quick)) or live)
    ctx = ReportContext(tmp_path, "a100-80g-sxm", quick=True)
    sections = report_section.levers_section(ctx)
    assert sections[0].key == "levers-live"
    assert "levers_388" not in ctx.findings  # on a GPU spec the claim is predicted
    assert [r["workload"] for r in live] == ["sd15", "chameleon"]
    for result in live:
        levers_settled(result["stages"])
