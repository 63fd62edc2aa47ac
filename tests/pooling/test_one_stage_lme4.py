"""The one-stage IPD model (alliance.pooling.one_stage) agrees with lme4/lmerTest, and recovers a known slope.

Data: tests/data/one_stage.csv, the stacked harmonised sessions of the five demo_ipd studies
(``stack_studies`` with the study named by its directory, studies sorted by name; only the columns
the two one-stage models use, 17 significant digits).  References: tests/reference/one_stage/<effect>.json,
written by tests/r/one_stage_reference.R, which fits the two models with lme4::lmer (REML, tight
optimiser tolerances) and takes df and p from lmerTest (Satterthwaite).

Here the pipeline's engine (config/demo_ipd.yaml ``run.engine``: mixedlm) fits the same CSV through
the pipeline's own path (alliance.models.refit.primary_fit).  lme4's reference is of the model as
specified, so the comparison uses the as-specified fit (``singular_fits="keep"``); the fit the
one-stage row reports (fit_one_stage, the singular-fit policy applied) is checked against that row.

Tolerances met (relative unless stated): fixed estimates and SEs 1e-5 (with the SE as the floor of
the scale of an estimate near 0), Satterthwaite df 1e-4, p 1e-3, variance-component SDs 1e-5 (an SD
lme4 puts below 1e-3 residual SD must be there in the engine too), REML log-likelihood 1e-6
absolute; the engine flags ``boundary`` exactly when lme4's isSingular is TRUE.

Regenerate the data after a change of the harmonisation (needs a finished
``make run CONFIG=config/demo_ipd.yaml``, which writes results/demo_ipd/studies/*/harmonised/):
``python tests/pooling/test_one_stage_lme4.py --write-data``, then
``Rscript tests/r/one_stage_reference.R tests/data/one_stage.csv tests/reference/one_stage``.
"""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from alliance.models.refit import primary_fit  # noqa: E402
from alliance.pooling.one_stage import ONE_STAGE_MODELS, fit_one_stage, one_stage_model, stack_studies  # noqa: E402
from testkit.lme4_refs import ref_vc_key  # noqa: E402

DATA_CSV = ROOT / "tests" / "data" / "one_stage.csv"
REFERENCE = ROOT / "tests" / "reference" / "one_stage"
R_SCRIPT = ROOT / "tests" / "r" / "one_stage_reference.R"
#: where a run of config/demo_ipd.yaml writes the harmonised sessions of each study
HARMONISED = ROOT / "results" / "demo_ipd" / "studies"
#: the columns the two one-stage models use (outcomes, predictors, grouping factors) and session
COLUMNS = [
    "study",
    "patient",
    "session",
    "symptoms",
    "symptoms_next",
    "alliance_within_patient",
    "alliance_between_patient",
    "symptoms_within_patient",
    "symptoms_between_patient",
    "session_c",
]
#: the pipeline's engine for the pooled run
ENGINE = yaml.safe_load((ROOT / "config" / "demo_ipd.yaml").read_text())["run"]["engine"]
EFFECTS = list(ONE_STAGE_MODELS)

# tolerances of the agreement with lme4, 4-100 times the largest differences measured (2026-12-02,
# mixedlm 1.3.0 vs lme4/lmerTest; estimates 3e-8, SEs 2.2e-6, df 1.0e-5, p 1.7e-4, SDs 2.4e-6,
# log-likelihood 3e-11) and tighter than the suite's (tests/engines/test_suite_lme4.py: 1e-4, 1e-3)
FIXED_RTOL = 1e-5  # fixed estimates (scale: max(|estimate|, SE)) and SEs
DF_RTOL = 1e-4  # Satterthwaite df
P_RTOL = 1e-3  # p values (measured 1.7e-4: the lagged intercept's p 1e-8 on 4.3 df)
VC_RTOL = 1e-5  # variance-component SDs
VC_ZERO = 1e-3  # an SD below this share of the residual SD is at 0: the other fit's must be too
LOGLIK_ATOL = 1e-6  # REML log-likelihood


# ---- data ------------------------------------------------------------------------------------


def export_stacked(studies: Path = HARMONISED) -> pd.DataFrame:
    """The stacked harmonised sessions of the studies under ``studies`` (one directory per study,
    named by it, sorted by name), the :data:`COLUMNS` only."""
    paths = sorted(studies.glob("*/harmonised/sessions.parquet"), key=lambda p: p.parents[1].name)
    if not paths:
        raise FileNotFoundError(f"no {studies}/*/harmonised/sessions.parquet: run make run CONFIG=config/demo_ipd.yaml")
    stacked = stack_studies({p.parents[1].name: pd.read_parquet(p) for p in paths})
    return stacked[COLUMNS]


