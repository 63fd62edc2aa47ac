"""The model suite (alliance.models: config, data, specs, suite, tables, summary): config -> data -> fit -> tables."""

from __future__ import annotations

import copy
import hashlib
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from alliance.engines.spec import FLAG_NAMES
from alliance.models import config as model_config
from alliance.models import specs, suite, summary
from alliance.models.data import ModelDataError, apply_filter, centre_columns, model_frame, patient_frame
from alliance.outputs import write_csv, write_json, write_parquet
from testkit import ROOT, demo_config
from testkit.demo_exports import read_exports

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
CONFIG = demo_config()
CONTEXT = model_config.model_context(CONFIG)
MODELS = {m["name"]: m for m in CONFIG["models"]}


@pytest.fixture(scope="module")
def tables():
    return read_exports()


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("path", ["config/config.yaml", "config/demo_lab2.yaml"])
def test_shipped_configs_validate_and_pass_the_model_checks(path):
    config = yaml.safe_load((ROOT / path).read_text())
    validate(config, str(SCHEMA))
    model_config.check_models(config)
    names = [m["name"] for m in config["models"]]
    # methods.md section 5, items 1-6
    for name in [
        "variance_outcome",
        "variance_alliance",
        "alliance_growth",
        "same_session",
        "lagged_alliance_symptoms",
        "lagged_symptoms_alliance",
        "three_level",
        "early_alliance",
        "early_alliance_early_change",
        "early_alliance_mean",
        "baldwin",
        "moderation",
    ]:
        assert name in names


def _mutated(change):
    config = copy.deepcopy(CONFIG)
    change({m["name"]: m for m in config["models"]}, config)
    return config


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m, c: m["moderation"]["categorical"].pop("condition"), "needs a reference level"),
        (lambda m, c: m["moderation"]["categorical"].update(therapy="Gestalt"), "not a canonical label"),
        (lambda m, c: m["moderation"]["fixed"].append("therapy"), "remove it from fixed"),
        (lambda m, c: m["moderation"]["moderation"]["terms"].append("session"), "not in models.moderation.fixed"),
        (
            lambda m, c: m["same_session"]["roles"].update(alliance=("within_patient")),
            "not in models.same_session.fixed",
        ),
        (lambda m, c: m["same_session"]["contrasts"][0]["weights"].update(alliance_s3=1), "not a fixed term"),
        (lambda m, c: m["alliance_growth"]["tests"][0]["terms"].append("session_c:expectancy"), "not a fixed term"),
        (lambda m, c: m["baldwin"].update(filter={"session_max": 7}), "patient-level model has no sessions"),
        (
            lambda m, c: m["baldwin"]["random"].append({"group": "patient", "nested_in": "therapist"}),
            "cannot group by patient",
        ),
        (
            lambda m, c: [x.update(enabled=False) for x in m.values() if x.get("outcome") == "alliance_next"],
            "needs the reverse direction",
        ),
        (lambda m, c: m["alliance_growth"]["categorical"].update(sex="female"), "not used by any fixed term"),
    ],
)
def test_model_checks_name_the_mistake(change, message):
    with pytest.raises(model_config.ModelConfigError, match=message):
        model_config.check_models(_mutated(change))


def test_schema_rejects_unknown_keys_and_code_in_names():
    config = _mutated(lambda m, c: m["same_session"].update(formula="symptoms ~ alliance"))
    with pytest.raises(Exception, match="formula"):
        validate(config, str(SCHEMA))
    config = _mutated(lambda m, c: m["same_session"]["contrasts"][0]["weights"].update({"__import__('os')": 1}))
    with pytest.raises(Exception, match="does not match"):
        validate(config, str(SCHEMA))
    config = _mutated(lambda m, c: m["same_session"].update(filter={"where": "session < 8"}))
    with pytest.raises(Exception, match="where"):
        validate(config, str(SCHEMA))


