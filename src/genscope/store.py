"""The run store: one folder per run, written atomically, queried with DuckDB.

Layout under ``genscope.paths.runs_dir()``::

    <run_id>/run.json         workload, options, environment, hardware spec
    <run_id>/events.parquet   the op-event table
    <run_id>/summary.json     totals (what ``genscope trace --json`` prints)

A run is written into ``.tmp-<run_id>`` (with an ``.owner`` file naming the writing process) and
renamed when complete, so an interrupted run never looks complete; readers skip dot-folders and
later writers remove staging folders whose process is gone or that are older than an hour.

Robustness rules (``tests/test_hostile.py`` holds them): a run folder that is damaged (bad
JSON, missing or unreadable file) is reported as damaged and never hides the other runs; a run
id resolves only to a folder directly inside the store; paths are never formatted into SQL
(file lists are built in Python and passed to DuckDB as bound parameters).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from genscope.errors import UserError, clip
from genscope.paths import runs_dir
from genscope.schema import SCHEMA_VERSION, events_frame

#: a run id as genscope writes it: no separators, no leading dot, so it names a store folder only
RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
#: staging folders older than this are abandoned whatever their owner file says
STAGING_MAX_AGE_S = 3600.0
_OWNER = ".owner"
LIST_COLUMNS = ["run_id", "workload", "size", "mode", "hardware", "created", "sweep", "dtype",
                "attention"]  # fmt: skip


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy/pandas scalars made plain and non-finite floats made ``None``."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def slug(name: str, max_len: int = 40) -> str:
    """A file-system-safe form of ``name`` (letters, digits, ``._-``; at most ``max_len``).

    Run folders are named from user-given names (``genscope.trace(..., name=...)``, class
    names); the slug keeps them inside the store whatever the name holds. The full name is kept
    in run.json.
    """
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
    text = re.sub(r"-{2,}", "-", text).strip(".-_")[:max_len].strip(".-_")
    return text or "run"


def new_run_id(workload: str) -> str:
    """``<UTC stamp>-<slug of the name>-<6 hex>``: unique, sortable, safe as a folder name."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{stamp}-{slug(workload)}-{secrets.token_hex(3)}"


