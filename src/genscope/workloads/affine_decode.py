"""KV-cache decode loops, traced exactly, with an exact shortcut for long loops on ``meta``.

:class:`DecodeLoop` runs a workload's decode steps ``i = first..last``, each inside
``run.phase(component, "decode", step=i)``. Decode steps are never identical (the KV cache grows),
so the Runner's identical-step collapsing does not apply; tracing 1024 steps of a 7B model op by
op, though, takes minutes. This module traces a few steps and writes the rest *exactly*.

When the shortcut applies — all of these, else every step is traced:

* an analytic recorder is capturing and the run may collapse repeated work (``Runner.collapse``;
  ``trace_built(..., collapse=False)`` gives the fully traced reference);
* the tensors live on ``meta``: they carry no values, so skipping a step's execution loses no
  output and no step's ops can depend on sampled values (real CPU runs trace every step);
* the workload can build a fresh state just before any step (``fresh``) — e.g. a KV cache
  filled to that length (:func:`filled_cache`) — used only for the probe below;
* the loop has at least ``TRACED + WARMUP + 2`` steps.

What it does and checks:

1. Trace steps from ``first`` normally until the last ``TRACED = 3`` consecutive traced steps
   pass check 2 (at most ``WARMUP = 2`` extra leading steps, e.g. the first decode step, which
   still frees prefill activations).
2. Align the window's rows position by position. Every row must have the same op, module, category,
   labels and shape *layout* in every traced step; each integer (flops, bytes, q_len, kv_len,
   every dimension in the shape strings, ...) must be an affine function of the step: equal
   first differences, so zero second differences. Anything else fails the check.
3. Probe: build a fresh state just before ``last`` (its ops are recorded and dropped), trace step
   ``last`` for real, and compare it field by field with the affine prediction for ``last``.
4. If 2 and 3 hold, write the steps after the window up to ``last`` from the affine model;
   otherwise trace every remaining step from the loop's real state (the probe never touches
   it). :class:`LoopReport` says which happened and why.

Why this is exact, not an approximation: each row's cost is a polynomial in its tensors' dims,
and in a decode step those dims are constant or affine in the step (cache length = prompt + i).
A matmul whose m, k and n all grew would give degree 3; decode ops have degree <= 2 (e.g. the
cache ``cat`` reads ``kv`` and writes ``kv + 1``). A polynomial of degree <= 3 that agrees with a
line at four points (three consecutive steps + the last) *is* that line, so the synthesized
values are the ones a full trace records — integer arithmetic, no rounding. A structural change
somewhere in the loop (a different op sequence, e.g. a cache that reallocates at some length) is
caught when it is still present at the last step; one that appears only in between is not, and
the small-case test in ``tests/test_workloads_ar.py`` compares against full traces.

How synthesized steps are written: a row whose fields do not change with the step (the weight
GEMMs, norms, MLP — most rows) becomes ONE row labelled with the first synthesized step, its
``count`` multiplied by the number of synthesized steps; a row that changes (attention over the
cache, the cache ``cat``, the beam reorder of the cache, ...) gets one row per step with that
step's exact values, so per-step ``kv_len``/``q_len`` stay exact. Gauge fields (running values
such as ``live_bytes``) are checked for affinity but left out of the probe comparison (the probe's
extra state is alive while it runs); a collapsed row carries their maximum over its steps.
"""

from __future__ import annotations

import gc
import itertools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import pandas as pd
import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode_stack
from transformers import DynamicCache

from genscope.capture.context import Runner

S = TypeVar("S")

TRACED = 3
#: Extra leading steps that may be traced before the affine window (e.g. the first decode step
#: frees the prefill's activations, so its running gauges are not yet on the line).
WARMUP = 2
#: Fields that are not per-op costs but running gauges of the whole run.
GAUGES = frozenset({"live_bytes"})
#: Fields rewritten for synthesized rows rather than predicted.
_POSITION = frozenset({"seq", "step"})
_DIGITS = re.compile(r"(-?\d+)")


def active_recorder(run: Runner) -> Any | None:
    """The analytic recorder capturing for ``run`` (its ``rows`` list), or None."""
    for mode in _get_current_dispatch_mode_stack():
        rec = getattr(mode, "rec", None)
        if rec is not None and getattr(rec, "runner", None) is run and hasattr(rec, "add_block"):
            return rec
    return None


@contextmanager
def scratch(rec: Any | None) -> Iterator[None]:
    """Run code whose ops must not appear in the trace (they are recorded, then dropped)."""
    start = len(rec.rows) if rec is not None else 0
    try:
        yield
    finally:
        if rec is not None:
            del rec.rows[start:]


