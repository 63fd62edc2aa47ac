"""Direct identifiers in the VALUES of the mapped id and label columns, masked values in every finding,
config files that would be code, inputs that are no regular file, mis-declared encodings, and the
pseudonymised ids of ``dataset.pseudonymise_ids`` (the bad-input corpus: testkit.lab)."""

from __future__ import annotations

import os
import subprocess

import pandas as pd
import pytest

from alliance.config_text import ConfigIsCode, refuse_code_in_configs
from alliance.intake.identifier_codes import luhn_valid, nhs_number_valid
from alliance.intake.pseudonyms import pseudonymise_default
from testkit import ROOT
from testkit.lab import PATIENTS, SESSIONS, sessions

PATIENT_ADVICE = "replace such values with study codes (e.g. P0001) in the export before running."
THERAPIST_ADVICE = "replace such values with study codes (e.g. T01) in the export before running."
SITE_ADVICE = "replace such values with study codes (e.g. S1) in the export before running."


def _patients_renamed(lab, new_ids: list[str]) -> None:
    """The sessions file's patients renamed, in order of appearance (the patients file keeps its ids)."""
    frame = sessions()
    ids = list(frame["patient"].unique())
    frame["patient"] = frame["patient"].map(dict(zip(ids, new_ids)))
    lab.write(frame)


# --------------------------------------------------------------------------- numbers with check digits


def test_check_digit_functions():
    assert [nhs_number_valid(n) for n in ("9434765919", "9434765918", "943476591", "4010232137")] == [
        True,
        False,
        False,
        True,
    ]
    assert [luhn_valid(n) for n in ("046454286", "046454287", "79927398713")] == [True, False, True]


def test_nhs_number_with_valid_check_digit_in_patient_ids_stops_masked(lab):
    _patients_renamed(lab, ["943 476 5919", "P00002", "P00003", "P00004", "P00005", "P00006"])
    assert lab.stop() == [
        f"{SESSIONS}, row 2, column 'patient': value '*** *** **19' looks like an NHS or CHI number (10 digits "
        "with a valid mod-11 check digit; 1 of 1 such numbers in this column pass the check), a direct "
        f"identifier, in the column mapped as the patient id; {PATIENT_ADVICE}"
    ]


def test_ten_digit_ids_with_invalid_check_digits_pass_and_are_masked_where_quoted(lab):
    # one of six passes mod 11 by chance (as about 1 in 11 random numbers do): not an NHS-number column
    new_ids = [str(4010232130 + 7 * i) for i in range(6)]
    assert [nhs_number_valid(i) for i in new_ids] == [False, True, False, False, False, False]
    _patients_renamed(lab, new_ids)
    found = lab.findings()
    # a non-identifier finding (no row in the patients file) quotes each id, masked
    assert [(row, column, value) for row, column, value, _, _ in found] == [
        (2, "patient", "4***"),
        (7, "patient", "4***"),
        (21, "patient", "4***"),
        (35, "patient", "4***"),
        (41, "patient", "4***"),
        (43, "patient", "4***"),
    ]
    assert all("401023" not in reason for _, _, _, reason, _ in found)


def test_luhn_numbers_in_patient_ids_stop(lab):
    _patients_renamed(lab, ["046454286", "130692544", "123456782", "046454287", "111111111", "222222222"])
    assert lab.stop() == [
        f"{SESSIONS}, row 2, column 'patient': value '*******86' looks like a national identification, record "
        "or card number (9 digits with a valid Luhn check digit; 3 of 6 such numbers in this column pass the "
        f"check), a direct identifier, in the column mapped as the patient id; {PATIENT_ADVICE}"
    ]


def test_social_security_and_national_insurance_numbers_stop(lab):
    _patients_renamed(lab, ["P00001", "123-45-6789", "AB 12 34 56 C", "P00004", "P00005", "P00006"])
    assert lab.stop() == [
        f"{SESSIONS}, row 7, column 'patient': value '***-**-**89' looks like a US social security number, a "
        f"direct identifier, in the column mapped as the patient id; {PATIENT_ADVICE}",
        f"{SESSIONS}, row 21, column 'patient': value 'AB ** ** ** *' looks like a UK national insurance "
        f"number, a direct identifier, in the column mapped as the patient id; {PATIENT_ADVICE}",
    ]


def test_integer_ids_one_to_n_pass(lab):
    frame = sessions()
    ids = list(frame["patient"].unique())
    frame["patient"] = frame["patient"].map({p: str(i) for i, p in enumerate(ids, start=1)})
    frame["therapist"] = frame["therapist"].str[-1]  # 1, 2, 3
    frame["site"] = frame["site"].map({"S1": "10115", "S2": "20095"}).fillna("80331")  # 5 digits: not flagged
    lab.write(frame, pd.read_csv(lab.root / PATIENTS, dtype=str).assign(patient=[str(i) for i in range(1, 7)]))
    assert lab.findings() == []


