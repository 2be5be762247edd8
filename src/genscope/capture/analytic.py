"""Analytic capture: record every aten op of a run as one op-event row.

Two modes work together:

* :class:`_RecordOps`, a ``TorchDispatchMode``, sees every aten op with its real shapes — on
  ``meta`` tensors (full-size models, no memory) or on real tensors — and appends one row.
* :class:`_RecordSDPA`, a ``TorchFunctionMode``, sees ``F.scaled_dot_product_attention`` before
  it is lowered. On ``meta`` (and on some backends) SDPA decomposes into bmm/softmax/bmm, so the
  function-level view is the only place to record "one fused attention call". Ops it lowers to
  are folded into that single row.

The math attention path (bmm/baddbmm → softmax → bmm inside an attention module) is labelled
attention op by op; :func:`genscope.costmodel.taxonomy.categorize` decides categories.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from genscope.capture.attention_impl import Attention, math_sdpa, sdpa_arguments
from genscope.capture.context import INFER, AxisRules, Runner
from genscope.capture.labels import Lineage, ShapeHints
from genscope.capture.meta_cache import MetaOpCache
from genscope.capture.modules import Frame, ModuleStack
from genscope.costmodel.ops import TensorMeta, cost_of, sdpa_cost
from genscope.costmodel.taxonomy import SDPA_NAMES, categorize, is_attention_module
from genscope.dtypes import dtype_name
from genscope.schema import events_frame

_CROSS_PATH_HINTS = (
    "attn2",
    "encoder_attn",
    "cross_attn",
    "cross_attention",
    "crossattention",
    "encdecattention",
)
_SOFTMAX = frozenset({"_softmax", "softmax", "_safe_softmax"})
_GEMM = frozenset({"bmm", "baddbmm"})


def _meta(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return TensorMeta.of(x)
    if isinstance(x, list | tuple):
        return type(x)(_meta(i) for i in x) if isinstance(x, list) else tuple(_meta(i) for i in x)
    return x


def _shapes(x: Any) -> str:
    if isinstance(x, TensorMeta):
        return "[" + ",".join(map(str, x.shape)) + "]"
    if isinstance(x, list | tuple):
        return ";".join(s for s in (_shapes(i) for i in x) if s)
    return ""


def _heads_of(module: torch.nn.Module) -> int | None:
    for attr in ("heads", "num_heads", "n_heads", "num_attention_heads", "n_head"):
        value = getattr(module, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    config = getattr(module, "config", None)
    value = getattr(config, "num_attention_heads", None)
    return value if isinstance(value, int) else None


def attention_kind(frame: Frame | None) -> str:
    """self or cross, from the module's own flag or its conventional name."""
    if frame is None:
        return "self"
    flag = getattr(frame.module, "is_cross_attention", None)
    if isinstance(flag, bool):
        return "cross" if flag else "self"
    path = frame.path.lower()
    return "cross" if any(h in path for h in _CROSS_PATH_HINTS) else "self"


