"""The calibrated CPU op model's prediction: per-shape-class op-time curves plus framework
overhead per op, measured on this machine by :mod:`genscope.measure.opmodel_calibration`.

A run is predicted as ``Σ_ops T(op) + Σ_ops overhead(library of the op's component)``:

* ``gemm``: ``max(T_gemm(flops), T_vector(bytes))``, with the component's library's reference
  price for the packet, where there is one, replacing the curve's floor;
* ``conv1`` / ``conv3n`` / ``conv3`` (1×1, native k×k, oneDNN k×k; :func:`conv_class`):
  ``T_conv(flops)``, plus ``T_weight(weight bytes)`` above its floor for oneDNN k×k calls;
* ``sdpa``: ``c0 + c_s · scores + c_f · flops + c_b · batch·heads``;
* ``norm``: ``T_norm(bytes)``;
* ``vector`` / ``view``: a per-op fixed cost (per library where its reference code issues the
  op) plus the size-dependent part of ``T_vector(bytes)``.

Curves interpolate log-log between points (constant below the first, linear in work above the
last). The model is stored per ``<dtype>/threads=<n>`` in ``extra["op_model"]`` of the
``cpu-local`` spec; ``docs/validation.md`` says how each figure is measured.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from genscope.costmodel.taxonomy import CONV_OPS, NORM_OPS, SDPA_NAMES
from genscope.dtypes import ITEMSIZE
from genscope.schema import parse_shapes

#: The stored model's format and method; a stored model of another version is re-measured on
#: first use (docs/history/op-model.md lists the versions).
OP_MODEL_VERSION = 9
GEMM_NAMES = frozenset({"mm", "addmm", "bmm", "baddbmm", "matmul", "addbmm", "dot", "linear"})


@dataclass
class Curve:
    """Seconds as a function of work, log-log interpolated between measured points.

    Below the smallest point the time is the smallest point's (a fixed cost); above the
    largest it grows linearly with work at the largest point's rate.
    """

    work: list[float]
    seconds: list[float]

    def __call__(self, w: np.ndarray | float) -> np.ndarray:
        x = np.log(np.maximum(np.asarray(w, dtype=float), 1.0))
        xs, ys = np.log(self.work), np.log(self.seconds)
        y = np.interp(x, xs, ys)
        above = x > xs[-1]
        y = np.where(above, ys[-1] + (x - xs[-1]), y)  # linear in work beyond the last point
        return np.exp(y)


@dataclass
class LinearFit:
    """``seconds = c0 + Σ c_i · x_i`` with non-negative coefficients (least squares).

    Used for fused attention, whose CPU time depends on the score count (softmax work,
    ``batch·heads·Lq·Lkv``) as much as on FLOPs (``4·scores·head_dim``): tiny head dims run
    far below the FLOP rate a curve on FLOPs alone would assume. The third feature is the
    number of (batch, head) slices: the CPU flash kernel sets up every slice, which dominates
    temporal attention (thousands of slices of 4–16 frames: a [128, 4, 4, 8] call takes
    ~0.5 ms, 8x what scores and FLOPs alone predict).
    """

    coef: list[float]  # [c0, c_scores, c_flops, c_slices]
    points: list[list[float]] = field(default_factory=list)  # [scores, flops, slices, seconds]

    @classmethod
    def fit(cls, xs: list[tuple[float, float, float]], seconds: list[float]) -> LinearFit:
        from scipy.optimize import nnls

        a = np.array([[1.0, *x] for x in xs])
        y = np.array(seconds)
        # relative error matters (tiny and huge problems alike): weight rows by 1/y
        coef, _ = nnls(a / y[:, None], np.ones_like(y))
        return cls(list(map(float, coef)), [[*x, t] for x, t in zip(xs, seconds, strict=True)])

    def __call__(
        self, scores: np.ndarray, flops: np.ndarray, slices: np.ndarray | float = 0.0
    ) -> np.ndarray:
        c0, cs, cf, cb = self.coef
        return (
            c0
            + cs * np.asarray(scores, dtype=float)
            + cf * np.asarray(flops, dtype=float)
            + cb * np.asarray(slices, dtype=float)
        )


@dataclass
class OpModel:
    """Per-class time curves + per-op framework overhead, measured on this machine."""

    dtype: str
    threads: int
    curves: dict[str, Curve]
    sdpa: LinearFit
    fixed_s: dict[str, float]
    view_s: float
    overhead_per_op_s: float
    #: framework overhead per op of each model library's reference code (``diffusers``,
    #: ``transformers``); ``overhead_per_op_s`` (their mean) prices other components
    overhead_by_library: dict[str, float] = field(default_factory=dict)
    #: per library, the fixed cost of every op packet its reference code issues, as timed
    #: inside that code (see :func:`_reference_loops`); for that library's components it
    #: replaces ``fixed_s`` (views, vector ops) and the GEMM curve's floor
    fixed_by_library: dict[str, dict[str, float]] = field(default_factory=dict)
    device: str = "cpu"
    created: str = ""
    calibration_s: float = 0.0
    contention: dict[str, Any] = field(default_factory=dict)
    #: the machine-state probe's time in the reference state all figures are given in (see
    #: :mod:`genscope.machine.state`); measured runs compare their probes with it
    state_probe_s: float = math.nan
    #: the state factor of every timing of the calibration (1 = the reference state)
    state_factors: list[float] = field(default_factory=list)
    #: code runs ``factor ** state_exponent`` slower than in the reference state (see
    #: :func:`genscope.machine.state.fit_exponent`), and how that was obtained
    state_exponent: float = 1.0
    state_exponent_source: str = ""
    version: int = OP_MODEL_VERSION

    @property
    def key(self) -> str:
        return op_model_key(self.dtype, self.threads)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["curves"] = {k: {"work": c.work, "seconds": c.seconds} for k, c in self.curves.items()}
        d["sdpa"] = {"coef": self.sdpa.coef, "points": self.sdpa.points}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OpModel:
        d = dict(d)
        d["curves"] = {
            k: Curve(list(v["work"]), list(v["seconds"])) for k, v in d["curves"].items()
        }
        d["sdpa"] = LinearFit(list(d["sdpa"]["coef"]), list(d["sdpa"].get("points", [])))
        d["fixed_s"] = dict(d.get("fixed_s") or {})
        return cls(**d)

    # -- prediction ------------------------------------------------------------------------
    def _fixed(self, name: str, library: str | None, default: float) -> float:
        own = self.fixed_by_library.get(library or "", {})
        return own.get(name, self.fixed_s.get(name, default))

    def predict_ops(
        self, events: pd.DataFrame, libraries: dict[str, str] | None = None
    ) -> pd.Series:
        """Predicted seconds per single op (not multiplied by ``count``); ``libraries`` maps
        a component to its model library, whose reference-code prices its small ops get."""
        classes = op_classes(events, self.threads)
        names = events["op"].astype(str).map(packet_name).to_numpy()
        libs = events["component"].astype(str).map(libraries or {}).to_numpy()
        flops = events["flops"].astype(float).to_numpy()
        nbytes = (events["bytes_read"] + events["bytes_written"]).astype(float).to_numpy()
        out = np.zeros(len(events))
        for cls_name in np.unique(classes):
            idx = classes == cls_name
            if cls_name in ("view", "vector"):
                base = self.curves["vector"]
                floor = float(base(base.work[0]))
                default = self.view_s if cls_name == "view" else floor
                fixed = np.array(
                    [
                        self._fixed(n, lib, default)
                        for n, lib in zip(names[idx], libs[idx], strict=True)
                    ]
                )
                if cls_name == "view":
                    out[idx] = fixed
                else:  # fixed cost + the size-dependent part of the vector curve
                    out[idx] = fixed + np.maximum(0.0, base(nbytes[idx]) - floor)
            elif cls_name == "gemm":
                gemm = self.curves["gemm"]
                t = np.maximum(gemm(flops[idx]), self.curves["vector"](nbytes[idx]))
                # a library's reference price replaces the curve's fixed cost (its floor)
                floor = gemm.seconds[0]
                own = np.array(
                    [
                        self._fixed(n, lib, floor)
                        for n, lib in zip(names[idx], libs[idx], strict=True)
                    ]
                )
                out[idx] = own + np.maximum(0.0, t - floor)
            elif cls_name in ("conv1", "conv3n"):
                out[idx] = self.curves[cls_name](flops[idx])
            elif cls_name == "conv3":  # FLOPs, plus oneDNN's per-call weight handling
                weights = self.curves["conv_weight"]
                wbytes = np.array(
                    [
                        _weight_bytes(shapes, dtype)
                        for shapes, dtype in zip(
                            events.loc[idx, "input_shapes"],
                            events.loc[idx, "dtype"].fillna("fp32").astype(str),
                            strict=True,
                        )
                    ]
                )
                out[idx] = self.curves["conv3"](flops[idx]) + np.maximum(
                    0.0, weights(wbytes) - weights.seconds[0]
                )
            elif cls_name == "sdpa":
                sub = events.loc[idx]
                slices = (
                    sub["batch"].astype("float64").fillna(1.0)
                    * sub["heads"].astype("float64").fillna(1.0)
                ).to_numpy()
                scores = (
                    slices
                    * sub["q_len"].astype("float64").fillna(1.0).to_numpy()
                    * sub["kv_len"].astype("float64").fillna(1.0).to_numpy()
                )
                out[idx] = self.sdpa(scores, flops[idx], slices)
            elif cls_name == "norm":
                out[idx] = self.curves["norm"](nbytes[idx])
        return pd.Series(out, index=events.index, name="calibrated_s")

    def overhead_s(self, events: pd.DataFrame, libraries: dict[str, str] | None = None) -> float:
        """Framework overhead the run is predicted to spend between ops; ``libraries`` maps a
        component to the library its model class comes from (each prices its ops at its own
        rate)."""
        rate = (
            events["component"]
            .astype(str)
            .map(lambda c: self.overhead_by_library.get((libraries or {}).get(c, "")))
            .astype(float)
            .fillna(self.overhead_per_op_s)
        )
        return float((events["count"].astype(float) * rate).sum())


def op_model_key(dtype: str, threads: int) -> str:
    return f"{dtype}/threads={threads}"


def packet_name(op: str) -> str:
    """``aten.mm.default`` → ``mm``: the op packet an op overload belongs to."""
    parts = op.replace("::", ".").split(".")
    return parts[1] if len(parts) > 1 else op


#: Largest batch-1 input (elements) PyTorch still convolves with its native im2col + GEMM path
#: rather than oneDNN ("for some case, native is faster": ``ConvParams::use_mkldnn`` in
#: aten/src/ATen/native/Convolution.cpp).
NATIVE_CONV_MAX_NUMEL = 20480


def _weight_bytes(input_shapes: str, dtype: str) -> float:
    """Bytes of a convolution row's weight (its second input)."""
    shapes = parse_shapes(input_shapes)
    if len(shapes) < 2:
        return 0.0
    size = ITEMSIZE.get(dtype, 4)
    return float(math.prod(shapes[1]) * size)


