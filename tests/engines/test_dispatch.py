"""The engine dispatcher: one default engine, the registry, argument checks."""

from __future__ import annotations

import pytest
import yaml

from alliance.engines import dispatch
from testkit import ROOT


def test_the_schema_default_engine_is_the_code_default():
    """One default: the config schema's run.engine default names DEFAULT_ENGINE."""
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["properties"]["run"]["properties"]["engine"]["default"] == dispatch.DEFAULT_ENGINE == "mixedlm"
    assert set(schema["properties"]["run"]["properties"]["engine"]["enum"]) == set(dispatch.available_engines())


def test_every_registered_engine_module_defines_the_engine_interface():
    import importlib

    for name, module in dispatch.ENGINE_MODULES.items():
        loaded = importlib.import_module(module)
        assert callable(loaded.fit_engine), name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engine": "lmer"}, "unknown engine 'lmer'"),
        ({"engine": "mixedlm", "cross_check": True}, "cross_check must be false or an engine name"),
        ({"engine": "mixedlm", "cross_check": "mixedlm"}, "is the engine itself"),
        ({"engine": "mixedlm", "cross_check": "nlme"}, "unknown engine 'nlme'"),
    ],
)
def test_bad_engine_arguments_are_refused_before_any_fit(kwargs, message):
    from alliance.engines.spec import ModelSpec, RandomTerm

    spec = ModelSpec("m", "y", ("x",), (RandomTerm("g"),))
    with pytest.raises(ValueError, match=message):
        dispatch.fit(spec, None, **kwargs)
