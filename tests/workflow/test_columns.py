"""Steps read only the columns they use (issue #6: peak memory at 1.17M rows).

A model job reads the columns of ``alliance.models.data.analysis_columns`` (or, for a patient-level
model, the patients table alone), the figure steps the column lists of ``alliance.report.figures`` (and ``diagnostic_figures``) and
the report the columns of the fitted specs.  Here every one of them gives exactly what the whole
table gives: the same model tables, the same figure files, the same model equations.
"""

from __future__ import annotations

import doctest
import json
import warnings

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from alliance import outputs
from alliance.models import config as model_config
from alliance.models import specs, suite
from alliance.models.data import ID_COLUMNS, analysis_columns, load_model_tables, spec_columns
from alliance.outputs import read_columns, write_parquet
from alliance.report import diagnostic_figures, figures
from alliance.report.equations import model_equations
from testkit import clean_demo, demo_config

CONFIG = demo_config()
CONTEXT = model_config.model_context(CONFIG)
# the mixed models (an RI-CLPM, type: riclpm, has no engine spec: tests/models/test_riclpm_suite.py)
MODELS = {m["name"]: m for m in CONFIG["models"] if m.get("enabled", True) and m.get("type") != "riclpm"}
SESSION_MODELS = sorted(n for n, m in MODELS.items() if m.get("data", "sessions") == "sessions")
PATIENT_MODELS = sorted(n for n, m in MODELS.items() if m.get("data", "sessions") == "patients")
STRATIFIED = sorted(n for n, m in MODELS.items() if m.get("strata"))
ENGINE = "mixedlm"  # fast; the comparison is of the data a model gets, not of the engine
COMPARED = ("fixed", "variance", "contrasts", "effects", "fit_statistics")


@pytest.fixture(scope="module")
def clean_files(tmp_path_factory):
    """The demo data through the intake stage, written as the clean rule writes them."""
    folder = tmp_path_factory.mktemp("clean")
    clean = clean_demo(CONFIG)
    write_parquet(clean.sessions, folder / "analysis.parquet")
    write_parquet(clean.patients, folder / "patients.parquet")
    return folder / "analysis.parquet", folder / "patients.parquet"


@pytest.fixture(scope="module")
def full_tables(clean_files):
    analysis, patients = clean_files
    return pd.read_parquet(analysis), pd.read_parquet(patients)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _same_tables(narrow: dict, full: dict, keys=COMPARED) -> None:
    for key in keys:
        assert_frame_equal(narrow[key], full[key], obj=key)
    as_json = lambda fit: json.dumps(outputs._round(fit), sort_keys=True)  # noqa: E731
    assert as_json(narrow["fit"]) == as_json(full["fit"])


# --------------------------------------------------------------------------- column lists


