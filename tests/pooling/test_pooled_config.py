"""A pooled config (workflow/schemas/pooling.schema.yaml, alliance.pooling.config) as the workflow loads it."""

from __future__ import annotations

import copy

import pytest
import yaml
from snakemake.utils import validate

from alliance.intake.config import ConfigError
from alliance.intake.layout import table_options
from alliance.intake.readers import read_table
from alliance.pooling.config import check_pooling_config, study_configs
from testkit import ROOT

SCHEMA = str(ROOT / "workflow/schemas/pooling.schema.yaml")
DEMO = yaml.safe_load((ROOT / "config/demo_ipd.yaml").read_text())


def loaded(config: dict) -> dict:
    """The config as the workflow has it after loading: validated, the schema's defaults filled in."""
    config = copy.deepcopy(config)
    validate(config, SCHEMA)
    check_pooling_config(config)
    return config


def test_the_demo_loads_with_each_study_given_the_single_study_defaults():
    config = loaded(DEMO)
    studies = study_configs(config)
    assert len(studies) == 5 and config["pooling"]["sessions"] == [1, 7]
    for name, study in studies.items():
        assert study["dataset"]["name"] == name
        # the single-study schema's defaults reach every study (through the $ref of pooling.schema.yaml)
        assert study["analysis"]["person_means_from"] == "all_sessions"
        assert "missing_codes" in study["dataset"]


def test_a_tsv_without_a_delimiter_is_read_with_tabs():
    """The schema gives no default delimiter: a csv is read with commas, a tsv with tabs (a default ','
    once broke every `format: tsv` without a delimiter)."""
    config = loaded(DEMO)
    tsv = [
        s["dataset"]["sessions"]
        for s in study_configs(config).values()
        if s["dataset"]["sessions"].get("format") == "tsv"
    ]
    assert tsv and "delimiter" not in tsv[0]
    frame, _ = read_table(ROOT / tsv[0]["path"], **table_options(tsv[0]))
    assert frame.shape[1] > 10


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["studies"].append(copy.deepcopy(c["studies"][0])),
            "the name 'riverside' is used by more than one study",
        ),
        (lambda c: c["pooling"].update(sessions=[2, 7]), "must start at 1, not 2"),
        (lambda c: c["pooling"].update(sessions=[1, 2]), "fewer than 3 sessions"),
        (lambda c: c["studies"][1]["analysis"].update(alliance_measure="nope"), "studies.campus: "),
        (lambda c: c["studies"][2]["moderators"].pop("year"), "every study must name the same moderators"),
    ],
)
def test_a_mistake_the_schema_cannot_see_stops_the_load_naming_the_study(change, message):
    config = copy.deepcopy(DEMO)
    change(config)
    with pytest.raises(ConfigError, match=message):
        loaded(config)


def test_the_schema_refuses_an_unknown_choice_of_the_multiverse():
    config = copy.deepcopy(DEMO)
    config["multiverse"]["outliers"] = ["keep", "trim"]
    with pytest.raises(Exception, match="trim"):
        validate(config, SCHEMA)


def test_keys_left_null_in_a_study_are_named_before_the_run(tmp_path):
    """`make run` checks a config for keys left null (a `make init` draft pasted into `studies`) with the
    pooling schema, whose study blocks are the single-study schema's (alliance.intake.unfilled)."""
    from alliance.intake.unfilled import main

    config = copy.deepcopy(DEMO)
    config["studies"][1]["analysis"]["alliance_measure"] = None
    config["studies"][3]["dataset"]["sessions"]["path"] = None
    path = tmp_path / "pooled.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main([str(path)]) == 1
    path.write_text(yaml.safe_dump(DEMO))
    assert main([str(path)]) == 0


def test_the_message_names_each_null_key_by_its_study_position(capsys, tmp_path):
    from alliance.intake.unfilled import main

    config = copy.deepcopy(DEMO)
    config["studies"][1]["analysis"]["alliance_measure"] = None
    path = tmp_path / "pooled.yaml"
    path.write_text(yaml.safe_dump(config))
    main([str(path)])
    assert "studies.1.analysis.alliance_measure" in capsys.readouterr().err
