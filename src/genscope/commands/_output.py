"""Shared output helpers: one JSON object on stdout for --json; everything else to stderr."""

import json
import sys
from typing import Any

from genscope.console import err_console, out_console
from genscope.store import jsonable

__all__ = ["emit_json", "err_console", "out_console"]


def emit_json(obj: dict[str, Any]) -> None:
    """Print exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(jsonable(obj), sort_keys=False, default=str) + "\n")
    sys.stdout.flush()
