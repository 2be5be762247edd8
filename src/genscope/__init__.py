"""genscope: where multimodal generative-AI inference spends its time, memory and precision."""

__version__ = "0.1.0"
