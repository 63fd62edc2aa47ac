"""Structured data errors and findings for the alliance pipeline.

Every problem with a user's data is described by *where* it is (file, row,
column), *what* was found there (value) and *why* it matters (reason), so
that the message a person reads points straight at a cell they can open in
a spreadsheet program.

Row numbers
-----------
``row`` is always the row number a person sees when the file is opened in a
spreadsheet program: **the header is row 1 and the first data row is row 2**.
For a CSV/TSV file this is the line number in the file (unless a quoted value
spans several lines; then it is the record number, which is what a spreadsheet
shows). Readers store it per record in the ``_source_row`` column (:data:`SOURCE_ROW`); see
:mod:`alliance.intake.readers`.

Stopping vs non-stopping problems
---------------------------------
:class:`InputError` (and :class:`InputErrors` for several problems at once)
stops the run. :class:`Finding` records any problem, stopping or not; its
``action`` says what happens: ``"stop"`` (the run stops; see
:attr:`Finding.is_stopping`), ``"warn"`` (reported only), or a description of
an automatic fix such as ``"top-coded to 90"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "SOURCE_ROW",
    "STOP",
    "WARN",
    "Finding",
    "InputError",
    "InputErrors",
    "findings_to_frame",
    "format_location",
    "format_message",
    "raise_findings",
    "source_rows",
]

#: Name of the column the readers add, holding spreadsheet row numbers (header = row 1).
SOURCE_ROW = "_source_row"

#: ``Finding.action`` value for problems that stop the run.
STOP = "stop"
#: ``Finding.action`` value for problems that are only reported.
WARN = "warn"

#: Longest value shown in a message; longer values are shortened with "...".
MAX_VALUE_CHARS = 60
#: How many findings ``str(InputErrors)`` lists before "... and N more".
MAX_LISTED = 50

FINDING_COLUMNS = ["file", "row", "column", "value", "reason", "action"]


def source_rows(frame: pd.DataFrame) -> np.ndarray:
    """Spreadsheet row of each record: the :data:`SOURCE_ROW` column, else 2, 3, ... (as if
    exported with a header row), so that a finding names a row a person can open."""
    if SOURCE_ROW in frame.columns:
        return frame[SOURCE_ROW].to_numpy()
    return np.arange(2, len(frame) + 2)


def _short(value: Any) -> str:
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    text = text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 3] + "..."
    return text


def format_location(file: Any = None, row: int | None = None, column: Any = None) -> str:
    """``"data/raw/x.csv, row 14, column 'email'"`` (parts that are None are left out)."""
    parts = []
    if file is not None:
        parts.append(str(file))
    if row is not None:
        parts.append(f"row {row}")
    if column is not None:
        parts.append(f"column '{column}'")
    return ", ".join(parts)


def format_message(
    file: Any = None,
    row: int | None = None,
    column: Any = None,
    value: Any = None,
    reason: str = "",
) -> str:
    """One sentence: ``<file>, row <r>, column '<c>': value '<v>' <reason>``.

    ``reason`` should read naturally after ``value '<v>'`` when a value is
    given (e.g. "looks like an email address ..."). A final full stop is added
    when missing.
    """
    reason = (reason or "invalid input").strip()
    if not reason.endswith((".", "?", "!")):
        reason += "."
    where = format_location(file, row, column)
    what = f"value '{_short(value)}' {reason}" if value is not None else reason
    return f"{where}: {what}" if where else what[:1].upper() + what[1:]


@dataclass(frozen=True)
class Finding:
    """One problem in the input data, stopping or not.

    Attributes
    ----------
    file : str | None
        Path of the input file as configured.
    row : int | None
        Spreadsheet row number (header = row 1, first data row = row 2);
        None when the problem concerns a whole column or file.
    column : str | None
        Column name.
    value : str | None
        The offending value as it may be shown to people. Identifier
        findings always hold a *masked* value here, never the identifier.
    reason : str
        Why this is a problem and what to do; reads after "value '...'".
    action : str
        ``"stop"`` (the run stops), ``"warn"`` (reported only) or a
        description of what was done automatically (e.g. "top-coded to 90").
    """

    file: str | None
    row: int | None
    column: str | None
    value: str | None
    reason: str
    action: str = STOP

    @property
    def is_stopping(self) -> bool:
        return self.action == STOP

    def message(self) -> str:
        return format_message(self.file, self.row, self.column, self.value, self.reason)

    def __str__(self) -> str:
        return self.message()

    def to_error(self) -> InputError:
        return InputError(self.reason, file=self.file, row=self.row, column=self.column, value=self.value)


class InputError(Exception):
    """A problem in the input data that stops the run.

    Parameters / attributes
    -----------------------
    reason : str
        Why this is a problem and, where possible, how to fix it. Written so
        that it reads after ``value '<value>'`` when a value is given.
    file : str | None
        The input file (as configured, e.g. ``data/raw/x.csv``).
    row : int | None
        1-based row number as seen in a spreadsheet program: the header is
        row 1, the first data row is row 2 (for CSV files: the line number).
    column : str | None
        Column (header) name.
    value : Any
        The offending value (masked if it may be an identifier).

    ``str(err)`` is one sentence, e.g. ``data/raw/x.csv, row 14, column
    'email': value 'j***@***.org' looks like an email address (a direct
    identifier); remove the column or map it out before running.``
    """

    def __init__(
        self,
        reason: str,
        *,
        file: Any = None,
        row: int | None = None,
        column: Any = None,
        value: Any = None,
    ) -> None:
        self.reason = reason
        self.file = None if file is None else str(file)
        self.row = None if row is None else int(row)
        self.column = None if column is None else str(column)
        self.value = value
        super().__init__(self.message())

    def message(self) -> str:
        return format_message(self.file, self.row, self.column, self.value, self.reason)

    def __str__(self) -> str:
        return self.message()

    def __reduce__(self):  # keep the structured fields when pickled (e.g. multiprocessing)
        return (_rebuild_input_error, (self.reason, self.file, self.row, self.column, self.value))

    def to_finding(self, action: str = STOP) -> Finding:
        value = None if self.value is None else _short(self.value)
        return Finding(self.file, self.row, self.column, value, self.reason, action)


class InputErrors(InputError):
    """Several stopping problems reported at once.

    ``findings`` is the full list (as :class:`Finding`); ``str()`` is a
    heading followed by a numbered list of at most 50 messages, then
    "... and N more." when there are more. ``file`` is set when all findings
    concern the same file.
    """

    def __init__(self, findings: Iterable[Finding | InputError], *, heading: str | None = None) -> None:
        items = [f.to_finding() if isinstance(f, InputError) else f for f in findings]
        if not items:
            raise ValueError("InputErrors needs at least one finding")
        self.findings: list[Finding] = items
        files = {f.file for f in items}
        self.file = files.pop() if len(files) == 1 else None
        n = len(items)
        self.heading = heading or (
            f"{n} problem{'s' if n != 1 else ''} in the input data stop the run"
            if n != 1
            else "1 problem in the input data stops the run"
        )
        self.reason = self.heading
        self.row = None
        self.column = None
        self.value = None
        Exception.__init__(self, self.message())

    def __len__(self) -> int:
        return len(self.findings)

    def __reduce__(self):
        return (_rebuild_input_errors, (self.findings, self.heading))

    def message(self) -> str:
        lines = [f"{self.heading}:"]
        for i, f in enumerate(self.findings[:MAX_LISTED], start=1):
            lines.append(f"  {i}. {f.message()}")
        extra = len(self.findings) - MAX_LISTED
        if extra > 0:
            lines.append(f"  ... and {extra} more.")
        return "\n".join(lines)


def _rebuild_input_error(reason, file, row, column, value) -> InputError:
    return InputError(reason, file=file, row=row, column=column, value=value)


def _rebuild_input_errors(findings, heading) -> InputErrors:
    return InputErrors(findings, heading=heading)


def raise_findings(findings: Sequence[Finding | InputError], *, heading: str | None = None) -> None:
    """Raise the stopping findings: nothing if none, InputError if one, else InputErrors."""
    stopping = [f for f in findings if isinstance(f, InputError) or f.is_stopping]
    if not stopping:
        return
    if len(stopping) == 1:
        only = stopping[0]
        raise only if isinstance(only, InputError) else only.to_error()
    raise InputErrors(stopping, heading=heading)


def findings_to_frame(findings: Iterable[Finding | InputError]) -> pd.DataFrame:
    """Findings as a table with columns file, row (Int64), column, value, reason, action.

    Also accepts :class:`InputError` (converted with action "stop") and
    :class:`InputErrors` (expanded into its findings).
    """
    rows: list[Finding] = []
    for f in findings:
        if isinstance(f, InputErrors):
            rows.extend(f.findings)
        elif isinstance(f, InputError):
            rows.append(f.to_finding())
        else:
            rows.append(f)
    frame = pd.DataFrame(
        {
            "file": pd.Series([f.file for f in rows], dtype="str"),
            "row": pd.Series([f.row for f in rows], dtype="Int64"),
            "column": pd.Series([f.column for f in rows], dtype="str"),
            "value": pd.Series([None if f.value is None else str(f.value) for f in rows], dtype="str"),
            "reason": pd.Series([f.reason for f in rows], dtype="str"),
            "action": pd.Series([f.action for f in rows], dtype="str"),
        },
        columns=FINDING_COLUMNS,
    )
    return frame
