"""Token-generating workloads: masked-token (muse, phenaki), autoregressive (parti, chameleon,
llama), beam search (seamless), one-pass recommender (hstu), and the exact decode shortcut."""

from __future__ import annotations

import json
import re
import time
from functools import cache
from pathlib import Path

import pandas as pd
import pytest
import torch

import genscope.workloads
from genscope.api import TraceResult, trace_built, trace_workload
from genscope.capture.analytic import AnalyticCapture
from genscope.capture.context import AxisRules, Runner
from genscope.costmodel.hardware import get_hardware
from genscope.costmodel.taxonomy import categorize
from genscope.errors import UserError
from genscope.schema import CATEGORIES, total
from genscope.workloads.affine_decode import AffineSteps, DecodeLoop
from genscope.workloads.base import Built, Settings
from genscope.workloads.registry import get_workload

AR_WORKLOADS = (
    "muse",
    "parti",
    "phenaki",
    "chameleon",
    "chameleon-i2t",
    "llama",
    "seamless",
    "hstu",
)
HW = get_hardware("a100-80g-sxm")

# ------------------------------------------------------------------ parameter counts, derived
#: Counts come from each config's dims by the architecture's formula (written out below), or
#: from a published figure at the precision it was published with; the source sits beside
#: each. Nothing here is read back from count_params.
CONFIGS_DIR = Path(genscope.workloads.__file__).parent / "configs"


def dims(stem: str, size: str = "full") -> dict:
    return json.loads((CONFIGS_DIR / f"{stem}.json").read_text())[size]


def llama_params(c: dict, qk_norm: bool = False) -> int:
    """LLaMA decoder: token embedding and (untied) LM head V·d each; per layer q, o d² each,
    k, v d·(kv heads·head dim) each, SwiGLU 3·d·ffn, two RMSNorm weights d; a final norm d.
    Chameleon adds a LayerNorm (weight and bias) over every q and k head: 2·(h + kv)·hd."""
    d, L, f = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]
    h, kv, V = c["num_attention_heads"], c["num_key_value_heads"], c["vocab_size"]
    hd = d // h
    layer = 2 * d * d + 2 * d * kv * hd + 3 * d * f + 2 * d
    layer += 2 * (h + kv) * hd if qk_norm else 0
    return V * d * (1 if c.get("tie_word_embeddings") else 2) + L * layer + d


def t5_params(c: dict, decoder: bool = True) -> int:
    """T5: one shared embedding V·d (tied LM head); attention 4·d·(h·d_kv) (no biases); MLP
    2·d·d_ff (relu) or 3·d·d_ff (gated); RMSNorm weights d (2 per encoder layer, 3 per decoder
    layer, one final per stack); relative-position buckets × heads once per stack."""
    d, inner, f, h = c["d_model"], c["num_heads"] * c["d_kv"], c["d_ff"], c["num_heads"]
    ff = (3 if c["feed_forward_proj"].startswith("gated") else 2) * d * f
    att, rel = 4 * d * inner, c["relative_attention_num_buckets"] * h
    enc = c["num_layers"] * (att + ff + 2 * d) + rel + d
    dec = c["num_decoder_layers"] * (2 * att + ff + 3 * d) + rel + d if decoder else 0
    return c["vocab_size"] * d + enc + dec


#: CLIP ViT-L/14 text tower: vocab 49408, 77 positions, width 768, 12 layers, MLP 3072.
#: Embeddings 49408·768 + 77·768; per layer q, k, v, o with biases 4·(768² + 768), MLP
#: 768·3072 + 3072 + 3072·768 + 768, two LayerNorms 4·768; a final LayerNorm 2·768.
CLIP_L_TEXT = 49408 * 768 + 77 * 768 + 12 * (4 * (768**2 + 768) + 2 * 768 * 3072 + 3072 + 768
                                              + 4 * 768) + 2 * 768  # fmt: skip
#: aMUSEd's VQ-GAN (also the Parti/Chameleon stand-in decoder): 585 MB of fp32 safetensors
#: (huggingface.co/amused/amused-256/tree/main/vqvae), sizes rounded to 3 digits: ±0.1 %
AMUSED_VQ = pytest.approx(585e6 / 4, rel=1e-3)


def _stated(stem: str) -> int:
    """The count a config's params_source states it builds (configs with no published count;
    tests/test_configs.py holds the build to it)."""
    text = json.loads((CONFIGS_DIR / f"{stem}.json").read_text())["params_source"]
    return int(re.search(r"builds ([\d,]+)", text).group(1).replace(",", ""))


