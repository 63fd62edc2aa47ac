"""Instrument registry and scoring: item totals, prorating, reliable and clinically significant change.

The registry (``instruments.yaml`` beside this module) holds the scoring facts
of each questionnaire -- item range, reverse-keyed items, subscales, prorating
rule, published thresholds -- as data, so that the report can state which rule
was applied and a lab can add its own instruments from config without code.

Public API
----------
load_registry, Instrument, SeverityBand, InstrumentRegistryError,
score_items, check_total_range, reliable_change, jacobson_truax_cutoff,
pomp, severity_band.

References: Jacobson, N. S., & Truax, P. (1991). Clinical significance: A
statistical approach to defining meaningful change in psychotherapy research.
Journal of Consulting and Clinical Psychology, 59(1), 12-19.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import jsonschema
import numpy as np
import pandas as pd
import yaml

__all__ = [
    "Instrument",
    "InstrumentRegistryError",
    "SeverityBand",
    "REGISTRY_PATH",
    "INSTRUMENT_SCHEMA",
    "load_registry",
    "score_items",
    "check_total_range",
    "reliable_change",
    "jacobson_truax_cutoff",
    "pomp",
    "severity_band",
]

REGISTRY_PATH = Path(__file__).resolve().parent / "instruments.yaml"

#: Critical |RCI| (two-sided 5 %), Jacobson & Truax (1991).
RCI_CRITICAL = 1.96

#: Item-key facts: score_items warns when one of them is listed in unchecked_fields.
_SCORING_FIELDS = frozenset({"n_items", "item_min", "item_max", "reverse_items", "subscales"})

_CATEGORIES = ("recovered", "improved", "unchanged", "deteriorated")

# --------------------------------------------------------------------------- schema

_NULLABLE_NUMBER = {"type": ["number", "null"]}
_TEXT = {"type": "string", "minLength": 1}
_ITEM_LIST = {"type": "array", "items": {"type": "integer", "minimum": 1}, "uniqueItems": True}

#: JSON Schema (draft 2020-12) for one registry entry; cross-field rules are in ``_check_entry``.
INSTRUMENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "name",
        "construct",
        "n_items",
        "item_min",
        "item_max",
        "reverse_items",
        "subscales",
        "higher_is",
        "score",
        "total_min",
        "total_max",
        "prorate_max_missing",
        "prorate_note",
        "reliable_change",
        "reliability",
        "clinical_cutoff",
        "severity_bands",
        "citation",
        "checked",
    ],
    "properties": {
        "name": _TEXT,
        "construct": {"enum": ["alliance", "symptoms", "distress"]},
        "n_items": {"type": "integer", "minimum": 1},
        "item_min": {"type": "number"},
        "item_max": {"type": "number"},
        "reverse_items": _ITEM_LIST,
        "subscales": {
            "type": "object",
            "propertyNames": {"pattern": "^[a-z][a-z0-9_]*$"},
            "additionalProperties": {**_ITEM_LIST, "minItems": 1},
        },
        "higher_is": {"enum": ["better", "worse"]},
        "score": {"enum": ["sum", "mean"]},
        "total_min": {"type": "number"},
        "total_max": {"type": "number"},
        "prorate_max_missing": {"type": "integer", "minimum": 0},
        "prorate_note": _TEXT,
        "reliable_change": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "reliable_change_source": _TEXT,
        "reliability": {"type": ["number", "null"], "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "reliability_source": _TEXT,
        "clinical_cutoff": _NULLABLE_NUMBER,
        "clinical_cutoff_source": _TEXT,
        "severity_bands": {
            "type": ["array", "null"],
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["label", "min", "max"],
                "properties": {"label": _TEXT, "min": {"type": "number"}, "max": {"type": "number"}},
            },
        },
        "citation": _TEXT,
        "checked": {"type": "boolean"},
        "unchecked_fields": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "notes": _TEXT,
    },
}

_VALIDATOR = jsonschema.Draft202012Validator(INSTRUMENT_SCHEMA)
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class InstrumentRegistryError(ValueError):
    """An instrument entry is invalid; the message names the instrument id and field."""


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class SeverityBand:
    """One inclusive severity band of the total (sum) score."""

    label: str
    min: float
    max: float


@dataclass(frozen=True)
class Instrument:
    """Scoring facts of one questionnaire, as validated from the registry.

    Item numbers are 1-based. ``total_min``/``total_max`` are the range of the sum
    score; ``score`` names the conventional score (``"sum"`` -> column ``total``,
    ``"mean"`` -> column ``mean``). See ``instruments.yaml`` for field meanings.
    """

    id: str
    name: str
    construct: Literal["alliance", "symptoms", "distress"]
    n_items: int
    item_min: float
    item_max: float
    reverse_items: tuple[int, ...]
    subscales: Mapping[str, tuple[int, ...]] = field(hash=False)
    higher_is: Literal["better", "worse"]
    score: Literal["sum", "mean"]
    total_min: float
    total_max: float
    prorate_max_missing: int
    prorate_note: str
    reliable_change: float | None
    reliability: float | None
    clinical_cutoff: float | None
    severity_bands: tuple[SeverityBand, ...] | None
    citation: str
    checked: bool
    unchecked_fields: tuple[str, ...] = ()
    reliable_change_source: str | None = None
    reliability_source: str | None = None
    clinical_cutoff_source: str | None = None
    notes: str | None = None

    def subscale_max_missing(self, name: str) -> int:
        """Missing items allowed in subscale ``name``: floor(prorate_max_missing * k / n_items)."""
        k = len(self.subscales[name])
        return (self.prorate_max_missing * k) // self.n_items

    def score_range(self, score: Literal["total", "mean"] = "total") -> tuple[float, float]:
        """(min, max) of the ``total`` (sum) or ``mean`` score."""
        if score == "total":
            return (self.total_min, self.total_max)
        if score == "mean":
            return (self.item_min, self.item_max)
        raise ValueError(f"score must be 'total' or 'mean', got {score!r}")

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict form (registry field names, without ``id``), e.g. for a report or a YAML dump."""
        out: dict[str, Any] = {
            "name": self.name,
            "construct": self.construct,
            "n_items": self.n_items,
            "item_min": self.item_min,
            "item_max": self.item_max,
            "reverse_items": list(self.reverse_items),
            "subscales": {k: list(v) for k, v in self.subscales.items()},
            "higher_is": self.higher_is,
            "score": self.score,
            "total_min": self.total_min,
            "total_max": self.total_max,
            "prorate_max_missing": self.prorate_max_missing,
            "prorate_note": self.prorate_note,
            "reliable_change": self.reliable_change,
            "reliability": self.reliability,
            "clinical_cutoff": self.clinical_cutoff,
            "severity_bands": (
                None
                if self.severity_bands is None
                else [{"label": b.label, "min": b.min, "max": b.max} for b in self.severity_bands]
            ),
            "citation": self.citation,
            "checked": self.checked,
        }
        optional = {
            "unchecked_fields": list(self.unchecked_fields) or None,
            "reliable_change_source": self.reliable_change_source,
            "reliability_source": self.reliability_source,
            "clinical_cutoff_source": self.clinical_cutoff_source,
            "notes": self.notes,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out


# --------------------------------------------------------------------------- loading


def _err(inst_id: str, fld: str, msg: str) -> str:
    return f"instrument {inst_id!r}: field {fld!r}: {msg}"


def _schema_errors(inst_id: str, entry: Any) -> list[str]:
    msgs = []
    for e in _VALIDATOR.iter_errors(entry):
        if e.validator == "additionalProperties" and not e.absolute_path:
            unknown = sorted(set(entry) - set(INSTRUMENT_SCHEMA["properties"]))
            msgs.extend(_err(inst_id, k, "unknown field") for k in unknown)
        elif e.validator == "required":
            missing = sorted(set(e.validator_value) - set(entry))
            msgs.extend(_err(inst_id, k, "required field is missing") for k in missing)
        else:
            path = ".".join(str(p) for p in e.absolute_path) or "<entry>"
            msgs.append(_err(inst_id, path, e.message))
    return sorted(set(msgs))


def _check_entry(inst_id: str, d: Mapping[str, Any]) -> list[str]:
    """Cross-field rules a JSON Schema cannot express. Assumes the schema passed."""
    errs: list[str] = []
    n, lo, hi = d["n_items"], d["item_min"], d["item_max"]
    if hi <= lo:
        errs.append(_err(inst_id, "item_max", f"item_max ({hi}) must be greater than item_min ({lo})"))
    bad = [i for i in d["reverse_items"] if i > n]
    if bad:
        errs.append(_err(inst_id, "reverse_items", f"item numbers {bad} exceed n_items ({n})"))
    for name, items in d["subscales"].items():
        bad = [i for i in items if i > n]
        if bad:
            errs.append(_err(inst_id, f"subscales.{name}", f"item numbers {bad} exceed n_items ({n})"))
    if hi > lo:
        for fld, want in (("total_min", n * lo), ("total_max", n * hi)):
            if not math.isclose(d[fld], want, rel_tol=0, abs_tol=1e-9):
                errs.append(_err(inst_id, fld, f"{d[fld]} != n_items * item_{fld[6:]} = {want}"))
    if d["prorate_max_missing"] >= n:
        errs.append(_err(inst_id, "prorate_max_missing", f"must be smaller than n_items ({n})"))
    t_lo, t_hi = d["total_min"], d["total_max"]
    rc = d["reliable_change"]
    if rc is not None and rc > t_hi - t_lo:
        errs.append(_err(inst_id, "reliable_change", f"{rc} exceeds the score range {t_hi - t_lo}"))
    cut = d["clinical_cutoff"]
    if cut is not None and not (t_lo < cut <= t_hi):
        errs.append(_err(inst_id, "clinical_cutoff", f"{cut} is not inside ({t_lo}, {t_hi}]"))
    for fld in ("reliability", "reliable_change", "clinical_cutoff"):
        src = f"{fld}_source"
        if src in d and d[fld] is None:
            errs.append(_err(inst_id, src, f"given although {fld} is null"))
    if d["reliability"] is not None and "reliability_source" not in d:
        errs.append(_err(inst_id, "reliability_source", "required when reliability is given"))
    bands = d["severity_bands"]
    if bands is not None:
        if bands[0]["min"] != t_lo or bands[-1]["max"] != t_hi:
            errs.append(
                _err(inst_id, "severity_bands", f"bands must start at total_min ({t_lo}) and end at total_max ({t_hi})")
            )
        for i, b in enumerate(bands):
            if b["max"] < b["min"]:
                errs.append(_err(inst_id, f"severity_bands.{i}", f"max ({b['max']}) < min ({b['min']})"))
        for i, (a, b) in enumerate(zip(bands, bands[1:]), start=1):
            if not (a["max"] < b["min"] <= a["max"] + 1):
                errs.append(
                    _err(
                        inst_id,
                        f"severity_bands.{i}",
                        f"band starting at {b['min']} does not follow the band ending at {a['max']} without gap or overlap",
                    )
                )
    unchecked = d.get("unchecked_fields", [])
    unknown = sorted(set(unchecked) - set(INSTRUMENT_SCHEMA["properties"]))
    if unknown:
        errs.append(_err(inst_id, "unchecked_fields", f"names unknown fields {unknown}"))
    if d["checked"] and unchecked:
        errs.append(_err(inst_id, "checked", "is true but unchecked_fields is not empty"))
    if not d["checked"] and not unchecked:
        errs.append(_err(inst_id, "unchecked_fields", "must list the unverified fields when checked is false"))
    if not d["checked"] and "notes" not in d:
        errs.append(_err(inst_id, "notes", "must say why when checked is false"))
    return errs


def _parse_entry(inst_id: Any, entry: Any) -> Instrument:
    if not isinstance(inst_id, str) or not re.match(_ID_PATTERN, inst_id):
        raise InstrumentRegistryError(f"instrument {inst_id!r}: field 'id': must be a string matching {_ID_PATTERN}")
    if not isinstance(entry, Mapping):
        raise InstrumentRegistryError(
            f"instrument {inst_id!r}: field '<entry>': must be a mapping, got {type(entry).__name__}"
        )
    entry = dict(entry)
    errs = _schema_errors(inst_id, entry)
    if not errs:
        errs = _check_entry(inst_id, entry)
    if errs:
        raise InstrumentRegistryError("invalid instrument registry entry:\n  " + "\n  ".join(errs))

    def num(x: Any) -> float | None:
        return None if x is None else float(x)

    bands = entry["severity_bands"]
    return Instrument(
        id=inst_id,
        name=entry["name"],
        construct=entry["construct"],
        n_items=int(entry["n_items"]),
        item_min=float(entry["item_min"]),
        item_max=float(entry["item_max"]),
        reverse_items=tuple(sorted(int(i) for i in entry["reverse_items"])),
        subscales=MappingProxyType({k: tuple(int(i) for i in v) for k, v in entry["subscales"].items()}),
        higher_is=entry["higher_is"],
        score=entry["score"],
        total_min=float(entry["total_min"]),
        total_max=float(entry["total_max"]),
        prorate_max_missing=int(entry["prorate_max_missing"]),
        prorate_note=entry["prorate_note"],
        reliable_change=num(entry["reliable_change"]),
        reliability=num(entry["reliability"]),
        clinical_cutoff=num(entry["clinical_cutoff"]),
        severity_bands=(
            None if bands is None else tuple(SeverityBand(b["label"], float(b["min"]), float(b["max"])) for b in bands)
        ),
        citation=entry["citation"],
        checked=bool(entry["checked"]),
        unchecked_fields=tuple(entry.get("unchecked_fields", ())),
        reliable_change_source=entry.get("reliable_change_source"),
        reliability_source=entry.get("reliability_source"),
        clinical_cutoff_source=entry.get("clinical_cutoff_source"),
        notes=entry.get("notes"),
    )


def load_registry(extra: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Instrument]:
    """Load, validate and return the instrument registry, merged with a lab's own instruments.

    Why: scoring rules are data, checked once at start-up, so a typo in a lab's
    config (an unknown key, ``item_max`` below ``item_min``, a subscale item beyond
    ``n_items``) fails loudly with the instrument id and field instead of silently
    mis-scoring. An ``extra`` entry whose id is already in the registry is an
    error unless it is identical to the shipped entry.

    Parameters
    ----------
    extra : mapping of id -> entry, optional
        Same fields as ``instruments.yaml`` (typically ``config["instruments"]``).

    Returns
    -------
    dict of id -> Instrument

    Examples
    --------
    >>> reg = load_registry()
    >>> reg["PHQ-9"].clinical_cutoff
    10.0
    >>> lab = {"MOOD-4": {"name": "Lab mood check", "construct": "symptoms",
    ...     "n_items": 4, "item_min": 0, "item_max": 4, "reverse_items": [2],
    ...     "subscales": {}, "higher_is": "worse", "score": "sum", "total_min": 0,
    ...     "total_max": 16, "prorate_max_missing": 0, "prorate_note": "lab rule",
    ...     "reliable_change": None, "reliability": None, "clinical_cutoff": None,
    ...     "severity_bands": None, "citation": "in-house", "checked": True}}
    >>> load_registry(lab)["MOOD-4"].total_max
    16.0
    """
    with REGISTRY_PATH.open(encoding="utf-8") as fh:
        raw = yaml.safe_load(fh) or {}
    if not isinstance(raw, Mapping):
        raise InstrumentRegistryError(f"{REGISTRY_PATH}: top level must be a mapping of instrument id -> entry")
    registry = {inst_id: _parse_entry(inst_id, entry) for inst_id, entry in raw.items()}
    if extra:
        if not isinstance(extra, Mapping):
            raise InstrumentRegistryError(
                f"extra instruments must be a mapping of id -> entry, got {type(extra).__name__}"
            )
        for inst_id, entry in extra.items():
            inst = _parse_entry(inst_id, entry)
            if inst_id in registry and registry[inst_id] != inst:
                a, b = registry[inst_id].as_dict(), inst.as_dict()
                diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)) or ["<entry>"]
                raise InstrumentRegistryError(
                    f"instrument {inst_id!r}: field {diff[0]!r}: id already exists in the shipped registry "
                    f"and the extra entry differs (fields {diff}); use a new id for a modified instrument"
                )
            registry[inst_id] = inst
    return registry


