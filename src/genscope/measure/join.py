"""Join a profiled pass to the analytic rows: which profiled op is which analytic op.

A profiled pass marks only some modules (:func:`marked_modules`): leaves inside a marked
module whose class does not decide their ops' categories are told apart by order. Rows are then
matched in order within each (phase, step) on (component, innermost marked module, op packet).
"""

from __future__ import annotations

import difflib
import functools
import math
from typing import Any

import numpy as np
import pandas as pd

from genscope.capture.profiling import ProfOp, packet_of
from genscope.costmodel.taxonomy import module_decides_category
from genscope.schema import events_frame


def marked_modules(events: pd.DataFrame) -> set[tuple[str, str, str]]:
    """(component, module path, class) of the modules a profiled pass marks.

    Every module that runs ops of its own in the analytic capture, except a *leaf* among them
    (no descendant runs ops) that sits inside another one and whose class does not decide
    its ops' categories (not an attention, norm, embedding or KV-reorder module): its ops are
    told apart by their order within that ancestor's span, against the analytic capture
    (:func:`join`). That drops the Python span of every ``Linear``, convolution and
    activation call inside a block — about half the spans on small models.
    """
    own = events[events["module_type"].fillna("") != ""]
    triples = set(
        zip(
            own["component"].astype(str),
            own["module_path"].astype(str),
            own["module_type"].astype(str),
            strict=True,
        )
    )
    paths = {(c, p) for c, p, _ in triples}
    with_descendant = {(c, a) for c, p in paths for a in _ancestors(p)}
    return {
        (c, p, t)
        for c, p, t in triples
        if (c, p) in with_descendant
        or module_decides_category(t)
        or not any((c, a) in paths for a in _ancestors(p))
    }


def _ancestors(path: str) -> list[str]:
    """Proper ancestors of a dotted module path, outermost first (the root ``""`` included)."""
    if not path:
        return []
    parts = path.split(".")
    return ["", *(".".join(parts[:i]) for i in range(1, len(parts)))]


def marker_path(component: str, path: str, marked: set[tuple[str, str]]) -> str:
    """Path of the innermost marked module around ``path`` (itself included; ``""`` if none):
    the module a profiled op inside ``path`` is attributed to."""
    for q in (path, *reversed(_ancestors(path))):
        if (component, q) in marked:
            return q
    return ""


def _row_key(component: Any, path: Any, op: Any) -> tuple[str, str, str]:
    return (str(component or ""), str(path or ""), packet_of(str(op)))


def _op_key(op: ProfOp) -> tuple[str, str, str]:
    return (op.component, op.module.path if op.module else "", packet_of(op.op))


def _group_key(phase: Any, step: Any) -> tuple[str, int]:
    missing = step is None or (isinstance(step, float) and math.isnan(step)) or step is pd.NA
    return (str(phase or ""), -1 if missing else int(step))


def join(
    analytic: pd.DataFrame,
    ops: list[ProfOp],
    device_time: bool,
    marked: set[tuple[str, str, str]] | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Analytic rows with ``measured_s`` from the matching profiled op, plus profiled-only rows.

    Rows are matched in order within each (phase, step) group on (component, module path, op
    packet); a difflib alignment absorbs the rare op one side did not see. ``marked``: the
    modules the profiled pass marked (:func:`marked_modules`); a row's module path is then
    compared as the innermost marked module around it, and the row keeps its own.
    """
    rows = analytic.sort_values("seq").reset_index(drop=True)
    row_groups: dict[tuple[str, int], list[int]] = {}
    for i, (phase, step) in enumerate(zip(rows["phase"], rows["step"].astype(object), strict=True)):
        row_groups.setdefault(_group_key(phase, step), []).append(i)
    op_groups: dict[tuple[str, int], list[int]] = {}
    for j, op in enumerate(ops):
        w = op.where
        op_groups.setdefault(_group_key(w.phase if w else "", w.step if w else None), []).append(j)

    marked_paths = None if marked is None else {(c, p) for c, p, _ in marked}

    @functools.cache
    def seen_as(component: str, path: str) -> str:
        return path if marked_paths is None else marker_path(component, path, marked_paths)

    row_keys = [
        _row_key(c, seen_as(str(c or ""), str(p or "")), o)
        for c, p, o in zip(rows["component"], rows["module_path"], rows["op"], strict=True)
    ]
    op_keys = [_op_key(op) for op in ops]
    match: dict[int, int] = {}  # row index -> op index
    for g in row_groups.keys() | op_groups.keys():
        ri, oi = row_groups.get(g, []), op_groups.get(g, [])
        a, b = [row_keys[i] for i in ri], [op_keys[j] for j in oi]
        if a == b:
            match.update(zip(ri, oi, strict=True))
            continue
        sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
        for blk in sm.get_matching_blocks():
            for k in range(blk.size):
                match[ri[blk.a + k]] = oi[blk.b + k]

    def op_time(op: ProfOp) -> float:
        if op.median_s is not None:
            return op.median_s
        return op.device_s if device_time else op.host_s

    measured = np.full(len(rows), np.nan)
    mismatched_category = 0
    for i, j in match.items():
        measured[i] = op_time(ops[j])
        if ops[j].category != rows.at[i, "category"]:
            mismatched_category += 1
    rows["measured_s"] = measured
    rows["_t"] = [ops[match[i]].start if i in match else -1 for i in range(len(rows))]

    matched_ops = set(match.values())
    extra = []
    for j, op in enumerate(ops):
        if j in matched_ops:
            continue
        w = op.where
        extra.append(
            {
                "component": op.component,
                "step": w.step if w else None,
                "phase": w.phase if w else "",
                "module_path": op.module.path if op.module else "",
                "module_type": op.module.type_name if op.module else "",
                "op": op.op,
                "category": op.category,
                "unit": "none",  # no shapes recorded: no FLOPs/bytes, no prediction
                "measured_s": op_time(op),
                "_t": op.start,
            }
        )
    merged = pd.concat([rows, pd.DataFrame(extra)], ignore_index=True) if extra else rows
    # Profiled-only rows go where they ran; analytic-only rows keep their analytic order.
    merged["_t"] = merged["_t"].astype("float64")
    merged["_t"] = merged["_t"].where(merged["_t"] >= 0).ffill().fillna(-1)
    merged = merged.sort_values(["_t"], kind="stable").drop(columns="_t")
    merged["seq"] = range(len(merged))
    stats = {
        "analytic_rows": len(rows),
        "profiled_ops": len(ops),
        "matched": len(match),
        "profiled_only": len(extra),
        "analytic_only": len(rows) - len(match),
        "category_mismatches": mismatched_category,
    }
    return events_frame(merged), stats
