"""The model suite as data: config entries -> engine specs -> tidy result tables.

A model of the suite is a config entry (config/README.md, section ``models``): its outcome,
fixed terms, categorical columns with reference levels, random-effects terms, the data level
(``sessions`` or ``patients``), a sample ``filter``, grand-mean ``centre``-ing, the ``roles`` of
its focal predictors (for effect sizes), linear ``contrasts``, Wald ``tests``, a ``moderation``
block and ``strata``.  Nothing in it is evaluated: names are checked here and again by the
engine against the data, and formulas are written by the engine from those names.

Entry points (the step scripts call these, the tests too):

* :func:`check_models` -- cross-reference checks when the workflow loads;
* :func:`load_model_tables` -- the tables a model job reads: only the columns the model uses
  (:func:`analysis_columns`), or the patients table alone for a patient-level model;
* :func:`fit_model` -- one model on the analysis tables -> every table of its directory;
* :func:`fit_stratum` -- the same model within one therapy x condition stratum;
* :func:`summarise_effects` -- the forest-plot table and the meta-analysis table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alliance.models import effects as fx
from alliance.engines.dispatch import fit
from alliance.engines.spec import FLAG_NAMES, FitResult, ModelSpec, RandomTerm, to_lme4_formula
from alliance.models.config import (  # re-exported: the suite's config side
    STRATUM_ALL,
    ModelConfigError,
    check_models,
    model_context,
    strata,
    stratum_model,
)
from alliance.models.data import (  # analysis_columns, load_model_tables: re-exported, what a model job reads
    ModelDataError,
    analysis_columns,
    load_model_tables,
    model_frame,
    sample_counts,
    spec_columns,
)
from alliance.models.moderation import expand_term, moderated_fixed, simple_slopes, wald_blocks

__all__ = [
    "ModelConfigError",
    "STRATUM_ALL",
    "EXTRA_FLAGS",
    "check_models",
    "spec_from_config",
    "model_context",
    "stratum_model",
    "strata",
    "fit_model",
    "fit_stratum",
    "summarise_effects",
    "fit_configured_model",
    "model_columns",
    "analysis_columns",
    "load_model_tables",
    "complete_cases",
    "tidy_tables",
]

#: flags the suite adds to the engine's (FLAG_NAMES) for strata that could not be fitted
EXTRA_FLAGS = ("too_few_patients", "too_few_therapists", "fit_failed")
ALLIANCE_EFFECTS_COLUMNS = [
    "level", "label", "term", "estimate", "se", "r", "r_ci_low", "r_ci_high", "n_patients", "n_therapists", "flags",
]


# --------------------------------------------------------------------------------------------
# Config -> spec
# --------------------------------------------------------------------------------------------


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


def model_columns(spec: ModelSpec) -> list[str]:
    """Every data column a spec uses (outcome, fixed terms, groups, slopes)."""
    return spec_columns(_spec_dict(spec))


def complete_cases(spec: ModelSpec, data: pd.DataFrame) -> pd.DataFrame:
    """Rows with every model variable present (listwise deletion, as lme4 does), all columns kept."""
    absent = [c for c in model_columns(spec) if c not in data.columns]
    if absent:
        raise ModelDataError(
            f"model '{spec.name}' uses column(s) {', '.join(absent)} that the data do not have; "
            "see results/<dataset>/clean/data_dictionary.csv and config/README.md (models) for the columns"
        )
    return data.loc[data[model_columns(spec)].notna().all(axis=1)]


def _scale_of(column: str, context: dict[str, Any]) -> str:
    if column.startswith("symptoms"):
        return context.get("outcome_scale_short", "")
    if column.startswith("alliance"):
        return context.get("alliance_scale_short", "")
    return ""


def _uses_symptoms(spec: ModelSpec) -> bool:
    return any(c.startswith("symptoms") for c in model_columns(spec))


# --------------------------------------------------------------------------------------------
# Fitting one model
# --------------------------------------------------------------------------------------------


@dataclass
class ModelRun:
    """A fitted model of the suite: the engine result and the rows it used."""

    model: dict[str, Any]
    spec: ModelSpec
    result: FitResult | None
    used: pd.DataFrame
    record: dict[str, Any]
    flags: list[str]
    error: str = ""


def _fit_kwargs(model: dict[str, Any], engine: str | None, cross_check: str | None = None) -> dict[str, Any]:
    """Keyword arguments of the engine call: only what is set (the engine's defaults otherwise)."""
    kwargs: dict[str, Any] = {}
    if engine is not None:
        kwargs["engine"] = engine
    if cross_check:
        kwargs["cross_check"] = cross_check
    if model.get("optimizers"):
        kwargs["optimizers"] = tuple(tuple(str(m) for m in seq) for seq in model["optimizers"])
    return kwargs


def _run(
    model: dict[str, Any],
    analysis: pd.DataFrame | None,
    patients: pd.DataFrame | None,
    engine: str | None,
    extra_filter: dict[str, str] | None = None,
    minimum: dict[str, int] | None = None,
    cross_check: str | None = None,
) -> ModelRun:
    spec = spec_from_config(model)
    frame, record = model_frame(model, analysis, patients, extra_filter)
    used = complete_cases(spec, frame)
    counts = sample_counts(used)
    record.update(counts)
    flags: list[str] = []
    if minimum:
        if counts["n_patients"] < minimum.get("min_patients", 0):
            flags.append("too_few_patients")
        uses_therapist = "therapist" in model_columns(spec)
        if uses_therapist and counts["n_therapists"] < minimum.get("min_therapists", 0):
            flags.append("too_few_therapists")
        if flags:
            record["not_fitted"] = (
                f"{counts['n_patients']} patients and {counts['n_therapists']} therapists with complete data; "
                f"minimum {minimum.get('min_patients', 0)} patients and {minimum.get('min_therapists', 0)} therapists"
            )
            return ModelRun(model, spec, None, used, record, flags, record["not_fitted"])
    if minimum is None:
        result = fit(spec, frame, **_fit_kwargs(model, engine, cross_check))
    else:  # a stratum: report a failure, do not stop the workflow
        try:
            result = fit(spec, frame, **_fit_kwargs(model, engine, cross_check))
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as error:
            record["not_fitted"] = f"{type(error).__name__}: {error}"
            return ModelRun(model, spec, None, used, record, ["fit_failed"], record["not_fitted"])
    used = frame.loc[result.fitted["row"].to_numpy()]
    record.update(sample_counts(used))
    flags = list(result.flags)
    return ModelRun(model, spec, result, used, record, flags)


def _flag_text(flags: list[str]) -> str:
    return ";".join(flags) if flags else "none"


def _fixed_table(run: ModelRun, context: dict[str, Any]) -> pd.DataFrame:
    res, rec = run.result, run.record
    if res is not None:
        fixed = res.fixed.copy()
    else:
        terms = ["Intercept"] + [t for t in run.spec.fixed]
        fixed = pd.DataFrame({"term": terms})
        for col in ("estimate", "se", "se_statsmodels", "statistic", "p", "ci_low", "ci_high", "estimate_statsmodels"):
            fixed[col] = np.nan
    fixed.insert(0, "model", run.spec.name)
    fixed["engine"] = res.fit["engine"] if res is not None else ""
    fixed["method"] = ("REML" if run.spec.reml else "ML") if res is not None else ""
    fixed["n_obs"] = rec["n_obs"]
    fixed["n_patients"] = rec["n_patients"]
    fixed["n_therapists"] = rec["n_therapists"]
    fixed["outcome_scale"] = _scale_of(run.spec.outcome, context)
    fixed["flags"] = _flag_text(run.flags)
    return fixed


def _variance_table(run: ModelRun) -> pd.DataFrame:
    if run.result is not None:
        variance = run.result.variance_components.copy()
    else:
        variance = pd.DataFrame(columns=["group", "term", "variance", "sd", "correlation"])
    variance.insert(0, "model", run.spec.name)
    variance["flags"] = _flag_text(run.flags)
    return variance


def _random_effects_table(run: ModelRun) -> pd.DataFrame:
    re_ = run.result.random_effects
    out = pd.DataFrame(
        {"model": run.spec.name, "group": re_["group"], "level": re_["level"].astype(str), "term": re_["term"],
         "value": re_["value"], "sd": re_["cond_sd"]}
    )
    out["flags"] = _flag_text(run.flags)
    return out


def _residuals_table(run: ModelRun) -> pd.DataFrame:
    f = run.result.fitted
    rows = run.used.loc[f["row"].to_numpy()]
    session = rows["session"].astype("Int64").to_numpy() if "session" in rows else pd.array([pd.NA] * len(rows), dtype="Int64")
    return pd.DataFrame(
        {
            "patient": rows["patient"].astype(str).to_numpy() if "patient" in rows else None,
            "therapist": rows["therapist"].astype(str).to_numpy() if "therapist" in rows else None,
            "session": session,
            "fitted": f["fitted_conditional"].to_numpy(),
            "residual": f["resid"].to_numpy(),
            "fitted_marginal": f["fitted_marginal"].to_numpy(),
        }
    )


CONTRAST_COLUMNS = [
    "model", "kind", "name", "label", "moderator", "level", "term", "estimate", "se", "statistic", "df", "p",
    "ci_low", "ci_high", "detail", "n_obs", "n_patients", "n_therapists", "flags",
]


def _contrasts_table(run: ModelRun) -> pd.DataFrame:
    """Configured contrasts, Wald tests, and (moderated models) interaction blocks and simple slopes."""
    res, model = run.result, run.model
    rows: list[dict[str, Any]] = []
    if res is not None:
        cats = dict(run.spec.categorical)
        names = list(res.fixed["term"])
        for c in model.get("contrasts", []):
            missing = [t for t in c["weights"] if t not in names]
            if missing:
                raise ModelConfigError(
                    f"models.{model['name']}.contrasts.{c['name']}: no coefficient(s) {missing}; coefficients: {names}"
                )
            est = res.contrast({k: float(v) for k, v in c["weights"].items()})
            rows.append({"kind": "contrast", "name": c["name"], "label": c.get("label", c["name"]), **est,
                         "detail": " ".join(f"{v:+g} x {k}" for k, v in c["weights"].items())})
        for t in model.get("tests", []):
            coefs = [n for term in t["terms"] for n in expand_term(term, names, cats)]
            if not coefs:
                raise ModelConfigError(f"models.{model['name']}.tests.{t['name']}: no coefficients match {t['terms']}")
            w = res.wald_test(coefs)
            rows.append({"kind": "wald", "name": t["name"], "label": t.get("label", t["name"]), **w,
                         "detail": "; ".join(coefs)})
        mod = model.get("moderation")
        if mod:
            for r in wald_blocks(res, mod, cats).to_dict(orient="records"):
                rows.append({"kind": "wald", "name": f"interaction: {r['block']}", "label": f"Omnibus Wald test, {r['block']}",
                             "moderator": r["moderator"], "term": r["term"], "statistic": r["statistic"], "df": r["df"],
                             "p": r["p"], "detail": r["coefficients"]})
            levels = {m: run.model.get("_levels", {}).get(m, []) for m in mod["by"]}
            for r in simple_slopes(res, run.used, mod, cats, levels).to_dict(orient="records"):
                rows.append({"kind": "simple_slope", "name": f"{r['term']} | {r['moderator']} = {r['level']}",
                             "label": f"Slope of {r['term']} in {r['moderator']} {r['level']}",
                             "moderator": r["moderator"], "level": r["level"], "term": r["term"],
                             **{k: r[k] for k in ("estimate", "se", "statistic", "p", "ci_low", "ci_high")},
                             "detail": r["weights"], "n_obs": r["n_obs"], "n_patients": r["n_patients"],
                             "n_therapists": r["n_therapists"]})
    out = pd.DataFrame(rows, columns=CONTRAST_COLUMNS)
    out["model"] = run.spec.name
    out["flags"] = _flag_text(run.flags)
    return out


EFFECT_COLUMNS = [
    "model", "statistic", "term", "role", "group", "estimate", "se", "value", "ci_low", "ci_high", "df",
    "n_obs", "n_patients", "n_therapists", "method", "flags",
]


def _focal_effects(run: ModelRun) -> list[dict[str, Any]]:
    """Per focal predictor (``roles``): r-equivalent, d, standardised beta, descriptive r."""
    res, used, rec = run.result, run.used, run.record
    y = run.spec.outcome
    rows: list[dict[str, Any]] = []
    counts = {k: rec[k] for k in ("n_obs", "n_patients", "n_therapists")}
    mod = run.model.get("moderation") or {}
    moderated = {t: list(mod["by"]) for t in mod.get("terms", [])}
    for term, role in (run.model.get("roles") or {}).items():
        df = fx.role_df(role, **counts)
        base = {"term": term, "role": role, **counts}
        if res is None:
            rows.append({**base, "statistic": "r_from_t", "df": df if df > 0 else math.nan, "method": run.error})
            continue
        row = res.fixed.set_index("term").loc[term]
        est, se = float(row["estimate"]), float(row["se"])
        r = fx.r_from_t(est, se, df).iloc[0]
        at_reference = ""
        if term in moderated:
            at_reference = "; a moderated term: its coefficient is the slope at the reference levels (" + ", ".join(
                f"{c} = {lv}" for c, lv in run.spec.categorical if c in moderated[term]) + ")"
        rows.append({**base, "statistic": "r_from_t", "estimate": est, "se": se, "value": r["r"],
                     "ci_low": r["r_ci_low"], "ci_high": r["r_ci_high"], "df": df,
                     "method": f"{r['method']}; df = {fx.ROLES[role]}{at_reference}"})
        d = fx.d_from_r(r["r"]).iloc[0]
        rows.append({**base, "statistic": "d_from_r", "estimate": est, "se": se, "value": d["d"],
                     "ci_low": fx.d_from_r(r["r_ci_low"])["d"].iloc[0], "ci_high": fx.d_from_r(r["r_ci_high"])["d"].iloc[0],
                     "df": df, "method": "d = 2r / sqrt(1 - r^2) of the r-equivalent"})
        if role == "within_patient" and "patient" in used:
            b = fx.standardised_beta_within(used, term, y, est, "patient").iloc[0]
            desc = fx.rm_corr(used, term, y, "patient").iloc[0]
        else:
            unit = "therapist" if role == "between_therapist" else "patient"
            if unit not in used:
                continue
            b = fx.standardised_beta_between(used, term, y, est, unit).iloc[0]
            desc = fx.person_mean_r(used, term, y, unit).iloc[0]
        rows.append({**base, "statistic": "beta_std", "estimate": est, "se": se, "value": b["beta_std"],
                     "method": b["method"]})
        rows.append({**base, "statistic": desc["statistic"], "value": desc["r"], "ci_low": desc["ci_low"],
                     "ci_high": desc["ci_high"], "df": desc["df"], "method": desc["method"]})
    return rows


def _model_effects(run: ModelRun) -> list[dict[str, Any]]:
    """Model-level effect sizes: R^2 (marginal, conditional), ICCs, reliability of unit means."""
    res, used = run.result, run.used
    if res is None:
        return []
    rows: list[dict[str, Any]] = []
    vc = res.variance_components
    r2 = fx.r2_nakagawa(res.fitted["fitted_marginal"].to_numpy(), vc, used).iloc[0]
    for stat in ("r2_marginal", "r2_conditional"):
        rows.append({"statistic": stat, "value": r2[stat], "method": f"{r2['method']}; random parts {r2['random_parts']}"})
    for r in fx.icc(vc).to_dict(orient="records"):
        rows.append({"statistic": "icc", "group": r["group"], "value": r["icc"],
                     "method": "intercept variance / (intercept variances + residual)"})
        if r["icc_cumulative"] != r["icc"]:
            rows.append({"statistic": "icc_cumulative", "group": r["group"], "value": r["icc_cumulative"],
                         "method": "this level and the levels above it: correlation of two rows of one unit"})
    for r in fx.mean_reliability(vc, used).to_dict(orient="records"):
        rows.append({"statistic": "reliability_of_means", "group": r["level"], "value": r["mean"], "ci_low": r["min"],
                     "ci_high": r["max"], "n_obs": r["n_units"],
                     "method": "mean lambda over units (ci_low/ci_high: min/max), lambda = tau^2 / (tau^2 + error / n)"})
    return rows


def _effects_table(run: ModelRun) -> pd.DataFrame:
    out = pd.DataFrame(_focal_effects(run) + _model_effects(run), columns=EFFECT_COLUMNS)
    out["model"] = run.spec.name
    out["flags"] = _flag_text(run.flags)
    return out


def _fit_statistics(run: ModelRun, label: str) -> pd.DataFrame:
    res, rec = run.result, run.record
    info = res.fit if res is not None else {}
    effects = _model_effects(run)
    r2 = {e["statistic"]: e["value"] for e in effects if e["statistic"].startswith("r2_")}
    row = {
        "model": run.spec.name,
        "label": label,
        "data": rec["data"],
        "filter": rec["filter"],
        "stratum": "",
        "stratum_filter": rec.get("stratum_filter", "none"),
        "formula_lme4": to_lme4_formula(run.spec),
        "formula_lme4_fitted": info.get("formula_lme4_fitted", ""),
        "method": info.get("method", ""),
        "engine": info.get("engine", ""),
        "optimizer": info.get("optimizer", ""),
        "loglik": info.get("loglik", math.nan),
        "aic": info.get("aic", math.nan),
        "bic": info.get("bic", math.nan),
        "n_params": info.get("n_params", math.nan),
        "n_obs": rec["n_obs"],
        "n_patients": rec["n_patients"],
        "n_therapists": rec["n_therapists"],
        "n_dropped_missing": info.get("n_dropped_missing", math.nan),
        "residual_variance": info.get("residual_variance", math.nan),
        "r2_marginal": r2.get("r2_marginal", math.nan),
        "r2_conditional": r2.get("r2_conditional", math.nan),
        **{f: f in run.flags for f in FLAG_NAMES + EXTRA_FLAGS},
        "simplification": info.get("simplification", ""),
        "df_method": info.get("df_method", ""),
        "flags": _flag_text(run.flags),
    }
    return pd.DataFrame([row])


def _fit_json(run: ModelRun, label: str, context: dict[str, Any], tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    if run.result is not None:
        summary = run.result.to_dict()
    else:
        summary = {"spec": _spec_dict(run.spec), "fixed": [], "vcov": {"terms": [], "matrix": []},
                   "variance_components": [], "fit": {"model": run.spec.name, "not_fitted": run.error}}
    summary["label"] = label
    summary["lme4_formula"] = to_lme4_formula(run.spec)
    summary["flags"] = list(run.flags)
    summary["sample"] = run.record
    notes = []
    if _uses_symptoms(run.spec):
        notes.append(context.get("outcome_scale_note", ""))
    summary["outcome_scale"] = {
        "outcome": run.spec.outcome,
        "scale": _scale_of(run.spec.outcome, context),
        "note": "; ".join(n for n in notes if n),
    }
    summary["config"] = {k: v for k, v in run.model.items() if not k.startswith("_")}
    summary["contrasts"] = tables["contrasts"].drop(columns=["model", "flags"]).to_dict(orient="records")
    summary["effects"] = tables["effects"].drop(columns=["model", "flags"]).to_dict(orient="records")
    return summary


def _spec_dict(spec: ModelSpec) -> dict[str, Any]:
    return {
        "name": spec.name, "outcome": spec.outcome, "fixed": list(spec.fixed),
        "random": [{"group": r.group, "slopes": list(r.slopes), "correlated": r.correlated, "nested_in": r.nested_in}
                   for r in spec.random],
        "categorical": [list(c) for c in spec.categorical], "reml": spec.reml,
    }


def _tables(run: ModelRun, context: dict[str, Any], full: bool) -> dict[str, Any]:
    label = run.model.get("label", run.spec.name)
    tables: dict[str, Any] = {
        "fixed": _fixed_table(run, context),
        "variance": _variance_table(run),
        "contrasts": _contrasts_table(run),
        "effects": _effects_table(run),
        "fit_statistics": _fit_statistics(run, label),
    }
    if full:
        tables["random_effects"] = _random_effects_table(run)
        tables["residuals"] = _residuals_table(run)
    tables["fit"] = _fit_json(run, label, context, tables)
    return tables


def _with_levels(model: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    out = dict(model)
    out["_levels"] = context.get("labels", {})
    return out


def fit_model(
    model: dict[str, Any],
    analysis: pd.DataFrame | None,
    patients: pd.DataFrame | None = None,
    context: dict[str, Any] | None = None,
    *,
    engine: str | None = None,
    cross_check: str | None = None,
) -> dict[str, Any]:
    """Fit one configured model and return every table of its directory.

    Keys: ``fixed``, ``variance``, ``random_effects`` (group, level, term, value, sd),
    ``residuals`` (patient, therapist, session, fitted, residual), ``contrasts`` (contrasts, Wald
    tests, simple slopes), ``effects`` (effect sizes), ``fit_statistics`` (one row) and ``fit``
    (the fit.json dict).  Flags are on every row.  ``engine`` and ``cross_check`` (a second
    engine that refits the model) are passed to the engine only when given.

    ``analysis`` need hold only the model's :func:`analysis_columns` (None for a patient-level
    model) and ``patients`` is used only by a patient-level model (None otherwise):
    :func:`load_model_tables` reads exactly that.
    """
    context = context or {}
    run = _run(_with_levels(model, context), analysis, patients, engine, cross_check=cross_check)
    return _tables(run, context, full=True)


def fit_stratum(
    model: dict[str, Any],
    stratum: str,
    analysis: pd.DataFrame | None,
    patients: pd.DataFrame | None = None,
    context: dict[str, Any] | None = None,
    *,
    engine: str | None = None,
    cross_check: str | None = None,
) -> dict[str, Any]:
    """Fit the model (without moderation) within one stratum (:func:`strata`; ``all`` = every
    patient).  A stratum below ``strata.min_patients`` / ``strata.min_therapists`` or whose fit
    fails is returned with NaN estimates and the flag ``too_few_patients``, ``too_few_therapists``
    or ``fit_failed``: it is reported, not raised."""
    context = context or {}
    labels = context.get("labels") or {}
    all_strata = strata(model, labels)
    if stratum not in all_strata:
        raise ModelConfigError(f"models.{model['name']}: unknown stratum {stratum!r}; strata: {', '.join(all_strata)}")
    base = stratum_model(model)
    settings = model["strata"]
    minimum = {"min_patients": int(settings.get("min_patients", 20)), "min_therapists": int(settings.get("min_therapists", 5))}
    run = _run(_with_levels(base, context), analysis, patients, engine, all_strata[stratum] or None, minimum, cross_check)
    run.record["stratum"] = stratum
    run.record["stratum_labels"] = all_strata[stratum]
    tables = _tables(run, context, full=False)
    for key in ("fixed", "variance", "contrasts", "effects"):
        tables[key].insert(1, "stratum", stratum)
    tables["fit_statistics"]["stratum"] = stratum
    return tables


def fit_configured_model(model: dict[str, Any], data: pd.DataFrame, *, engine: str | None = None) -> dict[str, Any]:
    """Fit one session-level config model on ``data`` (the analysis table); see :func:`fit_model`."""
    return fit_model(model, data, None, {}, engine=engine)


def tidy_tables(result: FitResult, label: str = "") -> dict[str, Any]:
    """Fixed effects and variance components of a bare FitResult with its flags on every row."""
    flags = _flag_text(list(result.flags))
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


# --------------------------------------------------------------------------------------------
# Summary of effects across models: forest plot and meta-analysis tables
# --------------------------------------------------------------------------------------------


def _design_of(model: dict[str, Any]) -> str:
    outcome = model["outcome"]
    if outcome.endswith("_next"):
        return "lagged: predictor at session t, outcome at session t+1"
    if model.get("data") == "patients":
        return "patient level: end-of-treatment outcome"
    return "same session"


ALLIANCE_ASSESSMENT = {
    "alliance_s3": "session 3",
    "alliance_s1_4": "mean of sessions 1-4",
    "alliance_cwt": "mean of all rated sessions (patient within therapist)",
    "alliance_tm_c": "therapist mean of patient means",
    "alliance_pm_c": "mean of all rated sessions",
    "alliance_s3_cwt": "session 3 (patient within therapist)",
    "alliance_s3_tm_c": "session 3 (therapist mean)",
}


def _assessment(term: str) -> str:
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
    df = fx.role_df(role, n_obs, n_patients, n_therapists)
    if not (math.isfinite(estimate) and math.isfinite(se)):
        return {"df": df, "r": math.nan, "r_ci_low": math.nan, "r_ci_high": math.nan}
    r = fx.r_from_t(estimate, se, df).iloc[0]
    return {"df": df, "r": r["r"], "r_ci_low": r["r_ci_low"], "r_ci_high": r["r_ci_high"]}


def summarise_effects(
    models: list[dict[str, Any]],
    model_tables: dict[str, dict[str, pd.DataFrame]],
    stratum_tables: dict[str, dict[str, dict[str, pd.DataFrame]]],
    context: dict[str, Any],
) -> dict[str, pd.DataFrame]:
    """The forest-plot table (``alliance_effects``) and the meta-analysis table (``effect_sizes``).

    ``model_tables[name]`` holds the ``effects`` and ``contrasts`` tables of each fitted model,
    ``stratum_tables[name][stratum]`` the ``effects`` table of each stratum fit.

    alliance_effects: one row per moderated focal term and level -- ``overall`` (the stratum
    ``all``: the model without moderators on every patient), ``therapy`` and ``condition`` (simple
    slopes of the moderated model), ``stratum`` (the model within each therapy x condition
    stratum).  r is the signed r-equivalent (:func:`alliance.models.effects.r_from_t`, df by role).

    effect_sizes: every focal term of every model (r-equivalent, and the descriptive
    within-patient r and between-patient r), plus the rows of alliance_effects, with N, the
    number of therapists, the alliance measure, rater and timing and the outcome measure.
    """
    forest: list[dict[str, Any]] = []
    meta: list[dict[str, Any]] = []
    labels = context.get("labels", {})
    common = {
        "alliance_measure": context.get("alliance_measure", ""),
        "rater": context.get("alliance_rater", ""),
        "timing": context.get("alliance_timing", ""),
        "outcome_measure": context.get("outcome_measure", ""),
        "outcome_rater": context.get("outcome_rater", ""),
        "outcome_timing": context.get("outcome_timing", ""),
        "outcome_scale": context.get("outcome_scale", ""),
    }

    def meta_row(model, level, subgroup, term, role, estimate, se, r, method, counts, flags, ci=None):
        df = r.get("df", math.nan)
        rr = r.get("r", math.nan)
        n_eff = df + 2 if math.isfinite(df) else math.nan
        ok = math.isfinite(rr) and abs(rr) < 1 and n_eff > 3
        return {
            "model": model["name"], "model_label": model.get("label", model["name"]), "level": level,
            "subgroup": subgroup, "term": term, "role": role,
            "predictor": term, "outcome": model["outcome"], "design": _design_of(model),
            "alliance_assessment": _assessment(term) if term.startswith("alliance") else "",
            "estimate": estimate, "se_estimate": se, "r": rr,
            "r_ci_low": r.get("r_ci_low", math.nan), "r_ci_high": r.get("r_ci_high", math.nan),
            "se": (1 - rr * rr) / math.sqrt(n_eff - 1) if ok else math.nan,
            "fisher_z": math.atanh(rr) if ok else math.nan,
            "se_fisher_z": 1 / math.sqrt(n_eff - 3) if ok else math.nan,
            "d": fx.d_from_r(rr)["d"].iloc[0] if math.isfinite(rr) else math.nan,
            "df": df, "n": n_eff, "r_method": method,
            "n_obs": counts["n_obs"], "n_patients": counts["n_patients"], "n_therapists": counts["n_therapists"],
            **common, "flags": flags,
        }

    for model in models:
        name = model["name"]
        if name not in model_tables:
            continue
        eff = model_tables[name]["effects"]
        roles = model.get("roles") or {}
        moderated = set((model.get("moderation") or {}).get("terms", []))
        for term, role in roles.items():
            if term in moderated:  # its coefficient is a reference-level slope; the overall row is the stratum 'all'
                continue
            sub = eff[eff["term"] == term]
            for stat, method in (("r_from_t", "r-equivalent of the model coefficient, r = t / sqrt(t^2 + df)"),
                                 ("r_within", "repeated-measures correlation (descriptive, unadjusted)"),
                                 ("r_between", "correlation of unit means (descriptive, unadjusted)")):
                hit = sub[sub["statistic"] == stat]
                if hit.empty:
                    continue
                h = hit.iloc[0]
                counts = {k: int(h[k]) if pd.notna(h[k]) else 0 for k in ("n_obs", "n_patients", "n_therapists")}
                r = {"r": float(h["value"]), "r_ci_low": float(h["ci_low"]), "r_ci_high": float(h["ci_high"]),
                     "df": float(h["df"])}
                meta.append(meta_row(model, "overall", "all patients", term, role, float(h["estimate"]) if stat == "r_from_t" else math.nan,
                                     float(h["se"]) if stat == "r_from_t" else math.nan, r, method, counts, h["flags"]))

        mod = model.get("moderation")
        if not (mod or model.get("strata")):
            continue
        prefix = "" if sum(1 for m in models if m.get("moderation") or m.get("strata")) == 1 else f"{model.get('label', name)}: "
        focal = [t for t in (mod or {}).get("terms", list(roles)) if t in roles]
        st = stratum_tables.get(name, {})
        all_strata = strata(model, labels) if model.get("strata") else {}
        for slug, combo in all_strata.items():
            if slug not in st:
                continue
            eff_s = st[slug]["effects"]
            level = "overall" if slug == STRATUM_ALL else "stratum"
            label = "All patients" if slug == STRATUM_ALL else " × ".join(combo.values())
            for term in focal:
                hit = eff_s[(eff_s["term"] == term) & (eff_s["statistic"] == "r_from_t")]
                if hit.empty:
                    continue
                h = hit.iloc[0]
                counts = {k: int(h[k]) if pd.notna(h[k]) else 0 for k in ("n_obs", "n_patients", "n_therapists")}
                r = _r_row(float(h["estimate"]), float(h["se"]), roles[term], **counts)
                forest.append({"level": level, "label": prefix + label, "term": term, "estimate": h["estimate"],
                               "se": h["se"], "r": r["r"], "r_ci_low": r["r_ci_low"], "r_ci_high": r["r_ci_high"],
                               "n_patients": counts["n_patients"], "n_therapists": counts["n_therapists"],
                               "flags": h["flags"]})
                meta.append(meta_row(model, level, label.lower() if level == "overall" else label, term, roles[term],
                                     float(h["estimate"]), float(h["se"]), r,
                                     "r-equivalent of the coefficient of the model without moderators"
                                     + (" within the stratum" if level == "stratum" else ", every patient"),
                                     counts, h["flags"]))
        if mod:
            con = model_tables[name]["contrasts"]
            slopes = con[con["kind"] == "simple_slope"]
            for s in slopes.to_dict(orient="records"):
                if s["term"] not in roles:
                    continue
                counts = {k: int(s[k]) for k in ("n_obs", "n_patients", "n_therapists")}
                r = _r_row(float(s["estimate"]), float(s["se"]), roles[s["term"]], **counts)
                forest.append({"level": s["moderator"], "label": prefix + str(s["level"]), "term": s["term"],
                               "estimate": s["estimate"], "se": s["se"], "r": r["r"], "r_ci_low": r["r_ci_low"],
                               "r_ci_high": r["r_ci_high"], "n_patients": counts["n_patients"],
                               "n_therapists": counts["n_therapists"], "flags": s["flags"]})
                meta.append(meta_row(model, s["moderator"], str(s["level"]), s["term"], roles[s["term"]],
                                     float(s["estimate"]), float(s["se"]), r,
                                     "r-equivalent of the simple slope of the moderated model", counts, s["flags"]))
    alliance_effects = pd.DataFrame(forest, columns=ALLIANCE_EFFECTS_COLUMNS)
    level_order = {"overall": 0, "therapy": 1, "condition": 2, "stratum": 3}
    alliance_effects = alliance_effects.assign(_o=alliance_effects["level"].map(level_order).fillna(9)).sort_values(
        ["term", "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)
    effect_sizes = pd.DataFrame(meta)
    return {"alliance_effects": alliance_effects, "effect_sizes": effect_sizes}
