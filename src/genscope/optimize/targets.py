"""Targets: the runnable unit levers transform and the stack measures.

Two kinds, one per loop shape genscope optimizes:

* :class:`DenoiseTarget` — a diffusion UNet's CFG denoise step(s): ``steps`` x (UNet on the
  batched conditional + unconditional latents, CFG combine, DDIM update), from seeded latents
  and a seeded text context.
* :class:`DecodeTarget` (in :mod:`genscope.optimize.decode_target`) — an autoregressive decode loop:
  prefill the prompt, then ``new_tokens`` greedy tokens through a KV cache.

A target holds *state* (modules, dtype, attention implementation, memory format, compile
spec, cache kind, ...). Levers change that state; :meth:`Target.prepare` materializes a
zero-argument callable for the current state (compiling if asked), which the stack times.
"""

from __future__ import annotations

import contextlib
import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from genscope.capture.attention_impl import MathAttention
from genscope.dtypes import dtype_name
from genscope.optimize import deviation


@dataclass
class CompileSpec:
    """How to ``torch.compile``: inductor, a mode (or inductor options), and the region."""

    mode: str | None = None
    options: dict[str, Any] | None = None
    #: compile each repeated block (diffusers' regional compilation) instead of the whole model
    regional: tuple[str, ...] = ()
    dynamic: bool | None = False

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"backend": "inductor", "dynamic": self.dynamic}
        if self.options:
            kw["options"] = dict(self.options)
        else:
            kw["mode"] = self.mode
        return kw

    def describe(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in (self.options or {}).items())
        how = self.mode or f"options {opts}"
        where = f"regional: {', '.join(self.regional)}" if self.regional else "whole model"
        return f"inductor {how} ({where})"


@dataclass
class Target(ABC):
    """Mutable state levers transform; ``prepare`` turns it into something to time."""

    kind: ClassVar[str]
    output_kind: ClassVar[str]  # "latents" | "tokens": which deviation metrics apply

    workload: Any
    device: str
    dtype: torch.dtype = torch.float32
    attention: str = "math"  # "math" (explicit baseline) | "sdpa"
    compile: CompileSpec | None = None
    applied: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # -------------------------------------------------------------- what levers transform
    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """The modules levers rewrite (cast, quantize, fuse), by name."""

    @abstractmethod
    def prepare(self) -> Callable[[], Any]:
        """A zero-argument callable running the target once in its current state."""

    def fork(self, copy_modules: bool) -> Target:
        """A new target with this one's state; modules deep-copied if the next lever mutates
        them, so the runner already prepared for this target keeps running this stage."""
        new = copy.copy(self)
        new.applied, new.notes = list(self.applied), list(self.notes)
        if copy_modules:
            for key, module in self.modules().items():
                setattr(new, key, copy.deepcopy(module))
        return new

    def weight_bytes(self) -> int:
        """Bytes of the parameters and buffers the loop runs with."""
        seen: set[int] = set()
        total = 0
        for module in self.modules().values():
            for t in list(module.parameters()) + list(module.buffers()):
                if id(t) not in seen:
                    seen.add(id(t))
                    total += t.numel() * t.element_size()
        return total

    # -------------------------------------------------------------- measurement hooks
    def work_items(self) -> tuple[int, str]:
        """Units of work one call produces, for throughput: (count, unit)."""
        return 1, "call"

    def deviation(self, base: Any, out: Any, base_extra: Any = None, extra: Any = None) -> dict:
        """Deviation of ``out`` from the baseline's ``base`` (``*_extra``: teacher-forced
        logits, for decoding)."""
        raise NotImplementedError

    def stats(self, out: Any) -> dict[str, Any]:
        """Per-stage statistics of one output (e.g. speculative acceptance)."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {
            "dtype": dtype_name(self.dtype),
            "attention": self.attention,
            "compile": self.compile.describe() if self.compile else None,
        }

    @contextlib.contextmanager
    def attention_mode(self) -> Iterator[None]:
        """``math``: every SDPA call runs as the explicit bmm-softmax-bmm baseline."""
        if self.attention == "math":
            with MathAttention():
                yield
        else:
            yield

    def compiled(self, fn: Any) -> Any:
        """``fn`` (module or function) compiled per ``self.compile``. Regional compilation
        compiles the repeated blocks of ``fn`` in place (so the compile lever copies first)."""
        import torch._dynamo

        spec = self.compile
        assert spec is not None
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        if spec.regional and isinstance(fn, nn.Module):
            hit = 0
            for sub in fn.modules():
                if type(sub).__name__ in spec.regional:
                    sub.compile(**spec.kwargs())
                    hit += 1
            if not hit:
                raise ValueError(f"no {spec.regional} blocks to compile regionally")
            return fn
        return torch.compile(fn, **spec.kwargs())


# ============================================================================ diffusion
@dataclass
class DenoiseOutput:
    noise: torch.Tensor  # CFG-combined noise prediction of the last step (fp32 copy)
    latents: torch.Tensor  # latents after the last scheduler update (fp32 copy)


@dataclass
class DenoiseTarget(Target):
    """``steps`` CFG denoise steps of a diffusers ``UNet2DConditionModel``."""

    kind: ClassVar[str] = "denoise"
    output_kind: ClassVar[str] = "latents"

    unet: nn.Module = None  # type: ignore[assignment]
    latents: torch.Tensor = None  # type: ignore[assignment]  # (batch, C, h, w), fp32
    context: torch.Tensor = None  # type: ignore[assignment]  # (rows, tokens, dim), fp32
    scheduler: Any = None
    steps: int = 1
    cfg: bool = True
    guidance: float = 7.5
    memory_format: torch.memory_format = torch.contiguous_format
    res: tuple[int, int] = (0, 0)

    def modules(self) -> dict[str, nn.Module]:
        return {"unet": self.unet}

    def work_items(self) -> tuple[int, str]:
        return self.steps * self.latents.shape[0], "image-steps"

    def prepare(self) -> Callable[[], DenoiseOutput]:
        unet = self.compiled(self.unet) if self.compile else self.unet
        dev, dt = self.device, self.dtype
        x0 = self.latents.to(dev, dt).contiguous(memory_format=self.memory_format)
        ctx = self.context.to(dev, dt)
        self.scheduler.set_timesteps(self.steps)
        timesteps = list(self.scheduler.timesteps)
        cfg, g, scheduler = self.cfg, self.guidance, self.scheduler

        def run() -> DenoiseOutput:
            with torch.inference_mode(), self.attention_mode():
                latents, noise = x0, None
                for t in timesteps:
                    model_in = torch.cat([latents, latents]) if cfg else latents
                    noise = unet(model_in, t, encoder_hidden_states=ctx).sample
                    if cfg:
                        uncond, cond = noise.chunk(2)
                        noise = uncond + g * (cond - uncond)
                    latents = scheduler.step(noise, t, latents).prev_sample
                assert noise is not None
                return DenoiseOutput(noise.float(), latents.float())

        return run

    def deviation(self, base: Any, out: Any, base_extra: Any = None, extra: Any = None) -> dict:
        return deviation.latent_deviation(base, out)

    def describe(self) -> dict[str, Any]:
        h, w = self.res
        rows = self.latents.shape[0] * (2 if self.cfg else 1)
        return super().describe() | {
            "memory_format": "channels_last"
            if self.memory_format == torch.channels_last
            else "contiguous",
            "batch": int(self.latents.shape[0]),
            "unit": f"{self.steps} {'CFG ' if self.cfg else ''}denoise step(s) at {h}x{w} px "
            f"(latents {tuple(self.latents.shape)}, UNet batch {rows})",
        }
