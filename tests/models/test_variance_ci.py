"""CIs of variance components and ICCs (alliance.models.variance_ci): the simulation, the table, and
the bootstrap against lme4's bootMer (tests/r/variance_ci_boot.R) and against a known truth.

Committed lme4 reference: tests/reference/variance_ci_boot_three_level.csv, made by
``Rscript tests/r/variance_ci_boot.R tests/data/three_level.csv 300 20261201 <out.csv>``.
"""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pandas as pd
import pytest

from alliance.models import variance_ci as vci
from testkit import ROOT

DATA = ROOT / "tests/data/three_level.csv"
R_REFERENCE = ROOT / "tests/reference/variance_ci_boot_three_level.csv"
R_SCRIPT = ROOT / "tests/r/variance_ci_boot.R"
MODEL = {
    "name": "three_level_intercepts",
    "outcome": "y",
    "fixed": ["x_cwc"],
    "random": [{"group": "therapist"}, {"group": "patient", "nested_in": "therapist"}],
}
#: our quantity -> the R script's
R_NAMES = {
    ("therapist", "Intercept", "sd"): "sd_therapist",
    ("therapist:patient", "Intercept", "sd"): "sd_patient",
    ("Residual", "Residual", "sd"): "sd_residual",
    ("therapist", "Intercept", "icc"): "icc_therapist",
    ("therapist:patient", "Intercept", "icc_cumulative"): "icc_cumulative_patient",
}


def test_simulated_outcomes_have_the_fitted_variances():
    """Nested intercepts and a correlated random slope: moments of many draws, no fitting (each
    tolerance about 4 sampling SEs of its moment over 2000 therapists x 5 patients)."""
    n_t, n_p = 2000, 5
    data = pd.DataFrame(
        {
            "therapist": np.repeat(np.arange(n_t), n_p * 2),
            "patient": np.tile(np.repeat(np.arange(n_p), 2), n_t),
            "x": np.tile([-1.0, 1.0], n_t * n_p),
        }
    )
    vc = pd.DataFrame(
        {
            "group": ["therapist", "therapist:patient", "therapist:patient", "therapist:patient", "Residual"],
            "term": ["Intercept", "Intercept", "x", "Intercept:x", "Residual"],
            "variance": [2.0, 5.0, 0.5, 0.8, 1.0],
        }
    )
    y = vci.simulate_outcome(np.full(len(data), 10.0), vc, data, np.random.default_rng(7))
    d = data.assign(y=y)
    pair = d.groupby(["therapist", "patient"])["y"]
    # y(x=1) - y(x=-1) = 2 u_slope + e1 - e2: variance 4 x 0.5 + 2 x 1 = 4
    diff = pair.last() - pair.first()
    assert diff.var() == pytest.approx(4.0, rel=0.06)
    # the patient mean: u_t + u_p + (e1 + e2) / 2 (the slope cancels): variance 2 + 5 + 0.5 = 7.5
    mean = pair.mean()
    assert mean.var() == pytest.approx(7.5, rel=0.06)
    # covariance of intercept and slope parts: cov(mean, diff) = 2 x 0.8 = 1.6
    assert np.cov(mean, diff)[0, 1] == pytest.approx(1.6, rel=0.15)
    # therapist means of patient means: variance 2 + (5 + 0.5) / 5 = 3.1
    assert mean.groupby(level=0).mean().var() == pytest.approx(3.1, rel=0.13)
    assert y.mean() == pytest.approx(10.0, abs=0.1)


def test_adjusted_icc_averages_the_slope_variance_over_the_data():
    vc = pd.DataFrame(
        {
            "group": ["p", "p", "p", "Residual"],
            "term": ["Intercept", "x", "Intercept:x", "Residual"],
            "variance": [4.0, 1.0, 0.5, 2.0],
            "sd": [2.0, 1.0, np.nan, 2**0.5],
            "correlation": [np.nan, np.nan, 0.25, np.nan],
        }
    )
    data = pd.DataFrame({"x": [0.0, 1.0, 2.0]})
    q = vci.variance_quantities(vc, data)
    # z' S z = 4 + 2 x 0.5 x + x^2 over x = 0, 1, 2: 4, 6, 10 -> mean 20/3
    random = 20 / 3
    assert q[("all groups", "", "icc_adjusted")] == pytest.approx(random / (random + 2.0), rel=1e-12)
    assert q[("p", "Intercept", "icc")] == pytest.approx(4 / 6, rel=1e-12)  # at x = 0
    assert q[("p", "Intercept:x", "correlation")] == 0.25 and q[("p", "x", "sd")] == 1.0


