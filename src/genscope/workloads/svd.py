"""Stable Video Diffusion XT (image-to-video): CLIP image encoder → spatio-temporal UNet → VAE.

Mirrors diffusers ``StableVideoDiffusionPipeline`` at its published XT defaults (25 frames,
576×1024, 25 Euler steps, fps 7, motion bucket 127, noise augmentation 0.02):

* the conditioning image is encoded twice: by the OpenCLIP-H vision tower at 224² (one
  ``image_embeds`` token, the UNet's cross-attention context; zeros for the negative half) and
  by the VAE encoder at full resolution (its latent is concatenated to every noisy frame);
* the UNet denoises all frames at once with per-frame CFG scales ramping 1.0 → 3.0;
* ``AutoencoderKLTemporalDecoder`` decodes all frames in one chunk (the pipeline's default
  ``decode_chunk_size`` is the frame count).

The pipeline resizes the image to 224² with an anti-aliasing blur; here it is a plain bicubic
resize (a preprocessing step of a few elementwise ops).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from diffusers import EulerDiscreteScheduler
from torch import nn

from genscope.capture.context import AxisRules, Runner
from genscope.workloads.base import Built, Settings, Workload
from genscope.workloads.diffusion_common import noise, vae_factor

FPS, MOTION_BUCKET, NOISE_AUG = 7, 127, 0.02
MIN_GUIDANCE, MAX_GUIDANCE = 1.0, 3.0
#: UNetSpatioTemporalConditionModel modules that attend across frames
TEMPORAL_MODULES = r"(^|\.)temporal_transformer_blocks\."


def svd_scheduler() -> EulerDiscreteScheduler:
    """SVD-XT's scheduler_config.json: Euler, v-prediction, Karras sigmas, continuous t."""
    return EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        interpolation_type="linear",
        sigma_max=700.0,
        sigma_min=0.002,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
        steps_offset=1,
    )


class SVD(Workload):
    name = "svd"
    task = "i2v"
    family = "diffusion-unet"
    description = (
        "Stable Video Diffusion XT (image-to-video): OpenCLIP-H image encoder + VAE encode of the "
        "conditioning image → UNetSpatioTemporalConditionModel (spatial + temporal attention, "
        "per-frame CFG, Euler) → AutoencoderKLTemporalDecoder"
    )
    components = {"image_encoder": "image_encoder", "unet": "unet", "vae": "vae"}
    defaults = {
        "full": {"res": (576, 1024), "frames": 25, "steps": 25, "cfg": True},
        "tiny": {"res": (64, 64), "frames": 4, "steps": 2, "cfg": True},
    }
    res_factor = 64  # f=8 VAE, then a 4-level UNet (÷8)

    def build(self, s: Settings) -> Built:
        built = super().build(s)
        # AlphaBlender creates its mix_factor with the legacy ``torch.Tensor([...])`` constructor,
        # which ignores the ``torch.device`` context the components are built under: move the
        # stragglers (CPU scalars) to the run's device so full-size runs stay on ``meta``.
        for model in built.models.values():
            model.to(device=s.torch_device)
        return built

    def extras(self, models: dict[str, nn.Module], s: Settings) -> dict[str, Any]:
        return {"scheduler": svd_scheduler()}

    def axis_rules(self) -> AxisRules:
        axes = AxisRules()
        axes.add("image_encoder", "spatial")
        axes.add("unet", "spatial", [(TEMPORAL_MODULES, "temporal")])
        axes.add("vae", "spatial")
        return axes

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        encoder, unet, vae = (built.models[k] for k in ("image_encoder", "unet", "vae"))
        scheduler: EulerDiscreteScheduler = built.extras["scheduler"]
        device, frames = s.torch_device, s.frames
        h, w = s.res  # type: ignore[misc]
        image = noise((s.batch, 3, h, w), s, seed=1).clamp(-1, 1)  # the conditioning image

        def with_negative(x: torch.Tensor) -> torch.Tensor:  # zeros for the unconditional half
            return torch.cat([torch.zeros_like(x), x]) if s.cfg else x

        size = encoder.config.image_size
        with run.phase("image_encoder", "encode"):
            pixels = F.interpolate(image, (size, size), mode="bicubic", align_corners=True)
            context = with_negative(encoder(pixels).image_embeds.unsqueeze(1))
        with run.phase("vae", "encode_image"):
            image = image + NOISE_AUG * noise(image.shape, s, seed=2)
            cond = with_negative(vae.encode(image).latent_dist.mode())
            cond = cond.unsqueeze(1).repeat(1, frames, 1, 1, 1)
        time_ids = torch.tensor([[FPS - 1, MOTION_BUCKET, NOISE_AUG]], dtype=s.torch_dtype)
        time_ids = time_ids.repeat(context.shape[0], 1).to(device)
        scale = torch.linspace(MIN_GUIDANCE, MAX_GUIDANCE, frames, dtype=s.torch_dtype)
        scale = scale.reshape(1, frames, 1, 1, 1).to(device)

        f = vae_factor(vae)
        scheduler.set_timesteps(s.steps)
        channels = vae.config.latent_channels
        latents = noise((s.batch, frames, channels, h // f, w // f), s)
        latents = latents * scheduler.init_noise_sigma
        for _, t in run.steps("denoise", scheduler.timesteps, identical=True):
            with run.phase("scheduler", "denoise"):
                model_in = torch.cat([latents, latents]) if s.cfg else latents
                model_in = torch.cat([scheduler.scale_model_input(model_in, t), cond], dim=2)
            with run.phase("unet", "denoise"):
                pred = unet(model_in, t, encoder_hidden_states=context, added_time_ids=time_ids)
            with run.phase("scheduler", "denoise"):
                pred = pred.sample
                if s.cfg:
                    uncond, text = pred.chunk(2)
                    pred = uncond + scale * (text - uncond)
                latents = scheduler.step(pred, t, latents).prev_sample
        with run.phase("vae", "decode_video"):
            flat = latents.flatten(0, 1) / vae.config.scaling_factor
            video = vae.decode(flat, num_frames=frames).sample
            return video.reshape(s.batch, frames, *video.shape[1:]).permute(0, 2, 1, 3, 4)
