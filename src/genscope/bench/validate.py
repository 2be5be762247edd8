"""``genscope bench validate``: predicted vs measured for four configurations, one process.

The op model is re-measured once at the start (the same session as the measurements, so both
see the same machine load) unless ``recalibrate`` is off; runs are not stored.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

from genscope.analyses.validation import median_state
from genscope.costmodel.hardware import get_hardware, local_spec_path
from genscope.errors import UserError
from genscope.machine.threads import torch_threads
from genscope.measure.opmodel_calibration import ensure_op_model
from genscope.measure.passes import PassPlan
from genscope.measure.validate import (
    E2E_TARGET_PCT,
    SHARE_TARGET_PTS,
    VALIDATION_PLAN,
    validate_workload,
)
from genscope.workloads.base import Settings
from genscope.workloads.registry import workload_names

#: The configurations ``genscope bench validate`` reports: (workload, settings, what,
#: pass plan). The full-size run is reduced (256², 2 steps) and uses fewer passes.
BENCH_CASES: tuple[tuple[str, Settings, str, PassPlan], ...] = (
    ("sd15", Settings(size="tiny"), "tiny defaults: 64x64, 4 CFG DDIM steps", VALIDATION_PLAN),
    (
        "sd15",
        Settings(size="full", res=(256, 256), steps=2),
        "full size (real 1.07B-parameter fp32 weights), reduced: 256x256, 2 CFG DDIM steps",
        PassPlan(repeats=3, warmup=0, profiled_passes=2, min_seconds=VALIDATION_PLAN.min_seconds),
    ),
    (
        "chameleon",
        Settings(size="tiny"),
        "tiny text-to-image: 8-token prompt, 16 image tokens, CFG",
        VALIDATION_PLAN,
    ),
    (
        "make-a-video",
        Settings(size="tiny"),
        "tiny defaults: 64x64, 4 frames, 2 CFG steps",
        VALIDATION_PLAN,
    ),
)


def bench_validate(recalibrate: bool = True, threads: int = 1) -> dict[str, Any]:
    """``genscope bench validate``: predicted vs measured for four configurations.

    The op model is re-measured once at the start (same session as the measurements, so both
    see the same machine load) unless ``recalibrate`` is off; runs are not stored.
    """

    def say(msg: str) -> None:
        print(f"genscope: bench validate: {msg}", file=sys.stderr, flush=True)

    spec_path = local_spec_path("cpu-local")
    if not spec_path.is_file():
        raise UserError("bench validate needs `genscope calibrate` (cpu-local) first")
    with torch_threads(threads):
        model, _ = ensure_op_model(get_hardware("cpu-local"), "fp32", recalibrate=recalibrate)
    rows = []
    for name, settings, what, plan in BENCH_CASES:
        if name not in workload_names():
            rows.append(
                {
                    "workload": name,
                    "size": settings.size,
                    "config": what,
                    "error": f"{name} is not registered",
                }
            )
            continue
        say(f"{name} ({what})")
        r = validate_workload(
            name,
            replace(settings),
            threads=threads,
            save=False,
            op_model=model,
            progress=say,
            plan=plan,
        )
        rows.append(
            {
                "workload": name,
                "size": settings.size,
                "config": what,
                "predicted_s": r["predicted_s"],
                "measured_s": r["measured_s"],
                "e2e_error_pct": r["e2e_error_pct"],
                "max_share_error_pts": r["max_share_error_pts"],
                "worst_category": r["calibrated"]["worst_category"],
                "meets_target": r["meets_target"],
                "measured_basis": r["measured_basis"],
                "measured_wall_s": r["measured_wall_s"],
                "measured_median_s": r["measured_median_s"],
                "e2e_error_pct_vs_median": r["calibrated"]["e2e_error_pct_vs_median"],
                "e2e_error_pct_vs_wall_median": r["calibrated"]["e2e_error_pct_vs_wall_median"],
                "roofline_predicted_s": r["roofline"]["predicted_s"],
                "roofline_e2e_error_pct": r["roofline"]["e2e_error_pct"],
                "roofline_max_share_error_pts": r["roofline"]["max_share_error_pts"],
                "other_processes_cpu_fraction": (r.get("contention") or {}).get(
                    "other_processes_cpu_fraction"
                ),
                "measured_fastest_s": r["measured_fastest_s"],
                "e2e_error_pct_vs_fastest": r["calibrated"]["e2e_error_pct_vs_fastest"],
                "state_factor_median": median_state(r.get("machine_state")),
            }
        )
    return {
        "name": "validate",
        "device": "cpu",
        "threads": threads,
        "model": "calibrated op model (genscope.measure.opmodel_calibration) on cpu-local",
        "targets": {"e2e_error_pct": E2E_TARGET_PCT, "max_share_error_pts": SHARE_TARGET_PTS},
        "measured": (
            f"measured (cpu), process CPU time with one thread (= idle-machine wall time): tiny "
            f"rows: e2e = median over at least {VALIDATION_PLAN.repeats} uninstrumented passes "
            f"and {VALIDATION_PLAN.min_seconds:g} s of pass time / the pass's machine-state "
            "factor (the op model's reference state; e2e_error_pct_vs_fastest is against the "
            "raw fastest pass); full size: fastest of 3 passes, raw. Shares from per-op "
            f"medians over the {VALIDATION_PLAN.profiled_passes} profiled passes (full size: 2), "
            "put in the same machine state"
        ),
        "op_model": {
            "key": model.key,
            "created": model.created,
            "contention": model.contention,
            "state_probe_s": model.state_probe_s,
            "state_exponent": model.state_exponent,
            "state_exponent_source": model.state_exponent_source,
        },
        "rows": rows,
    }
