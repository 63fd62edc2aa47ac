"""Multiplicity control across the model suite: Holm and Benjamini-Hochberg p beside the unadjusted p.

A suite of a dozen models, one of them fitted again within every therapy x condition stratum,
tests many alliance terms; a reviewer asks how many of the small p values survive a correction
for that number.  :func:`multiplicity_table` answers with two families of hypotheses, each
adjusted on its own (docs/methods.md, "Multiplicity across the suite"):

* ``suite`` -- every fixed effect named in a model's ``roles`` (the focal alliance, or in the
  reverse-direction models symptom, terms), one test per model and term, from the model's own
  fit.  A moderated term's coefficient in the moderated model is the slope of the reference
  levels, not the overall effect, so its row comes from the model's stratum ``all`` fit (every
  patient, no moderators) when the model has strata, and is left out otherwise.
* ``strata:<model>`` -- the same terms within every stratum of a stratified model (the stratum
  ``all`` excluded: it is in ``suite``): the subgroup analysis, one family per stratified model.

Within a family the Holm (1979) step-down adjustment controls the family-wise error rate and the
Benjamini-Hochberg (1995) step-up adjustment the false-discovery rate; both come from
:func:`statsmodels.stats.multitest.multipletests` and match R's ``p.adjust`` (tests/r/p_adjust.R).
A row without a p value (a stratum too small to fit) stays in the table with empty adjusted p
and does not count in the family's size.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from alliance.models.config import STRATUM_ALL

__all__ = ["MULTIPLICITY_COLUMNS", "FAMILY_SUITE", "adjust_p", "multiplicity_table", "read_fixed_tables"]

#: the family of every focal term of every model's main fit
FAMILY_SUITE = "suite"

MULTIPLICITY_COLUMNS = [
    "family",
    "family_size",
    "model",
    "stratum",
    "term",
    "role",
    "estimate",
    "se",
    "df",
    "statistic",
    "p",
    "p_holm",
    "p_bh",
    "reject_holm_05",
    "reject_bh_05",
    "source",
    "flags",
]

#: familywise alpha of the reject columns
ALPHA = 0.05


def adjust_p(p: Iterable[float]) -> pd.DataFrame:
    """Holm and Benjamini-Hochberg adjusted p of one family; NaN p stay NaN and do not count.

    Examples
    --------
    >>> adjust_p([0.01, 0.04, 0.03, float("nan")]).round(4).to_dict(orient="list")
    {'p_holm': [0.03, 0.06, 0.06, nan], 'p_bh': [0.03, 0.04, 0.04, nan]}
    """
    values = np.asarray(list(p), dtype=float)
    holm = np.full(values.shape, np.nan)
    bh = np.full(values.shape, np.nan)
    tested = np.isfinite(values)
    if tested.any():
        holm[tested] = multipletests(values[tested], method="holm")[1]
        bh[tested] = multipletests(values[tested], method="fdr_bh")[1]
    return pd.DataFrame({"p_holm": holm, "p_bh": bh})


def _rows(
    fixed: pd.DataFrame, model: dict[str, Any], terms: list[str], family: str, source: str
) -> list[dict[str, Any]]:
    """The rows of ``terms`` in one fixed-effects table (a term the fit does not have is skipped)."""
    roles = model.get("roles") or {}
    out = []
    for term in terms:
        hit = fixed[fixed["term"] == term]
        for _, h in hit.iterrows():
            out.append(
                {
                    "family": family,
                    "model": model["name"],
                    "stratum": str(h["stratum"]) if "stratum" in h and pd.notna(h["stratum"]) else "",
                    "term": term,
                    "role": roles[term],
                    **{k: float(h[k]) for k in ("estimate", "se", "df", "statistic", "p")},
                    "source": source,
                    "flags": str(h["flags"]),
                }
            )
    return out


def _model_rows(
    model: dict[str, Any], fixed: pd.DataFrame | None, strata: dict[str, pd.DataFrame]
) -> list[dict[str, Any]]:
    """The suite rows of one model and the rows of its stratum family."""
    roles = list(model.get("roles") or {})
    moderated = set((model.get("moderation") or {}).get("terms", []))
    rows: list[dict[str, Any]] = []
    if fixed is not None:
        plain = [t for t in roles if t not in moderated]
        rows += _rows(fixed, model, plain, FAMILY_SUITE, "model fit")
    overall = [t for t in roles if t in moderated]
    if overall and STRATUM_ALL in strata:
        rows += _rows(strata[STRATUM_ALL], model, overall, FAMILY_SUITE, "stratum 'all' fit (no moderators)")
    for slug, table in strata.items():
        if slug != STRATUM_ALL:
            rows += _rows(table, model, roles, f"strata:{model['name']}", "stratum fit")
    return rows


def multiplicity_table(
    models: list[dict[str, Any]],
    fixed_tables: dict[str, pd.DataFrame],
    stratum_tables: dict[str, dict[str, pd.DataFrame]],
) -> pd.DataFrame:
    """The multiplicity table: unadjusted, Holm and BH p of every focal term, by family.

    ``fixed_tables[model]`` is a model's ``fixed_effects.csv``, ``stratum_tables[model][stratum]``
    a stratum fit's.  The families are described in the module docstring; rows are sorted by
    family (``suite`` first), model and stratum in the given order.

    Examples
    --------
    >>> fx = pd.DataFrame({"term": ["Intercept", "a", "b"], "estimate": [1.0, 2.0, 3.0], "se": 1.0,
    ...                    "df": 50.0, "statistic": [1.0, 2.0, 3.0], "p": [0.3, 0.02, 0.04], "flags": "none"})
    >>> m = {"name": "m1", "roles": {"a": "within_patient", "b": "between_patient"}}
    >>> t = multiplicity_table([m], {"m1": fx}, {})
    >>> t[["term", "p", "p_holm", "p_bh", "family_size"]].to_dict(orient="records")
    [{'term': 'a', 'p': 0.02, 'p_holm': 0.04, 'p_bh': 0.04, 'family_size': 2}, {'term': 'b', 'p': 0.04, 'p_holm': 0.04, 'p_bh': 0.04, 'family_size': 2}]
    """
    rows: list[dict[str, Any]] = []
    for model in models:
        name = model["name"]
        rows += _model_rows(model, fixed_tables.get(name), stratum_tables.get(name, {}))
    table = pd.DataFrame(rows, columns=[c for c in MULTIPLICITY_COLUMNS if c not in ("family_size",)])
    if table.empty:
        return pd.DataFrame(columns=MULTIPLICITY_COLUMNS)
    parts = []
    families = [FAMILY_SUITE] + [f for f in dict.fromkeys(table["family"]) if f != FAMILY_SUITE]
    for family in families:
        part = table[table["family"] == family].reset_index(drop=True)
        if part.empty:
            continue
        adjusted = adjust_p(part["p"])
        part["p_holm"] = adjusted["p_holm"]
        part["p_bh"] = adjusted["p_bh"]
        part["family_size"] = int(part["p"].notna().sum())
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    for method in ("holm", "bh"):
        out[f"reject_{method}_05"] = [
            "" if not math.isfinite(v) else ("yes" if v < ALPHA else "no") for v in out[f"p_{method}"]
        ]
    return out[MULTIPLICITY_COLUMNS]


def read_fixed_tables(
    fixed: Iterable[str | Path], stratum_fixed: Iterable[str | Path]
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, pd.DataFrame]]]:
    """The inputs of :func:`multiplicity_table` from ``models/<model>/fixed_effects.csv`` and
    ``models/<model>/strata/<stratum>/fixed_effects.csv`` (model and stratum read from the paths)."""
    fixed_tables = {Path(p).parent.name: pd.read_csv(p, dtype={"flags": str}) for p in fixed}
    stratum_tables: dict[str, dict[str, pd.DataFrame]] = {}
    for p in stratum_fixed:
        d = Path(p).parent
        stratum_tables.setdefault(d.parents[1].name, {})[d.name] = pd.read_csv(p, dtype={"flags": str, "stratum": str})
    return fixed_tables, stratum_tables
