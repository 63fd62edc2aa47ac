"""A lab's own instrument, declared in a config rather than in the registry (tests/intake/, tests/workflow/)."""

from __future__ import annotations

#: a four-item mood check scored 0-4 per item, item 2 stored reverse-keyed, one missing item prorated
MOOD4 = {
    "name": "Lab mood check",
    "construct": "symptoms",
    "n_items": 4,
    "item_min": 0,
    "item_max": 4,
    "reverse_items": [2],
    "subscales": {},
    "higher_is": "worse",
    "score": "sum",
    "total_min": 0,
    "total_max": 16,
    "prorate_max_missing": 1,
    "prorate_note": "lab rule: one of four items may be missing",
    "reliable_change": 3,
    "reliable_change_source": "in-house",
    "reliability": 0.8,
    "reliability_source": "in-house pilot",
    "clinical_cutoff": 8,
    "severity_bands": None,
    "citation": "Our lab (2026), in-house measure",
    "checked": True,
}