def conv_class(input_shapes: str, dtype: str = "fp32", threads: int = 1) -> str:
    """``conv1`` (1×1 kernel), ``conv3n`` (k×k on PyTorch's native im2col/vol2col + GEMM
    path) or ``conv3`` (k×k on oneDNN) for one convolution row.

    The two paths differ several-fold in fixed cost on a CPU (a batch-1 [1,16,8,8] 3×3 call
    ~20 µs native, the same call at batch 2 ~90 µs in oneDNN here), so each has its own
    curve. The rule is PyTorch's own choice for fp32 CPU tensors (``ConvParams::use_mkldnn``
    in aten/src/ATen/native/Convolution.cpp; bf16 and fp16 go to oneDNN where the CPU supports
    them, see :func:`onednn_takes`, else natively): oneDNN
    when (a) the batch is at least 16, or the kernel's last two dims are not both 1, or more
    than one thread runs, and (b) the call is grouped, or the last two kernel dims both exceed
    3, or the batch is above 1, or the input has more than 20480 elements. A temporal
    (3, 1, 1) video convolution at batch 2 on one thread fails (a) and runs natively. Strides
    and dilations, which also satisfy (a), are not in the row, so a strided 1×1-like kernel
    is taken as native. ``tests/test_validate.py`` checks the rule against the installed
    torch.
    """
    shapes = parse_shapes(input_shapes)
    if len(shapes) < 2 or len(shapes[1]) < 3:
        return "conv3"
    x, w = shapes[0], shapes[1]
    if max(w[2:]) <= 1:
        return "conv1"
    groups = x[1] // w[1] if len(x) > 1 and w[1] else 1
    last_two = w[-2:] if len(w) >= 4 else [1, *w[-1:]]
    a = x[0] >= 16 or any(k != 1 for k in last_two) or threads > 1
    b = (
        groups > 1
        or all(k > 3 for k in last_two)
        or x[0] > 1
        or math.prod(x) > NATIVE_CONV_MAX_NUMEL
    )
    if dtype != "fp32":
        return "conv3" if onednn_takes(dtype) else "conv3n"
    return "conv3" if a and b else "conv3n"


