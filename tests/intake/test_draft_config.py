"""``make init``: a draft config from a lab's export (alliance.intake.draft_config).

On every demo layout the draft, with only its TODO(init) keys filled in from the demo's shipped
config, validates and gives the intake the very tables the shipped config gives; it lists every
label of the data; left unfilled, it stops naming exactly those keys. Then the guesses, one class
of export at a time (names, item numbering, ranges, quoting of lab strings, formats, files).
"""

from __future__ import annotations

import os

import pandas as pd
import pyreadstat
import pytest
import yaml
from jsonschema import Draft202012Validator

from alliance.intake.draft_config import main as init_main
from alliance.intake.draft_guess import tokens
from alliance.intake.unfilled import SCHEMA, unfilled_keys
from alliance.intake.unfilled import main as unfilled_main
from testkit import ROOT
from testkit.drafts import DEMO_EXPORTS, draft, fill_marked, shipped_config
from testkit.lab import BASE_PATIENTS, BASE_SESSIONS, PATIENTS, SESSIONS

SCHEMA_DICT = yaml.safe_load(SCHEMA.read_text())
MARKED = ["dataset.labels.therapy", "dataset.labels.condition", "analysis.outcome_by_condition"]
#: the keys each demo's draft leaves to fill in
EXPECTED_MARKED = {
    "demo": MARKED,
    "demo_lab2": MARKED,
    "demo_spss": MARKED,
    "demo_clientdesign": MARKED,
    "demo_notherapist": ["dataset.columns.therapist", *MARKED],
}
PRESENT = [demo for demo in DEMO_EXPORTS if (ROOT / DEMO_EXPORTS[demo][0]).exists()]


def _clean(config: dict):
    """The intake on a config whose paths are relative to the repository (optional sections may be absent)."""
    from alliance.intake.clean import clean_dataset

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return clean_dataset(config["dataset"], config["analysis"], config.get("cleaning"), config.get("instruments"))
    finally:
        os.chdir(cwd)


def _draft_here(*arguments: str) -> tuple[int, str]:
    """``make init``'s module in the lab's working directory: (exit code, the draft's text)."""
    code = init_main([*arguments, "--out", "config/draft.yaml", "--models-from", str(ROOT / "config/config.yaml")])
    return code, (open("config/draft.yaml", encoding="utf-8").read() if code == 0 else "")


def _listed_spellings(text: str, kind: str) -> list:
    """The spellings a draft lists under ``dataset.labels.<kind>`` (its comment lines)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"    {kind}: null   # TODO(init)"))
    listed = []
    for line in lines[start + 1 :]:
        if not line.startswith("    #   - "):
            break
        listed.append(yaml.safe_load(line.removeprefix("    #   - ")))
    return listed


def _labels_in_file(demo: str, kind: str) -> set[str]:
    """The distinct labels of the demo's therapy or condition column, read without the pipeline."""
    shipped = shipped_config(demo)["dataset"]
    column = shipped["columns"].get(kind) or shipped["patient_columns"][kind]
    file = shipped["sessions"] if kind in shipped["columns"] else shipped["patients"]
    path = ROOT / file["path"]
    if path.suffix == ".sav":
        frame, _ = pyreadstat.read_sav(str(path), apply_value_formats=True)
    else:
        frame = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            sep=file.get("delimiter", ","),
            encoding=file.get("encoding", "utf-8"),
        )
    return {str(v).strip() for v in frame[column]} - {""}


@pytest.mark.parametrize("demo", PRESENT)
def test_a_filled_in_draft_gives_the_intake_the_shipped_configs_tables(demo, tmp_path):
    _, config = draft(demo, tmp_path / "draft.yaml")
    marked = unfilled_keys(config, SCHEMA_DICT)
    assert marked == EXPECTED_MARKED[demo]
    filled = fill_marked(config, shipped_config(demo), marked)
    assert [e.message for e in Draft202012Validator(SCHEMA_DICT).iter_errors(filled)] == []
    from_draft, shipped = _clean(filled), _clean(shipped_config(demo))
    pd.testing.assert_frame_equal(from_draft.sessions, shipped.sessions)
    pd.testing.assert_frame_equal(from_draft.patients, shipped.patients)


@pytest.mark.parametrize("demo", PRESENT)
def test_the_draft_lists_every_label_of_the_data(demo, tmp_path):
    text, _ = draft(demo, tmp_path / "draft.yaml")
    labels = shipped_config(demo)["dataset"]["labels"]
    for kind in ("therapy", "condition"):
        listed = _listed_spellings(text, kind)
        assert listed == sorted(_labels_in_file(demo, kind))
        spelled = {str(s) for spellings in labels[kind].values() for s in spellings}
        assert set(listed) <= spelled


def test_the_unfilled_draft_stops_naming_the_marked_keys(tmp_path, capsys):
    draft("demo_lab2", tmp_path / "draft.yaml")
    capsys.readouterr()
    assert not Draft202012Validator(SCHEMA_DICT).is_valid(yaml.safe_load((tmp_path / "draft.yaml").read_text()))
    assert unfilled_main([str(tmp_path / "draft.yaml")]) == 1
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'draft.yaml'}: 3 key(s) have no value yet (null, marked TODO(init) by make init): "
        "dataset.labels.therapy, dataset.labels.condition, analysis.outcome_by_condition. "
        "Fill them in (config/README.md explains each), then run again.\n"
    )
    assert unfilled_main([str(ROOT / "config/demo_lab2.yaml")]) == 0


