"""The intake stage inside the real workflow (Snakemake in a temporary directory).

A misspelt config key and stopping faults leave nothing in results/ and say why;
``clean_all`` runs the intake stage alone (with a lab's own instrument from the
config); the second demo runs from its config alone and recovers its truth.
"""

from __future__ import annotations

import hashlib
import shutil

import pandas as pd
import pytest
import yaml

from alliance.simulate import TrialDesign, simulate_trial
from testkit import ROOT, demo_config, run_snakemake
from testkit.instruments import MOOD4

pytestmark = pytest.mark.e2e

SESSIONS = "data/raw/lab/sessions.csv"
BASE_SESSIONS, BASE_PATIENTS, _ = simulate_trial(
    TrialDesign(n_therapists=3, patients_per_therapist=2, add_mess=False), seed=11
)
# run_snakemake puts its extra arguments after `--quiet rules`; "--" ends that option list
TARGET = ("--",)
CLEAN_OUTPUTS = (
    "analysis.parquet",
    "patients.parquet",
    "data_dictionary.csv",
    "validation_report.csv",
    "exclusion_flow.csv",
    "summary.json",
    "reliability.csv",
    "item_rest.csv",
)


def _digests(root) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _written(workdir) -> list[str]:
    results = workdir / "results"
    return (
        sorted(p.relative_to(workdir).as_posix() for p in results.rglob("*") if p.is_file()) if results.exists() else []
    )


def _lab(workdir, sessions: pd.DataFrame | bytes) -> dict:
    raw = workdir / "data/raw/lab"
    raw.mkdir(parents=True)
    if isinstance(sessions, bytes):
        (raw / "sessions.csv").write_bytes(sessions)
    else:
        sessions.to_csv(raw / "sessions.csv", index=False, lineterminator="\n")
    BASE_PATIENTS.to_csv(raw / "patients.csv", index=False, lineterminator="\n")
    config = demo_config()
    config["dataset"]["name"] = "lab"
    config["dataset"]["sessions"]["path"] = SESSIONS
    config["dataset"]["patients"]["path"] = "data/raw/lab/patients.csv"
    return config


def test_a_misspelt_config_key_stops_before_any_job(tmp_path):
    config = _lab(tmp_path, BASE_SESSIONS)
    config["dataset"]["colums"] = config["dataset"].pop("columns")
    result = run_snakemake(tmp_path, config)
    assert result.returncode != 0
    assert "Additional properties are not allowed ('colums' was unexpected)" in result.stderr
    assert "schema['properties']['dataset']" in result.stderr
    assert _written(tmp_path) == []


def _email_in_note():
    frame = BASE_SESSIONS.copy()
    frame["note"] = "ok"
    frame.loc[3, "note"] = "call jane.doe@example.org"
    return frame, (
        f"{SESSIONS}, row 5, column 'note': value 'j***@***.org' looks like an email address (a direct "
        "identifier); remove the column or map it out before running."
    )


def _two_therapists_in_one_session():
    second = BASE_SESSIONS.iloc[[2]].copy()
    second["therapist"] = "T003"
    frame = pd.concat([BASE_SESSIONS.iloc[:5], second, BASE_SESSIONS.iloc[5:]], ignore_index=True)
    return frame, (
        f"{SESSIONS}, row 7, column 'therapist': value 'T***' is a second therapist for patient P*** in session 3 "
        "(row 4 has 'T***'); one session has one therapist: correct the session number or the therapist."
    )


def _not_utf8():
    frame = BASE_SESSIONS.copy()
    frame.loc[2, "therapy"] = "Thérapie"
    raw = frame.to_csv(index=False, lineterminator="\n").encode("latin-1")
    offset = raw.index(b"\xe9")
    character = offset - raw.rfind(b"\n", 0, offset)
    return raw, (
        f"{SESSIONS}, row 4: value '0xE9' is not valid utf-8 (byte offset {offset}, line 4, character {character}): "
        "the file was probably saved in another encoding; set encoding: latin-1 (or cp1252 for files from Windows "
        "Excel) for this file in the config, or re-save the file as UTF-8."
    )


def _one_therapist():
    """A degenerate design: intake stops it, so that no model job starts (and fails on its own)."""
    frame = BASE_SESSIONS.copy()
    frame["therapist"] = "T001"
    return frame, (
        f"{SESSIONS}, column 'therapist': value 'T***' is the only therapist in the data: therapist-level variance "
        "cannot be estimated, so the models with a therapist random effect (three-level models) and "
        "therapist-level effects cannot be fitted; for a single-therapist study, remove dataset.columns.therapist: "
        "the suite then runs as a design without therapists."
    )


