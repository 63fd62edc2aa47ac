"""The one-stage model: every patient of every study in one mixed model, with study as a level.

Beside the two-stage answer (alliance.pooling.two_stage), the same effect estimated from the
stacked harmonised sessions of all studies (docs/methods.md section 11.4): patients nested in
studies, a random intercept per patient, and per study a random intercept and a random slope of
the focal within-patient predictor, uncorrelated (lme4: ``(1 + w || study) + (1 | study:patient)``).
The fixed within-patient slope is the one-stage pooled effect and the SD of the random study slope
the one-stage counterpart of tau.

Why the study intercepts are random, not fixed: the engines fit random terms with intercepts only
(alliance.engines.spec.RandomTerm), and fixed study intercepts beside a random study intercept would
put its variance on the boundary. For the focal predictor the difference does not matter: a
within-patient (person-mean-centred) predictor has mean 0 in every study, so it is orthogonal to
any study intercept; the random intercepts only absorb mean differences in the outcome.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from alliance.models.refit import ESTIMATE_COLUMNS, primary_fit

__all__ = ["ONE_STAGE_MODELS", "stack_studies", "one_stage_model", "fit_one_stage"]

#: the one-stage models: pooled effect -> (outcome, focal predictor, the other fixed terms)
ONE_STAGE_MODELS = {
    "same_session": ("symptoms", "alliance_within_patient", ["alliance_between_patient", "session_c"]),
    "lagged_alliance_symptoms": (
        "symptoms_next",
        "alliance_within_patient",
        ["alliance_between_patient", "symptoms_within_patient", "symptoms_between_patient", "session_c"],
    ),
}
ONE_STAGE_COLUMNS = [
    "effect",
    "term",
    *ESTIMATE_COLUMNS,
    "study_slope_sd",
    "study_intercept_sd",
    "n_obs",
    "n_patients",
    "n_studies",
    "flags",
]


def stack_studies(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The studies' harmonised session tables one below the other, with ``study``, in the order given;
    a patient's id is prefixed with the study's (``study:patient``), so that two studies that both
    number their patients 1, 2, ... are counted as the different patients they are.

    >>> stack_studies({"a": pd.DataFrame({"patient": ["1", "2"]}), "b": pd.DataFrame({"patient": ["1"]})})["patient"].tolist()
    ['a:1', 'a:2', 'b:1']
    """
    return pd.concat(
        [t.assign(study=name, patient=name + ":" + t["patient"].astype(str)) for name, t in tables.items()],
        ignore_index=True,
    )


def one_stage_model(effect: str) -> dict[str, Any]:
    """The suite model dict of an effect's one-stage model.

    >>> one_stage_model("same_session")["random"][0]
    {'group': 'study', 'slopes': ['alliance_within_patient'], 'correlated': False}
    """
    outcome, focal, others = ONE_STAGE_MODELS[effect]
    return {
        "name": f"one_stage_{effect}",
        "outcome": outcome,
        "fixed": [focal, *others],
        "random": [
            {"group": "study", "slopes": [focal], "correlated": False},
            {"group": "patient", "nested_in": "study"},
        ],
        "roles": {focal: "within_patient"},
    }


def fit_one_stage(stacked: pd.DataFrame, effect: str, *, engine: str | None = None) -> tuple[dict[str, Any], dict]:
    """The one-stage estimate of ``effect`` (one row of :data:`ONE_STAGE_COLUMNS`) and a record for the report.

    Flags are the engine's (``boundary``, ``singular``, ``simplified`` by the singular-fit policy, ...).
    """
    model = one_stage_model(effect)
    focal = model["fixed"][0]
    result, counts, structure = primary_fit(model, stacked, None, engine)
    row = result.fixed.set_index("term").loc[focal]
    vc = result.variance_components
    study = vc[vc["group"] == "study"].set_index("term")["sd"]
    out = {
        "effect": effect,
        "term": focal,
        **{k: float(row[k]) for k in ESTIMATE_COLUMNS},
        # a study slope the singular-fit policy dropped was estimated at 0 (flag simplified)
        "study_slope_sd": float(study.get(focal, 0.0 if structure.simplified else float("nan"))),
        "study_intercept_sd": float(study.get("(Intercept)", study.get("Intercept", float("nan")))),
        "n_obs": counts["n_obs"],
        "n_patients": counts["n_patients"],
        "n_studies": int(stacked["study"].nunique()),
        "flags": ";".join(result.flags) or "none",
    }
    record = {
        "effect": effect,
        "model": model,
        "structure": structure.dropped or "as specified",
        "df_method": result.fit.get("df_method"),
        "engine": result.fit.get("engine"),
        "variance_components": vc.to_dict(orient="records"),
    }
    return out, record
