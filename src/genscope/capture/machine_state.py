"""Which speed state a shared machine is in: a fixed probe timed next to every measurement.

The CI and development VMs of this project run for seconds to minutes at a time in a state
1.5–2.5x slower than their fastest, everything slowing together (neighbours sharing the
physical core). A calibration taken in one state and a measurement taken in another cannot
agree, and no fastest-of-N estimator helps when a whole run stays slow. So calibration and
measured runs time this probe around their timings, and validation compares the two in one
state: each timing's *state factor* is the mean of the probes on either side of it over the
probe's *reference* (a low percentile over the calibration that made the op model).

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


def state_factor(before: float, after: float, reference: float) -> float:
    """How much slower than the reference state a timing between probes ``before`` and
    ``after`` ran."""
    return (before + after) / 2.0 / reference
