"""Checks of the run configuration that a JSON schema cannot express.

The schema (workflow/schemas/config.schema.yaml) checks types, allowed values and
unknown keys when the workflow loads; :func:`check_config` then checks that the
pieces refer to each other correctly (a measure named in ``analysis`` exists, an
instrument id is in the registry, model names are unique ...), so that a lab's
mistake stops the run before any job starts, with a message naming the key.
"""

from __future__ import annotations

from typing import Any

from alliance.instruments import load_registry


class ConfigError(ValueError):
    """A configuration mistake; the message names the key."""


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
    dataset = config["dataset"]
    analysis = config["analysis"]
    registry = load_registry(config.get("instruments") or None)
    measures = dataset["measures"]

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
                    f"dataset.measures.{key}.items lists {n_given} columns but "
                    f"{instrument} has {n_expected} items"
                )

    alliance_key = analysis["alliance_measure"]
    if alliance_key not in measures:
        raise ConfigError(
            f"analysis.alliance_measure: {alliance_key!r} is not a key of dataset.measures "
            f"({', '.join(measures)})"
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
    missing_conditions = conditions - set(analysis["outcome_by_condition"])
    if missing_conditions:
        raise ConfigError(
            "analysis.outcome_by_condition has no primary outcome for "
            + ", ".join(sorted(missing_conditions))
        )
    outcome_instruments = {
        measures[key]["instrument"] for key in analysis["outcome_by_condition"].values()
    }
    if analysis.get("outcome_scale", "pomp") == "raw" and len(outcome_instruments) > 1:
        raise ConfigError(
            "analysis.outcome_scale: 'raw' puts different measures ("
            + ", ".join(sorted(outcome_instruments))
            + ") on one axis; choose pomp or baseline_z"
        )

    for kind in ("therapy", "condition"):
        seen: dict[str, str] = {}
        for canonical, spellings in dataset["labels"][kind].items():
            for spelling in spellings:
                text = str(spelling)
                if text in seen and seen[text] != canonical:
                    raise ConfigError(
                        f"dataset.labels.{kind}: {text!r} maps to both "
                        f"{seen[text]!r} and {canonical!r}"
                    )
                seen[text] = canonical

    names = [m["name"] for m in config["models"]]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"models: duplicated model name(s) {', '.join(duplicates)}")
    if not any(m.get("enabled", True) for m in config["models"]):
        raise ConfigError("models: every model is disabled; enable at least one")
