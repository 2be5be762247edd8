"""The op-event table: one schema for analytic and measured captures.

Every genscope analysis reads this table. Columns are declared once here (name, dtype, unit,
meaning); writers go through :func:`events_frame`, which fills defaults and enforces dtypes.
A row may stand for ``count`` identical ops (e.g. one traced denoise step that repeats N times):
totals are always ``value * count``, never hidden.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import pandas as pd

from genscope.errors import UserError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # pandas dtype
    unit: str = ""
    doc: str = ""
    default: Any = None


EVENT_COLUMNS: tuple[Column, ...] = (
    Column("run_id", "string", doc="run this row belongs to"),
    Column("seq", "int64", doc="order of the op within the run", default=0),
    Column("component", "string", doc="pipeline component (text_encoder, unet, vae, ...)"),
    Column("step", "Int64", doc="generation step (denoise or decode), null outside loops"),
    Column("phase", "string", doc="encode | denoise | prefill | decode | decode_image | ..."),
    Column("module_path", "string", doc="innermost nn.Module path, '' outside modules"),
    Column("module_type", "string", doc="class name of that module"),
    Column("op", "string", doc="aten overload, e.g. aten.convolution.default"),
    Column("category", "string", doc="conv|linear|attention|norm|elementwise|resample|..."),
    Column("attn_kind", "string", doc="self | cross (attention rows only)"),
    Column("attn_axis", "string", doc="spatial | temporal | joint | text (attention rows)"),
    Column("q_len", "Int64", doc="query sequence length (attention rows)"),
    Column("kv_len", "Int64", doc="key/value sequence length (attention rows)"),
    Column("heads", "Int64", doc="query heads (attention rows)"),
    Column("head_dim", "Int64", doc="per-head dimension (attention rows)"),
    Column("batch", "Int64", doc="batch of attention problems, excluding heads"),
    Column("input_shapes", "string", doc="tensor input shapes, ';'-separated"),
    Column("output_shapes", "string", doc="tensor output shapes, ';'-separated"),
    Column("dtype", "string", doc="compute dtype: fp32 | bf16 | fp16 | ..."),
    Column("unit", "string", doc="matrix (tensor cores/GEMM) | vector | none (views)"),
    Column("flops", "int64", "FLOP", "multiply-add = 2 FLOPs, per single op", 0),
    Column("bytes_read", "int64", "B", "minimum off-chip bytes read, per single op", 0),
    Column("bytes_written", "int64", "B", "minimum off-chip bytes written, per single op", 0),
    Column("live_bytes", "Int64", "B", "activation bytes alive after this op (outputs not freed)"),
    Column(
        "predicted_s",
        "float64",
        "s",
        "predicted time per op: the GPU time model's kernel time on a GPU spec, the roofline "
        "on others",
        0.0,
    ),
    Column("roofline_s", "float64", "s", "roofline bound on the run's hardware, per op", 0.0),
    Column("bound", "string", doc="compute | memory | none (roofline label)"),
    Column("measured_s", "float64", "s", "measured time per op (measured mode), else null"),
    Column("count", "int64", doc="identical ops this row stands for", default=1),
)

COLUMN_NAMES = tuple(c.name for c in EVENT_COLUMNS)
CATEGORIES = (
    "conv",
    "linear",
    "attention",
    "norm",
    "elementwise",
    "resample",
    "embedding",
    "memory",
    "kv_reorder",
    "other",
)


def events_frame(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Build an op-event DataFrame with every schema column, in order, with schema dtypes."""
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(list(rows))
    unknown = set(df.columns) - set(COLUMN_NAMES)
    if unknown:
        raise ValueError(f"columns not in the op-event schema: {sorted(unknown)}")
    for col in EVENT_COLUMNS:
        if col.name not in df.columns:
            df[col.name] = col.default
        elif col.default is not None:
            df[col.name] = df[col.name].fillna(col.default)
        try:
            df[col.name] = df[col.name].astype(col.dtype)
        except OverflowError:  # counts beyond int64: bad input, not a crash
            raise UserError(
                f"op-event column {col.name!r} exceeds int64; lower --res, --frames, --steps "
                "or --batch"
            ) from None
    return df.loc[:, list(COLUMN_NAMES)].reset_index(drop=True)


def total(df: pd.DataFrame, column: str) -> pd.Series:
    """Per-row totals of a per-op column, honouring ``count``."""
    return df[column] * df["count"]


@cache
def parse_shapes(shapes: str) -> tuple[tuple[int, ...], ...]:
    """An ``input_shapes``/``output_shapes`` cell as tuples: ``"[2,77,768];[768]"`` ->
    ``((2, 77, 768), (768,))``; a scalar (``[]``) is ``()``."""
    out = []
    for piece in (shapes or "").split(";"):
        piece = piece.strip().strip("[]")
        out.append(tuple(int(x) for x in piece.split(",") if x.strip()) if piece else ())
    return tuple(out)
