"""Checks of the run configuration that a JSON schema cannot express.

The schema (workflow/schemas/config.schema.yaml) checks types, allowed values and
unknown keys when the workflow loads; :func:`check_config` then checks that the
pieces refer to each other correctly (a measure named in ``analysis`` exists, an
instrument id is in the registry, model names are unique ...), so that a lab's
mistake stops the run before any job starts, with a message naming the key.
"""

from __future__ import annotations

from typing import Any

from alliance.intake.registry import Instrument, InstrumentRegistryError, load_registry
from alliance.schema import SCHEMA, config_schema  # noqa: F401 - SCHEMA: re-exported for callers

#: The cleaning policy when the config does not set a key (the schema's defaults, for direct callers).
DEFAULT_POLICY: dict[str, Any] = {
    "out_of_range_item": "set_missing",
    "non_numeric_value": "set_missing",
    "exact_duplicate_rows": "keep_first",
    "conflicting_duplicates": "stop",
    "invalid_session": "exclude_row",
    "patient_switches_therapist": "keep_and_flag",
    "dropout_definition": "end_reason",
    "deidentification": {"allowed_columns": [], "dates_to_days": [], "date_format": None},
    "implausible_value": "set_missing",
    "id_case_variants": "merge",
    "patients_without_alliance": "keep",
    "sessions_without_patient_row": "keep",
    "design_conflict": "stop",
}
#: Cleaning keys that hold an object whose keys the config may set one by one (defaults: the schema's).
NESTED_POLICY = ("plausible_ranges", "covariate_outliers")
#: Analysis settings the intake reads, when the config does not set them (the schema's defaults).
ANALYSIS_DEFAULTS: dict[str, str] = {
    "alliance_score": "mean",
    "outcome_scale": "pomp",
    "person_means_from": "all_sessions",
}


class ConfigError(ValueError):
    """A configuration mistake; the message names the key."""


def cleaning_policy(cleaning: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(policy, de-identification settings): the config's cleaning keys over :data:`DEFAULT_POLICY`."""
    cleaning = cleaning or {}
    policy = {**DEFAULT_POLICY, **cleaning}
    for key in NESTED_POLICY:
        policy[key] = {**schema_cleaning_defaults(key), **(cleaning.get(key) or {})}
    deid = {**DEFAULT_POLICY["deidentification"], **(cleaning.get("deidentification") or {})}
    return policy, deid


def schema_cleaning_defaults(key: str) -> dict[str, Any]:
    """The schema's default of every property of the object ``cleaning.<key>`` (the one source of them)."""
    properties = config_schema()["properties"]["cleaning"]["properties"][key]["properties"]
    return {name: entry["default"] for name, entry in properties.items()}


def analysis_settings(analysis: dict[str, Any]) -> dict[str, Any]:
    """The analysis part of the config with :data:`ANALYSIS_DEFAULTS` for the keys it leaves out."""
    return {**ANALYSIS_DEFAULTS, **analysis}


def supplied_score(measure: dict[str, Any]) -> str:
    """What a measure's supplied score column holds: ``"total"`` (the default) or ``"mean"``.

    >>> supplied_score({"instrument": "PHQ-9", "total": "phq_total"})
    'total'
    """
    return measure.get("score", "total")


def item_columns(measure: dict[str, Any], n_items: int) -> list[str]:
    """Item column names of a measure: an explicit list, or a ``{item}`` template.

    The template is filled with the item number only (the schema admits nothing
    but ``{item}`` or ``{item:02d}``), so no config text is ever evaluated.

    >>> item_columns({"items": "wai_{item:02d}"}, 3)
    ['wai_01', 'wai_02', 'wai_03']
    """
    items = measure["items"]
    if isinstance(items, list):
        return [str(c) for c in items]
    return [items.format(item=k) for k in range(1, n_items + 1)]


def check_config(config: dict[str, Any]) -> None:
    """Raise ConfigError on the first cross-reference mistake in a validated config."""
    check_dataset_config(
        config["dataset"], config["analysis"], config.get("cleaning") or {}, config.get("instruments") or {}
    )

    names = [m["name"] for m in config["models"]]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"models: duplicated model name(s) {', '.join(duplicates)}")
    if not any(m.get("enabled", True) for m in config["models"]):
        raise ConfigError("models: every model is disabled; enable at least one")


def load_instruments(instruments: dict[str, Any] | None) -> dict[str, Instrument]:
    """The registry merged with the config's own instruments; a bad entry is a ConfigError."""
    try:
        return load_registry(instruments or None)
    except InstrumentRegistryError as error:
        raise ConfigError(f"instruments: {error}") from None


