"""The singular-fit policy (alliance.models.singular, analysis.singular_fits; docs/methods.md section 7.6).

Committed lme4 / lmerTest / lm reference: tests/reference/singular_fit.csv, made by
``Rscript tests/r/singular_fit.R tests/data/boundary.csv tests/data/singular_patients.csv <out.csv>``
(tests/data/singular_patients.csv: ``testkit.singular.simulate(20261202, Scenario(n_therapists=20,
per_therapist=8))``, written with 6 decimals).
"""

from __future__ import annotations

import subprocess
import warnings

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml

from alliance.engines.dispatch import fit
from alliance.engines.spec import FitResult, ModelSpec, RandomTerm
from alliance.models import config as model_config
from alliance.models.singular import apply_policy, level_df, next_simplification, singular_fit_table
from alliance.models.suite import fit_model
from alliance.schema import config_schema, schema_default
from testkit import ROOT
from testkit.singular import MODEL, Scenario, simulate

R_SCRIPT = ROOT / "tests/r/singular_fit.R"
SESSIONS = ROOT / "tests/data/boundary.csv"
PATIENTS = ROOT / "tests/data/singular_patients.csv"
R_REFERENCE = ROOT / "tests/reference/singular_fit.csv"
SESSION_SPEC = ModelSpec(
    "sessions",
    "y",
    ("x_cwc", "x_tm_c", "session_c"),
    (RandomTerm("therapist"), RandomTerm("patient", slopes=("x_cwc",), nested_in="therapist")),
)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# --------------------------------------------------------------------------- (a) the policy on simulated data


@pytest.fixture(scope="module")
def zero_therapist_variance():
    """60 therapists x 10 patients, no therapist variance, a therapist-level effect of -8 (seed 2: the
    REML therapist variance is 0, as it is in about half of such samples)."""
    data = simulate(2, Scenario())
    return data, _quiet(fit_model, MODEL, None, data, {})


def test_a_singular_fit_is_refitted_and_both_fits_are_reported(zero_therapist_variance):
    _, tables = zero_therapist_variance
    record = tables["fit"]["singular_fit"]
    assert record["policy"] == "simplify" and record["singular"] and record["simplified"]
    assert record["as_specified"]["flags"] == ["boundary"]
    assert record["as_specified"]["boundary_reasons"] == {
        "therapist": "variance of Intercept 0 <= 1e-06 x residual variance"
    }
    assert [s["step"] for s in record["steps"]] == [3]
    assert record["steps"][0]["formula"] == "y ~ x + z"
    # the tables of the model are the simplified fit's, flagged on every row
    assert set(tables["fixed"]["flags"]) == {"simplified"} and set(tables["fixed"]["fit"]) == {"simplified"}
    assert list(tables["variance"]["group"]) == ["Residual"]
    stats = tables["fit_statistics"].iloc[0]
    assert stats["simplified"] and not stats["boundary"] and stats["as_specified_flags"] == "boundary"
    assert stats["simplification"] == (
        "as specified the fit was singular (therapist: variance of Intercept 0 <= 1e-06 x residual variance); "
        "refitted without the therapist level (intercept variance 0; no random effects left: a linear model) (step 3)"
    )
    # singular_fit.csv: both fits, the as-specified one flagged boundary and not used
    both = tables["singular_fit"]
    assert both.groupby("fit")["flags"].first().to_dict() == {"as_specified": "boundary", "simplified": "simplified"}
    assert both.groupby("fit")["used_for_inference"].first().to_dict() == {"as_specified": False, "simplified": True}
    assert both.loc[(both["fit"] == "as_specified") & (both["kind"] == "variance"), "group"].tolist() == [
        "therapist",
        "Residual",
    ]