CONFIG_PARAMS = {
    ("muse", None): {
        # CLIP-L/14 text tower + the 768x768 text_projection of CLIPTextModelWithProjection
        "text_encoder": CLIP_L_TEXT + 768 * 768,
        # amused-256 model card: "603M" (huggingface.co/amused/amused-512 README table)
        "transformer": pytest.approx(603e6, rel=1e-3),
        "vqvae": AMUSED_VQ,
    },
    ("parti", "350m"): {
        "transformer": t5_params(dims("parti/transformer.350m")),
        "vqgan": AMUSED_VQ,
    },
    ("phenaki", None): {
        # T5 v1.1 XXL encoder; equals 9,524,621,312 B of bf16 weights / 2 (FLUX.1-schnell
        # text_encoder_2 safetensors index total_size)
        "text_encoder": t5_params(dims("phenaki/text_encoder"), decoder=False),
        # "a 1.8B parameter Phenaki model" (arXiv 2210.02399 §3.1); unverified dims build
        # +2.6 % (recorded in tests/test_configs.py NOMINAL)
        "transformer": pytest.approx(1.8e9 * 1.026, rel=5e-3),
        "tokenizer_decoder": _stated("phenaki/tokenizer_decoder"),  # no published count
    },
    # LM by formula (checked alone below) + the VQ image encoder: HF "Model size 7.04B params"
    # (3 significant digits, huggingface.co/facebook/chameleon-7b)
    ("chameleon", "7b"): {"model": pytest.approx(7.04e9, abs=5e6), "vq_decoder": AMUSED_VQ},
    ("chameleon-i2t", "7b"): {"model": pytest.approx(7.04e9, abs=5e6)},
    # Llama 2 7B (the safetensors index also holds 8,192 B of fp32 rotary buffers)
    ("llama", "7b"): {"model": llama_params(dims("llama/model.7b"))},
    # SeamlessM4T-Large v2 "2.3B" (huggingface.co/facebook/seamless-m4t-v2-large model table)
    ("seamless", None): {"model": pytest.approx(2.3e9, abs=5e7)},
    ("hstu", None): {"model": _stated("hstu/model")},  # no published count
}
OTHER_VARIANTS = {
    ("parti", "20b"): {"transformer": t5_params(dims("parti/transformer.20b"))},
    ("parti", "750m"): {"transformer": t5_params(dims("parti/transformer.750m"))},
    ("parti", "3b"): {"transformer": t5_params(dims("parti/transformer.3b"))},
    # HF "Model size 34.3B params" (3 significant digits, facebook/chameleon-30b)
    ("chameleon", "34b"): {"model": pytest.approx(34.3e9, abs=5e7)},
    # Llama 2 70B: HF "Model size 69B params"; the formula gives the exact count
    ("llama", "70b"): {"model": llama_params(dims("llama/model.70b"))},
    # Code Llama 34B: HF "Model size 33.7B params"; the formula gives the exact count
    ("llama", "34b"): {"model": llama_params(dims("llama/model.34b"))},
}


def test_formulas_reproduce_published_exact_counts() -> None:
    """Where an exact count is published, the formulas above must give it."""
    # Llama-2-7b-hf safetensors index total_size 13,476,839,424 B: fp16 weights (2 B each)
    # plus the rotary inv_freq buffer of every layer, 32 layers x 64 fp32 values (not params)
    assert 2 * llama_params(dims("llama/model.7b")) + 32 * 64 * 4 == 13_476_839_424
    assert t5_params(dims("phenaki/text_encoder"), decoder=False) == 9_524_621_312 // 2
    assert CLIP_L_TEXT == 123_060_480  # sd15 text_encoder published_params (HF config count)


@pytest.mark.parametrize(
    ("name", "variant", "stem"),
    [("chameleon", "7b", "chameleon/model.7b"), ("chameleon", "34b", "chameleon/model.34b")],
)
def test_chameleon_language_model_matches_the_formula(name, variant, stem) -> None:
    model = _built(name, "full", variant).models["model"]
    lm = sum(p.numel() for k, p in model.named_parameters() if ".vqmodel." not in f".{k}")
    assert lm == llama_params(dims(stem), qk_norm=True)


def test_hstu_item_embedding_is_the_bulk() -> None:
    """1,000,000 items x 512 dims (config num_embeddings, dim): 512,000,000 of the model."""
    model = _built("hstu", "full").models["model"]
    big = max(p.numel() for p in model.parameters())
    assert big == dims("hstu/model")["num_embeddings"] * dims("hstu/model")["dim"] == 512_000_000


