"""The step scripts (workflow/scripts/*.py) and their rules: one set-up for all (alliance.step), each
runnable by hand for debugging, each rule with a benchmark record and its resources."""

from __future__ import annotations

import os
import re
import subprocess
from types import SimpleNamespace

import pytest

from alliance.step import read_workflow
from testkit import ROOT
from testkit.checkout import checkout

SCRIPTS = sorted((ROOT / "workflow" / "scripts").glob("*.py"))


def test_every_step_script_starts_with_the_shared_set_up():
    for script in SCRIPTS:
        text = script.read_text()
        assert "\nsnakemake = step.start(globals())\n" in text, script.name
        assert "noqa" not in text and "sys.stderr = open" not in text, script.name


def _read(directory, configfiles: list[str]):
    """The workflow read on ``configfiles`` (none: the demo config) in a scratch directory, as a run would."""
    for name in ("config", "data"):
        (directory / name).symlink_to(ROOT / name)
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        return read_workflow(configfiles)
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def demo_workflow(tmp_path_factory):
    """The workflow read on the demo config."""
    return _read(tmp_path_factory.mktemp("demo_workflow"), [])


@pytest.fixture(scope="module")
def pooled_workflow(tmp_path_factory):
    """The workflow read on the multi-study demo's config (rules/pooling.smk)."""
    return _read(tmp_path_factory.mktemp("pooled_workflow"), ["config/demo_ipd.yaml"])


def test_every_rule_records_a_benchmark_and_declares_its_resources(demo_workflow, pooled_workflow):
    """Each step script is run by a rule of one workflow or the other; each rule's benchmark record
    sits where its log does (logs/ -> benchmarks/), and it declares measured memory and runtime."""
    runs = [rule for workflow in (demo_workflow, pooled_workflow) for rule in workflow.rules if rule.script]
    assert {(ROOT / "workflow" / "rules" / rule.script).resolve() for rule in runs} == set(SCRIPTS)
    for rule in runs:
        log = str(rule.log[0])
        assert str(rule.benchmark) == re.sub(r"[.]log$", ".tsv", log.replace("logs/", "benchmarks/", 1)), rule.name
        # measured from the benchmark records (workflow/rules/common.smk, pooling.smk say how)
        memory = rule.resources["mem_mb"]
        if memory.is_evaluable():  # a function of the input's size (alliance.intake.resources): at an empty input
            assert memory._evaluator(None, SimpleNamespace(size_mb=0)) >= 300, rule.name
        else:
            assert memory.value >= 300, rule.name
        assert rule.resources["runtime"].value >= 5, rule.name


@pytest.mark.slow  # reads the shared `make run` (conftest.made_run): test-slow and CI
def test_a_step_runs_by_hand_and_writes_its_outputs(made_run, tmp_path):
    """README (Development): a step outside Snakemake, on a config, writes what the pipeline writes."""
    assert made_run.returncode == 0, made_run.console[-3000:]
    directory = checkout(tmp_path / "checkout", made_run.config, data=made_run.directory / "data" / "raw")
    python = str(directory / ".venv" / "bin" / "python")
    clean = subprocess.run([python, "workflow/scripts/clean_data.py"], cwd=directory, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr[-3000:]
    command = ".venv/bin/python workflow/scripts/fit_model.py --configfile config/config.yaml model=same_session"
    fit = subprocess.run(command.split(), cwd=directory, capture_output=True, text=True)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "INFO [fit_model model=same_session] model same_session:" in fit.stderr  # its log lines, printed
    log = (directory / "logs/small/fit_model_same_session.log").read_text()
    assert log.startswith("INFO model same_session:")
    for table in ("clean/analysis.parquet", "models/same_session/fixed_effects.csv", "models/same_session/fit.json"):
        by_hand = (directory / "results/small" / table).read_bytes()
        assert by_hand == (made_run.directory / "results/small" / table).read_bytes(), table


@pytest.mark.parametrize(
    "arguments, says",
    [
        (
            ["plot_trajectories.py"],
            "plot_trajectories.py is run by 2 rules (plot_trajectories_alliance, "
            "plot_trajectories_symptoms); name one with --rule",
        ),
        (["fit_model.py"], "rule fit_model needs the wildcard(s) model, e.g. model=<value>"),
        (["fit_model.py", "model=nope"], "rule fit_model: model=nope is not a job of this config"),
        (
            ["fit_model.py", "model=same_session"],
            "rule fit_model: input results/demo/clean/analysis.parquet does not exist; run the pipeline up to it first",
        ),
    ],
)
def test_a_step_run_by_hand_says_what_it_lacks(tmp_path, arguments, says):
    for name in ("config", "data"):
        (tmp_path / name).symlink_to(ROOT / name)
    script, *rest = arguments
    result = subprocess.run(
        [str(ROOT / ".venv/bin/python"), str(ROOT / "workflow/scripts" / script), *rest],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert says in result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()
