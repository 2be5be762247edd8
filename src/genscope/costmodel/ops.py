"""FLOP and byte formulas per aten op, in one registry keyed by op.

Conventions (stated once, used everywhere):

* A multiply-add counts as **2 FLOPs**. GEMM/conv FLOPs are ``2 * M * N * K``; the bias add and
  alpha/beta scaling of ``addmm``/``baddbmm``/``convolution`` are fused epilogues and, as in
  ``torch.utils.flop_counter``, not counted.
* Bytes are the **minimum off-chip traffic** of the op as executed: every distinct input element
  read once, every output element written once. Broadcast (stride-0) dimensions are read once.
  Views move no bytes. Math attention materializes its N×N scores (they are the output of one
  op and the input of the next); flash SDPA reads Q, K, V (and a mask) and writes O only.
* Pointwise ops cost ``k`` FLOPs per output element, with ``k`` from :data:`POINTWISE_FLOPS`
  (the number of arithmetic operations in the op's reference formula; 1 when not listed).
* Formulas see shapes only (:class:`TensorMeta`), so they run identically on ``meta`` tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

aten = torch.ops.aten


@dataclass(frozen=True, slots=True)
class TensorMeta:
    """What a cost formula may know about a tensor: shape, dtype, distinct elements."""

    shape: tuple[int, ...]
    itemsize: int
    dtype: torch.dtype
    distinct: int  # elements actually stored (broadcast dims counted once)

    @classmethod
    def of(cls, t: torch.Tensor) -> TensorMeta:
        shape = tuple(t.shape)
        if t.layout != torch.strided:
            distinct = t.numel()
        else:
            distinct = math.prod(s for s, st in zip(shape, t.stride(), strict=True) if st != 0)
        return cls(shape, t.element_size(), t.dtype, distinct)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.distinct * self.itemsize


@dataclass(frozen=True, slots=True)
class OpCost:
    flops: int
    bytes_read: int
    bytes_written: int
    unit: str  # "matrix" | "vector" | "none"


CostFn = Callable[[Sequence[Any], dict[str, Any], Any], OpCost]
_REGISTRY: dict[Any, CostFn] = {}


def op_cost(*ops: Any) -> Callable[[CostFn], CostFn]:
    """Register a cost formula for op packets or overloads. Registering twice is an error."""

    def deco(fn: CostFn) -> CostFn:
        for op in ops:
            if op in _REGISTRY:
                raise ValueError(f"cost formula for {op} registered twice")
            _REGISTRY[op] = fn
        return fn

    return deco


def _tensors(x: Any) -> list[TensorMeta]:
    if isinstance(x, TensorMeta):
        return [x]
    if isinstance(x, list | tuple):
        return [t for item in x for t in _tensors(item)]
    if isinstance(x, dict):
        return [t for item in x.values() for t in _tensors(item)]
    return []


def _read(args: Sequence[Any], kwargs: dict[str, Any]) -> int:
    return sum(t.nbytes for t in _tensors(list(args)) + _tensors(kwargs))


def _written(out: Any) -> int:
    return sum(t.numel * t.itemsize for t in _tensors(out))


def _first(out: Any) -> TensorMeta:
    return _tensors(out)[0]


# --------------------------------------------------------------------------- GEMM family
def mm_flops(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """(m×k) @ (k×n): 2·m·n·k."""
    (m, k), (_, n) = a, b
    return 2 * m * n * k


def bmm_flops(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """(B×m×k) @ (B×k×n): 2·B·m·n·k."""
    (bs, m, k), (_, _, n) = a, b
    return 2 * bs * m * n * k


def _gemm(flops: int, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops, _read(args, kwargs), _written(out), "matrix")


@op_cost(aten.mm)
def _mm(args, kwargs, out):
    return _gemm(mm_flops(args[0].shape, args[1].shape), args, kwargs, out)


@op_cost(aten.addmm)
def _addmm(args, kwargs, out):
    return _gemm(mm_flops(args[1].shape, args[2].shape), args, kwargs, out)


@op_cost(aten.bmm)
def _bmm(args, kwargs, out):
    return _gemm(bmm_flops(args[0].shape, args[1].shape), args, kwargs, out)


@op_cost(aten.baddbmm)
def _baddbmm(args, kwargs, out):
    return _gemm(bmm_flops(args[1].shape, args[2].shape), args, kwargs, out)


# --------------------------------------------------------------------------- convolution
def conv_flops(
    x: tuple[int, ...], w: tuple[int, ...], out: tuple[int, ...], transposed: bool, groups: int
) -> int:
    """Convolution of any rank, grouped or transposed; 2 FLOPs per multiply-add.

    Forward: each output element is a dot product of length (C_in/groups)·prod(kernel).
    Transposed: each *input* element is scattered into (C_out/groups)·prod(kernel) outputs.
    """
    kernel = math.prod(w[2:])
    if not transposed:
        c_out, c_in_per_group = w[0], w[1]
        return 2 * out[0] * math.prod(out[2:]) * c_out * c_in_per_group * kernel
    c_in, c_out_per_group = w[0], w[1]
    return 2 * x[0] * math.prod(x[2:]) * c_in * c_out_per_group * kernel


@op_cost(aten.convolution, aten._convolution)
def _convolution(args, kwargs, out):
    x, w = args[0], args[1]
    transposed = bool(args[6]) if len(args) > 6 else bool(kwargs.get("transposed", False))
    groups = int(args[8]) if len(args) > 8 else int(kwargs.get("groups", 1))
    flops = conv_flops(x.shape, w.shape, _first(out).shape, transposed, groups)
    return OpCost(flops, _read(args, kwargs), _written(out), "matrix")


# --------------------------------------------------------------------------- attention (SDPA)
def sdpa_flops(q: tuple[int, ...], k: tuple[int, ...], v: tuple[int, ...]) -> int:
    """Q·Kᵀ and P·V matmuls (2·b·h·Lq·Lk·(d + d_v)) plus a 5-FLOP/element softmax.

    Shapes are (..., L, d); leading dims are batch and heads (query heads; GQA K/V heads are
    broadcast). The softmax term (max, subtract, exp, sum, divide) makes flash and math paths
    count the same work.
    """
    *lead, lq, d = q
    lk, dv = k[-2], v[-1]
    bh = math.prod(lead)
    return 2 * bh * lq * lk * d + 2 * bh * lq * lk * dv + SOFTMAX_FLOPS * bh * lq * lk


def sdpa_matmul_flops(q: tuple[int, ...], k: tuple[int, ...], v: tuple[int, ...]) -> int:
    """Only the two matmuls of :func:`sdpa_flops`, as ``torch.utils.flop_counter`` counts them."""
    *lead, lq, d = q
    return 2 * math.prod(lead) * lq * k[-2] * (d + v[-1])


def sdpa_cost(q: TensorMeta, k: TensorMeta, v: TensorMeta, mask: TensorMeta | None) -> OpCost:
    """Flash/memory-efficient SDPA: reads Q, K, V (and mask), writes O; no N×N traffic."""
    read = q.nbytes + k.nbytes + v.nbytes + (mask.nbytes if mask is not None else 0)
    out = q.numel // q.shape[-1] * v.shape[-1] * q.itemsize
    return OpCost(sdpa_flops(q.shape, k.shape, v.shape), read, out, "matrix")


def _sdpa_overload(args, kwargs, out):
    q, k, v = args[0], args[1], args[2]
    mask = kwargs.get("attn_mask")
    if mask is None and len(args) > 3 and isinstance(args[3], TensorMeta):
        mask = args[3]
    return sdpa_cost(q, k, v, mask)


SDPA_OPS = tuple(
    getattr(aten, name)
    for name in (
        "scaled_dot_product_attention",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_attention_math",
        "_flash_attention_forward",
        "_efficient_attention_forward",
    )
    if hasattr(aten, name)
)
op_cost(*SDPA_OPS)(_sdpa_overload)


# --------------------------------------------------------------------------- norms, softmax
SOFTMAX_FLOPS = 5  # max, subtract, exp, sum, divide per element
LAYER_NORM_FLOPS = 6  # mean (1), variance (sub, square, add = 3), normalize (sub, mul = 2)
AFFINE_FLOPS = 2  # scale and shift
RMS_NORM_FLOPS = 3  # square, add (mean), normalize (mul)


def _vector(flops: int, args, kwargs, out) -> OpCost:
    return OpCost(flops, _read(args, kwargs), _written(out), "vector")


@op_cost(aten._softmax, aten.softmax, aten._safe_softmax, aten._log_softmax, aten.log_softmax)
def _softmax(args, kwargs, out):
    return _vector(SOFTMAX_FLOPS * args[0].numel, args, kwargs, out)


def _affine(weight: Any) -> int:
    return AFFINE_FLOPS if isinstance(weight, TensorMeta) else 0


@op_cost(aten.native_group_norm, aten.group_norm)
def _group_norm(args, kwargs, out):
    x = args[0]
    return _vector((LAYER_NORM_FLOPS + _affine(args[1])) * x.numel, args, kwargs, _first(out))


@op_cost(aten.native_layer_norm, aten.layer_norm)
def _layer_norm(args, kwargs, out):
    x = args[0]
    weight = args[2] if len(args) > 2 else kwargs.get("weight")
    return _vector((LAYER_NORM_FLOPS + _affine(weight)) * x.numel, args, kwargs, _first(out))


@op_cost(*(getattr(aten, n) for n in ("rms_norm", "_fused_rms_norm") if hasattr(aten, n)))
def _rms_norm(args, kwargs, out):
    x = args[0]
    weight = args[2] if len(args) > 2 else kwargs.get("weight")
    scale = 1 if isinstance(weight, TensorMeta) else 0
    return _vector((RMS_NORM_FLOPS + scale) * x.numel, args, kwargs, _first(out))


# --------------------------------------------------------------------------- resampling
#: Interpolation taps per output element; each tap is a multiply-add (2 FLOPs).
UPSAMPLE_TAPS = {
    "upsample_nearest1d": 0,
    "upsample_nearest2d": 0,
    "upsample_nearest3d": 0,
    "_upsample_nearest_exact1d": 0,
    "_upsample_nearest_exact2d": 0,
    "_upsample_nearest_exact3d": 0,
    "upsample_linear1d": 2,
    "upsample_bilinear2d": 4,
    "_upsample_bilinear2d_aa": 4,
    "upsample_trilinear3d": 8,
    "upsample_bicubic2d": 16,
}


def _upsample(args, kwargs, out, taps: int) -> OpCost:
    return _vector(2 * taps * _first(out).numel, args, kwargs, out)


for _name, _taps in UPSAMPLE_TAPS.items():
    if hasattr(aten, _name):
        op_cost(getattr(aten, _name))(
            lambda args, kwargs, out, _t=_taps: _upsample(args, kwargs, out, _t)
        )


@op_cost(aten.avg_pool1d, aten.avg_pool2d, aten.avg_pool3d)
def _avg_pool(args, kwargs, out):
    kernel = args[1] if len(args) > 1 else kwargs["kernel_size"]
    kernel = kernel if isinstance(kernel, list | tuple) else [kernel]
    window = math.prod(kernel) if len(kernel) > 1 else kernel[0] ** (len(args[0].shape) - 2)
    return _vector(window * _first(out).numel, args, kwargs, out)


# --------------------------------------------------------------------------- pointwise
#: FLOPs per output element for pointwise ops whose reference formula has several operations.
POINTWISE_FLOPS: dict[str, int] = {
    "silu": 4,  # x / (1 + exp(-x)): neg, exp, add, div
    "silu_": 4,
    "sigmoid": 3,  # 1 / (1 + exp(-x))
    "gelu": 5,  # 0.5·x·(1 + erf(x/√2)): div, erf, add, mul, mul
    "tanh": 1,
    "addcmul": 2,
    "addcdiv": 2,
    "lerp": 3,
    "mish": 5,
    "softplus": 3,
    "hardswish": 4,
    "rsqrt": 1,
    "pow": 1,
    "where": 0,
    "clamp": 1,
    "clone": 0,
    "_to_copy": 0,
    "copy": 0,
    "fill": 0,
    "zeros_like": 0,
    "ones_like": 0,
    "full_like": 0,
    "empty_like": 0,
    "masked_fill": 0,
}


def pointwise_cost(name: str, args, kwargs, out) -> OpCost:
    k = POINTWISE_FLOPS.get(name.rstrip("_"), POINTWISE_FLOPS.get(name, 1))
    return _vector(k * _first(out).numel if _tensors(out) else 0, args, kwargs, out)


def reduction_cost(args, kwargs, out) -> OpCost:
    """One FLOP per input element (sum, mean, amax, var ≈ 1 pass)."""
    inputs = _tensors(list(args))
    return _vector(inputs[0].numel if inputs else 0, args, kwargs, out)


#: Ops that return their input unchanged at inference (dropout in eval mode, metadata queries).
IDENTITY_OPS = frozenset(
    {
        "dropout",
        "feature_dropout",
        "alpha_dropout",
        "is_nonzero",
        "item",
        "lift_fresh",
        "detach",
        "_unsafe_view",
        "_reshape_alias",
    }
)
#: Ops that only allocate (no traffic worth counting until written).
ALLOC_OPS = frozenset({"empty", "empty_strided", "new_empty", "new_empty_strided", "empty_like"})


def memory_cost(args, kwargs, out) -> OpCost:
    return OpCost(0, _read(args, kwargs), _written(out), "vector")


NO_COST = OpCost(0, 0, 0, "none")


def cost_of(
    func: torch._ops.OpOverload, args: Sequence[Any], kwargs: dict[str, Any], out: Any
) -> OpCost:
    """Cost of one op call; ``args``/``out`` hold :class:`TensorMeta` in place of tensors."""
    fn = _REGISTRY.get(func) or _REGISTRY.get(func.overloadpacket)
    if fn is not None:
        return fn(args, kwargs, out)
    name = func.overloadpacket.__name__
    if func.is_view or name in IDENTITY_OPS:
        return NO_COST
    if name in ALLOC_OPS or name == "_local_scalar_dense":
        return NO_COST
    if torch.Tag.pointwise in func.tags:
        return pointwise_cost(name, args, kwargs, out)
    if torch.Tag.reduction in func.tags:
        return reduction_cost(args, kwargs, out)
    return memory_cost(args, kwargs, out)


def has_formula(func: torch._ops.OpOverload) -> bool:
    return func in _REGISTRY or func.overloadpacket in _REGISTRY