# ----------------------------------------------------------------------------- store checks
def check_store(*, write: bool) -> Path:
    """The runs folder, after checking the store is usable; raises one-line :class:`UserError`.

    ``write``: the store must take a new run (checked by creating and removing a probe file,
    before any tracing work). Otherwise it must only be readable; a store that does not exist
    yet is an empty store.
    """
    root = runs_dir()
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # a store below a file can never be created
    if not existing.is_dir():
        raise UserError(f"run store {clip(str(existing))} is not a folder (check GENSCOPE_HOME)")
    if not write:
        if root.exists() and not os.access(root, os.R_OK | os.X_OK):
            raise UserError(f"run store {clip(str(root))} is not readable (check GENSCOPE_HOME)")
        return root
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".probe-{os.getpid()}-{secrets.token_hex(3)}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserError(
            f"run store {clip(str(root))} is not writable: {err.strerror or err} "
            "(check GENSCOPE_HOME)"
        ) from None
    return root


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (signal 0 probes without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_staging(root: Path | None = None, now: float | None = None) -> list[str]:
    """Remove abandoned ``.tmp-*`` staging folders; return their names.

    A staging folder is abandoned when it is older than :data:`STAGING_MAX_AGE_S` or when the
    process named in its ``.owner`` file is gone (a SIGKILL during a write leaves one).
    """
    root = root or runs_dir()
    now = time.time() if now is None else now
    removed = []
    try:
        candidates = [p for p in root.iterdir() if p.name.startswith(".tmp-") and p.is_dir()]
    except OSError:
        return removed
    for tmp in candidates:
        try:
            age = now - tmp.stat().st_mtime
            pid_text = (tmp / _OWNER).read_text().strip() if (tmp / _OWNER).exists() else ""
        except OSError:
            continue
        pid = int(pid_text) if pid_text.isdigit() else None
        if age > STAGING_MAX_AGE_S or (pid is not None and not _pid_alive(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp.name)
    return removed


@contextmanager
def staging(run_id: str) -> Iterator[Path]:
    """A temporary run folder that becomes ``<run_id>`` only if the block completes."""
    if not RUN_ID_RE.fullmatch(run_id):
        raise UserError(f"not a valid run id: {clip(run_id)!r}")
    root = check_store(write=True)
    clean_staging(root)
    tmp = root / f".tmp-{run_id}"
    tmp.mkdir()
    try:
        (tmp / _OWNER).write_text(str(os.getpid()))
        yield tmp
        (tmp / _OWNER).unlink()
        os.replace(tmp, root / run_id)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_run(
    run_id: str, meta: dict[str, Any], events: pd.DataFrame, summary: dict[str, Any]
) -> Path:
    """Write one run atomically (staged, then renamed); return its folder."""
    with staging(run_id) as tmp:
        events_frame(events).to_parquet(tmp / "events.parquet", index=False)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        (tmp / "run.json").write_text(
            json.dumps(meta | {"schema_version": SCHEMA_VERSION}, indent=1, default=str)
        )
    return runs_dir() / run_id


# ----------------------------------------------------------------------------- reading
@dataclass
class StoreScan:
    """Every run folder of the store: the healthy ones (with their run.json) and the damaged."""

    healthy: dict[str, dict[str, Any]]  # run_id -> run.json
    damaged: dict[str, str]  # folder name -> what is wrong, one line

    def files(self, name: str) -> list[str]:
        """Paths of ``name`` (e.g. ``events.parquet``) in every healthy run, for DuckDB."""
        return [str(runs_dir() / r / name) for r in self.healthy]


def _read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``ValueError`` with a one-line reason otherwise."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"{path.name} is missing") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path.name} is unreadable ({clip(str(err), 60)})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path.name} is not valid JSON ({err.msg} at char {err.pos})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path.name} is not a JSON object")
    return obj


def inspect_run(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(run.json, None) for a complete run folder, else (None, one line saying what is wrong)."""
    try:
        meta = _read_json_object(folder / "run.json")
        for key, kind in (("run_id", str), ("workload", str), ("settings", dict)):
            if not isinstance(meta.get(key), kind):
                raise ValueError(f"run.json has no valid {key!r}")
        if meta["run_id"] != folder.name:
            raise ValueError(
                f"run.json names run {clip(meta['run_id'], 60)!r}, not its folder's name"
            )
        _read_json_object(folder / "summary.json")
        events = folder / "events.parquet"
        if not events.exists():
            raise ValueError("events.parquet is missing")
        try:
            pq.read_metadata(events)
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise ValueError(f"events.parquet is unreadable ({clip(str(err), 60)})") from None
    except ValueError as err:
        return None, str(err)
    return meta, None


def scan_store() -> StoreScan:
    """Inspect every run folder (dot-folders, i.e. staging, are skipped)."""
    root = check_store(write=False)
    healthy: dict[str, dict[str, Any]] = {}
    damaged: dict[str, str] = {}
    if not root.is_dir():
        return StoreScan(healthy, damaged)
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        meta, problem = inspect_run(folder)
        if meta is None:
            damaged[folder.name] = problem or "damaged"
        else:
            healthy[folder.name] = meta
    return StoreScan(healthy, damaged)


def run_path(run_id: str) -> Path:
    """The folder of run ``run_id``, which must be a complete run directly inside the store."""
    root = check_store(write=False)
    path = root / run_id
    inside = RUN_ID_RE.fullmatch(run_id) and path.resolve().parent == root.resolve()
    if not inside or not path.is_dir():
        raise UserError(f"no run {clip(run_id)!r} in {clip(str(root))} (see `genscope runs`)")
    _, problem = inspect_run(path)
    if problem:
        raise UserError(f"run {run_id} is damaged: {problem}")
    return path


def load_run(run_id: str) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """run.json, the op events and summary.json of one run; a damaged run is a UserError."""
    path = run_path(run_id)
    try:
        meta = _read_json_object(path / "run.json")
        summary = _read_json_object(path / "summary.json")
        events = pd.read_parquet(path / "events.parquet")
    except Exception as err:  # damaged after the check, or a damaged data page
        raise UserError(f"run {run_id} is damaged: {clip(str(err))}") from None
    return meta, events, summary


def list_runs(workload: str | None = None, sweep: str | None = None) -> pd.DataFrame:
    """One row per complete run (newest first); filters are bound parameters, never SQL text.

    Damaged runs are not rows here; :func:`scan_store` names them.
    """
    return runs_frame(scan_store(), workload, sweep)


def runs_frame(
    scan: StoreScan, workload: str | None = None, sweep: str | None = None
) -> pd.DataFrame:
    """The :func:`list_runs` table of an existing scan."""
    records = []
    for meta in scan.healthy.values():
        s = meta["settings"]
        records.append(
            {
                "run_id": meta["run_id"],
                "workload": meta["workload"],
                "size": s.get("size"),
                "mode": meta.get("mode"),
                "hardware": meta.get("hardware"),
                "created": meta.get("created"),
                "sweep": meta.get("sweep"),
                "dtype": s.get("dtype"),
                "attention": s.get("attention"),
            }
        )
    frame = pd.DataFrame.from_records(records, columns=LIST_COLUMNS).astype(object)
    # every cell a string or NULL, so a hand-edited run.json cannot give a column mixed types
    frame = frame.map(lambda v: None if v is None else str(v))
    con = duckdb.connect()
    con.register("runs", frame)
    return con.execute(
        """
        SELECT * FROM runs
        WHERE (? IS NULL OR workload = ?) AND (? IS NULL OR sweep = ?)
        ORDER BY created DESC, run_id DESC
        """,
        [workload, workload, sweep, sweep],
    ).df()


def query_events(sql: str) -> pd.DataFrame:
    """Run SQL over every complete run's events, exposed as the view ``events``."""
    files = scan_store().files("events.parquet")
    con = duckdb.connect()
    if not files:
        raise UserError(f"no runs in {clip(str(runs_dir()))} (see `genscope trace`)")
    con.read_parquet(files, union_by_name=True).create_view("events")
    return con.execute(sql).df()
