"""Tests for alliance.intake.registry (registry validation) and alliance.intake.instruments
(scoring on hand-computed numbers)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from alliance.intake.instruments import (
    check_total_range,
    jacobson_truax_cutoff,
    pomp,
    reliable_change,
    score_items,
    severity_band,
)
from alliance.intake.registry import Instrument, InstrumentRegistryError, load_registry

NAN = float("nan")


@contextlib.contextmanager
def no_user_warning():
    """Fail if the block raises a UserWarning (used where every scoring fact is verified)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        yield


@pytest.fixture(scope="module")
def reg() -> dict[str, Instrument]:
    return load_registry()


def lab_entry(**overrides):
    """A valid lab-declared instrument (4 items 0-4, item 2 reverse-keyed)."""
    entry = {
        "name": "Lab mood check",
        "construct": "symptoms",
        "n_items": 4,
        "item_min": 0,
        "item_max": 4,
        "reverse_items": [2],
        "subscales": {"low": [1, 2], "tense": [3, 4]},
        "higher_is": "worse",
        "score": "sum",
        "total_min": 0,
        "total_max": 16,
        "prorate_max_missing": 2,
        "prorate_note": "lab policy: half the items",
        "reliable_change": None,
        "reliability": 0.8,
        "reliability_source": "lab pilot, alpha",
        "clinical_cutoff": 8,
        "severity_bands": None,
        "citation": "In-house measure (2024).",
        "checked": True,
    }
    entry.update(overrides)
    return entry


# --------------------------------------------------------------------------- registry


def test_shipped_registry_loads_and_covers_required_instruments(reg):
    for inst_id in ["WAI-SR", "WAI-S", "SRS", "PHQ-9", "GAD-7", "BDI-II", "OQ-45.2", "CORE-10"]:
        assert inst_id in reg
        inst = reg[inst_id]
        assert inst.id == inst_id
        assert inst.total_min == inst.n_items * inst.item_min
        assert inst.total_max == inst.n_items * inst.item_max
        assert inst.citation
        if not inst.checked:
            assert inst.unchecked_fields and inst.notes


def test_shipped_facts_match_methods_table(reg):
    wai = reg["WAI-SR"]
    assert (wai.n_items, wai.item_min, wai.item_max, wai.total_min, wai.total_max) == (12, 1, 5, 12, 60)
    assert dict(wai.subscales) == {"task": (1, 2, 10, 12), "bond": (3, 5, 7, 9), "goal": (4, 6, 8, 11)}
    assert wai.reverse_items == () and wai.higher_is == "better"
    assert reg["WAI-S"].total_max == 84
    assert reg["SRS"].total_max == 40
    phq, gad = reg["PHQ-9"], reg["GAD-7"]
    assert (phq.total_max, phq.clinical_cutoff, phq.reliable_change, phq.prorate_max_missing) == (27, 10, 6, 1)
    assert (gad.total_max, gad.clinical_cutoff, gad.reliable_change) == (21, 8, 4)
    assert reg["BDI-II"].total_max == 63
    assert [b.min for b in reg["BDI-II"].severity_bands] == [0, 14, 20, 29]
    oq = reg["OQ-45.2"]
    assert oq.reverse_items == (1, 12, 13, 20, 21, 24, 31, 37, 43)
    assert (oq.total_max, oq.reliable_change, oq.clinical_cutoff) == (180, 14, 64)
    core = reg["CORE-10"]
    assert core.reverse_items == (2, 3) and core.clinical_cutoff == 11 and core.total_max == 40
    # facts methods.md marks "(check)" are flagged as unchecked
    assert "severity_bands" in reg["BDI-II"].unchecked_fields
    assert "clinical_cutoff" in reg["OQ-45.2"].unchecked_fields
    assert "subscales" in reg["WAI-S"].unchecked_fields
    assert "prorate_max_missing" in phq.unchecked_fields


def test_instrument_is_frozen_and_hashable(reg):
    with pytest.raises(dataclasses.FrozenInstanceError):
        reg["PHQ-9"].n_items = 10
    with pytest.raises(TypeError):
        reg["WAI-SR"].subscales["task"] = (1,)
    assert len({reg["PHQ-9"], reg["GAD-7"], load_registry()["PHQ-9"]}) == 2


