"""Run folders appear only when complete; DuckDB sees every complete run."""

import pytest

from genscope import store
from genscope.api import trace_workload
from genscope.workloads.base import Settings


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path))
    with pytest.raises(KeyboardInterrupt), store.staging("r1") as tmp:
        (tmp / "run.json").write_text("{}")
        raise KeyboardInterrupt
    assert list((tmp_path / "runs").iterdir()) == []


def test_saved_run_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path))
    r = trace_workload("sd15", Settings(size="tiny", steps=1))
    meta, events, summary = store.load_run(r.run_id)
    assert meta["settings"]["size"] == "tiny" and meta["environment"]["packages"]["torch"]
    assert len(events) == len(r.events) and summary["flops_total"] == r.summary["flops_total"]
    assert store.list_runs()["run_id"].tolist() == [r.run_id]
    df = store.query_events("SELECT sum(flops * count) AS f FROM events")
    assert int(df.f[0]) == r.summary["flops_total"]


def test_analytic_results_are_deterministic():
    a = trace_workload("sd15", Settings(size="full", steps=2), save=False)
    b = trace_workload("sd15", Settings(size="full", steps=2), save=False)
    cols = ["op", "flops", "bytes_read", "bytes_written", "predicted_s", "module_path"]
    assert a.events[cols].equals(b.events[cols])
