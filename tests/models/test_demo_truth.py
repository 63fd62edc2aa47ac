"""On the bundled demo data, the pipeline's estimates match the simulator's truth."""

from __future__ import annotations


import pytest
import yaml

from alliance.models.suite import fit_configured_model
from testkit import ROOT, clean_demo, demo_config

TRUTH = yaml.safe_load((ROOT / "data/raw/demo/TRUTH.yaml").read_text())


@pytest.fixture(scope="module")
def demo_clean():
    config = demo_config()
    return config, clean_demo(config)


#: the pipeline's default engine (the demo config's run.engine) and the reference Python engine
ENGINES = [demo_config()["run"]["engine"], "statsmodels"]


@pytest.fixture(scope="module", params=ENGINES)
def same_session(demo_clean, request):
    config, clean = demo_clean
    model = next(m for m in config["models"] if m["name"] == "same_session")
    return fit_configured_model(model, clean.sessions, engine=request.param)


def test_within_patient_effect_within_two_standard_errors_of_truth(same_session):
    fixed = same_session["fixed"].set_index("term")
    estimate, se = fixed.loc["alliance_within_patient", ["estimate", "se"]]
    truth = TRUTH["within_effect_sample_patient_mean"]
    assert abs(estimate - truth) < 2 * se, (estimate, se, truth)
    # and the SE is of the size the design implies (not inflated to make the test pass)
    assert 0.15 < se < 0.5


def test_session_slope_and_residual_match_truth(same_session):
    fixed = same_session["fixed"].set_index("term")
    slope, se = fixed.loc["session_c", ["estimate", "se"]]
    assert abs(slope - TRUTH["design"]["outcome_session_slope"]) < 2 * se
    variance = same_session["variance"].set_index("term")
    residual_sd = variance.loc["Residual", "sd"]
    # residual = generated noise plus rounding of POMP to whole item totals (about +-2 POMP)
    assert TRUTH["design"]["outcome_residual_sd"] < residual_sd < TRUTH["design"]["outcome_residual_sd"] + 0.6
    slope_sd = variance.loc["alliance_within_patient", "sd"]
    # the random within slope mixes the simulated slope SD with the spread of therapy-specific slopes
    assert TRUTH["design"]["within_slope_sd"] - 0.6 < slope_sd < TRUTH["design"]["within_slope_sd"] + 1.2


def test_the_mess_is_repaired_as_the_config_says(demo_clean):
    _, clean = demo_clean
    findings = clean.findings
    by_value = {(r.column, str(r.value)): r.action for r in findings.itertuples()}
    assert by_value[("wai_05", "6")] == "set to missing"
    assert by_value[("wai_09", "0")] == "set to missing"
    assert by_value[("phq9_04", "4")] == "set to missing"
    assert by_value[("gad7_03", "refused")] == "set to missing"
    assert by_value[("session", "Post-Rx")] == "row excluded"
    assert clean.summary["rows"] == TRUTH["sample"]["session_rows"]
    assert clean.summary["patients"] == 600 and clean.summary["therapists"] == 60
