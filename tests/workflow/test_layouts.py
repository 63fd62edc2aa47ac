"""Export layouts through the real workflow: the demo whose design columns are only in the client table.

``data/raw/demo_clientdesign/`` (made by ``alliance.simulate_layouts``) keeps therapy type,
diagnosis and centre in ``clients.csv`` only; ``config/demo_clientdesign.yaml`` maps them in
``dataset.patient_columns``. The workflow runs it from its config alone, in a temporary directory:
the intake and the models that use the design columns (therapy and condition as predictors and
moderators, the site of each patient), and the whole ``make run`` as a slow test. The README's
command that regenerates the data is run by test_readme (REGENERATE).
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from testkit import ROOT, run_snakemake
from testkit.checkout import digests, make_run_demo

pytestmark = pytest.mark.e2e

DEMO = ROOT / "data/raw/demo_clientdesign"
CONFIG = "config/demo_clientdesign.yaml"
# run_snakemake puts its extra arguments after `--quiet rules`; "--" ends that option list
TARGET = ("--",)


def test_design_columns_only_in_the_client_table_run_through_the_workflow(tmp_path):
    shutil.copytree(DEMO, tmp_path / "data/raw/demo_clientdesign")
    raw_before = digests(tmp_path / "data/raw")
    config = yaml.safe_load((ROOT / CONFIG).read_text())
    results = "results/demo_clientdesign"
    targets = [f"{results}/models/{name}/fixed_effects.csv" for name in ("same_session", "alliance_growth")]
    result = run_snakemake(tmp_path, config, *TARGET, *targets)
    assert result.returncode == 0, result.stderr[-3000:]

    sessions = pd.read_parquet(tmp_path / f"{results}/clean/analysis.parquet")
    clients = pd.read_csv(DEMO / "clients.csv").set_index("patient")
    therapy = {"kognitive Verhaltenstherapie": "CBT", "psychodynamisch": "PDT", "interpersonell": "IPT"}
    assert sessions["therapy"].tolist() == sessions["patient"].map(clients["Treatment"].map(therapy)).tolist()
    condition = sessions["patient"].map(clients["Diagnosis"].map({"F32": "depression", "F41.1": "anxiety"}))
    assert sessions["condition"].tolist() == condition.tolist()
    assert sessions["site"].tolist() == sessions["patient"].map(clients["Centre"]).tolist()
    measure = sessions["condition"].map({"depression": "PHQ-9", "anxiety": "GAD-7"})
    assert sessions["outcome_measure"].tolist() == measure.tolist()

    validation = pd.read_csv(tmp_path / f"{results}/clean/validation_report.csv")
    assert set(validation["action"]) == {"warn"}  # small cells of the quasi-identifiers only
    assert validation["reason"].str.contains("fewer than k=5").all()

    truth = yaml.safe_load((DEMO / "TRUTH.yaml").read_text())
    fixed = pd.read_csv(tmp_path / targets[0]).set_index("term")
    estimate, se = fixed.loc["alliance_within_patient", ["estimate", "se"]]
    assert abs(estimate - truth["within_effect_sample_patient_mean"]) < 2.5 * se, (estimate, se)
    growth = pd.read_csv(tmp_path / targets[1]).set_index("term")
    # therapy and condition, from the client table, are the model's factors (CBT, depression the references)
    assert {"therapy[T.IPT]", "therapy[T.PDT]", "condition[T.anxiety]", "session_c:therapy[T.PDT]"} <= set(growth.index)
    assert digests(tmp_path / "data/raw") == raw_before


@pytest.mark.slow
def test_the_clientdesign_demo_runs_from_its_config(tmp_path):
    """`make run CONFIG=config/demo_clientdesign.yaml`: the whole run, report included."""
    directory, result = make_run_demo(tmp_path, DEMO, CONFIG)  # the bootstrap at 20 replicates
    assert result.returncode == 0, result.stdout[-3000:]
    assert result.stdout.splitlines()[-1].startswith("Report: reports/demo_clientdesign/report.html")
    assert (directory / "results/demo_clientdesign/models/moderation/fixed_effects.csv").exists()
    assert (directory / "results/demo_clientdesign/models/riclpm").is_dir()
