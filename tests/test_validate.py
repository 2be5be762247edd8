"""Validation arithmetic and the calibrated op model, on synthetic rows (fast); the end-to-end
command is a slow test."""

import json
import math
import sys

import numpy as np
import pandas as pd
import pytest

from genscope.analyses.validation import compare
from genscope.costmodel.opmodel import Curve, LinearFit, OpModel, op_classes
from genscope.schema import events_frame


def _rows() -> pd.DataFrame:
    return events_frame(
        [
            {
                "op": "aten.convolution.default",
                "category": "conv",
                "unit": "matrix",
                "flops": 10**8,
                "input_shapes": "[2,4,8,8];[4,4,3,3];[4]",
                "predicted_s": 0.004,
                "measured_s": 0.006,
            },
            {
                "op": "aten.convolution.default",
                "category": "conv",
                "unit": "matrix",
                "flops": 10**6,
                "input_shapes": "[2,4,8,8];[4,4,1,1];[4]",
                "predicted_s": 0.0001,
                "measured_s": 0.0002,
            },
            {
                "op": "aten.addmm.default",
                "category": "linear",
                "unit": "matrix",
                "flops": 10**7,
                "bytes_read": 4000,
                "predicted_s": 0.0005,
                "measured_s": 0.001,
            },
            {
                "op": "aten._scaled_dot_product_flash_attention_for_cpu.default",
                "category": "attention",
                "unit": "matrix",
                "flops": 4 * 16 * 64 * 64 * 8,
                "batch": 2,
                "heads": 8,
                "q_len": 64,
                "kv_len": 64,
                "predicted_s": 0.0001,
                "measured_s": 0.0003,
            },
            {
                "op": "aten.add.Tensor",
                "category": "elementwise",
                "unit": "vector",
                "bytes_read": 8000,
                "bytes_written": 4000,
                "predicted_s": 1e-5,
                "measured_s": 3e-5,
            },
            {"op": "aten.view.default", "category": "memory", "unit": "none", "measured_s": 1e-6},
            {
                "op": "aten.native_group_norm.default",
                "category": "norm",
                "unit": "vector",
                "bytes_read": 10**5,
                "predicted_s": 2e-5,
                "measured_s": 5e-5,
            },
        ]
    )


def _model() -> OpModel:
    curve = Curve([1.0, 1e6, 1e9], [1e-6, 1e-5, 1e-2])
    return OpModel(
        dtype="fp32",
        threads=1,
        curves={
            "gemm": curve,
            "conv1": curve,
            "conv3": curve,
            "conv3n": Curve([1.0, 1e9], [1e-7, 1e-3]),
            "conv_weight": Curve([1e3, 1e8], [1e-5, 1e-1]),
            "vector": curve,
            "norm": curve,
        },
        sdpa=LinearFit([1e-5, 1e-9, 0.0, 2e-7]),
        fixed_s={"add": 3e-6, "view": 1e-6},
        view_s=2e-6,
        overhead_per_op_s=1e-5,
    )


def test_op_classes_and_curve_interpolation():
    ev = _rows()
    assert list(op_classes(ev)) == ["conv3", "conv1", "gemm", "sdpa", "vector", "view", "norm"]
    c = Curve([10.0, 1000.0], [1.0, 100.0])
    assert c(100.0) == pytest.approx(10.0)  # log-log interpolation
    assert c(1.0) == pytest.approx(1.0)  # fixed cost below the first point
    assert c(10000.0) == pytest.approx(1000.0)  # linear in work above the last point


