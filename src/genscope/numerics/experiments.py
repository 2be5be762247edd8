"""Deviation sweeps of the flash reference against baseline and the fp64 golden value.

One row per flash configuration (a :class:`Case`), in wide form: the flash reference's and the
same-precision baseline's deviation from the golden value (the paper's Fig. 4 protocol) and
flash's deviation from that baseline (Fig. 3). Experiments follow the paper's knobs: precision,
sequence length at a fixed tile, tile area through SRAM size M, swapped block dimensions and
square tiles, plus three of ours: fp32 accumulators (the CUDA kernels' convention), the
FlashAttention-1 update, and other input distributions. :func:`summarize` turns the table into
the directions of effect, computed from the data rather than asserted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from genscope.errors import UserError, choices_error
from genscope.machine.threads import torch_threads
from genscope.numerics.attention_ref import (
    baseline_attention,
    deviation,
    flash_reference,
    golden_attention,
    n_kv_tiles,
    tile_sizes,
)
from genscope.numerics.precision import DTYPES, MANTISSA_BITS, dtype_name, round_to

SCHEMA_VERSION = 1
#: The sweep table's columns: (name, unit or meaning). Metrics exist for three comparisons:
#: ``flash_*`` = |flash(p) - golden|, ``baseline_*`` = |baseline(p) - golden|,
#: ``fvb_*`` = |flash(p) - baseline(p)|; each as max/mean/std of |Δ| and rmse.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("experiment", "one of EXPERIMENTS (or 'grid' for the benchmark)"),
    ("inputs", "distribution of Q, K, V (see INPUTS)"),
    ("dtype", "storage format"),
    ("accum", "accumulator format"),
    ("algorithm", "fa2 | fa1"),
    ("mantissa_bits", "significand bits of dtype"),
    ("seq_len", "N (query = key length)"),
    ("head_dim", "d"),
    ("sram_m", "SRAM size M in elements (tile rule input)"),
    ("block_r", "query rows per tile"),
    ("block_c", "key columns per tile"),
    ("tile_area", "block_r * block_c"),
    ("n_kv_tiles", "key tiles per row = rescalings + 1"),
    ("swap", "block dimensions swapped"),
    ("square", "block_r forced to block_c"),
    *((f"{c}_{m}", "|Δ|") for c in ("flash", "baseline", "fvb") for m in ("max", "mean", "std")),
    *((f"{c}_rmse", "|Δ|") for c in ("flash", "baseline", "fvb")),
    ("ratio_max", "flash_max / baseline_max"),
    ("ratio_mean", "flash_mean / baseline_mean"),
    ("flash_s", "wall seconds of the flash reference"),
)
METRICS = ("max", "mean", "std", "rmse")
EXPERIMENTS = (
    "precision",  # Figs. 3-4: every format at one (N, tile)
    "seq_len",  # Fig. 5: N grows, tile fixed
    "tile_area",  # Fig. 6c: M grows, N fixed
    "swap",  # Fig. 6a: B_r and B_c swapped
    "square",  # Fig. 6b: B_r = B_c
    "accum",  # ours: fp32 accumulators, as the CUDA kernels keep softmax state
    "algorithm",  # ours: FlashAttention-1's per-tile renormalization
    "inputs",  # ours: the seq_len sweep at bf16 under the other input distributions
)
#: Input distributions. The paper does not state one. With zero-mean V the output shrinks like
#: N^-1/2 as N grows, and absolute deviations with it; U[0,1) (``torch.rand``) keeps |O| ~ 0.5.
INPUTS: dict[str, str] = {
    "normal": "Q, K, V ~ N(0, 1)",
    "uniform": "Q, K, V ~ U[0, 1) (torch.rand)",
    "outlier": "N(0, 1) + N(0, 100) * Bernoulli(0.001) (FlashAttention-3 §4.3)",
}


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep. Defaults give every experiment in a few minutes on two shared cores."""

    dtypes: tuple[str, ...] = ("bf16", "fp16", "fp32", "fp64")
    seq_lens: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096)
    #: Fixed tile for the sequence-length sweep: M = 8192 elements -> 32 x 32 at d = 64.
    fixed_sram: int = 8192
    #: Tile-area sweep, B_c = 16 ... 512 at d = 64 (B_r caps at d from M = 16384 on).
    srams: tuple[int, ...] = (4096, 8192, 16384, 32768, 65536, 131072)
    area_seq_len: int = 2048
    batch: int = 1
    heads: int = 4
    head_dim: int = 64
    seed: int = 0
    #: None: the accumulator format equals the storage format (the paper's setting).
    accum: str | None = None
    inputs: str = "normal"
    experiments: tuple[str, ...] = EXPERIMENTS
    #: torch intra-op threads while computing (None: leave as is); see ``_threads``.
    threads: int | None = 1

    def validated(self) -> SweepConfig:
        """Canonical dtype names; one-line UserError for anything that cannot run."""
        dtypes = tuple(dtype_name(d) for d in self.dtypes)
        if not dtypes:
            raise UserError(f"no dtypes to sweep; choose from: {', '.join(DTYPES)}")
        accum = None if self.accum is None else dtype_name(self.accum)
        for name, val in (
            ("batch", self.batch),
            ("heads", self.heads),
            ("head_dim", self.head_dim),
        ):
            if val <= 0:
                raise UserError(f"{name} must be positive, got {val}")
        for m in (self.fixed_sram, *self.srams):
            tile_sizes(m, self.head_dim)  # raises on non-positive M
        if not self.seq_lens:
            raise UserError("no sequence lengths to sweep")
        for n in (*self.seq_lens, self.area_seq_len):
            if n <= 0:
                raise UserError(f"sequence length must be positive, got {n}")
        if self.inputs not in INPUTS:
            raise choices_error("input distribution", self.inputs, list(INPUTS))
        for exp in self.experiments:
            if exp not in EXPERIMENTS:
                raise choices_error("experiment", exp, list(EXPERIMENTS))
        return SweepConfig(**(asdict(self) | {"dtypes": dtypes, "accum": accum}))


