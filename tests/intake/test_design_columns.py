"""Design columns from the sessions file, the patients file or both (alliance.intake.design).

The small lab export of testkit.lab with therapy type and condition moved into the client table
(a common layout), with the labels mapping applied there, and with both files holding them: a
disagreement is a finding that names file, row, column and value, stopped or repaired by
``cleaning.design_conflict``. Also: no patients file at all.
"""

from __future__ import annotations

import pandas as pd
import pytest

from alliance.intake.config import ConfigError
from testkit.lab import BASE_PATIENTS, BASE_SESSIONS, PATIENTS, SESSIONS, row_of

#: how the client table spells the labels (dataset.labels of the demo config lists them)
SPELLING = {"CBT": "Cognitive Behavioural Therapy", "PDT": "psychodynamic", "IPT": "Interpersonal Therapy"}
DIAGNOSIS = {"depression": "MDD", "anxiety": "GAD"}


def _design_of_patients() -> pd.DataFrame:
    """Each patient's therapy and condition (of the first session), in the client table's spellings."""
    first = BASE_SESSIONS.drop_duplicates("patient").set_index("patient")
    patients = BASE_PATIENTS.copy()
    patients["Treatment"] = patients["patient"].map(first["therapy"]).map(SPELLING)
    patients["Diagnosis"] = patients["patient"].map(first["condition"]).map(DIAGNOSIS)
    return patients


def _in_patients_file(lab, *, keep_in_sessions: bool = False) -> None:
    """Map therapy and condition to the client table (and drop them from the sessions file unless kept)."""
    columns = lab.config["dataset"]["columns"]
    if not keep_in_sessions:
        del columns["therapy"], columns["condition"]
        lab.write(BASE_SESSIONS.drop(columns=["therapy", "condition"]))
    lab.config["dataset"]["patient_columns"].update(therapy="Treatment", condition="Diagnosis")
    lab.write(patients=_design_of_patients())


def test_therapy_and_condition_only_in_the_patients_file_give_the_same_dataset(lab):
    expected = lab.clean()
    _in_patients_file(lab)
    result = lab.clean()
    keys = ["patient", "session", "therapy", "condition", "outcome_measure", "symptoms", "alliance"]
    pd.testing.assert_frame_equal(result.sessions[keys], expected.sessions[keys])
    assert result.patients[["patient", "therapy", "condition"]].equals(
        expected.patients[["patient", "therapy", "condition"]]
    )
    dictionary = result.dictionary.set_index(["table", "column"])
    assert dictionary.loc[("sessions", "therapy"), "source"] == "Treatment (patients file)"
    assert dictionary.loc[("sessions", "condition"), "source"] == "Diagnosis (patients file)"
    assert list(result.patients.columns) == list(expected.patients.columns)
    assert list(result.sessions.columns) == list(expected.sessions.columns)


def test_an_unknown_label_in_the_patients_file_stops_naming_its_row(lab):
    _in_patients_file(lab)
    patients = _design_of_patients()
    patients.loc[2, "Treatment"] = "Schema Therapy"
    patients.loc[4, "Diagnosis"] = None
    lab.write(patients=patients)
    assert lab.stop() == [
        f"{PATIENTS}, row 4, column 'Treatment': value 'Schema Therapy' is an unknown therapy label; known "
        "spellings: CBT, Cognitive Behavioral Therapy, Cognitive Behavioural Therapy, IPT, Interpersonal "
        "Psychotherapy, Interpersonal Therapy, PDT, Psychodynamic Therapy, cbt, ipt, pdt, psychodynamic; "
        "add it under dataset.labels.therapy in the config.",
        f"{PATIENTS}, row 6, column 'Diagnosis': the condition label is missing; every row of the patients file "
        "needs one.",
    ]


def test_a_patient_without_a_row_stops_when_only_the_patients_file_gives_the_condition(lab):
    _in_patients_file(lab)
    lab.write(patients=_design_of_patients().drop(index=[1]))
    messages = lab.stop()
    assert messages == [
        f"{PATIENTS}, column 'patient': value 'P***' has sessions but no row in the patients file, which "
        f"alone gives the {kind} (dataset.patient_columns.{kind}); add the patient's row, or set "
        "cleaning.sessions_without_patient_row: exclude."
        for kind in ("therapy", "condition")
    ]
    result = lab.clean(sessions_without_patient_row="exclude")
    assert "P00002" not in set(result.sessions["patient"]) and result.sessions["therapy"].notna().all()


def _disagreeing_export(lab) -> int:
    """Both files give therapy; one session row of P00003 says ipt, the client table PDT's spelling.

    Returns the 0-based index of the disagreeing session row."""
    _in_patients_file(lab, keep_in_sessions=True)
    sessions = BASE_SESSIONS.copy()
    rows = sessions.index[sessions["patient"] == "P00003"]
    assert sessions.loc[rows, "therapy"].unique().tolist() == ["PDT"]
    sessions.loc[rows[2], "therapy"] = "ipt"
    lab.write(sessions)
    return int(rows[2])


