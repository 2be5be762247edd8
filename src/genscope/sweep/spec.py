"""Sweep specs: a YAML file with a ``name`` and one list per ``genscope trace`` option.

::

    name: sd-resolution
    workloads: [sd15, sdxl]
    size: [full]
    mode: [analytic]
    hardware: [a100-80g-sxm, h100-sxm]
    res: [256, 512, 1024, 2048]
    steps: [1]
    resources: {num_cpus: 1, num_gpus: 0}   # per point (Ray executor)

Every combination of the axis values is one grid *point*. A point's identity is the sha256 of
its normalized settings (defaults filled in by the workload, so ``res: 512`` and
``res: 512x512`` are the same point) plus the genscope version. Mistakes in the spec itself
(unknown key, unknown workload, wrong type) are :class:`~genscope.errors.UserError`; a point
that is merely invalid for its workload (``frames`` on an image model) is kept, with its
one-line error, and is recorded as failed when the sweep runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from genscope.api import DEFAULT_HARDWARE, check_dtype_supported
from genscope.costmodel.hardware import get_hardware
from genscope.errors import UserError, choices_error, clip
from genscope.workloads.base import DTYPES, Settings, parse_res
from genscope.workloads.components import SIZES
from genscope.workloads.registry import get_workload

#: Axis keys in grid order (outermost first); values are lists of ``genscope trace`` values.
AXES: tuple[str, ...] = (
    "workloads", "size", "mode", "hardware", "res", "frames", "steps", "batch", "cfg",
    "dtype", "attention", "variant", "prompt_len", "new_tokens", "device",
)  # fmt: skip
OTHER_KEYS = ("name", "resources")
ALIASES = {"workload": "workloads"}
RESOURCE_KEYS = ("num_cpus", "num_gpus")
MODES = ("analytic", "measured")
INT_AXES = ("frames", "steps", "batch", "prompt_len", "new_tokens")
#: Settings fields taken from the grid (everything but workloads/mode/hardware).
SETTING_AXES = tuple(a for a in AXES if a not in ("workloads", "mode", "hardware"))
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
#: a spec is a few lines of axis values; larger files are refused before parsing
MAX_SPEC_BYTES = 256 * 1024
#: most grid points one spec may expand to (the product of its axis lengths)
MAX_POINTS = 10_000


def _version() -> str:
    import genscope

    return genscope.__version__


def valid_keys() -> list[str]:
    return [*OTHER_KEYS, *AXES]


@dataclass(frozen=True)
class Point:
    """One grid point: what to trace, its identity, and why it is invalid (if it is)."""

    index: int
    point_id: str
    workload: str
    mode: str
    hardware: str
    #: the Settings fields as written in the spec (``None`` = workload default); res as [h, w]
    settings: dict[str, Any]
    #: the settings after the workload filled its defaults (None when invalid)
    resolved: dict[str, Any] | None = None
    error: str | None = None

    @property
    def short_id(self) -> str:
        return self.point_id[:12]

    def label(self) -> str:
        """``sd15 full analytic a100-80g-sxm res=512x512 steps=1`` (only axes that are set)."""
        parts = [self.workload, self.settings.get("size") or "full", self.mode, self.hardware]
        for key in SETTING_AXES:
            if key in ("size",):
                continue
            value = self.settings.get(key)
            if value is None:
                continue
            if key == "res":
                value = f"{value[0]}x{value[1]}"
            parts.append(f"{key}={value}")
        return " ".join(str(p) for p in parts)

    def task(self, sweep: str) -> dict[str, Any]:
        """The picklable job a worker runs (see :func:`genscope.sweep.worker.run_point`)."""
        return {
            "sweep": sweep,
            "point_id": self.point_id,
            "workload": self.workload,
            "mode": self.mode,
            "hardware": self.hardware,
            "settings": dict(self.settings),
            "label": self.label(),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "point_id": self.point_id,
            "workload": self.workload,
            "mode": self.mode,
            "hardware": self.hardware,
            "settings": {k: v for k, v in self.settings.items() if v is not None},
            "error": self.error,
        }


@dataclass(frozen=True)
class SweepSpec:
    name: str
    #: axis -> list of normalized values, only the axes the spec sets, in :data:`AXES` order
    axes: dict[str, list[Any]]
    resources: dict[str, float] = field(default_factory=dict)
    text: str = ""
    path: Path | None = None

    def points(self) -> list[Point]:
        return expand(self)


# ---------------------------------------------------------------- loading
def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec file."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_SPEC_BYTES:
            raise UserError(
                f"sweep spec {clip(repr(str(p)))} is over {MAX_SPEC_BYTES // 1024} KiB; "
                "a spec lists axis values, it is never that large"
            )
        text = p.read_text()
    except OSError as err:
        raise UserError(
            f"cannot read sweep spec {clip(repr(str(p)))}: {err.strerror or err}"
        ) from None
    return parse_spec(text, p)


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors/aliases: an alias bomb (nested ``*a`` references) would expand to
    gigabytes from a few lines, and a grid spec never needs one."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            line = event.start_mark.line + 1 if event.start_mark else "?"
            raise UserError(
                f"sweep spec uses a YAML alias (*{clip(event.anchor, 40)}, line {line}); "
                "aliases are not allowed in specs: write the values out"
            )
        return super().compose_node(parent, index)


def parse_spec(text: str, path: Path | None = None) -> SweepSpec:
    where = f"sweep spec {clip(str(path))}" if path else "sweep spec"
    if len(text) > MAX_SPEC_BYTES:
        raise UserError(f"{where} is over {MAX_SPEC_BYTES // 1024} KiB")
    try:
        raw = yaml.load(text, Loader=_NoAliasLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{where} is not valid YAML{at}: {problem}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be a mapping with `name` and one list per axis")
    data: dict[str, Any] = {}
    for key, value in raw.items():
        k = ALIASES.get(str(key).replace("-", "_"), str(key).replace("-", "_"))
        if k not in valid_keys():
            raise UserError(
                f"unknown key {clip(repr(key))} in {where}; valid keys: {', '.join(valid_keys())}"
            )
        if k in data:
            raise UserError(f"{where} sets {clip(repr(k))} twice (`workload` and `workloads`?)")
        data[k] = value

    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UserError(
            f"{where} needs a `name` of letters, digits, '.', '_' or '-' (got {clip(repr(name))})"
        )
    if "workloads" not in data:
        raise UserError(f"{where} needs `workloads` (a list of workload names)")
    axes = {a: _axis_values(a, data[a], where) for a in AXES if a in data}
    return SweepSpec(name, axes, _resources(data.get("resources"), where), text, path)


def _resources(raw: Any, where: str) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{where}: `resources` must be a mapping like {{num_cpus: 1, num_gpus: 0}}")
    out = {}
    for key, value in raw.items():
        if key not in RESOURCE_KEYS:
            raise UserError(
                f"unknown resource {clip(repr(key))} in {where}; valid: {', '.join(RESOURCE_KEYS)}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise UserError(
                f"{where}: resources.{key} must be a number >= 0 (got {clip(repr(value))})"
            )
        out[key] = float(value)
    return out


def _axis_values(axis: str, raw: Any, where: str) -> list[Any]:
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise UserError(f"{where}: axis `{axis}` is an empty list")
    return [_value(axis, v, where) for v in values]


def _value(axis: str, v: Any, where: str) -> Any:
    """Normalize one axis value; closed sets and types are checked here, per-workload rules
    (which options a workload takes) when the grid is expanded."""

    def bad(expected: str) -> UserError:
        return UserError(f"{where}: `{axis}` values must be {expected} (got {clip(repr(v))})")

    if v is None:
        if axis in ("workloads", "mode", "hardware", "size", "batch", "dtype", "attention"):
            raise bad("given (null is only allowed for options with a workload default)")
        return None
    if axis == "workloads":
        if not isinstance(v, str):
            raise bad("workload names")
        get_workload(v)  # unknown name -> UserError naming the suite
        return v
    if axis == "hardware":
        if not isinstance(v, str):
            raise bad("hardware names")
        return get_hardware(v).name
    closed = {"size": SIZES, "mode": MODES, "dtype": tuple(DTYPES), "attention": ("flash", "math")}
    if axis in closed:
        if v not in closed[axis]:
            raise choices_error(axis, v, closed[axis])
        return v
    if axis == "res":
        return list(_res(v, bad))
    if axis in INT_AXES:
        if isinstance(v, bool) or not isinstance(v, int):
            raise bad("integers")
        return v
    if axis == "cfg":
        if not isinstance(v, bool):
            raise bad("true or false")
        return v
    if axis == "device":  # measured mode: cpu | cuda | cuda:N (checked on the worker)
        if not isinstance(v, str) or v.split(":")[0] not in ("cpu", "cuda"):
            raise bad("cpu, cuda or cuda:N")
        return v
    if axis == "variant":
        if not isinstance(v, str | int) or isinstance(v, bool):
            raise bad("variant names")
        return str(v)
    raise AssertionError(axis)  # pragma: no cover


def _res(v: Any, bad: Any) -> tuple[int, int]:
    if isinstance(v, bool):
        raise bad("N, 'HxW' or [H, W]")
    if isinstance(v, int):
        return v, v
    if isinstance(v, str):
        parsed = parse_res(v)
        assert parsed is not None
        return parsed
    if (
        isinstance(v, list)
        and len(v) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
    ):
        return v[0], v[1]
    raise bad("N, 'HxW' or [H, W]")


# ---------------------------------------------------------------- the grid
def point_identity(
    workload: str, mode: str, hardware: str, settings: dict[str, Any], resolved: bool
) -> str:
    """sha256 over the normalized settings (sorted JSON) and the genscope version."""
    payload = {
        "genscope": _version(),
        "workload": workload,
        "mode": mode,
        "hardware": hardware,
        "settings": settings,
        "resolved": resolved,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def make_point(
    index: int, workload: str, mode: str, hardware: str, settings: dict[str, Any]
) -> Point:
    """Resolve one point's settings through its workload; invalid ones keep their error."""

    kwargs = {k: v for k, v in settings.items() if v is not None}
    if "res" in kwargs:
        kwargs["res"] = tuple(kwargs["res"])
    if mode == "measured":
        kwargs["device"] = kwargs.get("device") or "cpu"  # as `genscope trace --mode measured`
    try:
        if mode == "analytic" and "device" in kwargs:
            raise UserError("--device only applies to --mode measured")
        resolved = get_workload(workload).resolve(Settings(**kwargs))
        check_dtype_supported(get_hardware(hardware), resolved.dtype)
    except UserError as err:
        pid = point_identity(workload, mode, hardware, settings, resolved=False)
        return Point(index, pid, workload, mode, hardware, settings, None, str(err))
    norm = resolved.to_dict()
    pid = point_identity(workload, mode, hardware, norm, resolved=True)
    return Point(index, pid, workload, mode, hardware, settings, norm)


def expand(spec: SweepSpec) -> list[Point]:
    """Every combination of the axis values, in axis order; duplicates (same identity) once."""

    axes = dict(spec.axes)
    axes.setdefault("mode", ["analytic"])
    axes.setdefault("hardware", [DEFAULT_HARDWARE])
    names = [a for a in AXES if a in axes]
    total = math.prod(len(axes[a]) for a in names)
    if total > MAX_POINTS:
        raise UserError(
            f"sweep {spec.name!r} expands to {total:,} points; at most {MAX_POINTS:,} per spec "
            "(split it into several sweeps)"
        )
    points: list[Point] = []
    seen: set[str] = set()
    for combo in itertools.product(*(axes[a] for a in names)):
        values = dict(zip(names, combo, strict=True))
        settings = {k: values.get(k) for k in SETTING_AXES}
        point = make_point(
            len(points), values["workloads"], values["mode"], values["hardware"], settings
        )
        if point.point_id in seen:
            continue
        seen.add(point.point_id)
        points.append(point)
    return points
