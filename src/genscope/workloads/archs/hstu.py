"""HSTU generative recommender (Zhai et al., "Actions Speak Louder than Words", ICML 2024,
arXiv 2402.17152), written small from the paper's equations.

One HSTU layer, with ``f1``/``f2`` linear maps and pointwise (softmax-free) aggregated attention::

    U, V, Q, K = split(SiLU(f1(LayerNorm(X))))
    A = SiLU(Q K^T + rab) / n        (causal: position i sees positions <= i)
    Y = X + f2(LayerNorm(A V) * U)

``rab`` is the relative attention bias; here it is positional only (the paper also buckets
timestamps). The model embeds item ids and runs two stacks, ``l1`` over the whole history and
``l2`` over its last ``l2_seq_len`` positions, as one forward pass (no decoding loop): Lee et al.
(arXiv 2410.00215) profile HSTU as two stacks L1/L2 with embedding dim 512; that L2 sees the
tail of L1's output is our reading of their input lengths (L1 ~4.8k tokens, L2 2028).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PointwiseAttention(nn.Module):
    """``SiLU(Q K^T + rab) / n``, causal, then ``@ V``. No softmax: rows need not sum to 1."""

    def __init__(self, max_seq_len: int):
        super().__init__()
        self.max_seq_len = max_seq_len
        # rab^p: one learned scalar per relative position j - i, shared by all heads
        self.rel_pos_bias = nn.Parameter(torch.zeros(2 * max_seq_len - 1))

    def weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        n = q.shape[-2]
        if n > self.max_seq_len:
            raise ValueError(f"{n} tokens is longer than max_seq_len {self.max_seq_len}")
        pos = torch.arange(n, device=q.device)
        rab = self.rel_pos_bias[pos[None, :] - pos[:, None] + self.max_seq_len - 1]  # (n, n)
        a = F.silu(q @ k.transpose(-1, -2) + rab) / n
        later = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        return a.masked_fill(later, 0.0)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.weights(q, k) @ v


class HSTULayer(nn.Module):
    def __init__(
        self,
        dim: int = 512,
        heads: int = 4,
        qk_dim: int = 128,
        linear_dim: int = 128,
        max_seq_len: int = 8192,
    ):
        super().__init__()
        self.heads, self.qk_dim, self.linear_dim = heads, qk_dim, linear_dim
        self.norm_in = nn.LayerNorm(dim)
        self.f1 = nn.Linear(dim, heads * (2 * linear_dim + 2 * qk_dim))  # -> U, V, Q, K
        self.pointwise_attn = PointwiseAttention(max_seq_len)
        self.norm_attn = nn.LayerNorm(heads * linear_dim)
        self.f2 = nn.Linear(heads * linear_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        h, lin, qk = self.heads, self.heads * self.linear_dim, self.heads * self.qk_dim
        u, v, q, k = torch.split(F.silu(self.f1(self.norm_in(x))), [lin, lin, qk, qk], dim=-1)
        v, q, k = (t.view(b, n, h, -1).transpose(1, 2) for t in (v, q, k))
        av = self.pointwise_attn(q, k, v).transpose(1, 2).reshape(b, n, lin)
        return x + self.f2(self.norm_attn(av) * u)


class HSTUStack(nn.Module):
    def __init__(self, num_layers: int, **layer_kwargs):
        super().__init__()
        self.layers = nn.ModuleList(HSTULayer(**layer_kwargs) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class HSTU(nn.Module):
    """Item ids (B, N) -> user-history representations (B, min(N, l2_seq_len), dim)."""

    def __init__(
        self,
        num_embeddings: int = 1_000_000,
        dim: int = 512,
        heads: int = 4,
        qk_dim: int = 128,
        linear_dim: int = 128,
        l1_layers: int = 5,
        l2_layers: int = 5,
        max_seq_len: int = 8192,
        l2_seq_len: int = 2028,
    ):
        super().__init__()
        self.l2_seq_len = l2_seq_len
        layer = dict(dim=dim, heads=heads, qk_dim=qk_dim, linear_dim=linear_dim)
        layer["max_seq_len"] = max_seq_len
        self.item_emb = nn.Embedding(num_embeddings, dim)
        self.l1 = HSTUStack(l1_layers, **layer)
        self.l2 = HSTUStack(l2_layers, **layer)
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        x = self.l1(self.item_emb(item_ids))
        x = self.l2(x[:, -self.l2_seq_len :])
        return self.norm_out(x)
