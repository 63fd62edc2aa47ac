"""The intake stage: config checks, every input format, lab instruments, supplied totals,
de-identification fixes, derived variables, the data dictionary and determinism.

The bad-input corpus is in tests/test_intake_faults.py; workflow runs of the stage
(and of the second demo) are in tests/test_intake_workflow.py.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from alliance.intake import derive
from alliance.intake.clean import clean_dataset
from alliance.intake.config import ConfigError, check_config
from alliance.intake.findings import InputError, InputErrors
from alliance.intake.instruments import reliable_change
from alliance.intake.registry import load_registry
from alliance.outputs import write_csv, write_json, write_parquet
from alliance.simulate import LAB2_SEED, TrialDesign, simulate_trial, write_lab2_trial
from testkit import ROOT, demo_config
from testkit.instruments import MOOD4

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
LAB2 = ROOT / "data/raw/demo_lab2"
BASE_SESSIONS, BASE_PATIENTS, _ = simulate_trial(
    TrialDesign(n_therapists=3, patients_per_therapist=4, add_mess=False), seed=12
)
WAI = [f"wai_{k:02d}" for k in range(1, 13)]


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A clean small export in data/raw/lab/ of a temporary working directory, and its config."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/raw/lab").mkdir(parents=True)
    BASE_SESSIONS.to_csv("data/raw/lab/sessions.csv", index=False, lineterminator="\n")
    BASE_PATIENTS.to_csv("data/raw/lab/patients.csv", index=False, lineterminator="\n")
    config = demo_config()
    config["dataset"]["name"] = "lab"
    config["dataset"]["sessions"] = {"path": "data/raw/lab/sessions.csv"}
    config["dataset"]["patients"] = {"path": "data/raw/lab/patients.csv"}
    return config


def run(config):
    return clean_dataset(config["dataset"], config["analysis"], config["cleaning"], config["instruments"])


def lab2_config() -> dict:
    config = yaml.safe_load((ROOT / "config/demo_lab2.yaml").read_text())
    for table in ("sessions", "patients"):
        config["dataset"][table]["path"] = str(ROOT / config["dataset"][table]["path"])
    return config


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("part", "right", "wrong"),
    [
        ("dataset", "columns", "colums"),
        ("cleaning", "out_of_range_item", "out_of_range_itme"),
        ("analysis", "outcome_scale", "outcome_scal"),
    ],
)
def test_a_misspelt_config_key_is_named(part, right, wrong):
    config = demo_config()
    config[part][wrong] = config[part].pop(right)
    with pytest.raises(WorkflowError) as info:
        validate(config, str(SCHEMA))
    message = str(info.value)
    assert f"ValidationError: Additional properties are not allowed ('{wrong}' was unexpected)" in message
    assert f"Failed validating 'additionalProperties' in schema['properties']['{part}']" in message


def test_both_demo_configs_pass_the_schema_and_the_cross_checks():
    for name in ("config.yaml", "demo_lab2.yaml"):
        config = yaml.safe_load((ROOT / "config" / name).read_text())
        validate(config, str(SCHEMA))
        check_config(config)


def _mutate(config, path, value):
    *parents, last = path
    target = config
    for key in parents:
        target = target[key]
    target[last] = value


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("dataset", "measures", "phq9", "instrument"),
            "PHQ-8",
            "dataset.measures.phq9.instrument: unknown instrument 'PHQ-8'; known: BDI-II, CORE-10, GAD-7, OQ-45.2, "
            "PHQ-9, SRS, WAI-S, WAI-SR (or declare it under `instruments`)",
        ),
        (
            ("analysis", "alliance_measure"),
            "wai",
            "analysis.alliance_measure: 'wai' is not a key of dataset.measures (alliance, phq9, gad7)",
        ),
        (
            ("analysis", "alliance_measure"),
            "phq9",
            "analysis.alliance_measure: 'phq9' is PHQ-9, which measures symptoms, not the alliance",
        ),
        (
            ("analysis", "outcome_by_condition", "anxiety"),
            "alliance",
            "analysis.outcome_by_condition.anxiety: 'alliance' is an alliance measure (WAI-SR), not a symptom outcome",
        ),
        (
            ("analysis", "outcome_by_condition", "panic"),
            "gad7",
            "analysis.outcome_by_condition: 'panic' is not a canonical condition of dataset.labels.condition "
            "(anxiety, depression)",
        ),
        (
            ("dataset", "columns", "site"),
            "wai_03",
            "dataset.measures.alliance.items: column 'wai_03' is already used by dataset.columns.site",
        ),
        (
            ("dataset", "measures", "phq9", "score"),
            "mean",
            "dataset.measures.phq9.score: says what a supplied `total` column holds; a measure given by `items` is "
            "scored by the pipeline (remove `score`)",
        ),
        (
            ("dataset", "columns", "days_since_intake"),
            "day",
            "cleaning.deidentification.dates_to_days: makes days_since_intake from 'visit_date', but "
            "dataset.columns.days_since_intake maps it as well; keep one",
        ),
        (
            ("instruments",),
            {"MOOD-4": {"broken": True}},
            "instruments: invalid instrument registry entry:\n  instrument 'MOOD-4': field 'broken': unknown field",
        ),
        (
            ("dataset", "labels", "therapy", "PDT"),
            ["PDT", "cbt"],
            "dataset.labels.therapy: 'cbt' maps to both 'CBT' and 'PDT'",
        ),
    ],
)
def test_cross_reference_errors_name_the_key(path, value, message):
    config = demo_config()
    if path[-1] == "days_since_intake":
        config["cleaning"]["deidentification"]["dates_to_days"] = ["visit_date"]
    if path == ("instruments",):
        config["instruments"] = value
    else:
        _mutate(config, path, value)
    with pytest.raises(ConfigError) as info:
        check_config(config)
    assert str(info.value).startswith(message), str(info.value)


# --------------------------------------------------------------------------- formats


def _baseline(config):
    result = run(config)
    return result.sessions.set_index(["patient", "session"])[["therapy", "condition", "alliance", "symptoms"]]


def test_spss_value_labels_map_through_the_labels_config(lab):
    pyreadstat = pytest.importorskip("pyreadstat")
    expected = _baseline(lab)
    therapy_codes = {"CBT": 1.0, "PDT": 2.0, "IPT": 3.0}
    frame = BASE_SESSIONS.copy()
    frame["therapy"] = frame["therapy"].map(therapy_codes)
    frame["condition"] = frame["condition"].map({"depression": 1.0, "anxiety": 2.0})
    frame["session"] = frame["session"].astype(float)
    items = [c for c in frame.columns if c.startswith(("wai", "phq9", "gad7"))]
    frame[items] = frame[items].replace("", np.nan).astype(float)
    pyreadstat.write_sav(
        frame,
        "data/raw/lab/sessions.sav",
        variable_value_labels={
            "therapy": {1: "Cognitive Behavioural Therapy", 2: "psychodynamic", 3: "Interpersonal Therapy"},
            "condition": {1: "MDD", 2: "GAD"},
            # labelled scale points must stay numbers
            **{item: {1: "seldom", 5: "always"} for item in WAI},
        },
    )
    lab["dataset"]["sessions"] = {"path": "data/raw/lab/sessions.sav"}
    lab["dataset"]["labels"]["condition"]["depression"].append("MDD")
    pd.testing.assert_frame_equal(_baseline(lab), expected)


def test_excel_sheet_by_name(lab):
    openpyxl = pytest.importorskip("openpyxl")
    expected = _baseline(lab)
    workbook = openpyxl.Workbook()
    workbook.active.title = "Read me"
    workbook.active.append(["Export of the trial database"])
    sheet = workbook.create_sheet("Sessions")
    frame = BASE_SESSIONS.copy()
    sheet.append(list(frame.columns))
    numeric = [c for c in frame.columns if c.startswith(("wai", "phq9", "gad7")) or c == "session"]
    for row in frame.itertuples(index=False):
        sheet.append([(int(v) if v != "" else None) if c in numeric else v for c, v in zip(frame.columns, row)])
    workbook.save("data/raw/lab/sessions.xlsx")
    lab["dataset"]["sessions"] = {"path": "data/raw/lab/sessions.xlsx", "sheet": "Sessions"}
    pd.testing.assert_frame_equal(_baseline(lab), expected)
    lab["dataset"]["sessions"]["sheet"] = "Summary"
    with pytest.raises(InputError) as info:
        run(lab)
    assert str(info.value) == (
        "data/raw/lab/sessions.xlsx: has no sheet named 'Summary'; the sheets are 'Read me', 'Sessions'."
    )


def test_parquet_with_native_types(lab):
    expected = _baseline(lab)
    frame = BASE_SESSIONS.copy()
    numeric = [c for c in frame.columns if c.startswith(("wai", "phq9", "gad7")) or c == "session"]
    frame[numeric] = frame[numeric].replace("", np.nan).astype(float)
    frame["session"] = frame["session"].astype(int)
    frame.to_parquet("data/raw/lab/sessions.parquet")
    lab["dataset"]["sessions"] = {"path": "data/raw/lab/sessions.parquet"}
    pd.testing.assert_frame_equal(_baseline(lab), expected)


# --------------------------------------------------------------------------- a lab's own instrument


def test_a_lab_instrument_declared_in_config_is_scored_end_to_end(lab):
    frame = BASE_SESSIONS.copy()
    phq = frame[[f"phq9_{k:02d}" for k in range(1, 10)]].replace("", np.nan).astype(float)
    mood = pd.DataFrame({f"mood{k}": phq.iloc[:, k].fillna(0).clip(0, 4).astype(int) for k in range(1, 5)})
    mood["mood2"] = 4 - mood["mood2"]  # stored reverse-keyed, as the form prints it
    mood.loc[1, "mood3"] = -1  # out of range: set missing, total prorated
    frame = pd.concat([frame, mood.astype(str)], axis=1)
    frame.to_csv("data/raw/lab/sessions.csv", index=False)
    lab["instruments"] = {"MOOD-4": MOOD4}
    lab["dataset"]["measures"]["mood"] = {"instrument": "MOOD-4", "items": ["mood1", "mood2", "mood3", "mood4"]}
    lab["analysis"]["outcome_by_condition"]["depression"] = "mood"
    check_config(lab)
    result = run(lab)
    sessions = result.sessions.set_index("source_row")
    scored = mood.astype(float).copy()
    scored["mood2"] = 4 - scored["mood2"]
    expected_total = scored.sum(axis=1)
    expected_total[1] = 4 / 3 * scored.loc[1, ["mood1", "mood2", "mood4"]].sum()
    assert sessions["mood_total"].tolist() == pytest.approx(expected_total.tolist())
    first_finding = result.findings[["row", "column", "value", "action"]].iloc[0].tolist()
    assert first_finding == [3, "mood3", "-1", "set to missing"]
    depression = sessions["condition"] == "depression"
    assert sessions.loc[depression, "symptoms"].tolist() == pytest.approx(
        (100 * expected_total.to_numpy()[depression.to_numpy()] / 16).tolist()
    )
    assert result.summary["outcome_by_condition"] == {"depression": "MOOD-4", "anxiety": "GAD-7"}
    assert result.summary["reliable_change"]["MOOD-4"]["fixed_threshold"] == 3
    dictionary = result.dictionary.set_index("column")
    assert dictionary.loc["mood_item_02", "meaning"] == (
        "Lab mood check: item 2 as answered; reverse-keyed in scoring (invalid values set missing)"
    )
    assert dictionary.loc["mood_item_02", "source"] == "mood2"


# --------------------------------------------------------------------------- de-identification fixes


def test_dates_become_days_since_intake_and_the_date_column_is_dropped(lab):
    frame = BASE_SESSIONS.copy()
    intake = pd.Timestamp("2025-03-03")
    visit = intake + pd.to_timedelta(7 * (frame["session"].astype(int) - 1), unit="D")
    frame["visit_date"] = visit.dt.strftime("%d/%m/%Y")
    frame.loc[0, "visit_date"] = "04/03/2025"  # the first patient's first visit a day later
    frame.to_csv("data/raw/lab/sessions.csv", index=False)
    with pytest.raises(InputErrors) as info:  # without the opt-in the dates stop the run
        run(lab)
    assert "row 2, column 'visit_date': value '**/**/2025' looks like a full date" in str(info.value)
    lab["cleaning"]["deidentification"].update(dates_to_days=["visit_date"], date_format="%d/%m/%Y")
    result = run(lab)
    assert "visit_date" not in result.sessions.columns
    days = result.sessions.set_index(["patient", "session"])["days_since_intake"]
    # visits 7 days apart per session number (missed sessions leave gaps), counted from the first visit
    week = {p: [7 * (s - 1) for s in rows.astype(int)] for p, rows in BASE_SESSIONS.groupby("patient")["session"]}
    assert days.loc["P00001"].tolist() == [0] + [d - 1 for d in week["P00001"][1:]]  # its intake a day later
    assert days.loc["P00002"].tolist() == week["P00002"]
    assert week["P00002"][:3] == [0, 14, 21]  # P00002 missed session 2: the gap is kept in days
    assert str(days.dtype) == "Int64"
    assert result.summary["deidentification"]["dates_to_days"] == {
        "column": "visit_date",
        "stored_as": "days_since_intake",
    }
    assert result.dictionary.set_index("column").loc["days_since_intake", "source"] == "visit_date"
    frame.loc[5, "visit_date"] = "2025-03-31"
    frame.to_csv("data/raw/lab/sessions.csv", index=False)
    with pytest.raises(InputError) as info:
        run(lab)
    assert str(info.value) == (
        "data/raw/lab/sessions.csv, row 7, column 'visit_date': value '2025-**-**' cannot be read as a date in "
        "the form '%d/%m/%Y' (1 value in this column); fix the values or set the date format for this column "
        "in the config (e.g. '%d/%m/%Y')."
    )


# --------------------------------------------------------------------------- derived variables


def test_detrended_within_patient_alliance_and_session_index_by_hand():
    data = pd.DataFrame(
        {
            "patient": ["a"] * 4 + ["b"] * 2 + ["c"] * 4,
            "session": [1, 2, 4, 5, 1, 2, 1, 2, 3, 6],
            "wai": [3.0, 3.5, 4.5, 5.0, 4.0, 5.0, 2.0, np.nan, 3.0, 4.0],
        }
    )
    detrended = derive.within_patient_detrended(data, "wai")
    # a: y = 2.5 + 0.5 x exactly -> residuals 0; b: only 2 sessions -> missing;
    # c: points (1, 2), (3, 3), (6, 4) around (10/3, 3): slope 5 / (114/9) = 15/38
    assert detrended.iloc[:4].tolist() == pytest.approx([0, 0, 0, 0])
    assert detrended.iloc[4:6].isna().all()
    slope = 15 / 38
    expected = [2 - 3 - slope * (1 - 10 / 3), np.nan, 3 - 3 - slope * (3 - 10 / 3), 4 - 3 - slope * (6 - 10 / 3)]
    assert detrended.iloc[6:].tolist() == pytest.approx(expected, nan_ok=True)
    assert derive.session_index(data).tolist() == [1, 2, 3, 4, 1, 2, 1, 2, 3, 4]


def test_derived_patient_level_variables(lab):
    result = run(lab)
    sessions, patients = result.sessions, result.patients.set_index("patient")
    registry = load_registry()
    # early alliance: session 3 and the mean of the rated sessions 1-4
    for patient, rows in sessions.groupby("patient"):
        by_session = rows.set_index("session")["alliance"]
        assert patients.loc[patient, "alliance_s1_4"] == pytest.approx(by_session.loc[by_session.index <= 4].mean())
        if 3 in by_session.index:
            assert patients.loc[patient, "alliance_s3"] == pytest.approx(by_session.loc[3])
    # baseline, last and change of the raw total, and the fixed-threshold category
    # (a patient with one observed total has no change, and so no reliable change)
    observed = sessions.dropna(subset=["symptoms_raw"]).groupby("patient")["symptoms_raw"]
    first, last, repeated = observed.first(), observed.last(), observed.size() >= 2
    assert not repeated.all()  # the lab's trial has patients seen once (P00008, P00012)
    assert patients["symptoms_raw_baseline"].tolist() == first.tolist()
    change = (last - first).where(repeated)
    assert patients["symptoms_raw_change"].tolist() == pytest.approx(change.tolist(), nan_ok=True)
    depressed = patients.loc[patients["outcome_measure"] == "PHQ-9"]
    last_of_change = last.where(repeated)[depressed.index]
    fixed = reliable_change(depressed["symptoms_raw_baseline"], last_of_change, registry["PHQ-9"], "fixed")
    assert depressed["change_category_fixed"].tolist() == fixed["category"].astype("string").tolist()
    sd = depressed["symptoms_raw_baseline"].std(ddof=1)
    jt = reliable_change(
        depressed["symptoms_raw_baseline"], last_of_change, registry["PHQ-9"], "jacobson_truax", sd_baseline=sd
    )
    assert depressed["rci_jacobson_truax"].tolist() == pytest.approx(jt["rci"].tolist(), nan_ok=True)
    assert result.summary["reliable_change"]["PHQ-9"]["s_diff"] == pytest.approx(np.sqrt(2) * sd * np.sqrt(1 - 0.89))
    # dropout from the end reason, or from planned sessions
    assert patients["dropout"].tolist() == (patients["end_reason"] == "dropout").tolist()
    lab["cleaning"]["dropout_definition"] = "fewer_than_planned"
    planned = run(lab).patients.set_index("patient")
    assert planned["dropout"].tolist() == (planned["last_session"] < 16).tolist()
    # person-mean reliability lambda_i = tau^2 / (tau^2 + sigma^2 / n_i), in the summary
    reliability = result.summary["person_mean_reliability"]
    tau2, sigma2 = derive.variance_split_anova(sessions, "alliance")
    assert reliability["between_patient_variance"] == pytest.approx(tau2)
    lam = tau2 / (tau2 + sigma2 / patients["alliance_n_sessions"])
    assert patients["alliance_pm_reliability"].tolist() == pytest.approx(lam.tolist())
    assert reliability["mean"] == pytest.approx(lam.mean())


def test_centred_variables_follow_methods_section_4(lab):
    sessions = run(lab).sessions
    pm = sessions.groupby("patient")["alliance"].transform("mean")
    patient_means = sessions.groupby("patient").agg(pm=("alliance", "mean"), therapist=("therapist", "first"))
    tm = sessions["patient"].map(patient_means["therapist"]).map(patient_means.groupby("therapist")["pm"].mean())
    grand = patient_means["pm"].mean()
    within = (sessions["alliance"] - pm).tolist()
    assert sessions["alliance_within_patient"].tolist() == pytest.approx(within, nan_ok=True)
    assert sessions["alliance_patient_within_therapist"].tolist() == pytest.approx((pm - tm).tolist())
    assert sessions["alliance_between_therapist"].tolist() == pytest.approx((tm - grand).tolist())
    assert sessions["alliance_between_patient"].tolist() == pytest.approx((pm - grand).tolist())
    assert (sessions["session_c"] == sessions["session"] - 1).all()
    lead = sessions.set_index(["patient", "session"])["symptoms"]
    for row in sessions.sample(20, random_state=1).itertuples():
        expected = lead.get((row.patient, row.session + 1), np.nan)
        assert row.symptoms_next == pytest.approx(expected, nan_ok=True)


# --------------------------------------------------------------------------- outputs


def test_every_column_has_a_real_meaning_in_the_data_dictionary(lab):
    for config in (lab, lab2_config()):
        result = run(config)
        dictionary = result.dictionary
        assert list(dictionary.loc[dictionary["table"] == "sessions", "column"]) == list(result.sessions.columns)
        assert list(dictionary.loc[dictionary["table"] == "patients", "column"]) == list(result.patients.columns)
        assert (dictionary["meaning"].str.len() > 15).all()
        assert not (dictionary["meaning"].str.lower() == dictionary["column"].str.replace("_", " ")).any()
        assert (dictionary["source"].str.len() > 0).all()
    lab2 = dictionary.set_index(["table", "column"])
    assert lab2.loc[("sessions", "patient"), "source"] == "ClientID"
    assert lab2.loc[("sessions", "alliance_total"), ["source", "instrument", "units"]].tolist() == [
        "WAI_total",
        "WAI-SR",
        "points (12-60)",
    ]
    assert lab2.loc[("sessions", "alliance"), "units"] == "WAI-SR mean item score (1-5)"
    assert lab2.loc[("patients", "age"), "source"] == "Age"


def test_same_data_gives_byte_identical_tables(lab, tmp_path):
    digests = []
    for attempt in ("a", "b"):
        result = run(lab)
        out = tmp_path / attempt
        out.mkdir()
        write_parquet(result.sessions, out / "analysis.parquet")
        write_parquet(result.patients, out / "patients.parquet")
        write_csv(result.dictionary, out / "data_dictionary.csv")
        write_csv(result.findings, out / "validation_report.csv")
        write_csv(result.flow, out / "exclusion_flow.csv")
        write_json(result.summary, out / "summary.json")
        write_csv(result.reliability, out / "reliability.csv")
        write_csv(result.item_rest, out / "item_rest.csv")
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())})
    assert digests[0] == digests[1]
    assert len(digests[0]) == 8


# --------------------------------------------------------------------------- the second demo


def test_second_demo_regenerates_byte_for_byte(tmp_path):
    digests = write_lab2_trial(tmp_path, LAB2_SEED)
    for name, digest in digests.items():
        assert digest == hashlib.sha256((LAB2 / name).read_bytes()).hexdigest(), name


def test_second_demo_is_cleaned_through_config_alone():
    truth = yaml.safe_load((LAB2 / "TRUTH.yaml").read_text())
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        config = yaml.safe_load((ROOT / "config/demo_lab2.yaml").read_text())
        result = run(config)
    finally:
        os.chdir(cwd)
    assert result.summary["rows"] == truth["sample"]["session_rows"]
    assert result.summary["patients"] == truth["sample"]["patients"]
    dropout_rate = truth["sample"]["dropout"] / truth["sample"]["patients"]
    assert result.summary["dropout_rate"] == pytest.approx(dropout_rate, abs=1e-6)
    findings = result.findings
    by_fault = {(m["column"], m["value"]) for m in truth["mess"] if m["column"]}
    repaired = {(r.column, r.value) for r in findings.itertuples() if r.action in ("set to missing", "row excluded")}
    assert repaired == by_fault
    # the duplicate the truth lists, named by the file row (header = row 1) of its first copy
    (copied,) = [m for m in truth["mess"] if m["fault"] == "exact duplicate row"]
    raw = pd.read_csv(LAB2 / "therapy_sessions.csv", sep=";", encoding="latin-1", dtype=str, keep_default_na=False)
    first_copy = raw.index[raw.duplicated(keep=False) & ~raw.duplicated()]
    assert raw.loc[first_copy, ["ClientID", "SessionNo"]].values.tolist() == [[copied["client"], copied["session"]]]
    duplicate = findings.loc[findings["action"] == "dropped (earlier row kept)", "reason"].tolist()
    where = f"row {first_copy[0] + 2} (patient {copied['client'][0]}***, session {copied['session']})"  # id masked
    assert duplicate == [f"the row is an exact duplicate of {where}"]
    topcoded = findings.loc[findings["action"] == "top-coded to 90"]
    assert f"({truth['sample']['clients_over_89']} values in this column)" in topcoded["reason"].iloc[0]
    sessions = result.sessions
    assert set(sessions["therapy"]) == {"CBT", "PDT", "IPT"} and set(sessions["condition"]) == {"depression", "anxiety"}
    # totals instead of items: the alliance is the WAI-SR mean, total / 12
    assert (sessions["alliance"] - sessions["alliance_total"] / 12).abs().max() < 1e-12
    assert sessions["alliance"].between(1, 5).all() or sessions["alliance"].isna().any()
    assert sessions.groupby("patient")["days_since_intake"].min().eq(0).all()
    assert "SessionDate" not in sessions.columns
    assert json.loads(json.dumps(result.summary["deidentification"]))["dates_to_days"]["column"] == "SessionDate"
    assert copy.deepcopy(result.summary["measures"]["alliance"]) == {"instrument": "WAI-SR", "supplied": "total"}


def test_the_identifier_screen_still_sees_a_mobile_number_among_plain_numbers():
    from alliance.intake.screen import screen_identifiers

    frame = pd.DataFrame({"wai_01": ["4", "5", "3"], "contact": ["1", "2", "07700900123"]}, dtype="str")
    assert [f.message() for f in screen_identifiers(frame, file="x.csv")] == [
        "x.csv, row 4, column 'contact': value '*********23' looks like a telephone number (a direct identifier); "
        "remove the column or map it out before running."
    ]
