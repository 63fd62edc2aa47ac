"""The tables the report prints and the workflow writes as CSV (``table1``, ``model_comparison``,
``reviewer_checklist``) and the report's table of measures (``instrument_rows``).

They are built from the run's own files only; a number that the model stage wrote (an ICC, a
reliability, a contrast) is quoted from its table, never recomputed here.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from alliance.report.wording import (
    citation_text,
    contrast_tests_text,
    fmt,
    fmt_r,
    pct,
    satterthwaite,
    split_by_test,
)

ALLIANCE_PREFIX = "alliance"
STATUS = ("reported", "partly", "not in this run")


# --------------------------------------------------------------------------- table 1


def _distribution(values: pd.Series, categories: list[str]) -> dict[str, float]:
    """Percent of ``values`` in each category (NaN for an empty cell)."""
    counts = values.astype(str).value_counts()
    total = counts.sum()
    return {c: 100.0 * counts.get(c, 0) / total if total else math.nan for c in categories}


def _table1_row(
    frame: pd.DataFrame, therapy: str, condition: str, sexes: list[str], bands: list[str]
) -> dict[str, Any]:
    """One row of Table 1: the patients of ``frame`` (one therapy × condition cell, or more)."""
    baseline = pd.to_numeric(frame["symptoms_baseline"], errors="coerce")
    sessions = pd.to_numeric(frame["n_sessions"], errors="coerce")
    dropout = (
        frame["dropout"].astype("boolean")
        if "dropout" in frame
        else pd.Series(pd.NA, index=frame.index, dtype="boolean")
    )
    out = {
        "therapy": therapy,
        "condition": condition,
        "patients": int(frame["patient"].nunique()),
        "therapists": int(frame["therapist"].nunique()) if "therapist" in frame else 0,  # a design without therapists
        "sessions_mean": float(sessions.mean()),
        "sessions_sd": float(sessions.std()),
        "baseline_mean": float(baseline.mean()),
        "baseline_sd": float(baseline.std()),
        "dropout_pct": float(100.0 * dropout.mean()) if dropout.notna().any() else math.nan,
    }
    if "age" in frame and pd.api.types.is_numeric_dtype(frame["age"]):
        out.update({"age_mean": float(frame["age"].mean()), "age_sd": float(frame["age"].std())})
    if sexes:
        out.update({f"sex: {k} %": v for k, v in _distribution(frame["sex"].dropna(), sexes).items()})
    if bands:
        out.update({f"age: {k} %": v for k, v in _distribution(frame["age_band"].dropna(), bands).items()})
    return out


def table1(patients: pd.DataFrame) -> pd.DataFrame:
    """Table 1 of the sample, one row per therapy × condition, per therapy and overall.

    Columns: therapy, condition, patients, therapists, sessions_mean, sessions_sd,
    baseline_mean, baseline_sd (primary outcome at baseline, on the common scale),
    dropout_pct, age_mean and age_sd (when exact ages are given), then ``sex: <value> %``
    and ``age: <band> %`` for every value present.

    Example
    -------
    >>> pts = pd.DataFrame({"patient": ["a", "b"], "therapist": ["t", "t"], "therapy": ["CBT", "CBT"],
    ...                     "condition": ["depression", "anxiety"], "n_sessions": [10, 6],
    ...                     "symptoms_baseline": [60.0, 40.0], "dropout": [False, True]})
    >>> table1(pts)[["therapy", "condition", "patients", "dropout_pct"]].values.tolist()[-1]
    ['all', 'all', 2, 50.0]
    """
    pts = patients.copy()
    pts["therapy"] = pts["therapy"].astype(str)
    pts["condition"] = pts["condition"].astype(str)
    sexes = sorted(pts["sex"].dropna().astype(str).unique()) if "sex" in pts else []
    bands = sorted(pts["age_band"].dropna().astype(str).unique()) if "age_band" in pts else []
    rows = []
    for therapy, by_therapy in pts.groupby("therapy", sort=True):
        for condition, cell in by_therapy.groupby("condition", sort=True):
            rows.append(_table1_row(cell, therapy, condition, sexes, bands))
        rows.append(_table1_row(by_therapy, therapy, "all", sexes, bands))
    rows.append(_table1_row(pts, "all", "all", sexes, bands))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- model comparison


def _n_groups_text(fit: dict[str, Any]) -> str:
    """'patient 600; therapist 60' from fit.json's ``fit.n_groups``."""
    return "; ".join(f"{g} {n}" for g, n in (fit.get("fit", {}).get("n_groups") or {}).items())


