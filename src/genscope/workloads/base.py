"""What a workload is: a named pipeline of config-built components plus its generation loop.

A workload declares its metadata (task, family, sources), its components (shipped configs), the
options it accepts with their defaults per size, and one ``generate`` function written against a
:class:`~genscope.capture.context.Runner`. Capture modes (analytic, measured) and optimization
levers all drive that same ``generate``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from genscope.capture.context import AxisRules, Runner
from genscope.dtypes import subset
from genscope.errors import UserError, choices_error, clip
from genscope.workloads.components import (
    SIZES,
    ComponentConfig,
    Size,
    build_component,
    count_params,
    load_component_config,
    model_library,
)

Task = Literal["tti", "ttv", "i2v", "t2t", "i2t", "s2t", "h2a"]
Family = Literal[
    "diffusion-unet", "diffusion-dit", "masked-token", "autoregressive", "encoder-decoder",
    "recommender",
]  # fmt: skip
#: The dtypes a workload runs in.
DTYPES: dict[str, torch.dtype] = subset("fp32", "bf16", "fp16")
#: Upper bound per option, checked in :meth:`Workload.resolve` before any work: beyond these a
#: trace takes minutes and its op counts approach int64. A workload may override
#: :attr:`Workload.limits`; ``genscope models --json`` lists each workload's bounds.
DEFAULT_LIMITS: dict[str, int] = {
    "res": 4096,  # pixels, either side
    "frames": 256,
    "steps": 1000,
    "batch": 64,
    "prompt_len": 65536,
    "new_tokens": 8192,
}
#: Options each workload may accept; a workload lists the subset that is meaningful for it.
OPTION_NAMES = ("res", "frames", "steps", "cfg", "batch", "prompt_len", "new_tokens", "variant")


def parse_res(text: str | None) -> tuple[int, int] | None:
    """``512`` or ``512x768`` (height x width); ``None`` stays ``None`` (workload default)."""
    if text is None:
        return None
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts if len(p) <= 9]  # 9 digits: far above any bound
    except ValueError:
        values = []
    if len(values) != len(parts):
        raise UserError(f"--res takes N or HxW (e.g. 512 or 576x1024), got {clip(repr(text))}")
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise UserError(f"--res takes N or HxW (e.g. 512 or 576x1024), got {clip(repr(text))}")


@dataclass(frozen=True)
class Settings:
    """Everything that determines one run of a workload. ``None`` means "workload default"."""

    size: Size = "full"
    res: tuple[int, int] | None = None  # (height, width) in pixels
    frames: int | None = None
    steps: int | None = None
    batch: int = 1
    cfg: bool | None = None
    dtype: str = "fp32"
    attention: str = "flash"
    variant: str | None = None
    prompt_len: int | None = None
    new_tokens: int | None = None
    device: str | None = None  # default: meta for full, cpu for tiny

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def torch_device(self) -> str:
        return self.device or ("meta" if self.size == "full" else "cpu")

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["res"] = list(self.res) if self.res else None
        return d


@dataclass
class Built:
    """Components instantiated for one run, plus anything the loop needs (schedulers, ...)."""

    models: dict[str, nn.Module]
    extras: dict[str, Any] = field(default_factory=dict)

    def params(self) -> dict[str, int]:
        return {name: count_params(m) for name, m in self.models.items()}

    def libraries(self) -> dict[str, str]:
        """The library (top-level package of its model class) of every component, e.g.
        ``{"unet": "diffusers", "text_encoder": "transformers"}``: host cost per op differs."""
        return {name: model_library(m) for name, m in self.models.items()}


class Workload(ABC):
    """Base class: subclasses set the ClassVars and implement :meth:`generate`."""

    name: ClassVar[str]
    task: ClassVar[Task]
    family: ClassVar[Family]
    description: ClassVar[str]
    #: component name -> config file stem (``configs/<config_dir>/<stem>[.<variant>].json``)
    components: ClassVar[dict[str, str]]
    #: components whose config file depends on ``--variant``
    variant_components: ClassVar[tuple[str, ...]] = ()
    variants: ClassVar[tuple[str, ...]] = ()
    default_variant: ClassVar[str | None] = None
    config_dir: ClassVar[str | None] = None
    #: option -> default, per size ("full", "tiny")
    defaults: ClassVar[dict[str, dict[str, Any]]]
    #: pixel side must be a multiple of this (VAE/patch factor)
    res_factor: ClassVar[int] = 1
    #: upper bound per option (see :data:`DEFAULT_LIMITS`)
    limits: ClassVar[dict[str, int]] = DEFAULT_LIMITS

    # ---------------------------------------------------------------- settings
    @property
    def options(self) -> tuple[str, ...]:
        """Options this workload accepts (beyond size/dtype/attention/batch)."""
        opts = set(self.defaults["full"])
        if self.variants:
            opts.add("variant")
        return tuple(o for o in OPTION_NAMES if o in opts or o == "batch")

    def resolve(self, s: Settings) -> Settings:
        """Fill defaults and reject options that make no sense here, naming the valid ones.

        Every check runs here, before anything is built: types, closed sets, lower bounds and
        the upper bounds of :attr:`limits`.
        """
        self._check_types(s)
        if s.size not in SIZES:
            raise choices_error("size", s.size, SIZES)
        if s.dtype not in DTYPES:
            raise choices_error("dtype", s.dtype, list(DTYPES))
        if s.attention not in ("flash", "math"):
            raise choices_error("attention", s.attention, ["flash", "math"])
        accepted = set(self.options)
        for opt in ("res", "frames", "steps", "cfg", "prompt_len", "new_tokens", "variant"):
            if getattr(s, opt) is not None and opt not in accepted:
                raise UserError(
                    f"{self.name} does not take --{opt.replace('_', '-')}; "
                    f"it takes: {', '.join('--' + o.replace('_', '-') for o in sorted(accepted))}"
                )
        d = self.defaults[s.size]
        resolved = replace(
            s,
            res=s.res or (tuple(d["res"]) if "res" in d else None),
            frames=s.frames if s.frames is not None else d.get("frames"),
            steps=s.steps if s.steps is not None else d.get("steps"),
            cfg=s.cfg if s.cfg is not None else d.get("cfg"),
            prompt_len=s.prompt_len if s.prompt_len is not None else d.get("prompt_len"),
            new_tokens=s.new_tokens if s.new_tokens is not None else d.get("new_tokens"),
            variant=s.variant or self.default_variant,
        )
        self.validate(resolved)
        return resolved

    @staticmethod
    def _check_types(s: Settings) -> None:
        """Settings built in Python (API, sweep specs) get the same checks as CLI options."""
        for opt in ("frames", "steps", "batch", "prompt_len", "new_tokens"):
            value = getattr(s, opt)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise UserError(
                    f"--{opt.replace('_', '-')} must be an integer (got {clip(repr(value))})"
                )
        for opt in ("size", "dtype", "attention"):
            if not isinstance(getattr(s, opt), str):
                raise UserError(f"--{opt} must be a string (got {clip(repr(getattr(s, opt)))})")
        if s.variant is not None and not isinstance(s.variant, str):
            raise UserError(f"--variant must be a string (got {clip(repr(s.variant))})")
        if s.cfg is not None and not isinstance(s.cfg, bool):
            raise UserError(f"--cfg must be true or false (got {clip(repr(s.cfg))})")
        res = s.res
        if res is not None and (
            not isinstance(res, tuple | list)
            or len(res) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in res)
        ):
            raise UserError(f"--res takes N or HxW (got {clip(repr(res))})")

    def validate(self, s: Settings) -> None:
        """Lower and upper bounds of the resolved settings (one-line :class:`UserError`)."""
        if self.variants and s.variant not in self.variants:
            raise choices_error(f"{self.name} variant", s.variant, self.variants)
        if s.batch < 1:
            raise UserError(f"--batch must be >= 1 (got {s.batch})")
        for opt in ("steps", "frames", "prompt_len", "new_tokens"):
            value = getattr(s, opt)
            if value is not None and value < 1:
                raise UserError(f"--{opt.replace('_', '-')} must be >= 1 (got {value})")
        if s.res is not None:
            h, w = s.res
            if h < 1 or w < 1 or h % self.res_factor or w % self.res_factor:
                raise UserError(
                    f"{self.name}: resolution {clip(h, 20)}x{clip(w, 20)} must be a positive "
                    f"multiple of {self.res_factor} (e.g. {self.res_factor * 8})"
                )
        for opt, limit in self.limits.items():
            value = getattr(s, opt, None)
            sides = value if opt == "res" and value is not None else (value,)
            if any(v is not None and v > limit for v in sides):
                shown = "x".join(clip(v, 20) for v in sides)
                raise UserError(
                    f"{self.name}: --{opt.replace('_', '-')} {shown} is above this workload's "
                    f"bound of {limit} (see `genscope models --json`, limits)"
                )

    # ---------------------------------------------------------------- components
    def component_config(self, component: str, variant: str | None) -> ComponentConfig:
        stem = self.components[component]
        v = variant if component in self.variant_components else None
        return load_component_config(self.config_dir or self.name, stem, v)

    def build(self, s: Settings) -> Built:
        models = {
            name: build_component(
                self.component_config(name, s.variant),
                s.size,
                device=s.torch_device,
                dtype=s.torch_dtype,
            )
            for name in self.components
        }
        return Built(models, self.extras(models, s))

    def extras(self, models: dict[str, nn.Module], s: Settings) -> dict[str, Any]:
        """Non-module state the loop needs (schedulers, ...)."""
        return {}

    def axis_rules(self) -> AxisRules:
        """Attention axis per component; override for video models."""
        return AxisRules()

    def sources(self, variant: str | None = None) -> dict[str, str]:
        return {c: self.component_config(c, variant).source for c in self.components}

    # ---------------------------------------------------------------- the loop
    @abstractmethod
    def generate(self, built: Built, s: Settings, run: Runner) -> Any:
        """Run the whole pipeline once; label phases through ``run``."""

    def describe(self, variant: str | None = None) -> dict[str, Any]:
        v = variant or self.default_variant
        return {
            "name": self.name,
            "task": self.task,
            "family": self.family,
            "description": self.description,
            "variants": list(self.variants),
            "components": {
                c: {
                    "class": self.component_config(c, v).class_path.rsplit(".", 1)[-1],
                    "published_params": self.component_config(c, v).published_params,
                    "source": self.component_config(c, v).source,
                }
                for c in self.components
            },
            "defaults": self.defaults["full"],
            "options": list(self.options),
            "limits": {o: v for o, v in self.limits.items() if o in self.options},
        }