@dataclass(frozen=True)
class Case:
    """One flash configuration to compare against baseline and golden at the same inputs."""

    experiment: str
    dtype: str
    accum: str
    seq_len: int
    head_dim: int
    sram_m: int | None
    block_r: int
    block_c: int
    swap: bool = False
    square: bool = False
    algorithm: str = "fa2"
    inputs: str = "normal"

    @property
    def key(self) -> tuple:
        """Identical computations share a key, so experiments that overlap run once."""
        return (
            self.inputs,
            self.dtype,
            self.accum,
            self.seq_len,
            self.block_r,
            self.block_c,
            self.algorithm,
        )


def sweep_tiles(m: int, d: int, *, swap: bool = False, square: bool = False) -> tuple[int, int]:
    """(block_r, block_c) from the tile rule, with Fig. 6's variants.

    ``square`` sets B_r = B_c (keeping the column tile, which sets the number of rescalings);
    ``swap`` exchanges the two, so B_c becomes min(ceil(M/4d), d).
    """
    b_r, b_c = tile_sizes(m, d)
    if square:
        b_r = b_c
    if swap:
        b_r, b_c = b_c, b_r
    return b_r, b_c


def plan(cfg: SweepConfig) -> list[Case]:
    """Every case of the configured experiments; raises UserError if a tile exceeds N."""
    cfg = cfg.validated()
    d = cfg.head_dim
    cases: list[Case] = []

    def add(exp: str, dtype: str, n: int, m: int, **kw: object) -> None:
        swap, square = bool(kw.get("swap", False)), bool(kw.get("square", False))
        b_r, b_c = sweep_tiles(m, d, swap=swap, square=square)
        if b_r > n or b_c > n:
            raise UserError(
                f"tile {b_r}x{b_c} from SRAM size M={m} (d={d}) is larger than sequence "
                f"length {n}; use M <= {4 * d * n} or a longer sequence"
            )
        cases.append(
            Case(
                experiment=exp,
                dtype=dtype,
                accum=str(kw.get("accum", cfg.accum or dtype)),
                seq_len=n,
                head_dim=d,
                sram_m=m,
                block_r=b_r,
                block_c=b_c,
                swap=swap,
                square=square,
                algorithm=str(kw.get("algorithm", "fa2")),
                inputs=str(kw.get("inputs", cfg.inputs)),
            )
        )

    n_top = max(cfg.seq_lens)
    exps = cfg.experiments
    # Swapping or squaring only changes anything once ceil(M/4d) exceeds d.
    big = [m for m in sorted(cfg.srams) if math.ceil(m / (4 * d)) > d]
    for dt in cfg.dtypes:
        if "precision" in exps:
            add("precision", dt, n_top, cfg.fixed_sram)
        if "seq_len" in exps:
            for n in sorted(cfg.seq_lens):
                add("seq_len", dt, n, cfg.fixed_sram)
        if "tile_area" in exps:
            for m in sorted(cfg.srams):
                add("tile_area", dt, cfg.area_seq_len, m)
        if "swap" in exps:
            for m in big:
                add("swap", dt, cfg.area_seq_len, m, swap=True)
        if "square" in exps:
            for m in big:
                add("square", dt, cfg.area_seq_len, m, square=True)
        if "accum" in exps and dt in ("bf16", "fp16") and cfg.accum is None:
            add("accum", dt, n_top, cfg.fixed_sram, accum="fp32")
        if "algorithm" in exps:
            add("algorithm", dt, n_top, cfg.fixed_sram, algorithm="fa1")
    # Is the sequence-length trend a property of the algorithm or of the inputs?
    if "inputs" in exps and "bf16" in cfg.dtypes:
        for dist in INPUTS:
            if dist != cfg.inputs:
                for n in sorted(cfg.seq_lens):
                    add("inputs", "bf16", n, cfg.fixed_sram, inputs=dist)
    return cases


