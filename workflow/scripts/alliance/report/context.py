"""Everything the report template needs, assembled from the run's own files.

One source for every number: the model stage's statistics (contrasts such as the contextual
effect, ICCs, R², the reliability of a model's group means) are quoted from what it wrote
(fit.json's ``contrasts`` and ``effects``, the same rows as ``contrasts.csv`` and
``effects.csv``), the patients' reliability from the intake summary, and the report's own
tables (``table1``, ``model_comparison``, ``reviewer_checklist``) are written as CSV by the
workflow and read back.  Numbers quoted in the text are wrapped in
``<span class="num" data-source="...">`` naming the table, row and column they come from
(parts separated by '¦', e.g. ``fixed¦same_session¦session_c¦estimate``); the tests check
every one of them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from alliance.intake.derive import person_mean_reliability, variance_split_anova
from alliance.models.design import skipped_models
from alliance.report.equations import coefficient_label, model_equations
from alliance.report.html import embed_png, git_commit, package_versions
from alliance.report.lagged import lagged_section
from alliance.report.main_context import main_report_context
from alliance.report.reviewer_tables import reviewer_tables
from alliance.report.tables import instrument_rows, reviewer_checklist
from alliance.report.terms import term_labels
from alliance.report.wording import (
    FLAG_MEANINGS,
    benchmark_text,
    caption,
    figure_alt_texts,
    fixed_tests_text,
    inference_summary,
    is_missing,
    published_benchmarks,
    records,
    satterthwaite,
)

#: the contrast that is the contextual effect: β(between) − β(within) (config ``models[].contrasts``)
CONTEXTUAL_WEIGHTS = {"alliance_between_patient": 1.0, "alliance_within_patient": -1.0}


# --------------------------------------------------------------------------- quoted from the model and intake stages


def contextual_contrast(fit: dict[str, Any]) -> dict[str, Any] | None:
    """The model stage's contextual effect of a model (β between − β within, its Wald CI): the
    row of fit.json's ``contrasts`` named 'contextual', else the one whose configured weights
    are +1 between and −1 within.  None when the model has no such contrast (the report then
    says how to configure one; it does not compute it itself)."""
    contrasts = [c for c in (fit.get("contrasts") or []) if c.get("kind", "contrast") == "contrast"]
    configured = {c.get("name"): c.get("weights") or {} for c in ((fit.get("config") or {}).get("contrasts") or [])}
    named = next((c for c in contrasts if c.get("name") == "contextual"), None)
    if named is not None:
        return dict(named)
    for c in contrasts:
        weights = configured.get(c.get("name"), {})
        if {k: float(v) for k, v in weights.items()} == CONTEXTUAL_WEIGHTS:
            return dict(c)
    return None


def model_statistic(fit: dict[str, Any], statistic: str) -> dict[str, float]:
    """One statistic the model stage wrote per group (fit.json ``effects``, e.g. 'icc'): group -> value."""
    return {
        e["group"]: e["value"] for e in (fit.get("effects") or []) if e.get("statistic") == statistic and e.get("group")
    }


def therapist_mean_reliability(analysis: pd.DataFrame) -> dict[str, float] | None:
    """Reliability of the therapists' mean alliance, the therapist means being means of their
    patients' mean alliance (each patient weight 1): λ_t = τ²/(τ² + σ²/m_t) (methods.md §4), with
    τ² and σ² the intake stage's one-way ANOVA estimates (``alliance.intake.derive``) over the
    patient means.  Returns mean, min and max λ, τ², σ² and the number of therapists; None when
    τ² cannot be estimated.  (No stage writes this quantity: the model stage's
    ``reliability_of_means`` is of each model's own outcome, from its variance components.)

    Example
    -------
    >>> sessions = pd.DataFrame({"patient": list("aabbccdd"), "therapist": list("xxxxyyyy"),
    ...                          "alliance": [3.0, 3.2, 3.1, 3.3, 4.0, 4.2, 4.1, 4.3]})
    >>> round(therapist_mean_reliability(sessions)["mean"], 3)
    0.995
    """
    if not {"alliance", "patient", "therapist"} <= set(analysis.columns):
        return None
    pm = analysis.groupby(analysis["patient"].astype(str)).agg(
        alliance=("alliance", "mean"), therapist=("therapist", "first")
    )
    means = pd.DataFrame(
        {
            "therapist": pm["therapist"].astype(str).to_numpy(),
            "alliance": pd.to_numeric(pm["alliance"], errors="coerce").to_numpy(dtype=float),
        }
    )
    tau2, sigma2 = variance_split_anova(means, "alliance", patient="therapist")
    if pd.isna(tau2):
        return None
    n_patients = means.dropna().groupby("therapist")["alliance"].size()
    lam = person_mean_reliability(n_patients, tau2, sigma2) if tau2 > 0 else pd.Series(0.0, index=n_patients.index)
    return {
        "mean": float(lam.mean()),
        "min": float(lam.min()),
        "max": float(lam.max()),
        "tau2": float(tau2),
        "sigma2": float(sigma2),
        "groups": len(n_patients),
    }


def alliance_reliability(summary: dict[str, Any], analysis: pd.DataFrame) -> dict[str, Any]:
    """The reliability of patient means of alliance (the intake summary's
    ``person_mean_reliability``: one number for one quantity) and of therapist means."""
    from_summary = summary.get("person_mean_reliability") or {}
    return {
        "patient": {**from_summary, "source": "summary"} if "mean" in from_summary else None,
        "therapist": therapist_mean_reliability(analysis),
    }


# --------------------------------------------------------------------------- benchmark and effects


def benchmark_position(
    r: float | None, ci_low: float | None, ci_high: float | None, benchmark: dict[str, Any]
) -> tuple[str, bool | None]:
    """Where an r (with symptom improvement) lies relative to the benchmark's CI (config
    ``report.benchmark``: 'inside', 'above', 'below'), and whether its own CI overlaps the
    benchmark's (None if unknown).

    Example
    -------
    >>> benchmark_position(0.31, 0.28, 0.34, {"ci_low": 0.256, "ci_high": 0.299})
    ('above', True)
    """
    if r is None or is_missing(r):
        return "", None
    low, high = benchmark["ci_low"], benchmark["ci_high"]
    where = "inside" if low <= r <= high else ("above" if r > high else "below")
    if ci_low is None or ci_high is None or is_missing(ci_low) or is_missing(ci_high):
        return where, None
    return where, bool(ci_low <= high and ci_high >= low)


def effects_rows(effects: pd.DataFrame | None, benchmark: dict[str, Any]) -> list[dict[str, Any]]:
    """The forest plot's rows (effects/alliance_effects.csv) with r turned into r with symptom
    improvement (−r, the CI's ends swapped) and placed against the benchmark."""
    rows = []
    for r in records(effects) if effects is not None and len(effects) else []:
        r["r_improvement"] = None if r.get("r") is None else -float(r["r"])
        r["ci_low_improvement"] = None if r.get("r_ci_high") is None else -float(r["r_ci_high"])
        r["ci_high_improvement"] = None if r.get("r_ci_low") is None else -float(r["r_ci_low"])
        r["position"], r["overlap"] = benchmark_position(
            r["r_improvement"], r["ci_low_improvement"], r["ci_high_improvement"], benchmark
        )
        rows.append(r)
    return rows


def suite_effects(effect_sizes: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The r-equivalents of every alliance coefficient of the suite (effects/effect_sizes.csv,
    level overall, model-based r), sign flipped to r with symptom improvement where the outcome
    is a symptom score."""
    if effect_sizes is None or not len(effect_sizes):
        return []
    frame = effect_sizes[(effect_sizes["level"] == "overall") & effect_sizes["estimate"].notna()]
    rows = []
    for r in records(frame):
        flip = str(r.get("outcome", "")).startswith("symptoms")
        r["flip"] = flip
        sign = -1.0 if flip else 1.0
        r["r_shown"] = None if r.get("r") is None else sign * float(r["r"])
        lo, hi = r.get("r_ci_low"), r.get("r_ci_high")
        r["ci_shown"] = (
            (None, None) if lo is None or hi is None else tuple(sorted((sign * float(lo), sign * float(hi))))
        )
        rows.append(r)
    return rows


# --------------------------------------------------------------------------- models


def order_suite(
    fits: list[dict[str, Any]],
    fixed: list[pd.DataFrame],
    variance: list[pd.DataFrame],
    comparison: pd.DataFrame,
    model_order: list[str] | None,
) -> tuple[list, list, list, pd.DataFrame]:
    """The fits, their tables and the comparison table in the analyst's order of the suite
    (config ``models``), not the file order; unchanged without ``model_order``."""
    if not model_order:
        return fits, fixed, variance, comparison
    rank = {n: k for k, n in enumerate(model_order)}
    order = sorted(range(len(fits)), key=lambda k: rank.get(fits[k].get("spec", {}).get("name"), len(rank)))
    comparison = (
        comparison.assign(_rank=comparison["model"].map(rank).fillna(len(rank)))
        .sort_values("_rank", kind="stable")
        .drop(columns="_rank")
    )
    return [fits[k] for k in order], [fixed[k] for k in order], [variance[k] for k in order], comparison


def model_context(
    fit: dict[str, Any],
    fixed: pd.DataFrame,
    variance: pd.DataFrame,
    *,
    meaning: dict[str, str],
    analysis: pd.DataFrame,
    patients: pd.DataFrame | None,
    figures: dict[str, Any],
) -> dict[str, Any]:
    """What the report shows of one model: its spec and fit, equations, centring, tables, and
    the statistics the model stage wrote for it (ICCs, R², contrasts, the contextual effect)."""
    spec, info = fit.get("spec", {}), fit.get("fit", {})
    name = spec.get("name", "?")
    config_m = fit.get("config") or {}
    terms = list(spec.get("fixed", []))
    data_kind = (fit.get("sample") or {}).get("data") or config_m.get("data", "sessions")
    derived = (fit.get("sample") or {}).get("derived") or {}
    model_effects = [dict(e) for e in (fit.get("effects") or [])]
    fixed_rows = records(fixed)
    for r in fixed_rows:
        r["beta"] = coefficient_label(str(r["term"]), terms)
    contextual = contextual_contrast(fit)
    return {
        "data": data_kind,
        "roles": config_m.get("roles") or {},
        "categorical": config_m.get("categorical") or dict(spec.get("categorical") or []),
        "sample": fit.get("sample") or {},
        "effects": model_effects,
        "contrasts": [dict(c) for c in (fit.get("contrasts") or [])],
        "r2": {  # a value below 1e-12 (an intercept-only model's marginal R², 7.76e-31) is 0
            e["statistic"]: (0.0 if abs(e["value"] or 0.0) < 1e-12 else e["value"])
            for e in model_effects
            if e.get("statistic") in ("r2_marginal", "r2_conditional")
        },
        "name": name,
        "label": fit.get("label") or name,
        "spec": spec,
        "fit": info,
        "flags": fit.get("flags") or [],
        "known_bias": fit.get("known_bias") or config_m.get("known_bias"),
        "design_note": fit.get("design_note", ""),  # fitted without its therapist level (alliance.models.design)
        # a singular fit: both fits and the df of terms measured at a dropped level (alliance.models.singular)
        # every key the templates read, also for a fit the policy left alone or never saw
        "singular": {
            "simplified": False,
            "policy": None,
            "note": None,
            "steps": [],
            "as_specified": None,
            **(fit.get("singular_fit") or {}),
        },
        "level_df": {
            str(r["term"]): str(r["df_method"])
            for r in fixed_rows
            if str(r.get("df_method") or "").startswith("between ")
        },
        "lme4_formula": fit.get("lme4_formula", ""),
        "lme4_fitted": info.get("formula_lme4_fitted") or fit.get("lme4_formula", ""),
        "statsmodels_call": info.get("statsmodels_call"),
        "test_statistic": "t" if satterthwaite(info) else "z",
        "has_df": satterthwaite(info) and "df" in fixed.columns,
        "fixed_tests": fixed_tests_text(info),
        "equations": model_equations(
            spec,
            patients if data_kind == "patients" and patients is not None else analysis,
            info.get("n_groups"),
            roles=config_m.get("roles"),
            unit="patient" if data_kind == "patients" else "session",
            fitted_formula=info.get("formula_lme4_fitted") or "",
        ),
        "centring": [
            {
                "term": t,
                "meaning": meaning.get(t) or derived.get(t, ""),
                "role": (config_m.get("roles") or {}).get(t, ""),
            }
            for t in dict.fromkeys([spec.get("outcome", "")] + [p for t in terms for p in t.split(":")])
        ],
        "fixed": fixed_rows,
        "variance": records(variance),
        "shares": model_statistic(fit, "icc"),
        "shares_source": "model stage (effects: icc)",
        # random slopes: the adjusted ICC, as R's performance::icc (effects: icc_adjusted)
        "icc_adjusted": model_statistic(fit, "icc_adjusted").get("all groups"),
        "contextual": contextual,
        "contextual_source": f"contrast¦{name}¦{contextual['name']}" if contextual else "",
        "contextual_not_configured": contextual is None and set(CONTEXTUAL_WEIGHTS) <= set(terms),
        "diagnostics": f"diagnostics_{name}" in figures,
    }


def primary_model_name(names: list[str], fixed: list[pd.DataFrame], primary_model: str | None) -> str | None:
    """The main model: the configured one, else the first with a within-patient alliance term,
    else the first model."""
    if primary_model in names:
        return primary_model
    return next(
        (n for n, t in zip(names, fixed) if "alliance_within_patient" in set(t["term"])), names[0] if names else None
    )


# --------------------------------------------------------------------------- the whole context


#: a finding about a group of rows (no row number) names its group in ``value``; the cleaning table
#: lists the groups of a reason up to this many, so that a small-cell warning keeps what it describes
MAX_GROUPS_LISTED = 12


def findings_by_reason_rows(findings: pd.DataFrame) -> list[dict[str, Any]]:
    """The cleaning findings counted by reason and action, with the groups a group-level finding
    (no row number, its value 'column=level, ...', e.g. a small cell of site × age band × sex) describes.

    >>> f = pd.DataFrame({"row": ["", "", "7"], "value": ["site=S1", "site=S2", "P0042"],
    ...                   "reason": ["small group", "small group", "bad"], "action": ["warn", "warn", "drop"]})
    >>> [(r["reason"], r["count"], r["groups"]) for r in findings_by_reason_rows(f)]
    [('bad', 1, ''), ('small group', 2, 'site=S1; site=S2')]
    """
    if not len(findings):
        return []
    rows = []
    for (reason, action), part in findings.groupby(["reason", "action"], sort=True):
        row_numbers = part["row"].astype(str).str.strip() if "row" in part else pd.Series("", index=part.index)
        values = part["value"].astype(str) if "value" in part else pd.Series("", index=part.index)
        # only a group's description ('site=S1, age_band=66+'), never a single value that could identify
        groups = list(dict.fromkeys(values[(row_numbers == "") & values.str.contains("=", regex=False)]))
        shown = "; ".join(groups[:MAX_GROUPS_LISTED]) + (
            f"; … ({len(groups)} in all)" if len(groups) > MAX_GROUPS_LISTED else ""
        )
        rows.append({"reason": reason, "action": action, "count": len(part), "groups": shown})
    return rows


def _sample_context(
    summary: dict[str, Any], flow: pd.DataFrame, findings: pd.DataFrame, table1: pd.DataFrame
) -> dict[str, Any]:
    """The sample, cleaning and exclusion parts of the context."""
    findings_by_reason = findings_by_reason_rows(findings)
    return {
        "summary": summary,
        "flow": records(flow),
        "n_findings": len(findings),
        "findings_by_reason": findings_by_reason,
        "table1": records(table1),
        "sex_cols": [c for c in table1.columns if c.startswith("sex: ")],
        "age_cols": [c for c in table1.columns if c.startswith("age: ")],
        "reliable_change": summary.get("reliable_change") or {},
        "alliance_unit": "mean item-score points (1–5 for the WAI-SR)"
        if summary.get("alliance_score") == "mean"
        else "total-score points",
        "outcome_unit": {
            "pomp": "POMP points (percent of the maximum possible score, 0–100)",
            "baseline_z": "baseline SD units",
            "raw": "raw total-score points",
        }.get(summary.get("outcome_scale"), str(summary.get("outcome_scale"))),
    }


def _figures_context(figures: dict[str, str | Path], benchmark: dict[str, Any]) -> dict[str, Any]:
    """The embedded figures, their captions (as Snakemake's report shows them) and alt texts."""
    return {
        "figures": {name: embed_png(path) for name, path in figures.items()},
        "captions": {
            name: caption(
                name if not name.startswith("diagnostics_") else "diagnostics", params={"benchmark": benchmark}
            )
            for name in figures
        },
        "figure_alt": figure_alt_texts(benchmark),
    }


def _provenance_context(
    config: dict[str, Any], versions: dict[str, str] | None, commit: str | None, run_date: str | None, pdf_tool: str
) -> dict[str, Any]:
    """The configuration as run, package versions, the workflow's commit and the run date."""
    return {
        "config": config,
        "config_yaml": yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
        "versions": versions if versions is not None else package_versions(),
        "commit": commit if commit is not None else git_commit(),
        "run_date": run_date or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "pdf_tool": pdf_tool,
    }


def report_context(
    *,
    title: str,
    summary: dict[str, Any],
    flow: pd.DataFrame,
    findings: pd.DataFrame,
    fits: list[dict[str, Any]],
    fixed: list[pd.DataFrame],
    variance: list[pd.DataFrame],
    analysis: pd.DataFrame,
    table1: pd.DataFrame,
    comparison: pd.DataFrame,
    dictionary: pd.DataFrame,
    figures: dict[str, str | Path],
    config: dict[str, Any],
    registry: dict[str, Any],
    benchmark: dict[str, Any],
    effects: pd.DataFrame | None = None,
    effect_sizes: pd.DataFrame | None = None,
    patients: pd.DataFrame | None = None,
    model_order: list[str] | None = None,
    primary_model: str | None = None,
    run_date: str | None = None,
    versions: dict[str, str] | None = None,
    commit: str | None = None,
    pdf_tool: str = "",
    riclpm: list[dict[str, Any]] | None = None,
    configured_riclpm: list[str] | None = None,
    truth: dict[str, Any] | None = None,
    truth_path: str | None = None,
    measure_reliability: pd.DataFrame | None = None,
    reviewer_table_paths: list[str] | None = None,
) -> dict[str, Any]:
    """Everything the template needs, from the run's files (no rendering yet).  ``benchmark``
    is config ``report.benchmark`` (r, ci_low, ci_high, citation, source, data, setting);
    ``riclpm`` the RI-CLPMs' files (``alliance.report.lagged.read_riclpm`` of each),
    ``configured_riclpm`` the names of the RI-CLPMs of the config, ``truth`` the dataset's truth
    file (config ``dataset.truth``, read from ``truth_path``) or None; ``measure_reliability`` the
    intake's reliability table (clean/reliability.csv) or None."""
    fits, fixed, variance, comparison = order_suite(fits, fixed, variance, comparison, model_order)
    meaning = dict(zip(dictionary.get("column", pd.Series(dtype=str)), dictionary.get("meaning", pd.Series(dtype=str))))
    models = [
        model_context(f, fx, vc, meaning=meaning, analysis=analysis, patients=patients, figures=figures)
        for f, fx, vc in zip(fits, fixed, variance)
    ]
    primary_name = primary_model_name([m["name"] for m in models], fixed, primary_model)
    primary = next((m for m in models if m["name"] == primary_name), None)
    effects_ctx = effects_rows(effects, benchmark)
    reliability = alliance_reliability(summary, analysis)
    checklist = reviewer_checklist(
        fits=fits,
        summary=summary,
        config=config,
        figures=list(figures),
        effects=effects,
        reliability=reliability,
        benchmark=benchmark,
    )
    return {
        "title": title,
        **_sample_context(summary, flow, findings, table1),
        "comparison": records(comparison),
        "models": models,
        "primary": primary,
        "primary_fixed": {r["term"]: r for r in (primary["fixed"] if primary else [])},
        "flag_meanings": {k: v for k, v in FLAG_MEANINGS.items() if any(k in (m["flags"] or []) for m in models)},
        "inference": inference_summary(fits),
        "effects": effects_ctx,
        "suite_effects": suite_effects(effect_sizes),
        "overall_within": next(
            (r for r in effects_ctx if r["level"] == "overall" and r["term"] == "alliance_within_patient"), None
        ),
        "benchmark": benchmark,
        "benchmark_text": benchmark_text(benchmark),
        "benchmarks": published_benchmarks(benchmark),
        "therapist_models": [m for m in models if "therapist" in m["shares"]],
        # models (and RI-CLPMs) a design without therapists leaves unfitted, name -> why
        "skipped_models": skipped_models(config),
        "instruments": instrument_rows(config, registry, summary.get("measures"), measure_reliability),
        "reliability": reliability,
        "checklist": records(checklist),
        "checklist_frame": checklist,
        "lagged": lagged_section(
            fits, fixed, riclpm, configured_riclpm=configured_riclpm, truth=truth, truth_path=truth_path, config=config
        ),
        **_figures_context(figures, benchmark),
        **_provenance_context(config, versions, commit, run_date, pdf_tool),
        **main_report_context(  # the main report's parts (alliance.report.main_context)
            models=models, fits=fits, benchmark=benchmark, primary_name=primary_name, truth=truth, config=config
        ),
        # the model stage's tables of multiplicity, therapist influence and sensitivity, when the run has them
        "reviewer_tables": reviewer_tables(
            reviewer_table_paths or [], {m["name"]: m["label"] for m in models}, term_labels(config)
        ),
    }
