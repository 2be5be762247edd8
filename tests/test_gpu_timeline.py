"""Host timeline: toy op lists with known answers, repeats and syncs against a naive loop."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genscope.costmodel.gpu.timeline import blocks, simulate

US = 1e-6


def naive(host, kernel, count, sync):
    """Expand every block ``count`` times and walk the ops one by one."""
    clock = dev = busy = 0.0
    n = len(host)
    i = 0
    while i < n:
        j = i
        while j < n and count[j] == count[i]:
            j += 1
        for _ in range(count[i]):
            for k in range(i, j):
                if sync[k]:
                    clock = max(clock, dev)
                clock += host[k]
                start = max(clock, dev)
                dev = start + kernel[k]
                busy += kernel[k]
        i = j
    return max(clock, dev), busy


def test_host_bound_toy():
    # 3 ops, 10 us of host each, 2 us kernels: issued at 10, 20, 30; the last ends at 32.
    t = simulate([10 * US] * 3, [2 * US] * 3, [1, 1, 1])
    assert t.wall_s == pytest.approx(32 * US)
    assert t.busy_s == pytest.approx(6 * US)
    assert t.idle_s == pytest.approx([10 * US, 8 * US, 8 * US])
    assert t.host_bound_share == pytest.approx(26 / 32)


def test_device_bound_toy():
    # 1 us of host, 10 us kernels: the device runs back to back after the first issue.
    t = simulate([1 * US] * 3, [10 * US] * 3, [1, 1, 1])
    assert t.wall_s == pytest.approx(31 * US)
    assert t.start_s == pytest.approx([1 * US, 11 * US, 21 * US])
    assert t.issue_s == pytest.approx([1 * US, 2 * US, 3 * US])
    assert t.idle_total_s == pytest.approx(1 * US)


def test_repeated_block_is_not_expanded_but_matches():
    # (host 1, kernel 10) + (host 1, kernel 1), 1000 times: 1 us to first issue, then 11 us of
    # kernels per repeat back to back.
    t = simulate([US, US], [10 * US, US], [1000, 1000])
    assert t.wall_s == pytest.approx(1 * US + 11_000 * US)
    assert t.idle_s.sum() == pytest.approx(1 * US)


def test_sync_makes_the_host_wait():
    # op 2 is .item(): the host waits for kernel 1 (ends at 101 us) before paying its 5 us.
    t = simulate([US, 5 * US, US], [100 * US, 0.0, US], [1, 1, 1], [False, True, False])
    assert t.issue_s[1] == pytest.approx(106 * US)
    assert t.wall_s == pytest.approx(108 * US)


def test_blocks_are_runs_of_equal_count():
    assert blocks(np.array([1, 1, 50, 50, 50, 1, 7])) == [(0, 2), (2, 5), (5, 6), (6, 7)]


@settings(max_examples=80, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.floats(0, 50),
            st.floats(0, 50),
            st.sampled_from([1, 1, 2, 3, 7]),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_vectorized_timeline_equals_naive_expansion(ops):
    host, kernel, count, sync = (np.array(x) for x in zip(*ops, strict=True))
    sync = sync & (np.arange(len(ops)) % 3 == 0)
    t = simulate(host * US, kernel * US, count, sync)
    wall, busy = naive(host * US, kernel * US, count, sync)
    assert t.wall_s == pytest.approx(wall, abs=1e-12)
    assert t.busy_s == pytest.approx(busy, abs=1e-12)
    assert t.idle_s.sum() <= t.idle_total_s + 1e-12


def test_speed_of_a_big_table():
    import time

    n = 40_000
    rng = np.random.default_rng(0)
    count = np.repeat([1, 50, 1, 200], n // 4)
    t0 = time.perf_counter()
    simulate(rng.random(n) * 10 * US, rng.random(n) * 10 * US, count)
    assert time.perf_counter() - t0 < 2.0
