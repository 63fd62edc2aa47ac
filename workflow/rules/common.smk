# Paths and helpers shared by the rules. Config was validated in workflow/Snakefile.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# workflow/ (this file is workflow/rules/common.smk), whether Snakemake was given the root Snakefile
# or workflow/Snakefile; read while this file is parsed, so it does not depend on workflow.basedir
WORKFLOW_DIR = Path(workflow.current_basedir.get_path_or_uri(secret_free=True)).parent
sys.path.insert(0, str(WORKFLOW_DIR / "scripts"))

from alliance.intake.config import check_config  # noqa: E402
from alliance.intake.resources import intake_mem_mb  # noqa: E402
from alliance.report.pdf import browser_or_none  # noqa: E402

check_config(config)

DATASET = config["dataset"]["name"]
RESULTS = f"results/{DATASET}"
LOGS = f"logs/{DATASET}"
# one time and memory record per job (Snakemake's benchmark: files). Each rule's resources come
# from them: mem_mb is 1.25 x the largest of the step's max_rss on the demo and on 1.17M session
# rows (config/scale.yaml, 2 cores, 1 Dec 2026) and the peak sampled in docs/engines.md, rounded
# up to 100 MB; runtime (minutes) is at least 3 x its slowest time at 1.17M rows on 2 busy cores
BENCHMARKS = f"benchmarks/{DATASET}"
# one report directory per dataset, so that a second config never overwrites (or passes off) the first's
REPORTS = f"reports/{DATASET}"
REPORT_HTML = f"{REPORTS}/report.html"
# the mixed-effects models (fit_model, summarise_effects, the report); an RI-CLPM (type: riclpm) is
# fitted by rules/dynamics.smk
MODELS = {
    m["name"]: m
    for m in config["models"]
    if m.get("enabled", True) and m.get("type") != "riclpm"
}
from alliance.models.design import models_for_design, skipped_models  # noqa: E402

# a design without therapists (no dataset.columns.therapist): a model fitted without its therapist level
# (without_therapists: drop_level) as fitted; SKIPPED_MODELS (name -> why) are reported as not fitted
MODELS = models_for_design(MODELS, config)
SKIPPED_MODELS = skipped_models(config)
# the model whose within-patient alliance slope the association figure draws
PRIMARY_MODEL = next(
    (n for n, m in MODELS.items() if "alliance_within_patient" in m.get("fixed", [])),
    None,
)


wildcard_constraints:
    model="|".join(MODELS) or "NO_MODEL",


def raw_inputs():
    """The lab's raw files (never written to)."""
    files = {"sessions": config["dataset"]["sessions"]["path"]}
    if config["dataset"].get("patients"):
        files["patients"] = config["dataset"]["patients"]["path"]
    return files


from alliance.intake.readers import not_a_data_file  # noqa: E402

# a data path that is no regular file (/dev/zero, a pipe, a directory) stops the run as it loads
for _path in raw_inputs().values():
    if Path(_path).exists() and (_why := not_a_data_file(_path)) is not None:
        raise WorkflowError(f"{_path}: {_why}.")


def model_results(kind):
    """One result file of every enabled model."""
    return expand(f"{RESULTS}/models/{{model}}/{kind}", model=sorted(MODELS))


def primary_model_fixed(wildcards):
    """Fixed effects of the primary model, if one is enabled (else the figure has no line)."""
    if PRIMARY_MODEL is None:
        return []
    return f"{RESULTS}/models/{PRIMARY_MODEL}/fixed_effects.csv"


# Chromium/Chrome for the PDF report, or None (then only the HTML report is made)
PDF_BROWSER = browser_or_none(f"reports/{DATASET}/report.pdf")


def finished_message():
    """The console's last line after a successful run: where the report is (or the intake's check)."""
    targets = {job.rule.name for job in workflow.dag.targetjobs}
    if targets & {"all", "default"}:
        made = [REPORT_HTML] + ([REPORT_PDF] if PDF_BROWSER else [])
        return f"Report: {' and '.join(made)}"
    if "clean_all" in targets:
        return f"Intake done: read {RESULTS}/clean/validation_report.csv (every problem found, and what was done)."
    return "Done."


# --- the RI-CLPMs of the suite (rules/dynamics.smk) ------------------------------------------
from alliance.models.config import riclpm_models  # noqa: E402

# in a design without therapists an RI-CLPM clustered by therapist is skipped (the report says so)
# or, with without_therapists: drop_level, fitted with model-based SEs (alliance.models.design)
RICLPM_MODELS = models_for_design(
    riclpm_models(config["models"]), config, keep_skipped=False
)


def riclpm_results(kind):
    """One result file (parameters.csv, fit_indices.csv, long_run.csv, constraint_test.csv, fit.json) of every RI-CLPM."""
    return expand(f"{RESULTS}/models/{{riclpm}}/{kind}", riclpm=sorted(RICLPM_MODELS))
