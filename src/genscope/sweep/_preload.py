"""Imported once by the local pool's forkserver, so every worker forks with the tracing stack
and the sweep's model classes (diffusers/transformers, slow to import) already loaded.

``$GENSCOPE_SWEEP_PRELOAD`` (comma-separated workload names, set by the local executor before
the forkserver starts) limits the classes to the sweep's workloads; unset means all of them."""

from __future__ import annotations

import contextlib
import os

import genscope.api  # noqa: F401
from genscope.workloads.components import _resolve
from genscope.workloads.registry import all_workloads

_wanted = {w for w in os.environ.get("GENSCOPE_SWEEP_PRELOAD", "").split(",") if w}
for _wl in all_workloads():
    if _wanted and _wl.name not in _wanted:
        continue
    for _component in _wl.components:
        with contextlib.suppress(Exception):  # a broken config fails its point, not the pool
            _cfg = _wl.component_config(_component, _wl.default_variant)
            _resolve(_cfg.class_path)
            if _cfg.config_class_path:
                _resolve(_cfg.config_class_path)
