"""Hand-worked examples for every formula family (multiply-add = 2 FLOPs)."""

import torch
import torch.nn.functional as F

from genscope.capture.analytic import AnalyticCapture
from genscope.capture.context import Runner
from genscope.costmodel.ops import (
    TensorMeta,
    conv_flops,
    cost_of,
    sdpa_flops,
)
from genscope.schema import events_frame

aten = torch.ops.aten


def capture(fn, *inputs, attention="flash"):
    """Capture ``fn(*inputs)``; inputs are made outside so their creation is not recorded."""
    cap = AnalyticCapture(Runner(False), attention=attention)
    with torch.no_grad(), cap:
        fn(*inputs)
    return events_frame(cap.rows)


def T(*shape, dtype=torch.float32):
    return torch.empty(*shape, dtype=dtype, device="meta")


def test_mm_addmm_bmm_baddbmm():
    # (8x16) @ (16x4): 2*8*4*16 = 1024
    ev = capture(lambda a0, a1: torch.mm(a0, a1), T(8, 16), T(16, 4))
    assert ev.flops.tolist() == [1024]
    assert ev.bytes_read.tolist() == [(8 * 16 + 16 * 4) * 4]
    assert ev.bytes_written.tolist() == [8 * 4 * 4]
    # addmm: bias add is a fused epilogue, not counted (torch.utils.flop_counter convention)
    ev = capture(lambda a0, a1, a2: torch.addmm(a0, a1, a2), T(4), T(8, 16), T(16, 4))
    assert ev.flops.tolist() == [1024]
    assert ev.bytes_read.tolist() == [(4 + 8 * 16 + 16 * 4) * 4]
    # 2 batches of (8x16 @ 16x4): 2 * 8 * 4 * 16 * 2 = 2048
    ev = capture(lambda a0, a1: torch.bmm(a0, a1), T(2, 8, 16), T(2, 16, 4))
    assert ev.flops.tolist() == [2048]
    ev = capture(lambda a0, a1, a2: torch.baddbmm(a0, a1, a2), T(2, 8, 4), T(2, 8, 16), T(2, 16, 4))
    assert ev.flops.tolist() == [2048]


def test_linear_and_matmul_lower_to_gemms():
    # linear on (3, 5, 16) -> 32 features: 2 * 15 * 32 * 16 = 15360
    ev = capture(lambda a0, a1, a2: F.linear(a0, a1, a2), T(3, 5, 16), T(32, 16), T(32))
    assert ev.flops.sum() == 15360
    assert set(ev[ev.flops > 0].category) == {"linear"}


def test_conv_families():
    # conv2d: N=1, C_in=3, C_out=8, k=3x3, out 6x6 -> 2 * 36 * 8 * 3 * 9 = 15552
    ev = capture(lambda a0, a1: F.conv2d(a0, a1), T(1, 3, 8, 8), T(8, 3, 3, 3))
    assert ev.flops.tolist() == [15552]
    assert ev.category.tolist() == ["conv"]
    # grouped: groups=2, C_in=4, C_out=6, k=1, 5x5 out: 2 * 25 * 6 * (4/2) * 1 = 600
    ev = capture(lambda a0, a1: F.conv2d(a0, a1, groups=2), T(1, 4, 5, 5), T(6, 2, 1, 1))
    assert ev.flops.tolist() == [600]
    # conv1d: N=2, C_in=4, C_out=4, k=3, L_out=8 (pad 1): 2 * 2 * 8 * 4 * 4 * 3 = 1536
    ev = capture(lambda a0, a1: F.conv1d(a0, a1, padding=1), T(2, 4, 8), T(4, 4, 3))
    assert ev.flops.tolist() == [1536]
    # conv3d: N=1, C 2->2, k=(3,1,1), out (2,4,4) with T=4 in: 2 * 32 * 2 * 2 * 3 = 768
    ev = capture(lambda a0, a1: F.conv3d(a0, a1), T(1, 2, 4, 4, 4), T(2, 2, 3, 1, 1))
    assert ev.flops.tolist() == [768]
    # transposed: each of the 1*2*3*3 input elements scatters into C_out(4)*k(2*2) outputs:
    # 2 * 1 * 9 * 2 * 4 * 4 = 576
    ev = capture(lambda a0, a1: F.conv_transpose2d(a0, a1, stride=2), T(1, 2, 3, 3), T(2, 4, 2, 2))
    assert ev.flops.tolist() == [576]
    assert conv_flops((1, 2, 3, 3), (2, 4, 2, 2), (1, 4, 6, 6), True, 1) == 576


