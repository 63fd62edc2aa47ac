"""The narrative report: one self-contained HTML file (figures embedded, no network), and
the same document as PDF, printed by headless Chromium.

Everything the report says comes from the run's own files: the tables computed here
(``table1``, ``model_comparison``, ``reviewer_checklist``) are written as CSV by the
workflow and read back, so that a number in the text can be traced to a table.  Numbers
quoted in the text are wrapped in ``<span class="num" data-source="...">`` naming the table,
row and column they come from (parts separated by '¦', e.g. ``fixed¦same_session¦session_c¦estimate``);
the tests check every one of them.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import math
import os
import platform
import re
import shutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
import numpy as np
import pandas as pd
import yaml
from PIL import Image

TEMPLATE_DIR = Path(__file__).resolve().parents[3] / "report"
PACKAGES = (
    "snakemake", "pandas", "numpy", "scipy", "statsmodels", "mixedlm", "pingouin", "matplotlib", "pandera", "pyarrow", "jinja2",
)

#: Published benchmarks (methods.md §1), shown beside the run's own estimates.
BENCHMARKS = [
    {"source": "Horvath, Del Re, Flückiger & Symonds (2011), Psychotherapy 48(1):9–16",
     "data": "190 data sources, > 14,000 treatments", "result": "alliance–outcome r = .275 [.25, .30]", "r": 0.275},
    {"source": "Flückiger, Del Re, Wampold & Horvath (2018), Psychotherapy 55(4):316–340",
     "data": "295 studies, > 30,000 patients; three-level REML meta-analysis",
     "result": "face-to-face r = .278 [.256, .299], d = .579", "r": 0.278},
    {"source": "Flückiger et al. (2020), J Couns Psychol 67(6):706–711",
     "data": "60 samples, 6,061 patients", "result": "adjusted for intake and concurrent processes: r = .23 to .31", "r": None},
    {"source": "Johns, Barkham, Kellett & Saxon (2019), Clin Psychol Rev 67:78–93",
     "data": "20 studies", "result": "therapist share of outcome variance: weighted mean 5% (trials 8.2%)", "r": None},
]
BENCHMARK_R = (0.278, 0.256, 0.299)

#: Figures in the order the report shows them: name -> alt text.
FIGURES = {
    "flow_diagram": "Exclusion flow diagram: rows, patients and therapists after each cleaning step",
    "missing_data": "Missing data by session and arm",
    "trajectories_symptoms": "Symptom trajectories by therapy type",
    "trajectories_alliance": "Alliance trajectories by therapy type",
    "within_between": "Within-patient and between-patient association of alliance and symptoms",
    "alliance_forest": "Forest plot of the alliance effect as r against the Flückiger et al. 2018 benchmark",
    "therapist_effects": "Caterpillar plot of therapist random effects with 95% intervals",
}

ALLIANCE_PREFIX = "alliance"

#: What each fit flag of the engine (alliance.engines.spec.FLAG_NAMES) means for a reader.
FLAG_MEANINGS = {
    "not_converged": "the best optimiser run did not report convergence: the estimates may not be at the optimum",
    "boundary": "a random-effects covariance matrix is (nearly) singular: a variance at or near zero, or a correlation "
                "at or near ±1 (lme4's singular-fit criterion; the fit's notes name the group and why). That random "
                "effect, or the correlation, cannot be told apart from the boundary, and tests of effects at its level "
                "are less trustworthy",
    "refitted": "the first optimiser did not give the best fit; the estimates come from another optimiser or a retry",
    "optimum_disagreement": "optimisers that all reported convergence reached different log-likelihoods; the best was "
                            "kept (statsmodels can stop at a worse optimum and still report convergence)",
    "exact_zero_fixed": "a fixed effect came back as exactly 0.0 (statsmodels issue #10239, with a variance near zero): "
                        "check that estimate",
    "simplified": "the random-effects structure fitted differs from the one specified (see 'as fitted' and the "
                  "simplification note)",
    "cross_check_disagreement": "a second engine's fixed effects differ from this engine's beyond the tolerance",
}
STATUS = ("reported", "partly", "not in this run")

#: What each engine (fit.json: fit.engine) is, for the methods text.
ENGINE_DESCRIPTIONS = {
    "statsmodels": "statsmodels MixedLM with the pipeline's safeguards (several optimisers, the best log-likelihood kept; "
                   "fixed-effect SEs from (X′V⁻¹X)⁻¹ at the estimates, as lme4)",
    "mixedlm": "the mixedlm package (lme4's model and REML/ML criterion reimplemented for Python; BLUPs and an independent "
               "profiled check of its estimates computed by the pipeline)",
    "lme4": "R's lme4 with lmerTest, run through Rscript (BLUPs and an independent profiled check of its estimates computed "
            "by the pipeline)",
}
#: Contrasts and joint tests are asymptotic whatever the engine (alliance.engines.spec.FitResult.contrast / wald_test).
CONTRAST_TESTS = ("Contrasts (such as the contextual effect) and simple slopes are Wald z tests, and tests of several "
                  "coefficients at once are Wald χ² tests (df = number of coefficients), with every engine.")


# --------------------------------------------------------------------------- small helpers


def embed_png(path: str | Path, colours: int | None = 256) -> str:
    """A PNG as a data URI, so the report needs no other file.

    With ``colours`` the embedded copy is reduced to a palette of that many colours (median
    cut, no dithering: deterministic, and to the eye the same figure at a third of the bytes),
    which keeps the report small; the PNG files in results/ keep full colour.
    """
    data = Path(path).read_bytes()
    if colours:
        with Image.open(io.BytesIO(data)) as image:
            palette = image.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
            buffer = io.BytesIO()
            palette.save(buffer, format="PNG", optimize=True)
        data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def package_versions() -> dict[str, str]:
    """Versions of the packages that produced the numbers."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


WORKFLOW_DIR = Path(__file__).resolve().parents[4]


def git_commit(directory: str | Path = WORKFLOW_DIR) -> str:
    """The git commit of the workflow's checkout (not of the working directory), or 'unknown'."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory, capture_output=True, text=True
        ).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def satterthwaite(info: dict[str, Any]) -> bool:
    """Whether a fit's fixed-effect tests used Satterthwaite df (fit.json: ``fit.df_method``)."""
    return "satterthwaite" in str(info.get("df_method") or "").lower()


