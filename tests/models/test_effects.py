"""Effect sizes (alliance.models.effects): each statistic against an independent computation."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pandas as pd
import pingouin
import pytest
import scipy.stats

from alliance.models import config as model_config
from alliance.models import data as model_data
from alliance.models import effects as fx
from alliance.models import moderation, specs


@pytest.mark.parametrize("module", [fx, model_data, model_config, moderation, specs])
def test_worked_examples_in_docstrings(module):
    failures, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried > 0 and failures == 0


def _panel(seed=3, n_subjects=40, n_rows=6):
    """Subjects with their own means and SDs of x and y, and a within-subject slope of 0.5."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_subjects):
        mx, my, sx = rng.normal(0, 2), rng.normal(10, 3), rng.uniform(0.5, 2.0)
        x = mx + sx * rng.normal(size=n_rows)
        y = my + 0.5 * (x - mx) + rng.normal(0, 1, n_rows)
        rows += [(f"s{i:02d}", a, b) for a, b in zip(x, y)]
    return pd.DataFrame(rows, columns=["id", "x", "y"])


def test_rm_corr_equals_pingouin():
    for data, x, y, subject in [
        (pingouin.read_dataset("rm_corr"), "pH", "PacO2", "Subject"),
        (_panel(), "x", "y", "id"),
    ]:
        ours = fx.rm_corr(data, x, y, subject).iloc[0]
        ref = pingouin.rm_corr(data, x, y, subject).iloc[0]
        assert ours["r"] == pytest.approx(ref["r"], abs=1e-12)
        assert ours["df"] == ref["dof"]
        assert ours["p"] == pytest.approx(ref["pval"], rel=1e-9)
        # pingouin rounds its CI to 2 decimals
        assert ours["ci_low"] == pytest.approx(ref["CI95"][0], abs=0.005)
        assert ours["ci_high"] == pytest.approx(ref["CI95"][1], abs=0.005)


def test_rm_corr_is_the_correlation_of_centred_variables_and_ignores_missing_rows():
    d = _panel()
    d.loc[[3, 17], "y"] = np.nan
    ok = d.dropna()
    xc = ok["x"] - ok.groupby("id")["x"].transform("mean")
    yc = ok["y"] - ok.groupby("id")["y"].transform("mean")
    res = fx.rm_corr(d, "x", "y", "id").iloc[0]
    assert res["r"] == pytest.approx(np.corrcoef(xc, yc)[0, 1], abs=1e-12)
    assert res["n_obs"] == len(ok) and res["df"] == len(ok) - 40 - 1


def test_person_mean_r_is_pearson_of_means():
    d = _panel()
    means = d.groupby("id")[["x", "y"]].mean()
    r, p = scipy.stats.pearsonr(means["x"], means["y"])
    res = fx.person_mean_r(d, "x", "y", "id").iloc[0]
    assert res["r"] == pytest.approx(r, abs=1e-12) and res["p"] == pytest.approx(p, rel=1e-9)
    z, half = math.atanh(r), 1.959963984540054 / math.sqrt(40 - 3)
    assert res["ci_low"] == pytest.approx(math.tanh(z - half)) and res["ci_high"] == pytest.approx(math.tanh(z + half))


def test_r_from_t_and_its_interval():
    res = fx.r_from_t(-8.0, 0.3, 6400).iloc[0]
    t = -8.0 / 0.3
    assert res["r"] == pytest.approx(t / math.sqrt(t * t + 6400))
    # the r interval is the coefficient's Wald interval mapped through r(t)
    lo_t, hi_t = t - 1.959963984540054, t + 1.959963984540054
    assert res["r_ci_low"] == pytest.approx(lo_t / math.sqrt(lo_t**2 + 6400))
    assert res["r_ci_high"] == pytest.approx(hi_t / math.sqrt(hi_t**2 + 6400))
    # back-transform: t = r sqrt(df / (1 - r^2))
    assert res["r"] * math.sqrt(6400 / (1 - res["r"] ** 2)) == pytest.approx(t)
    # an interval that contains 0 for the coefficient contains 0 for r
    wide = fx.r_from_t(0.5, 0.4, 50).iloc[0]
    assert wide["r_ci_low"] < 0 < wide["r_ci_high"]


def test_d_from_r_reproduces_the_benchmark_conversion():
    # Flückiger et al. 2018: r = .278 <-> d = .579
    assert fx.d_from_r(0.278)["d"].iloc[0] == pytest.approx(0.579, abs=5e-4)
    assert fx.d_from_r(np.array([-0.3, 0.0]))["d"].tolist() == pytest.approx([-0.6289709, 0.0])


