"""The pooled report's context: the pooling stage's tables as the template shows them.

Every number comes from a table of the pooling stage (results/<pool>/pooled/, multiverse/):
nothing is computed again here. What this module adds is words and order: the studies' labels,
each effect's formula (written by the engine's own formula writer from the specification's names),
which rows carry a known bias or flags, and the figures as data URIs.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from alliance.engines.spec import to_lme4_formula
from alliance.models.specs import spec_from_config
from alliance.pooling.harmonise import OUTCOME_SCALES
from alliance.pooling.one_stage import one_stage_model
from alliance.pooling.specifications import EFFECT_LABELS, EFFECT_SOURCE, build_model, effect_specification

__all__ = ["effect_formula", "pooled_context"]


def effect_formula(model_name: str, waves: int) -> str:
    """The model of a pooled effect in lme4's notation (the RI-CLPM in words).

    >>> effect_formula("same_session", 7)
    'symptoms ~ alliance_within_patient + alliance_between_patient + session_c + (1 + alliance_within_patient | patient)'
    """
    built = build_model(effect_specification(model_name), waves=waves)
    if built.is_riclpm:
        cluster = built.model.get("cluster")
        return f"RI-CLPM of alliance and symptoms on sessions 1-{waves}, lagged paths equal over waves, FIML; " + (
            f"cluster-robust SEs over {cluster}s" if cluster else "model-based SEs"
        )
    model = built.model
    if not model["random"]:
        return f"{model['outcome']} ~ {' + '.join(model['fixed'])} (least squares)"
    return to_lme4_formula(spec_from_config(model))


def _records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None or frame.empty:
        return []
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def _flagged(value: Any) -> bool:
    return value not in (None, "", "none") and not (isinstance(value, float) and math.isnan(value))


def pooled_context(
    *,
    title: str,
    pooling: dict[str, Any],
    multiverse: dict[str, Any],
    studies: dict[str, dict[str, Any]],
    effects: list[str],
    tables: dict[str, pd.DataFrame | None],
    summaries: list[dict[str, Any]],
    figures: dict[str, str],
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """The template's context: ``tables`` holds the pooling stage's tables by name (``harmonisation``,
    ``pooled``, ``study_estimates``, ``leave_one_out``, ``meta_regression``, ``truth``, ``one_stage``,
    and with a multiverse ``curve``, ``multiverse_summary``, ``multiverse_choices``)."""
    first, last = pooling["sessions"]
    pooled = tables["pooled"].set_index("effect").loc[effects].reset_index()
    one_stage = tables.get("one_stage")
    comparison = []
    if one_stage is not None:
        for _, row in one_stage.iterrows():
            two = pooled.set_index("effect").loc[row["effect"]]
            comparison.append(
                {
                    "effect": row["effect"],
                    "label": EFFECT_LABELS[row["effect"]],
                    "two_stage": two.to_dict(),
                    "one_stage": row.to_dict(),
                    "formula": to_lme4_formula(spec_from_config(one_stage_model(row["effect"]))),
                }
            )
    truth = tables.get("truth")
    summary = tables.get("multiverse_summary")
    total_patients = sum(int(s.get("patients", 0)) for s in summaries)
    return {
        "title": title,
        "pooling": pooling,
        "window": f"sessions {first}-{last}",
        "outcome_scale": OUTCOME_SCALES[pooling["outcome_scale"]],
        "studies": studies,
        "n_studies": len(studies),
        "n_patients": total_patients,
        "harmonisation": _records(tables["harmonisation"]),
        "pooled": _records(pooled),
        "study_estimates": _records(tables["study_estimates"]),
        "leave_one_out": _records(tables.get("leave_one_out")),
        "meta_regression": _records(tables.get("meta_regression")),
        "truth_pooled": _records(truth[truth["level"] == "pooled"]) if truth is not None and len(truth) else [],
        "truth_studies": _records(truth[truth["level"] == "study"]) if truth is not None and len(truth) else [],
        "comparison": comparison,
        "formulas": {e: effect_formula(EFFECT_SOURCE[e], last) for e in effects},
        "effect_labels": EFFECT_LABELS,
        "multiverse": multiverse,
        "curve": _records(tables.get("curve")),
        "multiverse_summary": {r["statistic"]: r for r in _records(summary)},
        "multiverse_choices": _records(tables.get("multiverse_choices")),
        "flagged": _flagged,
        "figures": figures,
        **provenance,
    }
