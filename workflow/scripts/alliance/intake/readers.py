"""Read raw study data files into a DataFrame, with errors that point at cells.

Entry point: :func:`read_table`. Supported formats: ``csv``, ``tsv``,
``excel`` (``.xlsx``/``.xlsm``), ``spss`` (``.sav``/``.zsav``) and
``parquet``; telling them apart and parsing each is :mod:`alliance.intake.formats`.

CSV/TSV files are read **entirely as strings** (no type guessing, no
default NA parsing) so that the cleaning stage, not the reader, decides what
is numeric; only the configured ``missing_codes`` become missing. Excel,
SPSS and Parquet keep their native types.

Every returned frame has an extra integer column ``_source_row``
(:data:`~alliance.intake.findings.SOURCE_ROW`): the row
number a person sees when the file is opened in a spreadsheet program
(**header = row 1, first data row = row 2**). For CSV/TSV this is the line
number in the file (it is the record number if a quoted value spans several
lines); for Excel it is the sheet's own row number; for SPSS/Parquet it is
case number + 1, as if the data were exported with a header row. Completely
empty rows are dropped, but row numbers are not shifted by that, so later
error messages can always name the row to open.

Problems with the file itself raise :class:`alliance.intake.findings.InputError` (or
:class:`~alliance.intake.findings.InputErrors` when several are found at once).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.intake.findings import SOURCE_ROW, InputError, InputErrors
from alliance.intake.formats import infer_format, parse_file

__all__ = [
    "DEFAULT_MISSING_CODES",
    "column_letter",
    "not_a_data_file",
    "read_table",
]

#: Cell contents read as missing (compared after stripping surrounding spaces).
# fmt: off
DEFAULT_MISSING_CODES: tuple[str, ...] = (
    "", "NA", "N/A", "n/a", "na", "NaN", "nan", "NULL", "null", "None", "#N/A", ".",
)
# fmt: on


def column_letter(position: int) -> str:
    """Spreadsheet column letter for a 1-based position (1 -> A, 27 -> AA)."""
    letters = ""
    while position > 0:
        position, rem = divmod(position - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


# --------------------------------------------------------------------------- shared steps


def _is_text(s: pd.Series) -> bool:
    """Whether a column holds text (string or object dtype)."""
    return pd.api.types.is_string_dtype(s.dtype) or s.dtype == object


def _blank_mask(s: pd.Series) -> pd.Series:
    """True where a cell is missing or only whitespace (vectorised)."""
    mask = s.isna()
    if _is_text(s):
        stripped = (
            s.str.strip()
            if pd.api.types.is_string_dtype(s.dtype)
            else s.map(lambda v: v.strip() if isinstance(v, str) else v)
        )
        mask = mask | stripped.eq("").fillna(False).astype(bool)
    return mask


def _name_columns(names: list[Any], data: pd.DataFrame, file: str) -> pd.DataFrame:
    """Strip header names, drop nameless empty columns, reject duplicates."""
    clean = ["" if n is None or (isinstance(n, float) and np.isnan(n)) else str(n).strip() for n in names]
    keep = []
    final = []
    for pos, name in enumerate(clean):
        if name == "":
            if _blank_mask(data[pos]).all():
                continue  # e.g. trailing delimiter / formatted but empty Excel column
            name = f"Unnamed: {pos}"
        keep.append(pos)
        final.append(name)
    positions: dict[str, list[int]] = {}
    for pos, name in zip(keep, final):
        positions.setdefault(name, []).append(pos + 1)
    errors = []
    for name, where in positions.items():
        if len(where) > 1:
            listed = [f"{p} ({column_letter(p)})" for p in where]
            joined = ", ".join(listed[:-1]) + " and " + listed[-1]
            times = "twice" if len(where) == 2 else f"{len(where)} times"
            errors.append(
                InputError(
                    f"the header name appears {times}, in columns {joined}; "
                    "rename or remove one so that every column has a unique name",
                    file=file,
                    row=1,
                    column=name,
                )
            )
    if SOURCE_ROW in positions:
        errors.append(
            InputError(
                f"'{SOURCE_ROW}' is reserved for the row numbers the pipeline adds; rename this column",
                file=file,
                row=1,
                column=SOURCE_ROW,
            )
        )
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise InputErrors(errors, heading=f"{file}: problems in the header row")
    out = data[keep]
    out.columns = final
    return out


def _apply_missing_codes(df: pd.DataFrame, missing_codes: Sequence[Any]) -> pd.DataFrame:
    """Cells equal to a missing code (after stripping; numbers too for typed columns) become missing."""
    codes = [str(c).strip() for c in missing_codes]
    if not codes:
        return df
    numeric_codes = []
    for c in codes:
        try:
            numeric_codes.append(float(c))
        except ValueError:
            pass
    numeric_codes = [c for c in numeric_codes if not np.isnan(c)]
    out = {}
    for name in df.columns:
        s = df[name]
        if pd.api.types.is_string_dtype(s.dtype):
            mask = s.str.strip().isin(codes).fillna(False).astype(bool)
        elif s.dtype == object:
            mask = s.map(lambda v: isinstance(v, str) and v.strip() in codes).astype(bool)
            if numeric_codes:
                mask = mask | s.map(
                    lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v in numeric_codes
                ).astype(bool)
        elif numeric_codes and pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            mask = s.isin(numeric_codes)
        else:
            out[name] = s
            continue
        out[name] = s.mask(mask) if mask.any() else s
    return pd.DataFrame(out, index=df.index)


# --------------------------------------------------------------------------- public


def read_table(  # long only by its docstring, the contract every caller relies on
    path: str | os.PathLike,
    *,
    format: str | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    sheet: str | int | None = None,
    missing_codes: Sequence[Any] = DEFAULT_MISSING_CODES,
    keep_codes: Sequence[str] = (),
) -> tuple[pd.DataFrame, dict]:
    """Read one raw data file.

    Parameters
    ----------
    path : file to read; shown in error messages exactly as given.
    format : ``csv``, ``tsv``, ``excel``, ``spss`` or ``parquet`` (aliases
        ``xlsx``, ``sav``, ``pq`` accepted); inferred from the extension if None.
    delimiter : field separator for csv/tsv (default ``,`` / tab; ``"\\t"``
        or ``"tab"`` mean tab).
    encoding : text encoding for csv/tsv (default utf-8; a UTF-8 byte-order
        mark is removed).
    sheet : Excel sheet name or 0-based index (default: first sheet).
    missing_codes : cell contents (compared after stripping spaces) that
        become missing. For Excel/SPSS/Parquet numeric columns, codes that are
        numbers (e.g. ``"-99"``) are applied too. ``()`` turns this off.
    keep_codes : SPSS columns whose value labels are *not* applied, so that
        labelled scale points of scores (1 = "seldom") stay numbers; every
        other labelled SPSS column gets its labels (1 -> "CBT").

    Returns
    -------
    (df, meta)
        ``df``: data columns (header names stripped of surrounding spaces)
        plus ``_source_row`` (int64; spreadsheet row number, header = row 1).
        CSV/TSV columns are all strings (``str`` dtype). Completely empty
        rows are dropped; column headers that are blank and have no data
        (e.g. a trailing delimiter) are dropped; a blank header over data
        becomes ``"Unnamed: <0-based position>"``.
        ``meta``: ``{"format", "n_rows", "columns", "sha256"}`` plus
        ``"variable_labels"`` and ``"value_labels"`` (spss) or ``"sheet"``
        (excel, the sheet's name).

    Raises
    ------
    InputError / InputErrors
        File missing, empty (0 bytes) or header-only, undecodable in
        ``encoding``, wrong delimiter, duplicated header names, rows with the
        wrong number of fields, unreadable workbook/.sav/.parquet, unknown
        format.
    """
    file = str(path)
    path = Path(path)
    fmt = infer_format(path, format)
    raw = _read_bytes(path, file)
    names, data, source_rows, format_meta = parse_file(
        raw, path, file, fmt, delimiter=delimiter, encoding=encoding, sheet=sheet, keep_codes=keep_codes
    )
    meta: dict[str, Any] = {"format": fmt, **format_meta}

    df = _name_columns(names, data, file)
    df = _apply_missing_codes(df, missing_codes)
    df[SOURCE_ROW] = source_rows
    data_cols = [c for c in df.columns if c != SOURCE_ROW]
    df = _drop_empty_rows(df, data_cols)
    if len(df) == 0:
        shown = ", ".join(data_cols[:10]) + (", ..." if len(data_cols) > 10 else "")
        subject = f"the sheet '{meta['sheet']}'" if fmt == "excel" else "the file"
        kind = "a header row" if fmt in ("csv", "tsv", "excel") else "column definitions"
        raise InputError(
            f"{subject} has {kind} ({len(data_cols)} column"
            f"{'s' if len(data_cols) != 1 else ''}: {shown}) but no data rows",
            file=file,
        )
    df[SOURCE_ROW] = df[SOURCE_ROW].astype("int64")

    meta.update(
        {
            "n_rows": int(len(df)),
            "columns": data_cols,
            "sha256": hashlib.sha256(raw).hexdigest(),
        }
    )
    ordered = {k: meta[k] for k in ("format", "n_rows", "columns", "sha256") if k in meta}
    ordered.update({k: v for k, v in meta.items() if k not in ordered})
    return df, ordered


def not_a_data_file(path: str | os.PathLike) -> str | None:
    """Why an existing ``path`` cannot be a data file (a directory, device, pipe or socket), or None.

    Checked before anything is read (here and when the workflow loads, rules/common.smk):
    ``/dev/zero`` would be read until memory runs out, a pipe may never end.
    """
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        return "is a directory, not a data file; check the path in the config"
    if not stat.S_ISREG(mode):
        return (
            "is not a regular file (a device, pipe or socket, which may never end); point the config at "
            "the data file itself"
        )
    return None


def _read_bytes(path: Path, file: str) -> bytes:
    """The file's bytes; a missing file, a directory or an empty file is an InputError."""
    if not path.exists():
        raise InputError(
            f"the file does not exist; check the path in the config (relative paths are resolved from {os.getcwd()})",
            file=file,
        )
    why = not_a_data_file(path)
    if why is not None:
        raise InputError(why, file=file)
    raw = path.read_bytes()
    if len(raw) == 0:
        raise InputError(
            "the file is empty (0 bytes): it has no header and no data rows; check that the export finished",
            file=file,
        )
    return raw


def _drop_empty_rows(df: pd.DataFrame, data_cols: list[str]) -> pd.DataFrame:
    """``df`` without the rows that are blank in every data column (row numbers kept)."""
    if not (len(df) and data_cols):
        return df
    empty = np.ones(len(df), dtype=bool)
    for c in data_cols:
        empty &= _blank_mask(df[c]).to_numpy(dtype=bool)
        if not empty.any():
            break
    if empty.any():
        df = df.loc[~empty].reset_index(drop=True)
    return df
