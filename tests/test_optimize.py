"""Optimization levers on tiny models: each lever's output deviation within its stated
tolerance, SDPA == math, speculative decoding exact under greedy, skip reasons, the stack's
bookkeeping, and the CLI contract."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from genscope.cli import main
from genscope.errors import UserError
from genscope.optimize import LEVERS, LeverContext, TargetSpec, build_target, parse_levers
from genscope.optimize.base import Branch, Lever, LeverSkipped
from genscope.optimize.decode_target import DecodeTarget, cache_length, rollback
from genscope.optimize.deviation import TOLERANCES, kl_mean, psnr, token_deviation, within
from genscope.optimize.stack import run_stack

CPU = LeverContext("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models are overhead-bound; one thread keeps a busy shared CPU from stalling."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def unet():
    return build_target(TargetSpec("sd15", size="tiny", steps=1))


def chameleon(new_tokens=12, **kw):
    return build_target(TargetSpec("chameleon", size="tiny", new_tokens=new_tokens, **kw))


def llama(new_tokens=12):
    return build_target(TargetSpec("llama", size="tiny", new_tokens=new_tokens))


def outputs(target):
    """(output, teacher-forced logits or None) of one call."""
    run = target.prepare()
    out = run()
    return out, (target.forced_logits(run, out.tokens[0]) if target.kind == "decode" else None)


def applied(target, *names, **options):
    ctx = LeverContext("cpu", options)
    for name in names:
        target = LEVERS[name].apply(target, ctx)
        target.applied.append(name)
    return target


# ----------------------------------------------------------------------- metrics
def test_psnr_and_kl_arithmetic():
    ref = torch.tensor([0.0, 1.0, 2.0, 3.0])
    # range 3, mse = 0.01^2 → 10·log10(9 / 1e-4) = 49.54 dB
    assert psnr(ref, ref + 0.01) == pytest.approx(10 * torch.log10(torch.tensor(9 / 1e-4)).item())
    assert psnr(ref, ref) == float("inf")
    p = torch.tensor([[0.0, 0.0]])
    q = torch.tensor([[0.0, torch.log(torch.tensor(3.0)).item()]])  # (1/2,1/2) vs (1/4,3/4)
    # KL = ½ln(½/¼) + ½ln(½/¾) = ½ln(4/3) = 0.1438
    assert kl_mean(p, q) == pytest.approx(0.5 * torch.log(torch.tensor(4 / 3)).item(), rel=1e-6)
    dev = token_deviation(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 9, 4]))
    assert dev == {"exact_match": 0.75, "prefix_match": 0.5}


def test_tolerances_are_stated_with_reasons():
    for kind, tols in TOLERANCES.items():
        assert tols, kind
        for t in tols:
            assert len(t.why) > 40 and t.op in (">=", "<=")
    assert within("latents", {"psnr_db": 29.9}) == (False, ["psnr_db >= 30"])
    assert within("tokens", {"kl_mean": 0.001})[0]


# ----------------------------------------------------------------------- the SDPA lever
def test_sdpa_equals_math_attention_fp32():
    base = unet()
    ref, _ = outputs(base)
    out, _ = outputs(applied(base.fork(False), "sdpa"))
    # fp32 rounding only: ~100 ulps of outputs of order 1. CPUs differ in how their fused
    # attention kernel orders the sums (1.19e-5 on an AVX2 EPYC, under 1e-5 with AVX-512); a
    # wrong attention is off by order 1.
    assert (out.noise - ref.noise).abs().max() <= 2e-5
    assert (out.latents - ref.latents).abs().max() <= 2e-5

    t = chameleon()
    ref_tok, ref_logits = outputs(t)
    out_tok, logits = outputs(applied(t.fork(False), "sdpa"))
    assert torch.equal(out_tok.tokens, ref_tok.tokens)
    assert (logits - ref_logits).abs().max() <= 1e-5


# ----------------------------------------------------------------------- every lever
EXACT_LATENTS = 1e-4  # fp32 reordering only (fused GEMMs, layouts): max |Δ| of the noise pred.

DENOISE_LEVERS = ["bf16", "channels_last", "fused_qkv", "int8_dynamic", "int8_weight_only"]
DECODE_LEVERS = [
    "static_cache",
    "bf16",
    "int8_weight_only",
    "int8_dynamic",
    "image_head",
    "batching",
    "speculative",
]


@pytest.mark.parametrize("name", DENOISE_LEVERS)
def test_denoise_lever_within_tolerance(name):
    base = unet()
    ref, _ = outputs(base)
    t = applied(base.fork(copy_modules=True), "sdpa", name)
    out, _ = outputs(t)
    dev = t.deviation(ref, out)
    ok, broken = within("latents", dev)
    assert ok, (name, dev, broken)
    if not LEVERS[name].lossy:
        assert dev["max_abs"] <= EXACT_LATENTS, (name, dev)
    assert name in t.applied


@pytest.mark.parametrize("name", DECODE_LEVERS)
def test_decode_lever_within_tolerance(name):
    base = chameleon()
    ref, ref_logits = outputs(base)
    t = applied(base.fork(copy_modules=True), "sdpa", name, batch=3, draft_layers=1)
    run = t.prepare()
    out = run()
    forced = t.forced_logits(run, ref.tokens[0])
    dev = t.deviation(ref, out, ref_logits, forced)
    ok, broken = within("tokens", dev)
    assert ok, (name, dev, broken)
    if not LEVERS[name].lossy:  # exact levers: the same greedy tokens, the same distributions
        assert dev["exact_match"] == 1.0, (name, dev)
        assert dev["kl_mean"] <= 1e-8, (name, dev)
    if name == "batching":
        assert out.tokens.shape == (3, base.new_tokens)


def test_quantized_linears_replace_every_linear_of_the_loop():
    from genscope.optimize.quant import Int8DynamicLinear, Int8WeightOnlyLinear

    t = applied(chameleon(), "bf16", "int8_weight_only")
    kinds = {type(m) for m in t.model.model.layers.modules()}
    assert torch.nn.Linear not in kinds and Int8WeightOnlyLinear in kinds
    assert type(t.model.lm_head) is torch.nn.Linear  # the LM head stays bf16 by default
    t = applied(chameleon(), "bf16", "int8_dynamic", quantize_head=True)  # int8_dynamic:all
    assert isinstance(t.model.model.layers[0].mlp.down_proj, Int8DynamicLinear)
    assert isinstance(t.model.lm_head, Int8DynamicLinear)
    with pytest.raises(LeverSkipped, match=r"no float nn\.Linear"):
        LEVERS["int8_weight_only"].apply(t, CPU)
    # fp32 targets get torch.ao's maintained dynamic linear
    t = applied(chameleon(), "int8_dynamic")
    assert type(t.model.model.layers[0].mlp.down_proj).__module__.startswith("torch.ao")


# ----------------------------------------------------------------------- speculation
@pytest.mark.parametrize("cache", ["dynamic", "static"])
@pytest.mark.parametrize("factory", [chameleon, llama], ids=["chameleon-cfg", "llama"])
def test_speculative_greedy_output_equals_baseline_exactly(factory, cache):
    base = factory(new_tokens=20)
    if cache == "static":
        base = applied(base, "static_cache")
    ref = base.prepare()()
    for k, n in ((1, 3), (1, 1), (1, 5)):
        t = applied(base.fork(False), "speculative", draft_layers=k, draft_tokens=n)
        out = t.prepare()()
        assert torch.equal(out.tokens, ref.tokens), (k, n)
        rate = t.stats(out)["acceptance_rate"]
        assert 0.0 <= rate <= 1.0
        assert out.drafted > 0 and 0 <= out.accepted <= out.drafted


def test_speculation_accepts_everything_when_the_skipped_layers_do_nothing():
    # zero the output projections of layer 1 (of 2): the full model's logits are the 1-layer
    # draft's, so every draft is accepted and each round yields draft_tokens + 1 tokens
    t = chameleon(new_tokens=17)
    layer = t.model.model.layers[1]
    for lin in (layer.self_attn.o_proj, layer.mlp.down_proj):
        torch.nn.init.zeros_(lin.weight)
    ref = t.prepare()()
    t = applied(t.fork(False), "static_cache", "speculative", draft_layers=1, draft_tokens=3)
    out = t.prepare()()
    assert torch.equal(out.tokens, ref.tokens)
    assert out.accepted == out.drafted == 3 * 4  # 16 tokens after the first, 4 per round


def test_rollback_forgets_positions_in_both_cache_kinds():
    for cache in ("dynamic", "static"):
        t = chameleon()
        t.cache = cache
        t.prepare()
        c = t._new_cache()
        with torch.inference_mode():
            t.model.model(input_ids=t.prompt(), past_key_values=c, use_cache=True)
        assert cache_length(c) == t.prompt_len
        rollback(c, 3)
        assert cache_length(c) == 3


# ----------------------------------------------------------------------- applicability
@pytest.mark.parametrize(
    ("lever", "workload", "needle"),
    [
        ("channels_last", "chameleon", "no convolutions"),
        ("fused_qkv", "chameleon", "no fused-QKV API"),
        ("static_cache", "sd15", "autoregressive decode loop"),
        ("speculative", "sd15", "autoregressive decode loop"),
        ("batching", "sd15", "autoregressive decode loop"),
    ],
)
def test_levers_that_do_not_apply_say_why(lever, workload, needle):
    from genscope.workloads.registry import get_workload

    ok, reason = LEVERS[lever].applies_to(get_workload(workload), "cpu")
    assert not ok and needle in reason


def test_skipped_levers_are_reported_with_reasons_in_the_stack(levers_settled):
    levers, _ = parse_levers("channels_last,sdpa,image_head", "decode")
    res = run_stack(lambda: llama(new_tokens=4), levers, CPU, repeats=1)
    levers_settled(res.stages)
    by = {s.lever: s for s in res.stages}
    assert by["channels_last"].status == "skipped"
    assert "no convolutions" in by["channels_last"].reason
    assert by["image_head"].status == "skipped"
    assert "whole vocabulary" in by["image_head"].reason
    assert by["sdpa"].status == "measured"
    d = res.to_dict()
    assert set(d["levers_skipped"]) == {"channels_last", "image_head"}
    assert d["levers_counted"] == ["sdpa"]


# ----------------------------------------------------------------------- the stack
class _Noise(Lever):
    """A deliberately broken lossy lever: adds noise to every weight."""

    name = "noise"
    family = "precision"
    summary = "test: perturb weights"
    lossy = True

    def mutates(self, target):
        return True

    def apply(self, target, ctx):
        with torch.no_grad():
            for p in target.unet.parameters():
                p.add_(torch.randn_like(p) * p.abs().mean())
        return target


def test_stack_rejects_a_stage_outside_tolerance_and_builds_later_stages_without_it(
    levers_settled,
):
    res = run_stack(
        unet, [LEVERS["sdpa"], _Noise(), Branch(LEVERS["bf16"]), LEVERS["fused_qkv"]], CPU,
        warmup=1, repeats=2,
    )  # fmt: skip
    levers_settled(res.stages)  # rejected with a reason is a settled lever
    st = {s.lever: s for s in res.stages}
    assert [s.status for s in res.stages] == ["baseline", "measured", "rejected", "measured",
                                              "measured"]  # fmt: skip
    assert not st["noise"].counted and st["noise"].tolerance_broken == ["psnr_db >= 30"]
    assert st["bf16"].branch and not st["bf16"].counted
    # fused_qkv was built on sdpa (not on noise, not on the bf16 branch): fp32, exact
    assert st["fused_qkv"].config["dtype"] == "fp32"
    assert st["fused_qkv"].deviation["max_abs"] <= EXACT_LATENTS
    d = res.to_dict()
    assert d["levers_counted"] == ["sdpa", "fused_qkv"]
    assert "noise" in d["levers_rejected"]
    for s in d["stages"]:
        assert s["latency_s"] > 0 and s["repeats"] == 2
        assert s["speedup"] == pytest.approx(s["throughput"] / d["stages"][0]["throughput"])
    assert d["stages"][-1]["speedup_vs_prev"] == pytest.approx(
        d["stages"][-1]["throughput"] / d["stages"][1]["throughput"]
    )  # vs sdpa, the previous *counted* stage
    assert d["speedup"] == d["stages"][-1]["speedup"]


class _Crash(Lever):
    """A lever that raises while being applied."""

    name = "crash"
    family = "layout"
    summary = "test: raise"

    def apply(self, target, ctx):
        raise RuntimeError("boom")


def test_a_crashing_lever_is_failed_and_fails_the_settled_check(levers_settled):
    res = run_stack(unet, [_Crash(), LEVERS["sdpa"]], CPU, repeats=1)
    st = {s.lever: s for s in res.stages}
    assert st["crash"].status == "failed" and st["crash"].reason == "RuntimeError: boom"
    assert st["sdpa"].status == "measured"  # the stack went on past it
    assert res.to_dict()["levers_rejected"] == {"crash": "RuntimeError: boom"}
    with pytest.raises(AssertionError, match="failed"):
        levers_settled(res.stages)


def test_batching_is_reported_as_throughput():
    res = run_stack(
        lambda: chameleon(new_tokens=6), [LEVERS["batching"]], LeverContext("cpu", {"batch": 3}),
        repeats=1,
    )  # fmt: skip
    base, batched = res.stages
    assert batched.work_items == 3 * base.work_items and batched.throughput_unit == "tokens/s"
    assert batched.speedup_kind.startswith("throughput")
    assert res.matched_batch_speedup() == 1.0


# ----------------------------------------------------------------------- parsing and CLI
def test_parse_levers_arguments_and_branches():
    levers, opts = parse_levers(
        "sdpa,compile:max-autotune,~speculative:2x4,batching:8,int8_weight_only:all", "decode"
    )
    assert [getattr(x, "name", None) or x.lever.name for x in levers] == [
        "sdpa", "compile", "speculative", "batching", "int8_weight_only",
    ]  # fmt: skip
    assert isinstance(levers[2], Branch)
    assert opts == {"compile_mode": "max-autotune", "draft_layers": 2, "draft_tokens": 4,
                    "batch": 8, "quantize_head": True}  # fmt: skip
    assert next(x.name for x in parse_levers(None, "denoise")[0]) == "sdpa"
    for bad, needle in [
        ("sdpa,warp", "choose one of"),
        ("sdpa:3", "takes no argument"),
        ("batching:x", "bad argument"),
        ("sdpa,sdpa", "twice"),
        ("compile:fast", "choose one of"),
        ("int8_dynamic:some", "bad argument"),
    ]:
        with pytest.raises(UserError, match=needle):
            parse_levers(bad, "decode")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["optimize", "sd15", "--levers", "sdpa,turbo"], "channels_last"),
        (["optimize", "sd15", "--size", "huge"], "tiny"),
        (["optimize", "chameleon-i2t"], "chameleon"),
        (["optimize", "nope"], "sd15"),
        (["optimize", "sd15", "--repeats", "0"], ">= 1"),
        (["optimize", "sd15", "--device", "tpu"], "cpu"),
    ],
)
def test_optimize_bad_input_is_one_line_exit_2(args, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["genscope", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], lines


def test_unknown_lever_names_every_valid_lever(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["genscope", "optimize", "sd15", "--levers", "turbo"])
    with pytest.raises(SystemExit):
        main()
    err = capsys.readouterr().err
    for name in LEVERS:
        assert name in err


def test_optimize_json_has_stages(monkeypatch, capsys):
    monkeypatch.setattr(
        sys,
        "argv",
        ["genscope", "optimize", "sd15", "--levers", "sdpa,static_cache,bf16", "--repeats", "1",
         "--threads", "1", "--json"],
    )  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    d = json.loads(out)
    assert [s["lever"] for s in d["stages"]] == ["baseline", "sdpa", "static_cache", "bf16"]
    assert [s["status"] for s in d["stages"]] == ["baseline", "measured", "skipped", "measured"]
    assert "static" in d["stages"][2]["reason"] or "cache" in d["stages"][2]["reason"]
    assert d["mode"] == "measured (cpu)" and d["stages"][3]["deviation"]["psnr_db"] >= 30
    assert {"speedup", "deviation", "baseline", "tolerance", "settings"} <= set(d)


def test_decode_target_describes_itself():
    t = chameleon()
    assert isinstance(t, DecodeTarget) and t.cfg and t.vocab is not None
    d = t.describe()
    assert d["rows"] == 2 and d["cache"] == "dynamic" and "image tokens" in d["unit"]


# ----------------------------------------------------------------------- figure and report
def _fake_results():
    res = run_stack(
        lambda: chameleon(new_tokens=4),
        [LEVERS["sdpa"], LEVERS["channels_last"], Branch(LEVERS["batching"])],
        CPU,
        repeats=1,
    )
    return [res.to_dict() | {"target": 3.88}]


def test_plot_levers_draws_one_panel_per_workload():
    from matplotlib.figure import Figure

    from genscope.optimize.figures import plot_levers, stages_frame

    frame = stages_frame(_fake_results() * 2)
    assert {"workload", "lever", "speedup", "speedup_vs_prev", "counted", "kl_mean"} <= set(frame)
    frame.loc[len(frame) // 2 :, "workload"] = "other"
    fig = plot_levers(frame)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    # skipped levers are not drawn: baseline, sdpa, batching (branch)
    assert len(fig.axes[0].patches) == 3


def test_levers_section_records_the_388_finding(tmp_path, monkeypatch):
    from genscope.report.context import ReportContext
    from genscope.report.sections import levers as report_section

    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path / "home"))  # no stored bench result
    fake = _fake_results()
    monkeypatch.setattr(report_section, "_live", lambda quick: fake * 2)
    ctx = ReportContext(tmp_path, "a100-80g-sxm", quick=True)
    sections = report_section.levers_section(ctx)
    assert [s.label for s in sections] == ["measured (cpu)"]
    assert sections[0].figures and (tmp_path / "data" / "levers_live.csv").exists()
    # on a GPU spec the claim is the GPU model's prediction (levers_predicted), not this run
    assert "levers_388" not in ctx.findings
    monkeypatch.setattr(ReportContext, "gpu", property(lambda self: False))
    ctx = ReportContext(tmp_path, "a100-80g-sxm", quick=True)
    report_section.levers_section(ctx)
    f = ctx.findings["levers_388"]
    assert f.mode == "measured (cpu)" and "no stored" in f.detail
