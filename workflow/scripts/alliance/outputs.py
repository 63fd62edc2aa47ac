"""Deterministic writers: same data and config give byte-identical files.

And :func:`read_columns`, which reads only the named columns of a Parquet table."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

SIGNIFICANT_DIGITS = 10


def _round(value: Any) -> Any:
    """Round floats to SIGNIFICANT_DIGITS (so tiny optimiser noise never changes bytes)."""
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    if isinstance(value, dict):
        return {str(k): _round(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _round(value.item())
    return value


def write_json(data: Any, path: str | Path) -> None:
    """Write JSON with rounded floats, NaN as null, a trailing newline."""
    Path(path).write_text(json.dumps(_round(data), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write CSV with a fixed float format and Unix line ends."""
    frame.to_csv(path, index=False, lineterminator="\n", float_format=f"%.{SIGNIFICANT_DIGITS}g")


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write Parquet without the index (pyarrow output is deterministic for equal input)."""
    frame.to_parquet(path, index=False)


def read_columns(path: str | Path, columns: Iterable[str]) -> pd.DataFrame:
    """Read only ``columns`` of a Parquet file: those that the file's schema has, in file order.

    Names the file does not have are skipped (a model's ``<col>_c`` is made later, a patient-level
    variable is not in the session table), so the caller need not know the schema.  The order is
    the file's, not the caller's, so the same set of names always gives the same frame.  A step
    reads what it uses instead of the whole table: the analysis table has about 80 columns, a
    model needs about 10 (at 1.17M rows, 1.7 GB in memory against a few hundred MB).

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "t.parquet"
    >>> pd.DataFrame({"a": [1, 2], "b": [3.0, 4.0], "c": ["x", "y"]}).to_parquet(path, index=False)
    >>> read_columns(path, ["c", "a", "not_there", "a"]).columns.tolist()
    ['a', 'c']
    """
    wanted = set(columns)
    present = [name for name in pq.read_schema(path).names if name in wanted]
    return pd.read_parquet(path, columns=present)