# --------------------------------------------------------------------------- names and places


def test_therapist_named_with_a_title_stops(lab):
    frame = sessions()
    frame.loc[frame["therapist"] == "T002", "therapist"] = "Dr Jane Smith"
    lab.write(frame)
    assert lab.stop() == [
        f"{SESSIONS}, row 21, column 'therapist': value 'Dr *** ***' looks like a person's name with a title, "
        f"a direct identifier, in the column mapped as the therapist id; {THERAPIST_ADVICE}"
    ]


def test_therapist_named_first_and_last_stops_but_team_codes_pass(lab):
    frame = sessions()
    frame.loc[frame["therapist"] == "T002", "therapist"] = "Jane Smith"
    lab.write(frame)
    assert lab.stop() == [
        f"{SESSIONS}, row 21, column 'therapist': value 'J***' looks like a person's name, a direct identifier, "
        f"in the column mapped as the therapist id; {THERAPIST_ADVICE}"
    ]
    frame["therapist"] = sessions()["therapist"].map({"T001": "Team North", "T002": "Clinic East", "T003": "Group B"})
    lab.write(frame)
    assert lab.findings() == []


def test_postcode_as_site_stops(lab):
    frame = sessions()
    frame.loc[frame["site"] == "S1", "site"] = "LS1 4AP"
    lab.write(frame)
    assert lab.stop() == [
        f"{SESSIONS}, row 2, column 'site': value 'LS* ***' looks like a full UK postcode, a direct identifier, "
        f"in the column mapped as the site; {SITE_ADVICE}"
    ]


def test_zip_plus_four_as_site_stops(lab):
    frame = sessions()
    frame.loc[frame["site"] == "S1", "site"] = "90210-1234"
    lab.write(frame)
    assert lab.stop() == [
        f"{SESSIONS}, row 2, column 'site': value '902**-****' looks like a US ZIP+4 code, a direct identifier, "
        f"in the column mapped as the site; {SITE_ADVICE}"
    ]


# --------------------------------------------------------------------------- the files themselves


def test_dev_zero_as_dataset_path(lab):
    lab.config["dataset"]["sessions"]["path"] = "/dev/zero"
    assert lab.stop() == [
        "/dev/zero: is not a regular file (a device, pipe or socket, which may never end); point the config at "
        "the data file itself."
    ]


def test_fifo_and_directory_as_dataset_path(lab):
    os.mkfifo(lab.root / "data/raw/lab/fifo.csv")
    lab.config["dataset"]["sessions"]["path"] = "data/raw/lab/fifo.csv"
    assert lab.stop() == [
        "data/raw/lab/fifo.csv: is not a regular file (a device, pipe or socket, which may never end); point the "
        "config at the data file itself."
    ]
    lab.config["dataset"]["sessions"]["path"] = "data/raw/lab"
    assert lab.stop() == ["data/raw/lab: is a directory, not a data file; check the path in the config."]