def test_lab_instrument_is_added_and_scores(reg):
    merged = load_registry({"LAB-MOOD": lab_entry()})
    assert set(reg) < set(merged)
    lab = merged["LAB-MOOD"]
    # items 1..4 = 3, 1, 2, NaN ; item 2 reversed: 0 + 4 - 1 = 3 -> answered 3, 3, 2 sum 8
    # total = 4 * 8 / 3 = 10.666..., subscale low (items 1, 2): 3 + 3 = 6, no missing
    # subscale tense (items 3, 4): allowed missing floor(2 * 2 / 4) = 1 -> 2 * 2 / 1 = 4
    out = score_items(pd.DataFrame([[3, 1, 2, NAN]]), lab)
    assert out.loc[0, "total"] == pytest.approx(32 / 3)
    assert out.loc[0, "mean"] == pytest.approx(8 / 3)
    assert out.loc[0, "sub_low"] == 6
    assert out.loc[0, "sub_tense"] == 4
    assert out.loc[0, "n_missing_items"] == 1 and bool(out.loc[0, "prorated"])


def test_extra_identical_to_shipped_entry_is_accepted(reg):
    merged = load_registry({"PHQ-9": reg["PHQ-9"].as_dict()})
    assert merged["PHQ-9"] == reg["PHQ-9"]


def test_extra_redefining_shipped_id_is_an_error(reg):
    changed = {**reg["PHQ-9"].as_dict(), "prorate_max_missing": 2}
    with pytest.raises(InstrumentRegistryError, match=r"'PHQ-9'.*'prorate_max_missing'"):
        load_registry({"PHQ-9": changed})


def test_extra_with_unknown_key_names_id_and_field():
    with pytest.raises(InstrumentRegistryError) as exc:
        load_registry({"LAB-X": lab_entry(colour="blue")})
    assert "'LAB-X'" in str(exc.value) and "'colour'" in str(exc.value) and "unknown field" in str(exc.value)


def test_extra_with_item_max_below_item_min_names_id_and_field():
    with pytest.raises(InstrumentRegistryError) as exc:
        load_registry({"LAB-Y": lab_entry(item_min=4, item_max=0, total_min=16, total_max=0)})
    msg = str(exc.value)
    assert "'LAB-Y'" in msg and "'item_max'" in msg


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"reverse_items": [5]}, "reverse_items"),
        ({"subscales": {"low": [1, 9]}}, "subscales.low"),
        ({"total_max": 20}, "total_max"),
        ({"prorate_max_missing": 4}, "prorate_max_missing"),
        ({"construct": "mood"}, "construct"),
        ({"checked": False}, "unchecked_fields"),
        ({"reliability": 1.2}, "reliability"),
        ({"clinical_cutoff": 30}, "clinical_cutoff"),
        (
            {"severity_bands": [{"label": "low", "min": 0, "max": 7}, {"label": "high", "min": 9, "max": 16}]},
            "severity_bands.1",
        ),
    ],
)
def test_invalid_extra_entries(overrides, field):
    with pytest.raises(InstrumentRegistryError, match=rf"instrument 'LAB-Z': field '{field}'"):
        load_registry({"LAB-Z": lab_entry(**overrides)})


def test_extra_missing_required_field():
    entry = lab_entry()
    del entry["higher_is"]
    with pytest.raises(InstrumentRegistryError, match=r"'LAB-Q': field 'higher_is': required"):
        load_registry({"LAB-Q": entry})


# --------------------------------------------------------------------------- score_items


def test_phq9_prorating(reg):
    phq = reg["PHQ-9"]
    items = pd.DataFrame(
        [
            [1, 2, 3, 0, 1, 2, 3, 0, 2],  # complete: sum 14
            [1, 2, 3, 0, 1, 2, 3, 0, NAN],  # one missing: 8 answered sum 12 -> 9 * 12 / 8 = 13.5
            [1, 2, 3, 0, 1, 2, 3, NAN, NAN],  # two missing: more than 1 -> NaN
        ],
        index=["a", "b", "c"],
    )
    with no_user_warning():  # PHQ-9 item facts are verified: scoring must not warn
        out = score_items(items, phq)
    assert list(out.columns) == ["total", "mean", "n_missing_items", "prorated"]
    assert list(out.index) == ["a", "b", "c"]
    assert out.loc["a", "total"] == 14 and out.loc["a", "mean"] == pytest.approx(14 / 9)
    assert out.loc["b", "total"] == 13.5 and out.loc["b", "mean"] == 1.5
    assert math.isnan(out.loc["c", "total"]) and math.isnan(out.loc["c", "mean"])
    assert out["n_missing_items"].tolist() == [0, 1, 2]
    assert out["prorated"].tolist() == [False, True, False]


