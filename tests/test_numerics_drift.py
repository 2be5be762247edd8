"""Weight drift: lockstep training runs, per-layer Wasserstein distances, the summary."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

from genscope.errors import UserError
from genscope.numerics import figures
from genscope.numerics.drift import (
    DRIFT_COLUMNS,
    PAIRS,
    DriftConfig,
    SyntheticTextToImage,
    compare_weights,
    drift_curves,
    run_drift,
    summarize_drift,
    wasserstein_1d,
)
from genscope.numerics.tiny_sd15 import build_tiny_unet

TINY = DriftConfig(steps=2, checkpoints=2, batch=2)


@pytest.fixture(scope="module")
def drift():
    return run_drift(TINY)


def test_table_has_every_pair_layer_and_checkpoint(drift):
    df, _ = drift
    assert list(df.columns) == [c for c, _ in DRIFT_COLUMNS]
    assert sorted(df.step.unique()) == [0, 1, 2]  # step 0 plus every steps // checkpoints
    assert set(df.pair) == set(PAIRS)
    layers = df[(df.step == 0) & (df.pair == "flash_vs_baseline")]
    weights = [n for n, p in build_tiny_unet().named_parameters() if p.dim() >= 2]
    assert layers.layer.tolist() == weights


def test_drift_starts_at_zero_except_for_the_seed_pair(drift):
    df, _ = drift
    start = df[df.step == 0].groupby("pair")[["wasserstein", "max_abs"]].max()
    for pair in ("flash_vs_baseline", "lowp_vs_fp32", "flash_vs_baseline_lowp"):
        assert start.loc[pair].tolist() == [0.0, 0.0]  # same seed, no step taken yet
    assert (start.loc["seed_a_vs_seed_b"] > 0).all()
    after = df[df.step == 2].groupby("pair").max_abs.max()
    assert (after > 0).all()  # every pair of runs has diverged after two steps


def test_summary_of_the_run_names_its_checkpoints_and_plots(drift):
    df, s = drift
    assert s["checkpoints"] == [0, 1, 2] and s["steps"] == 2 and s["batch"] == 2
    assert set(s["final_wasserstein_mean"]) == set(PAIRS)
    assert s["final_wasserstein_mean"]["seed_a_vs_seed_b"] > 0  # different inits differ
    fig = figures.plot_drift(drift_curves(df))
    assert "measured (cpu)" in fig.get_suptitle()


#: A hand-made drift table, two layers per (step, pair); W1 per layer:
#:   step   flash_vs_baseline  lowp_vs_fp32  flash_vs_baseline_lowp  seed_a_vs_seed_b
#:   0      0,   0             0,   0        0,   0                  1.0, 1.0
#:   1      0.1, 0.1           0.1, 0.3      1.0, 2.0                1.0, 1.0
#:   2      0.1, 0.1           0.3, 0.5      0.2, 0.2                1.0, 1.0
HAND_W1 = {
    "flash_vs_baseline": [(0.0, 0.0), (0.1, 0.1), (0.1, 0.1)],
    "lowp_vs_fp32": [(0.0, 0.0), (0.1, 0.3), (0.3, 0.5)],
    "flash_vs_baseline_lowp": [(0.0, 0.0), (1.0, 2.0), (0.2, 0.2)],
    "seed_a_vs_seed_b": [(1.0, 1.0), (1.0, 1.0), (1.0, 1.0)],
}


def test_summary_ratios_on_a_hand_made_table():
    rows = [
        {"step": step, "pair": pair, "layer": f"w{i}", "numel": 10, "wasserstein": w,
         "max_abs": 2 * w}
        for pair, per_step in HAND_W1.items()
        for step, layers in enumerate(per_step)
        for i, w in enumerate(layers)
    ]  # fmt: skip
    s = summarize_drift(pd.DataFrame(rows, columns=[c for c, _ in DRIFT_COLUMNS]), TINY)
    # last step, mean over layers: lowp 0.4, flash 0.1, flash_lowp 0.2, seed 1.0
    assert s["lowp_to_flash_ratio"] == pytest.approx(4.0)
    assert s["lowp_to_flash_ratio_lowp_attention"] == pytest.approx(2.0)
    assert s["seed_to_flash_ratio"] == pytest.approx(10.0)
    # per checkpoint after 0: lowp/flash = 0.2/0.1 = 2 and 0.4/0.1 = 4 -> median 3
    assert s["lowp_to_flash_ratio_median"] == pytest.approx(3.0)
    # lowp / flash_lowp at steps 1, 2: 0.2/1.5 = 2/15 and 0.4/0.2 = 2 -> median of the two
    assert s["lowp_to_flash_ratio_lowp_attention_median"] == pytest.approx((2 / 15 + 2) / 2)
    # slopes over steps 0, 1, 2: lowp 0, 0.2, 0.4 -> 0.2; flash 0, 0.1, 0.1 -> 0.05
    assert s["lowp_to_flash_ratio_slope"] == pytest.approx(4.0)
    assert s["final_wasserstein_mean"] == pytest.approx(
        {"flash_vs_baseline": 0.1, "lowp_vs_fp32": 0.4, "flash_vs_baseline_lowp": 0.2,
         "seed_a_vs_seed_b": 1.0}
    )  # fmt: skip
    assert s["final_max_abs"]["lowp_vs_fp32"] == pytest.approx(1.0)  # 2 x the largest W1
    assert s["flash_bounded_by_seed"] is True  # 0.1 <= 1.0 at steps 1 and 2
    assert s["flash_lowp_bounded_by_seed"] is False  # 1.5 > 1.0 at step 1
    assert s["flash_below_lowp"] is True  # 0.1 <= 0.2, 0.1 <= 0.4
    assert s["flash_lowp_below_lowp"] is False  # 1.5 > 0.2 at step 1
    assert s["checkpoints"] == [0, 1, 2]


def test_wasserstein_matches_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=5000), rng.standard_t(3, size=5000)
    assert wasserstein_1d(x, y) == pytest.approx(wasserstein_distance(x, y), rel=1e-12)
    assert wasserstein_1d(x, y[:100]) == pytest.approx(wasserstein_distance(x, y[:100]))
    assert wasserstein_1d(x, x + 0.5) == pytest.approx(0.5)  # a shift moves every unit by 0.5


def test_compare_weights_of_identical_models_is_zero():
    a, b = build_tiny_unet(0), build_tiny_unet(0)
    rows = compare_weights(a, b)
    assert rows and all(r["wasserstein"] == 0 and r["max_abs"] == 0 for r in rows)
    c = build_tiny_unet(7)
    assert all(r["max_abs"] > 0 for r in compare_weights(a, c))


def test_synthetic_data_is_deterministic_per_step():
    unet = build_tiny_unet()
    d1, d2 = SyntheticTextToImage(unet, 4, 1), SyntheticTextToImage(unet, 4, 1)
    b1, b2 = d1.batch(3, 2), d2.batch(3, 2)
    assert all(x.equal(y) for x, y in zip(b1, b2, strict=True))
    assert not d1.batch(4, 2)[0].equal(b1[0])
    assert b1[0].shape == (2, 4, 8, 8) and b1[2].shape == (2, 77, 32)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"steps": 0}, "steps must be positive"),
        ({"seed_b": 0}, "must differ"),
        ({"low_precision": "fp8"}, "bf16, fp16"),
    ],
)
def test_bad_drift_config(overrides, match):
    with pytest.raises(UserError, match=match):
        DriftConfig(**{**TINY.__dict__, **overrides}).validated()


def test_checkpoint_steps():
    assert DriftConfig(steps=300, checkpoints=10).checkpoint_steps() == list(range(0, 301, 30))
    assert DriftConfig(steps=7, checkpoints=3).checkpoint_steps() == [0, 2, 4, 6, 7]
