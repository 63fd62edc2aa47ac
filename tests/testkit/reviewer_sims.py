"""Simulated trials with known truth for the reviewer analyses' recovery studies
(tests/models/test_sensitivity_recovery.py, test_influence_recovery.py): the demo's simulator
(alliance.simulate.draw_trial) turned straight into the tables the models read, without the export
and the intake's cleaning (no mess: nothing to clean), and one replication of each study.

Module-level functions of one seed each, so that
:func:`alliance.dynamics.recovery.map_replications` can run them over worker processes.

* the session table: the attended sessions' alliance (WAI-SR total / 12, as exported) and symptoms
  (POMP before rounding), the within/between parts from the intake's own
  :func:`alliance.intake.derive.decompose_within_between`, the session centred at its mean;
* the patients table: session-3 alliance, first and last observed symptoms (baseline centred), the
  sessions attended and the dropout flag (not at the last planned session), as
  alliance.intake.patient_level defines them; ``complete=True`` gives the same patients had none of
  them dropped out (every planned session attended: the last one is session 16), the trial's own
  counterfactual.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from alliance.intake.derive import decompose_within_between
from alliance.models import sensitivity
from alliance.models.influence import therapist_influence
from alliance.models.refit import focal_estimates, refit
from alliance.simulate import STATIC_DESIGN, Trial, TrialDesign, draw_trial
from alliance.simulate_truth import same_session_estimands

#: the primary model's shape with a patient random intercept: under the static design (no
#: within-person dynamics) its within coefficient targets the pooled within estimand
#: (alliance.simulate_truth.same_session_estimands, ``pooled``)
SAME_SESSION = {
    "name": "same_session",
    "outcome": "symptoms",
    "fixed": ["alliance_within_patient", "alliance_between_patient", "session_c"],
    "random": [{"group": "patient"}],
    "roles": {"alliance_within_patient": "within_patient", "alliance_between_patient": "between_patient"},
}
#: the demo config's early_alliance model (session-3 alliance, end-of-treatment symptoms)
EARLY_ALLIANCE = {
    "name": "early_alliance",
    "data": "patients",
    "outcome": "symptoms_last",
    "fixed": ["symptoms_baseline_c", "alliance_s3"],
    "random": [{"group": "therapist"}],
    "roles": {"alliance_s3": "patient_level"},
}
WITHIN = "alliance_within_patient"
#: the static design without the export's mess
STATIC = replace(STATIC_DESIGN, add_mess=False)
#: the demo's design (lagged effects both ways, dropout on the last session's scores: about 38 %)
DEMO = TrialDesign(add_mess=False)


def sessions_table(trial: Trial) -> pd.DataFrame:
    """The attended sessions of ``trial`` as the models read them (module docstring)."""
    r = trial.rows
    table = pd.DataFrame(
        {
            "patient": [f"P{i:05d}" for i in r.patient],
            "therapist": [f"T{t:04d}" for t in r.therapist],
            "session": r.session,
            "alliance": trial.wai_total[r.patient, r.session - 1] / 12.0,
            "symptoms": trial.pomp[r.patient, r.session - 1],
        }
    )
    table["session_c"] = table["session"] - table["session"].mean()
    return with_parts(table)


def with_parts(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the within/between parts of its ``alliance`` recomputed (the intake's function)."""
    out = table.copy()
    parts = decompose_within_between(out, "alliance")
    for column in parts.columns:
        out[column] = parts[column]
    return out


def patients_table(trial: Trial, complete: bool = False) -> pd.DataFrame:
    """One row per patient of ``trial`` (module docstring); ``complete``: had nobody dropped out."""
    attended = np.ones_like(trial.attended) if complete else trial.attended
    n, k = attended.shape
    last = k - 1 - np.argmax(attended[:, ::-1], axis=1)
    table = pd.DataFrame(
        {
            "patient": [f"P{i:05d}" for i in range(n)],
            "therapist": [f"T{t:04d}" for t in trial.patients.therapist],
            "alliance_s3": np.where(attended[:, 2], trial.wai_total[:, 2] / 12.0, np.nan),
            "symptoms_baseline": trial.pomp[:, 0],
            "symptoms_last": trial.pomp[np.arange(n), last],
            "n_sessions": attended.sum(axis=1),
            "dropout": ~attended[:, -1],
        }
    )
    table["symptoms_baseline_c"] = table["symptoms_baseline"] - table["symptoms_baseline"].mean()
    return table


def within_truth(design: TrialDesign, trial: Trial) -> float:
    """The pooled within estimand of the same-session model for this trial's attendance."""
    code = trial.therapists.therapy_code[trial.patients.therapist]
    return float(same_session_estimands(design, code, trial.attended)["pooled"][WITHIN])


