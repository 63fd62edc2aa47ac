"""Deterministic writers: same data and config give byte-identical files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

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
