"""The run store: one folder per run, written atomically, queried with DuckDB.

Layout under ``genscope.paths.runs_dir()``::

    <run_id>/run.json         workload, options, environment, hardware spec
    <run_id>/events.parquet   the op-event table
    <run_id>/summary.json     totals (what ``genscope trace --json`` prints)

A run is written into ``.tmp-<run_id>`` and renamed when complete, so an interrupted run never
looks complete; readers skip dot-folders.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from genscope.errors import UserError
from genscope.paths import runs_dir
from genscope.schema import SCHEMA_VERSION, events_frame


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


def new_run_id(workload: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{stamp}-{workload}-{secrets.token_hex(3)}"


@contextmanager
def staging(run_id: str) -> Iterator[Path]:
    """A temporary run folder that becomes ``<run_id>`` only if the block completes."""
    root = runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{run_id}"
    tmp.mkdir()
    try:
        yield tmp
        os.replace(tmp, root / run_id)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_run(
    run_id: str, meta: dict[str, Any], events: pd.DataFrame, summary: dict[str, Any]
) -> Path:
    with staging(run_id) as tmp:
        events_frame(events).to_parquet(tmp / "events.parquet", index=False)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        (tmp / "run.json").write_text(
            json.dumps(meta | {"schema_version": SCHEMA_VERSION}, indent=1, default=str)
        )
    return runs_dir() / run_id


def run_path(run_id: str) -> Path:
    path = runs_dir() / run_id
    if not (path / "run.json").exists():
        raise UserError(f"no run {run_id!r} in {runs_dir()} (see `genscope runs`)")
    return path


def load_run(run_id: str) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    path = run_path(run_id)
    meta = json.loads((path / "run.json").read_text())
    summary = json.loads((path / "summary.json").read_text())
    return meta, pd.read_parquet(path / "events.parquet"), summary


def list_runs(where: str | None = None) -> pd.DataFrame:
    """One row per complete run (newest first), straight from the run.json files via DuckDB."""
    root = runs_dir()
    if not any(root.glob("[!.]*/run.json")):
        return pd.DataFrame(columns=["run_id", "workload", "size", "mode", "hardware", "created"])
    pattern = str(root / "[!.]*" / "run.json")
    query = f"""
        SELECT run_id, workload, settings.size AS size, mode, hardware, created,
               sweep, settings.dtype AS dtype, settings.attention AS attention
        FROM read_json_auto('{pattern}', union_by_name = true)
        {"WHERE " + where if where else ""}
        ORDER BY created DESC
    """
    return duckdb.sql(query).df()


def query_events(sql: str) -> pd.DataFrame:
    """Run SQL over every run's events, exposed as the view ``events``."""
    pattern = str(runs_dir() / "[!.]*" / "events.parquet")
    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW events AS SELECT * FROM read_parquet('{pattern}', union_by_name=true)"
    )
    return con.execute(sql).df()
