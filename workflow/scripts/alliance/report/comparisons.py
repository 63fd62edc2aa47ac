"""Like with like: the report compares a published benchmark only with the run's estimate of the
same design (config ``report.benchmark.design``), shows within-patient effects on their own, and
puts heterogeneity across therapy types and conditions as a test.

* **Patient level** (the design Flückiger et al. 2018 pool): models on one row per patient
  (``data: patients``) with a predictor of role ``patient_level`` (config ``models[].roles``), the
  early or averaged alliance with the end-of-treatment outcome, adjusted for baseline.  Their
  r-equivalent is the model stage's ``r_from_t`` (fit.json ``effects``): r = t/√(t² + df) with
  df = patients − 2, the one r-equivalent method of the report (docs/methods.md section 8).
* **Within patient**: the standardised coefficient with person-level SDs (``beta_std``) and the
  repeated-measures correlation (``r_within``) of the main model's within-patient term; there is no
  published within-patient benchmark in the configuration, so they are not set against one.
* **Heterogeneity**: the moderation model's omnibus Wald tests (fit.json ``contrasts`` of kind
  ``wald``), one per moderator, instead of per-stratum above/below labels.
"""

from __future__ import annotations

from typing import Any

from alliance.report.wording import is_missing

#: the role of a predictor measured once per patient (config models[].roles) whose outcome model
#: is the design of the alliance-outcome meta-analyses
PATIENT_LEVEL_ROLE = "patient_level"


def _effect(fit: dict[str, Any], statistic: str, term: str) -> dict[str, Any] | None:
    """One row of fit.json ``effects`` (statistic, term), or None."""
    return next(
        (e for e in (fit.get("effects") or []) if e.get("statistic") == statistic and e.get("term") == term), None
    )


def _flags(fit: dict[str, Any]) -> list[str]:
    return list(fit.get("flags") or [])


def is_baseline_term(term: str) -> bool:
    """A covariate that adjusts for the baseline outcome (the intake's ``*_baseline*`` columns)."""
    return "baseline" in term


def patient_level_rows(fits: list[dict[str, Any]], benchmark: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's estimates of the benchmark's design: for each patient-level model with a
    ``patient_level`` predictor, that predictor's r-equivalent (as r with symptom improvement where
    the outcome is a symptom score), its CI, df and method, what the model adjusts for, and where
    the point estimate lies against the benchmark's CI."""
    rows = []
    for fit in fits:
        config = fit.get("config") or {}
        roles = config.get("roles") or {}
        if config.get("data") != "patients":
            continue
        fixed = list((fit.get("spec") or {}).get("fixed") or config.get("fixed") or [])
        for term, role in roles.items():
            effect = _effect(fit, "r_from_t", term) if role == PATIENT_LEVEL_ROLE else None
            if effect is None or is_missing(effect.get("value")):
                continue
            outcome = str((fit.get("spec") or {}).get("outcome") or config.get("outcome") or "")
            sign = -1.0 if outcome.startswith("symptoms") else 1.0
            r = sign * float(effect["value"])
            ends = sorted(sign * float(effect[k]) for k in ("ci_low", "ci_high"))
            rows.append(
                {
                    "model": config.get("name") or (fit.get("spec") or {}).get("name"),
                    "label": fit.get("label") or config.get("name"),
                    "term": term,
                    "outcome": outcome,
                    "flip": sign < 0,
                    "r": r,
                    "ci_low": ends[0],
                    "ci_high": ends[1],
                    "df": effect.get("df"),
                    "n_patients": effect.get("n_patients"),
                    "n_therapists": effect.get("n_therapists"),
                    "adjusted_for": [t for t in fixed if t != term],
                    "baseline_adjusted": any(is_baseline_term(t) for t in fixed if t != term),
                    "position": benchmark_side(r, benchmark),
                    "overlap": bool(ends[0] <= benchmark["ci_high"] and ends[1] >= benchmark["ci_low"]),
                    "flags": _flags(fit),
                    "source": f"modeleffect¦{config.get('name')}¦r_from_t¦{term}¦¦",
                }
            )
    return rows


def benchmark_side(r: float, benchmark: dict[str, Any]) -> str:
    """Where r lies against the benchmark's 95% CI: 'inside', 'above' or 'below'.

    >>> benchmark_side(0.17, {"ci_low": 0.256, "ci_high": 0.299})
    'below'
    """
    if benchmark["ci_low"] <= r <= benchmark["ci_high"]:
        return "inside"
    return "above" if r > benchmark["ci_high"] else "below"


def within_patient_rows(fits: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """Within-patient effects of the models ``names`` (the main model first): the standardised
    coefficient with person-level SDs and the repeated-measures r with its CI and df, each quoted
    from the model stage (fit.json ``effects``)."""
    by_name = {(f.get("config") or {}).get("name") or (f.get("spec") or {}).get("name"): f for f in fits}
    rows = []
    for name in names:
        fit = by_name.get(name)
        if fit is None:
            continue
        roles = (fit.get("config") or {}).get("roles") or {}
        for term, role in roles.items():
            if role != "within_patient":
                continue
            beta, rm = _effect(fit, "beta_std", term), _effect(fit, "r_within", term)
            if beta is None and rm is None:
                continue
            rows.append(
                {
                    "model": name,
                    "label": fit.get("label") or name,
                    "term": term,
                    "outcome": (fit.get("spec") or {}).get("outcome", ""),
                    "beta_std": None if beta is None else beta.get("value"),
                    "r_within": None if rm is None else rm.get("value"),
                    "r_ci_low": None if rm is None else rm.get("ci_low"),
                    "r_ci_high": None if rm is None else rm.get("ci_high"),
                    "df": None if rm is None else rm.get("df"),
                    "flags": _flags(fit),
                    "source": f"modeleffect¦{name}¦",
                }
            )
    return rows


def heterogeneity_tests(fits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The omnibus Wald tests of moderation by each moderator (therapy type, condition) that the
    model stage wrote (fit.json ``contrasts`` of kind 'wald' with a moderator), with the model
    they come from, the test (``F`` with Satterthwaite denominator df or ``χ²``) and the
    data-source of their numbers."""
    rows = []
    for fit in fits:
        name = (fit.get("config") or {}).get("name") or (fit.get("spec") or {}).get("name")
        for c in fit.get("contrasts") or []:
            if c.get("kind") != "wald" or not c.get("moderator"):
                continue
            rows.append(
                {
                    "model": name,
                    "label": fit.get("label") or name,
                    "moderator": c["moderator"],
                    "term": c.get("term"),
                    "statistic": c.get("statistic"),
                    "df": c.get("df"),
                    "df_denominator": c.get("df_denominator"),
                    # F with Satterthwaite denominator df, or Wald chi-square (the table's df_method)
                    "test": "F" if c.get("df_denominator") is not None else "χ²",
                    "df_method": c.get("df_method"),
                    "p": c.get("p"),
                    "source": f"contrast¦{name}¦{c['name']}¦",
                }
            )
    return rows
