"""Tests for the engine interface and the statsmodels engine (alliance.engines.spec, .statsmodels_engine): agreement with lme4, safeguards, parameter recovery, spec validation.

Reference values come from tests/r/lme4_reference.R (committed output in tests/reference/).
The simulated data sets in tests/data/ are produced by the simulate_* functions below
(regenerate with ``python tests/test_engine.py --write-data``; the R script must then be rerun).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import warnings
from functools import partial

import numpy as np
import pandas as pd
import pytest
from statsmodels.regression.mixed_linear_model import MixedLM

from alliance.engines import dispatch
from alliance.engines.checks import boundary_reasons, group_covariances, singular_groups
from alliance.engines.spec import (
    DEFAULT_OPTIMIZERS,
    THETA_BOUNDARY_TOL,
    FitResult,
    FitWarning,
    ModelSpec,
    RandomTerm,
    to_lme4_formula,
    to_patsy_formula,
)
from testkit import ROOT
from testkit.lme4_refs import (
    DATA,
    LOGLIK_ATOL,
    REFERENCE,
    REFERENCE_SPECS,
    SE_RTOL,
    TRUTH,
    TWO_LEVEL_SPEC,
    assert_agrees_with_lme4,
    load_data,
    rel,
    simulate_two_level,
)

#: this module tests the statsmodels engine, the reference Python engine (the default engine is mixedlm:
#: tests/engines/test_engines.py and test_suite_lme4.py test it)
fit = partial(dispatch.fit, engine="statsmodels")

R_SCRIPT = ROOT / "tests" / "r" / "lme4_reference.R"

REGEN_TOL = 1e-8  # regenerated R output vs committed JSON (relative, absolute for |x| < 1)

# ---- parameter recovery (truth: testkit.lme4_refs.TRUTH) -------------------------------------

VC_RECOVERY_RTOL = 0.35  # one data set, 200 patients: random-effect variances within 35 % of truth
RESID_RECOVERY_RTOL = 0.10  # residual variance within 10 %
COVERAGE_RANGE = (0.90, 0.98)  # slow test: 95 % Wald CI coverage over replications


# =============================================================================================
# Simulated data
# =============================================================================================


def simulate_three_level(seed: int = 20240611, n_therapists: int = 30, n_patients: int = 8, n_sessions: int = 6):
    """Therapist / patient / session data; patient labels repeat across therapists (P1..P8), so
    only the therapist:patient combination identifies a patient.  Truth: y = 10 - 0.3 x_cwc
    - 0.6 x_pm_c - 0.2 session_c + u_t (sd .5) + u_p (sd 1) + s_p x_cwc (sd .3) + e (sd 1)."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_therapists):
        u_t = rng.normal(0, 0.5)
        for p in range(n_patients):
            u_p = rng.normal(0, 1.0)
            s_p = rng.normal(0, 0.3)
            x_pm = rng.normal(0, 0.8)
            x = x_pm + rng.normal(0, 0.6, n_sessions)
            e = rng.normal(0, 1.0, n_sessions)
            for s in range(n_sessions):
                rows.append((f"T{t + 1:02d}", f"P{p + 1}", s, x[s], u_t, u_p, s_p, e[s]))
    d = pd.DataFrame(rows, columns=["therapist", "patient", "session_c", "x", "u_t", "u_p", "s_p", "e"])
    key = ["therapist", "patient"]
    pm = d.groupby(key, sort=False)["x"].transform("mean")
    d["x_cwc"] = d["x"] - pm
    d["x_pm_c"] = pm - d.groupby(key, sort=False)["x"].mean().mean()
    d["y"] = (
        10
        - 0.3 * d["x_cwc"]
        - 0.6 * d["x_pm_c"]
        - 0.2 * d["session_c"]
        + d["u_t"]
        + d["u_p"]
        + d["s_p"] * d["x_cwc"]
        + d["e"]
    )
    out = d[["therapist", "patient", "session_c", "x_cwc", "x_pm_c", "y"]].copy()
    for c in ["x_cwc", "x_pm_c", "y"]:
        out[c] = out[c].round(6)
    return out


