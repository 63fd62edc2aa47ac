"""The model suite as data: config entries -> engine specs -> tidy result tables."""

from __future__ import annotations

from typing import Any

import pandas as pd

from alliance.engine import FitResult, ModelSpec, RandomTerm, fit, to_lme4_formula


def spec_from_config(model: dict[str, Any]) -> ModelSpec:
    """Build an engine spec from a validated config entry (names only, never code).

    >>> spec = spec_from_config({"name": "m", "outcome": "symptoms", "fixed": ["alliance"],
    ...                          "random": [{"group": "patient"}]})
    >>> spec.random[0].group
    'patient'
    """
    return ModelSpec(
        name=model["name"],
        outcome=model["outcome"],
        fixed=tuple(model.get("fixed", ())),
        random=tuple(
            RandomTerm(
                group=term["group"],
                slopes=tuple(term.get("slopes", ())),
                correlated=term.get("correlated", True),
                nested_in=term.get("nested_in"),
            )
            for term in model["random"]
        ),
        reml=model.get("reml", True),
    )


def model_columns(spec: ModelSpec) -> list[str]:
    """Every data column a spec uses (outcome, fixed terms, groups, slopes)."""
    names = [spec.outcome]
    for term in spec.fixed:
        names += term.split(":")
    for term in spec.random:
        names += [term.group, *term.slopes] + ([term.nested_in] if term.nested_in else [])
    return list(dict.fromkeys(names))


def complete_cases(spec: ModelSpec, data: pd.DataFrame) -> pd.DataFrame:
    """Rows with every model variable present (listwise deletion, as lme4 does)."""
    absent = [c for c in model_columns(spec) if c not in data.columns]
    if absent:
        raise ValueError(
            f"model '{spec.name}' uses column(s) {', '.join(absent)} that the analysis "
            "dataset does not have; see results/<dataset>/clean/data_dictionary.csv for the columns"
        )
    columns = model_columns(spec)
    return data.loc[data[columns].notna().all(axis=1), columns].reset_index(drop=True)


def tidy_tables(result: FitResult, label: str = "") -> dict[str, Any]:
    """Fixed effects and variance components with the model's flags on every row."""
    flags = ";".join(result.flags) if result.flags else "none"
    fixed = result.fixed.copy()
    fixed.insert(0, "model", result.spec.name)
    fixed["engine"] = result.fit["engine"]
    fixed["flags"] = flags
    variance = result.variance_components.copy()
    variance.insert(0, "model", result.spec.name)
    variance["flags"] = flags
    summary = result.to_dict()
    summary["label"] = label
    summary["lme4_formula"] = to_lme4_formula(result.spec)
    summary["flags"] = list(result.flags)
    return {"fixed": fixed, "variance": variance, "fit": summary}


def fit_configured_model(model: dict[str, Any], data: pd.DataFrame) -> dict[str, Any]:
    """Fit one config model on its complete cases and return its tidy tables."""
    spec = spec_from_config(model)
    used = complete_cases(spec, data)
    return tidy_tables(fit(spec, used), model.get("label", spec.name))
