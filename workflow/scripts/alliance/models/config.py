"""The model suite's configuration: checks, strata and the context a model's output reports.

Kept apart from alliance.models.suite (which fits) so that the workflow can check the ``models``
section when it loads without importing the engine.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from alliance.models.design import check_model_columns, has_therapists, without_therapists_setting
from alliance.models.moderation import moderated_fixed
from alliance.models.person_means import values_of_parts
from alliance.schema import schema_default

__all__ = [
    "ModelConfigError",
    "STRATUM_ALL",
    "RICLPM",
    "check_models",
    "is_riclpm",
    "mixed_models",
    "riclpm_models",
    "strata",
    "stratum_model",
    "model_context",
]

#: the pseudo-stratum holding every patient (the "overall" row of the forest plot)
STRATUM_ALL = "all"
#: the ``type`` of a random-intercept cross-lagged panel model (a model without ``type`` is a mixed model)
RICLPM = "riclpm"


class ModelConfigError(ValueError):
    """A mistake in the ``models`` section; the message names the model and the key."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def strata(model: dict[str, Any], labels: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """The strata of a model with ``strata``: slug -> {column: canonical label}, in config order,
    first the pseudo-stratum ``all`` (every patient; the overall row of the forest plot).

    Strata are the combinations of the canonical labels of the ``strata.by`` columns (therapy,
    condition) from ``dataset.labels``, so they are known before any data are read.

    >>> strata({"strata": {"by": ["therapy", "condition"]}},
    ...        {"therapy": ["CBT", "PDT"], "condition": ["depression"]})
    {'all': {}, 'cbt-depression': {'therapy': 'CBT', 'condition': 'depression'},
     'pdt-depression': {'therapy': 'PDT', 'condition': 'depression'}}
    """
    spec = model.get("strata")
    if not spec:
        return {}
    out: dict[str, dict[str, str]] = {STRATUM_ALL: {}}
    combos: list[dict[str, str]] = [{}]
    for column in spec["by"]:
        combos = [{**c, column: lab} for c in combos for lab in labels[column]]
    for combo in combos:
        slug = "-".join(_slug(v) for v in combo.values())
        if slug in out:
            raise ModelConfigError(
                f"models.{model['name']}.strata: labels {combo} give the file name {slug!r} twice; "
                "rename a canonical label"
            )
        out[slug] = combo
    return out


def stratum_model(model: dict[str, Any]) -> dict[str, Any]:
    """The model fitted within a stratum: no moderation, the stratum columns not categorical."""
    base = copy.deepcopy(model)
    by = set((model.get("strata") or {}).get("by", []))
    by |= set((model.get("moderation") or {}).get("by", []))
    base.pop("moderation", None)
    base.pop("strata", None)
    base["fixed"] = [t for t in base.get("fixed", []) if not set(t.split(":")) & by]
    base["categorical"] = {c: r for c, r in (base.get("categorical") or {}).items() if c not in by}
    base["contrasts"] = [
        c for c in base.get("contrasts", []) if not any(set(_term_columns(k)) & by for k in c["weights"])
    ]
    base["tests"] = [t for t in base.get("tests", []) if not any(set(k.split(":")) & by for k in t["terms"])]
    return base


def _term_columns(term: str) -> list[str]:
    return [re.sub(r"\[T\..*\]$", "", p) for p in term.split(":")]


# --------------------------------------------------------------------------------------------
# Config checks
# --------------------------------------------------------------------------------------------


def is_riclpm(model: dict[str, Any]) -> bool:
    """Whether a config entry is an RI-CLPM (``type: riclpm``), fitted by the dynamics rule, not the engine."""
    return model.get("type") == RICLPM


def mixed_models(models: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The enabled mixed-effects models (every entry without ``type: riclpm``), by name, in config order.

    >>> list(mixed_models([{"name": "a"}, {"name": "b", "type": "riclpm"}, {"name": "c", "enabled": False}]))
    ['a']
    """
    return {m["name"]: m for m in models if m.get("enabled", True) and not is_riclpm(m)}


