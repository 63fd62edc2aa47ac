"""Keys of a config left null where a value is required: what a ``make init`` draft still needs.

``make init`` (alliance.intake.draft_config) writes every key it cannot guess as ``null`` with a
``# TODO(init): ...`` comment. The config schema rejects null wherever a value is required, but
its validation stops at the first error; :func:`unfilled_keys` names every such key at once, and
``make run`` / ``make clean-data`` run :func:`main` on the config first, so a lab learns in one
message what remains. Only yaml and jsonschema are imported: it runs before every make run.

    python -m alliance.intake.unfilled CONFIG [CONFIG ...]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from alliance.schema import SCHEMA, schema_for

__all__ = ["MARK", "SCHEMA", "unfilled_keys", "unfilled_message", "main"]

MARK = "TODO(init)"


def unfilled_keys(config: Any, schema: dict, registry: Any = None) -> list[str]:
    """The dotted keys of ``config`` whose value is null where the schema requires a value of
    another type, in the order of the file.

    >>> schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": ["string", "null"]}}}
    >>> unfilled_keys({"a": None, "b": None}, schema), unfilled_keys({"a": "x", "b": None}, schema)
    (['a'], [])
    """
    from jsonschema import Draft202012Validator

    rejected: set[tuple] = set()

    def visit(error: Any) -> None:
        if error.instance is None and error.validator == "type":
            rejected.add(tuple(error.absolute_path))
        for sub in error.context or ():
            visit(sub)

    validator = (
        Draft202012Validator(schema, registry=registry) if registry is not None else Draft202012Validator(schema)
    )
    for error in validator.iter_errors(config):
        visit(error)
    return [".".join(str(p) for p in path) for path in _null_paths(config, ()) if path in rejected]


def _null_paths(value: Any, path: tuple) -> list[tuple]:
    """The paths of every null in a config, in order."""
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _null_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _null_paths(v, (*path, i))]
    return []


def unfilled_message(path: str, keys: list[str]) -> str:
    """The message that stops a run on a config with keys left to fill in."""
    return (
        f"error: {path}: {len(keys)} key(s) have no value yet (null, marked {MARK} by make init): "
        f"{', '.join(keys)}. Fill them in (config/README.md explains each), then run again."
    )


def _merged(base: Any, update: Any) -> Any:
    """Two configs merged as Snakemake merges several --configfile files (mappings key by key)."""
    if isinstance(base, dict) and isinstance(update, dict):
        return {**base, **{k: _merged(base.get(k), v) if k in base else v for k, v in update.items()}}
    return update


def main(argv: list[str] | None = None) -> int:
    """Exit 1 with :func:`unfilled_message` when the config (several files: merged in order, as
    ``--configfile`` merges them) has keys left null; a file that does not exist or does not load
    is left to the workflow to report."""
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m alliance.intake.unfilled CONFIG [CONFIG ...]", file=sys.stderr)
        return 2
    config: Any = None
    for path in paths:
        try:
            config = _merged(config, yaml.safe_load(Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return 0
    keys = unfilled_keys(config, *schema_for(config))  # a pooled config's studies by the pooling schema
    if keys:
        print(unfilled_message(" ".join(paths), keys), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
