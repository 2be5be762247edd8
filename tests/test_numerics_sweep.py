"""Sweeps: planning, determinism, table contents, directions computed from the data, figures."""

import math

import pandas as pd
import pytest

from genscope.errors import UserError
from genscope.numerics import figures
from genscope.numerics.experiments import (
    COLUMNS,
    SweepConfig,
    log_slope,
    plan,
    run_sweep,
    summarize,
    sweep_tiles,
)

# Small enough for seconds: d = 16 -> tiles from M: 256 -> 4x4, 1024 -> 16x16, 4096 -> 16x64.
SMALL = SweepConfig(
    dtypes=("bf16", "fp32", "fp64"),
    seq_lens=(64, 128, 256, 512),
    fixed_sram=256,
    srams=(256, 512, 1024, 2048, 4096),
    area_seq_len=256,
    heads=2,
    head_dim=16,
)


@pytest.fixture(scope="module")
def small_sweep():
    df = run_sweep(SMALL)
    return df, summarize(df, SMALL)


def test_table_has_declared_columns_and_every_experiment(small_sweep):
    df, _ = small_sweep
    assert list(df.columns) == [c for c, _ in COLUMNS]
    assert set(df.experiment) == {
        "precision", "seq_len", "tile_area", "swap", "square", "accum", "algorithm", "inputs",
    }  # fmt: skip
    assert len(df) == len(plan(SMALL))
    # tile_area sweeps the tile rule: B_c = ceil(M / 4d) -> 4, 8, 16, 32, 64 at d = 16
    area = df[(df.experiment == "tile_area") & (df.dtype == "bf16")].sort_values("sram_m")
    assert area.block_c.tolist() == [4, 8, 16, 32, 64]
    assert area.block_r.tolist() == [4, 8, 16, 16, 16]
    assert (area.n_kv_tiles == [64, 32, 16, 8, 4]).all()  # 256 / B_c


def test_sweep_is_deterministic(small_sweep):
    df, _ = small_sweep
    cfg = SweepConfig(**{**SMALL.__dict__, "experiments": ("seq_len",), "dtypes": ("bf16",)})
    again = run_sweep(cfg)
    first = df[(df.experiment == "seq_len") & (df.dtype == "bf16")].reset_index(drop=True)
    assert again.flash_max.tolist() == first.flash_max.tolist()
    assert again.baseline_mean.tolist() == first.baseline_mean.tolist()


def test_fp64_flash_stays_at_roundoff_and_formats_order(small_sweep):
    df, s = small_sweep
    assert df[df.dtype == "fp64"].flash_max.max() < 1e-13
    prec = s["precision"]
    assert prec["bf16"]["flash_vs_golden_max"] > prec["fp32"]["flash_vs_golden_max"] > 1e-12
    assert s["fewer_mantissa_bits_more_deviation"] is True
    assert math.isnan(prec["fp64"]["ratio_max"])  # fp64 baseline *is* the golden computation


def test_summary_directions_agree_with_the_table(small_sweep):
    df, s = small_sweep
    assert s["bf16_flash_to_baseline_ratio"] == pytest.approx(
        df[(df.experiment == "precision") & (df.dtype == "bf16")].ratio_max.iloc[0]
    )
    assert set(s["grows_with_seq_len"]) == {"bf16", "fp32", "fp64"}
    assert set(s["shrinks_with_tile_area"]) == {"bf16", "fp32", "fp64"}
    assert set(s["paper_directions_bf16"]) == {
        "fewer_mantissa_bits_more_deviation", "grows_with_seq_len", "shrinks_with_tile_area",
        "swap_increases", "square_no_change",
    }  # fmt: skip
    assert set(s["bf16_grows_with_seq_len_by_inputs"]) == {"normal", "uniform", "outlier"}


def test_square_tiles_change_nothing_and_swapped_tiles_shrink_the_column_tile(small_sweep):
    df, _ = small_sweep
    # Row tiling never changes a row's arithmetic, so square tiles (B_r := B_c) are identical.
    sq = df[df.experiment == "square"].set_index(["dtype", "sram_m"]).flash_max
    area = df[df.experiment == "tile_area"].set_index(["dtype", "sram_m"]).flash_max
    assert (sq == area.loc[sq.index]).all()
    sw = df[df.experiment == "swap"]
    assert (sw.block_c == 16).all() and (sw.block_r > 16).all()  # B_c = min(ceil(M/4d), d)


def test_log_slope():
    assert log_slope([1, 2, 4], [3, 6, 12]) == pytest.approx(1.0)
    assert log_slope([1, 2, 4], [8, 4, 2]) == pytest.approx(-1.0)
    assert math.isnan(log_slope([1], [1]))


def test_sweep_tiles_variants():
    assert sweep_tiles(8192, 16) == (16, 128)  # ceil(8192 / 64) = 128, B_r = min(128, 16)
    assert sweep_tiles(8192, 16, swap=True) == (128, 16)
    assert sweep_tiles(8192, 16, square=True) == (128, 128)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"seq_lens": (2,)}, "tile 4x4 .* larger than sequence length 2"),
        ({"dtypes": ("fp8",)}, "bf16, fp16, fp32, fp64"),
        ({"fixed_sram": 0}, "positive"),
        ({"srams": (-1,)}, "positive"),
        ({"inputs": "cauchy"}, "normal, outlier, uniform"),
        ({"experiments": ("speed",)}, "choose one of"),
    ],
)
def test_bad_sweep_config(overrides, match):
    with pytest.raises(UserError, match=match):
        plan(SweepConfig(**{**SMALL.__dict__, **overrides}))


