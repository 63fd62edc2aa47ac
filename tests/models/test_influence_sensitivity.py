"""Leave-one-therapist-out influence (alliance.models.influence) and the sensitivity refits
(alliance.models.sensitivity), each against a direct lmer fit (the mixedlm package, outside the
pipeline's engine code) on the data a reader would build by hand."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest
from mixedlm import lmer

from alliance.models import influence, refit, sensitivity

PATIENT_MODEL = {
    "name": "eot",
    "data": "patients",
    "outcome": "y",
    "fixed": ["alliance_s3"],
    "random": [{"group": "therapist"}],
    "roles": {"alliance_s3": "patient_level"},
}


@pytest.mark.parametrize("module", [influence, refit, sensitivity])
def test_worked_examples_in_docstrings(module):
    failures, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried > 0 and failures == 0


def _patients(seed=11, n_therapists=12, per=15, planted="T05"):
    """Patients of 12 therapists, slope -4 of y on alliance, one therapist's patients with slope -14,
    dropout more likely with low alliance, sessions attended fewer with dropout."""
    rng = np.random.default_rng(seed)
    therapist = np.repeat([f"T{i:02d}" for i in range(n_therapists)], per)
    n = len(therapist)
    alliance = rng.normal(4.0, 0.6, n)
    slope = np.where(therapist == planted, -14.0, -4.0)
    y = 50 + slope * (alliance - 4) + np.repeat(rng.normal(0, 2, n_therapists), per) + rng.normal(0, 3, n)
    dropout = rng.random(n) < 1 / (1 + np.exp(3 * (alliance - 3.6)))
    sessions = np.where(dropout, rng.integers(2, 9, n), 16)
    return pd.DataFrame(
        {
            "patient": [f"P{i:03d}" for i in range(n)],
            "therapist": therapist,
            "alliance_s3": alliance,
            "y": y,
            "dropout": dropout,
            "n_sessions": sessions,
        }
    )


def _direct(formula: str, data: pd.DataFrame, term: str) -> tuple[float, float]:
    res = lmer(formula, data.reset_index(drop=True), REML=True)
    names = list(res.matrices.fixed_names)
    k = names.index(term)
    return float(np.asarray(res.beta)[k]), float(np.sqrt(np.asarray(res.vcov())[k, k]))


def test_leave_one_therapist_out_equals_the_fit_without_that_therapist():
    pts = _patients()
    table = influence.therapist_influence(PATIENT_MODEL, None, pts)
    assert len(table) == 12 and table["therapist"].tolist() == sorted(pts["therapist"].unique())
    full, full_se = _direct("y ~ alliance_s3 + (1 | therapist)", pts, "alliance_s3")
    np.testing.assert_allclose(table["estimate_all"], full, rtol=1e-6)
    for therapist in ("T00", "T05", "T11"):
        row = table[table["therapist"] == therapist].iloc[0]
        est, se = _direct("y ~ alliance_s3 + (1 | therapist)", pts[pts["therapist"] != therapist], "alliance_s3")
        assert row["estimate_without"] == pytest.approx(est, rel=1e-6)
        assert row["se_without"] == pytest.approx(se, rel=1e-5)
        assert row["dfbetas"] == pytest.approx((full - est) / se, rel=1e-5)
        assert row["n_patients_dropped"] == 15 and row["n_obs"] == 165
    # the planted therapist steepens the slope: without it the slope is flatter (change < 0),
    # and it stands out: |DFBETAS| beyond the cut-off 2 / sqrt(12) and 4 x that of any other therapist
    worst = table.loc[table["dfbetas"].abs().idxmax()]
    assert worst["therapist"] == "T05" and worst["change"] < 0 and worst["influential"] == "yes"
    others = table.loc[table["therapist"] != "T05", "dfbetas"].abs()
    assert abs(worst["dfbetas"]) > 4 * others.max()
    assert table["cutoff"].unique().tolist() == [pytest.approx(2 / np.sqrt(12))]


def test_leave_one_therapist_out_is_deterministic_and_session_level():
    rng = np.random.default_rng(5)
    rows = []
    for t in range(6):
        for p in range(5):
            base = rng.normal(0, 3)
            for s in range(4):
                x = rng.normal()
                rows.append((f"T{t}", f"P{t}{p}", s, x, base - 2 * x + rng.normal()))
    sessions = pd.DataFrame(rows, columns=["therapist", "patient", "session", "alliance_within_patient", "symptoms"])
    model = {
        "name": "s",
        "outcome": "symptoms",
        "fixed": ["alliance_within_patient"],
        "random": [{"group": "patient"}],
        "roles": {"alliance_within_patient": "within_patient"},
    }
    first = influence.therapist_influence(model, sessions, None)
    second = influence.therapist_influence(model, sessions, None)
    pd.testing.assert_frame_equal(first, second)
    assert first["n_obs"].tolist() == [100] * 6 and first["n_patients_dropped"].tolist() == [5] * 6
    est, _ = _direct(
        "symptoms ~ alliance_within_patient + (1 | patient)",
        sessions[sessions["therapist"] != "T3"],
        "alliance_within_patient",
    )
    assert first.loc[3, "estimate_without"] == pytest.approx(est, rel=1e-6)


def test_influence_needs_a_therapist_column():
    with pytest.raises(ValueError, match="model 'eot': leave-one-therapist-out needs a therapist column"):
        influence.therapist_influence(PATIENT_MODEL, None, _patients().drop(columns="therapist"))


def test_sensitivity_specifications_equal_direct_fits():
    pts = _patients(planted="none")
    pts.loc[[3, 40, 77], "alliance_s3"] = [0.9, 1.2, 1.0]  # three extreme low ratings
    table = sensitivity.sensitivity_table(PATIENT_MODEL, None, pts, 2.0).set_index("specification")
    assert table.index.tolist() == ["as_specified", "completers", "sessions_attended", "winsorised"]
    f = "y ~ alliance_s3 + (1 | therapist)"
    main, _ = _direct(f, pts, "alliance_s3")
    completers = pts[~pts["dropout"]]
    comp, _ = _direct(f, completers, "alliance_s3")
    adjusted, _ = _direct("y ~ alliance_s3 + n_sessions + (1 | therapist)", pts, "alliance_s3")
    assert table.loc["as_specified", "estimate"] == pytest.approx(main, rel=1e-6)
    assert table.loc["completers", "estimate"] == pytest.approx(comp, rel=1e-6)
    assert table.loc["completers", "n_patients"] == len(completers) < len(pts)
    assert table.loc["sessions_attended", "estimate"] == pytest.approx(adjusted, rel=1e-6)
    x = pts["alliance_s3"].to_numpy()
    floor = x.mean() - 2 * x.std(ddof=1)
    clipped = pts.assign(alliance_s3=np.maximum(x, floor))
    wins, _ = _direct(f, clipped, "alliance_s3")
    assert table.loc["winsorised", "estimate"] == pytest.approx(wins, rel=1e-6)
    n_out = int((x < floor).sum())
    assert table.loc["winsorised", "n_values_winsorised"] == n_out and 3 <= n_out <= 8
    assert (
        table.loc["winsorised", "label"] == "Low-alliance outliers winsorised at the mean - 2 SD (Goldberg et al. 2023)"
    )
    assert table.loc["completers", "change_estimate"] == pytest.approx(comp - main, rel=1e-6)
    assert table.loc["as_specified", "change_r"] == 0


def test_winsorising_far_below_the_data_changes_nothing():
    pts = _patients()
    table = sensitivity.sensitivity_table(PATIENT_MODEL, None, pts, 50.0).set_index("specification")
    assert table.loc["winsorised", "n_values_winsorised"] == 0
    assert table.loc["winsorised", "change_estimate"] == 0


def test_winsorised_sessions_recompute_the_person_means():
    rng = np.random.default_rng(2)
    data = pd.DataFrame(
        {
            "patient": np.repeat([f"P{i}" for i in range(20)], 5),
            "therapist": np.repeat([f"T{i}" for i in range(4)], 25),
            "alliance": rng.normal(4, 0.5, 100),
        }
    )
    data.loc[[0, 7], "alliance"] = [0.5, 0.8]  # two extreme low ratings
    data["alliance_within_patient"] = 0.0
    data["alliance_between_patient"] = 0.0
    out, changed = sensitivity.winsorise_sessions(data, 2.0)
    low = data["alliance"].mean() - 2 * data["alliance"].std()
    assert changed == 2 and out["alliance"].min() == pytest.approx(low)
    assert out.loc[[0, 7], "alliance"].tolist() == [pytest.approx(low)] * 2
    pm = out.groupby("patient")["alliance"].transform("mean")
    np.testing.assert_allclose(out["alliance_within_patient"], out["alliance"] - pm, atol=1e-12)
    grand = out.groupby("patient")["alliance"].mean().mean()
    np.testing.assert_allclose(out["alliance_between_patient"], pm - grand, atol=1e-12)
    assert "alliance_patient_within_therapist" not in out  # only the parts the table had
