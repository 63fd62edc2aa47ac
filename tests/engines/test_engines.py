"""Tests of the engine choice (``fit(..., engine=...)``), the external engines (mixedlm, lme4
through R) and ``fit(..., cross_check=...)``.

Agreement with lme4 uses the committed references of tests/r/lme4_reference.R
(tests/reference/*.json, including ``three_level_corr``: the correlated three-level model
``(1 | therapist) + (1 + x_cwc | therapist:patient)`` that statsmodels cannot fit).  mixedlm tests
skip when the package is absent; lme4 tests are marked needs_r (skipped without Rscript, except
in CI, where .ci/run installs R).  No timing assertions: speed is measured in bench/.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from alliance.engines import checks as engine_checks
from alliance.engines.checks import singular_groups
from alliance.engines.dispatch import available_engines, fit
from alliance.engines.spec import CROSS_CHECK_RTOL, FitWarning, ModelSpec, RandomTerm, to_lme4_formula
from testkit.lme4_refs import (
    FIXED_RTOL,
    REFERENCE,
    REFERENCE_SPECS,
    TRUTH,
    TWO_LEVEL_SPEC,
    assert_agrees_with_lme4,
    load_data,
    rel,
    simulate_two_level,
)

#: Satterthwaite df against lmerTest, relative (REML fits agree to ~1e-5; mixedlm's df of the
#: ML fit differ by 1.1e-3 from lmerTest's)
DF_RTOL = 5e-3

SPECS = dict(REFERENCE_SPECS)
SPECS["three_level_corr"] = ModelSpec(
    "three_level_corr",
    "y",
    ("x_cwc", "x_pm_c", "session_c"),
    (RandomTerm("therapist"), RandomTerm("patient", slopes=("x_cwc",), nested_in="therapist")),
)

ENGINES = [
    pytest.param("mixedlm", id="mixedlm"),
    pytest.param("lme4", id="lme4", marks=[pytest.mark.needs_r, pytest.mark.slow]),
]


def _need(engine: str) -> None:
    if engine == "mixedlm":
        pytest.importorskip("mixedlm")


_CACHE: dict[tuple[str, str], tuple] = {}


def _reference_fit(engine: str, name: str):
    _need(engine)
    if (engine, name) not in _CACHE:
        ref = json.loads((REFERENCE / f"{name}.json").read_text())
        _CACHE[(engine, name)] = (fit(SPECS[name], load_data(ref["data"]), engine=engine), ref)
    return _CACHE[(engine, name)]


# =============================================================================================
# Engine choice
# =============================================================================================


def test_engines_registered():
    assert available_engines() == ("statsmodels", "mixedlm", "lme4")


def test_unknown_engine_names_the_known_ones():
    ss = load_data("sleepstudy.csv")
    with pytest.raises(ValueError, match="statsmodels, mixedlm, lme4"):
        fit(SPECS["sleepstudy_intercept"], ss, engine="nlme")
    with pytest.raises(ValueError, match="unknown engine"):
        fit(SPECS["sleepstudy_intercept"], ss, cross_check="nlme")


def test_default_engine_is_mixedlm():
    """One default engine for Python callers and the pipeline: mixedlm (DEFAULT_ENGINE)."""
    ss = load_data("sleepstudy.csv")
    a = fit(SPECS["sleepstudy_intercept"], ss)
    b = fit(SPECS["sleepstudy_intercept"], ss, engine=None)
    c = fit(SPECS["sleepstudy_intercept"], ss, engine="mixedlm")
    for r in (a, b, c):
        assert r.fit["engine"] == "mixedlm" and r.fit["engine_version"]
        assert "cross_check" not in r.fit
    assert a.to_dict() == b.to_dict() == c.to_dict()


def test_reference_json_for_correlated_three_level_model():
    ref = json.loads((REFERENCE / "three_level_corr.json").read_text())
    assert ref["formula"] == to_lme4_formula(SPECS["three_level_corr"])
    assert ref["formula"].endswith("(1 | therapist) + (1 + x_cwc | therapist:patient)")
    cov = [r for r in ref["varcor"] if r["var2"] is not None]
    assert len(cov) == 1 and cov[0]["grp"] == "therapist:patient"


# =============================================================================================
# Agreement with lme4 (every reference structure, both engines)
# =============================================================================================


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("engine", ENGINES)
def test_agreement_with_lme4(engine, name):
    res, ref = _reference_fit(engine, name)
    assert res.fit["engine"] == engine and res.fit["engine_version"]
    assert_agrees_with_lme4(res, ref)
    assert "simplified" not in res.flags  # both engines fit every structure as specified
    fx = res.fixed.set_index("term")
    for f in ref["fixed"]:
        assert rel(fx.loc[f["term"], "df"], f["df_satterthwaite"]) < DF_RTOL, f["term"]
        assert rel(fx.loc[f["term"], "p"], f["p_satterthwaite"]) < 1e-2 or f["p_satterthwaite"] < 1e-12
    assert res.fit["df_method"].startswith("Satterthwaite")
    # the engine's numbers belong together: the profiled evaluation at its covariance parameters
    assert res.fit["max_rel_diff_fixed_vs_profiled"] < 1e-6
    assert res.fit["abs_diff_loglik_vs_profiled"] < 1e-6


@pytest.mark.parametrize("engine", ENGINES)
def test_therapist_level_effect_gets_satterthwaite_df(engine):
    """Therapist-level predictor x_tm_c: t test with lmerTest's df.  (On this boundary fit the
    therapist variance is 0, so its df are those of the patients, 118; with therapist variance
    they fall towards the number of therapists: see the simulated-truth test.)"""
    res, ref = _reference_fit(engine, "boundary")
    row = res.fixed.set_index("term").loc["x_tm_c"]
    ref_row = next(f for f in ref["fixed"] if f["term"] == "x_tm_c")
    assert rel(row["df"], ref_row["df_satterthwaite"]) < DF_RTOL
    from scipy import stats

    assert row["p"] == pytest.approx(2 * stats.t.sf(abs(row["statistic"]), row["df"]))
    half = stats.t.ppf(0.975, row["df"]) * row["se"]
    assert row["ci_high"] - row["estimate"] == pytest.approx(half)


def test_statsmodels_simplifies_the_correlated_three_level_model():
    ref = json.loads((REFERENCE / "three_level_corr.json").read_text())
    res = fit(SPECS["three_level_corr"], load_data(ref["data"]), engine="statsmodels")
    assert "simplified" in res.flags
    assert res.fit["df_method"] == "Wald z (asymptotic)"
    assert "df" not in res.fixed.columns


@pytest.mark.parametrize("engine", ENGINES)
def test_correlated_three_level_fitted_as_specified(engine):
    res, ref = _reference_fit(engine, "three_level_corr")
    assert "simplified" not in res.flags and res.fit["simplification"] == ""
    assert res.fit["formula_lme4_fitted"] == ref["formula"]
    vc = res.variance_components.set_index(["group", "term"])
    assert ("therapist:patient", "Intercept:x_cwc") in vc.index


# =============================================================================================
# Safeguards and determinism
# =============================================================================================


@pytest.mark.parametrize("engine", ENGINES)
def test_non_convergence_is_flagged(engine):
    _need(engine)
    ss = load_data("sleepstudy.csv")
    with pytest.warns(FitWarning):
        res = fit(SPECS["sleepstudy_corr"], ss, engine=engine, max_iter=1)
    assert "not_converged" in res.flags and res.fit["converged"] is False
    assert res.fit["warnings"] or res.fit["engine_message"]


@pytest.mark.parametrize("engine", ENGINES)
def test_same_data_same_result(engine):
    _need(engine)
    d = load_data("three_level.csv")
    a = json.dumps(fit(SPECS["three_level_corr"], d, engine=engine).to_dict(include_random_effects=True))
    b = json.dumps(fit(SPECS["three_level_corr"], d, engine=engine).to_dict(include_random_effects=True))
    assert a == b


def test_mixedlm_missing_rows_categorical_terms_and_names_match_statsmodels():
    pytest.importorskip("mixedlm")
    d = load_data("three_level.csv")
    d["arm"] = np.where(
        d["therapist"].str[1:].astype(int) % 3 == 0,
        "b",
        np.where(d["therapist"].str[1:].astype(int) % 3 == 1, "a", "c"),
    )
    d.loc[[3, 50, 700], "x_cwc"] = np.nan
    spec = ModelSpec(
        "cat",
        "y",
        ("x_cwc", "arm", "x_cwc:session_c"),
        (RandomTerm("therapist"), RandomTerm("patient", nested_in="therapist")),
        categorical=(("arm", "b"),),
    )
    res = fit(spec, d, engine="mixedlm", cross_check="statsmodels")
    ref = fit(spec, d)
    assert list(res.fixed["term"]) == list(ref.fixed["term"])
    assert "arm[T.a]" in list(res.fixed["term"])
    assert res.fit["n_dropped_missing"] == ref.fit["n_dropped_missing"] == 3
    assert res.fit["n_obs"] == ref.fit["n_obs"]
    assert list(res.fitted["row"]) == list(ref.fitted["row"])
    assert res.fit["cross_check_max_rel_diff"] < CROSS_CHECK_RTOL
    assert "cross_check_disagreement" not in res.flags
    np.testing.assert_allclose(res.fitted["fitted_conditional"], ref.fitted["fitted_conditional"], rtol=1e-5)


def test_unsupported_structure_is_refused():
    pytest.importorskip("mixedlm")
    d = load_data("three_level.csv")
    d["site"] = d["patient"]
    spec = ModelSpec(
        "two_nested",
        "y",
        ("x_cwc",),
        (RandomTerm("patient", nested_in="therapist"), RandomTerm("site", nested_in="therapist", slopes=("x_cwc",))),
    )
    with pytest.raises(ValueError, match="at most one random term nested"):
        fit(spec, d, engine="mixedlm")


# =============================================================================================
# Cross-check
# =============================================================================================


def test_cross_check_agreement_recorded():
    pytest.importorskip("mixedlm")
    ss = load_data("sleepstudy.csv")
    res = fit(SPECS["sleepstudy_corr"], ss, engine="mixedlm", cross_check="statsmodels")
    cc = res.fit["cross_check"]
    assert cc["engine"] == "statsmodels" and cc["disagreement"] is False
    assert cc["max_rel_diff_fixed"] == res.fit["cross_check_max_rel_diff"] < CROSS_CHECK_RTOL
    assert set(cc["rel_diff_fixed"]) == {"Intercept", "Days"}
    assert "cross_check_disagreement" not in res.flags
    json.dumps(res.to_dict())  # serialisable


def test_cross_check_flags_disagreement():
    """statsmodels can only fit the independent form of the correlated three-level model: the
    fixed effects differ by ~8e-4 relative, more than the 1e-4 allowed."""
    pytest.importorskip("mixedlm")
    d = load_data("three_level.csv")
    res = fit(SPECS["three_level_corr"], d, engine="mixedlm", cross_check="statsmodels")
    assert "cross_check_disagreement" in res.flags
    assert res.flags[-1] == "cross_check_disagreement"
    assert res.fit["cross_check_disagreement"] is True
    assert res.fit["cross_check_max_rel_diff"] > CROSS_CHECK_RTOL
    assert "simplified" in res.fit["cross_check"]["note"]
    assert "simplified" in res.fit["cross_check"]["flags"]


def test_cross_check_arguments():
    ss = load_data("sleepstudy.csv")
    spec = SPECS["sleepstudy_intercept"]
    with pytest.raises(ValueError, match="engine itself"):
        fit(spec, ss, cross_check="mixedlm")  # the default engine
    with pytest.raises(ValueError, match="cross_check must be false or an engine name"):
        fit(spec, ss, cross_check=True)
    assert "cross_check" not in fit(spec, ss, cross_check=False).fit


@pytest.mark.slow
@pytest.mark.needs_r
def test_cross_check_with_lme4():
    pytest.importorskip("mixedlm")
    res = fit(SPECS["boundary"], load_data("boundary.csv"), engine="mixedlm", cross_check="lme4")
    assert res.fit["cross_check"]["engine"] == "lme4"
    assert "cross_check_disagreement" not in res.flags
    assert "boundary" in res.fit["cross_check"]["flags"]


# =============================================================================================
# Boundary: one criterion for every engine (alliance.engines.checks.boundary_reasons)
# =============================================================================================

ALL_ENGINES = [pytest.param("statsmodels", id="statsmodels")] + ENGINES

NEAR_SINGULAR_SPEC = ModelSpec("near_singular", "y", ("x_cwc",), (RandomTerm("patient", slopes=("x_cwc",)),))


def simulate_near_singular_slope(seed: int = 2, n_patients: int = 80, n_sessions: int = 8) -> pd.DataFrame:
    """A random slope that is an exact multiple of the intercept (true correlation -1, slope SD
    0.5 against intercept SD 10 and residual SD 7.8), as the demo's lagged_alliance_symptoms model.
    With seed 2 statsmodels stops at r = -0.9999964 (|r| < 1 - 1e-6; theta 1.5e-5), mixedlm and
    lme4 at r = -1 (lme4: isSingular)."""
    rng = np.random.default_rng(seed)
    pid = np.repeat(np.arange(n_patients), n_sessions)
    d = pd.DataFrame({"patient": [f"p{i:02d}" for i in pid], "x": rng.normal(0, 1, len(pid))})
    d["x_cwc"] = d["x"] - d.groupby("patient")["x"].transform("mean")
    b0 = rng.normal(0, 10.0, n_patients)
    b1 = -0.05 * b0
    d["y"] = 5 + 0.5 * d["x_cwc"] + b0[pid] + b1[pid] * d["x_cwc"] + rng.normal(0, 7.8, len(d))
    return d.drop(columns="x")


@pytest.mark.parametrize("engine", ALL_ENGINES)
def test_near_singular_correlation_is_boundary_for_every_engine(engine):
    _need(engine)
    res = fit(NEAR_SINGULAR_SPEC, simulate_near_singular_slope(), engine=engine)
    vc = res.variance_components.set_index(["group", "term"])
    r = vc.loc[("patient", "Intercept:x_cwc"), "correlation"]
    assert r < -0.99999
    assert "boundary" in res.flags and res.fit["boundary"]
    assert list(res.fit["boundary_reasons"]) == ["patient"]
    assert [n for n in res.fit["notes"] if n.startswith("boundary: patient: ")]
    if engine == "statsmodels":
        # the case the old check (|r| >= 1 - 1e-6, variance <= 1e-6 residual) missed: only theta catches it
        assert abs(r) < 1 - 1e-6
        assert "lme4's theta" in res.fit["boundary_reasons"]["patient"]


@pytest.mark.parametrize("engine", ALL_ENGINES)
def test_theta_criterion_is_applied_by_every_engine(engine, monkeypatch):
    """A clean fit has no boundary; with the tolerance raised above its smallest theta (0.231 for
    sleepstudy_corr, lme4's theta) every engine flags it by the theta criterion alone."""
    _need(engine)
    ss = load_data("sleepstudy.csv")
    res = fit(SPECS["sleepstudy_corr"], ss, engine=engine)
    assert "boundary" not in res.flags and res.fit["boundary_reasons"] == {}
    assert singular_groups(res.variance_components, tol=1e-4) == {}
    monkeypatch.setattr(engine_checks, "THETA_BOUNDARY_TOL", 0.25)
    res = fit(SPECS["sleepstudy_corr"], ss, engine=engine)
    assert "boundary" in res.flags and res.fit["boundary"]
    assert list(res.fit["boundary_reasons"]) == ["Subject"]
    assert "diagonal element 0.231 (Days)" in res.fit["boundary_reasons"]["Subject"]


# =============================================================================================
# Simulated truth
# =============================================================================================


def simulate_three_level_corr(seed: int = 11, n_therapists: int = 60, n_patients: int = 10, n_sessions: int = 8):
    """Therapist intercept (sd 2) and correlated patient intercept (sd 4) and x_cwc slope (sd 1.5),
    correlation -0.4, residual sd 3; fixed: 50 - 2 x_cwc - 3 x_pm_c - 6 x_tm_c - 0.8 session_c."""
    rng = np.random.default_rng(seed)
    G = np.array([[16.0, -0.4 * 4 * 1.5], [-0.4 * 4 * 1.5, 2.25]])
    rows = []
    for t in range(n_therapists):
        u_t = rng.normal(0, 2.0)
        x_t = rng.normal(0, 0.5)
        for p in range(n_patients):
            b0, b1 = rng.multivariate_normal([0, 0], G)
            x_p = x_t + rng.normal(0, 0.7)
            x = x_p + rng.normal(0, 0.6, n_sessions)
            for s in range(n_sessions):
                rows.append((f"T{t:02d}", f"P{p}", s, x[s], u_t, b0, b1, rng.normal(0, 3.0)))
    d = pd.DataFrame(rows, columns=["therapist", "patient", "session_c", "x", "u_t", "b0", "b1", "e"])
    pm = d.groupby(["therapist", "patient"])["x"].transform("mean")
    tm = d.groupby("therapist")["x"].transform("mean")
    d["x_cwc"] = d["x"] - pm
    d["x_pm_c"] = pm - tm
    d["x_tm_c"] = tm - d["x"].mean()
    d["y"] = (
        50
        - 2 * d["x_cwc"]
        - 3 * d["x_pm_c"]
        - 6 * d["x_tm_c"]
        - 0.8 * d["session_c"]
        + d["u_t"]
        + d["b0"]
        + d["b1"] * d["x_cwc"]
        + d["e"]
    )
    return d


def test_mixedlm_recovers_simulated_truth_three_level_correlated():
    pytest.importorskip("mixedlm")
    d = simulate_three_level_corr()
    spec = ModelSpec(
        "truth3",
        "y",
        ("x_cwc", "x_pm_c", "x_tm_c", "session_c"),
        (RandomTerm("therapist"), RandomTerm("patient", slopes=("x_cwc",), nested_in="therapist")),
    )
    res = fit(spec, d, engine="mixedlm")
    assert res.flags == []
    truth = {"Intercept": 50.0, "x_cwc": -2.0, "x_pm_c": -3.0, "x_tm_c": -6.0, "session_c": -0.8}
    fx = res.fixed.set_index("term")
    for term, value in truth.items():
        assert abs(fx.loc[term, "estimate"] - value) < 3.5 * fx.loc[term, "se"], term
    vc = res.variance_components.set_index(["group", "term"])
    assert vc.loc[("therapist", "Intercept"), "variance"] == pytest.approx(4.0, rel=0.6)
    assert vc.loc[("therapist:patient", "Intercept"), "variance"] == pytest.approx(16.0, rel=0.25)
    assert vc.loc[("therapist:patient", "x_cwc"), "variance"] == pytest.approx(2.25, rel=0.35)
    assert vc.loc[("therapist:patient", "Intercept:x_cwc"), "correlation"] == pytest.approx(-0.4, abs=0.2)
    assert vc.loc[("Residual", "Residual"), "variance"] == pytest.approx(9.0, rel=0.1)
    # the therapist-level effect has df near the number of therapists (60), not infinity
    assert 40 < fx.loc["x_tm_c", "df"] < 70
    _SIM_CACHE["truth3"] = (spec, d, res)


_SIM_CACHE: dict = {}


@pytest.mark.slow
@pytest.mark.needs_r
def test_therapist_level_df_agree_with_lmertest_on_simulated_data():
    pytest.importorskip("mixedlm")
    if "truth3" not in _SIM_CACHE:
        test_mixedlm_recovers_simulated_truth_three_level_correlated()
    spec, d, res = _SIM_CACHE["truth3"]
    ref = fit(spec, d, engine="lme4")
    a, b = res.fixed.set_index("term"), ref.fixed.set_index("term")
    for term in a.index:
        assert rel(a.loc[term, "estimate"], b.loc[term, "estimate"]) < FIXED_RTOL
        assert rel(a.loc[term, "df"], b.loc[term, "df"]) < DF_RTOL, term
    assert b.loc["x_tm_c", "df"] < 70


def test_mixedlm_recovers_simulated_truth_two_level():
    pytest.importorskip("mixedlm")
    d = simulate_two_level(np.random.default_rng(5))
    res = fit(TWO_LEVEL_SPEC, d, engine="mixedlm", cross_check="statsmodels")
    assert "cross_check_disagreement" not in res.flags
    fx = res.fixed.set_index("term")
    for term, value in TRUTH["fixed"].items():
        assert abs(fx.loc[term, "estimate"] - value) < 3.5 * fx.loc[term, "se"], term
    vc = res.variance_components.set_index(["group", "term"])
    assert math.sqrt(vc.loc[("patient", "Intercept"), "variance"]) == pytest.approx(TRUTH["sd_int"], rel=0.2)
    assert math.sqrt(vc.loc[("patient", "x_cwc"), "variance"]) == pytest.approx(TRUTH["sd_slope"], rel=0.35)


def test_fitresult_helpers_work_for_external_engines():
    pytest.importorskip("mixedlm")
    res, _ = _reference_fit("mixedlm", "sleepstudy_corr")
    c = res.contrast({"Days": 1.0})
    assert c["se"] == pytest.approx(res.fixed.loc[1, "se"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        json.dumps(res.to_dict(include_random_effects=True))
    assert np.allclose(res.fitted["fitted_conditional"] + res.fitted["resid"], load_data("sleepstudy.csv")["Reaction"])
