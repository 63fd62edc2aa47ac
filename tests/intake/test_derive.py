"""Centring and lags, on hand-computed examples."""

import numpy as np
import pandas as pd
import pytest

from alliance.intake import derive


@pytest.fixture
def sessions():
    # patient a (therapist t1): sessions 1, 2, 4 (3 missed); b (t1): 1, 2; c (t2): 1, 2
    return pd.DataFrame(
        {
            "patient": ["a", "a", "a", "b", "b", "c", "c"],
            "therapist": ["t1", "t1", "t1", "t1", "t1", "t2", "t2"],
            "session": [1, 2, 4, 1, 2, 1, 2],
            "wai": [3.0, 4.0, 5.0, 2.0, np.nan, 4.0, 5.0],
        }
    )


def test_decomposition_by_hand(sessions):
    out = derive.decompose_within_between(sessions, "wai")
    # patient means: a 4, b 2 (one rated session), c 4.5; grand mean of patient means 3.5
    assert out["wai_patient_mean"].tolist()[:4] == [4.0, 4.0, 4.0, 2.0]
    assert out["wai_within_patient"].tolist()[:3] == [-1.0, 0.0, 1.0]
    assert np.isnan(out["wai_within_patient"].iloc[4])
    assert out["wai_between_patient"].iloc[0] == pytest.approx(0.5)
    # therapist t1: mean of patient means (4 + 2) / 2 = 3, each patient weight 1
    assert out["wai_therapist_mean"].iloc[0] == pytest.approx(3.0)
    assert out["wai_patient_within_therapist"].iloc[0] == pytest.approx(1.0)
    assert out["wai_between_therapist"].iloc[0] == pytest.approx(-0.5)
    assert out["wai_between_therapist"].iloc[5] == pytest.approx(1.0)
    assert out["wai_n_sessions"].tolist() == [3, 3, 3, 1, 1, 2, 2]


def test_leads_use_session_numbers_not_row_order(sessions):
    shuffled = sessions.sample(frac=1.0, random_state=3)
    lead = derive.next_session_values(shuffled, ["wai"]).loc[sessions.index]
    # a: session 2 -> session 3 missed, so no lead (not session 4's 5.0)
    assert lead["wai_next"].iloc[0] == 4.0
    assert np.isnan(lead["wai_next"].iloc[1])
    assert np.isnan(lead["wai_next"].iloc[2])
    lag = derive.previous_session_values(sessions, ["wai"])
    assert np.isnan(lag["wai_prev"].iloc[2])  # session 4's previous (3) missed
    assert lag["wai_prev"].iloc[6] == 4.0


def test_patient_summaries(sessions):
    ends = derive.first_and_last_observed(sessions, "wai")
    assert ends.loc["a"].tolist() == [3.0, 1, 5.0, 4, 2.0]
    assert ends.loc["b", "wai_last_session"] == 1  # session 2's value is missing
    at_two = derive.value_at_session(sessions, "wai", 2)
    assert at_two.loc["a"] == 4.0 and at_two.loc["c"] == 5.0 and np.isnan(at_two.loc["b"])
    assert derive.mean_over_sessions(sessions, "wai", 1, 4).loc["a"] == pytest.approx(4.0)


def test_person_mean_reliability():
    lam = derive.person_mean_reliability(pd.Series([1, 4]), between_variance=1.0, within_variance=4.0)
    assert lam.tolist() == pytest.approx([0.2, 0.5])


def test_variance_split_recovers_balanced_anova():
    rng = np.random.default_rng(1)
    patients = np.repeat(np.arange(400), 10)
    values = rng.normal(0, 1.0, 400)[patients] + rng.normal(0, 2.0, 4000)
    tau2, sigma2 = derive.variance_split_anova(pd.DataFrame({"patient": patients, "v": values}), "v")
    assert tau2 == pytest.approx(1.0, abs=0.2)
    assert sigma2 == pytest.approx(4.0, abs=0.25)