#: Reduced full-size settings (meta device) that keep each trace to a few seconds.
REDUCED = {
    "muse": {"steps": 2},
    "parti": {"prompt_len": 8},
    "phenaki": {"frames": 3, "steps": 2, "prompt_len": 8},
    "chameleon": {"prompt_len": 8},
    "chameleon-i2t": {"new_tokens": 4},
    "llama": {"prompt_len": 8, "new_tokens": 6},
    "seamless": {"prompt_len": 100, "new_tokens": 4},
    "hstu": {"prompt_len": 2048},
}


@cache
def _built(name: str, size: str, variant: str | None = None, device: str | None = None) -> Built:
    wl = get_workload(name)
    return wl.build(wl.resolve(Settings(size=size, variant=variant, device=device)))  # type: ignore[arg-type]


_TRACES: dict[tuple, TraceResult] = {}


def _trace(name: str, collapse: bool = True, **options) -> TraceResult:  # type: ignore[no-untyped-def]
    """Trace once per (workload, options) in this module; results are only read."""
    key = (name, collapse, *sorted(options.items()))
    if key not in _TRACES:
        wl = get_workload(name)
        s = wl.resolve(Settings(**options))
        built = _built(name, s.size, s.variant, s.device)
        _TRACES[key] = trace_built(wl, built, s, HW, save=False, collapse=collapse)
    return _TRACES[key]


def _attn(events: pd.DataFrame) -> pd.DataFrame:
    return events[events["category"] == "attention"]


# ------------------------------------------------------------------------------ tiny, for real
@pytest.mark.parametrize("name", AR_WORKLOADS)
def test_tiny_pipeline_runs_end_to_end(name: str) -> None:
    t0 = time.perf_counter()
    result = _trace(name, size="tiny")  # build + the whole pipeline on CPU
    seconds = time.perf_counter() - t0
    assert seconds < 20, f"{name} tiny took {seconds:.1f}s"
    out = result.output
    assert isinstance(out, torch.Tensor) and out.device.type == "cpu" and out.numel() > 0
    if out.is_floating_point():
        assert torch.isfinite(out).all()
    assert result.summary["flops_total"] > 0
    assert set(result.events["category"]) <= set(CATEGORIES)
    assert set(result.meta["params"]) == set(get_workload(name).components)
    assert all(0 < n < 5_000_000 for n in result.meta["params"].values())


#: tiny components whose count follows from the formulas above (tiny dims of the same JSON)
TINY_FORMULAS = {
    ("llama", "model"): lambda: llama_params(dims("llama/model.7b", "tiny")),
    ("parti", "transformer"): lambda: t5_params(dims("parti/transformer.350m", "tiny")),
    ("phenaki", "text_encoder"): lambda: t5_params(dims("phenaki/text_encoder", "tiny"), False),
}


@pytest.mark.parametrize(("name", "component"), list(TINY_FORMULAS))
def test_tiny_trace_reports_formula_param_counts(name: str, component: str) -> None:
    assert _trace(name, size="tiny").meta["params"][component] == TINY_FORMULAS[(name, component)]()


def test_tiny_outputs_have_the_generated_shapes() -> None:
    assert tuple(_trace("muse", size="tiny").output.shape) == (1, 3, 8, 8)  # 4x4 tokens, f=2
    assert tuple(_trace("parti", size="tiny").output.shape) == (1, 3, 8, 8)
    assert tuple(_trace("phenaki", size="tiny").output.shape) == (1, 3, 5, 16, 16)
    assert tuple(_trace("chameleon", size="tiny").output.shape) == (1, 3, 8, 8)
    assert tuple(_trace("chameleon-i2t", size="tiny").output.shape) == (1, 6)
    assert tuple(_trace("llama", size="tiny", batch=2).output.shape) == (2, 8)
    assert tuple(_trace("seamless", size="tiny").output.shape) == (1, 5, 8)  # beams x (2 + 6)
    assert tuple(_trace("hstu", size="tiny").output.shape) == (1, 16, 32)


# ------------------------------------------------------------------------------ full size, meta
@pytest.mark.parametrize(("name", "variant"), list(CONFIG_PARAMS))
def test_full_trace_reports_config_param_counts(name: str, variant: str | None) -> None:
    result = _trace(name, **({"variant": variant} if variant else {}), **REDUCED[name])
    assert result.meta["params"] == CONFIG_PARAMS[(name, variant)]
    assert result.summary["flops_total"] > 0


