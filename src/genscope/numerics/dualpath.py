"""In-model dual execution: flash reference and baseline on every attention call of a model.

The paper runs Baseline and Flash side by side on identical inputs at every attention call, so
the deviation can be read per layer and per step of a real workload. Here a
``TorchFunctionMode`` intercepts ``torch.nn.functional.scaled_dot_product_attention`` (used by
diffusers' ``AttnProcessor2_0`` and transformers' ``sdpa`` attention), lets the real call run
and return unchanged, and on the side computes baseline, flash reference and the fp64 golden
value from the same q/k/v. Forward hooks on every submodule give the module path.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from genscope.errors import UserError, choices_error
from genscope.machine.threads import torch_threads
from genscope.numerics.attention_ref import (
    ALGORITHMS,
    baseline_attention,
    deviation,
    flash_reference,
    golden_attention,
)
from genscope.numerics.precision import DTYPES, Precision

#: One row per attention call: (column, meaning). ``fvb`` = |flash - baseline| (same format),
#: ``flash``/``baseline`` = each against the fp64 golden value on the same rounded inputs,
#: ``sdpa`` = the model's real SDPA output against fp64 golden on its unrounded inputs.
DUAL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("call", "index of the attention call in the run"),
    ("step", "index of the model's forward call (a denoising step for a UNet)"),
    ("call_in_step", "index of the attention call within that forward"),
    ("module_path", "innermost module running the call"),
    ("module_type", "its class name"),
    ("batch", "product of leading dims"),
    ("heads", "query heads"),
    ("q_len", "query length"),
    ("kv_len", "key/value length"),
    ("head_dim", "d"),
    ("masked", "attn_mask or is_causal given"),
    ("dtype", "format of the references"),
    ("accum", "accumulator format"),
    ("block_r", "row tile used (clamped to q_len)"),
    ("block_c", "column tile used (clamped to kv_len)"),
    ("fvb_max", "max |flash - baseline|"),
    ("fvb_mean", "mean |flash - baseline|"),
    ("flash_max", "max |flash - golden|"),
    ("flash_mean", "mean |flash - golden|"),
    ("baseline_max", "max |baseline - golden|"),
    ("baseline_mean", "mean |baseline - golden|"),
    ("ratio_max", "flash_max / baseline_max"),
    ("sdpa_max", "max |real SDPA output - golden on unrounded inputs|"),
    ("skipped", "why the call was not compared ('' if it was)"),
)


def _sdpa_signature(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> None:
    """torch.nn.functional.scaled_dot_product_attention's parameters, to bind calls against."""


_SDPA_SIG = inspect.signature(_sdpa_signature)


class _ModulePaths:
    """A stack of module paths kept by forward pre/post hooks on every submodule."""

    def __init__(self, model: nn.Module) -> None:
        self.stack: list[tuple[str, str]] = []
        self.forwards = -1  # root forward calls seen
        self._handles: list[Any] = []
        for name, mod in model.named_modules():
            path = name or "(root)"
            self._handles.append(mod.register_forward_pre_hook(self._push(path, mod, not name)))
            self._handles.append(mod.register_forward_hook(self._pop, always_call=True))

    def _push(self, path: str, mod: nn.Module, root: bool) -> Callable[..., None]:
        kind = type(mod).__name__

        def hook(_mod: nn.Module, _args: Any) -> None:
            if root and not self.stack:
                self.forwards += 1
            self.stack.append((path, kind))

        return hook

    def _pop(self, *_: Any) -> None:
        if self.stack:
            self.stack.pop()

    @property
    def current(self) -> tuple[str, str]:
        return self.stack[-1] if self.stack else ("(outside model)", "")

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


