"""What the dataset's design lets a model use: the columns the config produces, and therapists.

Two checks of the model suite against the dataset config, made when the workflow loads (before
the intake runs) and again in the model jobs:

* :func:`dataset_columns` is every column the intake and the model stage will make from this
  config: the canonical columns it maps, every measure's scores (and items), the derived
  session and patient variables (all as the data dictionary, alliance.intake.dictionary, describes
  them: the one list of them), the patient-level variables of the model stage
  (alliance.models.data.PATIENT_DERIVED) and the detrended parts it makes
  (alliance.models.person_means). :func:`check_model_columns` names a model whose term, group,
  slope, categorical, centre, filter or strata column is not among them.
* A design without therapists (no ``dataset.columns.therapist``): :func:`without_therapists` says
  what becomes of a model that needs a therapist level. A model built from therapists (a term
  from therapist means, a therapist role, a filter, stratum or categorical column ``therapist``)
  is skipped; a model whose therapist level is only a random-effects grouping (or an RI-CLPM's
  ``cluster``) is skipped too with ``without_therapists: skip`` (the default) and fitted without
  that level with ``drop_level``. The setting is ``analysis.without_therapists``, or the model's own.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from alliance.intake.derive import THERAPIST_PARTS
from alliance.models.data import PATIENT_DERIVED, THERAPIST_DERIVED
from alliance.models.person_means import DECOMPOSED_VALUES, DETRENDED_PART

__all__ = [
    "THERAPIST",
    "SKIP",
    "DROP_LEVEL",
    "THERAPIST_ROLES",
    "has_therapists",
    "therapist_columns",
    "without_therapists_setting",
    "named_columns",
    "without_therapists",
    "DESIGN_NOTE",
    "models_for_design",
    "skipped_models",
    "dataset_columns",
    "check_model_columns",
]

THERAPIST = "therapist"
SKIP, DROP_LEVEL = "skip", "drop_level"
#: effect-size roles that compare therapists
THERAPIST_ROLES = ("patient_within_therapist", "between_therapist")


def has_therapists(dataset: dict[str, Any]) -> bool:
    """Whether the dataset maps a therapist column (a design without therapists does not)."""
    return THERAPIST in (dataset.get("columns") or {})


def therapist_columns() -> frozenset[str]:
    """The columns that exist only with a therapist column: the id, the switch flag, the parts from therapist means.

    >>> sorted(therapist_columns())[:3]
    ['alliance_between_therapist', 'alliance_cwt', 'alliance_patient_within_therapist']
    """
    parts = {f"{value}_{part}" for value in DECOMPOSED_VALUES for part in THERAPIST_PARTS}
    return frozenset({THERAPIST, "therapist_switch", *parts, *THERAPIST_DERIVED})


@lru_cache(maxsize=1)
def _schema_default() -> str:
    """The schema's default of ``analysis.without_therapists`` (the one source of it)."""
    from alliance.schema import schema_default

    return schema_default("analysis", "without_therapists")


def without_therapists_setting(model: dict[str, Any], analysis: dict[str, Any] | None) -> str:
    """``skip`` or ``drop_level`` for this model: its own key, else the run's, else the schema's default."""
    return model.get("without_therapists") or (analysis or {}).get("without_therapists") or _schema_default()


def named_columns(model: dict[str, Any]) -> list[tuple[str, str]]:
    """Every data column a config model names, with the key that names it: ``(key, column)``.

    >>> named_columns({"name": "m", "outcome": "y", "fixed": ["x:therapy"], "random": [{"group": "patient"}]})
    [('outcome', 'y'), ('fixed', 'x'), ('fixed', 'therapy'), ('random.group', 'patient')]
    """
    if model.get("type") == "riclpm":
        out = [("variables", str(v)) for v in model["variables"].values()]
        return out + ([("cluster", str(model["cluster"]))] if model.get("cluster") else [])
    out = [("outcome", str(model["outcome"]))]
    out += [("fixed", part) for term in model.get("fixed") or [] for part in str(term).split(":")]
    for term in model.get("random") or []:
        out.append(("random.group", str(term["group"])))
        if term.get("nested_in"):
            out.append(("random.nested_in", str(term["nested_in"])))
        out += [("random.slopes", str(s)) for s in term.get("slopes") or []]
    out += [("categorical", str(c)) for c in model.get("categorical") or {}]
    out += [("centre", str(c)) for c in model.get("centre") or []]
    out += [("moderation.by", str(c)) for c in (model.get("moderation") or {}).get("by", [])]
    flt = model.get("filter") or {}
    out += [(f"filter.{key}", str(c)) for key in ("include", "exclude") for c in flt.get(key) or {}]
    out += [("strata.by", str(c)) for c in (model.get("strata") or {}).get("by", [])]
    return list(dict.fromkeys(out))


