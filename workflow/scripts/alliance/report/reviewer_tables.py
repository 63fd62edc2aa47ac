"""The supplement's "Analyses reviewers ask for": the model stage's tables of multiplicity control
(``multiplicity.csv``), leave-one-therapist-out influence (``<model>/therapist_influence.csv``) and
sensitivity analyses (``<model>/sensitivity.csv``), shown as they are, with readable headers and
term names.  The workflow lists these files (``REVIEWER_TABLES`` of rules/models.smk); a run
without them shows no such section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from alliance.report.terms import term_label
from alliance.report.wording import fmt, fmt_p, is_missing

#: what each table is, by file name
TABLE_TITLES = {
    "multiplicity": "Multiplicity control across the suite: Holm and Benjamini–Hochberg adjusted p beside the unadjusted p",
    "therapist_influence": "Influence of single therapists: the model refitted without each therapist",
    "sensitivity": "Sensitivity analyses: intention-to-treat, completers, sessions attended, winsorised alliance",
    "variance_ci": "Confidence intervals of the variance components and ICCs",
}
#: column headers a reader understands (other columns by the term-label rules)
COLUMN_LABELS = {
    "se": "SE",
    "df": "df",
    "p": "p",
    "p_holm": "p (Holm)",
    "p_bh": "p (Benjamini–Hochberg)",
    "ci_low": "95% CI, lower",
    "ci_high": "95% CI, upper",
    "r": "r",
    "r_ci_low": "r, 95% CI lower",
    "r_ci_high": "r, 95% CI upper",
    "n_obs": "Rows",
    "n_patients": "Patients",
    "n_therapists": "Therapists",
    "dfbetas": "DFBETAS",
    "estimate_all": "Estimate (all therapists)",
    "se_all": "SE (all therapists)",
    "df_all": "df (all therapists)",
    "ci_low_all": "95% CI (all therapists), lower",
    "ci_high_all": "95% CI (all therapists), upper",
    "estimate_without": "Estimate without the therapist",
    "se_without": "SE without the therapist",
    "df_without": "df without the therapist",
}
#: columns whose values are names of terms, groups or models (shown by their label)
NAME_COLUMNS = {"term", "group", "role", "stratum", "moderator"}


def _kind(path: Path) -> str:
    return path.stem


def _cell(column: str, value: Any, labels: dict[str, str]) -> str:
    """One cell as the reader sees it."""
    if is_missing(value):
        return "–"
    if column.startswith("p") and (column == "p" or column.startswith("p_")):
        return fmt_p(value)
    if column in NAME_COLUMNS:
        return term_label(value, labels)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return fmt(value, 0 if float(value).is_integer() and column.startswith("n_") else 3)
    return str(value).replace("_", " ")


def reviewer_tables(
    paths: list[str | Path], model_labels: dict[str, str], labels: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Each table as a title, headers and text rows (``model_labels``: model name -> its label,
    ``labels``: config report.term_labels)."""
    out = []
    for path in [Path(p) for p in paths or []]:
        if not path.exists():
            continue
        frame = pd.read_csv(path, keep_default_na=True)
        models = list(dict.fromkeys(frame["model"].astype(str))) if "model" in frame.columns else []
        title = TABLE_TITLES.get(_kind(path), term_label(_kind(path), labels))
        if len(models) == 1:
            title += f" ({model_labels.get(models[0], term_label(models[0], labels))})"
        columns = [c for c in frame.columns if not (c == "model" and len(models) == 1)]
        rows = []
        for record in frame.to_dict(orient="records"):
            rows.append(
                [
                    model_labels.get(str(record[c]), str(record[c]))
                    if c == "model"
                    else _cell(c, record[c], labels or {})
                    for c in columns
                ]
            )
        header = [COLUMN_LABELS.get(c) or term_label(c, labels) for c in columns]
        out.append({"title": title, "header": header, "rows": rows})
    return out