@pytest.mark.parametrize(("name", "variant"), list(OTHER_VARIANTS))
def test_other_variants_build_config_param_counts(name: str, variant: str) -> None:
    params = _built(name, "full", variant).params()
    for component, count in OTHER_VARIANTS[(name, variant)].items():
        assert params[component] == count


def test_llama_prefill_and_decode_lengths_are_exact() -> None:
    ev = _trace("llama", variant="7b", prompt_len=8, new_tokens=6).events
    attn = _attn(ev)
    prefill = attn[attn["phase"] == "prefill"]
    assert (
        set(prefill["step"]) == {0}
        and set(prefill["q_len"]) == {8}
        and set(prefill["kv_len"]) == {8}
    )
    decode = attn[attn["phase"] == "decode"]
    assert sorted(set(decode["step"])) == [1, 2, 3, 4, 5]
    for step, rows in decode.groupby("step"):
        assert set(rows["q_len"]) == {1}
        assert set(rows["kv_len"]) == {8 + int(step)}
        assert len(rows) == 32  # one SDPA call per layer
    assert set(ev.loc[ev["phase"] == "decode", "component"]) == {"model"}


def test_chameleon_t2i_defaults_cfg_and_1024_image_tokens() -> None:
    wl = get_workload("chameleon")
    s = wl.resolve(Settings())
    assert s.cfg is True and s.variant == "7b" and s.new_tokens is None
    ev = _trace("chameleon", variant="7b", prompt_len=8).events
    attn = _attn(ev)
    assert set(attn["batch"]) == {2}  # CFG: conditional + unconditional prompt
    assert sorted(set(attn["step"])) == list(range(1024))
    for step, rows in attn.groupby("step"):
        assert set(rows["kv_len"]) == {8 + int(step)}
    assert set(attn["attn_axis"]) == {"joint"}


def test_chameleon_i2t_prefills_image_and_text() -> None:
    ev = _trace("chameleon-i2t", variant="7b", new_tokens=4).events
    assert set(ev.loc[ev["phase"] == "encode_image", "category"]) >= {"conv"}
    attn = _attn(ev)
    prefill = attn[attn["phase"] == "prefill"]
    assert set(prefill["q_len"]) == {1030}
    decode = attn[attn["phase"] == "decode"]
    assert {int(k): set(v) for k, v in decode.groupby("step")["kv_len"]} == {
        i: {1030 + i} for i in (1, 2, 3)
    }
    with pytest.raises(UserError, match="prompt-len must be >= 1026"):
        get_workload("chameleon-i2t").resolve(Settings(prompt_len=100))


def test_cfg_doubles_the_batch() -> None:
    cases = [(n, "transformer") for n in ("parti", "muse", "phenaki")] + [("chameleon", "model")]
    for name, component in cases:
        on = _attn(_trace(name, size="tiny").events)  # CFG is the default
        off = _attn(_trace(name, size="tiny", cfg=False).events)
        on, off = on[on["component"] == component], off[off["component"] == component]
        assert set(on["batch"]) == {2} and set(off["batch"]) == {1}, name


def test_parti_decoder_steps_and_cross_attention() -> None:
    ev = _trace("parti", variant="350m", prompt_len=8).events  # 1024 image tokens, CFG
    attn = _attn(ev)
    dec = attn[attn["phase"].isin(["prefill", "decode"])]
    assert sorted(set(dec["step"])) == list(range(1024))
    self_attn = dec[dec["attn_kind"] == "self"]
    cross = dec[dec["attn_kind"] == "cross"]
    for step, rows in self_attn.groupby("step"):
        assert set(rows["kv_len"]) == {1 + int(step)}
    assert set(cross["kv_len"]) == {8} and set(cross["batch"]) == {2}
    assert result_image_side(ev) == 512  # 32x32 tokens through the f=16 VQ decoder


@pytest.mark.slow
def test_parti_default_20b_full_trace() -> None:
    result = trace_workload("parti", Settings(), save=False)  # 20B, 1024 steps, CFG
    assert result.meta["params"]["transformer"] == t5_params(dims("parti/transformer.20b"))
    attn = _attn(result.events)
    decoder = attn[attn["phase"].isin(["prefill", "decode"])]
    assert sorted(set(decoder["step"])) == list(range(1024))
    assert set(attn["batch"]) == {2}


def result_image_side(events: pd.DataFrame) -> int:
    last = events[events["phase"] == "decode_image"].iloc[-1]["output_shapes"]
    return int(last.strip("[]").split(",")[-1])


