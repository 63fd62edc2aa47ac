"""The multi-study demo of the IPD meta-analysis: five simulated trials, each its own export, with known truth.

Each study (:data:`STUDY_TABLE`) is a trial of :func:`alliance.simulate.draw_trial` with its own size,
therapies, conditions, instruments, column names, labels, missing-value code and file format, written to
``data/raw/demo_ipd/<study>/`` (``sessions.csv`` or ``.tsv``, ``patients.csv``), with one
``data/raw/demo_ipd/TRUTH.yaml`` (alliance.simulate_studies_truth) and the ``studies:`` list of ``config/demo_ipd.yaml``
(:func:`studies_config_text`). Regenerate (the seed :data:`IPD_SEED` fixes every number)::

    python -m alliance.simulate_studies --out data/raw/demo_ipd [--config config/demo_ipd.yaml]

The process is the simulator's, the same in every study (carry-overs 0.40, symptoms -> next alliance
-0.10, one contemporaneous within effect of -8 POMP per WAI-SR point for every therapy, sx = 0.35,
sy = 8, the stable parts, an alliance growth of 0.025 per session), except the cross-lag alliance ->
next symptoms (within-person SD units), drawn per study from N(:data:`MU`, :data:`TAU`). Attendance
is missing completely at random (one dropout hazard and missed-session probability for all), so the SD
of the alliance over the session rows 1-7 has a closed form common to all studies (:func:`alliance_sd`)
and the harmonised scale (alliance per within-study SD, outcome POMP) converts every study's paths by
the same factors.

Instruments: the alliance x (WAI-SR mean, 1-5) is mapped linearly through its POMP p = (x - 1) / 4 to
the study's alliance instrument, total = round(total_min + p (total_max - total_min)) in the
instrument's steps (item points; 0.1 for the SRS's visual-analogue items), clipped; the outcome y
(POMP) likewise to the total of the condition's outcome instrument. Totals are spread over the items
exactly (:func:`alliance.simulate_export.split_total_into_items`), reverse-keyed items are written
reverse-keyed as a real export holds them, then 1 % of the item cells are set missing. The intake takes
items as whole numbers only, so the SRS study's items (to 0.1) are read through the total it supplies.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from alliance import simulate_truth
from alliance.intake.registry import Instrument, load_registry
from alliance.simulate import Trial, TrialDesign, alliance_mean_scores, draw_trial, patient_table, write_truth
from alliance.simulate_export import split_total_into_items, text_column, write_csv

IPD_SEED = 20261203
#: mean and between-study SD of the cross-lag alliance -> next symptoms, within-person SD units
MU, TAU = -0.20, 0.08
#: the session-level models of the pooling use sessions 1..WAVES (the RI-CLPM's waves)
WAVES = simulate_truth.RICLPM_WAVES
#: what every study's process shares beside the demo's defaults (the cross-lag is drawn per study)
WITHIN_EFFECT, ALLIANCE_GROWTH = -8.0, 0.025
CONFIG_MARKER = "# studies: written by alliance.simulate_studies"
DEFAULT_OUT = "data/raw/demo_ipd"
#: score steps per item point (the SRS's visual-analogue items are measured to 0.1)
RESOLUTION = {"SRS": 10}

#: a lab's own OQ-45 (not an id of the registry): declared in the lakeside study's ``instruments:`` block
OQ45 = yaml.safe_load("""
{name: Outcome Questionnaire-45 (the lab's own entry), construct: distress, n_items: 45, item_min: 0, item_max: 4,
 reverse_items: [1, 12, 13, 20, 21, 24, 31, 37, 43], subscales: {}, higher_is: worse, score: sum, total_min: 0,
 total_max: 180, prorate_max_missing: 4, prorate_note: "lab rule: a total from at least 41 of the 45 items",
 reliable_change: null, reliability: null, clinical_cutoff: null, severity_bands: null, checked: true,
 citation: "Lambert, M. J., et al. (1996). Clinical Psychology & Psychotherapy, 3(4), 249-258",
 notes: "the lab's own entry: 45 items 0-4, the nine positively worded items reverse-keyed, total 0-180"}
""")

#: the five studies (fields of :class:`StudySpec`)
STUDY_TABLE = """
- {name: riverside, setting: outpatient, year: 2016, n_therapists: 40, patients_per_therapist: 8, max_sessions: 12,
   therapies: [CBT, PDT, IPT], conditions: [depression, anxiety], alliance: WAI-SR, alliance_score: mean,
   outcomes: {depression: PHQ-9, anxiety: GAD-7}, file_format: csv,
   columns: {patient: client_id, therapist: clinician, session: visit, therapy: modality, condition: diagnosis},
   patient_columns: {patient: client_id, age_band: age_band, sex: sex, expectancy: expectancy, end_reason: end_reason},
   items: {WAI-SR: "wai_sr_{item:02d}", PHQ-9: "phq_{item}", GAD-7: "gad_{item}"},
   therapy_labels: {CBT: Cognitive Behavioural Therapy, PDT: Psychodynamic Therapy, IPT: Interpersonal Psychotherapy},
   condition_labels: {depression: MDD, anxiety: GAD}, patient_id: "RV{:04d}", therapist_id: "C{:02d}"}
- {name: campus, setting: university_clinic, year: 2019, n_therapists: 20, patients_per_therapist: 6, max_sessions: 8,
   therapies: [CBT, PDT], conditions: [depression], alliance: WAI-S, alliance_score: mean,
   outcomes: {depression: BDI-II}, file_format: tsv,
   columns: {patient: pid, therapist: therapist_code, session: session_no, therapy: treatment, condition: dx},
   patient_columns: {patient: pid, age_band: age_group, sex: gender, end_reason: status},
   items: {WAI-S: "WAIS{item}", BDI-II: "BDI_{item:02d}"},
   therapy_labels: {CBT: cbt, PDT: psychodynamic}, condition_labels: {depression: F32},
   patient_id: "{:d}", first_patient: 1001, therapist_id: "TH{:03d}", missing_code: NA,
   end_labels: {completed: Completed, dropout: Dropout}}
- {name: harbour, setting: outpatient, year: 2021, n_therapists: 50, patients_per_therapist: 10, max_sessions: 10,
   therapies: [CBT, IPT], conditions: [depression, anxiety], alliance: SRS, alliance_score: total,
   outcomes: {depression: CORE-10, anxiety: CORE-10}, file_format: csv, separator: ";",
   columns: {patient: ClientRef, therapist: Counsellor, session: Appointment, therapy: Approach, condition: Presenting},
   patient_columns: {patient: ClientRef, age_band: AgeBand, sex: Sex, expectancy: Expectancy, end_reason: EndReason},
   items: {SRS: [SRS_Relationship, SRS_Goals, SRS_Approach, SRS_Overall], CORE-10: "CORE{item:02d}"},
   total: {SRS: SRS_Total}, therapy_labels: {CBT: CBT, IPT: IPT},
   condition_labels: {depression: Depression, anxiety: Anxiety},
   patient_id: "HB-{:05d}", therapist_id: "CNS{:02d}", missing_code: "-9"}
- {name: lakeside, setting: university_clinic, year: 2012, n_therapists: 30, patients_per_therapist: 12,
   max_sessions: 16, therapies: [CBT, PDT, IPT], conditions: [depression, anxiety], alliance: WAI-SR,
   alliance_score: total, outcomes: {depression: OQ-45, anxiety: OQ-45}, file_format: tsv,
   columns: {patient: patient_no, therapist: therapist_id, session: sess, therapy: tx, condition: problem},
   patient_columns: {patient: patient_no, age_band: age_band, sex: sex, planned_sessions: planned},
   items: {WAI-SR: "wai{item}", OQ-45: "oq{item:02d}"}, therapy_labels: {CBT: KVT, PDT: TP, IPT: IPT},
   condition_labels: {depression: F32/F33, anxiety: F41}, patient_id: "LS{:04d}", therapist_id: "T-{:d}",
   missing_code: "-99", dropout_definition: fewer_than_planned}
- {name: meadow, setting: outpatient, year: 2023, n_therapists: 35, patients_per_therapist: 9, max_sessions: 14,
   therapies: [CBT, PDT], conditions: [depression], alliance: WAI-S, alliance_score: mean,
   outcomes: {depression: PHQ-9}, file_format: csv,
   columns: {patient: case_id, therapist: therapist, session: session, therapy: therapy_type, condition: condition},
   patient_columns: {patient: case_id, sex: sex, expectancy: expectancy_rating, end_reason: status},
   items: {WAI-S: "wai_s_{item}", PHQ-9: "PHQ9_{item}"},
   therapy_labels: {CBT: Cognitive Behavioral Therapy, PDT: Psychodynamic},
   condition_labels: {depression: major depression}, patient_id: "M{:04d}", therapist_id: "D{:02d}",
   missing_code: ".", end_labels: {completed: finished, dropout: DROPOUT}}
"""


@dataclass(frozen=True)
class StudySpec:
    """One study: its size and design (the cross-lag is drawn), moderators and export format.

    ``columns`` / ``patient_columns``: canonical name -> the study's column (of the patients table's
    ``age_band``, ``sex``, ``expectancy``, ``end_reason`` and ``planned_sessions``, those it has);
    ``items``: instrument -> item columns (a template with ``{item}``, or a list); ``total``:
    instrument -> the column of a total the lab supplies (the config reads it); ``therapy_labels``,
    ``condition_labels``, ``end_labels``: canonical -> the study's spelling; ``patient_id`` and
    ``therapist_id``: format of the ids (patients numbered from ``first_patient``)."""

    name: str
    setting: str
    year: int
    n_therapists: int
    patients_per_therapist: int
    max_sessions: int
    therapies: tuple[str, ...]
    conditions: tuple[str, ...]
    alliance: str
    alliance_score: str
    outcomes: dict[str, str]
    file_format: str
    columns: dict[str, str]
    patient_columns: dict[str, str]
    items: dict[str, str | list[str]]
    therapy_labels: dict[str, str]
    condition_labels: dict[str, str]
    patient_id: str
    therapist_id: str
    first_patient: int = 1
    missing_code: str = ""
    total: dict[str, str] = field(default_factory=dict)
    end_labels: dict[str, str] = field(default_factory=lambda: {"completed": "completed", "dropout": "dropout"})
    dropout_definition: str = "end_reason"
    separator: str = ","  # of a csv file

    @property
    def delimiter(self) -> str:
        return "\t" if self.file_format == "tsv" else self.separator

    @property
    def sessions_file(self) -> str:
        return f"sessions.{self.file_format}"

    @property
    def instruments(self) -> list[str]:
        """The alliance instrument, then the outcome instruments in order of first mention."""
        return list(dict.fromkeys([self.alliance, *self.outcomes.values()]))


STUDIES: tuple[StudySpec, ...] = tuple(
    StudySpec(**{**entry, "therapies": tuple(entry["therapies"]), "conditions": tuple(entry["conditions"])})
    for entry in yaml.safe_load(STUDY_TABLE)
)


# --------------------------------------------------------------------------- designs and the closed forms


def common_design(therapies: tuple[str, ...] = ("CBT", "PDT", "IPT"), **changes) -> TrialDesign:
    """A TrialDesign with the process every study shares: one within effect and one alliance growth
    for every therapy, attendance missing completely at random, no export faults; ``changes``: the
    study's own fields (size, sessions, conditions, the drawn cross-lag ...)."""
    return TrialDesign(
        therapies=tuple(therapies),
        alliance_growth={t: ALLIANCE_GROWTH for t in therapies},
        within_effect={t: WITHIN_EFFECT for t in therapies},
        dropout_alliance_effect=0.0,
        dropout_symptom_effect=0.0,
        add_mess=False,
        **changes,
    )