def _built_from_therapists(model: dict[str, Any]) -> list[str]:
    """What in a model cannot exist without therapists (not a random-effects grouping, which can be dropped)."""
    columns = therapist_columns()
    needs = [
        f"{key} '{column}'"
        for key, column in named_columns(model)
        if column in columns and key not in ("random.group", "random.nested_in", "cluster")
    ]
    needs += [
        f"role {role} of '{term}'" for term, role in (model.get("roles") or {}).items() if role in THERAPIST_ROLES
    ]
    return needs


def _therapist_level(model: dict[str, Any]) -> list[str]:
    """The model's therapist level that could be dropped: random terms grouped by or nested in therapist, a cluster."""
    if model.get("type") == "riclpm":
        return ["cluster-robust standard errors over therapists"] if model.get("cluster") == THERAPIST else []
    out = []
    for term in model.get("random") or []:
        if term["group"] == THERAPIST:
            out.append("a random-effects term grouped by therapist")
        elif term.get("nested_in") == THERAPIST:
            out.append(f"{term['group']} nested in therapist")
    return out


def _dropped(model: dict[str, Any]) -> dict[str, Any]:
    """The model without its therapist level: no term grouped by therapist, no nesting in therapist, no cluster."""
    out = copy.deepcopy(model)
    if model.get("type") == "riclpm":
        out["cluster"] = None
        return out
    random = []
    for term in out.get("random") or []:
        if term["group"] == THERAPIST:
            continue
        if term.get("nested_in") == THERAPIST:
            term["nested_in"] = None
        random.append(term)
    out["random"] = random
    return out


