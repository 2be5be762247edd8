"""The meta-op cache must be invisible: same outputs, same trace, only faster."""

from __future__ import annotations

import torch

from genscope.api import trace_workload
from genscope.capture.meta_cache import MetaOpCache
from genscope.workloads.base import Settings

aten = torch.ops.aten


def test_hit_builds_the_same_metadata_as_running_the_op():
    cache = MetaOpCache()
    x = torch.empty(4, 3, 8, 8, device="meta").to(memory_format=torch.channels_last)
    w = torch.empty(16, 3, 3, 3, device="meta")
    args = (x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1)
    first = cache.run(aten.convolution.default, args, {})
    second = cache.run(aten.convolution.default, args, {})
    real = aten.convolution.default(*args)
    assert (cache.misses, cache.hits) == (1, 1)
    for out in (first, second):
        assert out.shape == real.shape and out.stride() == real.stride()
        assert out.dtype == real.dtype and out.device.type == "meta"
    assert second is not first and second._base is None


def test_scalar_types_are_keyed_apart():
    cache = MetaOpCache()
    x = torch.empty(3, dtype=torch.int64, device="meta")
    as_int = cache.run(aten.mul.Tensor, (x, 2), {})
    as_float = cache.run(aten.mul.Tensor, (x, 2.0), {})
    assert as_int.dtype == torch.int64 and as_float.dtype == torch.float32
    assert cache.misses == 2


def test_views_mutations_and_real_tensors_are_never_cached():
    cache = MetaOpCache()
    x = torch.empty(2, 6, device="meta")
    view = cache.run(aten.view.default, (x, [3, 4]), {})
    assert view._base is x  # a real view, not a fresh tensor
    same = cache.run(aten.add_.Tensor, (x, x), {})
    assert same is x
    real = torch.ones(3)
    out = cache.run(aten.mul.Tensor, (real, 2.0), {})
    assert torch.equal(out, torch.full((3,), 2.0))
    assert cache.hits == cache.misses == 0


def test_full_size_trace_is_identical_with_and_without_the_cache(monkeypatch):
    """A diffusion and a decode workload give the same op-event table either way."""
    settings = {
        "sd15": Settings(size="full", steps=2),
        "llama": Settings(size="full", prompt_len=64, new_tokens=12),
    }
    for name, s in settings.items():
        cached = trace_workload(name, s, save=False).events.drop(columns="run_id")
        with monkeypatch.context() as m:
            m.setattr(MetaOpCache, "run", lambda self, func, args, kwargs: func(*args, **kwargs))
            plain = trace_workload(name, s, save=False).events.drop(columns="run_id")
        assert cached.equals(plain), name
