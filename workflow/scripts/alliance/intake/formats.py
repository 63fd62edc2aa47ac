"""File formats: which format a file is in, and one parser per format.

Supported formats: ``csv``, ``tsv``, ``excel`` (``.xlsx``/``.xlsm``), ``spss``
(``.sav``/``.zsav``) and ``parquet``. :func:`infer_format` names the format from
the config or the extension; :func:`parse_file` turns the file's bytes into header
names, data columns (by position) and the spreadsheet row of every record. The
steps every format shares (header names, missing codes, empty rows, checksum) are in
:func:`alliance.intake.readers.read_table`, the entry point.

CSV/TSV files are read **entirely as strings** (no type guessing, no default NA
parsing); Excel, SPSS and Parquet keep their native types. A problem with the file
raises :class:`~alliance.intake.findings.InputError` naming the file, and the line
or row where it can be seen.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.intake.encodings import check_declared_encoding, check_mojibake
from alliance.intake.findings import InputError, InputErrors

__all__ = ["FORMATS", "infer_format", "parse_file"]

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
    """The configured delimiter as one character (default: comma, tab for tsv)."""
    if delimiter is None or delimiter == "":
        return "\t" if fmt == "tsv" else ","
    d = str(delimiter)
    if d in ("\\t", "tab", "TAB"):
        d = "\t"
    if len(d) != 1:
        raise InputError(
            f"the delimiter {d!r} set in the config must be a single character (e.g. ',', ';' or '\\t')",
            file=file,
        )
    return d


def _decode(raw: bytes, file: str, encoding: str | None) -> str:
    """The file as text in ``encoding``; an undecodable byte is an InputError naming its line."""
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
    check_declared_encoding(raw, file, encoding)
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        start = exc.start
        line = raw.count(b"\n", 0, start) + 1
        line_start = raw.rfind(b"\n", 0, start) + 1
        char_in_line = len(raw[line_start:start].decode(codec, errors="replace")) + 1
        bad = raw[exc.start : min(exc.end, exc.start + 4)]
        shown = " ".join(f"0x{b:02X}" for b in bad)
        suggestion = "latin-1" if info.name == "utf-8" else "utf-8"
        raise InputError(  # a UTF-16 file is caught before (check_declared_encoding)
            f"is not valid {encoding} (byte offset {start}, line {line}, character "
            f"{char_in_line}): the file was probably saved in another encoding; set "
            f"encoding: {suggestion} (or cp1252 for files from Windows Excel) for this file "
            "in the config, or re-save the file as UTF-8",
            file=file,
            row=line,
            value=shown,
        ) from None
    check_mojibake(text, raw, file, encoding)
    return text


def _check_delimiter(first_line: str, delim: str, fmt: str, file: str) -> None:
    """Raise when the header reads as one column but holds another common delimiter."""
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
    """A CSV/TSV file as (header, all-string data, spreadsheet rows); every malformed row reported at once."""
    delim = _normalise_delimiter(delimiter, fmt, file)
    text = _decode(raw, file, encoding)
    if not text.strip():
        raise InputError(
            f"the file is empty: its {len(raw)} bytes are only blank lines or spaces, with no header and no data rows",
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
    # Both passes decode the bytes as they go, not the decoded text: a StringIO of the text holds 4
    # bytes per character, and the whole text beside the table cost 0.5 GB at 1.17M rows (the peak)
    del text
    codec = "utf-8-sig" if codecs.lookup(encoding or "utf-8").name == "utf-8" else encoding

    # Pass 1 (csv module, C speed): count fields per record so that rows with
    # too many OR too few fields are all reported (pandas silently pads short rows).
    def records():
        stream = io.TextIOWrapper(io.BytesIO(raw), encoding=codec, newline="")
        return csv.reader(stream, delimiter=delim, quotechar='"')

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
    if ((lengths != n_fields) & (lengths != 0)).any():
        _raise_field_count_errors(records(), n_fields, delim, file)

    # Pass 2 (pandas C parser): the actual read, all strings, nothing made NA.
    try:
        table = pd.read_csv(
            io.BytesIO(raw),
            encoding=codec,
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
        table = pd.DataFrame(list(records()), dtype="str")
        table = table.reindex(columns=range(n_fields))
    names = list(header)
    data = table.iloc[1:].reset_index(drop=True)
    data.columns = range(data.shape[1])
    source_rows = np.arange(2, len(data) + 2, dtype="int64")
    return names, data, source_rows


def _raise_field_count_errors(reader: Any, n_fields: int, delim: str, file: str) -> None:
    """Raise one error per row whose field count differs from the header's (blank lines aside).

    The slow path, only for broken files: ``reader`` (a fresh csv reader of the
    whole file) is walked once more to find the line each record starts on.
    """
    bad: list[tuple[int, int, int]] = []  # (spreadsheet row, start line, n fields)
    next(reader)
    prev_end = reader.line_num
    for row, rec in enumerate(reader, start=2):
        start, prev_end = prev_end + 1, reader.line_num
        k = len(rec)
        if k != n_fields and not (k == 0 or (k == 1 and not rec[0].strip())):
            bad.append((row, start, k))
    if not bad:
        return
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
                f"the row has {k} field{'s' if k != 1 else ''} but the header has {n_fields}{where}; {hint}",
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


def _read_excel(raw: bytes, file: str, sheet: str | int | None) -> tuple[list[Any], pd.DataFrame, np.ndarray, str]:
    """An .xlsx sheet as (header, natively typed data, the sheet's row numbers, sheet name)."""
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
        raise InputError(f"the sheet '{sheet_name}' is empty: no header and no data rows", file=file)
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


def _read_spss(path: Path, file: str, keep_codes: Sequence[str] = ()) -> tuple[list[Any], pd.DataFrame, dict, dict]:
    """An SPSS .sav file as (names, data with value labels applied, variable labels, value labels)."""
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
    variable_labels = {str(k): v for k, v in (meta.column_names_to_labels or {}).items() if v is not None}
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
    """A Parquet file as (names, data); a named index becomes a column."""
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


def parse_file(
    raw: bytes,
    path: Path,
    file: str,
    fmt: str,
    *,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    sheet: str | int | None = None,
    keep_codes: Sequence[str] = (),
) -> tuple[list[Any], pd.DataFrame, np.ndarray, dict[str, Any]]:
    """One file's contents by its format: (header names, data, spreadsheet rows, format metadata).

    ``raw`` holds the file's bytes, ``path`` locates it (SPSS is read from disk),
    ``file`` is the path as configured, shown in messages; the other arguments are
    those of :func:`~alliance.intake.readers.read_table`. The data columns are numbered
    by position; the metadata is ``{"sheet": ...}`` (excel), ``{"variable_labels": ...,
    "value_labels": ...}`` (spss) or empty.
    """
    meta: dict[str, Any] = {}
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
    return names, data, source_rows, meta
