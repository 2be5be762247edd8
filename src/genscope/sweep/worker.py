"""What runs on a worker (pool process or Ray task): trace one point, return the result.

Workers never write to the run store: they return the run (metadata, events, summary) and the
driver writes it atomically. So a multi-node Ray cluster needs no shared filesystem, and a
worker orphaned by a killed driver can never add a run behind the driver's back.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
import time
import traceback
from typing import Any

from genscope.api import trace_workload
from genscope.errors import UserError
from genscope.measure.run import measure_workload
from genscope.workloads.base import Settings


def one_line(err: BaseException) -> str:
    """A failure as one line: the UserError message, or ``Type: message`` for anything else."""
    text = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
    return " ".join(text.split()) or type(err).__name__


def trace_point(task: dict[str, Any]) -> Any:
    """Trace one point without saving; the run is tagged with the sweep and the point id."""

    kwargs = {k: v for k, v in task["settings"].items() if v is not None}
    if "res" in kwargs:
        kwargs["res"] = tuple(kwargs["res"])
    tags = {"sweep": task["sweep"], "point_id": task["point_id"]}
    if task["mode"] == "measured":
        device = kwargs.pop("device", None) or "cpu"
        result = measure_workload(
            task["workload"], Settings(**kwargs), device=device, hardware=task["hardware"],
            save=False,
        )  # fmt: skip
    elif task["mode"] == "analytic":
        params = inspect.signature(trace_workload).parameters
        extra = {"extra_meta": tags} if "extra_meta" in params else {}
        result = trace_workload(
            task["workload"], Settings(**kwargs), hardware=task["hardware"], save=False, **extra
        )
    else:
        raise UserError(f"unknown mode {task['mode']!r}; choose one of: analytic, measured")
    result.meta.update(tags)  # the driver writes meta as run.json
    return result


def run_point(task: dict[str, Any]) -> dict[str, Any]:
    """Never raises for a point's own failure: returns ``{"ok": False, "error": ...}``."""
    started = time.perf_counter()
    try:
        result = trace_point(task)
    except Exception as err:  # a failed point is data, not a crash of the sweep
        return {
            "ok": False,
            "error": one_line(err),
            "traceback": "" if isinstance(err, UserError) else traceback.format_exc(),
            "elapsed_s": time.perf_counter() - started,
        }
    return {
        "ok": True,
        "run_id": result.run_id,
        "meta": result.meta,
        "events": result.events,
        "summary": result.summary,
        "elapsed_s": time.perf_counter() - started,
    }


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(max(1, int(threads)))


def _die_with(pid: int) -> None:
    """Exit when the driver process ``pid`` is gone (a kill -9 of the sweep leaves no worker)."""
    if sys.platform.startswith("linux"):
        try:  # the kernel kills us when our parent (the forkserver) exits, which it does
            import ctypes  # when the driver dies

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
        except OSError:
            pass

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass

    threading.Thread(target=watch, name="genscope-driver-watch", daemon=True).start()


def init_pool_worker(driver_pid: int, threads: int | None) -> None:
    """ProcessPoolExecutor initializer."""
    _die_with(driver_pid)
    set_threads(threads)


def ray_run_point(task: dict[str, Any], threads: int | None) -> dict[str, Any]:
    """The Ray task body: torch threads follow the task's num_cpus."""
    set_threads(threads)
    return run_point(task)
