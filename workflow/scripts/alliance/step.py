"""What every step script does first: get its job, send its output to the job's log, hold its threads.

A step script (``workflow/scripts/<step>.py``) begins with::

    from alliance import step

    snakemake = step.start(globals())

Under Snakemake, ``globals()`` holds the ``snakemake`` object Snakemake put there, and ``start`` returns
it after the set-up below. Run by hand, for debugging, the same script builds its job from the real
workflow on a given config (the ``mock_snakemake`` pattern of pypsa-eur, here on Snakemake 9's API) in
the current directory, and runs it::

    .venv/bin/python workflow/scripts/fit_model.py --configfile config/config.yaml model=same_session

The job's inputs must exist (a previous run made them); its outputs and log are written where the
pipeline writes them, and its log lines are also printed.

The set-up, the same for every step:

* the job's stderr goes to its log (``logs/<dataset>/<rule>.log``): tracebacks, library output;
* ``logging`` writes INFO and above to the log, and Python warnings are logged (``captureWarnings``);
  warnings and errors are also printed on the researcher's terminal, in full, named by the job;
* the job's thread pools get the job's ``threads``: Snakemake sets OpenMP/BLAS for a job but not
  ``RAYON_NUM_THREADS``, the Rust thread pool of the mixedlm engine, so that two jobs side by side
  do not oversubscribe the cores and a fit's reductions always run in one order.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

# workflow/scripts/alliance/step.py -> the repository, whose Snakefile a hand-run step reads
ROOT = Path(__file__).resolve().parents[3]
SNAKEFILE = ROOT / "Snakefile"
LOG_FORMAT = "%(levelname)s %(message)s"
# what Snakemake sets to a job's threads (snakemake.shell), and mixedlm's pool, which it does not
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "RAYON_NUM_THREADS",
)


class LineFormatter(logging.Formatter):
    """A log record as lines without a trailing blank one (a logged warning ends in a newline)."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).rstrip("\n")


class StepError(RuntimeError):
    """A step run by hand cannot be built: unknown rule, missing wildcard or missing input."""


def start(namespace: dict[str, Any]) -> Any:
    """The job's ``snakemake`` object, after the set-up every step shares (see the module docstring).

    ``namespace`` is the step script's ``globals()``: under Snakemake it holds ``snakemake``; run by
    hand it does not, and the job is built from ``sys.argv`` and the workflow (:func:`job_from_argv`).
    """
    snakemake = namespace.get("snakemake")
    by_hand = snakemake is None
    if by_hand:
        snakemake = job_from_argv(Path(namespace["__file__"]), sys.argv[1:])
    hold_threads(snakemake.threads)
    send_output_to_log(snakemake.log[0], job_label(snakemake.rule, dict(snakemake.wildcards.items())), by_hand=by_hand)
    return snakemake


def hold_threads(threads: int) -> None:
    """Give every thread pool of the job ``threads`` threads, unless the caller already chose."""
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))


def job_label(rule: str, wildcards: dict[str, Any] | None) -> str:
    """A job as the console names it (here and in :mod:`alliance.console`).

    >>> job_label("fit_model", {"model": "same_session"})
    'fit_model model=same_session'
    >>> job_label("clean_data", {})
    'clean_data'
    """
    pairs = " ".join(f"{key}={value}" for key, value in (wildcards or {}).items())
    return f"{rule} {pairs}".strip()


