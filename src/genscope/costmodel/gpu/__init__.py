"""GPU time model: kernel model per op class, host timeline, levers and a published scorecard.

Entry points: :func:`predict` (op-event table + GPU spec -> :class:`GpuPrediction`) and
:func:`stack` (the predicted lever ladder).
"""

from genscope.costmodel.gpu.levers import apply_lever, lever_names, stack
from genscope.costmodel.gpu.predict import GpuPrediction, predict

__all__ = ["GpuPrediction", "apply_lever", "lever_names", "predict", "stack"]
