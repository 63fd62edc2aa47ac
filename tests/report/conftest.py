"""Fixtures of the report tests."""

from __future__ import annotations

import pytest
import yaml

from testkit import ROOT


@pytest.fixture(scope="session")
def benchmark() -> dict:
    """Config ``report.benchmark`` as the workflow gets it when a config leaves it out: the
    schema's defaults (the one place the published values are written)."""
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text(encoding="utf-8"))
    keys = schema["properties"]["report"]["properties"]["benchmark"]["properties"]
    return {key: spec["default"] for key, spec in keys.items()}