class Recorder:
    """Accumulates op-event rows for one run; shared by the dispatch and function modes."""

    def __init__(self, runner: Runner, axes: AxisRules) -> None:
        self.runner = runner
        self.axes = axes
        #: bring-your-own models (:func:`genscope.trace`): labels inferred from shapes and
        #: lineage (:mod:`genscope.capture.labels`); ``None`` for suite workloads
        self.hints: ShapeHints | None = None
        self.lineage: Lineage | None = None
        self.modules = ModuleStack()
        self.rows: list[dict[str, Any]] = []
        self.blocks: list[pd.DataFrame] = []  # rows written in bulk (synthesized decode steps)
        self._block_rows = 0
        self.sdpa_depth = 0
        self.sdpa_backend_op: str | None = None
        self.forced_attention = 0  # >0 while running the math baseline in place of SDPA
        self.live_bytes = 0  # bytes of op outputs still alive (activation memory)
        self._tracked: set[int] = set()  # ids of live tracked tensors

    def track_outputs(self, out: Any) -> int:
        """Count fresh op outputs as live until Python frees them; return live bytes now.

        Views share their base's storage and in-place ops return an input, so only tensors
        that own new storage are counted. Freed tensors are subtracted by a finalizer.
        """
        for t in out if isinstance(out, list | tuple) else (out,):
            if not isinstance(t, torch.Tensor) or t._base is not None or id(t) in self._tracked:
                continue
            nbytes = t.numel() * t.element_size()
            self._tracked.add(id(t))
            self.live_bytes += nbytes
            weakref.finalize(t, self._free, id(t), nbytes)
        return self.live_bytes

    def _free(self, key: int, nbytes: int) -> None:
        self._tracked.discard(key)
        self.live_bytes -= nbytes

    # -- rows -------------------------------------------------------------------------------
    def next_seq(self) -> int:
        return len(self.rows) + self._block_rows

    def add_block(self, block: pd.DataFrame) -> None:
        """Add rows already numbered from :meth:`next_seq` (they follow every row so far)."""
        self.blocks.append(block)
        self._block_rows += len(block)

    def table(self) -> pd.DataFrame:
        """Every row, in ``seq`` order, as an op-event table (dtypes enforced once)."""
        blocks = [b for b in self.blocks if len(b)]
        if not blocks:
            return events_frame(self.rows)
        merged = pd.concat([pd.DataFrame.from_records(self.rows), *blocks], ignore_index=True)
        return events_frame(merged.sort_values("seq", kind="stable"))

    def _base(self, frame: Frame | None) -> dict[str, Any]:
        w = self.runner.where
        return {
            "seq": self.next_seq(),
            "component": w.component or (frame.component if frame else ""),
            "step": w.step,
            "phase": w.phase,
            "module_path": frame.path if frame else "",
            "module_type": frame.type_name if frame else "",
            "count": w.count,
        }

    def _attention_labels(
        self, frame: Frame | None, dims: dict[str, Any], q: Any = None, k: Any = None
    ) -> dict[str, Any]:
        """attn_kind and attn_axis of one attention row (``q``/``k``: the call's tensors)."""
        component = self.runner.where.component or (frame.component if frame else "")
        axis = self.axes.axis(component, frame.path if frame else "")
        if self.lineage is None:  # suite workloads: declared axes, kind from module name/flag
            return {"attn_kind": attention_kind(frame), "attn_axis": axis}
        if axis == INFER:
            axis = (
                self.hints.axis(dims.get("batch"), dims.get("q_len")) if self.hints else "unknown"
            )
        flag = getattr(frame.module, "is_cross_attention", None) if frame is not None else None
        if isinstance(flag, bool):
            kind = "cross" if flag else "self"
        elif q is None and frame is not None and "attn_kind" in frame.extra:
            kind = frame.extra["attn_kind"]  # P·V: the kind its Q·Kᵀ found
        else:
            kind = self.lineage.kind(q, k, dims.get("q_len"), dims.get("kv_len"))
            if frame is not None:
                frame.extra["attn_kind"] = kind
        return {"attn_kind": kind, "attn_axis": axis}

    def record_op(self, func: torch._ops.OpOverload, args: Any, kwargs: Any, out: Any) -> None:
        frame = self.modules.top
        margs, mkwargs, mout = _meta(args), {k: _meta(v) for k, v in kwargs.items()}, _meta(out)
        cost = cost_of(func, margs, mkwargs, mout)
        module_type = frame.type_name if frame else ""
        category = categorize(func, module_type)
        if self.forced_attention and func.overloadpacket.__name__ in _SOFTMAX | _GEMM:
            category = "attention"
        row = self._base(frame)
        row.update(
            op=str(func),
            category=category,
            input_shapes=_shapes(margs),
            output_shapes=_shapes(mout),
            dtype=_dtype_of(margs, mout),
            unit=cost.unit,
            flops=cost.flops,
            bytes_read=cost.bytes_read,
            bytes_written=cost.bytes_written,
            live_bytes=self.track_outputs(out),
        )
        if category == "attention":
            q, k = _query_key(func, args)
            dims = self._math_attention_dims(func, margs, frame) or _sdpa_op_dims(func, margs)
            row.update(self._attention_labels(frame, dims, q, k))
            row.update(dims)
        if self.lineage is not None:
            self.lineage.record((args, kwargs), out)
        self.rows.append(row)

    def _math_attention_dims(self, func: Any, args: Any, frame: Frame | None) -> dict[str, Any]:
        """q/kv lengths of one op on the math path; Q·Kᵀ before the softmax, P·V after it."""
        name = func.overloadpacket.__name__
        if name in _SOFTMAX:
            x = args[0].shape
            if frame is not None:
                frame.softmax_seen = True
            q_len, kv_len, head_dim, bh = x[-2], x[-1], None, math.prod(x[:-2])
        elif name in _GEMM:
            a, b = (args[1], args[2]) if name == "baddbmm" else (args[0], args[1])
            # P·V follows Q·Kᵀ, with a softmax between (or none: HSTU's pointwise attention)
            if frame is not None and (frame.softmax_seen or frame.extra.get("qk_done")):
                q_len, kv_len, head_dim = a.shape[-2], a.shape[-1], b.shape[-1]
                frame.softmax_seen = False
                frame.extra["qk_done"] = False
            else:  # Q·Kᵀ: a = Q (BH, Lq, d), b = Kᵀ (BH, d, Lk)
                q_len, kv_len, head_dim = a.shape[-2], b.shape[-1], a.shape[-1]
                if frame is not None:
                    frame.extra["qk_done"] = True
            bh = math.prod(a.shape[:-2])
        else:
            return {}
        heads = _heads_of(frame.module) if frame is not None else None
        if heads is None or bh % heads:
            heads = None
        return {
            "q_len": q_len,
            "kv_len": kv_len,
            "head_dim": head_dim,
            "heads": heads,
            "batch": bh // heads if heads else bh,
        }

    def record_sdpa(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Any, out: Any
    ) -> None:
        frame = self.modules.top
        mq, mk, mv = TensorMeta.of(q), TensorMeta.of(k), TensorMeta.of(v)
        mmask = TensorMeta.of(mask) if isinstance(mask, torch.Tensor) else None
        cost = sdpa_cost(mq, mk, mv, mmask)
        heads = q.shape[-3] if q.dim() >= 4 else 1
        batch = math.prod(q.shape[:-3]) if q.dim() >= 4 else math.prod(q.shape[:-2])
        dims = {"batch": batch, "q_len": q.shape[-2], "kv_len": k.shape[-2]}
        row = self._base(frame)
        row.update(
            op=self.sdpa_backend_op or "aten.scaled_dot_product_attention",
            category="attention",
            input_shapes=_shapes((mq, mk, mv, mmask) if mmask else (mq, mk, mv)),
            output_shapes="[" + ",".join(map(str, (*q.shape[:-1], v.shape[-1]))) + "]",
            dtype=dtype_name(q.dtype),
            unit=cost.unit,
            flops=cost.flops,
            bytes_read=cost.bytes_read,
            bytes_written=cost.bytes_written,
            q_len=q.shape[-2],
            kv_len=k.shape[-2],
            head_dim=q.shape[-1],
            heads=heads,
            batch=batch,
            live_bytes=self.track_outputs(out),
            **self._attention_labels(frame, dims, q, k),
        )
        if self.lineage is not None:
            self.lineage.record((q, k, v, mask), out)
        self.rows.append(row)


