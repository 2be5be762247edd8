"""Quantization levers: int8 dynamic and int8 weight-only linears (AutoQuant's two choices).

Both quantize weights symmetrically per output channel (scale = max|w| / 127). They differ in
the activations:

* **dynamic** (``int8_dynamic``): activations are quantized per token at run time and the GEMM
  runs int8 x int8 → int32 (VNNI on this CPU), then both scales are applied. Pays off where
  GEMMs are compute-bound. fp32 targets use PyTorch's maintained dynamic linear, the module
  ``torch.ao.quantization.quantize_dynamic`` swaps in (fbgemm kernels, fp32 only); bf16/fp16
  targets use :class:`Int8DynamicLinear` (``torch._int_mm``).
* **weight-only** (``int8_weight_only``): weights are stored in int8 and the GEMM dequantizes
  them on the fly (``torch._weight_int8pack_mm`` on CPU; dequantize-then-matmul elsewhere,
  which inductor fuses). Activations stay in the compute dtype. Pays off where GEMMs are
  bandwidth-bound: autoregressive decode reads every weight for one token per row.

Every ``nn.Linear`` the loop runs is replaced except the **LM head**, which stays in the compute
dtype as in transformers' quantizers (``modules_to_not_convert=["lm_head"]``): its error goes
straight into the logits, which classifier-free guidance then amplifies (CFG 6 on Chameleon: the
sampled logits are 7·cond − 6·uncond). ``int8_weight_only:all`` / ``int8_dynamic:all`` quantize
the head too.
The VQ image encoder, unused while decoding, is left alone; convolutions are not quantized.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genscope.optimize.base import Lever, LeverContext, LeverSkipped
from genscope.optimize.targets import Target

#: submodules the decode loop never runs (Chameleon's VQ image encoder)
SKIP_SUBTREES = ("vqmodel",)


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8: (int8 weight (N, K), scale (N,) fp32)."""
    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


class Int8WeightOnlyLinear(nn.Module):
    """int8 weights + per-channel scales; activations stay in their dtype."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        q, scale = quantize_weight(linear.weight)
        dtype = linear.weight.dtype
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight_int8", q.contiguous())
        self.register_buffer("scales", scale.to(dtype))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())
        self.packed = q.device.type == "cpu" and hasattr(torch, "_weight_int8pack_mm")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        if self.packed and x2.dtype in (torch.float32, torch.bfloat16, torch.float16):
            y = torch._weight_int8pack_mm(x2, self.weight_int8, self.scales.to(x2.dtype))
        else:
            y = F.linear(x2, self.weight_int8.to(x2.dtype)) * self.scales.to(x2.dtype)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, int8 weight-only"


class Int8DynamicLinear(nn.Module):
    """int8 weights; activations quantized per row at run time; int8 x int8 → int32 GEMM."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        q, scale = quantize_weight(linear.weight)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight_t", q.t().contiguous())  # (K, N) for _int_mm
        self.register_buffer("scales", scale)  # fp32
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead, dtype = x.shape[:-1], x.dtype
        x2 = x.reshape(-1, self.in_features).float()
        xs = (x2.abs().amax(dim=1, keepdim=True) / 127.0).clamp(min=1e-12)
        xq = torch.round(x2 / xs).clamp(-127, 127).to(torch.int8)
        y = torch._int_mm(xq, self.weight_t).float() * xs * self.scales
        if self.bias is not None:
            y = y + self.bias.float()
        return y.to(dtype).reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, int8 dynamic"


def _linears(root: nn.Module) -> Iterator[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, linear) for every plain nn.Linear outside SKIP_SUBTREES."""
    stack: list[nn.Module] = [root]
    while stack:
        mod = stack.pop()
        for name, child in mod.named_children():
            if name in SKIP_SUBTREES:
                continue
            if type(child) is nn.Linear:
                yield mod, name, child
            else:
                stack.append(child)


def _targets(target: Target, include_head: bool) -> list[tuple[Any, str, nn.Linear]]:
    """Every linear of the loop as (owner, attribute, linear); the LM head only if asked."""
    head = getattr(target, "lm_head", None)
    found: list[tuple[Any, str, nn.Linear]] = []
    for key, module in target.modules().items():
        if type(module) is nn.Linear:  # a bare module of the target (a replacement head)
            found.append((target, key, module))
        else:
            found.extend(_linears(module))
    return [f for f in found if include_head or f[2] is not head]


def replace_linears(target: Target, make: Callable[[nn.Linear], nn.Module], head: bool) -> int:
    found = _targets(target, head)
    for owner, attr, lin in found:
        setattr(owner, attr, make(lin))
    return len(found)


def _ao_dynamic(linear: nn.Linear) -> nn.Module:
    """PyTorch's maintained fbgemm dynamic-int8 linear (fp32 activations)."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    from torch.ao.quantization import default_dynamic_qconfig

    linear.qconfig = default_dynamic_qconfig  # type: ignore[assignment]
    with warnings.catch_warnings():  # qint8 tensor factories announce their deprecation
        warnings.simplefilter("ignore", UserWarning)
        return DynamicLinear.from_float(linear)


def _quantize(target: Target, ctx: LeverContext, make: Callable, what: str) -> Target:
    head = bool(ctx.option("quantize_head", False))
    if not _targets(target, head):
        raise LeverSkipped("no float nn.Linear left to quantize")
    n = replace_linears(target, make, head)
    kept = "" if head or getattr(target, "lm_head", None) is None else "; LM head kept"
    target.notes.append(f"{what}: {n} linears{kept}")
    return target


class Int8Dynamic(Lever):
    name = "int8_dynamic"
    family = "quantization"
    summary = "linears → int8 weights + per-token int8 activations (int8 GEMM)"
    lossy = True

    def mutates(self, target: Target) -> bool:
        return True

    def apply(self, target: Target, ctx: LeverContext) -> Target:
        if target.dtype == torch.float32 and not ctx.is_cuda:
            return _quantize(target, ctx, _ao_dynamic, "int8_dynamic (torch.ao, fbgemm)")
        return _quantize(target, ctx, Int8DynamicLinear, "int8_dynamic (torch._int_mm)")


class Int8WeightOnly(Lever):
    name = "int8_weight_only"
    family = "quantization"
    summary = "linear weights → int8 + per-channel scale, dequantized in the GEMM"
    lossy = True

    def mutates(self, target: Target) -> bool:
        return True

    def apply(self, target: Target, ctx: LeverContext) -> Target:
        return _quantize(target, ctx, Int8WeightOnlyLinear, "int8_weight_only")
