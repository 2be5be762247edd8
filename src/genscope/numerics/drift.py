"""Weight drift: does Flash's deviation matter for training, next to changes we already accept?

The paper cannot train to completion, so it compares weight differences between training
runs that differ in one thing: attention implementation (flash vs baseline), initialization
seed, and training precision (low precision vs fp32). Here four runs of the tiny sd15 UNet are
trained in lockstep on the same synthetic text-to-image denoising data (made in-process, fixed
seeds), and at checkpoints every pair's weights are compared per layer by Wasserstein-1
distance between the empirical weight distributions and by max |Δ|.

Runs: ``ref`` (SDPA attention = the CPU flash kernel, fp32, seed A), ``baseline`` (diffusers'
math attention), ``seed`` (seed B), ``lowp`` (bf16 autocast). The first three pairs compare each
to ``ref``. On CPU in fp32 the flash kernel and the math path differ only by fp32 rounding,
while the paper's flash runs were necessarily low precision (the CUDA kernel has no fp32), so a
fourth pair repeats flash vs baseline with both runs under the low-precision autocast
(``lowp`` vs ``baseline_lowp``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import wasserstein_distance
from torch import Tensor, nn

from genscope.errors import UserError, choices_error
from genscope.machine.threads import torch_threads
from genscope.numerics.tiny_sd15 import TEXT_LEN, build_tiny_unet, scheduler

#: The three pairs of Fig. 8, each as (run a, run b).
PAIRS: dict[str, tuple[str, str]] = {
    "flash_vs_baseline": ("ref", "baseline"),
    "seed_a_vs_seed_b": ("ref", "seed"),
    "lowp_vs_fp32": ("ref", "lowp"),
    "flash_vs_baseline_lowp": ("lowp", "baseline_lowp"),
}
LOW_PRECISION = {"bf16": torch.bfloat16, "fp16": torch.float16}
DRIFT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("step", "optimizer steps taken"),
    ("pair", "one of PAIRS"),
    ("layer", "parameter name (weights with >= 2 dims)"),
    ("numel", "elements"),
    ("wasserstein", "W1 between the two runs' weight distributions"),
    ("max_abs", "max |w_a - w_b|"),
)


@dataclass(frozen=True)
class DriftConfig:
    """Defaults: ~160 CPU-seconds on one core here (300 steps took 233 CPU-s, 11.7 min wall at
    a third of a core on a shared machine), so the default run stays under 10 minutes."""

    steps: int = 200
    checkpoints: int = 10
    batch: int = 8
    lr: float = 1e-3
    seed_a: int = 0
    seed_b: int = 1
    data_seed: int = 1234
    classes: int = 8
    low_precision: str = "bf16"
    threads: int | None = 1

    def validated(self) -> DriftConfig:
        if self.steps <= 0:
            raise UserError(f"steps must be positive, got {self.steps}")
        if self.checkpoints <= 0:
            raise UserError(f"checkpoints must be positive, got {self.checkpoints}")
        if self.batch <= 0:
            raise UserError(f"batch must be positive, got {self.batch}")
        if self.seed_a == self.seed_b:
            raise UserError(f"seed_a and seed_b must differ, both are {self.seed_a}")
        if self.low_precision not in LOW_PRECISION:
            raise choices_error("low precision", self.low_precision, list(LOW_PRECISION))
        return self

    def checkpoint_steps(self) -> list[int]:
        every = max(1, self.steps // self.checkpoints)
        return sorted({0, *range(every, self.steps + 1, every), self.steps})


class SyntheticTextToImage:
    """Class-conditional latents: each class has a fixed text embedding and a smooth pattern.

    Enough structure for the denoiser to learn something in a few hundred steps, and fully
    determined by ``data_seed`` and the step index, so every run sees identical batches.
    """

    def __init__(self, unet: nn.Module, classes: int, data_seed: int) -> None:
        cfg = unet.config  # type: ignore[attr-defined]
        gen = torch.Generator().manual_seed(data_seed)
        side, ch = cfg.sample_size, cfg.in_channels
        coarse = torch.randn(classes, ch, 2, 2, generator=gen)
        self.protos = F.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)
        self.text = torch.randn(classes, TEXT_LEN, cfg.cross_attention_dim, generator=gen)
        self.data_seed = data_seed
        self.sched = scheduler("ddpm")

    def batch(self, step: int, size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(noisy latents, timesteps, text embeddings, target noise) for one step."""
        gen = torch.Generator().manual_seed(self.data_seed * 1_000_003 + step)
        label = torch.randint(len(self.protos), (size,), generator=gen)
        x0 = self.protos[label] + 0.1 * torch.randn(self.protos[label].shape, generator=gen)
        t = torch.randint(0, 1000, (size,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        xt = self.sched.add_noise(x0, noise, t)  # type: ignore[attr-defined]
        return xt, t, self.text[label], noise


@dataclass
class _Run:
    name: str
    model: nn.Module
    opt: torch.optim.Optimizer
    autocast: torch.dtype | None = None
    loss: float = math.nan


def _runs(cfg: DriftConfig) -> list[_Run]:
    def make(name: str, seed: int, attention: str, autocast: torch.dtype | None) -> _Run:
        model = build_tiny_unet(seed, attention=attention).train()  # type: ignore[arg-type]
        return _Run(name, model, torch.optim.AdamW(model.parameters(), lr=cfg.lr), autocast)

    return [
        make("ref", cfg.seed_a, "sdpa", None),
        make("baseline", cfg.seed_a, "math", None),
        make("seed", cfg.seed_b, "sdpa", None),
        make("lowp", cfg.seed_a, "sdpa", LOW_PRECISION[cfg.low_precision]),
        make("baseline_lowp", cfg.seed_a, "math", LOW_PRECISION[cfg.low_precision]),
    ]


def _train_step(run: _Run, batch: tuple[Tensor, Tensor, Tensor, Tensor]) -> None:
    xt, t, text, noise = batch
    with torch.autocast(
        "cpu", dtype=run.autocast or torch.bfloat16, enabled=run.autocast is not None
    ):
        pred = run.model(xt, t, encoder_hidden_states=text).sample
    loss = F.mse_loss(pred.float(), noise)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    run.opt.step()
    run.loss = loss.item()


def wasserstein_1d(x: np.ndarray, y: np.ndarray) -> float:
    """Wasserstein-1 distance between two empirical 1-D distributions.

    For samples of equal size (two copies of one weight tensor) optimal transport pairs the
    order statistics, so W1 = mean |sort(x) - sort(y)|: the same number as
    ``scipy.stats.wasserstein_distance`` at a third of its sorting. Other sizes go to scipy.
    """
    if x.size != y.size:
        return float(wasserstein_distance(x, y))
    return float(np.abs(np.sort(x) - np.sort(y)).mean())


def compare_weights(a: nn.Module, b: nn.Module) -> list[dict[str, object]]:
    """Per weight tensor (>= 2 dims: linear, conv, embedding): W1 and max |Δ|."""
    rows = []
    pb = dict(b.named_parameters())
    for name, wa in a.named_parameters():
        if wa.dim() < 2:
            continue
        x = wa.detach().double().flatten().numpy()
        y = pb[name].detach().double().flatten().numpy()
        rows.append(
            {
                "layer": name,
                "numel": x.size,
                "wasserstein": wasserstein_1d(x, y),
                "max_abs": float(np.abs(x - y).max()),
            }
        )
    return rows


def train_drift(
    cfg: DriftConfig | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> pd.DataFrame:
    """Train the four runs in lockstep; one row per (checkpoint, pair, layer).

    ``progress(step, losses)`` is called after every optimizer step.
    """
    cfg = (cfg or DriftConfig()).validated()
    with torch_threads(cfg.threads):
        runs = {r.name: r for r in _runs(cfg)}
        data = SyntheticTextToImage(runs["ref"].model, cfg.classes, cfg.data_seed)
        checkpoints = set(cfg.checkpoint_steps())
        rows: list[dict[str, object]] = []

        def snapshot(step: int) -> None:
            for pair, (a, b) in PAIRS.items():
                for row in compare_weights(runs[a].model, runs[b].model):
                    rows.append({"step": step, "pair": pair, **row})

        snapshot(0)
        for step in range(1, cfg.steps + 1):
            batch = data.batch(step, cfg.batch)
            for run in runs.values():
                _train_step(run, batch)
            if step in checkpoints:
                snapshot(step)
            if progress is not None:
                progress(step, {name: r.loss for name, r in runs.items()})
    return pd.DataFrame(rows, columns=[c for c, _ in DRIFT_COLUMNS])


def drift_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Per (step, pair): mean and max over layers of W1, and the max |Δ| over layers."""
    g = df.groupby(["step", "pair"], sort=True)
    return g.agg(
        wasserstein_mean=("wasserstein", "mean"),
        wasserstein_max=("wasserstein", "max"),
        max_abs=("max_abs", "max"),
        layers=("layer", "size"),
    ).reset_index()


def summarize_drift(df: pd.DataFrame, cfg: DriftConfig | None = None) -> dict[str, object]:
    """The ratio the paper quotes (low precision vs flash drift, 2-5x) and its bounds.

    ``lowp_to_flash_ratio``: mean-over-layers W1 of lowp_vs_fp32 divided by that of
    flash_vs_baseline at the last checkpoint; ``..._median`` is the median of that ratio over
    checkpoints after step 0; ``..._slope`` uses least-squares slopes of W1 against step.
    ``..._lowp_attention`` divides by the flash_vs_baseline_lowp pair instead.
    ``flash_bounded_by_seed`` holds when flash drift <= seed drift at every checkpoint > 0.
    """
    cfg = (cfg or DriftConfig()).validated()
    curves = drift_curves(df)
    wide = curves.pivot(index="step", columns="pair", values="wasserstein_mean")
    wide_max = curves.pivot(index="step", columns="pair", values="max_abs")
    later = wide[wide.index > 0]
    last = wide.index.max()

    def ratio(a: float, b: float) -> float:
        return float(a / b) if b > 0 else math.nan

    def at_last(a: str, b: str) -> float:
        return ratio(wide.loc[last, a], wide.loc[last, b])

    def median(a: str, b: str) -> float:
        vals = [ratio(x, y) for x, y in zip(later[a], later[b], strict=True)]
        return float(np.nanmedian(vals)) if vals else math.nan

    def slope(p: str) -> float:
        s = wide[p]
        return float(np.polyfit(s.index.to_numpy(float), s.to_numpy(float), 1)[0])

    lowp, flash, seed = "lowp_vs_fp32", "flash_vs_baseline", "seed_a_vs_seed_b"
    flash_lp = "flash_vs_baseline_lowp"
    return {
        "measured": "cpu",
        "model": "sd15 unet (tiny config), synthetic class-conditional denoising data",
        "steps": cfg.steps,
        "batch": cfg.batch,
        "lr": cfg.lr,
        "low_precision": f"{cfg.low_precision} autocast (paper: fp16 vs fp32)",
        "flash": "F.scaled_dot_product_attention (CPU flash kernel)",
        "baseline": "diffusers AttnProcessor (baddbmm, softmax, bmm)",
        "checkpoints": [int(s) for s in wide.index],
        "final_wasserstein_mean": {p: float(wide.loc[last, p]) for p in PAIRS},
        "final_max_abs": {p: float(wide_max.loc[last, p]) for p in PAIRS},
        "lowp_to_flash_ratio": at_last(lowp, flash),
        "lowp_to_flash_ratio_median": median(lowp, flash),
        "lowp_to_flash_ratio_slope": ratio(slope(lowp), slope(flash)),
        "lowp_to_flash_ratio_lowp_attention": at_last(lowp, flash_lp),
        "lowp_to_flash_ratio_lowp_attention_median": median(lowp, flash_lp),
        "seed_to_flash_ratio": at_last(seed, flash),
        "flash_bounded_by_seed": bool((later[flash] <= later[seed]).all()),
        "flash_lowp_bounded_by_seed": bool((later[flash_lp] <= later[seed]).all()),
        "flash_below_lowp": bool((later[flash] <= later[lowp]).all()),
        "flash_lowp_below_lowp": bool((later[flash_lp] <= later[lowp]).all()),
        "paper_ratio": "2-5x (Golden et al. 2024, FP16 vs FP32 on an A100 text-to-image model)",
    }


def run_drift(
    cfg: DriftConfig | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Train, then summarize; the summary carries the wall time."""
    cfg = (cfg or DriftConfig()).validated()
    t0 = time.perf_counter()
    df = train_drift(cfg, progress)
    summary = summarize_drift(df, cfg)
    summary["seconds"] = time.perf_counter() - t0
    return df, summary
