"""Replay the outputs of ``meta``-tensor ops from a cache keyed by input metadata.

On ``meta`` most aten ops run Python reference/meta kernels (``torch._refs``, ``torch._prims``)
that cost ~0.3 ms each, and a full-size pipeline dispatches tens of thousands of them with the
same few shapes over and over. A meta op's output *metadata* is a pure function of its
inputs' metadata and its non-tensor arguments — meta tensors hold no data — so for functional
ops (no aliasing, no mutation, fresh outputs) a cache can build the output directly with
``torch.empty_strided``. This is the idea behind ``FakeTensorMode``'s dispatch cache, kept to
what analytic capture needs.

Only meta tensors in and out are ever cached; real-tensor runs (tiny models, measured mode)
never touch it.
"""

from __future__ import annotations

from typing import Any

import torch

_HASHABLE = (
    int, float, bool, str, type(None), torch.dtype, torch.device, torch.layout, torch.memory_format
)  # fmt: skip
#: Tags of ops whose output metadata is not a function of the inputs' metadata alone.
_UNCACHEABLE_TAGS = frozenset(
    {
        torch.Tag.dynamic_output_shape,
        torch.Tag.data_dependent_output,
        torch.Tag.nondeterministic_seeded,
    }
)
_UNCACHEABLE = object()

Spec = tuple[tuple[tuple[int, ...], tuple[int, ...], torch.dtype], ...]


def _arg_key(x: Any) -> Any:
    """A hashable stand-in for one argument; raises ``_Miss`` if it cannot be keyed."""
    if isinstance(x, torch.Tensor):
        if x.device.type != "meta" or x.layout != torch.strided:
            raise _Miss
        return (x.dtype, tuple(x.shape), x.stride(), x.storage_offset())
    if isinstance(x, list | tuple):
        return (type(x), tuple(_arg_key(i) for i in x))
    if isinstance(x, _HASHABLE):
        return (type(x), x)  # the type keeps 1, 1.0 and True apart (they promote differently)
    raise _Miss


class _Miss(Exception):
    pass


def _functional(func: torch._ops.OpOverload) -> bool:
    """True when the op neither aliases nor mutates and returns only fresh tensors."""
    schema = func._schema
    if any(a.alias_info is not None for a in schema.arguments):
        return False
    if not schema.returns or any(r.alias_info is not None for r in schema.returns):
        return False
    if any(str(r.type) != "Tensor" for r in schema.returns):
        return False
    return _UNCACHEABLE_TAGS.isdisjoint(func.tags)


def _spec(out: Any) -> Spec | None:
    outs = out if isinstance(out, tuple) else (out,)
    if not all(isinstance(t, torch.Tensor) and t.device.type == "meta" for t in outs):
        return None
    return tuple((tuple(t.shape), t.stride(), t.dtype) for t in outs)


def _build(spec: Spec, as_tuple: bool) -> Any:
    outs = tuple(
        torch.empty_strided(shape, stride, dtype=dtype, device="meta")
        for shape, stride, dtype in spec
    )
    return outs if as_tuple else outs[0]


class MetaOpCache:
    """Memoizes meta outputs of functional ops; call :meth:`run` in place of ``func(*args)``."""

    def __init__(self) -> None:
        self._functional: dict[torch._ops.OpOverload, bool] = {}
        self._specs: dict[Any, Any] = {}
        self.hits = 0
        self.misses = 0

    def run(self, func: torch._ops.OpOverload, args: tuple, kwargs: dict[str, Any]) -> Any:
        functional = self._functional.get(func)
        if functional is None:
            functional = self._functional[func] = _functional(func)
        if not functional:
            return func(*args, **kwargs)
        try:
            key = (func, _arg_key(args), _arg_key(tuple(sorted(kwargs.items()))))
        except _Miss:
            return func(*args, **kwargs)
        entry = self._specs.get(key)
        if entry is None:
            self.misses += 1
            out = func(*args, **kwargs)
            spec = _spec(out)
            self._specs[key] = _UNCACHEABLE if spec is None else (spec, isinstance(out, tuple))
            # hand back a fresh tensor either way, so a hit and a miss look the same downstream
            return out if spec is None else _build(spec, isinstance(out, tuple))
        if entry is _UNCACHEABLE:
            return func(*args, **kwargs)
        self.hits += 1
        return _build(*entry)
