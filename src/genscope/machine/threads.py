"""Run torch on a fixed number of intra-op threads, restoring the previous setting after.

The references issue thousands of small elementwise ops; with OpenMP threads on an
oversubscribed CPU each op can stall at a barrier, so one thread is both faster and fairer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """``None`` leaves torch's setting alone."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
