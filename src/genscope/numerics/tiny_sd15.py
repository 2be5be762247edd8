"""The tiny sd15 UNet as a numerics test bed: built from the shipped config, run for real.

``genscope numerics model`` and ``genscope numerics drift`` run on it: small enough to train
and to run every attention call twice on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from genscope.errors import choices_error
from genscope.workloads.components import build_component, load_component_config

Attention = Literal["sdpa", "math"]
#: ``sdpa``: diffusers AttnProcessor2_0 -> F.scaled_dot_product_attention (a tiled flash kernel
#: on CPU for these shapes); ``math``: diffusers AttnProcessor -> baddbmm, softmax, bmm.
ATTENTION: tuple[str, ...] = ("sdpa", "math")
TEXT_LEN = 77  # CLIP's context length, as in SD 1.5


def set_attention(unet: nn.Module, attention: Attention) -> None:
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    if attention not in ATTENTION:
        raise choices_error("attention implementation", attention, list(ATTENTION))
    unet.set_attn_processor(AttnProcessor2_0() if attention == "sdpa" else AttnProcessor())  # type: ignore[operator]


def build_tiny_unet(seed: int = 0, *, attention: Attention = "sdpa") -> nn.Module:
    """The sd15 UNet at its shipped ``tiny`` size, initialized from ``seed``.

    Seed 0 is exactly ``build_component``'s model; other seeds draw fresh weights from the
    class's own initializers. The caller's RNG state is left untouched.
    """
    cfg = load_component_config("sd15", "unet")
    with torch.random.fork_rng(devices=[]):
        unet = build_component(cfg, "tiny")
        if seed != 0:
            torch.manual_seed(seed)
            fresh = type(unet).from_config(unet.config)  # type: ignore[attr-defined]
            unet.load_state_dict(fresh.state_dict())
    set_attention(unet, attention)
    return unet


def scheduler(kind: Literal["ddim", "ddpm"] = "ddim") -> object:
    """SD 1.5's noise schedule (scaled-linear betas 0.00085 -> 0.012 over 1000 steps)."""
    from diffusers import DDIMScheduler, DDPMScheduler

    common = {
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "clip_sample": False,
        "num_train_timesteps": 1000,
    }
    if kind == "ddpm":
        return DDPMScheduler(**common)
    return DDIMScheduler(**common, set_alpha_to_one=False, steps_offset=1)


def generation(
    unet: nn.Module, steps: int = 4, *, seed: int = 0, batch: int = 1, guidance: float = 7.5
) -> Callable[[], Tensor]:
    """A closure running a real DDIM denoising loop with classifier-free guidance.

    Text embeddings are random (no text encoder), latents start from seeded noise; each step
    calls the UNet once on the CFG-doubled batch, so UNet forward index == denoising step.
    """
    cfg = unet.config  # type: ignore[attr-defined]
    gen = torch.Generator().manual_seed(seed)
    side = cfg.sample_size
    latents0 = torch.randn(batch, cfg.in_channels, side, side, generator=gen)
    cond = torch.randn(batch, TEXT_LEN, cfg.cross_attention_dim, generator=gen)
    uncond = torch.zeros_like(cond)
    text = torch.cat([uncond, cond])

    def run() -> Tensor:
        sched = scheduler("ddim")
        sched.set_timesteps(steps)  # type: ignore[attr-defined]
        latents = latents0 * sched.init_noise_sigma  # type: ignore[attr-defined]
        with torch.no_grad():
            for t in sched.timesteps:  # type: ignore[attr-defined]
                x = sched.scale_model_input(torch.cat([latents, latents]), t)  # type: ignore[attr-defined]
                eps_u, eps_c = unet(x, t, encoder_hidden_states=text).sample.chunk(2)
                eps = eps_u + guidance * (eps_c - eps_u)
                latents = sched.step(eps, t, latents).prev_sample  # type: ignore[attr-defined]
        return latents

    return run