def test_worked_examples_of_the_reader():
    failures, tried = doctest.testmod(outputs, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried > 0 and failures == 0


@pytest.mark.parametrize(
    "name, expected",
    [
        (
            "same_session",
            [
                "patient",
                "therapist",
                "session",
                "symptoms",
                "alliance_within_patient",
                "alliance_between_patient",
                "session_c",
            ],
        ),
        # moderators (fixed by the moderation block, categorical, strata.by) once each
        (
            "moderation",
            [
                "patient",
                "therapist",
                "session",
                "symptoms",
                "alliance_within_patient",
                "alliance_between_patient",
                "session_c",
                "therapy",
                "condition",
            ],
        ),
        # centre: [expectancy] -> the table's expectancy, not the model's expectancy_c
        (
            "alliance_growth",
            ["patient", "therapist", "session", "alliance", "session_c", "therapy", "condition", "expectancy"],
        ),
        (
            "three_level",
            [
                "patient",
                "therapist",
                "session",
                "symptoms_next",
                "alliance_within_patient",
                "alliance_patient_within_therapist",
                "alliance_between_therapist",
                "symptoms",
                "session_c",
            ],
        ),
        ("early_alliance", []),  # a patient-level model reads no session rows
    ],
)
def test_columns_of_demo_models(name, expected):
    assert analysis_columns(MODELS[name]) == expected


def test_columns_cover_filters_and_every_model_column():
    model = {
        **MODELS["same_session"],
        "filter": {"session_min": 2, "include": {"site": ["A"]}, "exclude": {"sex": ["x"]}},
    }
    assert analysis_columns(model)[-2:] == ["site", "sex"]
    for name in SESSION_MODELS:
        cols = set(analysis_columns(MODELS[name]))
        centred = {f"{c}_c" for c in MODELS[name].get("centre") or []}
        assert set(specs.model_columns(specs.spec_from_config(MODELS[name]))) - centred <= cols
        assert set(ID_COLUMNS) <= cols


def test_reader_keeps_only_existing_columns_in_file_order(tmp_path):
    path = tmp_path / "t.parquet"
    frame = pd.DataFrame({"b": [1.0, 2.0, 3.0], "a": ["x", "y", "z"], "c": [True, False, True]})
    write_parquet(frame, path)
    assert_frame_equal(read_columns(path, ["c", "b", "zz", "b"]), frame[["b", "c"]])
    assert_frame_equal(read_columns(path, ("a",)), frame[["a"]])
    empty = read_columns(path, ["none_of_these"])
    assert empty.shape == (3, 0)


def test_loader_reads_one_table_per_model(clean_files, full_tables):
    analysis_path, patients_path = clean_files
    for name in SESSION_MODELS:
        analysis, patients = load_model_tables(MODELS[name], analysis_path, patients_path)
        assert patients is None
        assert set(analysis.columns) == set(analysis_columns(MODELS[name])) & set(full_tables[0].columns)
        assert len(analysis) == len(full_tables[0])
    analysis, patients = load_model_tables(MODELS["baldwin"], analysis_path, patients_path)
    assert analysis is None
    assert_frame_equal(patients, full_tables[1])


# --------------------------------------------------------------------------- the same results


@pytest.mark.parametrize("name", SESSION_MODELS + PATIENT_MODELS)
def test_model_on_its_columns_equals_model_on_the_whole_table(name, clean_files, full_tables):
    analysis, patients = load_model_tables(MODELS[name], *clean_files)
    narrow = _quiet(suite.fit_model, MODELS[name], analysis, patients, CONTEXT, engine=ENGINE)
    full = _quiet(suite.fit_model, MODELS[name], *full_tables, CONTEXT, engine=ENGINE)
    _same_tables(narrow, full, COMPARED + ("random_effects", "residuals"))


@pytest.mark.parametrize("name", STRATIFIED)
def test_strata_on_the_model_columns_equal_strata_on_the_whole_table(name, clean_files, full_tables):
    analysis, patients = load_model_tables(MODELS[name], *clean_files)
    for stratum in list(model_config.strata(MODELS[name], CONTEXT["labels"]))[:3]:  # 'all' and two strata (time)
        narrow = _quiet(suite.fit_stratum, MODELS[name], stratum, analysis, patients, CONTEXT, engine=ENGINE)
        full = _quiet(suite.fit_stratum, MODELS[name], stratum, *full_tables, CONTEXT, engine=ENGINE)
        _same_tables(narrow, full)


# --------------------------------------------------------------------------- figures and report


def _png(figure, path) -> bytes:
    figures.save(figure, path)
    return path.read_bytes()


def test_figures_from_their_columns_are_the_figures_from_the_whole_table(tmp_path, clean_files, full_tables):
    analysis_path, patients_path = clean_files
    data, patients = full_tables
    fixed = _quiet(suite.fit_model, MODELS["same_session"], data, None, CONTEXT, engine=ENGINE)["fixed"]
    slope = float(fixed.set_index("term").loc["alliance_within_patient", "estimate"])

    narrow = read_columns(analysis_path, figures.WITHIN_BETWEEN_COLUMNS)
    assert _png(figures.within_between(narrow, within_slope=slope, seed=1), tmp_path / "a.png") == _png(
        figures.within_between(data, within_slope=slope, seed=1), tmp_path / "b.png"
    )

    narrow = read_columns(analysis_path, figures.trajectory_columns("symptoms", fixed))
    means = figures.model_implied_means(narrow, fixed)
    assert means is not None
    assert_frame_equal(means, figures.model_implied_means(data, fixed))
    kwargs = {"ylabel": "y", "seed": 1, "max_patients": 20}
    assert _png(figures.trajectories(narrow, "symptoms", model_means=means, **kwargs), tmp_path / "c.png") == _png(
        figures.trajectories(data, "symptoms", model_means=means, **kwargs), tmp_path / "d.png"
    )

    narrow = read_columns(analysis_path, diagnostic_figures.MISSING_DATA_COLUMNS)
    narrow_patients = read_columns(patients_path, diagnostic_figures.MISSING_DATA_PATIENT_COLUMNS)
    assert_frame_equal(
        diagnostic_figures.missing_by_session(narrow, narrow_patients),
        diagnostic_figures.missing_by_session(data, patients),
    )


@pytest.mark.parametrize("name", ["alliance_growth", "three_level", "moderation"])
def test_model_equations_need_only_the_spec_columns(name, clean_files, full_tables):
    fit = _quiet(suite.fit_model, MODELS[name], full_tables[0], None, CONTEXT, engine=ENGINE)["fit"]
    spec = json.loads(json.dumps(outputs._round(fit)))["spec"]  # as render_report reads it from fit.json
    narrow = read_columns(clean_files[0], spec_columns(spec))
    n_groups = fit["fit"].get("n_groups")
    assert model_equations(spec, narrow, n_groups, roles=MODELS[name].get("roles")) == model_equations(
        spec, full_tables[0], n_groups, roles=MODELS[name].get("roles")
    )
