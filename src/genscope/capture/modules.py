"""Which module is running right now: a stack maintained by global forward hooks.

Unlike ``torch.utils.module_tracker.ModuleTracker`` (a set of parents), this keeps the *ordered*
stack so a capture knows the innermost module, its path, and per-call state such as "softmax
already seen in this attention call" (which tells Q·Kᵀ from P·V on the math attention path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
)


@dataclass(slots=True)
class Frame:
    path: str
    module: nn.Module
    type_name: str
    component: str = ""
    softmax_seen: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class ModuleStack:
    """Context manager: while active, ``.top`` is the innermost running module's frame."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self._names: dict[int, str] = {}
        self._components: dict[int, str] = {}
        self._handles: list[Any] = []

    def name_modules(self, root: nn.Module, component: str = "") -> None:
        """Give every submodule of ``root`` its dotted path and the component it belongs to."""
        for name, mod in root.named_modules():
            self._names[id(mod)] = name
            self._components[id(mod)] = component

    @property
    def top(self) -> Frame | None:
        return self.frames[-1] if self.frames else None

    def _pre(self, module: nn.Module, args: Any) -> None:
        key = id(module)
        path = self._names.get(key, type(module).__name__)
        self.frames.append(
            Frame(path, module, type(module).__name__, self._components.get(key, ""))
        )

    def _post(self, module: nn.Module, args: Any, output: Any) -> None:
        # Pop back to (and including) this module; tolerates modules whose pre-hook was skipped.
        for i in range(len(self.frames) - 1, -1, -1):
            if self.frames[i].module is module:
                del self.frames[i:]
                return

    def __enter__(self) -> ModuleStack:
        self._handles = [
            register_module_forward_pre_hook(self._pre),
            register_module_forward_hook(self._post, always_call=True),
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self.frames.clear()
