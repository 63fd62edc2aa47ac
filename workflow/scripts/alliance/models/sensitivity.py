"""Sensitivity of a model's focal estimates: completers vs all patients, sessions attended, outliers.

With 40 % dropout that depends on the alliance, an end-of-treatment model fitted to every patient's
last observed score (the intention-to-treat sample as observed) and the same model among completers
can differ; so can the model with and without the number of sessions attended, and a model whose
alliance scores include a few extreme low ratings.  :func:`sensitivity_table` refits one model under
each specification that applies to it and returns the focal estimates side by side:

* ``as_specified`` -- the suite's fit (every patient with the outcome: for an end-of-treatment
  model the intention-to-treat sample, dropouts with their last observed score);
* ``completers`` -- patient-level models: only patients not flagged ``dropout`` by the intake;
* ``sessions_attended`` -- patient-level models: the sessions attended (``n_sessions``,
  grand-mean centred) added as a covariate;
* ``winsorised`` -- low-alliance outliers winsorised as by Goldberg et al. (2023): a score more
  than ``winsor_sd`` SDs (config ``report.sensitivity.winsor_sd``, default 2; they used 2 and 3)
  below the mean is set to mean - winsor_sd x SD (SD with n - 1).  Session-level models clip the
  session score (``alliance``) over all rated sessions and recompute the person and therapist means
  from it (alliance.intake.derive.decompose_within_between); patient-level models clip each
  patient-level alliance score (session 3, mean of sessions 1-4, mean of all sessions) over
  patients before the model derives its terms.

An end-of-treatment model's labels say which specification is biased and when
(:data:`END_OF_TREATMENT_BIAS`), so that none is read alone: in the recovery study with the demo's
design (tests/models/test_sensitivity_recovery.py: 36 % dropout on the last session's alliance and
symptoms, truth = the same model had every patient been followed to session 16) the as-specified
fit, with each dropout's last observed score, overstated the session-3 alliance coefficient about
five-fold, while completers and the sessions-attended adjustment stayed within a third of an SE.

Every specification is fitted with the random-effects structure that the singular-fit policy
(``analysis.singular_fits``, alliance.models.singular) chose for the model on the full data, and with
its df rule (alliance.models.refit): the ``as_specified`` row is the fixed-effects table's estimate,
and a therapist-level predictor of a model whose therapist level the policy dropped is tested on
between-therapist df in every row (flag ``simplified``), so that the rows differ only by their data.

Every row carries the r-equivalent of its coefficient (alliance.models.effects.r_from_t with the
df of its role) and its change from ``as_specified``, so that a reader sees at once whether r
moved by more than a few hundredths.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np  # noqa: F401 (the worked examples use it)
import pandas as pd

from alliance.intake.derive import decompose_within_between
from alliance.models import effects as fx
from alliance.models.refit import FOCAL_COLUMNS, focal_estimates, primary_fit, refit

__all__ = [
    "SENSITIVITY_COLUMNS",
    "SPECIFICATIONS",
    "END_OF_TREATMENT_BIAS",
    "PATIENT_ALLIANCE_SCORES",
    "specification_label",
    "winsorise",
    "winsorise_sessions",
    "winsorise_patients",
    "sensitivity_table",
    "load_sensitivity_tables",
]

#: the specifications, their labels in the table, in table order
SPECIFICATIONS = {
    "as_specified": "As specified (every patient with the outcome; intention to treat, last observed score)",
    "completers": "Completers only (patients without the intake's dropout flag)",
    "sessions_attended": "Adjusted for the number of sessions attended (grand-mean centred)",
    "winsorised": "Low-alliance outliers winsorised at the mean - {sd:g} SD (Goldberg et al. 2023)",
}
#: what an end-of-treatment (patient-level) model's label adds: which specification is biased, and
#: when, for the association of the alliance with the outcome had every patient been followed to the
#: end (measured on the demo's design, 36 % dropout on the alliance: tests/models/test_sensitivity_recovery.py)
END_OF_TREATMENT_BIAS = {
    "as_specified": (
        "known bias: when dropout depends on the alliance, a dropout's last observed score is an early one, "
        "so the association with the alliance is overstated"
    ),
    "completers": (
        "unbiased only when dropout depends on nothing beyond the model's covariates that predicts the outcome"
    ),
    "sessions_attended": "attendance is itself a consequence of the alliance: adjusting removes part of its association",
}
#: the as-specified label of a session-level model (every rated session; no end-of-treatment score)
SESSION_LEVEL_AS_SPECIFIED = "As specified (every rated session of every patient)"
#: the patient-level alliance scores the winsorised specification clips (patients table)
PATIENT_ALLIANCE_SCORES = ("alliance_s3", "alliance_s1_4", "alliance_patient_mean")
#: the session-level alliance score the winsorised specification clips (analysis table)
SESSION_ALLIANCE_SCORE = "alliance"
SESSIONS_ATTENDED = "n_sessions"
DROPOUT = "dropout"

SENSITIVITY_COLUMNS = [
    "model",
    "specification",
    "label",
    *[c for c in FOCAL_COLUMNS if c != "flags"],
    "r",
    "r_ci_low",
    "r_ci_high",
    "change_estimate",
    "change_r",
    "n_values_winsorised",
    "flags",
]


def winsorise(values: pd.Series, sd: float) -> tuple[pd.Series, int]:
    """``values`` with those more than ``sd`` SDs below their mean set to mean - sd x SD (missing
    values ignored and kept; SD with n - 1), and how many values were changed.

    Examples
    --------
    >>> s = pd.Series([4.0, 4.5, 5.0, 4.0, 4.5, 5.0, 4.0, 4.5, 5.0, 1.0, np.nan])
    >>> clipped, n = winsorise(s, 2.0)
    >>> float(round(clipped[9], 4)), n, clipped[:9].equals(s[:9])
    (1.7906, 1, True)
    """
    floor = float(values.mean() - sd * values.std(ddof=1))
    clipped = values.clip(lower=floor)
    changed = int(((clipped != values) & values.notna()).sum())
    return clipped, changed


def winsorise_sessions(analysis: pd.DataFrame, sd: float) -> tuple[pd.DataFrame, int]:
    """The analysis table with the session alliance score winsorised and the within/between parts
    that the table has recomputed from it; and the number of session scores changed."""
    out = analysis.copy()
    out[SESSION_ALLIANCE_SCORE], changed = winsorise(out[SESSION_ALLIANCE_SCORE], sd)
    parts = decompose_within_between(out, SESSION_ALLIANCE_SCORE)
    for column in parts.columns:
        if column in out:
            out[column] = parts[column].astype(out[column].dtype) if column.endswith("_n_sessions") else parts[column]
    return out, changed


def winsorise_patients(patients: pd.DataFrame, sd: float) -> tuple[pd.DataFrame, int]:
    """The patients table with each patient-level alliance score winsorised; values changed."""
    out = patients.copy()
    changed = 0
    for column in PATIENT_ALLIANCE_SCORES:
        if column in out:
            out[column], n = winsorise(out[column].astype(float), sd)
            changed += n
    return out, changed


def _variants(
    model: dict[str, Any], analysis: pd.DataFrame | None, patients: pd.DataFrame | None, sd: float
) -> list[tuple[str, dict[str, Any], pd.DataFrame | None, pd.DataFrame | None, int | None]]:
    """(specification, model, analysis, patients, values winsorised) of every specification that applies."""
    out: list[tuple[str, dict[str, Any], pd.DataFrame | None, pd.DataFrame | None, int | None]] = [
        ("as_specified", model, analysis, patients, None)
    ]
    if model.get("data") == "patients":
        if patients is not None and DROPOUT in patients:
            out.append(("completers", model, analysis, patients[~patients[DROPOUT].fillna(False).astype(bool)], None))
        if patients is not None and SESSIONS_ATTENDED in patients:
            adjusted = copy.deepcopy(model)
            adjusted["fixed"] = list(model["fixed"]) + [f"{SESSIONS_ATTENDED}_c"]
            adjusted["centre"] = list(model.get("centre") or []) + [SESSIONS_ATTENDED]
            out.append(("sessions_attended", adjusted, analysis, patients, None))
        if patients is not None:
            clipped, n = winsorise_patients(patients, sd)
            out.append(("winsorised", model, analysis, clipped, n))
    elif analysis is not None and SESSION_ALLIANCE_SCORE in analysis:
        clipped, n = winsorise_sessions(analysis, sd)
        out.append(("winsorised", model, clipped, patients, n))
    return out


def _with_r(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with the r-equivalent of each coefficient (df of its role) and its CI."""
    rs = []
    for _, row in rows.iterrows():
        df = fx.role_df(row["role"], int(row["n_obs"]), int(row["n_patients"]), int(row["n_therapists"]))
        ok = math.isfinite(row["estimate"]) and math.isfinite(row["se"])
        r = fx.r_from_t(row["estimate"], row["se"], df).iloc[0] if ok else None
        rs.append({k: (float(r[k]) if r is not None else math.nan) for k in ("r", "r_ci_low", "r_ci_high")})
    return pd.concat([rows.reset_index(drop=True), pd.DataFrame(rs, columns=["r", "r_ci_low", "r_ci_high"])], axis=1)


