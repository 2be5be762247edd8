"""Levers as table transforms: their effect on a toy table, and errors when they do not apply."""

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genscope.costmodel.gpu import predict
from genscope.costmodel.gpu.levers import (
    LeverNotApplicable,
    apply_lever,
    fuse_chains,
    lever_names,
    stack,
)
from genscope.costmodel.hardware import get_hardware
from genscope.errors import UserError
from genscope.schema import events_frame

A100 = get_hardware("a100-80g-sxm")
H100 = get_hardware("h100-sxm")


def r(op, cat, unit="vector", **kw):
    base = dict(
        run_id="t",
        component="unet",
        phase="denoise",
        step=0,
        op=op,
        category=cat,
        unit=unit,
        dtype="fp16",
        count=10,
        module_path="blk",
    )
    base.update(kw)
    return base


def mm(path="blk.ff", m=4096, k=320, n=320, **kw):
    return r(
        "aten.addmm.default",
        "linear",
        "matrix",
        module_path=path,
        input_shapes=f"[{n}];[{m},{k}];[{k},{n}]",
        output_shapes=f"[{m},{n}]",
        flops=2 * m * k * n,
        bytes_read=2 * (m * k + k * n + n),
        bytes_written=2 * m * n,
        **kw,
    )


def ew(op="aten.add.Tensor", read=100, written=50, **kw):
    return r(op, "elementwise", bytes_read=read, bytes_written=written, flops=10, **kw)


TOY = events_frame(
    [
        mm(),
        ew("aten.add.Tensor", 100, 50),
        r("aten.view.default", "memory", "none"),
        ew("aten.silu.default", 50, 50),
        ew("aten.mul.Tensor", 150, 50),
        mm(),
    ]
)


def test_compile_fuses_an_elementwise_chain_with_combined_traffic():
    out = fuse_chains(TOY, {"unet"})
    assert list(out["op"]) == ["aten.addmm.default", "inductor.fused", "aten.addmm.default"]
    fused = out.iloc[1]
    # reads: 100 (first) + max(0, 50-50) + max(0, 150-50) = 200; writes the last op's 50.
    assert (fused["bytes_read"], fused["bytes_written"], fused["gpu_kernels"]) == (200, 50, 1)
    assert fused["flops"] == 30


def fuse_by_hand(events, components):
    """fuse_chains' rule, one row at a time: the reference the vectorised code must match."""
    rows = events.to_dict("records")
    compiled = [(r["component"] or "") in components for r in rows]
    view = [c and r["unit"] == "none" for r, c in zip(rows, compiled, strict=True)]
    mem = [
        c and r["unit"] == "vector" and r["op"] != "aten.item.default"
        for r, c in zip(rows, compiled, strict=True)
    ]
    out, chain = [], []

    def close():
        if not chain:
            return
        first = dict(chain[0])
        if len(chain) > 1:
            side = sum(max(b["bytes_read"] - a["bytes_written"], 0) for a, b in pairwise(chain))
            reductions = sum(r["category"] == "norm" or "softmax" in r["op"] for r in chain)
            first.update(
                op="inductor.fused",
                bytes_read=first["bytes_read"] + side,
                bytes_written=chain[-1]["bytes_written"],
                flops=sum(r["flops"] for r in chain),
                gpu_kernels=1 + max(reductions - 1, 0),
            )
        out.append(first)
        chain.clear()

    for i, r in enumerate(rows):
        if view[i]:
            continue  # views vanish and do not break a chain
        if mem[i]:
            head = chain[0] if chain else None
            if head and (head["component"], head["count"]) != (r["component"], r["count"]):
                close()
            chain.append(r)
            continue
        close()
        out.append(r)
    close()
    return [(r["op"], r["bytes_read"], r["bytes_written"], r["flops"]) for r in out], [
        r.get("gpu_kernels") for r in out if r["op"] == "inductor.fused"
    ]


OPS = {
    "add": lambda c, n, rd, wr: ew("aten.add.Tensor", rd, wr, component=c, count=n),
    "norm": lambda c, n, rd, wr: r(
        "aten.native_layer_norm.default", "norm", component=c, count=n,
        bytes_read=rd, bytes_written=wr, flops=7,
    ),
    "softmax": lambda c, n, rd, wr: r(
        "aten._softmax.default", "attention", component=c, count=n,
        bytes_read=rd, bytes_written=wr, flops=5,
    ),
    "view": lambda c, n, rd, wr: r("aten.view.default", "memory", "none", component=c, count=n),
    "sync": lambda c, n, rd, wr: r("aten.item.default", "memory", component=c, count=n),
    "mm": lambda c, n, rd, wr: mm(component=c, count=n),
}  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(sorted(OPS)),
            st.sampled_from(["unet", "vae", ""]),
            st.sampled_from([1, 10]),
            st.integers(0, 300),
            st.integers(0, 300),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_fuse_chains_matches_the_rule_row_by_row(ops):
    events = events_frame([OPS[kind](*args) for kind, *args in ops])
    out = fuse_chains(events, {"unet", ""})
    got = list(zip(out["op"], out["bytes_read"], out["bytes_written"], out["flops"], strict=True))
    want, kernels = fuse_by_hand(events, {"unet", ""})
    assert got == want
    assert list(out.loc[out["op"] == "inductor.fused", "gpu_kernels"]) == kernels


