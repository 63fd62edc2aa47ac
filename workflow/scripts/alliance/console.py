"""The terminal a researcher sees during ``make run``, and the recovery after an interrupted run.

Snakemake prints a block of ten lines or more for every job (one of them lists 60 inputs). ``make
run`` gives Snakemake this module's :class:`ConsoleHandler` instead (as the logger plugin
``alliance``, ``workflow/scripts/snakemake_logger_plugin_alliance/``), which prints:

* one line per finished step, with the progress count and the step's time;
* warnings and errors in full (a failed step: its log, whole);
* what Snakemake says that a researcher acts on ("Nothing to be done", an interrupted run), and
  nothing of its routine chatter, which stays in the full log under ``.snakemake/log/``.

The workflow's ``onsuccess`` handler then names the report's path, the last line of the run.

:func:`recover` runs before Snakemake (``make run``, ``make clean-data``): after an interrupted run
it removes the lock left in ``.snakemake/locks`` when no Snakemake is running in that directory,
and says which unfinished files the run makes again (the profile's ``rerun-incomplete``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from base64 import urlsafe_b64decode
from pathlib import Path

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent

from alliance.step import job_label

# INFO messages of Snakemake's that the console leaves to the full log (they begin so)
CHATTER = (
    "Building DAG of jobs",
    "Using shell:",
    "Provided cores:",
    "Rules claiming more threads",
    "Provided resources:",
    "Select jobs to execute",
    "Execute ",
    "Assuming unrestricted shared filesystem",
    "host:",
    "Conda environments: ignored",
    "Singularity containers: ignored",
    "Group jobs: inactive",
    "Shutting down, this might take some time",
)
# INFO messages shown only when the run failed: after a success the report's path is the last line
ON_FAILURE_ONLY = ("Complete log(s):", "Elapsed time:")
# events the console never prints (routine; the full log keeps them)
SILENT_EVENTS = {LogEvent.WORKFLOW_STARTED, LogEvent.JOB_STARTED, LogEvent.SHELLCMD, LogEvent.RESOURCES_INFO}
SILENT_EVENTS |= {LogEvent.RULEGRAPH, LogEvent.DEBUG_DAG, LogEvent.GROUP_INFO}


def seconds(duration: float) -> str:
    """A step's time for the console.

    >>> seconds(0.84), seconds(12.4), seconds(125.2)
    ('0.8 s', '12 s', '2 min 05 s')
    """
    if duration < 10:
        return f"{duration:.1f} s"
    if duration < 60:
        return f"{duration:.0f} s"
    minutes, rest = divmod(round(duration), 60)
    return f"{minutes} min {rest:02d} s"


class ConsoleLines:
    """Turns Snakemake's log records into the console's lines; keeps what a later record needs.

    A job's label and start time come with its JOB_INFO record, its end with JOB_FINISHED, and the
    count with the PROGRESS record that follows; a failed job's log is read when its JOB_ERROR comes.
    """

    def __init__(self, dryrun: bool = False) -> None:
        self.dryrun = dryrun
        self.started: dict[int, tuple[str, float]] = {}  # jobid -> (label, start time)
        self.finished: list[tuple[str, float]] = []  # (label, seconds) waiting for their count
        self.failed = False

    def lines(self, record: logging.LogRecord) -> list[str]:
        """What the console prints for ``record`` (often nothing)."""
        event = getattr(record, "event", None)
        if event in SILENT_EVENTS or record.levelno < logging.INFO:
            return []
        if event == LogEvent.JOB_INFO:
            label = job_label(record.rule_name, record.wildcards)
            self.started[record.jobid] = (label, record.created)
            return [f"would run: {label}"] if self.dryrun else []
        if event == LogEvent.JOB_FINISHED:
            label, start = self.started.pop(record.job_id, (f"job {record.job_id}", record.created))
            self.finished.append((label, record.created - start))
            return []
        if event == LogEvent.PROGRESS:
            width = len(str(record.total))
            done = [
                f"[{record.done:>{width}}/{record.total}] {label:<52} {seconds(took)}" for label, took in self.finished
            ]
            self.finished = []
            return done
        if event == LogEvent.RUN_INFO:
            total = getattr(record, "stats", {}).get("total")
            return [f"{total} steps to run" + (" (dry run)" if self.dryrun else "")] if total else []
        if event == LogEvent.JOB_ERROR:
            self.failed = True
            label, _ = self.started.get(record.jobid, (record.rule_name, record.created))
            return failed_job(label, record.log)
        return self.message(record)

    def message(self, record: logging.LogRecord) -> list[str]:
        """A record without a job: warnings and errors in full, Snakemake's chatter left out."""
        text = record.getMessage() if record.msg is not None else ""
        if not text:
            return []
        if record.levelno >= logging.ERROR:
            self.failed = True
            return [text]
        if record.levelno >= logging.WARNING:
            return [f"Warning: {text}"]
        if text.startswith(CHATTER) or (text.startswith(ON_FAILURE_ONLY) and not self.failed):
            return []
        return [text]


