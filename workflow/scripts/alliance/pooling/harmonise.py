"""Harmonisation: each study's clean tables on the pooled run's common scale, written down.

Two-stage pooling compares coefficients across studies that measured the alliance and the
outcome with different instruments; the coefficients are comparable only when every study's
variables are on one scale per construct (docs/methods.md section 11.2). For each study, from the
intake's tables (``results/<pool>/studies/<study>/clean/``):

* **the outcome**: the primary outcome's raw total (``symptoms_raw``) as POMP, 100 x (total -
  min) / (max - min) of the instrument's possible range (the registry's, or the study's own
  ``instruments``), or standardised within study and instrument (``z_within_study``: minus the mean,
  divided by the SD, ddof 1, of that instrument's scores in the session window);
* **the alliance**: standardised within study, minus the mean and divided by the SD (ddof 1) of
  the study's alliance scores in the session window, whatever instrument rated it;
* **the session window**: the session-level models and the RI-CLPM use the sessions
  ``[first, last]`` only (Flückiger et al. 2020: 1-7); every derived session variable (within and
  between parts, detrended part, next session's values) is made again on those sessions with the
  intake's own function (alliance.intake.derive.session_variables), so a lagged model's last
  outcome is the window's last session;
* **the patient level**: baseline, last and early-change scores and the early alliance (session 3,
  mean of sessions 1-4) are made with the intake's function (alliance.intake.patient_level.
  patient_variables) on *all* of the patient's harmonised sessions: the end-of-treatment outcome
  is the last observed one, not the window's.

:func:`harmonise_study` returns the two tables and one record per study (the report's
harmonisation table): the instruments, the transformation with its constants, the window and the
sample kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alliance.intake.derive import session_variables
from alliance.intake.patient_level import patient_variables
from alliance.intake.registry import Instrument
from alliance.intake.scoring import common_scale

__all__ = ["OUTCOME_SCALES", "SESSION_COLUMNS", "Harmonised", "standardise", "harmonise_study"]

#: the outcome's common scales (pooling.outcome_scale)
OUTCOME_SCALES = {
    "pomp": "POMP points (percent of the instrument's possible range)",
    "z_within_study": "within-study SDs of the outcome instrument",
}
#: the intake's session columns a harmonised table keeps before its variables are derived again
SESSION_COLUMNS = ("patient", "therapist", "session", "therapy", "condition", "outcome_measure", "dropout")


@dataclass(frozen=True)
class Harmonised:
    """One study on the common scale: session rows of the window, every patient, and the record."""

    sessions: pd.DataFrame
    patients: pd.DataFrame
    record: dict[str, Any]


def standardise(values: pd.Series, rows: pd.Series) -> tuple[pd.Series, float, float]:
    """``values`` minus the mean and divided by the SD (ddof 1) of ``values[rows]``; also the mean and SD.

    Example
    -------
    >>> v = pd.Series([1.0, 2.0, 3.0, 10.0])
    >>> z, mean, sd = standardise(v, pd.Series([True, True, True, False]))
    >>> z.tolist(), mean, sd
    ([-1.0, 0.0, 1.0, 8.0], 2.0, 1.0)
    """
    used = values[rows & values.notna()]
    if len(used) < 2:
        raise ValueError(f"cannot standardise {values.name!r}: fewer than 2 scores in the session window")
    mean, sd = float(used.mean()), float(used.std(ddof=1))
    if not np.isfinite(sd) or sd <= 0:
        raise ValueError(f"cannot standardise {values.name!r}: its SD in the session window is {sd}")
    return (values - mean) / sd, mean, sd


def _outcome(
    sessions: pd.DataFrame, window_rows: pd.Series, scale: str, registry: dict[str, Instrument]
) -> tuple[pd.Series, list[dict[str, Any]]]:
    """The harmonised outcome and, per instrument, what was done to it."""
    measures = sessions["outcome_measure"].astype("string")
    pomp = common_scale(sessions["symptoms_raw"], measures, registry, "pomp", window_rows)
    steps = []
    out = pomp if scale == "pomp" else pd.Series(np.nan, index=sessions.index, dtype=float)
    for instrument_id in sorted(measures.dropna().unique()):
        instrument = registry[instrument_id]
        rows = measures == instrument_id
        step = {
            "instrument": instrument_id,
            "pomp": f"100 x (total - {instrument.total_min:g}) / {instrument.total_max - instrument.total_min:g}",
        }
        if scale == "z_within_study":
            z, mean, sd = standardise(sessions["symptoms_raw"].where(rows), window_rows & rows)
            out[rows] = z[rows]
            step.update(mean=mean, sd=sd)
        steps.append(step)
    return out, steps


def harmonise_study(
    analysis: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    study: str,
    window: tuple[int, int],
    outcome_scale: str,
    registry: dict[str, Instrument],
    alliance_instrument: str,
) -> Harmonised:
    """The study's clean tables on the common scale (module docstring) and its record.

    ``analysis`` and ``patients`` are the intake's tables of the study; ``registry`` holds every
    instrument it may use (the registry and the study's own); ``alliance_instrument`` names the
    instrument of its alliance score (for the record).

    Example
    -------
    >>> from alliance.intake.config import load_instruments
    >>> a = pd.DataFrame({"patient": ["a"] * 3 + ["b"] * 3, "therapist": ["t"] * 6, "session": [1, 2, 9] * 2,
    ...                   "outcome_measure": ["PHQ-9"] * 6, "symptoms_raw": [27.0, 13.5, 0.0, 18.0, 9.0, 9.0],
    ...                   "alliance": [3.0, 4.0, 5.0, 2.0, 3.0, 3.0]})
    >>> h = harmonise_study(a, pd.DataFrame({"patient": ["a", "b"], "dropout": [False, True]}), study="s",
    ...                     window=(1, 7), outcome_scale="pomp", registry=load_instruments({}), alliance_instrument="WAI-SR")
    >>> h.sessions["symptoms"].tolist(), h.sessions["alliance"].round(3).tolist()
    ([100.0, 50.0, 66.66666666666667, 33.333333333333336], [0.0, 1.225, -1.225, 0.0])
    >>> h.patients["symptoms_last"].tolist(), h.record["session_rows"], h.record["alliance_sd"]
    ([0.0, 33.333333333333336], 4, 0.816496580927726)
    """
    first, last = window
    data = analysis.sort_values(["patient", "session"], kind="stable").reset_index(drop=True)
    in_window = data["session"].between(first, last)
    symptoms, outcome_steps = _outcome(data, in_window, outcome_scale, registry)
    alliance, alliance_mean, alliance_sd = standardise(data["alliance"].astype(float), in_window)
    kept = [c for c in SESSION_COLUMNS if c in data.columns]
    base = data[kept].assign(symptoms_raw=data["symptoms_raw"], symptoms=symptoms, alliance=alliance)
    base["study"] = study
    windowed = session_variables(base.loc[in_window].reset_index(drop=True))

    per_patient = patient_variables(base).reset_index()
    if "dropout" in patients.columns:
        per_patient = per_patient.merge(patients[["patient", "dropout"]], on="patient", how="left")
    per_patient["study"] = study
    usable = windowed["alliance"].notna() & windowed["symptoms"].notna()
    record = {
        "study": study,
        "alliance_instrument": alliance_instrument,
        "alliance_mean": alliance_mean,
        "alliance_sd": alliance_sd,
        "alliance_transformation": f"(score - {alliance_mean:.6g}) / {alliance_sd:.6g}, mean and SD of sessions {first}-{last}",
        "outcome_instruments": "; ".join(step["instrument"] for step in outcome_steps),
        "outcome_scale": outcome_scale,
        "outcome_transformation": "; ".join(
            f"{s['instrument']}: {s['pomp']}"
            if outcome_scale == "pomp"
            else f"{s['instrument']}: (total - {s['mean']:.6g}) / {s['sd']:.6g}"
            for s in outcome_steps
        ),
        "window": f"sessions {first}-{last}",
        "patients": int(per_patient["patient"].nunique()),
        "patients_in_window": int(windowed.loc[usable, "patient"].nunique()),
        "session_rows": int(usable.sum()),
        "session_rows_outside_window": int((~in_window).sum()),
    }
    return Harmonised(sessions=windowed, patients=per_patient, record=record)