def _query_key(func: Any, args: Any) -> tuple[Any, Any]:
    """The query-side and key-side tensors of an attention op (for lineage), if it has them."""
    name = func.overloadpacket.__name__
    if name == "baddbmm" and len(args) > 2:
        return args[1], args[2]
    if (name in _GEMM or name in SDPA_NAMES) and len(args) > 1:
        return args[0], args[1]
    return None, None


def _sdpa_op_dims(func: Any, args: Any) -> dict[str, Any]:
    """q/kv lengths, heads, head_dim and batch of an aten SDPA op from its (q, k, v) arguments.

    ``nn.MultiheadAttention`` reaches SDPA below the function level, so its rows are only seen
    here; the layout is the same as ``F.scaled_dot_product_attention``'s, (..., H, L, d).
    """
    if func.overloadpacket.__name__ not in SDPA_NAMES or len(args) < 2:
        return {}
    q, k = args[0], args[1]
    if not isinstance(q, TensorMeta) or not isinstance(k, TensorMeta) or len(q.shape) < 3:
        return {}
    four_d = len(q.shape) >= 4
    return {
        "q_len": q.shape[-2],
        "kv_len": k.shape[-2],
        "head_dim": q.shape[-1],
        "heads": q.shape[-3] if four_d else 1,
        "batch": math.prod(q.shape[:-3]) if four_d else math.prod(q.shape[:-2]),
    }


