"""The tables of one model's directory, built from a fitted (or not fitted) model of the suite.

:func:`run_tables` turns a :class:`ModelRun` (the engine's result and the rows it used, or, for a
stratum that could not be fitted, its sample and the reason) into ``fixed``, ``variance``,
``contrasts`` (configured contrasts, Wald tests, moderation blocks and simple slopes), ``effects``
(effect sizes, alliance.models.effects), ``fit_statistics``, optionally ``random_effects`` and
``residuals``, and ``fit`` (the fit.json dict).  Flags are on every row: a table read alone still
says whether its fit converged, hit a boundary or was not fitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alliance.engines.checks import group_covariances
from alliance.engines.spec import FLAG_NAMES, FitResult, ModelSpec, to_lme4_formula
from alliance.models import effects as fx
from alliance.models.config import ModelConfigError
from alliance.models.moderation import expand_term, simple_slopes, wald_blocks
from alliance.models.singular import SingularFit, singular_fit_table, singular_record
from alliance.models.specs import model_columns, spec_dict

__all__ = ["EXTRA_FLAGS", "CONTRAST_COLUMNS", "EFFECT_COLUMNS", "ModelRun", "run_tables"]

#: flags the suite adds to the engine's (FLAG_NAMES) for models and strata that were not fitted: a stratum
#: too small or whose fit failed, a model the data cannot identify (alliance.engines.identifiability), a
#: model that needs a therapist level in a design without therapists (alliance.models.design)
EXTRA_FLAGS = ("too_few_patients", "too_few_therapists", "fit_failed", "not_identified", "no_therapist_level")


@dataclass
class ModelRun:
    """A fitted model of the suite: the engine result and the rows it used."""

    model: dict[str, Any]  # the config entry, with the canonical labels under "_levels"
    spec: ModelSpec
    result: FitResult | None  # None: a model or stratum that was not fitted (see error)
    used: pd.DataFrame  # the fitted rows (not fitted: the complete cases)
    record: dict[str, Any]  # the sample: data level, filter, counts (fit.json's "sample")
    flags: list[str]
    error: str = ""  # why it was not fitted
    singular: SingularFit | None = None  # the singular-fit policy's fits (alliance.models.singular)


def _flag_text(flags: list[str]) -> str:
    """The ``flags`` column: the flags joined by ``;``, or ``none``."""
    return ";".join(flags) if flags else "none"


def _scale_of(column: str, context: dict[str, Any]) -> str:
    """The scale a column is on (the ``outcome_scale`` column), from the model context."""
    if column.startswith("symptoms"):
        return context.get("outcome_scale_short", "")
    if column.startswith("alliance"):
        return context.get("alliance_scale_short", "")
    return ""


def _uses_symptoms(spec: ModelSpec) -> bool:
    return any(c.startswith("symptoms") for c in model_columns(spec))


def _fixed_table(run: ModelRun, context: dict[str, Any]) -> pd.DataFrame:
    """fixed_effects.csv: the engine's coefficients (NaN when not fitted) with engine, method, N and scale."""
    res, rec = run.result, run.record
    if res is not None:
        fixed = res.fixed.copy()
    else:
        terms = ["Intercept"] + [t for t in run.spec.fixed]
        fixed = pd.DataFrame({"term": terms})
        # every column any engine writes (df: mixedlm and lme4), so that a table read alone has them all
        for col in (
            "estimate",
            "se",
            "se_statsmodels",
            "df",
            "statistic",
            "p",
            "ci_low",
            "ci_high",
            "estimate_statsmodels",
        ):
            fixed[col] = np.nan
    fixed.insert(0, "model", run.spec.name)
    fixed["engine"] = res.fit["engine"] if res is not None else ""
    fixed["method"] = ("REML" if run.spec.reml else "ML") if res is not None else ""
    fixed["n_obs"] = rec["n_obs"]
    fixed["n_patients"] = rec["n_patients"]
    fixed["n_therapists"] = rec["n_therapists"]
    fixed["outcome_scale"] = _scale_of(run.spec.outcome, context)
    # which fit the row's inference comes from, and the df method of its test (alliance.models.singular)
    info = res.fit if res is not None else {}
    fixed["fit"] = ("simplified" if info.get("simplified") else "as specified") if res is not None else ""
    methods = info.get("term_df_method") or {}
    fixed["df_method"] = [methods.get(t, info.get("df_method", "")) for t in fixed["term"]]
    fixed["flags"] = _flag_text(run.flags)
    return fixed


def _variance_table(run: ModelRun) -> pd.DataFrame:
    """variance_components.csv (no rows when not fitted)."""
    if run.result is not None:
        variance = run.result.variance_components.copy()
    else:
        variance = pd.DataFrame(columns=["group", "term", "variance", "sd", "correlation"])
    variance.insert(0, "model", run.spec.name)
    variance["flags"] = _flag_text(run.flags)
    return variance


