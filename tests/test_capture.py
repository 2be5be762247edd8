"""Analytic capture on real and meta tensors: attention labels, module paths, BYO models."""

import torch
from torch import nn

import genscope
from genscope.api import trace, trace_workload
from genscope.workloads.base import Settings


class TinyCrossBlock(nn.Module):
    """A model defined here (not from the suite): self- then cross-attention via SDPA."""

    def __init__(self, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.self_attn = Attn(dim, heads, cross=False)
        self.cross_attn = Attn(dim, heads, cross=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        return self.proj(self.cross_attn(self.self_attn(x), ctx))


class Attn(nn.Module):
    def __init__(self, dim: int, heads: int, cross: bool) -> None:
        super().__init__()
        self.heads, self.is_cross_attention = heads, cross
        self.q, self.kv = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        src = x if ctx is None else ctx
        q = self.q(x).view(b, n, self.heads, -1).transpose(1, 2)
        k, v = self.kv(src).view(b, src.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        return nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)


def test_bring_your_own_model_flash_and_math():
    model = TinyCrossBlock().eval()
    x, ctx = torch.randn(3, 10, 16), torch.randn(3, 7, 16)
    flash = genscope.trace(model, (x, ctx), attn_axis="spatial")
    attn = flash.events[flash.events.category == "attention"]
    assert len(attn) == 2
    selfa = attn[attn.attn_kind == "self"].iloc[0]
    cross = attn[attn.attn_kind == "cross"].iloc[0]
    assert (selfa.q_len, selfa.kv_len, selfa.heads, selfa.head_dim, selfa.batch) == (
        10,
        10,
        2,
        8,
        3,
    )
    assert (cross.q_len, cross.kv_len) == (10, 7)
    assert selfa.module_path == "self_attn" and set(attn.attn_axis) == {"spatial"}
    # Real tensors: the output is the model's real output.
    torch.testing.assert_close(flash.output, model(x, ctx))

    math = trace(model, (x, ctx), attention="math")
    m_attn = math.events[math.events.category == "attention"]
    assert set(m_attn.op.str.split(".").str[1]) == {"baddbmm", "_softmax", "bmm"}
    assert m_attn.flops.sum() == attn.flops.sum()
    torch.testing.assert_close(math.output, flash.output, rtol=1e-5, atol=1e-5)
    # Same result object as the CLI path
    assert {"flops_total", "by_category", "attention", "seq_len"} <= set(flash.to_json())


def test_tiny_sd15_pipeline_labels_and_levels():
    r = trace_workload("sd15", Settings(size="tiny", steps=2), save=False)
    ev = r.events
    assert set(ev.component.dropna()) >= {"text_encoder", "unet", "scheduler", "vae"}
    assert r.meta["collapsed_steps"] == {"denoise": 2}
    unet_attn = ev[(ev.component == "unet") & (ev.category == "attention")]
    assert set(unet_attn.attn_axis) == {"spatial"}
    # Tiny sd15 at 64² → 8×8 latent: attention at the top level (8·8) and the mid-block (4·4)
    assert set(unet_attn.q_len) == {64, 16}
    cross = unet_attn[unet_attn.attn_kind == "cross"]
    assert set(cross.kv_len) == {77} and (cross.module_path.str.contains("attn2")).all()
    assert (ev.loc[ev.component == "unet", "count"] == 2).all()
    assert r.output.shape == (1, 3, 64, 64)


def test_full_sd15_seq_len_per_level_on_meta():
    r = trace_workload("sd15", Settings(size="full", steps=1), save=False)
    spatial = r.events[(r.events.component == "unet") & (r.events.category == "attention")]
    # 512² → 64² latent; three attention levels 64², 32², 16² and the 8² mid-block
    assert sorted(set(spatial.q_len)) == [64, 256, 1024, 4096]
    assert r.meta["params"]["unet"] == 859_520_964
