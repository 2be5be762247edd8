"""genscope's op observer: a minimal ``RecordFunction`` callback that records dispatch-level ops.

``torch.profiler`` (Kineto) records every dispatcher call, nested ones included
(``aten::linear`` → ``aten::t`` → ``aten::transpose`` → ``aten::as_strided`` …), at about
0.6 µs each; on tiny models (ops of a few µs, ~3 recorded calls per dispatch-level op) that
doubles the run time. Measured mode only needs the *dispatch-level* ops (see
:mod:`genscope.capture.profiling`), so this observer applies that rule while recording:

* CompositeImplicitAutograd ops without a kernel of their own for the device are not recorded
  (their children are looked at), exactly as the analytic ``TorchDispatchMode`` sees them;
* every other registered op is recorded (name, overload, start/end ``CLOCK_MONOTONIC`` ns,
  thread), and nothing below it is: its nested calls return from the callback at once;
* ``aten::scaled_dot_product_attention`` is recorded as a whole *and* its children are
  looked at, so the backend kernel it ran names it (as in the analytic capture).

Module and phase/step markers are recorded in Python with ``time.monotonic_ns`` (the same
clock), see :class:`genscope.capture.profiling.Markers`.

The callback is a few dozen lines of C++ compiled once per torch build with the system C++
compiler into ``$XDG_CACHE_HOME/genscope`` (``~/.cache/genscope``) and loaded with ctypes
(no Python extension, no ninja). When no compiler is available (or
``GENSCOPE_PROFILER=kineto``) measured mode falls back to ``torch.profiler`` and says so
(``instrument`` in the run summary). CUDA runs always use ``torch.profiler`` (kernel times).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sysconfig
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

SOURCE = r"""
// genscope op observer (see genscope/capture/observer.py).
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/record_function.h>
#include <c10/core/DispatchKey.h>
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace {

enum Kind : int8_t { KIND_UNKNOWN = 0, KIND_IMPLICIT = 1, KIND_KERNEL = 2, KIND_SDPA = 3 };

struct Rec {
  const char* name;      // stable pointer into the dispatcher's schema
  const char* overload;  // stable pointer ("" = default overload)
  int64_t start;
  int64_t end;
};

struct ThreadBuf {
  std::vector<Rec> recs;
  int64_t tid;
};

std::mutex g_mu;
std::vector<std::unique_ptr<ThreadBuf>> g_bufs;
std::atomic<int64_t> g_generation{0};
std::unordered_map<const char*, int8_t> g_kind;  // schema name pointer -> kind
c10::DispatchKey g_device_key = c10::DispatchKey::CPU;
at::CallbackHandle g_handle = 0;

thread_local ThreadBuf* t_buf = nullptr;
thread_local int64_t t_generation = -1;
thread_local int t_inside = 0;  // > 0: inside a recorded dispatch-level op

inline int64_t now_ns() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000LL + t.tv_nsec;
}

ThreadBuf* buf() {
  int64_t gen = g_generation.load(std::memory_order_relaxed);
  if (t_buf == nullptr || t_generation != gen) {
    std::lock_guard<std::mutex> lock(g_mu);
    auto b = std::make_unique<ThreadBuf>();
    b->recs.reserve(1 << 16);
    b->tid = static_cast<int64_t>(pthread_self());  // = Python's threading.get_ident()
    t_buf = b.get();
    t_generation = gen;
    g_bufs.push_back(std::move(b));
  }
  return t_buf;
}

thread_local std::unordered_map<const char*, int8_t> t_kind;  // lock-free per-thread copy
thread_local int64_t t_kind_generation = -1;

int8_t kind_of(const at::RecordFunction& fn) {
  const char* name = fn.name();
  int64_t gen = g_generation.load(std::memory_order_relaxed);
  if (t_kind_generation != gen) {
    t_kind.clear();
    t_kind_generation = gen;
  }
  auto hit = t_kind.find(name);
  if (hit != t_kind.end()) return hit->second;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_kind.find(name);
    if (it != g_kind.end()) return t_kind.emplace(name, it->second).first->second;
  }
  auto opname = fn.operator_name();
  if (!opname) return KIND_UNKNOWN;  // a named range, not an op (never cached)
  int8_t kind = KIND_UNKNOWN;
  auto handle = c10::Dispatcher::singleton().findOp(*opname);
  if (handle) {
    if (opname->name == "aten::scaled_dot_product_attention") {
      kind = KIND_SDPA;
    } else {
      bool implicit =
          handle->hasKernelForDispatchKey(c10::DispatchKey::CompositeImplicitAutograd);
      bool own = handle->hasKernelForDispatchKey(g_device_key);
      kind = (implicit && !own) ? KIND_IMPLICIT : KIND_KERNEL;
    }
  }
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_kind.emplace(name, kind);
  }
  t_kind.emplace(name, kind);
  return kind;
}

struct Ctx : at::ObserverContext {
  ThreadBuf* b;
  size_t idx;
  bool inside;
};

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  if (t_inside > 0) return nullptr;
  int8_t kind = kind_of(fn);
  if (kind == KIND_IMPLICIT || kind == KIND_UNKNOWN) return nullptr;
  ThreadBuf* b = buf();
  auto ctx = std::make_unique<Ctx>();
  ctx->b = b;
  ctx->idx = b->recs.size();
  ctx->inside = kind == KIND_KERNEL;
  if (ctx->inside) ++t_inside;
  b->recs.push_back(Rec{fn.name(), fn.overload_name(), now_ns(), 0});
  return ctx;
}

void on_end(const at::RecordFunction&, at::ObserverContext* c) {
  int64_t t = now_ns();
  if (c == nullptr) return;
  auto* ctx = static_cast<Ctx*>(c);
  ctx->b->recs[ctx->idx].end = t;
  if (ctx->inside) --t_inside;
}

}  // namespace

