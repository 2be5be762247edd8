"""Lee et al.'s stacked-lever claim predicted on a GPU spec (genscope.optimize.lee)."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import pytest

from genscope.api import TraceResult, trace_workload
from genscope.costmodel.gpu import predict, stack
from genscope.costmodel.hardware import get_hardware
from genscope.optimize import lee
from genscope.workloads.base import Settings

A100 = get_hardware("a100-80g-sxm")  # mem_bytes 80e9


def _fake(batch: int, params: int, live_per_sample: int) -> TraceResult:
    """A run of ``params`` fp16 weights whose live activations peak at batch x live_per_sample."""
    events = pd.DataFrame({"live_bytes": [0, batch * live_per_sample, 7]})
    meta = {"params": {"model": params}, "settings": {"dtype": "fp16", "batch": batch}}
    return TraceResult(f"b{batch}", meta, events, {})


def test_paper_geomean_of_the_eight_configurations() -> None:
    # papers.md §2.8: "Geomeans at max batch: ... AutoQuant 3.46"; with HSTU 9.72, 3.88
    assert pytest.approx(3.4631, abs=1e-4) == lee.PAPER_GEOMEAN_8
    nine = math.exp((8 * math.log(lee.PAPER_GEOMEAN_8) + math.log(9.72)) / 9)
    assert nine == pytest.approx(3.8838, abs=1e-4)
    table = pd.DataFrame(
        {
            "workload": ["llama", "chameleon", "hstu"],
            "speedup_bs1": [1.0, 4.0, 2.0],
            "speedup_max_batch": [2.0, 8.0, 32.0],
        }
    )
    assert lee.geomeans(table) == pytest.approx(
        {"max_batch": 8.0, "bs1": 2.0, "max_batch_llama_chameleon": 4.0}
    )


def test_memory_is_fp16_weights_plus_peak_live_bytes() -> None:
    # 30e9 params x 2 B = 60 GB, plus batch 4 x 1.5 GB = 6 GB
    assert lee.memory_bytes(_fake(4, 30_000_000_000, 1_500_000_000)) == 66_000_000_000


def test_largest_batch_is_the_largest_that_fits() -> None:
    cfg = replace(lee.CONFIGS[0], batches=(1, 4, 8, 16))
    traced = []

    def trace(b: int) -> TraceResult:
        traced.append(b)
        return _fake(b, 30_000_000_000, 1_500_000_000)

    # 60 GB of weights: batch 8 needs 72 GB (fits 80), batch 16 needs 84 GB (does not)
    batch, run = lee.largest_batch(cfg, A100, trace(1), trace)
    assert (batch, run.run_id) == (8, "b8") and traced == [1, 8]


def test_largest_batch_steps_down_when_the_candidate_does_not_fit() -> None:
    cfg = replace(lee.CONFIGS[0], batches=(1, 4, 8))
    bs1 = _fake(1, 30_000_000_000, 1_500_000_000)

    def trace(b: int) -> TraceResult:  # activations grow faster than linearly past batch 4
        return _fake(b, 30_000_000_000, 1_500_000_000 if b <= 4 else 3_000_000_000)

    batch, run = lee.largest_batch(cfg, A100, bs1, trace)
    assert (batch, run.run_id) == (4, "b4")


def test_a_model_too_large_for_memory_stays_at_batch_1() -> None:
    cfg = replace(lee.CONFIGS[0], batches=(1, 4))
    bs1 = _fake(1, 45_000_000_000, 1)  # 90 GB of weights
    assert lee.largest_batch(cfg, A100, bs1, lambda b: pytest.fail("no trace"))[0] == 1


def test_stacked_speedup_takes_the_faster_autoquant_kernel() -> None:
    traced = trace_workload(
        "llama", Settings(size="tiny", dtype="fp16", batch=2), hardware=A100, save=False
    )
    got = lee.stacked_speedup(traced, A100, lee.CONFIGS[1])
    libs = traced.meta["libraries"]
    finals = {}
    for quant in lee.AUTOQUANT:
        steps = stack(traced.events, A100, f"{lee.COMPILE_RUNG},{quant}")
        finals[quant] = predict(steps[-1].events, A100, library_of_component=libs).predicted_s
        base = predict(steps[0].events, A100, library_of_component=libs).predicted_s
    assert got["autoquant"] == min(finals, key=finals.get)
    assert got["stacked_s"] == pytest.approx(min(finals.values()))
    assert got["speedup"] == pytest.approx(base / min(finals.values()))
    assert got["speedup"] > 1.0  # CUDA graphs remove the host-bound gaps of a tiny decode


def test_configs_follow_the_papers_settings() -> None:
    by_label = {c.label: c for c in lee.CONFIGS}
    assert len(by_label) == 9
    assert by_label["HSTU H-A"].ladder == "fused_attention" and not by_label["HSTU H-A"].autoquant
    assert by_label["Chameleon-7B VizWiz IT-T"].paper_max_batch == 21.205
    assert by_label["Chameleon-34B COCO I-T"].settings(8).prompt_len == 1030
    s = by_label["Code Llama-34B HumanEval"].settings(16)
    assert (s.variant, s.dtype, s.attention, s.batch) == ("34b", "fp16", "flash", 16)


def test_report_section_sets_the_388_finding_from_the_prediction(tmp_path, monkeypatch) -> None:
    from genscope.report.context import ReportContext
    from genscope.report.sections import levers_predicted

    table = pd.DataFrame(
        {
            "config": ["a", "b", "HSTU H-A"],
            "workload": ["llama", "chameleon", "hstu"],
            "max_batch": [16, 32, 64],
            "speedup_bs1": [2.0, 2.0, 4.0],
            "speedup_max_batch": [1.5, 2.0, 6.0],
            "paper_bs1": [2.05, 2.83, 2.238],
            "paper_max_batch": [2.05, 2.108, 9.72],
        }
    )
    monkeypatch.setattr(levers_predicted, "predict_lee", lambda spec, workers: table)
    ctx = ReportContext(tmp_path, "a100-80g-sxm", quick=True)
    (section,) = levers_predicted.levers_predicted_section(ctx)
    finding = ctx.findings["levers_388"]
    assert finding.value == pytest.approx((1.5 * 2.0 * 6.0) ** (1 / 3))  # 2.62x
    assert "HSTU H-A 64" in finding.detail and "Without HSTU 1.73x" in finding.detail
    assert section.figures and (tmp_path / "data" / "levers_predicted.csv").exists()

    monkeypatch.setattr(ReportContext, "gpu", property(lambda self: False))
    ctx = ReportContext(tmp_path, "a100-80g-sxm", quick=True)
    assert levers_predicted.levers_predicted_section(ctx) == []
    assert "levers_388" not in ctx.findings


@pytest.mark.slow
def test_workers_give_the_same_table_in_config_order() -> None:
    by_label = {c.label: c for c in lee.CONFIGS}
    configs = [
        replace(by_label["HSTU H-A"], batches=(1,)),
        replace(by_label["Code Llama-7B HumanEval"], batches=(1, 4)),
    ]
    seen: list[str] = []
    serial = lee.predict_lee(A100, configs)
    parallel = lee.predict_lee(A100, configs, progress=seen.append, workers=2)
    pd.testing.assert_frame_equal(serial, parallel)
    assert list(parallel["config"]) == ["HSTU H-A", "Code Llama-7B HumanEval"]
    assert sorted(seen) == sorted(parallel["config"])
