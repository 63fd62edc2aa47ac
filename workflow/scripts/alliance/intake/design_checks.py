"""Checks of the design at intake: what the data lack before any model is fitted.

A dataset can pass every cell check and still be unable to answer the question:
one therapist, one session per patient, no alliance score at all, an outcome that
never changes. A mixed model then fails or, worse, returns numbers (a patient ICC
from one session per patient). These checks turn such designs into findings that
stop the run at intake, naming what the design lacks and which models cannot be
fitted, so that the run ends with a message before any model job starts.

Two kinds of unit get a stated policy instead: patients with no alliance score
(``cleaning.patients_without_alliance``) and sessions of patients without a row in
the patients file (``cleaning.sessions_without_patient_row``); each such patient is
named (its pseudonymous id, as in every finding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from alliance.intake.findings import SOURCE_ROW, STOP, Finding
from alliance.intake.layout import Layout
from alliance.intake.repairs import rows_text

#: What every mixed model of the suite needs, said once in the design findings.
NO_MODEL = "no model of the suite can be fitted"


def _values_text(values: pd.Series) -> str:
    """A few distinct values, quoted: ``'T001'``."""
    return ", ".join(f"'{v}'" for v in values[:3]) + (" ..." if len(values) > 3 else "")


def design_findings(data: pd.DataFrame, layout: Layout, alliance_key: str) -> list[Finding]:
    """Stopping findings for designs the models cannot use (``data``: scored, one row per session).

    ``alliance_key`` is the ``dataset.measures`` key of the alliance measure (for messages).
    """
    file, patient_lab, therapist_lab = layout.file, layout.lab["patient"], layout.lab.get("therapist")
    found = []

    def stop(column: str | None, value: str | None, reason: str) -> None:
        found.append(Finding(file, None, column, value, reason, STOP))

    if data["alliance"].notna().sum() == 0:
        stop(
            None,
            None,
            f"no session has an alliance score (dataset.measures.{alliance_key} is missing in every row): "
            f"the alliance is what the models relate to the outcome, so {NO_MODEL}",
        )
    if data["symptoms"].notna().sum() == 0:
        stop(None, None, f"no session has an outcome score (every symptom measure is missing): {NO_MODEL}")
    if found:
        return found
    usable = data.loc[data["alliance"].notna() & data["symptoms"].notna()]
    if usable.empty:
        stop(None, None, f"no session has both an alliance and an outcome score: {NO_MODEL}")
        return found
    for score, what in (("alliance", "alliance score"), ("symptoms", "outcome score")):
        distinct = usable[score].unique()
        if len(distinct) == 1:
            stop(
                None,
                f"{distinct[0]:g}",
                f"is the {what} of every session with both scores: a constant {what} "
                f"has no variance to relate, so {NO_MODEL}",
            )
    therapists = usable["therapist"].unique() if "therapist" in usable.columns else []
    if len(therapists) == 1:
        stop(
            therapist_lab,
            str(therapists[0]),
            "is the only therapist in the data: therapist-level variance cannot be estimated, so the models with a "
            "therapist random effect (three-level models) and therapist-level effects cannot be fitted; for a "
            "single-therapist study, remove dataset.columns.therapist: the suite then runs as a design without "
            "therapists",
        )
    per_patient = usable.groupby("patient").size()
    if per_patient.max() < 2:
        stop(
            patient_lab,
            None,
            f"every one of the {len(per_patient)} patients has at most one session with both scores: without "
            "repeated sessions the patient-level variance cannot be told from the session-level variance and no "
            f"within-patient effect exists, so {NO_MODEL}",
        )
    elif len(therapists) > 1:
        per_therapist = usable.groupby("therapist")["patient"].nunique()
        if per_therapist.max() < 2:
            stop(
                therapist_lab,
                None,
                f"every one of the {len(per_therapist)} therapists has one patient: therapist and patient "
                "variance cannot be told apart, so the models with a therapist random effect (three-level "
                "models) cannot be fitted",
            )
    return found


def patients_without_alliance(
    data: pd.DataFrame, layout: Layout, policy: dict[str, Any]
) -> tuple[pd.DataFrame, list[Finding], list[Finding]]:
    """Patients with no alliance score in any session, by ``cleaning.patients_without_alliance``.

    Returns (data, repaired findings, stopping findings); ``exclude`` drops their rows.
    Nothing when no session has an alliance score (a design finding says so).
    """
    has_alliance = data.groupby("patient", sort=False)["alliance"].transform("count") > 0
    if has_alliance.all() or not has_alliance.any():
        return data, [], []
    setting = policy["patients_without_alliance"]
    action = {"keep": "kept; no alliance score", "exclude": "patient excluded", "stop": STOP}[setting]
    tail = {
        "keep": "kept; models that use the alliance leave the patient out",
        "exclude": "the patient's sessions are excluded",
        "stop": "score the alliance, or set cleaning.patients_without_alliance: keep or exclude",
    }[setting]
    return _per_patient_policy(
        data,
        ~has_alliance,
        setting,
        lambda patient, rows: Finding(
            layout.file,
            int(rows.iloc[0]),
            layout.lab["patient"],
            str(patient),
            f"has no alliance score in any of its sessions ({rows_text(rows)}); {tail}",
            action,
        ),
    )


def sessions_without_patient_row(
    data: pd.DataFrame, table: pd.DataFrame, layout: Layout, patients_file: str, policy: dict[str, Any]
) -> tuple[pd.DataFrame, list[Finding], list[Finding]]:
    """Sessions of patients the patients file does not list, by ``cleaning.sessions_without_patient_row``.

    Returns (data, repaired findings, stopping findings); ``exclude`` drops their rows.
    """
    unlisted = ~data["patient"].isin(table["patient"])
    if not unlisted.any():
        return data, [], []
    setting = policy["sessions_without_patient_row"]
    action = {"keep": "kept; covariates missing", "exclude": "patient excluded", "stop": STOP}[setting]
    tail = {
        "keep": "kept; the patient's covariates are missing",
        "exclude": "the patient's sessions are excluded",
        "stop": "add the patient to the patients file, or set cleaning.sessions_without_patient_row: keep or exclude",
    }[setting]
    return _per_patient_policy(
        data,
        unlisted,
        setting,
        lambda patient, rows: Finding(
            layout.file,
            int(rows.min()),
            layout.lab["patient"],
            str(patient),
            f"has sessions ({rows_text(rows.sort_values())}) but no row in the patients file {patients_file}; {tail}",
            action,
        ),
    )


def _per_patient_policy(
    data: pd.DataFrame,
    flagged: pd.Series,
    setting: str,
    finding_for: Callable[[Any, pd.Series], Finding],
) -> tuple[pd.DataFrame, list[Finding], list[Finding]]:
    """One finding per flagged patient (``finding_for(patient, source rows)``), then the policy:
    ``exclude`` drops their rows, ``stop`` returns the findings as stopping ones."""
    findings = [
        finding_for(patient, rows) for patient, rows in data.loc[flagged].groupby("patient", sort=True)[SOURCE_ROW]
    ]
    if setting == "exclude":
        data = data.loc[~flagged]
    return data, ([] if setting == "stop" else findings), (findings if setting == "stop" else [])