def alliance_terms(fit: dict[str, Any], terms: list[str]) -> dict[str, str]:
    """The alliance coefficients of a model and their role: the terms the model's config gives a
    role (within_patient, between_patient, ...) whose name starts with 'alliance'; without roles,
    every 'alliance…' term except a lagged or controlled plain 'alliance'."""
    roles = (fit.get("config") or {}).get("roles")
    if roles:
        return {t: roles[t] for t in terms if t in roles and t.startswith(ALLIANCE_PREFIX)}
    return {t: "" for t in terms if t.startswith(ALLIANCE_PREFIX + "_")}


COMPARISON_COLUMNS = [
    "model",
    "label",
    "term",
    "role",
    "data",
    "note",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "p",
    "test",
    "df",
    "outcome",
    "lme4_formula",
    "method",
    "n_obs",
    "n_groups",
    "converged",
    "boundary",
    "flags",
]


def model_comparison(fits: list[dict[str, Any]], fixed: list[pd.DataFrame]) -> pd.DataFrame:
    """How the alliance coefficients move across the fitted models: one row per model and
    alliance term (see ``alliance_terms``), with the model's outcome, data and flags.  ``test`` is
    t (Satterthwaite df, in ``df``) or z (Wald, no df), as the model's ``fit.df_method``."""
    rows = []
    for f, table in zip(fits, fixed):
        info = f.get("fit", {})
        config = f.get("config") or {}
        moderated = set((config.get("moderation") or {}).get("terms") or [])
        reference = ", ".join(f"{c} = {lvl}" for c, lvl in (config.get("categorical") or {}).items())
        roles = alliance_terms(f, list(table["term"]))
        test = "t" if satterthwaite(info) else "z"
        for r in table.itertuples(index=False):
            if r.term not in roles:
                continue
            rows.append(
                {
                    "model": f.get("spec", {}).get("name", r.model),
                    "label": f.get("label", ""),
                    "term": r.term,
                    "role": roles[r.term],
                    "data": (f.get("sample") or {}).get("data") or config.get("data", "sessions"),
                    "note": f"slope at the reference levels ({reference})" if r.term in moderated and reference else "",
                    "estimate": r.estimate,
                    "se": r.se,
                    "ci_low": r.ci_low,
                    "ci_high": r.ci_high,
                    "p": r.p,
                    "test": test,
                    "df": getattr(r, "df", math.nan) if test == "t" else math.nan,
                    "outcome": f.get("spec", {}).get("outcome", ""),
                    "lme4_formula": f.get("lme4_formula", ""),
                    "method": info.get("method", ""),
                    "n_obs": info.get("n_obs"),
                    "n_groups": _n_groups_text(f),
                    "converged": info.get("converged"),
                    "boundary": info.get("boundary"),
                    "flags": ";".join(f.get("flags") or []) or "none",
                }
            )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


# --------------------------------------------------------------------------- instruments


def alpha_text(reliability: pd.DataFrame | None, measure: str, sample: str) -> str:
    """Cronbach's α of a measure in one sample of the intake's reliability table
    (results/<dataset>/clean/reliability.csv), as "0.81 (0.71–0.91), 192 rows"; "–" when absent.

    >>> table = pd.DataFrame([{"measure": "alliance", "sample": "all_sessions", "rows": 192,
    ...     "alpha": 0.8103, "alpha_ci_low": 0.714, "alpha_ci_high": 0.907}])
    >>> alpha_text(table, "alliance", "all_sessions")
    '0.81 (0.71–0.91), 192 rows'
    """
    if reliability is None or not len(reliability):
        return "–"
    row = reliability.loc[(reliability["measure"] == measure) & (reliability["sample"] == sample)]
    if row.empty or pd.isna(row["alpha"].iloc[0]):
        return "–"
    r = row.iloc[0]
    ci = f"{fmt(r['alpha_ci_low'], 2)}–{fmt(r['alpha_ci_high'], 2)}"
    return f"{fmt(r['alpha'], 2)} ({ci}), {fmt(int(r['rows']))} rows"