def test_estimates_equal_lme4_and_the_table_is_seeded():
    data = pd.read_csv(DATA)
    first = vci.variance_ci_table(MODEL, data, None, replicates=3, seed=11)
    second = vci.variance_ci_table(MODEL, data, None, replicates=3, seed=11)
    other = vci.variance_ci_table(MODEL, data, None, replicates=3, seed=12)
    pd.testing.assert_frame_equal(first, second)
    assert not np.allclose(first["ci_low"], other["ci_low"])
    np.testing.assert_array_equal(first["estimate"], other["estimate"])
    r = pd.read_csv(R_REFERENCE).set_index("quantity")
    ours = first.set_index(["group", "term", "quantity"])["estimate"]
    for key, name in R_NAMES.items():
        assert ours[key] == pytest.approx(r.loc[name, "estimate"], rel=1e-4), name
    assert first["replicates"].unique().tolist() == [3] and first["seed"].unique().tolist() == [11]
    assert set(first["definition"]) >= {vci.ICC_DEFINITIONS["icc"], vci.ICC_DEFINITIONS["icc_adjusted"]}


def _monte_carlo_tolerance(boot_se: float, n: int, p: float = 0.025) -> float:
    """3 SE of the difference of two independent bootstrap percentiles (normal approximation of the
    bootstrap distribution: SE(q_p) = boot_se sqrt(p (1 - p) / n) / phi(z_p))."""
    z = 1.959963984540054
    phi = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    return 3 * math.sqrt(2) * boot_se * math.sqrt(p * (1 - p) / n) / phi


def _compare_with_r(ours: pd.DataFrame, r: pd.DataFrame) -> None:
    ours = ours.set_index(["group", "term", "quantity"])
    n = int(r["nsim"].iloc[0])
    for key, name in R_NAMES.items():
        row, ref = ours.loc[key], r.loc[name]
        tol = _monte_carlo_tolerance(ref["boot_se"], n)
        assert abs(row["ci_low"] - ref["ci_low"]) <= tol, (name, "low", row["ci_low"], ref["ci_low"], tol)
        assert abs(row["ci_high"] - ref["ci_high"]) <= tol, (name, "high", row["ci_high"], ref["ci_high"], tol)
        # the bootstrap mean (3 SE of a difference of means) and SD (within 20 %)
        assert abs(row["boot_mean"] - ref["boot_mean"]) <= 3 * math.sqrt(2 / n) * ref["boot_se"], name
        assert row["boot_se"] == pytest.approx(ref["boot_se"], rel=0.2), name


@pytest.fixture(scope="module")
def bootstrap_300():
    return vci.variance_ci_table(MODEL, pd.read_csv(DATA), None, replicates=300, seed=20261201)


@pytest.mark.slow
def test_bootstrap_agrees_with_lme4_bootmer_committed(bootstrap_300):
    _compare_with_r(bootstrap_300, pd.read_csv(R_REFERENCE).set_index("quantity"))
    assert bootstrap_300["replicates_failed"].unique().tolist() == [0]


@pytest.mark.slow
@pytest.mark.needs_r  # tests/conftest.py skips it without Rscript (and fails it in CI)
def test_bootstrap_agrees_with_lme4_bootmer_live(bootstrap_300, tmp_path):
    out = tmp_path / "boot.csv"
    subprocess.run(
        ["Rscript", str(R_SCRIPT), str(DATA), "300", "7", str(out)], check=True, cwd=ROOT, capture_output=True
    )
    _compare_with_r(bootstrap_300, pd.read_csv(out).set_index("quantity"))


@pytest.mark.slow
def test_bootstrap_ci_covers_a_known_icc():
    """30 trials of 25 groups x 6 rows, tau^2 = 1, sigma^2 = 1.5 (ICC 0.4), 60 replicates each: the
    95 % percentile intervals of the group variance and the ICC cover the truth in at least 25 of
    30 trials (P(X <= 24) = 0.008 at a true coverage of 0.95)."""
    rng = np.random.default_rng(20261201)
    model = {"name": "coverage", "outcome": "y", "fixed": [], "random": [{"group": "patient"}]}
    hits = {"variance": 0, "icc": 0}
    for trial in range(30):
        g = np.repeat(np.arange(25), 6)
        data = pd.DataFrame(
            {"patient": [f"P{i:02d}" for i in g], "y": rng.normal(0, 1, 25)[g] + rng.normal(0, 1.5**0.5, len(g))}
        )
        table = vci.variance_ci_table(model, data, None, replicates=60, seed=trial).set_index(["group", "quantity"])
        for quantity, truth in (("variance", 1.0), ("icc", 0.4)):
            row = table.loc[("patient", quantity)]
            hits[quantity] += int(row["ci_low"] <= truth <= row["ci_high"])
    assert hits["variance"] >= 25 and hits["icc"] >= 25, hits
