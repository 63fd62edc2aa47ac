"""TRUTH.yaml of the multi-study demo (alliance.simulate_studies): the drawn cross-lags and every pooled
effect's truth on the harmonised scale, per study and pooled.

The studies' process is common but for the drawn cross-lag alliance -> next symptoms, and attendance is
missing completely at random, so one closed-form alliance SD (:func:`alliance.simulate_studies.alliance_sd`)
converts every study's paths to the harmonised scale (POMP points of the outcome per within-study SD of
the alliance): the RI-CLPM's cross-lags exactly, the same-session coefficient through the closed-form
estimand of :func:`alliance.simulate_truth.same_session_estimands` on sessions 1-7; the lagged mixed
models and the early-alliance model estimate no single parameter and say what they are compared with.
"""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import yaml

from alliance import simulate_truth
from alliance.simulate_export import plain
from alliance.simulate_studies import (
    MU,
    TAU,
    WAVES,
    WITHIN_EFFECT,
    StudyData,
    alliance_sd,
    alliance_sd_parts,
    alliance_unit,
    attendance_probabilities,
    check_process,
    registry,
)

__all__ = ["TRUTH_TEXT", "ipd_truth"]


def _study_truth(data: StudyData) -> tuple[dict, dict]:
    """(the study's TRUTH.yaml entry, its same-session estimands on sessions 1..WAVES in WAI-SR points)."""
    spec, design, trial = data.spec, data.design, data.trial
    instruments = registry()
    ally = instruments[spec.alliance]
    per_point = (ally.total_max - ally.total_min) / 4.0 / (1 if spec.alliance_score == "total" else ally.n_items)
    early = trial.rows.session <= WAVES
    code = trial.therapists.therapy_code[trial.patients.therapist]
    short = replace(design, max_sessions=WAVES)
    same = simulate_truth.same_session_estimands(short, code, trial.attended[:, :WAVES])
    keyed = {i: list(instruments[i].reverse_items) for i in spec.instruments if instruments[i].reverse_items}
    entry = {
        "moderators": {"setting": spec.setting, "year": spec.year},
        "cross_alliance_to_symptoms": design.cross_alliance_to_symptoms,
        "process_check": check_process(design),
        "design": plain(asdict(design)),
        "export": {
            "sessions": f"{spec.name}/{spec.sessions_file}",
            "patients": f"{spec.name}/patients.csv",
            "alliance_instrument": spec.alliance,
            "alliance_score": spec.alliance_score,
            "alliance_step_wai_points": alliance_unit(ally),
            "outcome_by_condition": dict(spec.outcomes),
            "reverse_keyed_items_stored_reversed": keyed,
            "supplied_totals": dict(spec.total),
            "missing_code": spec.missing_code,
        },
        "sample": {
            "therapists": int(design.n_therapists),
            "patients": int(design.n_patients),
            "session_rows": int(trial.rows.n),
            f"session_rows_1_{WAVES}": int(early.sum()),
            "completed": int((trial.end_reason == "completed").sum()),
            "dropout": int((trial.end_reason == "dropout").sum()),
            f"patients_by_session_1_{WAVES}": [int(v) for v in trial.attended[:, :WAVES].sum(axis=0)],
            "alliance_sd_sample": float(np.std(data.alliance_score[early] / per_point, ddof=1)),
        },
        "same_session_estimand_wai_points": {**same["pooled"], "patient_mean": same["patient_mean"]},
    }
    return entry, same


#: the words of TRUTH.yaml (``{waves}``, ``{within}``: the sessions and the within effect)
TRUTH_TEXT = """
units:
  mu_tau: the cross-lag alliance -> next symptoms in within-person SD units (the VAR(1) of alliance.simulate)
  alliance: >-
    harmonised: the study's alliance score z-standardised over its session rows 1-{waves} with an alliance score
    (mean and SD, ddof 1)
  outcome: "harmonised: POMP, percent of the outcome instrument's possible range (0-100)"
  process: x is the simulator's WAI-SR mean score (1-5), mapped to each study's instrument through its POMP
  alliance_sd_sample: the study's SD of its alliance score (as rounded, before items were deleted) in WAI-SR points
alliance_sd_definition: >-
  population SD of the alliance x (WAI-SR mean-score points, before rounding) over the session rows 1-{waves},
  attendance missing completely at random (alliance.simulate_studies.alliance_sd): the same in every study; the
  observed scores' SD is about 0.4 % lower (clipping at the ceiling)
factors_definition: >-
  a path in within-person SD units x alliance_to_symptoms_factor (sy / sx x alliance_sd) is POMP points per
  alliance SD; x symptoms_to_alliance_factor (sx / sy / alliance_sd) is alliance SDs per POMP point
effects:
  riclpm_alliance_symptoms:
    definition: >-
      the RI-CLPM cross-lag alliance at t -> symptoms at t+1 on sessions 1-{waves}: gamma_s x sy / sx x
      alliance_sd, gamma_s the study's drawn cross-lag; pooled: mean = mu x that factor, between_study_sd = tau x
      it, mean_of_studies and sd_of_studies those of the five drawn; at_sample_sd: on the study's own SD
    units: POMP points of the outcome per within-study SD of the alliance
  riclpm_symptoms_alliance:
    definition: >-
      the RI-CLPM cross-lag symptoms at t -> alliance at t+1 on sessions 1-{waves}: beta x sx / sy / alliance_sd
      (beta = -0.10 SD units in every study)
    units: within-study SDs of the alliance per POMP point of the outcome
  same_session:
    definition: >-
      the limit of the same-session within-patient coefficient on sessions 1-{waves} for the study's attendance
      (alliance.simulate_truth.same_session_estimands, patient mean) x alliance_sd; pooled: the mean over the
      studies. Not the contemporaneous coefficient ({within} POMP per WAI-SR point)
    units: POMP points of the outcome per within-study SD of the alliance
  lagged_alliance_symptoms:
    targets: &lagged >-
      no single parameter: a lagged mixed model (the lagged outcome beside a patient intercept, raw or
      person-centred) is biased (Nickell / dynamic-panel bias, docs/lagged_recovery.md); compare each coefficient
      with the RI-CLPM path of compare_with, study by study and pooled
  lagged_symptoms_alliance:
    targets: *lagged
  early_alliance:
    targets: >-
      no single parameter: the session-3 alliance and the end-of-treatment symptoms (one row per patient) mix the
      stable between effects, the within-person process over the sessions and the attendance; compare with the
      design's stable between effects on the harmonised scale (POMP per WAI-SR point x alliance_sd)
"""


