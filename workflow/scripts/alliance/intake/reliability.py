"""Keying and reliability of every measure given by items: item–rest correlations and Cronbach's α.

Why: a reverse-keyed item that is reversed twice (the export already held the keyed score
and the registry reverses it again) or not at all still gives a total in range, so no range
check catches it; the item then works against the rest of the scale and biases every
alliance effect. The data show it: after keying, every item should correlate positively
with the sum of the others (its item–rest, or corrected item-total, correlation).

For each measure with items, on the items as scored (the registry's reverse keys applied,
unless ``dataset.measures.<key>.already_keyed`` says the export holds keyed scores):

* item–rest r of every item and Cronbach's α (1951; :func:`pingouin.cronbach_alpha`) on the
  complete rows (rows with any missing item left out), in two samples: ``first_session``
  (each patient's first session row: one row per patient, independent rows, α's CI is
  Feldt's F interval from pingouin) and ``all_sessions`` (every session row: descriptive of
  the pooled rows; the rows of a patient are not independent, so α's CI is a Wald interval
  from the asymptotically distribution-free variance of α (Maydeu-Olivares, Coffman &
  Hartmann, 2007) made cluster-robust by summing each patient's influence values).
* the keying check, on all session rows when there are at least :data:`KEYING_MIN_ROWS`
  complete rows from at least :data:`KEYING_MIN_PATIENTS` patients: a registry
  reverse-keyed item whose item–rest r is below :data:`NEGATIVE_ITEM_REST_R` stops the run
  (the keying contradicts the data); any other item below it is a finding (warned).
  Registry reverse keys that are not verified against the source (``unchecked_fields``)
  are never applied silently: a finding says so and gives the check's result.

McDonald's ω is not reported: no installed package implements it (pingouin 0.7 has α
only), and a one-factor ω written here would have no reference to be verified against.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from alliance.intake.findings import STOP, WARN, Finding
from alliance.intake.layout import Layout, item_column
from alliance.intake.registry import Instrument

__all__ = [
    "KEYING_MIN_ROWS",
    "KEYING_MIN_PATIENTS",
    "NEGATIVE_ITEM_REST_R",
    "RELIABILITY_COLUMNS",
    "ITEM_REST_COLUMNS",
    "Reliability",
    "already_keyed",
    "scoring_instrument",
    "item_rest_r",
    "alpha_cluster_se",
    "measure_reliability",
]

#: Complete session rows the keying check needs (fewer: the check is not made, and said so).
KEYING_MIN_ROWS = 30
#: Patients those rows must come from (the rows of one patient are not independent).
KEYING_MIN_PATIENTS = 10
#: An item whose item–rest r (after keying) is below this works against its scale.
NEGATIVE_ITEM_REST_R = -0.1
#: Level of every confidence interval of α.
CI_LEVEL = 0.95
#: The two samples, in table order.
SAMPLES = ("first_session", "all_sessions")

RELIABILITY_COLUMNS = [
    "measure",
    "instrument",
    "sample",
    "n_items",
    "reverse_items",
    "keys_applied",
    "rows",
    "patients",
    "alpha",
    "alpha_ci_low",
    "alpha_ci_high",
    "ci_method",
    "lowest_item_rest_r",
    "lowest_item",
]
ITEM_REST_COLUMNS = ["measure", "instrument", "sample", "item", "column", "reversed_in_scoring", "item_rest_r"]

_CI_METHOD = {
    "first_session": "Feldt F (one row per patient)",
    "all_sessions": "Wald, cluster-robust ADF variance (patients)",
}


@dataclass
class Reliability:
    """The per-measure table, the per-item table and the findings (stopping ones included)."""

    table: pd.DataFrame
    items: pd.DataFrame
    findings: list[Finding]


@cache
def _already_keyed_default() -> bool:
    """The schema's default of ``dataset.measures.<key>.already_keyed`` (its one source)."""
    from alliance.schema import schema_default

    return bool(schema_default("dataset", "measures", "*", "already_keyed"))


def already_keyed(measure: dict[str, Any]) -> bool:
    """Whether the export holds a measure's items already keyed (config ``already_keyed``)."""
    return bool(measure.get("already_keyed", _already_keyed_default()))