def test_wai_sr_subscales(reg):
    wai = reg["WAI-SR"]
    items = pd.DataFrame(
        [
            [5, 4, 3, 2, 1, 5, 4, 3, 2, 1, 5, 4],
            [5, 4, NAN, 2, 1, 5, 4, 3, 2, 1, 5, 4],  # item 3 (bond) missing
            [5, 4, NAN, 2, NAN, 5, 4, 3, 2, 1, 5, 4],  # items 3, 5 missing
            [5, 4, NAN, 2, NAN, 5, NAN, 3, 2, 1, 5, 4],  # 3 missing -> no total
        ]
    )
    out = score_items(items, wai)
    assert list(out.columns) == ["total", "mean", "sub_task", "sub_bond", "sub_goal", "n_missing_items", "prorated"]
    # task 1,2,10,12: 5+4+1+4 = 14 ; bond 3,5,7,9: 3+1+4+2 = 10 ; goal 4,6,8,11: 2+5+3+5 = 15
    assert out.loc[0, ["sub_task", "sub_bond", "sub_goal"]].tolist() == [14, 10, 15]
    assert out.loc[0, "total"] == 39 and out.loc[0, "mean"] == 3.25
    # one missing: 11 answered sum 36 -> 12 * 36 / 11 ; 4-item subscales allow 0 missing
    assert out.loc[1, "total"] == pytest.approx(12 * 36 / 11)
    assert math.isnan(out.loc[1, "sub_bond"]) and out.loc[1, "sub_task"] == 14 and out.loc[1, "sub_goal"] == 15
    # two missing: 10 answered sum 35 -> 12 * 35 / 10 = 42
    assert out.loc[2, "total"] == pytest.approx(42.0) and out.loc[2, "mean"] == pytest.approx(3.5)
    assert math.isnan(out.loc[3, "total"]) and not out.loc[3, "prorated"]
    assert out["prorated"].tolist() == [False, True, True, False]


def test_core10_reverse_keying_and_prorating(reg):
    core = reg["CORE-10"]
    items = pd.DataFrame(
        [
            [1, 4, 3, 2, 0, 1, 2, 3, 4, 0],
            [1, 4, 3, 2, 0, 1, 2, 3, 4, NAN],
            [1, 4, 3, 2, 0, 1, 2, 3, NAN, NAN],
        ]
    )
    with no_user_warning():
        out = score_items(items, core)
    # item 2: 0 + 4 - 4 = 0 ; item 3: 0 + 4 - 3 = 1 -> 1 + 0 + 1 + 2 + 0 + 1 + 2 + 3 + 4 + 0 = 14
    assert out.loc[0, "total"] == 14
    # 9 answered, sum 14 -> 10 * 14 / 9
    assert out.loc[1, "total"] == pytest.approx(140 / 9)
    assert math.isnan(out.loc[2, "total"])


def test_wai_s_scoring_warns_about_unverified_key(reg):
    with pytest.warns(UserWarning, match=r"WAI-S: scoring .*reverse_items"):
        out = score_items(pd.DataFrame([[7] * 12]), reg["WAI-S"])
    # items 4 and 10 reversed: 1 + 7 - 7 = 1 -> 10 * 7 + 2 * 1 = 72
    assert out.loc[0, "total"] == 72


def test_oq45_reverse_items(reg):
    # all answers 4: the 9 reverse-keyed items become 0 -> 36 * 4 = 144
    out = score_items(pd.DataFrame([[4] * 45]), reg["OQ-45.2"])
    assert out.loc[0, "total"] == 144


def test_score_items_input_checks(reg):
    with pytest.raises(ValueError, match="expected 9 item columns"):
        score_items(pd.DataFrame([[1] * 8]), reg["PHQ-9"])
    with pytest.raises(ValueError, match=r"outside \[0, 3\].*item 2"):
        score_items(pd.DataFrame([[1, 4, 1, 1, 1, 1, 1, 1, 1]]), reg["PHQ-9"])


def test_score_items_accepts_nullable_float(reg):
    items = pd.DataFrame([[1, 2, 3, 0, 1, 2, 3, 0, None]], dtype="Float64")
    assert score_items(items, reg["PHQ-9"]).loc[0, "total"] == 13.5


