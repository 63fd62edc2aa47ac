"""Simulate a de-identified multi-site psychotherapy trial with known truth, lagged and same-session.

The demo data under ``data/raw/demo/`` are made by :func:`write_trial`, and a test
regenerates them byte for byte from the seed. The same simulator makes the small
datasets of the end-to-end tests and the large ones of the benchmarks.

Data-generating model, on the scales the pipeline analyses: alliance x = the WAI-SR mean score
(1-5), symptoms y = the POMP score (percent of maximum possible, 0-100) of the condition's
primary measure (PHQ-9 for depression, GAD-7 for anxiety). For patient i of therapist j
(therapy type k) at session t = 1..16::

    x[i,t] = A_i + g_k (t-1)                                   + sx wx[i,t]
    y[i,t] = Y_i + (s + beta_k g_k) (t-1)                      + sy wy[i,t]

    stable levels:  A_i = a0 + u_j + p_i,   p_i = a_exp (expectancy_i - 5) + v_i
                    Y_i = b0 + beta_P (p_i - mean_j p) + beta_T (u_j + mean_j p - grand mean)
                          + r_j + r_i
    within person:  (wx, wy)[t] = B (wx, wy)[t-1] + e[t],  e[t] ~ N(0, Q_k),   session 1 drawn
                    from the stationary N(0, S_k),  S_k = [[1, rho_k], [rho_k, 1]] = B S_k B' + Q_k
                    B = [[0.40, -0.10], [-0.20, 0.40]]  (rows x[t], y[t]; columns x[t-1], y[t-1])

* The within-person scores wx, wy are in within-person SD units (stationary SD 1) and scaled by
  sx = 0.35 WAI-SR points and sy = 8 POMP points. The within-person process is simulated by
  :func:`alliance.dynamics.process.simulate_process` (one call per therapy type, person
  intercepts 0; :func:`within_scores` is the adapter). The paths B are common to all therapy
  types, so the pooled RI-CLPM has one truth: alliance carry-over 0.40, symptom carry-over 0.40,
  alliance -> next symptoms -0.20, symptoms -> next alliance -0.10 (SD units).
* Same session: the contemporaneous within-person regression of y on x, Sigma_xy(0) /
  Sigma_xx(0) = rho_k sy / sx, is the therapy type's ``within_effect`` (CBT -6, PDT -10, IPT -8
  POMP per WAI-SR point), so rho_k = within_effect_k sx / sy (-0.26, -0.44, -0.35) and Q_k is
  chosen to make S_k stationary. Person-mean-centred same-session models estimate less than that
  (the person mean carries the lagged cross-covariances): their targets, for the realised
  attendance, are computed in closed form by :mod:`alliance.simulate_truth` and written to
  TRUTH.yaml beside the contemporaneous values.
* Between: beta_P = -6 per WAI-SR point of stable alliance, patient within therapist, and beta_T =
  -14 per point of the therapist's stable alliance (u_j plus the mean of the therapist's p), centred
  in the sample as the pipeline centres its means (methods.md section 4); u_j (SD 0.20), v_i (SD
  0.40), r_j (SD 3.5) and r_i (SD 10) are independent. Trends: alliance grows by g_k per session
  (CBT .030, PDT .020, IPT .025); symptoms change by s = -1.6 POMP per session at constant
  alliance, plus the same-session association of the alliance growth (beta_k g_k).
* Measurement: the process *is* the observed-score process. The WAI-SR total is
  round(12 x) clipped to 12-60 and spread over the 12 items (1-5) exactly; the primary total is
  round(y x max / 100) clipped to 0-max and spread over its items (0-3) exactly. The only
  measurement error is that rounding (and the clipping: about 1 % of the alliance scores, at the
  ceiling of 5, and 0.1 % of the symptom scores): SD 1/(12 sqrt 12)
  = 0.024 WAI-SR points (reliability of the within-person part 0.995), 100/(27 sqrt 12) = 1.07
  POMP for the PHQ-9 (0.982) and 1.37 POMP for the GAD-7 (0.971). The non-primary measure is
  0.7 y + 12 + N(0, 8^2) POMP, rounded and spread the same way. The items carry nothing beyond
  their totals. 1 % of the items are then deleted at random, and the export gets the faults of
  :func:`alliance.simulate_export.add_mess`.
* Attendance, sequential and missing at random: every patient attends session 1; before each
  later session a patient still in treatment leaves with probability expit(-3.3 - 1.2 (x_last -
  a0) + 0.015 (y_last - b0)), x_last and y_last the observed (rounded) scores of the last
  attended session; a patient who stays misses the session with probability 0.05 (never
  session 16), completely at random. Who attends session 16 completed.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from alliance import simulate_truth
from alliance.dynamics.process import ProcessParams, simulate_process
from alliance.simulate_export import (  # the item lists are also this module's: the export's item columns
    BLOCK_ROWS,
    GAD7_ITEMS,
    PHQ9_ITEMS,
    WAI_ITEMS,
    CodedColumn,
    add_mess,
    lab2_export,
    plain,
    pomp_to_total,
    split_total_into_items,
    text_column,
    write_csv,
)

DEMO_SEED = 20261125
AGE_BANDS = ("18-25", "26-35", "36-45", "46-55", "56-65", "66+")
#: items and item maximum of each primary symptom measure (the outcome of its condition; every item
#: from 0). The demos use PHQ-9 and GAD-7; the multi-study demo (alliance.simulate_studies) the others.
MEASURE_ITEMS = {"PHQ-9": (9, 3), "GAD-7": (7, 3), "BDI-II": (21, 3), "CORE-10": (10, 4), "OQ-45": (45, 4)}
#: the WAI-SR: 12 items scored 1-5
WAI_N_ITEMS, WAI_ITEM_MIN, WAI_ITEM_MAX = 12, 1, 5


@dataclass(frozen=True)
class TrialDesign:
    """Known truth and design of a simulated trial (defaults: the bundled demo); the module docstring
    gives the model these parameters enter."""

    n_therapists: int = 60
    patients_per_therapist: int = 10
    n_sites: int = 4
    max_sessions: int = 16
    therapies: tuple[str, ...] = ("CBT", "PDT", "IPT")
    conditions: tuple[str, ...] = ("depression", "anxiety")
    primary_measure: dict[str, str] = field(default_factory=lambda: {"depression": "PHQ-9", "anxiety": "GAD-7"})
    # stable alliance and its growth, WAI-SR mean-score points (1-5)
    alliance_intercept: float = 3.40
    alliance_growth: dict[str, float] = field(default_factory=lambda: {"CBT": 0.030, "PDT": 0.020, "IPT": 0.025})
    alliance_expectancy_effect: float = 0.05
    alliance_therapist_sd: float = 0.20
    alliance_patient_sd: float = 0.40
    # stable symptoms and their change, POMP points (0-100); effects per WAI-SR mean-score point
    outcome_intercept: float = 60.0
    outcome_session_slope: float = -1.6
    patient_between_effect: float = -6.0
    therapist_between_effect: float = -14.0
    outcome_therapist_sd: float = 3.5
    outcome_patient_sd: float = 10.0
    # the within-person process: SDs in the scales' units, paths in within-person SD units
    alliance_within_sd: float = 0.35
    symptom_within_sd: float = 8.0
    carryover_alliance: float = 0.40
    carryover_symptoms: float = 0.40
    cross_alliance_to_symptoms: float = -0.20
    cross_symptoms_to_alliance: float = -0.10
    #: contemporaneous within-person regression of symptoms on alliance, Sigma_xy(0) / Sigma_xx(0)
    within_effect: dict[str, float] = field(default_factory=lambda: {"CBT": -6.0, "PDT": -10.0, "IPT": -8.0})
    # secondary (non-primary) symptom measure: 0.7 * primary + 12 + noise, POMP
    secondary_loading: float = 0.7
    secondary_noise_sd: float = 8.0
    # attendance: logit of leaving before a session, per point of the last attended session's scores
    dropout_hazard_logit: float = -3.3
    dropout_alliance_effect: float = -1.2
    dropout_symptom_effect: float = 0.015
    missed_session_probability: float = 0.05
    missing_item_probability: float = 0.01
    add_mess: bool = True

    @property
    def n_patients(self) -> int:
        return self.n_therapists * self.patients_per_therapist


#: the demo's design without within-person dynamics (B = 0): the same-session multilevel models are then
#: correctly specified and target the design's within and between effects (recovery studies of the suite)
STATIC_DESIGN = TrialDesign(
    carryover_alliance=0.0, carryover_symptoms=0.0, cross_alliance_to_symptoms=0.0, cross_symptoms_to_alliance=0.0
)


# --------------------------------------------------------------------------- the trial, step by step
# Each step draws from the one generator in the order the demo data were made with: reordering
# the calls of draw_trial and simulate_trial changes every number of data/raw/demo/.


@dataclass(frozen=True)
class Therapists:
    """The therapists: id, site, the one therapy each delivers, and their random effects."""

    ids: list[str]
    site: list[str]
    therapy_code: np.ndarray  # index into design.therapies
    therapy: np.ndarray
    alliance_u: np.ndarray  # stable alliance (WAI-SR points)
    outcome_u: np.ndarray  # random intercept of the symptoms (POMP points)


@dataclass(frozen=True)
class Patients:
    """The patients: their therapist, baseline covariates and random effects."""

    therapist: np.ndarray  # index into Therapists
    ids: list[str]
    condition: np.ndarray
    expectancy: np.ndarray  # 0-10
    age_band: np.ndarray
    sex: np.ndarray
    alliance_v: np.ndarray  # random intercept of the alliance
    outcome_r0: np.ndarray  # random intercept of the symptoms


@dataclass(frozen=True)
class SessionRows:
    """The attended sessions in long format: one entry per row of the export (before the mess)."""

    patient: np.ndarray  # index into Patients
    therapist: np.ndarray  # index into Therapists
    therapy_code: np.ndarray
    session: np.ndarray  # session number, 1..max_sessions, with gaps for missed sessions

    @property
    def n(self) -> int:
        return len(self.session)


@dataclass(frozen=True)
class StableLevels:
    """Each patient's stable (person-level) parts, in the scales' units."""

    alliance_patient: np.ndarray  # p_i: the patient's own stable alliance (expectancy term included)
    alliance: np.ndarray  # A_i = a0 + u_j + p_i
    symptoms: np.ndarray  # Y_i


@dataclass(frozen=True)
class Trial:
    """Everything the simulator draws before the export: people, scores at every planned session
    (attended or not) and who attended which session."""

    therapists: Therapists
    patients: Patients
    stable: StableLevels
    within: np.ndarray  # (patients, sessions, 2): wx, wy in within-person SD units
    wai_total: np.ndarray  # (patients, sessions): the WAI-SR total, 12-60
    pomp: np.ndarray  # (patients, sessions): the primary measure's POMP score before rounding
    attended: np.ndarray  # (patients, sessions) bool
    rows: SessionRows
    end_reason: np.ndarray


def draw_therapists(design: TrialDesign, rng: np.random.Generator) -> Therapists:
    """Site and therapy (a therapist-level variable, assigned in turn) and the two random intercepts."""
    n_t = design.n_therapists
    therapy_code = np.arange(n_t) % len(design.therapies)
    alliance_u = rng.normal(0, design.alliance_therapist_sd, n_t)
    outcome_u = rng.normal(0, design.outcome_therapist_sd, n_t)
    return Therapists(
        ids=[f"T{k + 1:03d}" for k in range(n_t)],
        site=[f"S{(k % design.n_sites) + 1}" for k in range(n_t)],
        therapy_code=therapy_code,
        therapy=np.array(design.therapies)[therapy_code],
        alliance_u=alliance_u,
        outcome_u=outcome_u,
    )


def draw_patients(design: TrialDesign, rng: np.random.Generator) -> Patients:
    """``patients_per_therapist`` patients per therapist: condition, covariates, random effects."""
    n_p = design.n_patients
    therapist = np.repeat(np.arange(design.n_therapists), design.patients_per_therapist)
    condition = rng.choice(np.array(design.conditions), n_p)
    expectancy = rng.integers(0, 11, n_p)
    age_band = rng.choice(np.array(AGE_BANDS), n_p, p=[0.2, 0.25, 0.2, 0.17, 0.12, 0.06])
    sex = rng.choice(np.array(["female", "male"]), n_p, p=[0.64, 0.36])
    alliance_v = rng.normal(0, design.alliance_patient_sd, n_p)
    outcome_r0 = rng.normal(0, design.outcome_patient_sd, n_p)
    ids = [f"P{k + 1:05d}" for k in range(n_p)]
    return Patients(therapist, ids, condition, expectancy, age_band, sex, alliance_v, outcome_r0)


def stable_levels(design: TrialDesign, therapists: Therapists, patients: Patients) -> StableLevels:
    """A_i and Y_i of the module docstring: the between effects act on the stable alliance centred
    as the pipeline centres its means (patient minus therapist mean of the patients, each patient
    weight 1; therapist mean minus the grand mean of the therapist means)."""
    p = design.alliance_expectancy_effect * (patients.expectancy - 5) + patients.alliance_v
    t = patients.therapist
    counts = np.bincount(t, minlength=design.n_therapists)
    therapist_mean_p = np.bincount(t, weights=p, minlength=design.n_therapists) / np.maximum(counts, 1)
    therapist_stable = therapists.alliance_u + therapist_mean_p
    grand = therapist_stable[counts > 0].mean()
    symptoms = (
        design.outcome_intercept
        + design.patient_between_effect * (p - therapist_mean_p[t])
        + design.therapist_between_effect * (therapist_stable[t] - grand)
        + therapists.outcome_u[t]
        + patients.outcome_r0
    )
    return StableLevels(p, design.alliance_intercept + therapists.alliance_u[t] + p, symptoms)


def within_scores(design: TrialDesign, therapy_code: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(patients, sessions, 2) within-person scores (wx, wy) in SD units: the adapter to
    :func:`alliance.dynamics.process.simulate_process`, called once per therapy type with that
    type's innovation correlation (so that its stationary correlation is rho_k), person intercepts
    0 and no dropout (attendance is drawn on the observed scores, :func:`draw_attendance`)."""
    k_sessions = design.max_sessions
    b = simulate_truth.paths(design)
    out = np.empty((len(therapy_code), k_sessions, 2))
    for k, therapy in enumerate(design.therapies):
        members = np.flatnonzero(therapy_code == k)
        if len(members) == 0:
            continue
        q = simulate_truth.innovation_covariance(design, therapy)
        params = ProcessParams(
            n_sessions=k_sessions,
            carryover_x=b[0, 0],
            cross_y_to_x=b[0, 1],
            cross_x_to_y=b[1, 0],
            carryover_y=b[1, 1],
            innovation_corr=float(q[0, 1] / np.sqrt(q[0, 0] * q[1, 1])),
        )
        data, truth = simulate_process(params, None, rng, intercepts=np.zeros((len(members), 2)))
        if not np.allclose(truth["within_cov"], simulate_truth.stationary_covariance(design, therapy), atol=1e-9):
            raise RuntimeError(f"{therapy}: the process's stationary covariance is not the design's")
        out[members, :, 0] = data["alliance_score"].to_numpy().reshape(len(members), k_sessions)
        out[members, :, 1] = data["symptom_score"].to_numpy().reshape(len(members), k_sessions)
    return out