def draw_cross_lags(seed: int = IPD_SEED, n: int = len(STUDIES), mu: float = MU, tau: float = TAU) -> np.ndarray:
    """The studies' cross-lags alliance -> next symptoms (SD units): normal(mu, tau, n) from stream 0."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(n + 1)[0]).normal(mu, tau, n)


def study_designs(seed: int = IPD_SEED, studies: tuple[StudySpec, ...] = STUDIES) -> list[TrialDesign]:
    """Each study's TrialDesign with its drawn cross-lag, checked by :func:`check_process`."""
    designs = []
    for spec, gamma in zip(studies, draw_cross_lags(seed, len(studies))):
        design = common_design(
            spec.therapies,
            n_therapists=spec.n_therapists,
            patients_per_therapist=spec.patients_per_therapist,
            max_sessions=spec.max_sessions,
            conditions=spec.conditions,
            primary_measure=dict(spec.outcomes),
            cross_alliance_to_symptoms=float(gamma),
        )
        check_process(design)
        designs.append(design)
    return designs


def check_process(design: TrialDesign) -> dict:
    """Raise ValueError unless the within-person process is stationary (spectral radius of B below 1)
    with a positive-definite innovation covariance for every therapy; returns both numbers."""
    radius = float(np.max(np.abs(np.linalg.eigvals(simulate_truth.paths(design)))))
    if radius >= 1:
        raise ValueError(f"the within-person process is not stationary (spectral radius {radius:.3f})")
    # innovation_covariance raises when Q is not positive definite
    smallest = min(np.linalg.eigvalsh(simulate_truth.innovation_covariance(design, t)).min() for t in design.therapies)
    return {"spectral_radius": radius, "innovation_cov_min_eigenvalue": float(smallest)}


