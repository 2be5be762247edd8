"""Diffusion-family workloads: sdxl, imagen, make-a-video, svd, pixart, sd3, flux, cogvideox, wan.

* every tiny pipeline runs end to end for real on CPU (< 20 s) and returns an image / video of
  the expected shape;
* every full pipeline traces on ``meta`` at reduced settings (1 step, small res/frames) and
  reports, per component, exactly the parameters its shipped config builds to;
* attention rows carry the right labels: expected sequence lengths are derived here from the
  configs and the settings (not pasted);
* bad options fail with a UserError naming the valid choices.
"""

from __future__ import annotations

import sys
import time
from functools import cache

import pandas as pd
import pytest
import torch

from genscope import trace_workload
from genscope.errors import UserError
from genscope.workloads.base import Settings
from genscope.workloads.components import build_component, count_params
from genscope.workloads.registry import get_workload, workload_names

IMAGE = ["sdxl", "imagen", "pixart", "sd3", "flux"]
VIDEO = ["make-a-video", "svd", "cogvideox", "wan"]
#: (workload, variant) pairs: every variant of the video DiTs
CASES = [
    (name, variant)
    for name in IMAGE + VIDEO
    for variant in (get_workload(name).variants or (None,))
]
IDS = [f"{n}-{v}" if v else n for n, v in CASES]
#: full-size meta traces of the non-default variants (cogvideox-5b, wan-14b) took 2.1 s and
#: 3.3 s on the 2-core CI box (`pytest --durations=0 -m slow`), so all run by default
FULL_CASES = [pytest.param(n, v) for n, v in CASES]
#: reduced full-size settings: one step and small res/frames keep a meta trace quick
REDUCED: dict[str, dict] = {
    "sdxl": {"res": (256, 256)},
    "imagen": {"res": (256, 256)},
    "pixart": {"res": (256, 256)},
    "sd3": {"res": (256, 256)},
    "flux": {"res": (256, 256)},
    "make-a-video": {"res": (128, 128), "frames": 3},
    "svd": {"res": (128, 192), "frames": 3},
    "cogvideox": {"res": (128, 160), "frames": 9},
    "wan": {"res": (128, 160), "frames": 9},
}


def variants(name: str) -> list:
    """Every variant (each a separate full-size trace of a few seconds at most)."""
    return list(get_workload(name).variants)


@cache
def full_trace(name: str, variant: str | None):
    s = Settings(size="full", steps=1, variant=variant, **REDUCED[name])
    return get_workload(name).resolve(s), trace_workload(name, s, save=False)


def full_config(name: str, component: str, variant: str | None = None) -> dict:
    return get_workload(name).component_config(component, variant).config("full")


def attention(result, component: str) -> pd.DataFrame:
    ev = result.events
    return ev[(ev["category"] == "attention") & (ev["component"] == component)]


def text_len(result, component: str) -> int:
    """Sequence length the text encoder ran on, read from its own self-attention rows."""
    (n,) = attention(result, component)["q_len"].unique()
    return int(n)