def test_sdpa_flash_vs_math():
    # b=1, h=2, Lq=Lk=4, d=8: QK 2*2*4*4*8 = 512, PV 512, softmax 5*2*4*4 = 160 -> 1184
    q = T(1, 2, 4, 8)
    assert sdpa_flops(q.shape, q.shape, q.shape) == 1184
    flash = capture(F.scaled_dot_product_attention, q, q, q)
    assert flash.flops.tolist() == [1184]
    assert flash.bytes_read.tolist() == [3 * 64 * 4]  # Q, K, V only
    assert flash.bytes_written.tolist() == [64 * 4]  # O only, no 4x4 scores
    math = capture(F.scaled_dot_product_attention, q, q, q, attention="math")
    attn = math[math.category == "attention"]
    assert attn.flops.sum() == 1184
    # math also writes the 2x4x4 scores (baddbmm) and probabilities (softmax): 2 * 32 * 4 B
    assert attn.bytes_written.sum() == flash.bytes_written.sum() + 2 * 32 * 4


def test_sdpa_every_overload_has_formula():
    q = TensorMeta.of(T(1, 2, 4, 8))
    for op in (
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_efficient_attention",
    ):
        cost = cost_of(getattr(aten, op).default, (q, q, q), {}, (q,))
        assert cost.flops == 1184 and cost.unit == "matrix"


def test_norms_softmax_elementwise_upsample():
    x = T(2, 4, 3, 3)  # 72 elements
    gn = capture(lambda a0, a1: F.group_norm(x, 2, a0, a1), T(4), T(4))
    assert gn.flops.sum() == 72 * 8 and gn.category.tolist() == ["norm"]  # 6 + affine 2
    ln = capture(lambda a0: F.layer_norm(a0, (10,), None, None), T(3, 10))
    assert ln.flops.sum() == 30 * 6
    sm = capture(lambda a0: torch.softmax(a0, -1), T(3, 10))
    assert sm.flops.sum() == 30 * 5
    add = capture(lambda a0, a1: a0 + a1, T(3, 10), T(10))
    assert add.flops.tolist() == [30]
    assert add.bytes_read.tolist() == [(30 + 10) * 4]  # broadcast operand read once
    silu = capture(lambda a0: F.silu(a0), T(3, 10))
    assert silu.flops.tolist() == [120]  # 4 per element: neg, exp, add, div
    up = capture(lambda: F.interpolate(x, scale_factor=2.0, mode="nearest"))
    assert up.flops.tolist() == [0] and up.category.tolist() == ["resample"]
    bil = capture(lambda: F.interpolate(x, scale_factor=2.0, mode="bilinear"))
    assert bil.flops.tolist() == [2 * 4 * 288]  # 4 taps x multiply-add per output element


def test_rmsnorm_module_written_as_pointwise_ops_is_norm():
    class RMSNorm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.empty(8, device="meta"))

        def forward(self, x):
            return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    m = RMSNorm()
    cap = AnalyticCapture(Runner(False))
    cap.name_component("norm", m)
    x = T(2, 8)
    with torch.no_grad(), cap:
        m(x)
    ev = events_frame(cap.rows)
    assert set(ev[ev.flops > 0].category) == {"norm"}


def test_views_are_free():
    ev = capture(lambda a0: a0.transpose(0, 1).unsqueeze(0).expand(2, 3, 2, 4), T(2, 3, 4))
    assert ev.flops.sum() == 0 and (ev.bytes_read + ev.bytes_written).sum() == 0
