"""Output deviation of an optimized stage against the baseline run with the same seed.

Images and latents (diffusion): **PSNR** and **max |Δ|** of the UNet's CFG-combined noise
prediction — the quantity one denoise step computes — plus the PSNR of the latents after the
scheduler update. The PSNR peak is the baseline's data range (max − min), as for images.

Tokens (autoregressive decoding):

* ``exact_match``: share of positions where the stage's free-running greedy tokens equal the
  baseline's (image 0 of a batch); ``prefix_match``: share of tokens before the first difference.
  Free-running sequences diverge for good after one flipped token, so these two say whether
  the *output* is the same, not how far the model moved.
* ``agreement`` and ``kl_mean``: teacher-forced on the baseline's tokens, so both runs see the
  same prefix at every step: the share of steps whose greedy choice equals the baseline's, and
  the mean KL(p_baseline ‖ p_stage) of the per-step next-token distributions (softmax at
  temperature 1 of the logits the sampler sees, after CFG and the image-vocabulary restriction).

Tolerances (:data:`TOLERANCES`, with their reasons) decide whether a stage counts toward a
speedup target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Tolerance:
    metric: str
    op: str  # ">=" or "<="
    bound: float
    why: str

    def ok(self, value: float | None) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return value >= self.bound if self.op == ">=" else value <= self.bound

    def text(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


#: What a stage must keep to count toward a target. Chosen once, for every stage of a stack.
TOLERANCES: dict[str, tuple[Tolerance, ...]] = {
    "latents": (
        Tolerance(
            "psnr_db",
            ">=",
            30.0,
            "30 dB is where lossy image codecs are rated near-transparent; on the UNet's noise "
            "prediction it allows the ~0.4% relative error of bf16 (8 mantissa bits: 40-55 dB "
            "here) and flags anything an order of magnitude worse",
        ),
    ),
    "tokens": (
        Tolerance(
            "kl_mean",
            "<=",
            0.01,
            "mean per-step KL(p_baseline ‖ p_stage) <= 0.01 nat, teacher-forced: the order of "
            "4-5-bit weight quantization in llama.cpp's KL reports on trained LLMs (8-bit: "
            "~0.001). Chameleon T-I *samples* image tokens (temperature 1, top-p, CFG), so the "
            "distribution is what must be kept; greedy agreement and exact match are reported "
            "but not gated: random-weight logits are near-flat (top-1 margins of a few 0.01), "
            "so any rounding flips some argmaxes and one flip changes every later free-running "
            "token",
        ),
    ),
}


def within(kind: str, deviation: dict[str, Any]) -> tuple[bool, list[str]]:
    """Whether a deviation dict meets the tolerances of its kind, and which ones it breaks."""
    broken = [t.text() for t in TOLERANCES[kind] if not t.ok(deviation.get(t.metric))]
    return not broken, broken


def tolerance_text(kind: str) -> str:
    return " and ".join(t.text() for t in TOLERANCES[kind])


# --------------------------------------------------------------------------- images / latents
def psnr(reference: torch.Tensor, x: torch.Tensor) -> float:
    """PSNR in dB with the reference's data range (max - min) as peak; inf if identical."""
    ref, x = reference.double(), x.double()
    mse = float(((x - ref) ** 2).mean())
    peak = float(ref.max() - ref.min())
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse) if peak > 0 else -math.inf


def max_abs(reference: torch.Tensor, x: torch.Tensor) -> float:
    return float((x.double() - reference.double()).abs().max())


def latent_deviation(base: Any, out: Any) -> dict[str, Any]:
    """``base``/``out`` are :class:`~genscope.optimize.targets.DenoiseOutput` s."""
    return {
        "psnr_db": psnr(base.noise, out.noise),
        "max_abs": max_abs(base.noise, out.noise),
        "latents_psnr_db": psnr(base.latents, out.latents),
        "latents_max_abs": max_abs(base.latents, out.latents),
    }


# --------------------------------------------------------------------------- tokens
def kl_mean(base_logits: torch.Tensor, logits: torch.Tensor) -> float:
    """Mean over steps of KL(softmax(base) ‖ softmax(x)), in nats; inputs (steps, vocab)."""
    p_log = base_logits.double().log_softmax(-1)
    q_log = logits.double().log_softmax(-1)
    return float((p_log.exp() * (p_log - q_log)).sum(-1).mean())


def token_deviation(
    base_tokens: torch.Tensor,
    tokens: torch.Tensor,
    base_logits: torch.Tensor | None = None,
    forced_logits: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Tokens are 1-D (one sequence); logits (steps, vocab), teacher-forced on ``base_tokens``."""
    same = tokens == base_tokens
    first_diff = int((~same).nonzero()[0, 0]) if not bool(same.all()) else len(same)
    out: dict[str, Any] = {
        "exact_match": float(same.double().mean()),
        "prefix_match": first_diff / len(same),
    }
    if base_logits is not None and forced_logits is not None:
        out["agreement"] = float((forced_logits.argmax(-1) == base_tokens).double().mean())
        out["kl_mean"] = kl_mean(base_logits, forced_logits)
    return out


def deviation_text(dev: dict[str, Any]) -> str:
    """One short human phrase for a deviation block (PSNR for images, agreement for tokens)."""
    if not dev:
        return "—"
    if "psnr_db" in dev:
        psnr = dev["psnr_db"]
        p = "inf" if psnr is None or psnr == float("inf") else f"{psnr:.1f}"
        return f"PSNR {p} dB, max|Δ| {dev['max_abs']:.2g}"
    parts = [f"same {dev['exact_match']:.0%}"]
    if "agreement" in dev:
        parts.append(f"agree {dev['agreement']:.0%}, KL {dev['kl_mean']:.0e}")
    return ", ".join(parts)
