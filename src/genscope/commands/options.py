"""The CLI options every command shares, declared once.

A command names a :class:`~genscope.workloads.base.Settings` field as ``res: options.Res =
None`` and builds the settings with ``settings_from(locals())``; help texts and flags live here
only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

from genscope.workloads.base import Settings, parse_res

Workload = Annotated[str, typer.Argument(help="Workload name (see `genscope models`).")]
Res = Annotated[str | None, typer.Option(help="Image side N or HxW in pixels.")]
Frames = Annotated[int | None, typer.Option(help="Video frames (video workloads).")]
Steps = Annotated[int | None, typer.Option(help="Denoising / decoding steps.")]
Batch = Annotated[int, typer.Option(help="Prompts per batch (CFG doubles it inside).")]
Cfg = Annotated[bool | None, typer.Option("--cfg/--no-cfg", help="Classifier-free guidance.")]
Dtype = Annotated[str, typer.Option(help="fp32 | bf16 | fp16")]
Attention = Annotated[str, typer.Option(help="flash (fused SDPA) | math (bmm-softmax-bmm)")]
Variant = Annotated[str | None, typer.Option(help="Model size variant, e.g. 7b.")]
PromptLen = Annotated[int | None, typer.Option(help="Prompt tokens (autoregressive).")]
NewTokens = Annotated[int | None, typer.Option(help="Generated tokens (autoregressive).")]
Force = Annotated[
    bool, typer.Option("--force", help="Run even if predicted memory exceeds available.")
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


#: The Settings fields a command takes as options of the same name.
SETTING_OPTIONS = (
    "size", "res", "frames", "steps", "batch", "cfg", "dtype", "attention", "variant",
    "prompt_len", "new_tokens",
)  # fmt: skip


def settings_from(params: Mapping[str, Any]) -> Settings:
    """The Settings a command's parameters describe (pass its ``locals()``; ``--res`` parsed).

    Every name of :data:`SETTING_OPTIONS` the command declares is taken; the rest keep their
    defaults.
    """
    given = {k: params[k] for k in SETTING_OPTIONS if k in params}
    if "res" in given:
        given["res"] = parse_res(given["res"])
    return Settings(**given)
