"""Every shipped component config: the full size matches its published parameter count
(within 1%) and the tiny size builds on CPU. Sources are in each config's JSON."""

import pytest

from genscope.workloads.components import all_component_configs, build_component, count_params

#: Configs whose published size is nominal or absent, so the 1% check cannot apply. Each reason
#: points at what the config's ``params_source`` documents; the count is still reported.
UNMATCHED = {
    "parti/transformer.350m": "Parti Table 1 gives nominal sizes only (350M); see params_source",
    "parti/transformer.750m": "Parti Table 1 gives nominal sizes only (750M); see params_source",
    "parti/transformer.3b": "Parti Table 1 gives nominal sizes only (3B); see params_source",
    "parti/transformer.20b": "Parti Table 1 gives nominal sizes only (20B); see params_source",
    "phenaki/transformer": "paper states only '1.8B'; layer dims unverified, see params_source",
    "phenaki/tokenizer_decoder": "the Phenaki paper publishes no C-ViViT parameter count",
    "hstu/model": "no published parameter count for the Lee et al. HSTU configuration",
}
CONFIGS = all_component_configs()
IDS = [f"{c.workload}/{c.path.stem}" for c in CONFIGS]


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_full_config_matches_published_params(cfg):
    key = f"{cfg.workload}/{cfg.path.stem}"
    if key in UNMATCHED:
        pytest.xfail(UNMATCHED[key])
    assert cfg.published_params, f"{cfg.path} has no published_params"
    assert cfg.source.startswith("http"), f"{cfg.path}: source must be a URL"
    n = count_params(build_component(cfg, "full", device="meta"))
    rel = abs(n - cfg.published_params) / cfg.published_params
    assert rel <= 0.01, f"{cfg.path}: {n:,} vs published {cfg.published_params:,} ({rel:.2%})"


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_tiny_config_builds_small(cfg):
    model = build_component(cfg, "tiny", device="cpu")
    n = count_params(model)
    assert 0 < n < 5_000_000, f"{cfg.path}: tiny model has {n:,} params"


def test_sd15_unet_exact():
    (cfg,) = [c for c in CONFIGS if c.workload == "sd15" and c.name == "unet"]
    assert count_params(build_component(cfg, "full", device="meta")) == 859_520_964
