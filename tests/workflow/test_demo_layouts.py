"""The demo layouts and ``make init`` through make and the real workflow.

``make init`` on a lab's export writes a draft config; ``make clean-data`` on it stops naming the
keys left to fill in, and runs the intake once they are filled. The SPSS demo
(``data/raw/demo_spss/``, made by ``alliance.simulate_spss``) regenerates byte for byte and runs
from its config alone: the intake and models in a temporary directory, and the whole ``make run``
as a slow test.
"""

from __future__ import annotations

import shutil
import subprocess

import pandas as pd
import pytest
import yaml

from alliance.intake.unfilled import unfilled_keys
from testkit import ROOT, demo_config
from testkit.checkout import checkout, digests, make, make_run_demo, write_config
from testkit.drafts import fill_marked

pytestmark = pytest.mark.e2e

SPSS_DEMO = ROOT / "data/raw/demo_spss"
SPSS_REGENERATE = (
    "cd workflow/scripts && ../../.venv/bin/python -m alliance.simulate_spss --out ../../data/raw/demo_spss"
)
INIT = "make init DATA=data/raw/my_lab/sessions.csv PATIENTS=data/raw/my_lab/patients.csv"


def test_make_init_drafts_a_config_that_clean_data_checks(small_trial, tmp_path):
    """README "Pointing it at your own data": `make init` on a lab's export, `make clean-data` on
    the draft (stops, naming the keys left), then on the draft with those keys filled in."""
    workdir, config = small_trial
    raw = tmp_path / "raw"
    shutil.copytree(workdir / "data/raw/small", raw / "my_lab")
    directory = checkout(tmp_path / "checkout", demo_config(), data=raw)
    init = make(directory, *INIT.split()[1:])
    assert init.returncode == 0, init.stdout[-3000:]
    assert init.stdout.splitlines() == [
        "Draft config written to config/draft_my_lab.yaml.",
        "Fill in the keys marked TODO(init) (dataset.labels.therapy, dataset.labels.condition, "
        "analysis.outcome_by_condition), check the rest, then: make clean-data CONFIG=config/draft_my_lab.yaml",
    ]
    again = make(directory, *INIT.split()[1:])
    assert again.returncode != 0
    assert "error: config/draft_my_lab.yaml exists; give OUT=<file>" in again.stdout

    stopped = make(directory, "clean-data", "CONFIG=config/draft_my_lab.yaml")
    assert stopped.returncode != 0
    assert (
        "error: config/draft_my_lab.yaml: 3 key(s) have no value yet (null, marked TODO(init) by make init): "
        "dataset.labels.therapy, dataset.labels.condition, analysis.outcome_by_condition." in stopped.stdout
    )
    assert not (directory / "results").exists() and not (directory / ".snakemake").exists()

    draft = yaml.safe_load((directory / "config/draft_my_lab.yaml").read_text())
    write_config(directory / "config/my_lab.yaml", fill_marked(draft, config, unfilled_keys(draft, _schema())))
    intake = make(directory, "clean-data", "CONFIG=config/my_lab.yaml")
    assert intake.returncode == 0, intake.stdout[-3000:]
    assert intake.stdout.splitlines()[-1].startswith("Intake done: read results/my_lab/clean/validation_report.csv")
    sessions = pd.read_parquet(directory / "results/my_lab/clean/analysis.parquet")
    assert sessions["patient"].nunique() == 18 * 8


def _schema() -> dict:
    return yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def test_the_spss_demo_regenerates_byte_for_byte(tmp_path):
    """The README's command (written to a temporary directory instead of data/raw), twice: the .sav
    header's time stamp is fixed, so the bytes do not depend on when the files were written."""
    for run in ("first", "second"):
        command = SPSS_REGENERATE.replace("../../data/raw/demo_spss", str(tmp_path / run))
        result = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        assert digests(tmp_path / run) == digests(SPSS_DEMO)


@pytest.mark.slow
def test_the_spss_demo_runs_from_its_config(tmp_path):
    """`make run CONFIG=config/demo_spss.yaml`: the whole suite and the report, from the .sav export.

    The variance CIs' bootstrap at 20 replicates (testkit.checkout.fewer_replicates): the command
    is tested here, the bootstrap in tests/models/test_variance_ci.py."""
    directory, result = make_run_demo(tmp_path, SPSS_DEMO, "config/demo_spss.yaml")
    raw = tmp_path / "raw"
    assert result.returncode == 0, result.stdout[-3000:]
    assert result.stdout.splitlines()[-1].startswith("Report: reports/demo_spss/report.html")
    assert (directory / "results/demo_spss/models/three_level/fixed_effects.csv").exists()
    sessions = pd.read_parquet(directory / "results/demo_spss/clean/analysis.parquet")
    truth = yaml.safe_load((raw / "demo_spss/TRUTH.yaml").read_text())
    assert len(sessions) == truth["sample"]["session_rows"]
    assert sessions["patient"].nunique() == 80 and sessions["therapist"].nunique() == 10
    # integer ids read as text, value labels mapped onto the canonical labels
    assert sessions["patient"].iloc[0] == "1001" and sessions["therapist"].iloc[0] == "11"
    assert sorted(sessions["therapy"].unique()) == ["CBT", "IPT", "PDT"]
    assert sorted(sessions["condition"].unique()) == ["anxiety", "depression"]
    # the WAI items' labelled scale points stayed numbers: the alliance is the WAI-SR mean 1-5
    assert sessions["alliance"].between(1, 5).all() and sessions["alliance"].notna().mean() > 0.9
    fixed = pd.read_csv(directory / "results/demo_spss/models/same_session/fixed_effects.csv").set_index("term")
    estimate, se = fixed.loc["alliance_within_patient", ["estimate", "se"]]
    assert abs(estimate - truth["within_effect_sample_patient_mean"]) < 2 * se, (estimate, se)
    assert digests(raw / "demo_spss") == digests(SPSS_DEMO)  # data/raw as it was copied