def write_data(path: Path = DATA_CSV) -> pd.DataFrame:
    """Write :func:`export_stacked` to ``path`` (17 significant digits: the doubles exactly, LF line ends)."""
    frame = export_stacked()
    frame.to_csv(path, index=False, float_format="%.17g", lineterminator="\n")
    return frame


@functools.cache
def _data() -> pd.DataFrame:
    return pd.read_csv(DATA_CSV, dtype={"study": str, "patient": str})


def read_data() -> pd.DataFrame:
    """The committed stacked sessions (a fresh copy), identifiers read as text."""
    return _data().copy()


def reference(effect: str) -> dict:
    return json.loads((REFERENCE / f"{effect}.json").read_text())


def _plain(formula: str) -> str:
    return " ".join(formula.split())


def _close(a: float, b: float, rtol: float, scale: float = 0.0) -> bool:
    return abs(a - b) <= rtol * max(abs(b), scale)


@functools.cache
def _fits(effect: str):
    """The engine's fit of the model as specified (the reference's form), with its counts, and the
    one-stage row of fit_one_stage with the fit it reports (the singular-fit policy applied)."""
    model = one_stage_model(effect)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        as_specified, counts, _ = primary_fit(model, read_data(), None, ENGINE, singular_fits="keep")
        row, record = fit_one_stage(read_data(), effect, engine=ENGINE)
        used, _, structure = primary_fit(model, read_data(), None, ENGINE)
    return as_specified, counts, row, record, used, structure


def _vc_sd(result) -> dict[tuple[str, str], float]:
    vc = result.variance_components
    return {(g, t): float(sd) for g, t, sd in zip(vc["group"], vc["term"], vc["sd"])}


def assert_fit_agrees(result, ref: dict) -> None:
    """Fixed effects (estimate, SE, Satterthwaite df), variance-component SDs and the REML
    log-likelihood of an engine fit against an lme4 reference (tolerances above)."""
    fixed = result.fixed.set_index("term")
    assert sorted(fixed.index) == sorted(f["term"] for f in ref["fixed"])
    # a term measured at a level the singular-fit policy dropped is tested on that level's df
    # (alliance.models.singular.level_df), not Satterthwaite's: its df and p are not lme4's
    methods = result.fit.get("term_df_method") or {}
    for f in ref["fixed"]:
        got = fixed.loc[f["term"]]
        assert _close(got["estimate"], f["estimate"], FIXED_RTOL, f["se"]), (f["term"], got["estimate"], f["estimate"])
        assert _close(got["se"], f["se"], FIXED_RTOL), (f["term"], got["se"], f["se"])
        if "Satterthwaite" not in methods.get(f["term"], result.fit["df_method"]):
            assert result.fit.get("simplified"), f["term"]
            continue
        assert _close(got["df"], f["df_satterthwaite"], DF_RTOL), (f["term"], got["df"], f["df_satterthwaite"])
        assert _close(got["p"], f["p_satterthwaite"], P_RTOL, 1e-300), (f["term"], got["p"], f["p_satterthwaite"])
    sd = _vc_sd(result)
    sigma = math.sqrt(ref["sigma2"])
    assert len(sd) <= len(ref["varcor"])
    for row in ref["varcor"]:
        key = ref_vc_key(row)
        if key not in sd:  # a component the policy dropped: lme4 must have it at 0
            assert result.fit.get("simplified") and row["sdcor"] <= VC_ZERO * sigma, (key, row["sdcor"])
        elif row["sdcor"] <= VC_ZERO * sigma:  # at 0 in lme4: at 0 in the engine too
            assert sd[key] <= VC_ZERO * sigma, (key, sd[key], row["sdcor"])
        else:
            assert _close(sd[key], row["sdcor"], VC_RTOL), (key, sd[key], row["sdcor"])
    assert abs(result.fit["loglik"] - ref["loglik"]) < LOGLIK_ATOL, (result.fit["loglik"], ref["loglik"])


# =============================================================================================


def test_the_data_are_the_stacked_studies():
    data = read_data()
    assert list(data.columns) == COLUMNS
    assert list(dict.fromkeys(data["study"])) == sorted(data["study"].unique())  # stacked in name order
    assert data["study"].nunique() == 5
    # the within-patient alliance is person-mean centred within each study's patients
    centred = data.dropna(subset=["alliance_within_patient"]).groupby(["study", "patient"])["alliance_within_patient"]
    assert centred.mean().abs().max() < 1e-9


