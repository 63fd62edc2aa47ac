"""Readable names for the report's terms, groups and outcomes: a reader sees "Alliance (within
patient)" where the model stage writes ``alliance_within_patient``.

The defaults below cover the names the intake and model stages derive; config
``report.term_labels`` overrides or adds any (``{name: label}``).  A name neither knows is made
readable by rule (underscores to spaces, a trailing ``_c`` as "(centred)", ``column[T.level]`` as
"Column: level", ``a:b`` as "A × B"), so a new column never prints as an identifier.
"""

from __future__ import annotations

import re
from typing import Any

#: the derived names of the workflow, as a reader should see them
DEFAULT_TERM_LABELS: dict[str, str] = {
    "Intercept": "Intercept",
    "alliance": "Alliance",
    "symptoms": "Symptoms",
    "alliance_next": "Alliance at the next session",
    "symptoms_next": "Symptoms at the next session",
    "alliance_within_patient": "Alliance (within patient)",
    "alliance_between_patient": "Alliance (between patients)",
    "alliance_patient_within_therapist": "Alliance (patient within therapist)",
    "alliance_between_therapist": "Alliance (between therapists)",
    "symptoms_within_patient": "Symptoms (within patient)",
    "symptoms_between_patient": "Symptoms (between patients)",
    "wai_cwc": "Alliance (within patient)",
    "wai_pm_c": "Alliance (between patients)",
    "wai_cwt": "Alliance (patient within therapist)",
    "wai_tm_c": "Alliance (therapist mean)",
    "session_c": "Session (centred)",
    "expectancy_c": "Expectancy (centred)",
    "symptoms_last": "End-of-treatment symptoms",
    "symptoms_baseline_c": "Baseline symptoms (centred)",
    "symptoms_change_s3": "Early change (baseline to session 3)",
    "alliance_s3": "Alliance at session 3",
    "alliance_s1_4": "Mean alliance, sessions 1–4",
    "alliance_pm_c": "Patient mean alliance (centred)",
    "alliance_cwt": "Alliance (patient within therapist)",
    "alliance_tm_c": "Alliance (therapist mean)",
    "therapy": "Therapy",
    "condition": "Condition",
    "therapist": "Therapist",
    "patient": "Patient",
    "therapist:patient": "Patient (within therapist)",
    "Residual": "Residual",
    "residual": "Residual",
    # the model stage's statistics (fit.json effects)
    "r_from_t": "r-equivalent, r = t/√(t² + df)",
    "d_from_r": "d from the r-equivalent",
    "beta_std": "Standardised b",
    "r_within": "Repeated-measures r",
    "r_between": "r of patient means",
    "reliability_of_means": "Reliability of group means",
    "icc_cumulative": "ICC, this level and above",
    "icc_adjusted": "ICC, adjusted (Nakagawa et al. 2017)",
    "r2_marginal": "R², marginal",
    "r2_conditional": "R², conditional",
    "simple_slope": "Simple slope",
}

_CATEGORY = re.compile(r"^(?P<column>[A-Za-z_][A-Za-z0-9_]*)\[T\.(?P<level>[^\]]+)\]$")
_SLOPE = re.compile(r"^(?P<term>.+?) \| (?P<column>[A-Za-z_][A-Za-z0-9_]*) = (?P<level>.+)$")


def _by_rule(name: str) -> str:
    """A readable form of a name no table knows: 'expectancy_c' -> 'Expectancy (centred)'.

    >>> _by_rule("dropout_flag")
    'Dropout flag'
    >>> _by_rule("age_c")
    'Age (centred)'
    """
    centred = name.endswith("_c")
    words = (name[:-2] if centred else name).replace("_", " ").strip()
    text = words[:1].upper() + words[1:]
    return f"{text} (centred)" if centred else text


def term_label(name: Any, labels: dict[str, str] | None = None) -> str:
    """The reader's name of a term, group or variable (``labels``: config ``report.term_labels``
    over the defaults).  Interactions, categorical levels and simple slopes are labelled part by part.

    >>> term_label("alliance_within_patient")
    'Alliance (within patient)'
    >>> term_label("alliance_within_patient:therapy[T.PDT]")
    'Alliance (within patient) × Therapy: PDT'
    >>> term_label("alliance_within_patient | therapy = CBT")
    'Alliance (within patient), therapy CBT'
    >>> term_label("session_c", {"session_c": "Session number (centred at 1)"})
    'Session number (centred at 1)'
    """
    if name is None:
        return ""
    text = str(name)
    known = {**DEFAULT_TERM_LABELS, **(labels or {})}
    if text in known:
        return known[text]
    slope = _SLOPE.match(text)
    if slope:
        column = term_label(slope["column"], labels).lower()
        return f"{term_label(slope['term'], labels)}, {column} {slope['level']}"
    if ":" in text:
        return " × ".join(term_label(part, labels) for part in text.split(":"))
    category = _CATEGORY.match(text)
    if category:
        return f"{term_label(category['column'], labels)}: {category['level']}"
    return _by_rule(text)


def term_labels(config: dict[str, Any] | None) -> dict[str, str]:
    """Config ``report.term_labels`` (the analyst's names), {} when not given."""
    return dict(((config or {}).get("report") or {}).get("term_labels") or {})


#: an identifier inside free text: words joined by underscores, a categorical level, an interaction
_IDENTIFIER = re.compile(
    r"(?<![\w./\[-])([A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+(?:\[T\.[^\]]+\])?"
    r"(?::[A-Za-z][A-Za-z0-9_]*(?:\[T\.[^\]]+\])?)*|[a-z]+:[a-z]+(?:_[a-z]+)*)(?![\w/\[-]|\.\w)"
)
#: a file of the workflow named in free text (results, config, data, docs)
FILE_NAME = re.compile(r"(?<![\w/.-])(/?(?:[\w.-]+/)*[\w.-]+\.(?:csv|json|parquet|ya?ml|png|svg|md|smk|py|j2|tsv))\b")
#: a parenthesised pointer into the project's methods notes, e.g. '(methods.md §3: "a rule", marked "(check)")'
_METHODS_POINTER = re.compile(r"\s*\((?:[^()]|\([^()]*\))*?methods\.md(?:[^()]|\([^()]*\))*\)")


def readable_text(text: Any, labels: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """Free text from another stage (a contrast's label, a note, a flow step's reason) for the
    report: identifiers replaced by their labels and pointers into the project's methods notes
    dropped.  Returns the text and the file names it still names (the caller shows them as code).

    >>> readable_text("Omnibus Wald test, alliance_within_patient+alliance_between_patient x therapy")[0]
    'Omnibus Wald test, Alliance (within patient)+Alliance (between patients) x therapy'
    >>> readable_text('At most 1 of 9 items missing (methods.md §3: "a common rule", marked "(check)").')[0]
    'At most 1 of 9 items missing.'
    >>> readable_text("rows read data/raw/demo/sessions.csv")
    ('rows read data/raw/demo/sessions.csv', ['data/raw/demo/sessions.csv'])
    """
    if text is None:
        return "", []
    out = _METHODS_POINTER.sub("", str(text))
    files = FILE_NAME.findall(out)
    out = _IDENTIFIER.sub(
        lambda m: m.group(0) if FILE_NAME.fullmatch(m.group(0)) else term_label(m.group(0), labels), out
    )
    return out, files
