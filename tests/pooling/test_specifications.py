"""The pooled run's specifications (alliance.pooling.specifications, alliance.pooling.config)."""

from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from alliance.models.config import check_models
from alliance.pooling.config import multiverse_specifications, pooled_effect_names
from alliance.pooling.specifications import (
    EFFECTS,
    NOT_APPLICABLE,
    build_model,
    effect_specification,
    expand_grid,
    specification_id,
)
from alliance.schema import config_schema

ROOT = Path(__file__).resolve().parents[2]
FULL_GRID = {
    "model": ["same_session", "lagged", "riclpm", "early_alliance"],
    "alliance": ["raw", "detrended"],
    "therapist_level": ["with", "without"],
    "outliers": ["keep", "winsorise"],
    "sample": ["all", "completers"],
    "early_alliance": ["session_3", "mean_1_4"],
    "early_change": ["unadjusted", "adjusted"],
}


def test_the_full_grid_holds_each_distinct_specification_once():
    specs = expand_grid(FULL_GRID)
    by_model = {}
    for s in specs:
        by_model[s["model"]] = by_model.get(s["model"], 0) + 1
    # 2 x 2 x 2 x 2 for the session-level mixed models, 2 x 2 x 2 for the RI-CLPM, 2^5 for the early alliance
    assert by_model == {"same_session": 16, "lagged": 16, "riclpm": 8, "early_alliance": 32}
    ids = [specification_id(s) for s in specs]
    assert len(set(ids)) == 72 and ids == sorted(ids)
    assert all(s["early_change"] == NOT_APPLICABLE for s in specs if s["model"] != "early_alliance")
    assert all(s["alliance"] == NOT_APPLICABLE for s in specs if s["model"] in ("riclpm", "early_alliance"))
    assert len(multiverse_specifications({"multiverse": {**FULL_GRID, "winsor_sd": 2}})) == 72


def test_every_pooled_effect_is_a_valid_model_of_the_suite():
    """The models the specifications build pass the config schema and the suite's own cross-reference checks."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    built = [build_model(effect_specification(e), waves=7) for e in sorted(EFFECTS)]
    config["models"] = [b.model for b in built]
    assert all(b.focal for b in built)
    Draft202012Validator(config_schema()).validate(config)
    check_models(config)


def test_the_models_of_the_choices():
    lagged = build_model({"model": "lagged", "therapist_level": "with"}, waves=7).model
    assert lagged["outcome"] == "symptoms_next" and "symptoms_within_patient" in lagged["fixed"]
    assert [t["group"] for t in lagged["random"]] == ["therapist", "patient"]
    assert lagged["random"][1]["nested_in"] == "therapist"
    early = build_model(
        {
            "model": "early_alliance",
            "early_alliance": "mean_1_4",
            "early_change": "adjusted",
            "therapist_level": "without",
        },
        waves=7,
    )
    assert early.model["fixed"] == ["symptoms_baseline_c", "symptoms_change_s3", "alliance_s1_4"]
    assert early.model["random"] == [] and early.known_bias == []
    riclpm = build_model({"model": "riclpm", "therapist_level": "without"}, waves=5).model
    assert riclpm["cluster"] is None and riclpm["waves"] == 5


def test_every_specification_with_a_known_bias_carries_its_label():
    assert "Nickell" in build_model({"model": "lagged"}, waves=7).known_bias[0]
    assert (
        len(build_model({"model": "lagged", "alliance": "detrended", "sample": "completers"}, waves=7).known_bias) == 3
    )
    assert "early change" in build_model({"model": "early_alliance"}, waves=7).known_bias[0]
    assert build_model({"model": "same_session"}, waves=7).known_bias == []
    assert build_model({"model": "riclpm"}, waves=7).known_bias == []


def test_an_unknown_option_is_refused_by_name():
    with pytest.raises(ValueError, match="outliers 'trim' is not one of keep, winsorise"):
        specification_id({"model": "same_session", "outliers": "trim"})


def test_the_riclpm_gives_both_cross_lags():
    assert pooled_effect_names({"pooling": {"effects": ["same_session", "riclpm"]}}) == [
        "same_session",
        "riclpm_alliance_symptoms",
        "riclpm_symptoms_alliance",
    ]