extern "C" {

int gs_obs_start(int cuda) {
  if (g_handle != 0) return -1;
  g_device_key = cuda ? c10::DispatchKey::CUDA : c10::DispatchKey::CPU;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_bufs.clear();
    g_kind.clear();
    g_generation.fetch_add(1);
  }
  g_handle = at::addGlobalCallback(
      at::RecordFunctionCallback(on_start, on_end)
          .needsInputs(false)
          .needsOutputs(false)
          .needsIds(false)
          .scopes({at::RecordScope::FUNCTION}));
  return 0;
}

int gs_obs_stop() {
  if (g_handle == 0) return -1;
  at::removeCallback(g_handle);
  g_handle = 0;
  return 0;
}

int64_t gs_obs_count() {
  std::lock_guard<std::mutex> lock(g_mu);
  int64_t n = 0;
  for (auto& b : g_bufs) n += static_cast<int64_t>(b->recs.size());
  return n;
}

int64_t gs_obs_fetch(int64_t* names, int64_t* overloads, int64_t* starts, int64_t* ends,
                     int64_t* threads, int64_t cap) {
  std::lock_guard<std::mutex> lock(g_mu);
  int64_t n = 0;
  for (auto& b : g_bufs) {
    for (auto& r : b->recs) {
      if (n >= cap) return n;
      names[n] = reinterpret_cast<int64_t>(r.name);
      overloads[n] = reinterpret_cast<int64_t>(r.overload);
      starts[n] = r.start;
      ends[n] = r.end;
      threads[n] = b->tid;
      ++n;
    }
  }
  return n;
}

void gs_obs_clear() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_bufs.clear();
  g_generation.fetch_add(1);
}

}  // extern "C"
"""

_lock = threading.Lock()
_lib: Any = None
_error: str | None = None


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "genscope"


def _build(so: Path) -> None:
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not cxx:
        raise RuntimeError("no C++ compiler (c++/g++) found")
    tdir = Path(torch.__file__).parent
    include, lib = tdir / "include", tdir / "lib"
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    so.parent.mkdir(parents=True, exist_ok=True)
    src = so.with_suffix(".cpp")
    src.write_text(SOURCE)
    tmp = so.with_name(f".{so.name}.tmp-{os.getpid()}")
    cmd = [
        cxx,
        "-O2",
        "-shared",
        "-fPIC",
        "-std=c++20",
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        f"-I{include}",
        f"-I{include / 'torch' / 'csrc' / 'api' / 'include'}",
        f"-I{sysconfig.get_paths()['include']}",
        str(src),
        "-o",
        str(tmp),
        f"-L{lib}",
        "-lc10",
        "-ltorch_cpu",
        f"-Wl,-rpath,{lib}",
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"compiling the op observer failed: {done.stderr[-800:]}")
        os.replace(tmp, so)
    finally:
        tmp.unlink(missing_ok=True)


def load() -> Any:
    """The compiled observer library (built on first use), or None with :func:`error` set."""
    global _lib, _error
    with _lock:
        if _lib is not None or _error is not None:
            return _lib
        if os.environ.get("GENSCOPE_PROFILER", "").lower() == "kineto":
            _error = "GENSCOPE_PROFILER=kineto"
            return None
        key = hashlib.sha256(
            f"{SOURCE}\n{torch.__version__}\n{torch.__file__}".encode()
        ).hexdigest()[:16]
        so = cache_dir() / f"op-observer-{key}.so"
        try:
            if not so.is_file():
                _build(so)
            lib = ctypes.CDLL(str(so))
        except (OSError, RuntimeError, subprocess.SubprocessError) as err:
            _error = f"{type(err).__name__}: {err}"
            return None
        lib.gs_obs_start.argtypes = [ctypes.c_int]
        lib.gs_obs_count.restype = ctypes.c_int64
        lib.gs_obs_fetch.restype = ctypes.c_int64
        _lib = lib
        return _lib


def error() -> str | None:
    """Why the observer is unavailable (None when it is, or has not been tried)."""
    return _error


def available() -> bool:
    return load() is not None


@dataclass
class Recorded:
    """Raw records of one observed pass: op name / overload, start / end ns, thread."""

    names: list[str]
    overloads: list[str]
    starts: np.ndarray
    ends: np.ndarray
    threads: np.ndarray


class Observer:
    """Context manager: record dispatch-level ops while active (CPU)."""

    def __init__(self, device: str = "cpu") -> None:
        self.lib = load()
        if self.lib is None:
            raise RuntimeError(f"op observer unavailable: {_error}")
        self.cuda = torch.device(device).type == "cuda"
        self.recorded: Recorded | None = None

    def __enter__(self) -> Observer:
        if self.lib.gs_obs_start(int(self.cuda)) != 0:
            raise RuntimeError("op observer already active")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.lib.gs_obs_stop()
        self.recorded = self._fetch()
        self.lib.gs_obs_clear()

    def _fetch(self) -> Recorded:
        n = int(self.lib.gs_obs_count())
        arrays = [np.zeros(n, dtype=np.int64) for _ in range(5)]
        ptr = ctypes.POINTER(ctypes.c_int64)
        got = int(self.lib.gs_obs_fetch(*(a.ctypes.data_as(ptr) for a in arrays), n))
        names_p, over_p, starts, ends, threads = (a[:got] for a in arrays)
        strings: dict[int, str] = {}

        def text(p: int) -> str:
            s = strings.get(p)
            if s is None:
                s = strings[p] = ctypes.string_at(p).decode() if p else ""
            return s

        return Recorded(
            [text(int(p)) for p in names_p],
            [text(int(p)) for p in over_p],
            starts,
            ends,
            threads,
        )
