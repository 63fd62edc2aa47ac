"""An instrument whose items have different ranges (registry ``item_ranges``).

A made-up five-item scale (items 0-4, 0-4, 1-6 reverse-keyed, a 0-1 yes/no item and a 0-10 rating)
declared in a lab's ``instruments:``: the registry checks it, scoring reverse-keys each item on
its own range, prorates on the answered items' share of their possible range, range checks name
each item's own range, and the POMP outcome spans the summed range.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest

from alliance.intake.config import ConfigError
from alliance.intake.instruments import pomp, score_items
from alliance.intake.registry import InstrumentRegistryError, load_registry
from testkit.lab import BASE_SESSIONS, row_of

RANGES = [[0, 4], [0, 4], [1, 6], [0, 1], [0, 10]]
MIX5 = {
    "name": "Mixed-format symptom check",
    "construct": "symptoms",
    "n_items": 5,
    "item_ranges": RANGES,
    "reverse_items": [3],
    "subscales": {"mood": [1, 2], "other": [3, 4, 5]},
    "higher_is": "worse",
    "score": "sum",
    "total_min": 1,
    "total_max": 25,
    "prorate_max_missing": 1,
    "prorate_note": "made up: one of five items may be missing",
    "reliable_change": None,
    "reliability": None,
    "clinical_cutoff": None,
    "severity_bands": None,
    "citation": "made up for the tests",
    "checked": True,
}


def mix5():
    return load_registry({"MIX-5": MIX5})["MIX-5"]


def test_the_registry_reads_item_specific_ranges():
    inst = mix5()
    assert inst.item_ranges == ((0, 4), (0, 4), (1, 6), (0, 1), (0, 10))
    assert (inst.item_min, inst.item_max, inst.uniform_items) == (0, 10, False)
    assert inst.item_range(3) == (1, 6)
    assert inst.score_range("total") == (1, 25) and inst.score_range("mean") == (0.2, 5.0)
    assert inst.as_dict()["item_ranges"] == RANGES and "item_min" not in inst.as_dict()
    assert load_registry({"MIX-5": inst.as_dict()})["MIX-5"] == inst
    wai = load_registry()["WAI-SR"]
    assert wai.uniform_items and wai.item_ranges == ((1, 5),) * 12 and wai.score_range("mean") == (1, 5)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"item_ranges": RANGES[:4]}, "field 'item_ranges': lists 4 ranges but n_items is 5"),
        ({"item_min": 0}, "field 'item_min': give item_min and item_max, or item_ranges, not both"),
        (
            {"item_ranges": [*RANGES[:2], [6, 1], *RANGES[3:]]},
            "field 'item_ranges.3': item 3: max (1) must be greater than min (6)",
        ),
        ({"total_max": 24}, "field 'total_max': 24 != the sum of the items' maxima (item_ranges) = 25.0"),
        ({"item_ranges": None, "item_min": 0}, "field 'item_max': required field is missing (or give item_ranges)"),
    ],
)
def test_a_wrong_item_range_names_the_instrument_and_field(change, message):
    entry = {k: v for k, v in {**MIX5, **change}.items() if v is not None or k != "item_ranges"}
    with pytest.raises(InstrumentRegistryError) as error:
        load_registry({"MIX-5": entry})
    assert f"instrument 'MIX-5': {message}" in str(error.value)


def test_scoring_keys_and_prorates_each_item_on_its_own_range():
    items = pd.DataFrame([[2, 3, 6, 1, 7], [2, 3, 6, 1, np.nan], [np.nan, 3, 6, 1, 7], [2, np.nan, 6, np.nan, 7]])
    scores = score_items(items, mix5())
    # row 0: item 3 reverse-keyed on 1-6 (1 + 6 - 6 = 1): 2 + 3 + 1 + 1 + 7
    assert scores.loc[0, "total"] == 14
    # row 1: items 1-4 answered, 7 points, minima 1, spans 14: 1 + (7 - 1) / 14 x 24
    assert scores.loc[1, "total"] == pytest.approx(1 + 6 / 14 * 24)
    # row 2: items 2-5 answered, 12 points, minima 1, spans 20: 1 + (12 - 1) / 20 x 24
    assert scores.loc[2, "total"] == pytest.approx(1 + 11 / 20 * 24)
    assert math.isnan(scores.loc[3, "total"])  # two items missing, one allowed
    assert scores["mean"].tolist()[:3] == pytest.approx((scores["total"][:3] / 5).tolist())
    assert scores["prorated"].tolist() == [False, True, True, False]
    # subscales: mood (items 1-2, 0-4 each) allows no missing item; other (3-5) allows none either
    assert scores.loc[0, "sub_mood"] == 5 and scores.loc[0, "sub_other"] == 9
    assert pomp(pd.Series([1.0, 14.0, 25.0]), mix5()).tolist() == pytest.approx([0.0, 100 * 13 / 24, 100.0])
    with pytest.raises(
        ValueError,
        match=r"^MIX-5: 1 item value\(s\) outside their item's range; the first: outside \[0, 1\] at row 0, item 4: 2$",
    ):
        score_items(pd.DataFrame([[2, 3, 6, 2, 7]]), mix5())


def _with_mix5(lab, values: list[list[int]]) -> None:
    """The lab's sessions with MIX-5 items (mix1..mix5) as the depression outcome."""
    sessions = BASE_SESSIONS.copy()
    block = np.resize(np.array(values), (len(sessions), 5))
    for k in range(5):
        sessions[f"mix{k + 1}"] = block[:, k].astype(str)
    lab.write(sessions)
    lab.config["instruments"] = {"MIX-5": copy.deepcopy(MIX5)}
    lab.config["dataset"]["measures"]["mix"] = {"instrument": "MIX-5", "items": "mix{item}"}
    lab.config["analysis"]["outcome_by_condition"]["depression"] = "mix"