def test_spec_of_a_moderated_model():
    spec = specs.spec_from_config(MODELS["moderation"])
    assert spec.fixed == (
        "alliance_within_patient",
        "alliance_between_patient",
        "session_c",
        "therapy",
        "condition",
        "alliance_within_patient:therapy",
        "alliance_between_patient:therapy",
        "alliance_within_patient:condition",
        "alliance_between_patient:condition",
    )
    assert dict(spec.categorical) == {"therapy": "CBT", "condition": "depression"}
    base = specs.spec_from_config(model_config.stratum_model(MODELS["moderation"]))
    assert base.fixed == ("alliance_within_patient", "alliance_between_patient", "session_c")
    assert base.categorical == () and base.random == spec.random


def test_strata_come_from_the_config_labels():
    names = model_config.strata(MODELS["moderation"], CONTEXT["labels"])
    assert list(names) == [
        "all",
        "cbt-depression",
        "cbt-anxiety",
        "pdt-depression",
        "pdt-anxiety",
        "ipt-depression",
        "ipt-anxiety",
    ]
    assert names["pdt-anxiety"] == {"therapy": "PDT", "condition": "anxiety"}
    with pytest.raises(model_config.ModelConfigError, match="twice"):
        model_config.strata(MODELS["moderation"], {"therapy": ["CBT", "cbt"], "condition": ["x"]})


# --------------------------------------------------------------------------- data


def test_filter_language():
    d = pd.DataFrame(
        {
            "session": [1, 4, 8, 9],
            "therapy": ["CBT", "PDT", "CBT", "IPT"],
            "dropout": pd.array([True, False, None, False]),
            "expectancy": [3.0, 5.0, 7.0, np.nan],
        }
    )
    assert apply_filter(d, {"session_min": 2, "session_max": 8})["session"].tolist() == [4, 8]
    assert apply_filter(d, {"include": {"therapy": ["CBT", "IPT"]}})["session"].tolist() == [1, 8, 9]
    assert apply_filter(d, {"exclude": {"dropout": [True]}})["session"].tolist() == [4, 8, 9]
    assert apply_filter(d, {"include": {"dropout": [False]}})["session"].tolist() == [4, 9]
    assert apply_filter(d, {"include": {"expectancy": [5, 7]}})["session"].tolist() == [4, 8]
    with pytest.raises(ModelDataError, match="not in the data"):
        apply_filter(d, {"include": {"sex": ["f"]}})
    with pytest.raises(ModelDataError, match="not a number"):
        apply_filter(d, {"include": {"expectancy": ["high"]}})


def test_centring_weights_each_patient_once():
    d = pd.DataFrame({"patient": ["a"] * 9 + ["b"], "expectancy": [9.0] * 9 + [1.0]})
    out, means = centre_columns(d, ["expectancy"])
    assert means == {"expectancy": 5.0}  # not the row mean 8.2
    assert out["expectancy_c"].tolist() == [4.0] * 9 + [-4.0]
    with pytest.raises(ModelDataError, match="already"):
        centre_columns(out, ["expectancy"])


def test_patient_level_decomposition_matches_the_session_level_one(tables):
    sessions, patients = tables
    derived = patient_frame(patients).set_index("patient")
    parts = ["alliance_patient_within_therapist", "alliance_between_therapist"]
    per_patient = sessions.groupby("patient")[parts].first()
    derived_parts = derived.loc[per_patient.index]
    assert np.allclose(derived_parts["alliance_cwt"], per_patient["alliance_patient_within_therapist"], atol=1e-8)
    assert np.allclose(derived_parts["alliance_tm_c"], per_patient["alliance_between_therapist"], atol=1e-8)
    assert abs(derived["symptoms_baseline_c"].mean()) < 1e-9
    change = derived["symptoms_s3"] - derived["symptoms_baseline"]
    assert np.allclose(derived["symptoms_change_s3"], change, equal_nan=True)
    # early alliance decomposed within therapists: parts add up to the centred value
    s3 = derived["alliance_s3"]
    assert np.allclose((derived["alliance_s3_cwt"] + derived["alliance_s3_tm_c"]).dropna(), (s3 - s3.mean()).dropna())


