"""Contrasts and joint tests with Satterthwaite df (alliance.engines.ddf, FitResult.contrast /
wald_test) against lmerTest's ``contest()``, the z / chi-square fallback, and the CI coverage of a
therapist-level contrast on data simulated with known truth.

Committed lmerTest reference: tests/reference/contest_satterthwaite_three_level.csv, made by
``Rscript tests/r/contest_satterthwaite.R tests/data/three_level.csv <out.csv>`` (lmerTest 3.1.3,
lme4 1.1.31).  Tolerances, mixedlm against lmerTest: df within DF_RTOL (relative; mixedlm
differentiates the profiled Vcov(b) in theta and adds sigma's uncertainty as 2 / (n - p), lmerTest
differentiates in (theta, sigma): measured 2.5e-5), estimates, SEs, t and F within STAT_RTOL
(relative), p within P_ATOL (absolute) and P_RTOL (relative).  The lme4 engine reads lmerTest's own
Jacobian, so it must agree to LME4_RTOL.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from alliance.engines.dispatch import fit
from alliance.engines.spec import DF_METHOD, JOINT_DF_METHOD, ModelSpec, RandomTerm
from testkit import ROOT

DATA = ROOT / "tests/data/three_level.csv"
R_SCRIPT = ROOT / "tests/r/contest_satterthwaite.R"
R_REFERENCE = ROOT / "tests/reference/contest_satterthwaite_three_level.csv"
DF_RTOL = 1e-3
STAT_RTOL = 1e-4
P_ATOL = 1e-4
P_RTOL = 1e-2
LME4_RTOL = 1e-6
#: the R script's model (its header)
SPEC = ModelSpec(
    "contest",
    "y",
    ("x_cwc", "x_pm_c", "session_c", "arm", "x_cwc:arm"),
    (RandomTerm("therapist"), RandomTerm("patient", slopes=("x_cwc",), correlated=False, nested_in="therapist")),
    categorical=(("arm", "A"),),
)


def three_level_with_arm() -> pd.DataFrame:
    """tests/data/three_level.csv with the R script's arm: therapist number modulo 3 -> A, B, C."""
    d = pd.read_csv(DATA)
    d["arm"] = np.array(["A", "B", "C"])[d["therapist"].str[1:].astype(int) % 3]
    return d


@pytest.fixture(scope="module")
def mixedlm_fit():
    return fit(SPEC, three_level_with_arm(), engine="mixedlm")


def pipeline_tests(result, reference: pd.DataFrame) -> pd.DataFrame:
    """The reference's contrasts and joint tests computed by ``result`` (same columns)."""
    rows = []
    for r in reference.to_dict(orient="records"):
        if r["kind"] == "t":
            weights = {k: float(v) for k, v in (item.split("=") for item in r["weights"].split(";"))}
            rows.append({"name": r["name"], **result.contrast(weights)})
        else:
            rows.append(
                {"name": r["name"], "estimate": math.nan, "se": math.nan, **result.wald_test(r["weights"].split(";"))}
            )
    return pd.DataFrame(rows).set_index("name")


def compare(ours: pd.DataFrame, reference: pd.DataFrame, stat_rtol: float, df_rtol: float, p_rtol: float) -> None:
    ref = reference.set_index("name")
    for name, r in ref.iterrows():
        o = ours.loc[name]
        for col in ("estimate", "se", "statistic"):
            if not math.isnan(r[col]):
                assert o[col] == pytest.approx(r[col], rel=stat_rtol), (name, col)
        assert o["df"] == pytest.approx(r["df"], rel=df_rtol), (name, "df")
        if r["kind"] == "F":
            assert o["df_denominator"] == pytest.approx(r["df_denominator"], rel=df_rtol), (name, "df_denominator")
        assert abs(o["p"] - r["p"]) <= P_ATOL and o["p"] == pytest.approx(r["p"], rel=p_rtol), (name, "p")


