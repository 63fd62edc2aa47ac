"""Parameter recovery: the suite, from raw simulated files through cleaning to the tables,
recovers the simulator's known truth (alliance.simulate.TrialDesign; data/raw/demo/TRUTH.yaml).

* one simulated trial of the demo's size, every truth within 3 SE, with the pipeline's default
  engine (mixedlm) and with the reference Python engine (statsmodels);
* a replication study of REPLICATIONS trials with the default engine (about 40 s), measuring
  bias, 95 % CI coverage and the type I error of the omnibus Wald test of a moderator without
  effect (condition).  Measured: pooled coverage 0.952, biases within 3 Monte Carlo SE, the
  condition test rejecting in 5 of 40 (bound: 6).

Truth (outcome in POMP points per WAI-SR mean-score point; alliance in WAI-SR points)::

    within-patient alliance slope by therapy  CBT -6, PDT -10, IPT -8   (simple slopes)
    patient-within-therapist alliance         -6
    between-therapist alliance                -14
    session                                   -1.6 POMP per session
    condition moderation of the within slope  none
    alliance growth per session by therapy    CBT .030, PDT .020, IPT .025 (none by condition)
    alliance per expectancy point             .05

The alliance-outcome effects are defined on the observed alliance scale (the simulator computes
the outcome from the observed WAI-SR mean), so they must be recovered without bias.  The growth
terms are defined on the latent alliance scale; the observed score is the mean of 12 items
rounded and clipped to 1-5, whose ceiling attenuates growth slightly (measured: 2-3 % for the
CBT slope and the expectancy effect over 40 replications), so for those a relative attenuation
of up to LATENT_ATTENUATION is allowed on top of the Monte Carlo error.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from alliance.intake.clean import clean_dataset
from alliance.simulate import TrialDesign, write_trial
from alliance.models.suite import fit_model, model_context
from testkit import demo_config

DESIGN = TrialDesign()
#: the model that matches the data-generating model (three levels, within slope moderated)
TRUTH_MODEL = {
    "name": "truth",
    "outcome": "symptoms",
    "fixed": ["alliance_within_patient", "alliance_patient_within_therapist", "alliance_between_therapist", "session_c"],
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


def truths(design: TrialDesign = DESIGN) -> dict[tuple[str, str], float]:
    """(table, name) -> true value, for the rows the fits report."""
    out = {("slope", f"therapy = {t}"): v for t, v in design.within_effect.items()}
    out[("fixed", "alliance_patient_within_therapist")] = design.patient_between_effect
    out[("fixed", "alliance_between_therapist")] = design.therapist_between_effect
    out[("fixed", "session_c")] = design.outcome_session_slope
    growth = design.alliance_growth
    out[("growth", "session_c")] = growth["CBT"]
    out[("growth", "session_c:therapy[T.PDT]")] = growth["PDT"] - growth["CBT"]
    out[("growth", "session_c:therapy[T.IPT]")] = growth["IPT"] - growth["CBT"]
    out[("growth", "session_c:condition[T.anxiety]")] = 0.0  # growth does not differ by condition
    out[("growth", "expectancy_c")] = design.alliance_expectancy_effect
    return out


def simulate_and_fit(tmp_path, seed: int, engine: str = DEFAULT_ENGINE) -> tuple[pd.DataFrame, dict]:
    """Simulate a trial, clean it as the pipeline does, fit the truth and growth models.

    Returns one row per true parameter (estimate, se, ci) and the condition-block Wald test."""
    raw = tmp_path / f"trial_{seed}"
    write_trial(raw, DESIGN, seed=seed)
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
    for (table, name), value in truths().items():
        if table == "slope":
            r = slopes.loc[f"alliance_within_patient | {name}"]
        else:
            r = (fixed if table == "fixed" else growth).loc[name]
        rows.append({"table": table, "name": name, "truth": value, "estimate": r["estimate"], "se": r["se"],
                     "ci_low": r["ci_low"], "ci_high": r["ci_high"]})
    condition_block = slopes.loc["interaction: alliance_within_patient x condition"]
    info = {"condition_p": float(condition_block["p"]), "flags": truth_fit["fit"]["flags"] + growth_fit["fit"]["flags"]}
    return pd.DataFrame(rows), info


@pytest.mark.parametrize("engine", [DEFAULT_ENGINE, "statsmodels"])
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


def test_replications_bias_and_coverage(tmp_path):
    runs = [simulate_and_fit(tmp_path, seed=1000 + k) for k in range(REPLICATIONS)]
    est = pd.concat([r.assign(rep=k) for k, (r, _) in enumerate(runs)], ignore_index=True)
    est["covered"] = (est["ci_low"] <= est["truth"]) & (est["truth"] <= est["ci_high"])
    summary = est.groupby(["table", "name"], sort=False).agg(
        truth=("truth", "first"), mean=("estimate", "mean"), sd=("estimate", "std"), mean_se=("se", "mean"),
        coverage=("covered", "mean"),
    )
    summary["bias"] = summary["mean"] - summary["truth"]
    summary["mc_se"] = summary["sd"] / math.sqrt(REPLICATIONS)
    print("\n" + summary.to_string())
    rejections = np.mean([info["condition_p"] < 0.05 for _, info in runs])
    print(f"pooled coverage {est['covered'].mean():.3f}; condition-moderation Wald test rejects in {rejections:.3f}")
    # unbiased: |bias| within 3 Monte Carlo SEs (+ the item-ceiling attenuation of latent-scale terms)
    allowance = np.where(summary.index.get_level_values("table") == "growth", LATENT_ATTENUATION * summary["truth"].abs(), 0.0)
    assert (summary["bias"].abs() < 3 * summary["mc_se"] + allowance).all(), summary.to_string()
    # model SEs match the spread of the estimates (within 25 %)
    assert ((summary["mean_se"] / summary["sd"]).between(0.75, 1.25)).all(), summary.to_string()
    # 95 % coverage: pooled over parameters, and no parameter far off
    pooled = est["covered"].mean()
    assert 0.92 <= pooled <= 0.98, pooled
    assert (summary["coverage"] >= 0.85).all(), summary.to_string()
    # the omnibus Wald test of a moderator without effect rejects at about the nominal 5 %
    assert rejections <= 0.15, rejections