def test_the_draft_of_the_second_lab_reads_its_format_dates_and_totals(tmp_path):
    text, config = draft("demo_lab2", tmp_path / "draft.yaml")
    dataset = config["dataset"]
    assert dataset["sessions"] == {
        "path": "data/raw/demo_lab2/therapy_sessions.csv",
        "format": "csv",
        "delimiter": ";",
        "encoding": "latin-1",
    }
    assert dataset["missing_codes"] == ["", "-9"]
    assert dataset["measures"]["alliance"] == {
        "instrument": "WAI-SR",
        "total": "WAI_total",
        "score": "total",
        "rater": "patient",
        "timing": "after session",
    }
    assert config["cleaning"] == {
        "dropout_definition": "fewer_than_planned",
        "deidentification": {"dates_to_days": ["SessionDate"], "date_format": "%d.%m.%Y"},
    }
    assert "      instrument: WAI-SR   # a total score 12-60; also fits WAI-S: check" in text.splitlines()
    names = [m["name"] for m in config["models"]]
    assert "alliance_growth" not in names and "moderation" not in names and "same_session" in names


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (
            ["Patient ID", "Therapist", "Session Number"],
            {"patient": "Patient ID", "therapist": "Therapist", "session": "Session Number"},
        ),
        (
            ["patient_id", "counsellor_code", "week", "SessionDate"],
            {"patient": "patient_id", "therapist": "counsellor_code", "session": "week"},
        ),
        (
            ["CaseNr", "TID", "Visit", "Tx", "Dx", "Center"],
            {
                "patient": "CaseNr",
                "therapist": "TID",
                "session": "Visit",
                "therapy": "Tx",
                "condition": "Dx",
                "site": "Center",
            },
        ),
        (["client", "therapist_total", "session_time"], {"patient": "client"}),
    ],
)
def test_design_columns_are_guessed_from_their_names_only_when_clear(names, expected):
    from alliance.intake.draft_guess import SESSION_SYNONYMS, guess_columns

    assert guess_columns(names, SESSION_SYNONYMS) == expected


def test_header_words():
    assert tokens("GAD7_sum") == ["gad7", "sum"]
    assert tokens("WAIItem3") == ["wai", "item3"]


def _renamed_items(frame: pd.DataFrame, old: str, new) -> pd.DataFrame:
    """The export with the item columns ``old_01`` .. renamed by ``new(k)``."""
    return frame.rename(columns={c: new(int(c.rsplit("_", 1)[1])) for c in frame.columns if c.startswith(old + "_")})


@pytest.mark.parametrize(
    ("rename", "items"),
    [
        (lambda k: f"WAI{k}", "WAI{item}"),
        (lambda k: f"wai_{k:03d}_post", "wai_{item:03d}_post"),
        (lambda k: f"WAI-SR item {k}" if k < 10 else f"WAI-SR item {k:02d}", "WAI-SR item {item}"),
        (
            lambda k: f"wai_{k:02d}" if k != 3 else "wai_3",
            ["wai_01", "wai_02", "wai_3", *[f"wai_{k:02d}" for k in range(4, 13)]],
        ),
    ],
)
def test_item_columns_give_the_items_template_or_list(lab, rename, items):
    lab.write(_renamed_items(BASE_SESSIONS, "wai", rename))
    code, text = _draft_here(SESSIONS, "--patients", PATIENTS)
    assert code == 0
    alliance = yaml.safe_load(text)["dataset"]["measures"]["alliance"]
    assert (alliance["instrument"], alliance["items"]) == ("WAI-SR", items)


def test_items_outside_the_registry_range_are_another_instrument_or_none(lab):
    seven = BASE_SESSIONS.copy()
    seven["wai_01"] = seven["wai_01"].replace({"1": "7", "2": "6"})  # answers up to 7: the WAI-S, not the WAI-SR
    lab.write(seven)
    _, text = _draft_here(SESSIONS)
    assert yaml.safe_load(text)["dataset"]["measures"]["alliance"]["instrument"] == "WAI-S"
    eleven = BASE_SESSIONS.drop(columns=["wai_12"])  # 11 numbered columns: no 12-item instrument
    lab.write(eleven)
    _, text = _draft_here(SESSIONS)
    config = yaml.safe_load(text)
    assert "alliance" not in config["dataset"]["measures"]
    assert config["analysis"]["alliance_measure"] is None
    assert unfilled_keys(config, SCHEMA_DICT) == [
        "dataset.labels.therapy",
        "dataset.labels.condition",
        "analysis.alliance_measure",
        "analysis.outcome_by_condition",
    ]


