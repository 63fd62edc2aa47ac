"""The engine reference models and their agreement with lme4 (tests/engines/).

The references are tests/reference/<name>.json, written by tests/r/lme4_reference.R from the data
sets in tests/data/; the tolerances below are the ones every engine meets against them.
``simulate_two_level`` draws the two-level recovery data (truth: ``TRUTH``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from alliance.engines.spec import ModelSpec, RandomTerm

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
REFERENCE = ROOT / "tests" / "reference"

# ---- tolerances for agreement with lme4 -----------------------------------------------------
FIXED_RTOL = 1e-4  # fixed-effect estimates, relative
SE_RTOL = 1e-3  # standard errors (and the fixed-effect covariance matrix), relative
VC_RTOL = 1e-3  # variance components and covariances, relative; a variance lme4 puts at exactly
#                 0 must be <= VC_RTOL * residual variance
CORR_ATOL = 1e-3  # random-effect correlations, absolute
LOGLIK_ATOL = 1e-4  # (REML) log-likelihood, AIC, BIC, absolute
BLUP_RTOL = 1e-3  # BLUPs and conditional SDs, relative to the SD of their variance component

# ---- parameter recovery ---------------------------------------------------------------------
TRUTH = {
    "fixed": {"Intercept": 10.0, "x_cwc": -0.4, "x_pm_c": -0.8, "session_c": -0.25},
    "sd_int": 1.5,
    "sd_slope": 0.4,
    "corr": 0.3,
    "sd_e": 1.0,
}


def simulate_two_level(rng: np.random.Generator, n_patients: int = 200, n_sessions: int = 8) -> pd.DataFrame:
    """Patients x sessions with a correlated random intercept and x_cwc slope (truth: TRUTH)."""
    b = TRUTH["fixed"]
    pid = np.repeat(np.arange(n_patients), n_sessions)
    x_pm = rng.normal(0, 1.0, n_patients)
    d = pd.DataFrame(
        {
            "patient": pid,
            "session_c": np.tile(np.arange(n_sessions), n_patients).astype(float),
            "x": x_pm[pid] + rng.normal(0, 0.7, n_patients * n_sessions),
        }
    )
    pm = d.groupby("patient")["x"].transform("mean")
    d["x_cwc"] = d["x"] - pm
    d["x_pm_c"] = pm - d.groupby("patient")["x"].mean().mean()
    si, ss, r = TRUTH["sd_int"], TRUTH["sd_slope"], TRUTH["corr"]
    G = np.array([[si**2, r * si * ss], [r * si * ss, ss**2]])
    u = rng.multivariate_normal([0.0, 0.0], G, n_patients)
    d["y"] = (
        b["Intercept"]
        + b["x_cwc"] * d["x_cwc"]
        + b["x_pm_c"] * d["x_pm_c"]
        + b["session_c"] * d["session_c"]
        + u[pid, 0]
        + u[pid, 1] * d["x_cwc"]
        + rng.normal(0, TRUTH["sd_e"], len(d))
    )
    d["patient"] = [f"p{i:03d}" for i in pid]
    return d.drop(columns="x")


TWO_LEVEL_SPEC = ModelSpec(
    "two_level",
    "y",
    ("x_cwc", "x_pm_c", "session_c"),
    (RandomTerm("patient", slopes=("x_cwc",)),),
)


# =============================================================================================
# Reference models (names = tests/reference/<name>.json)
# =============================================================================================

REFERENCE_SPECS = {
    "sleepstudy_corr": ModelSpec("sleepstudy_corr", "Reaction", ("Days",), (RandomTerm("Subject", ("Days",)),)),
    "sleepstudy_corr_ml": ModelSpec(
        "sleepstudy_corr_ml", "Reaction", ("Days",), (RandomTerm("Subject", ("Days",)),), reml=False
    ),
    "sleepstudy_uncorr": ModelSpec(
        "sleepstudy_uncorr", "Reaction", ("Days",), (RandomTerm("Subject", ("Days",), correlated=False),)
    ),
    "sleepstudy_intercept": ModelSpec("sleepstudy_intercept", "Reaction", (), (RandomTerm("Subject"),)),
    "three_level": ModelSpec(
        "three_level",
        "y",
        ("x_cwc", "x_pm_c", "session_c"),
        (
            RandomTerm("therapist"),
            RandomTerm("patient", slopes=("x_cwc",), correlated=False, nested_in="therapist"),
        ),
    ),
    "three_level_split": ModelSpec(
        "three_level_split", "y", (), (RandomTerm("therapist"), RandomTerm("patient", nested_in="therapist"))
    ),
    "boundary": ModelSpec(
        "boundary",
        "y",
        ("x_cwc", "x_tm_c"),
        (RandomTerm("therapist"), RandomTerm("patient", nested_in="therapist")),
    ),
}


def load_data(name: str) -> pd.DataFrame:
    """A data set of tests/data/ by file name (e.g. ``"sleepstudy.csv"``)."""
    return pd.read_csv(DATA / name)


def ref_vc_key(row: dict) -> tuple[str, str]:
    """The (group, term) key of one row of lme4's VarCorr table, in the engines' naming."""
    if row["grp"] == "Residual":
        return ("Residual", "Residual")
    # lme4 names the parts of (1 + x || a:b) "a.b", "a.b.1"
    grp = re.sub(r"\.\d+$", "", row["grp"]).replace(".", ":")
    term = row["var1"] if row["var2"] is None else f"{row['var1']}:{row['var2']}"
    return (grp, term)


def rel(a: float, b: float) -> float:
    """|a - b| relative to |b| (absolute where b is 0)."""
    return abs(a - b) / abs(b) if b != 0 else abs(a - b)


# =============================================================================================
# Agreement with lme4
# =============================================================================================


def assert_agrees_with_lme4(res, ref) -> None:
    """The checks every engine passes against an lme4 reference: sample, flags, fixed effects and
    SEs, variance components and correlations, log-likelihood, AIC and BIC, BLUPs and their
    conditional SDs (tolerances above)."""
    assert res.fit["method"] == ref["method"]
    assert res.fit["n_obs"] == ref["n_obs"]
    assert res.fit["n_groups"] == ref["n_groups"]
    assert res.fit["converged"] and "not_converged" not in res.flags
    assert ("boundary" in res.flags) == ref["is_singular"]

    fx = res.fixed.set_index("term")
    assert list(fx.index) == [f["term"] for f in ref["fixed"]]
    for f in ref["fixed"]:
        assert rel(fx.loc[f["term"], "estimate"], f["estimate"]) < FIXED_RTOL, f["term"]
        assert rel(fx.loc[f["term"], "se"], f["se"]) < SE_RTOL, f["term"]

    sigma2 = ref["sigma2"]
    vc = res.variance_components.set_index(["group", "term"])
    assert len(vc) == len(ref["varcor"])
    for row in ref["varcor"]:
        key = ref_vc_key(row)
        got = vc.loc[key, "variance"]
        if row["vcov"] == 0:
            assert abs(got) <= VC_RTOL * sigma2, key
        else:
            assert rel(got, row["vcov"]) < VC_RTOL, key
        if row["var2"] is not None:
            assert abs(vc.loc[key, "correlation"] - row["sdcor"]) < CORR_ATOL, key

    # likelihood and information criteria (lme4: REML logLik for REML fits)
    assert abs(res.fit["loglik"] - ref["loglik"]) < LOGLIK_ATOL
    assert res.fit["n_params"] == ref["df_loglik"]
    assert abs(res.fit["aic"] - ref["aic"]) < LOGLIK_ATOL
    assert abs(res.fit["bic"] - ref["bic"]) < LOGLIK_ATOL

    # BLUPs and conditional SDs
    re_ = res.random_effects.set_index(["group", "term", "level"])
    assert len(re_) == len(ref["ranef"])
    ref_sd = {ref_vc_key(r): math.sqrt(r["vcov"]) for r in ref["varcor"] if r["var2"] is None}
    zero_tol = math.sqrt(VC_RTOL * sigma2)  # a component lme4 puts at 0 has sd <= this here
    for row in ref["ranef"]:
        key = (row["grp"], row["term"], row["level"])
        sd = ref_sd[(row["grp"], row["term"])]
        tol = BLUP_RTOL * sd if sd > 0 else zero_tol
        assert abs(re_.loc[key, "value"] - row["condval"]) <= tol, key
        assert abs(re_.loc[key, "cond_sd"] - row["condsd"]) <= tol, key