def _dtype_of(args: Any, out: Any) -> str:
    for x in (*(out if isinstance(out, tuple | list) else (out,)), *args):
        if isinstance(x, TensorMeta) and x.dtype.is_floating_point:
            return dtype_name(x.dtype)
    return ""


class _RecordOps(TorchDispatchMode):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.rec = recorder
        self.meta_ops = MetaOpCache()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        out = self.meta_ops.run(func, args, kwargs)
        if self.rec.sdpa_depth:
            name = func.overloadpacket.__name__
            if name in SDPA_NAMES and self.rec.sdpa_backend_op is None:
                self.rec.sdpa_backend_op = str(func)
            return out
        self.rec.record_op(func, args, kwargs, out)
        return out


class _RecordSDPA(TorchFunctionMode):
    """Records fused SDPA calls (``flash``) or swaps them for the math baseline (``math``)."""

    def __init__(self, recorder: Recorder, attention: Attention) -> None:
        super().__init__()
        self.rec = recorder
        self.attention = attention

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention or self.rec.sdpa_depth:
            return func(*args, **kwargs)
        if self.attention == "math":
            self.rec.forced_attention += 1
            try:
                return math_sdpa(*args, **kwargs)
            finally:
                self.rec.forced_attention -= 1
        self.rec.sdpa_depth += 1
        self.rec.sdpa_backend_op = None
        try:
            out = func(*args, **kwargs)
        finally:
            self.rec.sdpa_depth -= 1
        a = sdpa_arguments(args, kwargs)  # diffusers' dispatch passes everything by keyword
        self.rec.record_sdpa(a["query"], a["key"], a["value"], a.get("attn_mask"), out)
        return out


class AnalyticCapture:
    """Context manager that records op-event rows for everything run inside it."""

    def __init__(
        self, runner: Runner, axes: AxisRules | None = None, attention: Attention = "flash"
    ) -> None:
        self.recorder = Recorder(runner, axes or AxisRules())
        self.attention = attention
        self._modes: list[Any] = []

    def name_component(self, component: str, module: torch.nn.Module) -> None:
        self.recorder.modules.name_modules(module, component)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Rows recorded one by one (bulk-written rows are in :meth:`table` only)."""
        return self.recorder.rows

    def table(self) -> pd.DataFrame:
        return self.recorder.table()

    def __enter__(self) -> AnalyticCapture:
        self.recorder.modules.__enter__()
        self._modes = [_RecordSDPA(self.recorder, self.attention), _RecordOps(self.recorder)]
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
        self.recorder.modules.__exit__(*exc)


def is_attention_frame(frame: Frame | None) -> bool:
    return frame is not None and is_attention_module(frame.type_name)
