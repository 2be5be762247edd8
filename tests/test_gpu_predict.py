"""predict(): totals agree with per-op columns, breakdowns, speed on a big collapsed table."""

import time

import numpy as np
import pytest

from genscope.costmodel.gpu import predict
from genscope.costmodel.hardware import get_hardware
from genscope.schema import events_frame

A100 = get_hardware("a100-80g-sxm")


def table(n_ops=1600, steps=50):
    rows = []
    for i in range(n_ops):
        kind = i % 4
        base = dict(
            run_id="t",
            component="unet",
            phase="denoise",
            step=0,
            count=steps,
            dtype="bf16",
            module_path=f"b{i}",
        )
        if kind == 0:
            base.update(
                op="aten.mm.default",
                category="linear",
                unit="matrix",
                input_shapes="[4096,640];[640,640]",
                output_shapes="[4096,640]",
                flops=2 * 4096 * 640 * 640,
                bytes_read=2 * (4096 * 640 + 640**2),
                bytes_written=2 * 4096 * 640,
            )
        elif kind == 1:
            base.update(op="aten.view.default", category="memory", unit="none")
        else:
            base.update(
                op="aten.add.Tensor",
                category="elementwise",
                unit="vector",
                flops=4096 * 640,
                bytes_read=4 * 4096 * 640,
                bytes_written=2 * 4096 * 640,
            )
        rows.append(base)
    rows.insert(
        0,
        dict(
            run_id="t",
            component="text_encoder",
            phase="encode",
            op="aten.mm.default",
            category="linear",
            unit="matrix",
            dtype="bf16",
            count=1,
            input_shapes="[77,768];[768,768]",
            output_shapes="[77,768]",
            flops=2 * 77 * 768 * 768,
            bytes_read=2 * 2 * 768 * 768,
            bytes_written=2 * 77 * 768,
        ),
    )
    return events_frame(rows)


def test_totals_and_breakdowns_agree():
    ev = table(200, 5)
    p = predict(ev, A100)
    cnt = ev["count"].to_numpy()
    assert p.busy_s == pytest.approx(float(np.sum(p.ops["kernel_s"] * cnt)))
    assert p.predicted_s == pytest.approx(p.busy_s + p.idle_s)
    assert p.by_category["time_s"].sum() == pytest.approx(p.busy_s)
    assert p.by_phase["idle_s"].sum() <= p.idle_s + 1e-12
    assert (p.ops["kernel_s"] >= p.ops["roofline_s"]).all()
    assert p.roofline_s <= p.busy_s
    j = p.to_json()
    assert set(j) >= {
        "predicted_s",
        "busy_s",
        "idle_s",
        "host_bound_share",
        "roofline_s",
        "by_category",
        "by_component",
        "by_phase",
    }


def test_host_cpu_factor_scales_host_time():
    ev = table(200, 5)
    slow = type(A100).from_dict({**A100.to_dict(), "extra": {**A100.extra, "host_cpu": 0.5}})
    assert predict(ev, slow).ops["host_s"].sum() == pytest.approx(
        2 * predict(ev, A100).ops["host_s"].sum()
    )


def test_cuda_graphs_for_named_components():
    ev = table(200, 5)
    eager = predict(ev, A100)
    g = predict(ev, A100, cuda_graphs=["unet"])
    assert g.ops.loc[g.ops["component"] == "unet", "host_s"].sum() == pytest.approx(
        10e-6
    )  # one replay
    assert g.predicted_s <= eager.predicted_s * (1 + 1e-12)


def test_a_big_collapsed_table_predicts_fast():
    ev = table(30_000, 50)
    t0 = time.perf_counter()
    predict(ev, A100)
    assert time.perf_counter() - t0 < 5.0


def test_host_cost_per_op_by_hand():
    from genscope.costmodel.gpu.device import device_of
    from genscope.costmodel.gpu.predict import host_costs

    ev = events_frame(
        [
            dict(
                run_id="t",
                component="unet",
                op="aten.mm.default",
                category="linear",
                unit="matrix",
                dtype="bf16",
                count=1,
            ),
            dict(
                run_id="t",
                component="unet",
                op="aten.view.default",
                category="memory",
                unit="none",
                dtype="bf16",
                count=1,
            ),
            dict(
                run_id="t",
                component="text_encoder",
                op="aten.add.Tensor",
                category="elementwise",
                unit="vector",
                dtype="bf16",
                count=1,
            ),
        ]
    )
    host, sync = host_costs(
        ev,
        np.array([1.0, 0.0, 3.0]),
        device_of(A100),
        library_of_component={"unet": "diffusers", "text_encoder": "transformers"},
    )
    # diffusers 16.85 us + submit 8 us; diffusers 16.85 + view 2; transformers 5.89 + 8 + 2·3.
    assert host == pytest.approx([24.85e-6, 18.85e-6, 19.89e-6])
    assert not sync.any()


def test_per_step_breakdown():
    ev = table(50, 3)
    p = predict(ev, A100)
    steps = p.steps_json()
    assert {(s["phase"], s["step"]) for s in steps} == {("denoise", 0.0), ("encode", -1.0)}
    assert sum(s["time_s"] for s in steps) == pytest.approx(p.busy_s)


def test_measured_library_overhead_overrides_the_shipped_one():
    ev = table(40, 2)
    libs = {"unet": "diffusers"}
    base = predict(ev, A100, library_of_component=libs).ops["host_s"]
    more = predict(
        ev, A100, library_of_component=libs, library_overhead_s={"diffusers": 26.85e-6}
    ).ops["host_s"]
    unet = (ev["component"] == "unet").to_numpy()
    assert (more[unet] - base[unet]).to_numpy() == pytest.approx(10e-6)