def test_seamless_beam_search_reorders_the_kv_cache() -> None:
    ev = _trace("seamless", prompt_len=100, new_tokens=4).events
    reorder = ev[ev["category"] == "kv_reorder"]
    assert len(reorder) and (total(reorder, "bytes_read") > 0).all()
    assert set(reorder["op"]) == {"aten.index_select.default"}
    assert set(reorder["step"]) == {0, 1, 2, 3}  # after the prefill and after every decode step
    # 24 layers x (self K, self V, cross K, cross V) per step, the self-attention part growing
    assert (reorder.groupby("step").size() == 96).all()
    attn = _attn(ev)
    assert set(attn.loc[attn["phase"] == "decode", "batch"]) == {5}  # 5 beams
    dec_self = attn[(attn["phase"] == "decode") & (attn["attn_kind"] == "self")]
    assert {int(k): set(v) for k, v in dec_self.groupby("step")["kv_len"]} == {
        i: {2 + i} for i in (1, 2, 3)
    }
    enc = attn[(attn["component"] == "speech_encoder") & attn["op"].str.contains("scaled_dot")]
    assert set(enc["q_len"]) == {100, 13}  # conformer layers; the stride-8 adaptor


def test_kv_reorder_rule_needs_the_reorder_module() -> None:
    op = torch.ops.aten.index_select.default
    assert categorize(op, "KVCacheReorder") == "kv_reorder"
    assert categorize(op, "SeamlessM4Tv2Decoder") == "memory"
    assert categorize(torch.ops.aten.mm.default, "KVCacheReorder") == "linear"


def test_hstu_pointwise_attention_is_attention() -> None:
    ev = _trace("hstu", prompt_len=2048).events
    bmm = ev[ev["module_path"].str.endswith("pointwise_attn") & (ev["op"] == "aten.bmm.default")]
    assert len(bmm) == 20 and set(bmm["category"]) == {"attention"}  # QK and AV, 10 layers
    assert set(bmm["q_len"]) == {2048, 2028}  # L1 over the history, L2 over its tail
    assert "softmax" not in " ".join(ev.loc[ev["category"] == "attention", "op"])


def test_phenaki_attention_axes() -> None:
    ev = _trace("phenaki", frames=3, steps=2, prompt_len=8).events  # 2 latent frames
    attn = _attn(ev)
    temporal = attn[attn["attn_axis"] == "temporal"]
    spatial = attn[(attn["component"] == "tokenizer_decoder") & (attn["attn_axis"] == "spatial")]
    joint = attn[attn["attn_axis"] == "joint"]
    assert set(temporal["q_len"]) == {2} and set(temporal["batch"]) == {256}
    assert set(spatial["q_len"]) == {256} and set(spatial["batch"]) == {2}
    assert set(joint.loc[joint["attn_kind"] == "self", "q_len"]) == {512}
    assert set(joint.loc[joint["attn_kind"] == "cross", "kv_len"]) == {8}


def test_masked_token_steps_collapse_except_the_last() -> None:
    result = _trace("muse", steps=4)
    unmask = result.events[result.events["phase"] == "unmask"]
    transformer = unmask[unmask["op"] == "aten.scaled_dot_product_attention"]
    assert sorted(set(unmask["step"])) == [0, 3]
    assert set(transformer.loc[transformer["step"] == 0, "count"]) == {3}
    assert set(transformer.loc[transformer["step"] == 3, "count"]) == {1}
    assert set(_attn(unmask)["q_len"]) == {256}  # 16x16 token grid


def test_bad_options_name_the_valid_ones() -> None:
    with pytest.raises(UserError, match=r"does not take --new-tokens; it takes: .*--steps"):
        get_workload("sd15").resolve(Settings(new_tokens=4))
    with pytest.raises(UserError, match=r"does not take --new-tokens"):
        get_workload("parti").resolve(Settings(new_tokens=4))
    for name, valid in (
        ("llama", "34b, 70b, 7b"),
        ("parti", "20b, 350m, 3b, 750m"),
        ("chameleon", "34b, 7b"),
    ):
        with pytest.raises(UserError, match=valid):
            get_workload(name).resolve(Settings(variant="13b"))
    with pytest.raises(UserError, match="frames must be <= 127"):
        get_workload("phenaki").resolve(Settings(frames=200))


