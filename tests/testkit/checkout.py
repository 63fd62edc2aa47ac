"""A checkout of the repository in a temporary directory, for the tests that run ``make`` (tests/workflow/).

``make run`` works in the directory of the Makefile; a test runs it in a fresh directory that holds
the repository's Makefile, Snakefiles, workflow, profile and requirements (links to this checkout,
the pinned ``.venv`` too, so nothing is installed), and its own ``config/`` and ``data/``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from testkit import ROOT

# what a checkout shares with this one (links); config/ and data/ are each test's own
SHARED = ("Makefile", "Snakefile", "workflow", "profiles", "requirements", "bench", ".venv")


def checkout(directory: Path, config: dict | None = None, data: Path | None = None) -> Path:
    """Make ``directory`` a checkout: the shared parts linked, ``config`` as config/config.yaml.

    ``data``: a directory whose contents become the checkout's ``data/raw/`` (linked, never written:
    the pipeline only reads data/raw).
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name in SHARED:
        (directory / name).symlink_to(ROOT / name)
    (directory / "config").mkdir()
    (directory / "reports").mkdir()
    if config is not None:
        write_config(directory / "config" / "config.yaml", config)
    if data is not None:
        (directory / "data").mkdir()
        (directory / "data" / "raw").symlink_to(data)
    return directory


def write_config(path: Path, config: dict) -> Path:
    """Write ``config`` as YAML (the order of its keys kept)."""
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


#: a second config file a test passes after a demo's own (``--configfile`` merges several): the
#: variance CIs' bootstrap at the schema's fewest replicates, 20, where a test is about a command,
#: not the bootstrap (tests/models/test_variance_ci.py tests that)
FEWER_REPLICATES = "config/fewer_replicates.yaml"


def fewer_replicates(directory: Path) -> str:
    """Write :data:`FEWER_REPLICATES` into the checkout ``directory``; its path in the checkout."""
    (directory / FEWER_REPLICATES).write_text("report:\n  variance_ci:\n    replicates: 20\n")
    return FEWER_REPLICATES


def make_run_demo(tmp_path: Path, demo: Path, config: str) -> tuple[Path, subprocess.CompletedProcess]:
    """``make run CONFIG=<config> config/fewer_replicates.yaml`` in a fresh checkout under ``tmp_path``
    whose data/raw holds a copy of the demo folder ``demo`` (its name kept): the checkout, and the run."""
    from testkit import demo_config

    raw = tmp_path / "raw"
    shutil.copytree(demo, raw / demo.name)
    directory = checkout(tmp_path / "checkout", demo_config(), data=raw)
    shutil.copy(ROOT / config, directory / config)
    return directory, make(directory, "run", f"CONFIG={config} {fewer_replicates(directory)}")


def make(directory: Path, *arguments: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """``make ARGUMENTS`` in ``directory``, stdout and stderr together (what the terminal shows)."""
    return subprocess.run(
        ["make", "--no-print-directory", *arguments],
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        env=os.environ | {"NO_COLOR": "1"},
    )


#: ``make ARGUMENTS`` started with SIGINT's default action (an ignored signal stays ignored across
#: exec): a small Python that resets it, then becomes make; no preexec_fn, unsafe beside threads
WITH_SIGINT = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp('make', sys.argv[1:])"


def interrupt_make(directory: Path, *arguments: str, after_line: str, timeout: float = 900) -> str:
    """Start ``make ARGUMENTS`` and press Ctrl-C (SIGINT to its process group) once ``after_line`` shows
    and a job is running (Snakemake's marker of an unfinished output, ``alliance.console.unfinished_outputs``).

    What the terminal shows goes to a file, read while make runs: the interruption does not wait on a
    pipe's reader, and it comes while a job is running, as a user's Ctrl-C in the middle of a run.
    Returns what the terminal showed until make ended.
    """
    from alliance.console import unfinished_outputs

    terminal = directory / ".terminal.txt"
    with terminal.open("w") as sink:
        # Ctrl-C's default action, as in a terminal: a job started in the background (CI, nohup,
        # `cmd &`) inherits SIGINT ignored, and then the Snakemake under make never sees the Ctrl-C
        process = subprocess.Popen(
            [sys.executable, "-c", WITH_SIGINT, "make", "--no-print-directory", *arguments],
            cwd=directory,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a terminal gives a foreground job
        )
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            if after_line in terminal.read_text() and unfinished_outputs(directory):
                os.killpg(process.pid, signal.SIGINT)
                break
            time.sleep(0.05)
        process.wait(timeout=300)
    return terminal.read_text()


def digests(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (links followed), by path relative to it."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