@functools.cache
def onednn_takes(dtype: str) -> bool:
    """Whether this CPU's oneDNN runs ``dtype`` convolutions at all: PyTorch sends bf16/fp16 ones
    to oneDNN only where the CPU has the instructions (``mkldnn_bf16_device_check``: AVX-512
    BF16 or AMX), else to its native path."""
    if dtype == "bf16":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if dtype == "fp16":
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    return True


def op_classes(events: pd.DataFrame, threads: int = 1) -> np.ndarray:
    """The shape class of every row: view, gemm, conv1, conv3, conv3n, sdpa, norm or vector
    (``threads``: the intra-op threads the run uses, which pick a convolution's path)."""
    names = events["op"].astype(str).map(packet_name)
    unit = events["unit"].astype(str)
    out = np.full(len(events), "vector", dtype=object)
    out[(unit == "none").to_numpy()] = "view"
    out[names.isin(GEMM_NAMES).to_numpy() & (unit != "none").to_numpy()] = "gemm"
    out[names.isin(NORM_OPS).to_numpy()] = "norm"
    out[names.isin(SDPA_NAMES).to_numpy()] = "sdpa"
    conv = names.isin(CONV_OPS).to_numpy()
    if conv.any():
        rows = events.loc[conv]
        out[np.flatnonzero(conv)] = [
            conv_class(shapes, dtype, threads)
            for shapes, dtype in zip(
                rows["input_shapes"], rows["dtype"].fillna("fp32").astype(str), strict=True
            )
        ]
    return out


def stored_op_model(spec: Any, dtype: str, threads: int) -> OpModel | None:
    raw = (spec.extra or {}).get("op_model", {}).get(op_model_key(dtype, threads))
    if not raw or raw.get("version") != OP_MODEL_VERSION:
        return None
    return OpModel.from_dict(raw)


def _finite(x: float) -> bool:
    return isinstance(x, float) and math.isfinite(x)