# ------------------------------------------------------------------------------ exact shortcut
def _by_category(ev: pd.DataFrame) -> dict[str, tuple[int, int]]:
    return {
        str(c): (
            int(total(g, "flops").sum()),
            int((total(g, "bytes_read") + total(g, "bytes_written")).sum()),
        )
        for c, g in ev.groupby("category")
    }


def _attention_ops(ev: pd.DataFrame) -> list[tuple]:
    """Every attention / kv_reorder op (rows expanded by count), without step labels."""
    cols = [
        "phase",
        "attn_kind",
        "q_len",
        "kv_len",
        "batch",
        "flops",
        "bytes_read",
        "bytes_written",
    ]
    rows = ev[ev["category"].isin(["attention", "kv_reorder"])]
    expanded = rows.loc[rows.index.repeat(rows["count"]), cols]
    return sorted(map(tuple, expanded.astype(object).itertuples(index=False)), key=repr)


def _self_kv_len_per_step(ev: pd.DataFrame) -> dict[int, list[int]]:
    """Self-attention kv_len per step: the cache length, one row per step and layer."""
    attn = ev[(ev["category"] == "attention") & (ev["attn_kind"] == "self")]
    return {int(k): sorted(int(x) for x in v) for k, v in attn.groupby("step")["kv_len"]}


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("llama", {"prompt_len": 8, "new_tokens": 14}),
        ("chameleon", {}),  # 16 image tokens with CFG
        ("parti", {}),  # 16 image tokens, encoder-decoder cache with CFG
        ("seamless", {"new_tokens": 12}),  # beam search + cache reorder
    ],
)
def test_affine_extrapolation_equals_the_full_trace(name: str, options: dict) -> None:
    """The shortcut is exact: same totals, categories and per-step attention as every step
    traced, on meta with the tiny configs (so the full trace is cheap)."""
    fast = _trace(name, size="tiny", device="meta", **options)
    full = _trace(name, collapse=False, size="tiny", device="meta", **options)
    assert len(fast.events) < len(full.events)  # the shortcut did apply
    assert fast.summary["flops_total"] == full.summary["flops_total"]
    assert fast.summary["bytes_total"] == full.summary["bytes_total"]
    assert _by_category(fast.events) == _by_category(full.events)
    assert _attention_ops(fast.events) == _attention_ops(full.events)
    assert _self_kv_len_per_step(fast.events) == _self_kv_len_per_step(full.events)
    assert fast.summary["kernel_s"] == pytest.approx(full.summary["kernel_s"], rel=1e-12)
    # The host timeline runs an extrapolated block as repeats of its mean step, so the wall of
    # decode steps whose kernels grow differs a little from the per-step timeline (tiny
    # configs on a100-80g-sxm: llama 4.6 %, seamless 3.9 %, chameleon 0.5 %); an error in the
    # extrapolated rows would move it by far more.
    assert fast.summary["predicted_s"] == pytest.approx(full.summary["predicted_s"], rel=0.05)
    for col in ("live_bytes",):
        if col in full.events:
            assert fast.events[col].max() == full.events[col].max()


def test_affine_fit_rejects_non_affine_rows() -> None:
    def block(n: int) -> list[dict]:
        return [{"seq": 0, "step": n, "op": "x", "flops": n * n, "input_shapes": f"[{n}]"}]

    assert AffineSteps.fit(1, [block(1), block(2), block(3)]) is None  # quadratic flops
    ok = [
        {"seq": 0, "step": n, "op": "x", "flops": 3 * n, "input_shapes": f"[2,{n}]"}
        for n in (1, 2, 3)
    ]
    model = AffineSteps.fit(1, [[r] for r in ok])
    assert model is not None
    assert model.row(model.rows[0], 10) == {"op": "x", "flops": 30, "input_shapes": "[2,10]"}


def test_decode_loop_falls_back_when_the_probe_disagrees() -> None:
    """Steps whose ops change shape non-affinely late in the loop are traced in full."""
    run = Runner(collapse_identical_steps=True)

    def step(i: int, state: None) -> None:
        n = i if i < 9 else i * i  # affine at first, then not
        torch.empty(n, device="meta") + 1

    capture = AnalyticCapture(run, AxisRules())
    with capture:
        report = DecodeLoop(run, "m", step, fresh=lambda i: None, device="meta")(range(1, 12), None)
    assert report.mode == "fallback" and "probe" in report.reason
    steps = [r["step"] for r in capture.rows if r["phase"] == "decode"]
    assert sorted(set(steps)) == list(range(1, 12)) and all(r["count"] == 1 for r in capture.rows)