def attendance_probabilities(design: TrialDesign, sessions: int = WAVES) -> np.ndarray:
    """P(a patient attends session s), s = 1..sessions, under attendance missing completely at random:
    session 1 always; before each later session a patient still in treatment leaves with probability
    h = expit(dropout_hazard_logit), and one who stays misses it with probability m (never the last
    planned session): (1 - h)^(s - 1) (1 - m). Raises when the scores affect leaving (not MCAR)."""
    if design.dropout_alliance_effect or design.dropout_symptom_effect:
        raise ValueError("attendance depends on the scores (dropout effects not 0): no closed form")
    leave = 1.0 / (1.0 + np.exp(-design.dropout_hazard_logit))
    s = np.arange(1, sessions + 1)
    missed = np.where((s > 1) & (s < design.max_sessions), design.missed_session_probability, 0.0)
    return (1.0 - leave) ** (s - 1) * (1.0 - missed)


def alliance_sd_parts(design: TrialDesign, sessions: int = WAVES) -> dict[str, float]:
    """The variance components of :func:`alliance_sd` (WAI-SR points squared)."""
    weight = attendance_probabilities(design, sessions)
    weight = weight / weight.sum()  # the share of session s among the rows 1..sessions
    t = np.arange(sessions, dtype=float)  # sessions since the first
    share = np.bincount(np.arange(design.n_therapists) % len(design.therapies), minlength=len(design.therapies))
    share = share / share.sum()  # therapy types by therapist, assigned in turn (the same patients each)
    g = np.array([design.alliance_growth[k] for k in design.therapies])
    trend = (share * g**2).sum() * (weight * t**2).sum() - ((share * g).sum() * (weight * t).sum()) ** 2
    return {
        "therapist": design.alliance_therapist_sd**2,
        "patient": design.alliance_patient_sd**2 + 10.0 * design.alliance_expectancy_effect**2,
        "within_person": design.alliance_within_sd**2,
        "growth_trend": float(trend),
    }


