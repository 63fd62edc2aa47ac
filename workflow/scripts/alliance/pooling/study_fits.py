"""The first stage: one specification fitted in one study, its focal coefficients with SEs and flags.

The model is the specification's (alliance.pooling.specifications.build_model), fitted by the
suite's own code on the study's harmonised tables (alliance.pooling.harmonise): a mixed model as
the suite fits it, singular-fit policy included (alliance.models.refit.primary_fit); a patient-level
model without a therapist level by least squares (alliance.engines.least_squares); the RI-CLPM with
constrained paths (alliance.dynamics.riclpm.fit_riclpm). The data choices come first: completers
only (the intake's dropout flag) and winsorised low alliance scores (alliance.models.sensitivity).

Every row carries the fit's flags (``not_converged``, ``boundary``, ``singular``, ``simplified``,
...; ``none`` when clean) so that the pooling and the report never pass a problem on unflagged.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from alliance.dynamics.riclpm import fit_riclpm
from alliance.engines.least_squares import fit_least_squares
from alliance.intake.derive import within_patient_detrended
from alliance.models.data import model_frame, sample_counts
from alliance.models.refit import COUNT_COLUMNS, ESTIMATE_COLUMNS, focal_estimates, primary_fit
from alliance.models.riclpm_suite import riclpm_wide
from alliance.models.sensitivity import winsorise_patients, winsorise_sessions
from alliance.models.specs import spec_from_config
from alliance.pooling.specifications import Built, build_model, complete_choices, specification_id

__all__ = ["STUDY_COLUMNS", "sample_for", "fit_specification", "study_rows"]

#: the columns of a study's estimates (results/<pool>/studies/<study>/effects/<model>.csv)
STUDY_COLUMNS = ["study", "specification", "effect", "term", *ESTIMATE_COLUMNS, *COUNT_COLUMNS, "flags"]
#: the detrended within-patient alliance (alliance.intake.derive.within_patient_detrended)
DETRENDED = "alliance_within_patient_detrended"


def sample_for(
    choices: dict[str, str], sessions: pd.DataFrame, patients: pd.DataFrame, winsor_sd: float
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The study's tables as the specification's data choices leave them, and flags for what could not be done.

    ``completers``: patients without the dropout flag (flag ``no_dropout_information`` and every patient
    when the study has no dropout column); ``winsorise``: the session alliance scores (their parts
    made again) and the patient-level alliance scores clipped at the mean - ``winsor_sd`` SD
    (the detrended part made again from the clipped scores).

    Example
    -------
    >>> s = pd.DataFrame({"patient": ["a", "a", "b"], "session": [1, 2, 1], "alliance": [0.0, 1.0, -1.0],
    ...                   "dropout": [False, False, True]})
    >>> p = pd.DataFrame({"patient": ["a", "b"], "dropout": [False, True]})
    >>> out, pts, flags = sample_for({"sample": "completers", "outliers": "keep"}, s, p, 2.0)
    >>> out["patient"].tolist(), pts["patient"].tolist(), flags
    (['a', 'a'], ['a'], [])
    """
    flags: list[str] = []
    if choices.get("sample") == "completers":
        if "dropout" in patients.columns:
            keep = set(patients.loc[~patients["dropout"].fillna(False).astype(bool), "patient"])
            sessions = sessions[sessions["patient"].isin(keep)]
            patients = patients[patients["patient"].isin(keep)]
        else:
            flags.append("no_dropout_information")
    if choices.get("outliers") == "winsorise":
        sessions, _ = winsorise_sessions(sessions, winsor_sd)
        if DETRENDED in sessions.columns:  # made from the clipped scores too, as the intake makes it
            sessions[DETRENDED] = within_patient_detrended(sessions, "alliance")
        patients, _ = winsorise_patients(patients, winsor_sd)
    return sessions, patients, flags


def _has_therapists(sessions: pd.DataFrame) -> bool:
    """Whether the study records a therapist for its sessions (a design without therapists does not)."""
    return "therapist" in sessions.columns and bool(sessions["therapist"].notna().any())


def _rows(study: str, spec_id: str, focal: dict[str, str], table: pd.DataFrame) -> pd.DataFrame:
    out = table[table["term"].isin(list(focal))].reset_index(drop=True)
    out.insert(0, "study", study)
    out.insert(1, "specification", spec_id)
    out.insert(2, "effect", out["term"].map(focal))
    return out[STUDY_COLUMNS]


def _riclpm(built: Built, sessions: pd.DataFrame, flags: list[str]) -> pd.DataFrame:
    """The RI-CLPM's cross-lags (constrained paths) as focal rows."""
    wide, _ = riclpm_wide(built.model, sessions)
    cluster = built.model.get("cluster")
    result = fit_riclpm(wide, int(built.model["waves"]), constrain_paths=True, cluster=cluster, x="x", y="y")
    parameters = result.parameters.set_index("name")
    rows = []
    for term in built.focal:
        row = parameters.loc[term]
        rows.append(
            {
                "term": term,
                **{k: float(row[k]) for k in ESTIMATE_COLUMNS if k != "df"},
                "df": float("inf"),
                "n_obs": int(wide[[c for c in wide.columns if c.startswith(("x", "y"))]].notna().to_numpy().sum()),
                "n_patients": int(result.n_patients),
                "n_therapists": int(wide[cluster].nunique()) if cluster else 0,
                "flags": ";".join(list(result.flags) + flags) or "none",
            }
        )
    return pd.DataFrame(rows)


