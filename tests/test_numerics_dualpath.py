"""The in-model dual path on a real tiny UNet generation and on hand-made SDPA calls."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genscope.errors import UserError
from genscope.machine.threads import torch_threads
from genscope.numerics import figures
from genscope.numerics.dualpath import DUAL_COLUMNS, dual_path, per_layer
from genscope.numerics.tiny_sd15 import build_tiny_unet, generation

# The tiny sd15 UNet: one CrossAttnDownBlock2D (1 transformer), the mid block (1) and one
# CrossAttnUpBlock2D (layers_per_block + 1 = 2): 4 transformers x (attn1 + attn2) = 8 calls.
CALLS_PER_STEP = 8


@pytest.fixture(scope="module")
def unet():
    return build_tiny_unet()


def test_every_attention_call_recorded_per_layer_and_step(unet):
    run = generation(unet, steps=2)
    with torch_threads(1):  # dual_path's default
        plain = run()
    outputs = []
    df = dual_path(unet, lambda: outputs.append(run()), dtype="bf16", block_r=16, block_c=16)
    assert torch.equal(outputs[0], plain)  # the model computes exactly as without the hook
    assert list(df.columns) == [c for c, _ in DUAL_COLUMNS]
    assert len(df) == 2 * CALLS_PER_STEP
    assert df.groupby("step").size().tolist() == [CALLS_PER_STEP, CALLS_PER_STEP]
    assert df.call_in_step.max() == CALLS_PER_STEP - 1
    attn = {n for n, m in unet.named_modules() if type(m).__name__ == "Attention"}
    assert set(df.module_path) == attn
    assert (df.skipped == "").all()
    # Latent 8x8 -> 64 tokens at the top level, 4x4 = 16 in the mid block; text is 77 tokens.
    assert set(df.q_len) == {64, 16}
    assert set(df[df.module_path.str.endswith("attn2")].kv_len) == {77}
    assert (df.block_r == df.q_len.clip(upper=16)).all()  # tiles clamp to short sequences
    assert (df.fvb_max > 0).all() and (df.flash_max > 0).all()
    assert (df.sdpa_max < 1e-5).all()  # the real fp32 SDPA is close to the fp64 golden value
    layers = per_layer(df)
    assert len(layers) == len(attn) and (layers.calls == 2).all()
    fig = figures.plot_dual_path(df)
    assert "measured (cpu)" in fig.get_suptitle()


def test_fp64_references_agree_inside_the_model(unet):
    df = dual_path(unet, generation(unet, steps=1), dtype="fp64", block_r=8, block_c=8)
    assert len(df) == CALLS_PER_STEP
    assert df.fvb_max.max() <= 1e-12


class Calls(nn.Module):
    """SDPA calls the UNet does not make: causal, GQA, float mask, dropout."""

    def forward(self, q, k, v):
        outs = [
            F.scaled_dot_product_attention(q, k, v, is_causal=True),
            F.scaled_dot_product_attention(q, k[:, :2], v[:, :2], enable_gqa=True),
            F.scaled_dot_product_attention(q, k, v, attn_mask=torch.zeros(1, 1, 24, 24)),
            F.scaled_dot_product_attention(q, k, v, dropout_p=0.5),
            F.scaled_dot_product_attention(q, k, v, scale=0.1),
        ]
        return torch.stack(outs[:3] + outs[4:])


def test_masks_gqa_scale_and_dropout():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 4, 24, 8, generator=gen) for _ in range(3))
    model = Calls()
    df = dual_path(model, lambda: model(q, k, v), dtype="fp64", block_r=8, block_c=8)
    assert df.module_path.tolist() == ["(root)"] * 5
    assert df.masked.tolist() == [True, False, True, False, False]
    assert df.skipped.tolist()[3].startswith("dropout_p=0.5")
    ok = df[df.skipped == ""]
    assert len(ok) == 4
    assert ok.fvb_max.max() <= 1e-12  # causal, GQA, mask and scale replayed faithfully
    assert ok.sdpa_max.max() < 1e-5


def test_bad_tiles_and_dtype_are_user_errors(unet):
    with pytest.raises(UserError, match="block_c must be a positive"):
        dual_path(unet, lambda: None, block_c=0)
    with pytest.raises(UserError, match="bf16, fp16, fp32, fp64"):
        dual_path(unet, lambda: None, dtype="fp8")
