"""Imagen-style pixel cascade, built from open stand-ins (Imagen itself has no public weights).

T5-XXL encoder → 64² base UNet → 64→256 SR UNet → 256→1024 SR stage, each stage a CFG denoise
loop, mirroring the diffusers pipelines of the stand-ins:

* ``text_encoder``: T5-v1.1-XXL encoder as shipped with DeepFloyd IF (77 tokens, as IF pads);
* ``unet``: DeepFloyd IF-I-XL (``IFPipeline``: DDPM with learned variance and dynamic
  thresholding — Imagen's own sampler trick — CFG 7.0);
* ``sr1``: DeepFloyd IF-II-L (``IFSuperResolutionPipeline``: bilinear-upsampled 64² image,
  noise-augmented at level 250, concatenated to the noisy 256² image; CFG 4.0);
* ``sr2`` + ``sr2_vae``: Stable Diffusion x4 upscaler (``StableDiffusionUpscalePipeline``:
  f=4 latent UNet on the 256² image noise-augmented at level 20, DDIM v-prediction, CFG 9.0),
  then its VAE decodes the 256² latent to 1024².

Text for ``sr2``: Imagen conditions every stage on the same T5 states, but the x4 upscaler's
cross-attention is 1024 wide (it was trained on OpenCLIP ViT-H states). When the widths
differ (full size: 4096 vs 1024) the stage gets zeros of shape (rows, 77, 1024) — the same
token count as T5 and OpenCLIP — so its cross-attention costs exactly what it would with real
states; the stand-in's own OpenCLIP-H tower (~340M params, one 77-token forward, <0.1% of the
run) is not built. The tiny ``sr2`` is 32 wide like the tiny T5, which then feeds it directly.

``--steps`` sets the step count of all three stages (default 50 each); ``--res`` is the final
output: the base runs at res/16 and the first SR stage at res/4.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from genscope.capture.context import AxisRules, Runner
from genscope.workloads.base import Built, Settings, Workload
from genscope.workloads.diffusion_common import cfg_rows, guide, noise, prompt_ids, vae_factor

TEXT_TOKENS = 77  # IFPipeline.encode_prompt pads T5 prompts to 77
BASE_GUIDANCE, SR1_GUIDANCE, SR2_GUIDANCE = 7.0, 4.0, 9.0  # pipeline defaults
SR1_NOISE_LEVEL, SR2_NOISE_LEVEL = 250, 20  # noise augmentation of the low-res input
BASE_DIVISOR, SR1_DIVISOR = 16, 4  # final res / stage res


def if_scheduler() -> DDPMScheduler:
    """DeepFloyd IF's stage I/II sampler (scheduler_config.json): DDPM, cosine betas, learned
    variance range, dynamic thresholding."""
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        variance_type="learned_range",
        prediction_type="epsilon",
        clip_sample=True,
        thresholding=True,
        dynamic_thresholding_ratio=0.95,
        sample_max_value=1.5,
    )


def if_noising_scheduler() -> DDPMScheduler:
    """IF-II's ``image_noising_scheduler`` (noise augmentation of the upsampled input)."""
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")


def upscaler_scheduler() -> DDIMScheduler:
    """The x4 upscaler's sampler (scheduler_config.json): DDIM, v-prediction."""
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def upscaler_noising_scheduler() -> DDPMScheduler:
    """The x4 upscaler's ``low_res_scheduler`` (noise augmentation of the 256² input)."""
    return DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="scaled_linear"
    )


