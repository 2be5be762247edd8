"""The workload suite by name."""

from __future__ import annotations

from genscope.errors import choices_error
from genscope.workloads.base import Workload
from genscope.workloads.sd15 import SD15

_WORKLOADS: dict[str, Workload] = {w.name: w for w in (SD15(),)}


def workload_names() -> list[str]:
    return list(_WORKLOADS)


def get_workload(name: str) -> Workload:
    if name not in _WORKLOADS:
        raise choices_error("workload", name, list(_WORKLOADS))
    return _WORKLOADS[name]


def all_workloads() -> list[Workload]:
    return list(_WORKLOADS.values())