def send_output_to_log(log: str, label: str, by_hand: bool = False) -> None:
    """The job's stderr and ``logging`` to ``log``; warnings and errors to the terminal as well.

    Run by hand, stderr stays on the terminal and every log line is printed too.
    """
    terminal = sys.stderr
    if not by_hand:
        sys.stderr = open(log, "w", buffering=1)  # open for the life of the job
    to_log = logging.StreamHandler(sys.stderr) if not by_hand else logging.FileHandler(log, mode="w")
    to_log.setFormatter(LineFormatter(LOG_FORMAT))
    to_terminal = logging.StreamHandler(terminal)
    to_terminal.setLevel(logging.INFO if by_hand else logging.WARNING)
    to_terminal.setFormatter(LineFormatter(f"%(levelname)s [{label}] %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[to_log, to_terminal], force=True)
    logging.captureWarnings(True)


def job_from_argv(script: Path, argv: list[str]) -> Any:
    """Build the job of the rule that runs ``script`` from command-line arguments (a step run by hand).

    ``argv``: ``[--configfile FILE]... [--rule NAME] [--cores N] [wildcard=value ...]``; ``--rule`` is
    needed only when several rules run the script (plot_trajectories.py).
    """
    parser = argparse.ArgumentParser(
        prog=script.name, description=f"Run the step {script.name} outside Snakemake, for debugging."
    )
    # one file per --configfile (repeat it for several): a wildcard after it is not read as a config
    parser.add_argument("--configfile", action="append", default=[], help="a config file, as for snakemake")
    parser.add_argument("--rule", help="the rule, when several rules run this script")
    parser.add_argument("--cores", type=int, default=1, help="cores the job may use (default 1)")
    parser.add_argument("wildcards", nargs="*", metavar="name=value", help="the job's wildcards")
    args = parser.parse_args(argv)
    wildcards = dict(pair.split("=", 1) for pair in args.wildcards)
    hold_threads(args.cores)  # before the workflow is read: reading it loads numpy, whose BLAS reads them once
    try:
        return mock_snakemake(script, args.configfile, wildcards, rule=args.rule, cores=args.cores)
    except StepError as error:
        parser.error(str(error))  # the usage and the reason, without a traceback


def read_workflow(configfiles: list[str], cores: int = 1) -> Any:
    """The workflow (the repository's Snakefile), parsed in the current directory as ``snakemake`` would.

    ``configfiles`` as ``--configfile`` gives them (none: the demo config). Snakemake's own console
    is silenced; the workflow's messages (a skipped PDF) still print.
    """
    import snakemake.api  # noqa: F401 (loads Snakemake's modules in the order they import each other)
    from snakemake.logging import LoggerManager, logger
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        DeploymentSettings,
        OutputSettings,
        ResourceSettings,
        StorageSettings,
        WorkflowSettings,
    )
    from snakemake.workflow import Workflow

    output_settings = OutputSettings(quiet={Quietness.ALL})
    workflow = Workflow(
        config_settings=ConfigSettings(configfiles=[Path(f) for f in configfiles]),
        resource_settings=ResourceSettings(cores=cores),
        workflow_settings=WorkflowSettings(),
        logger_manager=LoggerManager(logger, output_settings),
        storage_settings=StorageSettings(),
        dag_settings=DAGSettings(),
        deployment_settings=DeploymentSettings(),
        output_settings=output_settings,
    )
    workflow.include(str(SNAKEFILE), overwrite_default_target=True)
    workflow.check()
    return workflow


def mock_snakemake(
    script: Path,
    configfiles: list[str],
    wildcards: dict[str, str],
    rule: str | None = None,
    cores: int = 1,
) -> Any:
    """The ``snakemake`` object of the job that runs ``script``, built from the workflow itself.

    The workflow is parsed in the current directory (:func:`read_workflow`); the job's input,
    output, params, threads, resources and log are then the pipeline's own. Output and log
    directories are made; a missing input or a wildcard value that is no job of the config stops
    with a :class:`StepError` that says so.
    """
    workflow = read_workflow(configfiles, cores)  # first: it loads Snakemake's modules in their order
    import snakemake.io
    from snakemake.dag import DAG
    from snakemake.iocontainers import Snakemake
    from snakemake.jobs import Job

    chosen = rule_of_script(workflow, script, rule)
    missing = sorted(set(chosen.wildcard_names) - set(wildcards))
    if missing:
        raise StepError(f"rule {chosen.name} needs the wildcard(s) {', '.join(missing)}, e.g. {missing[0]}=<value>")
    pattern = chosen.output[0]  # with the workflow's wildcard constraints (the config's models, strata)
    if chosen.wildcard_names and not pattern.match(pattern.apply_wildcards(wildcards)):
        raise StepError(
            f"rule {chosen.name}: {' '.join(f'{k}={v}' for k, v in wildcards.items())} is not a job of "
            f"this config (its outputs: {pattern})"
        )
    # the cache of file sizes and times that Workflow.execute sets up: a resource computed from the
    # inputs' sizes (clean_data's mem_mb) reads it
    workflow.iocache = snakemake.io.IOCache(workflow.dag_settings.max_inventory_wait_time)
    job = Job(chosen, DAG(workflow, rules=[chosen]), wildcards_dict=wildcards)
    absent = [str(f) for f in job.input if not Path(f).exists()]
    if absent:
        raise StepError(f"rule {chosen.name}: input {absent[0]} does not exist; run the pipeline up to it first")
    for path in [*job.output, *job.log]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return Snakemake(
        job.input,
        job.output,
        job.params,
        job.wildcards,
        job.threads,
        job.resources,
        job.log,
        workflow.config,
        chosen.name,
        None,
        str(script.resolve().parent),
    )


def rule_of_script(workflow: Any, script: Path, rule: str | None = None) -> Any:
    """The rule of ``workflow`` that runs ``script`` (or the one named ``rule`` among several)."""
    script = script.resolve()
    rules = [
        r
        for r in workflow.rules
        if r.script and Path(r.basedir.join(r.script).get_path_or_uri(True)).resolve() == script
    ]
    names = sorted(r.name for r in rules)
    if rule is not None:
        if rule not in names:
            raise StepError(f"rule {rule} does not run {script.name}; the rules that do: {', '.join(names) or 'none'}")
        return workflow.get_rule(rule)
    if len(rules) != 1:
        raise StepError(
            f"{script.name} is run by {len(rules)} rules ({', '.join(names) or 'none'}); name one with --rule"
        )
    return rules[0]
