"""Where points run: a local process pool (default) or Ray tasks.

An executor takes the pending points' tasks and yields ``(task, outcome)`` as each finishes, in
completion order. Outcomes come from :func:`genscope.sweep.worker.run_point`; the driver (the
sweep runner) writes successful runs into the store, so workers need no access to it.

:mod:`genscope.sweep.worker` (the tracing stack and every model library) is imported only when
points run, so a driver can import this module and start the forkserver
(:func:`forkserver_context`) before its own heavy imports, which then overlap the workers'.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import multiprocessing
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from genscope.errors import UserError, choices_error

EXECUTORS = ("local", "ray")
DEFAULT_LOCAL_WORKERS = 1
Task = dict[str, Any]
Outcome = dict[str, Any]


def failed(error: str) -> Outcome:
    return {"ok": False, "error": error}


class Executor(ABC):
    name: str

    @abstractmethod
    def run(self, tasks: list[Task]) -> Iterator[tuple[Task, Outcome]]:
        """Run every task; yield each as it completes. Closing the iterator stops the rest."""

    @abstractmethod
    def describe(self) -> str: ...


class LocalExecutor(Executor):
    """A ``ProcessPoolExecutor`` of ``workers`` processes (forkserver, so each worker starts
    from a clean single-threaded process with genscope already imported). ``workers=0`` runs
    points in the calling process (debugging)."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = DEFAULT_LOCAL_WORKERS if workers is None else workers
        if self.workers < 0:
            raise UserError(f"--workers must be >= 0 (got {self.workers})")

    def describe(self) -> str:
        if self.workers == 0:
            return "local executor, in-process"
        return f"local executor, {self.workers} worker process{'es' if self.workers > 1 else ''}"

    def run(self, tasks: list[Task]) -> Iterator[tuple[Task, Outcome]]:
        if not tasks:
            return
        from genscope.sweep.worker import init_pool_worker, one_line, run_point

        if self.workers == 0:
            for task in tasks:
                yield task, run_point(task)
            return
        n = min(self.workers, len(tasks))
        threads = max(1, (os.cpu_count() or 1) // n)
        ctx = forkserver_context({t["workload"] for t in tasks})
        pool = ProcessPoolExecutor(
            n, mp_context=ctx, initializer=init_pool_worker, initargs=(os.getpid(), threads)
        )
        finished = False
        try:
            pending: dict[Future, Task] = {pool.submit(run_point, t): t for t in tasks}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    task = pending.pop(fut)
                    try:
                        outcome = fut.result()
                    except BrokenProcessPool as err:
                        outcome = failed(f"worker process died: {one_line(err)}")
                    except Exception as err:
                        outcome = failed(one_line(err))
                    yield task, outcome
            finished = True
        finally:
            if finished:
                pool.shutdown(wait=True)
            else:  # interrupted: stop now rather than finish the points in flight
                procs = list((getattr(pool, "_processes", None) or {}).values())
                pool.shutdown(wait=False, cancel_futures=True)
                for proc in procs:
                    if proc.is_alive():
                        proc.terminate()


def forkserver_context(workloads: set[str], start: bool = False) -> Any:
    """The pool's multiprocessing context: a forkserver that has imported the tracing stack
    and ``workloads``' model classes. It starts on first use; ``start=True`` starts it now, so
    its imports overlap with the caller's own work (it serves every later pool)."""
    # read by genscope.sweep._preload in the forkserver
    os.environ["GENSCOPE_SWEEP_PRELOAD"] = ",".join(sorted(workloads))
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["genscope.sweep.worker", "genscope.sweep._preload"])
    if start:
        from multiprocessing import forkserver

        forkserver.ensure_running()
    return ctx


