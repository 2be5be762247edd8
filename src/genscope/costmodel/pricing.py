"""What ``predicted_s`` means for a run: the GPU time model on a GPU spec, the roofline elsewhere.

Every capture path prices its op-event table here. The roofline (``roofline_s``) is always
filled in beside the prediction, as the bound it is: on a GPU spec (one with the GPU model's
fields, :mod:`genscope.costmodel.gpu.device`) ``predicted_s`` becomes each op's predicted kernel
time and the run gets its host timeline (end-to-end wall, device idle, host-bound share); on
other specs (``cpu-local``, a spec without SM counts) ``predicted_s`` stays the roofline. On a
GPU spec ``roofline_s`` is the bound of the math each kernel runs: PyTorch's defaults make
fp32 convolutions TF32 in cuDNN, so their bound uses the TF32 peak.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from genscope.costmodel.gpu import GpuPrediction, predict
from genscope.costmodel.gpu.device import ARCHS
from genscope.costmodel.hardware import HardwareSpec
from genscope.costmodel.roofline import apply_roofline


def has_gpu_model(hw: HardwareSpec) -> bool:
    """Whether ``hw`` carries the GPU time model's fields (arch and SM count)."""
    extra = hw.extra or {}
    return extra.get("arch") in ARCHS and isinstance(extra.get("sm_count"), int)


def price(
    events: pd.DataFrame,
    hw: HardwareSpec,
    *,
    libraries: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, GpuPrediction | None]:
    """``events`` priced on ``hw``, and the GPU prediction (None off the GPU model).

    ``libraries`` maps each component to its model library (its host cost per op).
    """
    priced = apply_roofline(events, hw)
    if not has_gpu_model(hw):
        return priced, None
    prediction = predict(priced, hw, library_of_component=libraries)
    priced["predicted_s"] = prediction.ops["kernel_s"].to_numpy()
    # the bound of the math the kernel runs (cuDNN's TF32 for fp32 convolutions, the layout
    # passes of NCHW Tensor-Core convolutions), which no kernel prediction is below
    priced["roofline_s"] = prediction.ops["roofline_s"].to_numpy()
    return priced, prediction