def _linear(built: Built, patients: pd.DataFrame, flags: list[str]) -> pd.DataFrame:
    """A patient-level model without random terms: least squares on its complete cases."""
    model = {**built.model, "random": [{"group": "patient"}]}  # the spec needs a term; the fit drops it
    frame, _ = model_frame(model, None, patients)
    spec = spec_from_config(model)
    result = fit_least_squares(spec, frame, dataclasses.replace(spec, random=()))
    used = frame.loc[result.fitted["row"].to_numpy()]
    return focal_estimates(built.model, result.fixed, list(result.flags) + flags, sample_counts(used))


def fit_specification(
    choices: dict[str, str],
    sessions: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    study: str,
    waves: int,
    winsor_sd: float = 2.0,
    engine: str | None = None,
    singular_fits: str | None = None,
) -> pd.DataFrame:
    """The focal coefficients of one specification in one study (:data:`STUDY_COLUMNS`).

    ``sessions`` and ``patients`` are the study's harmonised tables; ``waves`` the session window's
    length (the RI-CLPM's sessions 1..waves). A study the model cannot be fitted in (too few
    patients, not identified) raises: the caller reports which study and why.

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> n, t = 60, 6
    >>> s = pd.DataFrame({"patient": np.repeat([f"p{i}" for i in range(n)], t), "session": np.tile(np.arange(1, t + 1), n)})
    >>> s["alliance"] = rng.normal(size=n * t)
    >>> s["symptoms"] = np.repeat(rng.normal(50, 10, n), t) - 3 * s["alliance"] + rng.normal(0, 2, n * t)
    >>> from alliance.intake.derive import session_variables
    >>> rows = fit_specification({"model": "same_session"}, session_variables(s), pd.DataFrame({"patient": []}),
    ...                          study="s1", waves=6)
    >>> rows[["effect", "term", "flags"]].values.tolist(), bool(abs(rows["estimate"].iloc[0] + 3) < 0.3)
    ([['same_session', 'alliance_within_patient', 'none']], True)
    """
    spec_id = specification_id(choices)
    sessions, patients, flags = sample_for(choices, sessions, patients, winsor_sd)
    if complete_choices(choices)["therapist_level"] == "with" and not _has_therapists(sessions):
        # a study without therapists: the specification without its therapist level, flagged
        choices = {**complete_choices(choices), "therapist_level": "without"}
        flags.append("no_therapist_level")
    built = build_model(choices, waves=waves)
    if built.is_riclpm:
        return _rows(study, spec_id, built.focal, _riclpm(built, sessions, flags))
    on_patients = built.model.get("data") == "patients"
    if not built.model["random"]:
        return _rows(study, spec_id, built.focal, _linear(built, patients, flags))
    result, counts, _ = primary_fit(
        built.model, None if on_patients else sessions, patients if on_patients else None, engine, singular_fits
    )
    return _rows(
        study, spec_id, built.focal, focal_estimates(built.model, result.fixed, list(result.flags) + flags, counts)
    )


def study_rows(choices: dict[str, str], sessions: pd.DataFrame, patients: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
    """:func:`fit_specification`, or, when the study cannot give the specification (a model the data do
    not identify, an RI-CLPM wave without values, a column the study lacks), one row per focal effect
    without an estimate and the reason in ``flags`` (``fit_failed: ...``): stage two then leaves the study
    out and names it (alliance.pooling.two_stage), and the run goes on.

    Example
    -------
    >>> s = pd.DataFrame({"patient": ["a", "a"], "session": [1, 2], "alliance": [0.0, 1.0]})
    >>> rows = study_rows({"model": "lagged"}, s, pd.DataFrame({"patient": ["a"]}), study="s1", waves=7)
    >>> rows[["study", "effect", "estimate"]].values.tolist(), rows["flags"].iloc[0][:12]
    ([['s1', 'lagged_alliance_symptoms', nan]], 'fit_failed: ')
    """
    try:
        return fit_specification(choices, sessions, patients, **kwargs)
    except (ValueError, RuntimeError, KeyError, np.linalg.LinAlgError) as error:
        failed = {c: math.nan for c in STUDY_COLUMNS}
        built = build_model(choices, waves=kwargs["waves"])
        rows = [
            {
                **failed,
                "study": kwargs["study"],
                "specification": specification_id(choices),
                "effect": effect,
                "term": term,
                "flags": f"fit_failed: {type(error).__name__}: {error}"[:300],
            }
            for term, effect in built.focal.items()
        ]
        return pd.DataFrame(rows, columns=STUDY_COLUMNS)
