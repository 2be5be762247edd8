"""Levers as transforms of an op-event table, so they can be predicted on any GPU spec.

Each lever takes a table (and the target :class:`Device`) and returns a new table; the GPU model
then prices it with :func:`genscope.costmodel.gpu.predict`. A lever that does not apply to the
table (no convs for ``channels_last``, no fp32 rows for ``bf16``…) raises
:class:`LeverNotApplicable`; :func:`apply_lever` then adds the levers that do apply to the same
table and device, so the one-line error says what to try instead. A lever the GPU lacks the
hardware for (fp8 on sm80) raises :class:`LeverNotOnDevice`, whose message already names the
GPUs or dtypes that have it.

Names follow the measured ``optimize`` ladder: ``sdpa``, ``bf16``/``fp16``, ``channels_last``,
``fused_qkv``, ``compile[:mode]``, ``int8_dynamic``, ``int8_weight_only``, ``fp8``,
``static_cache``, ``batching:N``. Rows a lever adds or fuses carry these optional columns, read
by the kernel and host models:

* ``gpu_layout`` = ``nhwc`` on convs after ``channels_last`` (no NCHW transposes);
* ``gpu_host`` = ``compiled`` or ``graph`` (torch.compile without / with CUDA graphs);
* ``gpu_kernels`` = kernels a fused row launches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from genscope.costmodel.gpu import constants as C
from genscope.costmodel.gpu.device import Device, device_of
from genscope.costmodel.gpu.kernels import classify
from genscope.costmodel.hardware import HardwareSpec, get_hardware, hardware_names
from genscope.dtypes import ITEMSIZE
from genscope.errors import UserError, choices_error
from genscope.schema import parse_shapes

LeverFn = Callable[[pd.DataFrame, Device, str | None], pd.DataFrame]


class LeverNotApplicable(UserError):
    """The table has nothing the lever transforms (no convolutions, no fp32 ops, no decode
    phase…). :func:`apply_lever` re-raises it naming the levers that do apply."""


class LeverNotOnDevice(LeverNotApplicable):
    """The GPU lacks the lever's hardware (fp8 Tensor Cores, a bf16 peak). The message already
    names what has it, so :func:`apply_lever` passes it on unchanged."""


_LEVERS: dict[str, LeverFn] = {}
COMPILE_MODES: tuple[str, ...] = (
    "default",
    "reduce-overhead",
    "max-autotune",
    "max-autotune-no-cudagraphs",
)
#: Compile modes that replay CUDA graphs.
GRAPH_MODES: frozenset[str] = frozenset({"reduce-overhead", "max-autotune"})
#: Phases whose components a lever targets by default: the looped denoiser / decoder.
LOOP_PHASES: tuple[str, ...] = ("denoise", "decode")

_QKV = re.compile(r"(?:^|\.)(?:to_q|to_k|to_v|q_proj|k_proj|v_proj)$")
_LINEAR_OPS = frozenset({"aten.addmm.default", "aten.mm.default"})


def lever(name: str) -> Callable[[LeverFn], LeverFn]:
    """Register a lever transform under ``name``; registering a name twice is an error."""

    def deco(fn: LeverFn) -> LeverFn:
        if name in _LEVERS:
            raise ValueError(f"lever {name!r} registered twice")
        _LEVERS[name] = fn
        return fn

    return deco


def lever_names() -> list[str]:
    """Every registered lever, in registration order."""
    return list(_LEVERS)


def _ensure(df: pd.DataFrame) -> pd.DataFrame:
    out = df.reset_index(drop=True).copy()
    for col, default in (("gpu_layout", "nchw"), ("gpu_host", "eager")):
        if col not in out:
            out[col] = default
    if "gpu_kernels" not in out:
        out["gpu_kernels"] = np.nan
    return out


#: Loop components that are not models: the scheduler's step stays eager Python.
NOT_MODELS: frozenset[str] = frozenset({"", "scheduler"})


def _loop_components(df: pd.DataFrame) -> set[str]:
    """Model components run inside the denoise/decode loop (what compile and quantization hit)."""
    comps = df.loc[df["phase"].isin(LOOP_PHASES), "component"].dropna().astype(str)
    return set(comps) - NOT_MODELS


def _linear_mask(df: pd.DataFrame, components: Collection[str]) -> pd.Series:
    return (
        df["op"].isin(_LINEAR_OPS)
        & (df["category"] == "linear")
        & df["component"].isin(list(components))
    )


def _weight_numel(shapes: str) -> int:
    """Weight elements of an addmm/mm row: the last input shape ``[K, N]``."""
    parsed = parse_shapes(shapes)
    return int(np.prod(parsed[-1])) if parsed and parsed[-1] else 0


def _act_numel(shapes: str) -> int:
    """Activation elements of an addmm/mm row: the ``[M, K]`` input."""
    parsed = [s for s in parse_shapes(shapes) if len(s) == 2]
    return int(np.prod(parsed[0])) if parsed else 0


# -- precision -------------------------------------------------------------------------------


def _low_precision(df: pd.DataFrame, dev: Device, dtype: str) -> pd.DataFrame:
    out = _ensure(df)
    if dtype not in dev.spec.matrix_peak:
        raise LeverNotOnDevice(
            f"{dev.name} cannot run {dtype}; it has peaks for: "
            f"{', '.join(sorted(dev.spec.matrix_peak))}"
        )
    fp32 = out["dtype"] == "fp32"
    if not fp32.any():
        have = sorted(set(out["dtype"].dropna().astype(str)) - {""})
        raise LeverNotApplicable(
            f"lever {dtype}: no fp32 ops to convert (the table is {', '.join(have)})"
        )
    out.loc[fp32, "dtype"] = dtype
    for col in ("bytes_read", "bytes_written"):
        out.loc[fp32, col] = (out.loc[fp32, col] // 2).astype("int64")
    return out


@lever("bf16")
def bf16(df: pd.DataFrame, dev: Device, arg: str | None = None) -> pd.DataFrame:
    """fp32 -> bf16: Tensor-Core math and half the bytes of every converted op."""
    return _low_precision(df, dev, "bf16")


@lever("fp16")
def fp16(df: pd.DataFrame, dev: Device, arg: str | None = None) -> pd.DataFrame:
    """fp32 -> fp16: as ``bf16``."""
    return _low_precision(df, dev, "fp16")


# -- attention -------------------------------------------------------------------------------


@lever("sdpa")
def sdpa(df: pd.DataFrame, dev: Device, arg: str | None = None) -> pd.DataFrame:
    """Math attention (baddbmm -> softmax -> bmm, N² scores) -> one flash SDPA kernel.

    Needs a table traced with ``attention="math"``. The flash row does the two GEMMs' FLOPs
    and moves only Q, K, V and O; the softmax and score traffic disappear.
    """
    out = _ensure(df)
    att = out["category"] == "attention"
    starts = np.flatnonzero((att & out["op"].isin(["aten.baddbmm.default"])).to_numpy())
    if len(starts) == 0:
        raise LeverNotApplicable(
            "lever sdpa: no math attention (baddbmm/softmax/bmm) in the table; "
            "trace with attention='math' to predict the sdpa rung"
        )
    drop: list[int] = []
    ops = out["op"].to_numpy()
    cats = out["category"].to_numpy()
    for s in starts:
        j = s + 1
        while j < len(out) and not (ops[j] == "aten.bmm.default" and cats[j] == "attention"):
            j += 1
        if j >= len(out):
            continue
        shape = parse_shapes(str(out.at[s, "input_shapes"]))
        _to_flash_row(out, s, j, int(shape[1][0]) if len(shape) > 1 and shape[1] else 1)
        drop.extend(
            k
            for k in range(s + 1, j + 1)
            if cats[k] == "attention"
            or ops[k] in ("aten.empty.memory_format", "aten._softmax.default")
        )
    return out.drop(index=drop).reset_index(drop=True)


@lever("fused_attention")
def fused_attention(df: pd.DataFrame, dev: Device, arg: str | None = None) -> pd.DataFrame:
    """Softmax-free attention (HSTU's ``SiLU(Q·Kᵀ + rab)·V``) -> one fused kernel per call.

    Lee et al.'s HSTU lever is a Triton fused ragged-attention kernel: the N² scores, the
    relative bias and the pointwise activation stay on chip. Every row of one attention module
    call (between and around its two attention matmuls) becomes one row priced as a flash-class
    kernel: the two matmuls' FLOPs, Q, K, V in and O out. The Triton kernel is assumed to reach
    FlashAttention-2's ceilings; no microbenchmark of it is at hand.
    """
    out = _ensure(df)
    bmm = ((out["category"] == "attention") & (out["op"] == "aten.bmm.default")).to_numpy()
    has_softmax = out["op"].str.contains("softmax").to_numpy()
    module = out["module_path"].fillna("").astype(str).to_numpy()
    pairs: list[tuple[int, int]] = []  # (Q·Kᵀ row, A·V row) of each call, in table order
    for i in np.flatnonzero(bmm):
        if not module[i] or (pairs and i <= pairs[-1][1]):
            continue  # outside a module, or the A·V of the pair just found
        j = _second_bmm(bmm, module, i)
        if j is not None and not has_softmax[i:j].any():
            pairs.append((i, j))
    if not pairs:
        raise LeverNotApplicable(
            "lever fused_attention: no softmax-free attention (two attention bmms in one "
            "module call without a softmax) in the table; for softmax attention use sdpa"
        )
    drop: list[int] = []
    for i, j in pairs:
        lo, hi = i, j
        while lo > 0 and module[lo - 1] == module[i]:
            lo -= 1
        while hi + 1 < len(out) and module[hi + 1] == module[i]:
            hi += 1
        _to_flash_row(out, i, j, int(out.at[i, "batch"] or 1) * int(out.at[i, "heads"] or 1))
        drop.extend(k for k in range(lo, hi + 1) if k != i)
    return out.drop(index=drop).reset_index(drop=True)


def _to_flash_row(out: pd.DataFrame, first: int, second: int, bh: int) -> None:
    """Turn row ``first`` (Q·Kᵀ) into one flash kernel that also does row ``second``'s (A·V)
    FLOPs and moves only Q, K, V in and O out, over ``bh`` = batch·heads problems."""
    q, kv, d = (int(out.at[first, c] or 1) for c in ("q_len", "kv_len", "head_dim"))
    item = ITEMSIZE.get(str(out.at[first, "dtype"]), 2)
    out.at[first, "op"] = "aten.scaled_dot_product_attention"
    out.at[first, "flops"] = int(out.at[first, "flops"] + out.at[second, "flops"])
    out.at[first, "bytes_read"] = int(item * bh * d * (q + 2 * kv))
    out.at[first, "bytes_written"] = int(item * bh * q * d)
    out.at[first, "output_shapes"] = f"[{bh},{q},{d}]"
    out.at[first, "batch"], out.at[first, "heads"] = bh, 1


def _second_bmm(bmm: np.ndarray, module: np.ndarray, i: int) -> int | None:
    """The next attention bmm after row ``i`` in the same module call, if any."""
    j = i + 1
    while j < len(bmm) and module[j] == module[i]:
        if bmm[j]:
            return j
        j += 1
    return None


# -- layout and fusion -----------------------------------------------------------------------


@lever("channels_last")
def channels_last(df: pd.DataFrame, dev: Device, arg: str | None = None) -> pd.DataFrame:
    """NHWC tensors: Tensor-Core convs run without cuDNN's NCHW<->NHWC transposes."""
    out = _ensure(df)
    conv = classify(out) == "conv"
    if not conv.any():
        raise LeverNotApplicable("lever channels_last: the table has no convolutions")
    out.loc[conv.to_numpy(), "gpu_layout"] = "nhwc"
    return out


@lever("fused_qkv")
def fused_qkv(df: pd.DataFrame, dev: Device, arg: str | None = None) -> pd.DataFrame:
    """Q, K and V projections that read the same activation become one GEMM (N summed)."""
    out = _ensure(df)
    path = out["module_path"].fillna("").astype(str)
    cand = out["op"].isin(_LINEAR_OPS) & path.str.contains(_QKV)
    if not cand.any():
        raise LeverNotApplicable(
            "lever fused_qkv: no q/k/v projections (modules named to_q/to_k/to_v or "
            "q_proj/k_proj/v_proj) in the table"
        )
    parent = path.str.replace(_QKV, "", regex=True)
    drop: list[int] = []
    idx = np.flatnonzero(cand.to_numpy())
    groups: dict[tuple[str, str, int], list[int]] = {}
    for i in idx:
        act = parse_shapes(str(out.at[i, "input_shapes"]))
        act_key = str([s for s in act if len(s) == 2][:1])
        key = (parent.iat[i], act_key, int(out.at[i, "count"]))
        groups.setdefault(key, []).append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        first = members[0]
        item = ITEMSIZE.get(str(out.at[first, "dtype"]), 4)
        act_bytes = _act_numel(str(out.at[first, "input_shapes"])) * item
        n_total = sum(parse_shapes(str(out.at[m, "output_shapes"]))[0][-1] for m in members)
        m_rows = parse_shapes(str(out.at[first, "output_shapes"]))[0][0]
        out.at[first, "flops"] = int(sum(out.at[m, "flops"] for m in members))
        reads = sum(int(out.at[m, "bytes_read"]) for m in members)
        out.at[first, "bytes_read"] = int(reads - (len(members) - 1) * act_bytes)
        out.at[first, "bytes_written"] = int(sum(out.at[m, "bytes_written"] for m in members))
        out.at[first, "output_shapes"] = f"[{m_rows},{n_total}]"
        drop.extend(members[1:])
    if not drop:
        raise LeverNotApplicable("lever fused_qkv: no q/k/v projections share an input")
    return out.drop(index=drop).reset_index(drop=True)


def fuse_chains(df: pd.DataFrame, components: Collection[str]) -> pd.DataFrame:
    """Inductor-style fusion: each run of consecutive memory-bound ops (between GEMM, conv,
    attention or sync ops, within one component and repeat count) becomes one kernel.

    The fused kernel reads the first op's inputs plus every later op's reads beyond what its
    predecessor wrote (side inputs), writes the last op's output, and launches one kernel plus
    one per extra reduction (norms/softmax need their own pass). Views in compiled components
    vanish.

    Vectorised over the table (full-size traces have tens of thousands of chains): chains are
    found with array comparisons and summed with ``np.add.reduceat``, then written back in one
    assignment per column.
    """
    out = _ensure(df)
    kc = classify(out).to_numpy()
    comp = out["component"].fillna("").astype(str).to_numpy()
    inside = np.isin(comp, list(components))
    mem = (kc == "memory") & inside
    sync = out["op"].isin(C.value("host.sync_ops")).to_numpy()
    mem &= ~sync
    count = out["count"].to_numpy()
    views = (kc == "none") & inside
    keep = ~views
    rows = np.flatnonzero(mem)
    if len(rows) < 2:
        return out[keep].reset_index(drop=True)
    reductions = (
        out["category"].isin(["norm"]).to_numpy() | out["op"].str.contains("softmax").to_numpy()
    )
    prev, nxt = rows[:-1], rows[1:]
    # Consecutive memory rows join one chain when only views lie between them and they share
    # the component and the repeat count. ``not_views[k]`` counts non-view rows before row k.
    not_views = np.concatenate(([0], np.cumsum(~views)))
    joins = (
        (not_views[nxt] == not_views[prev + 1])
        & (comp[nxt] == comp[prev])
        & (count[nxt] == count[prev])
    )
    starts = np.flatnonzero(np.concatenate(([True], ~joins)))  # chain starts, indexing ``rows``
    size = np.diff(np.append(starts, len(rows)))
    multi = size > 1  # a lone memory op stays as it is
    first, last = starts[multi], (starts + size - 1)[multi]
    reads = out["bytes_read"].to_numpy()[rows]
    writes = out["bytes_written"].to_numpy()[rows]
    # a member's side input: what it reads beyond its predecessor's output (0 for a start)
    side = np.concatenate(([0], np.where(joins, np.maximum(reads[1:] - writes[:-1], 0), 0)))
    # np.add.reduceat sums each chain's slice [start, next start)
    chain_side = np.add.reduceat(side, starts)[multi]
    chain_flops = np.add.reduceat(out["flops"].to_numpy()[rows], starts)[multi]
    chain_red = np.add.reduceat(reductions[rows].astype(np.int64), starts)[multi]
    heads = rows[first]
    out.loc[heads, "bytes_read"] = reads[first] + chain_side
    out.loc[heads, "bytes_written"] = writes[last]
    out.loc[heads, "flops"] = chain_flops
    out.loc[heads, "op"] = "inductor.fused"
    out.loc[heads, "gpu_kernels"] = 1 + np.maximum(chain_red - 1, 0)
    keep[rows[np.flatnonzero(joins) + 1]] = False  # every chain member but its start
    return out[keep].reset_index(drop=True)


@lever("compile")
def compile_(df: pd.DataFrame, dev: Device, arg: str | None = None) -> pd.DataFrame:
    """torch.compile of the looped model: fused memory-bound chains, Inductor host cost, and
    CUDA graphs (one launch per step) in ``reduce-overhead``/``max-autotune``."""
    mode = arg or "default"
    if mode not in COMPILE_MODES:
        raise choices_error("compile mode", mode, COMPILE_MODES)
    comps = _loop_components(df)
    if not comps:
        raise LeverNotApplicable(
            "lever compile: the table has no denoise or decode loop to compile"
        )
    out = fuse_chains(df, comps)
    inside = out["component"].isin(list(comps))
    out.loc[inside, "gpu_host"] = "graph" if mode in GRAPH_MODES else "compiled"
    return out


# -- quantization ----------------------------------------------------------------------------


def _quantize_rows(out: pd.DataFrame, mask: pd.Series, dtype: str) -> pd.DataFrame:
    """Activation quantization before each GEMM: read the activation, write it in 1 byte."""
    src = out[mask]
    item = src["dtype"].map(ITEMSIZE).fillna(2).to_numpy()
    act = src["input_shapes"].astype(str).map(_act_numel).to_numpy(dtype=float)
    q = src.copy()
    q["op"] = f"quant.quantize_per_token_{dtype}"
    q["category"] = "elementwise"
    q["unit"] = "vector"
    q["flops"] = (2 * act).astype("int64")
    q["bytes_read"] = (act * item).astype("int64")
    q["bytes_written"] = act.astype("int64") + 4 * (act > 0)
    q["gpu_kernels"] = np.nan
    q["_order"] = q.index - 0.5
    body = out.copy()
    body["_order"] = body.index.astype(float)
    merged = pd.concat([body, q]).sort_values("_order", kind="stable")
    return merged.drop(columns="_order").reset_index(drop=True)


def _weight_bytes_to(out: pd.DataFrame, mask: pd.Series, new_item: int) -> None:
    item = out.loc[mask, "dtype"].map(ITEMSIZE).fillna(2).to_numpy()
    w = out.loc[mask, "input_shapes"].astype(str).map(_weight_numel).to_numpy()
    saved = (w * (item - new_item)).astype("int64")
    out.loc[mask, "bytes_read"] = out.loc[mask, "bytes_read"].to_numpy() - saved


def _linear_targets(df: pd.DataFrame, name: str) -> tuple[pd.DataFrame, pd.Series]:
    out = _ensure(df)
    mask = _linear_mask(out, _loop_components(out))
    if not mask.any():
        raise LeverNotApplicable(
            f"lever {name}: no linear layers in the denoise/decode loop to quantize"
        )
    return out, mask


@lever("int8_dynamic")
def int8_dynamic(df: pd.DataFrame, dev: Device, arg: str | None = None) -> pd.DataFrame:
    """Dynamic int8 (torchao): int8 weights and per-token int8 activations, int8 GEMMs."""
    out, mask = _linear_targets(df, "int8_dynamic")
    _weight_bytes_to(out, mask, 1)
    out = _quantize_rows(out, mask, "int8")
    lin = _linear_mask(out, _loop_components(out))
    out.loc[lin, "dtype"] = "int8"
    return out


@lever("int8_weight_only")
def int8_weight_only(df: pd.DataFrame, dev: Device, arg: str | None = None) -> pd.DataFrame:
    """Weight-only int8: weights read in one byte and dequantized in the GEMM; math unchanged."""
    out, mask = _linear_targets(df, "int8_weight_only")
    _weight_bytes_to(out, mask, 1)
    return out


@lever("fp8")
def fp8(df: pd.DataFrame, dev: Device, arg: str | None = None) -> pd.DataFrame:
    """FP8 (e4m3) weights and dynamic activations on sm89+ Tensor Cores."""
    if "fp8" not in dev.spec.matrix_peak:
        able = [n for n in hardware_names() if n.endswith("-local") is False and _has_fp8(n)]
        raise LeverNotOnDevice(
            f"lever fp8: {dev.name} ({dev.arch}) has no FP8 Tensor Cores; "
            f"choose one of: {', '.join(able)}"
        )
    out, mask = _linear_targets(df, "fp8")
    _weight_bytes_to(out, mask, 1)
    out = _quantize_rows(out, mask, "fp8")
    lin = _linear_mask(out, _loop_components(out))
    out.loc[lin, "dtype"] = "fp8"
    return out


def _has_fp8(name: str) -> bool:
    return "fp8" in get_hardware(name).matrix_peak


# -- decoding --------------------------------------------------------------------------------


@lever("static_cache")
def static_cache(df: pd.DataFrame, dev: Device, arg: str | None = None) -> pd.DataFrame:
    """Static KV cache: fixed shapes let each decode step replay as one CUDA graph; attention
    reads the whole preallocated cache every step."""
    out = _ensure(df)
    dec = out["phase"] == "decode"
    if not dec.any():
        raise LeverNotApplicable("lever static_cache: the table has no decode phase")
    att = dec & (out["category"] == "attention") & out["kv_len"].notna()
    if att.any():
        full = int(out.loc[att, "kv_len"].max())
        kv = out.loc[att, "kv_len"].astype(float).to_numpy()
        grow = (full / np.maximum(kv, 1.0)).clip(min=1.0)
        out.loc[att, "bytes_read"] = (out.loc[att, "bytes_read"].to_numpy() * grow).astype("int64")
        out.loc[att, "flops"] = (out.loc[att, "flops"].to_numpy() * grow).astype("int64")
        out.loc[att, "kv_len"] = full
    out.loc[dec, "gpu_host"] = "graph"
    return out


@lever("batching")
def batching(df: pd.DataFrame, dev: Device, arg: str | None = None) -> pd.DataFrame:
    """Batch N requests: activations, FLOPs and the batch dim scale by N; weights do not."""
    try:
        n = int(arg or "")
    except ValueError:
        raise UserError("lever batching needs a batch size, e.g. batching:4") from None
    if n < 2:
        raise UserError("lever batching: the batch size must be 2 or more")
    out = _ensure(df)
    lin = out["op"].isin(_LINEAR_OPS)
    item = out["dtype"].map(ITEMSIZE).fillna(4).to_numpy()
    shapes = out["input_shapes"].fillna("").astype(str)  # a row without shapes has no weights
    w = np.where(lin, shapes.map(_weight_numel).to_numpy() * item, 0)
    conv = classify(out).to_numpy() == "conv"
    wconv = np.where(
        conv,
        shapes.map(
            lambda s: int(np.prod(parse_shapes(s)[1])) if len(parse_shapes(s)) > 1 else 0
        ).to_numpy()
        * item,
        0,
    )
    weights = w + wconv
    out["bytes_read"] = (weights + (out["bytes_read"].to_numpy() - weights) * n).astype("int64")
    out["bytes_written"] = (out["bytes_written"] * n).astype("int64")
    out["flops"] = (out["flops"] * n).astype("int64")
    out["batch"] = out["batch"] * n
    out["output_shapes"] = (
        out["output_shapes"].astype(str).map(lambda s: _scale_first(s, n), na_action="ignore")
    )
    return out


def _scale_first(shapes: str, n: int) -> str:
    parsed = parse_shapes(shapes)
    if not parsed or not parsed[0]:
        return shapes
    first = (parsed[0][0] * n, *parsed[0][1:])
    return ";".join("[" + ",".join(map(str, s)) + "]" for s in (first, *parsed[1:]))


# -- stacking --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeverStep:
    """One rung: ``name[:arg]`` and the table after it (levers before it included)."""

    lever: str
    events: pd.DataFrame


def parse(text: str) -> list[tuple[str, str | None]]:
    """``"bf16,compile:max-autotune"`` -> ``[("bf16", None), ("compile", "max-autotune")]``."""
    items = []
    for raw in (p.strip() for p in text.split(",")):
        if not raw:
            continue
        name, _, arg = raw.partition(":")
        if name not in _LEVERS:
            raise choices_error("lever", name, lever_names())
        items.append((name, arg or None))
    return items


#: Levers that need an argument to be tried by :func:`applicable_levers` (any valid one does),
#: and how they are then listed.
_PROBE_ARGS: dict[str, str] = {"batching": "2"}
_PROBE_NAMES: dict[str, str] = {"batching": "batching:N"}


def applicable_levers(
    events: pd.DataFrame, spec: HardwareSpec | Device, exclude: Collection[str] = ()
) -> list[str]:
    """The levers (registration order) that apply to ``events`` on ``spec``: each is tried on
    the table, and one raising :class:`LeverNotApplicable` is left out."""
    dev = spec if isinstance(spec, Device) else device_of(spec)
    out: list[str] = []
    for name, fn in _LEVERS.items():
        if name in exclude:
            continue
        try:
            fn(events, dev, _PROBE_ARGS.get(name))
        except LeverNotApplicable:
            continue
        out.append(_PROBE_NAMES.get(name, name))
    return out


def apply_lever(
    events: pd.DataFrame, spec: HardwareSpec | Device, name: str, arg: str | None = None
) -> pd.DataFrame:
    """Apply one lever by name; unknown names raise a :class:`UserError` naming the levers.

    A lever that does not apply to ``events`` raises :class:`LeverNotApplicable` whose one line
    also names the levers that do (its ``choices`` list them for ``--json``).
    """
    if name not in _LEVERS:
        raise choices_error("lever", name, lever_names())
    dev = spec if isinstance(spec, Device) else device_of(spec)
    try:
        return _LEVERS[name](events, dev, arg)
    except LeverNotOnDevice:
        raise
    except LeverNotApplicable as err:
        others = applicable_levers(events, dev, exclude={name})
        hint = f"levers that apply here: {', '.join(others)}" if others else "no lever applies here"
        raise LeverNotApplicable(f"{err}; {hint}", others) from None


def stack(events: pd.DataFrame, spec: HardwareSpec, levers: str | Sequence[str]) -> list[LeverStep]:
    """The stacked ladder: the baseline, then each lever applied on top of the previous rung."""
    dev = device_of(spec)
    items = parse(levers if isinstance(levers, str) else ",".join(levers))
    steps = [LeverStep("baseline", events)]
    current = events
    for name, arg in items:
        current = apply_lever(current, dev, name, arg)
        steps.append(LeverStep(f"{name}:{arg}" if arg else name, current))
    return steps