def _score_row_reference(row: list[float], inst: Instrument) -> float:
    """Slow per-row reference implementation of the prorated total."""
    vals = []
    for i, v in enumerate(row, start=1):
        if v != v:  # NaN
            continue
        vals.append(inst.item_min + inst.item_max - v if i in inst.reverse_items else v)
    n_missing = inst.n_items - len(vals)
    if n_missing > inst.prorate_max_missing or not vals:
        return NAN
    return sum(vals) if n_missing == 0 else inst.n_items * sum(vals) / len(vals)


def test_vectorised_on_200k_rows(reg):
    core = reg["CORE-10"]
    rng = np.random.default_rng(20240611)
    n = 200_000
    x = rng.integers(0, 5, size=(n, core.n_items)).astype(float)
    x[rng.random(x.shape) < 0.05] = np.nan
    out = score_items(pd.DataFrame(x), core)
    assert len(out) == n
    assert out["n_missing_items"].sum() == np.isnan(x).sum()
    for r in rng.choice(n, size=300, replace=False):
        expected = _score_row_reference(x[r].tolist(), core)
        got = out["total"].iat[r]
        assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected)
    # the prorating rule: present iff at most 1 missing
    assert (out["total"].notna() == (out["n_missing_items"] <= 1)).all()


# --------------------------------------------------------------------------- totals, POMP, bands


def test_check_total_range(reg):
    phq, wai = reg["PHQ-9"], reg["WAI-SR"]
    s = pd.Series([0, 27, 27.5, -1, NAN], index=list("vwxyz"))
    assert check_total_range(s, phq).tolist() == [False, False, True, True, False]
    assert check_total_range(s, phq).index.tolist() == list("vwxyz")
    assert check_total_range(pd.Series([1, 5, 5.5, 0.9]), wai, score="mean").tolist() == [False, False, True, True]
    assert check_total_range(pd.Series([12, 60, 11]), wai).tolist() == [False, False, True]


def test_pomp(reg):
    assert pomp(pd.Series([12, 36, 60]), reg["WAI-SR"]).tolist() == [0, 50, 100]
    assert pomp(pd.Series([1, 4]), reg["WAI-SR"], score="mean").tolist() == [0, 75]
    assert pomp(pd.Series([9]), reg["PHQ-9"]).iloc[0] == pytest.approx(100 / 3)


def test_severity_band(reg):
    out = severity_band(pd.Series([0, 4, 4.9, 5, 9.5, 10, 19, 20, 27, NAN]), reg["PHQ-9"])
    assert out.astype(object).where(out.notna(), None).tolist() == [
        "minimal",
        "minimal",
        "minimal",
        "mild",
        "mild",
        "moderate",
        "moderately severe",
        "severe",
        "severe",
        None,
    ]


# --------------------------------------------------------------------------- reliable change


def test_jacobson_truax_cutoff():
    # c = (6 * 5 + 4 * 20) / (6 + 4) = 110 / 10 = 11
    assert jacobson_truax_cutoff(m_clin=20, sd_clin=6, m_func=5, sd_func=4) == 11
    # equal SDs -> midpoint
    assert jacobson_truax_cutoff(30, 5, 10, 5) == 20


def test_fixed_recovered_vs_improved_around_phq9_cutoff(reg):
    phq = reg["PHQ-9"]
    base = pd.Series([15, 16, 9, 15, 10, 12])
    final = pd.Series([9, 10, 3, 10, 16, 9])
    rc = reliable_change(base, final, phq, method="fixed")
    assert rc["change"].tolist() == [-6, -6, -6, -5, 6, -3]
    assert rc["rci"].isna().all()
    # 15 -> 9: drop 6 and crosses from >= 10 to < 10 -> recovered
    # 16 -> 10: drop 6 but 10 is still caseness -> improved
    # 9 -> 3: drop 6 but not a case at baseline -> improved
    # 15 -> 10: drop 5 < 6 -> unchanged ; 10 -> 16: rise 6 -> deteriorated ; 12 -> 9: crosses but drop 3 -> unchanged
    assert rc["category"].tolist() == ["recovered", "improved", "improved", "unchanged", "deteriorated", "unchanged"]
    assert rc["reliable_improvement"].tolist() == [True, True, True, False, False, False]
    assert rc["reliable_deterioration"].tolist() == [False, False, False, False, True, False]