def primary_items(design: TrialDesign, condition: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(number of items, item maximum) of each patient's primary measure."""
    codes = pd.Categorical(condition, categories=list(design.conditions)).codes
    shape = np.array([MEASURE_ITEMS[design.primary_measure[c]] for c in design.conditions])
    return shape[codes, 0], shape[codes, 1]


def alliance_mean_scores(
    design: TrialDesign, therapy_code: np.ndarray, stable: StableLevels, within: np.ndarray
) -> np.ndarray:
    """(patients, sessions) alliance x of the module docstring, A_i + g_k (t-1) + sx wx[i,t], in
    WAI-SR mean-score points before rounding and clipping (``therapy_code``: each patient's therapy
    type, index into design.therapies). :func:`observed_scores` rounds it to the WAI-SR total; the
    multi-study demo (alliance.simulate_studies) maps it to other alliance instruments."""
    t = np.arange(design.max_sessions)[None, :]
    growth = np.array([design.alliance_growth[k] for k in design.therapies])[therapy_code]
    return stable.alliance[:, None] + growth[:, None] * t + design.alliance_within_sd * within[:, :, 0]


def observed_scores(
    design: TrialDesign, therapists: Therapists, patients: Patients, stable: StableLevels, within: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(WAI-SR total 12-60, primary POMP before rounding, primary POMP as observed) at every planned
    session: the observed-score process of the module docstring."""
    therapy_code = therapists.therapy_code[patients.therapist]
    t = np.arange(design.max_sessions)[None, :]
    slope = np.array([simulate_truth.symptom_mean_slope(design, k) for k in design.therapies])[therapy_code]
    wai = alliance_mean_scores(design, therapy_code, stable, within)
    wai_total = np.clip(np.rint(WAI_N_ITEMS * wai), WAI_N_ITEMS * WAI_ITEM_MIN, WAI_N_ITEMS * WAI_ITEM_MAX)
    pomp = stable.symptoms[:, None] + slope[:, None] * t + design.symptom_within_sd * within[:, :, 1]
    n_items, item_max = primary_items(design, patients.condition)
    total_max = (n_items * item_max)[:, None]
    observed_pomp = 100.0 * np.clip(np.rint(pomp / 100.0 * total_max), 0, total_max) / total_max
    return wai_total.astype(np.int64), pomp, observed_pomp


def draw_attendance(
    design: TrialDesign, wai_total: np.ndarray, observed_pomp: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(patients, sessions) attended: sequential dropout on the last attended session's observed
    scores (missing at random) and sessions missed completely at random (never the last planned)."""
    n, k_sessions = wai_total.shape
    leave_draw = rng.random((n, k_sessions))
    miss_draw = rng.random((n, k_sessions))
    attended = np.zeros((n, k_sessions), dtype=bool)
    attended[:, 0] = True
    in_treatment = np.ones(n, dtype=bool)
    last_wai, last_pomp = wai_total[:, 0] / WAI_N_ITEMS, observed_pomp[:, 0]
    for t in range(1, k_sessions):
        logit = (
            design.dropout_hazard_logit
            + design.dropout_alliance_effect * (last_wai - design.alliance_intercept)
            + design.dropout_symptom_effect * (last_pomp - design.outcome_intercept)
        )
        in_treatment &= leave_draw[:, t] >= 1.0 / (1.0 + np.exp(-logit))
        missed = (t < k_sessions - 1) & (miss_draw[:, t] < design.missed_session_probability)
        attended[:, t] = in_treatment & ~missed
        last_wai = np.where(attended[:, t], wai_total[:, t] / WAI_N_ITEMS, last_wai)
        last_pomp = np.where(attended[:, t], observed_pomp[:, t], last_pomp)
    return attended


def session_rows(therapists: Therapists, patients: Patients, attended: np.ndarray) -> SessionRows:
    """One row per attended session, patients in order, sessions ascending."""
    row_patient, session_index = np.nonzero(attended)
    row_therapist = patients.therapist[row_patient]
    return SessionRows(row_patient, row_therapist, therapists.therapy_code[row_therapist], session_index + 1)


def draw_trial(design: TrialDesign, rng: np.random.Generator) -> Trial:
    """People, the within-person process, the observed scores and attendance, in the demo's draw order."""
    therapists = draw_therapists(design, rng)
    patients = draw_patients(design, rng)
    stable = stable_levels(design, therapists, patients)
    within = within_scores(design, therapists.therapy_code[patients.therapist], rng)
    wai_total, pomp, observed_pomp = observed_scores(design, therapists, patients, stable, within)
    attended = draw_attendance(design, wai_total, observed_pomp, rng)
    end_reason = np.where(attended[:, -1], "completed", "dropout")
    rows = session_rows(therapists, patients, attended)
    return Trial(therapists, patients, stable, within, wai_total, pomp, attended, rows, end_reason)


def alliance_items(wai_total: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The 12 WAI-SR items (1-5, int8) of every row, spread exactly from the row's total."""
    low = WAI_N_ITEMS * WAI_ITEM_MIN
    items = split_total_into_items(wai_total - low, WAI_N_ITEMS, WAI_ITEM_MAX - WAI_ITEM_MIN, rng)
    items += WAI_ITEM_MIN
    return items


def symptom_items(
    design: TrialDesign, patients: Patients, rows: SessionRows, outcome: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(PHQ-9, GAD-7) items of every row: the condition's primary measure carries the outcome, the
    other one a noisy secondary score (``secondary_loading`` x outcome + 12 + noise)."""
    secondary_pomp = design.secondary_loading * outcome + 12.0 + rng.normal(0, design.secondary_noise_sd, rows.n)
    depression = (patients.condition == "depression")[rows.patient]
    phq_pomp = np.where(depression, outcome, secondary_pomp)
    gad_pomp = np.where(depression, secondary_pomp, outcome)
    phq_items = split_total_into_items(pomp_to_total(phq_pomp, 9, 3), 9, 3, rng)
    gad_items = split_total_into_items(pomp_to_total(gad_pomp, 7, 3), 7, 3, rng)
    return phq_items, gad_items


def export_columns(
    design: TrialDesign,
    therapists: Therapists,
    patients: Patients,
    rows: SessionRows,
    item_codes: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, CodedColumn]:
    """The export's columns, all text, as codes into labels (item k is label str(k), a missing item
    the empty label), decoded once after the mess: no Python string per cell, so the million-row
    scale data stay fast and small.  ``item_codes`` (WAI-SR, PHQ-9, GAD-7 items) gets its missing
    items in place."""
    item_labels = ["0", "1", "2", "3", "4", "5", ""]  # WAI-SR items are 1-5, PHQ/GAD 0-3
    for start in range(0, rows.n, BLOCK_ROWS):  # one draw per cell, in blocks of rows
        block = item_codes[start : start + BLOCK_ROWS]
        block[rng.random(block.shape) < design.missing_item_probability] = len(item_labels) - 1
    columns = {
        "site": (rows.therapist, therapists.site),
        "therapist": (rows.therapist, therapists.ids),
        "patient": (rows.patient, patients.ids),
        "session": (rows.session, [str(k) for k in range(design.max_sessions + 1)]),
        "therapy": (rows.therapist, [str(t) for t in therapists.therapy]),
        "condition": (rows.patient, [str(c) for c in patients.condition]),
    }
    for j, name in enumerate(WAI_ITEMS + PHQ9_ITEMS + GAD7_ITEMS):
        columns[name] = (item_codes[:, j], list(item_labels))
    return columns


def patient_table(design: TrialDesign, patients: Patients, end_reason: np.ndarray) -> pd.DataFrame:
    """The patient-level export: baseline covariates and end status."""
    return pd.DataFrame(
        {
            "patient": patients.ids,
            "age_band": patients.age_band,
            "sex": patients.sex,
            "expectancy": patients.expectancy,
            "planned_sessions": design.max_sessions,
            "end_reason": end_reason,
        }
    )


def trial_truth(design: TrialDesign, seed: int, trial: Trial, mess: list[dict]) -> dict:
    """TRUTH.yaml: the design, every true value and what each model targets, the realised sample."""
    therapy_code = trial.therapists.therapy_code[trial.patients.therapist]
    sections = simulate_truth.truth_sections(
        design,
        trial.patients.therapist,
        therapy_code,
        trial.attended,
        trial.stable.alliance_patient,
        trial.therapists.alliance_u,
    )
    return {
        "seed": seed,
        "design": plain(asdict(design)),
        "scales": {
            "alliance": "WAI-SR mean score (1-5), mean of the 12 items",
            "outcome": "POMP (percent of maximum possible, 0-100) of the condition's primary measure",
            "primary_measure": dict(design.primary_measure),
            "within_person_sd_units": "a within-person score divided by its stationary within-person SD",
        },
        **sections,
        "sample": {
            "therapists": int(design.n_therapists),
            "patients": int(design.n_patients),
            "session_rows": int(trial.rows.n),
            "completed": int((trial.end_reason == "completed").sum()),
            "dropout": int((trial.end_reason == "dropout").sum()),
            "patients_by_session": [int(v) for v in trial.attended.sum(axis=0)],
        },
        "mess": list(mess),
    }


def simulate_trial(
    design: TrialDesign = TrialDesign(), seed: int = DEMO_SEED
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Simulate one trial. Returns (sessions, patients, truth).

    ``sessions`` has one row per attended session with the item responses as
    strings, as a lab's export would hold them (mess included when
    ``design.add_mess``); ``patients`` has baseline covariates and end status;
    ``truth`` holds the design, the true values and the realised sample quantities.

    Example
    -------
    >>> sessions, patients, truth = simulate_trial(TrialDesign(n_therapists=6), seed=1)
    >>> sorted(truth["same_session"]["contemporaneous_by_therapy"].items())
    [('CBT', -6.0), ('IPT', -8.0), ('PDT', -10.0)]
    """
    rng = np.random.default_rng(seed)
    trial = draw_trial(design, rng)
    rows = trial.rows
    wai_items = alliance_items(trial.wai_total[rows.patient, rows.session - 1], rng)
    outcome = trial.pomp[rows.patient, rows.session - 1]
    phq_items, gad_items = symptom_items(design, trial.patients, rows, outcome, rng)
    item_codes = np.concatenate([wai_items, phq_items, gad_items], axis=1)
    del wai_items, phq_items, gad_items, outcome  # the scale data: hold one copy of the items
    columns = export_columns(design, trial.therapists, trial.patients, rows, item_codes, rng)
    del item_codes
    mess = add_mess(columns, rows.n, rng) if design.add_mess else []
    sessions = pd.DataFrame({name: text_column(codes, labels) for name, (codes, labels) in columns.items()})
    del columns
    return sessions, patient_table(design, trial.patients, trial.end_reason), trial_truth(design, seed, trial, mess)


def write_trial(outdir: Path | str, design: TrialDesign = TrialDesign(), seed: int = DEMO_SEED) -> dict[str, str]:
    """Simulate and write ``sessions.csv``, ``patients.csv`` and ``TRUTH.yaml``.

    Returns the SHA-256 of each written file.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    sessions, patients, truth = simulate_trial(design, seed)
    write_csv(sessions, outdir / "sessions.csv")
    write_csv(patients, outdir / "patients.csv")
    header = (
        "# Known truth of the simulated demo trial (alliance.simulate).\n"
        "# Regenerate: python -m alliance.simulate --out data/raw/demo\n"
    )
    return write_truth(outdir, header, truth, ("sessions.csv", "patients.csv"))


def write_truth(outdir: Path, header: str, truth: dict, data_files: tuple[str, ...]) -> dict[str, str]:
    """Write ``TRUTH.yaml`` (``header`` comment lines, then the truth); returns the SHA-256 of each
    of ``data_files`` and of TRUTH.yaml."""
    (outdir / "TRUTH.yaml").write_text(
        header + yaml.safe_dump(truth, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    return {name: hashlib.sha256((outdir / name).read_bytes()).hexdigest() for name in (*data_files, "TRUTH.yaml")}


# --------------------------------------------------------------------------- second demo: another lab's export

LAB2_SEED = 20261126
#: The second demo's design: the same data-generating model, a smaller trial, its own faults.
LAB2_DESIGN = TrialDesign(n_therapists=45, patients_per_therapist=8, add_mess=False)


def lab2_tables(design: TrialDesign = LAB2_DESIGN, seed: int = LAB2_SEED) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The simulated trial as another lab would export it: (sessions, clients, truth).

    Other column names (``ClientID``, ``TherapistCode``, ``SessionNo``, ``Treatment``,
    ``Diagnosis``, ``Centre``), other labels ("Cognitive Behavioural Therapy",
    "MDD" ...), totals instead of items (``WAI_total`` 12-60 = 12 x the WAI-SR mean,
    ``PHQ9_total``, ``GAD7_total``; prorated like the registry's rule, ``-9`` when
    too many items are missing), session dates (dd.mm.yyyy) instead of day counts,
    exact ages (some over 89) and a planned number of sessions instead of an end
    reason. Faults of its own are listed in ``truth["mess"]``.
    """
    sessions, patients, truth = simulate_trial(design, seed)
    # a separate stream: the trial itself is as simulated
    return lab2_export(sessions, patients, truth, np.random.default_rng(seed + 1))


def write_lab2_trial(outdir: Path | str, seed: int = LAB2_SEED, design: TrialDesign = LAB2_DESIGN) -> dict[str, str]:
    """Write the second demo (:func:`lab2_tables`): ``therapy_sessions.csv``, ``clients.csv``
    (semicolon-separated, latin-1) and ``TRUTH.yaml``. Returns the SHA-256 of each file."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    sessions, clients, truth = lab2_tables(design, seed)
    for frame, name in ((sessions, "therapy_sessions.csv"), (clients, "clients.csv")):
        frame.to_csv(outdir / name, index=False, sep=";", encoding="latin-1", lineterminator="\n")
    header = (
        "# Known truth of the second simulated demo trial, exported in another lab's format\n"
        "# (alliance.simulate.write_lab2_trial). Regenerate:\n"
        "#   python -m alliance.simulate --lab2 --out data/raw/demo_lab2\n"
    )
    return write_truth(outdir, header, truth, ("therapy_sessions.csv", "clients.csv"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/raw/demo")
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--therapists", type=int, default=TrialDesign.n_therapists)
    parser.add_argument("--patients-per-therapist", type=int, default=TrialDesign.patients_per_therapist)
    parser.add_argument(
        "--lab2",
        action="store_true",
        help="write the second demo (another lab's format, seed %d) instead" % LAB2_SEED,
    )
    args = parser.parse_args(argv)
    if args.lab2:
        seed = LAB2_SEED if args.seed == DEMO_SEED else args.seed
        for name, digest in write_lab2_trial(args.out, seed).items():
            print(f"{digest}  {Path(args.out) / name}")
        return
    design = TrialDesign(n_therapists=args.therapists, patients_per_therapist=args.patients_per_therapist)
    for name, digest in write_trial(args.out, design, args.seed).items():
        print(f"{digest}  {Path(args.out) / name}")


if __name__ == "__main__":
    main()
