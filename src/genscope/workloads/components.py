"""Components built from configs shipped in the repo, through maintained model classes.

A component config (``configs/<workload>/<component>.json``) names the class that builds it,
where the architecture comes from, the published parameter count, and two sizes:

* ``full``: the published architecture, meant for the ``meta`` device (no memory, no weights);
* ``tiny``: the same class with small dimensions, meant for measured runs and tests.

Weights are random: genscope characterizes architectures, it never loads checkpoints.
"""

from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from genscope.errors import UserError, choices_error

CONFIG_ROOT = Path(__file__).parent / "configs"
Size = Literal["full", "tiny"]
SIZES: tuple[Size, ...] = ("full", "tiny")


@dataclass(frozen=True)
class ComponentConfig:
    """One shipped component config, as read from JSON."""

    workload: str
    name: str
    class_path: str
    config_class_path: str | None
    source: str
    published_params: int | None
    params_source: str
    sizes: dict[str, dict[str, Any]]
    path: Path

    def config(self, size: Size) -> dict[str, Any]:
        if size not in self.sizes:
            raise choices_error(f"size for {self.workload}/{self.name}", size, list(self.sizes))
        return dict(self.sizes[size])


def _resolve(dotted: str) -> Any:
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


@cache
def load_component_config(
    workload: str, component: str, variant: str | None = None
) -> ComponentConfig:
    """Read ``configs/<workload>/<component>[.<variant>].json``."""
    stem = component if variant is None else f"{component}.{variant}"
    path = CONFIG_ROOT / workload / f"{stem}.json"
    if not path.exists():
        have = sorted(p.stem for p in (CONFIG_ROOT / workload).glob("*.json"))
        raise UserError(f"no config {workload}/{stem}; shipped: {', '.join(have) or 'none'}")
    raw = json.loads(path.read_text())
    return ComponentConfig(
        workload=workload,
        name=raw.get("component", component),
        class_path=raw["class"],
        config_class_path=raw.get("config_class"),
        source=raw["source"],
        published_params=raw.get("published_params"),
        params_source=raw.get("params_source", ""),
        sizes={s: raw[s] for s in SIZES if s in raw},
        path=path,
    )


def all_component_configs() -> list[ComponentConfig]:
    """Every shipped config, for tests and ``genscope models``."""
    out = []
    for path in sorted(CONFIG_ROOT.glob("*/*.json")):
        component, _, variant = path.stem.partition(".")
        out.append(load_component_config(path.parent.name, component, variant or None))
    return out


@cache
def _quiet_model_libraries() -> None:
    """diffusers/transformers warn about dtype casts and missing weights on every random-init
    build; genscope builds random weights on purpose, so keep stderr for our own messages."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    dlog.set_verbosity_error()
    tlog.set_verbosity_error()


def build_component(
    cfg: ComponentConfig,
    size: Size,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    overrides: dict[str, Any] | None = None,
) -> nn.Module:
    """Instantiate the component's class with random weights, in eval mode.

    diffusers classes are built with ``from_config``; transformers classes from their config
    class; genscope's own small architectures (``genscope.workloads.archs``) from keyword args.
    """
    _quiet_model_libraries()
    config = cfg.config(size) | (overrides or {})
    cls = _resolve(cfg.class_path)
    # Seeded so tiny models (real weights) are deterministic; meta models allocate nothing.
    torch.manual_seed(0)
    with torch.device(device):
        if cfg.config_class_path is not None:
            config_obj = _resolve(cfg.config_class_path)(**config)
            if hasattr(cls, "_from_config"):
                model = cls._from_config(config_obj, dtype=dtype)
            else:
                model = cls(config_obj)
        elif hasattr(cls, "from_config"):
            model = cls.from_config(config)
        else:
            model = cls(**config)
    return model.to(dtype=dtype).eval()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_library(module: nn.Module) -> str:
    """The library a model class comes from (``diffusers``, ``transformers``, ``torch`` …):
    its Python costs differ per op."""
    return type(module).__module__.split(".")[0]


def kv_cache(module: nn.Module, cache: Any) -> dict[str, Any]:
    """The keyword argument that hands ``module.forward`` its KV cache.

    transformers renamed ``past_key_values`` to ``cache`` (5.25 warns on the old name, 5.40
    drops it); this passes whichever the installed version's ``forward`` takes, so genscope's
    own decode loops neither warn nor break.
    """
    return {_cache_keyword(type(module)): cache}


@cache
def _cache_keyword(cls: type) -> str:
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"
