"""genscope's own small architectures (Phenaki, HSTU): shapes, causality, attention paths."""

import pytest
import torch
import torch.nn.functional as F

from genscope.workloads.archs.hstu import HSTU, HSTULayer, PointwiseAttention
from genscope.workloads.archs.phenaki import CViViTDecoder, MaskGITTransformer, set_attention
from genscope.workloads.components import build_component, load_component_config


def _decoder(**kw) -> CViViTDecoder:
    torch.manual_seed(0)
    args = dict(codebook_size=64, dim=32, heads=4, mlp_dim=64, temporal_depth=2, spatial_depth=1)
    args |= dict(image_size=16, patch_size=4, temporal_patch_size=2, max_latent_frames=8)
    return CViViTDecoder(**(args | kw)).eval()


def _maskgit() -> MaskGITTransformer:
    torch.manual_seed(0)
    return MaskGITTransformer(
        codebook_size=64, dim=32, depth=2, heads=4, mlp_dim=64, context_dim=16, tokens_per_frame=16
    ).eval()


@torch.no_grad()
def test_cvivit_decoder_shapes():
    dec = _decoder()
    codes = torch.randint(0, 64, (2, 4, 4, 4))  # 4 latent frames of 4x4 tokens
    video = dec(codes)
    # first frame alone, then 2-frame tubelets: 1 + 3 * 2 = 7 frames of 16x16 pixels
    assert video.shape == (2, 3, 7, 16, 16)
    assert dec.latent_frames(7) == 4 and dec.latent_frames(11) == 6


@torch.no_grad()
def test_cvivit_decoder_is_causal_in_time():
    dec = _decoder()
    codes = torch.randint(0, 64, (1, 4, 4, 4))
    later = codes.clone()
    later[:, 2:] = (later[:, 2:] + 1 + torch.randint(0, 62, later[:, 2:].shape)) % 64
    a, b = dec(codes), dec(later)
    # latent frames 0 and 1 decode to frames 0..2; they must not see latent frames 2 and 3
    torch.testing.assert_close(a[:, :, :3], b[:, :, :3], rtol=0, atol=0)
    assert not torch.allclose(a[:, :, 3:], b[:, :, 3:])


@torch.no_grad()
def test_cvivit_decoder_module_names_mark_spatial_and_temporal():
    names = [n for n, _ in _decoder().named_modules()]
    assert "temporal_blocks.0.temporal_attn" in names
    assert "spatial_blocks.0.spatial_attn" in names
    mg = [n for n, _ in _maskgit().named_modules()]
    assert "blocks.0.self_attn" in mg and "blocks.0.cross_attn" in mg


@torch.no_grad()
def test_maskgit_shapes_and_mask_token():
    mg = _maskgit()
    tokens = torch.randint(0, 64, (2, 48))
    tokens[:, ::3] = mg.mask_token_id
    logits = mg(tokens, torch.randn(2, 7, 16), torch.ones(2, 7, dtype=torch.bool))
    assert logits.shape == (2, 48, 64)
    with pytest.raises(ValueError, match="16-token frames"):
        mg(tokens[:, :40], torch.randn(2, 7, 16))


@torch.no_grad()
def test_sdpa_and_math_attention_agree():
    dec = _decoder()
    codes = torch.randint(0, 64, (2, 3, 4, 4))
    ref = dec(codes)
    torch.testing.assert_close(set_attention(dec, "math")(codes), ref, rtol=1e-5, atol=1e-5)

    mg = _maskgit()
    tokens, text = torch.randint(0, 65, (2, 32)), torch.randn(2, 5, 16)
    text_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    ref = mg(tokens, text, text_mask)
    torch.testing.assert_close(
        set_attention(mg, "math")(tokens, text, text_mask), ref, rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match="sdpa"):
        set_attention(mg, "flash")


@torch.no_grad()
def test_hstu_shapes_and_two_stacks():
    torch.manual_seed(0)
    model = HSTU(
        num_embeddings=100,
        dim=32,
        heads=2,
        qk_dim=8,
        linear_dim=8,
        l1_layers=2,
        l2_layers=1,
        max_seq_len=64,
        l2_seq_len=10,
    ).eval()
    out = model(torch.randint(0, 100, (3, 24)))
    assert out.shape == (3, 10, 32)  # L2 runs over the last l2_seq_len positions
    assert len(model.l1.layers) == 2 and len(model.l2.layers) == 1
    assert model(torch.randint(0, 100, (3, 6))).shape == (3, 6, 32)


@torch.no_grad()
def test_hstu_pointwise_attention_matches_hand_computation_without_softmax():
    attn = PointwiseAttention(max_seq_len=4)
    attn.rel_pos_bias.copy_(torch.tensor([0.5, -0.25, 0.1, 0.0, 0.3, 0.2, -0.4]))  # j - i = -3..3
    q = torch.tensor([[1.0, 0.0], [0.5, 1.0], [-1.0, 2.0]])[None, None]
    k = torch.tensor([[2.0, 1.0], [0.0, -1.0], [1.0, 1.0]])[None, None]
    a = attn.weights(q, k)[0, 0]
    expected = torch.zeros(3, 3)
    for i in range(3):
        for j in range(i + 1):  # causal: i sees j <= i
            rab = attn.rel_pos_bias[j - i + 3]
            expected[i, j] = F.silu(q[0, 0, i] @ k[0, 0, j] + rab) / 3
    torch.testing.assert_close(a, expected)
    assert not torch.allclose(a.sum(-1), torch.ones(3))  # no softmax normalisation
    assert (a.triu(1) == 0).all()


@torch.no_grad()
def test_hstu_layer_is_causal():
    torch.manual_seed(0)
    layer = HSTULayer(dim=16, heads=2, qk_dim=4, linear_dim=4, max_seq_len=32).eval()
    x = torch.randn(1, 8, 16)
    y = x.clone()
    y[:, 5:] += 1.0
    torch.testing.assert_close(layer(x)[:, :5], layer(y)[:, :5])


@pytest.mark.parametrize(
    ("workload", "component"),
    [
        ("phenaki", "tokenizer_decoder"),
        ("phenaki", "transformer"),
        ("hstu", "model"),
    ],
)
def test_shipped_configs_build_and_run_tiny(workload, component):
    model = build_component(load_component_config(workload, component), "tiny")
    with torch.no_grad():
        if component == "tokenizer_decoder":
            assert model(torch.randint(0, 64, (1, 3, 4, 4))).shape == (1, 3, 5, 16, 16)
        elif component == "transformer":
            out = model(torch.randint(0, 65, (1, 32)), torch.randn(1, 4, 32))
            assert out.shape == (1, 32, 64)
        else:
            assert model(torch.randint(0, 1000, (1, 20))).shape == (1, 16, 32)
