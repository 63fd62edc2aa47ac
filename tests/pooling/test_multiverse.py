"""One specification across studies (alliance.pooling.multiverse.specification_table) and the summary."""

import numpy as np
import pandas as pd
import pytest

from alliance.intake.derive import session_variables
from alliance.pooling.meta import random_effects
from alliance.pooling.multiverse import specification_table, summarise
from alliance.pooling.specifications import NOT_APPLICABLE


def study(seed: int, slope: float, n: int = 60, sessions: int = 6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sessions with a known same-session within-patient slope, and every third patient a dropout."""
    rng = np.random.default_rng(seed)
    s = pd.DataFrame(
        {
            "patient": np.repeat([f"p{i}" for i in range(n)], sessions),
            "therapist": np.repeat([f"t{i % 10}" for i in range(n)], sessions),
            "session": np.tile(np.arange(1, sessions + 1), n),
        }
    )
    s["alliance"] = rng.normal(size=len(s))
    s["symptoms"] = np.repeat(rng.normal(50, 10, n), sessions) + slope * s["alliance"] + rng.normal(0, 2, len(s))
    s["dropout"] = s["patient"].str[1:].astype(int) % 3 == 0
    return session_variables(s), s.drop_duplicates("patient")[["patient", "dropout"]]


STUDIES = {"a": study(1, -3.0), "b": study(2, -2.0), "c": study(3, -4.0)}


def test_a_specification_is_fitted_in_every_study_and_pooled():
    table = specification_table(
        {"model": "same_session", "sample": "completers"}, STUDIES, waves=6, winsor_sd=2.0, engine=None, level=0.95
    )
    studies = table[table["study"] != "pooled"]
    assert list(studies["study"]) == ["a", "b", "c"] and (studies["n_patients"] == 40).all()  # completers only
    pooled = table[table["study"] == "pooled"].iloc[0]
    assert pooled["estimate"] == pytest.approx(random_effects(studies["estimate"], studies["se"]).estimate, rel=1e-12)
    assert pooled["specification"] == "same_session-raw-without-keep-completers"
    assert pooled["sample"] == "completers" and pooled["early_change"] == NOT_APPLICABLE
    assert "completers only" in pooled["known_bias"]


def test_a_study_the_model_cannot_be_fitted_in_is_named_and_left_out():
    broken = dict(STUDIES)
    broken["b"] = (STUDIES["b"][0].drop(columns=["symptoms_next"]), STUDIES["b"][1])
    table = specification_table({"model": "lagged"}, broken, waves=6, winsor_sd=2.0, engine=None, level=0.95)
    row_b = table[table["study"] == "b"].iloc[0]
    assert np.isnan(row_b["estimate"]) and row_b["flags"].startswith("fit_failed: ")
    pooled = table[table["study"] == "pooled"].iloc[0]
    assert pooled["k"] == 2 and "studies_not_fitted" in pooled["flags"]


def test_the_summary_names_the_choice_that_moves_the_estimate_most():
    rows = pd.DataFrame(
        {
            "study": "pooled",
            "specification": list("abcdef"),
            "estimate": [-3.0, -2.8, -0.1, 0.05, -2.9, -3.1],
            "ci_low": [-4.0, -3.5, -0.4, -0.2, -3.9, -4.0],
            "ci_high": [-2.0, -2.1, 0.2, 0.3, -1.9, -2.2],
            "known_bias": ["", "", "x", "x", "", ""],
            "model": ["same_session", "same_session", "lagged", "lagged", "riclpm", "riclpm"],
            "outliers": ["keep", "winsorise", "keep", "winsorise", "keep", "winsorise"],
        }
    )
    out = summarise(rows, ["model", "outliers"])
    summary = out["summary"].set_index("statistic")
    assert summary.loc["share_ci_excludes_zero", "value"] == pytest.approx(4 / 6)
    assert summary.loc["share_ci_excludes_zero_without_known_bias", "value"] == 1.0
    assert summary.loc["choice_moving_most", "text"].startswith("model (median -3 under riclpm")
    choices = out["choices"].set_index(["dimension", "option"])
    assert choices.loc[("model", "lagged"), "median_estimate"] == pytest.approx(-0.025)
    assert choices.loc[("outliers", "keep"), "specifications"] == 3


def test_a_study_without_therapists_is_fitted_without_the_therapist_level_and_flagged():
    from alliance.intake.patient_level import patient_variables
    from alliance.pooling.study_fits import fit_specification

    sessions, patients = STUDIES["a"]
    sessions = sessions.drop(columns=[c for c in sessions.columns if "therapist" in c])
    per_patient = patient_variables(sessions.assign(symptoms_raw=sessions["symptoms"])).reset_index()
    per_patient = per_patient.merge(patients, on="patient")
    for model in ("riclpm", "early_alliance", "same_session"):
        rows = fit_specification({"model": model, "therapist_level": "with"}, sessions, per_patient, study="a", waves=6)
        assert rows["flags"].str.contains("no_therapist_level").all(), model
        assert rows["estimate"].notna().all() and (rows["n_therapists"] == 0).all(), model
        assert rows["specification"].str.contains("-with-").all()  # the specification asked for, flagged