def test_compile_modes_set_host_model():
    assert set(apply_lever(TOY, A100, "compile")["gpu_host"]) == {"compiled"}
    assert set(apply_lever(TOY, A100, "compile", "reduce-overhead")["gpu_host"]) == {"graph"}
    with pytest.raises(UserError, match="choose one of: default, max-autotune"):
        apply_lever(TOY, A100, "compile", "fast")


def test_cuda_graphs_remove_per_op_host_cost():
    eager = predict(TOY, A100)
    graphs = predict(apply_lever(TOY, A100, "compile", "reduce-overhead"), A100)
    assert graphs.predicted_s < eager.predicted_s
    assert graphs.host_bound_share < eager.host_bound_share


def test_fp8_on_a100_is_a_clear_error():
    with pytest.raises(
        UserError, match=r"a100-80g-sxm \(sm80\) has no FP8.*choose one of:.*h100-sxm"
    ):
        apply_lever(TOY, A100, "fp8")
    out = apply_lever(TOY, H100, "fp8")
    assert (out["dtype"] == "fp8").sum() == 2
    assert out["op"].str.startswith("quant.").sum() == 2  # one activation quantize per GEMM


def test_levers_that_do_not_apply_name_what_would():
    with pytest.raises(UserError, match="no convolutions"):
        apply_lever(TOY, A100, "channels_last")
    with pytest.raises(UserError, match="no fp32 ops"):
        apply_lever(TOY, A100, "bf16")
    with pytest.raises(UserError, match="trace with attention='math'"):
        apply_lever(TOY, A100, "sdpa")
    with pytest.raises(UserError, match="no decode phase"):
        apply_lever(TOY, A100, "static_cache")
    with pytest.raises(UserError, match="batching:4"):
        apply_lever(TOY, A100, "batching")
    with pytest.raises(
        UserError, match="unknown lever 'turbo'; choose one of: " + ", ".join(sorted(lever_names()))
    ):
        stack(TOY, A100, "bf16,turbo")


def applies_here(err: pytest.ExceptionInfo) -> list[str]:
    """The levers a one-line 'does not apply' error offers instead."""
    message = str(err.value)
    assert "\n" not in message
    listed = message.split("; levers that apply here: ")[1].split(", ")
    assert err.value.choices == listed  # the same list for --json
    return listed


def test_a_lever_that_does_not_apply_names_the_levers_that_do():
    # TOY: fp16 GEMMs and elementwise ops in a denoise loop; no convs, fp32, math attention,
    # q/k/v projections or decode phase
    with pytest.raises(LeverNotApplicable, match="no convolutions; levers that apply") as err:
        apply_lever(TOY, A100, "channels_last")
    assert applies_here(err) == ["compile", "int8_dynamic", "int8_weight_only", "batching:N"]
    # the probe runs on the same GPU: fp8 applies on an H100, not on the A100 above
    with pytest.raises(LeverNotApplicable) as err:
        apply_lever(TOY, H100, "sdpa")
    assert "fp8" in applies_here(err) and "sdpa" not in applies_here(err)


def test_a_decode_table_offers_static_cache():
    decode = events_frame(
        [
            mm("layers.0.self_attn.q_proj", component="model", phase="decode"),
            ew("aten.mul.Tensor", component="model", phase="decode"),
        ]
    )
    for name in ("channels_last", "bf16", "sdpa"):
        with pytest.raises(LeverNotApplicable) as err:
            apply_lever(decode, A100, name)
        listed = applies_here(err)
        assert "static_cache" in listed and "compile" in listed
        assert name not in listed and "channels_last" not in listed


def test_the_ladder_says_what_applies_at_the_failing_rung():
    # after bf16 nothing is fp32 any more, so a second bf16 does not apply; sdpa never did
    fp32 = events_frame([mm(dtype="fp32"), ew(dtype="fp32")])
    with pytest.raises(LeverNotApplicable, match="lever bf16: no fp32 ops") as err:
        stack(fp32, A100, "bf16,bf16")
    listed = applies_here(err)
    assert "compile" in listed and not {"bf16", "fp16", "sdpa"} & set(listed)


def test_choices_errors_keep_their_own_lists():
    with pytest.raises(UserError) as err:
        apply_lever(TOY, A100, "fp8")
    assert "choose one of: h100-sxm" in str(err.value)
    assert "levers that apply" not in str(err.value)
    with pytest.raises(UserError, match="unknown lever 'turbo'; choose one of") as err:
        apply_lever(TOY, A100, "turbo")
    assert "levers that apply" not in str(err.value)


