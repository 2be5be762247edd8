"""Phenaki (Villegas et al., ICLR 2023, arXiv 2210.02399), written small: no maintained
implementation exists.

* ``CViViTDecoder``: the C-ViViT video tokenizer's decoder. Codes are embedded, run through a
  *causal* temporal transformer (per spatial position, across latent frames) and then a spatial
  transformer (per latent frame), and a linear layer maps each token back to a pixel patch: the
  first frame is patched on its own, later frames in tubelets of ``temporal_patch_size`` frames,
  so output frame ``t`` never depends on codes of later latent frames.
* ``MaskGITTransformer``: the bidirectional transformer over video tokens, cross-attending to text
  embeddings (T5-XXL in the paper), that predicts codebook logits for iterative unmasking.

Attention runs through ``F.scaled_dot_product_attention``, or through an explicit
bmm -> softmax -> bmm path when an ``Attention`` module's ``attention`` attribute is ``"math"``
(``set_attention`` switches a whole model). Module paths name the kind of attention:
``temporal_blocks.N.temporal_attn``, ``spatial_blocks.N.spatial_attn``, ``blocks.N.self_attn``
and ``blocks.N.cross_attn``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION_MODES = ("sdpa", "math")


class Attention(nn.Module):
    """Multi-head attention; ``context`` makes it cross-attention, ``causal`` masks later keys."""

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        context_dim: int | None = None,
        causal: bool = False,
        attention: str = "sdpa",
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.causal, self.attention = heads, causal, attention
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(context_dim or dim, 2 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, n, d = x.shape
        ctx = x if context is None else context

        def heads(t: torch.Tensor) -> torch.Tensor:  # (b, len, d) -> (b, heads, len, d / heads)
            return t.view(b, t.shape[1], self.heads, -1).transpose(1, 2)

        q, (k, v) = heads(self.to_q(x)), map(heads, self.to_kv(ctx).chunk(2, dim=-1))
        # context_mask: (b, len) with True where a key may be attended
        mask = None if context_mask is None else context_mask[:, None, None, :].bool()
        if self.attention == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal)
        elif self.attention == "math":
            out = self._math(q, k, v, mask)
        else:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, not {self.attention!r}")
        return self.to_out(out.transpose(1, 2).reshape(b, n, d))

    def _math(self, q, k, v, mask):
        b, h, n, e = q.shape
        m = k.shape[2]
        scores = torch.bmm(q.reshape(b * h, n, e), k.reshape(b * h, m, e).transpose(1, 2))
        scores = scores.view(b, h, n, m) / math.sqrt(e)
        if self.causal:
            later = torch.ones(n, m, dtype=torch.bool, device=q.device).triu(1)
            scores = scores.masked_fill(later, float("-inf"))
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        probs = scores.softmax(dim=-1)
        return torch.bmm(probs.view(b * h, n, m), v.reshape(b * h, m, e)).view(b, h, n, e)


def set_attention(model: nn.Module, mode: str) -> nn.Module:
    """Switch every ``Attention`` in ``model`` to ``"sdpa"`` or ``"math"``."""
    if mode not in ATTENTION_MODES:
        raise ValueError(f"attention must be one of {ATTENTION_MODES}, not {mode!r}")
    for module in model.modules():
        if isinstance(module, Attention):
            module.attention = mode
    return model


def _mlp(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
    )


class SpatialBlock(nn.Module):
    """Pre-LN block attending across the H*W tokens of one latent frame."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, attention: str = "sdpa"):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.spatial_attn = Attention(dim, heads, attention=attention)
        self.mlp = _mlp(dim, mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.spatial_attn(self.norm(x))
        return x + self.mlp(x)


class TemporalBlock(nn.Module):
    """Pre-LN block attending causally across the latent frames at one spatial position."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, attention: str = "sdpa"):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.temporal_attn = Attention(dim, heads, causal=True, attention=attention)
        self.mlp = _mlp(dim, mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.temporal_attn(self.norm(x))
        return x + self.mlp(x)


class CViViTDecoder(nn.Module):
    """Codes (B, T, H/p, W/p) -> video (B, C, 1 + (T - 1) * temporal_patch_size, H, W)."""

    def __init__(
        self,
        codebook_size: int = 8192,
        dim: int = 512,
        heads: int = 8,
        mlp_dim: int = 2048,
        temporal_depth: int = 4,
        spatial_depth: int = 4,
        image_size: int = 128,
        patch_size: int = 8,
        temporal_patch_size: int = 2,
        channels: int = 3,
        max_latent_frames: int = 64,
        attention: str = "sdpa",
    ):
        super().__init__()
        self.grid, self.patch, self.tpatch = (
            image_size // patch_size,
            patch_size,
            temporal_patch_size,
        )
        self.channels = channels
        self.codebook = nn.Embedding(codebook_size, dim)
        self.pos_spatial = nn.Parameter(torch.randn(self.grid**2, dim) * 0.02)
        self.pos_temporal = nn.Parameter(torch.randn(max_latent_frames, dim) * 0.02)
        self.temporal_blocks = nn.ModuleList(
            TemporalBlock(dim, heads, mlp_dim, attention) for _ in range(temporal_depth)
        )
        self.spatial_blocks = nn.ModuleList(
            SpatialBlock(dim, heads, mlp_dim, attention) for _ in range(spatial_depth)
        )
        self.norm_out = nn.LayerNorm(dim)
        # unembedding: a spatial patch for the first frame, a tubelet for each later latent frame
        self.to_pixels_first = nn.Linear(dim, channels * patch_size**2)
        self.to_pixels = nn.Linear(dim, channels * temporal_patch_size * patch_size**2)

    def latent_frames(self, num_frames: int) -> int:
        return 1 + math.ceil((num_frames - 1) / self.tpatch)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        b, t, gh, gw = codes.shape
        x = self.codebook(codes).flatten(2, 3) + self.pos_spatial + self.pos_temporal[:t, None]
        d, s = x.shape[-1], gh * gw
        x = x.transpose(1, 2).reshape(b * s, t, d)  # one sequence over latent frames per position
        for block in self.temporal_blocks:
            x = block(x)
        x = x.view(b, s, t, d).transpose(1, 2).reshape(b * t, s, d)  # one sequence per frame
        for block in self.spatial_blocks:
            x = block(x)
        x = self.norm_out(x).view(b, t, gh, gw, d)
        first, rest = self.to_pixels_first(x[:, :1]), self.to_pixels(x[:, 1:])
        return torch.cat([self._unpatch(first, 1), self._unpatch(rest, self.tpatch)], dim=2)

    def _unpatch(self, y: torch.Tensor, frames: int) -> torch.Tensor:
        b, t, gh, gw, _ = y.shape
        p, c = self.patch, self.channels
        y = y.view(b, t, gh, gw, frames, c, p, p).permute(0, 5, 1, 4, 2, 6, 3, 7)
        return y.reshape(b, c, t * frames, gh * p, gw * p)


class MaskGITBlock(nn.Module):
    """Pre-LN block: bidirectional self-attention over video tokens, cross-attention to text."""

    def __init__(
        self, dim: int, heads: int, mlp_dim: int, context_dim: int, attention: str = "sdpa"
    ):
        super().__init__()
        self.norm_self, self.norm_cross = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads, attention=attention)
        self.cross_attn = Attention(dim, heads, context_dim=context_dim, attention=attention)
        self.mlp = _mlp(dim, mlp_dim)

    def forward(self, x, text, text_mask=None):
        x = x + self.self_attn(self.norm_self(x))
        x = x + self.cross_attn(self.norm_cross(x), context=text, context_mask=text_mask)
        return x + self.mlp(x)


class MaskGITTransformer(nn.Module):
    """Tokens (B, T * tokens_per_frame), ``mask_token_id`` where masked -> codebook logits."""

    def __init__(
        self,
        codebook_size: int = 8192,
        dim: int = 2048,
        depth: int = 24,
        heads: int = 16,
        mlp_dim: int = 8192,
        context_dim: int = 4096,
        tokens_per_frame: int = 256,
        max_latent_frames: int = 64,
        attention: str = "sdpa",
    ):
        super().__init__()
        self.mask_token_id, self.tokens_per_frame = codebook_size, tokens_per_frame
        self.token_emb = nn.Embedding(codebook_size + 1, dim)  # + [MASK]
        self.pos_spatial = nn.Parameter(torch.randn(tokens_per_frame, dim) * 0.02)
        self.pos_temporal = nn.Parameter(torch.randn(max_latent_frames, dim) * 0.02)
        self.blocks = nn.ModuleList(
            MaskGITBlock(dim, heads, mlp_dim, context_dim, attention) for _ in range(depth)
        )
        self.norm_out = nn.LayerNorm(dim)
        self.to_logits = nn.Linear(dim, codebook_size)

    def forward(
        self, tokens: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        t, rem = divmod(tokens.shape[1], self.tokens_per_frame)
        if rem:
            raise ValueError(
                f"{tokens.shape[1]} tokens: not whole {self.tokens_per_frame}-token frames"
            )
        pos = self.pos_temporal[:t, None] + self.pos_spatial  # (t, tokens_per_frame, dim)
        x = self.token_emb(tokens) + pos.flatten(0, 1)
        for block in self.blocks:
            x = block(x, text, text_mask)
        return self.to_logits(self.norm_out(x))
