"""Which speed state a shared machine is in: a fixed probe timed next to every measurement.

The CI and development VMs of this project run for seconds to minutes at a time in a state
1.5–2.5x slower than their fastest, everything slowing together (neighbours sharing the
physical core). A calibration taken in one state and a measurement taken in another cannot
agree, and no fastest-of-N estimator helps when a whole run stays slow. So calibration and
measured runs time this probe around their timings, and validation compares the two in one
state: each timing's *state factor* is the mean of the probes on either side of it over the
probe's *reference* (a low percentile over the calibration that made the op model), and a
timing in the reference state is the timing / factor ** exponent: library code slows less
than the probe, by an exponent the calibration fits on its reference code (:func:`fit_exponent`).

Measured here (2 vCPUs, one torch thread): the probe's time correlates with the pass time of
tiny chameleon, sd15 and make-a-video at r ≈ 0.85–0.9; over 40 s of passes, the median of
pass time / state factor came within −5…+3 % of the fastest pass, against 1.35–1.9x for the
median raw pass.

The probe mixes the three kinds of work a small pipeline does: a gather over 2 MB (cache
misses), 50 tiny tensor ops (dispatch) and a little pure Python.
"""

from __future__ import annotations

import time

import numpy as np
import torch

#: The reference is this percentile of a calibration's probe times (not the minimum: one probe
#: in a few hundred runs implausibly fast, a clock artefact).
REFERENCE_PERCENTILE = 5.0


class StateProbe:
    """A fixed ~0.5 ms probe; ``probe()`` returns its process CPU time in seconds, run right
    after an untimed warm run (else the caches the preceding work left decide its time)."""

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self._table = torch.randn(2**19, generator=gen)  # 2 MB of fp32
        self._index = torch.randint(0, 2**19, (20_000,), generator=gen)
        self._x = torch.randn(2, 8, 16, generator=gen)
        self._y = torch.randn(2, 8, 16, generator=gen)
        self._records = [{"id": i, "name": str(i)} for i in range(2_000)]
        self.times: list[float] = []
        for _ in range(3):
            self._work()

    def _work(self) -> None:
        self._table[self._index].sum()
        for _ in range(50):
            self._x + self._y
        sum(len(r["name"]) for r in self._records)

    def probe(self) -> float:
        self._work()  # warm: what ran before must not decide the probe's time, only the state
        c0 = time.process_time()
        self._work()
        t = time.process_time() - c0
        self.times.append(t)
        return t

    def reference(self) -> float:
        """The fast-state probe time: a low percentile of every probe taken so far."""
        if not self.times:
            raise ValueError("no probe taken yet")
        return float(np.percentile(self.times, REFERENCE_PERCENTILE))


#: How code slows with the probe when a calibration cannot tell (too few rounds, or the state
#: barely moved): measured on this project's VM, 2026-11-22, over 120 rounds of the op
#: model's reference code (slope of log time on log probe factor: diffusers 0.61, transformers
#: 0.59; tiny chameleon, sd15 and make-a-video passes 0.73, 0.54, 0.53)
DEFAULT_EXPONENT = 0.6
#: A fitted exponent needs this many rounds, spanning at least this ratio of state factors,
#: and a correlation of at least MIN_FIT_CORRELATION between log time and log factor (one
#: 15-round calibration here fitted 0.66, another below 0.2 at a weak correlation)
MIN_FIT_ROUNDS = 8
MIN_FIT_RANGE = 1.3
MIN_FIT_CORRELATION = 0.7


def fit_exponent(times: dict[str, list[float]], factors: list[float]) -> tuple[float, str]:
    """How much slower code runs when the probe runs ``f`` times slower: ``f ** exponent``.

    Least squares of log time on log factor, pooled over the series in ``times`` (each
    demeaned: they differ in size, not in how they slow), clamped to [0.2, 1.5], if the fit
    explains the rounds (see MIN_FIT_CORRELATION); else DEFAULT_EXPONENT. The probe
    slows more than library code does (its gather and dispatch loop are the most
    state-sensitive work), so dividing by the raw factor would over-correct slow spells.
    Returns (exponent, how it was obtained).
    """
    f = np.log(np.asarray(factors, dtype=float))
    if len(f) < MIN_FIT_ROUNDS or float(np.exp(f.max() - f.min())) < MIN_FIT_RANGE:
        return DEFAULT_EXPONENT, (
            f"default: {len(f)} rounds spanning state factors "
            f"{float(np.exp(f.max() - f.min())) if len(f) else 1.0:.2f}x are too few to fit"
        )
    xs, ys = [], []
    for series in times.values():
        y = np.log(np.asarray(series, dtype=float))
        xs.append(f - f.mean())
        ys.append(y - y.mean())
    x, y = np.concatenate(xs), np.concatenate(ys)
    slope = float((x * y).sum() / (x * x).sum())
    r = float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum())) if (y * y).sum() else 0.0
    if r < MIN_FIT_CORRELATION:
        return DEFAULT_EXPONENT, f"default: the rounds' correlation r = {r:.2f} is too weak to fit"
    fitted = f"fitted over {len(f)} rounds of reference code (r = {r:.2f})"
    return float(np.clip(slope, 0.2, 1.5)), fitted


def state_factor(before: float, after: float, reference: float) -> float:
    """How much slower than the reference state a timing between probes ``before`` and
    ``after`` ran."""
    return (before + after) / 2.0 / reference


class ProbeLog:
    """Probes around consecutive timings: the probe after one timing is the one before the
    next. Each timing's state factor is taken against ``reference`` (a measured run: the op
    model's), or, without one, against a low percentile of this log's own probes (a
    calibration: known only once all its probes are in)."""

    def __init__(self, reference: float | None = None) -> None:
        self.probe = StateProbe()
        self.fixed_reference = reference
        self._last = self.probe.probe()
        self.pairs: list[tuple[float, float]] = []  # (probe before, probe after) each timing

    def after(self) -> int:
        """Probe after a timing; returns its index (for :meth:`factor`)."""
        before, self._last = self._last, self.probe.probe()
        self.pairs.append((before, self._last))
        return len(self.pairs) - 1

    def reference(self) -> float:
        return self.fixed_reference or self.probe.reference()

    def factor(self, index: int) -> float:
        return state_factor(*self.pairs[index], self.reference())

    def factors(self) -> list[float]:
        return [self.factor(i) for i in range(len(self.pairs))]