def unet_attention_sizes(cfg: dict, h: int, w: int) -> set[int]:
    """H·W of every UNet level with attention: levels of the cross-attention down blocks plus
    the lowest level (the mid block); the up path mirrors the down path."""
    blocks = cfg["down_block_types"]
    levels = {i for i, b in enumerate(blocks) if "CrossAttn" in b} | {len(blocks) - 1}
    return {(h // 2**i) * (w // 2**i) for i in levels}


def vae_factor(cfg: dict) -> int:
    return 2 ** (len(cfg["block_out_channels"]) - 1)


# ------------------------------------------------------------------------------ registry
def test_all_diffusion_workloads_registered():
    assert set(IMAGE + VIDEO) <= set(workload_names())
    for name in IMAGE + VIDEO:
        wl = get_workload(name)
        assert wl.family in ("diffusion-unet", "diffusion-dit")
        assert wl.task == ("i2v" if name == "svd" else "ttv" if name in VIDEO else "tti")
        assert ("frames" in wl.options) == (name in VIDEO)
        assert set(wl.defaults["full"]) == set(wl.defaults["tiny"])
        d = wl.describe()
        assert d["description"] and all(
            c["source"].startswith("http") for c in d["components"].values()
        )


def test_published_defaults():
    full = {name: get_workload(name).defaults["full"] for name in IMAGE + VIDEO}
    for name in ("sdxl", "imagen", "pixart", "sd3", "flux"):
        assert full[name]["res"] == (1024, 1024)
    assert "cfg" not in full["flux"]  # guidance-distilled
    assert full["sd3"]["cfg"] and full["sdxl"]["cfg"] and full["imagen"]["cfg"]
    assert (full["make-a-video"]["frames"], full["make-a-video"]["res"]) == (16, (256, 256))
    assert (full["svd"]["frames"], full["svd"]["res"]) == (25, (576, 1024))  # SVD-XT
    assert (full["cogvideox"]["frames"], full["cogvideox"]["res"]) == (49, (480, 720))
    assert (full["wan"]["frames"], full["wan"]["res"]) == (81, (480, 832))
    assert full["cogvideox"]["steps"] == full["wan"]["steps"] == full["sdxl"]["steps"] == 50


# ------------------------------------------------------------------------------ tiny, for real
@pytest.mark.parametrize(("name", "variant"), CASES, ids=IDS)
def test_tiny_pipeline_runs_for_real(name, variant):
    settings = Settings(size="tiny", variant=variant)
    s = get_workload(name).resolve(settings)
    # CPU time of this process: the budget is the pipeline's, not other jobs' on a shared box
    started = time.process_time()
    result = trace_workload(name, settings, save=False)
    seconds = time.process_time() - started
    assert seconds < 20, f"{name} tiny took {seconds:.1f} CPU s"
    out = result.output
    h, w = s.res
    expected = (s.batch, 3, s.frames, h, w) if name in VIDEO else (s.batch, 3, h, w)
    assert isinstance(out, torch.Tensor) and out.device.type == "cpu"
    assert tuple(out.shape) == expected
    assert torch.isfinite(out).all()
    assert result.summary["flops_total"] > 0
    assert result.meta["collapsed_steps"]["denoise"] == s.steps


#: imagen (9.4 s) and svd (5.7 s) stay slow; the others took 1.3-4.1 s each on the 2-core box
SLOW_COLLAPSE = ("imagen", "svd")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[pytest.mark.slow] if n in SLOW_COLLAPSE else [])
        for n in IMAGE + VIDEO
    ],
)
def test_tiny_collapsed_trace_equals_step_by_step(name):
    """Loops declared identical really are: tracing once ×N gives the model FLOPs of N steps
    (wan by default: its CFG passes are a second, nested collapsed loop)."""
    s = Settings(size="tiny", steps=2)
    once = trace_workload(name, s, save=False).summary["by_component"]
    every = trace_workload(name, s, save=False, collapse_identical_steps=False)
    every = every.summary["by_component"]
    for component in get_workload(name).components:
        assert once[component]["flops"] == every[component]["flops"], component


# ------------------------------------------------------------------------------ full, on meta
@pytest.mark.parametrize(("name", "variant"), FULL_CASES, ids=IDS)
def test_full_size_traces_on_meta_with_config_params(name, variant):
    s, result = full_trace(name, variant)
    wl = get_workload(name)
    out = result.output
    assert out.device.type == "meta"
    h, w = s.res
    assert tuple(out.shape) == ((1, 3, s.frames, h, w) if name in VIDEO else (1, 3, h, w))
    params = result.meta["params"]
    assert set(params) == set(wl.components)
    for component in wl.components:
        cfg = wl.component_config(component, s.variant)
        built = count_params(build_component(cfg, "full", device="meta"))
        assert params[component] == built, component
        assert abs(built - cfg.published_params) <= 0.01 * cfg.published_params, component
    assert result.summary["flops_total"] > 1e12


