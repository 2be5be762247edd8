"""``genscope calibrate``: measure this machine's ceilings and save them as a hardware spec.

Datasheet peaks say what silicon could do; a roofline for *this* machine needs what PyTorch
actually gets here. Each ceiling is timed with warm-up, a fixed number of calls per repeat (so
microsecond ops are not lost in timer noise) and ``repeats`` repeats; the spec keeps the median,
and ``extra["measurements"]`` keeps every repeat with min and max so the spread is visible.

What is measured (FLOPs counted honestly, multiply-add = 2):

* ``matrix_peak``: ``torch.mm`` on square n x n matrices, 2 n^3 FLOP per call, for a few n;
  the peak is the median of the best n.
* ``vector_peak``: ``torch.addcmul`` (out = c + a * b, 2 FLOP per element) over a few sizes;
  the best median. This is an *achievable elementwise* rate: loads and stores, not the FMA
  units, bound it, which is also what bounds norms and activations in practice.
* ``mem_bw``: ``dst.copy_(src)`` of 256 MiB, bytes = read + write (2 x size). Write-allocate
  traffic is not counted, so this is the bandwidth a copy-like op sees, not the DRAM peak.
* ``dispatch_overhead_s``: ``torch.add`` on 1-element tensors: per-op framework overhead.

Other processes sharing the CPUs lower every number, so ``extra["contention"]`` records how much
of the machine they used during the run, and ``extra["warnings"]`` says when that was too much.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from genscope.costmodel.hardware import HardwareSpec, local_spec_path
from genscope.dtypes import subset
from genscope.errors import UserError, choices_error
from genscope.machine.contention import Contention
from genscope.machine.timing import time_calls

DEVICES: tuple[str, ...] = ("cpu", "cuda")

#: Progress callback: (step label, steps done, steps total).
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Plan:
    """Sizes and timing budget of one calibration run."""

    gemm_sizes: tuple[int, ...]
    vector_sizes: tuple[int, ...]
    copy_bytes: int
    min_repeat_s: float  # each repeat loops the op until it lasts about this long


FULL = Plan((512, 1024, 2048), (2**15, 2**16, 2**17, 2**18, 2**20, 2**22), 256 * 2**20, 0.1)
#: For tests and smoke runs: finishes in about a second and is *not* representative
#: (a 4 MiB copy stays in cache).
QUICK = Plan((64, 128), (2**12, 2**14), 4 * 2**20, 0.002)

#: The dtypes whose peaks calibration measures.
_DTYPES: dict[str, torch.dtype] = subset("fp32", "bf16")


def _sync_fn(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _stats(samples: list[float], calls: int, **info: Any) -> dict[str, Any]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "repeats": len(samples),
        "calls_per_repeat": calls,
        "samples": samples,
        **info,
    }


def _rate_stats(seconds: list[float], calls: int, work: float, **info: Any) -> dict[str, Any]:
    """Turn per-call seconds into work/s (FLOP/s or bytes/s); min/max are of the rate."""
    return _stats([work / s for s in seconds], calls, work_per_call=work, **info)


def _best(by_size: dict[str, dict[str, Any]], unit: str, **info: Any) -> dict[str, Any]:
    """The size with the highest median rate; its stats become the headline measurement."""
    size, best = max(by_size.items(), key=lambda kv: kv[1]["median"])
    keep = ("median", "min", "max", "repeats", "calls_per_repeat")
    return {
        "unit": unit,
        **{k: best[k] for k in keep},
        "best_size": size,
        **info,
        "by_size": by_size,
    }


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    """The ISA flags that decide CPU GEMM speed (AVX-512, BF16, AMX), as reported by Linux."""
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in have]
    return []


def _cpu_memory_bytes() -> tuple[int, str]:
    """Usable RAM: physical memory, capped by a cgroup limit when one is set."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    how = "os.sysconf(SC_PHYS_PAGES * SC_PAGE_SIZE)"
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            limit = int(Path(limit_file).read_text().strip())
            if 0 < limit < total:
                return limit, f"cgroup limit {limit_file} (below physical RAM {total} B)"
    return total, how