def ipd_truth(seed: int, datasets: list[StudyData]) -> dict:
    """TRUTH.yaml: the seed, mu and tau, every study's drawn cross-lag, design, export and sample, and
    the truths of the effects on the harmonised scale, per study and pooled."""
    design = datasets[0].design
    sd, sx, sy = alliance_sd(design), design.alliance_within_sd, design.symptom_within_sd
    to_y, to_x = sy / sx * sd, sx / sy / sd  # an SD-unit path on the harmonised scale
    studies, sample_sd, values = {}, {}, {"forward": {}, "back": {}, "same": {}}
    for data in datasets:
        name = data.spec.name
        if not np.isclose(alliance_sd(data.design), sd, rtol=1e-12):
            raise ValueError(f"{name}: the alliance SD is not that of the other studies: no common conversion")
        studies[name], same = _study_truth(data)
        sample_sd[name] = studies[name]["sample"]["alliance_sd_sample"]
        values["forward"][name] = data.design.cross_alliance_to_symptoms * to_y
        values["back"][name] = data.design.cross_symptoms_to_alliance * to_x
        values["same"][name] = same["patient_mean"] * sd

    def by_study(kind: str, power: int) -> dict:
        """value (population SD) and at_sample_sd (the study's own SD, as its harmonised data carry it)."""
        return {n: {"value": v, "at_sample_sd": v * (sample_sd[n] / sd) ** power} for n, v in values[kind].items()}

    text = yaml.safe_load(TRUTH_TEXT.format(waves=WAVES, within=f"{WITHIN_EFFECT:g}"))
    effects, drawn, paths = text["effects"], np.array(list(values["forward"].values())), simulate_truth.paths(design)
    effects["riclpm_alliance_symptoms"] |= {
        "by_study": by_study("forward", 1),
        "pooled": {
            "mean": MU * to_y,
            "between_study_sd": TAU * to_y,
            "mean_of_studies": float(drawn.mean()),
            "sd_of_studies": float(drawn.std(ddof=1)),
        },
    }
    back = {"by_study": by_study("back", -1), "pooled": {"mean": paths[0, 1] * to_x, "between_study_sd": 0.0}}
    effects["riclpm_symptoms_alliance"] |= back
    same_pooled = {"mean": float(np.mean(list(values["same"].values())))}
    effects["same_session"] |= {"by_study": by_study("same", 1), "pooled": same_pooled}
    effects["lagged_alliance_symptoms"]["compare_with"] = {
        "alliance_within_patient": "riclpm_alliance_symptoms",
        "symptoms": float(paths[1, 1]),  # the symptom carry-over, scale-free
    }
    effects["lagged_symptoms_alliance"]["compare_with"] = {
        "symptoms_within_patient": "riclpm_symptoms_alliance",
        "alliance": float(paths[0, 0]),
    }
    effects["early_alliance"]["compare_with"] = {
        "patient_within_therapist_stable": design.patient_between_effect * sd,
        "between_therapist_stable": design.therapist_between_effect * sd,
    }
    scale = {
        "sessions": [1, WAVES],
        "alliance_sd": sd,
        "alliance_sd_definition": text["alliance_sd_definition"],
        "alliance_sd_parts": alliance_sd_parts(design),
        f"attendance_probability_sessions_1_{WAVES}": [float(v) for v in attendance_probabilities(design)],
        "within_sd": {"alliance_wai_points": sx, "symptoms_pomp_points": sy},
        "alliance_to_symptoms_factor": to_y,
        "symptoms_to_alliance_factor": to_x,
        "factors_definition": text["factors_definition"],
    }
    streams = (
        f"numpy SeedSequence(seed).spawn({len(studies) + 1}): stream 0 draws the cross-lags "
        f"(normal(mu, tau, {len(studies)}), in study order), stream i simulates study i"
    )
    truth = {"seed": seed, "streams": streams, "mu": MU, "tau": TAU, "units": text["units"]}
    return simulate_truth.rounded(truth | {"harmonised_scale": scale, "studies": studies, "effects": effects})