def scoring_instrument(measure: dict[str, Any], instrument: Instrument) -> Instrument:
    """The instrument as a measure's items are scored: without reverse keys when already keyed."""
    if already_keyed(measure) and instrument.reverse_items:
        return dataclasses.replace(instrument, reverse_items=())
    return instrument


# --------------------------------------------------------------------------- statistics


def item_rest_r(x: np.ndarray) -> np.ndarray:
    """Item–rest (corrected item-total) correlation of every column of the complete matrix ``x``:
    r of item j with the sum of the other items; NaN for an item or rest without variance.

    >>> x = np.array([[1, 2, 1, 5], [2, 2, 3, 4], [3, 4, 3, 2], [4, 5, 4, 1], [5, 4, 5, 2]], dtype=float)
    >>> item_rest_r(x).round(2).tolist()  # item 4 is worded in reverse and not yet keyed
    [0.97, 0.4, 0.88, -0.93]
    """
    cov = np.cov(x, rowvar=False)
    var = np.diag(cov)
    with_total = cov.sum(axis=1)
    rest_var = cov.sum() - 2 * with_total + var
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (with_total - var) / np.sqrt(var * rest_var)
    return np.where((var > 0) & (rest_var > 0), r, np.nan)


def alpha_cluster_se(x: np.ndarray, clusters: np.ndarray) -> float:
    """Standard error of Cronbach's α of the complete matrix ``x``, cluster-robust over ``clusters``.

    The asymptotically distribution-free variance of α (Maydeu-Olivares, Coffman & Hartmann,
    2007) from α's influence values, ``IF_i = k/(k-1) (-(|d_i|² - T)/V + T((1'd_i)² - V)/V²)``
    with ``d_i`` the centred row, ``T`` the trace and ``V`` the sum of the covariance matrix;
    the values are summed within each cluster (patient), so rows of one patient count as one
    draw: ``var = G/(G-1) · Σ_c (Σ_{i∈c} IF_i)² / n²``. With one row per cluster this is the
    ordinary ADF variance (with the G/(G-1) small-sample factor).
    """
    n, k = x.shape
    d = x - x.mean(axis=0)
    cov = d.T @ d / n
    trace, total = float(np.trace(cov)), float(cov.sum())
    influence = (k / (k - 1)) * (
        -(np.einsum("ij,ij->i", d, d) - trace) / total + trace * (d.sum(axis=1) ** 2 - total) / total**2
    )
    codes, _ = pd.factorize(clusters)
    by_cluster = np.bincount(codes, weights=influence)
    g = len(by_cluster)
    if g < 2:
        return float("nan")
    return float(np.sqrt(g / (g - 1) * (by_cluster**2).sum()) / n)


def _alpha_row(x: np.ndarray, patients: np.ndarray, sample: str) -> dict[str, Any]:
    """α, its CI and the sample sizes of one sample's complete rows."""
    n_patients = int(np.unique(patients).size)
    out: dict[str, Any] = {"rows": len(x), "patients": n_patients, "ci_method": _CI_METHOD[sample]}
    if len(x) < 3 or n_patients < 2 or not np.var(x.sum(axis=1)) > 0:  # alpha needs a varying total
        return {**out, "alpha": np.nan, "alpha_ci_low": np.nan, "alpha_ci_high": np.nan}
    # imported here: the workflow's load imports this module (through the data dictionary), and
    # pingouin and scipy.stats would add about 4 s to every Snakemake call
    import pingouin
    from scipy.stats import norm

    alpha, ci = pingouin.cronbach_alpha(pd.DataFrame(x), nan_policy="listwise", ci=CI_LEVEL)
    if sample == "all_sessions":
        half = norm.ppf(0.5 + CI_LEVEL / 2) * alpha_cluster_se(x, patients)
        ci = np.round([alpha - half, alpha + half], 3)  # to 3 decimals, as pingouin's Feldt interval
    return {**out, "alpha": float(alpha), "alpha_ci_low": float(ci[0]), "alpha_ci_high": float(ci[1])}


# --------------------------------------------------------------------------- per measure


@dataclass(frozen=True)
class _Measure:
    """One measure with items: its config key, the instrument as scored, the lab's item columns."""

    key: str
    registry: Instrument
    scored: Instrument
    keyed_by_lab: bool
    columns: list[str]


