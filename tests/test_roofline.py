"""The roofline time model pinned by hand: one op in each bound on a datasheet spec.

a100-80g-sxm (hardware_specs.json): dense bf16 matrix peak 312 TFLOP/s, vector fp32 peak
19.5 TFLOP/s, HBM bandwidth 2039 GB/s, no per-op dispatch overhead.
"""

import dataclasses
import math

import pytest

from genscope.costmodel.hardware import get_hardware
from genscope.costmodel.roofline import apply_roofline
from genscope.schema import events_frame

A100 = get_hardware("a100-80g-sxm")

# --- compute-bound: a bf16 GEMM, M = N = K = 4096 ----------------------------------------------
N = 4096
GEMM_FLOPS = 2 * N**3  # 137_438_953_472 (multiply-add = 2 FLOPs)
GEMM_READ = 2 * N * N * 2  # A and B, 2 B each: 67_108_864
GEMM_WRITTEN = N * N * 2  # C: 33_554_432
GEMM_COMPUTE_S = 137_438_953_472 / 312e12  # 4.4051e-4 s
GEMM_MEMORY_S = (67_108_864 + 33_554_432) / 2039e9  # 4.937e-5 s: 9x below the compute time

# --- memory-bound: an fp32 elementwise add of 2^20 elements ------------------------------------
E = 2**20
ADD_FLOPS = E  # one add per element: 1_048_576
ADD_READ = 2 * E * 4  # two fp32 inputs: 8_388_608
ADD_WRITTEN = E * 4  # one fp32 output: 4_194_304
ADD_COMPUTE_S = 1_048_576 / 19.5e12  # 5.377e-8 s
ADD_MEMORY_S = (8_388_608 + 4_194_304) / 2039e9  # 6.171e-6 s: 115x above the compute time


def _events():
    return events_frame(
        [
            {
                "op": "aten.mm.default",
                "category": "linear",
                "dtype": "bf16",
                "unit": "matrix",
                "flops": GEMM_FLOPS,
                "bytes_read": GEMM_READ,
                "bytes_written": GEMM_WRITTEN,
                "count": 3,  # predicted_s is per single op: count must not scale it
            },
            {
                "op": "aten.add.Tensor",
                "category": "elementwise",
                "dtype": "fp32",
                "unit": "vector",
                "flops": ADD_FLOPS,
                "bytes_read": ADD_READ,
                "bytes_written": ADD_WRITTEN,
            },
            {
                "op": "aten.view.default",
                "category": "memory",
                "dtype": "fp32",
                "unit": "none",
            },
        ]
    )


def test_the_arithmetic_above_is_the_spec_and_its_bounds():
    assert A100.peak("bf16", "matrix") == 312e12
    assert A100.peak("fp32", "vector") == 19.5e12
    assert A100.mem_bw == 2039e9 and A100.dispatch_overhead_s == 0.0
    assert GEMM_FLOPS == 137_438_953_472 and GEMM_READ + GEMM_WRITTEN == 100_663_296
    assert math.isclose(GEMM_COMPUTE_S, 4.4051e-4, rel_tol=1e-4)
    assert math.isclose(GEMM_MEMORY_S, 4.937e-5, rel_tol=1e-3)
    assert math.isclose(ADD_COMPUTE_S, 5.377e-8, rel_tol=1e-3)
    assert math.isclose(ADD_MEMORY_S, 6.171e-6, rel_tol=1e-3)


def test_each_bound_priced_by_hand_on_a100():
    out = apply_roofline(_events(), A100)
    gemm, add, view = out.itertuples()
    # compute-bound: time = FLOPs / matrix bf16 peak
    assert gemm.bound == "compute"
    assert gemm.predicted_s == pytest.approx(4.4051e-4, rel=1e-4)
    assert gemm.predicted_s == pytest.approx(GEMM_COMPUTE_S, rel=1e-12)
    # memory-bound: time = (bytes read + written) / HBM bandwidth
    assert add.bound == "memory"
    assert add.predicted_s == pytest.approx(6.171e-6, rel=1e-3)
    assert add.predicted_s == pytest.approx(ADD_MEMORY_S, rel=1e-12)
    # a view launches nothing and takes no time
    assert view.bound == "none"
    assert view.predicted_s == 0.0


def test_dispatch_overhead_is_added_to_launching_ops_only():
    hw = dataclasses.replace(A100, dispatch_overhead_s=5e-6)
    out = apply_roofline(_events(), hw)
    gemm, add, view = out["predicted_s"]
    assert gemm == pytest.approx(GEMM_COMPUTE_S + 5e-6, rel=1e-12)
    assert add == pytest.approx(ADD_MEMORY_S + 5e-6, rel=1e-12)
    assert view == 0.0
    assert list(out["bound"]) == ["compute", "memory", "none"]


def test_the_bound_switches_where_the_two_times_cross():
    """The same GEMM at the A100 bf16 ridge (312e12 / 2039e9 = 153.0 FLOP/B): with its bytes
    raised so that memory time is 2x compute time, it turns memory-bound at 2x the time."""
    ev = _events().iloc[[0]].copy()
    ev["bytes_read"] = int(2 * GEMM_FLOPS / 312e12 * 2039e9) - GEMM_WRITTEN
    out = apply_roofline(ev, A100).iloc[0]
    assert out.bound == "memory"
    assert out.predicted_s == pytest.approx(2 * GEMM_COMPUTE_S, rel=1e-9)
