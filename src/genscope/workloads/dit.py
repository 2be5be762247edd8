"""Image DiTs: PixArt-α (cross-attention DiT), SD3 and FLUX.1 (MM-DiT, joint text+image attention).

Each loop mirrors its diffusers pipeline at the published 1024² defaults:

* ``pixart`` — ``PixArtAlphaPipeline``: T5-XXL (120 tokens, with attention mask) → PixArt-α XL/2
  (self-attention over latent patches, cross-attention to T5), CFG 4.5, 20 steps. The shipped
  sampler is DPM-Solver++ (multistep: its update differs between the first, middle and last
  steps); genscope samples with DDIM on PixArt's training schedule so every step is identical
  and the loop can be traced once. The transformer work per step is the same either way.
* ``sd3`` — ``StableDiffusion3Pipeline``: CLIP-L + CLIP-G (penultimate states, zero-padded to
  T5's width) + T5-XXL (256 tokens) → 333 context tokens; SD3-medium MM-DiT where image and
  text tokens attend jointly; CFG 7.0, flow-matching Euler (shift 3), 28 steps.
* ``flux`` — ``FluxPipeline`` for FLUX.1-dev: CLIP-L pooled + T5-XXL (512 tokens); latents packed
  2×2 into tokens; 19 double-stream + 38 single-stream blocks over 512 + 4096 joint tokens; no
  CFG (guidance-distilled: the scale 3.5 enters through the guidance embedding), flow-matching
  Euler with resolution-dependent shift, 28 steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler
from torch import nn

from genscope.capture.context import AxisRules, Runner
from genscope.workloads.base import Built, Settings, Workload
from genscope.workloads.diffusion_common import cfg_rows, guide, noise, prompt_ids, vae_factor

CLIP_TOKENS = 77


def t5_tokens(s: Settings, full: int) -> int:
    """T5 prompt length: the pipeline's ``max_sequence_length`` at full size; 16 at tiny size
    (the tiny configs' verified shapes)."""
    return full if s.size == "full" else 16


class _ImageDiT(Workload):
    """Shared metadata of the 1024² image DiTs (f=8 VAE, 2×2 patches: sides multiple of 16)."""

    task = "tti"
    family = "diffusion-dit"
    res_factor = 16

    def decode(self, vae: nn.Module, latents: torch.Tensor, run: Runner) -> torch.Tensor:
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        with run.phase("vae", "decode_image"):
            return vae.decode(latents / vae.config.scaling_factor + shift).sample


# --------------------------------------------------------------------------------- PixArt
PIXART_TOKENS, PIXART_GUIDANCE = 120, 4.5


class PixArt(_ImageDiT):
    name = "pixart"
    description = (
        "PixArt-α XL/2 1024px (DiT with cross-attention): T5-XXL encoder (120 tokens) → "
        "PixArtTransformer2DModel (28 blocks, CFG; DDIM in place of the shipped DPM-Solver++) → "
        "VAE decode"
    )
    components = {"text_encoder": "text_encoder", "transformer": "transformer", "vae": "vae"}
    defaults = {
        "full": {"res": (1024, 1024), "steps": 20, "cfg": True},
        "tiny": {"res": (64, 64), "steps": 2, "cfg": True},
    }

    def extras(self, models: dict[str, nn.Module], s: Settings) -> dict[str, Any]:
        # PixArt-α's training schedule (linear betas 1e-4..2e-2, epsilon prediction)
        scheduler = DDIMScheduler(
            num_train_timesteps=1000,
            beta_start=0.0001,
            beta_end=0.02,
            beta_schedule="linear",
            prediction_type="epsilon",
            clip_sample=False,
            set_alpha_to_one=False,
        )
        return {"scheduler": scheduler}

    def axis_rules(self) -> AxisRules:
        axes = AxisRules()
        axes.add("text_encoder", "text")
        axes.add("transformer", "spatial")
        axes.add("vae", "spatial")
        return axes

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        encoder, dit, vae = (built.models[k] for k in ("text_encoder", "transformer", "vae"))
        scheduler: DDIMScheduler = built.extras["scheduler"]
        device, rows = s.torch_device, cfg_rows(s)
        tokens = t5_tokens(s, PIXART_TOKENS)
        # The prompt fills all ``tokens`` positions: an all-ones mask, which transformers' T5
        # drops anyway (and cannot inspect on meta), so the encoder gets none; the DiT's
        # cross-attention does take the mask, as a bias, exactly as in the pipeline.
        mask = torch.ones(rows, tokens, dtype=torch.long, device=device)
        with run.phase("text_encoder", "encode"):
            context = encoder(prompt_ids(encoder, rows, tokens, device))[0]
        h, w = s.res  # type: ignore[misc]
        cond: dict[str, Any] = {"resolution": None, "aspect_ratio": None}
        if dit.use_additional_conditions:  # micro-conditions (size and aspect-ratio embedders)
            resolution = torch.tensor([[h, w]], dtype=s.torch_dtype).repeat(rows, 1)
            ratio = torch.tensor([[h / w]], dtype=s.torch_dtype).repeat(rows, 1)
            cond = {"resolution": resolution.to(device), "aspect_ratio": ratio.to(device)}
        f, channels = vae_factor(vae), dit.config.in_channels
        scheduler.set_timesteps(s.steps)
        latents = noise((s.batch, channels, h // f, w // f), s) * scheduler.init_noise_sigma
        for _, t in run.steps("denoise", scheduler.timesteps, identical=True):
            with run.phase("scheduler", "denoise"):
                model_in = torch.cat([latents, latents]) if s.cfg else latents
                model_in = scheduler.scale_model_input(model_in, t)
            with run.phase("transformer", "denoise"):
                pred = dit(
                    model_in,
                    encoder_hidden_states=context,
                    encoder_attention_mask=mask,
                    timestep=t.expand(rows).to(device),
                    added_cond_kwargs=cond,
                ).sample
            with run.phase("scheduler", "denoise"):
                pred = guide(pred, PIXART_GUIDANCE) if s.cfg else pred
                if dit.config.out_channels // 2 == channels:  # learned sigma: keep epsilon
                    pred = pred.chunk(2, dim=1)[0]
                latents = scheduler.step(pred, t, latents).prev_sample
        return self.decode(vae, latents, run)


# --------------------------------------------------------------------------------- SD3
SD3_T5_TOKENS, SD3_GUIDANCE, SD3_SHIFT = 256, 7.0, 3.0


class SD3(_ImageDiT):
    name = "sd3"
    description = (
        "Stable Diffusion 3 medium (MM-DiT): CLIP-L + CLIP-G + T5-XXL (77 + 256 context tokens) "
        "→ SD3Transformer2DModel, 24 joint text+image attention blocks (CFG, flow-matching "
        "Euler) → 16-channel VAE decode"
    )
    components = {
        "text_encoder": "text_encoder",
        "text_encoder_2": "text_encoder_2",
        "text_encoder_3": "text_encoder_3",
        "transformer": "transformer",
        "vae": "vae",
    }
    defaults = {
        "full": {"res": (1024, 1024), "steps": 28, "cfg": True},
        "tiny": {"res": (64, 64), "steps": 2, "cfg": True},
    }

    def extras(self, models: dict[str, nn.Module], s: Settings) -> dict[str, Any]:
        # SD3-medium's scheduler_config.json: flow-matching Euler, shift 3.0
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=SD3_SHIFT)
        return {"scheduler": scheduler}

    def axis_rules(self) -> AxisRules:
        axes = AxisRules()
        for encoder in ("text_encoder", "text_encoder_2", "text_encoder_3"):
            axes.add(encoder, "text")
        axes.add("transformer", "joint")
        axes.add("vae", "spatial")
        return axes

    def encode_prompt(
        self, built: Built, s: Settings, run: Runner
    ) -> tuple[torch.Tensor, torch.Tensor]:
        device, rows = s.torch_device, cfg_rows(s)
        hidden, pooled = [], []
        for name in ("text_encoder", "text_encoder_2"):
            clip = built.models[name]
            with run.phase(name, "encode"):
                out = clip(prompt_ids(clip, rows, CLIP_TOKENS, device), output_hidden_states=True)
                hidden.append(out.hidden_states[-2])
                pooled.append(out.text_embeds)
        t5 = built.models["text_encoder_3"]
        with run.phase("text_encoder_3", "encode"):
            t5_states = t5(prompt_ids(t5, rows, t5_tokens(s, SD3_T5_TOKENS), device))[0]
            clip_states = torch.cat(hidden, dim=-1)
            clip_states = F.pad(clip_states, (0, t5_states.shape[-1] - clip_states.shape[-1]))
            context = torch.cat([clip_states, t5_states], dim=-2)
        return context, torch.cat(pooled, dim=-1)

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        dit, vae = built.models["transformer"], built.models["vae"]
        scheduler: FlowMatchEulerDiscreteScheduler = built.extras["scheduler"]
        device, rows = s.torch_device, cfg_rows(s)
        context, pooled = self.encode_prompt(built, s, run)
        h, w = s.res  # type: ignore[misc]
        f = vae_factor(vae)
        scheduler.set_timesteps(s.steps)
        latents = noise((s.batch, dit.config.in_channels, h // f, w // f), s)
        for _, t in run.steps("denoise", scheduler.timesteps, identical=True):
            with run.phase("transformer", "denoise"):
                model_in = torch.cat([latents, latents]) if s.cfg else latents
                pred = dit(
                    hidden_states=model_in,
                    timestep=t.expand(rows).to(device),
                    encoder_hidden_states=context,
                    pooled_projections=pooled,
                ).sample
            with run.phase("scheduler", "denoise"):
                pred = guide(pred, SD3_GUIDANCE) if s.cfg else pred
                latents = scheduler.step(pred, t, latents).prev_sample
        return self.decode(vae, latents, run)


# --------------------------------------------------------------------------------- FLUX
FLUX_T5_TOKENS, FLUX_GUIDANCE = 512, 3.5


# FluxPipeline's latent layout helpers, restated: importing diffusers' pipeline module pulls in
# transformers image processors that warn on stderr when torchvision is absent.
def flux_pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, H/2·W/2, 4C): 2×2 patches as tokens (``FluxPipeline._pack_latents``)."""
    b, c, h, w = latents.shape
    latents = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return latents.reshape(b, (h // 2) * (w // 2), c * 4)


def flux_unpack(latents: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`flux_pack` for a latent of side ``h`` × ``w``."""
    b, _, c = latents.shape
    latents = latents.view(b, h // 2, w // 2, c // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return latents.reshape(b, c // 4, h, w)


def flux_image_ids(h: int, w: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """(h·w, 3) RoPE position ids (0, row, col) of the packed tokens."""
    ids = torch.zeros(h, w, 3)
    ids[..., 1] = ids[..., 1] + torch.arange(h)[:, None]
    ids[..., 2] = ids[..., 2] + torch.arange(w)[None, :]
    return ids.reshape(h * w, 3).to(device=device, dtype=dtype)


def flux_shift(seq: int, cfg: Any) -> float:
    """``mu`` of the resolution-dependent shift: linear in the image token count."""
    m = (cfg.max_shift - cfg.base_shift) / (cfg.max_image_seq_len - cfg.base_image_seq_len)
    return seq * m + cfg.base_shift - m * cfg.base_image_seq_len


def flux_scheduler() -> FlowMatchEulerDiscreteScheduler:
    """FLUX.1-dev's scheduler_config.json: flow-matching Euler with resolution-dependent shift."""
    return FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )


class Flux(_ImageDiT):
    name = "flux"
    description = (
        "FLUX.1-dev (MM-DiT, guidance-distilled): CLIP-L pooled + T5-XXL (512 tokens) → "
        "FluxTransformer2DModel, 19 double-stream + 38 single-stream blocks of joint text+image "
        "attention (no CFG: guidance embedding 3.5; flow-matching Euler) → 16-channel VAE decode"
    )
    components = {
        "text_encoder": "text_encoder",
        "text_encoder_2": "text_encoder_2",
        "transformer": "transformer",
        "vae": "vae",
    }
    # no "cfg": FLUX.1-dev is guidance-distilled, one forward per step
    defaults = {
        "full": {"res": (1024, 1024), "steps": 28},
        "tiny": {"res": (64, 64), "steps": 2},
    }

    def extras(self, models: dict[str, nn.Module], s: Settings) -> dict[str, Any]:
        return {"scheduler": flux_scheduler()}

    def axis_rules(self) -> AxisRules:
        axes = AxisRules()
        axes.add("text_encoder", "text")
        axes.add("text_encoder_2", "text")
        axes.add("transformer", "joint")
        axes.add("vae", "spatial")
        return axes

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        clip, t5 = built.models["text_encoder"], built.models["text_encoder_2"]
        dit, vae = built.models["transformer"], built.models["vae"]
        scheduler: FlowMatchEulerDiscreteScheduler = built.extras["scheduler"]
        device, dtype = s.torch_device, s.torch_dtype
        with run.phase("text_encoder", "encode"):
            pooled = clip(prompt_ids(clip, s.batch, CLIP_TOKENS, device)).pooler_output
        with run.phase("text_encoder_2", "encode"):
            context = t5(prompt_ids(t5, s.batch, t5_tokens(s, FLUX_T5_TOKENS), device))[0]
        h, w = s.res  # type: ignore[misc]
        f = vae_factor(vae)
        lh, lw = 2 * (h // (f * 2)), 2 * (w // (f * 2))
        channels = dit.config.in_channels // 4  # 2×2 packing
        latents = noise((s.batch, channels, lh, lw), s)
        latents = flux_pack(latents)
        img_ids = flux_image_ids(lh // 2, lw // 2, device, dtype)
        txt_ids = torch.zeros(context.shape[1], 3, dtype=dtype, device=device)
        mu = flux_shift(latents.shape[1], scheduler.config)
        scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / s.steps, s.steps), mu=mu)
        guidance = None
        if dit.config.guidance_embeds:
            guidance = torch.full((s.batch,), FLUX_GUIDANCE, dtype=torch.float32, device=device)
        for _, t in run.steps("denoise", scheduler.timesteps, identical=True):
            with run.phase("transformer", "denoise"):
                pred = dit(
                    hidden_states=latents,
                    timestep=(t.expand(s.batch) / 1000).to(device=device, dtype=dtype),
                    guidance=guidance,
                    pooled_projections=pooled,
                    encoder_hidden_states=context,
                    txt_ids=txt_ids,
                    img_ids=img_ids,
                ).sample
            with run.phase("scheduler", "denoise"):
                latents = scheduler.step(pred, t, latents).prev_sample
        latents = flux_unpack(latents, lh, lw)
        return self.decode(vae, latents, run)
