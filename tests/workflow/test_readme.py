"""Every command the README shows is run by a test, so that a README claim cannot go stale.

``COMMANDS`` maps each command of the README (its ```bash blocks, and the `make ...` and
`.venv/bin/...` commands written inline) to the test that runs it; a command without a test, or a
test for a command the README no longer shows, fails ``test_every_readme_command_has_a_test``.
The commands run in temporary checkouts (testkit.checkout) on small data: the small simulated trial
stands in for the demo, a small routine-monitoring dataset for the 1.17-million-row one.
"""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from testkit import ROOT, demo_config
from testkit.checkout import checkout, digests, fewer_replicates, make, make_run_demo, write_config

README = ROOT / "README.md"
HERE = Path(__file__).parent

# README command that regenerates a demo's data -> the folder under data/raw/ it writes
REGENERATE = {
    "cd workflow/scripts && ../../.venv/bin/python -m alliance.simulate --out ../../data/raw/demo": "demo",
    "cd workflow/scripts && ../../.venv/bin/python -m alliance.simulate --lab2 --out ../../data/raw/demo_lab2": (
        "demo_lab2"
    ),
    "cd workflow/scripts && ../../.venv/bin/python -m alliance.simulate_layouts --out ../../data/raw/demo_clientdesign": (
        "demo_clientdesign"
    ),
    "cd workflow/scripts && ../../.venv/bin/python -m alliance.simulate_studies --out ../../data/raw/demo_ipd": "demo_ipd",
}

# README command -> the test (module of tests/workflow, function) that runs it
COMMANDS = {
    "make run": ("test_console", "test_make_run_prints_one_line_per_step_and_ends_with_the_report"),
    "make test": ("test_readme", "test_make_test_runs_pytest_with_the_default_markers"),
    "make test-slow": ("test_readme", "test_make_test_runs_pytest_with_the_default_markers"),
    "make test WORKERS=0": ("test_readme", "test_make_test_runs_pytest_with_the_default_markers"),
    "make test WORKERS=4": ("test_readme", "test_make_test_runs_pytest_with_the_default_markers"),
    "make lint": ("test_readme", "test_make_lint_runs_the_three_checks"),
    "make bench": ("test_readme", "test_make_bench_runs_the_benchmarks"),
    "make clean-data": ("test_readme", "test_clean_data_then_run_on_a_labs_own_config"),
    "make clean-data CONFIG=config/my_lab.yaml": ("test_readme", "test_clean_data_then_run_on_a_labs_own_config"),
    "make run CONFIG=config/my_lab.yaml": ("test_readme", "test_clean_data_then_run_on_a_labs_own_config"),
    "make run CONFIG=config/demo_lab2.yaml": ("test_readme", "test_the_second_lab_runs_from_its_config"),
    "make init DATA=data/raw/my_lab/sessions.csv PATIENTS=data/raw/my_lab/patients.csv": (
        "test_demo_layouts",
        "test_make_init_drafts_a_config_that_clean_data_checks",
    ),
    "make run CONFIG=config/demo_spss.yaml": ("test_demo_layouts", "test_the_spss_demo_runs_from_its_config"),
    "make run CONFIG=config/demo_ipd.yaml": ("test_pooling", "test_the_multi_study_demo_runs_from_its_config"),
    "cd workflow/scripts && ../../.venv/bin/python -m alliance.simulate_spss --out ../../data/raw/demo_spss": (
        "test_demo_layouts",
        "test_the_spss_demo_regenerates_byte_for_byte",
    ),
    "make run CONFIG=config/demo_clientdesign.yaml": (
        "test_layouts",
        "test_the_clientdesign_demo_runs_from_its_config",
    ),
    ".venv/bin/snakemake --report reports/snakemake.html": ("test_readme", "test_snakemakes_report_after_a_run"),
    **{command: ("test_readme", "test_the_demo_data_regenerate_byte_for_byte") for command in REGENERATE},
    ".venv/bin/python bench/make_scale_data.py": ("test_readme", "test_the_scale_data_on_a_small_size"),
    ".venv/bin/python bench/make_scale_data.py --therapists 100 --patients-per-therapist 20": (
        "test_readme",
        "test_the_scale_data_on_a_small_size",
    ),
    ".venv/bin/snakemake --cores 2 --configfile config/scale.yaml": (
        "test_readme",
        "test_the_scale_config_runs_on_a_small_size",
    ),
    ".venv/bin/python workflow/scripts/fit_model.py --configfile config/config.yaml model=same_session": (
        "test_steps",
        "test_a_step_runs_by_hand_and_writes_its_outputs",
    ),
}


