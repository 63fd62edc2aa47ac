"""The bad-input corpus: every fault run through ``clean_dataset``, with its exact message.

Each test starts from a small, clean simulated export (3 therapists x 2 patients,
one row per attended session) written into a temporary directory, breaks it in one way, and
asserts what the lab is told: file, row (header = row 1), column, value and what
was done (repaired and recorded, or the run stopped). A few of the faults run
through the real workflow in tests/test_intake_workflow.py.
"""

from __future__ import annotations

import pandas as pd
import pytest

from alliance.intake.findings import InputErrors
from testkit.lab import BASE_PATIENTS, BASE_SESSIONS, BASE_TRUTH, HEADER, PATIENTS, SESSIONS, sessions

# --------------------------------------------------------------------------- the clean baseline


def test_the_clean_export_passes_without_findings(lab):
    result = lab.clean()
    assert lab.findings() == []
    assert len(result.sessions) == len(BASE_SESSIONS) == BASE_TRUTH["sample"]["session_rows"]  # every attended session
    assert result.flow["rows_excluded"].tolist() == [0, 0, 0, 0]


# --------------------------------------------------------------------------- the file itself


def test_wrong_delimiter(lab):
    lab.write_bytes(BASE_SESSIONS.to_csv(index=False, sep=";").encode())
    header = ";".join(HEADER)
    assert lab.stop() == [
        f"{SESSIONS}, row 1: value '{header[:57]}...' is the whole header read as a single column, but it "
        f"contains ';' {len(HEADER) - 1} times: the file looks semicolon-separated; set delimiter: ';' for "
        "this file in the config."
    ]


def test_empty_file(lab):
    lab.write_bytes(b"")
    assert lab.stop() == [
        f"{SESSIONS}: the file is empty (0 bytes): it has no header and no data rows; check that the export finished."
    ]


def test_header_only_file(lab):
    lab.write_bytes((",".join(HEADER) + "\n").encode())
    shown = ", ".join(HEADER[:10]) + ", ..."
    assert lab.stop() == [f"{SESSIONS}: the file has a header row ({len(HEADER)} columns: {shown}) but no data rows."]


def test_file_that_is_not_utf8(lab):
    frame = sessions()
    frame.loc[2, "therapy"] = "Thérapie"
    raw = frame.to_csv(index=False, lineterminator="\n").encode("latin-1")
    offset = raw.index(b"\xe9")
    character = offset - raw.rfind(b"\n", 0, offset)
    lab.write_bytes(raw)
    assert lab.stop() == [
        f"{SESSIONS}, row 4: value '0xE9' is not valid utf-8 (byte offset {offset}, line 4, character "
        f"{character}): the file was probably saved in another encoding; set encoding: latin-1 (or cp1252 for "
        "files from Windows Excel) for this file in the config, or re-save the file as UTF-8."
    ]


def test_ragged_row(lab):
    lines = BASE_SESSIONS.to_csv(index=False, lineterminator="\n").splitlines()
    lines[4] += ",5"  # data row 4 = spreadsheet row 5 gets one field too many
    lab.write_bytes(("\n".join(lines) + "\n").encode())
    assert lab.stop() == [
        f"{SESSIONS}, row 5: the row has {len(HEADER) + 1} fields but the header has {len(HEADER)}; a value "
        "probably contains the delimiter ',' without quotes; put such values in double quotes or remove the "
        "stray delimiter."
    ]


def test_duplicated_header(lab):
    frame = sessions()
    frame.columns = [c if c != "condition" else "therapy" for c in frame.columns]
    lab.write(frame)
    assert lab.stop() == [
        f"{SESSIONS}, row 1, column 'therapy': the header name appears twice, in columns 5 (E) and 6 (F); "
        "rename or remove one so that every column has a unique name."
    ]


def test_missing_column_and_missing_items_all_at_once(lab):
    lab.write(sessions().drop(columns=["therapy", "wai_07"]))
    present = ", ".join(c for c in HEADER if c not in ("therapy", "wai_07"))
    assert lab.stop() == [
        f"{SESSIONS}, row 1, column 'therapy': the column is missing from the header (needed by "
        f"dataset.columns.therapy); columns present: {present}.",
        f"{SESSIONS}, row 1, column 'wai_07': the column is missing from the header (needed by "
        f"dataset.measures.alliance.items); columns present: {present}.",
    ]