def alliance_sd(design: TrialDesign, sessions: int = WAVES, rounding_unit: float = 0.0) -> float:
    """Population SD of the alliance over the session rows 1..sessions (WAI-SR mean-score points).

    Alliance x = a0 + u_j + p_i + g_k (t - 1) + sx wx (alliance.simulate): the therapist part u_j
    (variance alliance_therapist_sd^2), the patient part p_i (alliance_patient_sd^2 plus the
    expectancy term, alliance_expectancy_effect^2 x 10, the variance of a uniform 0-10 rating) and the
    within-person score (stationary: sx^2 at every session) are independent of each other and,
    attendance being missing completely at random, of the sessions a patient attends. The rows of
    session s are the share w_s = pi_s / sum pi of the rows (:func:`attendance_probabilities`), so the
    growth adds the variance of g_k (t - 1) over the rows, E[g^2] E_w[(t-1)^2] - (E[g] E_w[t-1])^2
    (therapy types in their shares of therapists). The four parts sum to the variance of the process's
    alliance before rounding; ``rounding_unit`` (the instrument's step in WAI-SR points) adds the
    rounding error's unit^2 / 12. Clipping at the scale's ends (about 0.5 % of the scores, at the
    ceiling) is left out: it lowers the SD of the observed scores by about 0.4 %.

    >>> round(alliance_sd(common_design()), 4)
    0.5916
    """
    return float(np.sqrt(sum(alliance_sd_parts(design, sessions).values()) + rounding_unit**2 / 12.0))