# ------------------------------------------------------------------------------ attention labels
def test_make_a_video_attention_labels():
    s, result = full_trace("make-a-video", None)
    unet = full_config("make-a-video", "unet")
    f = vae_factor(full_config("make-a-video", "vae"))
    h, w = s.res[0] // f, s.res[1] // f
    rows = 2 * s.batch  # CFG
    a = attention(result, "unet")
    temporal, spatial = a[a["attn_axis"] == "temporal"], a[a["attn_axis"] == "spatial"]
    assert len(temporal) and len(spatial) and len(a) == len(temporal) + len(spatial)
    # temporal attention: one sequence of `frames` per latent pixel, at every level
    assert (temporal["q_len"] == s.frames).all() and (temporal["kv_len"] == s.frames).all()
    assert (temporal["attn_kind"] == "self").all()
    sizes = unet_attention_sizes(unet, h, w)
    assert set(temporal["batch"]) <= {rows * hw for hw in sizes} | {rows * h * w}
    # spatial attention: H·W of each level, per frame
    assert set(spatial["q_len"]) == sizes
    assert set(spatial["batch"]) == {rows * s.frames}
    self_ = spatial[spatial["attn_kind"] == "self"]
    assert (self_["kv_len"] == self_["q_len"]).all()
    cross = spatial[spatial["attn_kind"] == "cross"]
    tokens = full_config("make-a-video", "text_encoder")["max_position_embeddings"]
    assert len(cross) and (cross["kv_len"] == tokens).all()
    assert text_len(result, "text_encoder") == tokens


def test_svd_attention_labels():
    s, result = full_trace("svd", None)
    unet = full_config("svd", "unet")
    f = vae_factor(full_config("svd", "vae"))
    h, w = s.res[0] // f, s.res[1] // f
    a = attention(result, "unet")
    temporal, spatial = a[a["attn_axis"] == "temporal"], a[a["attn_axis"] == "spatial"]
    assert len(temporal) and len(spatial) and len(a) == len(temporal) + len(spatial)
    assert (temporal["q_len"] == s.frames).all()
    t_self, t_cross = (temporal[temporal["attn_kind"] == k] for k in ("self", "cross"))
    assert len(t_self) and (t_self["kv_len"] == s.frames).all()
    # cross-attention context: one OpenCLIP image-embedding token
    assert len(t_cross) and (t_cross["kv_len"] == 1).all()
    assert set(spatial["q_len"]) == unet_attention_sizes(unet, h, w)
    s_self, s_cross = (spatial[spatial["attn_kind"] == k] for k in ("self", "cross"))
    assert (s_self["kv_len"] == s_self["q_len"]).all()
    assert len(s_cross) and (s_cross["kv_len"] == 1).all()


