"""The hardware registry: every datasheet number has a source and a status, dense peaks follow
the sparse/2 convention, and lookups fail with errors that name the valid choices."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genscope.costmodel.hardware import (
    DTYPES,
    LOCAL_NAMES,
    HardwareSpec,
    get_hardware,
    hardware_names,
    list_hardware,
)
from genscope.errors import UserError

REQUIRED = (
    "a100-40g-sxm",
    "a100-80g-sxm",
    "a100-80g-pcie",
    "h100-sxm",
    "h100-pcie",
    "h200-sxm",
    "l4",
    "a100-40g-pcie",
    "h100-nvl",
    "h200-nvl",
)
GENSCOPE = str(Path(sys.executable).with_name("genscope"))


@pytest.fixture(autouse=True)
def empty_home(tmp_path, monkeypatch):
    """No calibrated spec unless a test writes one: the registry must not see the user's home."""
    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path))


DATASHEET = [get_hardware(n) for n in hardware_names() if n not in LOCAL_NAMES]
IDS = [s.name for s in DATASHEET]


def test_required_names_exist():
    assert set(REQUIRED) <= set(hardware_names())
    specs = list_hardware()
    assert [s.name for s in specs] == hardware_names()
    assert {s.kind for s in specs} == {"datasheet"}  # nothing calibrated in this home


@pytest.mark.parametrize("spec", DATASHEET, ids=IDS)
def test_every_number_has_source_and_status(spec: HardwareSpec):
    numbers = spec.number_fields()
    assert len(numbers) >= 8, numbers
    for path in numbers:
        assert spec.source_of(path), f"{spec.name}: {path} has no source"
        status = spec.status_of(path)
        assert status == "cross-checked" or (status or "").startswith("unverified: "), (
            f"{spec.name}: {path} has status {status!r}"
        )


@pytest.mark.parametrize("spec", DATASHEET, ids=IDS)
def test_no_stale_source_or_status_keys(spec: HardwareSpec):
    """A typo in a key would leave a number silently unsourced; every key must point somewhere."""
    numbers = spec.number_fields()
    for key in spec.status:
        assert key in numbers, f"{spec.name}: status for unknown field {key!r}"
    notes = {"extra.datasheet_check"}  # provenance text, not a number
    for key in spec.sources:
        assert key in numbers or key in notes, f"{spec.name}: source for unknown field {key!r}"


@pytest.mark.parametrize("spec", DATASHEET, ids=IDS)
def test_dense_is_half_of_sparse(spec: HardwareSpec):
    sparse = spec.extra["matrix_peak_sparse"]
    assert {"tf32", "bf16", "fp16", "int8"} <= set(sparse)
    for dtype, value in sparse.items():
        assert spec.matrix_peak[dtype] == value / 2, f"{spec.name} {dtype}"


@pytest.mark.parametrize("spec", DATASHEET, ids=IDS)
def test_fp32_matrix_is_plain_fp32(spec: HardwareSpec):
    """PyTorch keeps fp32 matmuls off TF32 by default, so the fp32 GEMM ceiling is plain FP32."""
    assert spec.peak("fp32", "matrix") == spec.peak("fp32", "vector")
    # GeForce Ada (RTX 4090) runs TF32 Tensor Cores at the FP32 SIMT rate, hence >=.
    assert spec.peak("tf32", "matrix") >= spec.peak("fp32", "matrix")
    assert "TF32" in spec.sources["matrix_peak.fp32"]


def test_a100_80g_sxm_datasheet_numbers():
    spec = get_hardware("a100-80g-sxm")
    assert spec.peak("bf16", "matrix") == 312e12  # 624 sparse / 2
    assert spec.mem_bw == 2.039e12
    assert spec.mem_bytes == 80 * 10**9
    assert spec.extra["max_power_w"] == 400


def test_h100_sxm_ridge():
    # 989.5e12 FLOP/s / 3.35e12 B/s = 295.37 FLOP/B
    assert get_hardware("h100-sxm").ridge("bf16") == pytest.approx(295.4, abs=0.05)


# hardware.md's ridge points, dense BF16 / bandwidth: e.g. 312 / 1.555 = 200.6, 835.5 / 4.8 = 174.1
@pytest.mark.parametrize(
    ("name", "ridge"),
    [
        ("a100-40g-pcie", 200.6),
        ("a100-80g-pcie", 161.2),
        ("a100-40g-sxm", 200.6),
        ("a100-80g-sxm", 153.0),
        ("h100-nvl", 214.2),
        ("h100-pcie", 378.25),
        ("h200-sxm", 206.1),
        ("h200-nvl", 174.1),
        ("l4", 403.3),  # 121 / 0.3
    ],
)
def test_ridges_match_research_table(name, ridge):
    assert get_hardware(name).ridge("bf16", "matrix") == pytest.approx(ridge, abs=0.05)


def test_l4_numbers():
    spec = get_hardware("l4")
    assert spec.peak("bf16", "matrix") == 121e12  # 242 sparse / 2
    assert spec.peak("fp8", "matrix") == 242.5e12  # 485 sparse / 2
    assert spec.vector_peak == {"fp32": 30.3e12}
    assert (spec.mem_bw, spec.mem_bytes) == (300e9, 24 * 10**9)
    assert "l4-datasheet" in spec.sources["matrix_peak.bf16"]