def test_jacobson_truax_rci_hand_computed(reg):
    phq = reg["PHQ-9"]  # r_xx = 0.89 in the registry
    # S_diff = sqrt(2) * SD * sqrt(1 - r_xx) = sqrt(2) * 5 * sqrt(0.11) = 5 * sqrt(0.22) = 2.345207880
    # 18 -> 12: RCI = -6 / 2.345207880 = -2.558409 (< -1.96: reliable, 12 >= 10: improved)
    # 18 -> 13: RCI = -5 / 2.345207880 = -2.132007 (reliable under JT, not under the fixed 6-point rule)
    # 18 ->  9: RCI = -9 / 2.345207880 = -3.837613 and 9 < 10 -> recovered
    # 12 -> 16: RCI = +4 / 2.345207880 = +1.705606 (< 1.96: unchanged)
    base = pd.Series([18, 18, 18, 12])
    final = pd.Series([12, 13, 9, 16])
    rc = reliable_change(base, final, phq, method="jacobson_truax", sd_baseline=5)
    s_diff = 5 * math.sqrt(0.22)
    assert s_diff == pytest.approx(2.345207880)
    assert rc["rci"].tolist() == pytest.approx([-2.558409, -2.132007, -3.837613, 1.705606], abs=1e-6)
    assert rc["category"].tolist() == ["improved", "improved", "recovered", "unchanged"]
    fixed = reliable_change(base, final, phq, method="fixed")
    assert fixed["category"].tolist() == ["improved", "unchanged", "recovered", "unchanged"]


def test_jacobson_truax_sample_sd_and_reliability_override(reg):
    phq = reg["PHQ-9"]
    # baseline SD (ddof=1) of 10, 14, 18 = 4 ; r_xx = 0.75 -> S_diff = sqrt(2) * 4 * 0.5 = 2.828427
    # changes 6, -6, 4 -> RCI 2.1213, -2.1213, 1.4142
    base = pd.Series([10, 14, 18])
    final = pd.Series([16, 8, 22])
    rc = reliable_change(base, final, phq, method="jacobson_truax", reliability=0.75)
    assert rc["rci"].tolist() == pytest.approx([6 / 2.828427, -6 / 2.828427, 4 / 2.828427], rel=1e-6)
    # 14 -> 8 crosses the cut-off 10 -> recovered
    assert rc["category"].tolist() == ["deteriorated", "recovered", "unchanged"]
    # a Jacobson-Truax criterion c passed as cutoff replaces the registry cut-off: with c = 7, 8 is still a case
    rc_c = reliable_change(base, final, phq, method="jacobson_truax", reliability=0.75, cutoff=7)
    assert rc_c["category"].tolist() == ["deteriorated", "improved", "unchanged"]


def test_reliable_change_higher_is_better(reg):
    srs = reg["SRS"]  # r_xx 0.88, no cut-off -> never recovered
    # S_diff = sqrt(2) * 4 * sqrt(0.12) = 1.959592 ; +4 -> RCI 2.041 (improved), -4 -> deteriorated
    rc = reliable_change(
        pd.Series([30.0, 30.0, 30.0]), pd.Series([34.0, 26.0, 33.0]), srs, "jacobson_truax", sd_baseline=4
    )
    assert rc["rci"].tolist() == pytest.approx([4 / 1.959592, -4 / 1.959592, 3 / 1.959592], rel=1e-6)
    assert rc["category"].tolist() == ["improved", "deteriorated", "unchanged"]


def test_reliable_change_missing_values(reg):
    idx = pd.Index([101, 102, 103], name="patient")
    rc = reliable_change(
        pd.Series([15, NAN, 15], index=idx), pd.Series([9, 9, NAN], index=idx), reg["PHQ-9"], method="fixed"
    )
    assert rc.index.equals(idx)
    assert rc.loc[101, "category"] == "recovered"
    assert math.isnan(rc.loc[102, "change"]) and math.isnan(rc.loc[103, "rci"])
    assert rc.loc[102, "category"] is None and rc.loc[103, "category"] is None
    assert rc["reliable_improvement"].isna().tolist() == [False, True, True]
    assert str(rc["reliable_improvement"].dtype) == "boolean"


def test_reliable_change_errors(reg):
    s = pd.Series([10.0, 20.0])
    with pytest.raises(ValueError, match="BDI-II: no published fixed"):
        reliable_change(s, s, reg["BDI-II"], method="fixed")
    with pytest.raises(ValueError, match="WAI-SR: no reliability"):
        reliable_change(s, s, reg["WAI-SR"], method="jacobson_truax")
    with pytest.raises(ValueError, match="method must be"):
        reliable_change(s, s, reg["PHQ-9"], method="rci")
