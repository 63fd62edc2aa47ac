"""Harmonisation of one study (alliance.pooling.harmonise): the common scale, the window, the record."""

import numpy as np
import pandas as pd
import pytest

from alliance.intake.config import load_instruments
from alliance.pooling.harmonise import harmonise_study, standardise

REGISTRY = load_instruments({})


def study(n_patients: int = 30, sessions: int = 10, seed: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A study whose depressed patients are rated with the PHQ-9 and anxious ones with the GAD-7."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        measure, top = ("PHQ-9", 27) if i % 2 else ("GAD-7", 21)
        for t in range(1, sessions + 1 - (i % 3)):
            rows.append(
                {
                    "patient": f"p{i:02d}",
                    "therapist": f"t{i % 5}",
                    "session": t,
                    "outcome_measure": measure,
                    "symptoms_raw": float(rng.integers(0, top + 1)),
                    "alliance": float(rng.integers(12, 61)) / 12,
                    "dropout": bool(i % 3 == 2),
                }
            )
    analysis = pd.DataFrame(rows)
    patients = analysis.drop_duplicates("patient")[["patient", "dropout"]]
    return analysis, patients


def harmonised(scale: str):
    """The study, its patients, and the study harmonised on sessions 1-7 with the outcome on ``scale``."""
    analysis, patients = study()
    return (
        analysis,
        patients,
        harmonise_study(
            analysis,
            patients,
            study="s",
            window=(1, 7),
            outcome_scale=scale,
            registry=REGISTRY,
            alliance_instrument="WAI-SR",
        ),
    )


def test_pomp_puts_each_instrument_on_its_own_range_and_the_alliance_is_z_in_the_window():
    analysis, patients, h = harmonised("pomp")
    merged = h.sessions.merge(analysis, on=["patient", "session"], suffixes=("", "_in"))
    top = np.where(merged["outcome_measure"] == "PHQ-9", 27, 21)
    np.testing.assert_allclose(merged["symptoms"], 100 * merged["symptoms_raw"] / top)
    window = analysis[analysis["session"] <= 7]
    expected = (merged["alliance_in"] - window["alliance"].mean()) / window["alliance"].std(ddof=1)
    np.testing.assert_allclose(merged["alliance"], expected)
    assert h.sessions["session"].max() == 7 and h.record["session_rows"] == len(window)
    assert h.record["alliance_sd"] == pytest.approx(window["alliance"].std(ddof=1))
    assert h.record["outcome_transformation"] == "GAD-7: 100 x (total - 0) / 21; PHQ-9: 100 x (total - 0) / 27"


def test_the_parts_are_made_again_on_the_window_and_the_last_session_has_no_next_one():
    analysis, patients, h = harmonised("pomp")
    sums = h.sessions.groupby("patient")["alliance_within_patient"].sum()
    np.testing.assert_allclose(sums, 0, atol=1e-12)
    last = h.sessions[h.sessions["session"] == 7]
    assert (
        last["symptoms_next"].isna().all() and h.sessions.loc[h.sessions["session"] == 6, "symptoms_next"].notna().all()
    )


def test_z_within_study_standardises_each_instrument_and_the_patient_level_uses_every_session():
    analysis, patients, h = harmonised("z_within_study")
    window = h.sessions
    for _, rows in window.groupby("outcome_measure"):
        assert rows["symptoms"].mean() == pytest.approx(0, abs=1e-12)
        assert rows["symptoms"].std(ddof=1) == pytest.approx(1)
    # end of treatment: the last observed session, after the window
    last = analysis.sort_values("session").groupby("patient").tail(1).set_index("patient")
    first = h.patients.set_index("patient")
    phq = last["outcome_measure"] == "PHQ-9"
    in_window = analysis[(analysis["session"] <= 7) & (analysis["outcome_measure"] == "PHQ-9")]["symptoms_raw"]
    expected = (last.loc[phq, "symptoms_raw"] - in_window.mean()) / in_window.std(ddof=1)
    np.testing.assert_allclose(first.loc[expected.index, "symptoms_last"], expected)
    assert first["dropout"].sum() == patients["dropout"].sum()


def test_an_alliance_without_spread_stops_with_its_name():
    with pytest.raises(ValueError, match="'alliance'.*SD in the session window is 0"):
        standardise(pd.Series([3.0, 3.0, 3.0], name="alliance"), pd.Series([True, True, True]))
