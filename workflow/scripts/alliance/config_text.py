"""Config files stay data: a config that would be evaluated as code is refused.

Snakemake loads a config file through YTE, which evaluates the Python expressions of a file that
sets ``__use_yte__: true`` (``?`` keys and values, ``?if``/``?for`` blocks). This project promises
that nothing in a config is evaluated, so such a file is refused, as is one whose YAML tags build
Python objects (``!!python/...``) and any file plain YAML cannot read safely.

:func:`refuse_code_in_configs` reads the raw files with PyYAML's safe loader only. It runs

* in ``make run`` / ``make clean-data`` / ``make lint`` before Snakemake starts
  (``python -m alliance.config_text CONFIG``): the file is refused before anything of it is
  evaluated;
* in ``workflow/Snakefile`` before its ``configfile:`` line loads the demo config (refused before
  it is evaluated) and for every ``--configfile``. Snakemake's command line loads those through
  YTE before it reads the Snakefile, so a direct ``snakemake --configfile x.yaml`` has already
  evaluated them when the workflow refuses them: use ``make``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import yaml

__all__ = ["ConfigIsCode", "refuse_code_in_configs", "templating_problem"]

#: The key that turns on YTE's templating in a config file.
YTE_KEY = "__use_yte__"


class ConfigIsCode(Exception):
    """A config file that would be evaluated as code (its message names the file and what to remove)."""


def templating_problem(path: str | Path) -> str | None:
    """Why ``path`` would be evaluated as code, or None when it is plain data (or not a file)."""
    path = Path(path)
    if not path.is_file():
        return None  # Snakemake reports a missing config file itself
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.constructor.ConstructorError as error:
        return (
            f"uses a YAML tag that builds a Python object ({error.problem}); a config holds plain "
            "values only: remove the tag"
        )
    except (yaml.YAMLError, UnicodeDecodeError):
        return None  # not valid YAML: Snakemake's own message says so
    if isinstance(document, dict) and YTE_KEY in document:
        return (
            f"sets {YTE_KEY} (Snakemake's YTE templating, which evaluates the Python expressions "
            "of a config file); this workflow never evaluates a config: remove the key and write "
            "every value out"
        )
    return None


def refuse_code_in_configs(paths: Iterable[str | Path]) -> None:
    """Raise :class:`ConfigIsCode` naming every config file of ``paths`` that would be evaluated as code."""
    problems = [f"{path}: {why}" for path in paths if (why := templating_problem(path)) is not None]
    if problems:
        raise ConfigIsCode("Config refused: " + "; ".join(problems) + ".")


def main(argv: list[str]) -> int:
    """``python -m alliance.config_text CONFIG...``: exit 1 with the message when a config is refused."""
    try:
        refuse_code_in_configs(argv)
    except ConfigIsCode as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