def _keyed_items(data: pd.DataFrame, m: _Measure) -> np.ndarray:
    """The measure's items as scored (reverse keys applied where the scoring applies them)."""
    inst = m.scored
    x = data[[item_column(m.key, k) for k in range(1, inst.n_items + 1)]].to_numpy(
        dtype=np.float64, na_value=np.nan, copy=True
    )
    if inst.reverse_items:
        rev = np.asarray(inst.reverse_items) - 1
        low, high = np.asarray(inst.item_ranges, dtype=np.float64).T  # items may differ in range
        x[:, rev] = low[rev] + high[rev] - x[:, rev]
    return x


def measure_reliability(
    data: pd.DataFrame, dataset: dict[str, Any], registry: dict[str, Instrument], layout: Layout
) -> Reliability:
    """The keying check and reliability of every measure given by items (see the module docstring).

    ``data``: the validated sessions (canonical columns, sorted by patient and session);
    ``layout``: the sessions file's layout (the lab's column names, for the findings).
    """
    rows: list[dict[str, Any]] = []
    item_rows: list[dict[str, Any]] = []
    findings: list[Finding] = []
    patients, _ = pd.factorize(data["patient"])  # integer codes: the clusters, and fast to count
    session = data["session"].to_numpy()
    first = session == pd.Series(session).groupby(patients).transform("min").to_numpy()
    for key, measure in dataset["measures"].items():
        if "items" not in measure:
            continue
        inst = registry[measure["instrument"]]
        columns = [layout.lab[item_column(key, k)] for k in range(1, inst.n_items + 1)]
        m = _Measure(key, inst, scoring_instrument(measure, inst), already_keyed(measure), columns)
        x = _keyed_items(data, m)
        complete = ~np.isnan(x).any(axis=1)
        by_sample: dict[str, np.ndarray] = {}
        for sample, in_sample in zip(SAMPLES, (first & complete, complete)):
            xs = x if in_sample.all() else x[in_sample]  # no copy of a complete matrix (memory)
            r = item_rest_r(xs) if len(xs) >= 3 else np.full(inst.n_items, np.nan)
            by_sample[sample] = r
            rows.append({**_measure_fields(m, sample), **_alpha_row(xs, patients[in_sample], sample), **_lowest(r)})
            del xs
            item_rows += [
                {
                    "measure": key,
                    "instrument": inst.id,
                    "sample": sample,
                    "item": k,
                    "column": columns[k - 1],
                    "reversed_in_scoring": k in m.scored.reverse_items,
                    "item_rest_r": float(r[k - 1]),
                }
                for k in range(1, inst.n_items + 1)
            ]
        n_rows, n_patients = int(complete.sum()), int(np.unique(patients[complete]).size)
        findings += _keying_findings(m, by_sample["all_sessions"], n_rows, n_patients, layout.file)
    table = pd.DataFrame(rows, columns=RELIABILITY_COLUMNS)
    table["lowest_item"] = table["lowest_item"].astype("Int64")
    return Reliability(
        table=table,
        items=pd.DataFrame(item_rows, columns=ITEM_REST_COLUMNS),
        findings=findings,
    )


def _measure_fields(m: _Measure, sample: str) -> dict[str, Any]:
    """The columns of a reliability row that describe the measure and its keying."""
    return {
        "measure": m.key,
        "instrument": m.registry.id,
        "sample": sample,
        "n_items": m.registry.n_items,
        "reverse_items": " ".join(str(i) for i in m.registry.reverse_items),
        "keys_applied": (
            "none (no reverse-keyed items)"
            if not m.registry.reverse_items
            else ("no (already_keyed: true)" if m.keyed_by_lab else "yes")
        ),
    }


def _lowest(r: np.ndarray) -> dict[str, Any]:
    """The lowest item–rest r and its item number (NaN / missing when none could be computed)."""
    if np.isnan(r).all():
        return {"lowest_item_rest_r": np.nan, "lowest_item": pd.NA}
    j = int(np.nanargmin(r))
    return {"lowest_item_rest_r": float(r[j]), "lowest_item": j + 1}


# --------------------------------------------------------------------------- findings


