"""Every model of the demo suite agrees with lme4/lmerTest.

The references (tests/reference/suite/demo_<model>.json) come from tests/r/demo_suite.R, which fits
the suite's models with lmerTest on a compact export of the cleaned demo data
(tests/data/demo_analysis.csv, tests/data/demo_patients.csv) and derives the model-specific
variables itself from their definitions.  Here the suite (alliance.models.suite.fit_model /
fit_stratum, the pipeline's own code path from the config entry to the tables) fits the same
exports, with the pipeline's default engine (config/config.yaml ``run.engine``: mixedlm); the
real-data pre/post case also with the reference Python engine, statsmodels.

Tolerances (relative, with the SE as the floor of the scale of an estimate near 0):
fixed effects 1e-4, standard errors and variance components 1e-3.  The default engine meets them
on every model and stratum, the correlated three-level model included, with no exception.
statsmodels is compared with lme4 on the engine reference models only (tests/engines/test_engine.py):
it cannot fit the correlated three-level model (it fits it as ``||`` with the flag ``simplified``)
and stops short of lme4's optimum on flat lagged-model likelihoods (docs/engines.md).

Regenerate the exports after a change of the cleaning stage:
``python tests/engines/test_suite_lme4.py --write-data``, then
``Rscript tests/r/demo_suite.R tests/reference/suite --export-anorexia tests/data/anorexia.csv``.
Real data for the pre/post case: MASS::anorexia (tests/data/anorexia.csv).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from alliance.models.config import model_context, strata  # noqa: E402
from alliance.models.suite import fit_model, fit_stratum  # noqa: E402
from testkit import demo_config  # noqa: E402
from testkit.demo_exports import DATA, export_demo_tables, read_exports, write_exports  # noqa: E402

REFERENCE = ROOT / "tests" / "reference" / "suite"
R_SCRIPT = ROOT / "tests" / "r" / "demo_suite.R"

FIXED_RTOL = 1e-4
SE_RTOL = 1e-3
VC_RTOL = 1e-3
CORR_ATOL = 1e-3
R2_RTOL = 1e-3
LOGLIK_ATOL = 1e-3
#: the pipeline's default engine (the demo config's run.engine) and the reference Python engine
DEFAULT_ENGINE = demo_config()["run"]["engine"]
ENGINES = [DEFAULT_ENGINE, "statsmodels"]
#: the whole demo suite is compared for the pipeline's default engine.  statsmodels is compared with
#: lme4 on the engine reference models (tests/engines/test_engine.py), not over the whole suite: on
#: the lagged demo its optimisers stop short of lme4's optimum on the flat likelihoods of some lagged
#: models and strata (0.06-0.51 log-likelihood units, measured 2026-11-30; docs/engines.md)
SUITE_ENGINES = [DEFAULT_ENGINE]
#: a variance component below this share of the residual variance is "on the boundary": both
#: engines must put it there (absolute difference <= this share), its relative value is noise
VC_BOUNDARY_SHARE = 1e-4

CONFIG = demo_config()
# the models as specified (lme4's references are of those): a singular fit is not simplified here
# (analysis.singular_fits; the simplified fits' agreement with lme4: tests/models/test_singular_fits.py)
CONTEXT = {**model_context(CONFIG), "singular_fits": "keep"}
# the mixed models (an RI-CLPM, type: riclpm, has no engine spec: tests/models/test_riclpm_suite.py)
MODELS = {m["name"]: m for m in CONFIG["models"] if m.get("enabled", True) and m.get("type") != "riclpm"}
CASES = sorted(MODELS) + [
    f"{name}_stratum_{s}" for name, m in sorted(MODELS.items()) if m.get("strata") for s in strata(m, CONTEXT["labels"])
]
_CACHE: dict[tuple[str, str], dict] = {}


def _fitted(case: str, engine: str = DEFAULT_ENGINE) -> dict:
    if (case, engine) not in _CACHE:
        sessions, patients = read_exports()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if "_stratum_" in case:
                name, stratum = case.split("_stratum_")
                _CACHE[case, engine] = fit_stratum(MODELS[name], stratum, sessions, patients, CONTEXT, engine=engine)
            else:
                _CACHE[case, engine] = fit_model(MODELS[case], sessions, patients, CONTEXT, engine=engine)
    return _CACHE[case, engine]


def _skip_simplified(tables: dict, engine: str) -> None:
    """statsmodels fits a correlated nested slope as ||: no lme4 reference of that form exists."""
    if "simplified" in tables["fit"]["flags"]:
        assert engine == "statsmodels", f"{engine} must fit every model of the suite as specified"
        pytest.skip("statsmodels fits this model as || (flag simplified); compared for the default engine")


def _reference(case: str) -> dict:
    name = case if case == "anorexia_prepost" else f"demo_{case}"
    return json.loads((REFERENCE / f"{name}.json").read_text())


def _vc_key(row: dict) -> tuple[str, str]:
    if row["grp"] == "Residual":
        return ("Residual", "Residual")
    grp = re.sub(r"\.\d+$", "", row["grp"]).replace(".", ":")  # (1 + x || a:b) -> "a.b", "a.b.1"
    term = row["var1"] if row["var2"] is None else f"{row['var1']}:{row['var2']}"
    return (grp, term)


def _plain_formula(formula: str) -> str:
    formula = re.sub(r'relevel\(factor\((\w+)\), ref = "[^"]*"\)', r"\1", formula)
    return re.sub(r"\s+", " ", formula).strip()


def _close(a: float, b: float, rtol: float, scale: float = 0.0) -> bool:
    return abs(a - b) <= rtol * max(abs(b), scale)


# =============================================================================================


def test_exports_match_the_cleaned_demo_data():
    """The committed exports are what the intake stage makes of the demo data today."""
    sessions, patients = export_demo_tables()
    committed_s, committed_p = read_exports()
    pd.testing.assert_frame_equal(committed_s, sessions.reset_index(drop=True), check_dtype=False, rtol=1e-9)
    pd.testing.assert_frame_equal(committed_p, patients.reset_index(drop=True), check_dtype=False, rtol=1e-9)


def test_every_enabled_model_and_stratum_has_a_reference():
    assert len(CASES) == len(MODELS) + 7  # the moderation model: all + 3 therapies x 2 conditions
    for case in CASES:
        assert (REFERENCE / f"demo_{case}.json").exists(), case


def test_the_default_engine_fits_the_correlated_three_level_model():
    """The demo's three_level model has a correlated patient intercept and slope nested in
    therapists; the default engine fits it as stated and the reference is of that form."""
    assert DEFAULT_ENGINE == "mixedlm"
    assert MODELS["three_level"]["random"][1]["correlated"] is True
    assert "(1 + alliance_within_patient | therapist:patient)" in _reference("three_level")["formula"]
    fit = _fitted("three_level")["fit"]
    assert "simplified" not in fit["flags"] and fit["fit"]["engine"] == "mixedlm"
    assert "Satterthwaite" in fit["fit"]["df_method"]


@pytest.mark.parametrize("engine", SUITE_ENGINES)
@pytest.mark.parametrize("case", CASES)
def test_agreement_with_lme4(case, engine):
    tables, ref = _fitted(case, engine), _reference(case)
    _skip_simplified(tables, engine)
    fit = tables["fit"]
    assert _plain_formula(fit["fit"]["formula_lme4_fitted"]) == _plain_formula(ref["formula"])
    assert fit["sample"]["n_obs"] == ref["n_obs"]
    assert "not_converged" not in fit["flags"]
    if ref["is_singular"]:
        assert "boundary" in fit["flags"], "lme4 finds a singular fit: the suite must flag it"

    fixed = tables["fixed"].set_index("term")
    assert sorted(fixed.index) == sorted(f["term"] for f in ref["fixed"])
    fixed_rtol = FIXED_RTOL
    for f in ref["fixed"]:
        got = fixed.loc[f["term"]]
        assert _close(got["estimate"], f["estimate"], fixed_rtol, f["se"]), (f["term"], got["estimate"], f["estimate"])
        assert _close(got["se"], f["se"], SE_RTOL), (f["term"], got["se"], f["se"])

    sigma2 = ref["sigma2"]
    vc = tables["variance"].set_index(["group", "term"])
    assert len(vc) == len(ref["varcor"])
    variances = {(row["grp"], row["var1"]): row["vcov"] for row in ref["varcor"] if row["var2"] is None}
    for row in ref["varcor"]:
        key = _vc_key(row)
        got = vc.loc[key]
        undefined = row["sdcor"] is None or math.isnan(got["correlation"])  # NaN in lme4 or in the engine
        if row["var2"] is not None and undefined:  # allowed only where a variance of the pair is ~0
            assert min(variances[row["grp"], v] for v in (row["var1"], row["var2"])) < VC_BOUNDARY_SHARE * sigma2, key
        elif row["var2"] is not None:  # a covariance: compare the correlation
            assert abs(got["correlation"] - row["sdcor"]) < CORR_ATOL, (key, got["correlation"], row["sdcor"])
        elif row["vcov"] < VC_BOUNDARY_SHARE * sigma2:
            assert abs(got["variance"] - row["vcov"]) <= VC_BOUNDARY_SHARE * sigma2, (key, got["variance"], row["vcov"])
        else:
            assert _close(got["variance"], row["vcov"], VC_RTOL), (key, got["variance"], row["vcov"])

    assert abs(fit["fit"]["loglik"] - ref["loglik"]) < LOGLIK_ATOL


@pytest.mark.parametrize("engine", SUITE_ENGINES)
@pytest.mark.parametrize("case", CASES)
def test_r2_agrees_with_the_mumin_formula_in_r(case, engine):
    tables = _fitted(case, engine)
    _skip_simplified(tables, engine)
    effects = tables["effects"].set_index("statistic")
    ref = _reference(case)["r2"]
    for stat in ("r2_marginal", "r2_conditional"):
        got = float(effects.loc[stat, "value"])
        assert _close(got, ref[stat], R2_RTOL, 1e-9), (stat, got, ref[stat])


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in CASES
        if MODELS.get(c, {}).get("contrasts") or MODELS.get(c, {}).get("moderation") or MODELS.get(c, {}).get("tests")
    ],
)
@pytest.mark.parametrize("engine", SUITE_ENGINES)
def test_contrasts_tests_and_simple_slopes_agree_with_lme4_vcov(case, engine):
    tables, ref = _fitted(case, engine), _reference(case)
    _skip_simplified(tables, engine)
    terms = list(ref["vcov_terms"])
    V = np.array(ref["vcov_fixed"], dtype=float).reshape(len(terms), len(terms))
    b = pd.Series({f["term"]: f["estimate"] for f in ref["fixed"]})[terms].to_numpy()
    contrasts = tables["contrasts"]
    assert len(contrasts) > 0
    for row in contrasts.to_dict(orient="records"):
        if row["kind"] in ("contrast", "simple_slope"):
            w = np.zeros(len(terms))
            if row["kind"] == "simple_slope":  # "term x weight; term x weight"
                pairs = [part.rsplit(" x ", 1)[::-1] for part in row["detail"].split("; ")]
            else:  # "+1 x term -1 x term"
                pairs = re.findall(r"([+-][0-9.e+-]+) x (\S+)", row["detail"])
            assert pairs, row["detail"]
            for weight, name in pairs:
                w[terms.index(name)] += float(weight)
            est, se = float(w @ b), float(math.sqrt(w @ V @ w))
            assert _close(row["estimate"], est, FIXED_RTOL, se), (row["name"], row["estimate"], est)
            assert _close(row["se"], se, SE_RTOL), (row["name"], row["se"], se)
        else:
            idx = [terms.index(t) for t in row["detail"].split("; ")]
            stat = float(b[idx] @ np.linalg.solve(V[np.ix_(idx, idx)], b[idx]))
            assert row["df"] == len(idx)
            if row["df_method"].startswith("F, Satterthwaite"):  # F = chi-square / q (alliance.engines.ddf)
                stat /= len(idx)
            else:
                assert row["df_method"] == "Wald chi-square (asymptotic)", row["df_method"]
            assert _close(row["statistic"], stat, 2 * SE_RTOL), (row["name"], row["statistic"], stat)


ANOREXIA_MODEL = {
    "name": "anorexia_prepost",
    "outcome": "weight",
    "fixed": ["post", "treat", "post:treat"],
    "categorical": {"treat": "Cont"},
    "random": [{"group": "patient"}],
    "contrasts": [{"name": "cbt_minus_ft", "weights": {"post:treat[T.CBT]": 1, "post:treat[T.FT]": -1}}],
    "tests": [{"name": "treatment_by_time", "terms": ["post:treat"]}],
}


@pytest.mark.parametrize("engine", ENGINES)
def test_anorexia_pre_post_agrees_with_lme4(engine):
    """Real data (MASS::anorexia): weight before and after CBT, family therapy or control."""
    data = pd.read_csv(DATA / "anorexia.csv", dtype={"patient": str, "treat": str})
    assert data.shape == (144, 5) and data["patient"].nunique() == 72
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fit_model(ANOREXIA_MODEL, data, None, {}, engine=engine)
    ref = _reference("anorexia_prepost")
    assert _plain_formula(out["fit"]["fit"]["formula_lme4_fitted"]) == _plain_formula(ref["formula"])
    fixed = out["fixed"].set_index("term")
    for f in ref["fixed"]:
        assert _close(fixed.loc[f["term"], "estimate"], f["estimate"], FIXED_RTOL, f["se"]), f["term"]
        assert _close(fixed.loc[f["term"], "se"], f["se"], SE_RTOL), f["term"]
    vc = out["variance"].set_index(["group", "term"])
    for row in ref["varcor"]:
        assert _close(vc.loc[_vc_key(row), "variance"], row["vcov"], VC_RTOL)
    # the pre/post difference in weight gain, CBT vs family therapy, from lme4's vcov
    terms = list(ref["vcov_terms"])
    V = np.array(ref["vcov_fixed"]).reshape(len(terms), len(terms))
    i, j = terms.index("post:treat[T.CBT]"), terms.index("post:treat[T.FT]")
    est = {f["term"]: f["estimate"] for f in ref["fixed"]}
    contrast = out["contrasts"].set_index("name").loc["cbt_minus_ft"]
    assert _close(contrast["estimate"], est["post:treat[T.CBT]"] - est["post:treat[T.FT]"], FIXED_RTOL, 1.0)
    assert _close(contrast["se"], math.sqrt(V[i, i] + V[j, j] - 2 * V[i, j]), SE_RTOL)
    # family therapy gains 7.7 lb more than control (Hand et al. 1993 data; Venables & Ripley 2002)
    assert fixed.loc["post:treat[T.FT]", "estimate"] == pytest.approx(7.7147, abs=1e-3)


@pytest.mark.slow
@pytest.mark.needs_r
def test_r_references_regenerate(tmp_path):
    """Rerun tests/r/demo_suite.R: the committed references are what R gives today."""
    run = subprocess.run(["Rscript", str(R_SCRIPT), str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    for case in CASES + ["anorexia_prepost"]:
        name = case if case == "anorexia_prepost" else f"demo_{case}"
        new = json.loads((tmp_path / f"{name}.json").read_text())
        old = json.loads((REFERENCE / f"{name}.json").read_text())
        assert new["formula"] == old["formula"] and new["n_obs"] == old["n_obs"]
        for a, b in zip(new["fixed"], old["fixed"]):
            assert a["term"] == b["term"]
            assert math.isclose(a["estimate"], b["estimate"], rel_tol=1e-7, abs_tol=1e-7 * b["se"])
            assert math.isclose(a["se"], b["se"], rel_tol=1e-6)
        assert math.isclose(new["loglik"], old["loglik"], rel_tol=1e-9, abs_tol=1e-6)


if __name__ == "__main__":
    if "--write-data" in sys.argv:
        write_exports()
        print("wrote", DATA / "demo_analysis.csv", DATA / "demo_patients.csv")