def test_role_df():
    assert fx.role_df("within_patient", 1000, 100, 10) == 899
    assert fx.role_df("between_patient", 1000, 100, 10) == 98
    assert fx.role_df("patient_level", 1000, 100, 10) == 98
    assert fx.role_df("between_therapist", 1000, 100, 10) == 8
    with pytest.raises(ValueError):
        fx.role_df("sideways", 1, 1, 1)


def test_within_person_standardisation_is_one_for_a_perfect_within_relation():
    # y = 2 x + person intercept, persons with very different SDs of x: each person's standardised
    # slope is 1, so is the within-person standardised coefficient; global SDs would not give 1
    rng = np.random.default_rng(1)
    rows = []
    for i in range(30):
        x = rng.normal(0, rng.uniform(0.2, 3.0), 5) + rng.normal(0, 5)
        rows += [(i, a, 2 * a + rng.normal(0, 10)) for a in x]
    d = pd.DataFrame(rows, columns=["id", "x", "y"])
    d["y"] = 2 * d["x"] + d.groupby("id")["y"].transform("first")
    res = fx.standardised_beta_within(d, "x", "y", 2.0, "id").iloc[0]
    assert res["beta_std"] == pytest.approx(1.0, abs=1e-12)
    pooled = fx.standardised_beta_within(d, "x", "y", 2.0, "id", method="pooled").iloc[0]
    assert pooled["beta_std"] == pytest.approx(1.0, abs=1e-12)
    global_std = 2.0 * d["x"].std() / d["y"].std()
    assert abs(global_std - 1.0) > 0.05


def test_between_standardisation_uses_sd_of_unit_means():
    d = _panel()
    means = d.groupby("id")[["x", "y"]].mean()
    res = fx.standardised_beta_between(d, "x", "y", 0.7, "id").iloc[0]
    assert res["beta_std"] == pytest.approx(0.7 * means["x"].std() / means["y"].std())


def test_r2_with_a_random_slope_follows_johnson():
    # two patients, intercept variance 4, slope variance 1, covariance 1, residual 2
    vc = pd.DataFrame(
        {
            "group": ["patient", "patient", "patient", "Residual"],
            "term": ["Intercept", "x", "Intercept:x", "Residual"],
            "variance": [4.0, 1.0, 1.0, 2.0],
        }
    )
    data = pd.DataFrame({"x": [-1.0, 0.0, 1.0, 2.0]})
    fixed = np.array([1.0, 2.0, 3.0, 4.0])
    res = fx.r2_nakagawa(fixed, vc, data).iloc[0]
    var_f = np.var(fixed, ddof=1)
    var_l = np.mean([4 + 2 * 1 * x + 1 * x * x for x in data["x"]])  # z' Sigma z, z = (1, x)
    total = var_f + var_l + 2.0
    assert res["r2_marginal"] == pytest.approx(var_f / total)
    assert res["r2_conditional"] == pytest.approx((var_f + var_l) / total)


def test_icc_and_reliability_of_means():
    vc = pd.DataFrame(
        {
            "group": ["therapist", "therapist:patient", "therapist:patient", "Residual"],
            "term": ["Intercept", "Intercept", "x", "Residual"],
            "variance": [2.0, 6.0, 0.5, 12.0],
        }
    )
    icc = fx.icc(vc).set_index("group")
    assert icc.loc["therapist", "icc"] == pytest.approx(0.1)
    assert icc.loc["therapist:patient", "icc"] == pytest.approx(0.3)
    assert icc.loc["therapist:patient", "icc_cumulative"] == pytest.approx(0.4)
    # therapist t1: 2 patients with 3 and 6 sessions; t2: 1 patient with 4 sessions
    data = pd.DataFrame({"therapist": ["t1"] * 9 + ["t2"] * 4, "patient": ["a"] * 3 + ["b"] * 6 + ["c"] * 4})
    rel = fx.mean_reliability(vc, data).set_index("level")
    lam_p = [6 / (6 + 12 / n) for n in (3, 6, 4)]
    assert rel.loc["patient", "mean"] == pytest.approx(np.mean(lam_p))
    lam_t = [2 / (2 + 6 / 2 + 12 / 9), 2 / (2 + 6 / 1 + 12 / 4)]
    assert rel.loc["therapist", "min"] == pytest.approx(min(lam_t))
    assert rel.loc["therapist", "max"] == pytest.approx(max(lam_t))
