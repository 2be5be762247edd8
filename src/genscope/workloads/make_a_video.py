"""Make-A-Video-style text-to-video UNet, with ModelScope T2V as the open stand-in.

Make-A-Video (Singer et al. 2022) has no public weights. ModelScope ``text-to-video-ms-1.7b``
is the same archetype — a latent video UNet with pseudo-3D convolutions (spatial conv + 1-D
temporal conv) and separate spatial / temporal attention — run through diffusers
``UNet3DConditionModel``. The loop mirrors ``TextToVideoSDPipeline``: OpenCLIP-H text states
(negative + positive prompt), DDIM with CFG 9.0, then every frame decoded by the SD-style VAE
as one batch. Make-A-Video's frame-interpolation and spatial SR networks are not part of the
stand-in.
"""

from __future__ import annotations

import torch

from genscope.capture.context import AxisRules, Runner
from genscope.workloads.base import Built, Settings
from genscope.workloads.diffusion_common import guide, noise, vae_factor
from genscope.workloads.sd15 import LatentDiffusion

MODELSCOPE_GUIDANCE = 9.0  # TextToVideoSDPipeline default
#: UNet3DConditionModel modules that attend across frames (the rest attend within a frame)
TEMPORAL_MODULES = r"(^|\.)(temp_attentions|transformer_in)\."


class MakeAVideo(LatentDiffusion):
    name = "make-a-video"
    task = "ttv"
    family = "diffusion-unet"
    description = (
        "Make-A-Video archetype (closed; stand-in ModelScope text-to-video-ms-1.7b): OpenCLIP-H "
        "text encoder → pseudo-3D UNet3DConditionModel with spatial + temporal attention (CFG, "
        "DDIM) → per-frame VAE decode. Frame interpolation and SR stages not included"
    )
    components = {"text_encoder": "text_encoder", "unet": "unet", "vae": "vae"}
    config_dir = "make-a-video"
    defaults = {
        "full": {"res": (256, 256), "frames": 16, "steps": 50, "cfg": True},
        "tiny": {"res": (64, 64), "frames": 4, "steps": 2, "cfg": True},
    }
    res_factor = 64  # f=8 VAE, then a 4-level UNet (÷8)

    def axis_rules(self) -> AxisRules:
        axes = AxisRules()
        axes.add("text_encoder", "text")
        axes.add("unet", "spatial", [(TEMPORAL_MODULES, "temporal")])
        axes.add("vae", "spatial")
        return axes

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        unet, vae = built.models["unet"], built.models["vae"]
        scheduler = built.extras["scheduler"]  # DDIM, SD training schedule (ModelScope's)
        context = self.encode_prompt(built, s, run)
        h, w = s.res  # type: ignore[misc]
        f, frames = vae_factor(vae), s.frames
        channels = unet.config.in_channels
        scheduler.set_timesteps(s.steps)
        latents = noise((s.batch, channels, frames, h // f, w // f), s)
        latents = latents * scheduler.init_noise_sigma
        for _, t in run.steps("denoise", scheduler.timesteps, identical=True):
            with run.phase("scheduler", "denoise"):
                model_in = torch.cat([latents, latents]) if s.cfg else latents
                model_in = scheduler.scale_model_input(model_in, t)
            with run.phase("unet", "denoise"):
                pred = unet(model_in, t, encoder_hidden_states=context).sample
            with run.phase("scheduler", "denoise"):
                pred = guide(pred, MODELSCOPE_GUIDANCE) if s.cfg else pred
                # the pipeline steps the scheduler on frames folded into the batch
                b, c, n, lh, lw = latents.shape
                flat = latents.permute(0, 2, 1, 3, 4).reshape(b * n, c, lh, lw)
                pred = pred.permute(0, 2, 1, 3, 4).reshape(b * n, c, lh, lw)
                flat = scheduler.step(pred, t, flat).prev_sample
                latents = flat.reshape(b, n, c, lh, lw).permute(0, 2, 1, 3, 4)
        with run.phase("vae", "decode_video"):
            b, c, n, lh, lw = latents.shape
            flat = (latents / vae.config.scaling_factor).permute(0, 2, 1, 3, 4)
            image = vae.decode(flat.reshape(b * n, c, lh, lw)).sample
            return image.reshape(b, n, *image.shape[1:]).permute(0, 2, 1, 3, 4)
