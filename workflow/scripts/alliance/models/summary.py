"""The alliance effects of the whole suite in two tables: the forest plot's and a meta-analysis's.

:func:`summarise_effects` reads the ``effects`` and ``contrasts`` tables of every fitted model
and the ``effects`` table of every stratum fit (:func:`read_effect_tables` reads them from a
results directory) and returns

* ``alliance_effects`` -- one row per moderated focal term and level: ``overall`` (the stratum
  ``all``), ``therapy`` and ``condition`` (simple slopes of the moderated model), ``stratum``;
* ``effect_sizes`` -- every focal term of every model as r with its SE, Fisher z, d and N, with
  the alliance measure, rater and timing and the outcome measure (methods.md section 6).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from alliance.models import effects as fx
from alliance.models.config import STRATUM_ALL, strata

__all__ = [
    "ALLIANCE_EFFECTS_COLUMNS",
    "EFFECT_SIZES_COLUMNS",
    "ALLIANCE_ASSESSMENT",
    "summarise_effects",
    "read_effect_tables",
]

ALLIANCE_EFFECTS_COLUMNS = [
    "level",
    "label",
    "term",
    "estimate",
    "se",
    "r",
    "r_ci_low",
    "r_ci_high",
    "n_patients",
    "n_therapists",
    "flags",
]

#: the columns of effect_sizes.csv, in order (:func:`_meta_row` makes each row; written with its header when a
#: suite has no focal predictors, ``roles``, at all)
EFFECT_SIZES_COLUMNS = [
    "model",
    "model_label",
    "level",
    "subgroup",
    "term",
    "role",
    "predictor",
    "outcome",
    "design",
    "alliance_assessment",
    "estimate",
    "se_estimate",
    "r",
    "r_ci_low",
    "r_ci_high",
    "se",
    "fisher_z",
    "se_fisher_z",
    "d",
    "df",
    "n",
    "r_method",
    "n_obs",
    "n_patients",
    "n_therapists",
    "alliance_measure",
    "rater",
    "timing",
    "outcome_measure",
    "outcome_rater",
    "outcome_timing",
    "outcome_scale",
    "flags",
]

#: when the alliance of a patient-level predictor was assessed (effect_sizes' alliance_assessment)
ALLIANCE_ASSESSMENT = {
    "alliance_s3": "session 3",
    "alliance_s1_4": "mean of sessions 1-4",
    "alliance_cwt": "mean of all rated sessions (patient within therapist)",
    "alliance_tm_c": "therapist mean of patient means",
    "alliance_pm_c": "mean of all rated sessions",
    "alliance_s3_cwt": "session 3 (patient within therapist)",
    "alliance_s3_tm_c": "session 3 (therapist mean)",
}

#: forest-plot order of the levels within a term
LEVEL_ORDER = {"overall": 0, "therapy": 1, "condition": 2, "stratum": 3}

COUNTS = ("n_obs", "n_patients", "n_therapists")

ModelTables = dict[str, dict[str, pd.DataFrame]]


def _design_of(model: dict[str, Any]) -> str:
    """How predictor and outcome are aligned in time (effect_sizes' ``design``)."""
    outcome = model["outcome"]
    if outcome.endswith("_next"):
        return "lagged: predictor at session t, outcome at session t+1"
    if model.get("data") == "patients":
        return "patient level: end-of-treatment outcome"
    return "same session"


def _assessment(term: str) -> str:
    """When the alliance of a predictor was assessed (``""`` for a term not derived from alliance)."""
    if term in ALLIANCE_ASSESSMENT:
        return ALLIANCE_ASSESSMENT[term]
    if term.endswith("within_patient"):
        return "every session (deviation from the patient's mean)"
    if term.endswith("between_patient") or term.endswith("patient_within_therapist"):
        return "mean of all rated sessions"
    if term.endswith("between_therapist"):
        return "therapist mean of patient means"
    return ""


def _r_row(estimate: float, se: float, role: str, n_obs: int, n_patients: int, n_therapists: int) -> dict[str, Any]:
    """The r-equivalent of a coefficient with its CI and the df of its role (NaN when not estimated)."""
    df = fx.role_df(role, n_obs, n_patients, n_therapists)
    if not (math.isfinite(estimate) and math.isfinite(se)):
        return {"df": df, "r": math.nan, "r_ci_low": math.nan, "r_ci_high": math.nan}
    r = fx.r_from_t(estimate, se, df).iloc[0]
    return {"df": df, "r": r["r"], "r_ci_low": r["r_ci_low"], "r_ci_high": r["r_ci_high"]}


def _counts(row: Any) -> dict[str, int]:
    """The sample counts of a table row (0 where missing: a stratum that was not fitted)."""
    return {k: int(row[k]) if pd.notna(row[k]) else 0 for k in COUNTS}


def _common(context: dict[str, Any]) -> dict[str, str]:
    """The columns every effect_sizes row shares: measures, raters, timings, outcome scale."""
    return {
        "alliance_measure": context.get("alliance_measure", ""),
        "rater": context.get("alliance_rater", ""),
        "timing": context.get("alliance_timing", ""),
        "outcome_measure": context.get("outcome_measure", ""),
        "outcome_rater": context.get("outcome_rater", ""),
        "outcome_timing": context.get("outcome_timing", ""),
        "outcome_scale": context.get("outcome_scale", ""),
    }


def _meta_row(
    model: dict[str, Any],
    level: str,
    subgroup: str,
    term: str,
    role: str,
    estimate: float,
    se: float,
    r: dict[str, Any],
    method: str,
    counts: dict[str, int],
    flags: str,
    common: dict[str, str],
) -> dict[str, Any]:
    """One effect_sizes row: r with its SE and Fisher z (n = df + 2), d, N and the measures."""
    df = r.get("df", math.nan)
    rr = r.get("r", math.nan)
    n_eff = df + 2 if math.isfinite(df) else math.nan
    ok = math.isfinite(rr) and abs(rr) < 1 and n_eff > 3
    return {
        "model": model["name"],
        "model_label": model.get("label", model["name"]),
        "level": level,
        "subgroup": subgroup,
        "term": term,
        "role": role,
        "predictor": term,
        "outcome": model["outcome"],
        "design": _design_of(model),
        "alliance_assessment": _assessment(term) if term.startswith("alliance") else "",
        "estimate": estimate,
        "se_estimate": se,
        "r": rr,
        "r_ci_low": r.get("r_ci_low", math.nan),
        "r_ci_high": r.get("r_ci_high", math.nan),
        "se": (1 - rr * rr) / math.sqrt(n_eff - 1) if ok else math.nan,
        "fisher_z": math.atanh(rr) if ok else math.nan,
        "se_fisher_z": 1 / math.sqrt(n_eff - 3) if ok else math.nan,
        "d": fx.d_from_r(rr)["d"].iloc[0] if math.isfinite(rr) else math.nan,
        "df": df,
        "n": n_eff,
        "r_method": method,
        "n_obs": counts["n_obs"],
        "n_patients": counts["n_patients"],
        "n_therapists": counts["n_therapists"],
        **common,
        "flags": flags,
    }


def _model_rows(model: dict[str, Any], effects: pd.DataFrame, common: dict[str, str]) -> list[dict[str, Any]]:
    """effect_sizes rows of a model's focal terms (r-equivalent, descriptive within and between r);
    a moderated term is left out: its coefficient is a reference-level slope, and its overall row
    is the stratum ``all``."""
    rows: list[dict[str, Any]] = []
    moderated = set((model.get("moderation") or {}).get("terms", []))
    for term, role in (model.get("roles") or {}).items():
        if term in moderated:
            continue
        sub = effects[effects["term"] == term]
        for stat, method in (
            ("r_from_t", "r-equivalent of the model coefficient, r = t / sqrt(t^2 + df)"),
            ("r_within", "repeated-measures correlation (descriptive, unadjusted)"),
            ("r_between", "correlation of unit means (descriptive, unadjusted)"),
        ):
            hit = sub[sub["statistic"] == stat]
            if hit.empty:
                continue
            h = hit.iloc[0]
            r = {
                "r": float(h["value"]),
                "r_ci_low": float(h["ci_low"]),
                "r_ci_high": float(h["ci_high"]),
                "df": float(h["df"]),
            }
            rows.append(
                _meta_row(
                    model,
                    "overall",
                    "all patients",
                    term,
                    role,
                    float(h["estimate"]) if stat == "r_from_t" else math.nan,
                    float(h["se"]) if stat == "r_from_t" else math.nan,
                    r,
                    method,
                    _counts(h),
                    h["flags"],
                    common,
                )
            )
    return rows


def _stratum_rows(
    model: dict[str, Any],
    focal: list[str],
    prefix: str,
    stratum_effects: dict[str, dict[str, pd.DataFrame]],
    labels: dict[str, list[str]],
    common: dict[str, str],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(forest rows, effect_sizes rows) of the stratum fits: ``all`` is the overall row, every other
    stratum a ``stratum`` row; strata without a table are skipped."""
    forest: list[dict[str, Any]] = []
    meta: list[dict[str, Any]] = []
    roles = model.get("roles") or {}
    all_strata = strata(model, labels) if model.get("strata") else {}
    for slug, combo in all_strata.items():
        if slug not in stratum_effects:
            continue
        eff_s = stratum_effects[slug]["effects"]
        level = "overall" if slug == STRATUM_ALL else "stratum"
        label = "All patients" if slug == STRATUM_ALL else " × ".join(combo.values())
        for term in focal:
            hit = eff_s[(eff_s["term"] == term) & (eff_s["statistic"] == "r_from_t")]
            if hit.empty:
                continue
            h = hit.iloc[0]
            counts = _counts(h)
            r = _r_row(float(h["estimate"]), float(h["se"]), roles[term], **counts)
            forest.append(
                {
                    "level": level,
                    "label": prefix + label,
                    "term": term,
                    "estimate": h["estimate"],
                    "se": h["se"],
                    "r": r["r"],
                    "r_ci_low": r["r_ci_low"],
                    "r_ci_high": r["r_ci_high"],
                    "n_patients": counts["n_patients"],
                    "n_therapists": counts["n_therapists"],
                    "flags": h["flags"],
                }
            )
            meta.append(
                _meta_row(
                    model,
                    level,
                    label.lower() if level == "overall" else label,
                    term,
                    roles[term],
                    float(h["estimate"]),
                    float(h["se"]),
                    r,
                    "r-equivalent of the coefficient of the model without moderators"
                    + (" within the stratum" if level == "stratum" else ", every patient"),
                    counts,
                    h["flags"],
                    common,
                )
            )
    return forest, meta


def _slope_rows(
    model: dict[str, Any], prefix: str, contrasts: pd.DataFrame, common: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(forest rows, effect_sizes rows) of the simple slopes of a moderated model, one per focal
    term and moderator level."""
    forest: list[dict[str, Any]] = []
    meta: list[dict[str, Any]] = []
    roles = model.get("roles") or {}
    for s in contrasts[contrasts["kind"] == "simple_slope"].to_dict(orient="records"):
        if s["term"] not in roles:
            continue
        counts = {k: int(s[k]) for k in COUNTS}
        r = _r_row(float(s["estimate"]), float(s["se"]), roles[s["term"]], **counts)
        forest.append(
            {
                "level": s["moderator"],
                "label": prefix + str(s["level"]),
                "term": s["term"],
                "estimate": s["estimate"],
                "se": s["se"],
                "r": r["r"],
                "r_ci_low": r["r_ci_low"],
                "r_ci_high": r["r_ci_high"],
                "n_patients": counts["n_patients"],
                "n_therapists": counts["n_therapists"],
                "flags": s["flags"],
            }
        )
        meta.append(
            _meta_row(
                model,
                s["moderator"],
                str(s["level"]),
                s["term"],
                roles[s["term"]],
                float(s["estimate"]),
                float(s["se"]),
                r,
                "r-equivalent of the simple slope of the moderated model",
                counts,
                s["flags"],
                common,
            )
        )
    return forest, meta


def summarise_effects(
    models: list[dict[str, Any]],
    model_tables: ModelTables,
    stratum_tables: dict[str, ModelTables],
    context: dict[str, Any],
) -> dict[str, pd.DataFrame]:
    """The forest-plot table (``alliance_effects``) and the meta-analysis table (``effect_sizes``).

    ``model_tables[name]`` holds the ``effects`` and ``contrasts`` tables of each fitted model,
    ``stratum_tables[name][stratum]`` the ``effects`` table of each stratum fit.

    alliance_effects: one row per moderated focal term and level -- ``overall`` (the stratum
    ``all``: the model without moderators on every patient), ``therapy`` and ``condition`` (simple
    slopes of the moderated model), ``stratum`` (the model within each therapy x condition
    stratum).  r is the signed r-equivalent (:func:`alliance.models.effects.r_from_t`, df by role).
    When several models are moderated or stratified, each label starts with the model's label.

    effect_sizes: every focal term of every model (r-equivalent, and the descriptive
    within-patient r and between-patient r), plus the rows of alliance_effects, with N, the
    number of therapists, the alliance measure, rater and timing and the outcome measure.
    """
    forest: list[dict[str, Any]] = []
    meta: list[dict[str, Any]] = []
    labels = context.get("labels", {})
    common = _common(context)
    n_split = sum(1 for m in models if m.get("moderation") or m.get("strata"))
    for model in models:
        name = model["name"]
        if name not in model_tables:
            continue
        meta += _model_rows(model, model_tables[name]["effects"], common)
        mod = model.get("moderation")
        if not (mod or model.get("strata")):
            continue
        prefix = "" if n_split == 1 else f"{model.get('label', name)}: "
        roles = model.get("roles") or {}
        focal = [t for t in (mod or {}).get("terms", list(roles)) if t in roles]
        rows = _stratum_rows(model, focal, prefix, stratum_tables.get(name, {}), labels, common)
        forest += rows[0]
        meta += rows[1]
        if mod:
            rows = _slope_rows(model, prefix, model_tables[name]["contrasts"], common)
            forest += rows[0]
            meta += rows[1]
    alliance_effects = pd.DataFrame(forest, columns=ALLIANCE_EFFECTS_COLUMNS)
    alliance_effects = (
        alliance_effects.assign(_o=alliance_effects["level"].map(LEVEL_ORDER).fillna(9))
        .sort_values(["term", "_o"], kind="stable")
        .drop(columns="_o")
        .reset_index(drop=True)
    )
    effect_sizes = pd.DataFrame(meta, columns=EFFECT_SIZES_COLUMNS)
    return {"alliance_effects": alliance_effects, "effect_sizes": effect_sizes}


def _read_table(path: str | Path) -> pd.DataFrame:
    """An effects or contrasts table as written, ``level`` and ``flags`` kept as text."""
    return pd.read_csv(path, dtype={"level": str, "flags": str})


def read_effect_tables(
    effects: Iterable[str | Path], contrasts: Iterable[str | Path], stratum_effects: Iterable[str | Path]
) -> tuple[ModelTables, dict[str, ModelTables]]:
    """The inputs of :func:`summarise_effects` from the files of a results directory.

    ``effects`` and ``contrasts`` are ``models/<model>/effects.csv`` and ``.../contrasts.csv``,
    ``stratum_effects`` are ``models/<model>/strata/<stratum>/effects.csv``: the model and the
    stratum are read from the paths.  Returns (model_tables, stratum_tables).
    """
    model_tables: ModelTables = {}
    for path in effects:
        model_tables.setdefault(Path(path).parent.name, {})["effects"] = _read_table(path)
    for path in contrasts:
        model_tables.setdefault(Path(path).parent.name, {})["contrasts"] = _read_table(path)
    stratum_tables: dict[str, ModelTables] = {}
    for path in stratum_effects:
        stratum_dir = Path(path).parent
        stratum_tables.setdefault(stratum_dir.parents[1].name, {})[stratum_dir.name] = {"effects": _read_table(path)}
    return model_tables, stratum_tables
