"""Parameter recovery: the suite, from raw simulated files through cleaning to the tables,
recovers the simulator's known truth, each trial's own TRUTH.yaml (alliance.simulate).

* one simulated trial of the demo's size, every truth within 3 SE, with the pipeline's default
  engine (mixedlm) and with the reference Python engine (statsmodels);
* a replication study of REPLICATIONS trials with the default engine (about 3 minutes), measuring
  bias, 95 % CI coverage and the type I error of the omnibus Wald test of a moderator without
  effect (condition).  Measured: pooled coverage 0.945, biases within 2.3 Monte Carlo SE, the
  condition test rejecting in 1 of 40 (bound: 6).

The trials are simulated with alliance.simulate.STATIC_DESIGN: the demo's design without the
within-person dynamics (carry-overs and cross-lags 0).  The demo's own process has lagged effects
both ways, and under it the suite's same-session models estimate no design parameter: centring on
a person mean that carries the lagged cross-covariances takes 12-21 % off the same-session
coefficient (the demo's targets CBT -4.73, PDT -8.75, IPT -6.71 for the contemporaneous -6, -10,
-8 depend on the paths and on each patient's attendance), and with dropout on the last session the
coefficient of the observed patient means is no single parameter (TRUTH.yaml, ``between``).  Those
lagged effects are what the dynamics recovery studies test (tests/dynamics/test_riclpm.py, the
RI-CLPM; tests/models/test_lagged_recovery.py, the lagged mixed models).  The recovery of the
mixed-model suite needs a process whose estimands are its parameters, so that a bias is the
suite's and not the process's.

Truth, read from each trial's TRUTH.yaml (outcome in POMP points per WAI-SR mean-score point;
alliance in WAI-SR points)::

    within-patient alliance slope by therapy  same_session.estimand_by_therapy: the design's
                                              CBT -6, PDT -10, IPT -8 without dynamics (simple slopes)
    session                                   same_session.estimand_session_slope: -1.6 per session
    patient-within-therapist alliance         between.manifest_patient_within_therapist (about -6.3)
    between-therapist alliance                between.manifest_between_therapist (about -13.5)
    condition moderation of the within slope  none
    alliance growth by therapy, expectancy    estimands.alliance_growth: CBT .030, PDT .020,
                                              IPT .025 (none by condition); .05 per expectancy point

The between coefficients are those of the *observed* means, which carry the within-person scores'
sampling error over the sessions a patient attended (Lüdtke et al. 2008): a little off the
stable -6 and -14, and each trial's own value for its attendance.  The growth terms are defined on
the alliance before rounding; the observed WAI-SR total is rounded and clipped at 60 (the mean
score at 5), whose ceiling attenuates growth slightly (measured: about 2 % for the CBT slope), so
for those a relative attenuation of up to LATENT_ATTENUATION is allowed on top of the Monte Carlo
error.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml

from alliance.intake.clean import clean_dataset
from alliance.models.config import model_context
from alliance.models.suite import fit_model
from alliance.simulate import STATIC_DESIGN, write_trial
from testkit import demo_config

#: the demo's design without within-person dynamics (module docstring)
DESIGN = STATIC_DESIGN
#: the model that matches the data-generating model (three levels, within slope moderated)
TRUTH_MODEL = {
    "name": "truth",
    "outcome": "symptoms",
    "fixed": [
        "alliance_within_patient",
        "alliance_patient_within_therapist",
        "alliance_between_therapist",
        "session_c",
    ],
    "categorical": {"therapy": "CBT", "condition": "depression"},
    "moderation": {"terms": ["alliance_within_patient"], "by": ["therapy", "condition"]},
    "random": [
        {"group": "therapist"},
        {"group": "patient", "nested_in": "therapist", "slopes": ["alliance_within_patient"], "correlated": False},
    ],
    "roles": {
        "alliance_within_patient": "within_patient",
        "alliance_patient_within_therapist": "patient_within_therapist",
        "alliance_between_therapist": "between_therapist",
    },
}
GROWTH_MODEL = next(m for m in demo_config()["models"] if m["name"] == "alliance_growth")
#: the pipeline's default engine (the demo config's run.engine)
DEFAULT_ENGINE = demo_config()["run"]["engine"]


#: the alliance growth model's terms with a truth (estimands.alliance_growth of TRUTH.yaml)
GROWTH_TERMS = [
    "session_c",
    "session_c:therapy[T.PDT]",
    "session_c:therapy[T.IPT]",
    "session_c:condition[T.anxiety]",
    "expectancy_c",
]


def truths(truth: dict) -> dict[tuple[str, str], float]:
    """(table, name) -> true value, for the rows the fits report, from a trial's TRUTH.yaml
    (what each is: the module docstring)."""
    same, between = truth["same_session"], truth["between"]
    out = {("slope", f"therapy = {t}"): v for t, v in same["estimand_by_therapy"].items()}
    out[("fixed", "alliance_patient_within_therapist")] = between["manifest_patient_within_therapist"]
    out[("fixed", "alliance_between_therapist")] = between["manifest_between_therapist"]
    out[("fixed", "session_c")] = same["estimand_session_slope"]
    growth = truth["estimands"]["alliance_growth"]
    out.update({("growth", term): growth[term] for term in GROWTH_TERMS})
    return out


def simulate_and_fit(tmp_path, seed: int, engine: str = DEFAULT_ENGINE) -> tuple[pd.DataFrame, dict]:
    """Simulate a trial, clean it as the pipeline does, fit the truth and growth models.

    Returns one row per true parameter (its truth from the trial's TRUTH.yaml, estimate, se, ci)
    and the condition-block Wald test."""
    raw = tmp_path / f"trial_{seed}"
    write_trial(raw, DESIGN, seed=seed)
    truth = yaml.safe_load((raw / "TRUTH.yaml").read_text())
    config = demo_config()
    config["dataset"]["sessions"]["path"] = str(raw / "sessions.csv")
    config["dataset"]["patients"]["path"] = str(raw / "patients.csv")
    clean = clean_dataset(config["dataset"], config["analysis"], config["cleaning"], config["instruments"])
    context = model_context(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truth_fit = fit_model(TRUTH_MODEL, clean.sessions, clean.patients, context, engine=engine)
        growth_fit = fit_model(GROWTH_MODEL, clean.sessions, clean.patients, context, engine=engine)
    rows = []
    slopes = truth_fit["contrasts"].set_index("name")
    fixed = truth_fit["fixed"].set_index("term")
    growth = growth_fit["fixed"].set_index("term")
    for (table, name), value in truths(truth).items():
        if table == "slope":
            r = slopes.loc[f"alliance_within_patient | {name}"]
        else:
            r = (fixed if table == "fixed" else growth).loc[name]
        rows.append(
            {
                "table": table,
                "name": name,
                "truth": value,
                "estimate": r["estimate"],
                "se": r["se"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
            }
        )
    condition_block = slopes.loc["interaction: alliance_within_patient x condition"]
    info = {"condition_p": float(condition_block["p"]), "flags": truth_fit["fit"]["flags"] + growth_fit["fit"]["flags"]}
    return pd.DataFrame(rows), info


@pytest.mark.parametrize(
    "engine",
    [DEFAULT_ENGINE, pytest.param("statsmodels", marks=pytest.mark.slow)],  # statsmodels: 20 s
)
def test_one_trial_recovers_every_truth_within_three_se(tmp_path, engine):
    result, info = simulate_and_fit(tmp_path, seed=101, engine=engine)
    z = (result["estimate"] - result["truth"]) / result["se"]
    assert (z.abs() < 3).all(), result.assign(z=z).to_string()
    # and the SEs are of the size the design implies (not inflated)
    se = result.set_index("name")["se"]
    assert 0.3 < se["therapy = PDT"] < 0.8 and 0.8 < se["alliance_patient_within_therapist"] < 1.6
    assert 1.5 < se["alliance_between_therapist"] < 4.0 and se["expectancy_c"] < 0.01
    assert "not_converged" not in info["flags"]


REPLICATIONS = 40
#: allowed relative attenuation of effects defined on the latent alliance scale (see module docstring)
LATENT_ATTENUATION = 0.05


@pytest.mark.slow
def test_replications_bias_and_coverage(tmp_path):
    runs = [simulate_and_fit(tmp_path, seed=1000 + k) for k in range(REPLICATIONS)]
    est = pd.concat([r.assign(rep=k) for k, (r, _) in enumerate(runs)], ignore_index=True)
    est["covered"] = (est["ci_low"] <= est["truth"]) & (est["truth"] <= est["ci_high"])
    est["error"] = est["estimate"] - est["truth"]  # against each trial's own truth (the between ones vary a little)
    summary = est.groupby(["table", "name"], sort=False).agg(
        truth=("truth", "mean"),
        mean=("estimate", "mean"),
        sd=("estimate", "std"),
        mean_se=("se", "mean"),
        coverage=("covered", "mean"),
        bias=("error", "mean"),
        error_sd=("error", "std"),
    )
    summary["mc_se"] = summary["error_sd"] / math.sqrt(REPLICATIONS)
    print("\n" + summary.to_string())
    rejections = np.mean([info["condition_p"] < 0.05 for _, info in runs])
    print(f"pooled coverage {est['covered'].mean():.3f}; condition-moderation Wald test rejects in {rejections:.3f}")
    # unbiased: |bias| within 3 Monte Carlo SEs (+ the item-ceiling attenuation of latent-scale terms)
    latent = summary.index.get_level_values("table") == "growth"
    allowance = np.where(latent, LATENT_ATTENUATION * summary["truth"].abs(), 0.0)
    assert (summary["bias"].abs() < 3 * summary["mc_se"] + allowance).all(), summary.to_string()
    # model SEs match the spread of the estimates (within 25 %)
    assert ((summary["mean_se"] / summary["sd"]).between(0.75, 1.25)).all(), summary.to_string()
    # 95 % coverage: pooled over parameters, and no parameter far off
    pooled = est["covered"].mean()
    assert 0.92 <= pooled <= 0.98, pooled
    assert (summary["coverage"] >= 0.85).all(), summary.to_string()
    # the omnibus Wald test of a moderator without effect rejects at about the nominal 5 %
    assert rejections <= 0.15, rejections
