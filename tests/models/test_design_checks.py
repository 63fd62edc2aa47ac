"""Designs the data cannot carry: identifiability before any fit, designs without therapists, model columns
the dataset config does not produce, and a suite without focal predictors (alliance.engines.identifiability,
alliance.models.design, alliance.models.summary)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from alliance.engines.dispatch import fit
from alliance.engines.identifiability import NotIdentifiable, identifiability_problems
from alliance.engines.spec import ModelSpec, RandomTerm
from alliance.models import config as model_config
from alliance.models import design, suite, summary
from alliance.models.config import ModelConfigError
from alliance.outputs import write_csv
from testkit import ROOT, demo_config
from testkit.demo_exports import read_exports

SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
CONFIG = demo_config()
MODELS = {m["name"]: m for m in CONFIG["models"]}
NOTHERAPIST = yaml.safe_load((ROOT / "config" / "demo_notherapist.yaml").read_text())


@pytest.fixture(scope="module")
def tables():
    return read_exports()


def _two_level(n_patients: int = 30, n_sessions: int = 4, seed: int = 3) -> pd.DataFrame:
    """Patients with several sessions: an outcome, a within-patient predictor, a patient-level one."""
    rng = np.random.default_rng(seed)
    patient = np.repeat([f"p{i:02d}" for i in range(n_patients)], n_sessions)
    x = rng.normal(size=len(patient))
    u = np.repeat(rng.normal(size=n_patients), n_sessions)
    return pd.DataFrame(
        {
            "patient": patient,
            "therapist": np.repeat([f"t{i % 5}" for i in range(n_patients)], n_sessions),
            "session_c": np.tile(np.arange(n_sessions, dtype=float), n_patients),
            "x": x,
            "level": np.repeat(rng.normal(size=n_patients), n_sessions),
            "y": 2.0 * x + u + rng.normal(size=len(patient)),
        }
    )


PATIENT_SPEC = ModelSpec("m", "y", ("x",), (RandomTerm("patient"),))


# --------------------------------------------------------------------------- identifiability


def test_identifiable_data_raise_no_problem():
    assert identifiability_problems(PATIENT_SPEC, _two_level()) == []
    slope = ModelSpec("m", "y", ("x",), (RandomTerm("patient", slopes=("x",)),))
    assert identifiability_problems(slope, _two_level()) == []


@pytest.mark.parametrize("engine", ["mixedlm", "statsmodels"])
def test_one_session_per_patient_refuses_the_patient_random_effect_with_every_engine(engine):
    one = _two_level(n_sessions=1)
    with pytest.raises(NotIdentifiable) as caught:
        fit(PATIENT_SPEC, one, engine=engine)
    assert str(caught.value) == (
        "model 'm' cannot be fitted to these data: grouping factor 'patient' has 30 levels for 30 observations "
        "(one row per level): the number of levels of each grouping factor must be < the number of observations "
        "(as lme4 requires), else its variance cannot be told apart from the residual variance"
    )


def test_one_grouping_level_is_refused():
    data = _two_level().assign(therapist="t0")
    spec = ModelSpec("one_therapist", "y", ("x",), (RandomTerm("therapist"),))
    assert identifiability_problems(spec, data) == [
        "grouping factor 'therapist' has 1 level; a random effect needs at least 2"
    ]


def test_nested_factor_levels_are_the_outer_inner_combinations():
    data = _two_level(n_sessions=1)
    spec = ModelSpec("nested", "y", (), (RandomTerm("therapist"), RandomTerm("patient", nested_in="therapist")))
    assert identifiability_problems(spec, data) == [
        "grouping factor 'therapist:patient' has 30 levels for 30 observations (one row per level): the number of "
        "levels of each grouping factor must be < the number of observations (as lme4 requires), else its "
        "variance cannot be told apart from the residual variance"
    ]


def test_constant_outcome_and_constant_fixed_term_are_refused():
    data = _two_level().assign(y=3.0, x=0.5)
    assert identifiability_problems(PATIENT_SPEC, data) == [
        "the outcome 'y' does not vary (all 120 rows are 3)",
        "fixed term 'x' does not vary (all 120 rows are 0.5): its coefficient cannot be told apart from the intercept",
    ]


def test_no_complete_row_is_refused():
    data = _two_level().assign(x=np.nan)  # no alliance values at all
    assert identifiability_problems(PATIENT_SPEC, data) == ["no row has every column of the model"]


def test_random_slope_needs_within_group_variation():
    data = _two_level()
    spec = ModelSpec("slope", "y", ("level",), (RandomTerm("patient", slopes=("level",)),))
    assert identifiability_problems(spec, data) == [
        "random slope 'level' varies within 0 of the 30 levels of 'patient'; a random slope needs within-group "
        "variation in at least 2 levels"
    ]


def test_more_random_effects_than_observations_are_refused():
    data = _two_level(n_sessions=2)  # 30 patients x (intercept + slope) = 60 random effects for 60 rows
    spec = ModelSpec("slope", "y", ("x",), (RandomTerm("patient", slopes=("x",)),))
    assert identifiability_problems(spec, data) == [
        "random-effects term (1 + x | patient) has 60 random effects for 60 observations; the random effects must "
        "be fewer than the observations (as lme4 requires)"
    ]


def test_a_refused_model_is_a_row_of_the_suite_with_its_reason(tables):
    analysis, _ = tables
    first = analysis[analysis["session"] == 1]  # one session per patient
    out = suite.fit_model(MODELS["variance_outcome"], first, None, model_config.model_context(CONFIG))
    reason = out["fit"]["fit"]["not_fitted"]
    assert out["fit"]["flags"] == ["not_identified"]
    assert reason.startswith(
        "model 'variance_outcome' cannot be fitted to these data: grouping factor 'therapist:patient' has 597 levels "
        "for 597 observations"  # the 597 patients with a symptom score at session 1
    )
    assert out["fixed"]["estimate"].isna().all() and set(out["fixed"]["flags"]) == {"not_identified"}
    assert "icc" not in set(out["effects"]["statistic"])  # no patient ICC from a model that cannot have one
    assert out["fit_statistics"]["not_identified"].item() is True
    assert len(out["random_effects"]) == 0 and len(out["residuals"]) == 0


# --------------------------------------------------------------------------- designs without therapists


def test_without_therapists_defaults_to_skip_from_the_schema():
    config = copy.deepcopy(NOTHERAPIST)
    del config["analysis"]["without_therapists"]
    assert design.without_therapists_setting({}, config["analysis"]) == "skip"  # the schema's default
    validate(config, SCHEMA)
    assert config["analysis"]["without_therapists"] == "skip"
    assert model_config.model_context(config)["without_therapists"] == "skip"


def test_demo_without_therapists_validates_and_passes_the_model_checks():
    config = copy.deepcopy(NOTHERAPIST)
    validate(config, SCHEMA)
    assert "therapist" not in config["dataset"]["columns"]
    model_config.check_models(config)
    assert design.skipped_models(config) == {
        "variance_alliance": (
            "model 'variance_alliance' is not fitted: it has a therapist level (a random-effects term grouped by "
            "therapist; patient nested in therapist) and the dataset has no therapist column "
            "(dataset.columns.therapist); without_therapists: skip (drop_level fits it without that level)"
        ),
        "three_level": (
            "model 'three_level' is not fitted: it is built from therapists (fixed 'alliance_patient_within_therapist'; "
            "fixed 'alliance_between_therapist'; role patient_within_therapist of 'alliance_patient_within_therapist'; "
            "role between_therapist of 'alliance_between_therapist') and the dataset has no therapist column "
            "(dataset.columns.therapist)"
        ),
        "early_alliance": (
            "model 'early_alliance' is not fitted: it has a therapist level (a random-effects term grouped by "
            "therapist) and the dataset has no therapist column (dataset.columns.therapist); without_therapists: "
            "skip (drop_level fits it without that level)"
        ),
    }


def test_drop_level_removes_the_therapist_level():
    run_level = {"without_therapists": "drop_level"}
    kept, note = design.without_therapists(MODELS["moderation"], run_level)
    assert kept["random"] == [{"group": "patient", "nested_in": None, "slopes": ["alliance_within_patient"],
                               "correlated": False}]  # fmt: skip
    assert note.startswith("model 'moderation' is fitted without its therapist level (a random-effects term grouped")
    # a term built from therapist means: skipped whatever the setting
    assert design.without_therapists(MODELS["baldwin"], run_level)[0] is None
    # a patient-level model whose only random term is the therapist's
    kept, note = design.without_therapists(MODELS["early_alliance"], run_level)
    assert kept is None and "its only random-effects term is grouped by therapist" in note
    # a model's own key overrides the run's
    own = {**MODELS["variance_alliance"], "without_therapists": "skip"}
    assert design.without_therapists(own, run_level)[0] is None
    # a model that needs no therapist is unchanged
    assert design.without_therapists(MODELS["same_session"], {}) == (MODELS["same_session"], "")
    # the RI-CLPM: cluster dropped (model-based SEs) or skipped
    riclpm = MODELS["riclpm"]
    assert design.without_therapists(riclpm, run_level)[0]["cluster"] is None
    assert design.without_therapists(riclpm, {"without_therapists": "skip"})[0] is None


def test_skip_logic_in_the_model_jobs_without_a_therapist_column(tables):
    analysis, patients = tables
    keep = analysis["patient"].isin(sorted(analysis["patient"].unique())[:120])
    analysis = analysis.loc[keep].drop(columns=["therapist", "alliance_patient_within_therapist",
                                                "alliance_between_therapist"])  # fmt: skip
    context = {**model_config.model_context(CONFIG), "therapists": False, "without_therapists": "skip"}
    skipped = suite.fit_model(MODELS["three_level"], analysis, None, context)
    assert skipped["fit"]["flags"] == ["no_therapist_level"]
    assert skipped["fit"]["fit"]["not_fitted"].startswith("model 'three_level' is not fitted: it is built from")
    assert skipped["fixed"]["estimate"].isna().all() and (skipped["fixed"]["n_obs"] == 0).all()
    assert skipped["fit_statistics"]["no_therapist_level"].item() is True
    dropped = suite.fit_model(
        MODELS["variance_outcome"], analysis, None, {**context, "without_therapists": "drop_level"}
    )
    assert dropped["fit"]["flags"] in ([], ["boundary"])
    assert list(dropped["variance"]["group"]) == ["patient", "Residual"]
    assert dropped["fit"]["lme4_formula"] == "symptoms ~ 1 + (1 | patient)"
    assert dropped["fit"]["design_note"].startswith("model 'variance_outcome' is fitted without its therapist level")
    stratum = suite.fit_stratum(MODELS["moderation"], "all", analysis, None, context)
    assert stratum["fit"]["flags"] == ["no_therapist_level"]


def test_patient_frame_without_a_therapist_column(tables):
    from alliance.models.data import THERAPIST_DERIVED, patient_frame

    _, patients = tables
    frame = patient_frame(patients.drop(columns=["therapist"]))
    assert not set(THERAPIST_DERIVED) & set(frame.columns)
    assert "symptoms_baseline_c" in frame


# --------------------------------------------------------------------------- columns the config produces


def test_a_term_the_dataset_does_not_produce_stops_the_workflow_when_it_loads():
    config = copy.deepcopy(CONFIG)
    config["models"][3]["fixed"] = ["alliance_within_patient", "alliance_betwen_patient", "session_c"]
    config["models"][3]["roles"] = {"alliance_within_patient": "within_patient"}
    config["models"][3]["contrasts"] = []
    with pytest.raises(ModelConfigError) as caught:
        model_config.check_models(config)
    message = str(caught.value)
    assert message.startswith(
        "models.same_session.fixed: 'alliance_betwen_patient' is not a column this dataset config produces; "
        "available: age_band, alliance, alliance_between_patient, alliance_between_therapist, alliance_cwt,"
    )
    assert message.endswith("(and 28 item columns such as alliance_item_01)")


def test_a_random_group_of_a_column_the_dataset_lacks_is_named():
    config = copy.deepcopy(CONFIG)
    config["models"][0]["random"] = [{"group": "site"}, {"group": "clinic", "nested_in": "site"}]
    with pytest.raises(ModelConfigError, match=r"^models.variance_outcome.random.group: 'clinic' is not a column"):
        model_config.check_models(config)


def test_every_shipped_model_names_only_columns_its_config_produces():
    for path in ("config/config.yaml", "config/demo_lab2.yaml", "config/demo_notherapist.yaml"):
        config = yaml.safe_load((ROOT / path).read_text())
        columns = design.dataset_columns(config)
        for model in config["models"]:
            kept = model
            if not design.has_therapists(config["dataset"]):
                kept = design.without_therapists(model, config["analysis"])[0] or {"name": model["name"]}
            named = {c for _, c in design.named_columns(kept)} if "outcome" in kept or "variables" in kept else set()
            assert named <= columns | {f"{c}_c" for c in kept.get("centre") or []}, (path, model["name"])
        assert ("therapist" in columns) == design.has_therapists(config["dataset"])


# --------------------------------------------------------------------------- a suite without roles


def test_a_suite_without_roles_writes_an_empty_effect_size_table_with_its_header(tmp_path, tables):
    analysis, _ = tables
    model = {k: v for k, v in MODELS["variance_alliance"].items()}
    context = model_config.model_context(CONFIG)
    out = suite.fit_model(model, analysis, None, context)
    result = summary.summarise_effects([model], {model["name"]: out}, {}, context)
    assert len(result["effect_sizes"]) == 0
    write_csv(result["effect_sizes"], tmp_path / "effect_sizes.csv")
    read = pd.read_csv(tmp_path / "effect_sizes.csv")
    assert list(read.columns) == summary.EFFECT_SIZES_COLUMNS and len(read) == 0


def test_effect_size_rows_have_exactly_the_declared_columns(tables):
    analysis, _ = tables
    model = MODELS["same_session"]
    context = model_config.model_context(CONFIG)
    out = suite.fit_model(model, analysis, None, context)
    rows = summary._model_rows(model, out["effects"], summary._common(context))
    assert rows and all(list(r) == summary.EFFECT_SIZES_COLUMNS for r in rows)
    assert math.isfinite(rows[0]["r"])


def test_the_workflow_fits_the_models_as_the_design_allows():
    config = copy.deepcopy(NOTHERAPIST)
    validate(config, SCHEMA)
    mixed = model_config.mixed_models(config["models"])
    models = design.models_for_design(mixed, config)
    assert list(models) == list(mixed)  # a skipped model keeps its job: the job reports it as not fitted
    assert models["three_level"] is mixed["three_level"]
    assert models["variance_outcome"]["random"] == [
        {"group": "patient", "nested_in": None, "slopes": [], "correlated": True}
    ]
    assert models["variance_outcome"][design.DESIGN_NOTE].startswith("model 'variance_outcome' is fitted without")
    riclpm = design.models_for_design(model_config.riclpm_models(config["models"]), config, keep_skipped=False)
    assert riclpm["riclpm"]["cluster"] is None
    config["models"][-1]["without_therapists"] = "skip"
    assert design.models_for_design(model_config.riclpm_models(config["models"]), config, keep_skipped=False) == {}
    assert design.models_for_design(mixed, CONFIG) == mixed  # with therapists: unchanged