def filled_cache(
    layers: int, shape: tuple[int, int, int, int], dtype: Any, device: Any
) -> DynamicCache:
    """A DynamicCache holding ``shape`` = (rows, kv_heads, length, head_dim) keys and values in
    each of ``layers`` layers, as a prefill of that length leaves it (for probe states: filling
    it costs a few allocations where a prefill costs a whole forward)."""
    cache = DynamicCache()
    for layer in range(layers):
        cache.update(
            torch.empty(shape, dtype=dtype, device=device),
            torch.empty(shape, dtype=dtype, device=device),
            layer,
        )
    return cache


# ------------------------------------------------------------------------------ affine model
@dataclass(frozen=True)
class _Field:
    """One row field as a function of ``k`` = steps after the first fitted step: a constant, an
    affine integer, or a string whose varying integers are affine (the others baked into
    ``fmt``)."""

    const: Any = None
    linear: tuple[tuple[int, int], ...] = ()  # (value at k = 0, change per step), delta != 0
    fmt: str | None = None  # strings: the text with "{}" where the varying integers go

    @property
    def varies(self) -> bool:
        return bool(self.linear)

    def at(self, k: int) -> Any:
        if not self.linear:
            return self.const
        if self.fmt is None:
            base, delta = self.linear[0]
            return base + k * delta
        return self.fmt.format(*[base + k * delta for base, delta in self.linear])


def _affine(values: list[int]) -> tuple[int, int] | None:
    d = values[1] - values[0]
    return (values[0], d) if all(b - a == d for a, b in itertools.pairwise(values)) else None


def _fit_field(values: list[Any]) -> _Field | None:
    if all(v == values[0] and type(v) is type(values[0]) for v in values):
        return _Field(const=values[0])
    if all(type(v) is int for v in values):
        fit = _affine(values)
        return None if fit is None else _Field(linear=(fit,))
    if all(isinstance(v, str) for v in values):
        parts = [_DIGITS.split(v) for v in values]
        if len({tuple(p[0::2]) for p in parts}) != 1:
            return None  # different layout (rank, separators)
        fmt, linear = [], []
        for j, text in enumerate(parts[0]):
            if j % 2 == 0:
                fmt.append(text.replace("{", "{{").replace("}", "}}"))
                continue
            fit = _affine([int(p[j]) for p in parts])
            if fit is None:
                return None
            if fit[1]:
                fmt.append("{}")
                linear.append(fit)
            else:
                fmt.append(str(fit[0]))
        return _Field(linear=tuple(linear), fmt="".join(fmt))
    return None


@dataclass
class AffineSteps:
    """Rows of one decode step as exact affine functions of the step index."""

    first: int  # step index of k = 0
    rows: list[dict[str, _Field]]

    @classmethod
    def fit(cls, first: int, blocks: list[list[dict[str, Any]]]) -> AffineSteps | None:
        if len(blocks) < 3 or len({len(b) for b in blocks}) != 1:
            return None
        template = []
        for aligned in zip(*blocks, strict=True):
            if len({frozenset(r) for r in aligned}) != 1:
                return None
            fields = {}
            for key in aligned[0]:
                if key in _POSITION:
                    continue
                fitted = _fit_field([r[key] for r in aligned])
                if fitted is None:
                    return None
                fields[key] = fitted
            template.append(fields)
        return cls(first, template)

    def row(self, fields: dict[str, _Field], step: int) -> dict[str, Any]:
        return {key: f.at(step - self.first) for key, f in fields.items()}

    def matches(self, rows: list[dict[str, Any]], step: int) -> bool:
        """True if traced ``rows`` of ``step`` equal the prediction (gauges excepted)."""
        if len(rows) != len(self.rows):
            return False
        for fields, got in zip(self.rows, rows, strict=True):
            if set(got) - _POSITION != set(fields) or got.get("step") != step:
                return False
            for key, f in fields.items():
                if key not in GAUGES and got[key] != f.at(step - self.first):
                    return False
        return True

    def synthesize(self, steps: range, seq: int) -> tuple[list[dict[str, Any]], pd.DataFrame]:
        """Rows for ``steps`` (consecutive), numbered from ``seq``: the first step's block as
        row dicts (constant rows once, with count x len(steps)), then the changing rows of
        every later step as one column-wise table (there may be a million of them)."""
        n, first, last = len(steps), steps.start - self.first, steps[-1] - self.first
        head: list[dict[str, Any]] = []  # the block of the first synthesized step
        changing: list[tuple[dict[str, Any], list[tuple[str, _Field]]]] = []
        for fields in self.rows:
            row = self.row(fields, steps.start)
            varying = [(k, f) for k, f in fields.items() if f.varies]
            if any(k not in GAUGES for k, _ in varying):
                changing.append((row, varying))
            else:  # stands for every synthesized step
                row["count"] = row["count"] * n
                for key, f in varying:  # gauges only: their maximum over the steps
                    row[key] = max(f.at(first), f.at(last))
            row["step"] = steps.start
            head.append(row)
        for i, row in enumerate(head):
            row["seq"] = seq + i
        return head, _later_steps(changing, steps, self.first, seq + len(head))