def test_batching_keeps_rows_without_shapes():
    out = apply_lever(TOY, A100, "batching", "2")
    assert list(out["flops"]) == [2 * f for f in TOY["flops"]]
    assert out["output_shapes"][0] == "[8192,320]" and out["output_shapes"].isna().sum() == 4


def test_int8_weight_only_halves_weight_bytes():
    out = apply_lever(TOY, A100, "int8_weight_only")
    assert out["bytes_read"][0] == TOY["bytes_read"][0] - 320 * 320  # 2 -> 1 byte per weight


def test_fused_qkv_merges_projections_reading_one_input():
    rows = [mm("attn.to_q"), mm("attn.to_k"), mm("attn.to_v"), mm("attn.to_out.0")]
    out = apply_lever(events_frame(rows), A100, "fused_qkv")
    assert len(out) == 2
    assert out["output_shapes"][0] == "[4096,960]"
    assert out["flops"][0] == 3 * 2 * 4096 * 320 * 320
    # the activation is read once instead of three times
    assert out["bytes_read"][0] == 3 * 2 * (4096 * 320 + 320 * 320 + 320) - 2 * 2 * 4096 * 320


SHAPES = "[16,4096,4096];[16,4096,64];[16,64,4096]"
SCORES = 2 * 16 * 4096**2  # fp16 bytes of the N x N scores


def test_sdpa_replaces_math_attention_with_one_flash_row():
    q = dict(q_len=4096, kv_len=4096, head_dim=64, heads=8, batch=2)
    rows = [
        r(
            "aten.baddbmm.default",
            "attention",
            "matrix",
            input_shapes=SHAPES,
            output_shapes="[16,4096,4096]",
            flops=2 * 16 * 4096 * 4096 * 64,
            bytes_read=1,
            bytes_written=SCORES,
            **q,
        ),
        r("aten._softmax.default", "attention", bytes_read=SCORES, bytes_written=SCORES, **q),
        r(
            "aten.bmm.default",
            "attention",
            "matrix",
            input_shapes="[16,4096,4096];[16,4096,64]",
            output_shapes="[16,4096,64]",
            flops=2 * 16 * 4096 * 4096 * 64,
            bytes_read=1,
            bytes_written=1,
            **q,
        ),
    ]
    math_ev = events_frame(rows)
    flash = apply_lever(math_ev, A100, "sdpa")
    assert list(flash["op"]) == ["aten.scaled_dot_product_attention"]
    assert flash["bytes_read"][0] == 2 * 16 * 64 * (4096 * 3)
    assert predict(flash, A100).predicted_s < predict(math_ev, A100).predicted_s


def test_ladder_names_its_rungs():
    steps = stack(TOY, A100, "compile:reduce-overhead,int8_dynamic")
    assert [s.lever for s in steps] == ["baseline", "compile:reduce-overhead", "int8_dynamic"]


def test_fused_attention_fuses_a_softmax_free_attention_call():
    """HSTU's SiLU(Q·Kᵀ + rab)·V: the whole module call becomes one flash-class row."""
    q = dict(q_len=1024, kv_len=1024, head_dim=128, heads=4, batch=2)
    attn = "layer.pointwise_attn"
    scores = 2 * 8 * 1024 * 1024

    def bmm(inputs, out):
        return r(
            "aten.bmm.default",
            "attention",
            "matrix",
            module_path=attn,
            input_shapes=inputs,
            output_shapes=out,
            flops=2 * 8 * 1024 * 1024 * 128,
            bytes_read=1,
            bytes_written=1,
            **q,
        )

    rows = [
        mm(path="layer.f1"),
        ew("aten.sub.Tensor", 8, scores, module_path=attn),  # the relative bias
        bmm("[8,1024,128];[8,128,1024]", "[8,1024,1024]"),
        ew("aten.add.Tensor", scores, scores, module_path=attn),
        ew("aten.silu.default", scores, scores, module_path=attn),
        bmm("[8,1024,1024];[8,1024,128]", "[8,1024,128]"),
        mm(path="layer.f2"),
    ]
    fused = apply_lever(events_frame(rows), A100, "fused_attention")
    assert list(fused["op"]) == [
        "aten.addmm.default",
        "aten.scaled_dot_product_attention",
        "aten.addmm.default",
    ]
    row = fused.iloc[1]
    # both matmuls' FLOPs; Q, K, V read and O written once (fp16, batch·heads = 8)
    assert row["flops"] == 2 * (2 * 8 * 1024 * 1024 * 128)
    assert row["bytes_read"] == 2 * 8 * 128 * (1024 + 2 * 1024)
    assert row["bytes_written"] == 2 * 8 * 1024 * 128
    assert (row["batch"], row["heads"]) == (8, 1)
    assert predict(fused, A100).busy_s < predict(events_frame(rows), A100).busy_s


def test_fused_attention_leaves_softmax_attention_to_sdpa():
    with pytest.raises(UserError, match="for softmax attention use sdpa"):
        apply_lever(TOY, A100, "fused_attention")
