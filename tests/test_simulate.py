"""The simulator: byte-identical demo data from the seed, and the truth it states."""

import hashlib

import numpy as np
import pandas as pd
import pytest
import yaml

from alliance.simulate import (
    DEMO_SEED,
    TrialDesign,
    _split_total_into_items,
    _write_csv,
    simulate_trial,
    write_trial,
)
from testkit import ROOT

DEMO = ROOT / "data" / "raw" / "demo"


def test_demo_files_regenerate_byte_for_byte(tmp_path):
    digests = write_trial(tmp_path, TrialDesign(), DEMO_SEED)
    for name, digest in digests.items():
        assert digest == hashlib.sha256((DEMO / name).read_bytes()).hexdigest(), name


def test_design_matches_the_issue():
    truth = yaml.safe_load((DEMO / "TRUTH.yaml").read_text())
    sessions = pd.read_csv(DEMO / "sessions.csv", dtype=str, keep_default_na=False)
    assert truth["sample"]["therapists"] == sessions["therapist"].nunique() == 60
    assert sessions["patient"].nunique() == 600
    assert set(sessions["therapy"]) == {"CBT", "PDT", "IPT"}
    assert set(sessions["condition"]) == {"depression", "anxiety"}
    numbers = pd.to_numeric(sessions["session"], errors="coerce")
    assert numbers.max() == 16
    # every therapist delivers a single therapy type
    assert sessions.groupby("therapist")["therapy"].nunique().max() == 1


def test_mess_is_present_as_stated():
    truth = yaml.safe_load((DEMO / "TRUTH.yaml").read_text())
    sessions = pd.read_csv(DEMO / "sessions.csv", dtype=str, keep_default_na=False)
    faults = {m["fault"] for m in truth["mess"]}
    assert "exact duplicate row" in faults
    assert sessions.duplicated().sum() == 1
    assert (sessions["session"] == "Post-Rx").sum() == 1
    assert (sessions["wai_05"] == "6").sum() >= 1
    assert (sessions["gad7_03"] == "refused").sum() == 1
    # gaps: some patient misses a session between two attended ones
    numbers = pd.to_numeric(sessions["session"], errors="coerce").dropna().astype(int)
    steps = numbers.groupby(sessions.loc[numbers.index, "patient"]).diff()
    assert (steps > 1).sum() > 10


def test_item_totals_follow_the_generated_outcome():
    """Items are spread from the generated total, so they must sum to it within range."""
    sessions, _, _ = simulate_trial(TrialDesign(n_therapists=6, add_mess=False), seed=3)
    phq = sessions[[f"phq9_{k:02d}" for k in range(1, 10)]].replace("", np.nan).astype(float)
    assert phq.min().min() >= 0 and phq.max().max() <= 3
    wai = sessions[[f"wai_{k:02d}" for k in range(1, 13)]].replace("", np.nan).astype(float)
    assert wai.min().min() >= 1 and wai.max().max() <= 5


def test_different_seeds_differ():
    a, _, _ = simulate_trial(TrialDesign(n_therapists=3), seed=1)
    b, _, _ = simulate_trial(TrialDesign(n_therapists=3), seed=2)
    assert not a.equals(b)


def test_items_split_in_blocks_as_in_one_draw():
    """The blocked split draws the same keys and chooses the same slots as ranking all rows at once."""
    totals = np.random.default_rng(0).integers(0, 28, 1000)
    rng = np.random.default_rng(5)
    keys = rng.random((len(totals), 27))
    ranks = keys.argsort(axis=1).argsort(axis=1)
    expected = (ranks < totals[:, None]).reshape(len(totals), 9, 3).sum(axis=2)
    after = rng.random()
    rng = np.random.default_rng(5)
    counts = _split_total_into_items(totals, 9, 3, rng, block_rows=64)
    assert np.array_equal(counts, expected)
    assert (counts.sum(axis=1) == totals).all()
    assert rng.random() == after  # the stream continues where one draw would have left it


def test_simulated_columns_are_pandas_strings():
    sessions, _, _ = simulate_trial(TrialDesign(n_therapists=3, patients_per_therapist=4), seed=2)
    assert (sessions.dtypes == pd.Series(["1"]).astype(str).dtype).all()
    assert set(sessions["wai_01"]) <= {"", "1", "2", "3", "4", "5", "6", "0"}


@pytest.mark.parametrize(
    "values",
    [
        ["P1", "", "Post-Rx", "66+", " x "],  # written by pyarrow
        ["P1", "", "a,b", 'say "no"', "x"],  # pandas quotes these: written by pandas
    ],
)
def test_csv_writer_matches_pandas(tmp_path, values):
    frame = pd.DataFrame({"text": values, "number": np.arange(-2, 3)}).astype({"text": "str"})
    frame.loc[1, "text"] = np.nan
    _write_csv(frame, tmp_path / "fast.csv")
    frame.to_csv(tmp_path / "pandas.csv", index=False, lineterminator="\n")
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