def _later_steps(
    changing: list[tuple[dict[str, Any], list[tuple[str, _Field]]]],
    steps: range,
    origin: int,
    seq: int,
) -> pd.DataFrame:
    """The changing rows of ``steps[1:]``, step-major, as columns built with numpy."""
    later = np.arange(steps.start + 1, steps.stop, dtype=np.int64)
    n, m = len(later), len(changing)
    if n == 0 or m == 0:
        return pd.DataFrame()
    k = later - origin
    columns: dict[str, np.ndarray] = {}
    for j, (base, varying) in enumerate(changing):
        values = dict(base)
        for key, f in varying:
            values[key] = _field_values(f, k)
        for key, value in values.items():
            if key not in columns:
                columns[key] = np.full((n, m), None, dtype=object)
            columns[key][:, j] = value
    columns["step"] = np.repeat(later, m).reshape(n, m)
    columns["seq"] = np.arange(seq, seq + n * m, dtype=np.int64).reshape(n, m)
    return pd.DataFrame({key: col.reshape(-1) for key, col in columns.items()})


def _field_values(f: _Field, k: np.ndarray) -> np.ndarray:
    """``f.at(k)`` for every ``k`` at once (ints exact in int64; strings assembled in numpy)."""
    ints = [base + k * delta for base, delta in f.linear]
    if f.fmt is None:
        return ints[0]
    parts = f.fmt.split("{}")
    if any("{" in p or "}" in p for p in parts):  # escaped braces: let str.format unescape
        return np.array([f.fmt.format(*v) for v in zip(*ints, strict=True)], dtype=object)
    out = np.full(len(k), parts[0], dtype=object)
    for values, part in zip(ints, parts[1:], strict=True):
        out = out + values.astype(str).astype(object) + part
    return out


# ------------------------------------------------------------------------------ the loop
@dataclass
class LoopReport:
    """How a decode loop was captured: ``traced`` (every step), ``extrapolated``, or
    ``fallback`` (the check failed; every step traced) with the reason."""

    mode: str
    traced: list[int]
    synthesized: int = 0
    reason: str = ""


@dataclass
class DecodeLoop(Generic[S]):
    """``step(i, state)`` runs decode step ``i`` in place on ``state``; ``fresh(i)`` returns a new
    state as it would be just before step ``i`` (only called for the probe, in scratch)."""

    run: Runner
    component: str
    step: Callable[[int, S], None]
    fresh: Callable[[int], S] | None = None
    device: str = "cpu"
    phase: str = "decode"

    def _traced(self, i: int, state: S) -> None:
        with self.run.phase(self.component, self.phase, step=i):
            self.step(i, state)

    def __call__(self, steps: range, state: S) -> LoopReport:
        rec = active_recorder(self.run)
        eligible = (
            rec is not None
            and self.run.collapse
            and str(self.device) == "meta"
            and self.fresh is not None
            and steps.step == 1
            and len(steps) >= TRACED + WARMUP + 2
        )
        if not eligible:
            for i in steps:
                self._traced(i, state)
            return LoopReport("traced", list(steps))
        blocks: list[list[dict[str, Any]]] = []
        model = None
        for n, i in enumerate(steps[: TRACED + WARMUP], start=1):
            start = len(rec.rows)
            self._traced(i, state)
            blocks.append(rec.rows[start:])
            if n >= TRACED:
                model = AffineSteps.fit(i - TRACED + 1, blocks[-TRACED:])
                if model is not None:
                    break
        traced = steps[: len(blocks)]
        rest = steps[len(blocks) :]
        reason = "rows are not affine in the step" if model is None else ""
        if model is not None:
            last = steps[-1]
            with scratch(rec):
                probe_state = self.fresh(last)  # type: ignore[misc]
                start = len(rec.rows)
                self._traced(last, probe_state)
                probe = rec.rows[start:]
                del probe_state
                gc.collect()  # free the probe's tensors now, so later gauges are unaffected
            if model.matches(probe, last):
                head, later = model.synthesize(rest, rec.next_seq())
                rec.rows.extend(head)
                rec.add_block(later)
                return LoopReport("extrapolated", list(traced), len(rest))
            reason = f"probe of step {last} differs from the affine prediction"
        for i in rest:
            self._traced(i, state)
        return LoopReport("fallback", list(steps), reason=reason)
