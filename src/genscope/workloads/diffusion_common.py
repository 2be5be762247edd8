"""Small helpers shared by the diffusion-family pipelines (sdxl, imagen, video UNets, DiTs).

The helpers only stand in for the parts of a diffusers pipeline that are not model compute:
prompt token ids (genscope has no tokenizer), seeded starting noise and the classifier-free
guidance combine. Everything else is the maintained diffusers/transformers classes.
"""

from __future__ import annotations

import torch
from torch import nn

from genscope.errors import UserError
from genscope.workloads.base import Settings


def prompt_ids(encoder: nn.Module, rows: int, tokens: int, device: str) -> torch.Tensor:
    """``(rows, tokens)`` token ids in the encoder's vocabulary, ending in its EOS token.

    Tokenizers pad prompts to a fixed length (77 for CLIP, ``max_sequence_length`` for T5),
    so the encoder's work depends only on ``tokens``; the ids themselves are arbitrary. The
    last id is EOS so CLIP's pooled output reads a real position (as with a padded prompt).
    """
    cfg = encoder.config
    vocab = int(cfg.vocab_size)
    span = max(vocab - 2, 1)  # stay clear of BOS/EOS, which tiny CLIP configs put at the top
    ids = torch.arange(rows * tokens, device=device).remainder(span).reshape(rows, tokens)
    eos = getattr(cfg, "eos_token_id", None)
    if isinstance(eos, int) and 0 <= eos < vocab:
        ids[:, -1] = eos
    return ids


def noise(shape: tuple[int, ...], s: Settings, seed: int = 0) -> torch.Tensor:
    """Seeded Gaussian noise, drawn on CPU (as the pipelines' ``randn_tensor`` with a CPU
    generator) and moved to the run's device (``meta`` at full size)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=s.torch_dtype).to(s.torch_device)


def guide(pred: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """Classifier-free guidance on a batch laid out as ``[uncond; cond]``."""
    uncond, cond = pred.chunk(2)
    return uncond + scale * (cond - uncond)


def cfg_rows(s: Settings) -> int:
    """Rows of a CFG-batched forward: negative + positive prompt per sample."""
    return s.batch * (2 if s.cfg else 1)


def vae_factor(vae: nn.Module) -> int:
    """Spatial down-sampling factor of an ``AutoencoderKL``-style VAE (8 for SD-family VAEs)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def check_video_frames(name: str, frames: int, temporal: int) -> None:
    """Causal video VAEs keep the first frame and compress the rest by ``temporal``."""
    if (frames - 1) % temporal:
        ok = [temporal * k + 1 for k in (1, 2, 4, 8, 12)]
        raise UserError(
            f"{name}: --frames must be {temporal}k+1 (the causal VAE compresses {temporal} "
            f"frames after the first); got {frames}, e.g. {', '.join(map(str, ok))}"
        )


def latent_frames(frames: int, temporal: int) -> int:
    """Latent frames of a causal video VAE: the first frame, then one per ``temporal``."""
    return (frames - 1) // temporal + 1
