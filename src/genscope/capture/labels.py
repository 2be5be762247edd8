"""Attention labels for bring-your-own models: axis from the call's shapes, self/cross from the
tensors' lineage.

Suite workloads declare their axes (:class:`~genscope.capture.context.AxisRules`); a model
handed to :func:`genscope.trace` does not, so its labels are inferred, and only where the
shapes leave one reading:

* **axis.** :class:`ShapeHints` collects what the model was called with: image sides (4-D
  ``B,C,H,W`` and 5-D video tensors), frame counts (5-D) and text lengths (integer token ids,
  or tensors passed under a text-like name such as ``encoder_hidden_states`` or ``context``).
  A call whose sequence is H·W at some downsampling is *spatial*; a short sequence equal to a
  frame count with batch a multiple of H·W is *temporal*; H·W plus a text length is *joint*; a
  text length alone is *text*. No reading, or more than one, gives ``unknown``: never a wrong
  axis. An explicit mapping (module path glob → axis) overrides inference.
* **self vs cross.** Every op output carries the set of input tensors it was computed from
  (its lineage; parameters and buffers excluded). K derived without the query's inputs means
  cross attention (Q from the image, K/V from a text context); K that contains them (joint
  sequences, a KV cache) is self attention. With no lineage at all, ``kv_len != q_len`` decides.
"""

from __future__ import annotations

import fnmatch
import inspect
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from genscope.errors import UserError, choices_error, clip

#: Axes a label may take (``unknown``: the shapes allow no single reading).
AXIS_CHOICES: tuple[str, ...] = ("spatial", "temporal", "joint", "text", "unknown")
#: Argument names that mark a tensor as text (token ids are recognized by dtype).
_TEXT_NAMES = ("text", "context", "ctx", "encoder_hidden_states", "prompt", "caption", "cond")
_MAX_DOWNSAMPLE = 6  # H·W, H·W/4, ... down to a 64x smaller side


def check_axis(axis: object, where: str = "attn_axis") -> str:
    """``axis`` if it is one of :data:`AXIS_CHOICES`, else a one-line :class:`UserError`."""
    if not isinstance(axis, str) or axis not in AXIS_CHOICES:
        raise choices_error(f"{where} value", axis, AXIS_CHOICES)
    return axis


def axis_patterns(mapping: Mapping[str, str]) -> list[tuple[str, str]]:
    """Validated ``(regex, axis)`` rules from a ``module path glob -> axis`` mapping."""
    if not isinstance(mapping, Mapping):
        raise UserError(f"attn_axis must be an axis or a mapping, got {clip(repr(mapping))}")
    rules = []
    for pattern, axis in mapping.items():
        if not isinstance(pattern, str) or not pattern:
            raise UserError(f"attn_axis keys are module path globs, got {clip(repr(pattern))}")
        # anchored at both ends: a glob names whole module paths (``blocks.*.attn``)
        rules.append(
            ("^" + fnmatch.translate(pattern), check_axis(axis, f"attn_axis[{pattern!r}]"))
        )
    return rules


@dataclass
class ShapeHints:
    """What a traced model was called with: image sides, frame counts and text lengths."""

    sides: set[tuple[int, int]] = field(default_factory=set)
    frames: set[int] = field(default_factory=set)
    text: set[int] = field(default_factory=set)

    def add_call(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Record the tensors of one call of ``module`` (named by its forward's signature)."""
        named: list[tuple[str, Any]] = list(kwargs.items())
        try:
            params = list(inspect.signature(module.forward).parameters)
        except (TypeError, ValueError):
            params = []
        for i, value in enumerate(args):
            named.append((params[i] if i < len(params) else f"arg{i}", value))
        for name, value in named:
            for t in _tensors(value):
                self.add_tensor(name, t)

    def add_tensor(self, name: str, t: torch.Tensor) -> None:
        """File one argument: token ids and text-named tensors as text, 4-D/5-D as images."""
        textual = any(h in name.lower() for h in _TEXT_NAMES)
        if not t.dtype.is_floating_point:
            if t.dim() == 2 and t.shape[-1] > 1:  # token ids (B, L)
                self.text.add(int(t.shape[-1]))
            return
        if textual and t.dim() == 3:
            self.text.add(int(t.shape[1]))
        elif t.dim() == 4:
            self.sides.add((int(t.shape[-2]), int(t.shape[-1])))
        elif t.dim() == 5:  # (B, C, F, H, W) or (B, F, C, H, W): both middle dims may be F
            self.sides.add((int(t.shape[-2]), int(t.shape[-1])))
            self.frames.update(int(d) for d in t.shape[1:3])

    def spatial(self) -> set[int]:
        """Token counts of an image at every 2x downsampling of its input sides."""
        out = set()
        for h, w in self.sides:
            for k in range(_MAX_DOWNSAMPLE + 1):
                if h % (1 << k) or w % (1 << k):
                    break
                if (h >> k) * (w >> k) > 1:
                    out.add((h >> k) * (w >> k))
        return out

    def axis(self, batch: int | None, q_len: int | None) -> str:
        """The one axis the call's shapes allow, else ``unknown``."""
        if q_len is None:
            return "unknown"
        spatial = self.spatial()
        readings = set()
        if q_len in spatial:
            readings.add("spatial")
        if (
            q_len in self.frames
            and batch
            and any(batch % s == 0 for s in spatial)
            and q_len not in spatial
        ):
            readings.add("temporal")
        if any(q_len - s in self.text for s in spatial):
            readings.add("joint")
        if q_len in self.text and not spatial:
            readings.add("text")
        return readings.pop() if len(readings) == 1 else "unknown"


def _tensors(value: Any) -> Iterable[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)


class Lineage:
    """For every tensor an op produced: the ids of the input tensors it was computed from."""

    def __init__(self) -> None:
        self.skip: set[int] = set()  # parameters and buffers: shared by Q and K, not lineage
        self._of: dict[int, frozenset[int]] = {}

    def exclude(self, module: nn.Module) -> None:
        """Leave ``module``'s weights out of every lineage (Q and K share them in any attention)."""
        self.skip.update(id(p) for p in module.parameters())
        self.skip.update(id(b) for b in module.buffers())

    def of(self, t: Any) -> frozenset[int]:
        """Input tensors ``t`` was computed from (itself if no recorded op produced it)."""
        if not isinstance(t, torch.Tensor) or id(t) in self.skip:
            return frozenset()
        return self._of.get(id(t), frozenset({id(t)}))

    def record(self, inputs: Iterable[Any], out: Any) -> None:
        """Give the outputs of one op the union of its tensor inputs' lineages."""
        roots: frozenset[int] = frozenset()
        for x in inputs:
            for t in _tensors(x):
                roots |= self.of(t)
        for t in _tensors(out):
            if id(t) not in self._of and id(t) not in self.skip:
                self._of[id(t)] = roots
                # forget the entry when the tensor dies, so a reused id starts afresh
                weakref.finalize(t, self._of.pop, id(t), None)

    def kind(self, q: Any, k: Any, q_len: int | None, kv_len: int | None) -> str:
        """``cross`` if K was computed without the query's inputs, else ``self``."""
        lq, lk = self.of(q), self.of(k)
        if lq and lk:
            return "self" if lq <= lk else "cross"
        return "cross" if q_len is not None and kv_len is not None and q_len != kv_len else "self"
