"""genscope's dtype names and the torch dtypes they stand for: the one map.

Every table, spec and CLI option names a dtype by its short name (``fp32``, ``bf16`` ...);
modules pick the subset they support from here (a workload run: fp32/bf16/fp16; the numerics
emulation: bf16 to fp64).
"""

from __future__ import annotations

import torch

TORCH_DTYPES: dict[str, torch.dtype] = {
    "fp64": torch.float64,
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp8": torch.float8_e4m3fn,
    "int8": torch.int8,
}
_NAMES = {v: k for k, v in TORCH_DTYPES.items()}
#: Bytes per element of each named dtype.
ITEMSIZE: dict[str, int] = {n: t.itemsize for n, t in TORCH_DTYPES.items()}


def dtype_name(dtype: torch.dtype) -> str:
    """The short name of a torch dtype (its torch name for dtypes genscope does not name)."""
    return _NAMES.get(dtype, str(dtype).removeprefix("torch."))


def subset(*names: str) -> dict[str, torch.dtype]:
    """The map restricted to ``names``, in that order."""
    return {n: TORCH_DTYPES[n] for n in names}
