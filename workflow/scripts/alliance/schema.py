"""The run configuration's JSON schema (workflow/schemas/config.schema.yaml), read once per process.

The schema is the one source of every config default the package needs outside Snakemake's own
validation (``schema_default``).  Parsing its 30 kB of YAML costs about 0.2 s in pure Python, so
it is parsed once and cached: the intake asks for several defaults on every call.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA", "POOLING_SCHEMA", "config_schema", "schema_for", "schema_default"]

#: The config schema, checked when the workflow loads.
SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"
#: The schema of a config that pools several studies (``studies``); it refers to SCHEMA's blocks.
POOLING_SCHEMA = SCHEMA.with_name("pooling.schema.yaml")


@functools.cache
def config_schema() -> dict[str, Any]:
    """The parsed schema (cached: read it, do not change it).

    >>> config_schema()["properties"]["run"]["type"]
    'object'
    """
    import yaml  # only here: modules that import SCHEMA alone need no third-party package

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(SCHEMA.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader


def _load(path: Path) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return {**yaml.load(path.read_text(encoding="utf-8"), Loader=loader), "$id": path.as_uri()}  # noqa: S506


def schema_for(config: Any) -> tuple[dict[str, Any], Any]:
    """The schema a config is validated with (the pooling schema for a config with ``studies``) and a
    ``referencing`` registry that resolves the pooling schema's references into the config schema.

    >>> schema, registry = schema_for({"studies": []})
    >>> schema["properties"]["studies"]["minItems"]
    2
    """
    from referencing import Registry, Resource

    registry = Registry().with_resource(SCHEMA.as_uri(), Resource.from_contents(_load(SCHEMA)))
    if isinstance(config, dict) and "studies" in config:
        return _load(POOLING_SCHEMA), registry
    return config_schema(), registry


def schema_default(*keys: str) -> Any:
    """The schema's default at the dotted path ``keys`` of the config (``"*"``: any key of a map).

    >>> schema_default("analysis", "without_therapists")
    'skip'
    """
    node = config_schema()
    for key in keys:
        node = node["additionalProperties"] if key == "*" else node["properties"][key]
    return node["default"]
