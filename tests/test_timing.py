import time
from types import SimpleNamespace

import pytest

from genscope.machine import timing
from genscope.machine.timing import summarize_samples, timed


def test_timed_counts_warmup_and_repeats(monkeypatch):
    """A fake clock: the three timed calls last 0.25 s, 0.125 s and 0.5 s (binary fractions,
    so the differences are exact)."""
    ticks = iter([1.0, 1.25, 2.0, 2.125, 3.0, 3.5])
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    calls = []
    t, out = timed(lambda: calls.append(1) or len(calls), warmup=2, repeats=3)
    assert len(calls) == 5 and out == 5
    assert t.repeats == 3 and t.warmup == 2
    assert t.samples == (0.25, 0.125, 0.5)
    assert (t.min, t.median, t.max) == (0.125, 0.25, 0.5)
    assert t.spread == (0.5 - 0.125) / 0.25


def test_timed_measures_sleep():
    t, _ = timed(lambda: time.sleep(0.01), warmup=0, repeats=3)
    assert 0.009 < t.median < 0.1


def test_summary_statistics():
    t = summarize_samples([1.0, 2.0, 3.0, 4.0, 10.0], warmup=1)
    assert t.median == 3.0 and t.min == 1.0 and t.max == 10.0
    assert t.spread == pytest.approx(3.0)


def test_bad_repeats():
    with pytest.raises(ValueError):
        timed(lambda: None, repeats=0)