def test_the_therapist_level_predictor_is_tested_on_between_therapist_df(zero_therapist_variance):
    data, tables = zero_therapist_variance
    fixed = tables["fixed"].set_index("term")
    # 60 therapists - 1 fixed effect constant within therapists (z) - 1
    assert fixed.loc["z", "df"] == 58.0
    assert fixed.loc["z", "df_method"] == "between therapist: 60 units - 1 fixed effect measured at that level - 1 = 58"
    # the patient-level terms keep the linear model's residual df, n - p
    assert fixed.loc["x", "df"] == 597.0 and fixed.loc["Intercept", "df"] == 597.0
    t = fixed.loc["z", "estimate"] / fixed.loc["z", "se"]
    from scipy import stats

    assert fixed.loc["z", "p"] == pytest.approx(2 * stats.t.sf(abs(t), 58), rel=1e-12)
    assert fixed.loc["z", "ci_high"] - fixed.loc["z", "estimate"] == pytest.approx(
        stats.t.ppf(0.975, 58) * fixed.loc["z", "se"], rel=1e-12
    )
    # the estimates are least squares, and the as-specified fit (on the boundary) is the same point
    X = np.column_stack([np.ones(len(data)), data["x"], data["z"]])
    beta = np.linalg.lstsq(X, data["y"].to_numpy(), rcond=None)[0]
    assert fixed["estimate"].to_numpy() == pytest.approx(beta, rel=1e-9)
    specified = {r["term"]: r for r in tables["fit"]["singular_fit"]["as_specified"]["fixed"]}
    assert specified["z"]["estimate"] == pytest.approx(fixed.loc["z", "estimate"], rel=1e-6)
    assert specified["z"]["df"] == pytest.approx(597.0, rel=1e-6)  # what the as-specified fit tested it on
    assert tables["fit"]["singular_fit"]["steps"][0]["loglik"] == pytest.approx(
        tables["fit"]["singular_fit"]["as_specified"]["loglik"], abs=1e-6
    )


def test_keep_reports_the_singular_fit_as_specified(zero_therapist_variance):
    data, _ = zero_therapist_variance
    tables = _quiet(fit_model, MODEL, None, data, {"singular_fits": "keep"})
    assert tables["fit"]["flags"] == ["boundary"]
    assert (
        tables["fit"]["singular_fit"]["note"]
        == "the fit is singular and kept as specified (analysis.singular_fits: keep)"
    )
    assert tables["fixed"].set_index("term").loc["z", "df"] == pytest.approx(597.0, rel=1e-6)
    assert set(tables["singular_fit"]["fit"]) == {"as_specified"}


def test_a_regular_fit_is_left_alone():
    tables = _quiet(fit_model, MODEL, None, simulate(0, Scenario()), {})
    assert tables["fit"]["flags"] == [] and not tables["fit"]["singular_fit"]["simplified"]
    assert tables["singular_fit"].empty and set(tables["fixed"]["fit"]) == {"as specified"}
    assert 57 < tables["fixed"].set_index("term").loc["z", "df"] < 59  # Satterthwaite, on the therapists


# --------------------------------------------------------------------------- the order of the steps


def _result(spec: ModelSpec, rows: list[tuple[str, str, float]], reasons: dict[str, str]) -> FitResult:
    vc = pd.DataFrame(rows + [("Residual", "Residual", 50.0)], columns=["group", "term", "variance"])
    return FitResult(spec, None, None, vc, None, None, {"boundary_reasons": reasons}, ["boundary"])


def test_steps_follow_the_documented_order():
    spec = SESSION_SPEC
    # 1. a correlation at -1 (and the therapist at 0): the correlations go first
    res = _result(
        spec,
        [
            ("therapist", "Intercept", 0.0),
            ("therapist:patient", "Intercept", 4.0),
            ("therapist:patient", "x_cwc", 0.5),
            ("therapist:patient", "Intercept:x_cwc", -1.4142),
        ],
        {"therapist": "variance 0", "therapist:patient": "correlation -1"},
    )
    number, simpler, what, levels = next_simplification(spec, res)
    assert (number, what, levels) == (1, "the correlations of the random effects of therapist:patient", [])
    assert simpler.random[1] == RandomTerm("patient", slopes=("x_cwc",), correlated=False, nested_in="therapist")
    # 2. then a slope whose variance is 0
    res = _result(
        simpler,
        [("therapist", "Intercept", 0.0), ("therapist:patient", "Intercept", 4.0), ("therapist:patient", "x_cwc", 0.0)],
        {"therapist": "variance 0", "therapist:patient": "variance 0"},
    )
    number, simpler, what, _ = next_simplification(simpler, res)
    assert (number, what) == (2, "the random slope of x_cwc by therapist:patient (variance 0)")
    assert simpler.random[1].slopes == ()
    # 3. then the therapist level; the patients stay nested in therapists
    res = _result(
        simpler, [("therapist", "Intercept", 0.0), ("therapist:patient", "Intercept", 4.0)], {"therapist": "v"}
    )
    number, simpler, what, levels = next_simplification(simpler, res)
    assert (number, what, levels) == (3, "the therapist level (intercept variance 0)", ["therapist"])
    assert simpler.random == (RandomTerm("patient", correlated=False, nested_in="therapist"),)
    # a zero intercept beside a slope with variance: no step of the policy applies
    slope_spec = ModelSpec("m", "y", ("x",), (RandomTerm("patient", slopes=("x",), correlated=False),))
    res = _result(slope_spec, [("patient", "Intercept", 0.0), ("patient", "x", 2.0)], {"patient": "variance 0"})
    assert next_simplification(slope_spec, res) is None


