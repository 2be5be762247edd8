"""The full scorecard on full-size analytic traces (slow: about a minute of tracing)."""

import json
import time

import pytest

import genscope
from genscope.bench.scorecard import bench_scorecard
from genscope.costmodel.gpu import predict
from genscope.costmodel.gpu.evaluate import run_scorecard
from genscope.costmodel.hardware import get_hardware
from genscope.workloads.registry import workload_names

pytestmark = pytest.mark.slow


def trace(workload, settings):
    s = genscope.Settings(size="full", **settings)
    return genscope.trace_workload(workload, s, save=False).events


CACHE = {}


def cached(workload, settings):
    key = json.dumps([workload, settings], sort_keys=True, default=list)
    if key not in CACHE:
        CACHE[key] = trace(workload, settings)
    return CACHE[key]


def test_scorecard_runs_and_is_deterministic():
    a = run_scorecard(cached, workload_names())
    b = run_scorecard(cached, workload_names())
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert {
        "mape_pct",
        "worst_pct",
        "lever_speedup_mape_pct",
        "rows",
        "by_family",
        "by_gpu",
    } <= set(a)
    assert a["n_rows"] >= 12


def test_the_bench_prints_what_run_scorecard_returns():
    """The bench predicts each row as its trace arrives from the pool; same result."""
    expected = {"name": "scorecard", **run_scorecard(cached, workload_names())}
    assert bench_scorecard(workers=2) == expected


def test_sdxl_50_steps_predicts_fast_and_above_the_roofline():
    ev = trace("sdxl", {"steps": 50, "dtype": "bf16", "res": (1024, 1024)})
    t0 = time.perf_counter()
    p = predict(ev, get_hardware("a100-80g-sxm"))
    assert time.perf_counter() - t0 < 3.0
    assert (p.ops["kernel_s"] >= p.ops["roofline_s"]).all()
    assert p.predicted_s > p.roofline_s