def instrument_steps(instrument: Instrument) -> int:
    """The steps of an instrument's total from its minimum to its maximum (n_items x item range x resolution)."""
    low, high = instrument.item_range(1)
    return int(round(instrument.n_items * (high - low) * RESOLUTION.get(instrument.id, 1)))


def alliance_unit(instrument: Instrument) -> float:
    """One step of the instrument's total in WAI-SR mean-score points (4 points = its whole range)."""
    return 4.0 / instrument_steps(instrument)


# --------------------------------------------------------------------------- one study: trial and export


@dataclass
class StudyData:
    """One simulated study: the trial and its export (``sessions``, ``patients``, rows in the trial's
    order) and, per session row, the process's alliance ``x`` (WAI-SR points) and outcome ``y``
    (POMP) before rounding, the alliance instrument's score as configured (``alliance_score``, mean or
    total) and the outcome's POMP (``outcome_pomp``), both as rounded and before items were deleted."""

    spec: StudySpec
    design: TrialDesign
    trial: Trial
    sessions: pd.DataFrame
    patients: pd.DataFrame
    x: np.ndarray
    y: np.ndarray
    alliance_score: np.ndarray
    outcome_pomp: np.ndarray


def registry() -> dict[str, Instrument]:
    """The instrument registry with the lab's own OQ-45: every instrument of the studies."""
    return load_registry({"OQ-45": OQ45})


