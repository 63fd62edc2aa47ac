"""Fixtures and collection hooks; plain helpers live in testkit.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from testkit import demo_config


def pytest_collection_modifyitems(config, items):
    """Tests marked needs_r skip without R, except in CI, where R is installed by .ci/run."""
    if shutil.which("Rscript") or os.environ.get("CI"):
        return  # in CI these run, and fail loudly if .ci/run did not install R
    for item in items:
        if "needs_r" in item.keywords:
            item.add_marker(
                pytest.mark.skip(reason="Rscript not found (apt-get install r-base-core r-cran-lme4 r-cran-lmertest)")
            )


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