@pytest.mark.parametrize(
    "x, w",
    [
        ((1, 16, 8, 8), (16, 16, 3, 3)),  # batch 1, small: native
        ((2, 16, 8, 8), (16, 16, 3, 3)),  # batch 2: oneDNN
        ((1, 64, 16, 16), (64, 64, 3, 3)),  # 16384 elements: native
        ((1, 32, 32, 32), (32, 32, 3, 3)),  # 32768 elements: oneDNN
        ((1, 16, 8, 8), (16, 4, 3, 3)),  # grouped: oneDNN
        ((1, 4, 16, 16), (4, 4, 5, 5)),  # kernel above 3x3: oneDNN
        ((1, 4, 16, 16), (4, 4, 5, 1)),  # one kernel dim above 3: native
        ((2, 64, 4, 4, 4), (64, 64, 3, 1, 1)),  # temporal video conv: native on one thread
        ((16, 16, 4, 8, 8), (16, 16, 3, 1, 1)),  # ... oneDNN from batch 16
        ((1, 16, 4, 8, 8), (16, 16, 3, 3, 3)),  # small 3-D, batch 1: native
        ((2, 16, 4, 8, 8), (16, 16, 3, 3, 3)),  # 3-D, batch 2: oneDNN
    ],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_conv_class_follows_the_path_torch_takes(x, w, threads):
    """conv_class mirrors PyTorch's oneDNN-or-native choice; hold it against the kernel the
    installed torch actually runs (its dispatch-level child ops)."""
    import torch
    import torch.nn.functional as F
    from torch.profiler import profile

    from genscope.costmodel.opmodel import conv_class
    from genscope.machine.threads import torch_threads

    conv = F.conv3d if len(x) == 5 else F.conv2d
    shapes = ";".join("[" + ",".join(map(str, s)) + "]" for s in (x, w))
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        xt, wt = torch.randn(*x).to(dtype), torch.randn(*w).to(dtype)
        with torch_threads(threads), torch.no_grad(), profile() as prof:
            conv(xt, wt, groups=x[1] // w[1])
        names = {e.name for e in prof.events()}
        onednn = "aten::mkldnn_convolution" in names
        native = bool(
            names & {"aten::thnn_conv2d", "aten::_slow_conv2d_forward", "aten::slow_conv3d"}
        )
        assert onednn != native, names
        assert conv_class(shapes, name, threads) == ("conv3n" if native else "conv3"), name


def test_op_model_prediction_and_roundtrip():
    m = _model()
    pred = m.predict_ops(_rows())
    assert pred[0] == pytest.approx(m.curves["conv3"](1e8)[()])
    # sdpa: c0 + c_scores·scores + c_slices·batch·heads
    assert pred[3] == pytest.approx(1e-5 + 1e-9 * 2 * 8 * 64 * 64 + 2e-7 * 2 * 8)
    assert pred[4] == pytest.approx(3e-6 + m.curves["vector"](12000.0)[()] - 1e-6)
    assert pred[5] == pytest.approx(1e-6)  # a view: its fixed cost
    again = OpModel.from_dict(json.loads(json.dumps(m.to_dict())))
    np.testing.assert_allclose(again.predict_ops(_rows()), pred)
    assert m.overhead_s(_rows()) == pytest.approx(7e-5)


def test_compare_errors_and_shares():
    ev = _rows()
    op_total = float(ev["measured_s"].sum())
    summary = {
        "threads": 1,
        "device": "cpu",
        "cpu_s": {"min": 0.02, "median": 0.021},
        "wall_s": {"median": 0.03},
        "profiled_wall_s": 0.05,
        "profiled_cpu_s": 0.05,
        "hardware_name": "cpu-local",
    }
    r = compare(ev, summary, _model())
    assert r["measured_s"] == 0.02 and r["measured_median_s"] == 0.021
    meas = r["measured_by_category_s"]
    assert meas["overhead"] == pytest.approx(0.02 - op_total)
    assert sum(r["measured_shares"].values()) == pytest.approx(1.0)
    cal = r["calibrated"]
    assert cal["e2e_error_pct"] == pytest.approx(100 * (cal["predicted_s"] - 0.02) / 0.02)
    pred_sh, meas_sh = cal["shares"], r["measured_shares"]
    worst = max(abs(pred_sh.get(k, 0) - meas_sh.get(k, 0)) for k in set(pred_sh) | set(meas_sh))
    assert cal["max_share_error_pts"] == pytest.approx(100 * worst)
    roof = r["roofline"]
    assert roof["predicted_s"] == pytest.approx(float(ev["predicted_s"].sum()))
    # preempted profiled pass: op times scaled by its CPU/wall ratio
    r2 = compare(ev, summary | {"profiled_cpu_s": 0.025}, _model())
    assert r2["measured_by_category_s"]["conv"] == pytest.approx(0.5 * meas["conv"])
    # profiled passes in a slower spell than the fastest timed pass: scaled to its state too
    r3 = compare(ev, summary | {"profiled_state_scale": 0.6}, _model())
    assert r3["measured_by_category_s"]["conv"] == pytest.approx(0.6 * meas["conv"])
    assert r3["op_times_state_scale"] == 0.6 and r3["profiled_cpu_over_wall"] == 1.0
    assert r3["measured_by_category_s"]["overhead"] == pytest.approx(0.02 - 0.6 * op_total)


def test_compare_puts_short_passes_in_the_op_models_machine_state():
    """With state factors for every pass, e2e is the median of pass time / factor and op
    times are divided by the profiled passes' median factor; raw figures stay reported."""
    ev = _rows()
    op_total = float(ev["measured_s"].sum())
    summary = {
        "threads": 1,
        "device": "cpu",
        "cpu_s": {"min": 0.02, "median": 0.03, "samples": [0.02, 0.03, 0.04]},
        "wall_s": {"median": 0.03},
        "profiled_wall_s": 0.05,
        "profiled_cpu_s": 0.05,
        "profiled_state_scale": 0.6,  # ignored when there are state factors
        "machine_state": {"timed": [1.0, 2.0, 1.0], "profiled": [2.0, 1.0, 2.0]},
    }
    r = compare(ev, summary, _model())
    assert r["measured_s"] == pytest.approx(0.02)  # median of 0.02, 0.015, 0.04
    assert r["measured_fastest_s"] == 0.02 and r["op_times_state_scale"] == 0.5
    assert "state factor" in r["measured_basis"]
    assert r["measured_by_category_s"]["overhead"] == pytest.approx(0.02 - 0.5 * op_total)
    cal = r["calibrated"]
    assert cal["e2e_error_pct_vs_fastest"] == pytest.approx(
        100 * (cal["predicted_s"] - 0.02) / 0.02
    )
    # passes longer than STATE_PASS_MAX_S, or missing factors: the fastest pass as before
    long = {"min": 2.0, "median": 3.0, "samples": [2.0, 3.0, 4.0]}
    for other in ({"cpu_s": long}, {"machine_state": {"timed": [math.nan] * 3, "profiled": [1]}}):
        r2 = compare(ev, summary | other, _model())
        assert r2["op_times_state_scale"] == 0.6 and "fastest" in r2["measured_basis"]


def test_state_exponent_is_fitted_on_reference_rounds():
    from genscope.machine.state import DEFAULT_EXPONENT, fit_exponent

    factors = [1.0, 1.2, 1.5, 2.0, 2.4, 1.1, 1.8, 2.9, 1.3, 1.0]
    times = {
        "diffusers": [1e-3 * f**0.6 for f in factors],
        "transformers": [4e-4 * f**0.6 for f in factors],
    }
    exponent, source = fit_exponent(times, factors)
    assert exponent == pytest.approx(0.6) and "fitted" in source
    steep = fit_exponent({"x": [f**3 for f in factors]}, factors)
    assert steep[0] == pytest.approx(1.5)  # clamped
    unrelated = fit_exponent({"x": [1.0, 2.0] * 5}, factors)  # time does not follow the probe
    assert unrelated[0] == DEFAULT_EXPONENT and "too weak" in unrelated[1]
    few = fit_exponent({"x": times["diffusers"][:4]}, factors[:4])
    narrow = fit_exponent({"x": [1.0, 1.1] * 5}, [1.0, 1.1] * 5)
    assert few[0] == narrow[0] == DEFAULT_EXPONENT and "default" in few[1]


def test_compare_divides_by_the_state_factor_to_the_models_exponent():
    from dataclasses import replace

    ev = _rows()
    summary = {
        "threads": 1,
        "device": "cpu",
        "cpu_s": {"min": 0.03, "median": 0.04, "samples": [0.03, 0.05, 0.04]},
        "wall_s": {"median": 0.04},
        "machine_state": {"timed": [4.0, 4.0, 1.0], "profiled": [4.0]},
    }
    r = compare(ev, summary, replace(_model(), state_exponent=0.5))
    assert r["measured_s"] == pytest.approx(0.025)  # median of 0.015, 0.025, 0.04
    assert r["op_times_state_scale"] == pytest.approx(0.5) and "** 0.50" in r["measured_basis"]


def test_state_probe_and_state_factor():
    from genscope.machine.state import REFERENCE_PERCENTILE, StateProbe, state_factor

    probe = StateProbe()
    times = [probe.probe() for _ in range(20)]
    assert all(0 < t < 0.5 for t in times) and probe.times == times
    assert probe.reference() == pytest.approx(float(np.percentile(times, REFERENCE_PERCENTILE)))
    assert state_factor(2.0, 4.0, 1.5) == pytest.approx(2.0)


def test_round_figures_are_divided_by_their_state_factor():
    """Each round's figures count in the probes' reference state: a round timed between probes
    twice the reference counts half; the reference code's overhead and prices alike."""
    import torch

    from genscope.machine.state import ProbeLog
    from genscope.measure import opmodel_calibration as calibrated

    probed = ProbeLog()
    probed.probe.times = [1.0] * 20  # reference 1.0
    probed.pairs = [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]
    assert probed.factors() == [1.0, 2.0, 3.0]
    given = ProbeLog(reference=0.5)  # a measured run's: the op model's reference
    at = given.after()
    assert given.factor(at) == pytest.approx(sum(given.pairs[at]) / 2 / 0.5)
    timer = calibrated._ReferenceTimer(torch.float32, calls=2)
    rounds = [timer.round() for _ in range(3)]
    lib = next(iter(rounds[0]))
    # the same round three times, at factors 1, 2 and 4: the median counts it at factor 2
    overhead, prices = timer.result([rounds[0]] * 3, [1.0, 2.0, 4.0])
    alone, alone_prices = timer.result([rounds[0]], [1.0])
    assert overhead[lib] == pytest.approx(alone[lib] / 2)
    name = next(iter(prices[lib]))
    assert prices[lib][name] == pytest.approx(alone_prices[lib][name] / 2)


def test_state_scale_compares_each_profiled_pass_with_the_timed_passes_around_it():
    from genscope.measure.passes import state_scale as _state_scale

    # timed pass i precedes profiled pass i; fastest timed pass: 10
    assert _state_scale([10.0, 20.0, 10.0, 20.0], [0, 2]) == pytest.approx(10 / 15)
    assert _state_scale([10.0, 10.0, 20.0, 20.0], [0, 2]) == pytest.approx((1.0 + 0.5) / 2)
    assert _state_scale([10.0, 20.0], [1]) == pytest.approx(0.5)  # the last: one neighbour
    assert _state_scale([], [0]) == 1.0 and _state_scale([10.0], []) == 1.0


@pytest.mark.slow
def test_validate_cli_end_to_end(tmp_path, monkeypatch, capsys):
    """`genscope validate sd15 --json` after a quick calibration (numbers not representative)."""
    from genscope.cli import main
    from genscope.measure.calibrate import calibrate, save_local_spec

    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path))
    save_local_spec(calibrate(quick=True))
    argv = ["genscope", "validate", "sd15", "--repeats", "2", "--json"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None)
    r = json.loads(capsys.readouterr().out)
    for key in (
        "predicted_s",
        "measured_s",
        "e2e_error_pct",
        "max_share_error_pts",
        "roofline",
        "calibrated",
        "measured_shares",
        "meets_target",
    ):
        assert key in r, key
    assert r["label"] == "measured (cpu)" and r["threads"] == 1
    spec = json.loads((tmp_path / "hardware" / "cpu-local.json").read_text())
    assert "fp32/threads=1" in spec["extra"]["op_model"]  # stored in the calibration


