"""Helpers shared by the tests: paths, the demo configuration, the intake on it, a Snakemake runner.

Imported as ``from testkit import ...`` (``tests/`` is on pytest's pythonpath); fixtures stay in
``conftest.py``.  Helpers of one area live in the modules beside this one, so that no test module
imports another:

* ``testkit.lme4_refs``: the engine reference models, their lme4 tolerances and the agreement check;
* ``testkit.demo_exports``: the compact exports of the cleaned demo data the suite tests fit;
* ``testkit.trials``: a small simulated trial, cleaned and fitted, and a hand-made effects table;
* ``testkit.reports``: a reader's parser of the HTML report and the check that its numbers tie to
  the run's tables;
* ``testkit.instruments``: a lab's own instrument, declared in a config;
* ``testkit.checkout``: a checkout of the repository in a temporary directory, and ``make`` in it.
"""

from __future__ import annotations

import copy
import functools
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def demo_config() -> dict:
    """The shipped demo configuration, as a dict (a fresh copy: tests change it)."""
    return copy.deepcopy(_demo_config())


@functools.cache
def _demo_config() -> dict:
    return yaml.load(
        (ROOT / "config" / "config.yaml").read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    )


def clean_demo(config: dict | None = None):
    """The demo data (or ``config``'s, paths relative to the repository) through the intake stage."""
    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    from alliance.intake.clean import clean_dataset

    config = config or demo_config()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return clean_dataset(config["dataset"], config["analysis"], config["cleaning"], config["instruments"])
    finally:
        os.chdir(cwd)


def run_snakemake(workdir: Path, config: dict, *targets: str, cores: int = 2) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` with ``config`` (written to workdir/config.yaml)."""
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [
        str(SNAKEMAKE),
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config_path),
        "--cores",
        str(cores),
        "--quiet",
        "rules",
        *targets,
    ]
    return subprocess.run(command, capture_output=True, text=True, cwd=workdir)