def low_outliers(table: pd.DataFrame, share: float, rng: np.random.Generator) -> tuple[pd.DataFrame, int]:
    """``table`` with a random ``share`` of the session alliance ratings replaced by 1.0-1.5 (careless
    low ratings drawn off the model: unrelated to the patient's alliance and symptoms), the parts
    recomputed; and how many were replaced."""
    out = table.copy()
    hit = rng.random(len(out)) < share
    out.loc[hit, "alliance"] = rng.uniform(1.0, 1.5, int(hit.sum()))
    return with_parts(out), int(hit.sum())


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def _within_row(table: pd.DataFrame, spec: str) -> dict[str, float]:
    row = table[(table["specification"] == spec) & (table["term"] == WITHIN)].iloc[0]
    return {k: float(row[k]) for k in ("estimate", "se", "ci_low", "ci_high")}


#: share of session alliance ratings replaced by off-model low outliers in the outlier study
OUTLIER_SHARE = 0.015


def outlier_replication(seed: Any, winsor_sd: float = 2.0, n_therapists: int = 60) -> dict[str, Any]:
    """One trial of the static design (``n_therapists`` x 10 patients): the within coefficient as
    specified and winsorised, on the clean data and with :data:`OUTLIER_SHARE` low outliers
    injected; the trial's truth."""
    rng = np.random.default_rng(seed)
    design = replace(STATIC, n_therapists=n_therapists)
    trial = draw_trial(design, rng)
    clean = sessions_table(trial)
    dirty, injected = low_outliers(clean, OUTLIER_SHARE, rng)
    out: dict[str, Any] = {"truth": within_truth(design, trial), "injected": injected}
    for data_name, data in (("clean", clean), ("outliers", dirty)):
        table = _quiet(sensitivity.sensitivity_table, SAME_SESSION, data, None, winsor_sd)
        for spec in ("as_specified", "winsorised"):
            out[data_name, spec] = _within_row(table, spec)
    return out


def dropout_replication(seed: Any) -> dict[str, Any]:
    """One trial of the demo's design: the early-alliance coefficient under every sensitivity
    specification (as specified = intention to treat with the last observed score, completers,
    sessions attended), and on the same patients had none dropped out (the complete-data estimate)."""
    trial = draw_trial(DEMO, np.random.default_rng(seed))
    patients = patients_table(trial)
    table = _quiet(sensitivity.sensitivity_table, EARLY_ALLIANCE, None, patients, 2.0)
    out: dict[str, Any] = {"dropout": float(patients["dropout"].mean())}
    for spec in ("as_specified", "completers", "sessions_attended"):
        row = table[table["specification"] == spec].iloc[0]
        out[spec] = {k: float(row[k]) for k in ("estimate", "se", "ci_low", "ci_high")}
    result, counts = _quiet(refit, EARLY_ALLIANCE, None, patients_table(trial, complete=True))
    row = focal_estimates(EARLY_ALLIANCE, result.fixed, result.flags, counts).iloc[0]
    out["complete_data"] = {k: float(row[k]) for k in ("estimate", "se", "ci_low", "ci_high")}
    return out


def planted_influence(seed: Any, n_therapists: int = 20, extra_slope: float = -20.0) -> dict[str, Any]:
    """Leave-one-therapist-out on a static-design trial of ``n_therapists`` therapists whose first
    therapist's patients carry an off-model shift of their within slope (``extra_slope`` POMP points
    per WAI-SR point on top of the truth: symptoms moved by extra_slope x the within-patient alliance).
    Returns the influence table, the planted therapist and the truth of the other patients."""
    trial = draw_trial(replace(STATIC, n_therapists=n_therapists), np.random.default_rng(seed))
    table = sessions_table(trial)
    planted = sorted(table["therapist"].unique())[0]
    rows = table["therapist"] == planted
    table.loc[rows, "symptoms"] += extra_slope * table.loc[rows, WITHIN]
    influence = _quiet(therapist_influence, SAME_SESSION, table, None)
    return {"table": influence, "planted": planted, "truth": within_truth(STATIC, trial)}


def coverage_replication(seed: Any, n_therapists: int = 20) -> dict[str, float]:
    """The full-data within coefficient of a static-design trial without a planted therapist, and its truth."""
    trial = draw_trial(replace(STATIC, n_therapists=n_therapists), np.random.default_rng(seed))
    result, counts = _quiet(refit, SAME_SESSION, sessions_table(trial), None)
    row = focal_estimates(SAME_SESSION, result.fixed, result.flags, counts).set_index("term").loc[WITHIN]
    return {"truth": within_truth(STATIC, trial), **{k: float(row[k]) for k in ("estimate", "se", "ci_low", "ci_high")}}
