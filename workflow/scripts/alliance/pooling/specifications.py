"""The specifications of the pooled run: the pooled effects and the multiverse grid, as models.

A specification is a set of named choices (:data:`OPTIONS`); :func:`build_model` turns it into a
model of the suite (the same dicts config/config.yaml holds, fitted by the same code) or an
RI-CLPM, from names alone: nothing in a config is evaluated. Choices (docs/methods.md section 11.5):

* ``model``: ``same_session`` (symptoms on the person-mean-centred alliance of the same session),
  ``lagged`` (alliance at t -> symptoms at t+1, the lagged outcome person-centred: known Nickell
  bias), ``lagged_reverse`` (symptoms at t -> alliance at t+1; a pooled effect, not in the
  multiverse), ``riclpm`` (the RI-CLPM's cross-lag on the session window), ``early_alliance``
  (early alliance -> end-of-treatment symptoms, baseline controlled);
* ``alliance``: ``raw`` or ``detrended`` within patient (session-level mixed models only);
* ``therapist_level``: ``with`` (random therapist intercepts, patients nested; the RI-CLPM's
  cluster-robust SEs over therapists) or ``without``;
* ``outliers``: ``keep`` or ``winsorise`` low alliance scores (alliance.models.sensitivity);
* ``sample``: ``all`` patients or ``completers`` (patients without the intake's dropout flag);
* ``early_alliance``: the ``session_3`` score or the ``mean_1_4`` of sessions 1-4, and
  ``early_change``: ``unadjusted`` or ``adjusted`` for symptom change by session 3 (early
  alliance models only).

A choice that does not apply to a model is ``n/a`` (:data:`NOT_APPLICABLE`), so the grid holds each
distinct specification once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DIMENSIONS",
    "OPTIONS",
    "NOT_APPLICABLE",
    "EFFECTS",
    "POOLED_EFFECTS",
    "EFFECT_SOURCE",
    "EFFECT_LABELS",
    "KNOWN_BIAS",
    "Built",
    "complete_choices",
    "specification_id",
    "expand_grid",
    "effect_specification",
    "build_model",
]

#: the choice dimensions, in the order of a specification's id and of the curve's dashboard
DIMENSIONS = ("model", "alliance", "therapist_level", "outliers", "sample", "early_alliance", "early_change")
#: every option of every dimension
OPTIONS = {
    "model": ("same_session", "lagged", "lagged_reverse", "riclpm", "early_alliance"),
    "alliance": ("raw", "detrended"),
    "therapist_level": ("with", "without"),
    "outliers": ("keep", "winsorise"),
    "sample": ("all", "completers"),
    "early_alliance": ("session_3", "mean_1_4"),
    "early_change": ("unadjusted", "adjusted"),
}
NOT_APPLICABLE = "n/a"
#: the models a dimension applies to (absent: every model)
APPLIES_TO = {
    "alliance": ("same_session", "lagged", "lagged_reverse"),
    "early_alliance": ("early_alliance",),
    "early_change": ("early_alliance",),
}
#: each model's choices when the grid does not list a dimension: the pooled effects' specifications
DEFAULTS = {
    "same_session": {"alliance": "raw", "therapist_level": "without", "outliers": "keep", "sample": "all"},
    "lagged": {"alliance": "raw", "therapist_level": "without", "outliers": "keep", "sample": "all"},
    "lagged_reverse": {"alliance": "raw", "therapist_level": "without", "outliers": "keep", "sample": "all"},
    "riclpm": {"therapist_level": "with", "outliers": "keep", "sample": "all"},
    "early_alliance": {
        "therapist_level": "with",
        "outliers": "keep",
        "sample": "all",
        "early_alliance": "session_3",
        "early_change": "unadjusted",
    },
}
#: the pooled effects (pooling.effects) -> the model that gives them
EFFECTS = {
    "same_session": "same_session",
    "lagged_alliance_symptoms": "lagged",
    "lagged_symptoms_alliance": "lagged_reverse",
    "riclpm": "riclpm",
    "early_alliance": "early_alliance",
}
#: the pooled effects each of those models gives (the RI-CLPM gives both cross-lags)
POOLED_EFFECTS = {
    "same_session": ("same_session",),
    "lagged_alliance_symptoms": ("lagged_alliance_symptoms",),
    "lagged_symptoms_alliance": ("lagged_symptoms_alliance",),
    "riclpm": ("riclpm_alliance_symptoms", "riclpm_symptoms_alliance"),
    "early_alliance": ("early_alliance",),
}
#: each pooled effect -> the model of pooling.effects that gives it
EFFECT_SOURCE = {effect: model for model, effects in POOLED_EFFECTS.items() for effect in effects}
#: what each pooled effect is, in the report's words
EFFECT_LABELS = {
    "same_session": "Same-session alliance -> symptoms, within patients",
    "lagged_alliance_symptoms": "Alliance at t -> symptoms at t+1, within patients (lagged mixed model)",
    "lagged_symptoms_alliance": "Symptoms at t -> alliance at t+1, within patients (lagged mixed model)",
    "riclpm_alliance_symptoms": "RI-CLPM cross-lag alliance -> next-session symptoms",
    "riclpm_symptoms_alliance": "RI-CLPM cross-lag symptoms -> next-session alliance",
    "early_alliance": "Early alliance -> end-of-treatment symptoms (baseline controlled)",
}
_NICKELL = (
    "known bias: a person-centred lagged outcome beside a patient intercept keeps Nickell's bias of a "
    "within-patient autoregression, part of which passes into the cross-lag (docs/lagged_recovery.md); "
    "read it only beside the RI-CLPM"
)
#: the known bias of a specification, by the choice that causes it (the report labels every such row)
KNOWN_BIAS = {
    ("model", "lagged"): _NICKELL,
    ("model", "lagged_reverse"): _NICKELL,
    ("alliance", "detrended"): (
        "known bias: detrending the predictor within patient over every session, later ones included, adds to "
        "the bias of the lagged specification (docs/lagged_recovery.md)"
    ),
    ("early_change", "unadjusted"): (
        "known bias: symptom change before the early alliance rating raises both the alliance and the later "
        "outcome, so the unadjusted association is overstated (early change controlled is the comparison)"
    ),
    ("sample", "completers"): (
        "known bias: completers only; unbiased only when dropout depends on neither the alliance nor the outcome"
    ),
}


def _applies(dimension: str, model: str) -> bool:
    return model in APPLIES_TO.get(dimension, OPTIONS["model"])


def complete_choices(choices: dict[str, str]) -> dict[str, str]:
    """``choices`` with each model's defaults for the dimensions not given and ``n/a`` where none applies."""
    model = choices["model"]
    if model not in OPTIONS["model"]:
        raise ValueError(f"model {model!r} is not one of {', '.join(OPTIONS['model'])}")
    out = {"model": model}
    for dimension in DIMENSIONS[1:]:
        if not _applies(dimension, model):
            out[dimension] = NOT_APPLICABLE
            continue
        option = choices.get(dimension, DEFAULTS[model][dimension])
        if option not in OPTIONS[dimension]:
            raise ValueError(f"{dimension} {option!r} is not one of {', '.join(OPTIONS[dimension])}")
        out[dimension] = option
    return out


