"""``genscope calibrate``: a quick run yields positive, finite, sourced numbers with their spread,
and the saved spec round-trips through ``GENSCOPE_HOME`` into the registry."""

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from genscope.costmodel.hardware import HardwareSpec, get_hardware, hardware_names
from genscope.errors import UserError
from genscope.machine import contention, timing
from genscope.machine.timing import time_calls
from genscope.measure import calibrate as cal
from genscope.measure.calibrate import calibrate, save_local_spec

CORE = (
    "matrix_peak.fp32",
    "matrix_peak.bf16",
    "vector_peak.fp32",
    "vector_peak.bf16",
    "mem_bw",
    "dispatch_overhead_s",
)


@pytest.fixture(scope="module")
def spec() -> HardwareSpec:
    return calibrate(quick=True)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path))
    return tmp_path


def test_quick_numbers_are_positive_and_finite(spec: HardwareSpec):
    assert (spec.name, spec.kind) == ("cpu-local", "measured")
    values = [*spec.matrix_peak.values(), *spec.vector_peak.values(), spec.mem_bw]
    values += [spec.mem_bytes, spec.dispatch_overhead_s]
    assert all(math.isfinite(v) and v > 0 for v in values), values
    # Unit guards: a CPU does not reach 1 PFLOP/s, and a 1-element add takes well under 1 s.
    assert max(spec.matrix_peak.values()) < 1e15
    assert spec.dispatch_overhead_s < 1.0
    assert "not representative" in spec.description


def test_contention_is_recorded(spec: HardwareSpec):
    """A neighbour's load would silently lower the ceilings; the spec must say how busy it was."""
    record = spec.extra["contention"]
    assert {"loadavg_1m_before", "loadavg_1m_after", "other_processes_cpu_fraction"} <= set(record)
    share = record["other_processes_cpu_fraction"]
    busy = share is not None and share > contention.CONTENTION_WARN
    # the warning moves from the contention record to extra.warnings and the description
    assert "warning" not in record
    assert len(spec.extra["warnings"]) == int(busy)
    assert ("[contended: see extra.warnings]" in spec.description) is busy
    if busy:
        assert f"other processes used {share:.0%} of the CPUs" in spec.extra["warnings"][0]


@pytest.mark.parametrize(
    ("busy_after", "share", "warns"),
    [
        # machine busy 100 -> 104 CPU-s, ours 1 CPU-s, 2 s wall on 2 CPUs: (4 - 1) / 4 = 0.75
        (104.0, 0.75, True),
        # 100 -> 101.2: (1.2 - 1) / 4 = 0.05, below the 0.1 warning line
        (101.2, 0.05, False),
        # the machine counted less than our own time (sampling): clipped to 0
        (100.5, 0.0, False),
        (None, None, False),  # no /proc/stat
    ],
)
def test_contention_share_by_hand(monkeypatch, busy_after, share, warns):
    clock = iter([10.0, 12.0])  # wall 2 s
    cpu = iter([5.0, 6.0])  # our process: 1 CPU-s
    busy = iter([100.0, busy_after])
    monkeypatch.setattr(
        contention,
        "time",
        SimpleNamespace(perf_counter=lambda: next(clock), process_time=lambda: next(cpu)),
    )
    monkeypatch.setattr(contention, "_system_busy_s", lambda: next(busy))
    monkeypatch.setattr(contention, "_loadavg", lambda: 0.5)
    monkeypatch.setattr(contention, "os", SimpleNamespace(cpu_count=lambda: 2))
    out = contention.Contention().finish()
    assert out["duration_s"] == 2.0 and out["loadavg_1m_before"] == 0.5
    if share is None:
        assert out["other_processes_cpu_fraction"] is None
    else:
        assert out["other_processes_cpu_fraction"] == pytest.approx(share, abs=1e-12)
    assert ("warning" in out) is warns
    if warns:
        assert "other processes used 75% of the CPUs" in out["warning"]


def test_spread_recorded_for_every_measurement(spec: HardwareSpec):
    measurements = spec.extra["measurements"]
    assert spec.extra["settings"]["repeats"] == 2
    for path in CORE:
        m = measurements[path]
        assert m["repeats"] == 2 == len(m.get("samples") or m["by_size"][m["best_size"]]["samples"])
    assert spec.matrix_peak["bf16"] == measurements["matrix_peak.bf16"]["median"]
    assert spec.mem_bw == measurements["mem_bw"]["median"]


def test_flops_and_bytes_are_counted_honestly(spec: HardwareSpec):
    gemm = spec.extra["measurements"]["matrix_peak.fp32"]["by_size"]
    assert gemm["128"]["work_per_call"] == 2 * 128**3  # multiply-add = 2 FLOPs
    vec = spec.extra["measurements"]["vector_peak.fp32"]["by_size"]
    assert vec["4096"]["work_per_call"] == 2 * 4096  # addcmul: one mul + one add per element
    copy = spec.extra["measurements"]["mem_bw"]
    assert copy["work_per_call"] == 2 * copy["buffer_bytes"]  # read + write