def specification_label(model: dict[str, Any], spec: str, winsor_sd: float) -> str:
    """The label of ``spec`` in ``model``'s table: what it is and, for an end-of-treatment model, when it is
    biased (:data:`END_OF_TREATMENT_BIAS`).

    >>> specification_label({"data": "patients"}, "completers", 2.0)  # doctest: +ELLIPSIS
    "Completers only (patients without the intake's dropout flag); unbiased only when dropout depends on ..."
    >>> specification_label({}, "as_specified", 2.0)
    'As specified (every rated session of every patient)'
    """
    if model.get("data") != "patients":
        return SESSION_LEVEL_AS_SPECIFIED if spec == "as_specified" else SPECIFICATIONS[spec].format(sd=winsor_sd)
    label = SPECIFICATIONS[spec].format(sd=winsor_sd)
    return f"{label}; {END_OF_TREATMENT_BIAS[spec]}" if spec in END_OF_TREATMENT_BIAS else label


def sensitivity_table(
    model: dict[str, Any],
    analysis: pd.DataFrame | None,
    patients: pd.DataFrame | None,
    winsor_sd: float,
    engine: str | None = None,
    singular_fits: str | None = None,
) -> pd.DataFrame:
    """The focal estimates of ``model`` under every specification that applies (module docstring).

    ``singular_fits`` is the run's ``analysis.singular_fits`` (None: the schema's default): the
    ``as_specified`` fit is the policy's, and every other specification is refitted with its structure.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> n = 200
    >>> pts = pd.DataFrame({"patient": [f"P{i}" for i in range(n)], "therapist": np.repeat([f"T{i}" for i in range(20)], 10),
    ...                     "alliance_s3": rng.normal(4, 0.5, n), "dropout": rng.random(n) < 0.3,
    ...                     "n_sessions": rng.integers(4, 17, n)})
    >>> pts.loc[:3, "alliance_s3"] = 0.5  # four extreme low ratings
    >>> pts["y"] = 50 - 4 * pts["alliance_s3"].clip(lower=3) + rng.normal(0, 3, n)
    >>> m = {"name": "m", "data": "patients", "outcome": "y", "fixed": ["alliance_s3"],
    ...      "random": [{"group": "therapist"}], "roles": {"alliance_s3": "patient_level"}}
    >>> t = sensitivity_table(m, None, pts, 2.0)
    >>> t["specification"].tolist(), t["n_patients"].tolist()[:2]
    (['as_specified', 'completers', 'sessions_attended', 'winsorised'], [200, 139])
    >>> bool(abs(t.loc[3, "estimate"] + 4) < abs(t.loc[0, "estimate"] + 4))  # clipping the outliers recovers -4 better
    True
    """
    parts = []
    structure = None
    for spec, variant, sub_a, sub_p, n_changed in _variants(model, analysis, patients, float(winsor_sd)):
        if structure is None:  # as_specified, the first: the primary fit, which chooses the structure
            result, counts, structure = primary_fit(variant, sub_a, sub_p, engine, singular_fits)
        else:
            result, counts = refit(variant, sub_a, sub_p, engine, structure)
        rows = _with_r(focal_estimates(model, result.fixed, result.flags, counts))
        rows.insert(0, "label", specification_label(model, spec, float(winsor_sd)))
        rows.insert(0, "specification", spec)
        rows.insert(0, "model", model["name"])
        rows["n_values_winsorised"] = n_changed if n_changed is not None else pd.NA
        parts.append(rows)
    table = pd.concat(parts, ignore_index=True)
    main = table[table["specification"] == "as_specified"].set_index("term")
    table["change_estimate"] = table["estimate"] - table["term"].map(main["estimate"])
    table["change_r"] = table["r"] - table["term"].map(main["r"])
    table["n_values_winsorised"] = table["n_values_winsorised"].astype("Int64")
    return table[SENSITIVITY_COLUMNS]


def load_sensitivity_tables(
    model: dict[str, Any], analysis_path: str, patients_path: str
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The tables :func:`sensitivity_table` needs: those of the model
    (:func:`alliance.models.data.load_model_tables`) plus, for a session-level model, the session
    alliance score and the therapist column that the winsorised specification recomputes from."""
    from alliance.models.data import analysis_columns, load_model_tables
    from alliance.outputs import read_columns

    if model.get("data", "sessions") == "patients":
        return load_model_tables(model, analysis_path, patients_path)
    columns = list(dict.fromkeys([*analysis_columns(model), SESSION_ALLIANCE_SCORE, "therapist"]))
    return read_columns(analysis_path, columns), None
