"""genscope: where multimodal generative-AI inference spends its time, memory and precision.

The Python API::

    import genscope
    result = genscope.trace(my_model, (x, context))            # any nn.Module / pipeline
    result = genscope.trace_workload("sd15", genscope.Settings(steps=1))
    result.events      # the op-event table (pandas)
    result.summary     # totals by component / category / attention
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Settings", "TraceResult", "trace", "trace_workload"]


def __getattr__(name: str) -> Any:
    # Lazy: `genscope --help` should not import torch/diffusers.
    if name in ("trace", "trace_workload", "TraceResult"):
        from genscope import api

        return getattr(api, name)
    if name == "Settings":
        from genscope.workloads.base import Settings

        return Settings
    raise AttributeError(name)