def test_mixedlm_contrasts_and_joint_tests_agree_with_lmertest_committed(mixedlm_fit):
    reference = pd.read_csv(R_REFERENCE)
    assert list(reference["kind"]) == ["t"] * 5 + ["F"] * 3
    ours = pipeline_tests(mixedlm_fit, reference)
    compare(ours, reference, STAT_RTOL, DF_RTOL, P_RTOL)
    assert set(ours["df_method"]) == {"t, Satterthwaite (mixedlm 1.3.0)", "F, Satterthwaite (mixedlm 1.3.0)"}
    # the therapist-level arm test has about 27 denominator df, not the chi-square's infinity
    assert ours.loc["arm", "df_denominator"] == pytest.approx(27.009, abs=0.01)


def test_a_one_coefficient_contrast_has_the_fixed_effects_df(mixedlm_fit):
    """The same df method as the fixed-effects table: contrast e_j reproduces its df and p exactly."""
    for row in mixedlm_fit.fixed.to_dict(orient="records"):
        c = mixedlm_fit.contrast({row["term"]: 1.0})
        assert c["df"] == pytest.approx(row["df"], rel=1e-12), row["term"]
        assert c["p"] == pytest.approx(row["p"], rel=1e-9), row["term"]
        assert (c["ci_low"], c["ci_high"]) == pytest.approx((row["ci_low"], row["ci_high"]), rel=1e-9)
        # and an F test of that coefficient alone is its t test squared
        f = mixedlm_fit.wald_test([row["term"]])
        assert (f["statistic"], f["df"], f["df_denominator"]) == pytest.approx((c["statistic"] ** 2, 1, c["df"]))


def test_without_satterthwaite_data_contrasts_fall_back_to_z_and_chi_square(mixedlm_fit):
    bare = dataclasses.replace(mixedlm_fit, ddf=None)
    c = bare.contrast({"x_pm_c": 1.0, "x_cwc": -1.0})
    assert c["df_method"] == DF_METHOD == "Wald z (asymptotic)" and math.isnan(c["df"])
    assert c["p"] == pytest.approx(2 * scipy.stats.norm.sf(abs(c["statistic"])), rel=1e-12)
    assert c["ci_high"] - c["estimate"] == pytest.approx(1.959963984540054 * c["se"], rel=1e-12)
    w = bare.wald_test(["arm[T.B]", "arm[T.C]"])
    assert w["df_method"] == JOINT_DF_METHOD == "Wald chi-square (asymptotic)" and math.isnan(w["df_denominator"])
    f = mixedlm_fit.wald_test(["arm[T.B]", "arm[T.C]"])
    assert w["df"] == f["df"] == 2 and w["statistic"] == pytest.approx(2 * f["statistic"], rel=1e-10)
    assert w["p"] < f["p"]  # chi-square ignores the 27 denominator df: anti-conservative


@pytest.mark.slow
@pytest.mark.needs_r  # tests/conftest.py skips it without Rscript (and fails it in CI)
def test_contest_agrees_with_lmertest_live(mixedlm_fit, tmp_path):
    """Reruns the R script; mixedlm to the stated tolerances, the lme4 engine (lmerTest's own
    Jacobian through alliance.engines.ddf) to LME4_RTOL."""
    out = tmp_path / "contest.csv"
    subprocess.run(["Rscript", str(R_SCRIPT), str(DATA), str(out)], check=True, cwd=ROOT, capture_output=True)
    reference = pd.read_csv(out)
    compare(pipeline_tests(mixedlm_fit, reference), reference, STAT_RTOL, DF_RTOL, P_RTOL)
    lme4_fit = fit(SPEC, three_level_with_arm(), engine="lme4")
    compare(pipeline_tests(lme4_fit, reference), reference, 1e-6, LME4_RTOL, 1e-5)


# --------------------------------------------------------------------------------------------
# Recovery: CI coverage of a therapist-level contrast, type I error of a joint test
# --------------------------------------------------------------------------------------------

#: a small trial: few therapists, so that a therapist-level contrast has about 9 df, where z and t differ
N_THERAPISTS, N_PATIENTS, N_SESSIONS = 12, 6, 5
#: truth: arm effects at the therapist level, a within-patient slope not moderated by arm
TRUE_ARM = {"A": 0.0, "B": 0.5, "C": 0.2}
TRUE_SLOPE = -0.4
SD_THERAPIST, SD_PATIENT, SD_SLOPE, SD_RESIDUAL = 1.0, 1.0, 0.2, 1.0
RECOVERY_SPEC = ModelSpec(
    "recovery",
    "y",
    ("x_cwc", "arm", "x_cwc:arm"),
    (RandomTerm("therapist"), RandomTerm("patient", slopes=("x_cwc",), correlated=False, nested_in="therapist")),
    categorical=(("arm", "A"),),
)
REPLICATIONS = 300