# --------------------------------------------------------------------------- identifiers


def test_identifier_column(lab):
    frame = sessions()
    frame["client_name"] = ""
    frame.loc[2, "client_name"] = "Jane Doe"
    lab.write(frame)
    assert lab.stop() == [
        f"{SESSIONS}, row 4, column 'client_name': value 'J***' is in a column whose name suggests a person's "
        "name (a direct identifier); remove the column or map it out before running."
    ]


def test_email_inside_a_note(lab):
    frame = sessions()
    frame["note"] = "ok"
    frame.loc[3, "note"] = "call jane.doe@example.org"
    lab.write(frame)
    with pytest.raises(InputErrors) as info:
        lab.clean()
    assert str(info.value) == (
        f"{SESSIONS}: the de-identification screen found 1 possible direct identifier; nothing has been "
        f"written:\n  1. {SESSIONS}, row 5, column 'note': value 'j***@***.org' looks like an email address "
        "(a direct identifier); remove the column or map it out before running."
    )
    assert "jane.doe" not in str(info.value)


# --------------------------------------------------------------------------- cells


def test_text_in_a_numeric_column(lab):
    frame = sessions()
    frame.loc[3, "wai_03"] = "seven"
    lab.write(frame)
    assert lab.findings() == [(5, "wai_03", "seven", "is text in a numeric column (WAI-SR item 3)", "set to missing")]
    assert lab.stop(non_numeric_value="stop") == [
        f"{SESSIONS}, row 5, column 'wai_03': value 'seven' is text in a numeric column (WAI-SR item 3)."
    ]


def test_out_of_range_item_is_set_missing_and_the_total_prorated(lab):
    frame = sessions()
    frame.loc[4, "wai_05"] = "6"
    lab.write(frame)
    result = lab.clean()
    assert lab.findings() == [(6, "wai_05", "6", "is outside the valid range 1-5 of WAI-SR item 5", "set to missing")]
    row = result.sessions.loc[result.sessions["source_row"] == 6].iloc[0]
    items = pd.to_numeric(BASE_SESSIONS.loc[4, [f"wai_{k:02d}" for k in range(1, 13) if k != 5]])
    assert pd.isna(row["alliance_item_05"]) and bool(row["alliance_prorated"])
    assert row["alliance_total"] == pytest.approx(12 * items.mean())
    assert lab.stop(out_of_range_item="stop") == [
        f"{SESSIONS}, row 6, column 'wai_05': value '6' is outside the valid range 1-5 of WAI-SR item 5."
    ]


def test_non_integer_item(lab):
    frame = sessions()
    frame.loc[6, "phq9_02"] = "1.5"
    lab.write(frame)
    assert lab.findings() == [
        (8, "phq9_02", "1.5", "is not a whole number (PHQ-9 item 2 takes whole numbers)", "set to missing")
    ]


def test_negative_session_is_excluded(lab):
    frame = sessions()
    frame.loc[5, "session"] = "-2"
    lab.write(frame)
    result = lab.clean()
    assert lab.findings() == [(7, "session", "-2", "is not a session number (a whole number from 1)", "row excluded")]
    assert 7 not in result.sessions["source_row"].tolist()
    assert result.flow.set_index("step").loc["valid session number", "rows_excluded"] == 1
    assert lab.stop(invalid_session="stop") == [
        f"{SESSIONS}, row 7, column 'session': value '-2' is not a session number (a whole number from 1)."
    ]


def test_missing_session_number(lab):
    frame = sessions()
    frame.loc[5, "session"] = ""
    lab.write(frame)
    assert lab.findings() == [
        (7, "session", None, "the session number is missing; every row needs one", "row excluded")
    ]