def _scored(pomp: np.ndarray, instrument: Instrument, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(total in steps above total_min, the items in steps as exported: reverse-keyed items reversed)."""
    steps_max = instrument_steps(instrument)
    steps = np.clip(np.rint(pomp / 100.0 * steps_max), 0, steps_max).astype(int)
    per_item = steps_max // instrument.n_items
    items = split_total_into_items(steps, instrument.n_items, per_item, rng).astype(np.int16)
    for k in instrument.reverse_items:
        items[:, k - 1] = per_item - items[:, k - 1]
    return steps, items


def _step_labels(instrument: Instrument, n_steps: int) -> list[str]:
    """The text of 0..n_steps steps above the item minimum (one decimal for a resolution of 0.1)."""
    low, resolution = instrument.item_range(1)[0], RESOLUTION.get(instrument.id, 1)
    if resolution == 1:
        return [str(int(low) + k) for k in range(n_steps + 1)]
    return [f"{low + k / resolution:.1f}" for k in range(n_steps + 1)]


def simulate_study(spec: StudySpec, design: TrialDesign, rng: np.random.Generator) -> StudyData:
    """Simulate one study (:func:`alliance.simulate.draw_trial`) and lay it out as the study exports it.

    Draw order: the trial; the alliance items; the secondary outcome score (only when the study has
    two outcome instruments: each row's other instrument carries ``secondary_loading`` x y + 12 +
    noise, as in the simulator); each outcome instrument's items; the missing item cells
    (probability ``missing_item_probability`` each), instrument by instrument."""
    instruments = registry()
    trial = draw_trial(design, rng)
    rows = trial.rows
    therapy_code = trial.therapists.therapy_code[trial.patients.therapist]
    x = alliance_mean_scores(design, therapy_code, trial.stable, trial.within)[rows.patient, rows.session - 1]
    y = trial.pomp[rows.patient, rows.session - 1]
    ally = instruments[spec.alliance]
    steps, items = _scored(100.0 * (x - 1.0) / 4.0, ally, rng)
    total = ally.total_min + steps / instrument_steps(ally) * (ally.total_max - ally.total_min)
    alliance_score = total if spec.alliance_score == "total" else total / ally.n_items
    blocks = [(ally, items)]
    condition = trial.patients.condition[rows.patient]
    secondary = None
    if len(spec.instruments) > 2:
        secondary = design.secondary_loading * y + 12.0 + rng.normal(0, design.secondary_noise_sd, rows.n)
    outcome_pomp = np.full(rows.n, np.nan)
    for instrument_id in spec.instruments[1:]:
        instrument = instruments[instrument_id]
        primary = np.array([spec.outcomes[c] == instrument_id for c in condition])
        steps, items = _scored(y if secondary is None else np.where(primary, y, secondary), instrument, rng)
        outcome_pomp[primary] = (100.0 * steps / instrument_steps(instrument))[primary]
        blocks.append((instrument, items))
    frame = _session_frame(spec, trial)
    for instrument, items in blocks:
        labels = [*_step_labels(instrument, instrument_steps(instrument) // instrument.n_items), spec.missing_code]
        codes = items.astype(np.intp)
        codes[rng.random(codes.shape) < design.missing_item_probability] = len(labels) - 1
        names = spec.items[instrument.id]
        if isinstance(names, str):
            names = [names.format(item=k) for k in range(1, instrument.n_items + 1)]
        for name, column in zip(names, codes.T):
            frame[name] = text_column(column, labels)
        if instrument.id in spec.total:  # the lab's total: the item sum (missing with an item missing)
            missing = (codes == len(labels) - 1).any(axis=1)
            sums = np.where(missing, 0, items.sum(axis=1))
            text = [*_step_labels(instrument, int(sums.max())), spec.missing_code]
            frame[spec.total[instrument.id]] = text_column(np.where(missing, len(text) - 1, sums), text)
    patients = _patients_frame(spec, design, trial)
    return StudyData(spec, design, trial, frame, patients, x, y, alliance_score, outcome_pomp)


def _patient_ids(spec: StudySpec, n: int) -> list[str]:
    """The study's ids of the simulated patients, in order."""
    return [spec.patient_id.format(spec.first_patient + k) for k in range(n)]


def _session_frame(spec: StudySpec, trial: Trial) -> pd.DataFrame:
    """The id and design columns of the sessions export, in the study's names and spellings."""
    rows, columns = trial.rows, spec.columns
    therapists = [spec.therapist_id.format(k + 1) for k in range(len(trial.therapists.ids))]
    return pd.DataFrame(
        {
            columns["patient"]: text_column(rows.patient, _patient_ids(spec, len(trial.patients.ids))),
            columns["therapist"]: text_column(rows.therapist, therapists),
            columns["session"]: text_column(rows.session, [str(k) for k in range(trial.attended.shape[1] + 1)]),
            columns["therapy"]: text_column(rows.therapist, [spec.therapy_labels[t] for t in trial.therapists.therapy]),
            columns["condition"]: text_column(
                rows.patient, [spec.condition_labels[c] for c in trial.patients.condition]
            ),
        }
    )


def _patients_frame(spec: StudySpec, design: TrialDesign, trial: Trial) -> pd.DataFrame:
    """The patients export: the simulator's patient table in the study's columns and spellings."""
    table = patient_table(design, trial.patients, trial.end_reason)
    table["patient"] = _patient_ids(spec, len(table))
    table["end_reason"] = table["end_reason"].map(spec.end_labels)
    names = spec.patient_columns
    text = {lab: "str" for canonical, lab in names.items() if canonical not in ("expectancy", "planned_sessions")}
    return table[list(names)].rename(columns=names).astype(text)


def simulate_studies(seed: int = IPD_SEED) -> list[StudyData]:
    """Every study of :data:`STUDIES`, each simulated from its own stream of ``seed``."""
    streams = np.random.SeedSequence(seed).spawn(len(STUDIES) + 1)[1:]
    designs = study_designs(seed)
    return [simulate_study(s, d, np.random.default_rng(q)) for s, d, q in zip(STUDIES, designs, streams)]


# --------------------------------------------------------------------------- configs


def measure_key(instrument_id: str) -> str:
    """The measure key of an instrument in the configs: its id in lower case, letters and digits only."""
    return "".join(c for c in instrument_id.lower() if c.isalnum())


def study_config(spec: StudySpec, root: str = DEFAULT_OUT) -> dict:
    """The study's entry of ``studies:``: name, moderators and the blocks of a single-study config."""
    folder = f"{root}/{spec.name}"
    sessions = {"path": f"{folder}/{spec.sessions_file}", "format": spec.file_format}
    sessions |= {"delimiter": spec.delimiter} if spec.file_format == "csv" else {}
    measures = {}
    for instrument_id in spec.instruments:
        if instrument_id in spec.total:
            entry = {"instrument": instrument_id, "total": spec.total[instrument_id], "score": "total"}
        else:
            entry = {"instrument": instrument_id, "items": spec.items[instrument_id]}
        timing = "after session" if instrument_id == spec.alliance else "before session"
        measures[measure_key(instrument_id)] = entry | {"rater": "patient", "timing": timing}
    entry = {
        "name": spec.name,
        "moderators": {"setting": spec.setting, "year": spec.year},
        "dataset": {
            "name": spec.name,
            "sessions": sessions | {"encoding": "utf-8"},
            "patients": {"path": f"{folder}/patients.csv", "format": "csv", "delimiter": ",", "encoding": "utf-8"},
            "columns": dict(spec.columns),
            "patient_columns": dict(spec.patient_columns),
            "labels": {
                "therapy": {k: [v] for k, v in spec.therapy_labels.items()},
                "condition": {k: [v] for k, v in spec.condition_labels.items()},
            },
            "missing_codes": list(dict.fromkeys(["", spec.missing_code])),
            "measures": measures,
        },
        "analysis": {
            "alliance_measure": measure_key(spec.alliance),
            "alliance_score": spec.alliance_score,
            "outcome_by_condition": {c: measure_key(m) for c, m in spec.outcomes.items()},
            "outcome_scale": "pomp",
        },
        "cleaning": {"dropout_definition": spec.dropout_definition},
    }
    if "OQ-45" in spec.instruments:
        entry["instruments"] = {"OQ-45": dict(OQ45)}
    return entry


def studies_config_text(root: str = DEFAULT_OUT, studies: tuple[StudySpec, ...] = STUDIES) -> str:
    """The ``studies:`` block of config/demo_ipd.yaml: the marker comment line, then the list."""
    entries = {"studies": [study_config(s, root) for s in studies]}
    body = yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, default_flow_style=None, width=120)
    return CONFIG_MARKER + "\n" + body


