"""The reviewer analyses refit a model with the structure the singular-fit policy chose (alliance.models.refit).

Leave-one-therapist-out influence (alliance.models.influence) and the sensitivity specifications
(alliance.models.sensitivity) must report the same kind of fit, with the same df rule, as the
fixed-effects table: on data without therapist variance the policy drops the therapist level, and a
therapist-level predictor is then tested on between-therapist df, n_therapists - k - 1
(docs/methods.md section 7.6), in every refit as in the primary fit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from alliance.models.influence import therapist_influence
from alliance.models.refit import primary_fit
from alliance.models.sensitivity import sensitivity_table
from alliance.models.suite import fit_model
from testkit.singular import MODEL, Scenario, simulate

#: 12 therapists x 8 patients without therapist variance; seed 3: the REML therapist variance is 0
SCENARIO = Scenario(n_therapists=12, per_therapist=8)
SEED = 3
#: therapist-level fixed effects of MODEL (z): k in the between-therapist df n - k - 1
K_BETWEEN = 1
#: the ``keep`` tests refit the mixed model once per therapist: fewer therapists
KEEP_SCENARIO = Scenario(n_therapists=6, per_therapist=8)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _with_attendance(data: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``data`` with a dropout flag (1 in 4) and the sessions attended, for the sensitivity table."""
    rng = np.random.default_rng(seed)
    return data.assign(dropout=rng.random(len(data)) < 0.25, n_sessions=rng.integers(4, 17, len(data)))


@pytest.fixture(scope="module")
def patients() -> pd.DataFrame:
    """The simulated patients, with a dropout flag and sessions attended for the sensitivity table."""
    return _with_attendance(simulate(SEED, SCENARIO), SEED)


@pytest.fixture(scope="module")
def primary(patients) -> pd.Series:
    """The fixed-effects table's row of z (the suite, policy simplify)."""
    tables = _quiet(fit_model, MODEL, None, patients, {"singular_fits": "simplify"})
    assert tables["fit"]["singular_fit"]["simplified"]
    return tables["fixed"].set_index("term").loc["z"]


def _ci(est: float, se: float, df: float) -> tuple[float, float]:
    q = scipy.stats.t.ppf(0.975, df)
    return est - q * se, est + q * se


def test_the_primary_fit_is_the_suites_and_chooses_a_linear_model(patients, primary):
    result, counts, structure = _quiet(primary_fit, MODEL, None, patients, None, "simplify")
    assert structure.random == () and structure.levels_dropped == ("therapist",)
    z = result.fixed.set_index("term").loc["z"]
    assert (float(z["estimate"]), float(z["se"]), float(z["df"])) == (
        float(primary["estimate"]),
        float(primary["se"]),
        float(primary["df"]),
    )
    assert float(primary["df"]) == SCENARIO.n_therapists - K_BETWEEN - 1
    assert counts == {"n_obs": 96, "n_patients": 96, "n_therapists": 12}


def test_leave_one_therapist_out_uses_the_simplified_fit_and_between_therapist_df(patients, primary):
    table = _quiet(therapist_influence, MODEL, None, patients, None, "simplify")
    z = table[table["term"] == "z"].set_index("therapist")
    assert len(z) == SCENARIO.n_therapists
    assert (z["df_all"] == float(primary["df"])).all()
    assert (z["estimate_all"] == float(primary["estimate"])).all()
    assert (z["df_without"] == SCENARIO.n_therapists - 1 - K_BETWEEN - 1).all()  # 9: one therapist fewer
    assert set(z["flags"]) == {primary["flags"]} == {"simplified"}
    # the fit without T004 is the least-squares fit of y on x and z on the other therapists' patients
    rest = patients[patients["therapist"] != "T004"]
    X = np.column_stack([np.ones(len(rest)), rest["x"], rest["z"]])
    beta, *_ = np.linalg.lstsq(X, rest["y"].to_numpy(), rcond=None)
    assert z.loc["T004", "estimate_without"] == pytest.approx(beta[2], rel=1e-10)
    assert z.loc["T004", "change"] == pytest.approx(float(primary["estimate"]) - beta[2], rel=1e-10)


def test_every_sensitivity_specification_uses_the_simplified_fit_and_between_therapist_df(patients, primary):
    table = _quiet(sensitivity_table, MODEL, None, patients, 2.0, None, "simplify")
    z = table[table["term"] == "z"].set_index("specification")
    assert z.index.tolist() == ["as_specified", "completers", "sessions_attended", "winsorised"]
    assert z.loc["as_specified", "estimate"] == float(primary["estimate"])
    assert (z["n_therapists"] == SCENARIO.n_therapists).all()
    assert (z["df"] == SCENARIO.n_therapists - K_BETWEEN - 1).all()  # sessions attended varies within therapists
    assert set(z["flags"]) == {"simplified"}
    row = z.loc["completers"]
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(_ci(row["estimate"], row["se"], 10.0), rel=1e-12)


@pytest.fixture(scope="module")
def few_therapists() -> pd.DataFrame:
    """6 therapists x 8 patients without therapist variance (seed 1: singular), for the ``keep`` tests."""
    return _with_attendance(simulate(1, KEEP_SCENARIO), 1)


def test_with_keep_leave_one_therapist_out_stays_as_specified(few_therapists):
    table = _quiet(therapist_influence, MODEL, None, few_therapists, None, "keep")
    z = table[table["term"] == "z"]
    # the singular fit's row-level df, n_obs - 3 fixed effects, with and without each therapist's 8 patients
    assert z["df_all"].to_numpy() == pytest.approx(np.full(6, 48.0 - 3), rel=1e-6)
    assert z["df_without"].to_numpy() == pytest.approx(np.full(6, 40.0 - 3), rel=1e-6)
    assert set(z["flags"]) == {"boundary"}


def test_with_keep_the_sensitivity_specifications_stay_as_specified(few_therapists):
    kept = _quiet(fit_model, MODEL, None, few_therapists, {"singular_fits": "keep"})["fixed"].set_index("term").loc["z"]
    table = _quiet(sensitivity_table, MODEL, None, few_therapists, 2.0, None, "keep")
    z = table[table["term"] == "z"].set_index("specification")
    assert (z.loc["as_specified", "df"], z.loc["as_specified", "flags"]) == (float(kept["df"]), kept["flags"])
    assert z.loc["as_specified", "df"] == pytest.approx(45.0, rel=1e-6)
    assert not z["flags"].str.contains("simplified").any()
    assert (z["df"] > 2 * (KEEP_SCENARIO.n_therapists - K_BETWEEN - 1)).all()
