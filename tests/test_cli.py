"""The CLI contract: one JSON object on stdout, one-line errors with exit code 2, no run folder
left behind by bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genscope.cli import main

GENSCOPE = [sys.executable, "-m", "genscope.cli"]


def run(args, home: Path):
    env = os.environ | {"GENSCOPE_HOME": str(home)}
    return subprocess.run(GENSCOPE + args, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def full_step(home):
    p = run(
        ["trace", "sd15", "--size", "full", "--hardware", "a100-80g-sxm", "--steps", "1", "--json"],
        home,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_trace_json_is_one_object_with_contract_keys(full_step):
    for key in ("run_id", "workload", "size", "mode", "hardware", "dtype", "attention", "params",
                "flops_total", "bytes_total", "predicted_s", "by_component", "by_category",
                "seq_len"):  # fmt: skip
        assert key in full_step, key
    assert full_step["params"]["unet"] == 859_520_964
    assert full_step["attention"]["impl"] == "flash"
    assert {"self", "cross", "spatial", "temporal", "joint"} <= set(full_step["attention"])
    shares = sum(v["share"] for v in full_step["by_category"].values())
    assert abs(shares - 1) < 1e-9
    assert full_step["seq_len"] == {"min": 64, "max": 4096, "distinct": [64, 77, 256, 1024, 4096]}


def test_runs_and_show_query_the_store(full_step, home):
    p = run(["runs", "--json"], home)
    ids = [r["run_id"] for r in json.loads(p.stdout)["runs"]]
    assert full_step["run_id"] in ids
    shown = json.loads(run(["show", full_step["run_id"], "--json"], home).stdout)
    assert shown["flops_total"] == full_step["flops_total"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["trace", "nope"], "choose one of"),
        (["trace", "sd15", "--hardware", "h999"], "a100-80g-sxm"),
        (["trace", "sd15", "--res", "500"], "multiple of 8"),
        (["trace", "sd15", "--steps", "0"], ">= 1"),
        (["trace", "sd15", "--dtype", "fp8"], "fp32"),
        (["trace", "sd15", "--attention", "xformers"], "flash"),
        (["trace", "sd15", "--frames", "8"], "--steps"),
        (["show", "no-such-run"], "genscope runs"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_no_run(
    args, needle, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["genscope", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