def test_in_context_times_split_the_rotation_per_case():
    """Each case gets its own op times out of one rotation: a two-op case (``linear``: t +
    addmm) counts only its packet when asked, and a case issuing a varying number of ops is
    refused rather than mis-split."""
    import torch

    from genscope.measure import opmodel_calibration as calibrated

    a = torch.randn(4, 8)
    w = torch.randn(8, 8)
    cases = {
        "add": (lambda: a + a, None),
        "addmm": (lambda: torch.nn.functional.linear(a, w, a[0]), "addmm"),
        "linear": (lambda: torch.nn.functional.linear(a, w, a[0]), None),
    }
    times = calibrated._in_context_times(cases, cycles=6, blocks=2)
    assert set(times) == set(cases)
    assert all(np.isfinite(t) and t > 0 for t in times.values())
    assert times["linear"] > times["addmm"]  # t + addmm > addmm alone, from the same rotation

    flip = iter(range(10**6))
    varying = {"varying": (lambda: a + a if next(flip) % 2 else (a + a) * a, None)}
    with pytest.raises(RuntimeError, match="varying number of ops"):
        calibrated._in_context_times(varying, cycles=4, blocks=1)


def test_validate_cli_defaults_match_the_library():
    from genscope.commands import validate as cli
    from genscope.measure.validate import VALIDATION_PLAN

    assert (VALIDATION_PLAN.repeats, VALIDATION_PLAN.min_seconds) == (cli.REPEATS, cli.MIN_SECONDS)


