"""Video DiTs with full 3D attention: CogVideoX (2B / 5B) and Wan 2.1 (1.3B / 14B).

Both denoise a causal-VAE latent video (first frame kept, then 4× temporal and 8× spatial
compression) as one token sequence of ``latent_frames · (H/16) · (W/16)`` patches:

* ``cogvideox`` — ``CogVideoXPipeline``: T5-XXL (226 tokens); the text tokens are concatenated
  to the video tokens, so every block attends over ``226 + latent_frames·H·W/16²`` tokens (the
  5B adds 3D RoPE on the video part); CFG 6.0 on a batched negative/positive forward; the
  ``CogVideoXDDIMScheduler`` (v-prediction, zero-SNR trailing schedule); then the causal 3D VAE
  decodes the whole latent video (internally in chunks of latent frames with a conv cache).
  Both variants share the shipped VAE config (the 5B's only differs in ``scaling_factor``).
* ``wan`` — ``WanPipeline``: UMT5-XXL (512 tokens) → Wan transformer (3D self-attention over
  the video tokens with RoPE, cross-attention to the 512 text tokens); CFG 5.0 as two separate
  forwards per step (conditional, then unconditional), as the pipeline does; then the Wan
  causal VAE decodes the latent video frame by frame with its feature cache. The shipped
  sampler is UniPC multistep (flow_shift 3.0 at 480p), whose predictor/corrector order changes
  over the first steps; genscope samples with flow-matching Euler at the same shift so every
  step is identical and the loop can be traced once (the transformer work per step is the same).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import CogVideoXDDIMScheduler, FlowMatchEulerDiscreteScheduler
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid
from torch import nn

from genscope.capture.context import AxisRules, Runner
from genscope.workloads.base import Built, Settings, Workload
from genscope.workloads.diffusion_common import (
    cfg_rows,
    check_video_frames,
    guide,
    latent_frames,
    noise,
    prompt_ids,
)

TEMPORAL_FACTOR, SPATIAL_FACTOR = 4, 8  # both causal video VAEs


class _VideoDiT(Workload):
    task = "ttv"
    family = "diffusion-dit"
    res_factor = SPATIAL_FACTOR * 2  # 8× VAE, 2×2 spatial patches
    variant_components = ("transformer",)
    components = {"text_encoder": "text_encoder", "transformer": "transformer", "vae": "vae"}

    def validate(self, s: Settings) -> None:
        super().validate(s)
        if s.frames is not None:
            check_video_frames(self.name, s.frames, TEMPORAL_FACTOR)

    def axis_rules(self) -> AxisRules:
        axes = AxisRules()
        axes.add("text_encoder", "text")
        axes.add("transformer", "joint")
        axes.add("vae", "spatial")
        return axes


# ----------------------------------------------------------------------------- CogVideoX
COGVIDEOX_GUIDANCE = 6.0
#: CogVideoXDDIMScheduler's snr_shift_scale per variant (scheduler_config.json)
COGVIDEOX_SNR_SHIFT = {"2b": 3.0, "5b": 1.0}


class CogVideoX(_VideoDiT):
    name = "cogvideox"
    description = (
        "CogVideoX (2B / 5B): T5-XXL (226 tokens) → CogVideoXTransformer3DModel, full 3D "
        "attention over text + video tokens (CFG, CogVideoX DDIM) → causal 3D VAE decode"
    )
    variants = ("2b", "5b")
    default_variant = "2b"
    defaults = {
        "full": {"res": (480, 720), "frames": 49, "steps": 50, "cfg": True},
        "tiny": {"res": (64, 64), "frames": 9, "steps": 2, "cfg": True},
    }

    def extras(self, models: dict[str, nn.Module], s: Settings) -> dict[str, Any]:
        scheduler = CogVideoXDDIMScheduler(
            num_train_timesteps=1000,
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            clip_sample=False,
            prediction_type="v_prediction",
            rescale_betas_zero_snr=True,
            set_alpha_to_one=True,
            snr_shift_scale=COGVIDEOX_SNR_SHIFT[s.variant or self.default_variant],
            steps_offset=0,
            timestep_spacing="trailing",
        )
        return {"scheduler": scheduler}

    @staticmethod
    def rotary(dit: nn.Module, h: int, w: int, frames: int, device: str) -> Any:
        """3D RoPE for the video tokens (``CogVideoXPipeline._prepare_rotary_positional_embeddings``
        for the 1.0 models, which have no temporal patching)."""
        cfg = dit.config
        if not cfg.use_rotary_positional_embeddings:
            return None
        p = cfg.patch_size
        grid = (h // (SPATIAL_FACTOR * p), w // (SPATIAL_FACTOR * p))
        crops = get_resize_crop_region_for_grid(grid, cfg.sample_width // p, cfg.sample_height // p)
        return get_3d_rotary_pos_embed(
            embed_dim=cfg.attention_head_dim,
            crops_coords=crops,
            grid_size=grid,
            temporal_size=frames,
            device=device,
        )

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        encoder, dit, vae = (built.models[k] for k in ("text_encoder", "transformer", "vae"))
        scheduler: CogVideoXDDIMScheduler = built.extras["scheduler"]
        device, rows = s.torch_device, cfg_rows(s)
        tokens = dit.config.max_text_seq_length  # the pipeline's max_sequence_length (226)
        with run.phase("text_encoder", "encode"):
            context = encoder(prompt_ids(encoder, rows, tokens, device))[0]
        h, w = s.res  # type: ignore[misc]
        n = latent_frames(s.frames, vae.config.temporal_compression_ratio)  # type: ignore[arg-type]
        shape = (s.batch, n, dit.config.in_channels, h // SPATIAL_FACTOR, w // SPATIAL_FACTOR)
        scheduler.set_timesteps(s.steps)
        latents = noise(shape, s) * scheduler.init_noise_sigma
        rope = self.rotary(dit, h, w, n, device)
        for _, t in run.steps("denoise", scheduler.timesteps, identical=True):
            with run.phase("scheduler", "denoise"):
                model_in = torch.cat([latents, latents]) if s.cfg else latents
                model_in = scheduler.scale_model_input(model_in, t)
            with run.phase("transformer", "denoise"):
                pred = dit(
                    hidden_states=model_in,
                    encoder_hidden_states=context,
                    timestep=t.expand(rows).to(device),
                    image_rotary_emb=rope,
                ).sample
            with run.phase("scheduler", "denoise"):
                pred = guide(pred.float(), COGVIDEOX_GUIDANCE) if s.cfg else pred.float()
                latents = scheduler.step(pred, t, latents).prev_sample.to(s.torch_dtype)
        with run.phase("vae", "decode_video"):
            latents = latents.permute(0, 2, 1, 3, 4) / vae.config.scaling_factor
            return vae.decode(latents).sample  # (batch, 3, frames, H, W)


# ----------------------------------------------------------------------------- Wan
WAN_TOKENS, WAN_GUIDANCE, WAN_SHIFT = 512, 5.0, 3.0


class Wan(_VideoDiT):
    name = "wan"
    description = (
        "Wan 2.1 T2V (1.3B / 14B): UMT5-XXL (512 tokens) → WanTransformer3DModel, full 3D "
        "self-attention over video tokens + cross-attention to text (CFG as two forwards; "
        "flow-matching Euler in place of the shipped UniPC) → Wan causal 3D VAE decode"
    )
    variants = ("1.3b", "14b")
    default_variant = "1.3b"
    defaults = {
        "full": {"res": (480, 832), "frames": 81, "steps": 50, "cfg": True},
        "tiny": {"res": (64, 64), "frames": 5, "steps": 2, "cfg": True},
    }

    def extras(self, models: dict[str, nn.Module], s: Settings) -> dict[str, Any]:
        return {
            "scheduler": FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=WAN_SHIFT)
        }

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        encoder, dit, vae = (built.models[k] for k in ("text_encoder", "transformer", "vae"))
        scheduler: FlowMatchEulerDiscreteScheduler = built.extras["scheduler"]
        device, rows = s.torch_device, cfg_rows(s)
        tokens = WAN_TOKENS if s.size == "full" else 16  # tiny: the configs' verified shapes
        with run.phase("text_encoder", "encode"):  # negative + positive prompt in one batch
            context = encoder(prompt_ids(encoder, rows, tokens, device))[0]
        negative, positive = context.chunk(2) if s.cfg else (None, context)
        h, w = s.res  # type: ignore[misc]
        vcfg = vae.config
        n = latent_frames(s.frames, vcfg.scale_factor_temporal)  # type: ignore[arg-type]
        f = vcfg.scale_factor_spatial
        shape = (s.batch, dit.config.in_channels, n, h // f, w // f)
        scheduler.set_timesteps(s.steps)
        latents = noise(shape, s)
        passes = [("cond", positive), ("uncond", negative)] if s.cfg else [("cond", positive)]
        for _, t in run.steps("denoise", scheduler.timesteps, identical=True):
            timestep = t.expand(s.batch).to(device)
            preds: dict[str, torch.Tensor] = {}
            # The conditional and unconditional forwards have the same ops and shapes (only the
            # text states differ), so an analytic trace runs one and counts it twice.
            for _, (key, text) in run.steps("cfg_pass", passes, identical=True):
                with run.phase("transformer", "denoise"):
                    preds[key] = dit(
                        hidden_states=latents, timestep=timestep, encoder_hidden_states=text
                    ).sample
            with run.phase("scheduler", "denoise"):
                pred = preds["cond"]
                if s.cfg:  # when collapsed, the traced pass stands in for both
                    uncond = preds.get("uncond", pred)
                    pred = uncond + WAN_GUIDANCE * (pred - uncond)
                latents = scheduler.step(pred, t, latents).prev_sample
        with run.phase("vae", "decode_video"):
            mean = torch.tensor(vcfg.latents_mean, dtype=s.torch_dtype).view(1, -1, 1, 1, 1)
            std = torch.tensor(vcfg.latents_std, dtype=s.torch_dtype).view(1, -1, 1, 1, 1)
            latents = latents * std.to(device) + mean.to(device)
            return vae.decode(latents).sample  # (batch, 3, frames, H, W)
