"""Every shipped component config: the full size matches its published parameter count
(within 1%) and the tiny size builds on CPU. Sources are in each config's JSON."""

import pytest

from genscope.workloads.components import all_component_configs, build_component, count_params

CONFIGS = all_component_configs()
IDS = [f"{c.workload}/{c.path.stem}" for c in CONFIGS]


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_full_config_matches_published_params(cfg):
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
