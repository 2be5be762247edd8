"""The sweep loop: skip completed points, run the rest, record failures, summarize.

State lives in two places, both crash-safe:

* the run store: each completed point is a complete run folder whose run.json carries
  ``"sweep": NAME`` and ``"point_id": <sha256>``. Runs are written ``.tmp-<id>`` then renamed,
  so a ``kill -9`` at any moment loses no completed point and leaves nothing that looks
  complete. Completion is judged from these folders only.
* ``<home>/sweeps/<name>/``: ``spec.yaml`` (copy of the spec last run), ``failures.jsonl``
  (one line per failed attempt, appended and fsynced; failed points are retried on re-run) and
  ``.lock`` (one sweep process per name at a time; the kernel drops it if the process dies).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from genscope.console import err_console
from genscope.errors import UserError
from genscope.paths import home
from genscope.store import check_store, write_run
from genscope.sweep.executors import Executor
from genscope.sweep.query import completed_points
from genscope.sweep.spec import Point, SweepSpec


def sweep_dir(name: str) -> Path:
    return home() / "sweeps" / name


@dataclass
class SweepReport:
    name: str
    points: int
    done: int = 0  # completed by this invocation
    failed: int = 0  # failed in this invocation (invalid points included)
    skipped: int = 0  # already complete before this invocation
    failures: list[dict[str, Any]] = field(default_factory=list)
    #: the run of every completed point of the grid (skipped and new), in grid order
    run_ids: list[str] = field(default_factory=list)
    executor: str = ""
    dry_run: bool = False
    plan: list[dict[str, Any]] | None = None
    elapsed_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "points": self.points,
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "failures": self.failures,
            "run_ids": self.run_ids,
            "executor": self.executor,
            "dry_run": self.dry_run,
            "elapsed_s": round(self.elapsed_s, 3),
        }
        if self.plan is not None:
            out["plan"] = self.plan
        return out


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _append_line(path: Path, record: dict[str, Any]) -> None:
    """One JSON line, appended and fsynced (O_APPEND keeps concurrent lines whole)."""
    line = json.dumps(record, default=str, sort_keys=False) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def sweep_lock(name: str) -> Iterator[None]:
    path = sweep_dir(name) / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"sweep {name!r} is already running in another process (lock {path})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def failure_record(
    spec: SweepSpec,
    point: Point,
    error: str,
    stage: str,
    elapsed_s: float | None = None,
    trace: str = "",
) -> dict[str, Any]:
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sweep": spec.name,
        "point_id": point.point_id,
        "label": point.label(),
        "workload": point.workload,
        "mode": point.mode,
        "hardware": point.hardware,
        "settings": {k: v for k, v in point.settings.items() if v is not None},
        "stage": stage,  # "validate" (invalid for its workload) | "run"
        "error": error,
        "elapsed_s": None if elapsed_s is None else round(elapsed_s, 3),
    }
    if trace:  # unexpected exceptions keep their traceback in failures.jsonl
        record["traceback"] = trace
    return record


def read_failures(name: str) -> list[dict[str, Any]]:
    """Every failure line ever recorded for sweep ``name`` (oldest first)."""
    path = sweep_dir(name) / "failures.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a torn last line (crash mid-write) is ignored
            continue
    return out


def plan(spec: SweepSpec, points: list[Point] | None = None) -> list[dict[str, Any]]:
    """Each point with its status: ``done`` (and its run), ``pending`` or ``invalid``."""
    points = spec.points() if points is None else points
    done = completed_points(spec.name)
    rows = []
    for p in points:
        status = "done" if p.point_id in done else "invalid" if p.error else "pending"
        rows.append(
            {
                "index": p.index,
                "label": p.label(),
                **p.to_json(),
                "status": status,
                "run_id": done.get(p.point_id),
            }
        )
    return rows


def _progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )


def run_sweep(
    spec: SweepSpec,
    executor: Executor,
    *,
    dry_run: bool = False,
    progress: bool = True,
    console: Console | None = None,
) -> SweepReport:
    """Run every point of ``spec`` not already in the store; see the module docstring."""

    console = console or err_console
    started = time.perf_counter()
    points = spec.points()
    report = SweepReport(spec.name, len(points), executor=executor.describe(), dry_run=dry_run)
    if dry_run:
        report.plan = plan(spec, points)
        report.skipped = sum(r["status"] == "done" for r in report.plan)
        report.run_ids = [r["run_id"] for r in report.plan if r["run_id"]]
        report.elapsed_s = time.perf_counter() - started
        return report

    check_store(write=True)  # an unusable store is found before any point runs
    folder = sweep_dir(spec.name)
    folder.mkdir(parents=True, exist_ok=True)
    failures_path = folder / "failures.jsonl"
    with sweep_lock(spec.name):
        spec_copy = folder / "spec.yaml"
        if spec_copy.exists() and spec.text and spec_copy.read_text() != spec.text:
            console.print(
                f"[yellow]note:[/] the spec of sweep {spec.name!r} changed since its last run; "
                "completed points that are still in the grid are skipped"
            )
        if spec.text:
            _write_atomic(spec_copy, spec.text)

        done_before = completed_points(spec.name)
        runs: dict[str, str] = {}
        todo: list[Point] = []
        invalid: list[Point] = []
        for p in points:
            if p.point_id in done_before:
                runs[p.point_id] = done_before[p.point_id]
                report.skipped += 1
            elif p.error:
                invalid.append(p)
            else:
                todo.append(p)
        by_id = {p.point_id: p for p in todo}

        def fail(
            point: Point, error: str, stage: str, elapsed: float | None = None, trace: str = ""
        ) -> None:
            record = failure_record(spec, point, error, stage, elapsed, trace)
            _append_line(failures_path, record)
            report.failures.append({k: v for k, v in record.items() if k != "traceback"})
            report.failed += 1
            bar.console.print(f"[red]failed[/] {point.label()}: {error}", soft_wrap=True)

        def status() -> str:
            return f"done {report.done} · failed {report.failed} · skipped {report.skipped}"

        console.print(
            f"sweep {spec.name}: {len(points)} points, {report.skipped} already done, "
            f"{len(todo)} to run, {len(invalid)} invalid ({executor.describe()})",
            soft_wrap=True,
        )
        with _progress(console, progress) as bar:
            tid = bar.add_task(
                spec.name, total=len(points), completed=report.skipped, status=status()
            )
            for p in invalid:
                fail(p, p.error or "invalid point", "validate")
                bar.update(tid, advance=1, status=status())
            # closing(): an exception in this loop stops the executor's workers/tasks at once
            with closing(executor.run([p.task(spec.name) for p in todo])) as results:
                for task, outcome in results:
                    point = by_id[task["point_id"]]
                    if outcome.get("ok"):
                        try:
                            write_run(
                                outcome["run_id"],
                                outcome["meta"],
                                outcome["events"],
                                outcome["summary"],
                            )
                        except OSError as err:
                            fail(point, f"could not write the run: {err}", "store")
                        else:
                            runs[point.point_id] = outcome["run_id"]
                            report.done += 1
                            bar.console.print(
                                f"[green]done[/]   {point.label()} → {outcome['run_id']} "
                                f"({outcome.get('elapsed_s', 0):.1f} s)",
                                soft_wrap=True,
                            )
                    else:
                        fail(
                            point,
                            outcome.get("error", "unknown error"),
                            "run",
                            outcome.get("elapsed_s"),
                            outcome.get("traceback", ""),
                        )
                    bar.update(tid, advance=1, status=status())
    report.run_ids = [runs[p.point_id] for p in points if p.point_id in runs]
    report.elapsed_s = time.perf_counter() - started
    return report