@pytest.mark.parametrize("effect", EFFECTS)
def test_one_stage_model_agrees_with_lme4(effect):
    """The engine's as-specified fit of each one-stage model against lmerTest, and its singular-fit
    verdict against lme4's isSingular."""
    result, counts, *_ = _fits(effect)
    ref = reference(effect)
    assert _plain(result.fit["formula_lme4_fitted"]) == _plain(ref["formula"])
    assert result.fit["engine"] == ENGINE
    assert result.fit["method"] == ref["method"] == "REML"
    assert counts["n_obs"] == ref["n_obs"] and counts["n_patients"] == ref["n_groups"]["study:patient"]
    assert result.fit["n_groups"] == ref["n_groups"]
    assert "not_converged" not in result.flags and "simplified" not in result.flags
    assert "Satterthwaite" in result.fit["df_method"]
    assert ("boundary" in result.flags) == ref["is_singular"], (result.flags, ref["is_singular"])
    assert_fit_agrees(result, ref)


@pytest.mark.parametrize("effect", EFFECTS)
def test_the_one_stage_row_is_the_fit_it_reports(effect):
    """fit_one_stage's row: the focal fixed effect and the study variance components of the fit the
    singular-fit policy uses; where the policy dropped only a variance lme4 puts at 0, that fit is
    lme4's optimum as well, so the row agrees with lme4 too."""
    as_specified, counts, row, record, used, structure = _fits(effect)
    ref = reference(effect)
    focal = one_stage_model(effect)["fixed"][0]
    fixed = used.fixed.set_index("term").loc[focal]
    for key in ("estimate", "se", "df", "p", "ci_low", "ci_high"):
        assert row[key] == float(fixed[key]), key
    sd = _vc_sd(used)
    assert row["study_slope_sd"] == sd[("study", focal)]
    assert row["study_intercept_sd"] == sd[("study", "Intercept")]
    assert row["term"] == focal and row["n_studies"] == 5
    assert row["n_obs"] == ref["n_obs"] and row["n_patients"] == ref["n_groups"]["study:patient"]
    assert row["flags"] == (";".join(used.flags) or "none")
    assert ("simplified" in row["flags"]) == structure.simplified
    if not structure.simplified:
        assert row["estimate"] == float(as_specified.fixed.set_index("term").loc[focal, "estimate"])
    assert record["structure"] == (structure.dropped or "as specified")
    # the reported numbers against lme4
    lme4_focal = {f["term"]: f for f in ref["fixed"]}[focal]
    assert _close(row["estimate"], lme4_focal["estimate"], FIXED_RTOL, lme4_focal["se"])
    assert _close(row["se"], lme4_focal["se"], FIXED_RTOL)
    assert _close(row["df"], lme4_focal["df_satterthwaite"], DF_RTOL)
    assert_fit_agrees(used, ref)


def test_the_demo_fits_are_singular_as_in_lme4():
    """What the references hold today (a change of the demo data would show here first): lme4 finds
    both fits singular, the same-session model's study intercept and the lagged model's patient
    intercept at 0; the policy keeps the former (a slope is left at the study level: no step applies)
    and drops the patient level of the latter."""
    same, lagged = reference("same_session"), reference("lagged_alliance_symptoms")
    assert same["is_singular"] and lagged["is_singular"]
    assert _fits("same_session")[2]["flags"] == "boundary"
    assert _fits("lagged_alliance_symptoms")[2]["flags"] == "simplified"
    assert "study:patient" in _fits("lagged_alliance_symptoms")[5].dropped


