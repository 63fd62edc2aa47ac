"""Scoring with an instrument's facts: item totals, prorating, reliable and clinically significant change.

The facts (item range, reverse-keyed items, subscales, prorating rule, published
thresholds) come from the registry (:mod:`alliance.intake.registry`); the functions
here apply them to scores, vectorised over patients or sessions, and warn when a
fact they use is not yet verified against its source.

Public API
----------
score_items, check_total_range, reliable_change, jacobson_truax_cutoff,
pomp, severity_band.

References: Jacobson, N. S., & Truax, P. (1991). Clinical significance: A
statistical approach to defining meaningful change in psychotherapy research.
Journal of Consulting and Clinical Psychology, 59(1), 12-19.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd

from alliance.intake.registry import Instrument

__all__ = [
    "score_items",
    "check_total_range",
    "reliable_change",
    "jacobson_truax_cutoff",
    "pomp",
    "severity_band",
]

#: Critical |RCI| (two-sided 5 %), Jacobson & Truax (1991).
RCI_CRITICAL = 1.96

#: Item-key facts: score_items warns when one of them is listed in unchecked_fields.
_SCORING_FIELDS = frozenset({"n_items", "item_min", "item_max", "reverse_items", "subscales"})


def _warn_unchecked(inst: Instrument, fields: frozenset[str] | set[str], what: str, stacklevel: int = 3) -> None:
    """Warn when ``what`` uses registry facts listed as unverified (``unchecked_fields``).

    ``stacklevel`` 3 points the warning at the caller of the public function that calls this.
    """
    used = sorted(fields & set(inst.unchecked_fields))
    if used:
        warnings.warn(
            f"{inst.id}: {what} uses registry facts not yet verified against the source: {used} "
            f"(see the instrument's notes)",
            UserWarning,
            stacklevel=stacklevel,
        )


# --------------------------------------------------------------------------- scoring


def score_items(items: pd.DataFrame, instrument: Instrument) -> pd.DataFrame:
    """Score item responses: reverse keying, prorated total and mean, subscales.

    Why: totals must be computed the same way for every dataset, with the
    prorating rule stated in the registry (a total from too many missing items is
    missing, not a biased low sum). Vectorised over rows (NumPy), so 1M rows take
    well under a second per instrument.

    Rules
    -----
    * reverse-keyed items: ``item_min + item_max - x``.
    * ``total`` = ``n_items * mean(answered items)`` (the plain sum when nothing is
      missing), NaN when more than ``prorate_max_missing`` items are missing;
      ``mean`` = mean of answered items under the same rule.
    * ``sub_<name>``: on the instrument's ``score`` metric (prorated sum or mean of the
      subscale's items), allowed missing = floor(prorate_max_missing * k / n_items)
      for a k-item subscale (e.g. 0 for the 4-item WAI-SR subscales).
    * ``n_missing_items``: missing items of the whole form; ``prorated``: True where
      ``total`` is present and was computed from fewer than ``n_items`` items.

    Parameters
    ----------
    items : DataFrame
        Exactly ``n_items`` numeric columns in item order 1..n (column names are
        ignored); NaN = missing; values already range-checked (out-of-range values
        raise ``ValueError``).
    instrument : Instrument

    Returns
    -------
    DataFrame with the index of ``items`` and columns ``total``, ``mean``,
    ``sub_<name>`` ..., ``n_missing_items``, ``prorated`` (caller adds a prefix).

    Examples
    --------
    >>> from alliance.intake.registry import load_registry
    >>> phq = load_registry()["PHQ-9"]
    >>> df = pd.DataFrame([[1, 2, 3, 0, 1, 2, 3, 0, float("nan")]])
    >>> out = score_items(df, phq)  # 8 answered items sum to 12 -> 9 * 12 / 8
    >>> float(out.loc[0, "total"]), bool(out.loc[0, "prorated"])
    (13.5, True)
    """
    inst = instrument
    if items.shape[1] != inst.n_items:
        raise ValueError(f"{inst.id}: expected {inst.n_items} item columns, got {items.shape[1]}")
    _warn_unchecked(inst, _SCORING_FIELDS, "scoring")
    try:
        if all(isinstance(dt, np.dtype) and dt.kind in "fiub" for dt in items.dtypes):
            x = items.to_numpy(dtype=np.float64, copy=True)  # fast path: plain NumPy columns
        else:  # pandas nullable / object columns: pd.NA -> NaN
            x = items.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{inst.id}: item columns must be numeric ({exc})") from exc
    low, high = (np.array([r[i] for r in inst.item_ranges], dtype=np.float64) for i in (0, 1))
    with np.errstate(invalid="ignore"):
        out_of_range = (x < low) | (x > high)
    if out_of_range.any():
        r, c = np.argwhere(out_of_range)[0]
        raise ValueError(
            f"{inst.id}: {int(out_of_range.sum())} item value(s) outside their item's range; the first: "
            f"outside [{low[c]:g}, {high[c]:g}] at row {items.index[r]!r}, item {c + 1}: {x[r, c]:g}"
        )
    if inst.reverse_items:
        rev = np.asarray(inst.reverse_items) - 1
        x[:, rev] = (low[rev] + high[rev]) - x[:, rev]

    # items of different ranges: prorated on the share of the answered items' possible range
    ranges = None if inst.uniform_items else (low, high)
    total, mean, n_miss = _prorated(x, np.arange(inst.n_items), inst.prorate_max_missing, ranges)
    out: dict[str, Any] = {"total": total, "mean": mean}
    for name, sub_items in inst.subscales.items():
        s_total, s_mean, _ = _prorated(x, np.asarray(sub_items) - 1, inst.subscale_max_missing(name), ranges)
        out[f"sub_{name}"] = s_total if inst.score == "sum" else s_mean
    out["n_missing_items"] = n_miss.astype(np.int64)
    out["prorated"] = (n_miss > 0) & ~np.isnan(total)
    return pd.DataFrame(out, index=items.index)


def _prorated(
    x: np.ndarray, cols: np.ndarray, max_missing: int, ranges: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prorated sum, mean, n_missing) of the item matrix ``x`` over the given 0-based columns.

    Missing (NaN) when more than ``max_missing`` of the columns are missing. Items of one range:
    k x the mean of the answered items. Items of different ranges (``ranges`` = (min, max) of every
    item): the answered items' share of their possible range, (s - their minima) / (their maxima -
    their minima), carried onto the whole range of the columns, and the mean is total / k (the
    same numbers as the rule of one range when the ranges are equal).
    """
    sub = x[:, cols]
    miss = np.isnan(sub)
    n_miss = miss.sum(axis=1)
    k = sub.shape[1]
    n_ans = k - n_miss
    s = np.where(miss, 0.0, sub).sum(axis=1)
    ok = (n_miss <= max_missing) & (n_ans > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if ranges is None:
            mean = np.where(ok, s / n_ans, np.nan)
            total = np.where(ok, np.where(n_miss == 0, s, k * s / n_ans), np.nan)
            return total, mean, n_miss
        low, high = ranges[0][cols], ranges[1][cols]
        answered_low = np.where(miss, 0.0, low).sum(axis=1)
        answered_span = np.where(miss, 0.0, high - low).sum(axis=1)
        share = (s - answered_low) / answered_span
        prorated = low.sum() + share * (high - low).sum()
        total = np.where(ok, np.where(n_miss == 0, s, prorated), np.nan)
        mean = total / k
    return total, mean, n_miss


def check_total_range(
    totals: pd.Series, instrument: Instrument, score: Literal["total", "mean"] = "total"
) -> pd.Series:
    """Flag supplied scores outside the instrument's possible range.

    Why: some datasets deliver totals instead of items; a PHQ-9 of 30 or a WAI-SR
    mean of 6 is a coding error (wrong instrument, a sum labelled as a mean, a
    missing-value code such as 99) that must be caught before modelling.

    Returns a boolean Series (same index): True where out of range; missing
    values are False (missing is not out of range).

    Examples
    --------
    >>> from alliance.intake.registry import load_registry
    >>> phq = load_registry()["PHQ-9"]
    >>> check_total_range(pd.Series([0, 27, 28, -1, None]), phq).tolist()
    [False, False, True, True, False]
    """
    lo, hi = instrument.score_range(score)
    v = pd.to_numeric(totals, errors="raise").astype("float64")
    eps = 1e-9 * max(1.0, abs(hi - lo))
    flag = (v < lo - eps) | (v > hi + eps)
    return flag.fillna(False).astype(bool)


def _caseness(x: np.ndarray, cutoff: float, higher_is: str) -> np.ndarray:
    """Caseness: score >= cutoff when higher is worse, score <= cutoff when higher is better."""
    return x >= cutoff if higher_is == "worse" else x <= cutoff


def reliable_change(
    baseline: pd.Series,
    final: pd.Series,
    instrument: Instrument,
    method: Literal["fixed", "jacobson_truax"],
    sd_baseline: float | None = None,
    *,
    reliability: float | None = None,
    cutoff: float | None = None,
) -> pd.DataFrame:
    """Reliable and clinically significant change per patient (Jacobson & Truax, 1991).

    Why: a change is only interpretable as improvement if it exceeds measurement
    error; ``category`` gives the standard recovered / improved / unchanged /
    deteriorated classification used in outcome reports.

    Methods
    -------
    ``"fixed"``: reliable if |change| >= the registry's published ``reliable_change``
    threshold (e.g. PHQ-9 6, GAD-7 4, OQ-45.2 14); ``rci`` is NaN.
    ``"jacobson_truax"``: ``rci = (final - baseline) / S_diff`` with
    ``S_diff = sqrt(2) * SD * sqrt(1 - r_xx)``; reliable if |rci| > 1.96. ``SD`` is
    ``sd_baseline`` or else the SD (ddof=1) of the non-missing baseline scores;
    ``r_xx`` is ``reliability`` or else the registry's published value.

    ``recovered`` = reliable improvement AND baseline in caseness AND final not in
    caseness (cut-off: ``cutoff`` if given, e.g. from :func:`jacobson_truax_cutoff`,
    else the registry's ``clinical_cutoff``; with no cut-off nobody is recovered).
    Direction follows ``higher_is``. Scores must be on the total (sum) metric.
    Rows with a missing baseline or final get NaN / <NA> / None.

    Returns
    -------
    DataFrame (index of ``baseline``) with ``change``, ``rci``,
    ``reliable_improvement``, ``reliable_deterioration`` (nullable boolean) and
    ``category`` (object: one of recovered, improved, unchanged, deteriorated, or None).

    Examples
    --------
    >>> from alliance.intake.registry import load_registry
    >>> phq = load_registry()["PHQ-9"]
    >>> rc = reliable_change(pd.Series([15, 16]), pd.Series([9, 10]), phq, method="fixed")
    >>> rc["category"].tolist()
    ['recovered', 'improved']
    """
    inst = instrument
    if not baseline.index.equals(final.index):
        raise ValueError("baseline and final must have the same index")
    x1 = pd.to_numeric(baseline, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    x2 = pd.to_numeric(final, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    change = x2 - x1
    valid = ~np.isnan(change)
    rci, up, down = _reliable_rise_and_fall(x1, change, inst, method, sd_baseline, reliability)
    improve, deteriorate = (down, up) if inst.higher_is == "worse" else (up, down)

    c = cutoff if cutoff is not None else inst.clinical_cutoff
    if cutoff is None and c is not None:
        _warn_unchecked(inst, {"clinical_cutoff"}, "reliable_change")
    if c is None:
        crossed = np.zeros_like(valid)
    else:
        crossed = _caseness(x1, c, inst.higher_is) & ~_caseness(x2, c, inst.higher_is)

    cat = _categories(improve, deteriorate, crossed, valid)
    idx = baseline.index
    return pd.DataFrame(
        {
            "change": pd.Series(change, index=idx),
            "rci": pd.Series(rci, index=idx),
            "reliable_improvement": pd.Series(
                pd.array(np.where(valid, improve, False), dtype="boolean"), index=idx
            ).mask(~valid),
            "reliable_deterioration": pd.Series(
                pd.array(np.where(valid, deteriorate, False), dtype="boolean"), index=idx
            ).mask(~valid),
            "category": pd.Series(cat, index=idx, dtype=object),
        }
    )


def _categories(improve: np.ndarray, deteriorate: np.ndarray, crossed: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Recovered (reliable improvement across the cut-off), improved, deteriorated or unchanged; None if invalid."""
    cat = np.full(improve.shape, "unchanged", dtype=object)
    cat[deteriorate] = "deteriorated"
    cat[improve] = "improved"
    cat[improve & crossed] = "recovered"
    cat[~valid] = None
    return cat


def _reliable_rise_and_fall(
    x1: np.ndarray,
    change: np.ndarray,
    inst: Instrument,
    method: str,
    sd_baseline: float | None,
    reliability: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rci, reliable rise, reliable fall) of the scores by ``method`` (see :func:`reliable_change`).

    The warnings point (stacklevel) at the caller of :func:`reliable_change`.
    """
    if method == "fixed":
        if inst.reliable_change is None:
            raise ValueError(f"{inst.id}: no published fixed reliable-change threshold; use method='jacobson_truax'")
        _warn_unchecked(inst, {"reliable_change"}, "reliable_change", stacklevel=4)
        thr = inst.reliable_change
        rci = np.full_like(change, np.nan)
        # small tolerance so that a prorated 5.999999999 counts as the 6 it represents
        return rci, change >= thr - 1e-9, change <= -thr + 1e-9
    if method == "jacobson_truax":
        r_xx = reliability if reliability is not None else inst.reliability
        if r_xx is None:
            raise ValueError(f"{inst.id}: no reliability in the registry; pass reliability= (e.g. the sample's alpha)")
        if not 0 < r_xx < 1:
            raise ValueError(f"{inst.id}: reliability must be in (0, 1), got {r_xx}")
        if reliability is None:
            _warn_unchecked(inst, {"reliability"}, "reliable_change", stacklevel=4)
        if sd_baseline is not None:
            sd = float(sd_baseline)
        else:  # SD of all available baselines (pre-treatment SD of the sample)
            sd = float(np.nanstd(x1, ddof=1)) if np.count_nonzero(~np.isnan(x1)) > 1 else math.nan
        if not (np.isfinite(sd) and sd > 0):
            raise ValueError(f"{inst.id}: baseline SD must be positive and finite, got {sd}")
        s_diff = math.sqrt(2.0) * sd * math.sqrt(1.0 - r_xx)
        rci = change / s_diff
        return rci, rci > RCI_CRITICAL, rci < -RCI_CRITICAL
    raise ValueError(f"method must be 'fixed' or 'jacobson_truax', got {method!r}")


def jacobson_truax_cutoff(m_clin: float, sd_clin: float, m_func: float, sd_func: float) -> float:
    """Criterion c of Jacobson & Truax (1991): the score between the clinical and functional populations.

    ``c = (sd_clin * m_func + sd_func * m_clin) / (sd_clin + sd_func)``, the point equally
    likely (in SD units) to belong to either distribution. Use it as ``cutoff=`` in
    :func:`reliable_change` when no published caseness threshold exists.

    Examples
    --------
    >>> jacobson_truax_cutoff(m_clin=20, sd_clin=6, m_func=5, sd_func=4)
    11.0
    """
    if not (sd_clin > 0 and sd_func > 0):
        raise ValueError(f"SDs must be positive, got sd_clin={sd_clin}, sd_func={sd_func}")
    return (sd_clin * m_func + sd_func * m_clin) / (sd_clin + sd_func)


def pomp(scores: pd.Series, instrument: Instrument, score: Literal["total", "mean"] = "total") -> pd.Series:
    """Percent of maximum possible: ``100 * (x - min) / (max - min)``.

    Why: puts instruments with different ranges (WAI-SR 12-60, SRS 0-40) on a
    common 0-100 metric (Cohen, Cohen, Aiken & West, 1999). Direction is not
    flipped: 100 is the top of the scale whatever ``higher_is`` says.

    Examples
    --------
    >>> from alliance.intake.registry import load_registry
    >>> pomp(pd.Series([12.0, 36.0, 60.0]), load_registry()["WAI-SR"]).tolist()
    [0.0, 50.0, 100.0]
    """
    lo, hi = instrument.score_range(score)
    v = pd.to_numeric(scores, errors="raise").astype("float64")
    return 100.0 * (v - lo) / (hi - lo)


def severity_band(totals: pd.Series, instrument: Instrument) -> pd.Series:
    """Label each total (sum) score with its severity band (ordered categorical).

    A prorated, fractional total belongs to the last band whose lower bound it
    reaches (PHQ-9 9.5 is "mild", 10 is "moderate"). Out-of-range and missing
    totals give NaN.

    Examples
    --------
    >>> from alliance.intake.registry import load_registry
    >>> severity_band(pd.Series([4, 10, 27]), load_registry()["PHQ-9"]).tolist()
    ['minimal', 'moderate', 'severe']
    """
    inst = instrument
    if inst.severity_bands is None:
        raise ValueError(f"{inst.id}: no severity bands in the registry")
    _warn_unchecked(inst, {"severity_bands"}, "severity_band")
    v = pd.to_numeric(totals, errors="raise").astype("float64")
    edges = [b.min for b in inst.severity_bands] + [np.inf]
    labels = [b.label for b in inst.severity_bands]
    out = pd.cut(v, bins=edges, labels=labels, right=False, ordered=True)
    return out.where(v <= inst.total_max)
