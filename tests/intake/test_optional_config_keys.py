"""Every optional key of the config schema is truly optional.

The schema (workflow/schemas/config.schema.yaml) is walked together with each shipped config:
every property the config sets that its schema object does not list in ``required`` is deleted,
one at a time, and the config must still pass what the workflow does when it loads
(``snakemake.utils.validate`` with the schema, filling in its defaults, then
``alliance.intake.config.check_config`` and ``alliance.models.config.check_models``). A key that only makes sense with another one is
deleted together with it (``DELETED_WITH``); a key whose absence must be replaced by another
(therapy or condition: in the sessions file or the patients file) gives its stated config error.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import yaml
from snakemake.utils import validate

from alliance.intake.config import ConfigError, check_config
from alliance.models.config import ModelConfigError, check_models
from testkit import ROOT

SCHEMA_PATH = ROOT / "workflow/schemas/config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
#: every shipped single-study config, the demo's first (each optional key is tried where a config first
#: sets it); a config with ``studies`` pools several studies (tests/pooling/test_pooled_config.py)
CONFIGS = ["config/config.yaml"] + sorted(
    p.relative_to(ROOT).as_posix()
    for p in (ROOT / "config").glob("*.yaml")
    if p.name != "config.yaml" and "studies" not in (yaml.safe_load(p.read_text()) or {})
)

#: a deleted key -> the keys that go with it (meaningless without it)
DELETED_WITH = {("dataset", "patients"): [("dataset", "patient_columns")]}
#: keys the demo's models need (a column they name, a key of the same model): leaving one out stops
#: the run with this error of alliance.models.config.check_models, and without the model named there
#: the config loads
NEEDED_BY_A_MODEL = {
    **{
        path: (
            "alliance_growth",
            "models.alliance_growth.centre: 'expectancy' is not a column this dataset config produces",
        )
        for path in (
            ("dataset", "patients"),
            ("dataset", "patient_columns"),
            ("dataset", "patient_columns", "expectancy"),
        )
    },
    ("models", "*", "centre"): (
        "alliance_growth",
        "models.alliance_growth.fixed: 'expectancy_c' is not a column this dataset config produces",
    ),
    ("models", "*", "moderation"): (
        "moderation",
        "models.moderation.categorical: 'therapy' is not used by any fixed term",
    ),
}
#: keys that are optional where they are, but must then be given elsewhere: the config error
ELSEWHERE = {
    path: (
        f"dataset.columns.{kind}: the {kind} is mapped nowhere; map the sessions file's column in "
        f"dataset.columns.{kind} or the patients file's in dataset.patient_columns.{kind}"
    )
    for kind in ("therapy", "condition")
    for path in (("dataset", "columns", kind), ("dataset", "patient_columns", kind))
}


def _resolved(schema: dict[str, Any], instance: Any) -> dict[str, Any]:
    """``schema`` with its ``$ref`` followed and its if/then/else branch for ``instance`` taken."""
    while True:
        if "$ref" in schema:
            schema = SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
        elif "if" in schema:
            taken = jsonschema.Draft202012Validator(schema["if"]).is_valid(instance)
            schema = schema["then"] if taken else schema.get("else", {})
        else:
            return schema


def optional_keys(schema: dict[str, Any], instance: Any, path: tuple = (), shape: tuple = ()) -> Iterator[tuple]:
    """(path in the config, path in the schema) of every optional property ``instance`` sets.

    The schema path has ``*`` for a list index or a free key (measures, models), so that each
    optional key of the schema is tried once, where the config first sets it.
    """
    schema = _resolved(schema, instance)
    if isinstance(instance, dict):
        properties = schema.get("properties", {})
        # a key one of whose alternatives is required (oneOf / anyOf of `required`) is not optional
        required = set(schema.get("required", [])).union(
            *(branch.get("required", []) for branch in schema.get("oneOf", []) + schema.get("anyOf", []))
        )
        free = schema.get("additionalProperties")
        for key, value in instance.items():
            if key in properties:
                if key not in required:
                    yield (*path, key), (*shape, key)
                yield from optional_keys(properties[key], value, (*path, key), (*shape, key))
            elif isinstance(free, dict):
                yield from optional_keys(free, value, (*path, key), (*shape, "*"))
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for index, value in enumerate(instance):
            yield from optional_keys(schema["items"], value, (*path, index), (*shape, "*"))


def _config(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())


def _cases() -> list[tuple[str, tuple, tuple]]:
    """(config, path, schema path): each optional key of the schema where a config first sets it."""
    cases, seen = [], set()
    for name in CONFIGS:
        for path, shape in optional_keys(SCHEMA, _config(name)):
            if shape not in seen:
                seen.add(shape)
                cases.append((name, path, shape))
    return cases


CASES = _cases()


def _delete(config: dict[str, Any], path: tuple) -> None:
    parent = config
    for step in path[:-1]:
        parent = parent[step]
    parent.pop(path[-1], None)


def load_as_the_workflow_does(config: dict[str, Any]) -> dict[str, Any]:
    """What the workflow does with a config when it loads: the schema (workflow/Snakefile), then
    check_config (rules/common.smk), then check_models (rules/models.smk)."""
    validate(config, str(SCHEMA_PATH))
    check_config(config)
    check_models(config)
    return config


def test_the_walk_finds_the_optional_keys_of_every_section():
    shapes = {".".join(map(str, shape)) for _, _, shape in CASES}
    for key in (
        "run.seed",
        "dataset.patients",
        "dataset.patient_columns",
        "dataset.columns.site",
        "dataset.measures.*.rater",
        "cleaning.deidentification.dates_to_days",
        "analysis.outcome_scale",
        "models.*.fixed",
        "report",
        "instruments",
    ):
        assert key in shapes, key
    assert not {p for _, p, _ in CASES} & {("dataset", "name"), ("dataset", "columns", "patient"), ("models",)}
    # a measure's items and total are one-of (the schema's oneOf), not optional
    assert "dataset.measures.*.items" not in shapes and "dataset.measures.*.total" not in shapes


@pytest.mark.parametrize(
    "name, path, shape", CASES, ids=[f"{n.split('/')[-1]}:{'.'.join(map(str, p))}" for n, p, _ in CASES]
)
def test_an_optional_key_can_be_left_out(name, path, shape):
    config = _config(name)
    _delete(config, path)
    for other in DELETED_WITH.get(path, []):
        _delete(config, other)
    if path in ELSEWHERE:
        with pytest.raises(ConfigError) as error:
            load_as_the_workflow_does(config)
        assert str(error.value) == ELSEWHERE[path]
        return
    needed = NEEDED_BY_A_MODEL.get(shape)
    if needed and name == "config/config.yaml":
        model, message = needed
        with pytest.raises(ModelConfigError) as error:
            load_as_the_workflow_does(copy.deepcopy(config))
        assert str(error.value).startswith(message)
        config["models"] = [entry for entry in config["models"] if entry["name"] != model]
    loaded = load_as_the_workflow_does(copy.deepcopy(config))
    assert loaded["dataset"]["name"] == _config(name)["dataset"]["name"]


@pytest.mark.parametrize("value", ["omitted", None])
def test_no_patients_file_loads(value):
    config = _config("config/config.yaml")
    config["models"] = [m for m in config["models"] if m["name"] != "alliance_growth"]  # it needs expectancy
    del config["dataset"]["patient_columns"]
    if value == "omitted":
        del config["dataset"]["patients"]
    else:
        config["dataset"]["patients"] = value
    loaded = load_as_the_workflow_does(config)
    assert loaded["dataset"]["patients"] is None
    config["dataset"]["patient_columns"] = {"patient": "patient"}
    with pytest.raises(
        ConfigError, match="^dataset.patient_columns: given, but dataset.patients names no patients file$"
    ):
        load_as_the_workflow_does(config)


def test_a_patients_file_gets_the_tables_defaults_and_a_bad_one_is_still_refused():
    config = _config("config/config.yaml")
    config["dataset"]["patients"] = {"path": "data/raw/demo/patients.csv"}
    assert load_as_the_workflow_does(config)["dataset"]["patients"]["encoding"] == "utf-8"
    config["dataset"]["patients"] = {"pth": "data/raw/demo/patients.csv"}
    with pytest.raises(Exception, match="'pth' was unexpected"):
        load_as_the_workflow_does(config)