def _nhs_number_as_patient_id():
    """A direct identifier in a mapped id column: the value screen stops it, the number masked."""
    frame = BASE_SESSIONS.copy()
    frame["patient"] = frame["patient"].replace({frame.loc[0, "patient"]: "943 476 5919"})
    return frame, (
        f"{SESSIONS}, row 2, column 'patient': value '*** *** **19' looks like an NHS or CHI number (10 digits "
        "with a valid mod-11 check digit; 1 of 1 such numbers in this column pass the check), a direct "
        "identifier, in the column mapped as the patient id;"
    )


@pytest.mark.parametrize(
    "fault",
    [
        _email_in_note,
        _two_therapists_in_one_session,
        _one_therapist,
        # the same path through the workflow (a stop in clean_data); their messages are tested in-process
        pytest.param(_not_utf8, marks=pytest.mark.slow),
        pytest.param(_nhs_number_as_patient_id, marks=pytest.mark.slow),
    ],
)
def test_a_stopping_fault_writes_nothing_and_says_why(tmp_path, fault):
    sessions, message = fault()
    config = _lab(tmp_path, sessions)
    raw_before = _digests(tmp_path / "data/raw")
    result = run_snakemake(tmp_path, config)
    assert result.returncode != 0
    log = (tmp_path / "logs/lab/clean_data.log").read_text()
    assert message in log
    assert "ERROR [clean_data] stopped; nothing was written." in result.stderr and message in result.stderr
    assert _written(tmp_path) == []
    assert _digests(tmp_path / "data/raw") == raw_before


def test_clean_all_runs_the_intake_stage_alone_with_a_lab_instrument(tmp_path):
    frame = BASE_SESSIONS.copy()
    for k in range(1, 5):
        frame[f"mood{k}"] = frame[f"phq9_{k:02d}"].replace("", "0")
    config = _lab(tmp_path, frame)
    config["instruments"] = {"MOOD-4": MOOD4}
    config["dataset"]["measures"]["mood"] = {"instrument": "MOOD-4", "items": "mood{item}"}
    config["analysis"]["outcome_by_condition"]["depression"] = "mood"
    result = run_snakemake(tmp_path, config, *TARGET, "clean_all")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _written(tmp_path) == [f"results/lab/clean/{name}" for name in sorted(CLEAN_OUTPUTS)]
    assert not (tmp_path / "reports").exists()
    dictionary = pd.read_csv(tmp_path / "results/lab/clean/data_dictionary.csv").set_index("column")
    assert dictionary.loc["mood_total", "instrument"] == "MOOD-4"
    sessions = pd.read_parquet(tmp_path / "results/lab/clean/analysis.parquet")
    depression = sessions["condition"] == "depression"
    assert (sessions.loc[depression, "outcome_measure"] == "MOOD-4").all()
    assert sessions.loc[depression, "symptoms"].tolist() == pytest.approx(
        (100 * sessions.loc[depression, "mood_total"] / 16).tolist()
    )


def test_second_demo_runs_from_its_config_and_recovers_the_truth(tmp_path):
    shutil.copytree(ROOT / "data/raw/demo_lab2", tmp_path / "data/raw/demo_lab2")
    raw_before = _digests(tmp_path / "data/raw")
    config = yaml.safe_load((ROOT / "config/demo_lab2.yaml").read_text())
    target = "results/demo_lab2/models/same_session/fixed_effects.csv"
    result = run_snakemake(tmp_path, config, *TARGET, target)
    assert result.returncode == 0, result.stderr[-3000:]
    truth = yaml.safe_load((tmp_path / "data/raw/demo_lab2/TRUTH.yaml").read_text())
    fixed = pd.read_csv(tmp_path / target).set_index("term")
    estimate, se = fixed.loc["alliance_within_patient", ["estimate", "se"]]
    # the alliance is the WAI-SR mean (WAI_total / 12), the scale of the truth
    assert abs(estimate - truth["within_effect_sample_patient_mean"]) < 2 * se, (estimate, se)
    assert 0.2 < se < 0.6
    assert fixed.loc["session_c", "estimate"] == pytest.approx(truth["design"]["outcome_session_slope"], abs=0.15)
    validation = pd.read_csv(tmp_path / "results/demo_lab2/clean/validation_report.csv")
    assert validation["action"].tolist() == [
        "set to missing",
        "set to missing",
        "set to missing",
        "row excluded",
        "dropped (earlier row kept)",
        "top-coded to 90",
    ]
    assert _digests(tmp_path / "data/raw") == raw_before