def readme_commands(text: str) -> list[str]:
    """The commands of a README: each line of its ```bash blocks (comments cut off), and inline
    code that starts with ``make ``, ``.venv/bin/`` or ``cd ``."""
    commands = []
    for block in re.findall(r"^[ \t]*```bash\n(.*?)^[ \t]*```", text, re.S | re.M):
        commands += [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    commands += [span for span in re.findall(r"`([^`\n]+)`", prose) if span.startswith(("make ", ".venv/bin/", "cd "))]
    return list(dict.fromkeys(c for c in commands if c))


def _test_functions() -> set[tuple[str, str]]:
    """(module, function) of every test function in tests/workflow/."""
    found = set()
    for path in HERE.glob("test_*.py"):
        tree = ast.parse(path.read_text())
        found |= {(path.stem, node.name) for node in tree.body if isinstance(node, ast.FunctionDef)}
    return found


def test_every_readme_command_has_a_test():
    commands = readme_commands(README.read_text())
    assert commands[:2] == ["make run", "make test"], "the README's first lines are the two newcomer commands"
    assert sorted(set(commands) - set(COMMANDS)) == [], "README commands without a test: add them to COMMANDS"
    assert sorted(set(COMMANDS) - set(commands)) == [], "COMMANDS lists commands the README no longer shows"
    missing = sorted(set(COMMANDS.values()) - _test_functions())
    assert missing == [], f"COMMANDS names tests that do not exist: {missing}"


def _dry(directory: Path, target: str, *variables: str) -> str:
    """What ``make -n TARGET`` would run (the recipe's commands, not run)."""
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", target, *variables], cwd=directory, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_test_runs_pytest_with_the_default_markers():
    """`make test`: pytest with pyproject's markers (not slow); `make test-slow`: the slow ones.
    (Running `make test` here would run this suite inside itself.)"""
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    assert "-m 'not slow'" in addopts
    test = [line for line in _dry(ROOT, "test").splitlines() if "pytest" in line]
    assert test == [".venv/bin/python -m pytest -n 2"]  # two pytest-xdist workers, tests/conftest.py
    slow = [line for line in _dry(ROOT, "test-slow").splitlines() if "pytest" in line]
    assert slow == [".venv/bin/python -m pytest -m slow -n 2"]
    one_process = [line for line in _dry(ROOT, "test", "WORKERS=0").splitlines() if "pytest" in line]
    assert one_process == [".venv/bin/python -m pytest "]
    four = [line for line in _dry(ROOT, "test", "WORKERS=4").splitlines() if "pytest" in line]
    assert four == [".venv/bin/python -m pytest -n 4"]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[-2:] == ["make test", "make test-slow"]


def test_make_lint_runs_the_three_checks():
    """`make lint`'s commands (they run in test_workflow: test_lint_and_dry_run, test_ruff_finds_nothing)."""
    lint = _dry(ROOT, "lint")
    assert ".venv/bin/snakemake --lint" in lint
    assert ".venv/bin/snakefmt --check Snakefile workflow/Snakefile workflow/rules" in lint
    assert ".venv/bin/ruff check" in lint


def test_make_bench_runs_the_benchmarks():
    """`make bench` (it takes about half an hour: docs/engines.md)."""
    assert ".venv/bin/python bench/run_benchmarks.py" in _dry(ROOT, "bench")


def _lab_config(config: dict, name: str, models: tuple[str, ...] = ("same_session",)) -> dict:
    """The small trial's config as a lab's own: another dataset name, only ``models`` switched on."""
    config = yaml.safe_load(yaml.safe_dump(config))
    config["dataset"]["name"] = name
    for model in config["models"]:
        model["enabled"] = model["name"] in models
    return config


@pytest.mark.slow
@pytest.mark.e2e
def test_clean_data_then_run_on_a_labs_own_config(small_trial, tmp_path):
    """README "Pointing it at your own data": `make clean-data` (the demo config's place) and with a
    lab's config, then `make run` with it."""
    workdir, config = small_trial
    directory = checkout(tmp_path / "checkout", _lab_config(config, "small"), data=workdir / "data" / "raw")
    intake = make(directory, "clean-data")
    assert intake.returncode == 0, intake.stdout[-3000:]
    assert intake.stdout.splitlines()[-1].startswith("Intake done: read results/small/clean/validation_report.csv")
    assert not (directory / "results/small/models").exists() and not (directory / "reports/small").exists()

    write_config(directory / "config/my_lab.yaml", _lab_config(config, "my_lab"))
    intake = make(directory, "clean-data", "CONFIG=config/my_lab.yaml")
    assert intake.returncode == 0, intake.stdout[-3000:]
    assert (directory / "results/my_lab/clean/validation_report.csv").stat().st_size > 0
    run = make(directory, "run", "CONFIG=config/my_lab.yaml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert run.stdout.splitlines()[-1].startswith("Report: reports/my_lab/report.html")
    assert (directory / "results/my_lab/models/same_session/fixed_effects.csv").exists()
    assert not (directory / "results/my_lab/models/three_level").exists()


@pytest.mark.slow  # reads the shared `make run` (conftest.made_run): test-slow and CI
@pytest.mark.e2e
def test_snakemakes_report_after_a_run(made_run):
    assert made_run.returncode == 0, made_run.console[-3000:]
    command = shlex.split(".venv/bin/snakemake --report reports/snakemake.html")
    result = subprocess.run(command, cwd=made_run.directory, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    html = (made_run.directory / "reports" / "snakemake.html").read_text()
    assert "fixed_effects.csv" in html and "validation_report.csv" in html


@pytest.mark.slow
@pytest.mark.e2e
def test_the_second_lab_runs_from_its_config(tmp_path):
    """The second demo through `make run` (its whole suite on 600 patients: a few minutes).

    A second config file (merged over it, as `--configfile` merges several) lowers the bootstrap
    replicates of the variance CIs to the schema's minimum, 20: the command is what is tested here,
    the bootstrap is tested in tests/models/test_variance_ci.py.
    """
    directory, result = make_run_demo(tmp_path, ROOT / "data/raw/demo_lab2", "config/demo_lab2.yaml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert result.stdout.splitlines()[-1].startswith("Report: reports/demo_lab2/report.html")
    assert (directory / "results/demo_lab2/models/same_session/fixed_effects.csv").exists()
    assert not (directory / "reports/demo").exists()
    if shutil.which("chromium"):  # the main report of the second demo is a few printed pages too
        pdf = (directory / "reports/demo_lab2/report.pdf").read_bytes()
        assert 2 <= len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) <= 8


@pytest.mark.parametrize("command", sorted(REGENERATE))
def test_the_demo_data_regenerate_byte_for_byte(tmp_path, command):
    demo = REGENERATE[command]
    result = subprocess.run(
        command.replace(f"../../data/raw/{demo}", str(tmp_path / demo)),
        shell=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert digests(tmp_path / demo) == digests(ROOT / "data/raw" / demo)


def _scale_data(out: Path, *size: str) -> subprocess.CompletedProcess:
    """README's `bench/make_scale_data.py` command, writing to ``out`` (not the repository's data/raw/scale)."""
    command = [".venv/bin/python", "bench/make_scale_data.py", *size, "--out", str(out)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)


def test_the_scale_data_on_a_small_size(tmp_path):
    """The large-data commands' data: the default size is 1.17 million rows; the README's smaller
    size, and a smaller one still, with the default seed and design otherwise."""
    result = _scale_data(tmp_path / "readme", "--therapists", "100", "--patients-per-therapist", "20")
    assert result.returncode == 0, result.stderr[-3000:]
    truth = yaml.safe_load((tmp_path / "readme/TRUTH.yaml").read_text())
    assert (truth["design"]["n_therapists"], truth["design"]["patients_per_therapist"]) == (100, 20)
    result = _scale_data(tmp_path / "tiny", "--therapists", "6", "--patients-per-therapist", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"sessions.csv", "patients.csv", "TRUTH.yaml"} <= {p.name for p in (tmp_path / "tiny").iterdir()}


@pytest.mark.slow
@pytest.mark.e2e
def test_the_scale_config_runs_on_a_small_size(tmp_path):
    """`.venv/bin/snakemake --cores 2 --configfile config/scale.yaml` on 18 therapists x 8 patients."""
    result = _scale_data(tmp_path / "raw" / "scale", "--therapists", "18", "--patients-per-therapist", "8")
    assert result.returncode == 0, result.stderr[-3000:]
    directory = checkout(tmp_path / "checkout", demo_config(), data=tmp_path / "raw")
    shutil.copy(ROOT / "config/scale.yaml", directory / "config/scale.yaml")
    command = shlex.split(f".venv/bin/snakemake --cores 2 --configfile config/scale.yaml {fewer_replicates(directory)}")
    run = subprocess.run(command, cwd=directory, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (directory / "reports/scale/report.html").stat().st_size > 0