def test_model_frame_records_sample_and_centring(tables):
    sessions, patients = tables
    model = dict(MODELS["alliance_growth"], filter={"session_max": 7, "include": {"therapy": ["CBT"]}})
    frame, record = model_frame(model, sessions, patients)
    assert frame["session"].max() <= 7 and set(frame["therapy"]) == {"CBT"}
    assert record["filter"] == "session <= 7; therapy in [CBT]"
    assert "expectancy_c" in record["centring"] and record["rows_after_filter"] == len(frame)
    # centring uses the whole table, before the filter
    assert frame["expectancy_c"].groupby(frame["patient"]).first().mean() != pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------- fits and tables


@pytest.fixture(scope="module")
def growth(tables):
    sessions, patients = tables
    return _quiet(suite.fit_model, MODELS["alliance_growth"], sessions, patients, CONTEXT)


def test_tables_carry_flags_counts_and_scale_on_every_row(growth):
    flags = ";".join(growth["fit"]["flags"]) or "none"
    for key in ("fixed", "variance", "random_effects", "contrasts", "effects", "fit_statistics"):
        assert (growth[key]["flags"] == flags).all(), key
    fixed = growth["fixed"]
    assert {"estimate", "se", "statistic", "p", "ci_low", "ci_high"} <= set(fixed)
    assert {"n_obs", "n_patients", "n_therapists"} <= set(fixed)
    assert (fixed["n_patients"] == 600).all() and (fixed["n_therapists"] == 60).all()
    assert list(growth["random_effects"].columns[1:6]) == ["group", "level", "term", "value", "sd"]
    assert list(growth["residuals"].columns[:5]) == ["patient", "therapist", "session", "fitted", "residual"]
    assert len(growth["residuals"]) == fixed["n_obs"].iloc[0]
    stats = growth["fit_statistics"].iloc[0]
    assert set(FLAG_NAMES) <= set(growth["fit_statistics"].columns)
    assert stats["formula_lme4"].startswith("alliance ~ session_c")


def test_residuals_add_up_to_the_outcome(growth, tables):
    sessions, _ = tables
    res = growth["residuals"].merge(sessions[["patient", "session", "alliance"]], on=["patient", "session"])
    assert np.allclose(res["fitted"] + res["residual"], res["alliance"])


def test_wald_tests_of_config_terms(growth):
    con = growth["contrasts"].set_index("name")
    row = con.loc["growth_by_therapy"]
    assert row["df"] == 2 and row["detail"] == "session_c:therapy[T.IPT]; session_c:therapy[T.PDT]"
    fixed = growth["fixed"].set_index("term")
    terms = row["detail"].split("; ")
    vcov = (
        pd.DataFrame(
            growth["fit"]["vcov"]["matrix"],
            index=growth["fit"]["vcov"]["terms"],
            columns=growth["fit"]["vcov"]["terms"],
        )
        .loc[terms, terms]
        .to_numpy()
    )
    b = fixed.loc[terms, "estimate"].to_numpy()
    # an F test with Satterthwaite denominator df (alliance.engines.ddf): F = Wald chi-square / q
    assert row["df_method"].startswith("F, Satterthwaite") and row["df_denominator"] > 10
    assert row["statistic"] == pytest.approx(float(b @ np.linalg.solve(vcov, b)) / 2, rel=1e-6)


def test_outcome_scale_is_stated(tables):
    sessions, patients = tables
    model = MODELS["early_alliance"]
    out = _quiet(suite.fit_model, model, sessions, patients, CONTEXT)
    assert "common scale (pomp" in out["fit"]["outcome_scale"]["note"]
    assert "PHQ-9" in out["fit"]["outcome_scale"]["note"] and "GAD-7" in out["fit"]["outcome_scale"]["note"]
    assert out["fixed"]["outcome_scale"].iloc[0] == "pomp (depression: PHQ-9, anxiety: GAD-7)"
    assert out["residuals"]["session"].isna().all()  # one row per patient


def _patient_moderation(reference="CBT", by=("therapy",)):
    return {
        "name": "pm",
        "data": "patients",
        "outcome": "symptoms_last",
        "fixed": ["symptoms_baseline_c", "alliance_s3"],
        "categorical": {"therapy": reference, **({"condition": "depression"} if "condition" in by else {})},
        "moderation": {"terms": ["alliance_s3"], "by": list(by)},
        "random": [{"group": "therapist"}],
        "roles": {"alliance_s3": "patient_level"},
    }


