"""Hardware registry: datasheet GPU specs shipped with genscope, plus specs measured here.

A roofline is only as credible as its ceilings, so every number in a :class:`HardwareSpec`
carries a source (URL or measurement recipe) and a status (``cross-checked``,
``unverified: ...`` or ``measured``). Datasheet specs live in ``hardware_specs.json`` next to
this module; measured specs (``cpu-local``, ``cuda-local``) are written by ``genscope
calibrate`` into :func:`genscope.paths.hardware_dir`.

Conventions (also recorded in the JSON):

* ``matrix_peak`` holds *dense* Tensor-Core/GEMM peaks. NVIDIA quotes TF32/BF16/FP16/FP8/INT8
  with 2:4 sparsity; dense = sparse / 2, and the sparse figures sit in
  ``extra["matrix_peak_sparse"]``.
* ``matrix_peak["fp32"]`` is the plain FP32 peak: PyTorch does not use TF32 for fp32 matmuls
  by default. The TF32 rate is ``matrix_peak["tf32"]``.
* ``vector_peak`` is the non-Tensor-Core ceiling for norms, softmax and elementwise ops.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

from genscope import paths
from genscope.errors import UserError, choices_error, clip

Unit = Literal["matrix", "vector"]
Kind = Literal["datasheet", "measured"]
UNITS: tuple[str, ...] = get_args(Unit)
KINDS: tuple[str, ...] = get_args(Kind)

#: dtype keys a spec may hold, in display order.
DTYPES: tuple[str, ...] = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8")

#: Names that resolve to measured specs in ``paths.hardware_dir()`` rather than the datasheet file.
LOCAL_NAMES: tuple[str, ...] = ("cpu-local", "cuda-local")

#: Vector peaks that may fall back to the vector fp32 peak when a spec has no figure of its own.
#: Datasheets rarely list non-Tensor-Core BF16/FP16, and inventing one (e.g. 2x fp32) would be
#: wrong on A100, where vector BF16 and FP16 differ. fp32 is the conservative floor: the
#: hardware runs half-precision elementwise math at least as fast as fp32.
#: fp64 (small RoPE tables in flux and cogvideox) falls back to fp32 too: an optimistic bound
#: for those few ops, better than refusing a measured spec (``calibrate`` measures fp32/bf16).
VECTOR_FALLBACK: dict[str, str] = {"bf16": "fp32", "fp16": "fp32", "fp64": "fp32"}
#: Matrix peaks that may fall back (fp64 only, as above; half precision is checked per run).
MATRIX_FALLBACK: dict[str, str] = {"fp64": "fp32"}

#: Spellings accepted by :meth:`HardwareSpec.peak`, so callers can pass ``str(torch_dtype)``.
DTYPE_ALIASES: dict[str, str] = {
    "float64": "fp64",
    "double": "fp64",
    "float32": "fp32",
    "float": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float8_e4m3fn": "fp8",
    "float8_e5m2": "fp8",
    "float8_e4m3fnuz": "fp8",
    "float8_e5m2fnuz": "fp8",
}

_SPECS_FILE = "hardware_specs.json"


def normalize_dtype(dtype: object) -> str:
    """``torch.bfloat16``, ``"bfloat16"``, ``"BF16"`` -> ``"bf16"``; unknown names pass through."""
    key = str(dtype).strip().lower().removeprefix("torch.")
    return DTYPE_ALIASES.get(key, key)


@dataclass(frozen=True)
class HardwareSpec:
    """Peaks, bandwidth and capacity of one device, each number with its source and status."""

    name: str
    description: str
    kind: Kind
    matrix_peak: dict[str, float]
    vector_peak: dict[str, float]
    mem_bw: float
    mem_bytes: int
    dispatch_overhead_s: float
    sources: dict[str, str]  # dotted field path -> URL or recipe; a parent path covers children
    status: dict[str, str]  # "cross-checked" | "unverified: why" | "measured" | "input"
    extra: dict[str, Any] = field(default_factory=dict)

    # -- ceilings ----------------------------------------------------------------------------

    def peak_field(self, dtype: str, unit: Unit) -> str:
        """The field :meth:`peak` reads, e.g. ``"vector_peak.fp32"`` when bf16 falls back.

        Exposed so reports can say *which* number a prediction used, fallbacks included.
        """
        if unit not in UNITS:
            raise choices_error("compute unit", unit, UNITS)
        key = normalize_dtype(dtype)
        table = self.matrix_peak if unit == "matrix" else self.vector_peak
        if key in table:
            return f"{unit}_peak.{key}"
        fallback = (VECTOR_FALLBACK if unit == "vector" else MATRIX_FALLBACK).get(key)
        if fallback in table:
            return f"{unit}_peak.{fallback}"
        known = ", ".join(d for d in DTYPES if d in table) or "none"
        hint = ""
        if fallback is not None:  # name the fallback only when it is the one that is missing
            hint = f" ({key} falls back to {fallback}, and {self.name} has no {unit} {fallback})"
        raise UserError(
            f"{self.name}: no {unit} peak for dtype {clip(repr(dtype))}; known {unit} dtypes: "
            f"{known}{hint}"
        )

    def peak(self, dtype: str, unit: Unit) -> float:
        """Dense peak in FLOP/s for ``dtype`` on ``unit`` (``"matrix"`` or ``"vector"``).

        ``matrix`` fp32 is the plain FP32 peak (PyTorch keeps fp32 matmuls off TF32 by default).
        ``vector`` bf16/fp16/fp64 and ``matrix`` fp64 fall back to the fp32 peak when the spec
        has no figure of its own (see :data:`VECTOR_FALLBACK`, :data:`MATRIX_FALLBACK`);
        :meth:`peak_field` tells you if that happened.
        Raises :class:`UserError` naming the dtypes the spec knows.
        """
        table, key = self.peak_field(dtype, unit).split(".", 1)
        return (self.matrix_peak if table == "matrix_peak" else self.vector_peak)[key]

    def ridge(self, dtype: str = "bf16", unit: Unit = "matrix") -> float:
        """Arithmetic intensity (FLOP/byte) above which the roofline is compute-bound."""
        return self.peak(dtype, unit) / self.mem_bw

    # -- provenance --------------------------------------------------------------------------

    def number_fields(self) -> dict[str, float]:
        """Every number the spec holds, keyed by dotted path, e.g. ``extra.max_power_w``."""
        out: dict[str, float] = {}
        for key, value in self.matrix_peak.items():
            out[f"matrix_peak.{key}"] = value
        for key, value in self.vector_peak.items():
            out[f"vector_peak.{key}"] = value
        out["mem_bw"] = self.mem_bw
        out["mem_bytes"] = self.mem_bytes
        out["dispatch_overhead_s"] = self.dispatch_overhead_s
        out.update(_numeric_leaves(self.extra, "extra"))
        return out

    def source_of(self, path: str) -> str | None:
        """Source of the number at ``path``, or of its nearest documented parent."""
        return _lookup(self.sources, path)

    def status_of(self, path: str) -> str | None:
        """Status of the number at ``path``, or of its nearest documented parent."""
        return _lookup(self.status, path)

    def status_summary(self) -> str:
        """One word for tables: ``measured``, ``cross-checked``, or the count left unverified.

        Only the roofline inputs count (peaks, bandwidth, capacity); the 0.0 dispatch
        placeholder of datasheet GPUs and ``extra`` are listed in the per-spec view instead.
        """
        core = [p for p in self.number_fields() if p.split(".")[0] in _CORE_FIELDS]
        states = [self.status_of(p) or "unverified: no status" for p in core]
        verified = sorted({s for s in states if not s.startswith("unverified")})
        unverified = len(states) - sum(s in verified for s in states)
        if not verified:
            return "unverified"
        base = "/".join(verified)
        return f"{base}, {unverified} unverified" if unverified else base

    # -- (de)serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; :meth:`from_dict` inverts it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HardwareSpec:
        """Build and validate a spec; a bad field raises :class:`UserError` naming it."""
        name = d.get("name", "<unnamed>") if isinstance(d, dict) else "<not a dict>"
        if not isinstance(d, dict):
            raise UserError(f"hardware spec {name}: expected a JSON object, got {type(d).__name__}")
        missing = [f for f in _REQUIRED if f not in d]
        if missing:
            raise UserError(f"hardware spec {name!r}: missing field(s) {', '.join(missing)}")
        if d["kind"] not in KINDS:
            raise UserError(
                f"hardware spec {name!r}: kind {d['kind']!r} is not one of {', '.join(KINDS)}"
            )
        spec = cls(
            name=str(d["name"]),
            description=str(d["description"]),
            kind=d["kind"],
            matrix_peak=_peak_table(name, "matrix_peak", d["matrix_peak"]),
            vector_peak=_peak_table(name, "vector_peak", d["vector_peak"]),
            mem_bw=_positive(name, "mem_bw", d["mem_bw"]),
            mem_bytes=int(_positive(name, "mem_bytes", d["mem_bytes"])),
            dispatch_overhead_s=_positive(
                name, "dispatch_overhead_s", d["dispatch_overhead_s"], allow_zero=True
            ),
            sources={str(k): str(v) for k, v in dict(d["sources"]).items()},
            status={str(k): str(v) for k, v in dict(d["status"]).items()},
            extra=copy.deepcopy(dict(d.get("extra") or {})),
        )
        return spec


_REQUIRED = (
    "name",
    "description",
    "kind",
    "matrix_peak",
    "vector_peak",
    "mem_bw",
    "mem_bytes",
    "dispatch_overhead_s",
    "sources",
    "status",
)
_CORE_FIELDS = ("matrix_peak", "vector_peak", "mem_bw", "mem_bytes")


def _positive(name: str, path: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"hardware spec {name!r}: {path} must be a number, got {value!r}")
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise UserError(f"hardware spec {name!r}: {path} must be finite and {bound}, got {value!r}")
    return float(value)


def _peak_table(name: str, path: str, table: object) -> dict[str, float]:
    if not isinstance(table, dict):
        raise UserError(f"hardware spec {name!r}: {path} must be an object of dtype -> FLOP/s")
    out: dict[str, float] = {}
    for key, value in table.items():
        if key not in DTYPES:
            raise choices_error(f"dtype in {name}.{path}", key, DTYPES)
        out[key] = _positive(name, f"{path}.{key}", value)
    return out


def _numeric_leaves(obj: object, prefix: str) -> Iterator[tuple[str, float]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _numeric_leaves(value, f"{prefix}.{key}")
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            yield from _numeric_leaves(value, f"{prefix}.{i}")
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        yield prefix, obj


def _lookup(table: dict[str, str], path: str) -> str | None:
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        hit = table.get(".".join(parts[:end]))
        if hit is not None:
            return hit
    return None


# -- registry ---------------------------------------------------------------------------------


@cache
def _datasheet_raw() -> dict[str, dict[str, Any]]:
    """The shipped JSON, parsed once; specs are rebuilt per call so callers cannot mutate it."""
    text = resources.files("genscope.costmodel").joinpath(_SPECS_FILE).read_text("utf-8")
    raw: dict[str, dict[str, Any]] = {}
    for entry in json.loads(text)["hardware"]:
        if entry["name"] in raw or entry["name"] in LOCAL_NAMES:
            raise ValueError(
                f"{_SPECS_FILE}: duplicate or reserved hardware name {entry['name']!r}"
            )
        HardwareSpec.from_dict(entry)  # validate once, at first use
        raw[entry["name"]] = entry
    return raw


def datasheet_conventions() -> dict[str, str]:
    """The ``conventions`` block of the shipped JSON (units, dense/sparse, status legend)."""
    text = resources.files("genscope.costmodel").joinpath(_SPECS_FILE).read_text("utf-8")
    return dict(json.loads(text)["conventions"])


def local_spec_path(name: str) -> Path:
    """Where ``genscope calibrate`` writes the measured spec ``name`` (e.g. ``cpu-local``)."""
    if name not in LOCAL_NAMES:
        raise choices_error("measured hardware name", name, LOCAL_NAMES)
    return paths.hardware_dir() / f"{name}.json"


def _calibrate_hint(name: str) -> str:
    device = name.removesuffix("-local")
    return "`genscope calibrate`" if device == "cpu" else f"`genscope calibrate --device {device}`"


def load_local_spec(name: str) -> HardwareSpec:
    """Read a measured spec; a missing or broken file says how to (re)create it."""
    path = local_spec_path(name)
    if not path.is_file():
        raise UserError(
            f"no measured spec {name!r}: {path} does not exist; run {_calibrate_hint(name)} "
            "first (it measures this machine and writes that file)"
        )
    try:
        data = json.loads(path.read_text("utf-8"))
        return HardwareSpec.from_dict(data)
    except (json.JSONDecodeError, UserError, TypeError, ValueError) as err:
        raise UserError(
            f"{path} is not a valid hardware spec ({err}); re-run {_calibrate_hint(name)}"
        ) from err


def hardware_names() -> list[str]:
    """Datasheet names in registry order, then the measured specs present on this machine."""
    local = [n for n in LOCAL_NAMES if local_spec_path(n).is_file()]
    return [*_datasheet_raw(), *local]


def get_hardware(name: str) -> HardwareSpec:
    """Look a spec up by name; unknown names raise a :class:`UserError` listing the valid ones."""
    key = name.strip().lower()
    if key in LOCAL_NAMES:
        return load_local_spec(key)
    raw = _datasheet_raw()
    if key not in raw:
        raise choices_error("hardware", name, hardware_names())
    return HardwareSpec.from_dict(raw[key])


def list_hardware() -> list[HardwareSpec]:
    """Every spec :func:`hardware_names` lists."""
    return [get_hardware(n) for n in hardware_names()]
