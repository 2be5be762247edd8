"""The report's worker-process traces are the same runs as in-process ones, and are stored."""

from __future__ import annotations

from genscope.report.context import ReportContext
from genscope.store import load_run
from genscope.workloads.base import Settings


def test_prefetch_in_workers_matches_in_process_traces(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path / "home"))
    plan = {
        f"sd15-{att}": ("sd15", Settings(size="full", res=(256, 256), steps=1, attention=att))
        for att in ("math", "flash")
    }
    pooled = ReportContext(tmp_path / "a", "a100-80g-sxm", quick=True, workers=2)
    seen: list[str] = []
    pooled.status = seen.append
    pooled.prefetch(plan)
    assert set(pooled.runs) == set(plan)
    assert seen == ["traces 1/2", "traces 2/2"]

    serial = ReportContext(tmp_path / "b", "a100-80g-sxm", quick=True, workers=1)
    serial.prefetch(plan)  # one worker: nothing happens until a section asks
    assert serial.runs == {}
    for key, (wl, s) in plan.items():
        ours = pooled.runs[key]
        ref = serial.trace(key, wl, s)
        assert ours.events.drop(columns="run_id").equals(ref.events.drop(columns="run_id"))
        assert ours.summary == ref.summary
        meta, events, _ = load_run(ours.run_id)  # written to the store like any run
        assert meta["point_id"] == key and len(events) == len(ours.events)