class DualPathMode(TorchFunctionMode):
    """Records one row per SDPA call; the real SDPA result is returned untouched."""

    def __init__(
        self,
        paths: _ModulePaths | None = None,
        *,
        dtype: str | torch.dtype = "bf16",
        accum: str | torch.dtype | None = None,
        block_r: int = 16,
        block_c: int = 16,
        algorithm: str = "fa2",
    ) -> None:
        super().__init__()
        if algorithm not in ALGORITHMS:
            raise choices_error("flash algorithm", algorithm, list(ALGORITHMS))
        for name, b in (("block_r", block_r), ("block_c", block_c)):
            if not isinstance(b, int) or isinstance(b, bool) or b <= 0:
                raise UserError(f"{name} must be a positive integer, got {b!r}")
        self.paths = paths
        self.prec = Precision.of(dtype, accum)
        self.block_r, self.block_c, self.algorithm = block_r, block_c, algorithm
        self.rows: list[dict[str, Any]] = []
        self._per_step: dict[int, int] = {}

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func is F.scaled_dot_product_attention:
            with torch.no_grad():
                self.rows.append(self._compare(out, args, kwargs))
        return out

    def _compare(self, out: Tensor, args: tuple, kwargs: dict) -> dict[str, Any]:
        bound = _SDPA_SIG.bind(*args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        q, k, v = a["query"], a["key"], a["value"]
        path, kind = self.paths.current if self.paths else ("(unknown)", "")
        step = self.paths.forwards if self.paths else 0
        in_step = self._per_step.get(step, 0)
        self._per_step[step] = in_step + 1
        row: dict[str, Any] = {
            "call": len(self.rows),
            "step": step,
            "call_in_step": in_step,
            "module_path": path,
            "module_type": kind,
            "batch": math.prod(q.shape[:-3]) if q.dim() > 3 else 1,
            "heads": q.shape[-3] if q.dim() >= 3 else 1,
            "q_len": q.shape[-2],
            "kv_len": k.shape[-2],
            "head_dim": q.shape[-1],
            "masked": a["attn_mask"] is not None or bool(a["is_causal"]),
            "dtype": self.prec.storage,
            "accum": self.prec.accum,
            "block_r": min(self.block_r, q.shape[-2]),
            "block_c": min(self.block_c, k.shape[-2]),
            "skipped": "",
        }
        reason = _skip_reason(q, k, v, a)
        if reason:
            return row | {"skipped": reason}
        if q.dim() >= 3 and k.shape[-3] != q.shape[-3]:  # grouped-query attention
            rep = q.shape[-3] // k.shape[-3]
            k, v = k.repeat_interleave(rep, dim=-3), v.repeat_interleave(rep, dim=-3)
        mask = a["attn_mask"]
        if mask is not None and mask.dtype != torch.bool:
            mask = mask.detach().to(torch.float64)
        common = {"scale": a["scale"], "attn_mask": mask, "is_causal": bool(a["is_causal"])}
        store = DTYPES[self.prec.storage]
        q64, k64, v64 = (x.detach().to(store).to(torch.float64) for x in (q, k, v))
        gold = golden_attention(q64, k64, v64, **common)
        base = baseline_attention(q64, k64, v64, self.prec.storage, accum=self.prec.accum, **common)
        flash = flash_reference(
            q64,
            k64,
            v64,
            row["block_r"],
            row["block_c"],
            self.prec.storage,
            accum=self.prec.accum,
            algorithm=self.algorithm,  # type: ignore[arg-type]
            **common,
        )
        raw = golden_attention(*(x.detach().to(torch.float64) for x in (q, k, v)), **common)
        fvb, fl, bl = deviation(flash, base), deviation(flash, gold), deviation(base, gold)
        return row | {
            "fvb_max": fvb["max_abs"],
            "fvb_mean": fvb["mean_abs"],
            "flash_max": fl["max_abs"],
            "flash_mean": fl["mean_abs"],
            "baseline_max": bl["max_abs"],
            "baseline_mean": bl["mean_abs"],
            "ratio_max": fl["max_abs"] / bl["max_abs"] if bl["max_abs"] > 0 else math.nan,
            "sdpa_max": deviation(out, raw)["max_abs"],
        }


def _skip_reason(q: Tensor, k: Tensor, v: Tensor, a: dict[str, Any]) -> str:
    """Why a call cannot be replayed faithfully, or '' when it can."""
    if any(getattr(x, "is_nested", False) for x in (q, k, v)):
        return "nested tensors"
    if not all(x.is_floating_point() for x in (q, k, v)):
        return "non-floating inputs"
    if float(a["dropout_p"]) > 0:
        return f"dropout_p={a['dropout_p']} (random)"
    gqa_ok = a["enable_gqa"] and q.dim() >= 3 and q.shape[-3] % k.shape[-3] == 0
    if q.dim() >= 3 and k.shape[-3] != q.shape[-3] and not gqa_ok:
        return f"{q.shape[-3]} query heads vs {k.shape[-3]} key heads"
    if 0 in q.shape or 0 in k.shape:
        return "empty sequence"
    return ""


def dual_path(
    model: nn.Module,
    run: Callable[[], Any],
    *,
    dtype: str | torch.dtype = "bf16",
    accum: str | torch.dtype | None = None,
    block_r: int = 16,
    block_c: int = 16,
    algorithm: str = "fa2",
    threads: int | None = 1,
) -> pd.DataFrame:
    """Run ``run()`` (which calls ``model``) and compare flash vs baseline at every SDPA call.

    Tiles larger than a call's sequence are clamped to it (recorded in ``block_r/block_c``).
    Calls that cannot be replayed (dropout, nested tensors, ...) get a row with ``skipped``.
    The model computes exactly as without the hook: the real SDPA output is returned.
    ``threads`` sets torch's intra-op threads for the run (None: leave torch's setting).
    """
    mode = DualPathMode(
        None, dtype=dtype, accum=accum, block_r=block_r, block_c=block_c, algorithm=algorithm
    )
    mode.paths = paths = _ModulePaths(model)
    try:
        with torch_threads(threads), mode:
            run()
    finally:
        paths.remove()
    return pd.DataFrame(mode.rows, columns=[c for c, _ in DUAL_COLUMNS])


def per_layer(df: pd.DataFrame) -> pd.DataFrame:
    """Worst case per module over all steps: the table the CLI prints."""
    ok = df[df.skipped == ""]
    if ok.empty:
        return pd.DataFrame(columns=["module_path", "calls", "q_len", "kv_len", "fvb_max"])
    g = ok.groupby("module_path", sort=False)
    return g.agg(
        calls=("call", "size"),
        q_len=("q_len", "max"),
        kv_len=("kv_len", "max"),
        heads=("heads", "max"),
        head_dim=("head_dim", "max"),
        fvb_max=("fvb_max", "max"),
        flash_max=("flash_max", "max"),
        baseline_max=("baseline_max", "max"),
        sdpa_max=("sdpa_max", "max"),
    ).reset_index()