def test_utf8_file_declared_latin1_is_mojibake(lab):
    frame = sessions()
    frame.loc[frame["site"] == "S2", "site"] = "Zürich"
    lab.write_bytes(frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    lab.config["dataset"]["sessions"]["encoding"] = "latin-1"
    row = int((frame["site"] == "Zürich").to_numpy().argmax()) + 2
    assert lab.stop() == [
        f"{SESSIONS}, row {row}: value 'ZÃ¼rich' looks garbled: the file is UTF-8 but the config declares "
        "encoding: latin-1; set encoding: utf-8 for this file in the config."
    ]


def test_text_converted_twice_is_mojibake(lab):
    frame = sessions()
    frame.loc[frame["site"] == "S2", "site"] = "ZÃ¼rich"  # what a double conversion leaves in a UTF-8 file
    lab.write(frame)
    row = int((frame["site"] == "ZÃ¼rich").to_numpy().argmax()) + 2
    assert lab.stop() == [
        f"{SESSIONS}, row {row}: value 'ZÃ¼rich' looks garbled: UTF-8 text was decoded as latin-1 or cp1252 "
        "before the file was saved (the export converted it twice); re-export the file as UTF-8, or repair "
        "the text."
    ]


@pytest.mark.parametrize("declared", ["utf-8", "latin-1"])
def test_utf16_file_advice(lab, declared):
    lab.write_bytes(sessions().to_csv(index=False, lineterminator="\n").encode("utf-16"))
    lab.config["dataset"]["sessions"]["encoding"] = declared
    assert lab.stop() == [
        f"{SESSIONS}: is encoded as UTF-16 (it starts with a UTF-16 byte-order mark or has a NUL byte between "
        f"its characters), but the config declares encoding: {declared}; set encoding: utf-16 for this file in "
        "the config, or re-save the file as UTF-8."
    ]
    lab.config["dataset"]["sessions"]["encoding"] = "utf-16"
    assert len(lab.clean().sessions) == len(sessions())


# --------------------------------------------------------------------------- pseudonymised ids


def test_pseudonymised_ids_in_outputs_and_byte_identical_reruns(lab, tmp_path):
    frame = sessions()
    frame["therapist"] = frame["therapist"].map({"T001": "T-77", "T002": "T-12", "T003": "T-40"})
    frame["site"] = frame["site"].map({"S1": "North", "S2": "South", "S3": "East"})
    lab.write(frame)
    lab.config["dataset"]["pseudonymise_ids"] = True
    first, second = lab.clean(), lab.clean()
    data = first.sessions
    assert sorted(data["patient"].unique()) == ["P0001", "P0002", "P0003", "P0004", "P0005", "P0006"]
    assert list(pd.unique(data.sort_values("source_row")["therapist"])) == ["T01", "T02", "T03"]
    assert list(pd.unique(data.sort_values("source_row")["site"])) == ["S1", "S2", "S3"]
    assert set(first.patients["patient"]) == set(data["patient"])
    shown = pd.concat([first.findings.astype(str), first.dictionary.astype(str)]).to_csv()
    assert not any(raw in shown for raw in ["P00001", "T-77", "T-12", "T-40", "North"])
    for a, b in [(first.sessions, second.sessions), (first.patients, second.patients)]:
        a.to_parquet(tmp_path / "a.parquet")
        b.to_parquet(tmp_path / "b.parquet")
        assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_pseudonymise_ids_is_optional_and_off_by_default(lab):
    assert pseudonymise_default() is False
    assert "pseudonymise_ids" not in lab.config["dataset"]
    assert lab.clean().sessions["patient"].iloc[0] == "P00001"


# --------------------------------------------------------------------------- config never becomes code

YTE_CONFIG = """__use_yte__: true
run:
  title: ?open("{marker}", "w").write("evaluated") and "title"
"""
YTE_REFUSAL = (
    "Config refused: {path}: sets __use_yte__ (Snakemake's YTE templating, which evaluates the Python "
    "expressions of a config file); this workflow never evaluates a config: remove the key and write every "
    "value out."
)


def test_yte_config_refused_by_the_check_make_runs_before_snakemake(tmp_path):
    marker, config = tmp_path / "EVALUATED", tmp_path / "yte.yaml"
    config.write_text(YTE_CONFIG.format(marker=marker))
    with pytest.raises(ConfigIsCode) as info:
        refuse_code_in_configs([config])
    assert str(info.value) == YTE_REFUSAL.format(path=config)
    shown = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-m", "alliance.config_text", str(config)],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT / "workflow" / "scripts")},
    )
    assert (shown.returncode, shown.stderr.strip()) == (1, YTE_REFUSAL.format(path=config))
    assert not marker.exists()


def test_python_tag_in_config_refused(tmp_path):
    config = tmp_path / "tag.yaml"
    config.write_text('run: !!python/object/apply:os.system ["true"]\n')
    with pytest.raises(ConfigIsCode) as info:
        refuse_code_in_configs([config])
    assert str(info.value) == (
        f"Config refused: {config}: uses a YAML tag that builds a Python object (could not determine a "
        "constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'); a config holds plain "
        "values only: remove the tag."
    )


def test_yte_config_refused_at_workflow_load(tmp_path):
    """The workflow refuses its own config/config.yaml before loading it (nothing evaluated), and a
    --configfile once Snakemake's command line has loaded it."""
    from testkit.checkout import checkout

    directory = checkout(tmp_path / "repo")
    marker = tmp_path / "EVALUATED"
    (directory / "config" / "config.yaml").write_text(YTE_CONFIG.format(marker=marker))
    shown = subprocess.run(
        [str(ROOT / ".venv/bin/snakemake"), "-n"], cwd=directory, capture_output=True, text=True, timeout=600
    )
    assert shown.returncode == 1
    assert YTE_REFUSAL.format(path="config/config.yaml") in shown.stdout + shown.stderr
    assert not marker.exists()


def test_dev_zero_refused_at_workflow_load(tmp_path):
    from testkit.checkout import checkout, write_config
    from testkit.lab import Lab

    directory = checkout(tmp_path / "repo")
    config = Lab(tmp_path / "lab").config
    config["dataset"]["sessions"]["path"] = "/dev/zero"
    write_config(directory / "config" / "config.yaml", config)
    shown = subprocess.run(
        [str(ROOT / ".venv/bin/snakemake"), "-n"], cwd=directory, capture_output=True, text=True, timeout=600
    )
    assert shown.returncode == 1
    assert (
        "/dev/zero: is not a regular file (a device, pipe or socket, which may never end); point the config at "
        "the data file itself." in shown.stdout + shown.stderr
    )