def test_simple_slope_equals_the_slope_of_the_reparameterised_model(tables):
    sessions, patients = tables
    cbt = _quiet(suite.fit_model, _patient_moderation("CBT"), sessions, patients, CONTEXT)
    slopes = cbt["contrasts"][cbt["contrasts"]["kind"] == "simple_slope"].set_index("level")
    assert list(slopes.index) == ["CBT", "PDT", "IPT"]  # config label order
    for level in ("PDT", "IPT"):
        other = _quiet(suite.fit_model, _patient_moderation(level), sessions, patients, CONTEXT)
        coef = other["fixed"].set_index("term").loc["alliance_s3"]
        assert slopes.loc[level, "estimate"] == pytest.approx(coef["estimate"], rel=1e-6)
        assert slopes.loc[level, "se"] == pytest.approx(coef["se"], rel=1e-4)
    block = cbt["contrasts"][cbt["contrasts"]["kind"] == "wald"]
    assert block["df"].tolist() == [2]  # alliance_s3 x therapy (one moderated term: one block)
    assert block["name"].tolist() == ["interaction: alliance_s3 x therapy"]


def test_simple_slopes_average_over_the_other_moderator(tables):
    sessions, patients = tables
    out = _quiet(suite.fit_model, _patient_moderation("CBT", ("therapy", "condition")), sessions, patients, CONTEXT)
    pdt = out["contrasts"].set_index("name").loc["alliance_s3 | therapy = PDT"]
    fixed = out["fixed"].set_index("term")["estimate"]
    used = patient_frame(patients).dropna(subset=["symptoms_last", "symptoms_baseline_c", "alliance_s3"])
    share = (used.loc[used["therapy"] == "PDT", "condition"] == "anxiety").mean()
    expected = (
        fixed["alliance_s3"] + fixed["alliance_s3:therapy[T.PDT]"] + share * fixed["alliance_s3:condition[T.anxiety]"]
    )
    assert pdt["estimate"] == pytest.approx(expected, rel=1e-9)
    assert pdt["n_patients"] == (used["therapy"] == "PDT").sum()


def test_small_stratum_is_reported_not_raised(tables):
    sessions, patients = tables
    model = copy.deepcopy(MODELS["moderation"])
    model["strata"]["min_patients"] = 101  # cbt-anxiety has 95 patients
    out = _quiet(suite.fit_stratum, model, "cbt-anxiety", sessions, patients, CONTEXT)
    assert out["fit"]["flags"] == ["too_few_patients"]
    assert out["fixed"]["estimate"].isna().all() and (out["fixed"]["flags"] == "too_few_patients").all()
    assert "95 patients" in out["fit"]["sample"]["not_fitted"]
    r = out["effects"].set_index(["term", "statistic"]).loc[("alliance_within_patient", "r_from_t")]
    assert np.isnan(r["value"]) and r["flags"] == "too_few_patients"
    # a stratum whose labels are absent from the data: no rows, reported
    no_cbt = sessions[sessions["therapy"] != "CBT"]
    empty = _quiet(suite.fit_stratum, model, "cbt-depression", no_cbt, patients, CONTEXT)
    assert set(empty["fit"]["flags"]) == {"too_few_patients", "too_few_therapists"}


def test_failed_stratum_fit_is_reported(tables):
    sessions, patients = tables
    model = copy.deepcopy(MODELS["moderation"])
    model["fixed"] = model["fixed"] + ["site"]  # a text column: the engine refuses it
    model["strata"]["min_patients"] = 2
    varying_text = sessions.assign(site="S" + sessions["patient"].str[-1])  # varies: identifiable, but not numeric
    out = _quiet(suite.fit_stratum, model, "ipt-anxiety", varying_text, patients, CONTEXT)
    assert out["fit"]["flags"] == ["fit_failed"]
    assert "not numeric" in out["fit"]["sample"]["not_fitted"]


