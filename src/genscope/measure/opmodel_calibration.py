"""A calibrated CPU op model: where the plain roofline misses on a CPU, and what replaces it.

The plain roofline (:mod:`genscope.costmodel.roofline`) prices an op at
``max(flops / peak, bytes / bandwidth) + dispatch_overhead``, with the peaks of ``genscope
calibrate``. On a CPU that misses in three ways, all large for the small and mid-sized ops of
real pipelines:

1. **Efficiency depends on size and shape class.** A 64×64 GEMM, a 3×3 convolution on 4
   channels or a fused CPU flash-attention call with head dim 4 run at a few percent of the
   big-GEMM peak; small elementwise ops run from cache, far *above* the DRAM copy bandwidth.
2. **Fixed per-op costs differ by op** (a oneDNN convolution call costs tens of µs, a view a
   microsecond, ``multinomial`` tens of µs) and are not the 1-element ``torch.add`` of
   ``dispatch_overhead_s``.
3. **Framework overhead between ops** (Python, module calls, diffusers/transformers glue) is
   wall time no op accounts for; on tiny models it is the largest share.

:class:`OpModel` replaces the roofline with *measured efficiency curves per shape class*. Every
microbenchmark times the op with the instrument measured mode uses for ``measured_s`` — the
host time of the dispatch-level op as genscope's op observer records it (torch.profiler when
the observer is unavailable), median over calls (for ops above a millisecond,
the process CPU time per call when smaller, which neighbours' preemption does not inflate):

* ``gemm`` (mm/addmm/bmm/baddbmm; square problems from 4² to 1024²):
  ``t = max(T_gemm(flops), T_vector(bytes))`` — the second term prices skinny,
  weight-streaming GEMMs (decode with one token); the component's library's reference price
  for the packet (see below), where there is one, replaces the curve's floor;
* ``conv1`` / ``conv3`` (1×1 and k×k convolutions, NCHW, batch 2, 4…320 channels) and
  ``conv3n`` (batch-1 k×k convolutions small enough for PyTorch's native im2col path rather
  than oneDNN, see :func:`conv_class`): ``T_conv(flops)``; a oneDNN k×k convolution adds
  ``T_weight(weight bytes)`` above its floor, from deep 3×3 convolutions on a 1×1 map
  (oneDNN reorders PyTorch's plain-layout weights on every call: 56 MB of them cost ~50 ms);
* ``sdpa`` (fused attention): ``c0 + c_s · scores + c_f · flops + c_b · batch·heads`` with
  ``scores = batch·heads·Lq·Lkv``, non-negative least squares over a (length, head dim) grid
  and a few many-slice, short-sequence points — CPU flash attention's time follows the softmax
  work as much as the FLOPs, and every (batch, head) slice has a set-up cost;
* ``norm`` (group norm, layer norm): ``T_norm(bytes)``;
* ``vector`` (everything else that moves data) and ``view`` (metadata-only ops): a per-op
  fixed cost measured for ~50 common ops at tiny size (:func:`_fixed_cost_cases`; default: the
  smallest ``torch.add``, or the median view), or inside the component's library's reference
  code (see below) where that code issues the op, plus the size-dependent part of
  ``T_vector(bytes)`` (``torch.add`` from 4 B to 200 MB: L1 to DRAM).

**In context.** A pipeline never calls one small op hundreds of times in a row, so every
microbenchmark point and per-op fixed cost under 50 µs is re-timed while all of them run in
rotation (:func:`_in_context_times`); on this VM that costs small ops 1.5–3.5x their hot-loop
time. Points from 50 µs to 2 ms (convolutions, attention, mid-sized GEMMs) are timed right
after one pass of that rotation (:func:`_after_context_times`), as they follow norms,
activations and views in a pipeline: a 64-channel 3×3 convolution on a 4×4 input takes 110 µs
in a hot loop and ~240 µs both there and inside tiny sd15.

**Machine state.** These context-sensitive figures run in 15 rounds spread over the
calibration, each round between probes of :mod:`genscope.machine.state`, and every
figure is its median over the rounds divided by each round's state factor to the power of an
exponent fitted on the reference code's rounds (library code slows ~0.6x as much, in log
terms, as the probe; :func:`genscope.machine.state.fit_exponent`): the model prices
the machine in its *reference state* (probe time ``state_probe_s``, ``state_exponent``), and
validation puts measured passes in the same state. Hot-loop points above 2 ms (full-size
models only) keep the median of three sweeps (see :func:`calibrate_op_model`).

**Reference module code.** Each model library genscope's workloads use has tiny reference
code (:class:`_Reference`: diffusers ``BasicTransformerBlock`` + ``ResnetBlock2D``, a
transformers ``LlamaDecoderLayer``), called in a plain loop (:func:`_reference_loops`). It
gives, per library, (a) the framework overhead per dispatch-level op, (process CPU time per
call − profiled op time per call) / ops per call — diffusers code runs about twice the Python
per op of a transformers decoder layer — and (b) the time of every op packet it issues, which
replaces the rotation's fixed cost of that packet for the library's components
(``fixed_by_library``): a view costs ~1.4 µs inside either library's code, in tiny sd15 and in
chameleon alike, but 4–6 µs between the rotation's cases. A component's ops get its model
library's overhead rate and prices (the mean rate, ``overhead_per_op_s``, and the rotation's
prices outside models). A run is predicted as ``Σ_ops T(op) + Σ_ops overhead(library of the
op's component)``.

Curves interpolate log-log between points (constant below the first, linear in work above the
last).

The curves depend on the thread count and the dtype, so they are stored per
``<dtype>/threads=<n>`` in the calibration itself: ``extra["op_model"]`` of the ``cpu-local``
spec written by ``genscope calibrate`` (``genscope validate --recalibrate`` refreshes them; the
validate bench re-measures them at its start). On a shared machine, calibrate in the same
session as the measurements you compare against: contention changes both.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genscope.capture.profiling import Markers, OpRecorder, attribute, events_from_profiler
from genscope.costmodel.hardware import HardwareSpec
from genscope.costmodel.opmodel import (
    Curve,
    LinearFit,
    OpModel,
    packet_name,
    stored_op_model,
)
from genscope.dtypes import TORCH_DTYPES
from genscope.machine.contention import Contention
from genscope.machine.state import ProbeLog, fit_exponent
from genscope.measure.calibrate import save_local_spec
from genscope.workloads.components import kv_cache

ProgressFn = Callable[[str, int, int], None]


# -- calibration ---------------------------------------------------------------------------------


def _recorded_ops(prof: Any) -> list[tuple[str, float]]:
    """(op packet, host seconds) of every dispatch-level op in a finished recording, in issue
    order — the same rule and instrument as measured mode's ``measured_s``."""

    return [
        (packet_name(op.op), op.host_s)
        for op in attribute(events_from_profiler(prof), Markers()).ops
    ]


