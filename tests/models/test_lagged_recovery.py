"""Recovery of the lagged specifications with a known lagged truth (alliance.models.lagged_recovery):
the study's machinery, the notes of measured bias in the shipped configs against the table of
docs/lagged_recovery.md, and (marked slow) the first 50 of the study's 200 replications against that table."""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml

from alliance.dynamics.process import ProcessParams
from alliance.models.lagged_recovery import (
    N_PATIENTS,
    N_THERAPISTS,
    STUDY_PARAMS,
    analysis_table,
    estimands,
    lagged_models,
    lagged_recovery_study,
    replicate,
    simulate_trial,
)
from testkit import ROOT, demo_config

SHIPPED = ["config/config.yaml", "config/demo_lab2.yaml"]
DOC = ROOT / "docs" / "lagged_recovery.md"
#: a measured number in a known_bias note: "<what> as <estimate> (truth <truth>, ... coverage <n> %)"
NOTE_NUMBER = re.compile(
    r" as (-?\d+\.\d+)(?: on average)? \(truth (-?\d+\.\d+), (?:95 % CI )?coverage (\d+(?:\.\d+)?) %\)"
)
RICLPM_ORDER = ["gamma", "beta", "alpha", "delta"]  # the order of the numbers in the RI-CLPM's note