def simulate_small_trial(rng: np.random.Generator) -> pd.DataFrame:
    """Therapists nested in three arms (4 each), patients in therapists, sessions in patients, from
    the module's truth (random therapist and patient intercepts, a random within-patient slope)."""
    therapist = np.repeat(np.arange(N_THERAPISTS), N_PATIENTS * N_SESSIONS)
    patient = np.repeat(np.arange(N_THERAPISTS * N_PATIENTS), N_SESSIONS)
    arm = np.array(["A", "B", "C"])[therapist % 3]
    x = rng.standard_normal(len(patient))
    x_cwc = x - pd.Series(x).groupby(patient).transform("mean").to_numpy()
    y = (
        np.array([TRUE_ARM[a] for a in arm])
        + TRUE_SLOPE * x_cwc
        + SD_THERAPIST * rng.standard_normal(N_THERAPISTS)[therapist]
        + SD_PATIENT * rng.standard_normal(N_THERAPISTS * N_PATIENTS)[patient]
        + SD_SLOPE * rng.standard_normal(N_THERAPISTS * N_PATIENTS)[patient] * x_cwc
        + SD_RESIDUAL * rng.standard_normal(len(patient))
    )
    return pd.DataFrame(
        {
            "therapist": [f"T{t}" for t in therapist],
            "patient": [f"P{p}" for p in patient],
            "arm": arm,
            "x_cwc": x_cwc,
            "y": y,
        }
    )


def recovery_replicate(seed: np.random.SeedSequence) -> dict[str, float]:
    """One replication: the B - C contrast (t and, without the df, z) and the joint test of the
    x_cwc x arm block (true value 0: F and chi-square)."""
    import warnings

    data = simulate_small_trial(np.random.default_rng(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(RECOVERY_SPEC, data, engine="mixedlm")
    weights = {"arm[T.B]": 1.0, "arm[T.C]": -1.0}
    truth = TRUE_ARM["B"] - TRUE_ARM["C"]
    t, z = result.contrast(weights), dataclasses.replace(result, ddf=None).contrast(weights)
    block = ["x_cwc:arm[T.B]", "x_cwc:arm[T.C]"]
    return {
        "covered_t": t["ci_low"] <= truth <= t["ci_high"],
        "covered_z": z["ci_low"] <= truth <= z["ci_high"],
        "df": t["df"],
        "reject_f": result.wald_test(block)["p"] < 0.05,
        "reject_chi2": dataclasses.replace(result, ddf=None).wald_test(block)["p"] < 0.05,
        "boundary": "boundary" in result.flags,
    }


@pytest.mark.slow
def test_satterthwaite_contrast_ci_covers_a_known_therapist_level_difference():
    """Over REPLICATIONS seeded trials of 12 therapists: the t CI of the arm B - C difference
    (about 9 df) covers the truth at about 95 %; the z CI covers it less often (what the df are for);
    the F test of an interaction block without effect rejects at about 5 %.  Measured (seed
    20261201, 2026-12-01, 170 s on 2 busy cores): t coverage 0.970, z coverage 0.950, mean df 9.0 (12
    therapists - 3 arms: the balanced design's exact df), F rejections 0.030, chi-square 0.040; 21 % of
    the fits put the small slope variance (SD 0.2) on the boundary."""
    from alliance.dynamics.recovery import map_replications

    seeds = np.random.SeedSequence(20261201).spawn(REPLICATIONS)
    runs = pd.DataFrame(map_replications(recovery_replicate, seeds, processes=2))
    summary = runs.mean()
    print("\n" + summary.to_string())
    mc_se = math.sqrt(0.95 * 0.05 / REPLICATIONS)  # 0.0126
    assert abs(summary["covered_t"] - 0.95) < 2.5 * mc_se, summary.to_string()
    assert summary["covered_z"] < summary["covered_t"] - 0.01, summary.to_string()
    assert 6 < summary["df"] < 14, summary.to_string()
    assert 0.02 <= summary["reject_f"] <= 0.085, summary.to_string()