def test_unknown_therapy_label(lab):
    frame = sessions()
    frame.loc[3, "therapy"] = "Gestalt"
    lab.write(frame)
    assert lab.stop() == [
        f"{SESSIONS}, row 5, column 'therapy': value 'Gestalt' is an unknown therapy label; known spellings: "
        "CBT, Cognitive Behavioral Therapy, Cognitive Behavioural Therapy, IPT, Interpersonal Psychotherapy, "
        "Interpersonal Therapy, PDT, Psychodynamic Therapy, cbt, ipt, pdt, psychodynamic; add it under "
        "dataset.labels.therapy in the config."
    ]


def test_missing_patient_id(lab):
    frame = sessions()
    frame.loc[4, "patient"] = ""
    lab.write(frame)
    assert lab.stop() == [f"{SESSIONS}, row 6, column 'patient': the patient id is missing; every row needs one."]


# --------------------------------------------------------------------------- rows


def _insert_after(frame: pd.DataFrame, position: int, row: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame.iloc[:position], row, frame.iloc[position:]], ignore_index=True)


def test_exact_duplicate_row(lab):
    lab.write(_insert_after(sessions(), 5, BASE_SESSIONS.iloc[[2]]))
    result = lab.clean()
    assert lab.findings() == [
        (
            7,
            None,
            None,
            "the row is an exact duplicate of row 4 (patient P***, session 3)",  # ids masked
            "dropped (earlier row kept)",
        )
    ]
    assert len(result.sessions) == len(BASE_SESSIONS)  # the copy dropped, nothing else
    assert lab.stop(exact_duplicate_rows="stop") == [
        f"{SESSIONS}, row 7: the row is an exact duplicate of row 4 (patient P***, session 3)."
    ]


def test_a_patient_with_two_therapists_in_one_session(lab):
    second = BASE_SESSIONS.iloc[[2]].copy()
    second["therapist"] = "T003"
    lab.write(_insert_after(sessions(), 5, second))
    assert lab.stop() == [
        f"{SESSIONS}, row 7, column 'therapist': value 'T***' is a second therapist for patient P*** in "
        "session 3 (row 4 has 'T***'); one session has one therapist: correct the session number or the therapist."
    ]


def test_conflicting_duplicate(lab):
    second = BASE_SESSIONS.iloc[[2]].copy()
    second["wai_01"] = "1"
    lab.write(_insert_after(sessions(), 5, second))
    message = "differs from row 4 ('3'), which has the same patient P*** and session 3; columns that differ: wai_01"
    assert lab.stop() == [f"{SESSIONS}, row 7, column 'wai_01': value '1' {message}."]
    result = lab.clean(conflicting_duplicates="keep_first")
    assert lab.findings(conflicting_duplicates="keep_first") == [
        (7, "wai_01", "1", message, "dropped (earlier row kept)")
    ]
    assert result.sessions.loc[result.sessions["patient"] == "P00001", "session"].tolist() == [1, 2, 3, 4, 5]


def test_patient_who_switches_therapist(lab):
    frame = sessions()
    frame.loc[3:4, "therapist"] = "T002"  # P00001's sessions 4 and 5
    lab.write(frame)
    result = lab.clean()
    assert lab.findings() == [
        (
            5,
            "therapist",
            "T***",
            "is a change of therapist for patient P*** (from 'T***', at session 4); kept as "
            "cross-classified: 'T***' stays the patient's therapist in therapist-level variables",
            "kept and flagged (therapist_switch)",
        )
    ]
    flagged = result.sessions.groupby("patient")["therapist_switch"].first()
    assert flagged.to_dict() == {p: p == "P00001" for p in flagged.index}
    assert result.patients.set_index("patient").loc["P00001", "therapist"] == "T001"
    assert lab.stop(patient_switches_therapist="stop") == [
        f"{SESSIONS}, row 5, column 'therapist': value 'T***' is a change of therapist for patient P*** (from "
        "'T***', at session 4); set cleaning.patient_switches_therapist: keep_and_flag to keep such patients."
    ]


# --------------------------------------------------------------------------- supplied totals