def simulate_boundary(seed: int = 2, n_therapists: int = 20, n_patients: int = 6, n_sessions: int = 5):
    """True therapist variance 0, therapist-level predictor x_tm_c.  Seed 2 is the first seed
    (of 1..15) for which lme4 estimates the therapist variance as exactly 0."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_therapists):
        x_t = rng.normal(0, 0.5)
        for p in range(n_patients):
            u_p = rng.normal(0, 1.0)
            x = x_t + rng.normal(0, 0.7) + rng.normal(0, 0.6, n_sessions)
            e = rng.normal(0, 1.5, n_sessions)
            for s in range(n_sessions):
                rows.append((f"T{t + 1:02d}", f"P{p + 1}", s, x[s], u_p, e[s]))
    d = pd.DataFrame(rows, columns=["therapist", "patient", "session_c", "x", "u_p", "e"])
    key = ["therapist", "patient"]
    pm = d.groupby(key, sort=False)["x"].transform("mean")
    d["x_cwc"] = d["x"] - pm
    pmeans = d.groupby(key, sort=False)["x"].mean()
    tm = pmeans.groupby(level=0).mean()
    d["x_tm_c"] = d["therapist"].map(tm) - pmeans.mean()
    d["y"] = 12 - 0.3 * d["x_cwc"] - 0.8 * d["x_tm_c"] + d["u_p"] + d["e"]
    out = d[["therapist", "patient", "session_c", "x_cwc", "x_tm_c", "y"]].copy()
    for c in ["x_cwc", "x_tm_c", "y"]:
        out[c] = out[c].round(6)
    return out


_FIT_CACHE: dict[str, tuple[FitResult, dict]] = {}


def _reference_fit(name: str) -> tuple[FitResult, dict]:
    if name not in _FIT_CACHE:
        ref = json.loads((REFERENCE / f"{name}.json").read_text())
        res = fit(REFERENCE_SPECS[name], load_data(ref["data"]))
        _FIT_CACHE[name] = (res, ref)
    return _FIT_CACHE[name]


# =============================================================================================
# Data files
# =============================================================================================


def test_committed_simulated_data_regenerate():
    for file, sim in [("three_level.csv", simulate_three_level), ("boundary.csv", simulate_boundary)]:
        committed = load_data(file)
        pd.testing.assert_frame_equal(committed, sim(), check_dtype=False, rtol=1e-12, atol=1e-12)


def test_sleepstudy_csv():
    ss = load_data("sleepstudy.csv")
    assert list(ss.columns) == ["Reaction", "Days", "Subject"]
    assert ss.shape == (180, 3) and ss["Subject"].nunique() == 18
    readme = (DATA / "README.md").read_text()
    assert "Belenky" in readme and "lme4" in readme


# =============================================================================================
# Agreement with lme4
# =============================================================================================


@pytest.mark.parametrize("name", sorted(REFERENCE_SPECS))
def test_agreement_with_lme4(name):
    res, ref = _reference_fit(name)
    spec = REFERENCE_SPECS[name]
    assert to_lme4_formula(spec) == ref["formula"]
    assert_agrees_with_lme4(res, ref)
    V = res.vcov.loc[ref["vcov_terms"], ref["vcov_terms"]].to_numpy()
    Vr = np.array(ref["vcov_fixed"], dtype=float).reshape(V.shape)
    scale = np.sqrt(np.outer(np.diag(Vr), np.diag(Vr)))
    assert np.all(np.abs(V - Vr) <= 2 * SE_RTOL * scale)


def test_boundary_case_flagged_with_lme4_standard_errors():
    res, ref = _reference_fit("boundary")
    assert ref["is_singular"]
    assert "boundary" in res.flags and res.fit["boundary"]
    tv = res.variance_components.set_index(["group", "term"]).loc[("therapist", "Intercept"), "variance"]
    assert tv <= 1e-6 * res.fit["residual_variance"]
    for f in ref["fixed"]:
        assert rel(res.fixed.set_index("term").loc[f["term"], "se"], f["se"]) < SE_RTOL
    # the statsmodels SEs are kept for transparency
    assert res.fixed["se_statsmodels"].notna().all()
    assert res.fit["df_method"] == "Wald z (asymptotic)"
    # the note and fit["boundary_reasons"] name the group and the reason
    assert res.fit["boundary_reasons"] == {"therapist": res.fit["boundary_reasons"]["therapist"]}
    assert "variance of Intercept" in res.fit["boundary_reasons"]["therapist"]
    assert any(n.startswith("boundary: therapist: variance of Intercept") for n in res.fit["notes"])


def _vc_table(rows, residual):
    """A hand-made variance_components table: rows (group, term, variance) plus the residual."""
    return pd.DataFrame(rows + [("Residual", "Residual", residual)], columns=["group", "term", "variance"])


def _correlated(var0, var1, r, residual=60.0, group="patient"):
    cov = r * math.sqrt(var0 * var1)
    return _vc_table([(group, "Intercept", var0), (group, "x", var1), (group, "Intercept:x", cov)], residual)


def test_singular_groups_theta_criterion_on_hand_made_tables():
    """lme4's criterion (a diagonal element of the relative Cholesky factor <= tol) catches a
    correlation of -0.99999 that the |r| >= 1 - 1e-6 check misses; the demo's
    lagged_alliance_symptoms fit (statsmodels, r = -0.999994) has theta 2.3e-4."""
    near = _correlated(100.0, 0.25, -0.99999)  # theta_22 = sqrt(.25/60) sqrt(1 - r^2) = 2.9e-4
    assert THETA_BOUNDARY_TOL == 1e-3
    assert list(singular_groups(near)) == ["patient"]
    assert "relative Cholesky factor" in singular_groups(near)["patient"]
    assert "-0.99999" in singular_groups(near)["patient"]
    assert singular_groups(near, tol=1e-4) == {}  # lme4's isSingular() tolerance would not flag it
    reasons = boundary_reasons(near)
    assert list(reasons) == ["patient"] and "theta" in reasons["patient"]
    assert "within 1e-06 of +-1" not in reasons["patient"]  # the old check alone would have missed it
    demo = _vc_table(
        [
            ("patient", "Intercept", 103.1925632),
            ("patient", "alliance_within_patient", 0.2778451877),
            ("patient", "Intercept:alliance_within_patient", -5.354551846),
        ],
        61.18845984,
    )
    assert list(singular_groups(demo)) == ["patient"]
    # the same correlation with a large slope variance is not near-singular (theta_22 = 0.058)
    assert singular_groups(_correlated(100.0, 10000.0, -0.99999)) == {}
    assert boundary_reasons(_correlated(100.0, 10000.0, -0.99999)) == {}
    # a clean fit, and the two old criteria
    assert singular_groups(_correlated(100.0, 4.0, -0.3)) == boundary_reasons(_correlated(100.0, 4.0, -0.3)) == {}
    at_one = boundary_reasons(_correlated(100.0, 4.0, -1.0))
    assert "correlation Intercept:x -1 within 1e-06 of +-1" in at_one["patient"]
    assert singular_groups(_correlated(100.0, 4.0, -1.0))["patient"].startswith("diagonal element")
    assert "not positive definite" in singular_groups(_correlated(100.0, 4.0, -1.001))["patient"]
    split = _vc_table([("therapist", "Intercept", 0.0), ("therapist:patient", "Intercept", 1.2)], 1.3)
    assert list(boundary_reasons(split)) == ["therapist"]
    assert boundary_reasons(split)["therapist"].startswith("variance of Intercept 0 <= 1e-06 x residual variance")
    # independent (||) terms: no covariance row, a diagonal covariance matrix
    diag = _vc_table([("patient", "Intercept", 100.0), ("patient", "x", 1e-9)], 60.0)
    assert list(singular_groups(diag)) == ["patient"] and list(boundary_reasons(diag)) == ["patient"]
    assert group_covariances(diag)["patient"][0] == ["Intercept", "x"]
    with pytest.raises(ValueError, match="cannot read covariance term"):
        group_covariances(_vc_table([("p", "Intercept", 1.0), ("p", "Intercept:z", 0.1)], 1.0))


def test_multistart_catches_worse_optimum():
    # on these data statsmodels' lbfgs reports convergence at a worse REML optimum (methods.md §7.2)
    res, ref = _reference_fit("three_level")
    att = res.fit["attempts"]
    assert [a["optimizer"] for a in att] == ["+".join(o) for o in DEFAULT_OPTIMIZERS]
    assert len(att) == len(DEFAULT_OPTIMIZERS)
    lbfgs = att[0]
    assert lbfgs["converged"] and lbfgs["loglik"] < ref["loglik"] - 0.1
    assert res.fit["optimizer"] != "lbfgs"
    assert {"refitted", "optimum_disagreement"} <= set(res.flags)
    assert abs(res.fit["loglik"] - ref["loglik"]) < LOGLIK_ATOL


def test_statistics_definitions():
    res, _ = _reference_fit("sleepstudy_corr")
    fx = res.fixed
    assert np.allclose(fx["statistic"], fx["estimate"] / fx["se"])
    assert np.allclose(fx["ci_low"], fx["estimate"] - 1.959964 * fx["se"], rtol=1e-6)
    assert np.allclose(fx["ci_high"], fx["estimate"] + 1.959964 * fx["se"], rtol=1e-6)
    from scipy.stats import norm

    assert np.allclose(fx["p"], 2 * norm.sf(np.abs(fx["statistic"])))
    assert res.fixed_effect("Days") == pytest.approx(fx.loc[1, "estimate"])
    with pytest.raises(KeyError):
        res.fixed_effect("nope")
    # contrast and Wald test use the same covariance matrix
    c = res.contrast({"Days": 1.0})
    assert c["se"] == pytest.approx(fx.loc[1, "se"])
    w = res.wald_test(["Days"])
    assert w["statistic"] == pytest.approx(fx.loc[1, "statistic"] ** 2)
    # fitted values: conditional = marginal + Z u
    assert np.allclose(res.fitted["fitted_conditional"] + res.fitted["resid"], load_data("sleepstudy.csv")["Reaction"])


@pytest.mark.slow
@pytest.mark.needs_r  # tests/conftest.py skips it without Rscript (and fails it in CI)
def test_r_references_regenerate(tmp_path):
    csv = tmp_path / "sleepstudy.csv"
    subprocess.run(
        ["Rscript", str(R_SCRIPT), str(tmp_path), "--export-sleepstudy", str(csv)],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )

    def compare(a, b, path):
        if isinstance(b, dict):
            assert isinstance(a, dict) and set(a) == set(b), path
            for k in b:
                if k != "software":
                    compare(a[k], b[k], f"{path}.{k}")
        elif isinstance(b, list):
            assert isinstance(a, list) and len(a) == len(b), path
            for i, (x, y) in enumerate(zip(a, b)):
                compare(x, y, f"{path}[{i}]")
        elif isinstance(b, bool) or b is None or isinstance(b, str):
            assert a == b, path
        else:
            assert abs(a - b) <= REGEN_TOL * max(1.0, abs(b)), (path, a, b)

    committed = sorted(p.name for p in REFERENCE.glob("*.json"))
    assert committed == sorted(p.name for p in tmp_path.glob("*.json"))
    for name in committed:
        compare(json.loads((tmp_path / name).read_text()), json.loads((REFERENCE / name).read_text()), name)
    pd.testing.assert_frame_equal(pd.read_csv(csv), load_data("sleepstudy.csv"))


# =============================================================================================
# Safeguards
# =============================================================================================


def test_non_convergence_is_flagged_not_silent():
    ss = load_data("sleepstudy.csv")
    with pytest.warns(FitWarning, match="did not converge"):
        res = fit(REFERENCE_SPECS["sleepstudy_corr"], ss, max_iter=1)
    assert "not_converged" in res.flags
    assert res.fit["converged"] is False
    assert not any(a["converged"] for a in res.fit["attempts"])
    assert res.fit["max_iter"] == 1
    assert any("ConvergenceWarning" in w for w in res.fit["warnings"])
    assert np.isfinite(res.fixed["estimate"]).all()


def test_exact_zero_fixed_effect_flagged_and_repaired(monkeypatch):
    """statsmodels issue #10239, hand-built: started at a random-intercept variance below 1e-10,
    statsmodels' gradient optimisers stop at once and get_fe_params returns the intercept as
    exactly 0.0.  The engine must flag it and report the GLS estimates (= OLS here)."""
    rng = np.random.default_rng(1)
    ng, m = 20, 5
    g = np.repeat(np.arange(ng), m)
    xb = rng.normal(size=ng)[g]
    xw = rng.normal(size=ng * m)
    e = rng.normal(size=(ng, m))
    e = e - e.mean(axis=1, keepdims=True)  # under-dispersed group means: optimum at variance 0
    d = pd.DataFrame({"g": g, "xb": xb, "xw": xw, "y": 1 + 0.5 * xb + 0.3 * xw + e.ravel()})
    spec = ModelSpec("zero", "y", ("xb", "xw"), (RandomTerm("g"),))

    original = MixedLM.fit

    def tiny_start(self, *args, **kwargs):
        kwargs["start_params"] = np.array([1e-6])  # sqrt parameterisation: variance 1e-12
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MixedLM, "fit", tiny_start)
    res = fit(spec, d, optimizers=[("lbfgs",)])
    assert (res.fixed["estimate_statsmodels"] == 0.0).any()
    assert "exact_zero_fixed" in res.flags and res.fit["exact_zero_fixed"]
    assert "boundary" in res.flags
    assert res.fit["notes"] and "10239" in res.fit["notes"][0]
    X = np.column_stack([np.ones(len(d)), d["xb"], d["xw"]])
    ols = np.linalg.lstsq(X, d["y"].to_numpy(), rcond=None)[0]
    assert np.allclose(res.fixed["estimate"], ols, rtol=1e-6)


def test_simplification_recorded_for_correlated_nested_slope():
    tl = load_data("three_level.csv")
    corr_spec = ModelSpec(
        "three_level_corr",
        "y",
        ("x_cwc", "x_pm_c", "session_c"),
        (RandomTerm("therapist"), RandomTerm("patient", slopes=("x_cwc",), nested_in="therapist")),
    )
    res = fit(corr_spec, tl)
    assert "simplified" in res.flags
    assert res.fit["simplification"] == (
        "correlated (1 + x_cwc | therapist:patient) fitted as independent components "
        "(1 + x_cwc || therapist:patient): statsmodels cannot estimate this correlation"
    )
    assert res.fit["formula_lme4"].endswith("(1 + x_cwc | therapist:patient)")
    assert res.fit["formula_lme4_fitted"] == to_lme4_formula(REFERENCE_SPECS["three_level"])
    assert res.fit["statsmodels_call"] == {
        "groups": "therapist",
        "re_formula": "1",
        "vc_formula": {"patient": "0 + C(patient)", "patient_slope_x_cwc": "0 + C(patient):x_cwc"},
    }
    indep, _ = _reference_fit("three_level")
    assert np.allclose(res.fixed["estimate"], indep.fixed["estimate"], rtol=1e-6)


def test_to_dict_json_deterministic():
    ss = load_data("sleepstudy.csv")
    spec = REFERENCE_SPECS["sleepstudy_corr"]
    first = fit(spec, ss)
    a = json.dumps(first.to_dict(), sort_keys=True, allow_nan=False)
    b = json.dumps(fit(spec, ss).to_dict(), sort_keys=True, allow_nan=False)
    assert a == b
    d = json.loads(a)
    assert d["spec"]["random"][0]["group"] == "Subject"
    assert d["fit"]["engine"] == "statsmodels" and d["fit"]["method"] == "REML"
    assert {"loglik", "aic", "bic", "n_obs", "n_groups", "optimizer", "attempts", "warnings", "engine_version"} <= set(
        d["fit"]
    )
    est = d["fixed"][1]["estimate"]
    assert est == float(f"{est:.10g}")
    full = first.to_dict(include_random_effects=True)
    assert len(full["random_effects"]) == 36


def test_missing_rows_dropped_and_counted():
    ss = load_data("sleepstudy.csv")
    ss.loc[3, "Reaction"] = np.nan
    ss.loc[7, "Days"] = np.nan
    res = fit(REFERENCE_SPECS["sleepstudy_corr"], ss, optimizers=[("powell", "lbfgs")])
    assert res.fit["n_obs"] == 178 and res.fit["n_dropped_missing"] == 2
    assert 3 not in set(res.fitted["row"]) and len(res.fitted) == 178


# =============================================================================================
# Parameter recovery
# =============================================================================================


def _recovery_checks(res: FitResult):
    fx = res.fixed.set_index("term")
    vc = res.variance_components.set_index(["group", "term"])
    return fx, vc


def test_parameter_recovery_two_level():
    d = simulate_two_level(np.random.default_rng(20240612), n_patients=200, n_sessions=8)
    res = fit(TWO_LEVEL_SPEC, d)
    assert "not_converged" not in res.flags and "boundary" not in res.flags
    fx, vc = _recovery_checks(res)
    for term, truth in TRUTH["fixed"].items():
        assert abs(fx.loc[term, "estimate"] - truth) < 3 * fx.loc[term, "se"], term
    assert rel(vc.loc[("patient", "Intercept"), "variance"], TRUTH["sd_int"] ** 2) < VC_RECOVERY_RTOL
    assert rel(vc.loc[("patient", "x_cwc"), "variance"], TRUTH["sd_slope"] ** 2) < VC_RECOVERY_RTOL
    assert rel(vc.loc[("Residual", "Residual"), "variance"], TRUTH["sd_e"] ** 2) < RESID_RECOVERY_RTOL
    assert abs(vc.loc[("patient", "Intercept:x_cwc"), "correlation"] - TRUTH["corr"]) < 0.3


@pytest.mark.slow
def test_parameter_recovery_coverage_replications():
    # 100 replications (the statsmodels engine takes about 4.6 s a fit): the MC SE of a 95 % coverage
    # is 0.022, so COVERAGE_RANGE is about -2.3 and +1.4 MC SEs; 200 took 15 of CI's 53 minutes
    n_rep = 100
    rng = np.random.default_rng(7)
    est = {t: [] for t in TRUTH["fixed"]}
    cover = {t: [] for t in TRUTH["fixed"]}
    vcs = {"Intercept": [], "x_cwc": [], "Residual": []}
    flags = []
    for _ in range(n_rep):
        d = simulate_two_level(rng, n_patients=60, n_sessions=8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            res = fit(TWO_LEVEL_SPEC, d)
        flags.extend(res.flags)
        fx, vc = _recovery_checks(res)
        for t, truth in TRUTH["fixed"].items():
            est[t].append(fx.loc[t, "estimate"])
            cover[t].append(fx.loc[t, "ci_low"] <= truth <= fx.loc[t, "ci_high"])
        vcs["Intercept"].append(vc.loc[("patient", "Intercept"), "variance"])
        vcs["x_cwc"].append(vc.loc[("patient", "x_cwc"), "variance"])
        vcs["Residual"].append(vc.loc[("Residual", "Residual"), "variance"])
    summary = {}
    for t, truth in TRUTH["fixed"].items():
        summary[t] = {"bias": float(np.mean(est[t]) - truth), "coverage": float(np.mean(cover[t]))}
    vtruth = {"Intercept": TRUTH["sd_int"] ** 2, "x_cwc": TRUTH["sd_slope"] ** 2, "Residual": TRUTH["sd_e"] ** 2}
    for k, v in vcs.items():
        summary[f"var_{k}"] = {"rel_bias": float(np.mean(v) / vtruth[k] - 1)}
    summary["flag_counts"] = {f: flags.count(f) for f in sorted(set(flags))}
    print("\nrecovery over", n_rep, "replications:", json.dumps(summary, indent=1))
    for t in TRUTH["fixed"]:
        assert COVERAGE_RANGE[0] <= summary[t]["coverage"] <= COVERAGE_RANGE[1], (t, summary[t])
        assert abs(summary[t]["bias"]) < 0.1 * max(abs(TRUTH["fixed"][t]), 0.1), (t, summary[t])
    for k in vcs:
        assert abs(summary[f"var_{k}"]["rel_bias"]) < 0.1, (k, summary[f"var_{k}"])


# =============================================================================================
# Specs, validation and formulas
# =============================================================================================


@pytest.mark.parametrize(
    "spec_kwargs, bad",
    [
        ({"fixed": ("x; import os",)}, "x; import os"),
        ({"fixed": ("Days:__import__('os')",)}, "__import__('os')"),
        ({"outcome": "Reaction)"}, "Reaction)"),
        ({"fixed": ("not_a_column",)}, "not_a_column"),
        ({"random": (RandomTerm("Subject; rm"),)}, "Subject; rm"),
        ({"random": (RandomTerm("Subject", slopes=("Days + 1",)),)}, "Days + 1"),
        ({"random": (RandomTerm("Subject", nested_in="lambda"),)}, "lambda"),
    ],
)
def test_bad_names_raise(spec_kwargs, bad):
    base = dict(name="m", outcome="Reaction", fixed=("Days",), random=(RandomTerm("Subject"),))
    base.update(spec_kwargs)
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        fit(ModelSpec(**base), load_data("sleepstudy.csv"))


def test_structural_errors():
    ss = load_data("sleepstudy.csv")
    ss["site"] = np.where(ss["Subject"] < 340, "a", "b")
    with pytest.raises(ValueError, match="crossed"):
        fit(ModelSpec("m", "Reaction", ("Days",), (RandomTerm("Subject"), RandomTerm("site"))), ss)
    with pytest.raises(ValueError, match="not numeric"):
        fit(ModelSpec("m", "Reaction", ("site",), (RandomTerm("Subject"),)), ss)
    with pytest.raises(ValueError, match="reference level 'c'"):
        fit(ModelSpec("m", "Reaction", ("site",), (RandomTerm("Subject"),), categorical=(("site", "c"),)), ss)
    with pytest.raises(ValueError, match="control characters"):
        fit(ModelSpec("m", "Reaction", ("site",), (RandomTerm("Subject"),), categorical=(("site", "a\n"),)), ss)
    with pytest.raises(ValueError, match="at least one RandomTerm"):
        fit(ModelSpec("m", "Reaction", ("Days",), ()), ss)
    with pytest.raises(ValueError, match="listed twice"):
        fit(ModelSpec("m", "Reaction", ("Days", "Days"), (RandomTerm("Subject"),)), ss)


def _categorical_data():
    rng = np.random.default_rng(3)
    n_pat, n_ses = 90, 5
    therapy = np.array(["CBT", "PDT", "IPT's"])[np.arange(n_pat) % 3]
    effect = {"CBT": 0.0, "PDT": 1.0, "IPT's": -1.0}
    pid = np.repeat(np.arange(n_pat), n_ses)
    x = rng.normal(size=n_pat * n_ses)
    y = (
        5
        + np.array([effect[t] for t in therapy])[pid]
        + 0.5 * x
        + rng.normal(0, 0.7, n_pat)[pid]
        + rng.normal(size=len(pid))
    )
    return pd.DataFrame({"patient": pid, "therapy": therapy[pid], "x": x, "y": y})


def test_categorical_reference_level_respected():
    d = _categorical_data()
    rand = (RandomTerm("patient"),)
    r_pdt = fit(ModelSpec("c1", "y", ("x", "therapy", "x:therapy"), rand, categorical=(("therapy", "PDT"),)), d)
    r_cbt = fit(ModelSpec("c2", "y", ("x", "therapy", "x:therapy"), rand, categorical=(("therapy", "CBT"),)), d)
    assert list(r_pdt.fixed["term"]) == [
        "Intercept",
        "therapy[T.CBT]",
        "therapy[T.IPT's]",
        "x",
        "x:therapy[T.CBT]",
        "x:therapy[T.IPT's]",
    ]
    assert "therapy[T.PDT]" not in set(r_pdt.fixed["term"])
    # same model, different coding: intercept(PDT ref) = intercept(CBT ref) + PDT effect
    assert r_pdt.fixed_effect("Intercept") == pytest.approx(
        r_cbt.fixed_effect("Intercept") + r_cbt.fixed_effect("therapy[T.PDT]"), rel=1e-6
    )
    assert r_pdt.fixed_effect("x") == pytest.approx(
        r_cbt.fixed_effect("x") + r_cbt.fixed_effect("x:therapy[T.PDT]"), rel=1e-5
    )
    assert r_pdt.fit["loglik"] == pytest.approx(r_cbt.fit["loglik"], abs=1e-5)
    # a level containing a quote is quoted safely
    r_ipt = fit(ModelSpec("c3", "y", ("therapy",), rand, categorical=(("therapy", "IPT's"),)), d)
    assert r_ipt.fixed_effect("therapy[T.PDT]") == pytest.approx(2.0, abs=0.6)
    w = r_pdt.wald_test(["x:therapy[T.CBT]", "x:therapy[T.IPT's]"])
    assert w["df"] == 2 and 0 <= w["p"] <= 1


def test_patsy_and_lme4_formulas():
    cat = ModelSpec(
        "mod",
        "y",
        ("wai_cwc", "therapy", "wai_cwc:therapy"),
        (RandomTerm("patient", slopes=("wai_cwc",)),),
        categorical=(("therapy", "CBT"),),
    )
    assert to_patsy_formula(cat) == (
        "y ~ 1 + wai_cwc + C(therapy, Treatment(reference='CBT')) + wai_cwc:C(therapy, Treatment(reference='CBT'))"
    )
    assert to_lme4_formula(cat) == (
        'y ~ wai_cwc + relevel(factor(therapy), ref = "CBT") + '
        'wai_cwc:relevel(factor(therapy), ref = "CBT") + (1 + wai_cwc | patient)'
    )
    expected = {
        "sleepstudy_corr": "Reaction ~ Days + (1 + Days | Subject)",
        "sleepstudy_uncorr": "Reaction ~ Days + (1 + Days || Subject)",
        "sleepstudy_intercept": "Reaction ~ 1 + (1 | Subject)",
        "three_level": "y ~ x_cwc + x_pm_c + session_c + (1 | therapist) + (1 + x_cwc || therapist:patient)",
        "three_level_split": "y ~ 1 + (1 | therapist) + (1 | therapist:patient)",
    }
    for name, formula in expected.items():
        assert to_lme4_formula(REFERENCE_SPECS[name]) == formula
    lagged = ModelSpec(
        "lagged3",
        "y_next",
        ("wai_cwc", "wai_pm_cwt", "wai_tm_c", "y", "session_c"),
        (RandomTerm("therapist"), RandomTerm("patient", slopes=("wai_cwc",), nested_in="therapist")),
    )
    assert to_lme4_formula(lagged) == (
        "y_next ~ wai_cwc + wai_pm_cwt + wai_tm_c + y + session_c + (1 | therapist) + (1 + wai_cwc | therapist:patient)"
    )
    assert to_lme4_formula(lagged, fitted=True).endswith("(1 + wai_cwc || therapist:patient)")
    with pytest.raises(ValueError, match="import"):
        to_lme4_formula(ModelSpec("m", "y", ("x + import",), (RandomTerm("g"),)))


@pytest.mark.slow  # statsmodels at 600 patients: 10 s
def test_large_designs_run():
    """600 patients (two-level) and 60 therapists x 10 patients (three-level) fit fine."""
    rng = np.random.default_rng(11)
    d = simulate_two_level(rng, n_patients=600, n_sessions=6)
    res = fit(TWO_LEVEL_SPEC, d, optimizers=[("powell", "lbfgs")])
    assert res.fit["n_groups"] == {"patient": 600} and res.fit["converged"]
    d["therapist"] = [f"t{int(p[1:]) // 10:02d}" for p in d["patient"]]
    d["y"] = d["y"] + rng.normal(0, 0.5, 60)[[int(p[1:]) // 10 for p in d["patient"]]]
    spec3 = ModelSpec(
        "three",
        "y",
        ("x_cwc", "x_pm_c", "session_c"),
        (RandomTerm("therapist"), RandomTerm("patient", slopes=("x_cwc",), correlated=False, nested_in="therapist")),
    )
    res3 = fit(spec3, d, optimizers=[("powell", "lbfgs")])
    assert res3.fit["n_groups"] == {"therapist": 60, "therapist:patient": 600}
    assert res3.fit["converged"]
    assert len(res3.random_effects) == 60 + 2 * 600


if __name__ == "__main__":  # regenerate the simulated data files
    if "--write-data" in sys.argv:
        simulate_three_level().to_csv(DATA / "three_level.csv", index=False)
        simulate_boundary().to_csv(DATA / "boundary.csv", index=False)
        print("wrote", DATA / "three_level.csv", DATA / "boundary.csv", "- now rerun", R_SCRIPT)
