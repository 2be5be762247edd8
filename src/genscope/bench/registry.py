"""Benchmarks: speed targets measured as ratios against a baseline taken in the same run.

Benchmarks are not tests: they print figures (``genscope bench NAME --json``) and never assert.
Each entry maps a name to ``"module:function"``; the function takes keyword options and returns
one JSON-able dict. Imports are lazy so ``genscope --help`` stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from genscope.errors import choices_error

BENCHES: dict[str, str] = {
    "trace": "genscope.bench.trace:bench_trace",
    "suite": "genscope.bench.trace:bench_suite",
    "numerics": "genscope.bench.numerics:bench_numerics",
    "validate": "genscope.bench.validate:bench_validate",
    "overhead": "genscope.bench.overhead:bench_overhead",
    "optimize": "genscope.bench.optimize:bench_optimize",
    "scorecard": "genscope.bench.scorecard:bench_scorecard",
    "lee": "genscope.bench.lee:bench_lee",
}


def get_bench(name: str) -> Callable[..., dict[str, Any]]:
    if name not in BENCHES:
        raise choices_error("benchmark", name, list(BENCHES))
    module, _, func = BENCHES[name].partition(":")
    return getattr(importlib.import_module(module), func)