def test_a100_has_no_fp8():
    with pytest.raises(UserError, match=r"no matrix peak for dtype 'fp8'.*fp64, fp32, tf32, bf16"):
        get_hardware("a100-80g-sxm").peak("fp8", "matrix")


def test_unknown_dtype_and_unit_name_the_choices():
    spec = get_hardware("h100-sxm")
    with pytest.raises(UserError) as err:
        spec.peak("fp4", "matrix")
    assert all(d in str(err.value) for d in ("fp64", "bf16", "fp8", "int8"))
    with pytest.raises(UserError, match="matrix, vector"):
        spec.peak("bf16", "tensor")


def test_vector_half_precision_falls_back_to_fp32_visibly():
    l4 = get_hardware("l4")
    assert l4.peak("bf16", "vector") == 30.3e12
    assert l4.peak_field("bf16", "vector") == "vector_peak.fp32"
    a100 = get_hardware("a100-80g-sxm")
    # A100 lists vector fp16 (78) but not vector bf16: bf16 must not borrow the fp16 figure.
    assert a100.peak("fp16", "vector") == 78e12
    assert a100.peak("bf16", "vector") == 19.5e12
    assert a100.status_of("vector_peak.fp16").startswith("unverified")
    with pytest.raises(UserError, match="known vector dtypes: fp64, fp32"):
        a100.peak("fp8", "vector")


def test_vector_fp16_only_where_research_gives_it():
    have = {s.name for s in DATASHEET if "fp16" in s.vector_peak}
    assert have == {"a100-40g-sxm", "a100-80g-sxm", "h100-sxm"}


def test_dtype_aliases():
    spec = get_hardware("h100-sxm")
    assert spec.peak("bfloat16", "matrix") == spec.peak("torch.bfloat16", "matrix") == 989.5e12


@pytest.mark.parametrize("spec", DATASHEET, ids=IDS)
def test_round_trip(spec: HardwareSpec):
    data = json.loads(json.dumps(spec.to_dict()))
    assert HardwareSpec.from_dict(data) == spec
    assert set(spec.matrix_peak) <= set(DTYPES)


def test_returned_specs_are_independent():
    get_hardware("l4").matrix_peak["bf16"] = 1.0
    assert get_hardware("l4").matrix_peak["bf16"] == 121e12


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mem_bw": -1.0}, "mem_bw must be finite and > 0"),
        ({"mem_bw": math.inf}, "mem_bw must be finite"),
        ({"kind": "guessed"}, "kind 'guessed'"),
        ({"matrix_peak": {"fp4": 1.0}}, "unknown dtype in l4.matrix_peak 'fp4'"),
    ],
)
def test_from_dict_rejects_bad_fields(change, message):
    data = {**get_hardware("l4").to_dict(), **change}
    with pytest.raises(UserError, match=message):
        HardwareSpec.from_dict(data)


def test_unknown_name_lists_valid_names():
    with pytest.raises(UserError) as err:
        get_hardware("mi300x")
    assert "unknown hardware 'mi300x'" in str(err.value)
    assert all(n in str(err.value) for n in REQUIRED)


def test_cpu_local_missing_says_run_calibrate():
    assert "cpu-local" not in hardware_names()
    with pytest.raises(UserError, match="run `genscope calibrate`"):
        get_hardware("cpu-local")
    with pytest.raises(UserError, match="`genscope calibrate --device cuda`"):
        get_hardware("cuda-local")


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run ``genscope ARGS`` in-process through ``main`` (where UserError becomes exit 2)."""
    from genscope import cli

    monkeypatch.setattr(sys, "argv", ["genscope", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as exit_:
        code = 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_unknown_hardware_exits_2(tmp_path):
    """End to end, across a real process boundary: one line on stderr, exit code 2."""
    env = {**os.environ, "GENSCOPE_HOME": str(tmp_path)}
    proc = subprocess.run(
        [GENSCOPE, "hardware", "mi300x"], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "unknown hardware 'mi300x'" in proc.stderr and "a100-80g-sxm" in proc.stderr


def test_cli_cpu_local_missing_exits_2(monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, "hardware", "cpu-local")
    assert code == 2 and out == ""
    assert "run `genscope calibrate`" in err


def test_cli_json_and_table(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "hardware", "--json")
    assert code == 0
    payload = json.loads(out)  # exactly one JSON object
    assert [h["name"] for h in payload["hardware"]] == hardware_names()
    code, out, _ = run_cli(monkeypatch, capsys, "hardware")
    assert code == 0 and "h100-sxm" in out and "295.4" in out
    code, out, _ = run_cli(monkeypatch, capsys, "hardware", "h100-sxm", "--json")
    assert code == 0 and json.loads(out)["matrix_peak"]["bf16"] == 989.5e12
    code, out, _ = run_cli(monkeypatch, capsys, "hardware", "l4")
    assert code == 0 and "extra.datasheet_check" in out and "fallback" in out
