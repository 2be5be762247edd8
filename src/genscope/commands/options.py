"""The CLI options every command shares, declared once.

A command names a :class:`~genscope.workloads.base.Settings` field as ``res: options.Res =
None`` and builds the settings with :func:`settings_from`; help texts and flags live here only.
"""

from __future__ import annotations

from typing import Annotated

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


def settings_from(
    *,
    size: str,
    res: str | None = None,
    frames: int | None = None,
    steps: int | None = None,
    batch: int = 1,
    cfg: bool | None = None,
    dtype: str = "fp32",
    attention: str = "flash",
    variant: str | None = None,
    prompt_len: int | None = None,
    new_tokens: int | None = None,
) -> Settings:
    """The Settings the shared options describe (``--res`` parsed)."""
    return Settings(
        size=size,  # type: ignore[arg-type]
        res=parse_res(res),
        frames=frames,
        steps=steps,
        batch=batch,
        cfg=cfg,
        dtype=dtype,
        attention=attention,
        variant=variant,
        prompt_len=prompt_len,
        new_tokens=new_tokens,
    )
