"""The multiverse: one specification fitted in every study and pooled; the curve and its summary.

Each specification of the grid (alliance.pooling.specifications.expand_grid) is one Snakemake job:
:func:`specification_table` fits it in every study (alliance.pooling.study_fits) and pools the
focal alliance -> symptoms coefficient as the pooled effects are pooled (REML, Knapp-Hartung:
alliance.pooling.two_stage). :func:`summarise` then reads every specification's pooled row and
answers what a reader of a multiverse asks (Steegen et al. 2016; Simonsohn, Simmons & Nelson 2020):

* how many specifications there are, the share whose CI excludes 0 (and with which sign), the
  median estimate and its range, all of them and those without a known bias;
* for each choice, the median estimate under each of its options, and the choice whose options
  move the median most (the largest range between its options' medians).

Specifications of different models estimate different things (a same-session association, a
cross-lag, a patient-level coefficient): the curve shows how far the answer to "does the alliance
predict symptoms?" depends on them, not one parameter estimated many times.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from alliance.pooling.specifications import DIMENSIONS, NOT_APPLICABLE, build_model, complete_choices, specification_id
from alliance.pooling.study_fits import study_rows
from alliance.pooling.two_stage import pool_effect

__all__ = ["FOCAL_EFFECT", "specification_table", "summarise", "truth_by_model"]

#: the alliance -> symptoms effect each model of the grid contributes to the curve
FOCAL_EFFECT = {
    "same_session": "same_session",
    "lagged": "lagged_alliance_symptoms",
    "riclpm": "riclpm_alliance_symptoms",
    "early_alliance": "early_alliance",
}


def specification_table(
    choices: dict[str, str],
    studies: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
    *,
    waves: int,
    winsor_sd: float,
    engine: str | None,
    level: float,
    outcome_scale: str = "pomp",
) -> pd.DataFrame:
    """The specification's study rows and its pooled row (``study`` = ``pooled``), with the choices.

    ``studies`` maps each study to its harmonised (sessions, patients). A study the model cannot be
    fitted in gives a row with no estimate and the reason in ``flags`` (``fit_failed: ...``); the
    pooled row then says which studies are missing.
    """
    effect = FOCAL_EFFECT[choices["model"]]
    spec_id = specification_id(choices)
    rows = [
        study_rows(choices, sessions, patients, study=name, waves=waves, winsor_sd=winsor_sd, engine=engine)
        for name, (sessions, patients) in studies.items()
    ]
    per_study = pd.concat(rows, ignore_index=True)
    per_study = per_study[per_study["effect"] == effect].reset_index(drop=True)
    pooled, per_study = pool_effect(per_study, effect=effect, outcome_scale=outcome_scale, level=level)
    done = build_model(choices, waves=waves)
    pooled_row = {
        "study": "pooled",
        "specification": spec_id,
        "effect": effect,
        **{k: pooled[k] for k in ("estimate", "se", "ci_low", "ci_high", "df", "p", "k", "tau2", "i2", "flags")},
        "known_bias": " | ".join(done.known_bias),
    }
    table = pd.concat([per_study.assign(known_bias=""), pd.DataFrame([pooled_row])], ignore_index=True)
    complete = complete_choices(choices)
    for dimension in DIMENSIONS:
        table[dimension] = complete[dimension]
    return table


def _share(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else math.nan


def summarise(specifications: pd.DataFrame, dimensions: list[str] = list(DIMENSIONS)) -> dict[str, pd.DataFrame]:
    """``curve`` (one pooled row per specification), ``summary`` and ``choices`` (module docstring).

    Example
    -------
    >>> rows = pd.DataFrame({"study": "pooled", "specification": ["a", "b", "c", "d"],
    ...                      "estimate": [-4.0, -3.0, -0.2, 0.1], "ci_low": [-5.0, -4.0, -0.5, -0.2],
    ...                      "ci_high": [-3.0, -2.0, 0.1, 0.4], "known_bias": ["", "", "x", ""],
    ...                      "model": ["same_session", "same_session", "lagged", "riclpm"],
    ...                      "sample": ["all", "completers", "all", "all"]})
    >>> out = summarise(rows, ["model", "sample"])
    >>> out["summary"].set_index("statistic").loc[["specifications", "share_ci_excludes_zero", "median_estimate"], "value"].tolist()
    [4.0, 0.5, -1.6]
    >>> out["summary"].set_index("statistic").loc["choice_moving_most", "text"]
    'model (median -3.5 under same_session, 0.1 under riclpm)'
    """
    curve = specifications[specifications["study"] == "pooled"].sort_values("specification").reset_index(drop=True)
    finite = curve[np.isfinite(curve["estimate"].astype(float))]
    excludes = (finite["ci_low"] > 0) | (finite["ci_high"] < 0)
    unbiased = finite[finite["known_bias"].fillna("") == ""]
    unbiased_excludes = (unbiased["ci_low"] > 0) | (unbiased["ci_high"] < 0)
    choice_rows = []
    for dimension in dimensions:
        applies = finite[finite[dimension] != NOT_APPLICABLE]
        for option, group in applies.groupby(dimension, sort=True):
            choice_rows.append(
                {
                    "dimension": dimension,
                    "option": option,
                    "specifications": int(len(group)),
                    "median_estimate": float(group["estimate"].median()),
                    "share_ci_excludes_zero": _share((group["ci_low"] > 0) | (group["ci_high"] < 0)),
                }
            )
    choices = pd.DataFrame(
        choice_rows, columns=["dimension", "option", "specifications", "median_estimate", "share_ci_excludes_zero"]
    )
    spread = (
        choices.groupby("dimension")["median_estimate"].agg(lambda s: s.max() - s.min())
        if len(choices)
        else pd.Series(dtype=float)
    )
    spread = spread[choices.groupby("dimension").size() > 1] if len(choices) else spread
    moving: dict[str, Any] = {"value": math.nan, "text": "no choice has two options in the grid"}
    if len(spread):
        top = str(spread.sort_values(ascending=False, kind="stable").index[0])
        options = choices[choices["dimension"] == top].sort_values("median_estimate")
        low, high = options.iloc[0], options.iloc[-1]
        moving = {
            "value": float(spread[top]),
            "text": f"{top} (median {low['median_estimate']:.3g} under {low['option']}, "
            f"{high['median_estimate']:.3g} under {high['option']})",
        }
    statistics = [
        ("specifications", float(len(curve)), ""),
        ("specifications_estimated", float(len(finite)), ""),
        ("share_ci_excludes_zero", _share(excludes), "share of specifications whose pooled 95 % CI excludes 0"),
        ("share_ci_below_zero", _share(finite["ci_high"] < 0), "CI entirely below 0 (higher alliance, fewer symptoms)"),
        ("share_ci_above_zero", _share(finite["ci_low"] > 0), "CI entirely above 0"),
        ("median_estimate", float(finite["estimate"].median()) if len(finite) else math.nan, ""),
        ("min_estimate", float(finite["estimate"].min()) if len(finite) else math.nan, ""),
        ("max_estimate", float(finite["estimate"].max()) if len(finite) else math.nan, ""),
        (
            "specifications_flagged",
            float((curve["flags"].fillna("none") != "none").sum()) if "flags" in curve else math.nan,
            "pooled rows with a flag (a study's fit flagged, tau2 at 0, a study not fitted): marked in the curve",
        ),
        ("specifications_without_known_bias", float(len(unbiased)), ""),
        ("share_ci_excludes_zero_without_known_bias", _share(unbiased_excludes), ""),
        ("median_estimate_without_known_bias", float(unbiased["estimate"].median()) if len(unbiased) else math.nan, ""),
        ("choice_moving_most", moving["value"], moving["text"]),
    ]
    summary = pd.DataFrame(statistics, columns=["statistic", "value", "text"])
    return {"curve": curve, "summary": summary, "choices": choices}


def truth_by_model(truth: pd.DataFrame) -> dict[str, float]:
    """The pooled truth (alliance.pooling.truth's table) of each model of the grid that has one, for the curve.

    >>> t = pd.DataFrame({"level": ["pooled", "pooled", "study"], "effect": ["riclpm_alliance_symptoms",
    ...                   "early_alliance", "same_session"], "truth": [-2.7, float("nan"), -3.0]})
    >>> truth_by_model(t)
    {'riclpm': -2.7}
    """
    pooled = truth[truth["level"] == "pooled"].set_index("effect")["truth"].astype(float)
    return {m: float(pooled[e]) for m, e in FOCAL_EFFECT.items() if e in pooled.index and math.isfinite(pooled[e])}
