"""Shared output helpers: one JSON object on stdout for --json; everything else to stderr."""

import json
import math
import sys
from typing import Any

from rich.console import Console

#: Progress, logs and tables for humans go to stderr so stdout stays machine-readable.
err_console = Console(stderr=True)
out_console = Console()


def _clean(obj: Any) -> Any:
    """Make numpy/pandas scalars and NaN JSON-safe."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def emit_json(obj: dict[str, Any]) -> None:
    """Print exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(_clean(obj), sort_keys=False, default=str) + "\n")
    sys.stdout.flush()
