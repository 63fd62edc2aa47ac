"""The compact exports of the cleaned demo data that the model-suite tests fit.

tests/data/demo_analysis.csv and demo_patients.csv hold the columns of the cleaned demo sessions
and patients that the suite's models use; tests/r/demo_suite.R fits the lme4 references to them.
Rewrite them after a change of the cleaning stage with ``write_exports()`` (``python
tests/engines/test_suite_lme4.py --write-data``), then rerun the R script.
"""

from __future__ import annotations

import pandas as pd

from testkit import ROOT, clean_demo

DATA = ROOT / "tests" / "data"

SESSION_COLUMNS = [
    "patient",
    "therapist",
    "session",
    "therapy",
    "condition",
    "expectancy",
    "session_c",
    "symptoms",
    "alliance",
    "alliance_within_patient",
    "alliance_between_patient",
    "alliance_patient_within_therapist",
    "alliance_between_therapist",
    "symptoms_within_patient",
    "symptoms_between_patient",
    "symptoms_next",
    "alliance_next",
]
PATIENT_COLUMNS = [
    "patient",
    "therapist",
    "therapy",
    "condition",
    "symptoms_baseline",
    "symptoms_s3",
    "symptoms_last",
    "alliance_s3",
    "alliance_s1_4",
    "alliance_patient_mean",
]


def export_demo_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The compact exports, made from the demo data by the intake stage."""
    clean = clean_demo()
    return clean.sessions[SESSION_COLUMNS].copy(), clean.patients[PATIENT_COLUMNS].copy()


def write_exports() -> None:
    """Write the exports to tests/data/ (ten significant digits, LF line ends)."""
    sessions, patients = export_demo_tables()
    for frame, name in ((sessions, "demo_analysis.csv"), (patients, "demo_patients.csv")):
        frame.to_csv(DATA / name, index=False, float_format="%.10g", lineterminator="\n")


def read_exports() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The committed exports (sessions, patients), identifiers read as text."""
    ids = {"patient": str, "therapist": str, "therapy": str, "condition": str}
    return pd.read_csv(DATA / "demo_analysis.csv", dtype=ids), pd.read_csv(DATA / "demo_patients.csv", dtype=ids)
