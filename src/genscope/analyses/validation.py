"""Predicted vs measured for one measured run: end to end, per category, and as shares.

Pure functions over a measured run's op-event rows and summary (:func:`compare`). Two
predictions are held against the same rows: the plain roofline on the run's spec and, when
given, the calibrated CPU op model (:class:`genscope.costmodel.opmodel.OpModel`). What
"measured" means (which pass, which machine state) is stated in every result
(``measured_basis``); ``docs/validation.md`` explains it.

Errors: ``e2e_error_pct = 100 · (predicted − measured) / measured``; ``max_share_error_pts`` is
the largest |predicted share − measured share| in percentage points over all categories and
``overhead`` (the end-to-end time not inside ops). The roofline is compared on op time only.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import pandas as pd

from genscope.costmodel.opmodel import OpModel

#: Passes up to this long are compared in the op model's machine state (see compare)
STATE_PASS_MAX_S = 1.0


def _shares(times: dict[str, float]) -> dict[str, float]:
    total = sum(times.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in times.items()}


def _max_share_error(pred: dict[str, float], meas: dict[str, float]) -> tuple[float, str]:
    keys = set(pred) | set(meas)
    errs = {k: abs(pred.get(k, 0.0) - meas.get(k, 0.0)) * 100 for k in keys}
    worst = max(errs, key=errs.get) if errs else ""  # type: ignore[arg-type]
    return (errs[worst] if errs else 0.0), worst


def _in_reference_state(
    summary: dict[str, Any], basis: str, exponent: float
) -> tuple[float, float] | None:
    """(end-to-end seconds, op-time scale) in the op model's machine state, from the state
    factors of the passes (:mod:`genscope.machine.state`); None without them.

    End to end: the median over the timed passes of their time / their state factor **
    ``exponent`` (the op model's, see genscope.machine.state.fit_exponent). Op times:
    1 / the median such factor of the profiled passes they come from. Only for passes
    up to STATE_PASS_MAX_S: the probes around a longer pass say little about the states it
    ran through (the VM changes state every few seconds), and it averages them anyway.
    """
    state = summary.get("machine_state") or {}
    timed = [float(f) for f in state.get("timed") or []]
    profiled = [float(f) for f in state.get("profiled") or []]
    samples = list(summary[basis].get("samples") or [])
    if not (timed and profiled) or len(samples) != len(timed):
        return None
    if statistics.median(samples) > STATE_PASS_MAX_S:
        return None
    if not all(math.isfinite(f) and f > 0 for f in timed + profiled):
        return None
    e2e = statistics.median(t / f**exponent for t, f in zip(samples, timed, strict=True))
    return e2e, 1.0 / statistics.median(f**exponent for f in profiled)


def median_state(machine_state: dict[str, Any] | None) -> float | None:
    """The median state factor of a run's timed passes (None without a state probe)."""
    timed = [f for f in (machine_state or {}).get("timed") or [] if math.isfinite(f)]
    return statistics.median(timed) if timed else None


def compare(events: pd.DataFrame, summary: dict[str, Any], model: OpModel | None) -> dict[str, Any]:
    """Predicted vs measured for one measured run (its events carry both)."""
    count = events["count"].astype(float)
    single_thread = summary.get("threads") == 1 and summary.get("device", "cpu") == "cpu"
    basis = "cpu_s" if single_thread else "wall_s"
    e2e_fastest = summary[basis]["min"]
    e2e_median = summary[basis]["median"]
    e2e_wall = summary["wall_s"]["median"]
    # Neighbours stretch profiled op (wall) times; scale them by the profiled pass's CPU/wall
    # ratio (one thread: CPU time is what the pass would have taken alone).
    scale = 1.0
    if single_thread and summary.get("profiled_wall_s"):
        scale = min(1.0, summary["profiled_cpu_s"] / summary["profiled_wall_s"])
    exponent = model.state_exponent if model is not None else 1.0
    in_state = _in_reference_state(summary, basis, exponent) if single_thread else None
    if in_state is not None:
        # the op model's machine state, by the state probe around every pass
        e2e_meas, state = in_state
        measured_basis = (
            f"median over the uninstrumented passes of process CPU time / state factor ** "
            f"{exponent:.2f} (the machine in the op model's reference state, by "
            "genscope.machine.state; one thread)"
        )
    else:
        # the machine state of the fastest timed pass: the timed passes on either side of
        # each profiled pass tell how much slower it ran (genscope.measure.run.state_scale)
        e2e_meas = e2e_fastest
        state = float(summary.get("profiled_state_scale") or 1.0) if single_thread else 1.0
        measured_basis = (
            "fastest uninstrumented pass, process CPU time (one thread)"
            if single_thread
            else "fastest uninstrumented pass, wall time"
        )
    scale *= state
    measured_op = (events["measured_s"].fillna(0.0) * count).groupby(events["category"]).sum()
    meas_cat = {str(k): float(v) * scale for k, v in measured_op.items() if v > 0}
    op_total = sum(meas_cat.values())
    meas_with_overhead = dict(meas_cat)
    meas_with_overhead["overhead"] = max(0.0, e2e_meas - op_total)
    meas_shares = _shares(meas_with_overhead)

    roof = (events["predicted_s"] * count).groupby(events["category"]).sum()
    roof_cat = {str(k): float(v) for k, v in roof.items()}
    roof_total = sum(roof_cat.values())
    roof_err, roof_worst = _max_share_error(_shares(roof_cat), _shares(meas_cat))
    out: dict[str, Any] = {
        "measured_basis": measured_basis,
        "measured_s": e2e_meas,
        "measured_fastest_s": e2e_fastest,
        "measured_median_s": e2e_median,
        "profiled_cpu_over_wall": scale / state,
        "op_times_state_scale": state,
        "measured_wall_s": e2e_wall,
        "measured_by_category_s": meas_with_overhead,
        "measured_shares": meas_shares,
        "roofline": {
            "hardware": summary.get("hardware_name"),
            "predicted_s": roof_total,
            "e2e_error_pct": 100 * (roof_total - e2e_meas) / e2e_meas if e2e_meas else None,
            "op_time_error_pct": 100 * (roof_total - op_total) / op_total if op_total else None,
            "by_category_s": roof_cat,
            "max_share_error_pts": roof_err,
            "worst_category": roof_worst,
            "shares_over": "op time only (the roofline has no framework overhead)",
        },
    }
    if model is not None:
        per_op = model.predict_ops(events, summary.get("component_libraries")) * count
        cal_cat = {str(k): float(v) for k, v in per_op.groupby(events["category"]).sum().items()}
        cal_cat["overhead"] = model.overhead_s(events, summary.get("component_libraries"))
        total = sum(cal_cat.values())
        err, worst = _max_share_error(_shares(cal_cat), meas_shares)
        out["calibrated"] = {
            "predicted_s": total,
            "e2e_error_pct": 100 * (total - e2e_meas) / e2e_meas if e2e_meas else None,
            "e2e_error_pct_vs_fastest": (
                100 * (total - e2e_fastest) / e2e_fastest if e2e_fastest else None
            ),
            "e2e_error_pct_vs_median": (
                100 * (total - e2e_median) / e2e_median if e2e_median else None
            ),
            "e2e_error_pct_vs_wall_median": (
                100 * (total - e2e_wall) / e2e_wall if e2e_wall else None
            ),
            "by_category_s": cal_cat,
            "shares": _shares(cal_cat),
            "max_share_error_pts": err,
            "worst_category": worst,
            "op_model": model.key,
        }
    return out
