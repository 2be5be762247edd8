"""Run torch on a fixed number of intra-op threads, restoring the previous setting after.

Many small ops on an oversubscribed CPU stall at OpenMP barriers whenever one thread is
descheduled, so the references, benches and validation run on one thread: faster and steadier.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from genscope.errors import UserError


@contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Run with ``n`` intra-op threads (``None`` leaves torch's setting); yields the count used."""
    before = torch.get_num_threads()
    if n is not None:
        if n < 1:
            raise UserError(f"--threads must be >= 1 (got {n})")
        torch.set_num_threads(int(n))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
