"""Floating-point formats by name, and the storage/accumulation split the references use.

Low-precision arithmetic is *emulated*: values are held in a wider "work" dtype (fp32, or fp64
when fp64 is involved) and rounded to the target format after every operation. That is what a
GPU does for one op (tensor-core matmuls and fused reductions accumulate in fp32, then round
the result once), and it makes bf16/fp16 behaviour identical on every CPU instead of depending
on which BLAS kernel torch picks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from genscope.dtypes import subset
from genscope.errors import choices_error

#: Formats the Golden et al. sweep covers ("from BF16 to FP64").
DTYPES: dict[str, torch.dtype] = subset("bf16", "fp16", "fp32", "fp64")
#: Significand bits including the implicit leading bit (the paper's x-axis is mantissa bits).
MANTISSA_BITS: dict[str, int] = {"bf16": 8, "fp16": 11, "fp32": 24, "fp64": 53}
#: Unit roundoff 2**-bits: the relative error of one round-to-nearest.
UNIT_ROUNDOFF: dict[str, float] = {k: 2.0**-b for k, b in MANTISSA_BITS.items()}

_ALIASES = {
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float32": "fp32",
    "float": "fp32",
    "float64": "fp64",
    "double": "fp64",
}
_BY_TORCH = {v: k for k, v in DTYPES.items()}


def dtype_name(dtype: str | torch.dtype) -> str:
    """Canonical short name (``bf16`` ...) of a name or torch dtype; UserError otherwise."""
    if isinstance(dtype, torch.dtype):
        if dtype in _BY_TORCH:
            return _BY_TORCH[dtype]
        raise choices_error("dtype", str(dtype).removeprefix("torch."), list(DTYPES))
    name = str(dtype).strip().lower()
    name = _ALIASES.get(name, name)
    if name not in DTYPES:
        raise choices_error("dtype", dtype, list(DTYPES))
    return name


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    return DTYPES[dtype_name(dtype)]


@dataclass(frozen=True)
class Precision:
    """Where each intermediate of an attention forward is rounded.

    * ``storage``: Q, K, V, the probability tile P fed to the P·V matmul, and the output O.
    * ``accum``: the score tile S = QKᵀ·scale, S − m, the running max m, running sum l,
      rescale factors exp(m_old − m_new) and the O accumulator.
    * ``work``: the dtype the emulation computes in between roundings (fp32, or fp64 if either
      format is fp64). One matmul or one reduction is therefore rounded once, as on hardware.

    ``accum == storage`` is the paper's setting (everything "in" bf16); ``storage="bf16",
    accum="fp32"`` is how the FlashAttention CUDA kernels keep softmax state.
    """

    storage: str
    accum: str

    @classmethod
    def of(cls, dtype: str | torch.dtype, accum: str | torch.dtype | None = None) -> Precision:
        storage = dtype_name(dtype)
        return cls(storage, storage if accum is None else dtype_name(accum))

    @property
    def work(self) -> torch.dtype:
        return torch.float64 if "fp64" in (self.storage, self.accum) else torch.float32

    @property
    def label(self) -> str:
        return self.storage if self.accum == self.storage else f"{self.storage}/{self.accum}"

    def round_storage(self, x: Tensor) -> Tensor:
        return _round(x, DTYPES[self.storage], self.work)

    def round_accum(self, x: Tensor) -> Tensor:
        return _round(x, DTYPES[self.accum], self.work)


def _round(x: Tensor, target: torch.dtype, work: torch.dtype) -> Tensor:
    """Round to ``target`` (round-to-nearest-even) and hold the result in ``work``."""
    if x.dtype != work:
        x = x.to(work)
    if target == work:
        return x
    return round_to(x, target).to(work)


def round_to(x: Tensor, target: torch.dtype) -> Tensor:
    """``x.to(target)``, but correctly rounded from fp64 to bf16/fp16.

    torch converts fp64 -> bf16/fp16 through fp32, rounding twice (1 + 2^-8 + 2^-30 becomes 1.0,
    not 1 + 2^-7). Rounding to fp32 *to odd* first keeps the sticky information, so the second
    rounding is exact: fp32 has more than two extra bits over either target.
    """
    if x.dtype != torch.float64 or target not in (torch.bfloat16, torch.float16):
        return x.to(target)
    y = x.to(torch.float32)
    away = y.to(torch.float64).abs() > x.abs()  # RNE went away from zero: step back (truncate)
    y = torch.where(away, torch.nextafter(y, torch.zeros_like(y)), y)
    inexact = (y.to(torch.float64) != x) & torch.isfinite(y)
    y = (y.view(torch.int32) | inexact.to(torch.int32)).view(torch.float32)  # sticky bit
    return y.to(target)
