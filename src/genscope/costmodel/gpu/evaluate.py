"""Predict a scorecard row from a full-size analytic trace, with the trace function injected.

The cost model sits below tracing in genscope's layers, so this module never imports it: the
caller passes ``trace(workload, settings) -> events`` (e.g. a wrapper of
``genscope.trace_workload(..., Settings(size="full", ...)).events``). Traces are cached per
(workload, settings), so rows that differ only in GPU or levers share one trace.

Per row: trace -> the row's lever stack (:mod:`.levers`) -> :func:`.predict.predict` on the
row's GPU with the row's ``options`` (e.g. ``tf32`` when the benchmark enables TF32 matmuls)
-> the row's scope (``end_to_end`` wall, or the ``denoise`` phase's wall).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from genscope.costmodel.gpu.levers import apply_lever, parse
from genscope.costmodel.gpu.predict import GpuPrediction, predict
from genscope.costmodel.gpu.scorecard import load_rows, score
from genscope.costmodel.hardware import get_hardware
from genscope.errors import UserError

TraceFn = Callable[[str, dict[str, Any]], pd.DataFrame]
#: Settings keys a row may carry (genscope ``Settings`` fields).
SETTING_KEYS: tuple[str, ...] = (
    "res", "frames", "steps", "batch", "cfg", "dtype", "prompt_len", "new_tokens", "variant",
    "attention",
)  # fmt: skip


def row_settings(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row's trace settings (``variant`` included), ``res`` as a tuple."""
    s = {k: v for k, v in dict(row.get("settings") or {}).items() if k in SETTING_KEYS}
    if row.get("variant"):
        s["variant"] = row["variant"]
    if s.get("res") is not None:
        s["res"] = tuple(s["res"])
    return s


def libraries(events: pd.DataFrame, row: Mapping[str, Any]) -> dict[str, str]:
    """Model library per component: text/image encoders run transformers code; the denoiser
    and VAE diffusers; an LLM ``model`` transformers, or gpt-fast's own code when the row says."""
    software = row.get("software") or {}
    out: dict[str, str] = {}
    for comp in set(events["component"].dropna().astype(str)) - {""}:
        if "encoder" in comp and comp not in ("vae",):
            out[comp] = "transformers"
        elif comp == "model":
            out[comp] = (
                "gpt-fast"
                if "gpt-fast" in str(software.get("model_code", ""))
                else ("transformers")
            )
        else:
            out[comp] = "diffusers"
    return out


def predict_events(events: pd.DataFrame, row: Mapping[str, Any]) -> GpuPrediction:
    """Apply the row's levers to ``events`` and predict on the row's GPU."""
    spec = get_hardware(str(row["gpu"]))
    table = events
    for name, arg in parse(",".join(row.get("levers") or [])):
        table = apply_lever(table, spec, name, arg)
    options = dict(row.get("options") or {})
    unknown = set(options) - {"tf32", "attention_kernel"}
    if unknown:
        raise UserError(
            f"scorecard row {row.get('id')!r}: unknown option(s) {', '.join(sorted(unknown))}; "
            "choose from: attention_kernel, tf32"
        )
    return predict(table, spec, library_of_component=libraries(events, row), **options)


def scope_seconds(pred: GpuPrediction, scope: str) -> float:
    """End-to-end wall, or the wall of the denoise phase (kernels + idle inside it)."""
    if scope == "denoise_loop":
        return float(pred.by_phase.loc["denoise", "wall_s"])
    return pred.predicted_s


def setup_key(workload: str, settings: Mapping[str, Any]) -> str:
    """One key per distinct trace: rows that differ only in GPU or levers share it."""
    return json.dumps([workload, settings], sort_keys=True, default=list)


def make_predictor(trace: TraceFn) -> Callable[[Mapping[str, Any]], float]:
    """A ``predict_row`` for :func:`.scorecard.score`, tracing each distinct setup once."""
    cache: dict[str, pd.DataFrame] = {}

    def predict_row(row: Mapping[str, Any]) -> float:
        settings = row_settings(row)
        key = setup_key(str(row["workload"]), settings)
        if key not in cache:
            cache[key] = trace(str(row["workload"]), settings)
        pred = predict_events(cache[key], row)
        return scope_seconds(pred, str(row.get("scope", "end_to_end")))

    return predict_row


def run_scorecard(trace: TraceFn, workloads: list[str]) -> dict[str, Any]:
    """Score the shipped scorecard with the GPU model, tracing through ``trace``.

    The CLI's ``genscope bench scorecard --json`` is meant to print exactly this dict.
    """
    return score(load_rows(), make_predictor(trace), workloads=workloads)
