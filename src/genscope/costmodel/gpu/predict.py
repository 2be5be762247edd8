"""Public entry point of the GPU time model: op-event table + GPU spec -> :class:`GpuPrediction`.

``predict`` prices every op's kernels (:mod:`.kernels`), assigns each op its host cost, runs the
host timeline (:mod:`.timeline`) and aggregates per category, component and phase. The roofline
(``roofline_s``) stays beside the prediction as the bound it is.

Host cost per op, divided by the spec's ``extra.host_cpu`` (single-thread speed relative to the
constants' reference CPU):

* **eager**: every aten op costs ``library_s[library]`` (the model library's Python around it,
  as genscope calibrate measures it); ops that launch kernels add ``op_submit_s`` (binding,
  dispatcher, first launch) and ``launch_s`` per further kernel; views add ``view_s``;
* **compiled** (``gpu_host == "compiled"``, torch.compile without CUDA graphs): views vanish;
  ``inductor_kernel_s`` per kernel;
* **graph** (``gpu_host == "graph"`` or ``cuda_graphs``): no per-op cost; one
  ``graph_launch_s`` at the first op of each replayed step.

Optional columns written by :mod:`.levers` (``gpu_host``, ``gpu_layout``, ``gpu_kernels``)
change the defaults per row; a plain trace has none of them and is priced as eager PyTorch.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from genscope.costmodel.gpu import constants as C
from genscope.costmodel.gpu.device import Device, device_of
from genscope.costmodel.gpu.kernels import kernel_times
from genscope.costmodel.gpu.timeline import simulate
from genscope.costmodel.hardware import HardwareSpec

HOST_MODES: tuple[str, ...] = ("eager", "compiled", "graph")


@dataclass
class GpuPrediction:
    """Per-op kernel and timeline columns plus run totals, all in seconds."""

    hardware: str
    ops: pd.DataFrame  # events + kclass, kernel_s, roofline_s, kernels, host_s, issue/start/end
    predicted_s: float  # end-to-end wall time including host-bound gaps
    busy_s: float
    idle_s: float
    host_bound_share: float
    roofline_s: float
    by_category: pd.DataFrame = field(repr=False)
    by_component: pd.DataFrame = field(repr=False)
    by_phase: pd.DataFrame = field(repr=False)
    by_step: pd.DataFrame = field(repr=False)  # per (phase, step); step -1 = outside loops

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able totals and breakdowns (no per-op rows)."""

        def table(df: pd.DataFrame) -> dict[str, dict[str, float]]:
            return {str(k): {c: float(v) for c, v in row.items()} for k, row in df.iterrows()}

        return {
            "hardware": self.hardware,
            "model": "gpu",
            "predicted_s": self.predicted_s,
            "busy_s": self.busy_s,
            "idle_s": self.idle_s,
            "host_bound_share": self.host_bound_share,
            "roofline_s": self.roofline_s,
            "by_category": table(self.by_category),
            "by_component": table(self.by_component),
            "by_phase": table(self.by_phase),
        }

    def steps_json(self) -> list[dict[str, Any]]:
        """Per (phase, step): kernel time, idle, wall and host-bound share, in table order."""
        rows = self.by_step.reset_index()
        return [
            {k: (v if isinstance(v, str) else float(v)) for k, v in r.items()}
            for r in rows.to_dict("records")
        ]


