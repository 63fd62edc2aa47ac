"""Design columns (therapy, condition, site, study, alliance rater) from the sessions file, the
patients file, or both.

A lab's export may hold a patient's therapy type and condition on every session row, only once
in the client (patients) table, or in both. ``dataset.columns`` maps the ones on the session
rows, ``dataset.patient_columns`` the ones in the patients file; the labels mapping
(``dataset.labels``) applies to therapy and condition wherever they come from. A design column
of the patients file is copied onto the patient's session rows. When a column is in both files,
every session row must agree with the patient's row of the patients file (or, for a patient
without one, with the patient's first session): a disagreement is a finding, handled by
``cleaning.design_conflict`` (``stop``, the default, or ``patients_file``: the patients file's
value, else the first session's, replaces the row's).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from alliance.intake.findings import SOURCE_ROW, STOP, Finding
from alliance.intake.layout import DESIGN_COLUMNS, LABELLED_DESIGN_COLUMNS, SESSION_COLUMNS, Layout

#: The finding's action under ``cleaning.design_conflict: patients_file``, by where the value came from.
REPLACED = {
    "patients file": "replaced by the patients file's value",
    "first session": "replaced by the first session's value",
}


def design_in_patients_file(layout: Layout | None) -> list[str]:
    """The design columns the patients file maps (``dataset.patient_columns``), in canonical order."""
    if layout is None:
        return []
    return [c for c in DESIGN_COLUMNS if c in layout.lab]


def patients_design_checked(
    table: pd.DataFrame, layout: Layout, labels: dict[str, dict[str, str]]
) -> tuple[pd.DataFrame, list[Finding]]:
    """The patients file's therapy and condition labels made canonical: (table, stopping findings).

    A missing or unknown label stops the run, as on the session rows; ``labels`` is
    :func:`alliance.intake.validation.label_spellings` of the dataset.
    """
    stops: list[Finding] = []
    table = table.copy()
    for kind in (k for k in LABELLED_DESIGN_COLUMNS if k in layout.lab):
        known = labels[kind]
        values = table[kind]
        for row, value in zip(table.loc[~values.isin(known), SOURCE_ROW], values[~values.isin(known)]):
            if pd.isna(value):
                reason = f"the {kind} label is missing; every row of the patients file needs one"
            else:
                reason = (
                    f"is an unknown {kind} label; known spellings: {', '.join(sorted(known))}; "
                    f"add it under dataset.labels.{kind} in the config"
                )
            stops.append(
                Finding(layout.file, int(row), layout.lab[kind], None if pd.isna(value) else str(value), reason, STOP)
            )
        table[kind] = values.map(known)
    return table, stops


def with_patients_design(
    data: pd.DataFrame,
    layout: Layout,
    table: pd.DataFrame | None,
    patients_layout: Layout | None,
    policy: dict[str, Any],
    labels: dict[str, dict[str, str]],
) -> tuple[pd.DataFrame, list[Finding], list[Finding]]:
    """The session rows (sorted by patient and session) with the patients file's design columns:
    (data, repaired findings, stopping findings).

    A column only in the patients file is copied onto the session rows; a patient with sessions
    but no row there has no therapy or condition, which stops the run unless
    ``cleaning.sessions_without_patient_row`` excludes (or stops for) such patients. A column in
    both files is checked row by row (:func:`_conflicts`).
    """
    repairs: list[Finding] = []
    stops: list[Finding] = []
    if table is None or patients_layout is None:
        return data, repairs, stops
    by_patient = table.drop_duplicates("patient").set_index("patient")
    data = data.copy()
    for column in design_in_patients_file(patients_layout):
        from_table = data["patient"].map(by_patient[column])
        if column in layout.lab:
            valid = set(labels[column].values()) if column in labels else None
            data[column], found = _conflicts(
                data, column, from_table, (layout, patients_layout), by_patient, valid, policy
            )
            (stops if policy["design_conflict"] == "stop" else repairs).extend(found)
            continue
        _insert_in_canonical_order(data, column, from_table)
        # a patient without a row: excluded or stopped by cleaning.sessions_without_patient_row, else stop here
        if column in LABELLED_DESIGN_COLUMNS and policy.get("sessions_without_patient_row", "keep") == "keep":
            stops += _without_label(data, column, from_table, patients_layout, by_patient)
    return data, repairs, stops


def _insert_in_canonical_order(data: pd.DataFrame, column: str, values: pd.Series) -> None:
    """Add ``column`` where the sessions file would have put it (SESSION_COLUMNS order), in place,
    so that the analysis dataset has one column order whichever file gave the column."""
    order = [c for c in SESSION_COLUMNS if c in data.columns or c == column]
    before = order[: order.index(column)]
    present = list(data.columns)
    position = max((present.index(c) for c in before), default=present.index(SOURCE_ROW)) + 1
    data.insert(position, column, values)


def _without_label(
    data: pd.DataFrame, column: str, from_table: pd.Series, patients_layout: Layout, by_patient: pd.DataFrame
) -> list[Finding]:
    """One stopping finding per patient with sessions whose therapy or condition the patients file lacks."""
    findings = []
    for patient in data.loc[from_table.isna(), "patient"].drop_duplicates():
        if patient in by_patient.index:
            continue  # an empty cell of a listed patient is already a finding of the patients file
        findings.append(
            Finding(
                patients_layout.file,
                None,
                patients_layout.lab["patient"],
                str(patient),
                f"has sessions but no row in the patients file, which alone gives the {column} "
                f"(dataset.patient_columns.{column}); add the patient's row, or set "
                "cleaning.sessions_without_patient_row: exclude",
                STOP,
            )
        )
    return findings


def _conflicts(
    data: pd.DataFrame,
    column: str,
    from_table: pd.Series,
    layouts: tuple[Layout, Layout],
    by_patient: pd.DataFrame,
    valid: set[str] | None,
    policy: dict[str, Any],
) -> tuple[pd.Series, list[Finding]]:
    """(the column after the policy, one finding per session row that disagrees).

    ``layouts``: the sessions file's and the patients file's. A row disagrees with the patients
    file's value, or, for a patient without one, with the patient's first session row. A missing
    session value is filled from the patients file. ``valid``: the canonical labels (therapy,
    condition), so that a row with an unknown label, already a finding, is not compared.
    """
    layout, patients_layout = layouts
    values = data[column].where(data[column].notna(), None)
    if valid is not None:
        values = values.where(values.isin(valid), None)
    first_value = values.groupby(data["patient"], sort=False).transform("first")
    first_row = data.groupby("patient", sort=False)[SOURCE_ROW].transform("first")
    listed = from_table.notna()
    against_table = listed & values.notna() & (values != from_table)
    among_rows = ~listed & values.notna() & first_value.notna() & (values != first_value)
    stop = policy["design_conflict"] == "stop"
    hint = "; set cleaning.design_conflict: patients_file to use the patients file's value, else the first session's"
    hint = hint if stop else ""
    findings = []
    for index in data.index[against_table | among_rows]:
        patient, value = data.at[index, "patient"], values[index]
        if against_table[index]:
            table_row = int(by_patient.at[patient, SOURCE_ROW])
            source = "patients file"
            reason = (
                f"differs from the patients file ({patients_layout.file}, row {table_row}, column "
                f"'{patients_layout.lab[column]}': '{from_table[index]}'), the patient's row there; "
                f"a patient has one {column}"
            )
        else:
            source = "first session"
            reason = (
                f"differs from the patient's first session (row {int(first_row[index])}: "
                f"'{first_value[index]}'), and the patients file has no {column} for the patient; "
                f"a patient has one {column}"
            )
        findings.append(
            Finding(
                layout.file,
                int(data.at[index, SOURCE_ROW]),
                layout.lab[column],
                str(value),
                reason + hint,
                STOP if stop else REPLACED[source],
            )
        )
    resolved = from_table.where(listed, first_value).where(lambda v: v.notna(), values)
    return resolved, findings
