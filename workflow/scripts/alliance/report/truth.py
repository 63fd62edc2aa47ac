"""A simulated dataset's known truth (config ``dataset.truth``, the demo's ``TRUTH.yaml``): where the
file is, and the true value of each model's estimands, which the report's section "Which comes
first" shows beside the estimates (``alliance.report.lagged``).

The truth file holds ``estimands: {<model>: {<term or path>: value}}`` at its top level or inside one
top-level mapping; a value is a number or a mapping with ``value``, and a model's ``targets`` says in
words what its values are (``alliance.simulate_truth.model_estimands`` writes them).  Light on
imports: the workflow resolves the file's path when it loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: the truth file a simulated dataset keeps beside its sessions file (alliance.simulate.write_trial)
TRUTH_FILE_NAME = "TRUTH.yaml"


def truth_path(dataset: dict[str, Any]) -> str | None:
    """The dataset's truth file: config ``dataset.truth`` when given, else ``TRUTH.yaml`` beside the
    sessions file when there is one (relative paths from the working directory), else None.

    >>> truth_path({"truth": "sim/TRUTH.yaml", "sessions": {"path": "x/sessions.csv"}})
    'sim/TRUTH.yaml'
    >>> truth_path({"sessions": {"path": "/nonexistent/sessions.csv"}}) is None
    True
    """
    if dataset.get("truth"):
        return str(dataset["truth"])
    beside = Path(dataset["sessions"]["path"]).parent / TRUTH_FILE_NAME
    return str(beside) if beside.is_file() else None


def read_truth(path: str | Path | None) -> dict[str, Any] | None:
    """The dataset's truth file, or None when there is none."""
    if not path or not Path(path).exists():
        return None
    return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}


def truth_estimands(truth: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """The truth file's true value of each model's estimands, ``estimands: {<model>: {<term or
    path>: value}}`` at its top level or inside one top-level mapping, and the keys leading there."""
    if not truth:
        return {}, []
    if isinstance(truth.get("estimands"), dict):
        return truth["estimands"], ["estimands"]
    for key, value in truth.items():
        if isinstance(value, dict) and isinstance(value.get("estimands"), dict):
            return value["estimands"], [str(key), "estimands"]
    return {}, []


def true_value(found: dict[str, Any], keys: list[str], model: str, names: list[str]) -> tuple[float, str] | None:
    """The true value of one estimand of ``model`` (the first of ``names`` the truth has: a number,
    or a mapping with ``value``) and its data-source, or None."""
    entry = found.get(model)
    if not isinstance(entry, dict):
        return None
    for name in names:
        path = name.split("¦")
        value: Any = entry
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        extra = []
        if isinstance(value, dict) and "value" in value:
            value, extra = value["value"], ["value"]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), "¦".join(["truth", *keys, model, *path, *extra])
    return None


def truth_targets(truth: dict[str, Any] | None, models: list[str]) -> dict[str, str]:
    """What the truth file says each of ``models`` targets (its ``targets`` text, when it has one):
    for a lagged mixed model, that its true values are the RI-CLPM's paths it is compared with."""
    found, _ = truth_estimands(truth)
    out = {}
    for model in dict.fromkeys(models):
        text = (found.get(model) or {}).get("targets") if isinstance(found.get(model), dict) else None
        if isinstance(text, str) and text.strip():
            out[model] = text.strip()
    return out


#: a truth entry whose ``targets`` begins so names no estimand of that model (the lagged mixed
#: models, the patient-level models): its values are shown in the section they belong to, if any
NOT_AN_ESTIMAND = "no single parameter"


def _estimate_row(fit: dict[str, Any], key: str) -> tuple[dict[str, Any], str] | None:
    """The estimate a truth key names in one fit: a fixed-effect term (fit.json ``fixed``) or a
    contrast or simple slope by its name (``contrasts``), with the data-source prefix of its numbers."""
    name = (fit.get("config") or {}).get("name") or (fit.get("spec") or {}).get("name")
    for row in fit.get("fixed") or []:
        if row.get("term") == key:
            return row, f"fixed¦{name}¦{key}¦"
    for row in fit.get("contrasts") or []:
        if row.get("name") == key and row.get("estimate") is not None:
            return row, f"contrast¦{name}¦{key}¦"
    return None


def suite_truth_rows(truth: dict[str, Any] | None, fits: list[dict[str, Any]]) -> dict[str, Any]:
    """Estimate beside truth for every mixed model of the suite whose estimands the truth file
    names: estimate, 95% CI, the true value, whether the CI covers it, and the model's flags.
    Models whose truth entry says its values are no single parameter of that model are listed
    apart (``not_estimands``: model -> its label), not scored; those of them whose entry still
    gives the generating value each coefficient is compared with (the lagged specifications,
    biased by design) have their rows in ``biased``, each with its bias (estimate - truth), the
    truth file's words (``targets``) and the model's known-bias note, never among the scored rows."""
    from alliance.report.wording import digits_for  # here: the workflow loads this module (truth_path)

    found, keys = truth_estimands(truth)
    rows, biased, not_estimands = [], [], {}
    for fit in fits:
        name = (fit.get("config") or {}).get("name") or (fit.get("spec") or {}).get("name")
        entry = found.get(name)
        if not isinstance(entry, dict):
            continue
        targets = str(entry.get("targets") or "").strip()
        known_bias = targets.startswith(NOT_AN_ESTIMAND)
        if known_bias:
            not_estimands[name] = fit.get("label") or name
        for key in entry:
            if key == "targets":
                continue
            hit, value = _estimate_row(fit, key), true_value(found, keys, name, [key])
            if hit is None or value is None:
                continue
            row, source = hit
            low, high = row.get("ci_low"), row.get("ci_high")
            covers = None if low is None or high is None else bool(low <= value[0] <= high)
            shown = {
                "model": name,
                "label": fit.get("label") or name,
                "term": key,
                "estimate": row.get("estimate"),
                "ci_low": low,
                "ci_high": high,
                "truth": value[0],
                "truth_source": value[1],
                "covers": covers,
                "digits": digits_for(row.get("se")),  # enough decimals for the estimate's precision
                "source": source,
                "flags": list(fit.get("flags") or []),
            }
            if known_bias:
                estimate = row.get("estimate")
                shown["bias"] = None if estimate is None else float(estimate) - value[0]
                shown["targets"] = targets
                shown["known_bias"] = fit.get("known_bias") or (fit.get("config") or {}).get("known_bias")
                biased.append(shown)
            else:
                rows.append(shown)
    return {
        "rows": rows,
        "biased": biased,
        "not_estimands": not_estimands,
        "targets": truth_targets(truth, list(found)),
    }
