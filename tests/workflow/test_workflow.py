"""The workflow end to end: a small simulated trial through `make run` in a temporary checkout."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from testkit import ROOT, SNAKEMAKE, run_snakemake
from testkit.checkout import digests

pytestmark = pytest.mark.e2e

TABLES = (
    "clean/analysis.parquet",
    "clean/patients.parquet",
    "clean/data_dictionary.csv",
    "clean/validation_report.csv",
    "clean/exclusion_flow.csv",
    "clean/summary.json",
    "clean/reliability.csv",
    "clean/item_rest.csv",
    "models/same_session/fixed_effects.csv",
    "models/same_session/variance_components.csv",
    "models/same_session/fit.json",
)


@pytest.fixture(scope="module")
def small_run(small_trial, made_run):
    """The small trial through `make run` (conftest.made_run), in a checkout whose data/raw is the trial's."""
    assert made_run.returncode == 0, made_run.console[-4000:]
    return made_run.directory, made_run.config, made_run.raw_before


@pytest.mark.slow  # reads the shared `make run` (conftest.made_run): test-slow and CI
def test_every_stage_writes_its_outputs(small_run):
    workdir, _, _ = small_run
    results = workdir / "results" / "small"
    for name in TABLES + ("figures/within_between.png", "figures/within_between.svg"):
        assert (results / name).stat().st_size > 0, name
    html = (workdir / "reports" / "small" / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert (
        "http://" not in html.replace("http://www.w3.org", "")
        and "https://" not in html.split("<body>")[1].split("Resolved configuration")[0]
    )


@pytest.mark.slow  # reads the shared `make run` (conftest.made_run): test-slow and CI
def test_counts_follow_the_simulated_data(small_run):
    workdir, _, _ = small_run
    truth = yaml.safe_load((workdir / "data/raw/small/TRUTH.yaml").read_text())
    summary = json.loads((workdir / "results/small/clean/summary.json").read_text())
    assert summary["therapists"] == 18
    assert summary["patients"] == 144
    # the duplicate and the Post-Rx row are removed, every simulated session remains
    assert summary["rows"] == truth["sample"]["session_rows"]
    flow = pd.read_csv(workdir / "results/small/clean/exclusion_flow.csv")
    assert flow["rows"].iloc[0] == truth["sample"]["session_rows"] + 2
    assert flow["rows_excluded"].sum() >= 2
    findings = pd.read_csv(workdir / "results/small/clean/validation_report.csv")
    reasons = " | ".join(findings["reason"].astype(str))
    assert "outside the valid range 1-5" in reasons
    assert "exact duplicate of row" in reasons
    assert "text in a numeric column" in reasons


@pytest.mark.slow  # reads the shared `make run` (conftest.made_run): test-slow and CI
def test_model_recovers_the_simulated_within_effect(small_run):
    workdir, _, _ = small_run
    truth = yaml.safe_load((workdir / "data/raw/small/TRUTH.yaml").read_text())
    fixed = pd.read_csv(workdir / "results/small/models/same_session/fixed_effects.csv").set_index("term")
    within = fixed.loc["alliance_within_patient"]
    assert abs(within["estimate"] - truth["within_effect_sample_patient_mean"]) < 3 * within["se"]
    assert fixed.loc["session_c", "estimate"] == pytest.approx(truth["design"]["outcome_session_slope"], abs=0.15)
    assert within["ci_low"] < within["estimate"] < within["ci_high"]
    fit = json.loads((workdir / "results/small/models/same_session/fit.json").read_text())
    assert fit["fit"]["n_groups"]["patient"] == 144
    assert set(fit["flags"]) <= {"refitted", "optimum_disagreement"}


@pytest.mark.slow  # reads the shared `make run` (conftest.made_run): test-slow and CI
def test_raw_data_untouched(small_run, small_trial):
    _, _, raw_before = small_run
    assert digests(small_trial[0] / "data" / "raw") == raw_before


@pytest.mark.slow
def test_rerun_gives_byte_identical_tables(small_run):
    """Every table of the intake and the model stage (all of results/ but the figures and the report's
    own files) made again from scratch, byte for byte: the tables' jobs only, not the figures'."""
    workdir, config, _ = small_run
    results = workdir / "results" / "small"
    tables = sorted(
        p.relative_to(workdir).as_posix()
        for p in results.rglob("*")
        if p.is_file() and p.relative_to(results).parts[0] not in ("figures", "report")
    )
    assert set(TABLES) <= {t.removeprefix("results/small/") for t in tables} and len(tables) > 200
    before = {name: hashlib.sha256((workdir / name).read_bytes()).hexdigest() for name in tables}
    report = workdir / "reports" / "small" / "report.html"
    report_made = report.stat().st_mtime_ns
    result = run_snakemake(workdir, config, "--forceall", *tables)
    assert result.returncode == 0, result.stderr[-4000:]
    assert report.stat().st_mtime_ns == report_made  # the figures and the report are not remade
    after = {name: hashlib.sha256((workdir / name).read_bytes()).hexdigest() for name in tables}
    assert [name for name in tables if after[name] != before[name]] == []


def test_stopping_error_leaves_no_results(tmp_path, small_trial):
    workdir, config = small_trial
    bad = tmp_path / "data" / "raw" / "bad"
    bad.mkdir(parents=True)
    sessions = pd.read_csv(workdir / "data/raw/small/sessions.csv", dtype=str, keep_default_na=False)
    sessions.loc[5, "therapy"] = "Gestalt"
    sessions.to_csv(bad / "sessions.csv", index=False)
    (bad / "patients.csv").write_bytes((workdir / "data/raw/small/patients.csv").read_bytes())
    config = yaml.safe_load(yaml.safe_dump(config))
    config["dataset"]["name"] = "bad"
    config["dataset"]["sessions"]["path"] = "data/raw/bad/sessions.csv"
    config["dataset"]["patients"]["path"] = "data/raw/bad/patients.csv"
    result = run_snakemake(tmp_path, config)
    assert result.returncode != 0
    log = (tmp_path / "logs/bad/clean_data.log").read_text()
    assert "data/raw/bad/sessions.csv, row 7, column 'therapy'" in log
    assert "Gestalt" in log and "unknown therapy label" in log
    assert not (tmp_path / "results").exists() or not any(p.is_file() for p in (tmp_path / "results").rglob("*"))


#: packages that loading the workflow must not import: every Snakemake call (make run, make
#: clean-data, each workflow test) loads it, and these cost about 4 s there (pingouin alone 3 s)
HEAVY_AT_LOAD = ("pingouin", "scipy.stats", "matplotlib", "statsmodels", "mixedlm")


def test_lint_and_dry_run(tmp_path):
    dry = subprocess.run(
        [sys.executable, "-X", "importtime", str(SNAKEMAKE), "-n", "--forceall", "--quiet", "rules", "--cores", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "render_report" in dry.stdout + dry.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in dry.stderr.splitlines() if line.startswith("import time:")}
    assert "snakemake.workflow" in imported  # the import times were read
    assert sorted(name for name in imported if name.startswith(HEAVY_AT_LOAD)) == []
    lint = subprocess.run([str(SNAKEMAKE), "--lint"], cwd=ROOT, capture_output=True, text=True)
    assert lint.returncode == 0, (lint.stdout + lint.stderr)[-3000:]
    snakefmt = SNAKEMAKE.with_name("snakefmt")
    formatted = subprocess.run(
        [str(snakefmt), "--check", "Snakefile", "workflow/Snakefile", "workflow/rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert formatted.returncode == 0, formatted.stderr[-2000:]


def test_ruff_finds_nothing():
    """`make lint`'s ruff check, on the rules of pyproject.toml ([tool.ruff])."""
    ruff = subprocess.run(
        [str(SNAKEMAKE.with_name("ruff")), "check", "--output-format", "concise"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert ruff.returncode == 0, ruff.stdout[-3000:]


def test_ruff_format_leaves_every_file_as_it_is():
    """`make lint`'s formatter check: the code is as `ruff format` writes it."""
    formatted = subprocess.run(
        [str(SNAKEMAKE.with_name("ruff")), "format", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert formatted.returncode == 0, formatted.stdout[-3000:]


def test_without_a_browser_the_html_report_is_still_made(tmp_path):
    """`make run` must work on a machine with only Python: no Chromium, no PDF, HTML still."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "ALLIANCE_CHROMIUM"}
    env["PATH"] = str(SNAKEMAKE.parent) + ":/nonexistent"
    dry = subprocess.run(
        [str(SNAKEMAKE), "-n", "--forceall", "--cores", "1"], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    out = dry.stdout + dry.stderr
    assert "reports/demo/report.pdf is skipped" in out
    assert "render_report_pdf" not in out and "render_report" in out