def _top_level_ops(prof: Any, only: str | None = None) -> list[float]:
    """Host time of every dispatch-level op (of packet ``only``) in a finished recording."""
    return [t for name, t in _recorded_ops(prof) if only is None or name == only]


def _profile() -> Any:
    """Records ops with measured mode's instrument (the op observer, else torch.profiler)."""

    return OpRecorder("cpu")


#: Ops whose time is a fixed cost rather than bytes / bandwidth at these sizes; above it the
#: vector curve's size-dependent part is added (see :meth:`OpModel.predict_ops`).
LARGE_OP_S = 1e-3


def _op_time(fn: Callable[[], Any], budget_s: float, only: str | None = None) -> float:
    """Op-level time of one call of ``fn``, robust to preemption on a shared machine.

    The median recorded op time (the instrument of ``measured_s``, including its small per-op
    cost; the median drops calls a neighbour preempted). For ops above a millisecond, where
    every call may be preempted, the process CPU time per call of a plain loop when smaller
    (preemption does not inflate it; the Python call is negligible there).
    """
    fn()  # warm (oneDNN primitive creation, allocator)
    t0 = time.perf_counter()
    fn()
    single = max(time.perf_counter() - t0, 1e-7)
    calls = int(min(200, max(3, budget_s / single)))
    with _profile() as prof:
        for _ in range(calls):
            fn()
    times = _top_level_ops(prof, only)
    if not times:
        return math.nan
    per_call = max(1, len(times) // calls)
    grid = np.array(times[: per_call * calls]).reshape(calls, per_call).sum(axis=1)
    median = float(np.median(grid)) if len(grid) else single
    if median < LARGE_OP_S:
        return median
    c0 = time.process_time()
    for _ in range(min(calls, 5)):
        fn()
    return min(median, (time.process_time() - c0) / min(calls, 5))


#: Cases faster than this in a hot loop (the small ops of tiny pipelines) are re-timed in
#: rotation; slower ones keep their hot-loop time: their working sets would flush the caches
#: for the whole rotation, and their fixed costs are small next to them.
IN_CONTEXT_MAX_S = 50e-6
#: Rotations of :func:`_in_context_times` per calibration round (each case is timed once per
#: rotation; its figure for the round is the median over them)
ROUND_CYCLES = 10


def _op_names(fn: Callable[[], Any]) -> list[str]:
    """The packet of every op one (warm) call of ``fn`` issues, in order."""
    fn()
    with _profile() as prof:
        fn()
    return [name for name, _ in _recorded_ops(prof)]


def _ops_per_call(fn: Callable[[], Any]) -> int:
    return len(_op_names(fn))


def _in_context_times(
    cases: dict[str, tuple[Callable[[], Any], str | None]],
    cycles: int = ROUND_CYCLES,
    blocks: int = 1,
) -> dict[str, float]:
    """Op time per call of every case while all cases run *in rotation*.

    A pipeline never calls one small op 200 times in a row: between two calls of an op run
    dozens of others, so its code, branch history and data are cold-ish. Timed that way a
    tiny op costs 1.5–3.5x its hot-loop time on this class of machine, and whole tiny
    pipelines measured that much slower than hot-loop curves predict. Rotating through all
    cases gives every one the same pipeline-like context, with no workload in the loop.
    ``cases``: key -> (fn, packet counted, None = every op of the call).

    The rotations run in ``blocks`` separate recordings; each case's time is the median over
    a block's rotations, and the result the *fastest* block's (calibration asks for one block
    per round and puts the rounds in one machine state, see :class:`_RoundTimer`).
    """
    counts = {key: _ops_per_call(fn) for key, (fn, _) in cases.items()}
    per_block = max(1, cycles // blocks)
    best: dict[str, float] = {key: math.inf for key in cases}
    for _ in range(blocks):
        with _profile() as prof:
            for _ in range(per_block):
                for fn, _ in cases.values():
                    fn()
        ops = _recorded_ops(prof)
        if len(ops) != per_block * sum(counts.values()):
            raise RuntimeError(
                f"in-context microbenchmarks: {len(ops)} ops recorded, expected "
                f"{per_block * sum(counts.values())} (a case issues a varying number of ops)"
            )
        times: dict[str, list[float]] = {key: [] for key in cases}
        i = 0
        for _ in range(per_block):
            for key, (_, only) in cases.items():
                chunk = ops[i : i + counts[key]]
                i += counts[key]
                times[key].append(sum(t for name, t in chunk if only is None or name == only))
        for key, v in times.items():
            best[key] = min(best[key], float(np.median(v)))
    return best


def _fixed_cost_cases(dtype: torch.dtype) -> dict[str, Callable[[], Any]]:
    """One tiny call per op packet: its fixed (dispatch + kernel launch) cost here."""
    x, y = torch.randn(2, 8, 16).to(dtype), torch.randn(2, 8, 16).to(dtype)
    m = torch.randn(2, 16).to(dtype)
    idx = torch.tensor([0, 1])
    probs = torch.rand(2, 64)
    mask = x > 0
    emb = torch.randn(64, 16).to(dtype)
    ids = torch.tensor([[1, 2, 3]])
    return {
        # views and metadata
        "view": lambda: x.view(16, 16),
        "_unsafe_view": lambda: torch.ops.aten._unsafe_view(x, [16, 16]),
        "transpose": lambda: x.transpose(1, 2),
        "t": lambda: m.t(),
        "unsqueeze": lambda: x.unsqueeze(0),
        "squeeze": lambda: x.unsqueeze(0).squeeze(0),
        "permute": lambda: x.permute(2, 0, 1),
        "expand": lambda: m[:, None].expand(2, 4, 16),
        "slice": lambda: x[:, 1:5],
        "select": lambda: x[0],
        "split": lambda: x.split(8, dim=-1),
        "chunk": lambda: x.chunk(2, dim=-1),
        "unbind": lambda: x.unbind(0),
        "alias": lambda: torch.ops.aten.alias(x),
        "detach": lambda: x.detach(),
        # elementwise and copies
        "add": lambda: x + y,
        "mul": lambda: x * y,
        "div": lambda: x / y,
        "sub": lambda: x - y,
        "neg": lambda: -x,
        "pow": lambda: x.pow(2),
        "rsqrt": lambda: y.abs().rsqrt(),
        "exp": lambda: x.exp(),
        "silu": lambda: F.silu(x),
        "gelu": lambda: F.gelu(x),
        "sigmoid": lambda: x.sigmoid(),
        "tanh": lambda: x.tanh(),
        "where": lambda: torch.where(mask, x, y),
        "masked_fill": lambda: x.masked_fill(mask, 0.0),
        "_softmax": lambda: x.softmax(-1),
        "mean": lambda: x.mean(-1, keepdim=True),
        "sum": lambda: x.sum(-1),
        "clone": lambda: x.clone(),
        "_to_copy": lambda: x.to(torch.float64),
        "copy_": lambda: y.copy_(x),
        "cat": lambda: torch.cat([x, y], dim=-1),
        "stack": lambda: torch.stack([x, y]),
        "index": lambda: x[idx],
        "index_select": lambda: x.index_select(0, idx),
        "gather": lambda: m.gather(-1, idx[None].expand(2, 2)),
        "embedding": lambda: F.embedding(ids, emb),
        "arange": lambda: torch.arange(16),
        "full": lambda: torch.full((2, 8), 1.0),
        "zeros": lambda: torch.zeros(2, 8),
        "empty": lambda: torch.empty(2, 8),
        "sort": lambda: probs.sort(dim=-1, descending=True),
        "topk": lambda: probs.topk(4, dim=-1),
        "argmax": lambda: probs.argmax(-1),
        "cumsum": lambda: probs.cumsum(-1),
        "multinomial": lambda: torch.multinomial(probs, 1),
        "triu": lambda: m.triu(),
        "constant_pad_nd": lambda: F.pad(x, (1, 1)),
        "upsample_nearest2d": lambda: F.interpolate(x[None], scale_factor=2.0),
    }


#: (channels, height = width) of the batch-1 native-path convolution points, all at most
#: NATIVE_CONV_MAX_NUMEL input elements
_NATIVE_CONV_SIZES = ((4, 8), (16, 8), (16, 16), (32, 16), (64, 16), (320, 8))


#: channels of the weight-bound convolution points (3×3 weights of 0.15 to 56 MB in fp32)
_WEIGHT_CONV_CHANNELS = (64, 160, 320, 640, 1280)


def _cases(dtype: torch.dtype, quick: bool) -> dict[str, list[tuple[float, Callable[[], Any]]]]:
    """(work, fn) microbenchmarks per class; fn issues exactly one top-level op."""

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape).to(dtype)

    cases: dict[str, list[tuple[float, Callable[[], Any]]]] = {}
    sizes = (8, 32, 128, 512) if quick else (4, 16, 48, 128, 256, 512, 1024)
    gemm = []
    for n in sizes:
        a, b = r(n, n), r(n, n)
        gemm.append((2.0 * n**3, lambda a=a, b=b: torch.mm(a, b)))
    cases["gemm"] = gemm
    conv_sizes = (
        ((4, 8), (32, 16), (128, 32))
        if quick
        else ((4, 8), (16, 8), (32, 16), (64, 32), (128, 32), (320, 32), (320, 64))
    )
    for k, name in ((1, "conv1"), (3, "conv3")):
        rows = []
        for c, hw in conv_sizes:
            x, w = r(2, c, hw, hw), r(c, c, k, k)
            bias = r(c)
            flops = 2.0 * 2 * c * c * k * k * hw * hw
            rows.append((flops, lambda x=x, w=w, b=bias, k=k: F.conv2d(x, w, b, padding=k // 2)))
        cases[name] = rows
    # batch-1 k×k convolutions small enough for PyTorch's native path (see conv_class)
    native = []
    for c, hw in ((4, 8), (16, 16), (64, 16)) if quick else _NATIVE_CONV_SIZES:
        x, w, bias = r(1, c, hw, hw), r(c, c, 3, 3), r(c)
        flops = 2.0 * c * c * 9 * hw * hw
        native.append((flops, lambda x=x, w=w, b=bias: F.conv2d(x, w, b, padding=1)))
    cases["conv3n"] = native
    # deep 3×3 convolutions on a 1×1 map: almost no FLOPs, all weight handling. PyTorch keeps
    # weights in plain NCHW and oneDNN reorders them on every call, so a 1280-channel conv on
    # a 4×4 map (56 MB of weights) takes ~70 ms where its FLOPs alone take ~10 ms
    weight = []
    for c in (64, 320, 1280) if quick else _WEIGHT_CONV_CHANNELS:
        x, w, bias = r(2, c, 1, 1), r(c, c, 3, 3), r(c)
        weight.append(
            (
                float(w.numel() * w.element_size()),
                lambda x=x, w=w, b=bias: F.conv2d(x, w, b, padding=1),
            )
        )
    cases["conv_weight"] = weight
    sdpa = []
    grid = (
        ((16, 8), (64, 64), (256, 8))
        if quick
        else (
            (16, 8),
            (16, 64),
            (64, 8),
            (64, 64),
            (256, 8),
            (256, 64),
            (1024, 8),
            (1024, 64),
            (2048, 64),
        )
    )
    # (batch, seq, head dim) with 8 heads; the batch-256/512 points are temporal-attention-like
    grid = tuple((2, seq, d) for seq, d in grid) + (
        ((256, 4, 8),) if quick else ((256, 4, 8), (512, 4, 8), (256, 16, 8), (256, 4, 64))
    )
    for batch, seq, d in grid:
        q, kk, v = r(batch, 8, seq, d), r(batch, 8, seq, d), r(batch, 8, seq, d)
        scores = batch * 8.0 * seq * seq
        sdpa.append(
            (
                (scores, 2.0 * scores * d * 2, batch * 8.0),
                lambda q=q, k=kk, v=v: F.scaled_dot_product_attention(q, k, v),
            )
        )
    # work = (score elements, FLOPs, (batch, head) slices): fitted linearly, see LinearFit
    cases["sdpa"] = sdpa
    vec_n = (1, 4096, 2**18) if quick else (1, 256, 4096, 2**16, 2**18, 2**20, 2**22, 2**24)
    vector = []
    for n in vec_n:
        a, b = r(n), r(n)
        vector.append((3.0 * n * a.element_size(), lambda a=a, b=b: torch.add(a, b)))
    cases["vector"] = vector
    norm = []
    for c, hw in (
        ((32, 4), (64, 16), (128, 32))
        if quick
        else ((32, 4), (64, 8), (64, 16), (128, 32), (320, 32), (320, 64), (128, 256))
    ):
        x = r(2, c, hw, hw)
        gn = nn.GroupNorm(32, c).to(dtype)
        norm.append((2.0 * x.numel() * x.element_size(), lambda x=x, gn=gn: gn(x)))
    cases["norm"] = norm
    return cases


class _Reference(nn.Module):
    """Typical model-library module code, for the framework-overhead figure: a diffusers
    ``ResnetBlock2D``, ``Transformer2DModel`` (group norm, projections and a
    ``BasicTransformerBlock``: self + cross attention, GEGLU), ``Downsample2D`` and
    ``Upsample2D`` in a row, as in every diffusers UNet stage; and a transformers
    ``LlamaDecoderLayer`` decoding one token against a 16-token KV cache, the loop
    autoregressive models spend their time in (a 16-token call without a cache ran 6 % more
    Python and 18 % more op time per op); all tiny so that op time is small next to
    overhead. (The
    transformer block alone, with the resnet, ran ~1.3x less Python per op than this stage:
    diffusers pipelines pay for their larger code footprint.) Falls back to ``torch.nn``
    blocks if those classes cannot be built."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.tokens = torch.randn(2, 16, 32).to(dtype)
        self.context = torch.randn(2, 7, 32).to(dtype)
        self.image = torch.randn(2, 32, 8, 8).to(dtype)
        self.temb = torch.randn(2, 64).to(dtype)
        try:
            self.blocks = self._library_blocks()
        except Exception:  # library API drift: plain torch.nn stands in
            self.blocks = None
            self.tf = nn.TransformerEncoderLayer(
                32, 2, 64, dropout=0.0, batch_first=True, norm_first=True
            )
            self.norm = nn.GroupNorm(8, 32)
            self.conv = nn.Conv2d(32, 32, 3, padding=1)
        self.to(dtype).eval()

    def _library_blocks(self) -> nn.ModuleDict:
        from diffusers.models import Transformer2DModel
        from diffusers.models.downsampling import Downsample2D
        from diffusers.models.resnet import ResnetBlock2D
        from diffusers.models.upsampling import Upsample2D
        from transformers import DynamicCache, LlamaConfig
        from transformers.models.llama.modeling_llama import (
            LlamaDecoderLayer,
            LlamaRotaryEmbedding,
        )

        cfg = LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=2,
            num_key_value_heads=2,
            num_hidden_layers=1,
            vocab_size=64,
        )
        cfg._attn_implementation = "sdpa"
        blocks = nn.ModuleDict(
            {
                "transformer": Transformer2DModel(
                    num_attention_heads=2,
                    attention_head_dim=16,
                    in_channels=32,
                    cross_attention_dim=32,
                    norm_num_groups=8,
                ),
                "down": Downsample2D(32, use_conv=True),
                "up": Upsample2D(32, use_conv=True),
                "resnet": ResnetBlock2D(
                    in_channels=32, out_channels=32, temb_channels=64, groups=8
                ),
                "llama": LlamaDecoderLayer(cfg, 0),
                "rope": LlamaRotaryEmbedding(cfg),
            }
        )
        # a 16-token KV cache; each call decodes one token against it and crops it back
        blocks.to(self.tokens.dtype).eval()
        prompt = self.tokens.shape[1]
        self.cache = DynamicCache()
        self.new_token = self.tokens[:, :1].clone()
        self.new_position = torch.tensor([[prompt]])
        self.new_cache_position = torch.tensor([prompt])
        with torch.no_grad():
            blocks["llama"](
                self.tokens,
                position_embeddings=blocks["rope"](self.tokens, torch.arange(prompt)[None]),
                attention_mask=None,
                **kv_cache(blocks["llama"], self.cache),
                use_cache=True,
                cache_position=torch.arange(prompt),
            )
        self.blocks = blocks
        self._decode_step()  # API drift shows here, where the fallback can still take over
        return blocks

    def _decode_step(self) -> Any:
        b = self.blocks
        assert b is not None
        out = b["llama"](
            self.new_token,
            position_embeddings=b["rope"](self.new_token, self.new_position),
            attention_mask=None,
            **kv_cache(b["llama"], self.cache),
            use_cache=True,
            cache_position=self.new_cache_position,
        )
        self.cache.crop(-1)
        return out

    def _diffusers_stage(self) -> torch.Tensor:
        b = self.blocks
        assert b is not None
        h = b["resnet"](self.image, self.temb)
        h = b["transformer"](h, encoder_hidden_states=self.context, return_dict=False)[0]
        return b["up"](b["down"](h))

    def parts(self) -> dict[str, Callable[[], Any]]:
        """The reference code per model library (``torch`` for the plain stand-ins): their
        Python per op differs (diffusers blocks ~2x transformers decoder layers here)."""
        if self.blocks is None:
            return {
                "torch": lambda: (
                    self.tf(self.tokens),
                    self.conv(F.silu(self.norm(self.image))),
                )
            }
        return {
            "diffusers": self._diffusers_stage,
            "transformers": self._decode_step,
        }


def _op_grid_after(
    fn: Callable[[], Any], context: Callable[[], Any] | None, n_ctx: int, calls: int
) -> np.ndarray:
    """Recorded op times of ``calls`` calls of ``fn``, each after one call of ``context`` (if
    any, ``n_ctx`` ops, neither kept nor counted): an array of calls × ops of ``fn``."""
    with _profile() as prof:
        for _ in range(calls):
            if context is not None:
                context()
            fn()
    times = [t for _, t in _recorded_ops(prof)]
    per_iter = len(times) // calls
    return np.array(times[: per_iter * calls]).reshape(calls, per_iter)[:, n_ctx:]


#: Cases between IN_CONTEXT_MAX_S and this in a hot loop (convolutions, attention, mid-sized
#: GEMMs and norms of tiny and small pipelines) are timed after the small-op rotation
#: (:func:`_after_context_times`); slower ones keep their hot-loop time.
AFTER_CONTEXT_MAX_S = 2e-3


def _after_context_times(
    cases: dict[str, Callable[[], Any]], context: Callable[[], Any], calls: int, blocks: int
) -> dict[str, float]:
    """Op time per call of every case when each call follows one pass of ``context``.

    In a pipeline a convolution or an attention call follows norms, activations and views,
    never itself: here a 64-channel 3×3 convolution on a [2, 64, 4, 4] input takes 110 µs in
    a hot loop, 240 µs inside tiny sd15 and 235–245 µs right after the small-op rotation.
    Putting such ops into the rotation instead would make every small op about twice as dear
    (an 8 µs view). The median over ``calls``, the fastest of ``blocks`` (interleaved over the
    cases, so that they sample the VM's fast and slow spells alike).
    """
    n_ctx = _ops_per_call(context)
    best = dict.fromkeys(cases, math.inf)
    for fn in cases.values():
        fn()
    for _ in range(blocks):
        for key, fn in cases.items():
            grid = _op_grid_after(fn, context, n_ctx, calls)
            best[key] = min(best[key], float(np.median(grid, axis=0).sum()))
    return best


#: One round of the reference code, per library: (CPU time per call, op time per call, the
#: price of every op packet it issues)
ReferenceRound = dict[str, tuple[float, float, dict[str, float]]]


class _ReferenceTimer:
    """Per library, on the :class:`_Reference` code of that library called in a plain loop:
    the framework overhead per op, (CPU time per call − op time per call) / ops per call,
    and the time of every op packet it issues (median over its calls).

    The packet times price a library's small ops better than any rotation of isolated
    microbenchmarks: a view costs ~1.4 µs inside diffusers or transformers code, in tiny sd15
    and in chameleon alike, and 4–6 µs between the rotation's cases. CPU time (not wall) keeps
    neighbours' preemption out, and
    every figure is a median over rounds (:meth:`round`: one plain and one recorded loop per
    library), each first divided by its round's machine-state factor.
    """

    def __init__(self, dtype: torch.dtype, calls: int) -> None:
        self.calls = calls
        self.parts = _Reference(dtype).parts()
        self.names: dict[str, list[str]] = {}
        for library, part in self.parts.items():
            for _ in range(3):
                part()
            self.names[library] = _op_names(part)

    def round(self) -> ReferenceRound:
        out: ReferenceRound = {}
        for library, part in self.parts.items():
            c0 = time.process_time()
            for _ in range(self.calls):
                part()
            cpu = (time.process_time() - c0) / self.calls
            per_position = np.median(_op_grid_after(part, None, 0, self.calls), axis=0)
            positions = np.array(self.names[library])
            prices = {
                name: float(np.median(per_position[positions == name]))
                for name in set(self.names[library])
            }
            out[library] = (cpu, float(per_position.sum()), prices)
        return out

    def result(
        self, rounds: list[ReferenceRound], states: list[float]
    ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        """Overhead per op and packet prices per library: medians over ``rounds``, each
        divided by its state factor (``states``)."""
        overhead: dict[str, float] = {}
        prices: dict[str, dict[str, float]] = {}
        pairs = list(zip(rounds, states, strict=True))
        for lib, names in self.names.items():
            cpu = statistics.median(r[lib][0] / f for r, f in pairs)
            ops = statistics.median(r[lib][1] / f for r, f in pairs)
            overhead[lib] = max(0.0, (cpu - ops) / max(len(names), 1))
            prices[lib] = {
                name: statistics.median(r[lib][2][name] / f for r, f in pairs)
                for name in set(names)
            }
        return overhead, prices


def _reference_loops(
    dtype: torch.dtype, quick: bool
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """:class:`_ReferenceTimer`'s figures from back-to-back rounds (no state probe)."""
    calls, rounds = (5, 3) if quick else (10, 8)
    with torch.no_grad():
        timer = _ReferenceTimer(dtype, calls)
        results = [timer.round() for _ in range(rounds)]
    return timer.result(results, [1.0] * rounds)


#: Hot-loop sweeps over every case point; a point slower than AFTER_CONTEXT_MAX_S keeps the
#: median of its hot-loop times (see calibrate_op_model).
SWEEPS = 3
#: Rounds of the context-sensitive timings (in context, after the rotation, reference code),
#: spread between the sweeps; each of those figures is a median over the rounds.
ROUNDS = 15


def _hot_times(
    cases: dict[str, list[tuple[Any, Callable[[], Any]]]],
    budget_s: float,
    tick: Callable[[str], None],
) -> dict[str, list[float]]:
    """Every case point's time in a hot loop (:func:`_op_time`). No state probe here: after
    the 200 MB cases a probe runs up to 6x slow (the allocator, not the machine's state)."""
    hot: dict[str, list[float]] = {}
    for name, items in cases.items():
        tick(name)
        hot[name] = [_op_time(fn, budget_s) for _, fn in items]
    return hot


class _RoundTimer:
    """The context-sensitive timings, one round at a time, each round between state probes.

    Small case points (under IN_CONTEXT_MAX_S in a hot loop) and the per-op fixed costs are
    timed in rotation with each other (:func:`_in_context_times`), mid-sized points right
    after a pass of that rotation (:func:`_after_context_times`), and the reference code in a
    plain loop (:class:`_ReferenceTimer`). Rounds are spread over the calibration and every
    figure is its median over them in the reference machine state (see
    :class:`~genscope.machine.state.ProbeLog`).
    """

    def __init__(
        self,
        tdtype: torch.dtype,
        cases: dict[str, list[tuple[Any, Callable[[], Any]]]],
        hot: dict[str, list[float]],
        quick: bool,
    ) -> None:
        self.rotation: dict[str, tuple[Callable[[], Any], str | None]] = {
            f"fixed:{name}": (fn, name) for name, fn in _fixed_cost_cases(tdtype).items()
        }
        self.mid: dict[str, Callable[[], Any]] = {}
        for name, items in cases.items():
            for i, ((_, fn), t) in enumerate(zip(items, hot[name], strict=True)):
                if math.isfinite(t) and t < IN_CONTEXT_MAX_S:
                    self.rotation[f"{name}:{i}"] = (fn, None)
                elif IN_CONTEXT_MAX_S <= t < AFTER_CONTEXT_MAX_S:
                    self.mid[f"{name}:{i}"] = fn
        self.calls = 3 if quick else 8
        self.reference = _ReferenceTimer(tdtype, 5 if quick else 10)
        self.timed: list[tuple[dict[str, float], int]] = []
        self.reference_rounds: list[tuple[ReferenceRound, int]] = []

    def _context(self) -> None:
        for fn, _ in self.rotation.values():
            fn()

    def round(self, probed: ProbeLog) -> None:
        self.timed.append((_in_context_times(self.rotation, ROUND_CYCLES, 1), probed.after()))
        mid = _after_context_times(self.mid, self._context, self.calls, 1)
        self.timed.append((mid, probed.after()))
        self.reference_rounds.append((self.reference.round(), probed.after()))

    def result(
        self, probed: ProbeLog
    ) -> tuple[dict[str, float], dict[str, float], dict[str, dict[str, float]], float, str]:
        """(figure per key, overhead per op per library, packet prices per library, state
        exponent, its source): every timing divided by its state factor ** the exponent,
        which is fitted on the reference code's rounds."""
        rounds = [r for r, _ in self.reference_rounds]
        factors = [probed.factor(at) for _, at in self.reference_rounds]
        per_call = {lib: [r[lib][0] for r in rounds] for lib in self.reference.names}
        exponent, source = fit_exponent(per_call, factors)
        by_key: dict[str, list[float]] = {}
        for timed, at in self.timed:
            for key, t in timed.items():
                by_key.setdefault(key, []).append(t / probed.factor(at) ** exponent)
        figures = {key: statistics.median(v) for key, v in by_key.items()}
        states = [f**exponent for f in factors]
        return figures, *self.reference.result(rounds, states), exponent, source


def calibrate_op_model(
    dtype: str = "fp32",
    *,
    quick: bool = False,
    sweeps: int | None = None,
    rounds: int | None = None,
    progress: ProgressFn | None = None,
) -> OpModel:
    """Run the microbenchmarks on the CPU with torch's current thread count.

    ``sweeps`` (default 3; quick: 1) hot-loop sweeps over every case point, with ``rounds``
    (default 15; quick: 2) rounds of :class:`_RoundTimer` spread evenly between them. Points
    slower than AFTER_CONTEXT_MAX_S take their median over the sweeps: they only occur in
    long passes (full-size models, seconds each), which average the VM's fast and slow
    spells. The others, the fixed costs and the reference-code figures are timed between
    machine-state probes and divided by their state factor (see
    :class:`~genscope.machine.state.ProbeLog`), medians over the rounds: they price
    small pipelines, whose passes validation puts in the same reference state (its probe
    time is stored as ``state_probe_s``).
    """
    from datetime import UTC, datetime

    tdtype = TORCH_DTYPES[dtype]
    n_sweeps = sweeps or (1 if quick else SWEEPS)
    n_rounds = rounds or (2 if quick else ROUNDS)
    contention = Contention()
    started = time.perf_counter()
    cases = _cases(tdtype, quick)
    total = n_sweeps * len(cases) + n_rounds
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        if progress is not None:
            progress(label, done, total)
        done += 1

    budget = 0.01 if quick else 0.05
    probed = ProbeLog()
    with torch.no_grad():
        hot_runs = [_hot_times(cases, budget, tick)]
        timer = _RoundTimer(tdtype, cases, hot_runs[0], quick)
        for sweep in range(n_sweeps):
            if sweep:
                hot_runs.append(_hot_times(cases, budget, tick))
            for _ in range(n_rounds // n_sweeps + (sweep < n_rounds % n_sweeps)):
                tick("in context, after the rotation, reference code")
                timer.round(probed)
    timed, overhead, by_library, exponent, exponent_source = timer.result(probed)
    hot = {name: np.median([h[name] for h in hot_runs], axis=0) for name in cases}
    secs = {
        name: [timed.get(f"{name}:{i}", float(t)) for i, t in enumerate(points)]
        for name, points in hot.items()
    }
    fixed = {
        key.removeprefix("fixed:"): t
        for key, t in timed.items()
        if key.startswith("fixed:") and math.isfinite(t) and t > 0
    }
    views = ("view", "transpose", "t", "unsqueeze", "slice", "select", "permute", "expand")
    curves: dict[str, Curve] = {}
    sdpa_fit = LinearFit([0.0, 0.0, 0.0, 0.0])
    for name, items in cases.items():
        work = [w for w, _ in items]
        if name == "sdpa":
            sdpa_fit = LinearFit.fit(work, secs[name])
            continue
        # enforce monotone non-decreasing time in work (noise on a shared machine)
        curves[name] = Curve(work, list(np.maximum.accumulate(secs[name])))
    busy = contention.finish()
    return OpModel(
        dtype=dtype,
        threads=torch.get_num_threads(),
        curves=curves,
        sdpa=sdpa_fit,
        fixed_s=fixed,
        view_s=statistics.median(fixed[v] for v in views),
        overhead_per_op_s=statistics.mean(overhead.values()),
        overhead_by_library=overhead,
        fixed_by_library=by_library,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        calibration_s=time.perf_counter() - started,
        contention=busy,
        state_probe_s=probed.reference(),
        state_factors=probed.factors(),
        state_exponent=exponent,
        state_exponent_source=exponent_source,
    )


def store_op_model(spec: Any, model: OpModel) -> Any:
    """Write ``model`` into the measured spec's ``extra["op_model"]`` (atomic save)."""

    d = spec.to_dict()
    extra = dict(d.get("extra") or {})
    models = dict(extra.get("op_model") or {})
    models[model.key] = model.to_dict()
    extra["op_model"] = models
    d["extra"] = extra
    d["sources"] = dict(d["sources"]) | {
        "extra.op_model": "genscope validate: per-class op-time curves and framework overhead "
        "per op, microbenchmarked with measured mode's op recorder (see "
        "genscope.measure.opmodel_calibration)"
    }
    d["status"] = dict(d["status"]) | {"extra.op_model": "measured"}
    new = HardwareSpec.from_dict(d)
    save_local_spec(new)
    return new


def ensure_op_model(
    spec: Any, dtype: str, *, recalibrate: bool = False, progress: ProgressFn | None = None
) -> tuple[OpModel, Any]:
    """The stored op model for (dtype, current threads), calibrating and storing it if needed."""
    threads = torch.get_num_threads()
    model = None if recalibrate else stored_op_model(spec, dtype, threads)
    if model is None:
        model = calibrate_op_model(dtype, progress=progress)
        spec = store_op_model(spec, model)
    return model, spec
