"""Shared fixtures: paths, a small simulated trial, and a Snakemake runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def pytest_collection_modifyitems(config, items):
    """Tests marked needs_r skip without R, except in CI, where R is installed by .ci/run."""
    if shutil.which("Rscript") or os.environ.get("CI"):
        return  # in CI these run, and fail loudly if .ci/run did not install R
    for item in items:
        if "needs_r" in item.keywords:
            item.add_marker(
                pytest.mark.skip(reason="Rscript not found (apt-get install r-base-core r-cran-lme4 r-cran-lmertest)")
            )


def demo_config() -> dict:
    """The shipped demo configuration, as a dict."""
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def clean_demo(config: dict | None = None):
    """The demo data (or ``config``'s, paths relative to the repository) through the intake stage."""
    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    from alliance.clean import clean_dataset

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
        str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(config_path), "--cores", str(cores), "--quiet", "rules", *targets,
    ]
    return subprocess.run(command, capture_output=True, text=True, cwd=workdir)


@pytest.fixture(scope="session")
def small_trial(tmp_path_factory) -> tuple[Path, dict]:
    """A small simulated trial (18 therapists x 8 patients) in a fresh working directory."""
    from alliance.simulate import TrialDesign, write_trial

    workdir = tmp_path_factory.mktemp("small_trial")
    design = TrialDesign(n_therapists=18, patients_per_therapist=8)
    write_trial(workdir / "data" / "raw" / "small", design, seed=7)
    config = demo_config()
    config["dataset"]["name"] = "small"
    config["dataset"]["sessions"]["path"] = "data/raw/small/sessions.csv"
    config["dataset"]["patients"]["path"] = "data/raw/small/patients.csv"
    return workdir, config
