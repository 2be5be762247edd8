"""Roofline time model: per op, ``max(flops / peak(dtype, unit), bytes / bandwidth)``.

Peaks come from a :class:`~genscope.costmodel.hardware.HardwareSpec` (datasheet for GPUs,
measured for ``cpu-local``). Views (unit ``none``) take no time. A spec's per-op dispatch
overhead, when it has one, is added to every op that launches work.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genscope.costmodel.hardware import HardwareSpec

#: Dtypes a roofline can price; integer/bool ops (indices, masks) are priced as fp32 vector work.
_PRICED = ("fp64", "fp32", "bf16", "fp16", "fp8", "int8")


def apply_roofline(events: pd.DataFrame, hw: HardwareSpec) -> pd.DataFrame:
    """Return ``events`` with ``roofline_s`` and ``predicted_s`` (both the roofline, per single
    op) and ``bound`` filled in; :func:`genscope.costmodel.pricing.price` replaces
    ``predicted_s`` with the GPU time model on GPU specs."""
    out = events.copy()
    dtype = out["dtype"].where(out["dtype"].isin(_PRICED), "fp32").astype(str)
    unit = out["unit"].astype(str)
    peak = pd.Series(np.nan, index=out.index)
    for (d, u), idx in out.groupby([dtype, unit]).groups.items():
        if u != "none":
            peak.loc[idx] = hw.peak(str(d), str(u))
    compute_s = (out["flops"] / peak).fillna(0.0)
    memory_s = (out["bytes_read"] + out["bytes_written"]) / hw.mem_bw
    launches = unit != "none"
    out["roofline_s"] = np.maximum(compute_s, memory_s) + launches * hw.dispatch_overhead_s
    out["predicted_s"] = out["roofline_s"]
    out["bound"] = np.where(~launches, "none", np.where(compute_s >= memory_s, "compute", "memory"))
    out["bound"] = out["bound"].astype("string")
    return out
