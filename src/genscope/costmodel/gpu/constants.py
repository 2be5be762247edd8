"""The GPU model's constants: loaded from ``constants.json``, each with its source and status.

Every number the kernel and host models use lives in that file, next to the microbenchmark or
paper it comes from. Values may be keyed by architecture (``sm80``…) or by hardware registry
name; :func:`pick` resolves a spec's own entry first, then its arch, then ``default``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

_FILE = "constants.json"


@cache
def _raw() -> dict[str, dict[str, Any]]:
    text = resources.files("genscope.costmodel.gpu").joinpath(_FILE).read_text("utf-8")
    data = json.loads(text)["constants"]
    for name, entry in data.items():
        missing = {"value", "source", "status"} - set(entry)
        if missing:
            raise ValueError(f"{_FILE}: constant {name!r} lacks {sorted(missing)}")
    return data


def names() -> list[str]:
    """Every constant's name, in file order."""
    return list(_raw())


def entry(name: str) -> dict[str, Any]:
    """The full record (value, unit, source, status) of one constant."""
    try:
        return dict(_raw()[name])
    except KeyError:
        raise KeyError(f"{_FILE}: no constant {name!r}") from None


def value(name: str) -> Any:
    """The raw value of one constant."""
    return _raw()[name]["value"]


def pick(name: str, arch: str, hardware: str | None = None) -> Any:
    """A per-arch/per-GPU value: the hardware name's entry, else the arch's, else ``default``."""
    v = value(name)
    if not isinstance(v, dict):
        return v
    for key in (hardware, arch, "default"):
        if key is not None and key in v:
            return v[key]
    raise KeyError(f"{_FILE}: constant {name!r} has no entry for {hardware or arch}")
