"""Op taxonomy: which category an aten op falls in, given the module it runs inside.

The category is decided by the op first and the innermost module second, because the same aten
op means different things in different places: ``bmm`` inside an attention module is attention
(Q·Kᵀ or P·V), elsewhere it is a GEMM; elementwise ops inside an ``RMSNorm`` module *are* the
norm. Categories follow the seed papers: Conv / Linear / Attention / Norm / elementwise /
resample / embedding / memory / kv_reorder (beam search's KV-cache reorder) / other.
"""

from __future__ import annotations

import re

import torch

from genscope.costmodel.ops import IDENTITY_OPS, SDPA_OPS, UPSAMPLE_TAPS

CONV_OPS = frozenset({"convolution", "_convolution", "conv1d", "conv2d", "conv3d"})
GEMM_OPS = frozenset({"mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "addbmm", "dot"})
#: Ops that form attention when they run directly inside an attention module.
ATTENTION_CORE_OPS = frozenset(
    {"bmm", "baddbmm", "matmul", "_softmax", "softmax", "_safe_softmax", "einsum"}
)
NORM_OPS = frozenset(
    {"native_group_norm", "group_norm", "native_layer_norm", "layer_norm", "rms_norm",
     "_fused_rms_norm", "native_batch_norm", "_native_batch_norm_legit_no_training"}
)  # fmt: skip
RESAMPLE_OPS = frozenset(UPSAMPLE_TAPS) | frozenset(
    {"avg_pool1d", "avg_pool2d", "avg_pool3d", "max_pool2d_with_indices", "max_pool3d_with_indices",
     "_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "grid_sampler_2d", "pixel_shuffle",
     "pixel_unshuffle"}
)  # fmt: skip
EMBEDDING_OPS = frozenset({"embedding", "embedding_bag", "_embedding_bag"})
SDPA_NAMES = frozenset(op.__name__ for op in SDPA_OPS)

_ATTENTION_MODULE = re.compile(r"(Attention|Attn|SelfAttention|MultiheadAttention)", re.I)
_NORM_MODULE = re.compile(r"(Norm|RMSNorm)$|LayerNorm|GroupNorm", re.I)
_EMBED_MODULE = re.compile(r"Embedding", re.I)
#: Beam search's KV-cache reorder (Lee et al.'s KV_Cache_Reorder): the gathers that run directly
#: inside a module whose class name contains "CacheReorder" (a workload wraps its call to
#: ``Cache.reorder_cache`` in one, e.g. ``genscope.workloads.seamless.KVCacheReorder``). Only the
#: gathers count: they are the reorder's cost (one read + one write of every cached tensor).
_KV_REORDER_MODULE = re.compile(r"CacheReorder", re.I)
KV_REORDER_OPS = frozenset({"index_select", "index", "gather", "take", "_unsafe_index"})


def is_attention_module(module_type: str) -> bool:
    """Attention modules by class name (diffusers ``Attention``, ``LlamaAttention``, ...)."""
    return bool(_ATTENTION_MODULE.search(module_type)) and "Processor" not in module_type


def module_decides_category(module_type: str) -> bool:
    """Whether some op inside a module of this class gets another category than outside it
    (attention, norm, embedding and KV-reorder modules, see :func:`categorize`)."""
    return any(
        rx.search(module_type)
        for rx in (_ATTENTION_MODULE, _NORM_MODULE, _EMBED_MODULE, _KV_REORDER_MODULE)
    )


def categorize(func: torch._ops.OpOverload, module_type: str) -> str:
    """Category of one op call given the class name of its innermost module ('' if none)."""
    name = func.overloadpacket.__name__
    if name in SDPA_NAMES:
        return "attention"
    if name in KV_REORDER_OPS and _KV_REORDER_MODULE.search(module_type):
        return "kv_reorder"
    if name in CONV_OPS:
        return "conv"
    if name in ATTENTION_CORE_OPS and is_attention_module(module_type):
        return "attention"
    if name in GEMM_OPS:
        return "linear"
    if name in NORM_OPS:
        return "norm"
    if name in RESAMPLE_OPS:
        return "resample"
    if name in EMBEDDING_OPS:
        return "embedding"
    if func.is_view or name in IDENTITY_OPS:
        return "memory"
    is_pointwise = torch.Tag.pointwise in func.tags or torch.Tag.reduction in func.tags
    if is_pointwise and module_type and _NORM_MODULE.search(module_type):
        return "norm"  # RMSNorm written as pow/mean/rsqrt/mul is a norm
    if _EMBED_MODULE.search(module_type) and name in {"index_select", "index", "gather"}:
        return "embedding"
    if name in {"clone", "_to_copy", "copy_", "copy"}:
        return "memory"
    if is_pointwise:
        return "elementwise"
    if name in {"softmax", "_softmax", "_safe_softmax", "_log_softmax"}:
        return "elementwise"
    return "memory" if name in MEMORY_OPS else "other"


MEMORY_OPS = frozenset(
    {"cat", "stack", "constant_pad_nd", "index", "index_select", "gather", "scatter", "index_put",
     "index_put_", "repeat", "repeat_interleave", "flip", "roll", "contiguous", "empty",
     "empty_strided", "new_empty", "zeros", "ones", "full", "fill_", "zero_", "arange",
     "scalar_tensor", "_unsafe_index", "masked_fill_", "lift_fresh_copy", "tril", "triu",
     "new_zeros", "new_ones", "full_like", "zeros_like", "ones_like", "slice_scatter",
     "select_scatter", "_local_scalar_dense", "topk", "sort", "argmax", "multinomial",
     "randn", "rand", "randint", "normal_", "uniform_", "bernoulli_", "cumsum", "nonzero"}
)  # fmt: skip
