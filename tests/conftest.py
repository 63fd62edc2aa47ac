"""Fixtures and collection hooks; plain helpers live in the testkit package (tests/testkit/).

The small simulated trial and its one `make run` are session fixtures here, so that the report's
browser tests (tests/report/) and the workflow tests (tests/workflow/) read the same run: a full
run of the workflow is the costliest step of the tests (about 3 minutes on 2 cores, slow tests
only: `make test-slow`), and it is done once.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit import demo_config
from testkit.checkout import checkout, digests, make


def pytest_collection_modifyitems(config, items):
    """The modules of the shared `make run` first (:func:`pytest_xdist_make_scheduler`); tests
    marked needs_r skip without R, except in CI, where R is installed by .ci/run.

    A needs_r test runs R live, so it must be marked slow too (pyproject.toml's marker list):
    the default run compares with the committed references only."""
    # the modules of the shared `make run` first: the longest unit of work starts first
    items.sort(key=lambda item: not _reads_made_run(config.rootpath / item.nodeid.split("::", 1)[0]))
    live_r_by_default = [item.nodeid for item in items if "needs_r" in item.keywords and "slow" not in item.keywords]
    if live_r_by_default:
        raise pytest.UsageError(f"mark these needs_r tests slow as well: {', '.join(live_r_by_default)}")
    if shutil.which("Rscript") or os.environ.get("CI"):
        return  # in CI these run, and fail loudly if .ci/run did not install R
    for item in items:
        if "needs_r" in item.keywords:
            item.add_marker(
                pytest.mark.skip(reason="Rscript not found (apt-get install r-base-core r-cran-lme4 r-cran-lmertest)")
            )


SHARED_RUN = "made_run"


@functools.cache
def _reads_made_run(module: Path) -> bool:
    """Whether a test module uses the shared `make run` (the `made_run` fixture)."""
    return SHARED_RUN in module.read_text(encoding="utf-8")


def pytest_xdist_make_scheduler(config, log):
    """`make test` runs two pytest-xdist workers, one per core. Each test module goes to one worker
    (its module fixtures are built once), and the modules that read the shared `make run` go
    together (the run is made once). pytest-xdist's own ``--dist loadgroup`` cannot do the latter
    with pytest 9.2, which no longer takes the group suffix it appends to a test's id."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedRunScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SHARED_RUN if _reads_made_run(config.rootpath / module) else module

    return SharedRunScheduling(config, log)


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
    # the fewest bootstrap replicates the schema allows: the variance CIs refit each model per replicate
    config.setdefault("report", {})["variance_ci"] = {"replicates": 20}
    return workdir, config


@dataclass
class MadeRun:
    """A `make run` in a fresh checkout: where, what the terminal showed, how long it took."""

    directory: Path
    config: dict
    returncode: int
    console: str
    seconds: float
    raw_before: dict[str, str]  # the trial's raw files before the run (sha256)


@pytest.fixture(scope="session")
def made_run(small_trial, tmp_path_factory) -> MadeRun:
    """`make run` of the small trial (18 therapists x 8 patients, the demo's whole suite) in a checkout."""
    workdir, config = small_trial
    directory = checkout(tmp_path_factory.mktemp("made_run"), config, data=workdir / "data" / "raw")
    raw_before = digests(workdir / "data" / "raw")
    start = time.perf_counter()
    result = make(directory, "run")
    return MadeRun(directory, config, result.returncode, result.stdout, time.perf_counter() - start, raw_before)


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A lab's small clean export in its own working directory (testkit.lab.Lab), to break one way."""
    from testkit.lab import Lab

    monkeypatch.chdir(tmp_path)
    return Lab(tmp_path)
