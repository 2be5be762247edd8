"""GPU time model: kernel model per op class, host timeline, levers and a published scorecard.

Entry point: :func:`predict` (op-event table + GPU spec -> :class:`GpuPrediction`).
"""

from genscope.costmodel.gpu.predict import GpuPrediction, predict

__all__ = ["GpuPrediction", "predict"]