def test_a_session_row_disagreeing_with_the_patients_file_stops(lab):
    index = _disagreeing_export(lab)
    table_row = row_of(int(BASE_PATIENTS.index[BASE_PATIENTS["patient"] == "P00003"][0]))
    assert lab.stop() == [
        f"{SESSIONS}, row {row_of(index)}, column 'therapy': value 'IPT' differs from the patients file "
        f"({PATIENTS}, row {table_row}, column 'Treatment': 'PDT'), the patient's row there; a patient has one therapy; "
        "set cleaning.design_conflict: patients_file to use the patients file's value, else the first session's."
    ]


def test_design_conflict_patients_file_takes_the_patients_files_value(lab):
    index = _disagreeing_export(lab)
    result = lab.clean(design_conflict="patients_file")
    findings = lab.findings(design_conflict="patients_file")
    assert (row_of(index), "therapy", "IPT") in [f[:3] for f in findings]
    [action] = [f[4] for f in findings if f[1] == "therapy"]
    assert action == "replaced by the patients file's value"
    sessions = result.sessions
    assert sessions.loc[sessions["patient"] == "P00003", "therapy"].unique().tolist() == ["PDT"]


def test_without_a_patients_row_the_session_rows_must_agree_among_themselves(lab):
    index = _disagreeing_export(lab)
    lab.write(patients=_design_of_patients().loc[lambda p: p["patient"] != "P00003"])
    first = row_of(int(BASE_SESSIONS.index[BASE_SESSIONS["patient"] == "P00003"][0]))
    assert lab.stop() == [
        f"{SESSIONS}, row {row_of(index)}, column 'therapy': value 'IPT' differs from the patient's first session "
        f"(row {first}: 'PDT'), and the patients file has no therapy for the patient; a patient has one therapy; "
        "set cleaning.design_conflict: patients_file to use the patients file's value, else the first session's."
    ]
    result = lab.clean(design_conflict="patients_file")
    sessions = result.sessions
    assert sessions.loc[sessions["patient"] == "P00003", "therapy"].unique().tolist() == ["PDT"]


def test_site_from_the_patients_file_fills_the_session_rows(lab):
    expected = lab.clean()
    del lab.config["dataset"]["columns"]["site"]
    lab.config["dataset"]["patient_columns"]["site"] = "Centre"
    first = BASE_SESSIONS.drop_duplicates("patient").set_index("patient")
    patients = BASE_PATIENTS.assign(Centre=BASE_PATIENTS["patient"].map(first["site"]))
    lab.write(BASE_SESSIONS.drop(columns=["site"]), patients)
    result = lab.clean()
    assert result.sessions["site"].tolist() == expected.sessions["site"].tolist()
    assert result.patients["site"].tolist() == expected.patients["site"].tolist()


def test_therapy_mapped_nowhere_is_a_config_error(lab):
    del lab.config["dataset"]["columns"]["therapy"]
    with pytest.raises(ConfigError) as error:
        lab.clean()
    assert str(error.value) == (
        "dataset.columns.therapy: the therapy is mapped nowhere; map the sessions file's column in "
        "dataset.columns.therapy or the patients file's in dataset.patient_columns.therapy"
    )


@pytest.mark.parametrize("omit", ["key", "null"])
def test_an_intake_without_a_patients_file_runs_end_to_end(lab, omit):
    """No patients file: dropout (end_reason by default) is missing, and a warning says so."""
    expected = lab.clean()
    dataset = lab.config["dataset"]
    del dataset["patient_columns"]
    if omit == "key":
        del dataset["patients"]
    else:
        dataset["patients"] = None
    result = lab.clean()
    keys = ["patient", "session", "therapy", "condition", "symptoms", "alliance"]
    pd.testing.assert_frame_equal(result.sessions[keys], expected.sessions[keys])
    assert result.patients["dropout"].isna().all() and len(result.patients) == 6
    assert "age_band" not in result.patients.columns
    warnings = result.findings.loc[result.findings["reason"].str.startswith("dropout is not derived")]
    assert warnings["reason"].tolist() == [
        "dropout is not derived: cleaning.dropout_definition 'end_reason' needs the patients-file column "
        "dataset.patient_columns.end_reason, which is not mapped"
    ]
    with pytest.raises(ConfigError) as error:
        lab.clean(dropout_definition="fewer_than_planned")
    assert str(error.value) == (
        "cleaning.dropout_definition: 'fewer_than_planned' needs the planned number of sessions, "
        "dataset.patient_columns.planned_sessions (a column of the patients file), which is not mapped; "
        "map it or use end_reason"
    )
