"""A sweep's runs in the store, through DuckDB.

Only complete run folders count (the store writes ``.tmp-<id>`` and renames it when done;
dot-folders are skipped), so a run listed here is a completed point. run.json is read as text
and fields are pulled with ``json_extract``, which tolerates runs written before a field existed.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pandas as pd

from genscope.analyses.scaling import point_metrics
from genscope.errors import UserError
from genscope.paths import runs_dir
from genscope.store import scan_store

#: run-level columns joined onto events; ``batch``/``dtype`` already exist in the op-event
#: schema (attention problems per op, compute dtype), so the run's are ``run_batch``/``run_dtype``
RUN_COLUMNS: dict[str, str] = {
    "run_id": "$.run_id",
    "sweep": "$.sweep",
    "point_id": "$.point_id",
    "workload": "$.workload",
    "mode": "$.mode",
    "hardware": "$.hardware",
    "created": "$.created",
    "size": "$.settings.size",
    "res_h": "$.settings.res[0]",
    "res_w": "$.settings.res[1]",
    "frames": "$.settings.frames",
    "steps": "$.settings.steps",
    "run_batch": "$.settings.batch",
    "cfg": "$.settings.cfg",
    "run_dtype": "$.settings.dtype",
    "attention": "$.settings.attention",
    "variant": "$.settings.variant",
    "prompt_len": "$.settings.prompt_len",
    "new_tokens": "$.settings.new_tokens",
    "device": "$.settings.device",
}
INT_COLUMNS = ("res_h", "res_w", "frames", "steps", "run_batch", "prompt_len", "new_tokens")


def sweep_runs(name: str) -> pd.DataFrame:
    """One row per complete run of sweep ``name`` (oldest first), with its settings and totals
    (``flops_total``, ``bytes_total``, ``predicted_s`` from summary.json)."""
    cols = [*RUN_COLUMNS, "res", "flops_total", "bytes_total", "predicted_s"]
    # run.json files listed (and checked) in Python, handed to DuckDB as a bound list: a damaged
    # run cannot break the query and the store path is never part of the SQL text
    files = scan_store().files("run.json")
    if not files:
        return pd.DataFrame(columns=cols)
    root = runs_dir()
    fields = ",\n".join(
        (f"TRY_CAST(json_extract_string(content, '{p}') AS BIGINT) AS {c}")
        if c in INT_COLUMNS
        else (f"TRY_CAST(json_extract_string(content, '{p}') AS BOOLEAN) AS {c}")
        if c == "cfg"
        else f"json_extract_string(content, '{p}') AS {c}"
        for c, p in RUN_COLUMNS.items()
    )
    con = duckdb.connect()
    runs = con.execute(
        f"""
        SELECT {fields}
        FROM read_text(?)
        WHERE json_extract_string(content, '$.sweep') = ?
        ORDER BY created, run_id
        """,
        [files, name],
    ).df()
    if runs.empty:
        return pd.DataFrame(columns=cols)
    summaries = [str(root / r / "summary.json") for r in runs["run_id"]]
    totals = con.execute(
        """
        SELECT regexp_extract(filename, '([^/]+)/summary\\.json$', 1) AS run_id,
               TRY_CAST(json_extract_string(content, '$.flops_total') AS BIGINT) AS flops_total,
               TRY_CAST(json_extract_string(content, '$.bytes_total') AS BIGINT) AS bytes_total,
               TRY_CAST(json_extract_string(content, '$.predicted_s') AS DOUBLE) AS predicted_s
        FROM read_text(?)
        """,
        [summaries],
    ).df()
    runs = runs.merge(totals, on="run_id", how="left")
    runs["res"] = [
        None if pd.isna(h) else f"{int(h)}x{int(w)}"
        for h, w in zip(runs["res_h"], runs["res_w"], strict=True)
    ]
    return runs.loc[:, cols]


def completed_points(name: str) -> dict[str, str]:
    """point_id -> run_id for every completed point of sweep ``name`` (newest run wins)."""
    runs = sweep_runs(name)
    return {p: r for p, r in zip(runs["point_id"], runs["run_id"], strict=True) if p}


def load_sweep_runs(name: str) -> pd.DataFrame:
    """Like :func:`sweep_runs` with one run per point (the newest); raises if there is none."""
    runs = sweep_runs(name)
    if runs.empty:
        raise UserError(f"no runs of sweep {name!r} in {runs_dir()} (see `genscope sweep`)")
    return runs.drop_duplicates("point_id", keep="last").reset_index(drop=True)


def load_sweep_events(name: str) -> pd.DataFrame:
    """The op events of every run of sweep ``name``, each row carrying its run's settings.

    Columns: the op-event schema, then ``sweep, point_id, workload, mode, hardware, created,
    size, res_h, res_w, frames, steps, run_batch, cfg, run_dtype, attention, variant,
    prompt_len, new_tokens, device, res`` (``HxW``). One run per point (the newest, should a point
    have two).
    """
    runs = load_sweep_runs(name)
    files = [str(runs_dir() / r / "events.parquet") for r in runs["run_id"]]
    con = duckdb.connect()
    con.register("runs", runs.drop(columns=["flops_total", "bytes_total", "predicted_s"]))
    return con.execute(
        """
        SELECT e.*, r.* EXCLUDE (run_id)
        FROM read_parquet(?, union_by_name = true) AS e
        JOIN runs AS r USING (run_id)
        ORDER BY r.created, r.run_id, e.seq
        """,
        [files],
    ).df()


def with_point_ids(runs: pd.DataFrame, name: str, short: bool = False) -> pd.DataFrame:
    """Add a ``point_id`` column to a ``list_runs`` frame (for ``genscope runs --sweep``)."""
    ids = dict(zip(*(sweep_runs(name)[c] for c in ("run_id", "point_id")), strict=True))
    out = runs.copy()
    out["point_id"] = [(ids.get(r) or "")[: 12 if short else None] or None for r in out["run_id"]]
    return out


def sweep_table(name: str, metrics: Callable[[pd.DataFrame], dict] | None = None) -> pd.DataFrame:
    """One row per point: the run's settings plus ``metrics(events of that run)`` — by default
    :func:`genscope.analyses.scaling.point_metrics` — ready for ``scaling.exponents`` /
    ``plot_scaling`` (e.g. ``x="res_h"``)."""
    metrics = metrics or point_metrics
    runs = load_sweep_runs(name)
    events = load_sweep_events(name)
    rows = []
    for run_id, ev in events.groupby("run_id", sort=False):
        rows.append({"run_id": run_id, **metrics(ev)})
    return runs.merge(pd.DataFrame(rows), on="run_id", how="left")