def measure_columns(measure: dict[str, Any], instrument: Instrument) -> list[str]:
    """The lab's columns a measure reads: its item columns, or its supplied score column."""
    if "items" in measure:
        return item_columns(measure, instrument.n_items)
    return [str(measure["total"])]


def check_dataset_config(
    dataset: dict[str, Any],
    analysis: dict[str, Any],
    cleaning: dict[str, Any] | None = None,
    instruments: dict[str, Any] | None = None,
) -> dict[str, Instrument]:
    """Cross-reference checks of the dataset, analysis and cleaning parts; returns the registry.

    Called when the workflow loads (through :func:`check_config`) and again by the
    intake stage, so that a mistake is reported with the key that causes it. The
    checks run in a fixed order; the first mistake found is raised.
    """
    cleaning = cleaning or {}
    registry = load_instruments(instruments)
    _check_measures(dataset["measures"], registry)
    used = _columns_used(dataset, registry)
    _check_alliance_and_outcomes(dataset, analysis, registry)
    _check_labels(dataset["labels"])
    _check_patients_file(dataset)
    _check_design_and_dropout(dataset, cleaning)
    _check_dates_to_days(dataset, cleaning, used)
    _check_plausible_ranges(cleaning)
    return registry


def _check_plausible_ranges(cleaning: dict[str, Any]) -> None:
    """Every ``cleaning.plausible_ranges`` entry is [low, high] with low <= high."""
    for column, bounds in (cleaning.get("plausible_ranges") or {}).items():
        low, high = bounds
        if not low <= high:
            raise ConfigError(
                f"cleaning.plausible_ranges.{column}: [{low}, {high}] has its lowest value above its highest"
            )


def _check_measures(measures: dict[str, Any], registry: dict[str, Instrument]) -> None:
    """Every measure names a known instrument, lists its items in full, no `score` with items and
    no `already_keyed` with a total."""
    for key, measure in measures.items():
        instrument = measure["instrument"]
        if instrument not in registry:
            raise ConfigError(
                f"dataset.measures.{key}.instrument: unknown instrument {instrument!r}; "
                f"known: {', '.join(sorted(registry))} (or declare it under `instruments`)"
            )
        if isinstance(measure.get("items"), list):
            n_given, n_expected = len(measure["items"]), registry[instrument].n_items
            if n_given != n_expected:
                raise ConfigError(
                    f"dataset.measures.{key}.items lists {n_given} columns but {instrument} has {n_expected} items"
                )
        if "items" in measure and "score" in measure:
            raise ConfigError(
                f"dataset.measures.{key}.score: says what a supplied `total` column holds; "
                "a measure given by `items` is scored by the pipeline (remove `score`)"
            )
        if "total" in measure and measure.get("already_keyed"):  # the schema's default (false) may be filled in
            raise ConfigError(
                f"dataset.measures.{key}.already_keyed: says whether the export's items are already keyed; "
                "a measure given by `total` has no items to key (remove `already_keyed`)"
            )


def _columns_used(dataset: dict[str, Any], registry: dict[str, Instrument]) -> dict[str, str]:
    """The lab's column -> the config key that reads it; every column is read for one purpose only."""
    used: dict[str, str] = {}
    readers = [(f"dataset.columns.{c}", lab) for c, lab in dataset["columns"].items()]
    for key, measure in dataset["measures"].items():
        field = "items" if "items" in measure else "total"
        columns = measure_columns(measure, registry[measure["instrument"]])
        readers += [(f"dataset.measures.{key}.{field}", column) for column in columns]
    for where, column in readers:
        if column in used and used[column] != where:
            raise ConfigError(f"{where}: column {column!r} is already used by {used[column]}")
        used.setdefault(column, where)
    return used