def test_level_df_counts_every_fixed_effect_measured_at_the_level():
    d = pd.read_csv(SESSIONS)
    # x_tm_c is constant within therapists; x_cwc, session_c are not; 20 therapists
    assert level_df(SESSION_SPEC, d, ["therapist"]) == {
        "x_tm_c": (18.0, "between therapist: 20 units - 1 fixed effect measured at that level - 1 = 18")
    }
    # at the patient level (120 therapist:patient units) x_tm_c is constant too
    assert level_df(SESSION_SPEC, d, ["therapist:patient"]) == {
        "x_tm_c": (118.0, "between therapist:patient: 120 units - 1 fixed effect measured at that level - 1 = 118")
    }
    # both dropped: the coarser level's (smaller) df
    assert level_df(SESSION_SPEC, d, ["therapist:patient", "therapist"])["x_tm_c"][0] == 18.0


# --------------------------------------------------------------------------- config


def test_the_config_key_is_optional_and_checked():
    analysis = config_schema()["properties"]["analysis"]
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    assert "singular_fits" not in config["analysis"]  # the shipped config leaves it to the default
    jsonschema.validate(config["analysis"], analysis)
    assert schema_default("analysis", "singular_fits") == "simplify"
    assert model_config.model_context(config)["singular_fits"] == "simplify"
    config["analysis"]["singular_fits"] = "keep"
    jsonschema.validate(config["analysis"], analysis)
    assert model_config.model_context(config)["singular_fits"] == "keep"
    config["analysis"]["singular_fits"] = "drop"
    with pytest.raises(jsonschema.ValidationError, match="'drop' is not one of \\['simplify', 'keep'\\]"):
        jsonschema.validate(config["analysis"], analysis)
    with pytest.raises(ValueError, match="analysis.singular_fits must be one of simplify, keep, got 'drop'"):
        apply_policy("drop", SESSION_SPEC, pd.DataFrame(), None, fit)


# --------------------------------------------------------------------------- (c) agreement with lme4 / lmerTest / lm


def _ours() -> dict[str, pd.DataFrame]:
    """Our singular_fit tables of the two reference datasets (the session model through the policy
    with the default engine, the patient model through the suite)."""
    d = pd.read_csv(SESSIONS)
    result = _quiet(fit, SESSION_SPEC, d)
    sessions = apply_policy("simplify", SESSION_SPEC, d, result, lambda s: _quiet(fit, s, d))
    model = {**MODEL, "name": "patients"}
    patients = _quiet(fit_model, model, None, pd.read_csv(PATIENTS), {})
    return {"sessions": singular_fit_table("sessions", sessions), "patients": patients["singular_fit"]}


@pytest.fixture(scope="module")
def ours():
    return _ours()


def _compare(ours: dict[str, pd.DataFrame], reference: pd.DataFrame) -> None:
    for dataset, table in ours.items():
        ref = reference[reference["dataset"] == dataset]
        for fit_name in ("as_specified", "simplified"):
            mine = table[table["fit"] == fit_name]
            theirs = ref[ref["fit"] == fit_name]
            assert ("boundary" in mine["flags"].iloc[0]) == bool(theirs["singular"].iloc[0]), (dataset, fit_name)
            assert mine["loglik"].iloc[0] == pytest.approx(theirs["loglik"].iloc[0], abs=1e-4)
            fx = mine[mine["kind"] == "fixed"].set_index("term")
            rf = theirs[theirs["kind"] == "fixed"].set_index("term")
            assert list(fx.index) == list(rf.index)
            assert fx["estimate"].to_numpy() == pytest.approx(rf["estimate"].to_numpy(), rel=1e-4, abs=1e-6)
            assert fx["se"].to_numpy() == pytest.approx(rf["se"].to_numpy(), rel=1e-4)
            variances = (mine["kind"] == "variance") & ~mine["term"].str.contains(":")  # R's rows: no covariances
            vc_mine = mine[variances].set_index(["group", "term"])["estimate"]
            vc_ref = theirs[theirs["kind"] == "variance"].set_index(["group", "term"])["estimate"]
            assert vc_mine.sort_index().to_numpy() == pytest.approx(vc_ref.sort_index().to_numpy(), rel=1e-3, abs=1e-6)
        # the simplified fit's df: Satterthwaite (lmerTest) or residual (lm), and the therapist-level
        # predictor's between-therapist df with its p
        simple = table[(table["fit"] == "simplified") & (table["kind"] == "fixed")].set_index("term")
        ref_df = ref[(ref["fit"] == "simplified") & (ref["kind"] == "fixed")].set_index("term")
        between = ref[ref["fit"] == "simplified_between_df"].set_index("term")
        for term in simple.index:
            expected = between if term in between.index else ref_df
            assert simple.loc[term, "df"] == pytest.approx(expected.loc[term, "df"], rel=1e-3), (dataset, term)
            assert simple.loc[term, "p"] == pytest.approx(expected.loc[term, "p"], rel=1e-3), (dataset, term)
        assert set(between.index) == {"x_tm_c", "z"} & set(simple.index)


