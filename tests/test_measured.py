"""Measured mode: attribution matches the analytic capture op for op; figures, memory guard,
interrupted runs, Chrome trace, and the interval arithmetic behind idle/overhead."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from genscope.api import trace_built
from genscope.capture.profiling import (
    Event,
    Markers,
    WhereLabel,
    attribute,
    busy_and_gaps,
    events_from_profiler,
    packet_of,
    union_ns,
)
from genscope.cli import main
from genscope.costmodel.hardware import get_hardware
from genscope.errors import UserError
from genscope.measure.join import join, marked_modules, marker_path
from genscope.measure.passes import profiled_pass
from genscope.workloads.base import Settings
from genscope.workloads.registry import get_workload

GENSCOPE = [sys.executable, "-m", "genscope.cli"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # fast and steady on a shared CPU
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("recorder", ["observer", "torch.profiler"])
@pytest.mark.parametrize(
    ("workload", "settings"),
    [("sd15", Settings(size="tiny", steps=2)), ("make-a-video", Settings(size="tiny"))],
)
def test_profiled_ops_match_the_analytic_capture(workload, settings, recorder, monkeypatch):
    """Per module: the same op count, ops and categories as the analytic capture (collapse off)
    of the same configuration; categories of profiled ops come from the recorded names and
    the taxonomy, independently of the analytic rows. Both recorders: genscope's op observer
    and torch.profiler (the fallback)."""
    import genscope.measure.passes as measured

    if recorder == "observer":
        assert measured.instrument("cpu") == "observer", observer_error()
    else:
        monkeypatch.setattr(measured, "instrument", lambda device: "torch.profiler")
    wl = get_workload(workload)
    s = wl.resolve(settings)
    built = wl.build(s)
    analytic = trace_built(wl, built, s, get_hardware("a100-80g-sxm"), save=False, collapse=False)
    ev = analytic.events
    marked = marked_modules(ev)
    prof, markers, *_ = profiled_pass(wl, built, s, marked)
    ops = attribute(events_from_profiler(prof), markers).ops
    # leaves inside a marked module are not marked: their ops count toward that module here,
    # and the join tells them apart by order (checked below)
    paths = {(c, p) for c, p, _ in marked}
    seen_as = [marker_path(c, p, paths) for c, p in zip(ev.component, ev.module_path, strict=True)]
    assert len(paths) < len(set(zip(ev.component, ev.module_path, strict=True)))

    def per_module(rows):
        return Counter(rows)

    a_count = per_module(zip(ev.component, seen_as, strict=True))
    m_count = per_module((o.component, o.module.path if o.module else "") for o in ops)
    assert m_count == a_count
    # ops compared by packet: with a dispatch mode active, linear on 3-d input adds its bias
    # out of place (aten.add), without it in place (aten.add_)
    a_cat = per_module(
        (p, packet_of(op), c) for p, op, c in zip(seen_as, ev.op, ev.category, strict=True)
    )
    m_cat = per_module(
        (o.module.path if o.module else "", packet_of(o.op), o.category) for o in ops
    )
    assert m_cat == a_cat
    # every analytic row (with its own, leaf-level module path) gets its profiled op
    joined, stats = join(ev, ops, device_time=False, marked=marked)
    assert stats["matched"] == len(ev) == len(ops)
    assert stats["profiled_only"] == stats["analytic_only"] == stats["category_mismatches"] == 0
    assert joined["measured_s"].notna().all()
    assert Counter(zip(joined.component, joined.module_path, strict=True)) == Counter(
        zip(ev.component, ev.module_path, strict=True)
    )
    steps = Counter(ev.step.dropna().astype(int))
    assert Counter(o.where.step for o in ops if o.where and o.where.step is not None) == steps


def observer_error():
    from genscope.capture import observer

    return observer.error()


def test_observer_records_only_dispatch_level_ops():
    """The op observer skips CompositeImplicit ops (linear, matmul) and everything nested in a
    recorded op (t's transpose/as_strided); SDPA is kept whole with its backend inside."""
    from genscope.capture.profiling import Markers, OpRecorder

    rec = OpRecorder("cpu")
    assert rec.uses_observer, observer_error()
    x, w = torch.randn(2, 4, 8), torch.randn(8, 8)
    q = torch.randn(1, 2, 4, 8)
    with rec:
        torch.nn.functional.linear(x, w)
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    names = [e.name for e in events_from_profiler(rec)]
    assert "aten::linear" not in names and "aten::matmul" not in names
    assert "aten::t" in names and "aten::transpose" not in names and "aten::as_strided" not in names
    assert "aten::scaled_dot_product_attention" in names
    ops = attribute(events_from_profiler(rec), Markers()).ops
    assert [o.op for o in ops][-1].startswith("aten._scaled_dot_product_flash_attention_for_cpu")


def test_measured_run_cli_json_trace_and_store(tmp_path, monkeypatch, capsys):
    """`genscope trace --mode measured --json`: the analytic keys plus measured figures; the
    stored events carry measured_s on every analytic row; --trace-out has the markers."""
    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path))
    trace = tmp_path / "trace.json"
    argv = [
        "genscope",
        "trace",
        "sd15",
        "--size",
        "tiny",
        "--steps",
        "2",
        "--mode",
        "measured",
        "--repeats",
        "2",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--trace-out",
        str(trace),
        "--json",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    r = json.loads(out)
    assert r["mode"] == "measured" and r["measured_label"] == "measured (cpu)"
    for key in (
        "measured_s",
        "wall_s",
        "cpu_s",
        "peak_memory_bytes",
        "predicted_memory",
        "idle",
        "overhead",
        "by_step",
        "by_phase",
        "attribution",
        "provenance",
    ):
        assert key in r, key
    assert r["wall_s"]["repeats"] == 2 and r["wall_s"]["min"] <= r["wall_s"]["median"]
    assert r["peak_memory_bytes"] > 0
    a = r["attribution"]
    assert a["matched"] == a["analytic_rows"] == a["profiled_ops"] and a["category_mismatches"] == 0
    assert {b["step"] for b in r["by_step"] if b["phase"] == "denoise"} == {0, 1}
    assert set(r["by_phase"]) >= {"encode", "denoise", "decode_image"}
    assert 0 <= r["overhead"]["share"] < 1 and r["measured_s"] > 0
    assert sum(v["measured_s"] for v in r["by_category"].values()) == pytest.approx(r["measured_s"])
    assert 0.0 < r["by_category"]["conv"]["measured_share"] < 1.0
    # stored run: same rows as the analytic capture, measured_s filled
    import pandas as pd

    events = pd.read_parquet(Path(r["path"]) / "events.parquet")
    assert events["measured_s"].notna().all() and (events["count"] == 1).all()
    meta = json.loads((Path(r["path"]) / "run.json").read_text())
    assert meta["mode"] == "measured" and meta["device"] == "cpu"
    # Chrome trace, annotated with module paths and steps
    names = {e.get("name", "") for e in json.loads(trace.read_text())["traceEvents"]}
    assert "gs/where unet/denoise step=1" in names
    assert any(n.startswith("gs/mod unet:down_blocks.0.resnets.0 ") for n in names)


def test_profiled_passes_spread_evenly_over_the_timed_ones():
    from genscope.measure.passes import spread as _spread

    assert _spread(6, 60) == {0, 10, 20, 30, 40, 50}
    assert _spread(2, 3) == {0, 1}
    assert _spread(3, 2) == {0, 1, 2}  # more profiled than timed: one after each, then alone
    assert len(_spread(6, 15)) == 6


def test_min_seconds_adds_timed_passes_and_a_state_probe_times_every_pass():
    from genscope.measure.passes import PassPlan
    from genscope.measure.run import measure_workload

    one = measure_workload(
        "chameleon",
        Settings(size="tiny"),
        plan=PassPlan(repeats=1, warmup=1, profiled_passes=2),
        save=False,
    )
    assert one.summary["wall_s"]["repeats"] == 1
    assert one.summary["machine_state"]["probe_reference_s"] is None  # no reference, no probe
    span = measure_workload(
        "chameleon",
        Settings(size="tiny"),
        plan=PassPlan(repeats=1, warmup=1, profiled_passes=2, min_seconds=0.5, state_probe_s=1e-3),
        save=False,
    )
    timed = span.summary["wall_s"]["repeats"]
    assert timed > 1 and span.meta["repeats"] == timed and span.meta["min_seconds"] == 0.5
    assert span.summary["attribution"]["profiled_passes"] == 2
    state = span.summary["machine_state"]
    assert state["probe_reference_s"] == 1e-3
    assert len(state["timed"]) == timed and len(state["profiled"]) == 2
    assert all(0 < f < 1e3 for f in state["timed"] + state["profiled"])
    with pytest.raises(UserError, match="min-seconds"):
        measure_workload(
            "chameleon", Settings(size="tiny"), plan=PassPlan(min_seconds=-1.0), save=False
        )


def test_overhead_ratio_is_the_median_of_paired_rounds():
    """Each round's plain and profiled pass run back to back (same machine state): the ratio is
    the median of their ratios; the fastest-of-each ratio is reported beside it."""
    import statistics

    from genscope.bench.overhead import overhead_ratio

    r = overhead_ratio("chameleon", Settings(size="tiny"), rounds=3, threads=1)
    pairs = [p / q for p, q in zip(r["profiled_s"], r["plain_s"], strict=True)]
    assert len(pairs) == 3 and r["ratio"] == pytest.approx(statistics.median(pairs))
    assert r["ratio_fastest"] == pytest.approx(min(r["profiled_s"]) / min(r["plain_s"]))
    assert r["ops"] > 0 and r["ratio"] > 0


def test_memory_guard_refuses_before_any_run(tmp_path, monkeypatch, capsys):
    import genscope.measure.guard as guard

    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path))
    monkeypatch.setattr(guard, "available_bytes", lambda device: (1_000_000, "test limit"))
    argv = ["genscope", "trace", "sd15", "--size", "tiny", "--mode", "measured"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    # one progress line (the meta pass), then the one-line refusal; nothing was built
    assert len(lines) == 2 and "predicting peak memory" in lines[0]
    assert "predicted peak memory" in lines[-1] and "exceeds available" in lines[-1]
    assert "--force" in lines[-1]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_analytic_mode_rejects_measured_options(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["genscope", "trace", "sd15", "--repeats", "3"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "--repeats only apply to --mode measured" in capsys.readouterr().err


def test_sigterm_leaves_no_complete_run_folder(tmp_path):
    """SIGTERM partway through a measured run: exit 143, and nothing that looks complete."""
    env = os.environ | {"GENSCOPE_HOME": str(tmp_path)}
    args = [
        "trace",
        "sd15",
        "--size",
        "tiny",
        "--mode",
        "measured",
        "--repeats",
        "200",
        "--threads",
        "1",
        "--trace-out",
        str(tmp_path / "t.json"),
    ]
    proc = subprocess.Popen(GENSCOPE + args, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    assert proc.stderr is not None
    for line in proc.stderr:
        if "timed repeat 2/" in line:
            break
        assert time.monotonic() < deadline, "measured run never reached its timed repeats"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    runs = tmp_path / "runs"
    leftovers = list(runs.iterdir()) if runs.exists() else []
    assert not leftovers, leftovers
    assert not (tmp_path / "t.json").exists()


# -- attribution and interval arithmetic on synthetic events -------------------------------


def test_union_and_host_bound_gaps():
    assert union_ns([(0, 10), (5, 15), (20, 30)]) == 25
    # kernels (start, end, launch): the 2nd waits 5 ns for its launch (host-bound), the 3rd
    # was launched early and waits on nothing but the previous kernel's end
    kernels = [(0, 10, 0), (20, 30, 15), (40, 50, 12)]
    busy, idle, host = busy_and_gaps(kernels, (0, 60))
    assert (busy, idle) == (30, 30)
    assert host == 5 + 0 + 0  # 2nd gap: launch at 15 after the end at 10; 3rd: launched early


def test_attribution_on_synthetic_cuda_profile():
    """Module/where markers nest ops; kernels join their op through correlation ids; an
    implicit op (linear) is transparent and its children become the ops."""
    mk = Markers()
    mod = mk._module_marker("unet", "down.0", "Linear")
    where = mk.where_marker(WhereLabel("unet", "denoise", 3))
    ev = [
        Event("gs/run", 0, 1000),
        Event(where, 10, 900),
        Event(mod, 20, 500),
        Event("aten::linear", 30, 400, overload=""),
        Event("aten::t", 40, 60, correlation=7, overload=""),
        Event("aten::transpose", 45, 55, overload="int"),
        Event("aten::addmm", 70, 390, correlation=8, overload=""),
        Event("cudaLaunchKernel", 80, 90, linked=8, correlation=99),
        Event("gemm_kernel", 300, 700, device="cuda", linked=8, correlation=99),
        Event("aten::add", 600, 650, correlation=9, overload="Tensor"),
        Event("cudaLaunchKernel", 610, 620, linked=9, correlation=100),
        Event("add_kernel", 800, 820, device="cuda", linked=9, correlation=100),
    ]
    att = attribute(ev, mk, device="cuda")
    names = [o.op for o in att.ops]
    assert names == ["aten.t.default", "aten.addmm.default", "aten.add.Tensor"]
    t, addmm, add = att.ops
    assert addmm.module.path == "down.0" and addmm.where.step == 3 and addmm.category == "linear"
    assert add.module is None and add.where.phase == "denoise"
    assert addmm.kernels == [(300, 700, 80)] and addmm.device_s == pytest.approx(400e-9)
    assert t.device_s == 0
    busy, idle, host = busy_and_gaps([k for o in att.ops for k in o.kernels], (0, 1000))
    assert busy == 420 and idle == 580
    assert host == 80  # idle from 0 until the first launch; the 2nd was launched in time
