"""SDXL base: CLIP ViT-L + OpenCLIP ViT-bigG → UNet (CFG, Euler) → VAE, 1024² by default.

Mirrors diffusers ``StableDiffusionXLPipeline``: the penultimate hidden states of both text
encoders are concatenated to a 2048-wide context, the bigG projection gives the pooled
``text_embeds``, and ``add_time_ids`` carry (original size, crop, target size). With no
negative prompt the shipped pipeline zeroes the negative embeddings
(``force_zeros_for_empty_prompt``), so the encoders run on the positive prompt only.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import EulerDiscreteScheduler
from torch import nn

from genscope.capture.context import AxisRules, Runner
from genscope.workloads.base import Built, Settings
from genscope.workloads.diffusion_common import guide, noise, prompt_ids, vae_factor
from genscope.workloads.sd15 import TEXT_TOKENS, LatentDiffusion

SDXL_GUIDANCE = 5.0  # StableDiffusionXLPipeline default


def sdxl_scheduler() -> EulerDiscreteScheduler:
    """The scheduler SDXL base ships (scheduler/scheduler_config.json): Euler, epsilon."""
    return EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        interpolation_type="linear",
        timestep_spacing="leading",
        steps_offset=1,
        use_karras_sigmas=False,
    )


class SDXL(LatentDiffusion):
    name = "sdxl"
    task = "tti"
    family = "diffusion-unet"
    description = (
        "Stable Diffusion XL base 1.0 (latent diffusion): CLIP ViT-L/14 + OpenCLIP ViT-bigG/14 "
        "text encoders (2048-d context, pooled text_embeds + add_time_ids) → 2.6B UNet "
        "(CFG, Euler) → VAE decode"
    )
    components = {
        "text_encoder": "text_encoder",
        "text_encoder_2": "text_encoder_2",
        "unet": "unet",
        "vae": "vae",
    }
    defaults = {
        "full": {"res": (1024, 1024), "steps": 50, "cfg": True},
        "tiny": {"res": (64, 64), "steps": 2, "cfg": True},
    }

    def extras(self, models: dict[str, nn.Module], s: Settings) -> dict[str, Any]:
        return {"scheduler": sdxl_scheduler()}

    def axis_rules(self) -> AxisRules:
        axes = AxisRules()
        axes.add("text_encoder", "text")
        axes.add("text_encoder_2", "text")
        axes.add("unet", "spatial")
        return axes

    def encode_prompt(self, built: Built, s: Settings, run: Runner) -> Any:
        te1, te2 = built.models["text_encoder"], built.models["text_encoder_2"]
        device = s.torch_device
        with run.phase("text_encoder", "encode"):
            h1 = te1(prompt_ids(te1, s.batch, TEXT_TOKENS, device), output_hidden_states=True)
            h1 = h1.hidden_states[-2]
        with run.phase("text_encoder_2", "encode"):
            out = te2(prompt_ids(te2, s.batch, TEXT_TOKENS, device), output_hidden_states=True)
            context = torch.cat([h1, out.hidden_states[-2]], dim=-1)
            pooled = out.text_embeds
            if s.cfg:  # force_zeros_for_empty_prompt: zero negative embeddings, no encoder run
                context = torch.cat([torch.zeros_like(context), context])
                pooled = torch.cat([torch.zeros_like(pooled), pooled])
        return context, pooled

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        unet, vae = built.models["unet"], built.models["vae"]
        scheduler: EulerDiscreteScheduler = built.extras["scheduler"]
        context, pooled = self.encode_prompt(built, s, run)
        h, w = s.res  # type: ignore[misc]
        rows = context.shape[0]
        # add_time_ids = original size + crop top-left + target size (same for both CFG halves)
        time_ids = torch.tensor([[h, w, 0, 0, h, w]], dtype=s.torch_dtype).repeat(rows, 1)
        cond = {"text_embeds": pooled, "time_ids": time_ids.to(s.torch_device)}
        f = vae_factor(vae)
        scheduler.set_timesteps(s.steps)
        latents = noise((s.batch, unet.config.in_channels, h // f, w // f), s)
        latents = latents * scheduler.init_noise_sigma
        for _, t in run.steps("denoise", scheduler.timesteps, identical=True):
            with run.phase("scheduler", "denoise"):
                model_in = torch.cat([latents, latents]) if s.cfg else latents
                model_in = scheduler.scale_model_input(model_in, t)
            with run.phase("unet", "denoise"):
                pred = unet(model_in, t, encoder_hidden_states=context, added_cond_kwargs=cond)
            with run.phase("scheduler", "denoise"):
                pred = guide(pred.sample, SDXL_GUIDANCE) if s.cfg else pred.sample
                latents = scheduler.step(pred, t, latents).prev_sample
        with run.phase("vae", "decode_image"):
            return vae.decode(latents / vae.config.scaling_factor).sample