def test_an_intake_scores_range_checks_and_puts_the_made_up_instrument_on_pomp(lab):
    _with_mix5(lab, [[2, 3, 6, 1, 7], [4, 0, 1, 0, 10]])
    sessions = BASE_SESSIONS.copy()
    result = lab.clean()
    data = result.sessions
    assert data["mix_total"].tolist() == [14.0 if i % 2 == 0 else 20.0 for i in range(len(sessions))]
    depression = data["condition"] == "depression"
    assert data.loc[depression, "symptoms"].tolist() == pytest.approx(
        (100 * (data.loc[depression, "mix_total"] - 1) / 24).tolist()
    )
    units = result.dictionary.set_index(["table", "column"])["units"]
    assert [units[("sessions", f"mix_item_{k:02d}")] for k in range(1, 6)] == ["0-4", "0-4", "1-6", "0-1", "0-10"]
    assert units[("sessions", "mix_mean")] == "0.2-5"

    _with_mix5(lab, [[2, 3, 6, 4, 7], [4, 0, 1, 0, 10]])  # item 4 (0-1) is 4 in every other row
    findings = lab.findings()
    assert findings[0] == (
        row_of(0),
        "mix4",
        "4",
        "is outside the valid range 0-1 of MIX-5 item 4",
        "set to missing",
    )
    assert len([f for f in findings if f[1] == "mix4"]) == (len(sessions) + 1) // 2
    prorated = lab.clean().sessions
    assert prorated.loc[0, "mix_total"] == pytest.approx(1 + (2 + 3 + 1 + 7 - 1) / 23 * 24)


def test_a_config_instrument_with_a_wrong_item_range_is_a_config_error(lab):
    _with_mix5(lab, [[2, 3, 6, 1, 7]])
    lab.config["instruments"]["MIX-5"]["item_ranges"] = RANGES[:4]
    with pytest.raises(ConfigError) as error:
        lab.clean()
    assert str(error.value) == (
        "instruments: invalid instrument registry entry:\n  instrument 'MIX-5': field 'item_ranges': "
        "lists 4 ranges but n_items is 5"
    )