def test_simplified_fits_agree_with_lme4_lmertest_and_lm_committed(ours):
    reference = pd.read_csv(R_REFERENCE)
    assert len(reference) == 26
    _compare(ours, reference)
    assert ours["sessions"]["dropped"].iloc[-1] == "the therapist level (intercept variance 0)"


@pytest.mark.slow
@pytest.mark.needs_r  # tests/conftest.py skips it without Rscript (and fails it in CI)
def test_simplified_fits_agree_with_lme4_lmertest_and_lm_live(ours, tmp_path):
    out = tmp_path / "singular_fit.csv"
    subprocess.run(
        ["Rscript", str(R_SCRIPT), str(SESSIONS), str(PATIENTS), str(out)], check=True, cwd=ROOT, capture_output=True
    )
    _compare(ours, pd.read_csv(out))


# --------------------------------------------------------------------------- (b) recovery


@pytest.mark.slow
def test_recovery_of_a_therapist_level_effect_on_the_policys_df():
    """Bias and 95 % CI coverage of a therapist-level effect (truth -8) over 200 seeded replications of
    12 therapists x 25 patients (testkit.singular; seeds ``SeedSequence(20261201).spawn(200)``), the model
    ``y ~ x + z + (1 | therapist)`` fitted with the policy (mixedlm engine).  Measured (1 Dec 2026):

    ============================  ========  ======  ===============  ===========================
    truth                         singular  bias    coverage, all    coverage, singular fits
                                                    policy / as-spec policy (df 10) / as specified
    ============================  ========  ======  ===============  ===========================
    no therapist variance         57.0 %    +0.04   97.5 / 96.5 %    95.6 / 93.9 % (114 fits)
    therapist ICC 3 % (tau 2.1)   15.5 %    -0.24   96.5 / 95.5 %    90.3 / 83.9 % (31 fits)
    ============================  ========  ======  ===============  ===========================

    A singular fit tests z on the patient-level df (297) as specified; the policy's between-therapist df
    (12 - 1 - 1 = 10) bring the coverage of those fits back to nominal when the therapist variance is truly
    0 and halve the shortfall when it is small but not 0 (the least-squares SE then ignores it: the df
    cannot repair all of it).  With 60 therapists (10 patients each, tau 0: 56 % singular) the two df give
    the same CIs to the Monte Carlo error (96.4 / 96.4 % of the singular fits): df 58 and 597 differ by 2 %
    in their t quantile.  The Monte Carlo SE of a coverage of 95 % is 1.5 points over 200 replications.
    """
    import functools

    from alliance.dynamics.recovery import map_replications
    from testkit.singular import replicate, summarise

    expected = {
        0.0: {"singular_share": 0.57, "coverage": 0.975, "coverage_as_specified": 0.965, "coverage_singular": 0.956},
        2.1: {"singular_share": 0.155, "coverage": 0.965, "coverage_as_specified": 0.955, "coverage_singular": 0.903},
    }
    as_specified = {0.0: 0.939, 2.1: 0.839}
    for tau, numbers in expected.items():
        scenario = Scenario(n_therapists=12, per_therapist=25, tau=tau)
        seeds = np.random.SeedSequence(20261201).spawn(200)
        rows = map_replications(functools.partial(replicate, scenario=scenario), seeds, processes=2)
        got = summarise(rows, scenario.beta_z)
        sd = float(np.std([r["estimate"] for r in rows], ddof=1))
        assert abs(got["bias"]) < 3 * sd / np.sqrt(len(rows))
        for key, value in numbers.items():
            assert got[key] == pytest.approx(value, abs=0.006), (tau, key)
        assert got["coverage_singular_as_specified"] == pytest.approx(as_specified[tau], abs=0.006), tau
        assert got["coverage_singular"] > got["coverage_singular_as_specified"]
        singular = [r for r in rows if r["singular"]]
        assert {r["df"] for r in singular} == {10.0} and all(r["df_as_specified"] > 290 for r in singular)