def without_therapists(model: dict[str, Any], analysis: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
    """The model to fit in a design without therapists and a note for the report: ``(model, note)``.

    ``model`` is None when the model is skipped (the note says why), the model itself (note empty)
    when it needs no therapist, or the model without its therapist level (``drop_level``; the note
    says what was dropped).

    >>> m = {"name": "v", "outcome": "symptoms", "random": [{"group": "therapist"},
    ...      {"group": "patient", "nested_in": "therapist"}]}
    >>> without_therapists(m, {"without_therapists": "drop_level"})[0]["random"]
    [{'group': 'patient', 'nested_in': None}]
    >>> without_therapists(m, {})[1][:40]
    "model 'v' is not fitted: it has a therap"
    """
    name = model["name"]
    built = _built_from_therapists(model)
    if built:
        return None, (
            f"model '{name}' is not fitted: it is built from therapists ({'; '.join(built)}) and the dataset "
            "has no therapist column (dataset.columns.therapist)"
        )
    level = _therapist_level(model)
    if not level:
        return model, ""
    setting = without_therapists_setting(model, analysis)
    what = "; ".join(dict.fromkeys(level))
    if setting == SKIP:
        return None, (
            f"model '{name}' is not fitted: it has a therapist level ({what}) and the dataset has no therapist "
            "column (dataset.columns.therapist); without_therapists: skip (drop_level fits it without that level)"
        )
    dropped = _dropped(model)
    if model.get("type") != "riclpm" and not dropped["random"]:
        return None, (
            f"model '{name}' is not fitted: its only random-effects term is grouped by therapist and the dataset "
            "has no therapist column (dataset.columns.therapist), so no mixed model is left without that level"
        )
    return dropped, (
        f"model '{name}' is fitted without its therapist level ({what}; without_therapists: drop_level): the "
        "dataset has no therapist column (dataset.columns.therapist)"
    )


#: the key of a model adapted to the design that carries the note for fit.json and the report
DESIGN_NOTE = "_design_note"


def models_for_design(
    models: dict[str, dict[str, Any]], config: dict[str, Any], *, keep_skipped: bool = True
) -> dict[str, dict[str, Any]]:
    """The models as the design lets them be fitted, by name: all unchanged with therapists; without,
    each as :func:`without_therapists` keeps it (a dropped level noted under :data:`DESIGN_NOTE`), and a
    skipped one unchanged (its job reports it as not fitted) or, with ``keep_skipped=False``, left out
    (the RI-CLPMs: the report names them from :func:`skipped_models`)."""
    if has_therapists(config["dataset"]):
        return dict(models)
    out = {}
    for name, model in models.items():
        kept, note = without_therapists(model, config.get("analysis"))
        if kept is None:
            if keep_skipped:
                out[name] = model
        else:
            out[name] = {**kept, DESIGN_NOTE: note} if note else kept
    return out


def skipped_models(config: dict[str, Any]) -> dict[str, str]:
    """The enabled models (mixed and RI-CLPM) that a design without therapists leaves unfitted: name -> why."""
    if has_therapists(config["dataset"]):
        return {}
    out = {}
    for model in config["models"]:
        if model.get("enabled", True):
            kept, note = without_therapists(model, config.get("analysis"))
            if kept is None:
                out[model["name"]] = note
    return out


def dataset_columns(config: dict[str, Any]) -> frozenset[str]:
    """Every column the intake and the model stage make from this config (see the module docstring)."""
    from alliance.intake.config import analysis_settings, check_dataset_config
    from alliance.intake.dictionary import Context, descriptions
    from alliance.intake.layout import PATIENT_COLUMNS, SESSION_COLUMNS, patients_layout, sessions_layout

    dataset = config["dataset"]
    analysis = analysis_settings(config["analysis"])
    registry = check_dataset_config(dataset, analysis, config.get("cleaning") or {}, config.get("instruments") or {})
    patients = patients_layout(dataset) if dataset.get("patients") else None
    context = Context(dataset, analysis, registry, sessions_layout(dataset, registry), patients)
    names = {column for _, column in descriptions(context)}
    mapped = set(dataset.get("columns") or {}) | set(dataset.get("patient_columns") or {})
    names -= (set(SESSION_COLUMNS) | set(PATIENT_COLUMNS)) - mapped
    names |= set(PATIENT_DERIVED) | {f"{value}_{DETRENDED_PART}" for value in DECOMPOSED_VALUES}
    if not has_therapists(dataset):
        names -= therapist_columns()
    return frozenset(names)


def _shown(names: frozenset[str]) -> str:
    """The available names for a message: sorted, the item columns summarised."""
    items = sorted(n for n in names if "_item_" in n)
    shown = sorted(n for n in names if "_item_" not in n)
    return ", ".join(shown) + (f" (and {len(items)} item columns such as {items[0]})" if items else "")


def check_model_columns(config: dict[str, Any], available: frozenset[str] | None = None) -> None:
    """Every column every enabled model names must be one the config makes (:func:`dataset_columns`;
    a ``centre`` column ``x`` also makes ``x_c``). A model skipped for want of therapists is not checked.

    Raises alliance.models.config.ModelConfigError naming the model, the key, the column and the names there are.
    """
    from alliance.models.config import ModelConfigError

    available = dataset_columns(config) if available is None else available
    therapists = has_therapists(config["dataset"])
    for model in config["models"]:
        if not model.get("enabled", True):
            continue
        if not therapists:
            model, _ = without_therapists(model, config.get("analysis"))
            if model is None:
                continue
        made = available | {f"{c}_c" for c in model.get("centre") or []}
        for key, column in named_columns(model):
            if column not in made:
                raise ModelConfigError(
                    f"models.{model['name']}.{key}: '{column}' is not a column this dataset config produces; "
                    f"available: {_shown(made)}"
                )
