"""The lagged specifications of the suite (issue 11): config keys ``person_means``, ``known_bias`` and
``type: riclpm`` (schema and alliance.models.config), person means from a model's own rows and the
detrended symptom part (alliance.models.person_means via alliance.models.data). The notes of measured
bias are checked in test_lagged_recovery.py."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from alliance.dynamics.process import ProcessParams
from alliance.intake.derive import decompose_within_between, next_session_values, within_patient_detrended
from alliance.models import config as model_config
from alliance.models.data import analysis_columns, model_frame
from alliance.models.lagged_recovery import analysis_table, simulate_trial
from alliance.models.suite import fit_model
from testkit import ROOT, demo_config

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SHIPPED = ["config/config.yaml", "config/demo_lab2.yaml"]
RICLPM = {"name": "dyn", "type": "riclpm", "variables": {"alliance": "alliance", "symptoms": "symptoms"}, "waves": 7}


def _with_model(model: dict) -> dict:
    config = copy.deepcopy(demo_config())
    config["models"] = [m for m in config["models"] if m["name"] != model["name"]] + [model]
    return config


def _model(name: str, **changes) -> dict:
    base = next(m for m in demo_config()["models"] if m["name"] == name)
    return {**copy.deepcopy(base), **changes}


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize(
    "model, message",
    [
        (_model("lagged_alliance_symptoms", person_means="recent_sessions"), "'recent_sessions' is not one of"),
        (_model("lagged_alliance_symptoms", known_bias="biased"), "'biased' is too short"),
        (_model("lagged_alliance_symptoms", type="riclpm"), "'fixed', 'outcome', 'random', 'roles' were unexpected"),
        ({k: v for k, v in RICLPM.items() if k != "waves"}, "'waves' is a required property"),
        ({**RICLPM, "waves": 2}, "2 is less than the minimum of 3"),
        ({**RICLPM, "paths": "per_wave"}, "'per_wave' is not one of"),
        ({**RICLPM, "fixed": ["alliance"]}, "'fixed' was unexpected"),
        ({**RICLPM, "variables": {"alliance": "alliance"}}, "'symptoms' is a required property"),
        ({**RICLPM, "variables": {"alliance": "__import__('os')", "symptoms": "symptoms"}}, "does not match"),
        ({**RICLPM, "cluster": "therapist; rm -rf"}, "cluster"),
        ({**RICLPM, "type": "sem"}, "'variables', 'waves' were unexpected"),
    ],
)
def test_schema_names_the_wrong_key(model, message):
    with pytest.raises(Exception, match=message):
        validate(_with_model(model), str(SCHEMA))


def test_schema_fills_defaults_of_an_riclpm_and_none_into_mixed_models():
    config = _with_model(dict(RICLPM))
    before = copy.deepcopy(config["models"][:-1])
    validate(config, str(SCHEMA))
    assert config["models"][-1]["paths"] == "constrained" and config["models"][-1]["cluster"] is None
    for old, new in zip(before, config["models"][:-1]):  # the new keys add nothing to an existing model's fit.json
        assert not {"type", "person_means", "known_bias"} & (set(new) - set(old)), new["name"]


# --------------------------------------------------------------------------- check_models


@pytest.mark.parametrize(
    "model, message",
    [
        (_model("baldwin", person_means="model_rows"), r"models\.baldwin\.person_means: model_rows needs session rows"),
        (_model("alliance_growth", person_means="model_rows"), "uses no within/between part"),
        ({**RICLPM, "variables": {"alliance": "symptoms", "symptoms": "symptoms"}}, r"models\.dyn\.variables: .*both"),
        ({**RICLPM, "cluster": "alliance"}, r"models\.dyn\.cluster: 'alliance' is one of the model's variables"),
    ],
)
def test_model_checks_name_the_mistake_in_the_new_keys(model, message):
    with pytest.raises(model_config.ModelConfigError, match=message):
        model_config.check_models(_with_model(model))


def test_model_names_are_unique_across_model_types():
    config = copy.deepcopy(demo_config())
    config["models"].append({**RICLPM, "name": "same_session"})
    with pytest.raises(model_config.ModelConfigError, match="models.same_session: two models have this name"):
        model_config.check_models(config)


def test_riclpm_entries_are_kept_apart_from_the_mixed_models():
    config = demo_config()
    mixed, dynamic = model_config.mixed_models(config["models"]), model_config.riclpm_models(config["models"])
    assert dynamic and not set(mixed) & set(dynamic)
    assert all(m.get("type") == "riclpm" for m in dynamic.values())
    assert analysis_columns(dynamic["riclpm"]) == ["patient", "therapist", "session", "alliance", "symptoms"]


@pytest.mark.parametrize("path", SHIPPED)
def test_shipped_configs_carry_the_honest_lagged_specifications_both_directions(path):
    config = yaml.safe_load((ROOT / path).read_text())
    validate(config, str(SCHEMA))
    model_config.check_models(config)
    models = {m["name"]: m for m in config["models"]}
    for spec in ("centred", "detrended", "rowmeans"):
        forward, reverse = models[f"lagged_{spec}_alliance_symptoms"], models[f"lagged_{spec}_symptoms_alliance"]
        assert forward["outcome"] == "symptoms_next" and reverse["outcome"] == "alliance_next"
    assert models["lagged_rowmeans_alliance_symptoms"]["person_means"] == "model_rows"
    assert "alliance_within_patient_detrended" in models["lagged_detrended_alliance_symptoms"]["fixed"]
    assert "symptoms_within_patient_detrended" in models["lagged_detrended_symptoms_alliance"]["fixed"]
    assert {k: models["riclpm"][k] for k in ("type", "waves", "paths", "cluster")} == {
        "type": "riclpm",
        "waves": 7,
        "paths": "constrained",
        "cluster": "therapist",
    }


# --------------------------------------------------------------------------- person means from the model's rows


def _hand_table() -> pd.DataFrame:
    """Two patients; patient a's session 4 and patient b's session 3 have no next session."""
    data = pd.DataFrame(
        {
            "patient": ["a"] * 4 + ["b"] * 3,
            "therapist": ["t1"] * 4 + ["t2"] * 3,
            "session": [1, 2, 3, 4, 1, 2, 3],
            "alliance": [3.0, 4.0, 5.0, 6.0, 2.0, 2.0, 5.0],
            "symptoms": [50.0, 40.0, 30.0, 35.0, 60.0, 50.0, 55.0],
        }
    )
    data["session_c"] = data["session"] - 1
    return pd.concat(
        [
            data,
            decompose_within_between(data, "alliance"),
            decompose_within_between(data, "symptoms"),
            next_session_values(data, ["symptoms", "alliance"]),
        ],
        axis=1,
    )


def test_model_rows_recompute_the_parts_on_the_sessions_the_model_uses():
    model = _model("lagged_rowmeans_alliance_symptoms")
    table = _hand_table()
    assert table["alliance_within_patient"].tolist() == [-1.5, -0.5, 0.5, 1.5, -1.0, -1.0, 2.0]  # the intake's
    frame, record = model_frame(model, table)
    # patient a: sessions 1-3 (mean alliance 4, symptoms 40); b: sessions 1-2 (2 and 55); grand means 3 and 47.5
    assert frame["session"].tolist() == [1, 2, 3, 1, 2]
    assert frame["alliance_within_patient"].tolist() == [-1.0, 0.0, 1.0, 0.0, 0.0]
    assert frame["alliance_between_patient"].tolist() == [1.0, 1.0, 1.0, -1.0, -1.0]
    assert frame["symptoms_within_patient"].tolist() == [10.0, 0.0, -10.0, 5.0, -5.0]
    assert frame["symptoms_between_patient"].tolist() == [-7.5, -7.5, -7.5, 7.5, 7.5]
    assert frame["alliance_between_therapist"].tolist() == [1.0, 1.0, 1.0, -1.0, -1.0]
    assert frame["alliance_n_sessions"].tolist() == [3, 3, 3, 2, 2]
    assert frame.groupby("patient")["alliance_within_patient"].sum().abs().max() == 0.0
    assert record["person_means"]["setting"] == "model_rows" and record["person_means"]["rows"] == 5
    assert record["rows_after_filter"] == 7 and record["person_means"]["values"] == ["alliance", "symptoms"]
    # the intake's table is untouched, and without the key nothing is recomputed
    assert table["alliance_within_patient"].tolist() == [-1.5, -0.5, 0.5, 1.5, -1.0, -1.0, 2.0]
    same, plain = model_frame(_model("lagged_centred_alliance_symptoms"), table)
    assert same["alliance_within_patient"].tolist() == table["alliance_within_patient"].tolist()
    assert "person_means" not in plain


def test_model_rows_follow_the_filter():
    model = _model("lagged_rowmeans_alliance_symptoms", filter={"session_max": 2})
    frame, _ = model_frame(model, _hand_table())
    # rows: sessions 1-2 of both patients; a's alliance mean 3.5, b's 2
    assert frame["alliance_within_patient"].tolist() == [-0.5, 0.5, 0.0, 0.0]
    assert frame["alliance_between_patient"].tolist() == [0.75, 0.75, -0.75, -0.75]


def test_detrended_symptoms_are_made_in_the_model_stage_as_the_intake_makes_the_alliance_s():
    model = _model("lagged_detrended_symptoms_alliance")
    table = _hand_table()
    assert "symptoms_within_patient_detrended" not in table
    assert {"symptoms", "session"} <= set(analysis_columns(model))
    frame, record = model_frame(model, table)
    expected = within_patient_detrended(table, "symptoms")
    assert frame["symptoms_within_patient_detrended"].tolist() == expected.tolist()
    # patient a: the line 52.5 - 6 (session - 1) ... residuals 50-52.5... computed by hand
    # a: 50, 40, 30, 35 about the line 52.5 - 5.5 (session - 1); b: 60, 50, 55 about 57.5 - 2.5 (session - 1)
    assert np.allclose(frame["symptoms_within_patient_detrended"], [3.0, -1.5, -6.0, 4.5, 2.5, -5.0, 2.5])
    assert list(record["derived"]) == ["symptoms_within_patient_detrended"]


def test_columns_read_for_the_model_rows_spec_include_the_values_behind_the_parts():
    assert analysis_columns(_model("lagged_rowmeans_alliance_symptoms"))[-2:] == ["alliance", "symptoms"]
    assert "alliance" not in analysis_columns(_model("lagged_centred_alliance_symptoms"))


def test_known_bias_and_person_means_reach_fit_json():
    rng = np.random.default_rng(3)
    table = analysis_table(simulate_trial(ProcessParams(n_sessions=5), rng)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = fit_model(_model("lagged_rowmeans_alliance_symptoms"), table, None, {}, engine="mixedlm")
        plain = fit_model(_model("same_session"), table, None, {}, engine="mixedlm")
    assert rows["fit"]["known_bias"] == _model("lagged_rowmeans_alliance_symptoms")["known_bias"]
    assert rows["fit"]["sample"]["person_means"]["rows"] == rows["fit"]["sample"]["n_obs"] == 600 * 4
    assert "known_bias" not in plain["fit"] and "person_means" not in plain["fit"]["sample"]
