"""The truth entries of the suite's lagged mixed models in TRUTH.yaml (``estimands``), from the
simulator's generating paths (alliance.simulate_truth.riclpm_truth: ``alpha``, ``beta``, ``gamma``,
``delta`` on the observed scales).

None of these specifications estimates a single parameter of the process: each is biased, and
its truth entry says so in words (``targets`` begins with "no single parameter", so the report
scores none of them as an estimand; alliance.report.truth.NOT_AN_ESTIMAND) and gives, for each
coefficient, the generating path it is compared with: the within-patient predictor at t is the
cross-lag, the outcome's own value at t (raw or person-centred) the carry-over, as
alliance.models.lagged_recovery.estimands reads a model's terms.  The size of each bias is
measured in docs/lagged_recovery.md (the ``known_bias`` notes of config/config.yaml):

* raw lagged outcome with person means over every session (``lagged_*``, ``three_level``):
  dynamic-panel (Nickell) bias, both paths;
* lagged outcome person-centred (``lagged_centred_*``): Nickell's bias of a within-patient
  autoregression, about -(1 + carry-over) / (T - 1) in the carry-over, part of it in the cross-lag;
* predictor detrended within patient as well (``lagged_detrended_*``): more bias in the cross-lag;
* person means from the model's own rows (``lagged_rowmeans_*``): as the centred specification.
"""

from __future__ import annotations

__all__ = ["LAGGED_SPECIFICATIONS", "RAW_LAGGED", "CENTRED_LAGGED", "lagged_estimands"]

_RAW = (
    "no single parameter: a lagged outcome beside a patient intercept, with person means over every "
    "session, is biased (Nickell / dynamic-panel bias); the values are the RI-CLPM's paths it is to be "
    "compared with"
)
_CENTRED = (
    "no single parameter: a person-centred lagged outcome beside a patient intercept keeps Nickell's bias "
    "of a within-patient autoregression (about -(1 + carry-over) / (sessions - 1) in the carry-over, part of "
    "it passed into the cross-lag); the values are the generating paths (the RI-CLPM's) it is to be compared with"
)
_DETRENDED = (
    "no single parameter: as the person-centred specification, and detrending the predictor within patient "
    "(its own line over every session, later ones included) adds to the bias of the cross-lag; the values "
    "are the generating paths (the RI-CLPM's) it is to be compared with"
)
_ROWMEANS = (
    "no single parameter: person means from the model's own sessions leave the person-centred "
    "specification's Nickell bias in place; the values are the generating paths (the RI-CLPM's) it is to "
    "be compared with"
)

#: model of the shipped suite (config/config.yaml) -> (what it targets, {term: generating path})
LAGGED_SPECIFICATIONS: dict[str, tuple[str, dict[str, str]]] = {
    "lagged_alliance_symptoms": (_RAW, {"alliance_within_patient": "gamma", "symptoms": "delta"}),
    "lagged_symptoms_alliance": (_RAW, {"symptoms_within_patient": "beta", "alliance": "alpha"}),
    "three_level": (_RAW, {"alliance_within_patient": "gamma", "symptoms": "delta"}),
    "lagged_centred_alliance_symptoms": (
        _CENTRED,
        {"alliance_within_patient": "gamma", "symptoms_within_patient": "delta"},
    ),
    "lagged_centred_symptoms_alliance": (
        _CENTRED,
        {"symptoms_within_patient": "beta", "alliance_within_patient": "alpha"},
    ),
    "lagged_detrended_alliance_symptoms": (
        _DETRENDED,
        {"alliance_within_patient_detrended": "gamma", "symptoms_within_patient": "delta"},
    ),
    "lagged_detrended_symptoms_alliance": (
        _DETRENDED,
        {"symptoms_within_patient_detrended": "beta", "alliance_within_patient": "alpha"},
    ),
    "lagged_rowmeans_alliance_symptoms": (
        _ROWMEANS,
        {"alliance_within_patient": "gamma", "symptoms_within_patient": "delta"},
    ),
    "lagged_rowmeans_symptoms_alliance": (
        _ROWMEANS,
        {"symptoms_within_patient": "beta", "alliance_within_patient": "alpha"},
    ),
}

#: the raw-lagged specifications (listed in TRUTH.yaml before the patient-level models, as in the config)
RAW_LAGGED = ("lagged_alliance_symptoms", "lagged_symptoms_alliance", "three_level")
#: the person-centred, detrended and row-means specifications (after the patient-level models)
CENTRED_LAGGED = tuple(n for n in LAGGED_SPECIFICATIONS if n not in RAW_LAGGED)


def lagged_estimands(paths: dict[str, float], names: list[str]) -> dict[str, dict]:
    """The truth entries of the lagged models ``names`` (keys of :data:`LAGGED_SPECIFICATIONS`):
    ``targets`` and each term's generating path from ``paths`` (``alpha`` ... ``delta``).

    >>> paths = {"alpha": 0.4, "beta": -0.1, "gamma": -4.5, "delta": 0.4}
    >>> entry = lagged_estimands(paths, ["lagged_centred_symptoms_alliance"])["lagged_centred_symptoms_alliance"]
    >>> entry["symptoms_within_patient"], entry["alliance_within_patient"], entry["targets"][:20]
    (-0.1, 0.4, 'no single parameter:')
    """
    out = {}
    for name in names:
        targets, terms = LAGGED_SPECIFICATIONS[name]
        out[name] = {"targets": targets, **{term: paths[path] for term, path in terms.items()}}
    return out
