"""``genscope numerics``: bad input exits 2 with one line naming the options; JSON on stdout."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from genscope import cli

GENSCOPE = str(Path(sys.executable).with_name("genscope"))
# A sweep small enough for a test: d = 16, M = 512 -> tiles 8x8, M = 1024 -> 16x16.
SMALL = [
    "--dtypes", "bf16,fp32", "--seq-lens", "64,128", "--fixed-sram", "512",
    "--sram", "512,1024", "--area-seq-len", "128", "--heads", "1", "--head-dim", "16",
]  # fmt: skip


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """The CLI entry point in-process: same code path as the script, without the start-up."""
    monkeypatch.setattr(sys, "argv", ["genscope", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep", "--dtypes", "bf16,fp8"], "dtype 'fp8'; choose one of: bf16, fp16, fp32, fp64"),
        # M = 8192, d = 64: B_c = ceil(8192 / 256) = 32 > 16
        (["sweep", "--seq-lens", "16"], "tile 32x32 from SRAM size M=8192 (d=64) is larger"),
        (["sweep", "--fixed-sram", "0"], "SRAM size M must be a positive number of elements"),
        (["sweep", "--sram", "4096,-1"], "must be a positive number of elements, got -1"),
        (["sweep", "--inputs", "cauchy"], "choose one of: normal, outlier, uniform"),
        (["sweep", "--seq-lens", "a,b"], "--seq-lens must be comma-separated integers"),
        (["model", "sd99"], "unknown workload for numerics model 'sd99'; choose one of: sd15"),
        (["model", "sd15", "--size", "full"], "choose one of: tiny"),
        (["model", "sd15", "--dtype", "fp8"], "choose one of: bf16, fp16, fp32, fp64"),
        (["drift", "--steps", "0"], "steps must be positive"),
        (["drift", "--low-precision", "fp8"], "choose one of: bf16, fp16"),
    ],
)  # fmt: skip
def test_bad_input_one_line_exit_2(monkeypatch, capsys, args, message):
    code, out, err = run_main(monkeypatch, capsys, "numerics", *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("genscope: error: ")
    assert message in err


def test_script_exits_2_on_unknown_dtype():
    proc = subprocess.run(
        [GENSCOPE, "numerics", "sweep", "--dtypes", "fp8"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "genscope: error: unknown dtype 'fp8'; choose one of: bf16, fp16, fp32, fp64"
    ]


def test_sweep_json_and_out_dir(monkeypatch, capsys, tmp_path):
    code, out, err = run_main(
        monkeypatch, capsys, "numerics", "sweep", "--json", "--out", str(tmp_path), *SMALL
    )
    assert code == 0, err
    summary = json.loads(out)  # exactly one JSON object on stdout
    assert summary["measured"] == "cpu"
    # bf16 keeps 8 significant bits (unit roundoff 2^-8 ~ 3.9e-3), fp32 keeps 24 (2^-24 ~
    # 6e-8): outputs of |O| <= 1 deviate from the fp64 golden by a few roundoffs of each format
    prec = summary["precision"]
    for path in ("flash_vs_golden_max", "baseline_vs_golden_max"):
        assert 2**-10 <= prec["bf16"][path] <= 2**-5, (path, prec["bf16"])
        assert 2**-26 <= prec["fp32"][path] <= 2**-20, (path, prec["fp32"])
    # the headline is the bf16 flash / baseline ratio at the precision point of sweep.csv
    rows = pd.read_csv(tmp_path / "sweep.csv")
    bf16 = rows[(rows.experiment == "precision") & (rows.dtype == "bf16")].iloc[0]
    assert summary["bf16_flash_to_baseline_ratio"] == pytest.approx(
        bf16.flash_max / bf16.baseline_max, rel=1e-12
    )
    assert summary["precision_at"] == {"seq_len": 128, "block_r": 8, "block_c": 8, "sram_m": 512}
    for key in ("grows_with_seq_len", "shrinks_with_tile_area", "paper_directions_bf16"):
        assert key in summary
    written = {p.name for p in tmp_path.iterdir()}
    assert {"sweep.csv", "summary.json", "precision.png", "seq_len.png", "tile_area.png"} <= written
    assert json.loads((tmp_path / "summary.json").read_text())["cases"] == summary["cases"]


def test_model_json(monkeypatch, capsys, tmp_path):
    code, out, _ = run_main(
        monkeypatch, capsys, "numerics", "model", "sd15", "--size", "tiny", "--steps", "1",
        "--json", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0
    summary = json.loads(out)
    assert summary["calls"] == 8 and summary["skipped"] == 0  # 8 attention calls per UNet step
    assert len(summary["layers"]) == 8
    assert (summary["dtype"], summary["accum"]) == ("bf16", "bf16")
    # bf16 flash and bf16 baseline outputs (|O| <= 1) differ by a few bf16 ulps (2^-8 near 1);
    # PyTorch's fp32 SDPA stays within a few fp32 roundoffs (2^-24) of the fp64 golden
    assert 2**-10 <= summary["max_flash_vs_baseline"] <= 2**-5
    assert 2**-10 <= summary["max_flash_vs_golden"] <= 2**-5
    assert 0 < summary["max_sdpa_vs_golden"] <= 2**-20
    # the headline is the worst attention layer of layers.csv
    layers = pd.read_csv(tmp_path / "layers.csv")
    assert summary["max_flash_vs_baseline"] == layers.fvb_max.max()
    assert layers.calls.sum() == 8
    assert {"calls.csv", "layers.csv", "dual_path.png", "summary.json"} <= {
        p.name for p in tmp_path.iterdir()
    }


@pytest.mark.slow
def test_bench_numerics_json():
    proc = subprocess.run(
        [GENSCOPE, "bench", "numerics", "--json"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["name"] == "numerics" and result["target_s"] == 60
    assert result["grid"]["cases"] == 4 * 6 * 4
    assert result["seconds"] > 0