def write_studies_config(path: Path | str, root: str = DEFAULT_OUT) -> None:
    """Write the ``studies:`` block to ``path``, keeping what stands above its marker line (the
    sections prepended to it); a file without the marker is replaced whole."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    head = text[: text.find(CONFIG_MARKER)] if CONFIG_MARKER in text else ""
    path.write_text(head + studies_config_text(root), encoding="utf-8")


# --------------------------------------------------------------------------- writing


def write_studies(outdir: Path | str, seed: int = IPD_SEED) -> dict[str, str]:
    """Write every study's files and TRUTH.yaml under ``outdir``; returns the SHA-256 of each file
    (keyed by the path relative to ``outdir``)."""
    outdir = Path(outdir)
    files = []
    datasets = simulate_studies(seed)
    for data in datasets:
        folder = outdir / data.spec.name
        folder.mkdir(parents=True, exist_ok=True)
        if data.spec.delimiter == ",":
            write_csv(data.sessions, folder / data.spec.sessions_file)
        else:
            data.sessions.to_csv(
                folder / data.spec.sessions_file, sep=data.spec.delimiter, index=False, lineterminator="\n"
            )
        write_csv(data.patients, folder / "patients.csv")
        files += [f"{data.spec.name}/{data.spec.sessions_file}", f"{data.spec.name}/patients.csv"]
    header = (
        "# Known truth of the multi-study (IPD) demo: five simulated trials, each its own export\n"
        "# (alliance.simulate_studies). Regenerate:\n"
        "#   python -m alliance.simulate_studies --out data/raw/demo_ipd\n"
    )
    from alliance.simulate_studies_truth import ipd_truth  # it reads this module's designs and data

    return write_truth(outdir, header, ipd_truth(seed, datasets), tuple(files))


def main(argv: list[str] | None = None) -> None:
    """``python -m alliance.simulate_studies --out DIR [--config FILE]``: write the demo (and the
    ``studies:`` block of FILE), print each file's SHA-256."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=IPD_SEED)
    parser.add_argument("--config", default=None, help="also write the studies: block of this config file")
    args = parser.parse_args(argv)
    for name, digest in write_studies(args.out, args.seed).items():
        print(f"{digest}  {Path(args.out) / name}")
    if args.config:
        write_studies_config(args.config, args.out)


if __name__ == "__main__":
    main()
