"""De-identification screen, run on every input table before anything is written.

**This is a screening aid, not a certification of de-identification.** The
HIPAA Safe Harbor method lists 18 kinds of identifiers (names, geographic
units smaller than a state, all elements of dates except the year, phone and
fax numbers, email addresses, social security and medical record numbers,
account and licence numbers, device ids, URLs, IP addresses, biometrics,
photographs, any other unique code...). This screen catches the common ones
that turn up in psychotherapy study exports; the data owner remains
responsible for the release of their data (and for GDPR / local rules).

What is checked
---------------
* **Column names** that suggest a direct identifier (word-aware, case
  insensitive: ``email``, ``first_name``, ``therapist_name``, ``PatientName``,
  ``dob``, ``nhs_number``, ``postcode``, ``notes`` ...). The canonical
  pseudonymous ids ``patient``, ``therapist``, ``site`` and ``study`` are fine,
  as are names such as ``session``, ``condition``, ``site_name`` or ``therapy_name``
  (:mod:`alliance.intake.identifier_names`).
* **Values** in every text column: email addresses, telephone numbers
  (international ``+44 ...``, UK/US formats with separators and >= 9 digits,
  UK mobiles ``07...``; plain integers and codes such as ``P0012`` are not
  flagged), IP addresses, full dates (``2024-03-05``, ``05/03/2024``,
  ``5 March 2024``) outside the columns opted in for conversion, street
  addresses (``12 High Street``), UK postcodes / US ZIP codes in columns whose
  name suggests a location, and free text (a column where a substantial share
  of values have 4+ words or more than 40 characters). Columns of a
  date/datetime type count as full dates (:mod:`alliance.intake.identifier_values`).
* **Values of the mapped id and label columns** (``id_columns``: patient, therapist, site,
  therapy, condition): NHS/CHI numbers and other numbers with a valid check digit, social
  security and national insurance numbers, full UK postcodes and ZIP+4 codes, and people's
  names in the patient and therapist ids (:mod:`alliance.intake.identifier_codes`).

Each problem is reported once per column and kind, at the **first** offending
row (the ``_source_row`` added by :func:`alliance.intake.readers.read_table`; header
= row 1), with a **masked** value (``j***@***.org``) -- an identifier is never
printed back in full.

The transforms that make a table shareable -- dates to days since intake, age
top-coding, the small-cell warning -- are in :mod:`alliance.intake.deid`.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from alliance.intake.findings import SOURCE_ROW, STOP, WARN, Finding, InputErrors, source_rows
from alliance.intake.identifier_codes import id_code_findings
from alliance.intake.identifier_names import identifier_label
from alliance.intake.identifier_values import REMOVE_ADVICE, mask_value, value_findings
from alliance.intake.text import as_str, missing_as_false

__all__ = ["assert_deidentified", "screen_identifiers"]


def screen_identifiers(
    df: pd.DataFrame,
    *,
    file: str | None,
    allowed_columns: Iterable[str] = (),
    date_columns_to_days: Iterable[str] | None = None,
    id_columns: dict[str, str] | None = None,
) -> list[Finding]:
    """Screen a table for direct identifiers; returns findings (does not raise).

    Parameters
    ----------
    df : the table as read (ideally with ``_source_row`` from ``read_table``;
        without it, rows are numbered as if exported with a header: 2, 3, ...).
    file : shown in every finding.
    allowed_columns : columns the data owner has checked and accepts; they are
        skipped entirely (name and values).
    date_columns_to_days : columns that will be converted to days since intake
        (:func:`alliance.intake.deid.dates_to_days_since_intake`); full dates in them are not flagged.
    id_columns : the lab's column -> its canonical role (``patient``, ``therapist``, ``site``,
        ``therapy``, ``condition``): their values are also checked for health-service and national
        numbers, postcodes and people's names (:mod:`alliance.intake.identifier_codes`).

    Returns
    -------
    list[Finding]
        Stopping findings (action ``"stop"``) for identifier-like values and
        columns; ``"warn"`` for empty columns whose name suggests an
        identifier. At most one finding per column and kind; value-based
        findings take precedence over the name-based one for the same column.
    """
    file = None if file is None else str(file)
    allowed = {str(c) for c in allowed_columns}
    to_days = {str(c) for c in (date_columns_to_days or ())}
    rows = source_rows(df)
    findings: list[Finding] = []
    for column in df.columns:
        col = str(column)
        if col == SOURCE_ROW or col in allowed:
            continue
        s = df[column]
        found = value_findings(s, col, file, rows, check_dates=col not in to_days)
        if col in (id_columns or {}):  # a cell both checks flag is named once, by the specific check
            coded = id_code_findings(s, col, id_columns[col], file, rows)
            found = [f for f in found if f.row not in {c.row for c in coded}] + coded
        findings.extend(found)
        label = identifier_label(col)
        if label is None or any(f.is_stopping for f in found):
            continue
        if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
            filled = missing_as_false(as_str(s).str.strip().str.len() > 0).to_numpy()
        else:
            filled = s.notna().to_numpy()
        if filled.any():
            pos = int(filled.argmax())
            findings.append(
                Finding(
                    file,
                    int(rows[pos]),
                    col,
                    mask_value(s.iloc[pos]),
                    f"is in a column whose name suggests {label} (a direct identifier); {REMOVE_ADVICE}",
                    STOP,
                )
            )
        else:
            findings.append(
                Finding(
                    file,
                    None,
                    col,
                    None,
                    f"the column name suggests {label} (a direct identifier) but the column is "
                    "empty; drop it before sharing the data",
                    WARN,
                )
            )
    return findings


def assert_deidentified(
    df: pd.DataFrame,
    *,
    file: str | None,
    allowed_columns: Iterable[str] = (),
    date_columns_to_days: Iterable[str] | None = None,
    id_columns: dict[str, str] | None = None,
) -> list[Finding]:
    """Run :func:`screen_identifiers`; raise :class:`InputErrors` if anything stops the run.

    Returns the non-stopping findings (warnings) when nothing stops the run.
    """
    findings = screen_identifiers(
        df,
        file=file,
        allowed_columns=allowed_columns,
        date_columns_to_days=date_columns_to_days,
        id_columns=id_columns,
    )
    stopping = [f for f in findings if f.is_stopping]
    if stopping:
        n = len(stopping)
        raise InputErrors(
            stopping,
            heading=(
                f"{file}: the de-identification screen found {n} possible direct "
                f"identifier{'s' if n != 1 else ''}; nothing has been written"
            ),
        )
    return [f for f in findings if not f.is_stopping]
