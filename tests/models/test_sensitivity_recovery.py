"""The sensitivity refits (alliance.models.sensitivity) on data simulated with known truth
(alliance.simulate's trials made into the model tables by tests/testkit/reviewer_sims.py).

Outliers (the primary model's shape, same-session within coefficient; static design, so that the
coefficient targets the pooled within estimand of alliance.simulate_truth.same_session_estimands,
about -8 POMP points per WAI-SR point):

* (a) without outliers, winsorising at the mean - 2 SD (the schema default of
  report.sensitivity.winsor_sd; about 2 % of the ratings are clipped) keeps the estimate within its
  CI of the truth: a small bias, a fraction of its SE;
* (b) with 1.5 % of the session ratings replaced by careless low ratings drawn off the model
  (1.0-1.5, unrelated to the patient's alliance and symptoms), the raw estimate is attenuated and the
  winsorised one is nearer the truth (it halves the bias; it does not remove it).

Dropout (the demo config's early_alliance model: session-3 alliance and end-of-treatment symptoms,
baseline controlled, therapist intercepts; the demo's design, dropout on the last session's alliance
and symptoms, about 36 %): the truth is the same model had every patient been followed to session 16
(the simulator keeps every patient's scores at every planned session; the mean over replications
of that complete-data estimate).  The as-specified (intention-to-treat) fit uses each dropout's last
observed score, an early one, and overstates the association about five-fold; completers only and
the sessions-attended adjustment stay near the truth.  The table's labels say so: the as-specified
label of an end-of-treatment model carries "known bias", the completers' when they would be biased.

Measured, 100 replications (seed 20261201; 161 s and 175 s on 2 cores at load 15)::

    outliers (truth -7.96)       bias    (MC SE)   coverage   mean SE   empirical SE
    clean, as specified          +0.012  (0.027)   0.94       0.267     0.270
    clean, winsorised            -0.074  (0.027)   0.93       0.272     0.274
    outliers, as specified       +3.362  (0.030)   0.00       0.210     0.296
    outliers, winsorised         +1.595  (0.031)   0.00       0.245     0.311
    (winsorised nearer the truth in 100 of 100 trials; 107 ratings replaced per trial)

    dropout (truth -0.893, MC SE 0.073; 36.3 % dropout)
                                 mean    bias (paired MC SE)   coverage   mean SE
    complete data (the truth)    -0.893   0.000                 0.96       0.755
    as specified (ITT, last)     -4.824  -3.930 (0.089)         0.03       1.054
    completers only              -0.758  +0.136 (0.067)         0.93       1.008
    sessions attended            -1.114  -0.221 (0.051)         0.95       0.842

"paired": each replication's estimate minus the complete-data estimate of the same trial.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alliance.dynamics.recovery import map_replications
from alliance.models import sensitivity
from alliance.report.reviewer_tables import reviewer_tables
from testkit import reviewer_sims as S

#: smallest coverage that 100 replications of a 95 % CI would show by chance (3 Monte Carlo SE)
LOWEST_COVERAGE = 0.95 - 3 * np.sqrt(0.95 * 0.05 / 100)


def _coverage(reps: list[dict], key, truth=None) -> float:
    return float(
        np.mean([r[key]["ci_low"] <= (r["truth"] if truth is None else truth) <= r[key]["ci_high"] for r in reps])
    )


# --------------------------------------------------------------------------- outliers


def test_one_trial_winsorised_estimate_within_its_ci_and_nearer_the_truth_with_outliers():
    """One trial of 10 therapists x 10 patients (4 fits)."""
    rep = S.outlier_replication(np.random.SeedSequence(5), n_therapists=10)
    truth = rep["truth"]
    clean = rep["clean", "winsorised"]
    assert clean["ci_low"] <= truth <= clean["ci_high"], (truth, clean)
    raw, wins = rep["outliers", "as_specified"], rep["outliers", "winsorised"]
    assert rep["injected"] > 8
    assert raw["estimate"] > truth + 2 * raw["se"]  # the off-model low ratings attenuate the slope
    assert abs(wins["estimate"] - truth) < abs(raw["estimate"] - truth)


@pytest.mark.slow
def test_winsorising_recovers_the_truth_without_outliers_and_nearer_with_them():
    """100 trials of the demo's size (module docstring: measured numbers)."""
    reps = map_replications(S.outlier_replication, np.random.SeedSequence(20261201).spawn(100), processes=2)
    bias = {k: np.mean([r[k]["estimate"] - r["truth"] for r in reps]) for k in reps[0] if isinstance(k, tuple)}
    mean_se = {k: np.mean([r[k]["se"] for r in reps]) for k in bias}
    summary = {k: (round(bias[k], 3), _coverage(reps, k)) for k in bias}
    # (a) no outliers: unbiased as specified; winsorised, a bias well inside the CI, and nominal coverage
    for key in (("clean", "as_specified"), ("clean", "winsorised")):
        assert abs(bias[key]) < 0.5 * mean_se[key] and _coverage(reps, key) >= LOWEST_COVERAGE, summary
    # (b) off-model low outliers: the raw slope attenuated; the winsorised one nearer the truth in nearly
    # every trial and with at most 0.6 of the raw bias
    raw, wins = ("outliers", "as_specified"), ("outliers", "winsorised")
    assert bias[raw] > 5 * mean_se[raw], summary
    nearer = np.mean([abs(r[wins]["estimate"] - r["truth"]) < abs(r[raw]["estimate"] - r["truth"]) for r in reps])
    assert nearer >= 0.95 and abs(bias[wins]) < 0.6 * abs(bias[raw]), (nearer, summary)


