"""Stage two (alliance.pooling.two_stage) and the truth table (alliance.pooling.truth) on known rows."""

import math

import numpy as np
import pandas as pd
import pytest

from alliance.pooling.meta import random_effects
from alliance.pooling.truth import truth_table
from alliance.pooling.two_stage import effect_units, pool_all, pool_effect

STUDIES = ["a", "b", "c", "d", "e"]
ESTIMATES = [-3.1, -2.2, -4.0, -2.9, -3.6]
SES = [0.4, 0.5, 0.6, 0.3, 0.45]


def stage_one(effect: str = "same_session", flags: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "study": STUDIES,
            "effect": effect,
            "estimate": ESTIMATES,
            "se": SES,
            "ci_low": np.array(ESTIMATES) - 1.96 * np.array(SES),
            "ci_high": np.array(ESTIMATES) + 1.96 * np.array(SES),
            "n_patients": 100,
            "flags": flags or ["none"] * 5,
        }
    )


def test_the_pooled_row_is_the_random_effects_fit_of_the_study_rows():
    pooled, studies = pool_effect(stage_one(), effect="same_session", outcome_scale="pomp", level=0.95)
    fit = random_effects(ESTIMATES, SES)
    for key in ("estimate", "se", "ci_low", "ci_high", "tau2", "i2", "q", "pi_low", "pi_high"):
        assert pooled[key] == pytest.approx(getattr(fit, key), rel=1e-12)
    np.testing.assert_allclose(studies["weight"], fit.weights)
    assert studies["weight"].sum() == pytest.approx(100)
    assert pooled["flags"] == "none" and pooled["known_bias"] == "" and pooled["ci_method"] == "knapp_hartung"


def test_a_study_without_an_estimate_is_left_out_and_named_and_flags_are_passed_on():
    rows = stage_one(effect="lagged_alliance_symptoms", flags=["none", "boundary;simplified", "none", "none", "none"])
    rows.loc[4, ["estimate", "se"]] = math.nan
    pooled, _ = pool_effect(rows, effect="lagged_alliance_symptoms", outcome_scale="pomp", level=0.95)
    assert pooled["k"] == 4
    assert pooled["flags"].split(";")[-2:] == ["studies_not_fitted", "studies_flagged"]
    assert pooled["study_flags"] == "not fitted: e; boundary + simplified: b"
    assert "Nickell" in pooled["known_bias"]
    assert pooled["estimate"] == pytest.approx(random_effects(ESTIMATES[:4], SES[:4]).estimate)


def test_homogeneous_studies_are_flagged_at_the_boundary():
    rows = stage_one()
    rows["estimate"] = -3.0 + np.array([0.01, -0.01, 0.0, 0.005, -0.005])
    pooled, _ = pool_effect(rows, effect="same_session", outcome_scale="pomp", level=0.95)
    assert pooled["tau2"] == 0 and pooled["flags"] == "tau2_boundary"


def test_pool_all_makes_leave_one_out_and_one_meta_regression_per_moderator():
    moderators = {s: {"year": 2010 + i, "setting": "clinic" if i % 2 else "outpatient"} for i, s in enumerate(STUDIES)}
    tables = pool_all(stage_one(), effects=["same_session"], moderators=moderators, outcome_scale="pomp")
    loo = tables["leave_one_out"]
    assert loo["label"].tolist() == STUDIES
    assert loo.loc[0, "estimate"] == pytest.approx(random_effects(ESTIMATES[1:], SES[1:]).estimate)
    reg = tables["meta_regression"]
    assert sorted(set(reg["moderator"])) == ["setting", "year"]
    assert reg[reg["moderator"] == "setting"]["term"].tolist() == ["Intercept", "setting[T.outpatient]"]


def test_units_name_the_direction():
    assert effect_units("lagged_symptoms_alliance", "pomp") == "within-study SDs of the alliance per POMP point"
    assert effect_units("early_alliance", "pomp").endswith("per within-study SD of the alliance")


def test_the_truth_table_scores_coverage_and_leaves_a_no_single_parameter_effect_unscored(tmp_path):
    path = tmp_path / "TRUTH.yaml"
    path.write_text(
        "effects:\n"
        "  same_session:\n    units: u\n    definition: d\n    pooled: {mean: -3.2, between_study_sd: 0.5}\n"
        "    by_study: {a: {value: -3.0, at_sample_sd: -3.05}, b: {value: -1.0}}\n"
        "  early_alliance:\n    targets: 'no single parameter: mixes things'\n"
    )
    tables = pool_all(
        pd.concat([stage_one(), stage_one("early_alliance")]),
        effects=["same_session", "early_alliance"],
        moderators={},
        outcome_scale="pomp",
    )
    table = truth_table(path, tables["pooled"], tables["study_estimates"])
    pooled = table[table["level"] == "pooled"].set_index("effect")
    assert bool(pooled.loc["same_session", "covered"]) is True
    assert pooled.loc["same_session", "between_study_sd_truth"] == 0.5
    assert pd.isna(pooled.loc["early_alliance", "covered"]) and math.isnan(pooled.loc["early_alliance", "truth"])
    studies = table[(table["level"] == "study") & (table["effect"] == "same_session")].set_index("study")
    assert studies.loc["a", "truth"] == -3.05 and bool(studies.loc["b", "covered"]) is False
    assert truth_table(None, tables["pooled"], tables["study_estimates"]).empty
