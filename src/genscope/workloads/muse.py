"""Muse (Chang et al. 2023) through its open reproduction aMUSEd (Patil et al. 2024).

CLIP-L/14 text encoder -> ``UVit2DModel`` iterative parallel unmasking over a 16x16 grid of VQ
tokens -> VQ-GAN decoder, as diffusers' ``AmusedPipeline`` runs it: 12 steps, CFG (guidance 10)
with the negative and positive prompts batched, cosine masking schedule, Gumbel-noised confidence
with temperature falling linearly from 2 to 0.

:func:`unmask_step` is the MaskGIT update of diffusers' ``AmusedScheduler.step`` written so it
also runs on ``meta`` (the stock scheduler reads its timestep tensor's value and mixes CPU and
device tensors). Every step runs the transformer over the whole fixed token grid, and the update's
ops and shapes are the same at every step except the last (which only fills in the remaining
masked tokens), so steps ``0 .. N-2`` are declared identical and the last one is traced apart.
"""

from __future__ import annotations

import math

import torch

from genscope.capture.context import AxisRules, Runner
from genscope.workloads.base import Built, Settings, Workload

TEXT_TOKENS = 77
GUIDANCE_SCALE = 10.0
#: aMUSEd micro-conditioning: width, height, crop top-left (0, 0), aesthetic score 6
AESTHETIC_SCORE = 6.0


def unmask_step(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    step: int,
    steps: int,
    mask_id: int,
    generator: torch.Generator | None = None,
    temperature: tuple[float, float] = (2.0, 0.0),
) -> torch.Tensor:
    """One MaskGIT step: ``logits (B, N, V)``, ``tokens (B, N)`` -> tokens with fewer masked.

    Samples every position, keeps given tokens, then re-masks the ``floor(N * cos(pi/2 *
    (step+1)/steps))`` least confident sampled ones (at least 1, fewer than were masked); the
    last step re-masks nothing.
    """
    unknown = tokens == mask_id
    probs = logits.softmax(dim=-1)
    b, n, v = probs.shape
    sampled = torch.multinomial(probs.reshape(b * n, v), 1, generator=generator).view(b, n)
    sampled = torch.where(unknown, sampled, tokens)
    if step == steps - 1:
        return sampled
    ratio = (step + 1) / steps
    mask_len = torch.full(
        (b, 1), math.floor(n * math.cos(ratio * math.pi / 2)), device=tokens.device
    )
    mask_len = torch.minimum(unknown.sum(dim=-1, keepdim=True) - 1, mask_len)
    mask_len = mask_len.clamp(min=1)
    selected = torch.gather(probs, -1, sampled[:, :, None])[:, :, 0]
    selected = torch.where(unknown, selected, torch.finfo(selected.dtype).max)
    temp = temperature[0] + (temperature[1] - temperature[0]) * step / max(steps - 1, 1)
    noise = torch.zeros_like(selected).uniform_(0, 1, generator=generator)
    gumbel = -torch.log((-torch.log(noise.clamp(1e-20))).clamp(1e-20))
    confidence = torch.log(selected.clamp(1e-20)) + temp * gumbel
    cut_off = torch.gather(torch.sort(confidence, dim=-1).values, 1, mask_len.long())
    return torch.where(confidence < cut_off, mask_id, sampled)


def sampling_generator(device: str | torch.device) -> torch.Generator | None:
    """A seeded generator on CPU (real values); None on meta (no values to draw)."""
    return None if str(device) == "meta" else torch.Generator(device).manual_seed(0)


def unmasking_loop(run: Runner, component: str, steps: int, body) -> None:  # type: ignore[no-untyped-def]
    """Steps ``0..steps-2`` as one identical loop (phase ``unmask``), then the last step apart."""
    for i, _ in run.steps("unmask", range(steps - 1), identical=True):
        with run.phase(component, "unmask"):
            body(i)
    with run.phase(component, "unmask", step=steps - 1):
        body(steps - 1)


class Muse(Workload):
    name = "muse"
    task = "tti"
    family = "masked-token"
    description = (
        "Muse via aMUSEd-256: CLIP-L/14 + U-ViT masked-token transformer, 12 parallel "
        "unmasking steps with CFG over 16x16 VQ tokens + VQ-GAN decoder"
    )
    components = {"text_encoder": "text_encoder", "transformer": "transformer", "vqvae": "vqvae"}
    defaults = {
        "full": {"steps": 12, "cfg": True},  # AmusedPipeline defaults (12 steps, guidance 10)
        "tiny": {"steps": 3, "cfg": True},
    }

    def axis_rules(self) -> AxisRules:
        axes = AxisRules()
        axes.add("text_encoder", "text")
        axes.add("transformer", "spatial")  # over the 2-D grid of image tokens
        axes.add("vqvae", "spatial")
        return axes

    def generate(self, built: Built, s: Settings, run: Runner) -> torch.Tensor:
        encoder, transformer, vq = (
            built.models[k] for k in ("text_encoder", "transformer", "vqvae")
        )
        dev, dtype = s.torch_device, s.torch_dtype
        rows = s.batch * (2 if s.cfg else 1)
        grid = transformer.config.sample_size
        f = 2 ** (len(vq.config.block_out_channels) - 1)  # VQ-GAN downsampling
        mask_id = transformer.config.vocab_size - 1
        generator = sampling_generator(dev)

        with run.phase("text_encoder", "encode"):
            vocab = encoder.config.vocab_size
            ids = torch.arange(rows * TEXT_TOKENS, device=dev).remainder(vocab)
            out = encoder(ids.reshape(rows, TEXT_TOKENS), output_hidden_states=True)
            pooled, context = out.text_embeds, out.hidden_states[-2]  # as AmusedPipeline
            side = float(grid * f)
            micro = torch.tensor([[side, side, 0.0, 0.0, AESTHETIC_SCORE]], dtype=dtype, device=dev)
            micro = micro.expand(rows, -1)
            tokens = torch.full((s.batch, grid, grid), mask_id, dtype=torch.long, device=dev)

        def body(i: int) -> None:
            nonlocal tokens
            model_in = torch.cat([tokens, tokens]) if s.cfg else tokens
            logits = transformer(
                model_in, encoder_hidden_states=context, pooled_text_emb=pooled, micro_conds=micro
            )
            if s.cfg:
                uncond, cond = logits.chunk(2)
                logits = uncond + GUIDANCE_SCALE * (cond - uncond)
            logits = logits.reshape(s.batch, logits.shape[1], grid * grid).permute(0, 2, 1)
            flat = unmask_step(logits, tokens.reshape(s.batch, -1), i, s.steps, mask_id, generator)  # type: ignore[arg-type]
            tokens = flat.reshape(s.batch, grid, grid)

        unmasking_loop(run, "transformer", s.steps, body)  # type: ignore[arg-type]
        with run.phase("vqvae", "decode_image"):
            shape = (s.batch, grid, grid, vq.config.latent_channels)
            return vq.decode(tokens, force_not_quantize=True, shape=shape).sample.clip(0, 1)
