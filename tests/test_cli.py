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


# ------------------------------------------------------------------ models, runs, printers


def cli(monkeypatch, capsys, home: Path, *args: str) -> tuple[str, str]:
    """The entry point in-process (no interpreter start-up); wide output so tables keep rows."""
    monkeypatch.setenv("GENSCOPE_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setattr(sys, "argv", ["genscope", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    assert exit_info.value.code in (0, None), err
    return out, err


def test_models_json_lists_the_suite(monkeypatch, capsys, tmp_path):
    out, _ = cli(monkeypatch, capsys, tmp_path, "models", "--json")
    models = {m["name"]: m for m in json.loads(out)["models"]}
    assert len(models) == 18 and {"sd15", "parti", "llama", "wan"} <= set(models)
    sd15 = models["sd15"]
    assert (sd15["task"], sd15["family"]) == ("tti", "diffusion-unet")
    # the published sd15 sizes (papers.md: CLIP ~123M, UNet ~860M, VAE ~84M)
    params = {k: c["published_params"] for k, c in sd15["components"].items()}
    assert params == {"text_encoder": 123_060_480, "unet": 859_520_964, "vae": 83_653_863}
    assert sd15["components"]["unet"]["source"].startswith("https://huggingface.co/")
    assert sd15["defaults"] == {"res": [512, 512], "steps": 50, "cfg": True}


def test_models_table_prints_every_workload_with_rounded_params(monkeypatch, capsys, tmp_path):
    out, _ = cli(monkeypatch, capsys, tmp_path, "models")
    assert "workload" in out and "components (params)" in out
    for name in ("sd15", "muse", "parti", "phenaki", "chameleon", "hstu", "cogvideox", "wan"):
        assert f" {name} " in out, name
    # 859,520,964 -> "860M", 123,060,480 -> "123M", 83,653,863 -> "84M"
    assert "unet 860M (UNet2DConditionModel)" in out
    assert "text_encoder 123M (CLIPTextModel)" in out and "vae 84M (AutoencoderKL)" in out
    assert "res=(512, 512)" in out or "res=[512, 512]" in out


@pytest.fixture(scope="module")
def tiny_llama(home):
    """A second stored run, of another workload (in-process: no interpreter start-up)."""
    from genscope.api import trace_workload
    from genscope.workloads.base import Settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENSCOPE_HOME", str(home))
        result = trace_workload("llama", Settings(size="tiny"))
    return {"run_id": result.run_id}


def test_runs_workload_filters_the_store(full_step, tiny_llama, home, monkeypatch, capsys):
    out, _ = cli(monkeypatch, capsys, home, "runs", "--workload", "sd15", "--json")
    sd = json.loads(out)["runs"]
    assert full_step["run_id"] in {r["run_id"] for r in sd}
    assert {r["workload"] for r in sd} == {"sd15"}
    out, _ = cli(monkeypatch, capsys, home, "runs", "--workload", "llama", "--json")
    ids = {r["run_id"] for r in json.loads(out)["runs"]}
    assert tiny_llama["run_id"] in ids and full_step["run_id"] not in ids
    out, _ = cli(monkeypatch, capsys, home, "runs", "--workload", "nope", "--json")
    assert json.loads(out)["runs"] == []


def test_runs_table_names_each_run(full_step, tiny_llama, home, monkeypatch, capsys):
    out, _ = cli(monkeypatch, capsys, home, "runs", "--workload", "llama")
    assert "1 runs" in out or "runs" in out.splitlines()[0]
    assert tiny_llama["run_id"] in out and full_step["run_id"] not in out
    out, _ = cli(monkeypatch, capsys, home, "runs")
    assert tiny_llama["run_id"] in out and full_step["run_id"] in out


def test_show_prints_the_trace_summary(full_step, home, monkeypatch, capsys):
    out, _ = cli(monkeypatch, capsys, home, "show", full_step["run_id"])
    lines = out.splitlines()
    assert lines[0].startswith(full_step["run_id"])
    assert "sd15 (full, analytic" in lines[0] and "flash attention) on a100-80g-sxm" in lines[0]
    # 859,520,964 -> 859.5M; 123,060,480 -> 123.1M; 83,653,863 -> 83.7M
    assert "unet 859.5M" in out and "text_encoder 123.1M" in out and "vae 83.7M" in out
    model = "(GPU time model: kernels + host timeline)"
    assert f"predicted {full_step['predicted_s'] * 1e3:.2f} ms {model}" in out
    idle = f"device idle {full_step['idle_s'] * 1e3:.2f} ms"
    assert f"roofline bound {full_step['roofline_s'] * 1e3:.2f} ms" in out and idle in out
    assert "by category" in out and "conv" in out and "attention" in out
    assert "attention seq_len: min 64, max 4096, [64, 77, 256, 1024, 4096]" in out


def test_trace_prints_the_summary_and_where_it_stored(home, monkeypatch, capsys):
    out, _ = cli(monkeypatch, capsys, home, "trace", "llama", "--size", "tiny")
    first = out.splitlines()[0]
    assert " llama (tiny, analytic" in first
    run_id = first.split()[0]
    assert "stored: " in out and run_id in out.split("stored: ", 1)[1]
    assert "(GPU time model: kernels + host timeline)" in out
    assert "by category" in out and "linear" in out


def test_hardware_list_table_shows_datasheet_numbers(monkeypatch, capsys, tmp_path):
    out, _ = cli(monkeypatch, capsys, tmp_path, "hardware")
    row = next(line for line in out.splitlines() if " a100-80g-sxm " in line)
    # 312 TFLOPS bf16 dense, 19.5 TFLOPS fp32 vector, 2039 GB/s, 80 GB, ridge 312e12/2039e9
    for cell in ("312.0", "19.5", "2,039.0", "80.0", "153.0", "datasheet"):
        assert cell in row, (cell, row)
    assert all(f" {n} " in out for n in ("h100-sxm", "h200-sxm", "l4"))


def test_hardware_detail_shows_fields_with_sources(monkeypatch, capsys, tmp_path):
    out, _ = cli(monkeypatch, capsys, tmp_path, "hardware", "a100-80g-sxm")
    assert "matrix_peak.bf16" in out and "312.0 TFLOPS" in out
    assert "mem_bw" in out and "2,039.0 GB/s" in out
    assert "nvidia.com" in out  # every datasheet number names where it is from
    assert "MISSING" not in out