def instrument_rows(
    config: dict[str, Any],
    registry: dict[str, Any],
    supplied: dict[str, Any] | None = None,
    reliability: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """One row per configured measure: what it measures here, the instrument, its
    prorating rule (with the registry's note), the citation, whether the registry
    facts were checked against the primary source, and its reliability (Cronbach's α
    at the first session and over all sessions, read from the intake's ``reliability``
    table; the report computes no statistic of its own)."""
    dataset = config.get("dataset", {})
    analysis = config.get("analysis", {})
    outcome_of = {m: c for c, m in (analysis.get("outcome_by_condition") or {}).items()}
    rows = []
    for key, measure in (dataset.get("measures") or {}).items():
        inst = registry.get(measure.get("instrument"))
        role = (
            "alliance"
            if key == analysis.get("alliance_measure")
            else (f"primary outcome for {outcome_of[key]}" if key in outcome_of else "secondary measure")
        )
        row = {
            "measure": key,
            "role": role,
            "instrument": measure.get("instrument"),
            "rater": measure.get("rater", ""),
            "timing": measure.get("timing", ""),
            "supplied": ((supplied or {}).get(key) or {}).get("supplied")
            or ("total" if "total" in measure else "items"),
            "already_keyed": bool(measure.get("already_keyed")),
            "alpha_first_session": alpha_text(reliability, key, "first_session"),
            "alpha_all_sessions": alpha_text(reliability, key, "all_sessions"),
        }
        if inst is not None:
            row.update(
                {
                    "name": inst.name,
                    "items": f"{inst.n_items} × {fmt(inst.item_min, 0)}–{fmt(inst.item_max, 0)}"
                    if inst.uniform_items
                    else f"{inst.n_items} ({', '.join(f'{fmt(a, 0)}–{fmt(b, 0)}' for a, b in inst.item_ranges)})",
                    "reverse": ", ".join(str(i) for i in inst.reverse_items) or "none",
                    "higher_is": inst.higher_is,
                    "prorate_max_missing": inst.prorate_max_missing,
                    "prorate_note": " ".join(inst.prorate_note.split()),
                    "citation": citation_text(inst.citation),
                    "checked": inst.checked,
                    "unchecked_fields": ", ".join(inst.unchecked_fields),
                    "notes": " ".join((getattr(inst, "notes", "") or "").split()),
                }
            )
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- reviewer checklist
# Each _item_* function answers items of methods.md §8 from the run and returns
# (item, topic, status, answer) rows; reviewer_checklist puts them together.

Row = tuple[int, str, str, str]


def _spec_features(fits: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The models of the suite that have each feature a sensitivity analysis varies."""
    feats: dict[str, list[str]] = {
        k: [] for k in ("therapist_level", "no_therapist_level", "lagged", "detrended", "early_change", "ml")
    }
    for f in fits:
        spec = f.get("spec", {})
        name = spec.get("name", "?")
        groups = {t["group"] for t in spec.get("random", [])} | {
            t.get("nested_in") for t in spec.get("random", []) if t.get("nested_in")
        }
        terms = " ".join(spec.get("fixed", [])) + " " + spec.get("outcome", "")
        feats["therapist_level" if "therapist" in groups else "no_therapist_level"].append(name)
        if "_next" in terms or "_prev" in terms:
            feats["lagged"].append(name)
        if "_dt" in terms or "detrend" in terms:
            feats["detrended"].append(name)
        if "_s3" in terms or "early" in terms:
            feats["early_change"].append(name)
        if not spec.get("reml", True):
            feats["ml"].append(name)
    return feats


def _grouped(values: dict[str, Any]) -> str:
    """'REML: a, b; ML: c' from {model: value}."""
    by: dict[str, list[str]] = {}
    for n, v in values.items():
        by.setdefault(str(v), []).append(n)
    if len(by) == 1:
        return f"{next(iter(by))} (all {len(values)} models)"
    return "; ".join(f"{v}: {', '.join(ns)}" for v, ns in by.items())


def _model_statistics(fits: list[dict[str, Any]], statistic: str) -> dict[str, list[dict]]:
    """The model stage's rows of one statistic (fit.json ``effects``), per model that has any."""
    names = [f.get("spec", {}).get("name", "?") for f in fits]
    out = {n: [e for e in (f.get("effects") or []) if e.get("statistic") == statistic] for n, f in zip(names, fits)}
    return {n: es for n, es in out.items() if es}


def _items_specification(fits: list[dict[str, Any]], feats: dict[str, list[str]]) -> list[Row]:
    """Items 1-3: equations, random-effects structure, estimation and convergence."""
    names = [f.get("spec", {}).get("name", "?") for f in fits]
    infos = [f.get("fit", {}) for f in fits]
    rows = [
        (
            1,
            "Equations per level, formula as fitted, centring",
            "reported",
            f"Per-level equations, the lme4 formula as fitted and the centring of every predictor are given for all {len(fits)} "
            f"model(s) ({', '.join(names)}) in the Models section.",
        )
    ]
    simplified = [n for n, i in zip(names, infos) if i.get("simplified")]
    rows.append(
        (
            2,
            "Random-effects structure and why; simplification after non-convergence",
            "reported",
            "Each model's random effects are as configured by the analyst (config `models`), written out per level and as an "
            "lme4 formula in section 5. "
            + (
                "Fitted differently from the specification: "
                + "; ".join(f"{n} ({i.get('simplification')})" for n, i in zip(names, infos) if i.get("simplified"))
                + "."
                if simplified
                else "Every model was fitted with the structure specified."
            ),
        )
    )
    not_converged = [n for n, i in zip(names, infos) if not i.get("converged")]
    # singular as specified, whether kept or simplified (fit.json singular_fit, alliance.models.singular)
    singular = [
        n for n, f, i in zip(names, fits, infos) if i.get("boundary") or (f.get("singular_fit") or {}).get("singular")
    ]
    flagged = [f"{n} ({', '.join(f.get('flags'))})" for n, f in zip(names, fits) if f.get("flags")]
    engines = _grouped(
        {n: f"{i.get('engine', '?')} {i.get('engine_version', '')}".strip() for n, i in zip(names, infos)}
    )
    n_attempts = max((len(i.get("attempts") or []) for i in infos), default=0)
    rows.append(
        (
            3,
            "REML or ML; software and version; optimiser; convergence; singular fits",
            "reported",
            f"Estimation: {_grouped({n: i.get('method', '?') for n, i in zip(names, infos)})}. Engine: {engines}. "
            + (f"Optimiser kept (best log-likelihood of {n_attempts} attempts): " if n_attempts > 1 else "Optimiser: ")
            + f"{_grouped({n: i.get('optimizer', '?') for n, i in zip(names, infos)})}. "
            f"Not converged: {', '.join(not_converged) or 'none'}. Boundary (singular) fits: {', '.join(singular) or 'none'}. "
            f"Flags: {'; '.join(flagged) or 'none'}. Likelihood-ratio tests of fixed effects need ML fits: "
            + (", ".join(feats["ml"]) if feats["ml"] else "none was fitted with ML, so none is reported."),
        )
    )
    return rows


def _item_degrees_of_freedom(fits: list[dict[str, Any]], summary: dict[str, Any]) -> Row:
    """Item 4: t with Satterthwaite df or Wald z, per model."""
    names = [f.get("spec", {}).get("name", "?") for f in fits]
    infos = [f.get("fit", {}) for f in fits]
    t_models, z_models = split_by_test(names, infos)
    answer = f"Fixed-effect tests: {_grouped({n: i.get('df_method', '?') for n, i in zip(names, infos)})}. "
    if t_models:
        answer += (
            f"Small-sample df: yes, Satterthwaite df for {', '.join(t_models)} (t tests; p values and CIs from the "
            "t distribution). "
        )
    if z_models:
        answer += (
            f"Small-sample df: no, for {', '.join(z_models)} (Wald z: the engine gives no Satterthwaite or "
            f"Kenward–Roger df); with {summary.get('therapists')} therapists, z tests of therapist-level effects may "
            "overstate significance. "
        )
    answer += f"{contrast_tests_text(fits)[0]} No bootstrap in this run."
    return (4, "Degrees-of-freedom method, or bootstrap", "reported" if t_models and not z_models else "partly", answer)


def _item_variance(fits: list[dict[str, Any]], reliability: dict[str, Any]) -> Row:
    """Item 5: ICCs and the reliability of means, as the model and intake stages wrote them."""
    icc_parts = [
        f"{n}: " + ", ".join(f"{e['group']} {pct(e['value'])}%" for e in es)
        for n, es in _model_statistics(fits, "icc").items()
    ]
    adjusted = [f"{n}: {pct(es[0]['value'])}%" for n, es in _model_statistics(fits, "icc_adjusted").items()]
    rel = []
    if reliability.get("patient"):
        r = reliability["patient"]
        rel.append(
            f"patient means of alliance λ mean {fmt(r['mean'], 2)} (range {fmt(r['min'], 2)}–{fmt(r['max'], 2)})"
        )
    if reliability.get("therapist"):
        r = reliability["therapist"]
        rel.append(
            f"therapist means of patient alliance means λ mean {fmt(r['mean'], 2)} (range {fmt(r['min'], 2)}–{fmt(r['max'], 2)})"
        )
    model_rel = _model_statistics(fits, "reliability_of_means")
    if model_rel:
        rel.append(
            "of the models' group means: "
            + "; ".join(
                f"{n}: " + ", ".join(f"{e['group']} {fmt(e['value'], 2)}" for e in es) for n, es in model_rel.items()
            )
        )
    return (
        5,
        "Variance components with CIs; ICCs; reliability of person and therapist means",
        "partly",
        "Variance components are reported for every model, without CIs (no profile or bootstrap CIs in this run). "
        f"ICCs (intercept variance shares; in models with random slopes at the slope variables' zero): "
        f"{'; '.join(icc_parts) or 'none'}. "
        + (
            "Adjusted ICCs of the random-slope models (Nakagawa, Johnson & Schielzeth 2017, as R's "
            f"performance::icc: all random variance, the slopes' part averaged over the data): {'; '.join(adjusted)}. "
            if adjusted
            else ""
        )
        + f"Reliability (λ): {'; '.join(rel) or 'not estimable'}.",
    )


def _items_sample(fits: list[dict[str, Any]], summary: dict[str, Any], config: dict[str, Any]) -> list[Row]:
    """Items 6-7: sample sizes per level, missing data and dropout."""
    names = [f.get("spec", {}).get("name", "?") for f in fits]
    ppt = summary.get("patients_per_therapist") or {}  # None in a design without therapists
    spp = summary.get("sessions_per_patient", {})
    therapists = (
        f"{summary.get('therapists')} therapists; {summary.get('patients')} patients; patients per therapist mean "
        f"{fmt(ppt.get('mean'), 1)} (range {ppt.get('min')}–{ppt.get('max')})"
        if ppt
        else f"no therapists recorded (a design without therapists); {summary.get('patients')} patients"
    )
    sizes = (
        6,
        "Sample sizes per level",
        "reported",
        f"{therapists}; sessions per patient mean {fmt(spp.get('mean'), 1)} "
        f"(range {spp.get('min')}–{spp.get('max')}); rows used per model: "
        + "; ".join(f"{n} {f.get('fit', {}).get('n_obs')}" for n, f in zip(names, fits))
        + ".",
    )
    miss = summary.get("missing_share", {})
    dropout_def = summary.get("dropout_definition") or (config.get("cleaning") or {}).get(
        "dropout_definition", "end_reason"
    )
    missing = (
        7,
        "Missing data: share per variable and session, dropout definition and rate per arm, handling, MAR, sensitivity",
        "partly",
        f"Share of session rows missing: alliance {pct(miss.get('alliance'), 2)}%, outcome "
        f"{pct(miss.get('symptoms'), 2)}% (by session and arm: missing-data figure). Dropout definition: "
        f"`{dropout_def}`; overall rate {pct(summary.get('dropout_rate'))}%, per arm in Table 1. "
        "Handling: each model uses the sessions with every model variable present (listwise by row); (RE)ML uses all available "
        "sessions of every patient, which is valid if missingness is at random given the model's variables (MAR). "
        "No sensitivity analysis for missing-not-at-random data in this run.",
    )
    return [sizes, missing]


def _items_checks_and_effects(
    fits: list[dict[str, Any]], figures: list[str], effects: pd.DataFrame | None, benchmark: dict[str, Any]
) -> list[Row]:
    """Items 8-9: diagnostic plots and effect sizes."""
    diag = [f.removeprefix("diagnostics_") for f in figures if f.startswith("diagnostics_")]
    checks = (
        8,
        "Assumption checks: residual plots, normality of random effects, influential therapists and patients",
        "partly" if diag else "not in this run",
        (
            f"Residuals against fitted values and QQ plots of residuals and random effects for: {', '.join(diag)}. "
            if diag
            else "No residuals or random effects were written by the model stage, so no diagnostic plots. "
        )
        + "Influence diagnostics (leave-one-therapist-out) are not in this run.",
    )
    beta_std, r2 = _model_statistics(fits, "beta_std"), _model_statistics(fits, "r2_marginal")
    has_r = (effects is not None and len(effects) > 0) or bool(_model_statistics(fits, "r_from_t"))
    sizes = (
        9,
        "Effect sizes: raw and standardised β, r-equivalents, R²",
        "reported" if has_r and beta_std and r2 else "partly",
        "Raw β with 95% CIs for every model. "
        + (
            "r-equivalents (r from t) of the alliance coefficients, and per therapy, condition and stratum beside the benchmark "
            f"r = {fmt_r(benchmark['r'])}. "
            if has_r
            else "No r-equivalents: the effects stage did not run. "
        )
        + (f"Standardised β for: {', '.join(beta_std)}. " if beta_std else "Standardised β not computed in this run. ")
        + (
            f"Marginal and conditional R² (Nakagawa & Schielzeth) for: {', '.join(r2)}."
            if r2
            else "Marginal/conditional R² not computed in this run."
        ),
    )
    return [checks, sizes]


def _item_sensitivity(fits: list[dict[str, Any]], feats: dict[str, list[str]]) -> Row:
    """Item 10: which sensitivity analyses the suite covers."""
    names = [f.get("spec", {}).get("name", "?") for f in fits]
    sens = [
        ("detrended alliance", feats["detrended"]),
        ("lagged-outcome specification", feats["lagged"]),
        ("with the therapist level", feats["therapist_level"]),
        ("without the therapist level", feats["no_therapist_level"]),
        ("adjusted for early change", feats["early_change"]),
    ]
    done = [f"{what} ({', '.join(ms)})" for what, ms in sens if ms]
    missing = [what for what, ms in sens if not ms] + ["outliers (winsorised alliance)", "rater", "completers vs all"]
    return (
        10,
        "Sensitivity analyses",
        "partly" if len(fits) > 1 else "not in this run",
        f"Models in the suite: {', '.join(names)} (the table 'How the main estimate moves' compares their alliance coefficients). "
        f"Covered: {'; '.join(done) or 'none'}. Not in this run: {', '.join(missing)}.",
    )


def reviewer_checklist(
    *,
    fits: list[dict[str, Any]],
    summary: dict[str, Any],
    config: dict[str, Any],
    figures: list[str],
    effects: pd.DataFrame | None,
    reliability: dict[str, Any],
    benchmark: dict[str, Any],
) -> pd.DataFrame:
    """methods.md §8 (APA JARS-Quant; Meteyard & Davies 2020; Luo et al. 2021) filled in from
    this run.  Columns: item, topic, status (reported | partly | not in this run), answer.

    ICCs and the models' reliabilities are the model stage's (fit.json ``effects``);
    ``reliability`` holds the patient (intake summary) and therapist means' λ of the alliance;
    ``benchmark`` is config ``report.benchmark``.
    """
    feats = _spec_features(fits)
    rows = [
        *_items_specification(fits, feats),
        _item_degrees_of_freedom(fits, summary),
        _item_variance(fits, reliability),
        *_items_sample(fits, summary, config),
        *_items_checks_and_effects(fits, figures, effects, benchmark),
        _item_sensitivity(fits, feats),
    ]
    assert all(status in STATUS for _, _, status, _ in rows)
    return pd.DataFrame(rows, columns=["item", "topic", "status", "answer"])