def split_by_test(names: list[str], infos: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The models whose fixed-effect tests are t with Satterthwaite df, and those that are Wald z."""
    return ([n for n, i in zip(names, infos) if satterthwaite(i)],
            [n for n, i in zip(names, infos) if not satterthwaite(i)])


def fixed_tests_text(info: dict[str, Any]) -> str:
    """One model's sentence on its fixed-effect tests, from fit.json's ``fit`` (``df_method``)."""
    method = info.get("df_method") or "method not recorded"
    if satterthwaite(info):
        return (f"Fixed-effect tests are t tests with Satterthwaite degrees of freedom ({method}): p values and 95% CIs "
                "come from the t distribution with those df (column df).")
    return (f"Fixed-effect tests are Wald z tests ({method}), without small-sample degrees of freedom: p values and 95% CIs "
            "come from the normal distribution.")


def engine_text(info: dict[str, Any]) -> str:
    """'mixedlm 1.3.0: the mixedlm package (...)': the engine, its version and what it is."""
    engine = str(info.get("engine") or "unknown engine")
    version = str(info.get("engine_version") or "").strip()
    described = ENGINE_DESCRIPTIONS.get(engine)
    return f"{engine} {version}".strip() + (f": {described}" if described else "")


def inference_summary(fits: list[dict[str, Any]]) -> dict[str, str]:
    """The run's sentences on estimation and tests: ``engines`` (engine and version, per model
    when they differ), ``fixed_tests`` (t with Satterthwaite df or Wald z, per model when they
    differ), ``contrasts`` (Wald z / χ² for every engine) and ``findings`` (a short form)."""
    fitted = [f for f in fits if not f.get("fit", {}).get("not_fitted")]
    names = [f.get("spec", {}).get("name", "?") for f in fitted]
    infos = [f.get("fit", {}) for f in fitted]
    by_engine: dict[str, list[str]] = {}
    for n, i in zip(names, infos):
        by_engine.setdefault(engine_text(i), []).append(n)
    if len(by_engine) == 1:
        engines = next(iter(by_engine))
    else:
        engines = "; ".join(f"{e} (models {', '.join(ns)})" for e, ns in by_engine.items())
    t_models, z_models = split_by_test(names, infos)
    t_methods = ", ".join(sorted({str(i.get("df_method")) for i in infos if satterthwaite(i)}))
    if t_models and not z_models:
        fixed = f"Fixed-effect tests are t tests with Satterthwaite degrees of freedom ({t_methods})."
        short = "Fixed-effect tests are t tests with Satterthwaite degrees of freedom"
    elif z_models and not t_models:
        fixed = "Fixed-effect tests are Wald z tests, without small-sample degrees of freedom."
        short = "Fixed-effect tests are Wald z tests (no small-sample degrees of freedom)"
    elif t_models:
        fixed = (f"Fixed-effect tests are t tests with Satterthwaite degrees of freedom ({t_methods}) for "
                 f"{', '.join(t_models)}, and Wald z tests without small-sample degrees of freedom for {', '.join(z_models)}.")
        short = (f"Fixed-effect tests are t tests with Satterthwaite degrees of freedom for {', '.join(t_models)} and "
                 f"Wald z tests (no small-sample degrees of freedom) for {', '.join(z_models)}")
    else:
        fixed = short = "No model was fitted"
    return {"engines": engines or "no model was fitted", "fixed_tests": fixed, "contrasts": CONTRAST_TESTS,
            "findings": short + ("; contrasts are Wald z tests." if infos else ".")}


def fmt(value: Any, digits: int = 3) -> str:
    """A number for the report: fixed decimals, a true minus sign, '–' for missing."""
    if _missing(value):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}".replace("-", "−")
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if value != 0 and abs(value) < 10 ** (-digits):
            return f"{value:.2e}".replace("-", "−")
        text = f"{value:,.{digits}f}"
        if text.lstrip("-").strip("0.,") == "":
            text = text.lstrip("-")  # no "−0.00"
        return text.replace("-", "−")
    return str(value)


def pct(value: Any, digits: int = 1) -> str:
    """A proportion as a percentage with fixed decimals (never scientific notation)."""
    if _missing(value):
        return "–"
    text = f"{100 * float(value):.{digits}f}"
    if text.lstrip("-").strip("0.") == "":
        text = text.lstrip("-")
    return text.replace("-", "−")


def wbr(value: Any) -> Markup:
    """Text with a line-break opportunity after each '_' and ':' (long variable names wrap in
    narrow table columns instead of overflowing the printed page)."""
    return Markup(re.sub(r"([_:])", r"\1<wbr>", str(escape(value))))


def fmt_p(value: Any) -> str:
    """A p value in APA style: '< .001' or '.023'."""
    if _missing(value):
        return "–"
    return "< .001" if value < 0.001 else f"{value:.3f}".lstrip("0")


def fmt_r(value: Any, digits: int = 3) -> str:
    """A correlation without the leading zero (APA): .278, −.120."""
    if _missing(value):
        return "–"
    text = f"{float(value):.{digits}f}"
    return text.replace("0.", ".", 1).replace("-", "−")


def parse_number(text: str) -> float:
    """Inverse of ``fmt``/``fmt_r`` (for tests and readers): '−8.13' -> -8.13, '.278' -> 0.278."""
    cleaned = text.strip().replace("−", "-").replace(",", "").replace("%", "")
    if cleaned.startswith("-."):
        cleaned = "-0" + cleaned[1:]
    elif cleaned.startswith("."):
        cleaned = "0" + cleaned
    return float(cleaned)


def decimals(text: str) -> int:
    """Number of decimals a formatted number shows."""
    cleaned = text.strip().replace("%", "")
    return len(cleaned.split(".")[1]) if "." in cleaned and "e" not in cleaned else 0


def citation_text(citation: str) -> str:
    """A citation without live links: 'https://doi.org/10.x' becomes 'doi:10.x'."""
    text = re.sub(r"https?://(dx\.)?doi\.org/", "doi:", " ".join(str(citation).split()))
    return re.sub(r"https?://", "", text)


def caption(name: str, directory: Path = TEMPLATE_DIR) -> str:
    """The caption of a figure: the same text Snakemake's report shows (``workflow/report/<name>.rst``)."""
    path = directory / f"{name}.rst"
    if not path.exists():
        return ""
    text = " ".join(path.read_text(encoding="utf-8").split())
    return text.replace("``", "")


# --------------------------------------------------------------------------- tables


def _distribution(values: pd.Series, categories: list[str]) -> dict[str, float]:
    counts = values.astype(str).value_counts()
    total = counts.sum()
    return {c: 100.0 * counts.get(c, 0) / total if total else math.nan for c in categories}


