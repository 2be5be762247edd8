"""Hostile and careless input (issue #17): every failure is one line and exit 2, nothing crashes.

The contract these tests hold is the README's "What genscope promises about bad input and
interruptions". CLI calls run in process through :func:`genscope.cli.main` (the real entry
point, so typer's usage errors take the same path as genscope's own); one subprocess call checks
the installed ``python -m genscope.cli`` as a user would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import genscope
from genscope import store
from genscope.cli import main
from genscope.errors import UserError
from genscope.schema import events_frame

SRC = Path(__file__).resolve().parents[1] / "src"


# ----------------------------------------------------------------------------- helpers
@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("GENSCOPE_HOME", str(h))
    return h


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``genscope ARGV`` run in this process."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), out, err


def assert_one_line_error(code: int, out: str, err: str, as_json: bool) -> dict[str, Any] | None:
    """The failure contract: exit 2, one stderr line, no traceback; with --json one object."""
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genscope: error: "), err
    assert "Traceback" not in err
    if not as_json:
        assert out == ""
        return None
    objects = [json.loads(line) for line in out.strip().splitlines()]
    assert len(objects) == 1, out
    error = objects[0]["error"]
    assert set(error) <= {"type", "message", "choices"} and error["type"] and error["message"]
    return error


def fake_run(run_id: str, workload: str = "toy", **meta: Any) -> Path:
    """A complete run folder written through the store (no tracing)."""
    summary = {"flops_total": 1, "attention": {}}
    base = {"run_id": run_id, "workload": workload, "settings": {"size": "tiny"}, "mode": "x"}
    base["created"] = "2026-01-01T00:00:00Z"
    return store.write_run(run_id, base | meta, events_frame([]), summary)


@pytest.fixture
def no_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if a workload is built: the error must come before any work."""

    def refuse(self: Any, s: Any) -> None:
        raise AssertionError("work started before the input was rejected")

    monkeypatch.setattr("genscope.workloads.base.Workload.build", refuse)


# ----------------------------------------------------------------------------- the run store
def damage(home: Path) -> dict[str, str]:
    """One healthy run and three damaged ones; returns damaged id -> expected problem word."""
    fake_run("20260101-000000-good-aaaaaa")
    bad = {
        "20260101-000001-garbage-bbbbbb": "run.json",
        "20260101-000002-truncated-cccccc": "events.parquet",
        "20260101-000003-nosummary-dddddd": "summary.json",
    }
    for run_id in bad:
        fake_run(run_id)
    runs = home / "runs"
    (runs / "20260101-000001-garbage-bbbbbb" / "run.json").write_text("garbage{{{")
    parquet = runs / "20260101-000002-truncated-cccccc" / "events.parquet"
    parquet.write_bytes(parquet.read_bytes()[:40])
    (runs / "20260101-000003-nosummary-dddddd" / "summary.json").unlink()
    return bad


