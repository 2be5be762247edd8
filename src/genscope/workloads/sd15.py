"""Stable Diffusion 1.5: CLIP ViT-L/14 text encoder → UNet (CFG, DDIM) → VAE decoder."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDIMScheduler
from torch import nn

from genscope.capture.context import AxisRules, Runner
from genscope.workloads.base import Built, Settings, Workload

TEXT_TOKENS = 77
GUIDANCE_SCALE = 7.5


def sd_scheduler() -> DDIMScheduler:
    """DDIM with SD1.5's training schedule (the stock pipeline uses PNDM; the per-step
    UNet work is identical, the scheduler arithmetic is a few elementwise ops)."""
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


class LatentDiffusion(Workload):
    """Shared loop for SD-style latent diffusion: encode → N CFG denoise steps → decode."""

    res_factor = 8

    def extras(self, models: dict[str, nn.Module], s: Settings) -> dict[str, Any]:
        return {"scheduler": sd_scheduler()}

    def axis_rules(self) -> AxisRules:
        axes = AxisRules()
        axes.add("text_encoder", "text")
        axes.add("unet", "spatial")
        return axes

    def encode_prompt(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        device = s.torch_device
        rows = s.batch * (2 if s.cfg else 1)  # negative and positive prompts, batched
        encoder = built.models["text_encoder"]
        vocab = encoder.config.vocab_size
        ids = torch.arange(rows * TEXT_TOKENS, device=device).remainder(vocab)
        with run.phase("text_encoder", "encode"):
            return encoder(ids.reshape(rows, TEXT_TOKENS))[0]

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        unet, vae = built.models["unet"], built.models["vae"]
        scheduler: DDIMScheduler = built.extras["scheduler"]
        context = self.encode_prompt(built, s, run)
        h, w = s.res  # type: ignore[misc]
        shape = (s.batch, unet.config.in_channels, h // self.res_factor, w // self.res_factor)
        generator = torch.Generator().manual_seed(0)
        latents = torch.randn(shape, generator=generator, dtype=s.torch_dtype).to(s.torch_device)
        scheduler.set_timesteps(s.steps)
        for _, t in run.steps("denoise", scheduler.timesteps, identical=True):
            with run.phase("unet", "denoise"):
                model_in = torch.cat([latents, latents]) if s.cfg else latents
                noise = unet(model_in, t, encoder_hidden_states=context).sample
            with run.phase("scheduler", "denoise"):
                if s.cfg:
                    uncond, cond = noise.chunk(2)
                    noise = uncond + GUIDANCE_SCALE * (cond - uncond)
                latents = scheduler.step(noise, t, latents).prev_sample
        with run.phase("vae", "decode_image"):
            return vae.decode(latents / vae.config.scaling_factor).sample


class SD15(LatentDiffusion):
    name = "sd15"
    task = "tti"
    family = "diffusion-unet"
    description = "Stable Diffusion 1.5 (latent diffusion, LDM): CLIP ViT-L/14 + UNet + VAE"
    components = {"text_encoder": "text_encoder", "unet": "unet", "vae": "vae"}
    defaults = {
        "full": {"res": (512, 512), "steps": 50, "cfg": True},
        "tiny": {"res": (64, 64), "steps": 4, "cfg": True},
    }