def _random_effects_table(run: ModelRun) -> pd.DataFrame:
    """random_effects.csv: the BLUPs with their conditional SDs (no rows when not fitted)."""
    if run.result is None:
        return pd.DataFrame(columns=["model", "group", "level", "term", "value", "sd", "flags"])
    re_ = run.result.random_effects
    out = pd.DataFrame(
        {
            "model": run.spec.name,
            "group": re_["group"],
            "level": re_["level"].astype(str),
            "term": re_["term"],
            "value": re_["value"],
            "sd": re_["cond_sd"],
        }
    )
    out["flags"] = _flag_text(run.flags)
    return out


def _residuals_table(run: ModelRun) -> pd.DataFrame:
    """residuals.parquet: conditional and marginal fitted values and residuals of the fitted rows, by id
    (no rows when not fitted)."""
    if run.result is None:
        columns = ["patient", "therapist", "session", "fitted", "residual", "fitted_marginal"]
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
        return empty.astype({"patient": "object", "therapist": "object", "session": "Int64"})
    f = run.result.fitted
    rows = run.used.loc[f["row"].to_numpy()]
    if "session" in rows:
        session = rows["session"].astype("Int64").to_numpy()
    else:
        session = pd.array([pd.NA] * len(rows), dtype="Int64")
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
    "model",
    "kind",
    "name",
    "label",
    "moderator",
    "level",
    "term",
    "estimate",
    "se",
    "statistic",
    "df",
    "df_denominator",
    "p",
    "ci_low",
    "ci_high",
    "df_method",
    "detail",
    "n_obs",
    "n_patients",
    "n_therapists",
    "flags",
]


#: the columns of a simple slope (alliance.models.moderation.simple_slopes) that the contrasts table keeps
SLOPE_COLUMNS = ("estimate", "se", "statistic", "df", "p", "ci_low", "ci_high", "df_method")


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
            rows.append(
                {
                    "kind": "contrast",
                    "name": c["name"],
                    "label": c.get("label", c["name"]),
                    **est,
                    "detail": " ".join(f"{v:+g} x {k}" for k, v in c["weights"].items()),
                }
            )
        for t in model.get("tests", []):
            coefs = [n for term in t["terms"] for n in expand_term(term, names, cats)]
            if not coefs:
                raise ModelConfigError(f"models.{model['name']}.tests.{t['name']}: no coefficients match {t['terms']}")
            w = res.wald_test(coefs)
            rows.append(
                {"kind": "wald", "name": t["name"], "label": t.get("label", t["name"]), **w, "detail": "; ".join(coefs)}
            )
        mod = model.get("moderation")
        if mod:
            for r in wald_blocks(res, mod, cats).to_dict(orient="records"):
                rows.append(
                    {
                        "kind": "wald",
                        "name": f"interaction: {r['block']}",
                        "label": f"Omnibus Wald test, {r['block']}",
                        "moderator": r["moderator"],
                        "term": r["term"],
                        **{k: r[k] for k in ("statistic", "df", "df_denominator", "p", "df_method")},
                        "detail": r["coefficients"],
                    }
                )
            levels = {m: run.model.get("_levels", {}).get(m, []) for m in mod["by"]}
            for r in simple_slopes(res, run.used, mod, cats, levels).to_dict(orient="records"):
                rows.append(
                    {
                        "kind": "simple_slope",
                        "name": f"{r['term']} | {r['moderator']} = {r['level']}",
                        "label": f"Slope of {r['term']} in {r['moderator']} {r['level']}",
                        "moderator": r["moderator"],
                        "level": r["level"],
                        "term": r["term"],
                        **{k: r[k] for k in SLOPE_COLUMNS},
                        "detail": r["weights"],
                        "n_obs": r["n_obs"],
                        "n_patients": r["n_patients"],
                        "n_therapists": r["n_therapists"],
                    }
                )
    out = pd.DataFrame(rows, columns=CONTRAST_COLUMNS)
    out["model"] = run.spec.name
    out["flags"] = _flag_text(run.flags)
    return out


