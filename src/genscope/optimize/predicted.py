"""The lever ladder predicted on any GPU spec: no device, only the GPU time model.

The workload is traced once at full size on ``meta`` from the measured ``optimize``'s baseline
(fp32, and math attention when ``sdpa`` is on the ladder), then each lever transforms the
op-event table (:mod:`genscope.costmodel.gpu.levers`) on top of the rung before, and every rung
is priced by the kernel model and host timeline (:func:`genscope.costmodel.gpu.predict`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from genscope.api import trace_workload
from genscope.costmodel.gpu import predict, stack
from genscope.costmodel.gpu.levers import LOOP_PHASES, parse
from genscope.costmodel.hardware import get_hardware
from genscope.costmodel.pricing import has_gpu_model
from genscope.errors import UserError
from genscope.workloads.base import Settings

#: The ladder when ``--levers`` is not given: diffusion-fast's order (bf16, SDPA, compile,
#: fused QKV, dynamic int8) for loops of denoise steps; Lee et al.'s system levers for decoding.
DEFAULT_LADDER = {
    "denoise": "bf16,sdpa,compile:max-autotune,fused_qkv,int8_dynamic",
    "decode": "bf16,sdpa,static_cache,int8_weight_only",
}


def predict_ladder(
    workload: str, settings: Settings, hardware: str, levers: str | None = None
) -> dict[str, Any]:
    """Every rung of the stacked ladder on ``hardware``: end-to-end ``predicted_s`` (as
    ``trace`` reports it), ``predicted_hot_s`` (the denoise or decode loop) and the speedups
    against the baseline and the rung before."""
    hw = get_hardware(hardware)
    if not has_gpu_model(hw):
        raise UserError(
            f"--hardware {hw.name} has no GPU time model (no arch and SM count); choose an "
            "NVIDIA GPU spec (see `genscope hardware`)"
        )
    if levers is not None:
        parse(levers)  # unknown lever names fail before any tracing
    base = replace(settings, dtype="fp32")
    if levers is None or "sdpa" in levers:
        base = replace(base, attention="math")
    traced = trace_workload(workload, base, hardware=hw, save=False)
    loop = next((p for p in LOOP_PHASES if (traced.events["phase"] == p).any()), None)
    ladder = levers if levers is not None else DEFAULT_LADDER.get(loop or "", "bf16,sdpa")
    libraries = traced.meta.get("libraries") or {}
    stages = []
    for i, step in enumerate(stack(traced.events, hw, ladder)):
        p = predict(step.events, hw, library_of_component=libraries)
        phases = p.by_phase
        hot = float(phases.loc[phases.index.isin([loop]), "wall_s"].sum()) if loop else 0.0
        stages.append(
            {
                "stage": i,
                "lever": step.lever,
                "status": "ok",
                "predicted_s": p.predicted_s,
                "predicted_hot_s": hot,
                "kernel_s": p.busy_s,
                "idle_s": p.idle_s,
                "host_bound_share": p.host_bound_share,
                "roofline_s": p.roofline_s,
            }
        )
    for st in stages:
        st["speedup"] = stages[0]["predicted_s"] / st["predicted_s"]
        prev = stages[max(0, st["stage"] - 1)]
        st["speedup_vs_prev"] = prev["predicted_s"] / st["predicted_s"]
    return {
        "workload": traced.meta["workload"],
        "kind": loop or "forward",
        "mode": f"predicted (GPU time model, {hw.name})",
        "hardware": hw.name,
        "baseline": f"fp32, {base.attention} attention, eager PyTorch",
        "settings": traced.meta["settings"],
        "levers": ladder,
        "stages": stages,
        "speedup": stages[-1]["speedup"],
    }