#: Ray reads this at import; false makes a local cluster use the loopback address only.
_RAY_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _use_loopback() -> None:
    """Make Ray use 127.0.0.1 as this node's address (it binds its servers there)."""
    os.environ[_RAY_CLUSTER_ENV] = "0"  # for the processes Ray starts
    try:  # and for this one, which read it at import (a private constant: tolerate its absence)
        from ray._private import ray_constants
    except ImportError:
        return
    ray_constants.ENABLE_RAY_CLUSTER = False


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def _check_reachable(address: str, timeout: float = 10.0) -> tuple[str, int] | None:
    """Fail fast with one line if a ``HOST:PORT`` head is not listening (``ray.init`` would
    retry for minutes). ``auto`` and other forms are left to Ray."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return None
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise UserError(
            f"cannot reach the Ray head at {address}: {err.strerror or err} "
            "(start it with `ray start --head`, or omit --address for a local cluster)"
        ) from None
    return host, int(port)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(
            "the ray executor needs Ray: pip install 'genscope[ray]' (or use --executor local)"
        ) from None
    return ray


class RayExecutor(Executor):
    """Each point is one Ray task with ``num_cpus``/``num_gpus`` resources.

    With an ``address`` (``HOST:PORT`` of a head started by ``ray start --head``, or ``auto``;
    ``$RAY_ADDRESS`` is used when no address is given) it connects to that cluster; otherwise it
    starts a private one-node cluster on loopback (no dashboard) and stops it at the end. If Ray
    is already initialized in this process, that session is used as is.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        max_in_flight: int | None = None,
    ) -> None:
        if num_cpus < 0 or num_gpus < 0:
            raise UserError("--num-cpus and --num-gpus must be >= 0")
        if max_in_flight is not None and max_in_flight < 1:
            raise UserError(f"--workers must be >= 1 with the ray executor (got {max_in_flight})")
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_in_flight = max_in_flight

    def describe(self) -> str:
        where = f"cluster at {self.address}" if self.address else "local cluster (loopback)"
        cap = f", at most {self.max_in_flight} at once" if self.max_in_flight else ""
        return (
            f"ray executor, {where}, per point num_cpus={self.num_cpus:g} "
            f"num_gpus={self.num_gpus:g}{cap}"
        )

    def _connect(self, ray: Any) -> bool:
        """Initialize Ray; True if we started (and so must stop) it."""
        if ray.is_initialized():
            return False
        common: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        if self.address:
            host_port = _check_reachable(self.address)
            if host_port and _is_loopback(host_port[0]):
                _use_loopback()  # else Ray swaps 127.0.0.1 for this host's external address
            try:
                ray.init(address=self.address, **common)
            except Exception as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                hint = (
                    "" if os.environ.get("RAY_AUTH_MODE")
                    else " (if the cluster uses token auth, set RAY_AUTH_MODE=token here too)"
                )  # fmt: skip
                raise UserError(
                    f"cannot connect to the Ray cluster at {self.address}: "
                    f"{type(err).__name__}: {first}{hint}"
                ) from None
            return True
        _use_loopback()
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address="local", include_dashboard=False, **common)
        return True

    def run(self, tasks: list[Task]) -> Iterator[tuple[Task, Outcome]]:
        if not tasks:
            return
        from genscope.sweep.worker import ray_run_point

        ray = import_ray()
        owned = self._connect(ray)
        pending: dict[Any, Task] = {}
        try:
            remote = ray.remote(ray_run_point).options(
                num_cpus=self.num_cpus, num_gpus=self.num_gpus, name="genscope-sweep-point"
            )
            threads = max(1, int(self.num_cpus))
            queue = list(tasks)
            limit = self.max_in_flight or len(queue)
            while queue or pending:
                while queue and len(pending) < limit:
                    task = queue.pop(0)
                    pending[remote.remote(task, threads)] = task
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    task = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except Exception as err:  # worker crash, node loss, cancellation
                        lines = [ln for ln in str(err).splitlines() if ln.strip()]
                        outcome = failed(f"ray: {type(err).__name__}: {lines[0] if lines else ''}")
                    yield task, outcome
        finally:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            if owned:
                ray.shutdown()


def make_executor(
    kind: str,
    *,
    workers: int | None = None,
    address: str | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    resources: dict[str, float] | None = None,
) -> Executor:
    """Build an executor; CLI ``--num-cpus/--num-gpus`` override the spec's ``resources``."""
    if kind not in EXECUTORS:
        raise choices_error("executor", kind, EXECUTORS)
    res = dict(resources or {})
    if kind == "local":
        if address:
            raise UserError("--address is for --executor ray")
        if num_gpus:
            raise UserError("--num-gpus needs --executor ray (the local pool does not place GPUs)")
        return LocalExecutor(workers)
    return RayExecutor(
        address=address,
        num_cpus=num_cpus if num_cpus is not None else res.get("num_cpus", 1.0),
        num_gpus=num_gpus if num_gpus is not None else res.get("num_gpus", 0.0),
        max_in_flight=workers,
    )