def _warn_unchecked(inst: Instrument, fields: frozenset[str] | set[str], what: str) -> None:
    used = sorted(fields & set(inst.unchecked_fields))
    if used:
        warnings.warn(
            f"{inst.id}: {what} uses registry facts not yet verified against the source: {used} "
            f"(see the instrument's notes)",
            UserWarning,
            stacklevel=3,
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
    with np.errstate(invalid="ignore"):
        out_of_range = (x < inst.item_min) | (x > inst.item_max)
    if out_of_range.any():
        r, c = np.argwhere(out_of_range)[0]
        raise ValueError(
            f"{inst.id}: {int(out_of_range.sum())} item value(s) outside "
            f"[{inst.item_min:g}, {inst.item_max:g}], first at row {items.index[r]!r}, item {c + 1}: {x[r, c]!r}"
        )
    if inst.reverse_items:
        rev = np.asarray(inst.reverse_items) - 1
        x[:, rev] = (inst.item_min + inst.item_max) - x[:, rev]

    def block(cols: np.ndarray, max_missing: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prorated sum, mean, n_missing) over the given 0-based columns."""
        sub = x[:, cols]
        miss = np.isnan(sub)
        n_miss = miss.sum(axis=1)
        k = sub.shape[1]
        n_ans = k - n_miss
        s = np.where(miss, 0.0, sub).sum(axis=1)
        ok = (n_miss <= max_missing) & (n_ans > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(ok, s / n_ans, np.nan)
            total = np.where(ok, np.where(n_miss == 0, s, k * s / n_ans), np.nan)
        return total, mean, n_miss

    total, mean, n_miss = block(np.arange(inst.n_items), inst.prorate_max_missing)
    out: dict[str, Any] = {"total": total, "mean": mean}
    for name, sub_items in inst.subscales.items():
        s_total, s_mean, _ = block(np.asarray(sub_items) - 1, inst.subscale_max_missing(name))
        out[f"sub_{name}"] = s_total if inst.score == "sum" else s_mean
    out["n_missing_items"] = n_miss.astype(np.int64)
    out["prorated"] = (n_miss > 0) & ~np.isnan(total)
    return pd.DataFrame(out, index=items.index)


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

    if method == "fixed":
        if inst.reliable_change is None:
            raise ValueError(f"{inst.id}: no published fixed reliable-change threshold; use method='jacobson_truax'")
        _warn_unchecked(inst, {"reliable_change"}, "reliable_change")
        thr = inst.reliable_change
        rci = np.full_like(change, np.nan)
        # small tolerance so that a prorated 5.999999999 counts as the 6 it represents
        up = change >= thr - 1e-9
        down = change <= -thr + 1e-9
    elif method == "jacobson_truax":
        r_xx = reliability if reliability is not None else inst.reliability
        if r_xx is None:
            raise ValueError(f"{inst.id}: no reliability in the registry; pass reliability= (e.g. the sample's alpha)")
        if not 0 < r_xx < 1:
            raise ValueError(f"{inst.id}: reliability must be in (0, 1), got {r_xx}")
        if reliability is None:
            _warn_unchecked(inst, {"reliability"}, "reliable_change")
        if sd_baseline is not None:
            sd = float(sd_baseline)
        else:  # SD of all available baselines (pre-treatment SD of the sample)
            sd = float(np.nanstd(x1, ddof=1)) if np.count_nonzero(~np.isnan(x1)) > 1 else math.nan
        if not (np.isfinite(sd) and sd > 0):
            raise ValueError(f"{inst.id}: baseline SD must be positive and finite, got {sd}")
        s_diff = math.sqrt(2.0) * sd * math.sqrt(1.0 - r_xx)
        rci = change / s_diff
        up = rci > RCI_CRITICAL
        down = rci < -RCI_CRITICAL
    else:
        raise ValueError(f"method must be 'fixed' or 'jacobson_truax', got {method!r}")

    improve, deteriorate = (down, up) if inst.higher_is == "worse" else (up, down)

    c = cutoff if cutoff is not None else inst.clinical_cutoff
    if cutoff is None and c is not None:
        _warn_unchecked(inst, {"clinical_cutoff"}, "reliable_change")
    if c is None:
        crossed = np.zeros_like(valid)
    else:
        crossed = _caseness(x1, c, inst.higher_is) & ~_caseness(x2, c, inst.higher_is)

    cat = np.full(change.shape, "unchanged", dtype=object)
    cat[deteriorate] = "deteriorated"
    cat[improve] = "improved"
    cat[improve & crossed] = "recovered"
    cat[~valid] = None

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