def make_inputs(
    cfg: SweepConfig, max_len: int, inputs: str | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Q, K, V in fp64 from a fixed seed (see INPUTS); shorter sequences use a prefix."""
    dist = inputs or cfg.inputs
    if dist not in INPUTS:
        raise choices_error("input distribution", dist, list(INPUTS))
    gen = torch.Generator().manual_seed(cfg.seed)
    shape = (cfg.batch, cfg.heads, max_len, cfg.head_dim)

    def draw() -> Tensor:
        if dist == "uniform":
            return torch.rand(shape, generator=gen, dtype=torch.float64)
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        if dist == "outlier":
            spikes = torch.rand(shape, generator=gen, dtype=torch.float64) < 0.001
            x = x + 10.0 * torch.randn(shape, generator=gen, dtype=torch.float64) * spikes
        return x

    q, k, v = draw(), draw(), draw()
    return q, k, v


def _rounded(x: Tensor, dtype: str) -> Tensor:
    """Inputs as the format stores them, held in fp64: golden sees exactly what flash sees."""
    return round_to(x, DTYPES[dtype]).to(torch.float64)


def run_cases(
    cases: Sequence[Case],
    cfg: SweepConfig,
    progress: Callable[[Case], None] | None = None,
) -> pd.DataFrame:
    """Compute every case; golden and baseline are computed once per (inputs, dtype, N)."""
    cfg = cfg.validated()
    if not cases:
        return pd.DataFrame(columns=[c for c, _ in COLUMNS])
    with torch_threads(cfg.threads):
        return _run_cases(cases, cfg, progress)


def _run_cases(
    cases: Sequence[Case], cfg: SweepConfig, progress: Callable[[Case], None] | None
) -> pd.DataFrame:
    max_len = max(c.seq_len for c in cases)
    drawn = {dist: make_inputs(cfg, max_len, dist) for dist in sorted({c.inputs for c in cases})}
    refs: dict[tuple, tuple[Tensor, Tensor]] = {}
    done: dict[tuple, dict[str, float]] = {}
    rows = []
    for case in cases:
        if case.key not in done:
            n = case.seq_len
            q, k, v = (_rounded(x[..., :n, :], case.dtype) for x in drawn[case.inputs])
            ref_key = (case.inputs, case.dtype, n)
            if ref_key not in refs:  # outputs are N x d: cheap to keep
                refs[ref_key] = (
                    golden_attention(q, k, v),
                    baseline_attention(q, k, v, case.dtype, accum=cfg.accum),
                )
            gold, base = refs[ref_key]
            t0 = time.perf_counter()
            flash = flash_reference(
                q,
                k,
                v,
                case.block_r,
                case.block_c,
                case.dtype,
                accum=case.accum,
                algorithm=case.algorithm,  # type: ignore[arg-type]
            )
            vals: dict[str, float] = {"flash_s": time.perf_counter() - t0}
            for prefix, (a, b) in {
                "flash": (flash, gold),
                "baseline": (base, gold),
                "fvb": (flash, base),
            }.items():
                dev = deviation(a, b)
                vals |= {f"{prefix}_{m}": dev[m if m == "rmse" else f"{m}_abs"] for m in METRICS}
            done[case.key] = vals
        vals = done[case.key]
        rows.append(
            {
                "experiment": case.experiment,
                "inputs": case.inputs,
                "dtype": case.dtype,
                "accum": case.accum,
                "algorithm": case.algorithm,
                "mantissa_bits": MANTISSA_BITS[case.dtype],
                "seq_len": case.seq_len,
                "head_dim": case.head_dim,
                "sram_m": case.sram_m,
                "block_r": case.block_r,
                "block_c": case.block_c,
                "tile_area": case.block_r * case.block_c,
                "n_kv_tiles": n_kv_tiles(case.seq_len, case.block_c),
                "swap": case.swap,
                "square": case.square,
                **vals,
                "ratio_max": _ratio(vals["flash_max"], vals["baseline_max"]),
                "ratio_mean": _ratio(vals["flash_mean"], vals["baseline_mean"]),
            }
        )
        if progress is not None:
            progress(case)
    return pd.DataFrame(rows, columns=[c for c, _ in COLUMNS])


def _ratio(a: float, b: float) -> float:
    """a / b, or nan when b is exactly 0 (fp64 baseline *is* the golden computation)."""
    return a / b if b > 0 else math.nan


def run_sweep(
    cfg: SweepConfig | None = None, progress: Callable[[Case], None] | None = None
) -> pd.DataFrame:
    """Plan and run the configured experiments."""
    cfg = (cfg or SweepConfig()).validated()
    return run_cases(plan(cfg), cfg, progress)


def log_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (a power-law exponent); nan if undefined."""
    x_arr, y_arr = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = (x_arr > 0) & (y_arr > 0) & np.isfinite(y_arr)
    if ok.sum() < 2 or len(set(x_arr[ok])) < 2:
        return math.nan
    return float(np.polyfit(np.log(x_arr[ok]), np.log(y_arr[ok]), 1)[0])


def _slopes(df: pd.DataFrame, x: str, metric: str, by: str = "dtype") -> dict[str, float]:
    return {
        str(key): log_slope(g.sort_values(x)[x], g.sort_values(x)[metric])
        for key, g in df.groupby(by, sort=False)
    }


def _grows(df: pd.DataFrame, by: str) -> tuple[dict[str, bool], dict[str, dict[str, float]]]:
    """Per group: do max, mean and std of |flash - golden| all have a positive N-slope?"""
    slopes = {m: _slopes(df, "seq_len", f"flash_{m}", by) for m in ("max", "mean", "std")}
    keys = slopes["max"]
    return {k: all(slopes[m][k] > 0 for m in slopes) for k in keys}, slopes


def summarize(df: pd.DataFrame, cfg: SweepConfig | None = None) -> dict[str, object]:
    """Key numbers and the paper's directions of effect, each computed from the table.

    * ``grows_with_seq_len``: the log-log slopes of max, mean and std against N are all > 0;
    * ``shrinks_with_tile_area``: the slope of max against B_r*B_c is < 0;
    * ``swap_increases``: swapped tiles deviate more (max) at every M (``_mean``: by mean);
    * ``square_no_change``: square tiles move the max by less than 10% at every M.
    """
    cfg = (cfg or SweepConfig()).validated()
    out: dict[str, object] = {
        "schema_version": SCHEMA_VERSION,
        "measured": "cpu",
        "metric": "max |Δ| of attention outputs unless named otherwise",
        "golden": "baseline attention in fp64 on the same (format-rounded) inputs",
        "inputs": {
            "distribution": INPUTS[cfg.inputs],
            "batch": cfg.batch,
            "heads": cfg.heads,
            "head_dim": cfg.head_dim,
            "seed": cfg.seed,
        },
        "accum": cfg.accum or "same as dtype",
    }
    main = df[df.inputs == cfg.inputs]
    prec = main[main.experiment == "precision"]
    if not prec.empty:
        out["precision"] = {
            r.dtype: {
                "flash_vs_golden_max": r.flash_max,
                "baseline_vs_golden_max": r.baseline_max,
                "flash_vs_baseline_max": r.fvb_max,
                "ratio_max": r.ratio_max,
                "ratio_mean": r.ratio_mean,
            }
            for r in prec.itertuples()
        }
        first = prec.iloc[0]
        out["precision_at"] = {
            k: int(first[k]) for k in ("seq_len", "block_r", "block_c", "sram_m")
        }
        bf = prec[prec.dtype == "bf16"]
        if not bf.empty:
            out["bf16_flash_to_baseline_ratio"] = float(bf.ratio_max.iloc[0])
            out["bf16_flash_to_baseline_ratio_mean"] = float(bf.ratio_mean.iloc[0])
        by_bits = prec.sort_values("mantissa_bits")
        out["fewer_mantissa_bits_more_deviation"] = bool(
            by_bits.flash_max.is_monotonic_decreasing and by_bits.fvb_max.is_monotonic_decreasing
        )
    bf_all = main[(main.dtype == "bf16") & (main.accum == "bf16") & (main.algorithm == "fa2")]
    if not bf_all.empty:
        top = bf_all.loc[bf_all.ratio_max.idxmax()]
        out["bf16_ratio_range"] = {
            "min": float(bf_all.ratio_max.min()),
            "max": float(top.ratio_max),
            "max_at": {k: int(top[k]) for k in ("seq_len", "block_r", "block_c")},
        }
    for exp, key in (
        ("accum", "fp32_accum_flash_to_baseline_ratio"),
        ("algorithm", "fa1_flash_to_baseline_ratio"),
    ):
        sub = main[main.experiment == exp]
        if not sub.empty:
            out[key] = {r.dtype: r.ratio_max for r in sub.itertuples()}

    seq = main[main.experiment == "seq_len"]
    if not seq.empty:
        grows, slopes = _grows(seq, "dtype")
        out["grows_with_seq_len"] = grows
        out["seq_len_slope"] = {f"flash_{m}": s for m, s in slopes.items()}
        out["seq_len_slope"]["baseline_max"] = _slopes(seq, "seq_len", "baseline_max")
        out["seq_len_slope"]["ratio_max"] = _slopes(seq, "seq_len", "ratio_max")
        first = seq.iloc[0]
        out["seq_len_tile"] = {k: int(first[k]) for k in ("block_r", "block_c", "sram_m")}
    other = df[(df.experiment == "inputs") | ((df.experiment == "seq_len") & (df.dtype == "bf16"))]
    if not other.empty and other.inputs.nunique() > 1:
        other = other[other.dtype == "bf16"].drop_duplicates(["inputs", "seq_len"])
        grows, slopes = _grows(other, "inputs")
        out["bf16_grows_with_seq_len_by_inputs"] = grows
        out["bf16_seq_len_slope_by_inputs"] = slopes["max"]
        n_top = other.seq_len.max()
        out["bf16_flash_to_baseline_ratio_by_inputs"] = {
            r.inputs: r.ratio_max for r in other[other.seq_len == n_top].itertuples()
        }
    area = main[main.experiment == "tile_area"]
    if not area.empty:
        slope = _slopes(area, "tile_area", "flash_max")
        out["tile_area_slope"] = slope
        out["shrinks_with_tile_area"] = {dt: bool(s < 0) for dt, s in slope.items()}
        out["tile_area_seq_len"] = int(area.seq_len.iloc[0])
        base = area.set_index(["dtype", "sram_m"])["flash_max"]
        for exp, key in (("swap", "swap_increases"), ("square", "square_no_change")):
            sub = main[main.experiment == exp]
            if sub.empty:
                continue
            rel = {
                str(dt): [r.flash_max / base[(dt, r.sram_m)] for r in g.itertuples()]
                for dt, g in sub.groupby("dtype", sort=False)
            }
            if exp == "swap":
                out[key] = {dt: all(x > 1 for x in xs) for dt, xs in rel.items()}
                # The max is one extreme element; the mean says the same thing less noisily.
                mean = area.set_index(["dtype", "sram_m"])["flash_mean"]
                out["swap_increases_mean"] = {
                    str(dt): all(r.flash_mean > mean[(dt, r.sram_m)] for r in g.itertuples())
                    for dt, g in sub.groupby("dtype", sort=False)
                }
            else:
                out[key] = {dt: all(abs(x - 1) < 0.1 for x in xs) for dt, xs in rel.items()}
            out[f"{exp}_relative_max"] = rel
    directions = (
        "fewer_mantissa_bits_more_deviation",
        "grows_with_seq_len",
        "shrinks_with_tile_area",
        "swap_increases",
        "square_no_change",
    )
    out["paper_directions_bf16"] = {
        k: (out[k].get("bf16") if isinstance(out[k], dict) else out[k])  # type: ignore[union-attr]
        for k in directions
        if k in out
    }
    out["cases"] = len(df)
    unique = df.drop_duplicates(
        ["inputs", "dtype", "accum", "seq_len", "block_r", "block_c", "algorithm"]
    )
    out["flash_seconds"] = float(unique.flash_s.sum())
    return out