def host_costs(
    events: pd.DataFrame,
    kernels: np.ndarray,
    dev: Device,
    *,
    library_of_component: Mapping[str, str] | None = None,
    graph_components: Collection[str] = (),
    library_overhead_s: Mapping[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """CPU seconds per op before its kernels are issued, and the sync flag per op.

    ``library_overhead_s`` replaces the shipped per-library Python cost per op (e.g. with the
    ``overhead_by_library`` genscope calibrate measured on the target host's CPU).
    """
    n = len(events)
    scale = 1.0 / dev.host_cpu
    comp = events["component"].fillna("").astype(str).to_numpy()
    mode = (
        events["gpu_host"].fillna("eager").astype(str).to_numpy()
        if "gpu_host" in events
        else np.full(n, "eager", dtype=object)
    )
    mode = np.where(np.isin(comp, list(graph_components)), "graph", mode)
    libs = library_of_component or {}
    lib_table = {**C.value("host.library_s"), **dict(library_overhead_s or {})}
    library_s = np.array([lib_table.get(libs.get(c, ""), lib_table["default"]) for c in comp])
    launches = kernels > 0
    eager = library_s + np.where(
        launches,
        C.value("host.op_submit_s") + C.value("host.launch_s") * (kernels - 1),
        C.value("host.view_s"),
    )
    compiled = C.value("host.inductor_kernel_s") * kernels
    host = np.where(mode == "eager", eager, np.where(mode == "compiled", compiled, 0.0))
    # One graph launch at the first op of each replayed step (a new block, component or step).
    is_graph = mode == "graph"
    step = events["step"].astype("Float64").fillna(-1).to_numpy(dtype=float)
    count = events["count"].to_numpy()
    new_step = np.ones(n, dtype=bool)
    if n > 1:
        new_step[1:] = (
            (comp[1:] != comp[:-1])
            | (step[1:] != step[:-1])
            | (count[1:] != count[:-1])
            | (~is_graph[:-1])
        )
    host = host + np.where(is_graph & new_step, C.value("host.graph_launch_s"), 0.0)
    sync = events["op"].astype(str).isin(C.value("host.sync_ops")).to_numpy()
    return host * scale, sync


def _breakdown(ops: pd.DataFrame, key: str | list[str]) -> pd.DataFrame:
    cnt = ops["count"].to_numpy(dtype=float)
    keys = [key] if isinstance(key, str) else key
    labels = {
        k: (
            ops[k].astype("Float64").fillna(-1).astype(int)
            if k == "step"
            else ops[k].fillna("").astype(str).replace({"": "(none)"})
        )
        for k in keys
    }
    frame = pd.DataFrame(
        {
            **labels,
            "time_s": ops["kernel_s"] * cnt,
            "roofline_s": ops["roofline_s"] * cnt,
            "idle_s": ops["idle_s"],
            "host_s": ops["host_s"] * cnt,
            "kernels": ops["kernels"] * cnt,
        }
    )
    out = frame.groupby(keys, sort=True).sum()
    out["wall_s"] = out["time_s"] + out["idle_s"]
    out["host_bound_share"] = np.where(out["wall_s"] > 0, out["idle_s"] / out["wall_s"], 0.0)
    return out


def predict(
    events: pd.DataFrame,
    spec: HardwareSpec,
    *,
    tf32: bool = False,
    cuda_graphs: bool | Collection[str] = False,
    library_of_component: Mapping[str, str] | None = None,
    attention_kernel: str = "fa2",
    library_overhead_s: Mapping[str, float] | None = None,
) -> GpuPrediction:
    """Predict an op-event table on a GPU spec.

    ``tf32`` mirrors ``torch.backends.cuda.matmul.allow_tf32`` (convs use TF32 regardless, as
    cuDNN does by default). ``cuda_graphs`` replays every component (``True``) or the named
    ones as one CUDA graph per step. ``library_of_component`` names each component's model
    library (``diffusers``, ``transformers``…) for its Python cost per op. ``attention_kernel``
    is the flash kernel SDPA runs: ``fa2`` (PyTorch's default), ``fa3`` or ``cudnn`` (sm90+).
    ``library_overhead_s`` overrides the per-library Python cost per op (seconds on the
    reference CPU, before ``host_cpu`` scaling), e.g. from a ``genscope calibrate`` op model.
    """
    dev = device_of(spec)
    ev = events.reset_index(drop=True)
    k = kernel_times(ev, dev, tf32=tf32, attention_kernel=attention_kernel)
    if cuda_graphs is True:
        graphs: Collection[str] = set(ev["component"].fillna("").astype(str))
    else:
        graphs = cuda_graphs or ()
    host, sync = host_costs(
        ev,
        k["kernels"].to_numpy(),
        dev,
        library_of_component=library_of_component,
        graph_components=graphs,
        library_overhead_s=library_overhead_s,
    )
    count = ev["count"].to_numpy(dtype=np.int64)
    tl = simulate(host, k["kernel_s"].to_numpy(), count, sync)
    # the kernel model's columns replace any of the same name the table carries (a priced
    # op-event table has roofline_s already)
    ops = pd.concat([ev.drop(columns=[c for c in k.columns if c in ev.columns]), k], axis=1)
    ops["predicted_s"] = ops["kernel_s"]
    ops["host_s"] = host
    ops["issue_s"], ops["start_s"], ops["end_s"] = tl.issue_s, tl.start_s, tl.end_s
    ops["idle_s"] = tl.idle_s
    roof = float(np.sum(k["roofline_s"].to_numpy() * count))
    return GpuPrediction(
        hardware=spec.name,
        ops=ops,
        predicted_s=tl.wall_s,
        busy_s=tl.busy_s,
        idle_s=tl.idle_total_s,
        host_bound_share=tl.host_bound_share,
        roofline_s=roof,
        by_category=_breakdown(ops, "category"),
        by_component=_breakdown(ops, "component"),
        by_phase=_breakdown(ops, "phase"),
        by_step=_breakdown(ops, ["phase", "step"]),
    )
