"""Read raw study data files into a DataFrame, with errors that point at cells.

Entry point: :func:`read_table`. Supported formats: ``csv``, ``tsv``,
``excel`` (``.xlsx``/``.xlsm``), ``spss`` (``.sav``/``.zsav``) and
``parquet``.

CSV/TSV files are read **entirely as strings** (no type guessing, no
default NA parsing) so that the cleaning stage, not the reader, decides what
is numeric; only the configured ``missing_codes`` become missing. Excel,
SPSS and Parquet keep their native types.

Every returned frame has an extra integer column ``_source_row``: the row
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

import codecs
import csv
import hashlib
import io
import os
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.intake.findings import InputError, InputErrors

__all__ = [
    "DEFAULT_MISSING_CODES",
    "FORMATS",
    "SOURCE_ROW",
    "column_letter",
    "infer_format",
    "read_table",
]

#: Name of the added column holding spreadsheet row numbers (header = row 1).
SOURCE_ROW = "_source_row"

#: Cell contents read as missing (compared after stripping surrounding spaces).
# fmt: off
DEFAULT_MISSING_CODES: tuple[str, ...] = (
    "", "NA", "N/A", "n/a", "na", "NaN", "nan", "NULL", "null", "None", "#N/A", ".",
)
# fmt: on

FORMATS = ("csv", "tsv", "excel", "spss", "parquet")

_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".xls": "excel",
    ".sav": "spss",
    ".zsav": "spss",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_ALIASES = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "excel": "excel",
    "xlsx": "excel",
    "xlsm": "excel",
    "xls": "excel",
    "spss": "spss",
    "sav": "spss",
    "zsav": "spss",
    "parquet": "parquet",
    "pq": "parquet",
}
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls / other OLE2 files

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


# --------------------------------------------------------------------------- helpers


def column_letter(position: int) -> str:
    """Spreadsheet column letter for a 1-based position (1 -> A, 27 -> AA)."""
    letters = ""
    while position > 0:
        position, rem = divmod(position - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def infer_format(path: str | os.PathLike, format: str | None = None) -> str:
    """Canonical format name from ``format`` (if given) or the file extension."""
    file = str(path)
    if format:  # None or "" -> infer from the extension
        fmt = _ALIASES.get(str(format).strip().lower())
        if fmt is None:
            raise InputError(
                f"unknown format '{format}' in the config; use one of: {', '.join(FORMATS)}",
                file=file,
            )
        return fmt
    suffix = Path(file).suffix.lower()
    fmt = _EXTENSIONS.get(suffix)
    if fmt is None:
        raise InputError(
            f"cannot tell the file format from the extension '{suffix or '(none)'}'; "
            f"set format: to one of {', '.join(FORMATS)} in the config "
            f"(known extensions: {', '.join(sorted(_EXTENSIONS))})",
            file=file,
        )
    return fmt


def _normalise_delimiter(delimiter: str | None, fmt: str, file: str) -> str:
    if delimiter is None or delimiter == "":
        return "\t" if fmt == "tsv" else ","
    d = str(delimiter)
    if d in ("\\t", "tab", "TAB"):
        d = "\t"
    if len(d) != 1:
        raise InputError(
            f"the delimiter {d!r} set in the config must be a single character "
            "(e.g. ',', ';' or '\\t')",
            file=file,
        )
    return d


def _decode(raw: bytes, file: str, encoding: str | None) -> str:
    encoding = encoding or "utf-8"
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise InputError(
            f"the encoding '{encoding}' set in the config is not a known text encoding; "
            "use e.g. utf-8, latin-1 or cp1252",
            file=file,
        ) from None
    codec = "utf-8-sig" if info.name == "utf-8" else encoding
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        start = exc.start
        line = raw.count(b"\n", 0, start) + 1
        line_start = raw.rfind(b"\n", 0, start) + 1
        char_in_line = len(raw[line_start:start].decode(codec, errors="replace")) + 1
        bad = raw[exc.start : min(exc.end, exc.start + 4)]
        shown = " ".join(f"0x{b:02X}" for b in bad)
        suggestion = "latin-1" if info.name == "utf-8" else "utf-8"
        raise InputError(
            f"is not valid {encoding} (byte offset {start}, line {line}, character "
            f"{char_in_line}): the file was probably saved in another encoding; set "
            f"encoding: {suggestion} (or cp1252 for files from Windows Excel) for this file "
            "in the config, or re-save the file as UTF-8",
            file=file,
            row=line,
            value=shown,
        ) from None


def _check_delimiter(first_line: str, delim: str, fmt: str, file: str) -> None:
    fields = next(csv.reader([first_line], delimiter=delim), [])
    if len(fields) != 1:
        return
    counts = {d: first_line.count(d) for d in _DELIMITER_NAMES if d != delim}
    best = max(counts, key=counts.get)
    if counts[best] == 0:
        return  # a genuine one-column file
    name = _DELIMITER_NAMES[best]
    if best == "\t":
        fix = "set format: tsv (or delimiter: '\\t')"
    elif best == "," and fmt == "tsv":
        fix = "set format: csv (or delimiter: ',')"
    else:
        fix = f"set delimiter: '{best}'"
    raise InputError(
        f"is the whole header read as a single column, but it contains "
        f"'{best if best != chr(9) else chr(92) + 't'}' {counts[best]} "
        f"time{'s' if counts[best] != 1 else ''}: the file looks {name}-separated; "
        f"{fix} for this file in the config",
        file=file,
        row=1,
        value=first_line,
    )


# --------------------------------------------------------------------------- per format


def _read_delimited(
    raw: bytes, file: str, fmt: str, delimiter: str | None, encoding: str
) -> tuple[list[Any], pd.DataFrame, np.ndarray]:
    delim = _normalise_delimiter(delimiter, fmt, file)
    text = _decode(raw, file, encoding)
    if not text.strip():
        raise InputError(
            f"the file is empty: its {len(raw)} bytes are only blank lines or spaces, "
            "with no header and no data rows",
            file=file,
        )
    first_line = text[: min((i for i in (text.find("\n"), text.find("\r"), len(text)) if i >= 0))]
    if not first_line.strip():
        raise InputError(
            "the first line is blank; the header (column names) must be on line 1",
            file=file,
            row=1,
        )
    _check_delimiter(first_line, delim, fmt, file)

    # Pass 1 (csv module, C speed): count fields per record so that rows with
    # too many OR too few fields are all reported (pandas silently pads short rows).
    def records():
        return csv.reader(io.StringIO(text, newline=""), delimiter=delim, quotechar='"')

    reader = records()
    try:
        header = next(reader)
        n_fields = len(header)
        lengths = np.fromiter(map(len, reader), dtype=np.int64)
    except csv.Error as exc:
        raise InputError(
            f"cannot be parsed as {fmt.upper()} (near line {reader.line_num} of the file): {exc}",
            file=file,
            row=reader.line_num,
        ) from None
    n_records = 1 + len(lengths)
    bad: list[tuple[int, int, int]] = []  # (spreadsheet row, start line, n fields)
    if ((lengths != n_fields) & (lengths != 0)).any():
        # slow path, only for broken files: find line numbers, ignore blank lines
        reader = records()
        next(reader)
        prev_end = reader.line_num
        for row, rec in enumerate(reader, start=2):
            start, prev_end = prev_end + 1, reader.line_num
            k = len(rec)
            if k != n_fields and not (k == 0 or (k == 1 and not rec[0].strip())):
                bad.append((row, start, k))
    if bad:
        errors = []
        for row, line, k in bad:
            where = f" (it starts on line {line} of the file)" if line != row else ""
            if k > n_fields:
                hint = (
                    "a value probably contains the delimiter "
                    f"'{delim if delim != chr(9) else chr(92) + 't'}' without quotes; "
                    "put such values in double quotes or remove the stray delimiter"
                )
            else:
                hint = "a value or delimiter is missing; leave an empty field for a missing value"
            errors.append(
                InputError(
                    f"the row has {k} field{'s' if k != 1 else ''} but the header has "
                    f"{n_fields}{where}; {hint}",
                    file=file,
                    row=row,
                )
            )
        if len(errors) == 1:
            raise errors[0]
        raise InputErrors(
            errors,
            heading=f"{file}: {len(errors)} rows do not have {n_fields} fields like the header",
        )

    # Pass 2 (pandas C parser): the actual read, all strings, nothing made NA.
    try:
        table = pd.read_csv(
            io.StringIO(text),
            sep=delim,
            header=None,
            dtype=str,
            na_filter=False,
            keep_default_na=False,
            skip_blank_lines=False,
            quotechar='"',
            engine="c",
        )
    except (pd.errors.ParserError, ValueError) as exc:  # pragma: no cover - pass 1 catches these
        raise InputError(f"cannot be parsed as {fmt.upper()}: {exc}", file=file) from None
    if len(table) != n_records or table.shape[1] != n_fields:  # pragma: no cover - defensive
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delim, quotechar='"'))
        table = pd.DataFrame(records, dtype="str")
        table = table.reindex(columns=range(n_fields))
    names = list(header)
    data = table.iloc[1:].reset_index(drop=True)
    data.columns = range(data.shape[1])
    source_rows = np.arange(2, len(data) + 2, dtype="int64")
    return names, data, source_rows


def _read_excel(
    raw: bytes, file: str, sheet: str | int | None
) -> tuple[list[Any], pd.DataFrame, np.ndarray, str]:
    if file.lower().endswith(".xls") or raw.startswith(_OLE_MAGIC):
        raise InputError(
            "is an old-style Excel .xls workbook, which cannot be read (only .xlsx); "
            "open it in Excel or LibreOffice and save it as .xlsx or .csv",
            file=file,
        )
    import openpyxl  # local: only needed for Excel input
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise InputError(
            f"cannot be read as an Excel .xlsx workbook ({type(exc).__name__}: {exc}); "
            "check that the file is a real .xlsx file and not damaged",
            file=file,
        ) from None
    try:
        names = wb.sheetnames
        available = ", ".join(f"'{n}'" for n in names)
        if sheet is None:
            ws = wb.worksheets[0]
        elif isinstance(sheet, (int, np.integer)) and not isinstance(sheet, bool):
            if not 0 <= int(sheet) < len(names):
                raise InputError(
                    f"has {len(names)} sheet{'s' if len(names) != 1 else ''} ({available}); "
                    f"sheet: {sheet} does not exist (0 is the first sheet)",
                    file=file,
                )
            ws = wb.worksheets[int(sheet)]
        else:
            if str(sheet) not in names:
                raise InputError(
                    f"has no sheet named '{sheet}'; the sheets are {available}",
                    file=file,
                )
            ws = wb[str(sheet)]
        sheet_name = ws.title
        rows = list(ws.iter_rows(values_only=True))  # starts at sheet row 1, column A
    finally:
        wb.close()

    def _blank(v: Any) -> bool:
        return v is None or (isinstance(v, str) and not v.strip())

    header_idx = next((i for i, r in enumerate(rows) if not all(_blank(v) for v in r)), None)
    if header_idx is None:
        raise InputError(
            f"the sheet '{sheet_name}' is empty: no header and no data rows", file=file
        )
    width = max(len(r) for r in rows)
    header = list(rows[header_idx]) + [None] * (width - len(rows[header_idx]))
    # Drop completely empty rows before types are inferred (so a blank row does
    # not turn an integer column into floats); keep the sheet row numbers.
    kept = [
        (i + 1, tuple(r) + (None,) * (width - len(r)))
        for i, r in enumerate(rows[header_idx + 1 :], start=header_idx + 1)
        if not all(_blank(v) for v in r)
    ]
    data = pd.DataFrame([r for _, r in kept], columns=range(width), dtype=object).infer_objects()
    source_rows = np.array([n for n, _ in kept], dtype="int64")
    return header, data, source_rows, sheet_name


def _read_spss(
    path: Path, file: str, keep_codes: Sequence[str] = ()
) -> tuple[list[Any], pd.DataFrame, dict, dict]:
    import pyreadstat  # local: only needed for SPSS input

    try:
        df, meta = pyreadstat.read_sav(
            str(path), apply_value_formats=False, formats_as_category=False, user_missing=False
        )
    except Exception as exc:  # pyreadstat raises its own ReadstatError / PyreadstatError
        raise InputError(
            f"cannot be read as an SPSS .sav file ({type(exc).__name__}: {exc}); "
            "check that the file is a real .sav file and not damaged",
            file=file,
        ) from None
    variable_labels = {
        str(k): v for k, v in (meta.column_names_to_labels or {}).items() if v is not None
    }
    value_labels = {str(k): dict(v) for k, v in (meta.variable_value_labels or {}).items()}
    # Value labels replace the codes (1 -> "CBT"), as pyreadstat's apply_value_formats
    # does (unlabelled codes stay numbers), except in the keep_codes columns: scores
    # whose scale points carry labels (1 = "seldom" ... 5 = "always") keep their numbers.
    keep = {str(c) for c in keep_codes}
    for name, labels in value_labels.items():
        if name in keep or name not in df.columns or not labels:
            continue
        codes = df[name]
        labelled = codes.map(labels)
        df[name] = labelled.where(labelled.notna(), codes.astype(object))
    df = df.infer_objects()
    names = list(df.columns)
    df.columns = range(df.shape[1])
    return names, df, variable_labels, value_labels


def _read_parquet(raw: bytes, file: str) -> tuple[list[Any], pd.DataFrame]:
    try:
        df = pd.read_parquet(io.BytesIO(raw))
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError etc.
        raise InputError(
            f"cannot be read as a Parquet file ({type(exc).__name__}: {exc}); "
            "check that the file is a real .parquet file and not damaged",
            file=file,
        ) from None
    if not (isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1):
        df = df.reset_index()  # keep data stored in a named index (e.g. patient)
    else:
        df = df.reset_index(drop=True)
    names = list(df.columns)
    df.columns = range(df.shape[1])
    return names, df


# --------------------------------------------------------------------------- shared steps


def _is_text(s: pd.Series) -> bool:
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
    clean = [
        "" if n is None or (isinstance(n, float) and np.isnan(n)) else str(n).strip() for n in names
    ]
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
                f"'{SOURCE_ROW}' is reserved for the row numbers the pipeline adds; "
                "rename this column",
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
                    lambda v: isinstance(v, (int, float))
                    and not isinstance(v, bool)
                    and v in numeric_codes
                ).astype(bool)
        elif (
            numeric_codes
            and pd.api.types.is_numeric_dtype(s.dtype)
            and not pd.api.types.is_bool_dtype(s.dtype)
        ):
            mask = s.isin(numeric_codes)
        else:
            out[name] = s
            continue
        out[name] = s.mask(mask) if mask.any() else s
    return pd.DataFrame(out, index=df.index)


# --------------------------------------------------------------------------- public


def read_table(
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
    if not path.exists():
        raise InputError(
            f"the file does not exist; check the path in the config "
            f"(relative paths are resolved from {os.getcwd()})",
            file=file,
        )
    if path.is_dir():
        raise InputError("is a directory, not a data file; check the path in the config", file=file)
    raw = path.read_bytes()
    if len(raw) == 0:
        raise InputError(
            "the file is empty (0 bytes): it has no header and no data rows; "
            "check that the export finished",
            file=file,
        )
    meta: dict[str, Any] = {"format": fmt}
    if fmt in ("csv", "tsv"):
        names, data, source_rows = _read_delimited(raw, file, fmt, delimiter, encoding)
    elif fmt == "excel":
        names, data, source_rows, sheet_name = _read_excel(raw, file, sheet)
        meta["sheet"] = sheet_name
    elif fmt == "spss":
        names, data, variable_labels, value_labels = _read_spss(path, file, keep_codes)
        source_rows = np.arange(2, len(data) + 2, dtype="int64")
        meta["variable_labels"] = variable_labels
        meta["value_labels"] = value_labels
    else:
        names, data = _read_parquet(raw, file)
        source_rows = np.arange(2, len(data) + 2, dtype="int64")

    df = _name_columns(names, data, file)
    df = _apply_missing_codes(df, missing_codes)
    df[SOURCE_ROW] = source_rows

    data_cols = [c for c in df.columns if c != SOURCE_ROW]
    if len(df) and data_cols:
        empty = np.ones(len(df), dtype=bool)
        for c in data_cols:
            empty &= _blank_mask(df[c]).to_numpy(dtype=bool)
            if not empty.any():
                break
        if empty.any():
            df = df.loc[~empty].reset_index(drop=True)
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
