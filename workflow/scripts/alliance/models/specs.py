"""A model of the suite as an engine spec: config entry -> :class:`ModelSpec` -> the rows it is fitted to.

Nothing in a config entry is evaluated: the spec holds names only (outcome, fixed terms with the
``moderation`` block's moderators and interactions, random terms, categorical columns with their
reference levels), and the engine writes the formulas from those names.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from alliance.engines.spec import ModelSpec, RandomTerm
from alliance.models.data import ModelDataError, spec_columns
from alliance.models.moderation import moderated_fixed

__all__ = ["spec_from_config", "spec_dict", "model_columns", "complete_cases"]


def spec_from_config(model: dict[str, Any]) -> ModelSpec:
    """Build an engine spec from a validated config entry (names only, never code).

    A ``moderation`` block adds the moderators and the term x moderator interactions.

    >>> spec = spec_from_config({"name": "m", "outcome": "symptoms", "fixed": ["alliance"],
    ...                          "random": [{"group": "patient"}]})
    >>> spec.random[0].group
    'patient'
    """
    return ModelSpec(
        name=model["name"],
        outcome=model["outcome"],
        fixed=tuple(moderated_fixed(list(model.get("fixed", ())), model.get("moderation"))),
        random=tuple(
            RandomTerm(
                group=term["group"],
                slopes=tuple(term.get("slopes", ())),
                correlated=term.get("correlated", True),
                nested_in=term.get("nested_in"),
            )
            for term in model["random"]
        ),
        categorical=tuple((str(c), str(ref)) for c, ref in (model.get("categorical") or {}).items()),
        reml=model.get("reml", True),
    )


def spec_dict(spec: ModelSpec) -> dict[str, Any]:
    """A spec as plain data, in the shape of a config entry (fit.json's ``spec`` of a model not fitted).

    >>> spec_dict(spec_from_config({"name": "m", "outcome": "y", "fixed": ["x"], "random": [{"group": "g"}]}))["random"]
    [{'group': 'g', 'slopes': [], 'correlated': True, 'nested_in': None}]
    """
    return {
        "name": spec.name,
        "outcome": spec.outcome,
        "fixed": list(spec.fixed),
        "random": [
            {"group": r.group, "slopes": list(r.slopes), "correlated": r.correlated, "nested_in": r.nested_in}
            for r in spec.random
        ],
        "categorical": [list(c) for c in spec.categorical],
        "reml": spec.reml,
    }


def model_columns(spec: ModelSpec) -> list[str]:
    """Every data column a spec uses (outcome, fixed terms, groups, slopes)."""
    return spec_columns(spec_dict(spec))


def complete_cases(spec: ModelSpec, data: pd.DataFrame) -> pd.DataFrame:
    """Rows with every model variable present (listwise deletion, as lme4 does), all columns kept."""
    absent = [c for c in model_columns(spec) if c not in data.columns]
    if absent:
        raise ModelDataError(
            f"model '{spec.name}' uses column(s) {', '.join(absent)} that the data do not have; "
            "see results/<dataset>/clean/data_dictionary.csv and config/README.md (models) for the columns"
        )
    return data.loc[data[model_columns(spec)].notna().all(axis=1)]