def test_figures_say_measured(small_sweep):
    df, _ = small_sweep
    for plot in (figures.plot_precision, figures.plot_seq_len, figures.plot_tile_area):
        fig = plot(df)
        titles = [fig.get_suptitle()] + [ax.get_title() for ax in fig.axes]
        assert any("measured (cpu)" in t for t in titles), plot.__name__
        assert any(ax.lines or ax.patches for ax in fig.axes)


def _hand_rows(*rows: dict) -> pd.DataFrame:
    """Sweep rows with every declared column; unnamed numbers 0, inputs normal, fa2, bf16 acc."""
    base = {c: 0 for c, _ in COLUMNS} | {"inputs": "normal", "algorithm": "fa2", "swap": False,
                                          "square": False}  # fmt: skip
    return pd.DataFrame(
        [base | {"accum": r["dtype"]} | r for r in rows], columns=[c for c, _ in COLUMNS]
    )


def test_summarize_directions_on_a_hand_made_table():
    """bf16: flash max ∝ N, mean ∝ N^0.5, std ∝ N^0.25 (all grow); fp32: std ∝ 1/N (does not).
    Tile area 16 -> 256 (16x) takes the bf16 max from 4e-3 to 1e-3: slope log(1/4)/log(16) =
    -0.5. The swapped tile at M = 256 deviates 6e-3 (1.5x), the square one 4.2e-3 (1.05x)."""
    n = (64, 128, 256)
    df = _hand_rows(
        {"experiment": "precision", "dtype": "bf16", "mantissa_bits": 8, "seq_len": 128,
         "block_r": 8, "block_c": 8, "sram_m": 512, "flash_max": 8e-3, "baseline_max": 2e-3,
         "fvb_max": 9e-3, "ratio_max": 4.0, "ratio_mean": 3.0},
        {"experiment": "precision", "dtype": "fp32", "mantissa_bits": 24, "seq_len": 128,
         "block_r": 8, "block_c": 8, "sram_m": 512, "flash_max": 3e-7, "baseline_max": 3e-7,
         "fvb_max": 4e-7, "ratio_max": 1.0, "ratio_mean": 1.0},
        *({"experiment": "seq_len", "dtype": "bf16", "seq_len": k, "flash_max": 1e-3 * k / 64,
           "flash_mean": 1e-4 * (k / 64) ** 0.5, "flash_std": 1e-5 * (k / 64) ** 0.25,
           "ratio_max": 2.0}
          for k in n),
        *({"experiment": "seq_len", "dtype": "fp32", "seq_len": k, "flash_max": 1e-7 * k / 64,
           "flash_mean": 1e-8 * k / 64, "flash_std": 1e-9 * 64 / k, "ratio_max": 1.0}
          for k in n),
        {"experiment": "tile_area", "dtype": "bf16", "seq_len": 256, "sram_m": 256,
         "tile_area": 16, "flash_max": 4e-3, "flash_mean": 4e-4},
        {"experiment": "tile_area", "dtype": "bf16", "seq_len": 256, "sram_m": 1024,
         "tile_area": 256, "flash_max": 1e-3, "flash_mean": 1e-4},
        {"experiment": "swap", "dtype": "bf16", "seq_len": 256, "sram_m": 256, "swap": True,
         "flash_max": 6e-3, "flash_mean": 3e-4},
        {"experiment": "square", "dtype": "bf16", "seq_len": 256, "sram_m": 256,
         "square": True, "flash_max": 4.2e-3, "flash_mean": 4e-4},
    )  # fmt: skip
    s = summarize(df, SweepConfig())
    assert (
        s["bf16_flash_to_baseline_ratio"] == 4.0 and s["bf16_flash_to_baseline_ratio_mean"] == 3.0
    )
    assert s["precision_at"] == {"seq_len": 128, "block_r": 8, "block_c": 8, "sram_m": 512}
    assert s["fewer_mantissa_bits_more_deviation"] is True  # 8e-3 > 3e-7 and 9e-3 > 4e-7
    assert s["seq_len_slope"]["flash_max"] == pytest.approx({"bf16": 1.0, "fp32": 1.0})
    assert s["seq_len_slope"]["flash_mean"]["bf16"] == pytest.approx(0.5)
    assert s["seq_len_slope"]["flash_std"] == pytest.approx({"bf16": 0.25, "fp32": -1.0})
    assert s["grows_with_seq_len"] == {"bf16": True, "fp32": False}
    assert s["seq_len_slope"]["ratio_max"] == pytest.approx({"bf16": 0.0, "fp32": 0.0})
    assert s["tile_area_slope"] == pytest.approx({"bf16": -0.5})
    assert s["shrinks_with_tile_area"] == {"bf16": True}
    assert s["swap_relative_max"]["bf16"] == pytest.approx([1.5])
    assert s["swap_increases"] == {"bf16": True}
    assert s["swap_increases_mean"] == {"bf16": False}  # 3e-4 < 4e-4
    assert s["square_relative_max"]["bf16"] == pytest.approx([1.05])
    assert s["square_no_change"] == {"bf16": True}
    assert s["paper_directions_bf16"] == {
        "fewer_mantissa_bits_more_deviation": True, "grows_with_seq_len": True,
        "shrinks_with_tile_area": True, "swap_increases": True, "square_no_change": True,
    }  # fmt: skip
    assert s["cases"] == 12
