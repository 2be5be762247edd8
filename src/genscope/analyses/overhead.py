"""Overhead and idle of a profiled pass, per phase, step and component, and measured totals.

``overhead`` is the wall time of the profiled pass not inside dispatch-level ops (Python,
module plumbing, framework glue). ``idle`` on CUDA is wall minus the union of kernel intervals,
with the host-bound part (gaps before the next kernel was even launched: Lee et al.'s GPU idle);
on CPU the CPU is the device, so idle equals overhead.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from genscope.capture.profiling import Attribution, busy_and_gaps


def share(part: float, whole: float) -> float:
    """``part / whole``, or 0 when there is no whole."""
    return part / whole if whole > 0 else 0.0


def timeline_figures(att: Attribution, device: str) -> dict[str, Any]:
    """Per phase and per step: wall, op time, overhead (host) and, on CUDA, device idle."""
    cuda = torch.device(device).type == "cuda"
    groups: dict[tuple[str, str, int], dict[str, float]] = {}

    def g(phase: str, step: int | None, component: str) -> dict[str, float]:
        key = (phase, component, -1 if step is None else step)
        return groups.setdefault(key, {"wall_ns": 0.0, "op_ns": 0.0, "busy_ns": 0.0})

    for span in att.spans:
        lab = span.label
        g(lab.phase, lab.step, lab.component)["wall_ns"] += span.exclusive_ns
    g("", None, "")["wall_ns"] += att.outside_ns
    for op in att.ops:
        w = op.where
        g(w.phase if w else "", w.step if w else None, w.component if w else "")["op_ns"] += (
            op.end - op.start
        )

    run0, run1 = att.run_span or (0, 0)
    device_block: dict[str, Any] | None = None
    kernel_group: list[tuple[int, int, int, tuple[str, str, int]]] = []
    if cuda:
        for op in att.ops:
            w = op.where
            key = (w.phase if w else "", w.component if w else "", (w.step if w else None))
            key = (key[0], key[1], -1 if key[2] is None else key[2])
            for s, e, launch in op.kernels:
                kernel_group.append((s, e, launch, key))
        all_k = [(s, e, launch) for s, e, launch, _ in kernel_group]
        end = max([run1, *(e for _, e, _ in all_k)]) if all_k else run1
        busy, idle, host = busy_and_gaps(all_k, (run0, end))
        device_block = {"busy_ns": busy, "idle_ns": idle, "host_ns": host, "wall_ns": end - run0}
        # per group: busy = union of its kernels, host-bound = gaps before its kernels
        by_key: dict[tuple[str, str, int], list[tuple[int, int, int]]] = {}
        for s, e, launch, key in kernel_group:
            by_key.setdefault(key, []).append((s, e, launch))
        for key, ks in by_key.items():
            b, _, _ = busy_and_gaps(ks, (min(k[0] for k in ks), max(k[1] for k in ks)))
            groups.setdefault(key, {"wall_ns": 0.0, "op_ns": 0.0, "busy_ns": 0.0})
            groups[key]["busy_ns"] += b

    def block(wall: float, op: float, busy: float) -> dict[str, Any]:
        out = {
            "wall_s": wall / 1e9,
            "op_s": op / 1e9,
            "overhead_s": max(0.0, wall - op) / 1e9,
            "overhead_share": share(max(0.0, wall - op), wall),
        }
        if cuda:
            out["device_busy_s"] = busy / 1e9
            out["idle_s"] = max(0.0, wall - busy) / 1e9
            out["idle_share"] = share(max(0.0, wall - busy), wall)
        return out

    def _b(v: dict[str, float]) -> dict[str, Any]:
        return block(v["wall_ns"], v["op_ns"], v["busy_ns"])

    by_phase: dict[str, dict[str, float]] = {}
    by_step: dict[tuple[str, int], dict[str, float]] = {}
    by_component: dict[str, dict[str, float]] = {}
    for (phase, component, step), v in groups.items():
        for table, key in (
            (by_phase, phase or "(outside phases)"),
            (by_component, component or "(none)"),
        ):
            acc = table.setdefault(key, {"wall_ns": 0.0, "op_ns": 0.0, "busy_ns": 0.0})
            for k in acc:
                acc[k] += v[k]
        if step >= 0:
            acc = by_step.setdefault((phase, step), {"wall_ns": 0.0, "op_ns": 0.0, "busy_ns": 0.0})
            for k in acc:
                acc[k] += v[k]

    wall = (run1 - run0) if att.run_span else sum(v["wall_ns"] for v in groups.values())
    op_total = sum(op.end - op.start for op in att.ops)
    overhead = {
        "definition": (
            "host wall time of the profiled pass not inside dispatch-level aten ops "
            "(Python, module plumbing, framework glue)"
        ),
        "total_s": max(0.0, wall - op_total) / 1e9,
        "share": share(max(0.0, wall - op_total), wall),
        "by_phase": {
            k: {"overhead_s": b["overhead_s"], "share": b["overhead_share"]}
            for k, b in ((k, _b(v)) for k, v in by_phase.items())
        },
    }
    if cuda and device_block is not None:
        idle = {
            "definition": (
                "device idle = wall (run start to last kernel end) - union of kernel/memcpy "
                "intervals; host_bound = part of the gaps before a kernel was even launched"
            ),
            "total_s": device_block["idle_ns"] / 1e9,
            "share": share(device_block["idle_ns"], device_block["wall_ns"]),
            "host_bound_s": device_block["host_ns"] / 1e9,
            "host_bound_share": share(device_block["host_ns"], device_block["wall_ns"]),
            "device_busy_s": device_block["busy_ns"] / 1e9,
        }
    else:
        idle = {
            "definition": (
                "cpu: the CPU is the device, so idle = the share of wall time not inside op "
                "kernels (same as overhead)"
            ),
            "total_s": overhead["total_s"],
            "share": overhead["share"],
            "host_bound_s": overhead["total_s"],
            "host_bound_share": overhead["share"],
        }
    idle["by_phase"] = {k: _b(v) for k, v in by_phase.items()}
    steps = [
        {"phase": phase, "step": step, **_b(v)}
        for (phase, step), v in sorted(by_step.items(), key=lambda kv: (kv[0][0], kv[0][1]))
    ]
    return {
        "profiled_wall_s": wall / 1e9,
        "by_phase": {k: _b(v) for k, v in by_phase.items()},
        "by_step": steps,
        "wall_by_component": {k: _b(v) for k, v in by_component.items()},
        "overhead": overhead,
        "idle": idle,
    }


def measured_summary(events: pd.DataFrame) -> dict[str, Any]:
    """measured_s totals by category and component (one profiled pass)."""
    m = events["measured_s"].fillna(0.0) * events["count"]
    total = float(m.sum())
    by_cat = {
        str(c): {"measured_s": float(v), "measured_share": share(float(v), total)}
        for c, v in m.groupby(events["category"]).sum().items()
    }
    by_comp = {
        str(c): float(v) for c, v in m.groupby(events["component"], sort=False).sum().items()
    }
    return {"measured_s": total, "by_category": by_cat, "by_component": by_comp}