def test_out_of_range_supplied_total(lab):
    frame = sessions()
    totals = frame[[f"phq9_{k:02d}" for k in range(1, 10)]].apply(pd.to_numeric).sum(axis=1)
    frame = frame.drop(columns=[f"phq9_{k:02d}" for k in range(1, 10)])
    frame["phq9_sum"] = totals.astype(int).astype(str)
    frame.loc[8, "phq9_sum"] = "31"
    lab.write(frame)
    lab.config["dataset"]["measures"]["phq9"] = {"instrument": "PHQ-9", "total": "phq9_sum", "score": "total"}
    result = lab.clean()
    assert lab.findings() == [
        (10, "phq9_sum", "31", "is outside the valid range 0-27 of the PHQ-9 total", "set to missing")
    ]
    scored = result.sessions.set_index("source_row")
    assert pd.isna(scored.loc[10, "phq9_total"])
    assert scored.loc[2, "phq9_total"] == totals[0] and scored.loc[2, "phq9_mean"] == totals[0] / 9
    assert lab.stop(out_of_range_item="stop") == [
        f"{SESSIONS}, row 10, column 'phq9_sum': value '31' is outside the valid range 0-27 of the PHQ-9 total."
    ]


# --------------------------------------------------------------------------- the patients file


def test_patients_file_faults(lab):
    patients = BASE_PATIENTS.copy()
    patients.insert(1, "age", ["34", "93", "41", "x", "29", "52"])
    patients = pd.concat([patients, patients.iloc[[2]]], ignore_index=True)
    lab.write(patients=patients)
    lab.config["dataset"]["patient_columns"]["age"] = "age"
    assert lab.stop() == [
        f"{PATIENTS}, row 8, column 'patient': value 'P***' is listed twice in the patients file (first at row "
        "4); the file needs one row per patient."
    ]
    assert lab.stop(non_numeric_value="stop") == [
        f"{PATIENTS}, row 5, column 'age': value 'x' is text in a numeric column (an age in years).",
        f"{PATIENTS}, row 8, column 'patient': value 'P***' is listed twice in the patients file (first at row "
        "4); the file needs one row per patient.",
    ]
    lab.write(patients=patients.iloc[:6])
    result = lab.clean()
    found = result.findings.loc[result.findings["file"] == PATIENTS].iloc[:2]
    assert found[["row", "column", "value", "action"]].astype(object).values.tolist() == [
        [5, "age", "x", "set to missing"],
        [3, "age", ">89", "top-coded to 90"],
    ]
    ages = result.patients.set_index("patient")["age"]
    assert ages.loc[["P00001", "P00002", "P00003", "P00005"]].tolist() == [34, 90, 41, 29]
    assert pd.isna(ages.loc["P00004"])
    assert result.summary["deidentification"]["patients_aged_90_or_over"] == 1


# --------------------------------------------------------------------------- everything at once


def test_every_stopping_problem_is_reported_at_once(lab):
    frame = sessions()
    frame.loc[3, "therapy"] = "Gestalt"
    frame.loc[4, "wai_05"] = "6"
    frame.loc[7, "patient"] = ""
    second = BASE_SESSIONS.iloc[[10]].copy()
    second["therapist"] = "T003"
    frame = _insert_after(frame, 20, second)
    lab.write(frame)
    with pytest.raises(InputErrors) as info:
        lab.clean(out_of_range_item="stop")
    patient, session, therapist = BASE_SESSIONS.loc[10, ["patient", "session", "therapist"]]
    assert str(info.value) == (
        "4 problems in the input data stop the run; nothing was written:\n"
        f"  1. {SESSIONS}, row 5, column 'therapy': value 'Gestalt' is an unknown therapy label; known spellings: "
        "CBT, Cognitive Behavioral Therapy, Cognitive Behavioural Therapy, IPT, Interpersonal Psychotherapy, "
        "Interpersonal Therapy, PDT, Psychodynamic Therapy, cbt, ipt, pdt, psychodynamic; add it under "
        "dataset.labels.therapy in the config.\n"
        f"  2. {SESSIONS}, row 6, column 'wai_05': value '6' is outside the valid range 1-5 of WAI-SR item 5.\n"
        f"  3. {SESSIONS}, row 9, column 'patient': the patient id is missing; every row needs one.\n"
        f"  4. {SESSIONS}, row 22, column 'therapist': value 'T***' is a second therapist for patient "
        f"{patient[0]}*** in session {session} (row 12 has '{therapist[0]}***'); one session has one therapist: correct the session "
        "number or the therapist."
    )
