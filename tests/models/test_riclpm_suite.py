"""The RI-CLPM as a model of the suite (alliance.models.riclpm_suite, rule fit_riclpm): wide data from
session numbers, both path settings, the tables with their flags, determinism, and that the mixed-model
rules never see an RI-CLPM."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml

from alliance.dynamics.process import DropoutParams, ProcessParams, simulate_process
from alliance.dynamics.riclpm import RICLPMWarning
from alliance.models.data import ModelDataError
from alliance.models.riclpm_suite import RICLPM_TABLES, fit_riclpm_model, riclpm_wide
from alliance.outputs import write_csv, write_json
from alliance.step import read_workflow
from testkit import ROOT, demo_config

MODEL = {
    "name": "dyn",
    "type": "riclpm",
    "label": "RI-CLPM",
    "waves": 5,
    "paths": "constrained",
    "cluster": "therapist",
    "variables": {"alliance": "alliance", "symptoms": "symptoms"},
}
PARAMS = ProcessParams(n_sessions=6)  # one session more than the waves: session 6 must not be used


def _trial(n_patients: int = 400, n_therapists: int = 40, seed: int = 11) -> tuple[pd.DataFrame, dict]:
    """A simulated analysis table (alliance, symptoms by session; MAR dropout), rows shuffled."""
    long, truth = simulate_process(
        PARAMS,
        n_patients,
        np.random.default_rng(seed),
        dropout=DropoutParams(),
        patient_ids=np.array([f"P{i:04d}" for i in range(n_patients)]),
    )
    long = long.rename(columns={"alliance_score": "alliance", "symptom_score": "symptoms"})
    long["therapist"] = long["patient"].str[1:].astype(int).mod(n_therapists).map(lambda t: f"T{t:02d}")
    return long.sample(frac=1.0, random_state=5).reset_index(drop=True), truth


def _fit(model: dict, table: pd.DataFrame) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RICLPMWarning)
        return fit_riclpm_model(model, table)


@pytest.fixture(scope="module")
def trial():
    return _trial()


@pytest.fixture(scope="module")
def fitted(trial):
    return _fit(MODEL, trial[0])


def test_waves_are_session_numbers_not_row_positions(trial):
    table, _ = trial
    wide, record = riclpm_wide(MODEL, table)
    assert list(wide.columns) == [f"x{t}" for t in range(1, 6)] + [f"y{t}" for t in range(1, 6)] + ["therapist"]
    one = table[(table["patient"] == wide.index[0]) & (table["session"] == 3)].iloc[0]
    assert wide.iloc[0]["x3"] == one["alliance"] and wide.iloc[0]["y3"] == one["symptoms"]
    assert record["sessions"] == [1, 2, 3, 4, 5]
    assert record["observed_alliance_by_wave"] == [int((table["session"] == t).sum()) for t in range(1, 6)]
    # a patient who missed session 3 has x3 and y3 missing, and x4 is session 4
    gap = table[~((table["patient"] == "P0001") & (table["session"] == 3))]
    gap_wide, _ = riclpm_wide(MODEL, gap)
    assert np.isnan(gap_wide.loc["P0001", "x3"]) and gap_wide.loc["P0001", "x4"] == wide.loc["P0001", "x4"]


def test_the_tables_of_both_fits_with_flags_on_every_row(fitted):
    parameters = fitted["parameters"]
    assert set(RICLPM_TABLES) | {"fit"} == set(fitted)
    assert parameters.groupby("paths").size().to_dict() == {"constrained": 4 + 3 + 3 + 4 * 3 + 10, "free": 16 + 28}
    assert parameters["reported"].tolist() == (parameters["paths"] == "constrained").tolist()
    assert parameters["paths"].iloc[0] == "constrained"  # the reported fit first
    gamma = parameters.set_index(["paths", "name"]).loc[("constrained", "gamma")]
    assert gamma["description"] == (
        "cross-lag alliance -> symptoms: within-patient alliance at t-1 -> symptoms at t (equal over waves)"
    )
    assert gamma["se_type"].startswith("cluster-robust sandwich, 40 clusters")
    assert fitted["fit_indices"]["paths"].tolist() == ["constrained", "free"]
    assert {"chisq", "df", "cfi", "tli", "rmsea", "rmsea.ci.lower", "srmr", "aic", "bic"} <= set(fitted["fit_indices"])
    long_run = fitted["long_run"].set_index("effect")
    assert long_run.loc["x->y", ["from_variable", "to_variable"]].tolist() == ["alliance", "symptoms"]
    test = fitted["constraint_test"].iloc[0]
    assert test["df_diff"] == 4 * (5 - 2)
    assert test["chisq_diff"] == pytest.approx(2 * (test["loglik_free"] - test["loglik_constrained"]))
    for key in RICLPM_TABLES:
        assert fitted[key]["flags"].notna().all() and (fitted[key]["flags"] != "").all(), key
    # 40 clusters for 44 free-path parameters: the free fit's sandwich is singular, and says so
    assert fitted["fit"]["fits"]["free"]["flags"] == ["few_clusters"]
    assert set(parameters.loc[parameters["paths"] == "free", "flags"]) == {"few_clusters"}
    assert fitted["fit"]["flags"] == fitted["fit"]["fits"]["constrained"]["flags"] == []
    assert set(parameters.loc[parameters["reported"], "flags"]) == {"none"}
    assert test["flags"] == "few_clusters"


def test_estimates_recover_the_truth_roughly(fitted, trial):
    truth = trial[1]["riclpm"]
    table = fitted["parameters"].set_index(["paths", "name"])
    for name in ("alpha", "beta", "gamma", "delta"):
        row = table.loc[("constrained", name)]
        assert abs(row["estimate"] - truth[name]) < 4 * row["se"], name


def test_fit_json_records_the_sample_the_fits_and_the_definitions(fitted):
    fit = fitted["fit"]
    assert fit["type"] == "riclpm" and fit["paths"] == "constrained" and fit["config"]["waves"] == 5
    assert fit["fits"]["constrained"]["converged"] and fit["fits"]["free"]["converged"]
    assert fit["fits"]["constrained"]["n_clusters"] == 40
    assert fit["definitions"]["gamma"].startswith("cross-lag alliance -> symptoms")
    assert [r["effect"] for r in fit["long_run"]] == ["x->x", "y->x", "x->y", "y->y"]
    assert fit["constraint_test"]["df_diff"] == 12 and "known_bias" not in fit
    assert fit["sample"]["patients_with_a_wave"] == 400


def test_free_paths_reported_and_no_cluster(trial):
    tables = _fit({**MODEL, "paths": "free", "cluster": None}, trial[0])
    assert tables["fit"]["paths"] == "free" and tables["parameters"]["paths"].iloc[0] == "free"
    assert tables["parameters"]["se_type"].iloc[0] == "observed information (model-based)"
    assert tables["fit"]["flags"] == []  # model-based SEs: no cluster problem
    assert tables["long_run"]["paths"].unique().tolist() == ["constrained"]  # defined for the constrained fit only


def test_few_clusters_flag_every_table_and_fit_json(trial):
    table = trial[0].assign(therapist=trial[0]["patient"].str[-1].map(lambda d: f"T{int(d) % 3}"))
    tables = _fit(MODEL, table)
    assert tables["fit"]["flags"] == ["few_clusters"]
    for key in RICLPM_TABLES:
        assert (tables[key]["flags"] == "few_clusters").all(), key


def test_deterministic_bytes_on_rerun(trial, tmp_path):
    for attempt in ("a", "b"):
        tables = _fit(MODEL, trial[0])
        (tmp_path / attempt).mkdir()
        for key in RICLPM_TABLES:
            write_csv(tables[key], tmp_path / attempt / f"{key}.csv")
        write_json(tables["fit"], tmp_path / attempt / "fit.json")
    for name in [*(f"{k}.csv" for k in RICLPM_TABLES), "fit.json"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_a_missing_column_or_an_unidentified_wave_is_named(trial):
    with pytest.raises(ModelDataError, match="'dyn' uses column\\(s\\) wai"):
        _fit({**MODEL, "variables": {"alliance": "wai", "symptoms": "symptoms"}}, trial[0])
    early = trial[0][trial[0]["session"] <= 3]
    with pytest.raises(ModelDataError, match="model 'dyn': not identified"):
        _fit(MODEL, early)


# --------------------------------------------------------------------------- the workflow


@pytest.fixture(scope="module")
def workflow_with_riclpm(tmp_path_factory):
    """The workflow read on the demo config with an RI-CLPM (in a scratch directory)."""
    directory = tmp_path_factory.mktemp("riclpm_workflow")
    (directory / "data").symlink_to(ROOT / "data")
    config = demo_config()
    if not any(m.get("type") == "riclpm" for m in config["models"]):
        config["models"].append({**MODEL, "name": "riclpm", "waves": 7})
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        yield read_workflow([str(directory / "config.yaml")])
    finally:
        os.chdir(cwd)


def test_riclpm_models_reach_only_the_dynamics_rule(workflow_with_riclpm):
    workflow = workflow_with_riclpm
    names = [m["name"] for m in workflow.config["models"] if m.get("type") == "riclpm"]
    assert names and not set(names) & set(workflow.globals["MODELS"])
    assert set(names) == set(workflow.globals["RICLPM_MODELS"])
    fit_model, fit_riclpm = workflow.get_rule("fit_model"), workflow.get_rule("fit_riclpm")
    for name in names:
        folder = f"results/demo/models/{name}"
        assert fit_riclpm.is_producer(f"{folder}/fit.json") and fit_riclpm.is_producer(f"{folder}/long_run.csv")
        assert not fit_model.is_producer(f"{folder}/fit.json")
        assert not fit_model.is_producer(f"{folder}/fixed_effects.csv")
        assert not workflow.get_rule("fit_stratum").is_producer(f"{folder}/strata/all/fit.json")
    assert fit_model.is_producer("results/demo/models/same_session/fit.json")
    assert not fit_riclpm.is_producer("results/demo/models/same_session/fit.json")
    effects = [str(f) for f in workflow.get_rule("summarise_effects").input]
    assert effects and not any(f"/models/{name}/" in f for f in effects for name in names)
    assert all(m.get("type") != "riclpm" for m in workflow.get_rule("summarise_effects").params.models)
