"""De-identifying transforms: full dates to days since intake, age top-coding, small cells.

They make a table that passed the identifier screen (:mod:`alliance.intake.screen`)
safer to share: a lab opts a date column in to conversion to days since each
patient's first date (the dates are then dropped), ages over 89 are top-coded to
90 as HIPAA Safe Harbor requires, and combinations of quasi-identifiers shared by
fewer than k patients are reported (a k-anonymity style warning).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from alliance.intake.findings import WARN, Finding, InputError, source_rows
from alliance.intake.identifier_values import mask_value
from alliance.intake.text import as_str, missing_as_false

__all__ = [
    "AGE_TOPCODE_LIMIT",
    "AGE_TOPCODE_VALUE",
    "QUASI_IDENTIFIERS",
    "dates_to_days_since_intake",
    "small_cells",
    "topcode_age",
]

#: Ages above this are identifiers under HIPAA Safe Harbor ...
AGE_TOPCODE_LIMIT = 89
#: ... and are replaced by this value.
AGE_TOPCODE_VALUE = 90
#: Patient columns that could identify someone in combination (checked by :func:`small_cells`).
QUASI_IDENTIFIERS = ("site", "age_band", "sex")


def dates_to_days_since_intake(
    df: pd.DataFrame,
    date_column: str,
    patient_column: str = "patient",
    *,
    format: str | None = None,
    file: str | None = None,
) -> pd.Series:
    """Days since each patient's first (earliest) date in ``date_column``.

    For labs that opt a date column in: the caller stores the result (e.g. as
    ``days_since_intake``) and then drops ``date_column``. Text dates are
    parsed as ISO 8601 (``2024-03-05``, optionally with a time) unless
    ``format`` (e.g. ``"%d/%m/%Y"``) is given -- day/month order is never
    guessed. Times of day are ignored. Returns an ``Int64`` Series aligned to
    ``df.index``, named ``days_since_intake``; missing dates or patients give
    <NA>.

    Raises InputError naming the first row whose date cannot be read.
    """
    s = df[date_column]
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        dates = s
    else:
        text = as_str(s)
        dates = pd.to_datetime(text, format=format or "ISO8601", errors="coerce")
        blank = missing_as_false(text.str.strip().str.len() == 0) | text.isna()
        bad = (dates.isna() & ~blank).to_numpy()
        if bad.any():
            pos = int(bad.argmax())
            rows = source_rows(df)
            shown = "YYYY-MM-DD (ISO 8601)" if format is None else f"'{format}'"
            raise InputError(
                f"cannot be read as a date in the form {shown} ({int(bad.sum()):,} value"
                f"{'s' if bad.sum() != 1 else ''} in this column); fix the values or set the date "
                "format for this column in the config (e.g. '%d/%m/%Y')",
                file=file,
                row=int(rows[pos]),
                column=date_column,
                value=mask_value(text.iloc[pos], "date"),
            )
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    days = dates.dt.normalize()
    first = days.groupby(df[patient_column], dropna=True).transform("min")
    out = (days - first).dt.days
    return out.astype("Int64").rename("days_since_intake")


def topcode_age(
    series: pd.Series,
    *,
    file: str | None = None,
    source_rows: Sequence[int] | pd.Series | None = None,
    limit: int = AGE_TOPCODE_LIMIT,
    top: int = AGE_TOPCODE_VALUE,
) -> tuple[pd.Series, list[Finding]]:
    """Top-code ages over ``limit`` (89) to ``top`` (90), as HIPAA Safe Harbor requires.

    Works on numeric or text (``"93"``) series and keeps the dtype. Returns the
    new series and at most one non-stopping finding (action "top-coded to 90")
    with the count and first row affected; pass ``source_rows`` (e.g.
    ``df["_source_row"]``) so the row number is the spreadsheet row.
    """
    numeric = pd.to_numeric(series, errors="coerce")
    over = missing_as_false(numeric > limit)
    if not over.any():
        return series, []
    if pd.api.types.is_numeric_dtype(series.dtype):
        out = series.mask(over, top)
    else:
        out = series.mask(over, str(top))
    pos = int(over.to_numpy().argmax())
    rows = np.asarray(source_rows) if source_rows is not None else np.arange(2, len(series) + 2)
    n = int(over.sum())
    finding = Finding(
        None if file is None else str(file),
        int(rows[pos]),
        None if series.name is None else str(series.name),
        f">{limit}",
        f"is an age over {limit} ({n:,} value{'s' if n != 1 else ''} in this column); ages over "
        f"{limit} are identifiers under HIPAA Safe Harbor and were top-coded to {top}",
        f"top-coded to {top}",
    )
    return out, [finding]


def small_cells(
    patients_df: pd.DataFrame,
    quasi_identifiers: Sequence[str] = QUASI_IDENTIFIERS,
    k: int = 5,
    *,
    file: str | None = None,
    patient_column: str = "patient",
) -> list[Finding]:
    """Warn (action "warn") for combinations of quasi-identifiers shared by fewer than ``k`` patients.

    Counts distinct ``patient_column`` values per cell if that column exists,
    else rows. Quasi-identifiers missing from the table are ignored (no
    findings if none is present). Missing values form their own group.
    """
    qis = [q for q in quasi_identifiers if q in patients_df.columns]
    if not qis or patients_df.empty:
        return []
    keys = patients_df[qis].astype("str").fillna("(missing)")
    if patient_column in patients_df.columns:
        counts = patients_df[patient_column].groupby([keys[q] for q in qis]).nunique()
    else:
        counts = keys.groupby(qis).size()
    small = counts[counts < k]
    findings = []
    for key, n in small.items():
        key = key if isinstance(key, tuple) else (key,)
        cell = ", ".join(f"{q}={v}" for q, v in zip(qis, key))
        findings.append(
            Finding(
                None if file is None else str(file),
                None,
                ", ".join(qis),
                cell,
                f"is a group of only {int(n)} patient{'s' if n != 1 else ''} (fewer than k={k}); "
                "people in small groups can be re-identified: consider coarser age bands, "
                "merging small sites, or suppressing these rows",
                WARN,
            )
        )
    return findings
