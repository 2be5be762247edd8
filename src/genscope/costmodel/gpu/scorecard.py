"""The scorecard: published end-to-end GPU measurements, and a pure function that scores a model.

``scorecard.json`` (next to this module) holds one row per public measurement: workload and
settings, GPU, software, the lever stack that reproduces the row's setup, published seconds, how
they were converted (it/s, tokens/s), the source and its date. The rows are the GPU model's test
set: no constant is fitted to them.

:func:`score` takes any ``predict_row(row) -> seconds`` callable and returns the error summary,
deterministically (rows in file order, values rounded for stable JSON).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from genscope.costmodel.hardware import hardware_names
from genscope.errors import UserError, choices_error

Row = Mapping[str, Any]
_FILE = "scorecard.json"
SCOPES: tuple[str, ...] = ("end_to_end", "denoise_loop")


@cache
def _raw() -> str:
    return resources.files("genscope.costmodel.gpu").joinpath(_FILE).read_text("utf-8")


def load_rows() -> list[dict[str, Any]]:
    """The shipped rows, in file order (a fresh copy each call)."""
    rows = json.loads(_raw())["rows"]
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{_FILE}: duplicate row ids")
    return rows


def family(row: Row) -> str:
    """Model family of a row: the workload name, with its variant when it has one."""
    return f"{row['workload']}-{row['variant']}" if row.get("variant") else str(row["workload"])


def validate_row(row: Row, workloads: Collection[str], gpus: Collection[str]) -> None:
    """A row naming an unknown workload, GPU or scope is bad input (one line, the choices)."""
    if row.get("workload") not in workloads:
        raise choices_error(
            f"workload in scorecard row {row.get('id')!r}:", row.get("workload"), list(workloads)
        )
    if row.get("gpu") not in gpus:
        raise choices_error(f"GPU in scorecard row {row.get('id')!r}:", row.get("gpu"), list(gpus))
    if row.get("scope", "end_to_end") not in SCOPES:
        raise choices_error(f"scope in scorecard row {row.get('id')!r}:", row.get("scope"), SCOPES)
    sec = row.get("published_s")
    if not isinstance(sec, (int, float)) or not sec > 0:
        raise UserError(f"scorecard row {row.get('id')!r}: published_s must be a positive number")


def _pct(pred: float, pub: float) -> float:
    return 100.0 * (pred - pub) / pub


def _mape(errors: Sequence[float]) -> float | None:
    return round(sum(abs(e) for e in errors) / len(errors), 2) if errors else None


def score(
    rows: Sequence[Row],
    predict_row: Callable[[Row], float],
    *,
    workloads: Collection[str],
    gpus: Collection[str] | None = None,
) -> dict[str, Any]:
    """Score ``predict_row`` against ``rows``.

    Returns ``{"mape_pct", "worst_pct", "lever_speedup_mape_pct", "rows", "by_family",
    "by_gpu", "by_lever"}``: per row the predicted and published seconds and the signed error
    (``100·(pred − pub)/pub``); MAPE over all rows and per family/GPU/last lever; the worst
    signed error by magnitude; and, for rows naming a ``baseline`` row, the error of the
    predicted speedup (baseline/row) against the published one.
    """
    gpus = list(gpus) if gpus is not None else hardware_names()
    for row in rows:
        validate_row(row, workloads, gpus)
    by_id = {r["id"]: r for r in rows}
    out_rows: list[dict[str, Any]] = []
    predicted: dict[str, float] = {}
    for row in rows:
        pred = float(predict_row(row))
        if not math.isfinite(pred) or pred <= 0:
            raise UserError(f"scorecard row {row['id']!r}: prediction {pred!r} is not positive")
        predicted[row["id"]] = pred
        pub = float(row["published_s"])
        levers = list(row.get("levers") or [])
        out_rows.append(
            {
                "id": row["id"],
                "family": family(row),
                "gpu": row["gpu"],
                "levers": levers,
                "scope": row.get("scope", "end_to_end"),
                "published_s": round(pub, 4),
                "predicted_s": round(pred, 4),
                "error_pct": round(_pct(pred, pub), 2),
            }
        )
    speed_errors: list[float] = []
    for rec, row in zip(out_rows, rows, strict=True):
        base = row.get("baseline")
        if not base:
            continue
        if base not in by_id:
            raise choices_error(f"baseline of scorecard row {row['id']!r}:", base, list(by_id))
        pub_speedup = float(by_id[base]["published_s"]) / float(row["published_s"])
        pred_speedup = predicted[base] / predicted[row["id"]]
        err = _pct(pred_speedup, pub_speedup)
        rec["published_speedup"] = round(pub_speedup, 3)
        rec["predicted_speedup"] = round(pred_speedup, 3)
        rec["speedup_error_pct"] = round(err, 2)
        speed_errors.append(err)

    def group(key: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
        groups: dict[str, list[float]] = {}
        for rec in out_rows:
            groups.setdefault(key(rec), []).append(rec["error_pct"])
        return {k: {"mape_pct": _mape(v), "rows": len(v)} for k, v in sorted(groups.items())}

    errors = [r["error_pct"] for r in out_rows]
    worst = max(errors, key=abs) if errors else None
    return {
        "mape_pct": _mape(errors),
        "worst_pct": worst,
        "lever_speedup_mape_pct": _mape(speed_errors),
        "within_30_pct": sum(abs(e) <= 30 for e in errors),
        "n_rows": len(out_rows),
        "rows": out_rows,
        "by_family": group(lambda r: r["family"]),
        "by_gpu": group(lambda r: r["gpu"]),
        "by_lever": group(lambda r: r["levers"][-1] if r["levers"] else "baseline"),
    }