# --------------------------------------------------------------------------- dropout


@pytest.fixture(scope="module")
def dropout_trial():
    return S.dropout_replication(np.random.SeedSequence(3))


def test_one_trial_intention_to_treat_with_last_scores_is_the_biased_specification(dropout_trial):
    """One trial of the demo's design (4 patient-level fits): the as-specified estimate lies beyond 2 SE
    of the same patients' complete-data estimate; completers' and the adjusted one within 3 SE (the
    one-trial tolerance of tests/models/test_suite_recovery.py: in this trial completers are 2.2 SE off)."""
    rep = dropout_trial
    assert 0.28 < rep["dropout"] < 0.46
    reference = rep["complete_data"]["estimate"]
    itt = rep["as_specified"]
    assert itt["estimate"] < reference - 2 * itt["se"], rep
    for spec in ("completers", "sessions_attended"):
        assert abs(rep[spec]["estimate"] - reference) < 3 * rep[spec]["se"], (spec, rep)


def _labels(model: dict) -> dict[str, str]:
    return {spec: sensitivity.specification_label(model, spec, 2.0) for spec in sensitivity.SPECIFICATIONS}


def test_the_labels_say_which_specification_is_biased():
    labels = _labels(S.EARLY_ALLIANCE)
    assert labels["as_specified"] == (
        "As specified (every patient with the outcome; intention to treat, last observed score); known bias: "
        "when dropout depends on the alliance, a dropout's last observed score is an early one, so the "
        "association with the alliance is overstated"
    )
    assert labels["completers"].endswith(
        "; unbiased only when dropout depends on nothing beyond the model's covariates that predicts the outcome"
    )
    assert "consequence of the alliance" in labels["sessions_attended"]
    assert "known bias" not in labels["winsorised"]
    # a session-level model has no end-of-treatment score: its as-specified label does not claim one
    assert _labels(S.SAME_SESSION)["as_specified"] == "As specified (every rated session of every patient)"


def test_the_supplement_shows_every_specification_of_a_model_together_and_labelled(tmp_path):
    """The reviewer table of an end-of-treatment model (as the supplement shows sensitivity.csv): the
    biased specification never alone, each row with its label."""
    rng = np.random.default_rng(8)
    n = 120
    patients = pd.DataFrame(
        {
            "patient": [f"P{i}" for i in range(n)],
            "therapist": np.repeat([f"T{i}" for i in range(12)], 10),
            "alliance_s3": rng.normal(3.6, 0.5, n),
            "symptoms_baseline_c": rng.normal(0, 10, n),
            "n_sessions": rng.integers(3, 17, n),
            "dropout": rng.random(n) < 0.35,
        }
    )
    patients["symptoms_last"] = (
        40 - 3 * patients["alliance_s3"] + 0.5 * patients["symptoms_baseline_c"] + rng.normal(0, 8, n)
    )
    table = sensitivity.sensitivity_table(S.EARLY_ALLIANCE, None, patients, 2.0)
    table.to_csv(tmp_path / "sensitivity.csv", index=False)
    (shown,) = reviewer_tables([tmp_path / "sensitivity.csv"], {"early_alliance": "Session-3 alliance"})
    label = shown["header"].index("Label")
    assert [row[label] for row in shown["rows"]] == [
        _labels(S.EARLY_ALLIANCE)[s].replace("_", " ") for s in sensitivity.SPECIFICATIONS
    ]
    assert "known bias" in shown["rows"][0][label] and "completers" in shown["rows"][1][label].lower()


@pytest.mark.slow
def test_completers_and_intention_to_treat_against_the_complete_data_truth():
    """100 trials of the demo's design (module docstring: measured numbers); the specification the
    label marks as biased is the one that misses the truth."""
    reps = map_replications(S.dropout_replication, np.random.SeedSequence(20261201).spawn(100), processes=2)
    truth = float(np.mean([r["complete_data"]["estimate"] for r in reps]))
    specs = ("complete_data", "as_specified", "completers", "sessions_attended")
    paired = {s: np.mean([r[s]["estimate"] - r["complete_data"]["estimate"] for r in reps]) for s in specs}
    mean_se = {s: np.mean([r[s]["se"] for r in reps]) for s in specs}
    coverage = {s: _coverage(reps, s, truth) for s in specs}
    summary = {"truth": truth, "paired_bias": paired, "coverage": coverage}
    assert 0.30 < np.mean([r["dropout"] for r in reps]) < 0.42, summary
    assert coverage["complete_data"] >= LOWEST_COVERAGE, summary
    for spec in ("completers", "sessions_attended"):
        assert abs(paired[spec]) < 0.35 * mean_se[spec] and coverage[spec] >= LOWEST_COVERAGE, summary
    assert paired["as_specified"] < -2 * mean_se["as_specified"] and coverage["as_specified"] < 0.2, summary
    worst = max(("as_specified", "completers", "sessions_attended"), key=lambda s: abs(paired[s]))
    assert worst == "as_specified" and "known bias" in _labels(S.EARLY_ALLIANCE)[worst], summary
