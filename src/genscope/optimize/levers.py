"""Every lever by name, the default stack per target kind, and ``--levers`` parsing."""

from __future__ import annotations

from typing import Any

from genscope.errors import UserError, choices_error
from genscope.optimize.attention import SDPA
from genscope.optimize.base import Branch, Lever
from genscope.optimize.compile import COMPILE_MODES, Compile
from genscope.optimize.decoding import Batching, EarlyExitSpeculation, ImageHead, StaticKVCache
from genscope.optimize.fusion import FusedQKV
from genscope.optimize.layout import ChannelsLast
from genscope.optimize.precision import LowPrecision
from genscope.optimize.quant import Int8Dynamic, Int8WeightOnly

LEVERS: dict[str, Lever] = {
    lever.name: lever
    for lever in (
        SDPA(),
        LowPrecision(),
        ChannelsLast(),
        FusedQKV(),
        Compile(),
        Int8Dynamic(),
        Int8WeightOnly(),
        StaticKVCache(),
        ImageHead(),
        EarlyExitSpeculation(),
        Batching(),
    )
}

#: Applied in this order when ``--levers`` is not given. Diffusion follows the PyTorch
#: diffusion-fast recipe (bf16, SDPA, compile, fused QKV, dynamic int8); decoding follows
#: Lee et al.'s system levers (SDPA, static cache + compile, AutoQuant's weight-only int8),
#: then the application levers (image-token head, early-exit speculation, batching).
DEFAULT_STACK: dict[str, tuple[str, ...]] = {
    "denoise": ("sdpa", "bf16", "channels_last", "fused_qkv", "compile", "int8_dynamic"),
    "decode": (
        "sdpa",
        "static_cache",
        "compile",
        "bf16",
        "int8_weight_only",
        "image_head",
        "speculative",
        "batching",
    ),
}

#: ``name:arg`` forms: what the argument sets
ARGUMENTS = {
    "compile": "mode (" + " | ".join(COMPILE_MODES) + ")",
    "batching": "batch size (images decoded together)",
    "speculative": "draft layers k, or KxN (k layers, N draft tokens)",
    "int8_weight_only": "'all' to quantize the LM head too",
    "int8_dynamic": "'all' to quantize the LM head too",
}


def parse_levers(text: str | None, kind: str) -> tuple[list[Lever | Branch], dict[str, Any]]:
    """``"sdpa,bf16,compile:max-autotune,~speculative:2x4"`` → levers in order + their options;
    a ``~`` prefix measures that lever as a branch (not carried into later stages)."""
    if not text:
        return [LEVERS[n] for n in DEFAULT_STACK[kind]], {}
    levers: list[Lever | Branch] = []
    seen: list[str] = []
    options: dict[str, Any] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        branch = item.startswith("~")
        name, _, arg = item.lstrip("~").partition(":")
        if name not in LEVERS:
            raise choices_error("lever", name, list(LEVERS))
        if arg:
            if name not in ARGUMENTS:
                raise UserError(
                    f"lever {name} takes no argument (got {item!r}); levers with one: "
                    + ", ".join(f"{k}:<{v}>" for k, v in ARGUMENTS.items())
                )
            options.update(_argument(name, arg))
        if name in seen:
            raise UserError(f"lever {name} is listed twice")
        seen.append(name)
        levers.append(Branch(LEVERS[name]) if branch else LEVERS[name])
    if not levers:
        raise UserError("--levers is empty; choose from: " + ", ".join(sorted(LEVERS)))
    return levers, options


def _argument(name: str, arg: str) -> dict[str, Any]:
    if name == "compile":
        if arg not in COMPILE_MODES:
            raise choices_error("compile mode", arg, COMPILE_MODES)
        return {"compile_mode": arg}
    if name.startswith("int8"):
        if arg != "all":
            raise UserError(f"bad argument for {name}: {arg!r}; expected {ARGUMENTS[name]}")
        return {"quantize_head": True}
    try:
        if name == "batching":
            return {"batch": int(arg)}
        k, _, n = arg.lower().partition("x")
        return {"draft_layers": int(k)} | ({"draft_tokens": int(n)} if n else {})
    except ValueError:
        raise UserError(f"bad argument for {name}: {arg!r}; expected {ARGUMENTS[name]}") from None