def specification_id(choices: dict[str, str]) -> str:
    """The id of a specification (its applicable options joined by ``-``): a file name and a wildcard.

    >>> specification_id({"model": "riclpm", "therapist_level": "with", "outliers": "keep", "sample": "all"})
    'riclpm-with-keep-all'
    """
    done = complete_choices(choices)
    return "-".join(done[d] for d in DIMENSIONS if done[d] != NOT_APPLICABLE)


def expand_grid(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    """Every distinct specification of the grid (``multiverse`` of the config), ordered by id.

    A dimension the grid does not list takes each model's default; a dimension that does not apply
    to a model is ``n/a`` and does not multiply its specifications.

    Example
    -------
    >>> specs = expand_grid({"model": ["same_session", "early_alliance"], "alliance": ["raw", "detrended"],
    ...                      "early_change": ["unadjusted", "adjusted"]})
    >>> [specification_id(s) for s in specs]  # doctest: +NORMALIZE_WHITESPACE
    ['early_alliance-with-keep-all-session_3-adjusted', 'early_alliance-with-keep-all-session_3-unadjusted',
     'same_session-detrended-without-keep-all', 'same_session-raw-without-keep-all']
    """
    found: dict[str, dict[str, str]] = {}
    for model in grid["model"]:
        axes = [
            [NOT_APPLICABLE] if not _applies(d, model) else list(grid.get(d) or [DEFAULTS[model][d]])
            for d in DIMENSIONS[1:]
        ]
        for options in itertools.product(*axes):
            choices = complete_choices({"model": model, **dict(zip(DIMENSIONS[1:], options))})
            found[specification_id(choices)] = choices
    return [found[key] for key in sorted(found)]


def effect_specification(effect: str) -> dict[str, str]:
    """The specification of a pooled effect (``pooling.effects``): its model's defaults.

    >>> effect_specification("early_alliance")["early_change"]
    'unadjusted'
    """
    return complete_choices({"model": EFFECTS[effect]})


@dataclass(frozen=True)
class Built:
    """A specification as a model: the config dict, its focal terms -> pooled effect, its known biases."""

    model: dict[str, Any]
    focal: dict[str, str]
    known_bias: list[str] = field(default_factory=list)

    @property
    def is_riclpm(self) -> bool:
        return self.model.get("type") == "riclpm"


def _random(therapist_level: str, slope: str | None) -> list[dict[str, Any]]:
    patient: dict[str, Any] = {"group": "patient", "slopes": [slope] if slope else [], "correlated": True}
    if therapist_level == "with":
        return [{"group": "therapist"}, {**patient, "nested_in": "therapist"}]
    return [patient]


def build_model(choices: dict[str, str], *, waves: int) -> Built:
    """The model of a specification (``waves``: the RI-CLPM's sessions 1..waves).

    Example
    -------
    >>> b = build_model({"model": "lagged", "alliance": "detrended"}, waves=7)
    >>> b.model["outcome"], b.model["fixed"][0], b.focal, len(b.known_bias)
    ('symptoms_next', 'alliance_within_patient_detrended', {'alliance_within_patient_detrended': 'lagged_alliance_symptoms'}, 2)
    """
    c = complete_choices(choices)
    model, name = c["model"], specification_id(c)
    within = "alliance_within_patient_detrended" if c["alliance"] == "detrended" else "alliance_within_patient"
    bias = [text for (dimension, option), text in KNOWN_BIAS.items() if c.get(dimension) == option]
    if model == "riclpm":
        built = {
            "name": name.replace("-", "_"),
            "type": "riclpm",
            "variables": {"alliance": "alliance", "symptoms": "symptoms"},
            "waves": waves,
            "paths": "constrained",
            "cluster": "therapist" if c["therapist_level"] == "with" else None,
        }
        return Built(built, {"gamma": "riclpm_alliance_symptoms", "beta": "riclpm_symptoms_alliance"}, bias)
    if model == "early_alliance":
        early = "alliance_s3" if c["early_alliance"] == "session_3" else "alliance_s1_4"
        fixed = ["symptoms_baseline_c"] + (["symptoms_change_s3"] if c["early_change"] == "adjusted" else []) + [early]
        built = {
            "name": name.replace("-", "_"),
            "data": "patients",
            "outcome": "symptoms_last",
            "fixed": fixed,
            # without the therapist level: a linear model (alliance.pooling.study_fits)
            "random": [{"group": "therapist"}] if c["therapist_level"] == "with" else [],
            "roles": {early: "patient_level"},
        }
        return Built(built, {early: "early_alliance"}, bias)
    if model == "lagged_reverse":
        predictor = "symptoms_within_patient"
        fixed = [
            predictor,
            "symptoms_between_patient",
            "alliance_within_patient",
            "alliance_between_patient",
            "session_c",
        ]
        built = {
            "outcome": "alliance_next",
            "fixed": fixed,
            "random": _random(c["therapist_level"], predictor),
            "roles": {predictor: "within_patient", "symptoms_between_patient": "between_patient"},
        }
        return Built({"name": name.replace("-", "_"), **built}, {predictor: "lagged_symptoms_alliance"}, bias)
    if model == "lagged":
        fixed = [within, "alliance_between_patient", "symptoms_within_patient", "symptoms_between_patient", "session_c"]
        outcome, effect = "symptoms_next", "lagged_alliance_symptoms"
    else:
        fixed = [within, "alliance_between_patient", "session_c"]
        outcome, effect = "symptoms", "same_session"
    built = {
        "name": name.replace("-", "_"),
        "outcome": outcome,
        "fixed": fixed,
        "random": _random(c["therapist_level"], within),
        "roles": {within: "within_patient", "alliance_between_patient": "between_patient"},
    }
    return Built(built, {within: effect}, bias)
