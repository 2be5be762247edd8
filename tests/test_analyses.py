"""Analyses are pure functions over event tables; check them on real traces and by hand."""

import numpy as np
import pandas as pd
import pytest

from genscope.analyses import claims, flash, scaling, seqlen
from genscope.analyses.breakdown import category_breakdown
from genscope.api import trace_workload
from genscope.workloads.base import Settings


@pytest.fixture(scope="module")
def sd15_runs():
    return {
        a: trace_workload("sd15", Settings(size="full", steps=2, attention=a), save=False)
        for a in ("math", "flash")
    }


def test_power_law_fit_recovers_exponent():
    x = np.array([256, 512, 1024, 2048])
    a, r2 = scaling.fit_power_law(x, 3.0 * x**4.0)
    assert a == pytest.approx(4.0) and r2 == pytest.approx(1.0)


def test_breakdown_shares_sum_to_one(sd15_runs):
    runs = {k: r.events for k, r in sd15_runs.items()}
    for time_col in ("predicted_s", "roofline_s"):
        for _, df in category_breakdown(runs, time_col=time_col).groupby("run"):
            assert df["share"].sum() == pytest.approx(1.0)
    # on the roofline (the traffic bound): removing N² traffic makes conv a larger share
    table = category_breakdown(runs, time_col="roofline_s")
    flash_conv = table[(table.run == "flash") & (table.category == "conv")].share.iloc[0]
    math_conv = table[(table.run == "math") & (table.category == "conv")].share.iloc[0]
    assert flash_conv > math_conv


def test_flash_speedup_and_attention_only(sd15_runs):
    pairs = {"sd15": (sd15_runs["math"].events, sd15_runs["flash"].events)}
    fam, task = {"sd15": "diffusion-unet"}, {"sd15": "tti"}
    # on the roofline (traffic bound) flash removes the N² scores: attention gains the most
    row = flash.flash_speedup(pairs, fam, task, time_col="roofline_s").iloc[0]
    assert row.attention_speedup > row.e2e_speedup > 1.0
    assert row.e2e_math_s == pytest.approx(sd15_runs["math"].summary["roofline_s"])
    # by default the predicted kernel times (the GPU time model on an A100 spec)
    row = flash.flash_speedup(pairs, fam, task).iloc[0]
    assert row.e2e_math_s == pytest.approx(sd15_runs["math"].summary["kernel_s"])


def test_seqlen_levels_of_sd15(sd15_runs):
    calls = seqlen.attention_calls(sd15_runs["flash"].events)
    unet = calls[calls.component == "unet"]
    # 16 attention modules × (self + cross) per UNet pass, each row standing for 2 steps
    assert len(unet) == 32 and (unet["count"] == 2).all()
    assert seqlen.adjacent_level_ratio(calls, "unet") == 4.0
    summary = seqlen.seqlen_summary(unet)
    assert summary["max_over_min"] == 4096 / 64
    assert summary["self_attention_q_len_by_level"]["unet:down.0"] == 64 * 64
    # math path gives the same calls (one per softmax)
    math_calls = seqlen.attention_calls(sd15_runs["math"].events)
    assert sorted(math_calls.q_len) == sorted(calls.q_len)


def test_score_matrix_memory_is_quartic_in_side():
    rows = []
    for side in (256, 512, 768):
        r = trace_workload(
            "sd15", Settings(size="full", steps=1, res=(side, side), attention="math"), save=False
        )
        rows.append({"res": side, **scaling.point_metrics(r.events[r.events.component == "unet"])})
    fit = scaling.exponents(pd.DataFrame(rows), "res", ["score_matrix_bytes"]).iloc[0]
    assert fit.exponent == pytest.approx(4.0, abs=1e-9) and fit.r2 == pytest.approx(1.0)
    # 512²: 2 (CFG) · 8 heads · 4096² scores · 4 B
    assert rows[1]["score_matrix_bytes"] == 2 * 8 * 4096**2 * 4


def test_claims_verdicts():
    findings = {
        "seqlen_4x": claims.Finding(4.0, "4x", "analytic (x)"),
        "memory_L4": claims.Finding(2.0, "L^2", "analytic (x)"),
    }
    t = claims.claims_table(findings).set_index("claim")
    by_key = {c.key: c.claim for c in claims.CLAIMS}
    assert t.loc[by_key["seqlen_4x"], "verdict"] == "agrees"
    assert t.loc[by_key["memory_L4"], "verdict"] == "diverges"
    assert t.loc[by_key["levers_388"], "verdict"] == "not measured"
    claim = {c.key: c for c in claims.CLAIMS}
    assert t.loc[by_key["seqlen_4x"], "why"] == claim["seqlen_4x"].why_agrees
    assert t.loc[by_key["memory_L4"], "why"] == claim["memory_L4"].why_diverges
    assert t.loc[by_key["seqlen_4x"], "genscope"] == "4x"
    assert t.loc[by_key["seqlen_4x"], "mode"] == "analytic (x)"
    assert t.loc[by_key["levers_388"], "genscope"] == "—"