def calibrate(
    device: str = "cpu",
    repeats: int = 5,
    warmup: int = 2,
    quick: bool = False,
    *,
    progress: ProgressFn | None = None,
) -> HardwareSpec:
    """Measure ``device`` and return a ``measured`` spec named ``<device>-local``.

    ``quick`` uses tiny sizes and at most 2 repeats and 1 warm-up, for tests; its numbers are
    not representative and the spec says so. ``progress`` is called before each step.
    """
    if device not in DEVICES:
        raise choices_error("device", device, DEVICES)
    if repeats < 1 or warmup < 0:
        raise UserError(f"calibrate: need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"calibrate --device cuda: CUDA is not available (torch {torch.__version__})"
        )
    plan = QUICK if quick else FULL
    if quick:
        repeats, warmup = min(repeats, 2), min(warmup, 1)
    dev = torch.device(device)
    sync = _sync_fn(dev)
    steps = (
        [("gemm", d, n) for d in _DTYPES for n in plan.gemm_sizes]
        + [("vector", d, n) for d in _DTYPES for n in plan.vector_sizes]
        + [("copy", "fp32", plan.copy_bytes), ("dispatch", "fp32", 1)]
    )
    timing = {"warmup": warmup, "repeats": repeats, "min_repeat_s": plan.min_repeat_s}
    gemm: dict[str, dict[str, dict[str, Any]]] = {d: {} for d in _DTYPES}
    vector: dict[str, dict[str, dict[str, Any]]] = {d: {} for d in _DTYPES}
    contention = Contention()
    results: dict[str, dict[str, Any]] = {}
    with torch.inference_mode():
        for i, (kind, dname, size) in enumerate(steps):
            dtype = _DTYPES[dname]
            if progress is not None:
                progress(_step_label(kind, dname, size), i, len(steps))
            if kind == "gemm":
                a = torch.randn(size, size, device=dev).to(dtype)
                b = torch.randn(size, size, device=dev).to(dtype)
                c = torch.empty(size, size, device=dev, dtype=dtype)
                secs, calls = time_calls(
                    lambda a=a, b=b, c=c: torch.mm(a, b, out=c), sync, **timing
                )
                gemm[dname][str(size)] = _rate_stats(secs, calls, 2.0 * size**3)
            elif kind == "vector":
                a, b, c = (torch.randn(size, device=dev).to(dtype) for _ in range(3))
                out = torch.empty_like(a)
                secs, calls = time_calls(
                    lambda a=a, b=b, c=c, out=out: torch.addcmul(c, a, b, out=out), sync, **timing
                )
                vector[dname][str(size)] = _rate_stats(secs, calls, 2.0 * size)
            elif kind == "copy":
                src = torch.empty(size // 4, device=dev, dtype=torch.float32).fill_(1.0)
                dst = torch.empty_like(src).fill_(0.0)
                secs, calls = time_calls(lambda s=src, d=dst: d.copy_(s), sync, **timing)
                results["mem_bw"] = {
                    "unit": "bytes/s",
                    **_rate_stats(secs, calls, 2.0 * size, buffer_bytes=size),
                }
                del src, dst
            else:
                x = torch.ones(1, device=dev)
                y = torch.ones(1, device=dev)
                secs, calls = time_calls(lambda x=x, y=y: torch.add(x, y), sync, **timing)
                results["dispatch_overhead_s"] = {"unit": "s", **_stats(secs, calls)}
    if progress is not None:
        progress("done", len(steps), len(steps))
    for dname in _DTYPES:
        results[f"matrix_peak.{dname}"] = _best(gemm[dname], "FLOP/s", op="torch.mm")
    for dname in _DTYPES:
        results[f"vector_peak.{dname}"] = _best(vector[dname], "FLOP/s", op="torch.addcmul")
    order = ("matrix_peak", "vector_peak", "mem_bw", "dispatch_overhead_s")
    results = dict(sorted(results.items(), key=lambda kv: order.index(kv[0].split(".")[0])))
    return _build_spec(dev, plan, quick, timing, results, contention.finish())


def _step_label(kind: str, dname: str, size: int) -> str:
    if kind == "gemm":
        return f"GEMM {dname} {size}x{size}"
    if kind == "vector":
        return f"elementwise {dname} {size:,} elements"
    if kind == "copy":
        return f"copy {size // 2**20} MiB"
    return "dispatch overhead"


def _build_spec(
    dev: torch.device,
    plan: Plan,
    quick: bool,
    timing: dict[str, Any],
    results: dict[str, dict[str, Any]],
    contention: dict[str, Any],
) -> HardwareSpec:
    threads = torch.get_num_threads()
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        machine: dict[str, Any] = {"device_name": props.name, "cuda": torch.version.cuda}
        mem_bytes, mem_how = (
            int(props.total_memory),
            "torch.cuda.get_device_properties().total_memory",
        )
        what = props.name
        machine["allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    else:
        machine = {"cpu": _cpu_name(), "cpu_flags": _cpu_flags(), "torch_threads": threads}
        mem_bytes, mem_how = _cpu_memory_bytes()
        what = f"{machine['cpu']}, {threads} torch threads"
    machine.update(torch=torch.__version__, platform=platform.platform())
    n = timing["repeats"]
    where = "extra.measurements"
    gemm_sizes = ", ".join(str(s) for s in plan.gemm_sizes)
    vec_sizes = ", ".join(f"{s:,}" for s in plan.vector_sizes)
    copy_mib = plan.copy_bytes // 2**20
    sources = {
        "mem_bytes": f"{mem_how}; queried, not timed",
        "mem_bw": (
            f"genscope calibrate: dst.copy_(src) of {copy_mib} MiB fp32, bytes = read + write "
            f"= 2 x {copy_mib} MiB per call (write-allocate traffic not counted); median of "
            f"{n} repeats, spread in {where}['mem_bw']"
        ),
        "dispatch_overhead_s": (
            f"genscope calibrate: torch.add on two 1-element tensors, median seconds per call "
            f"over {n} repeats; spread in {where}['dispatch_overhead_s']"
        ),
        "extra.measurements": "raw timings of genscope calibrate: per-repeat samples, min, max",
        "extra.settings": "arguments of this genscope calibrate run",
        "extra.machine": "introspection at calibration time (torch, OS, CPU flags)",
        "extra.duration_s": "wall time of this genscope calibrate run",
        "extra.contention": (
            "load average before/after, and the share of all CPUs other processes used during "
            "the run (from /proc/stat minus this process's CPU time)"
        ),
    }
    for dname in _DTYPES:
        best = results[f"matrix_peak.{dname}"]["best_size"]
        sources[f"matrix_peak.{dname}"] = (
            f"genscope calibrate: torch.mm of {dname} n x n matrices (n in {gemm_sizes}), "
            f"2 n^3 FLOP per call; median of {n} repeats at the best n ({best}); "
            f"spread in {where}['matrix_peak.{dname}']"
            + (f"; allow_tf32={machine['allow_tf32']}" if dev.type == "cuda" else "")
        )
        best_v = int(results[f"vector_peak.{dname}"]["best_size"])
        sources[f"vector_peak.{dname}"] = (
            f"genscope calibrate: torch.addcmul (out = c + a * b, 2 FLOP per element) on {dname} "
            f"tensors of {vec_sizes} elements; median of {n} repeats at the best size "
            f"({best_v:,}); an achievable elementwise rate bound by loads/stores, not the "
            f"FMA-unit peak; spread in {where}['vector_peak.{dname}']"
        )
    status = dict.fromkeys(sources, "measured")
    status["extra.settings"] = status["extra.machine"] = "input"  # chosen or reported, not timed
    description = f"Measured on this machine ({dev.type}): {what}, torch {torch.__version__}"
    if quick:
        description += " [quick run: tiny sizes, not representative]"
    warnings = [contention["warning"]] if "warning" in contention else []
    if warnings:
        description += " [contended: see extra.warnings]"
    return HardwareSpec(
        name=f"{dev.type}-local",
        description=description,
        kind="measured",
        matrix_peak={d: results[f"matrix_peak.{d}"]["median"] for d in _DTYPES},
        vector_peak={d: results[f"vector_peak.{d}"]["median"] for d in _DTYPES},
        mem_bw=results["mem_bw"]["median"],
        mem_bytes=mem_bytes,
        dispatch_overhead_s=results["dispatch_overhead_s"]["median"],
        sources=dict(sorted(sources.items())),
        status=dict(sorted(status.items())),
        extra={
            "device": dev.type,
            "calibrated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "duration_s": contention.pop("duration_s"),
            "warnings": warnings,
            "settings": {**timing, "quick": quick},
            "machine": machine,
            "contention": {k: v for k, v in contention.items() if k != "warning"},
            "measurements": results,
        },
    )


def save_local_spec(spec: HardwareSpec) -> Path:
    """Write a measured spec to ``paths.hardware_dir()/<name>.json``, atomically.

    The JSON goes to a temporary file in the same directory first and is then renamed over
    the target, so an interrupted run never leaves a half-written spec behind.
    """
    if spec.kind != "measured":
        raise UserError(f"save_local_spec: {spec.name!r} is a {spec.kind} spec, not a measured one")
    path = local_spec_path(spec.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(spec.to_dict(), fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
