"""The bad-input corpus, values: plausibility, non-finite numbers, id spellings, repairs, degenerate designs.

Each test breaks the small clean export of ``testkit.lab`` in one way and asserts what the lab
is told (file, row, column, value, reason, action) and what the intake did with the data. Ids
in findings are masked (``P***``) as everywhere in the validation report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from alliance.intake.config import ConfigError, cleaning_policy
from alliance.intake.text import cell_text
from testkit import ROOT, demo_config
from testkit.lab import BASE_PATIENTS, BASE_SESSIONS, PATIENTS, SESSIONS, sessions

WAI = [f"wai_{k:02d}" for k in range(1, 13)]
OUTCOMES = [f"phq9_{k:02d}" for k in range(1, 10)] + [f"gad7_{k:02d}" for k in range(1, 8)]
SESSION_RANGE = (
    "is outside the plausible range 1 to 100 of session numbers; if such values are real, widen "
    "cleaning.plausible_ranges.session"
)
NOT_FINITE = "is not a finite number (infinite, or too large to store)"


def patients_text() -> pd.DataFrame:
    """The patients file with every cell as text (so a test can write 'inf' into a number column)."""
    return BASE_PATIENTS.astype(str)


def patient_findings(lab, **cleaning) -> list[tuple]:
    """(row, column, value, reason, action) of each finding about the patients file, but the small-cell warnings."""
    frame = lab.clean(**cleaning).findings
    frame = frame.loc[(frame["file"] == PATIENTS) & ~frame["reason"].str.contains("is a group of only")]
    return [(int(r.row), r.column, r.value, r.reason, r.action) for r in frame.itertuples()]


# --------------------------------------------------------------------------- session numbers


def test_a_session_number_of_1e12_is_a_finding_and_its_row_is_excluded(lab):
    frame = sessions()
    frame.loc[3, "session"] = "1e12"
    lab.write(frame)
    result = lab.clean()
    assert lab.findings() == [(5, "session", "1e12", SESSION_RANGE, "row excluded")]
    assert result.sessions["session"].max() == pd.to_numeric(BASE_SESSIONS["session"]).max()
    assert sorted(result.sessions["source_row"]) == [r for r in range(2, len(BASE_SESSIONS) + 2) if r != 5]
    assert result.flow.set_index("step").loc["valid session number", "rows_excluded"] == 1
    assert lab.stop(invalid_session="stop") == [f"{SESSIONS}, row 5, column 'session': value '1e12' {SESSION_RANGE}."]


@pytest.mark.parametrize("value", ["inf", "-inf", "1e309", "Infinity"])
def test_a_non_finite_session_number_is_a_finding_not_a_traceback(lab, value):
    frame = sessions()
    frame.loc[5, "session"] = value
    lab.write(frame)
    result = lab.clean()
    assert lab.findings() == [(7, "session", value, NOT_FINITE, "row excluded")]
    assert result.sessions["session"].dtype == "int64" and 7 not in result.sessions["source_row"].tolist()


def test_a_lab_widens_the_session_range_and_keeps_the_other_defaults(lab):
    frame = sessions()
    frame.loc[4, "session"] = "150"  # P00001's fifth session, written as 150
    lab.write(frame)
    assert lab.findings() == [(6, "session", "150", SESSION_RANGE, "row excluded")]
    assert lab.findings(plausible_ranges={"session": [1, 300]}) == []
    result = lab.clean(plausible_ranges={"session": [1, 300]})
    assert 150 in result.sessions["session"].tolist()
    policy, _ = cleaning_policy({"plausible_ranges": {"session": [1, 300]}})
    assert policy["plausible_ranges"]["session"] == [1, 300]
    assert policy["plausible_ranges"]["expectancy"] == cleaning_policy({})[0]["plausible_ranges"]["expectancy"]


def test_a_plausible_range_with_its_ends_swapped_is_a_config_error(lab):
    with pytest.raises(ConfigError) as info:
        lab.clean(plausible_ranges={"age": [90, 18]})
    assert str(info.value) == "cleaning.plausible_ranges.age: [90, 18] has its lowest value above its highest"


# --------------------------------------------------------------------------- covariates and planned sessions


def test_a_covariate_of_1e12_is_set_missing_and_reported(lab):
    patients = patients_text()
    patients.loc[2, "expectancy"] = "1e12"
    lab.write(patients=patients)
    reason = (
        "is outside the plausible range -100 to 100 of expectancy; if such values are real, widen "
        "cleaning.plausible_ranges.expectancy"
    )
    assert patient_findings(lab) == [(4, "expectancy", "1e12", reason, "set to missing")]
    result = lab.clean()
    expectancy = result.patients.set_index("patient")["expectancy"]
    assert pd.isna(expectancy.loc["P00003"]) and expectancy.drop("P00003").tolist() == [10, 6, 4, 1, 5]
    assert result.sessions.loc[result.sessions["patient"] == "P00003", "expectancy"].isna().all()
    assert lab.stop(implausible_value="stop") == [f"{PATIENTS}, row 4, column 'expectancy': value '1e12' {reason}."]


def test_infinite_planned_sessions_and_covariates_are_findings_not_tracebacks(lab):
    patients = patients_text()
    patients.loc[1, "expectancy"] = "-inf"
    patients.loc[3, "planned_sessions"] = "inf"
    patients.loc[4, "expectancy"] = "1e400"
    lab.write(patients=patients)
    assert patient_findings(lab) == [
        (3, "expectancy", "-inf", NOT_FINITE, "set to missing"),
        (5, "planned_sessions", "inf", NOT_FINITE, "set to missing"),
        (6, "expectancy", "1e400", NOT_FINITE, "set to missing"),
    ]
    table = lab.clean().patients.set_index("patient")
    assert table["planned_sessions"].isna().tolist() == [False, False, False, True, False, False]
    assert table["expectancy"].isna().tolist() == [False, True, False, False, True, False]


def test_an_implausible_age_is_set_missing(lab):
    patients = patients_text()
    patients.insert(1, "age", ["34", "2", "41", "113", "29", "52"])
    lab.write(patients=patients)
    lab.config["dataset"]["patient_columns"]["age"] = "age"
    reason = "is outside the plausible range 5 to 110 of an age in years; if such values are real, widen "
    reason += "cleaning.plausible_ranges.age"
    assert patient_findings(lab) == [
        (3, "age", "2", reason, "set to missing"),
        (5, "age", "113", reason, "set to missing"),
    ]
    ages = lab.clean().patients.set_index("patient")["age"]
    assert ages.isna().tolist() == [False, True, False, True, False, False]


def test_the_robust_outlier_screen_reports_an_extreme_covariate(lab):
    patients = patients_text()
    patients.loc[2, "expectancy"] = "60"  # within the plausible range, far from the others (0-10)
    lab.write(patients=patients)
    # median of 10, 6, 60, 4, 1, 5 is 5.5; absolute deviations 4.5, 0.5, 54.5, 1.5, 4.5, 0.5 -> MAD 3
    z = 54.5 / (1.4826 * 3)
    reason = (
        f"is an extreme value: robust z {z:.1f} (median 5.5, MAD 3) is above "
        "cleaning.covariate_outliers.robust_z (5); check it"
    )
    assert patient_findings(lab) == [(4, "expectancy", "60", reason, "warn")]
    assert lab.clean().patients.set_index("patient").loc["P00003", "expectancy"] == 60
    assert patient_findings(lab, covariate_outliers={"action": "set_missing"}) == [
        (4, "expectancy", "60", reason, "set to missing")
    ]
    assert pd.isna(
        lab.clean(covariate_outliers={"action": "set_missing"})
        .patients.set_index("patient")
        .loc["P00003", "expectancy"]
    )
    assert patient_findings(lab, covariate_outliers={"robust_z": 13}) == []


def test_a_huge_whole_number_from_a_typed_file_is_not_wrapped_around():
    """A float beyond 2**53 from Excel/SPSS/Parquet stays a number as text, not an int64 overflow."""
    text = cell_text(pd.Series([3.0, 1e20, np.inf, np.nan]))
    assert text.iloc[:3].tolist() == ["3", "1e+20", "inf"] and pd.isna(text.iloc[3])


# --------------------------------------------------------------------------- ids and repairs


def test_therapist_ids_that_differ_only_in_case_are_merged_and_reported(lab):
    frame = sessions()
    frame.loc[[1, 2], "therapist"] = "t001"
    lab.write(frame)
    reason = "differs only in case or spaces from the therapist id 'T***' (17 rows in all files); found in 2 rows: 3, 4"
    assert lab.findings() == [
        (3, "therapist", "t***", f"{reason}; written as 'T***', one therapist", "repaired: spellings merged")
    ]
    result = lab.clean()
    assert result.sessions["therapist"].nunique() == 3 and not result.sessions["therapist_switch"].any()
    assert lab.stop(id_case_variants="stop") == [
        f"{SESSIONS}, row 3, column 'therapist': value 't***' {reason}; correct the ids, or set "
        "cleaning.id_case_variants: merge to treat them as one therapist."
    ]


def test_a_patient_id_with_a_trailing_space_in_one_row_is_the_same_patient(lab):
    """4 rows of P00001 as P00001 in the sessions file and its row in the patients file: 5 rows."""
    frame = sessions()
    frame.loc[4, "patient"] = "P00001 "
    lab.write(frame)
    assert lab.findings() == [
        (
            6,
            "patient",
            "P***",
            "differs only in case or spaces from the patient id 'P***' (5 rows in all files); found in 1 row: 6; "
            "written as 'P***', one patient",
            "repaired: spellings merged",
        )
    ]
    result = lab.clean()
    assert result.sessions.groupby("patient").size().to_dict() == BASE_SESSIONS.groupby("patient").size().to_dict()


def test_a_patient_id_spelt_differently_in_the_patients_file_is_matched(lab):
    patients = patients_text()
    patients.loc[1, "patient"] = "p00002"
    lab.write(patients=patients)
    assert patient_findings(lab) == [
        (
            3,
            "patient",
            "p***",
            "differs only in case or spaces from the patient id 'P***' (14 rows in all files); found in 1 row: 3; "
            "written as 'P***', one patient",
            "repaired: spellings merged",
        )
    ]
    assert lab.clean().patients.set_index("patient").loc["P00002", "expectancy"] == 6


def test_labels_with_surrounding_spaces_are_a_recorded_repair(lab):
    frame = sessions()
    frame.loc[[0, 6], "therapy"] = frame.loc[[0, 6], "therapy"] + " "
    frame.loc[9, "condition"] = " " + frame.loc[9, "condition"]
    lab.write(frame)
    assert lab.findings() == [
        (
            2,
            "therapy",
            "CBT ",
            "has spaces before or after the text; removed in 2 rows: 2, 8 (1 distinct value)",
            "repaired: surrounding spaces removed",
        ),
        (
            11,
            "condition",
            f" {BASE_SESSIONS.loc[9, 'condition']}",
            "has spaces before or after the text; removed in 1 row: 11 (1 distinct value)",
            "repaired: surrounding spaces removed",
        ),
    ]
    assert set(lab.clean().sessions["therapy"]) == set(BASE_SESSIONS["therapy"])


def test_a_session_number_written_with_decimals_is_a_recorded_repair(lab):
    frame = sessions()
    frame.loc[[3, 5], "session"] = frame.loc[[3, 5], "session"].astype(str) + ".0"
    lab.write(frame)
    assert lab.findings() == [
        (
            5,
            "session",
            "4.0",
            "is a whole number written with decimals; read as 4 (such values in 2 rows: 5, 7)",
            "repaired: read as whole numbers",
        )
    ]
    assert lab.clean().sessions["session"].tolist() == pd.to_numeric(BASE_SESSIONS["session"]).tolist()


def test_an_unknown_label_is_reported_once_per_distinct_value(lab):
    frame = sessions()
    frame.loc[[3, 4, 7, 8, 9, 10, 11], "therapy"] = "Gestalt"
    frame.loc[12, "therapy"] = "Art"
    lab.write(frame)
    known = (
        "known spellings: CBT, Cognitive Behavioral Therapy, Cognitive Behavioural Therapy, IPT, Interpersonal "
        "Psychotherapy, Interpersonal Therapy, PDT, Psychodynamic Therapy, cbt, ipt, pdt, psychodynamic; add it "
        "under dataset.labels.therapy in the config"
    )
    assert lab.stop() == [
        f"{SESSIONS}, row 5, column 'therapy': value 'Gestalt' is an unknown therapy label; {known}; "
        "found in 7 rows: 5, 6, 9, 10, 11 and 2 more.",
        f"{SESSIONS}, row 14, column 'therapy': value 'Art' is an unknown therapy label; {known}.",
    ]


# --------------------------------------------------------------------------- units without data


def test_a_patient_without_alliance_ratings_is_named_and_kept_by_default(lab):
    frame = sessions()
    frame.loc[frame["patient"] == "P00002", WAI] = ""
    lab.write(frame)
    reason = "has no alliance score in any of its sessions (14 rows: 7, 8, 9, 10, 11 and 9 more); "
    assert lab.findings() == [
        (
            7,
            "patient",
            "P***",
            reason + "kept; models that use the alliance leave the patient out",
            "kept; no alliance score",
        )
    ]
    assert lab.clean().sessions["patient"].nunique() == 6
    excluded = lab.clean(patients_without_alliance="exclude")
    assert "P00002" not in excluded.sessions["patient"].tolist()
    assert excluded.flow.set_index("step").loc["patients with an alliance score", "patients_excluded"] == 1
    assert lab.stop(patients_without_alliance="stop") == [
        f"{SESSIONS}, row 7, column 'patient': value 'P***' {reason}score the alliance, or set "
        "cleaning.patients_without_alliance: keep or exclude."
    ]


def test_sessions_of_a_patient_missing_from_the_patients_file_follow_the_stated_policy(lab):
    lab.write(patients=BASE_PATIENTS.loc[BASE_PATIENTS["patient"] != "P00004"])
    rows = "has sessions (6 rows: 35, 36, 37, 38, 39 and 1 more) but no row in the patients file "
    assert lab.findings() == [
        (
            35,
            "patient",
            "P***",
            f"{rows}{PATIENTS}; kept; the patient's covariates are missing",
            "kept; covariates missing",
        )
    ]
    kept = lab.clean()
    assert kept.sessions.loc[kept.sessions["patient"] == "P00004", "expectancy"].isna().all()
    excluded = lab.clean(sessions_without_patient_row="exclude")
    assert "P00004" not in excluded.sessions["patient"].tolist()
    assert excluded.flow.set_index("step").loc["patients with a row in the patients file", "rows_excluded"] == 6
    assert lab.stop(sessions_without_patient_row="stop") == [
        f"{SESSIONS}, row 35, column 'patient': value 'P***' {rows}{PATIENTS}; add the patient to the patients "
        "file, or set cleaning.sessions_without_patient_row: keep or exclude."
    ]


# --------------------------------------------------------------------------- degenerate designs


def _one_therapist(frame):
    frame["therapist"] = "T001"
    return frame, (
        f"{SESSIONS}, column 'therapist': value 'T***' is the only therapist in the data: therapist-level variance "
        "cannot be estimated, so the models with a therapist random effect (three-level models) and "
        "therapist-level effects cannot be fitted; for a single-therapist study, remove dataset.columns.therapist: "
        "the suite then runs as a design without therapists."
    )


def _one_session_per_patient(frame):
    return frame.drop_duplicates("patient"), (
        f"{SESSIONS}, column 'patient': every one of the 6 patients has at most one session with both scores: "
        "without repeated sessions the patient-level variance cannot be told from the session-level variance and "
        "no within-patient effect exists, so no model of the suite can be fitted."
    )


def _no_alliance_values(frame):
    frame[WAI] = ""
    return frame, (
        f"{SESSIONS}: no session has an alliance score (dataset.measures.alliance is missing in every row): the "
        "alliance is what the models relate to the outcome, so no model of the suite can be fitted."
    )


def _no_outcome_values(frame):
    frame[OUTCOMES] = ""
    return frame, (
        f"{SESSIONS}: no session has an outcome score (every symptom measure is missing): no model of the suite "
        "can be fitted."
    )


def _constant_alliance(frame):
    frame[WAI] = "3"
    return frame, (
        f"{SESSIONS}: value '3' is the alliance score of every session with both scores: a constant alliance score "
        "has no variance to relate, so no model of the suite can be fitted."
    )


def _constant_outcome(frame):
    frame[OUTCOMES] = "1"  # PHQ-9 9/27 and GAD-7 7/21: both 33.3333 on the POMP scale
    return frame, (
        f"{SESSIONS}: value '33.3333' is the outcome score of every session with both scores: a constant outcome "
        "score has no variance to relate, so no model of the suite can be fitted."
    )


def _one_patient_per_therapist(frame):
    return frame.loc[frame["patient"].isin(["P00001", "P00003", "P00005"])], (
        f"{SESSIONS}, column 'therapist': every one of the 3 therapists has one patient: therapist and patient "
        "variance cannot be told apart, so the models with a therapist random effect (three-level models) cannot "
        "be fitted."
    )


@pytest.mark.parametrize(
    "fault",
    [
        _one_therapist,
        _one_session_per_patient,
        _no_alliance_values,
        _no_outcome_values,
        _constant_alliance,
        _constant_outcome,
        _one_patient_per_therapist,
    ],
)
def test_a_degenerate_design_stops_at_intake_saying_what_it_lacks(lab, fault):
    frame, message = fault(sessions())
    lab.write(frame)
    assert lab.stop() == [message]


def test_a_single_therapist_study_runs_as_the_message_says_without_the_therapist_column(lab):
    frame, _ = _one_therapist(sessions())
    lab.write(frame)
    del lab.config["dataset"]["columns"]["therapist"]
    result = lab.clean()
    assert "therapist" not in result.sessions.columns and len(result.sessions) == len(BASE_SESSIONS)


# --------------------------------------------------------------------------- the config keys


def test_the_schema_defaults_are_the_intake_defaults_and_every_new_key_is_optional():
    """One source: the schema fills in for a config without the keys what the intake assumes without them."""
    config = demo_config()
    config["cleaning"] = {}
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))
    policy, _ = cleaning_policy({})
    keys = (
        "plausible_ranges",
        "implausible_value",
        "covariate_outliers",
        "id_case_variants",
        "patients_without_alliance",
        "sessions_without_patient_row",
    )
    assert {k: config["cleaning"][k] for k in keys} == {k: policy[k] for k in keys}
    assert policy["plausible_ranges"] == {
        "session": [1, 100],
        "planned_sessions": [1, 100],
        "days_since_intake": [0, 3650],
        "age": [5, 110],
        "expectancy": [-100, 100],
    }
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    assert not set(keys) & set(schema["properties"]["cleaning"].get("required", []))


def test_the_clean_export_passes_without_the_new_keys(lab):
    assert lab.findings() == []
