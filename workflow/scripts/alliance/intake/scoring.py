"""Session-level scores: every measure scored, the alliance and the primary outcome picked,
the outcome put on the common scale, and the derived session variables.

Measures given by items are scored by the instrument's rules
(:func:`alliance.intake.instruments.score_items`: reverse keying, prorating); a
supplied total gives the mean item score and a supplied mean the total. The
primary outcome is the total of the condition's measure (``analysis.outcome_by_condition``),
put on the configured common scale (``analysis.outcome_scale``). The centred,
detrended, lagged and leading variables come from :mod:`alliance.intake.derive`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from alliance.intake import derive
from alliance.intake.config import supplied_score
from alliance.intake.instruments import score_items
from alliance.intake.layout import item_column
from alliance.intake.registry import Instrument
from alliance.intake.reliability import scoring_instrument


def score_measures(data: pd.DataFrame, dataset: dict[str, Any], registry: dict[str, Instrument]) -> pd.DataFrame:
    """Totals, means and subscales of every measure, with the prorating rule applied.

    Items are scored by ``alliance.intake.instruments.score_items`` (without the registry's
    reverse keys when ``already_keyed`` says the export holds keyed items); a supplied total gives
    the mean (total / n_items) and a supplied mean the total.
    """
    scored: dict[str, pd.Series] = {}
    for key, measure in dataset["measures"].items():
        instrument = registry[measure["instrument"]]
        if "items" in measure:
            items = data[[item_column(key, k) for k in range(1, instrument.n_items + 1)]]
            scores = score_items(items, scoring_instrument(measure, instrument))  # no keys if already keyed
            for column in scores.columns:
                scored[f"{key}_{column}"] = scores[column]
        elif supplied_score(measure) == "total":
            scored[f"{key}_mean"] = data[f"{key}_total"] / instrument.n_items
        else:
            scored[f"{key}_total"] = data[f"{key}_mean"] * instrument.n_items
    return pd.DataFrame(scored, index=data.index)


def common_scale(
    raw: pd.Series,
    instrument_of_row: pd.Series,
    registry: dict[str, Instrument],
    scale: str,
    baseline_rows: pd.Series,
) -> pd.Series:
    """Put each row's primary-outcome total on the configured common scale.

    ``pomp``: percent of the instrument's possible range; ``baseline_z``: SD units of
    the instrument's baseline scores (``baseline_rows``); ``raw``: unchanged.
    """
    if scale == "raw":
        return raw.astype(float)
    out = pd.Series(np.nan, index=raw.index, dtype=float)
    for instrument_id in sorted(instrument_of_row.dropna().unique()):
        rows = instrument_of_row == instrument_id
        instrument = registry[instrument_id]
        if scale == "pomp":
            span = instrument.total_max - instrument.total_min
            out[rows] = 100.0 * (raw[rows] - instrument.total_min) / span
        else:  # baseline_z
            base = raw[rows & baseline_rows]
            out[rows] = (raw[rows] - base.mean()) / base.std(ddof=1)
    return out


def session_scores(
    data: pd.DataFrame, dataset: dict[str, Any], analysis: dict[str, Any], registry: dict[str, Instrument]
) -> pd.DataFrame:
    """The validated sessions table (sorted by patient and session) with every score and
    derived session variable added.

    ``analysis`` holds every setting (:func:`alliance.intake.config.analysis_settings`).
    """
    data = pd.concat([data, score_measures(data, dataset, registry)], axis=1)
    alliance_key = analysis["alliance_measure"]
    data["alliance"] = data[f"{alliance_key}_{analysis['alliance_score']}"]
    outcome_key = data["condition"].map(analysis["outcome_by_condition"])
    instrument_ids = {key: m["instrument"] for key, m in dataset["measures"].items()}
    data["outcome_measure"] = outcome_key.map(instrument_ids).astype("str")
    raw_outcome = pd.Series(np.nan, index=data.index)
    for key in sorted(set(analysis["outcome_by_condition"].values())):
        rows = outcome_key == key
        raw_outcome[rows] = data.loc[rows, f"{key}_total"]
    data["symptoms_raw"] = raw_outcome
    first_session = data.groupby("patient")["session"].transform("min")
    data["symptoms"] = common_scale(
        raw_outcome,
        data["outcome_measure"],
        registry,
        analysis["outcome_scale"],
        baseline_rows=data["session"] == first_session,
    )
    return derive.session_variables(data)