def riclpm_models(models: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The enabled RI-CLPMs (``type: riclpm``), by name, in config order.

    >>> list(riclpm_models([{"name": "a"}, {"name": "b", "type": "riclpm"}]))
    ['b']
    """
    return {m["name"]: m for m in models if m.get("enabled", True) and is_riclpm(m)}


def _check_riclpm(model: dict[str, Any]) -> None:
    """An RI-CLPM entry: two different variables, the alliance first in name (x) and symptoms (y)."""
    where = f"models.{model['name']}"
    variables = model["variables"]
    if variables["alliance"] == variables["symptoms"]:
        raise ModelConfigError(
            f"{where}.variables: alliance and symptoms are both {variables['alliance']!r}; name two different columns"
        )
    if model.get("cluster") in (variables["alliance"], variables["symptoms"]):
        raise ModelConfigError(f"{where}.cluster: {model['cluster']!r} is one of the model's variables")


def _check_lagged_keys(model: dict[str, Any], fixed_cols: set[str]) -> None:
    """``person_means`` needs session rows and a within/between part to recompute."""
    where = f"models.{model['name']}"
    if model.get("person_means") == "model_rows":
        if model.get("data", "sessions") == "patients":
            raise ModelConfigError(
                f"{where}.person_means: model_rows needs session rows; a patient-level model has one row per patient"
            )
        if not values_of_parts(sorted(fixed_cols) + [model["outcome"]]):
            raise ModelConfigError(
                f"{where}.person_means: model_rows, but the model uses no within/between part of "
                "alliance or symptoms to recompute"
            )


def check_models(config: dict[str, Any]) -> None:
    """Cross-reference checks of the ``models`` section that the JSON schema cannot express.

    Raises :class:`ModelConfigError` naming the model and key: moderators must be categorical
    with a reference level, therapy and condition reference levels must be canonical labels,
    roles, moderated terms and contrast weights must name fixed terms, patient-level models
    cannot filter on sessions or group by patient, ``person_means: model_rows`` needs session rows
    and a within/between part, an RI-CLPM needs two different variables, names are unique, and
    a lagged alliance -> symptoms model needs the reverse direction (methods.md section 5, item 3),
    and every column a model names is one the dataset config produces
    (:func:`alliance.models.design.check_model_columns`).
    """
    labels = {k: list(v) for k, v in config["dataset"]["labels"].items()}
    enabled = list(mixed_models(config["models"]).values())
    seen: set[str] = set()
    for model in config["models"]:
        if model["name"] in seen:
            raise ModelConfigError(f"models.{model['name']}: two models have this name; names must be unique")
        seen.add(model["name"])
        if is_riclpm(model):
            _check_riclpm(model)
            continue
        where = f"models.{model['name']}"
        fixed = list(model.get("fixed", []))
        cats = dict(model.get("categorical") or {})
        fixed_cols = {p for t in fixed for p in t.split(":")}
        for col, ref in cats.items():
            if col in labels and str(ref) not in labels[col]:
                raise ModelConfigError(
                    f"{where}.categorical.{col}: reference level {ref!r} is not a canonical label "
                    f"of dataset.labels.{col} ({', '.join(labels[col])})"
                )
        mod = model.get("moderation")
        if mod:
            for m in mod["by"]:
                if m not in cats:
                    raise ModelConfigError(
                        f"{where}.moderation.by: moderator {m!r} needs a reference level in {where}.categorical"
                    )
                if m in fixed_cols:
                    raise ModelConfigError(
                        f"{where}.moderation.by: {m!r} is added by the moderation block; remove it from fixed"
                    )
            for t in mod["terms"]:
                if t not in fixed:
                    raise ModelConfigError(f"{where}.moderation.terms: {t!r} is not in {where}.fixed")
        for col in cats:
            if col not in fixed_cols and col not in (mod or {}).get("by", []):
                raise ModelConfigError(f"{where}.categorical: {col!r} is not used by any fixed term")
        for term, role in (model.get("roles") or {}).items():
            if term not in fixed:
                raise ModelConfigError(f"{where}.roles: {term!r} is not in {where}.fixed")
            if term in cats:
                raise ModelConfigError(f"{where}.roles: {term!r} is categorical; roles need a numeric predictor")
        for contrast in model.get("contrasts", []):
            for term in contrast["weights"]:
                cols = _term_columns(term)
                if not all(c in fixed_cols or c in (mod or {}).get("by", []) or c == "Intercept" for c in cols):
                    raise ModelConfigError(
                        f"{where}.contrasts.{contrast['name']}: {term!r} is not a fixed term of the model"
                    )
        for test in model.get("tests", []):
            for term in test["terms"]:
                if term not in moderated_fixed(fixed, mod):
                    raise ModelConfigError(f"{where}.tests.{test['name']}: {term!r} is not a fixed term")
        if model.get("data", "sessions") == "patients":
            flt = model.get("filter") or {}
            for key in ("session_min", "session_max"):
                if flt.get(key) is not None:
                    raise ModelConfigError(f"{where}.filter.{key}: a patient-level model has no sessions")
            for term in model["random"]:
                if "patient" in (term["group"], term.get("nested_in")):
                    raise ModelConfigError(
                        f"{where}.random: a patient-level model (one row per patient) cannot group by patient"
                    )
        if model.get("strata"):
            for col in model["strata"]["by"]:
                if col not in labels:
                    raise ModelConfigError(f"{where}.strata.by: {col!r} has no labels in dataset.labels")
            strata(model, labels)
        _check_lagged_keys(model, fixed_cols)
    lagged = [
        m
        for m in enabled
        if m["outcome"].endswith("_next")
        and any(
            str(t).startswith("alliance_") and t.split(":")[0].endswith("within_patient") for t in m.get("fixed", [])
        )
    ]
    reverse = [m for m in enabled if m["outcome"].startswith("alliance") and m["outcome"].endswith("_next")]
    if lagged and not reverse:
        raise ModelConfigError(
            f"models.{lagged[0]['name']}: a lagged alliance -> symptoms model needs the reverse direction "
            "(an enabled model with outcome alliance_next; methods.md section 5, item 3)"
        )
    check_model_columns(config)  # every named column is one the dataset config produces (alliance.models.design)


# --------------------------------------------------------------------------------------------
# Context: what a model's output says about scales, measures and labels
# --------------------------------------------------------------------------------------------


def model_context(config: dict[str, Any]) -> dict[str, Any]:
    """The parts of the config a model's output reports: label order, measures, outcome scale."""
    dataset, analysis = config["dataset"], config["analysis"]
    measures = dataset["measures"]
    alliance = measures[analysis["alliance_measure"]]
    outcome_keys = analysis["outcome_by_condition"]
    instruments = {cond: measures[key]["instrument"] for cond, key in outcome_keys.items()}
    scale = analysis.get("outcome_scale", "pomp")
    scale_text = {
        "pomp": "POMP, percent of the maximum possible score (0-100)",
        "baseline_z": "z-score against each measure's baseline mean and SD",
        "raw": "raw total of the instrument",
    }[scale]
    distinct = sorted(set(instruments.values()))
    per_condition = ", ".join(f"{c}: {i}" for c, i in instruments.items())
    if len(distinct) > 1:
        note = (
            f"symptom scores are on a common scale ({scale}: {scale_text}) because the conditions use "
            f"different primary outcome measures ({per_condition}); done in cleaning (analysis.outcome_scale)"
        )
    else:
        note = f"symptom scores: {distinct[0]} ({scale}: {scale_text}; analysis.outcome_scale)"
    outcome_raters = sorted({measures[k].get("rater", "patient") for k in outcome_keys.values()})
    outcome_timings = sorted({measures[k].get("timing", "after session") for k in outcome_keys.values()})
    return {
        "labels": {k: [str(x) for x in v] for k, v in dataset["labels"].items()},
        "outcome_scale": scale,
        "outcome_scale_note": note,
        "outcome_scale_short": f"{scale} ({per_condition})",
        "alliance_scale_short": f"{alliance['instrument']} {analysis.get('alliance_score', 'mean')} score",
        "alliance_measure": alliance["instrument"],
        "alliance_rater": alliance.get("rater", "patient"),
        "alliance_timing": alliance.get("timing", "after session"),
        "outcome_measure": "; ".join(f"{i} ({c})" for c, i in instruments.items()),
        "outcome_rater": "; ".join(outcome_raters),
        "outcome_timing": "; ".join(outcome_timings),
        # a design without therapists (no dataset.columns.therapist): alliance.models.design.without_therapists
        "therapists": has_therapists(dataset),
        "without_therapists": without_therapists_setting({}, analysis),
        # refit a singular model with a simpler structure, or keep it (alliance.models.singular)
        "singular_fits": analysis.get("singular_fits") or schema_default("analysis", "singular_fits"),
    }