def test_damaged_runs_are_listed_as_damaged_and_others_still_list(home, capsys):
    bad = damage(home)
    code, out, err = run_cli(["runs", "--json"], capsys)
    assert code == 0
    listing = json.loads(out)
    assert [r["run_id"] for r in listing["runs"]] == ["20260101-000000-good-aaaaaa"]
    problems = {d["run_id"]: d["problem"] for d in listing["damaged"]}
    assert problems.keys() == bad.keys()
    for run_id, word in bad.items():
        assert word in problems[run_id] and "\n" not in problems[run_id]
    assert len(err.strip().splitlines()) == 3 and "damaged run" in err
    # the sweep queries read the same healthy list: a dry run still plans
    spec = home / "s.yaml"
    spec.write_text("name: s\nworkloads: [sd15]\nsize: [tiny]\nsteps: [1]\n")
    code, out, err = run_cli(["sweep", str(spec), "--dry-run", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["points"] == 1


@pytest.mark.parametrize("as_json", [False, True])
def test_show_of_a_damaged_run_is_one_line(home, capsys, as_json):
    bad = damage(home)
    for run_id, word in bad.items():
        code, out, err = run_cli(["show", run_id] + (["--json"] if as_json else []), capsys)
        assert_one_line_error(code, out, err, as_json)
        assert "damaged" in err and word in err


@pytest.mark.parametrize("as_json", [False, True])
def test_show_of_a_run_missing_fields_is_one_line(home, capsys, as_json):
    fake_run("20260101-000000-thin-aaaaaa")  # parses, but lacks hardware, params and totals
    code, out, err = run_cli(["show", "20260101-000000-thin-aaaaaa"] + ["--json"] * as_json, capsys)
    assert_one_line_error(code, out, err, as_json)
    assert "damaged" in err


@pytest.mark.parametrize("as_json", [False, True])
def test_show_of_a_healthy_run(home, capsys, as_json):
    r = genscope.trace(_Tiny(), torch.randn(1, 4), name="tiny", save=True)
    code, out, err = run_cli(["show", r.run_id] + ["--json"] * as_json, capsys)
    assert code == 0, err
    if as_json:
        assert json.loads(out)["run_id"] == r.run_id
    else:
        assert r.run_id in out and "by category" in out


def test_ids_resolve_inside_the_store_only(home, tmp_path, capsys):
    fake_run("20260101-000000-good-aaaaaa")
    outside = tmp_path / "outside" / "fake"
    outside.mkdir(parents=True)
    for name in ("run.json", "summary.json"):
        src = home / "runs" / "20260101-000000-good-aaaaaa" / name
        (outside / name).write_text(src.read_text().replace("20260101-000000-good-aaaaaa", "fake"))
    (outside / "events.parquet").write_bytes(
        (home / "runs" / "20260101-000000-good-aaaaaa" / "events.parquet").read_bytes()
    )
    (home / "runs" / "linked").symlink_to(outside)
    for hostile in (str(outside), "../../outside/fake", "..", ".", "linked", "a/../..", ""):
        code, out, err = run_cli(["show", hostile, "--json"], capsys)
        error = assert_one_line_error(code, out, err, True)
        assert error is not None and "no run" in error["message"]
    with pytest.raises(UserError):
        store.load_run("../outside/fake")


@pytest.mark.parametrize("odd", ["it's", "[ab]*", "x'); DROP TABLE t; --", "sp ace{1,2}"])
def test_store_paths_with_quotes_and_globs(tmp_path, monkeypatch, capsys, odd):
    """A path formatted into SQL breaks on a quote or matches other files on a glob."""
    h = tmp_path / odd
    monkeypatch.setenv("GENSCOPE_HOME", str(h))
    fake_run("20260101-000000-good-aaaaaa", sweep="s1", point_id="p1")
    code, out, _ = run_cli(["runs", "--json"], capsys)
    assert code == 0 and [r["run_id"] for r in json.loads(out)["runs"]] == [
        "20260101-000000-good-aaaaaa"
    ]
    from genscope.sweep.query import sweep_runs

    assert sweep_runs("s1")["run_id"].tolist() == ["20260101-000000-good-aaaaaa"]
    fake_run("20260101-000001-toy-bbbbbb")
    (h / "runs" / "20260101-000001-toy-bbbbbb" / "events.parquet").unlink()  # damaged: skipped
    pd.DataFrame({"flops": [3], "count": [2]}).to_parquet(
        h / "runs" / "20260101-000000-good-aaaaaa" / "events.parquet"
    )
    assert int(store.query_events("SELECT sum(flops * count) AS f FROM events").f[0]) == 6
    # the --workload filter is a bound parameter: a quote in it is just a value
    code, out, _ = run_cli(["runs", "--workload", "x' OR '1'='1", "--json"], capsys)
    assert code == 0 and json.loads(out)["runs"] == []


def test_unusable_store_is_refused_before_any_work(tmp_path, monkeypatch, capsys, no_build):
    afile = tmp_path / "store-is-a-file"
    afile.write_text("")
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nworkloads: [sd15]\nsize: [tiny]\nsteps: [1]\n")
    for h in (afile, afile / "below"):
        monkeypatch.setenv("GENSCOPE_HOME", str(h))
        for argv in (
            ["trace", "sd15", "--size", "tiny", "--steps", "1"],
            ["runs"],
            ["runs", "--json"],
            ["show", "20260101-000000-good-aaaaaa"],
        ):
            code, out, err = run_cli(argv, capsys)
            assert_one_line_error(code, out, err, "--json" in argv)
            assert "store" in err
        code, out, err = run_cli(["sweep", str(spec), "--json"], capsys)
        assert_one_line_error(code, out, err, True)
        assert "store" in err
    with pytest.raises(UserError, match=r"not .*folder|not writable"):
        genscope.trace(nn.Linear(2, 2), torch.randn(1, 2), save=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_store_is_refused(tmp_path, monkeypatch, capsys, no_build):
    h = tmp_path / "ro"
    (h / "runs").mkdir(parents=True)
    (h / "runs").chmod(0o555)
    monkeypatch.setenv("GENSCOPE_HOME", str(h))
    try:
        code, out, err = run_cli(["trace", "sd15", "--size", "tiny", "--steps", "1"], capsys)
        assert_one_line_error(code, out, err, False)
    finally:
        (h / "runs").chmod(0o755)


def test_stale_staging_folders_are_removed(home):
    runs = home / "runs"
    runs.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (runs / ".tmp-dead").mkdir()
    (runs / ".tmp-dead" / ".owner").write_text(str(dead.pid))
    (runs / ".tmp-old").mkdir()
    old = time.time() - 2 * store.STAGING_MAX_AGE_S
    os.utime(runs / ".tmp-old", (old, old))
    (runs / ".tmp-live").mkdir()
    (runs / ".tmp-live" / ".owner").write_text(str(os.getpid()))
    path = fake_run("20260101-000000-good-aaaaaa")
    left = sorted(p.name for p in runs.iterdir())
    assert left == [".tmp-live", "20260101-000000-good-aaaaaa"]
    assert not (path / ".owner").exists()  # the owner file never reaches a complete run


def test_interrupted_measured_run_leaves_no_trace_file(home, tmp_path, monkeypatch):
    """--trace-out is renamed into place only after the run folder is committed."""
    from genscope.measure import run as measured
    from genscope.measure.passes import PassPlan

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(measured, "assemble_run", interrupted)
    out = tmp_path / "traces" / "t.json"
    with pytest.raises(KeyboardInterrupt):
        measured.measure_workload(
            "sd15",
            genscope.Settings(size="tiny", steps=1),
            plan=PassPlan(repeats=1, warmup=0, profiled_passes=1, min_seconds=0.0),
            trace_out=out,
            threads=1,
        )
    assert list(out.parent.iterdir()) == []  # neither t.json nor its staged copy
    assert not (home / "runs").exists() or list((home / "runs").iterdir()) == []


# ----------------------------------------------------------------------------- --json errors
USAGE_ERRORS = [
    ["trace", "sd15", "--steps", "abc"],
    ["trace", "sd15", "--nosuch-option"],
    ["trace"],
    ["nosuchcommand"],
    ["show"],
]
USER_ERRORS = [
    ["trace", "nosuch"],
    ["trace", "sd15", "--size", "huge"],
    ["trace", "sd15", "--res", "100000", "--steps", "1"],
    ["trace", "sd15", "--frames", "3"],
    ["show", "../x"],
    ["validate", "nosuch"],
]


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize("argv", USAGE_ERRORS + USER_ERRORS, ids=" ".join)
def test_every_error_is_one_line_and_one_json_object(home, capsys, no_build, argv, as_json):
    code, out, err = run_cli(argv + (["--json"] if as_json else []), capsys)
    error = assert_one_line_error(code, out, err, as_json)
    if error is not None:
        assert error["type"] == ("usage" if argv in USAGE_ERRORS else "user")


def test_choices_travel_in_the_json_error(home, capsys, no_build):
    code, out, err = run_cli(["trace", "sd15", "--dtype", "fp7", "--json"], capsys)
    error = assert_one_line_error(code, out, err, True)
    assert error is not None and error["choices"] == ["bf16", "fp16", "fp32"]


def test_usage_error_from_the_real_entry_point_is_one_line(home):
    """Typer's 6-line framework box must not reach the user."""
    env = os.environ | {"PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-m", "genscope.cli", "trace", "sd15", "--steps", "abc", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "--steps" in proc.stderr
    assert json.loads(proc.stdout)["error"]["type"] == "usage"


# ----------------------------------------------------------------------------- bounded inputs
def test_huge_resolution_is_refused_before_any_work(home, capsys, no_build):
    for res in ("100000", "4097", "512x100000", "9" * 40):
        code, out, err = run_cli(["trace", "sd15", "--res", res, "--steps", "1"], capsys)
        assert_one_line_error(code, out, err, False)
        assert len(err) < 300
    wl = genscope.workloads.registry.get_workload("sd15")
    with pytest.raises(UserError, match="bound"):
        wl.resolve(genscope.Settings(res=(10**6, 10**6)))
    assert wl.describe()["limits"]["res"] == wl.limits["res"]


def test_yaml_alias_bombs_are_refused(home, tmp_path, capsys):
    from genscope.sweep.spec import parse_spec

    levels = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        levels.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    bomb = "name: bomb\nworkloads: [sd15]\n" + "\n".join(levels) + "\nsteps: *a8\n"
    with pytest.raises(UserError, match="alias"):
        parse_spec(bomb)
    spec = tmp_path / "bomb.yaml"
    spec.write_text(bomb)
    code, out, err = run_cli(["sweep", str(spec), "--dry-run", "--json"], capsys)
    error = assert_one_line_error(code, out, err, True)
    assert error is not None and "alias" in error["message"] and len(err) < 300


def test_error_messages_clip_the_values_they_quote(home, tmp_path, capsys, no_build):
    from genscope.sweep.spec import parse_spec

    huge = "x" * 100_000
    code, out, err = run_cli(["trace", "sd15", "--size", huge], capsys)
    assert_one_line_error(code, out, err, False)
    assert len(err) < 300
    with pytest.raises(UserError) as exc:
        parse_spec(f"name: s\nworkloads: [sd15]\nsteps: ['{huge}']\n")
    assert len(str(exc.value)) < 300
    with pytest.raises(UserError, match="points"):
        parse_spec(
            "name: s\nworkloads: [sd15]\nsteps: "
            + str(list(range(1, 101)))
            + "\nbatch: "
            + str(list(range(1, 65)))
            + "\nres: [64, 128]\n"
        ).points()


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


@pytest.mark.parametrize(
    "name",
    ['"><script>alert(1)</script>', "<img src=x onerror=alert(1)>", "../../etc/passwd", ".", ""],
)
def test_hostile_names_become_safe_folder_names(home, name):
    r = genscope.trace(_Tiny(), torch.randn(1, 4), name=name or None, save=True)
    folder = Path(r.path or "")
    assert folder.parent == home.resolve() / "runs" and folder.is_dir()
    assert store.RUN_ID_RE.fullmatch(folder.name)
    meta, _, _ = store.load_run(r.run_id)
    assert meta["workload"] == (name or "_Tiny")  # the full name stays in run.json


def test_class_names_with_slashes_trace_and_save(home):
    cls = type("a/b<img src=x onerror=alert(1)>", (_Tiny,), {})
    r = genscope.trace(cls(), torch.randn(1, 4), save=True)
    assert Path(r.path or "").parent == home.resolve() / "runs"
    assert "/" not in r.run_id and "<" not in r.run_id


def test_validate_says_the_workload_is_unknown_first(home, capsys):
    code, out, err = run_cli(["validate", "nosuch"], capsys)
    assert_one_line_error(code, out, err, False)
    assert "unknown workload" in err and "cpu-local" not in err


@pytest.fixture
def cpu_local(home: Path) -> Any:
    """A cpu-local spec as ``calibrate`` writes it: fp32 and bf16 peaks only."""
    from genscope.costmodel.hardware import HardwareSpec, get_hardware
    from genscope.measure.calibrate import save_local_spec

    d = get_hardware("a100-80g-sxm").to_dict()
    d.update(
        name="cpu-local",
        kind="measured",
        matrix_peak={"fp32": 2e11, "bf16": 1e11},
        vector_peak={"fp32": 4e10, "bf16": 2e10},
        extra={},  # calibrate writes no GPU fields (arch, SM count)
    )
    save_local_spec(HardwareSpec.from_dict(d))
    return get_hardware("cpu-local")


def test_calibrated_spec_prices_fp64_ops(cpu_local, capsys):
    assert cpu_local.peak("fp64", "vector") == cpu_local.vector_peak["fp32"]
    assert cpu_local.peak_field("fp64", "matrix") == "matrix_peak.fp32"
    code, out, err = run_cli(
        ["trace", "flux", "--size", "tiny", "--steps", "1", "--hardware", "cpu-local", "--json"],
        capsys,
    )
    assert code == 0, err
    assert json.loads(out)["hardware"] == "cpu-local"


def test_report_names_failed_sections_in_page_and_on_stderr(home, tmp_path, capsys):
    from genscope.report.build import build_report
    from genscope.report.html import Section

    def broken(ctx: Any) -> list[Section]:
        raise RuntimeError("no vector peak")

    def fine(ctx: Any) -> list[Section]:
        return [Section("fine", "Fine", "analytic")]

    capsys.readouterr()
    page = build_report(tmp_path / "rep", builders=[("boom", broken), ("fine", fine)])
    err = capsys.readouterr().err
    assert "section 'boom' failed: RuntimeError: no vector peak" in err
    assert "'fine'" not in err
    assert "Sections that failed (1): boom" in page.read_text()


# ----------------------------------------------------------------------------- BYO labels
class TemporalToy(nn.Module):
    """Conv, then attention over frames at every pixel: batch = B·H·W, sequence = F."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, c, 1)
        self.qkv = nn.Linear(c, 3 * c)
        self.out = nn.Linear(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, F, H, W)
        h = self.conv(x)
        b, c, f, hh, ww = h.shape
        t = h.permute(0, 3, 4, 2, 1).reshape(b * hh * ww, f, c)
        q, k, v = (
            z.reshape(b * hh * ww, f, 2, c // 2).transpose(1, 2) for z in self.qkv(t).chunk(3, -1)
        )
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b * hh * ww, f, c)
        return self.out(o)


class SpatialToy(nn.Module):
    """Self attention over the H·W pixels of an image."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(c, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        t = x.flatten(2).transpose(1, 2)
        return self.attn(t, t, t, need_weights=False)[0]


class _Cross(nn.Module):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(1, -1, 2, 8).transpose(1, 2)

        return F.scaled_dot_product_attention(
            heads(self.q(x)), heads(self.k(ctx)), heads(self.v(ctx))
        )


class CrossToy(nn.Module):
    """Q from x (16 tokens), K/V from a context (7 tokens), in a module named like self."""

    def __init__(self) -> None:
        super().__init__()
        self.text_attention = _Cross()
        self.self_attention = _Cross()

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        y = self.text_attention(x, ctx).transpose(1, 2).reshape(1, -1, 16)
        return self.self_attention(y, y)  # same length, same input: self


class OuterToy(nn.Module):
    """CrossToy one level down: its modules are ``inner.text_attention``, ..."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = CrossToy()

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        return self.inner(x, ctx)


def attention_rows(r: Any) -> pd.DataFrame:
    ev = r.events
    return ev[ev["category"] == "attention"]


@pytest.mark.parametrize("attention", ["flash", "math"])
def test_temporal_toy_is_labelled_temporal(attention):
    r = genscope.trace(TemporalToy(), torch.randn(1, 3, 4, 6, 6), attention=attention)
    rows = attention_rows(r)
    assert len(rows) and set(rows["attn_axis"]) == {"temporal"}
    assert set(rows["attn_kind"]) == {"self"}
    assert (
        r.summary["attention"]["temporal"]["flops"] > 0 == r.summary["attention"]["text"]["flops"]
    )


def test_spatial_and_multihead_attention_rows_have_shapes():
    r = genscope.trace(SpatialToy().eval(), torch.randn(2, 8, 4, 6))
    rows = attention_rows(r)
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row.q_len, row.kv_len, row.heads, row.head_dim, row.batch) == (24, 24, 2, 4, 2)
    assert (row.attn_axis, row.attn_kind) == ("spatial", "self")
    assert r.summary["seq_len"]["min"] == 24


@pytest.mark.parametrize("attention", ["flash", "math"])
def test_cross_attention_is_decided_from_the_tensors(attention):
    r = genscope.trace(
        CrossToy(), (torch.randn(1, 16, 16), torch.randn(1, 7, 16)), attention=attention
    )
    rows = attention_rows(r)
    kinds = {path: set(g) for path, g in rows.groupby("module_path")["attn_kind"]}
    assert kinds == {"text_attention": {"cross"}, "self_attention": {"self"}}
    cross = rows[rows["module_path"] == "text_attention"].dropna(subset=["q_len"]).iloc[0]
    assert (cross.q_len, cross.kv_len) == (16, 7)
    assert "text" not in set(rows["attn_axis"])  # no shape says text here: unknown, never wrong


def test_axis_mapping_is_per_module_and_validated():
    r = genscope.trace(
        CrossToy(),
        (torch.randn(1, 16, 16), torch.randn(1, 7, 16)),
        attn_axis={"text_*": "joint", "self_attention": "spatial"},
    )
    axes = {path: set(g) for path, g in attention_rows(r).groupby("module_path")["attn_axis"]}
    assert axes == {"text_attention": {"joint"}, "self_attention": {"spatial"}}
    nested = genscope.trace(
        OuterToy(),
        (torch.randn(1, 16, 16), torch.randn(1, 7, 16)),
        attn_axis={"text_*": "joint"},  # a glob names whole paths: "inner.text_attention" is not it
    )
    assert "joint" not in set(attention_rows(nested)["attn_axis"])
    for bad in ("banana", {"*": "banana"}, {3: "spatial"}, ["spatial"]):
        with pytest.raises(UserError):
            genscope.trace(
                CrossToy(), (torch.randn(1, 16, 16), torch.randn(1, 7, 16)), attn_axis=bad
            )  # type: ignore[arg-type]


def test_diffusers_pipeline_gets_a_pipeline_component_and_numbered_steps():
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        attention_head_dim=8,
    )
    pipe = DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=10))
    pipe.set_progress_bar_config(disable=True)
    r = genscope.trace(pipe, {"batch_size": 1, "num_inference_steps": 3, "output_type": "np"})
    ev = r.events
    assert set(ev["component"]) == {"unet", "pipeline"}
    assert sorted(ev.loc[ev["component"] == "unet", "step"].unique()) == [0, 1, 2]
    scheduler = ev[(ev["component"] == "pipeline") & ev["step"].notna()]
    assert sorted(scheduler["step"].unique()) == [0, 1, 2]  # each step's scheduler update
    rows = attention_rows(r)
    assert (
        len(rows) and set(rows["attn_axis"]) == {"spatial"} and set(rows["attn_kind"]) == {"self"}
    )