def table1(patients: pd.DataFrame) -> pd.DataFrame:
    """Table 1 of the sample, one row per therapy × condition, per therapy and overall.

    Columns: therapy, condition, patients, therapists, sessions_mean, sessions_sd,
    baseline_mean, baseline_sd (primary outcome at baseline, on the common scale),
    dropout_pct, age_mean and age_sd (when exact ages are given), then ``sex: <value> %``
    and ``age: <band> %`` for every value present.
    """
    pts = patients.copy()
    pts["therapy"] = pts["therapy"].astype(str)
    pts["condition"] = pts["condition"].astype(str)
    sexes = sorted(pts["sex"].dropna().astype(str).unique()) if "sex" in pts else []
    bands = sorted(pts["age_band"].dropna().astype(str).unique()) if "age_band" in pts else []

    def row(frame: pd.DataFrame, therapy: str, condition: str) -> dict[str, Any]:
        baseline = pd.to_numeric(frame["symptoms_baseline"], errors="coerce")
        sessions = pd.to_numeric(frame["n_sessions"], errors="coerce")
        dropout = frame["dropout"].astype("boolean") if "dropout" in frame else pd.Series(pd.NA, index=frame.index, dtype="boolean")
        out = {
            "therapy": therapy,
            "condition": condition,
            "patients": int(frame["patient"].nunique()),
            "therapists": int(frame["therapist"].nunique()),
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

    rows = []
    for therapy, by_therapy in pts.groupby("therapy", sort=True):
        for condition, cell in by_therapy.groupby("condition", sort=True):
            rows.append(row(cell, therapy, condition))
        rows.append(row(by_therapy, therapy, "all"))
    rows.append(row(pts, "all", "all"))
    return pd.DataFrame(rows)


def _n_groups_text(fit: dict[str, Any]) -> str:
    return "; ".join(f"{g} {n}" for g, n in (fit.get("fit", {}).get("n_groups") or {}).items())


def alliance_terms(fit: dict[str, Any], terms: list[str]) -> dict[str, str]:
    """The alliance coefficients of a model and their role: the terms the model's config gives a
    role (within_patient, between_patient, ...) whose name starts with 'alliance'; without roles,
    every 'alliance…' term except a lagged or controlled plain 'alliance'."""
    roles = (fit.get("config") or {}).get("roles")
    if roles:
        return {t: roles[t] for t in terms if t in roles and t.startswith(ALLIANCE_PREFIX)}
    return {t: "" for t in terms if t.startswith(ALLIANCE_PREFIX + "_")}


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
            df = getattr(r, "df", math.nan) if test == "t" else math.nan
            rows.append({
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
                "df": df,
                "outcome": f.get("spec", {}).get("outcome", ""),
                "lme4_formula": f.get("lme4_formula", ""),
                "method": info.get("method", ""),
                "n_obs": info.get("n_obs"),
                "n_groups": _n_groups_text(f),
                "converged": info.get("converged"),
                "boundary": info.get("boundary"),
                "flags": ";".join(f.get("flags") or []) or "none",
            })
    columns = ["model", "label", "term", "role", "data", "note", "estimate", "se", "ci_low", "ci_high", "p", "test", "df", "outcome",
               "lme4_formula", "method", "n_obs", "n_groups", "converged", "boundary", "flags"]
    return pd.DataFrame(rows, columns=columns)


def contextual_effect(fit: dict[str, Any], between: str = "alliance_between_patient", within: str = "alliance_within_patient") -> dict[str, float] | None:
    """β(between) − β(within) with its SE from the fixed-effects covariance in fit.json."""
    vcov = fit.get("vcov") or {}
    terms = vcov.get("terms") or []
    if between not in terms or within not in terms:
        return None
    est = {r["term"]: r["estimate"] for r in fit.get("fixed", [])}
    matrix = np.asarray(vcov["matrix"], dtype=float)
    w = np.zeros(len(terms))
    w[terms.index(between)], w[terms.index(within)] = 1.0, -1.0
    estimate = float(est[between] - est[within])
    se = float(np.sqrt(w @ matrix @ w))
    return {"estimate": estimate, "se": se, "ci_low": estimate - 1.959964 * se, "ci_high": estimate + 1.959964 * se}


def variance_shares(variance: pd.DataFrame) -> dict[str, float]:
    """Share of each group's random-intercept variance in the total (intercepts + residual):
    the ICCs of the model (for a model with random slopes, at the slope variables' zero)."""
    v = variance[(variance["term"].astype(str).isin(["Intercept", "Residual"]))]
    v = v[pd.to_numeric(v["variance"], errors="coerce").notna()]
    total = float(pd.to_numeric(v["variance"]).sum())
    return {str(g): float(x) / total for g, x in zip(v["group"], pd.to_numeric(v["variance"])) if g != "Residual" and total > 0}


def mean_reliability(values: pd.Series, groups: pd.Series) -> dict[str, float] | None:
    """Reliability of group means, λ_g = τ² / (τ² + σ²/n_g) (methods.md §4), with τ² and σ²
    from one-way random-effects ANOVA (method of moments).  Returns mean, min and max λ,
    τ², σ² and the number of groups; None when τ² cannot be estimated."""
    frame = pd.DataFrame({"y": pd.to_numeric(values, errors="coerce").to_numpy(dtype=float), "g": groups.astype(str).to_numpy()}).dropna()
    stats_ = frame.groupby("g")["y"].agg(["count", "mean", "var"])
    stats_ = stats_[stats_["count"] >= 1]
    n, k = len(frame), len(stats_)
    if k < 2 or n - k < 1:
        return None
    ss_within = float(((frame["y"] - frame["g"].map(stats_["mean"])) ** 2).sum())
    ms_within = ss_within / (n - k)
    grand = frame["y"].mean()
    ms_between = float((stats_["count"] * (stats_["mean"] - grand) ** 2).sum()) / (k - 1)
    n0 = (n - float((stats_["count"] ** 2).sum()) / n) / (k - 1)
    tau2 = max((ms_between - ms_within) / n0, 0.0)
    if tau2 == 0.0:
        lam = np.zeros(k)
    else:
        lam = tau2 / (tau2 + ms_within / stats_["count"].to_numpy(dtype=float))
    return {"mean": float(lam.mean()), "min": float(lam.min()), "max": float(lam.max()), "tau2": tau2, "sigma2": ms_within, "groups": k}


# --------------------------------------------------------------------------- equations

_SUB = str.maketrans("0123456789tijsk", "₀₁₂₃₄₅₆₇₈₉ₜᵢⱼₛₖ")
_INDEX = {"patient": "i", "therapist": "j", "site": "s", "study": "k"}
_RE_LETTERS = ["u", "v", "w", "r", "q"]


def term_levels(data: pd.DataFrame | None, terms: list[str], groups: list[str]) -> dict[str, int]:
    """The level of each fixed term: 1 if it varies within the lowest group, else the level
    (2, 3, ...) of the lowest group within which it is constant.  ``groups`` go from the
    lowest (most numerous) to the highest.  Interactions take the lowest level of their parts."""
    levels: dict[str, int] = {}
    for term in terms:
        level = 1
        parts = term.split(":")
        if data is not None and all(p in data.columns for p in parts) and groups:
            part_levels = []
            for p in parts:
                part_level = 1
                for k, g in enumerate(groups):  # the highest group within which p is constant
                    if g not in data.columns:
                        break
                    spread = data[[g, p]].dropna().groupby(g)[p].nunique()
                    if not len(spread) or int(spread.max()) > 1:
                        break
                    part_level = k + 2
                part_levels.append(part_level)
            level = min(part_levels)
        levels[term] = level
    return levels


def _groups_in_order(spec: dict[str, Any], n_groups: dict[str, int] | None) -> list[str]:
    groups = []
    for term in spec.get("random", []):
        if term["group"] not in groups:
            groups.append(term["group"])
    sizes = n_groups or {}

    def size(g: str) -> float:
        for key, n in sizes.items():
            if key == g or key.endswith(":" + g):
                return float(n)
        return -float({"patient": 1, "therapist": 2}.get(g, 3))  # patients below therapists when unknown

    return sorted(groups, key=lambda g: -size(g))


#: the group a role's predictor varies over (alliance.models.suite roles)
ROLE_GROUP = {"between_patient": "patient", "patient_within_therapist": "patient", "patient_level": "patient",
              "between_therapist": "therapist"}


def model_equations(
    spec: dict[str, Any],
    data: pd.DataFrame | None = None,
    n_groups: dict[str, int] | None = None,
    *,
    roles: dict[str, str] | None = None,
    unit: str = "session",
    fitted_formula: str = "",
) -> list[dict[str, Any]]:
    """The model written out per level from its spec (the one in fit.json), as fitted.

    Returns a list of ``{"level": "Level 1 (session t)", "lines": [...]}``.  Coefficients
    are numbered β₀ (intercept), β₁, ... in the order of the spec's fixed terms (the fixed-
    effects table names the β of every row); random effects are u (lowest group), v (next), ...
    The level of a predictor comes from its role (within_patient, between_patient, ...) when the
    model states one, else from the data (the highest group within which it is constant).
    ``unit`` is what a row is: 'session' (rows in patients) or 'patient' (one row per patient).
    A correlated term that was fitted with independent components (``||`` in ``fitted_formula``)
    is written as fitted.
    """
    fixed = list(spec.get("fixed", []))
    groups = _groups_in_order(spec, n_groups)
    if unit == "patient":
        groups = [g for g in groups if g != "patient"]
    index = {g: _INDEX.get(g, g[0]) for g in groups}
    levels = term_levels(data, fixed, groups)
    for term, role in (roles or {}).items():
        if term in levels:
            group = ROLE_GROUP.get(role)
            if role == "within_patient" or group is None or (unit == "patient" and group == "patient"):
                levels[term] = 1
            elif group in groups:
                levels[term] = groups.index(group) + 2
            elif group == "therapist" or not groups:
                levels[term] = len(groups) + 1
    number = {t: str(k + 1).translate(_SUB) for k, t in enumerate(fixed)}
    beta = {t: f"β{number[t]}" for t in fixed}
    slopes = {g: [] for g in groups}
    correlated = {g: True for g in groups}
    nested = {}
    for term in spec.get("random", []):
        if term["group"] not in slopes:
            continue
        slopes[term["group"]] += [s for s in term.get("slopes", []) if s not in slopes[term["group"]]]
        factor = f"{term['nested_in']}:{term['group']}" if term.get("nested_in") else term["group"]
        correlated[term["group"]] = term.get("correlated", True) and f"|| {factor})" not in fitted_formula
        if term.get("nested_in"):
            nested[term["group"]] = term["nested_in"]
    letters = {g: _RE_LETTERS[k % len(_RE_LETTERS)] for k, g in enumerate(groups)}
    first = "i" if unit == "patient" else "t"
    sub_all = (first + "".join(index[g] for g in groups)).translate(_SUB)

    def subs(level: int) -> str:  # subscript of a quantity at a level: the indices of that level and above
        return ("".join(index[g] for g in groups[level - 2:]) if level >= 2 else sub_all).translate(_SUB)

    outcome = spec.get("outcome", "y")
    out = []
    # level 1
    l1_terms = [t for t in fixed if levels[t] == 1]
    rhs = [f"π₀{subs(2) if groups else ''}"]
    for t in l1_terms:
        if any(t in slopes[g] for g in groups):
            rhs.append(f"π{number[t]}{subs(2)}·{t}{sub_all}")
        else:
            rhs.append(f"{beta[t]}·{t}{sub_all}")
    unit_name = "patient i" if unit == "patient" else ("session t" if "patient" in groups else "observation t")
    out.append({
        "level": f"Level 1 ({unit_name})",
        "lines": [f"{outcome}{sub_all} = " + " + ".join(rhs) + f" + e{sub_all}", f"e{sub_all} ~ N(0, σ²)"],
    })
    # higher levels
    for k, g in enumerate(groups):
        level = k + 2
        lines = []
        here = [t for t in fixed if levels[t] == level]
        upper = f"γ₀{subs(level + 1)}" if level - 1 < len(groups) else "β₀"
        lhs = "π₀" if level == 2 else "γ₀"
        rhs = [upper] + [f"{beta[t]}·{t}{subs(level)}" for t in here] + [f"{letters[g]}₀{subs(level)}"]
        lines.append(f"{lhs}{subs(level)} = " + " + ".join(rhs))
        for s in slopes[g]:
            if s in l1_terms and k == min(j for j, h in enumerate(groups) if s in slopes[h]):
                higher = [f"{letters[h]}{number[s]}{subs(j + 2)}" for j, h in enumerate(groups) if s in slopes[h] and j > k]
                lines.append(f"π{number[s]}{subs(2)} = {beta[s]} + {letters[g]}{number[s]}{subs(level)}" + "".join(f" + {x}" for x in higher))
        effects = [f"{letters[g]}₀{subs(level)}"] + [f"{letters[g]}{number[s]}{subs(level)}" for s in slopes[g] if s in number]
        if len(effects) == 1:
            lines.append(f"{effects[0]} ~ N(0, τ²[{g}])")
        else:
            structure = "unstructured covariance (correlated)" if correlated[g] else "independent: diagonal covariance (lme4 ||)"
            lines.append(f"({', '.join(effects)}) ~ N(0, T[{g}]), {structure}")
        where = f"{g} {index[g]}" + (f" within {nested[g]}" if g in nested else "")
        out.append({"level": f"Level {level} ({where})", "lines": lines})
    return out


def coefficient_label(term: str, fixed_terms: list[str]) -> str:
    """The β of a fixed-effects table row: 'β0' for the intercept, 'β2' for the spec's second
    term, 'β3 (IPT)' for a treatment-coded level of a categorical term."""
    if term in ("Intercept", "(Intercept)"):
        return "β0"
    levels = re.findall(r"\[T\.([^\]]*)\]", term)
    base = re.sub(r"\[T\.[^\]]*\]", "", term)
    if base not in fixed_terms:
        return ""
    return f"β{fixed_terms.index(base) + 1}" + (f" ({', '.join(levels)})" if levels else "")


# --------------------------------------------------------------------------- instruments


def instrument_rows(config: dict[str, Any], registry: dict[str, Any], supplied: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per configured measure: what it measures here, the instrument, its
    prorating rule (with the registry's note), the citation and whether the registry
    facts were checked against the primary source."""
    dataset = config.get("dataset", {})
    analysis = config.get("analysis", {})
    outcome_of = {m: c for c, m in (analysis.get("outcome_by_condition") or {}).items()}
    rows = []
    for key, measure in (dataset.get("measures") or {}).items():
        inst = registry.get(measure.get("instrument"))
        role = "alliance" if key == analysis.get("alliance_measure") else (
            f"primary outcome for {outcome_of[key]}" if key in outcome_of else "secondary measure")
        row = {"measure": key, "role": role, "instrument": measure.get("instrument"),
               "rater": measure.get("rater", ""), "timing": measure.get("timing", ""),
               "supplied": ((supplied or {}).get(key) or {}).get("supplied") or ("total" if "total" in measure else "items")}
        if inst is not None:
            row.update({
                "name": inst.name,
                "items": f"{inst.n_items} × {fmt(inst.item_min, 0)}–{fmt(inst.item_max, 0)}",
                "reverse": ", ".join(str(i) for i in inst.reverse_items) or "none",
                "higher_is": inst.higher_is,
                "prorate_max_missing": inst.prorate_max_missing,
                "prorate_note": " ".join(inst.prorate_note.split()),
                "citation": citation_text(inst.citation),
                "checked": inst.checked,
                "unchecked_fields": ", ".join(inst.unchecked_fields),
                "notes": " ".join((getattr(inst, "notes", "") or "").split()),
            })
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- reviewer checklist


def _spec_features(fits: list[dict[str, Any]]) -> dict[str, list[str]]:
    feats: dict[str, list[str]] = {k: [] for k in ("therapist_level", "no_therapist_level", "lagged", "detrended", "early_change", "ml")}
    for f in fits:
        spec = f.get("spec", {})
        name = spec.get("name", "?")
        groups = {t["group"] for t in spec.get("random", [])} | {t.get("nested_in") for t in spec.get("random", []) if t.get("nested_in")}
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


def reviewer_checklist(
    *,
    fits: list[dict[str, Any]],
    variance: list[pd.DataFrame],
    summary: dict[str, Any],
    config: dict[str, Any],
    figures: list[str],
    effects: pd.DataFrame | None,
    reliability: dict[str, Any],
) -> pd.DataFrame:
    """methods.md §8 (APA JARS-Quant; Meteyard & Davies 2020; Luo et al. 2021) filled in from
    this run.  Columns: item, topic, status (reported | partly | not in this run), answer."""
    names = [f.get("spec", {}).get("name", "?") for f in fits]
    infos = [f.get("fit", {}) for f in fits]
    feats = _spec_features(fits)
    rows = []

    def add(item: int, topic: str, status: str, answer: str) -> None:
        assert status in STATUS
        rows.append({"item": item, "topic": topic, "status": status, "answer": answer})

    add(1, "Equations per level, formula as fitted, centring", "reported",
        f"Per-level equations, the lme4 formula as fitted and the centring of every predictor are given for all {len(fits)} model(s) "
        f"({', '.join(names)}) in the Models section.")
    simplified = [n for n, i in zip(names, infos) if i.get("simplified")]
    add(2, "Random-effects structure and why; simplification after non-convergence", "reported",
        "Each model's random effects are as configured by the analyst (config `models`), written out per level and as an "
        "lme4 formula in section 5. "
        + ("Fitted differently from the specification: " + "; ".join(
            f"{n} ({i.get('simplification')})" for n, i in zip(names, infos) if i.get("simplified")) + "."
           if simplified else "Every model was fitted with the structure specified."))

    def grouped(values: dict[str, Any]) -> str:
        """'REML: a, b; ML: c' from {model: value}."""
        by: dict[str, list[str]] = {}
        for n, v in values.items():
            by.setdefault(str(v), []).append(n)
        if len(by) == 1:
            return f"{next(iter(by))} (all {len(values)} models)"
        return "; ".join(f"{v}: {', '.join(ns)}" for v, ns in by.items())

    not_converged = [n for n, i in zip(names, infos) if not i.get("converged")]
    singular = [n for n, i in zip(names, infos) if i.get("boundary")]
    flagged = [f"{n} ({', '.join(f.get('flags'))})" for n, f in zip(names, fits) if f.get("flags")]
    engines = grouped({n: f"{i.get('engine', '?')} {i.get('engine_version', '')}".strip() for n, i in zip(names, infos)})
    n_attempts = max((len(i.get("attempts") or []) for i in infos), default=0)
    add(3, "REML or ML; software and version; optimiser; convergence; singular fits", "reported",
        f"Estimation: {grouped({n: i.get('method', '?') for n, i in zip(names, infos)})}. Engine: {engines}. "
        + (f"Optimiser kept (best log-likelihood of {n_attempts} attempts): " if n_attempts > 1 else "Optimiser: ")
        + f"{grouped({n: i.get('optimizer', '?') for n, i in zip(names, infos)})}. "
        f"Not converged: {', '.join(not_converged) or 'none'}. Boundary (singular) fits: {', '.join(singular) or 'none'}. "
        f"Flags: {'; '.join(flagged) or 'none'}. Likelihood-ratio tests of fixed effects need ML fits: "
        + (", ".join(feats["ml"]) if feats["ml"] else "none was fitted with ML, so none is reported."))
    n_ther = summary.get("therapists")
    t_models, z_models = split_by_test(names, infos)
    df_answer = f"Fixed-effect tests: {grouped({n: i.get('df_method', '?') for n, i in zip(names, infos)})}. "
    if t_models:
        df_answer += (f"Small-sample df: yes, Satterthwaite df for {', '.join(t_models)} (t tests; p values and CIs from the "
                      "t distribution). ")
    if z_models:
        df_answer += (f"Small-sample df: no, for {', '.join(z_models)} (Wald z: the engine gives no Satterthwaite or "
                      f"Kenward–Roger df); with {n_ther} therapists, z tests of therapist-level effects may overstate "
                      "significance. ")
    df_answer += "Contrasts, simple slopes and tests of several coefficients are Wald z / χ² with every engine. No bootstrap in this run."
    add(4, "Degrees-of-freedom method, or bootstrap", "reported" if t_models and not z_models else "partly", df_answer)
    model_effects = {n: f.get("effects") or [] for n, f in zip(names, fits)}

    def stats_of(kind: str) -> dict[str, list[dict]]:
        return {n: [e for e in es if e.get("statistic") == kind] for n, es in model_effects.items() if any(e.get("statistic") == kind for e in es)}

    icc_parts = []
    iccs = stats_of("icc")
    for n, v in zip(names, variance):
        if n in iccs:
            icc_parts.append(f"{n}: " + ", ".join(f"{e['group']} {pct(e['value'])}%" for e in iccs[n]))
        elif shares := variance_shares(v):
            icc_parts.append(f"{n}: " + ", ".join(f"{g} {pct(x)}%" for g, x in shares.items()))
    rel = []
    if reliability.get("patient"):
        r = reliability["patient"]
        rel.append(f"patient means of alliance λ mean {fmt(r['mean'], 2)} (range {fmt(r['min'], 2)}–{fmt(r['max'], 2)})")
    if reliability.get("therapist"):
        r = reliability["therapist"]
        rel.append(f"therapist means of patient alliance means λ mean {fmt(r['mean'], 2)} (range {fmt(r['min'], 2)}–{fmt(r['max'], 2)})")
    model_rel = stats_of("reliability_of_means")
    if model_rel:
        rel.append("of the models' group means: " + "; ".join(
            f"{n}: " + ", ".join(f"{e['group']} {fmt(e['value'], 2)}" for e in es) for n, es in model_rel.items()))
    add(5, "Variance components with CIs; ICCs; reliability of person and therapist means", "partly",
        "Variance components are reported for every model, without CIs (no profile or bootstrap CIs in this run). "
        f"ICCs (intercept variance shares): {'; '.join(icc_parts) or 'none'}. "
        f"Reliability (λ): {'; '.join(rel) or 'not estimable'}.")
    ppt = summary.get("patients_per_therapist", {})
    spp = summary.get("sessions_per_patient", {})
    add(6, "Sample sizes per level", "reported",
        f"{summary.get('therapists')} therapists; {summary.get('patients')} patients; patients per therapist mean "
        f"{fmt(ppt.get('mean'), 1)} (range {ppt.get('min')}–{ppt.get('max')}); sessions per patient mean {fmt(spp.get('mean'), 1)} "
        f"(range {spp.get('min')}–{spp.get('max')}); rows used per model: "
        + "; ".join(f"{n} {i.get('n_obs')}" for n, i in zip(names, infos)) + ".")
    miss = summary.get("missing_share", {})
    dropout_def = summary.get("dropout_definition") or (config.get("cleaning") or {}).get("dropout_definition", "end_reason")
    add(7, "Missing data: share per variable and session, dropout definition and rate per arm, handling, MAR, sensitivity", "partly",
        f"Share of session rows missing: alliance {pct(miss.get('alliance'), 2)}%, outcome "
        f"{pct(miss.get('symptoms'), 2)}% (by session and arm: missing-data figure). Dropout definition: "
        f"`{dropout_def}`; overall rate {pct(summary.get('dropout_rate'))}%, per arm in Table 1. "
        "Handling: each model uses the sessions with every model variable present (listwise by row); (RE)ML uses all available "
        "sessions of every patient, which is valid if missingness is at random given the model's variables (MAR). "
        "No sensitivity analysis for missing-not-at-random data in this run.")
    diag = [f.removeprefix("diagnostics_") for f in figures if f.startswith("diagnostics_")]
    add(8, "Assumption checks: residual plots, normality of random effects, influential therapists and patients",
        "partly" if diag else "not in this run",
        (f"Residuals against fitted values and QQ plots of residuals and random effects for: {', '.join(diag)}. " if diag else
         "No residuals or random effects were written by the model stage, so no diagnostic plots. ")
        + "Influence diagnostics (leave-one-therapist-out) are not in this run.")
    has_r = (effects is not None and len(effects) > 0) or bool(stats_of("r_from_t"))
    has_beta = bool(stats_of("beta_std"))
    has_r2 = bool(stats_of("r2_marginal"))
    add(9, "Effect sizes: raw and standardised β, r-equivalents, R²", "reported" if has_r and has_beta and has_r2 else "partly",
        "Raw β with 95% CIs for every model. "
        + ("r-equivalents (r from t) of the alliance coefficients, and per therapy, condition and stratum beside the benchmark "
           "r = .278. " if has_r else "No r-equivalents: the effects stage did not run. ")
        + (f"Standardised β for: {', '.join(stats_of('beta_std'))}. " if has_beta else "Standardised β not computed in this run. ")
        + (f"Marginal and conditional R² (Nakagawa & Schielzeth) for: {', '.join(stats_of('r2_marginal'))}." if has_r2
           else "Marginal/conditional R² not computed in this run."))
    sens = [
        ("detrended alliance", feats["detrended"]), ("lagged-outcome specification", feats["lagged"]),
        ("with the therapist level", feats["therapist_level"]), ("without the therapist level", feats["no_therapist_level"]),
        ("adjusted for early change", feats["early_change"]),
    ]
    done = [f"{what} ({', '.join(ms)})" for what, ms in sens if ms]
    missing = [what for what, ms in sens if not ms] + ["outliers (winsorised alliance)", "rater", "completers vs all"]
    add(10, "Sensitivity analyses", "partly" if len(fits) > 1 else "not in this run",
        f"Models in the suite: {', '.join(names)} (the table 'How the main estimate moves' compares their alliance coefficients). "
        f"Covered: {'; '.join(done) or 'none'}. Not in this run: {', '.join(missing)}.")
    return pd.DataFrame(rows, columns=["item", "topic", "status", "answer"])


# --------------------------------------------------------------------------- rendering


def _records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None:
        return []
    return [{k: (None if _missing(v) else v) for k, v in r.items()} for r in frame.to_dict(orient="records")]


def benchmark_position(r: float | None, ci_low: float | None = None, ci_high: float | None = None) -> tuple[str, bool | None]:
    """Where an r (with symptom improvement) lies relative to the benchmark's CI [.256, .299]
    ('inside', 'above', 'below'), and whether its own CI overlaps the benchmark's (None if unknown)."""
    if r is None or _missing(r):
        return "", None
    low, high = BENCHMARK_R[1], BENCHMARK_R[2]
    where = "inside" if low <= r <= high else ("above" if r > high else "below")
    if ci_low is None or ci_high is None or _missing(ci_low) or _missing(ci_high):
        return where, None
    return where, bool(ci_low <= high and ci_high >= low)


def suite_effects(effect_sizes: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The r-equivalents of every alliance coefficient of the suite (effects/effect_sizes.csv,
    level overall, model-based r), sign flipped to r with symptom improvement where the outcome
    is a symptom score."""
    if effect_sizes is None or not len(effect_sizes):
        return []
    frame = effect_sizes[(effect_sizes["level"] == "overall") & effect_sizes["estimate"].notna()]
    rows = []
    for r in _records(frame):
        flip = str(r.get("outcome", "")).startswith("symptoms")
        r["flip"] = flip
        sign = -1.0 if flip else 1.0
        r["r_shown"] = None if r.get("r") is None else sign * float(r["r"])
        lo, hi = r.get("r_ci_low"), r.get("r_ci_high")
        r["ci_shown"] = (None, None) if lo is None or hi is None else tuple(sorted((sign * float(lo), sign * float(hi))))
        rows.append(r)
    return rows


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
    effects: pd.DataFrame | None = None,
    effect_sizes: pd.DataFrame | None = None,
    patients: pd.DataFrame | None = None,
    model_order: list[str] | None = None,
    primary_model: str | None = None,
    run_date: str | None = None,
    versions: dict[str, str] | None = None,
    commit: str | None = None,
    pdf_tool: str = "",
) -> dict[str, Any]:
    """Everything the template needs, computed from the run's files (no rendering yet)."""
    if model_order:  # the analyst's order of the suite (config), not the file order
        rank = {n: k for k, n in enumerate(model_order)}
        order = sorted(range(len(fits)), key=lambda k: rank.get(fits[k].get("spec", {}).get("name"), len(rank)))
        fits, fixed, variance = [fits[k] for k in order], [fixed[k] for k in order], [variance[k] for k in order]
        comparison = comparison.assign(_rank=comparison["model"].map(rank).fillna(len(rank))).sort_values(
            "_rank", kind="stable").drop(columns="_rank")
    names = [f.get("spec", {}).get("name", "?") for f in fits]
    primary = primary_model if primary_model in names else next(
        (n for n, t in zip(names, fixed) if "alliance_within_patient" in set(t["term"])), names[0] if names else None)
    meaning = dict(zip(dictionary.get("column", pd.Series(dtype=str)), dictionary.get("meaning", pd.Series(dtype=str))))
    from_summary = summary.get("person_mean_reliability") or {}
    reliability = {  # the cleaning stage's estimate when it gives one (one number for one quantity)
        "patient": {**from_summary, "source": "summary"} if "mean" in from_summary else (
            mean_reliability(analysis["alliance"], analysis["patient"]) if {"alliance", "patient"} <= set(analysis.columns) else None),
    }
    if {"alliance", "patient", "therapist"} <= set(analysis.columns):
        pm = analysis.groupby(analysis["patient"].astype(str)).agg(alliance=("alliance", "mean"), therapist=("therapist", "first"))
        reliability["therapist"] = mean_reliability(pm["alliance"], pm["therapist"])
    models = []
    for name, f, fx, vc in zip(names, fits, fixed, variance):
        spec = f.get("spec", {})
        info = f.get("fit", {})
        config_m = f.get("config") or {}
        terms = [t for t in spec.get("fixed", [])]
        data_kind = (f.get("sample") or {}).get("data") or config_m.get("data", "sessions")
        derived = (f.get("sample") or {}).get("derived") or {}
        model_effects = [dict(e) for e in (f.get("effects") or [])]
        iccs = {e["group"]: e["value"] for e in model_effects if e.get("statistic") == "icc" and e.get("group")}
        fixed_rows = _records(fx)
        for r in fixed_rows:
            r["beta"] = coefficient_label(str(r["term"]), terms)
        contrasts = [dict(c) for c in (f.get("contrasts") or [])]
        contextual = next((c for c in contrasts if c.get("name") == "contextual"), None)
        contextual_source = "contrast" if contextual else "contextual"
        contextual = contextual or contextual_effect(f)
        models.append({
            "data": data_kind,
            "roles": config_m.get("roles") or {},
            "categorical": config_m.get("categorical") or dict(spec.get("categorical") or []),
            "sample": f.get("sample") or {},
            "effects": model_effects,
            "contrasts": contrasts,
            "r2": {e["statistic"]: e["value"] for e in model_effects if e.get("statistic") in ("r2_marginal", "r2_conditional")},
            "name": name,
            "label": f.get("label") or name,
            "spec": spec,
            "fit": info,
            "flags": f.get("flags") or [],
            "lme4_formula": f.get("lme4_formula", ""),
            "lme4_fitted": info.get("formula_lme4_fitted") or f.get("lme4_formula", ""),
            "statsmodels_call": info.get("statsmodels_call"),
            "test_statistic": "t" if satterthwaite(info) else "z",
            "has_df": satterthwaite(info) and "df" in fx.columns,
            "fixed_tests": fixed_tests_text(info),
            "equations": model_equations(
                spec, patients if data_kind == "patients" and patients is not None else analysis, info.get("n_groups"),
                roles=config_m.get("roles"), unit="patient" if data_kind == "patients" else "session",
                fitted_formula=info.get("formula_lme4_fitted") or "",
            ),
            "centring": [
                {"term": t, "meaning": meaning.get(t) or derived.get(t, ""), "role": (config_m.get("roles") or {}).get(t, "")}
                for t in dict.fromkeys([spec.get("outcome", "")] + [p for t in terms for p in t.split(":")])
            ],
            "fixed": fixed_rows,
            "variance": _records(vc),
            "shares": iccs or variance_shares(vc),
            "shares_source": "model stage (effects: icc)" if iccs else "computed from the variance components",
            "contextual": contextual,
            "contextual_source": f"contrast¦{name}¦contextual" if contextual_source == "contrast" else f"contextual¦{name}",
            "diagnostics": f"diagnostics_{name}" in figures,
        })
    primary_model_ctx = next((m for m in models if m["name"] == primary), None)
    primary_fixed = {r["term"]: r for r in (primary_model_ctx["fixed"] if primary_model_ctx else [])}
    effects_rows = []
    if effects is not None and len(effects):
        for r in _records(effects):
            r = dict(r)
            r["r_improvement"] = None if r.get("r") is None else -float(r["r"])
            r["ci_low_improvement"] = None if r.get("r_ci_high") is None else -float(r["r_ci_high"])
            r["ci_high_improvement"] = None if r.get("r_ci_low") is None else -float(r["r_ci_low"])
            r["position"], r["overlap"] = benchmark_position(r["r_improvement"], r["ci_low_improvement"], r["ci_high_improvement"])
            effects_rows.append(r)
    overall_within = next((r for r in effects_rows if r["level"] == "overall" and r["term"] == "alliance_within_patient"), None)
    therapist_models = [m for m in models if "therapist" in m["shares"]]
    checklist = reviewer_checklist(
        fits=fits, variance=variance, summary=summary, config=config, figures=list(figures), effects=effects, reliability=reliability,
    )
    findings_by_reason = (
        findings.groupby(["reason", "action"]).size().rename("count").reset_index().to_dict(orient="records") if len(findings) else []
    )
    t1 = table1.copy()
    sex_cols = [c for c in t1.columns if c.startswith("sex: ")]
    age_cols = [c for c in t1.columns if c.startswith("age: ")]
    return {
        "title": title,
        "summary": summary,
        "flow": _records(flow),
        "n_findings": len(findings),
        "findings_by_reason": findings_by_reason,
        "table1": _records(t1),
        "sex_cols": sex_cols,
        "age_cols": age_cols,
        "comparison": _records(comparison),
        "models": models,
        "primary": primary_model_ctx,
        "primary_fixed": primary_fixed,
        "flag_meanings": {k: v for k, v in FLAG_MEANINGS.items() if any(k in (m["flags"] or []) for m in models)},
        "inference": inference_summary(fits),
        "effects": effects_rows,
        "suite_effects": suite_effects(effect_sizes),
        "overall_within": overall_within,
        "benchmarks": BENCHMARKS,
        "benchmark_r": BENCHMARK_R,
        "therapist_models": therapist_models,
        "instruments": instrument_rows(config, registry, summary.get("measures")),
        "reliable_change": summary.get("reliable_change") or {},
        "reliability": reliability,
        "checklist": _records(checklist),
        "checklist_frame": checklist,
        "figures": {name: embed_png(path) for name, path in figures.items()},
        "captions": {name: caption(name if not name.startswith("diagnostics_") else "diagnostics") for name in figures},
        "figure_alt": FIGURES,
        "config": config,
        "config_yaml": yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
        "versions": versions if versions is not None else package_versions(),
        "commit": commit if commit is not None else git_commit(),
        "run_date": run_date or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "pdf_tool": pdf_tool,
        "alliance_unit": "mean item-score points (1–5 for the WAI-SR)" if summary.get("alliance_score") == "mean" else "total-score points",
        "outcome_unit": {"pomp": "POMP points (percent of the maximum possible score, 0–100)", "baseline_z": "baseline SD units",
                         "raw": "raw total-score points"}.get(summary.get("outcome_scale"), str(summary.get("outcome_scale"))),
    }


def render_html(context: dict[str, Any]) -> str:
    """Render the report template with a context from ``report_context``."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.filters["p"] = fmt_p
    env.filters["r"] = fmt_r
    env.filters["pct"] = pct
    env.filters["wbr"] = wbr
    return env.get_template("report.html.j2").render(**context, json=json)


# --------------------------------------------------------------------------- PDF

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_MAC = "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-extensions", "--mute-audio",
)
INSTALL_HINT = (
    "The PDF of the report is printed by headless Chromium, which was not found. Install it "
    "(Debian/Ubuntu: `sudo apt-get install chromium`; Fedora: `sudo dnf install chromium`; macOS: install Google Chrome) "
    "or point the environment variable ALLIANCE_CHROMIUM at a Chromium or Chrome executable, then rerun."
)


class BrowserNotFound(RuntimeError):
    """No Chromium/Chrome to print the PDF with."""


def find_browser() -> str:
    """The Chromium executable: $ALLIANCE_CHROMIUM, else chromium/chrome on PATH, else macOS Chrome."""
    explicit = os.environ.get("ALLIANCE_CHROMIUM")
    if explicit:
        if shutil.which(explicit) or Path(explicit).is_file():
            return shutil.which(explicit) or explicit
        raise BrowserNotFound(f"ALLIANCE_CHROMIUM={explicit!r} is not an executable. " + INSTALL_HINT)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    if Path(CHROMIUM_MAC).is_file():
        return CHROMIUM_MAC
    raise BrowserNotFound(INSTALL_HINT)


def browser_version(browser: str) -> str:
    """'Chromium 156.0...' (the first line of --version)."""
    try:
        out = subprocess.run([browser, "--version"], capture_output=True, text=True, timeout=60)
        return (out.stdout.strip().splitlines() or ["unknown"])[-1].strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def html_to_pdf(html: str | Path, pdf: str | Path, browser: str | None = None, timeout: float = 180) -> None:
    """Print the HTML file to PDF with headless Chromium (the same document a reader sees,
    laid out by the print stylesheet of the template), without network access or profile."""
    browser = browser or find_browser()
    html, pdf = Path(html).resolve(), Path(pdf).resolve()
    with tempfile.TemporaryDirectory(prefix="alliance-chromium-") as profile:
        command = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
                   f"--print-to-pdf={pdf}", html.as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not pdf.exists() or pdf.read_bytes()[:5] != b"%PDF-":
        raise RuntimeError(f"Chromium did not write a PDF (exit {done.returncode}): {done.stderr[-2000:]}")