def failed_job(label: str, logs: list[str]) -> list[str]:
    """A failed job, in full: its name, its log's path and the whole log, indented."""
    lines = [f"FAILED {label}" + (f" (log: {', '.join(logs)})" if logs else "")]
    for log in logs:
        path = Path(log)
        if path.is_file():
            lines += [f"    {line}" for line in path.read_text(errors="replace").splitlines()]
    return lines


class ConsoleHandler(LogHandlerBase):
    """Snakemake's console during ``make run``: see the module docstring."""

    def __post_init__(self) -> None:
        self.stream = sys.stdout if self.common_settings.stdout else sys.stderr
        self.console = ConsoleLines(dryrun=self.common_settings.dryrun)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            for line in self.console.lines(record):
                self.stream.write(line + "\n")
            self.stream.flush()
        except Exception:
            self.handleError(record)

    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False


# --- after an interrupted run ---------------------------------------------------------------


def snakemake_running_in(workdir: Path) -> list[int]:
    """The process ids of Snakemake runs (other than this process) whose working directory is ``workdir``.

    A Snakemake run is a process whose command runs ``snakemake`` (``.venv/bin/snakemake``, or
    ``python -m snakemake``); Snakemake moves into its ``--directory`` before it locks, so the
    working directory is the directory of the lock.
    """
    import psutil

    workdir = workdir.resolve()
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "cwd"]):
        command, cwd = process.info["cmdline"] or [], process.info["cwd"]
        if process.info["pid"] == os.getpid() or not cwd or Path(cwd).resolve() != workdir:
            continue
        if any(Path(part).name == "snakemake" for part in command[:3]):
            found.append(process.info["pid"])
    return found


def unfinished_outputs(workdir: Path) -> list[str]:
    """The output files a run marked as being written and never finished (``.snakemake/incomplete``).

    Snakemake names each marker by the file's path in url-safe base64, a long one split into
    directories whose names begin with ``@``.
    """
    markers = workdir / ".snakemake" / "incomplete"
    if not markers.is_dir():
        return []
    paths = []
    for marker in sorted(p for p in markers.rglob("*") if p.is_file()):
        encoded = "".join(part.removeprefix("@") for part in marker.relative_to(markers).parts)
        try:
            paths.append(urlsafe_b64decode(encoded).decode())
        except ValueError:
            continue  # not one of Snakemake's markers
    return sorted(paths)


def recover(workdir: Path) -> list[str]:
    """Make ``workdir`` ready for the next run after an interruption; return what was done, in words.

    A lock (``.snakemake/locks``) is removed only when no Snakemake is running in ``workdir``: a
    running one keeps it, and the next run then stops with Snakemake's own LockException.
    """
    said = []
    locks = workdir / ".snakemake" / "locks"
    if locks.is_dir() and any(locks.iterdir()):
        running = snakemake_running_in(workdir)
        if running:
            said.append(
                f"Snakemake is running in this directory (process {', '.join(map(str, running))}); its lock is kept."
            )
        else:
            shutil.rmtree(locks)
            said.append("Recovering an interrupted run: removed the lock it left (no Snakemake is running here).")
    unfinished = unfinished_outputs(workdir)
    if unfinished:
        folders = sorted({str(Path(path).parent) for path in unfinished})
        shown = ", ".join(folders[:3]) + (", ..." if len(folders) > 3 else "")
        said.append(f"Recovering an interrupted run: {len(unfinished)} unfinished file(s) in {shown} are made again.")
    return said


def main(argv: list[str] | None = None) -> int:
    """``python -m alliance.console recover [DIR]``: :func:`recover` in DIR (default: here)."""
    parser = argparse.ArgumentParser(prog="python -m alliance.console", description="Console helpers of make run.")
    parser.add_argument("command", choices=["recover"])
    parser.add_argument("directory", nargs="?", default=".")
    args = parser.parse_args(argv)
    for line in recover(Path(args.directory)):
        print(line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