def _listed(m: _Measure, items: list[int], r: np.ndarray) -> tuple[str, str, str]:
    """("items 4 (column 'wai_04') and 10 (column 'wai_10')", "-0.62 and -0.58", "correlate"):
    the items, their item–rest r and the verb that agrees with them, for the messages."""

    def join(parts: list[str]) -> str:
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]

    word, verb = ("item", "correlates") if len(items) == 1 else ("items", "correlate")
    named = join([f"{k} (column '{m.columns[k - 1]}')" for k in items])
    return f"{word} {named}", join([f"{r[k - 1]:.2f}" for k in items]), verb


def _unchecked_keys(m: _Measure, n_rows: int, n_patients: int, file: str) -> Finding:
    """The warning that unverified reverse keys were used (or left out) with too few rows to check them."""
    reverse = ", ".join(map(str, m.registry.reverse_items))
    return Finding(
        file,
        None,
        None,
        None,
        f"measure '{m.key}' ({m.registry.id}): the registry's reverse keys (items {reverse}) are not verified "
        f"against the source and were {'not applied (already_keyed: true)' if m.keyed_by_lab else 'applied'}"
        f" without an empirical check: only {n_rows} complete session rows from {n_patients} patients "
        f"(the check needs {KEYING_MIN_ROWS} rows from {KEYING_MIN_PATIENTS} patients); check the keying "
        "of the form your data used.",
        WARN,
    )


def _keying_findings(m: _Measure, r: np.ndarray, n_rows: int, n_patients: int, file: str) -> list[Finding]:
    """The keying check's findings of one measure: stop, warn, or the unverified keys' result."""
    inst, reverse = m.registry, list(m.registry.reverse_items)
    what = f"measure '{m.key}' ({inst.id})"
    unverified = bool(reverse) and "reverse_items" in inst.unchecked_fields
    unverified_text = (
        f" The registry's reverse keys of {inst.id} are not verified against the source (see its notes)."
        if unverified
        else ""
    )
    if n_rows < KEYING_MIN_ROWS or n_patients < KEYING_MIN_PATIENTS:
        return [_unchecked_keys(m, n_rows, n_patients, file)] if unverified else []
    low = [k for k in range(1, inst.n_items + 1) if r[k - 1] < NEGATIVE_ITEM_REST_R]
    against_key = [k for k in low if k in reverse]
    other = [k for k in low if k not in reverse]
    out = []
    sample = f"{n_rows} complete session rows, {n_patients} patients"
    if against_key:
        items, values, verb = _listed(m, against_key, r)
        if m.keyed_by_lab:
            reason = (
                f"{what}: reverse-keyed {items} in the registry {verb} negatively with the rest of the scale "
                f"(item–rest r = {values}; {sample}) although dataset.measures.{m.key}.already_keyed is true (not "
                "reversed): the export looks unkeyed (as answered); remove already_keyed (or set it to false) so "
                "that the registry's keys are applied."
            )
        else:
            reason = (
                f"{what}: reverse-keyed {items} in the registry {verb} negatively with the rest of the scale "
                f"after reversal (item–rest r = {values}; {sample}): the export looks already keyed, and reversing "
                f"again turns these items against the scale.{unverified_text} If the export holds keyed scores, "
                f"set dataset.measures.{m.key}.already_keyed: true; otherwise check the item order of the form "
                "your data used."
            )
        out.append(Finding(file, None, None, None, reason, STOP))
    if other:
        items, values, verb = _listed(m, other, r)
        out.append(
            Finding(
                file,
                None,
                None,
                None,
                f"{what}: {items}, not reverse-keyed in the registry, {verb} negatively with the rest of the "
                f"scale (item–rest r = {values}, below {NEGATIVE_ITEM_REST_R}; {sample}): check whether the form "
                f"your data used words {'it' if len(other) == 1 else 'them'} in reverse, or the item order.",
                WARN,
            )
        )
    if unverified and not against_key:
        items, values, verb = _listed(m, reverse, r)
        out.append(
            Finding(
                file,
                None,
                None,
                None,
                f"{what}: the registry's reverse keys are not verified against the source; they were "
                f"{'not applied (already_keyed: true)' if m.keyed_by_lab else 'applied'}, and the data agree: "
                f"after keying, {items} {verb} with the rest of the scale at item–rest r = {values} ({sample}).",
                WARN,
            )
        )
    return out
