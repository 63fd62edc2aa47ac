"""Refitting a configured model on changed data: what influence and sensitivity analyses share.

:func:`refit` fits a config model (alliance.models.specs) on the tables it is given, with the
engine of the run, and :func:`focal_estimates` keeps the rows of the model's ``roles`` terms with
the sample counts and the fit's flags.  Unlike :func:`alliance.models.suite.fit_model` it makes
none of the model directory's tables: an influence analysis refits the same model once per
therapist.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from alliance.engines.dispatch import fit
from alliance.engines.spec import FitResult
from alliance.models.data import model_frame, sample_counts
from alliance.models.specs import spec_from_config

__all__ = ["FOCAL_COLUMNS", "refit", "focal_estimates"]

#: the columns of :func:`focal_estimates`
FOCAL_COLUMNS = [
    "term",
    "role",
    "estimate",
    "se",
    "df",
    "p",
    "ci_low",
    "ci_high",
    "n_obs",
    "n_patients",
    "n_therapists",
    "flags",
]


def refit(
    model: dict[str, Any],
    analysis: pd.DataFrame | None,
    patients: pd.DataFrame | None,
    engine: str | None = None,
) -> tuple[FitResult, dict[str, int]]:
    """Fit ``model`` to the given tables (its frame, filter and centring as in the suite) with
    ``engine`` (None: the default engine); returns the fit and the counts of the rows it used."""
    frame, _ = model_frame(model, analysis, patients)
    result = (
        fit(spec_from_config(model), frame) if engine is None else fit(spec_from_config(model), frame, engine=engine)
    )
    used = frame.loc[result.fitted["row"].to_numpy()]
    return result, sample_counts(used)


def focal_estimates(
    model: dict[str, Any], fixed: pd.DataFrame, flags: list[str], counts: dict[str, int]
) -> pd.DataFrame:
    """The fixed effects (a fit's ``fixed`` table) of the model's ``roles`` terms, in roles order,
    with the counts of the rows used and the fit's ``flags``.

    Examples
    --------
    >>> fixed = pd.DataFrame({"term": ["Intercept", "a"], "estimate": [1.0, 2.0], "se": [0.1, 0.5],
    ...                       "df": [10.0, 20.0], "statistic": [10.0, 4.0], "p": [0.0, 0.001],
    ...                       "ci_low": [0.8, 1.0], "ci_high": [1.2, 3.0]})
    >>> counts = {"n_obs": 30, "n_patients": 5, "n_therapists": 2}
    >>> rows = focal_estimates({"roles": {"a": "within_patient"}}, fixed, [], counts)
    >>> rows[["term", "role", "estimate", "n_obs", "flags"]].values.tolist()
    [['a', 'within_patient', 2.0, 30, 'none']]
    """
    roles = model.get("roles") or {}
    fixed = fixed.set_index("term")
    rows = []
    for term, role in roles.items():
        if term not in fixed.index:
            continue
        row = fixed.loc[term]
        rows.append(
            {
                "term": term,
                "role": role,
                **{k: float(row[k]) for k in ("estimate", "se", "df", "p", "ci_low", "ci_high")},
                **counts,
                "flags": ";".join(flags) or "none",
            }
        )
    return pd.DataFrame(rows, columns=FOCAL_COLUMNS)