def doc_rows() -> dict[tuple[str, str], dict[str, float]]:
    """(model, term) -> truth, mean estimate, coverage (fraction) from the table of docs/lagged_recovery.md."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 12 and cells[0].startswith("`"):
            rows[cells[0].strip("`"), cells[1].strip("`")] = {
                "truth": float(cells[3]),
                "mean_estimate": float(cells[4]),
                "coverage": float(cells[10].split("%")[0]) / 100,
            }
    return rows


def note_numbers(model: dict) -> list[tuple[str, float, float, float]]:
    """The measured numbers of a model's known_bias note: (term, estimate, truth, coverage fraction).

    A mixed model's note gives the cross-lag, then the carry-over; the RI-CLPM's note its four paths
    in :data:`RICLPM_ORDER`."""
    found = [(float(a), float(b), float(c) / 100) for a, b, c in NOTE_NUMBER.findall(model.get("known_bias", ""))]
    if model.get("type") == "riclpm":
        terms = RICLPM_ORDER
    else:
        paths = estimands(model)
        terms = sorted(paths, key=lambda t: paths[t] not in ("gamma", "beta"))
    assert len(found) == len(terms), (model["name"], model.get("known_bias"))
    return [(term, *numbers) for term, numbers in zip(terms, found)]


def _lagged(path: str) -> list[dict]:
    return lagged_models(yaml.safe_load((ROOT / path).read_text()))


# --------------------------------------------------------------------------- the study's machinery


def test_the_trial_has_the_demo_s_size_and_a_therapist_level():
    long, truth = simulate_trial(STUDY_PARAMS, np.random.default_rng(4))
    assert long.shape[0] == N_PATIENTS * 10 and long["patient"].nunique() == N_PATIENTS
    assert long.groupby("patient")["therapist"].nunique().max() == 1
    assert long.groupby("therapist")["patient"].nunique().tolist() == [N_PATIENTS // N_THERAPISTS] * N_THERAPISTS
    assert truth["riclpm"]["gamma"] == -0.20 and truth["riclpm"]["beta"] == -0.10
    assert truth["riclpm"]["alpha"] == truth["riclpm"]["delta"] == 0.40
    table = analysis_table(long)
    assert table.groupby("patient")["alliance_within_patient"].sum().abs().max() < 1e-12
    first = table[(table["patient"] == "P0001")].set_index("session")
    assert first.loc[3, "symptoms_next"] == first.loc[4, "symptoms"]
    assert np.isnan(first.loc[10, "symptoms_next"]) and first["alliance_within_patient_detrended"].notna().all()


@pytest.mark.parametrize("path", SHIPPED)
def test_every_lagged_mixed_model_estimates_one_cross_lag_and_one_carry_over(path):
    mixed = [m for m in _lagged(path) if m.get("type") != "riclpm"]
    assert len(mixed) == 9
    for model in mixed:
        paths = sorted(estimands(model).values())
        assert paths in (["delta", "gamma"], ["alpha", "beta"]), model["name"]
        assert (paths == ["delta", "gamma"]) == (model["outcome"] == "symptoms_next")


def test_one_replication_fits_every_lagged_model_through_the_suite():
    models = _lagged("config/config.yaml")
    rows = replicate(models, np.random.SeedSequence(7), ProcessParams(n_sessions=7))
    assert rows.groupby("model", sort=False).size().to_dict() == {
        m["name"]: 4 if m.get("type") == "riclpm" else 2 for m in models
    }
    assert rows["converged"].all()
    assert (rows["ci_low"] < rows["estimate"]).all() and (rows["estimate"] < rows["ci_high"]).all()
    truth = {"gamma": -0.20, "beta": -0.10, "alpha": 0.40, "delta": 0.40}
    assert rows["truth"].tolist() == [truth[p] for p in rows["parameter"]]
    riclpm = rows[rows["model"] == "riclpm"].set_index("parameter")
    assert abs(riclpm.loc["gamma", "estimate"] + 0.20) < 4 * riclpm.loc["gamma", "se"]


# --------------------------------------------------------------------------- the notes say what the table shows


@pytest.mark.parametrize("path", SHIPPED)
def test_every_lagged_model_states_its_measured_bias_as_the_recovery_table_shows(path):
    doc = doc_rows()
    models = _lagged(path)
    assert len(models) == 10 and all(m.get("known_bias") for m in models)
    for model in models:
        for term, estimate, truth, coverage in note_numbers(model):
            row = doc[model["name"], term]
            assert truth == row["truth"], (model["name"], term)
            assert estimate == pytest.approx(row["mean_estimate"], abs=5e-4), (model["name"], term)
            assert coverage == pytest.approx(row["coverage"], abs=5e-4), (model["name"], term)


def test_the_table_covers_every_lagged_model_and_path():
    doc = doc_rows()
    expected = {(m["name"], t) for m in _lagged("config/config.yaml") for t, *_ in note_numbers(m)}
    assert set(doc) == expected


#: replications the test runs: the first of the study's 200 seeds (``SeedSequence.spawn`` gives the
#: same first children for any count), so each is one of the table's own trials
SUBSET_REPLICATIONS = 50


@pytest.mark.slow
def test_the_recovery_study_gives_the_table_of_docs_within_monte_carlo_error():
    """The command of docs/lagged_recovery.md (its seed) on the first 50 of its 200 replications:
    every row's mean estimate and coverage within Monte Carlo error of the table's 200.

    The subset's mean differs from the whole study's by sd * sqrt(1/50 - 1/200), less than the
    subset's own MCSE, so 3 MCSE is a bound a correct table meets and a changed estimator misses.
    The whole study is the docs' command (20 minutes on 2 cores); CI runs the subset."""
    n = SUBSET_REPLICATIONS
    summary, _ = lagged_recovery_study(demo_config(), replications=n, processes=2)  # CI has 2 cores
    assert summary.attrs["replications"] == n and (summary["n"] == n).all()
    doc = doc_rows()
    assert set(zip(summary["model"], summary["term"])) == set(doc)
    for row in summary.to_dict(orient="records"):
        stated = doc[row["model"], row["term"]]
        where = (row["model"], row["term"], row["mean_estimate"], row["coverage"], stated)
        assert abs(row["mean_estimate"] - stated["mean_estimate"]) <= max(3 * row["bias_mcse"], 5e-4), where
        coverage_mcse = np.sqrt(stated["coverage"] * (1 - stated["coverage"]) / n)
        assert abs(row["coverage"] - stated["coverage"]) <= max(3 * coverage_mcse, 1 / n), where


@pytest.mark.slow
def test_the_study_gives_the_same_tables_in_one_process_and_in_two():
    """Worker processes only share out the replications: their seeds and order do not change."""
    one = lagged_recovery_study(demo_config(), replications=2)
    two = lagged_recovery_study(demo_config(), replications=2, processes=2)
    for a, b in zip(one, two):
        assert a.to_csv() == b.to_csv()
