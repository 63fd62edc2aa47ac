"""The terminal of `make run` (alliance.console): one line per step, errors in full, the report named last;
and an interrupted run that the next `make run` recovers, saying so."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from base64 import urlsafe_b64encode

import pytest
import yaml
from snakemake_interface_logger_plugins.common import LogEvent

from alliance.console import ConsoleLines, recover, snakemake_running_in, unfinished_outputs
from testkit import ROOT, SNAKEMAKE
from testkit.checkout import checkout, interrupt_make, make

STEP_LINE = re.compile(r"^\[\s*(\d+)/(\d+)\] (\S+)")


def record(message=None, level=logging.INFO, **extra) -> logging.LogRecord:
    """A log record as Snakemake makes one (its event and fields as attributes)."""
    item = logging.LogRecord("snakemake", level, __file__, 0, message, None, None)
    item.__dict__.update(extra)
    return item


def test_a_finished_step_is_one_line_with_its_count():
    console = ConsoleLines()
    job = record(event=LogEvent.JOB_INFO, jobid=7, rule_name="fit_model", wildcards={"model": "baldwin"})
    assert console.lines(job) == []
    assert console.lines(record("Finished jobid: 7 (Rule: fit_model)", event=LogEvent.JOB_FINISHED, job_id=7)) == []
    (line,) = console.lines(record(event=LogEvent.PROGRESS, done=3, total=44))
    assert line.startswith("[ 3/44] fit_model model=baldwin ") and line.endswith(" s")


def test_chatter_is_left_out_and_warnings_are_shown_in_full():
    console = ConsoleLines()
    for chatter in ("Building DAG of jobs...", "Select jobs to execute...", "Execute 2 jobs...", "Provided cores: 2"):
        assert console.lines(record(chatter)) == []
    stats = record("Job stats: ...", event=LogEvent.RUN_INFO, stats={"clean_data": 1, "total": 44})
    assert console.lines(stats) == ["44 steps to run"]
    warning = "a first line\n    and a second line of the warning"
    assert console.lines(record(warning, level=logging.WARNING)) == [f"Warning: {warning}"]
    assert console.lines(record("Nothing to be done (all requested files are present and up to date).")) == [
        "Nothing to be done (all requested files are present and up to date)."
    ]
    # after a success the report's path is the last line; the full log's path only after a failure
    assert console.lines(record("Complete log(s): /x/.snakemake/log/1.snakemake.log")) == []


def test_a_failed_step_shows_its_whole_log(tmp_path):
    log = tmp_path / "fit_model_baldwin.log"
    log.write_text("Traceback (most recent call last):\n  File 'x', line 1\nValueError: singular matrix\n")
    console = ConsoleLines()
    console.lines(record(event=LogEvent.JOB_INFO, jobid=3, rule_name="fit_model", wildcards={"model": "baldwin"}))
    error = record(
        "Error in rule fit_model",
        logging.ERROR,
        event=LogEvent.JOB_ERROR,
        jobid=3,
        rule_name="fit_model",
        log=[str(log)],
    )
    lines = console.lines(error)
    assert lines[0] == f"FAILED fit_model model=baldwin (log: {log})"
    assert lines[1:] == [
        "    Traceback (most recent call last):",
        "      File 'x', line 1",
        "    ValueError: singular matrix",
    ]
    assert console.lines(record("Complete log(s): /x/1.snakemake.log")) == ["Complete log(s): /x/1.snakemake.log"]


def _lock(directory):
    locks = directory / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("results/demo/clean/analysis.parquet\n")
    return locks


def test_a_stale_lock_is_removed_when_no_snakemake_runs_there(tmp_path):
    locks = _lock(tmp_path)
    said = recover(tmp_path)
    assert not locks.exists()
    assert said == ["Recovering an interrupted run: removed the lock it left (no Snakemake is running here)."]
    assert recover(tmp_path) == []  # nothing left to recover


def test_the_lock_of_a_running_snakemake_is_kept(tmp_path):
    locks = _lock(tmp_path)
    stand_in = tmp_path / "snakemake"  # a process whose command runs `snakemake`, working in tmp_path
    stand_in.write_text("import time\ntime.sleep(60)\n")
    running = subprocess.Popen([sys.executable, str(stand_in)], cwd=tmp_path)
    try:
        for _ in range(100):  # until the new process shows its command (before, it is a copy of this one)
            if snakemake_running_in(tmp_path):
                break
            time.sleep(0.05)
        said = recover(tmp_path)
    finally:
        running.kill()
        running.wait()
    assert said == [f"Snakemake is running in this directory (process {running.pid}); its lock is kept."]
    assert (locks / "0.input.lock").exists()


def test_unfinished_outputs_are_read_from_snakemakes_markers(tmp_path):
    markers = tmp_path / ".snakemake" / "incomplete"
    markers.mkdir(parents=True)
    short = "results/demo/models/baldwin/fit.json"
    (markers / urlsafe_b64encode(short.encode()).decode()).write_text("{}")
    long = "results/demo/models/" + "x" * 300 + "/fit.json"  # a name over 255 bytes is split into @-folders
    encoded = urlsafe_b64encode(long.encode()).decode()
    (markers / ("@" + encoded[:254])).mkdir()
    (markers / ("@" + encoded[:254]) / encoded[254:]).write_text("{}")
    assert unfinished_outputs(tmp_path) == sorted([short, long])
    said = recover(tmp_path)
    assert said == [
        f"Recovering an interrupted run: 2 unfinished file(s) in results/demo/models/baldwin, "
        f"results/demo/models/{'x' * 300} are made again."
    ]


@pytest.mark.slow  # reads the shared `make run` (conftest.made_run): test-slow and CI
@pytest.mark.e2e
def test_make_run_prints_one_line_per_step_and_ends_with_the_report(made_run):
    assert made_run.returncode == 0, made_run.console[-4000:]
    lines = made_run.console.splitlines()
    steps = [STEP_LINE.match(line) for line in lines if STEP_LINE.match(line)]
    total = int(steps[0].group(2))
    assert [int(m.group(1)) for m in steps] == list(range(1, total + 1))
    assert f"{total} steps to run" in lines
    assert lines[-1] == "Report: reports/small/report.html" + (
        " and reports/small/report.pdf" if (made_run.directory / "reports/small/report.pdf").exists() else ""
    )
    assert not any(line.startswith(("rule ", "localrule ", "    input:", "Select jobs")) for line in lines)
    # what is not a step: make's command line, the profile's note, the count, warnings, the report
    # (counted from make's snakemake call on: a checkout whose .venv is older than its requirements
    # first prints pip's set-up lines, which are make's, not the workflow's)
    start = next(i for i, line in enumerate(lines) if "bin/snakemake " in line)
    others = [line for line in lines[start:] if not STEP_LINE.match(line) and not line.startswith("WARNING [")]
    assert len(others) <= 8, others
    # the demo: its steps (a dry run counts them) and the same few other lines stay under 100
    dry = subprocess.run(
        [
            str(SNAKEMAKE),
            "-n",
            "--forceall",  # every step of the demo, also in a checkout where it has already run
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(ROOT),
            "--cores",
            "1",
            "--quiet",
            "rules",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    demo_steps = int(re.search(r"^total\s+(\d+)$", dry.stdout + dry.stderr, re.M).group(1))
    warnings = sum(line.startswith("WARNING [") for line in lines)
    assert demo_steps + len(others) + 2 * warnings < 100, (demo_steps, len(others), warnings)


@pytest.mark.slow
@pytest.mark.e2e
def test_an_interrupted_run_recovers_on_the_next_make_run(small_trial, tmp_path):
    workdir, config = small_trial
    config = yaml.safe_load(yaml.safe_dump(config))
    for model in config["models"]:  # one model: a short run to interrupt
        model["enabled"] = model["name"] == "same_session"
    directory = checkout(tmp_path / "checkout", config, data=workdir / "data" / "raw")
    # clean_data is the one step every other waits for: after it, once a job is running
    shown = interrupt_make(directory, "run", after_line="] clean_data")
    assert "Report:" not in shown, shown[-3000:]
    assert unfinished_outputs(directory), "the interrupted run left no unfinished file:\n" + shown[-3000:]
    # a hard kill (the terminal closed) leaves the lock too
    (directory / ".snakemake" / "locks").mkdir(exist_ok=True)
    (directory / ".snakemake" / "locks" / "0.output.lock").write_text("results/small/clean/analysis.parquet\n")
    again = make(directory, "run")
    assert again.returncode == 0, again.stdout[-4000:]
    lines = again.stdout.splitlines()
    assert "Recovering an interrupted run: removed the lock it left (no Snakemake is running here)." in lines
    assert any(line.startswith("Recovering an interrupted run: ") and "are made again" in line for line in lines)
    assert lines[-1].startswith("Report: reports/small/report.html")
    assert unfinished_outputs(directory) == []