def test_rerun_gives_byte_identical_tables(tmp_path, tables):
    sessions, patients = tables
    model = MODELS["early_alliance_mean"]
    digests = []
    for run in range(2):
        out = _quiet(suite.fit_model, model, sessions, patients, CONTEXT)
        folder = tmp_path / str(run)
        folder.mkdir()
        for key in ("fixed", "variance", "random_effects", "contrasts", "effects", "fit_statistics"):
            write_csv(out[key], folder / f"{key}.csv")
        write_parquet(out["residuals"], folder / "residuals.parquet")
        write_json(out["fit"], folder / "fit.json")
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())})
    assert digests[0] == digests[1]


def test_summarise_effects_forest_table(tables, tmp_path):
    sessions, patients = tables
    model = copy.deepcopy(MODELS["moderation"])
    model["random"] = [{"group": "therapist"}, {"group": "patient", "nested_in": "therapist"}]  # quicker
    fitted = {"moderation": _quiet(suite.fit_model, model, sessions, patients, CONTEXT)}
    stratum_fits = {
        "moderation": {
            s: _quiet(suite.fit_stratum, model, s, sessions, patients, CONTEXT) for s in ("all", "pdt-anxiety")
        }
    }
    out = summary.summarise_effects([model], fitted, stratum_fits, CONTEXT)
    forest = out["alliance_effects"]
    assert list(forest.columns) == [
        "level",
        "label",
        "term",
        "estimate",
        "se",
        "r",
        "r_ci_low",
        "r_ci_high",
        "n_patients",
        "n_therapists",
        "flags",
    ]
    within = forest[forest["term"] == "alliance_within_patient"]
    assert within["level"].tolist() == ["overall", "therapy", "therapy", "therapy", "condition", "condition", "stratum"]
    assert within["label"].tolist()[0] == "All patients" and within["label"].tolist()[-1] == "PDT × anxiety"
    # r is the r-equivalent with the within-patient df of that level
    cbt = within[within["label"] == "CBT"].iloc[0]
    slope = fitted["moderation"]["contrasts"].set_index("name").loc["alliance_within_patient | therapy = CBT"]
    t = cbt["estimate"] / cbt["se"]
    df = slope["n_obs"] - slope["n_patients"] - 1
    assert cbt["r"] == pytest.approx(t / np.sqrt(t * t + df))
    assert (forest["r_ci_low"] < forest["r"]).all() and (forest["r"] < forest["r_ci_high"]).all()
    meta = out["effect_sizes"]
    assert {"r", "se", "n", "n_therapists", "flags"} <= set(meta)
    assert {"rater", "timing", "alliance_measure", "outcome_measure"} <= set(meta)
    assert set(meta["rater"]) == {"patient"} and set(meta["timing"]) == {"after session"}
    assert (meta["se"] > 0).all()
    # the step script reads the same tables back from the results layout (model and stratum from the paths)
    root = tmp_path / "models" / "moderation"
    paths = {"effects": [root / "effects.csv"], "contrasts": [root / "contrasts.csv"], "strata": []}
    root.mkdir(parents=True)
    for key in ("effects", "contrasts"):
        write_csv(fitted["moderation"][key], root / f"{key}.csv")
    for stratum, tables_of in stratum_fits["moderation"].items():
        (root / "strata" / stratum).mkdir(parents=True)
        write_csv(tables_of["effects"], root / "strata" / stratum / "effects.csv")
        paths["strata"].append(root / "strata" / stratum / "effects.csv")
    read_model, read_strata = summary.read_effect_tables(paths["effects"], paths["contrasts"], paths["strata"])
    assert set(read_model) == {"moderation"} and set(read_model["moderation"]) == {"effects", "contrasts"}
    assert set(read_strata["moderation"]) == {"all", "pdt-anxiety"}
    again = summary.summarise_effects([model], read_model, read_strata, CONTEXT)
    pd.testing.assert_frame_equal(again["alliance_effects"], forest, check_dtype=False)
    pd.testing.assert_frame_equal(again["effect_sizes"], meta, check_dtype=False)