@pytest.mark.parametrize("variant", variants("cogvideox"))
def test_cogvideox_attention_labels(variant):
    s, result = full_trace("cogvideox", variant)
    dit = full_config("cogvideox", "transformer", variant)
    vae = full_config("cogvideox", "vae")
    f, p = vae_factor(vae), dit["patch_size"]
    latent_frames = (s.frames - 1) // vae["temporal_compression_ratio"] + 1
    video_tokens = latent_frames * (s.res[0] // f // p) * (s.res[1] // f // p)
    text_tokens = dit["max_text_seq_length"]  # CogVideoX concatenates the T5 tokens
    a = attention(result, "transformer")
    assert len(a) == dit["num_layers"]  # one joint attention per block (one traced step)
    assert (a["attn_axis"] == "joint").all() and (a["attn_kind"] == "self").all()
    assert (a["q_len"] == text_tokens + video_tokens).all()
    assert (a["kv_len"] == text_tokens + video_tokens).all()
    assert (a["heads"] == dit["num_attention_heads"]).all()
    assert text_len(result, "text_encoder") == text_tokens


@pytest.mark.parametrize("variant", variants("wan"))
def test_wan_attention_labels(variant):
    s, result = full_trace("wan", variant)
    dit = full_config("wan", "transformer", variant)
    pt, ph, pw = dit["patch_size"]
    vae = get_workload("wan").component_config("vae", None)
    vae_cfg = build_component(vae, "full", device="meta").config
    latent_frames = (s.frames - 1) // vae_cfg.scale_factor_temporal + 1
    f = vae_cfg.scale_factor_spatial
    video_tokens = (latent_frames // pt) * (s.res[0] // f // ph) * (s.res[1] // f // pw)
    a = attention(result, "transformer")
    assert (a["attn_axis"] == "joint").all()
    self_, cross = a[a["attn_kind"] == "self"], a[a["attn_kind"] == "cross"]
    assert len(self_) == len(cross) == dit["num_layers"]
    assert (self_["q_len"] == video_tokens).all() and (self_["kv_len"] == video_tokens).all()
    assert (cross["q_len"] == video_tokens).all()
    # WanPipeline pads the UMT5 prompt to max_sequence_length = 512 tokens
    assert text_len(result, "text_encoder") == 512
    assert (cross["kv_len"] == 512).all()
    # CFG: conditional + unconditional forward per step, traced once and counted twice
    assert (a["count"] == 2 * s.steps).all()


def test_image_model_attention_labels():
    # SDXL: spatial attention at the two cross-attention levels, 77 CLIP tokens
    s, result = full_trace("sdxl", None)
    f = vae_factor(full_config("sdxl", "vae"))
    h, w = s.res[0] // f, s.res[1] // f
    a = attention(result, "unet")
    assert (a["attn_axis"] == "spatial").all()
    assert set(a["q_len"]) == unet_attention_sizes(full_config("sdxl", "unet"), h, w)
    assert (a[a["attn_kind"] == "cross"]["kv_len"] == text_len(result, "text_encoder")).all()
    assert text_len(result, "text_encoder") == text_len(result, "text_encoder_2") == 77
    # PixArt: self-attention over latent patches, cross-attention to 120 T5 tokens
    s, result = full_trace("pixart", None)
    p = full_config("pixart", "transformer")["patch_size"]
    tokens = (s.res[0] // 8 // p) * (s.res[1] // 8 // p)
    a = attention(result, "transformer")
    self_, cross = a[a["attn_kind"] == "self"], a[a["attn_kind"] == "cross"]
    assert (self_["q_len"] == tokens).all() and (self_["kv_len"] == tokens).all()
    assert (cross["q_len"] == tokens).all() and (cross["kv_len"] == 120).all()
    assert text_len(result, "text_encoder") == 120
    # SD3: joint attention over image patches + 77 CLIP + 256 T5 tokens
    s, result = full_trace("sd3", None)
    p = full_config("sd3", "transformer")["patch_size"]
    context = text_len(result, "text_encoder") + text_len(result, "text_encoder_3")
    assert context == 77 + 256
    a = attention(result, "transformer")
    joint = (s.res[0] // 8 // p) * (s.res[1] // 8 // p) + context
    assert (a["attn_axis"] == "joint").all() and (a["q_len"] == joint).all()
    # FLUX: double- and single-stream blocks all attend over 2×2-packed image + 512 T5 tokens
    s, result = full_trace("flux", None)
    dit = full_config("flux", "transformer")
    a = attention(result, "transformer")
    joint = (s.res[0] // 16) * (s.res[1] // 16) + text_len(result, "text_encoder_2")
    assert text_len(result, "text_encoder_2") == 512
    assert len(a) == dit["num_layers"] + dit["num_single_layers"]
    assert (a["attn_axis"] == "joint").all() and (a["q_len"] == joint).all()
    assert result.meta["settings"]["cfg"] is None  # guidance-distilled: no CFG batch


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("name", IMAGE)
def test_frames_on_image_model_is_rejected(name):
    with pytest.raises(UserError) as err:
        get_workload(name).resolve(Settings(frames=8))
    message = str(err.value)
    assert "--frames" in message and "--res" in message and "--steps" in message


def test_cfg_on_flux_is_rejected():
    with pytest.raises(UserError, match="--cfg"):
        get_workload("flux").resolve(Settings(cfg=True))


@pytest.mark.parametrize("name", ["cogvideox", "wan"])
def test_unknown_variant_names_the_variants(name):
    with pytest.raises(UserError) as err:
        get_workload(name).resolve(Settings(variant="7b"))
    assert all(v in str(err.value) for v in get_workload(name).variants)


def test_variant_on_single_variant_model_is_rejected():
    with pytest.raises(UserError, match="--variant"):
        get_workload("sdxl").resolve(Settings(variant="2b"))


@pytest.mark.parametrize("name", ["cogvideox", "wan"])
def test_causal_vae_frames_must_be_4k_plus_1(name):
    with pytest.raises(UserError, match="4k\\+1"):
        get_workload(name).resolve(Settings(frames=48))
    get_workload(name).resolve(Settings(frames=17))


def test_resolution_must_fit_the_latent_grid():
    with pytest.raises(UserError, match="multiple of 16"):
        get_workload("flux").resolve(Settings(res=(1000, 1000)))


def test_cli_frames_on_image_model_exits_2_naming_options(tmp_path, monkeypatch, capsys):
    from genscope.cli import main

    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["genscope", "trace", "sdxl", "--frames", "8"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "--frames" in lines[0] and "--res" in lines[0], lines
