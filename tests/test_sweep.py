"""Sweeps: spec validation, point identity, the local pool and Ray executors, resume after
kill -9, failures recorded and retried, and the DuckDB views of a sweep.

Points are tiny sd15 at small resolutions with one denoise step (a few seconds each)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genscope.errors import UserError
from genscope.sweep import (
    load_spec,
    load_sweep_events,
    load_sweep_runs,
    make_executor,
    parse_spec,
    read_failures,
    run_sweep,
    sweep_dir,
    sweep_table,
)
from genscope.sweep.executors import LocalExecutor, RayExecutor

GENSCOPE = [sys.executable, "-m", "genscope.cli"]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def write_spec(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def run_jsons(home: Path) -> list[dict]:
    """run.json of every complete run folder (dot-folders are in-flight or dead writes)."""
    return [json.loads(p.read_text()) for p in sorted((home / "runs").glob("[!.]*/run.json"))]


# ---------------------------------------------------------------- spec
@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: x\nworkloads: [sd15]\nresolution: [512]\n", "unknown key 'resolution'"),
        ("name: x\nworkloads: [sd15]\nresolution: [512]\n", "valid keys: name, resources"),
        ("workloads: [sd15]\n", "needs a `name`"),
        ("name: a/b\nworkloads: [sd15]\n", "needs a `name`"),
        ("name: x\nsteps: [1]\n", "needs `workloads`"),
        ("name: x\nworkloads: [nope]\n", "unknown workload 'nope'; choose one of:"),
        ("name: x\nworkloads: [sd15]\ndtype: [fp8]\n", "unknown dtype 'fp8'"),
        ("name: x\nworkloads: [sd15]\nhardware: [tpu]\n", "unknown hardware 'tpu'"),
        ("name: x\nworkloads: [sd15]\nmode: [fast]\n", "choose one of: analytic, measured"),
        ("name: x\nworkloads: [sd15]\nsteps: [one]\n", "`steps` values must be integers"),
        ("name: x\nworkloads: [sd15]\nres: [5x5x5]\n", "--res takes N or HxW"),
        ("name: x\nworkloads: [sd15]\nsteps: []\n", "axis `steps` is an empty list"),
        ("name: x\nworkload: [sd15]\nworkloads: [sd15]\n", "sets 'workloads' twice"),
        ("name: x\nworkloads: [sd15]\nresources: {gpus: 1}\n", "unknown resource 'gpus'"),
        ("name: x\nworkloads: [sd15]\nresources: {num_gpus: -1}\n", "must be a number >= 0"),
        ("name: [x\n", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
    ],
)
def test_spec_errors_are_one_line_user_errors(text, needle):
    with pytest.raises(UserError) as info:
        parse_spec(text)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_spec_accepts_scalars_aliases_and_hyphenated_keys(tmp_path):
    spec = load_spec(
        write_spec(
            tmp_path / "s.yaml",
            "name: s\nworkload: sd15\nsize: tiny\nres: [64, 48x64, [32, 40]]\n"
            "prompt-len: [null]\nresources: {num_cpus: 2, num_gpus: 0.5}\n",
        )
    )
    assert spec.axes["workloads"] == ["sd15"] and spec.axes["size"] == ["tiny"]
    assert spec.axes["res"] == [[64, 64], [48, 64], [32, 40]]
    assert spec.axes["prompt_len"] == [None]
    assert spec.resources == {"num_cpus": 2.0, "num_gpus": 0.5}
    ray = make_executor("ray", resources=spec.resources, num_gpus=1)
    assert isinstance(ray, RayExecutor) and (ray.num_cpus, ray.num_gpus) == (2.0, 1)
    assert isinstance(make_executor("local", workers=3), LocalExecutor)
    with pytest.raises(UserError, match="choose one of: local, ray"):
        make_executor("dask")


def test_point_identity_is_normalized_settings_plus_version(monkeypatch):
    from genscope.workloads.registry import get_workload

    default_steps = get_workload("sd15").defaults["full"]["steps"]
    spec = parse_spec(
        f"name: ids\nworkloads: [sd15]\nres: [512, 512x512, [512, 512]]\n"
        f"steps: [null, {default_steps}]\n"
    )
    points = spec.points()
    # res 512 == 512x512 == [512, 512], steps null == the default: one point
    assert len(points) == 1 and points[0].error is None
    assert points[0].resolved["res"] == [512, 512]
    assert len(points[0].point_id) == 64

    other_hw = parse_spec("name: ids\nworkloads: [sd15]\nres: [512]\nhardware: [h100-sxm]\n")
    assert other_hw.points()[0].point_id != points[0].point_id
    monkeypatch.setattr("genscope.__version__", "999.0")
    assert parse_spec("name: ids\nworkloads: [sd15]\nres: [512]\n").points()[0].point_id != (
        points[0].point_id
    )


def test_invalid_points_keep_their_error():
    points = parse_spec(
        "name: bad\nworkloads: [sd15]\nframes: [null, 8]\nres: [64, 100]\n"
    ).points()
    errors = [p.error for p in points]
    assert errors[0] is None
    assert sum(e is not None for e in errors) == 3
    assert any("does not take --frames" in (e or "") for e in errors)
    assert any("multiple of 8" in (e or "") for e in errors)


# ---------------------------------------------------------------- local executor
def test_the_package_exports_resolve():
    import genscope.sweep

    for name in genscope.sweep.__all__:
        assert getattr(genscope.sweep, name) is not None, name


def test_importing_the_executors_leaves_the_tracing_stack_to_the_workers():
    """A driver can start the forkserver before its own heavy imports (bench scorecard does)."""
    code = (
        "import sys, genscope.sweep.executors; "
        "print(sorted(m for m in ('genscope.api', 'diffusers', 'genscope.sweep.worker') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


SMALL = """\
name: small
workloads: [sd15]
size: [tiny]
res: [64, 72, 100]   # 100 is not a multiple of 8: an invalid point, recorded as failed
steps: [1]
"""


def test_local_pool_end_to_end_then_resume(home, tmp_path):
    spec = load_spec(write_spec(tmp_path / "small.yaml", SMALL))
    report = run_sweep(spec, LocalExecutor(workers=2), progress=False)
    assert (report.points, report.done, report.failed, report.skipped) == (3, 2, 1, 0)
    assert "multiple of 8" in report.failures[0]["error"]
    assert report.failures[0]["stage"] == "validate"

    metas = run_jsons(home)
    assert len(metas) == 2 and {m["sweep"] for m in metas} == {"small"}
    assert sorted(m["run_id"] for m in metas) == sorted(report.run_ids)
    by_point = {p.point_id: p for p in spec.points()}
    for meta in metas:
        assert by_point[meta["point_id"]].resolved == meta["settings"]
    folder = sweep_dir("small")
    assert (folder / "spec.yaml").read_text() == SMALL
    assert len(read_failures("small")) == 1

    # re-run: both valid points are skipped, the invalid one fails again (and is recorded)
    again = run_sweep(spec, LocalExecutor(workers=2), progress=False)
    assert (again.done, again.failed, again.skipped) == (0, 1, 2)
    assert again.run_ids == report.run_ids
    assert len(run_jsons(home)) == 2 and len(read_failures("small")) == 2

    # the queries: `genscope runs --sweep`, load_sweep_runs / load_sweep_events
    from genscope.cli import app

    result = CliRunner().invoke(app, ["runs", "--sweep", "small", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)["runs"]
    assert {r["point_id"] for r in listed} == {m["point_id"] for m in metas}
    runs = load_sweep_runs("small")
    assert sorted(runs["res"]) == ["64x64", "72x72"] and (runs["flops_total"] > 0).all()
    events = load_sweep_events("small")
    for col in ("res", "res_h", "frames", "steps", "run_batch", "run_dtype", "attention",
                "hardware", "workload", "point_id", "flops", "batch", "dtype"):  # fmt: skip
        assert col in events.columns, col
    assert set(events["res_h"]) == {64, 72} and set(events["run_id"]) == set(report.run_ids)
    total = (events["flops"] * events["count"]).groupby(events["run_id"]).sum()
    assert dict(total) == dict(zip(runs["run_id"], runs["flops_total"], strict=True))
    # the scaling analyses take the sweep as input
    from genscope.analyses.scaling import exponents

    table = sweep_table("small")
    assert list(table["flops"]) == [float(f) for f in table["flops_total"]]
    fit = exponents(table, "res_h", ["flops"])
    assert fit["points"].tolist() == [2] and fit["exponent"][0] > 0

    # dry run: lists every point and which are done, runs nothing
    result = CliRunner().invoke(app, ["sweep", str(tmp_path / "small.yaml"), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    dry = json.loads(result.stdout)
    assert dry["dry_run"] and dry["points"] == 3 and dry["skipped"] == 2
    assert [p["status"] for p in dry["plan"]] == ["done", "done", "invalid"]
    assert len(run_jsons(home)) == 2


def test_failed_point_is_recorded_sweep_continues_and_rerun_retries(home, tmp_path, monkeypatch):
    from genscope.sweep import worker

    real = worker.trace_point

    def flaky(task):
        if task["settings"]["res"] == [72, 72]:
            raise RuntimeError("boom\nsecond line")
        return real(task)

    monkeypatch.setattr(worker, "trace_point", flaky)
    spec = load_spec(write_spec(tmp_path / "f.yaml", SMALL.replace("small", "flaky")))
    report = run_sweep(spec, LocalExecutor(workers=0), progress=False)
    assert (report.done, report.failed) == (1, 2)
    failure = next(f for f in report.failures if f["stage"] == "run")
    assert failure["error"] == "RuntimeError: boom second line"
    recorded = read_failures("flaky")
    assert [f["stage"] for f in recorded] == ["validate", "run"]
    assert "Traceback" in recorded[1]["traceback"]

    monkeypatch.setattr(worker, "trace_point", real)
    again = run_sweep(spec, LocalExecutor(workers=0), progress=False)
    assert (again.done, again.failed, again.skipped) == (1, 1, 1)
    assert len(run_jsons(home)) == 2 and len(read_failures("flaky")) == 3


def test_a_second_sweep_process_on_the_same_name_is_refused(home, tmp_path):
    from genscope.sweep.runner import sweep_lock

    spec = load_spec(write_spec(tmp_path / "l.yaml", SMALL.replace("small", "locked")))
    sweep_dir("locked").mkdir(parents=True)
    with sweep_lock("locked"), pytest.raises(UserError, match="already running"):
        run_sweep(spec, LocalExecutor(workers=0), progress=False)


# ---------------------------------------------------------------- kill -9 and resume
KILL = """\
name: killed
workloads: [sd15]
size: [tiny]
res: [64, 72, 80]
steps: [1]
"""


def _alive_in_session(sid: int) -> list[str]:
    """Processes of session ``sid`` that are still running (zombies excluded)."""
    ps = subprocess.run(["ps", "-eo", "pid,sid,stat,cmd"], capture_output=True, text=True).stdout
    rows = [ln.split(None, 3) for ln in ps.splitlines()[1:]]
    return [" ".join(r) for r in rows if r[1] == str(sid) and not r[2].startswith("Z")]


def test_sigkill_mid_sweep_then_rerun_loses_and_duplicates_nothing(home, tmp_path):
    spec_path = write_spec(tmp_path / "kill.yaml", KILL)
    env = os.environ | {"GENSCOPE_HOME": str(home)}
    proc = subprocess.Popen(
        [*GENSCOPE, "sweep", str(spec_path), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    runs = home / "runs"
    deadline = time.monotonic() + 240
    try:
        while not any(runs.glob("[!.]*/run.json")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no point completed in time"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    first = run_jsons(home)
    assert 1 <= len(first) < 3  # killed partway

    # the pool's workers die with the driver (no orphan can finish a point behind our back)
    deadline = time.monotonic() + 60
    while left := _alive_in_session(proc.pid):
        assert time.monotonic() < deadline, f"processes outlived the killed sweep: {left}"
        time.sleep(0.5)

    report = run_sweep(load_spec(spec_path), LocalExecutor(workers=0), progress=False)
    assert report.skipped == len(first) and report.done == 3 - len(first) and not report.failed
    metas = run_jsons(home)
    ids = [m["point_id"] for m in metas]
    assert sorted(ids) == sorted(p.point_id for p in load_spec(spec_path).points())
    assert len(set(ids)) == len(ids) == 3
    # whatever a dead write left behind is a dot-folder, which no reader counts as a run
    for tmp in runs.glob(".tmp-*"):
        assert tmp.name not in {m["run_id"] for m in metas}
    assert sorted(load_sweep_runs("killed")["run_id"]) == sorted(m["run_id"] for m in metas)


# ---------------------------------------------------------------- ray
RAY_SPEC = """\
name: on-ray
workloads: [sd15]
size: [tiny]
res: [64, 72, 100]
steps: [1]
resources: {num_cpus: 1, num_gpus: 0}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_tmp():
    """Ray's session dir must be short (its AF_UNIX socket paths are limited to 107 bytes)."""
    path = tempfile.mkdtemp(prefix="gs-ray-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_ray_executor_on_a_local_loopback_cluster(home, tmp_path, ray_tmp, monkeypatch):
    """ray.init(address="local") on loopback, started and stopped by the test; the executor
    uses the session it finds and leaves it running."""
    ray = pytest.importorskip("ray")
    from ray._private import ray_constants

    from genscope.sweep.executors import _use_loopback

    assert not ray.is_initialized()
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", ray_constants.ENABLE_RAY_CLUSTER)
    _use_loopback()
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=ray_tmp
    )
    try:
        assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
        spec = load_spec(write_spec(tmp_path / "r.yaml", RAY_SPEC))
        ex = make_executor("ray", resources=spec.resources)
        report = run_sweep(spec, ex, progress=False)
        assert (report.done, report.failed, report.skipped) == (2, 1, 0)
        assert ray.is_initialized()  # not ours to stop
        metas = run_jsons(home)
        assert {m["sweep"] for m in metas} == {"on-ray"} and len(metas) == 2
        again = run_sweep(spec, ex, progress=False)
        assert (again.done, again.skipped) == (0, 2)
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_cli_joins_a_head_started_with_ray_start(home, tmp_path, ray_tmp):
    """`ray start --head` on loopback (token auth with a test token), then
    `genscope sweep --executor ray --address 127.0.0.1:PORT`; the head is stopped by its pid."""
    pytest.importorskip("ray")
    port = _free_port()
    ray_bin = Path(sys.executable).with_name("ray")
    env = os.environ | {
        "GENSCOPE_HOME": str(home),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # loopback only
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }
    head = subprocess.Popen(
        [
            str(ray_bin),
            "start",
            "--head",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={ray_tmp}",
            "--block",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert head.poll() is None, "ray start --head exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the Ray head did not come up"
                time.sleep(0.5)
        spec_path = write_spec(tmp_path / "r.yaml", RAY_SPEC)
        p = subprocess.run(
            [
                *GENSCOPE,
                "sweep",
                str(spec_path),
                "--executor",
                "ray",
                "--address",
                f"127.0.0.1:{port}",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert p.returncode == 1, p.stderr  # the invalid point failed; the others ran
        out = json.loads(p.stdout)
        assert (out["done"], out["failed"], out["skipped"]) == (2, 1, 0), p.stderr
        assert "cluster at 127.0.0.1" in out["executor"]
        assert len(run_jsons(home)) == 2
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ps = subprocess.run(["ps", "-eo", "pid,pgid"], capture_output=True, text=True).stdout
        left = [ln for ln in ps.splitlines()[1:] if ln.split()[1] == str(head.pid)]
        if not left:
            break
        time.sleep(1)
    else:
        os.killpg(head.pid, signal.SIGKILL)
        pytest.fail(f"Ray processes left after stopping the head: {left}")


def test_unreachable_ray_head_is_a_one_line_error(home, tmp_path):
    pytest.importorskip("ray")
    spec = load_spec(write_spec(tmp_path / "r.yaml", RAY_SPEC))
    ex = make_executor("ray", address=f"127.0.0.1:{_free_port()}")
    with pytest.raises(UserError, match="cannot reach the Ray head"):
        run_sweep(spec, ex, progress=False)


@pytest.mark.slow
def test_measured_points_run_in_a_sweep(home, tmp_path):
    spec = load_spec(
        write_spec(
            tmp_path / "m.yaml",
            "name: meas\nworkloads: [sd15]\nsize: [tiny]\nmode: [analytic, measured]\n"
            "res: [64]\nsteps: [1]\ndevice: [null, cpu]\n",
        )
    )
    # measured: device null == cpu (one point); analytic with a device is invalid
    assert len(spec.points()) == 3
    report = run_sweep(spec, LocalExecutor(workers=0), progress=False)
    assert (report.done, report.failed) == (2, 1)
    assert "only applies to --mode measured" in report.failures[0]["error"]
    events = load_sweep_events("meas")
    assert events.loc[events["mode"] == "measured", "measured_s"].sum() > 0