def test_lab_strings_are_quoted_and_round_trip(lab):
    odd = ["#1: CBT", "- PDT 'x'", 'IPT "group"\nweekly', "  yes"]
    frame = BASE_SESSIONS.copy()
    frame["therapy"] = [odd[i % len(odd)] for i in range(len(frame))]
    frame = frame.rename(columns={"therapy": "Treatment: #"})
    lab.write(frame)
    code, text = _draft_here(SESSIONS)
    assert code == 0
    config = yaml.safe_load(text)
    assert config["dataset"]["columns"]["therapy"] == "Treatment: #"
    assert _listed_spellings(text, "therapy") == sorted(s.strip() for s in odd)


def test_missing_codes_that_occur_are_proposed(lab):
    frame = BASE_SESSIONS.copy()
    frame.loc[2, "phq9_03"] = "-99"
    frame.loc[4, "gad7_01"] = "missing"
    lab.write(frame)
    _, text = _draft_here(SESSIONS)
    config = yaml.safe_load(text)
    assert config["dataset"]["missing_codes"] == ["", "-99", "missing"]
    assert config["dataset"]["measures"]["phq9"]["items"] == "phq9_{item:02d}"


@pytest.mark.parametrize("suffix", ["parquet", "xlsx", "tsv"])
def test_every_format_the_intake_reads_gives_a_draft(lab, suffix):
    path = f"data/raw/lab/sessions.{suffix}"
    if suffix == "parquet":
        BASE_SESSIONS.to_parquet(path)
    elif suffix == "xlsx":
        BASE_SESSIONS.to_excel(path, index=False)
    else:
        BASE_SESSIONS.to_csv(path, sep="\t", index=False)
    code, text = _draft_here(path, "--patients", PATIENTS)
    assert code == 0
    config = yaml.safe_load(text)
    assert config["dataset"]["sessions"]["format"] == {"xlsx": "excel"}.get(suffix, suffix)
    assert config["dataset"]["columns"] == {
        c: c for c in ("patient", "therapist", "session", "therapy", "condition", "site")
    }
    assert sorted(config["dataset"]["measures"]) == ["alliance", "gad7", "phq9"]


def test_a_draft_never_replaces_a_file_unless_out_names_it(lab, capsys):
    arguments = [SESSIONS, "--models-from", str(ROOT / "config/config.yaml")]
    assert init_main(arguments) == 0
    assert capsys.readouterr().out.splitlines()[0] == "Draft config written to config/draft_lab.yaml."
    (lab.root / "config/draft_lab.yaml").write_text("# edited by the lab\n")
    assert init_main(arguments) == 1
    assert capsys.readouterr().err == (
        "error: config/draft_lab.yaml exists; give OUT=<file> to write the draft elsewhere (or to replace it)\n"
    )
    assert (lab.root / "config/draft_lab.yaml").read_text() == "# edited by the lab\n"
    assert init_main([*arguments, "--out", "config/draft_lab.yaml"]) == 0
    assert init_main([*arguments, "--out", "data/raw/lab/config.yaml"]) == 1
    assert "the draft is not written beside the lab's raw files" in capsys.readouterr().err
    assert not (lab.root / "data/raw/lab/config.yaml").exists()


def test_an_unreadable_export_says_why(lab, capsys):
    (lab.root / SESSIONS).write_bytes(b"")
    assert init_main([SESSIONS, "--models-from", str(ROOT / "config/config.yaml")]) == 1
    assert capsys.readouterr().err.startswith(f"error: {SESSIONS}: the file is empty (0 bytes)")
    assert not (lab.root / "config").exists()


def test_the_patients_file_maps_its_own_columns(lab):
    patients = BASE_PATIENTS.rename(columns={"patient": "ClientID", "sex": "Gender", "planned_sessions": "n_planned"})
    patients = patients.drop(columns=["end_reason"])
    lab.write(patients=patients)
    _, text = _draft_here(SESSIONS, "--patients", PATIENTS)
    config = yaml.safe_load(text)
    assert config["dataset"]["patient_columns"] == {
        "patient": "ClientID",
        "age_band": "age_band",
        "sex": "Gender",
        "expectancy": "expectancy",
        "planned_sessions": "n_planned",
    }
    assert config["cleaning"]["dropout_definition"] == "fewer_than_planned"


def test_several_config_files_are_checked_merged_as_snakemake_merges_them(tmp_path, capsys):
    draft("demo_lab2", tmp_path / "draft.yaml")
    shipped = shipped_config("demo_lab2")
    labels = tmp_path / "labels.yaml"
    labels.write_text(yaml.safe_dump({"dataset": {"labels": shipped["dataset"]["labels"]}}))
    capsys.readouterr()
    assert unfilled_main([str(tmp_path / "draft.yaml"), str(labels)]) == 1
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'draft.yaml'} {labels}: 1 key(s) have no value yet (null, marked TODO(init) by "
        "make init): analysis.outcome_by_condition. Fill them in (config/README.md explains each), then run again.\n"
    )
    outcomes = tmp_path / "outcomes.yaml"
    outcomes.write_text(
        yaml.safe_dump({"analysis": {"outcome_by_condition": {"depression": "phq9", "anxiety": "gad7"}}})
    )
    assert unfilled_main([str(tmp_path / "draft.yaml"), str(labels), str(outcomes)]) == 0
