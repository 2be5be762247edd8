"""``genscope bench numerics``: wall time of a 4 formats x 6 lengths x 4 tiles deviation sweep.

The sweep is the same code path as ``genscope numerics sweep`` (flash reference, baseline and
fp64 golden per case, heads vectorized, key/value tiles looped, row tiles vectorized).
"""

from __future__ import annotations

import time
from typing import Any

from genscope.numerics.attention_ref import tile_sizes
from genscope.numerics.experiments import Case, SweepConfig, run_cases
from genscope.numerics.precision import DTYPES

TARGET_S = 60.0
SEQ_LENS = (128, 256, 512, 1024, 2048, 4096)
#: M in elements; at d = 64 the rule gives tiles 16x16, 32x32, 64x64 and 64x128.
SRAMS = (4096, 8192, 16384, 32768)


def bench_numerics(
    *, heads: int = 2, head_dim: int = 64, threads: int | None = 1
) -> dict[str, Any]:
    """Time the grid sweep (one thread by default: fair on a shared CPU, see ``_threads``)."""
    cfg = SweepConfig(heads=heads, head_dim=head_dim, threads=threads)
    cases = [
        Case("grid", dt, dt, n, head_dim, m, *tile_sizes(m, head_dim))
        for dt in DTYPES
        for n in SEQ_LENS
        for m in SRAMS
    ]
    t0, c0 = time.perf_counter(), time.process_time()
    df = run_cases(cases, cfg)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    bf = df[df.dtype == "bf16"]
    return {
        "name": "numerics",
        "seconds": seconds,
        "target_s": TARGET_S,
        "within_target": seconds <= TARGET_S,
        # CPU time of this process: what the wall time would be on an otherwise idle core.
        "cpu_seconds": cpu_seconds,
        "grid": {
            "dtypes": list(DTYPES),
            "seq_lens": list(SEQ_LENS),
            "sram_m": list(SRAMS),
            "tiles": [list(tile_sizes(m, head_dim)) for m in SRAMS],
            "batch": cfg.batch,
            "heads": heads,
            "head_dim": head_dim,
            "cases": len(cases),
            "threads": threads,
        },
        "flash_seconds": float(df.flash_s.sum()),
        "bf16_flash_to_baseline_ratio_max": float(bf.ratio_max.max()),
        "bf16_flash_to_baseline_ratio_min": float(bf.ratio_max.min()),
    }