def test_every_measured_number_has_source_and_status(spec: HardwareSpec):
    for path in spec.number_fields():
        assert spec.source_of(path), path
        # settings (repeats, threads) are inputs; everything timed or queried is measured
        expected = "input" if path.startswith(("extra.settings.", "extra.machine.")) else "measured"
        assert spec.status_of(path) == expected, path


def test_save_and_load_round_trip(spec: HardwareSpec, home: Path):
    assert "cpu-local" not in hardware_names()
    path = save_local_spec(spec)
    assert path == home / "hardware" / "cpu-local.json"
    assert [p.name for p in path.parent.iterdir()] == ["cpu-local.json"]  # no temp file left
    loaded = get_hardware("cpu-local")
    assert loaded == spec
    assert "cpu-local" in hardware_names()
    assert loaded.ridge("bf16", "matrix") == spec.matrix_peak["bf16"] / spec.mem_bw


def test_interrupted_save_leaves_previous_file(spec: HardwareSpec, monkeypatch):
    path = save_local_spec(spec)
    before = path.read_text()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cal.json, "dump", boom)
    with pytest.raises(KeyboardInterrupt):
        save_local_spec(spec)
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir()] == ["cpu-local.json"]


def test_corrupt_local_spec_says_rerun(home: Path):
    (home / "hardware").mkdir()
    (home / "hardware" / "cpu-local.json").write_text("{not json")
    with pytest.raises(UserError, match="re-run `genscope calibrate`"):
        get_hardware("cpu-local")


def test_bad_arguments():
    with pytest.raises(UserError, match="choose one of: cpu, cuda"):
        calibrate("tpu", quick=True)
    with pytest.raises(UserError, match="repeats >= 1"):
        calibrate(repeats=0, quick=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_cuda_unavailable_is_a_user_error():
    with pytest.raises(UserError, match="CUDA is not available"):
        calibrate("cuda", quick=True)


def test_time_calls_on_a_fake_clock(monkeypatch):
    """The sizing call takes 0.25 s, so 0.5 s per repeat needs 2 calls; the repeats then last
    0.5 s and 1 s: 0.25 and 0.5 s per call."""
    ticks = iter([0.0, 0.25, 1.0, 1.5, 2.0, 3.0])
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    calls = []
    per_call, n = time_calls(
        lambda: calls.append(1), lambda: None, warmup=1, repeats=2, min_repeat_s=0.5
    )
    assert (per_call, n) == ([0.25, 0.5], 2)
    assert len(calls) == 1 + 1 + 2 * 2


def test_rate_stats_and_best_size_by_hand():
    # 100 FLOP per call in 0.5, 0.25 and 1 s -> 200, 400 and 100 FLOP/s
    stats = cal._rate_stats([0.5, 0.25, 1.0], 4, 100.0)
    assert stats["samples"] == [200.0, 400.0, 100.0]
    assert (stats["min"], stats["median"], stats["max"]) == (100.0, 200.0, 400.0)
    assert (stats["repeats"], stats["calls_per_repeat"], stats["work_per_call"]) == (3, 4, 100.0)
    # the size with the higher median rate is the headline
    bigger = cal._rate_stats([0.25, 0.25], 2, 100.0)  # 400 FLOP/s
    best = cal._best({"64": stats, "128": bigger}, "FLOP/s", op="torch.mm")
    assert (best["best_size"], best["median"], best["min"], best["max"]) == (
        "128",
        400.0,
        400.0,
        400.0,
    )
    assert best["unit"] == "FLOP/s" and best["op"] == "torch.mm"


def test_time_calls_counts_calls():
    calls = []
    per_call, n = time_calls(
        lambda: calls.append(1), lambda: None, warmup=3, repeats=4, min_repeat_s=1e-4
    )
    assert len(per_call) == 4 and all(t > 0 for t in per_call)
    assert len(calls) == 3 + 1 + 4 * n  # warm-up, one sizing call, then repeats x n


def test_cli_json_is_one_object(home: Path, monkeypatch, capsys):
    from genscope import cli

    monkeypatch.setattr(sys, "argv", ["genscope", "calibrate", "--quick", "--json"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code in (0, None)
    out, err = capsys.readouterr()
    assert out.count("\n") == 1, out
    data = json.loads(out)
    assert data["name"] == "cpu-local" and data["kind"] == "measured"
    assert json.loads((home / "hardware" / "cpu-local.json").read_text()) == data
    assert "wrote" in err