def test_overhead_is_priced_at_each_components_library_rate():
    from dataclasses import replace

    ev = _rows()
    ev["component"] = ["unet"] * 3 + ["text_encoder"] * 2 + [""] * (len(ev) - 5)
    m = replace(_model(), overhead_by_library={"diffusers": 2e-5, "transformers": 4e-6})
    libraries = {"unet": "diffusers", "text_encoder": "transformers"}
    count = ev["count"].astype(float).to_numpy()
    expected = 2e-5 * count[:3].sum() + 4e-6 * count[3:5].sum() + 1e-5 * count[5:].sum()
    assert m.overhead_s(ev, libraries) == pytest.approx(expected)
    assert m.overhead_s(ev) == pytest.approx(1e-5 * count.sum())  # no libraries: the mean rate


def test_small_ops_take_their_libraries_reference_prices():
    """A view, vector or GEMM op of a component whose library has a reference-code price for
    its packet gets that fixed cost (plus, for vector and GEMM ops, the size-dependent part of
    their curve); other components, and packets the reference does not issue, keep the
    rotation's."""
    from dataclasses import replace

    ev = _rows()
    ev["component"] = "unet"
    prices = {"view": 4e-7, "add": 5e-7, "addmm": 2e-6}
    m = replace(_model(), fixed_by_library={"diffusers": prices})
    libraries = {"unet": "diffusers"}
    pred = m.predict_ops(ev, libraries)
    assert pred[5] == pytest.approx(4e-7)  # the view
    assert pred[4] == pytest.approx(5e-7 + m.curves["vector"](12000.0)[()] - 1e-6)  # the add
    # the addmm: the price replaces the GEMM curve's floor (1 µs), the rest of the curve stays
    assert pred[2] == pytest.approx(2e-6 + m.curves["gemm"](1e7)[()] - 1e-6)
    plain = m.predict_ops(ev)  # no libraries: the rotation's fixed costs
    assert plain[5] == pytest.approx(1e-6) and plain[4] == pytest.approx(pred[4] + 2.5e-6)
    assert plain[2] == pytest.approx(m.curves["gemm"](1e7)[()])
    untouched = [2, 4, 5]
    np.testing.assert_allclose(pred.drop(untouched), plain.drop(untouched))  # other classes
    again = OpModel.from_dict(json.loads(json.dumps(m.to_dict())))
    np.testing.assert_allclose(again.predict_ops(ev, libraries), pred)