EFFECT_COLUMNS = [
    "model",
    "statistic",
    "term",
    "role",
    "group",
    "estimate",
    "se",
    "value",
    "ci_low",
    "ci_high",
    "df",
    "n_obs",
    "n_patients",
    "n_therapists",
    "method",
    "flags",
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
            at_reference = (
                "; a moderated term: its coefficient is the slope at the reference levels ("
                + ", ".join(f"{c} = {lv}" for c, lv in run.spec.categorical if c in moderated[term])
                + ")"
            )
        rows.append(
            {
                **base,
                "statistic": "r_from_t",
                "estimate": est,
                "se": se,
                "value": r["r"],
                "ci_low": r["r_ci_low"],
                "ci_high": r["r_ci_high"],
                "df": df,
                "method": f"{r['method']}; df = {fx.ROLES[role]}{at_reference}",
            }
        )
        d = fx.d_from_r(r["r"]).iloc[0]
        rows.append(
            {
                **base,
                "statistic": "d_from_r",
                "estimate": est,
                "se": se,
                "value": d["d"],
                "ci_low": fx.d_from_r(r["r_ci_low"])["d"].iloc[0],
                "ci_high": fx.d_from_r(r["r_ci_high"])["d"].iloc[0],
                "df": df,
                "method": "d = 2r / sqrt(1 - r^2) of the r-equivalent",
            }
        )
        if role == "within_patient" and "patient" in used:
            b = fx.standardised_beta_within(used, term, y, est, "patient").iloc[0]
            desc = fx.rm_corr(used, term, y, "patient").iloc[0]
        else:
            unit = "therapist" if role == "between_therapist" else "patient"
            if unit not in used:
                continue
            b = fx.standardised_beta_between(used, term, y, est, unit).iloc[0]
            desc = fx.person_mean_r(used, term, y, unit).iloc[0]
        rows.append(
            {**base, "statistic": "beta_std", "estimate": est, "se": se, "value": b["beta_std"], "method": b["method"]}
        )
        rows.append(
            {
                **base,
                "statistic": desc["statistic"],
                "value": desc["r"],
                "ci_low": desc["ci_low"],
                "ci_high": desc["ci_high"],
                "df": desc["df"],
                "method": desc["method"],
            }
        )
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
        rows.append(
            {"statistic": stat, "value": r2[stat], "method": f"{r2['method']}; random parts {r2['random_parts']}"}
        )
    for r in fx.icc(vc).to_dict(orient="records"):
        rows.append(
            {
                "statistic": "icc",
                "group": r["group"],
                "value": r["icc"],
                "method": fx.ICC_DEFINITIONS["icc"],
            }
        )
        if r["icc_cumulative"] != r["icc"]:
            rows.append(
                {
                    "statistic": "icc_cumulative",
                    "group": r["group"],
                    "value": r["icc_cumulative"],
                    "method": fx.ICC_DEFINITIONS["icc_cumulative"],
                }
            )
    if any(len(terms) > 1 for terms, _ in group_covariances(vc).values()):  # random slopes: the definitions differ
        rows.append(
            {
                "statistic": "icc_adjusted",
                "group": "all groups",
                "value": fx.icc_adjusted(r2),
                "method": fx.ICC_DEFINITIONS["icc_adjusted"],
            }
        )
    for r in fx.mean_reliability(vc, used).to_dict(orient="records"):
        rows.append(
            {
                "statistic": "reliability_of_means",
                "group": r["level"],
                "value": r["mean"],
                "ci_low": r["min"],
                "ci_high": r["max"],
                "n_obs": r["n_units"],
                "method": "mean lambda over units (ci_low/ci_high: min/max), lambda = tau^2 / (tau^2 + error / n)",
            }
        )
    return rows


def _effects_table(run: ModelRun) -> pd.DataFrame:
    """effects.csv: the focal predictors' effect sizes, then the model-level ones."""
    out = pd.DataFrame(_focal_effects(run) + _model_effects(run), columns=EFFECT_COLUMNS)
    out["model"] = run.spec.name
    out["flags"] = _flag_text(run.flags)
    return out


def _fit_statistics(run: ModelRun, label: str) -> pd.DataFrame:
    """fit_statistics.csv: one row of sample, formula, optimiser, likelihood, R^2 and one column per flag."""
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
        "as_specified_flags": _flag_text(run.singular.as_specified.flags) if run.singular else "",
        "flags": _flag_text(run.flags),
    }
    return pd.DataFrame([row])


def _fit_json(run: ModelRun, label: str, context: dict[str, Any], tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """fit.json: the engine's record (or the spec and why it was not fitted), the sample, the outcome
    scale, the config entry, the contrasts and effects tables and the model's ``known_bias`` note."""
    if run.result is not None:
        summary = run.result.to_dict()
    else:
        summary = {
            "spec": spec_dict(run.spec),
            "fixed": [],
            "vcov": {"terms": [], "matrix": []},
            "variance_components": [],
            "fit": {"model": run.spec.name, "not_fitted": run.error},
        }
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
    if run.model.get("known_bias"):  # a lagged specification's measured bias, for the report to print
        summary["known_bias"] = run.model["known_bias"]
    if run.model.get("_design_note"):  # fitted without its therapist level (alliance.models.design)
        summary["design_note"] = run.model["_design_note"]
    if run.singular is not None:  # both fits of a singular model (alliance.models.singular)
        summary["singular_fit"] = singular_record(run.singular)
        # the model as specified, as for an engine's own simplification (the fitted one: formula_lme4_fitted)
        summary["spec"] = spec_dict(run.spec)
    return summary


def run_tables(run: ModelRun, context: dict[str, Any], full: bool) -> dict[str, Any]:
    """Every table of the model's directory; ``full`` adds ``random_effects`` and ``residuals``
    (a fitted model; a stratum has neither)."""
    label = run.model.get("label", run.spec.name)
    tables: dict[str, Any] = {
        "fixed": _fixed_table(run, context),
        "variance": _variance_table(run),
        "contrasts": _contrasts_table(run),
        "effects": _effects_table(run),
        "fit_statistics": _fit_statistics(run, label),
        "singular_fit": singular_fit_table(run.spec.name, run.singular),
    }
    if full:
        tables["random_effects"] = _random_effects_table(run)
        tables["residuals"] = _residuals_table(run)
    tables["fit"] = _fit_json(run, label, context, tables)
    return tables
