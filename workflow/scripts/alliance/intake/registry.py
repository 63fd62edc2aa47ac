"""The instrument registry: loading and validating ``instruments.yaml`` and a lab's own entries.

The registry (``instruments.yaml`` beside this module) holds the scoring facts
of each questionnaire -- item range, reverse-keyed items, subscales, prorating
rule, published thresholds -- as data, so that the report can state which rule
was applied and a lab can add its own instruments from config without code.
Every entry is checked against :data:`INSTRUMENT_SCHEMA` and the cross-field rules
a schema cannot express, so that a typo fails loudly with the instrument id and
field. The scoring that uses these facts is in :mod:`alliance.intake.instruments`.

This module needs no pandas: the config checks (:mod:`alliance.intake.config`)
import it when the workflow loads.

Public API
----------
load_registry, Instrument, SeverityBand, InstrumentRegistryError,
REGISTRY_PATH, INSTRUMENT_SCHEMA.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import jsonschema
import yaml

__all__ = [
    "Instrument",
    "InstrumentRegistryError",
    "SeverityBand",
    "REGISTRY_PATH",
    "INSTRUMENT_SCHEMA",
    "load_registry",
]

REGISTRY_PATH = Path(__file__).resolve().parent / "instruments.yaml"

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
        # items with different ranges: [min, max] of every item, in item order (instead of item_min/item_max)
        "item_ranges": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        },
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
    #: (min, max) of every item, in item order; all equal to (item_min, item_max) unless the entry
    #: gives ``item_ranges`` (then item_min / item_max are the smallest minimum and largest maximum)
    item_ranges: tuple[tuple[float, float], ...] = ()

    @property
    def uniform_items(self) -> bool:
        """True when every item has the range item_min..item_max."""
        return all(r == (self.item_min, self.item_max) for r in self.item_ranges)

    def item_range(self, k: int) -> tuple[float, float]:
        """(min, max) of item ``k`` (1-based)."""
        return self.item_ranges[k - 1]

    def subscale_max_missing(self, name: str) -> int:
        """Missing items allowed in subscale ``name``: floor(prorate_max_missing * k / n_items)."""
        k = len(self.subscales[name])
        return (self.prorate_max_missing * k) // self.n_items

    def score_range(self, score: Literal["total", "mean"] = "total") -> tuple[float, float]:
        """(min, max) of the ``total`` (sum) or ``mean`` score."""
        if score == "total":
            return (self.total_min, self.total_max)
        if score == "mean":
            if self.uniform_items:
                return (self.item_min, self.item_max)
            return (self.total_min / self.n_items, self.total_max / self.n_items)  # the mean is total / n_items
        raise ValueError(f"score must be 'total' or 'mean', got {score!r}")

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict form (registry field names, without ``id``), e.g. for a report or a YAML dump."""
        out: dict[str, Any] = {
            "name": self.name,
            "construct": self.construct,
            "n_items": self.n_items,
            **(
                {"item_min": self.item_min, "item_max": self.item_max}
                if self.uniform_items
                else {"item_ranges": [list(r) for r in self.item_ranges]}
            ),
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
    """One error line: instrument, field, message."""
    return f"instrument {inst_id!r}: field {fld!r}: {msg}"


def _schema_errors(inst_id: str, entry: Any) -> list[str]:
    """The entry's JSON Schema violations, one sorted line each."""
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
    n = d["n_items"]
    errs, ranges = _item_range_errors(inst_id, d)
    if errs:
        return errs
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    bad = [i for i in d["reverse_items"] if i > n]
    if bad:
        errs.append(_err(inst_id, "reverse_items", f"item numbers {bad} exceed n_items ({n})"))
    for name, items in d["subscales"].items():
        bad = [i for i in items if i > n]
        if bad:
            errs.append(_err(inst_id, f"subscales.{name}", f"item numbers {bad} exceed n_items ({n})"))
    if hi > lo:
        uniform = "item_ranges" not in d
        for fld, want in (("total_min", sum(r[0] for r in ranges)), ("total_max", sum(r[1] for r in ranges))):
            if not math.isclose(d[fld], want, rel_tol=0, abs_tol=1e-9):
                rule = f"n_items * item_{fld[6:]}" if uniform else f"the sum of the items' {fld[6:]}ima (item_ranges)"
                errs.append(_err(inst_id, fld, f"{d[fld]} != {rule} = {want}"))
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
                        f"band starting at {b['min']} does not follow the band ending at {a['max']} "
                        "without gap or overlap",
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


def _item_range_errors(inst_id: str, d: Mapping[str, Any]) -> tuple[list[str], list[tuple[float, float]]]:
    """(errors, (min, max) of every item): item_min and item_max, or item_ranges, one per item."""
    n = d["n_items"]
    if "item_ranges" in d:
        given = [k for k in ("item_min", "item_max") if k in d]
        if given:
            return [_err(inst_id, given[0], "give item_min and item_max, or item_ranges, not both")], []
        ranges = [(float(a), float(b)) for a, b in d["item_ranges"]]
        if len(ranges) != n:
            return [_err(inst_id, "item_ranges", f"lists {len(ranges)} ranges but n_items is {n}")], []
        errs = [
            _err(inst_id, f"item_ranges.{k}", f"item {k}: max ({b:g}) must be greater than min ({a:g})")
            for k, (a, b) in enumerate(ranges, start=1)
            if b <= a
        ]
        return errs, ranges
    missing = [k for k in ("item_min", "item_max") if k not in d]
    if missing:
        return [_err(inst_id, k, "required field is missing (or give item_ranges)") for k in missing], []
    lo, hi = d["item_min"], d["item_max"]
    if hi <= lo:
        return [_err(inst_id, "item_max", f"item_max ({hi}) must be greater than item_min ({lo})")], []
    return [], [(float(lo), float(hi))] * n


def _parse_entry(inst_id: Any, entry: Any) -> Instrument:
    """One registry entry validated (schema, then cross-field rules) and turned into an Instrument."""
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
    _, ranges = _item_range_errors(inst_id, entry)
    return Instrument(
        id=inst_id,
        name=entry["name"],
        construct=entry["construct"],
        n_items=int(entry["n_items"]),
        item_min=min(r[0] for r in ranges),
        item_max=max(r[1] for r in ranges),
        item_ranges=tuple(ranges),
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


@functools.cache
def _shipped_entries() -> Any:
    """The shipped ``instruments.yaml`` as parsed YAML, read once per process (libyaml when
    available): the intake loads the registry on every call, and parsing it in pure Python
    costs about 0.2 s.  ``_parse_entry`` only reads the entries."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with REGISTRY_PATH.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=loader) or {}  # noqa: S506 - a safe loader


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
    raw = _shipped_entries()
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