def _check_alliance_and_outcomes(
    dataset: dict[str, Any], analysis: dict[str, Any], registry: dict[str, Instrument]
) -> None:
    """The alliance measure measures the alliance; every condition has a symptom outcome on one scale."""
    measures = dataset["measures"]
    alliance_key = analysis["alliance_measure"]
    if alliance_key not in measures:
        raise ConfigError(
            f"analysis.alliance_measure: {alliance_key!r} is not a key of dataset.measures ({', '.join(measures)})"
        )
    alliance_instrument = registry[measures[alliance_key]["instrument"]]
    if alliance_instrument.construct != "alliance":
        raise ConfigError(
            f"analysis.alliance_measure: {alliance_key!r} is {alliance_instrument.id}, which measures "
            f"{alliance_instrument.construct}, not the alliance"
        )
    conditions = set(dataset["labels"]["condition"])
    for condition, key in analysis["outcome_by_condition"].items():
        if condition not in conditions:
            raise ConfigError(
                f"analysis.outcome_by_condition: {condition!r} is not a canonical condition "
                f"of dataset.labels.condition ({', '.join(sorted(conditions))})"
            )
        if key not in measures:
            raise ConfigError(
                f"analysis.outcome_by_condition.{condition}: {key!r} is not a key of "
                f"dataset.measures ({', '.join(measures)})"
            )
        if registry[measures[key]["instrument"]].construct == "alliance":
            raise ConfigError(
                f"analysis.outcome_by_condition.{condition}: {key!r} is an alliance measure "
                f"({measures[key]['instrument']}), not a symptom outcome"
            )
    missing_conditions = conditions - set(analysis["outcome_by_condition"])
    if missing_conditions:
        raise ConfigError(
            "analysis.outcome_by_condition has no primary outcome for " + ", ".join(sorted(missing_conditions))
        )
    outcome_instruments = {measures[key]["instrument"] for key in analysis["outcome_by_condition"].values()}
    if analysis_settings(analysis)["outcome_scale"] == "raw" and len(outcome_instruments) > 1:
        raise ConfigError(
            "analysis.outcome_scale: 'raw' puts different measures ("
            + ", ".join(sorted(outcome_instruments))
            + ") on one axis; choose pomp or baseline_z"
        )


def _check_labels(labels: dict[str, Any]) -> None:
    """No spelling of a therapy or condition label maps to two canonical labels."""
    for kind in ("therapy", "condition"):
        seen: dict[str, str] = {}
        for canonical, spellings in labels[kind].items():
            for spelling in spellings:
                text = str(spelling)
                if text in seen and seen[text] != canonical:
                    raise ConfigError(f"dataset.labels.{kind}: {text!r} maps to both {seen[text]!r} and {canonical!r}")
                seen[text] = canonical


def _check_patients_file(dataset: dict[str, Any]) -> None:
    """``patient_columns`` only with a patients file (its ``patient`` defaults to ``columns.patient``)."""
    patient_columns = dataset.get("patient_columns") or {}
    if patient_columns and not dataset.get("patients"):
        raise ConfigError("dataset.patient_columns: given, but dataset.patients names no patients file")


def _check_design_and_dropout(dataset: dict[str, Any], cleaning: dict[str, Any]) -> None:
    """Therapy and condition come from one of the two files; dropout from a column that is mapped.

    Without a patients file, ``fewer_than_planned`` has no planned number of sessions: a config
    error, not a dropout column left missing (``end_reason`` without the column: dropout missing
    and a warning, alliance.intake.patient_level).
    """
    patient_columns = dataset.get("patient_columns") or {}
    for kind in ("therapy", "condition"):
        if kind not in dataset["columns"] and kind not in patient_columns:
            raise ConfigError(
                f"dataset.columns.{kind}: the {kind} is mapped nowhere; map the sessions file's column "
                f"in dataset.columns.{kind} or the patients file's in dataset.patient_columns.{kind}"
            )
    definition = cleaning.get("dropout_definition", DEFAULT_POLICY["dropout_definition"])
    if definition == "fewer_than_planned" and "planned_sessions" not in patient_columns:
        raise ConfigError(
            "cleaning.dropout_definition: 'fewer_than_planned' needs the planned number of sessions, "
            "dataset.patient_columns.planned_sessions (a column of the patients file), which is not mapped; "
            "map it or use end_reason"
        )


def _check_dates_to_days(dataset: dict[str, Any], cleaning: dict[str, Any], used: dict[str, str]) -> None:
    """At most one date column becomes ``days_since_intake``, not mapped otherwise or read twice."""
    to_days = (cleaning.get("deidentification") or {}).get("dates_to_days") or []
    if len(to_days) > 1:
        raise ConfigError(
            "cleaning.deidentification.dates_to_days: lists "
            f"{len(to_days)} columns ({', '.join(to_days)}); one date column of the sessions file "
            "becomes days_since_intake"
        )
    if to_days and "days_since_intake" in dataset["columns"]:
        raise ConfigError(
            "cleaning.deidentification.dates_to_days: makes days_since_intake from "
            f"{to_days[0]!r}, but dataset.columns.days_since_intake maps it as well; keep one"
        )
    for column in to_days:
        if column in used:
            raise ConfigError(
                f"cleaning.deidentification.dates_to_days: column {column!r} is already used by {used[column]}"
            )
