"""The second stage: every study's coefficient of an effect pooled, with what a reader must see beside it.

For each pooled effect the studies' estimates and SEs (stage one, alliance.pooling.study_fits) are
pooled by a REML random-effects model with Knapp-Hartung CIs (alliance.pooling.meta), and the
tables of the report are made: the studies with their weights, the pooled row (tau^2, I^2, Q, the
prediction interval), leave-one-study-out and a meta-regression on each study-level moderator.

What is flagged on the pooled row (``flags``, ``none`` when clean):

* ``tau2_boundary``: REML put tau^2 at 0; ``not_converged``: its iterations did not converge;
* ``studies_flagged``: at least one study's fit carries flags (``study_flags`` says which);
* ``studies_not_fitted``: a study gave no finite estimate and is left out (named in ``study_flags``).

A specification with a known bias carries its label (``known_bias``) on every row it gives.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from alliance.pooling.harmonise import OUTCOME_SCALES
from alliance.pooling.meta import leave_one_out, meta_regression, random_effects
from alliance.pooling.specifications import EFFECT_LABELS, EFFECT_SOURCE, build_model, effect_specification

__all__ = [
    "REVERSE_EFFECTS",
    "POOLED_COLUMNS",
    "effect_units",
    "effect_known_bias",
    "pool_effect",
    "pool_all",
]

#: the pooled effects whose outcome is the alliance (symptoms predict it)
REVERSE_EFFECTS = ("lagged_symptoms_alliance", "riclpm_symptoms_alliance")
POOLED_COLUMNS = [
    "effect",
    "effect_label",
    "units",
    "k",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "df",
    "statistic",
    "p",
    "tau2",
    "tau",
    "i2",
    "h2",
    "q",
    "q_df",
    "q_p",
    "pi_low",
    "pi_high",
    "ci_method",
    "converged",
    "iterations",
    "boundary",
    "flags",
    "study_flags",
    "known_bias",
]


def effect_units(effect: str, outcome_scale: str) -> str:
    """The units of a pooled effect's coefficient on the harmonised scale.

    >>> effect_units("same_session", "pomp")
    'POMP points per within-study SD of the alliance'
    >>> effect_units("riclpm_symptoms_alliance", "z_within_study")
    'within-study SDs of the alliance per within-study SD of the outcome instrument'
    """
    outcome = "POMP points" if outcome_scale == "pomp" else OUTCOME_SCALES[outcome_scale]
    if effect in REVERSE_EFFECTS:
        one = "POMP point" if outcome_scale == "pomp" else "within-study SD of the outcome instrument"
        return f"within-study SDs of the alliance per {one}"
    return f"{outcome} per within-study SD of the alliance"


def effect_known_bias(effect: str) -> str:
    """The known-bias labels of the specification that gives ``effect`` ('' when it has none)."""
    choices = effect_specification(EFFECT_SOURCE[effect])
    return " | ".join(build_model(choices, waves=3).known_bias)  # the labels do not depend on the waves


def _usable(rows: pd.DataFrame) -> pd.Series:
    return np.isfinite(rows["estimate"].astype(float)) & np.isfinite(rows["se"].astype(float)) & (rows["se"] > 0)


def pool_effect(
    rows: pd.DataFrame, *, effect: str, outcome_scale: str, level: float
) -> tuple[dict[str, Any], pd.DataFrame]:
    """One effect's pooled row (:data:`POOLED_COLUMNS`) and its study rows with ``weight`` (percent).

    ``rows`` are the stage-one rows of that effect, one per study.

    Example
    -------
    >>> rows = pd.DataFrame({"study": ["a", "b", "c"], "estimate": [-0.3, -0.1, -0.2], "se": [0.1, 0.1, 0.2],
    ...                      "flags": ["none", "boundary", "none"]})
    >>> pooled, studies = pool_effect(rows, effect="same_session", outcome_scale="pomp", level=0.95)
    >>> round(pooled["estimate"], 4), pooled["k"], pooled["flags"], studies["weight"].round(1).tolist()
    (-0.2, 3, 'studies_flagged', [43.1, 43.1, 13.8])
    """
    rows = rows.sort_values("study", kind="stable").reset_index(drop=True)
    usable = _usable(rows)
    used = rows[usable]
    flags, study_flags = [], []
    if (~usable).any():
        flags.append("studies_not_fitted")
        study_flags.append("not fitted: " + ", ".join(rows.loc[~usable, "study"]))
    flagged = used[used["flags"].fillna("none") != "none"]
    if len(flagged):
        flags.append("studies_flagged")
        by_flags = flagged.groupby("flags", sort=True)["study"].apply(lambda names: ", ".join(sorted(names)))
        study_flags += [f"{flag_set.replace(';', ' + ')}: {names}" for flag_set, names in by_flags.items()]
    base = {
        "effect": effect,
        "effect_label": EFFECT_LABELS[effect],
        "units": effect_units(effect, outcome_scale),
        "known_bias": effect_known_bias(effect),
    }
    rows = rows.assign(weight=math.nan)
    if len(used) < 2:
        pooled = {**base, "k": int(len(used)), "flags": ";".join(flags + ["too_few_studies"])}
        pooled["study_flags"] = "; ".join(study_flags) or "none"
        return {c: pooled.get(c, math.nan) for c in POOLED_COLUMNS}, rows
    fit = random_effects(
        used["estimate"].to_numpy(float), used["se"].to_numpy(float), level=level, labels=list(used["study"])
    )
    rows.loc[usable, "weight"] = fit.weights
    if fit.boundary:
        flags.insert(0, "tau2_boundary")
    if not fit.converged:
        flags.insert(0, "not_converged")
    pooled = {
        **base,
        **fit.as_row(),
        "flags": ";".join(flags) or "none",
        "study_flags": "; ".join(study_flags) or "none",
    }
    return {c: pooled.get(c, math.nan) for c in POOLED_COLUMNS}, rows


def _leave_one_out(effect: str, used: pd.DataFrame, level: float) -> pd.DataFrame:
    if len(used) < 3:
        return pd.DataFrame()
    table = leave_one_out(
        used["estimate"].to_numpy(float), used["se"].to_numpy(float), list(used["study"]), level=level
    )
    table.insert(0, "effect", effect)
    return table


def _meta_regressions(effect: str, used: pd.DataFrame, moderators: pd.DataFrame, level: float) -> pd.DataFrame:
    """One meta-regression per moderator (few studies: one moderator at a time), or a row saying why not."""
    parts = []
    for name in moderators.columns:
        values = moderators.loc[used["study"], [name]].reset_index(drop=True)
        base = {"effect": effect, "moderator": name}
        try:
            fit = meta_regression(used["estimate"].to_numpy(float), used["se"].to_numpy(float), values, level=level)
        except ValueError as error:
            parts.append(pd.DataFrame([{**base, "note": str(error)}]))
            continue
        table = fit.coefficients.copy()
        for key, value in fit.as_row().items():
            table[key] = value
        table.insert(0, "moderator", name)
        table.insert(0, "effect", effect)
        table["note"] = "" if fit.converged else "not converged"
        parts.append(table)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def pool_all(
    estimates: pd.DataFrame,
    *,
    effects: list[str],
    moderators: dict[str, dict[str, Any]],
    outcome_scale: str,
    level: float = 0.95,
) -> dict[str, pd.DataFrame]:
    """Every table of stage two: ``study_estimates``, ``pooled``, ``leave_one_out``, ``meta_regression``.

    ``estimates`` holds the stage-one rows of every study and effect; ``moderators`` each study's
    moderators by name (the same names for every study).
    """
    moderator_table = pd.DataFrame.from_dict(moderators, orient="index").sort_index()
    pooled_rows, study_parts, loo_parts, reg_parts = [], [], [], []
    for effect in effects:
        rows = estimates[estimates["effect"] == effect]
        pooled, studies = pool_effect(rows, effect=effect, outcome_scale=outcome_scale, level=level)
        pooled_rows.append(pooled)
        studies.insert(studies.columns.get_loc("effect") + 1, "effect_label", EFFECT_LABELS[effect])
        study_parts.append(studies)
        used = studies[_usable(studies)]
        loo_parts.append(_leave_one_out(effect, used, level))
        if len(moderator_table.columns) and len(used) >= 3:
            reg_parts.append(_meta_regressions(effect, used, moderator_table, level))
    loo = [p for p in loo_parts if len(p)]
    regs = [p for p in reg_parts if len(p)]
    return {
        "study_estimates": pd.concat(study_parts, ignore_index=True),
        "pooled": pd.DataFrame(pooled_rows, columns=POOLED_COLUMNS),
        "leave_one_out": pd.concat(loo, ignore_index=True) if loo else pd.DataFrame(columns=["effect", "label"]),
        "meta_regression": pd.concat(regs, ignore_index=True)
        if regs
        else pd.DataFrame(columns=["effect", "moderator"]),
    }
