"""How the report words things: numbers (``fmt``, ``pct``, ``fmt_p``, ``fmt_r``), the tests
and engines of the fits, citations, the published benchmarks and the figure captions.

Nothing here computes a statistic: every function turns a value the run already wrote into
text (and ``parse_number``/``decimals`` turn it back, for the tests and for readers).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from alliance.models.effects import d_from_r

#: workflow/report: the HTML template and the captions Snakemake's report shows.
TEMPLATE_DIR = Path(__file__).resolve().parents[3] / "report"

#: Published benchmarks (methods.md §1) besides the configured one (config ``report.benchmark``),
#: shown beside the run's own estimates; the configured benchmark is the second row.
PUBLISHED_BENCHMARKS_BEFORE = [
    {
        "source": "Horvath, Del Re, Flückiger & Symonds (2011), Psychotherapy 48(1):9–16",
        "data": "190 data sources, > 14,000 treatments",
        "result": "alliance–outcome r = .275 [.25, .30]",
    },
]
PUBLISHED_BENCHMARKS_AFTER = [
    {
        "source": "Flückiger et al. (2020), J Couns Psychol 67(6):706–711",
        "data": "60 samples, 6,061 patients",
        "result": "adjusted for intake and concurrent processes: r = .23 to .31",
    },
    {
        "source": "Johns, Barkham, Kellett & Saxon (2019), Clin Psychol Rev 67:78–93",
        "data": "20 studies",
        "result": "therapist share of outcome variance: weighted mean 5% (trials 8.2%)",
    },
]

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
    "simplification note): a singular fit refitted without the variances and correlations at the boundary "
    "(analysis.singular_fits; both fits are reported, and estimates, SEs, df, p and CIs come from the simplified "
    "one, a predictor measured at a dropped level tested on that level's df), or a structure the engine cannot fit",
    "cross_check_disagreement": "a second engine's fixed effects differ from this engine's beyond the tolerance",
    "not_identified": "not fitted: the data cannot identify the model (a grouping factor with fewer than 2 levels or "
    "with a level per row, a random slope without within-group variation, an outcome or fixed term that does not "
    "vary; the model's note says which), checked before any engine runs",
    "no_therapist_level": "not fitted: the model needs a therapist level and the dataset records no therapists "
    "(analysis.without_therapists; the model's note says why)",
}

#: What each engine (fit.json: fit.engine) is, for the methods text.
ENGINE_DESCRIPTIONS = {
    "statsmodels": "statsmodels MixedLM with the pipeline's safeguards (several optimisers, the best log-likelihood kept; "
    "fixed-effect SEs from (X′V⁻¹X)⁻¹ at the estimates, as lme4)",
    "mixedlm": "the mixedlm package (lme4's model and REML/ML criterion reimplemented for Python; BLUPs and an independent "
    "profiled check of its estimates computed by the pipeline)",
    "lme4": "R's lme4 with lmerTest, run through Rscript (BLUPs and an independent profiled check of its estimates computed "
    "by the pipeline)",
}
#: how contrasts and joint tests are tested, by the df_method of the contrasts tables
#: (alliance.engines.spec.FitResult.contrast / wald_test; alliance.engines.ddf)
CONTRAST_TESTS = {
    "satterthwaite": (
        "contrasts (such as the contextual effect) and simple slopes are t tests with Satterthwaite degrees of "
        "freedom, and tests of several coefficients at once are F tests with Satterthwaite denominator degrees "
        "of freedom (as lmerTest's contest()), the same df method as the fixed effects"
    ),
    "asymptotic": (
        "contrasts and simple slopes are Wald z tests, and tests of several coefficients at once are Wald χ² "
        "tests (df = number of coefficients): the engine gives no Satterthwaite degrees of freedom"
    ),
}


# --------------------------------------------------------------------------- numbers


def is_missing(value: Any) -> bool:
    """Whether a value is None or NaN/NA (and not, say, a string or a list)."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    """A table as a list of row dicts, with None for every missing value (the template's test)."""
    if frame is None:
        return []
    return [{k: (None if is_missing(v) else v) for k, v in r.items()} for r in frame.to_dict(orient="records")]


def digits_for(se: Any, least: int = 3, most: int = 6) -> int:
    """Decimals that show an estimate with two significant digits of its SE, within [least, most].

    For coefficients whose size depends on the units (a cross-lag from a 1–5 alliance score to a
    0–100 symptom score is large, the reverse small), so that neither shows as 0.000.

    >>> digits_for(0.0012), digits_for(0.33), digits_for(2.1), digits_for(None)
    (4, 3, 3, 3)
    """
    if is_missing(se) or not np.isfinite(float(se)) or float(se) <= 0:
        return least
    return int(min(most, max(least, 1 - int(np.floor(np.log10(float(se)))))))


def fmt(value: Any, digits: int = 3) -> str:
    """A number for the report: fixed decimals, a true minus sign, '–' for missing."""
    if is_missing(value):
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
    if is_missing(value):
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
    if is_missing(value):
        return "–"
    return "< .001" if value < 0.001 else f"{value:.3f}".lstrip("0")


def fmt_r(value: Any, digits: int = 3) -> str:
    """A correlation without the leading zero (APA): .278, −.120."""
    if is_missing(value):
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


# --------------------------------------------------------------------------- citations and captions


def citation_text(citation: str) -> str:
    """A citation without live links: 'https://doi.org/10.x' becomes 'doi:10.x'."""
    text = re.sub(r"https?://(dx\.)?doi\.org/", "doi:", " ".join(str(citation).split()))
    return re.sub(r"https?://", "", text)


def caption(name: str, directory: Path = TEMPLATE_DIR, params: dict[str, Any] | None = None) -> str:
    """The caption of a figure: the same text Snakemake's report shows (``workflow/report/<name>.rst``).

    A caption may quote its rule's params as Snakemake renders captions
    (``{{ snakemake.params.benchmark.r }}``); ``params`` are those params here.
    """
    path = directory / f"{name}.rst"
    if not path.exists():
        return ""
    text = (
        jinja2.Environment(undefined=jinja2.StrictUndefined)
        .from_string(path.read_text(encoding="utf-8"))
        .render(snakemake={"params": params or {}})
    )
    text = " ".join(text.split())
    return text.replace("``", "")


def benchmark_text(benchmark: dict[str, Any]) -> str:
    """'r = .278 [.256, .299]': the configured benchmark (config ``report.benchmark``) and its 95% CI."""
    return f"r = {fmt_r(benchmark['r'])} [{fmt_r(benchmark['ci_low'])}, {fmt_r(benchmark['ci_high'])}]"


def published_benchmarks(benchmark: dict[str, Any]) -> list[dict[str, str]]:
    """The rows of the report's table of published benchmarks, the configured one (with its d,
    d = 2r/√(1 − r²)) among them."""
    d = float(d_from_r(benchmark["r"])["d"].iloc[0])
    setting = f"{benchmark['setting']} " if benchmark.get("setting") else ""
    configured = {
        "source": benchmark["source"],
        "data": benchmark["data"],
        "result": f"{setting}{benchmark_text(benchmark)}, d = {fmt_r(d)}",
    }
    return [*PUBLISHED_BENCHMARKS_BEFORE, configured, *PUBLISHED_BENCHMARKS_AFTER]


def figure_alt_texts(benchmark: dict[str, Any]) -> dict[str, str]:
    """The figures in the order the report shows them: name -> alt text."""
    return {
        "flow_diagram": "Exclusion flow diagram: rows, patients and therapists after each cleaning step",
        "missing_data": "Missing data by session and arm",
        "trajectories_symptoms": "Symptom trajectories by therapy type",
        "trajectories_alliance": "Alliance trajectories by therapy type",
        "within_between": "Within-patient and between-patient association of alliance and symptoms",
        "alliance_forest": "Forest plot of the alliance effect as r; the patient-level models against the "
        f"{benchmark['citation']} benchmark",
        "therapist_effects": "Caterpillar plot of therapist random effects with 95% intervals",
        "therapist_influence": "Each focal estimate with each therapist left out, against the estimate with every "
        "therapist and its 95% CI",
        "lagged_dynamics": "Cross-lags in both directions and carry-overs: the RI-CLPM beside the lagged multilevel "
        "models, with 95% CIs and the true values of simulated data",
    }


# --------------------------------------------------------------------------- tests and engines


def satterthwaite(info: dict[str, Any]) -> bool:
    """Whether a fit's fixed-effect tests used Satterthwaite df (fit.json: ``fit.df_method``)."""
    return "satterthwaite" in str(info.get("df_method") or "").lower()


def split_by_test(names: list[str], infos: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The models whose fixed-effect tests are t with Satterthwaite df, and those that are Wald z."""
    return (
        [n for n, i in zip(names, infos) if satterthwaite(i)],
        [n for n, i in zip(names, infos) if not satterthwaite(i)],
    )


def fixed_tests_text(info: dict[str, Any]) -> str:
    """One model's sentence on its fixed-effect tests, from fit.json's ``fit`` (``df_method``)."""
    method = info.get("df_method") or "method not recorded"
    if satterthwaite(info):
        return (
            f"Fixed-effect tests are t tests with Satterthwaite degrees of freedom ({method}): p values and 95% CIs "
            "come from the t distribution with those df (column df)."
        )
    return (
        f"Fixed-effect tests are Wald z tests ({method}), without small-sample degrees of freedom: p values and 95% CIs "
        "come from the normal distribution."
    )


def engine_text(info: dict[str, Any]) -> str:
    """'mixedlm 1.3.0: the mixedlm package (...)': the engine, its version and what it is."""
    engine = str(info.get("engine") or "unknown engine")
    version = str(info.get("engine_version") or "").strip()
    described = ENGINE_DESCRIPTIONS.get(engine)
    return f"{engine} {version}".strip() + (f": {described}" if described else "")


def _fixed_tests_sentences(names: list[str], infos: list[dict[str, Any]]) -> tuple[str, str]:
    """The run's sentence on its fixed-effect tests, in a long and a short form (per model when
    the models differ)."""
    t_models, z_models = split_by_test(names, infos)
    t_methods = ", ".join(sorted({str(i.get("df_method")) for i in infos if satterthwaite(i)}))
    if t_models and not z_models:
        return (
            f"Fixed-effect tests are t tests with Satterthwaite degrees of freedom ({t_methods}).",
            "Fixed-effect tests are t tests with Satterthwaite degrees of freedom",
        )
    if z_models and not t_models:
        return (
            "Fixed-effect tests are Wald z tests, without small-sample degrees of freedom.",
            "Fixed-effect tests are Wald z tests (no small-sample degrees of freedom)",
        )
    if t_models:
        return (
            f"Fixed-effect tests are t tests with Satterthwaite degrees of freedom ({t_methods}) for "
            f"{', '.join(t_models)}, and Wald z tests without small-sample degrees of freedom for {', '.join(z_models)}.",
            f"Fixed-effect tests are t tests with Satterthwaite degrees of freedom for {', '.join(t_models)} and "
            f"Wald z tests (no small-sample degrees of freedom) for {', '.join(z_models)}",
        )
    return "No model was fitted", "No model was fitted"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def contrast_tests_text(fits: list[dict[str, Any]]) -> tuple[str, str]:
    """The run's sentence on its contrasts and joint tests, long and short, from the ``df_method``
    of each model's contrasts (per model when the models differ)."""
    methods: dict[str, set[str]] = {}
    for f in fits:
        for c in f.get("contrasts") or []:
            methods.setdefault(f.get("spec", {}).get("name", "?"), set()).add(str(c.get("df_method") or ""))
    if not methods:
        return "No model has contrasts or tests of several coefficients.", ""
    satt = [n for n, ms in methods.items() if all("Satterthwaite" in m for m in ms)]
    asym = [n for n in methods if n not in satt]
    if not asym:
        short = "contrasts are t and F tests with Satterthwaite degrees of freedom"
        return _sentence(CONTRAST_TESTS["satterthwaite"]), short
    if not satt:
        return _sentence(CONTRAST_TESTS["asymptotic"]), "contrasts are Wald z tests"
    return (
        f"For {', '.join(satt)}, {CONTRAST_TESTS['satterthwaite']}; for {', '.join(asym)}, {CONTRAST_TESTS['asymptotic']}.",
        "contrasts are t and F tests with Satterthwaite degrees of freedom, or Wald z where the engine gives none",
    )


def inference_summary(fits: list[dict[str, Any]]) -> dict[str, str]:
    """The run's sentences on estimation and tests: ``engines`` (engine and version, per model
    when they differ), ``fixed_tests`` (t with Satterthwaite df or Wald z, per model when they
    differ), ``contrasts`` (t / F with Satterthwaite df, or Wald z / χ², from the contrasts
    tables' ``df_method``) and ``findings`` (a short form)."""
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
    fixed, short = _fixed_tests_sentences(names, infos)
    contrasts, contrasts_short = contrast_tests_text(fitted)
    return {
        "engines": engines or "no model was fitted",
        "fixed_tests": fixed,
        "contrasts": contrasts,
        "findings": short + (f"; {contrasts_short}." if infos and contrasts_short else "."),
    }