class Imagen(Workload):
    name = "imagen"
    task = "tti"
    family = "diffusion-unet"
    description = (
        "Imagen-style pixel cascade (stand-ins; Imagen is closed): T5-v1.1-XXL encoder → "
        "DeepFloyd IF-I-XL 64² base → IF-II-L SR 64→256 → SD x4 upscaler 256→1024 (+ its f=4 "
        "VAE decode); CFG in every stage, --steps sets all three. The x4 upscaler gets zero "
        "1024-wide text states (its own OpenCLIP-H tower is not built)"
    )
    components = {
        "text_encoder": "text_encoder",
        "unet": "unet",
        "sr1": "sr1",
        "sr2": "sr2",
        "sr2_vae": "sr2_vae",
    }
    defaults = {
        "full": {"res": (1024, 1024), "steps": 50, "cfg": True},
        "tiny": {"res": (128, 128), "steps": 2, "cfg": True},
    }
    # base at res/16 through the 4-level IF-I UNet (÷8), so the output side is a multiple of 128
    res_factor = 128

    def extras(self, models: dict[str, nn.Module], s: Settings) -> dict[str, Any]:
        return {
            "base_scheduler": if_scheduler(),
            "sr1_scheduler": if_scheduler(),
            "sr1_noising": if_noising_scheduler(),
            "sr2_scheduler": upscaler_scheduler(),
            "sr2_noising": upscaler_noising_scheduler(),
        }

    def axis_rules(self) -> AxisRules:
        axes = AxisRules()
        axes.add("text_encoder", "text")
        for component in ("unet", "sr1", "sr2", "sr2_vae"):
            axes.add(component, "spatial")
        return axes

    # ------------------------------------------------------------------ stages
    def _pixel_stage(
        self,
        run: Runner,
        phase: str,
        component: str,
        unet: nn.Module,
        scheduler: DDPMScheduler,
        shape: tuple[int, ...],
        s: Settings,
        context: torch.Tensor,
        guidance: float,
        low_res: torch.Tensor | None = None,
        noise_level: torch.Tensor | None = None,
        seed: int = 0,
    ) -> torch.Tensor:
        """One IF stage: a pixel-space CFG loop on a UNet predicting noise + variance."""
        scheduler.set_timesteps(s.steps)
        images = noise(shape, s, seed=seed) * scheduler.init_noise_sigma
        channels = shape[1]
        for _, t in run.steps(phase, scheduler.timesteps, identical=True):
            with run.phase("scheduler", phase):
                model_in = images if low_res is None else torch.cat([images, low_res], dim=1)
                model_in = torch.cat([model_in, model_in]) if s.cfg else model_in
                model_in = scheduler.scale_model_input(model_in, t)
            with run.phase(component, phase):
                out = unet(model_in, t, encoder_hidden_states=context, class_labels=noise_level)
            with run.phase("scheduler", phase):
                eps, variance = out.sample.split(channels, dim=1)
                if s.cfg:
                    eps = guide(eps, guidance)
                    variance = variance.chunk(2)[1]
                pred = torch.cat([eps, variance], dim=1)
                images = scheduler.step(pred, t, images).prev_sample
        return images

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        m, x = built.models, built.extras
        device, rows = s.torch_device, cfg_rows(s)
        h, w = s.res  # type: ignore[misc]
        # T5 on negative ("") and positive prompts, as IFPipeline.encode_prompt does
        encoder = m["text_encoder"]
        with run.phase("text_encoder", "encode"):
            context = encoder(prompt_ids(encoder, rows, TEXT_TOKENS, device))[0]

        # Stage I: 64² base
        base_hw = (h // BASE_DIVISOR, w // BASE_DIVISOR)
        image = self._pixel_stage(
            run, "denoise", "unet", m["unet"], x["base_scheduler"],
            (s.batch, m["unet"].config.in_channels, *base_hw), s, context, BASE_GUIDANCE,
        )  # fmt: skip

        # Stage II: 64 → 256, conditioned on the noise-augmented upsampled base image
        sr1, sr1_hw = m["sr1"], (h // SR1_DIVISOR, w // SR1_DIVISOR)
        with run.phase("scheduler", "denoise_sr1"):
            up = F.interpolate(image, sr1_hw, mode="bilinear", align_corners=True)
            level = torch.full((s.batch,), SR1_NOISE_LEVEL, dtype=torch.long)
            up = x["sr1_noising"].add_noise(up, noise(up.shape, s, seed=1), level)
            level = torch.cat([level, level]) if s.cfg else level
        image = self._pixel_stage(
            run, "denoise_sr1", "sr1", sr1, x["sr1_scheduler"],
            (s.batch, sr1.config.in_channels // 2, *sr1_hw), s, context, SR1_GUIDANCE,
            low_res=up, noise_level=level.to(device), seed=4,
        )  # fmt: skip

        # Stage III: 256 → 1024 with the x4 upscaler (latent at the input resolution, f=4 VAE)
        sr2, vae, scheduler = m["sr2"], m["sr2_vae"], x["sr2_scheduler"]
        width = sr2.config.cross_attention_dim
        if context.shape[-1] != width:  # documented stand-in: zero states of the right width
            context = torch.zeros(rows, TEXT_TOKENS, width, dtype=s.torch_dtype, device=device)
        with run.phase("scheduler", "denoise_sr2"):
            level = torch.full((s.batch,), SR2_NOISE_LEVEL, dtype=torch.long)
            low = x["sr2_noising"].add_noise(image, noise(image.shape, s, seed=2), level)
            if s.cfg:
                low, level = torch.cat([low, low]), torch.cat([level, level])
        level = level.to(device)
        latent_ch = vae.config.latent_channels
        scheduler.set_timesteps(s.steps)
        latents = noise((s.batch, latent_ch, *sr1_hw), s, seed=3) * scheduler.init_noise_sigma
        for _, t in run.steps("denoise_sr2", scheduler.timesteps, identical=True):
            with run.phase("scheduler", "denoise_sr2"):
                model_in = torch.cat([latents, latents]) if s.cfg else latents
                model_in = torch.cat([scheduler.scale_model_input(model_in, t), low], dim=1)
            with run.phase("sr2", "denoise_sr2"):
                pred = sr2(model_in, t, encoder_hidden_states=context, class_labels=level).sample
            with run.phase("scheduler", "denoise_sr2"):
                pred = guide(pred, SR2_GUIDANCE) if s.cfg else pred
                latents = scheduler.step(pred, t, latents).prev_sample
        assert vae_factor(vae) == SR1_DIVISOR  # the f=4 VAE brings res/4 back to res
        with run.phase("sr2_vae", "decode_image"):
            return vae.decode(latents / vae.config.scaling_factor).sample