@pytest.mark.slow
@pytest.mark.needs_r
def test_r_references_regenerate(tmp_path):
    """Rerun tests/r/one_stage_reference.R: the committed references are what R gives today."""
    run = subprocess.run(
        ["Rscript", str(R_SCRIPT), str(DATA_CSV), str(tmp_path)], capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for effect in EFFECTS:
        new = json.loads((tmp_path / f"{effect}.json").read_text())
        old = reference(effect)
        assert new["formula"] == old["formula"] and new["n_obs"] == old["n_obs"]
        assert new["n_groups"] == old["n_groups"] and new["is_singular"] == old["is_singular"]
        assert [f["term"] for f in new["fixed"]] == [f["term"] for f in old["fixed"]]
        # lme4's own reruns of these singular fits differ: an SE by 1.5e-6 (relative) in a fresh clone under
        # two pytest workers; the tolerances are those of the engine's agreement with lme4 above
        for a, b in zip(new["fixed"], old["fixed"]):
            assert math.isclose(a["estimate"], b["estimate"], rel_tol=1e-6, abs_tol=1e-6 * b["se"]), a["term"]
            assert math.isclose(a["se"], b["se"], rel_tol=1e-5), a["term"]
            assert math.isclose(a["df_satterthwaite"], b["df_satterthwaite"], rel_tol=1e-4), a["term"]
        sigma = math.sqrt(old["sigma2"])
        for a, b in zip(new["varcor"], old["varcor"]):
            assert (a["grp"], a["var1"]) == (b["grp"], b["var1"])
            assert math.isclose(a["sdcor"], b["sdcor"], rel_tol=1e-5, abs_tol=1e-5 * sigma), (a["grp"], a["var1"])
        assert math.isclose(new["loglik"], old["loglik"], rel_tol=1e-9, abs_tol=1e-6)


# ---- recovery of a known slope ----------------------------------------------------------------

RECOVERY = {
    "slope": -3.0,
    "slope_sd": 0.5,
    "study_sd": 2.0,
    "patient_sd": 5.0,
    "between": -2.0,
    "session": -1.0,
    "residual_sd": 4.0,
}


@functools.cache
def _design(n_studies: int, n_patients: int, n_sessions: int) -> pd.DataFrame:
    """The labels and sessions of the simulated stacked data (the same in every replication)."""
    pid = np.repeat(np.arange(n_studies * n_patients), n_sessions)
    study = pid // n_patients
    return pd.DataFrame(
        {
            "study": np.char.add("s", study.astype(str)),
            "patient": np.char.add(np.char.add("s", study.astype(str)), np.char.add("-p", pid.astype(str))),
            "session_c": np.tile(np.arange(n_sessions), n_studies * n_patients).astype(float),
        }
    )


def simulate_stacked(rng: np.random.Generator, n_studies: int = 8, n_patients: int = 30, n_sessions: int = 5):
    """Stacked sessions with known study-specific slopes of the person-mean-centred alliance
    (slopes ~ N(-3, 0.5)), random study and patient intercepts (truth: RECOVERY); patient labels
    are unique across studies, the between-patient part is centred within each study."""
    t = RECOVERY
    n = n_studies * n_patients
    slopes = rng.normal(t["slope"], t["slope_sd"], n_studies)
    intercepts = rng.normal(50.0, t["study_sd"], n_studies)
    alliance = rng.normal(0.0, 0.8, (n, 1)) + rng.normal(0.0, 1.0, (n, n_sessions))  # patients x sessions
    person = alliance.mean(axis=1, keepdims=True)
    between = person - person.reshape(n_studies, n_patients).mean(axis=1).repeat(n_patients)[:, None]
    d = _design(n_studies, n_patients, n_sessions).copy()
    study = np.repeat(np.arange(n_studies), n_patients * n_sessions)
    d["alliance_within_patient"] = (alliance - person).ravel()
    d["alliance_between_patient"] = np.broadcast_to(between, alliance.shape).ravel()
    d["symptoms"] = (
        intercepts[study]
        + slopes[study] * d["alliance_within_patient"].to_numpy()
        + t["between"] * d["alliance_between_patient"].to_numpy()
        + t["session"] * d["session_c"].to_numpy()
        + np.repeat(rng.normal(0.0, t["patient_sd"], n), n_sessions)
        + rng.normal(0.0, t["residual_sd"], n * n_sessions)
    )
    return d


def test_the_one_stage_slope_recovers_the_mean_study_slope():
    """100 replications of 8 studies x 30 patients x 5 sessions: the one-stage fixed slope (the
    pipeline's row, fit_one_stage: the engine's fit, refitted only where the policy simplifies) is
    unbiased for the mean of the study slopes' distribution, -3 (within 3 Monte Carlo SEs), its 95 % CI
    (Satterthwaite df) covers it in 88-99 % of replications.  Measured with this seed: mean -2.985
    (Monte Carlo SE 0.020), coverage 0.94, mean SE / SD of the estimates 1.12; in 10 of 100 REML puts
    the study-slope variance at 0 (the policy drops the slope, the df are then ~958 instead of ~7)."""
    rng = np.random.default_rng(20261204)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(100):
            row, _ = fit_one_stage(simulate_stacked(rng), "same_session", engine=ENGINE)
            rows.append(row)
    rows = pd.DataFrame(rows)
    truth = RECOVERY["slope"]
    mc_se = rows["estimate"].std(ddof=1) / math.sqrt(len(rows))
    assert abs(rows["estimate"].mean() - truth) < 3 * mc_se, (rows["estimate"].mean(), mc_se)
    coverage = ((rows["ci_low"] <= truth) & (truth <= rows["ci_high"])).mean()
    assert 0.88 <= coverage <= 0.99, coverage
    # the model-based SE matches the spread of the estimates (within 20 %)
    assert 0.8 < rows["se"].mean() / rows["estimate"].std(ddof=1) < 1.2
    # the study-slope SD is recovered on average (REML, 8 studies: within 20 %); where REML puts the
    # slope variance at 0 the policy drops the slope and the row's study_slope_sd is missing: 0 here
    dropped = rows["study_slope_sd"].isna()
    assert rows.loc[dropped, "flags"].eq("simplified").all()
    assert abs(rows["study_slope_sd"].fillna(0.0).mean() - RECOVERY["slope_sd"]) < 0.2 * RECOVERY["slope_sd"]


if __name__ == "__main__":
    if "--write-data" in sys.argv:
        written = write_data()
        print(f"wrote {DATA_CSV} ({len(written)} rows, {written['study'].nunique()} studies)")
