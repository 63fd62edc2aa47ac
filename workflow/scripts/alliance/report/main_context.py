"""What the main report adds to the context of ``alliance.report.context``: the like-with-like
benchmark comparison, the within-patient effects on their own, the tests of heterogeneity,
estimate beside truth, the primary models and the caveats in plain words.  The supplement uses
the rest of the context (every model table, diagnostics, the reviewer checklist)."""

from __future__ import annotations

from typing import Any

from alliance.report.comparisons import heterogeneity_tests, patient_level_rows, within_patient_rows
from alliance.report.terms import term_label, term_labels
from alliance.report.truth import suite_truth_rows

#: the report's one r-equivalent, as the model stage computes it for patient-level predictors
#: (alliance.models.effects.role_df: df = patients − 2)
R_METHOD = "r = t / √(t² + df), with df = number of patients − 2 (the df of a correlation over patients)"

#: fit flags in a reader's words (the supplement's flag list has the full meanings)
FLAG_WORDS = {
    "boundary": "singular fit: a random-effect variance estimated at or near zero",
    "not_converged": "the optimiser did not report convergence",
    "refitted": "refitted with another optimiser",
    "optimum_disagreement": "optimisers reached different optima",
    "exact_zero_fixed": "a fixed effect of exactly zero",
    "simplified": "random effects simplified from the specification (a singular fit refitted without its "
    "parameters at the boundary, estimates and tests from the simplified fit)",
    "cross_check_disagreement": "a second engine disagrees",
    "not_identified": "not fitted: the data cannot identify it",
    "no_therapist_level": "not fitted: it needs therapists, and the dataset records none",
    "few_clusters": "fewer clusters than parameters: the cluster-robust SEs are unreliable",
    # the pooled rows of several studies (alliance.pooling.two_stage)
    "tau2_boundary": "τ² estimated at 0: no heterogeneity beyond sampling error detected",
    "studies_flagged": "a study's fit carries flags",
    "studies_not_fitted": "a study gave no estimate and is left out",
    "too_few_studies": "not pooled: fewer than two studies have an estimate",
}


def flag_words(flag: str) -> str:
    """A fit flag in words, for the main report.

    >>> flag_words("boundary")
    'singular fit: a random-effect variance estimated at or near zero'
    """
    return FLAG_WORDS.get(flag, flag.replace("_", " "))


def models_by_flag(models: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each fit flag of the suite, in words, with the labels of the models that carry it."""
    out: dict[str, list[str]] = {}
    for m in models:
        for flag in m.get("flags") or []:
            out.setdefault(flag_words(flag), []).append(m.get("label") or m.get("name"))
    return out


def zero_therapist_variance(models: list[dict[str, Any]], labels: dict[str, str]) -> list[str]:
    """The labels of the models whose therapist intercept variance is estimated as zero."""
    out = []
    for m in models:
        # a singular fit that was simplified: its as-specified fit's variance (alliance.models.singular)
        specified = ((m.get("singular") or {}).get("as_specified") or {}).get("variance_components")
        for r in specified or m.get("variance") or []:
            if r.get("group") == "therapist" and r.get("term") == "Intercept" and r.get("variance") == 0:
                out.append(m.get("label") or term_label(m.get("name"), labels))
    return out


def simplified_models(models: list[dict[str, Any]], labels: dict[str, str]) -> list[str]:
    """The labels of the models whose singular fit was refitted with a simpler structure."""
    return [
        m.get("label") or term_label(m.get("name"), labels)
        for m in models
        if (m.get("singular") or {}).get("simplified")
    ]


def main_report_context(
    *,
    models: list[dict[str, Any]],
    fits: list[dict[str, Any]],
    benchmark: dict[str, Any],
    primary_name: str | None,
    truth: dict[str, Any] | None,
    config: dict[str, Any],
) -> dict[str, Any]:
    """The main report's parts: ``patient_level`` (the benchmark's design), ``within_effects``,
    ``heterogeneity``, ``suite_truth``, ``primary_models`` (the main model, then the patient-level
    models of the benchmark comparison) and ``zero_therapist``."""
    labels = term_labels(config)
    patient_level = patient_level_rows(fits, benchmark)
    wanted = [primary_name, *[r["model"] for r in patient_level]]
    by_name = {m["name"]: m for m in models}
    return {
        "term_labels": labels,
        "model_labels": {m["name"]: m["label"] for m in models},
        "r_method": R_METHOD,
        "patient_level": patient_level,
        "within_effects": within_patient_rows(fits, [primary_name] if primary_name else []),
        "heterogeneity": heterogeneity_tests(fits),
        "suite_truth": suite_truth_rows(truth, fits) if truth is not None else None,
        "primary_models": [by_name[n] for n in dict.fromkeys(wanted) if n in by_name],
        "zero_therapist": zero_therapist_variance(models, labels),
        "simplified_models": simplified_models(models, labels),
        "flagged_models": sum(bool(m.get("flags")) for m in models),
        "models_by_flag": models_by_flag(models),
    }