def test_reference_loops_price_every_packet_the_reference_issues():
    """Each library's reference code yields a non-negative overhead per op and a positive
    price for every op packet it issues (views and GEMMs among them)."""
    import torch

    from genscope.measure import opmodel_calibration as calibrated

    overhead, prices = calibrated._reference_loops(torch.float32, quick=True)
    assert set(overhead) == set(prices) and overhead
    for library, packets in prices.items():
        expected = set(calibrated._op_names(calibrated._Reference(torch.float32).parts()[library]))
        assert set(packets) == expected, library
        assert all(np.isfinite(t) and t > 0 for t in packets.values())
        assert overhead[library] >= 0
    assert {"view", "mm"} <= set(prices.get("transformers", {"view": 0, "mm": 0}))


def test_after_context_times_exclude_the_context_ops():
    """A case timed after a context gets only its own op time: a context of many adds does not
    leak into a single mm's figure."""
    import torch

    from genscope.measure import opmodel_calibration as calibrated

    a = torch.randn(64, 64)
    small = torch.randn(4)

    def context() -> None:
        for _ in range(50):
            small + small

    times = calibrated._after_context_times({"mm": lambda: a @ a}, context, calls=4, blocks=2)
    with_ctx_ops = calibrated._op_grid_after(lambda: a @ a, context, 0, 2)
    assert with_ctx_ops.shape == (2, 51)  # the grid keeps the context ops when not told
    assert 0 < times["mm"] < with_ctx_ops.sum(axis=1).min()


def test_deep_convolutions_add_their_weight_handling():
    """A oneDNN k×k convolution costs its FLOPs plus the weight-bytes curve above its floor
    (oneDNN reorders the weights on every call); the native path and 1×1 do not."""
    m = _model()
    ev = _rows().iloc[:2].copy()
    ev["input_shapes"] = ["[2,1280,4,4];[1280,1280,3,3];[1280]", "[1,16,8,8];[16,16,3,3];[16]"]
    ev["flops"] = [944_000_000, 2_000_000]
    pred = m.predict_ops(ev)
    weight_bytes = 1280 * 1280 * 9 * 4
    expected = m.curves["conv3"](944e6)[()] + m.curves["conv_weight"](weight_bytes)[()] - 1e-5
    assert pred.iloc[0] == pytest.approx(expected)
    assert pred.iloc[1] == pytest.approx(m.curves["conv3n"](2e6)[()])  # native path: FLOPs only
