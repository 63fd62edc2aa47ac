"""A design without therapists end to end: data/raw/demo_notherapist through the workflow to the report.

The dataset has no therapist column (config/demo_notherapist.yaml maps none). The models that need a
therapist level are reported as not fitted, with why; those whose config says drop_level are fitted
without it; the rest of the suite and the report run. The fast checks of the same logic are in
tests/models/test_design_checks.py.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil

import pandas as pd
import pytest
import yaml

from alliance.simulate_notherapist import NOTHERAPIST_SEED, write_notherapist_trial
from testkit import ROOT, run_snakemake

DEMO = ROOT / "data" / "raw" / "demo_notherapist"


def test_demo_without_therapists_regenerates_byte_for_byte(tmp_path):
    digests = write_notherapist_trial(tmp_path, NOTHERAPIST_SEED)
    for name, digest in digests.items():
        assert digest == hashlib.sha256((DEMO / name).read_bytes()).hexdigest(), name
    assert "therapist" not in (DEMO / "sessions.csv").read_text().splitlines()[0].split(",")


@pytest.fixture(scope="module")
def notherapist_run(tmp_path_factory):
    """The third demo through the whole workflow (`snakemake` to the report) in a fresh directory."""
    workdir = tmp_path_factory.mktemp("notherapist")
    shutil.copytree(DEMO, workdir / "data/raw/demo_notherapist")
    config = yaml.safe_load((ROOT / "config/demo_notherapist.yaml").read_text())
    result = run_snakemake(workdir, config, "--")
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir / "results/demo_notherapist", workdir / "reports/demo_notherapist"


def _text(path) -> str:
    """A report as a reader sees its text: tags removed, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def _fit(results, name):
    return json.loads((results / "models" / name / "fit.json").read_text())


@pytest.mark.slow
@pytest.mark.e2e
def test_design_without_therapists_runs_to_the_report(notherapist_run):
    results, reports = notherapist_run
    summary = json.loads((results / "clean/summary.json").read_text())
    assert (summary["patients"], summary["therapists"], summary["patients_per_therapist"]) == (120, 0, None)
    assert "therapist" not in pd.read_parquet(results / "clean/analysis.parquet").columns
    # skipped: a therapist level (skip) or terms built from therapist means
    for name in ("variance_alliance", "three_level", "early_alliance"):
        fit = _fit(results, name)
        assert fit["flags"] == ["no_therapist_level"], name
        assert fit["fit"]["not_fitted"].startswith(f"model '{name}' is not fitted: it ")
        assert pd.read_csv(results / "models" / name / "fixed_effects.csv")["estimate"].isna().all()
    # fitted without the therapist level (its own without_therapists: drop_level)
    variance = _fit(results, "variance_outcome")
    assert variance["lme4_formula"] == "symptoms ~ 1 + (1 | patient)"
    assert variance["design_note"].startswith("model 'variance_outcome' is fitted without its therapist level")
    riclpm = _fit(results, "riclpm")
    assert riclpm["sample"]["cluster"] == "none: model-based SEs" and "design_note" in riclpm
    # the rest of the suite, with the known truth
    fixed = pd.read_csv(results / "models/same_session/fixed_effects.csv").set_index("term")
    truth = yaml.safe_load((DEMO / "TRUTH.yaml").read_text())
    estimate, se = fixed.loc["alliance_within_patient", ["estimate", "se"]]
    assert abs(estimate - truth["within_effect_sample_patient_mean"]) < 2.5 * se, (estimate, se)
    effect_sizes = pd.read_csv(results / "effects/effect_sizes.csv")
    assert {"same_session", "lagged_alliance_symptoms", "lagged_symptoms_alliance"} <= set(effect_sizes["model"])
    report = _text(reports / "report.html")
    assert "no therapists recorded: a design without therapists" in report
    assert "Not fitted in this design: model 'variance_alliance' is not fitted" in report
    supplement = _text(reports / "supplement.html")
    assert "Not fitted (flags: no_therapist_level): model 'three_level' is not fitted: it is built from" in supplement
    assert "The dataset records no therapists (a design without therapists)" in supplement
