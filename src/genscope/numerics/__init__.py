"""Numerics of attention (Golden et al. 2024, "Is Flash Attention Stable?").

* :mod:`~genscope.numerics.attention_ref`: tiled flash reference, baseline, fp64 golden.
* :mod:`~genscope.numerics.experiments`: precision / sequence / tile sweeps as DataFrames.
* :mod:`~genscope.numerics.dualpath`: flash vs baseline on every attention call of a model.
* :mod:`~genscope.numerics.drift`: weight drift of training runs, by Wasserstein distance.
* :mod:`~genscope.numerics.figures`: matplotlib figures of those tables.
* :mod:`~genscope.bench.numerics`: ``genscope bench numerics`` (sweep wall time).
* :mod:`~genscope.numerics.tiny_sd15`: the tiny sd15 UNet as a test bed.

Low precision is emulated (round after every op), so results are the same on any CPU.
"""

from genscope.numerics.attention_ref import (
    baseline_attention,
    deviation,
    flash_reference,
    golden_attention,
    n_kv_tiles,
    tile_sizes,
)
from genscope.numerics.precision import DTYPES, Precision, dtype_name, round_to

__all__ = [
    "DTYPES",
    "Precision",
    "baseline_attention",
    "deviation",
    "dtype_name",
    "flash_reference",
    "golden_attention",
    "n_kv_tiles",
    "round_to",
    "tile_sizes",
]
