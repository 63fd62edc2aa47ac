# Paths and helpers of a run that pools several studies (a config with `studies`, validated by
# schemas/pooling.schema.yaml in workflow/Snakefile); the rules are in rules/pooling.smk.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

WORKFLOW_DIR = Path(workflow.current_basedir.get_path_or_uri(secret_free=True)).parent
sys.path.insert(0, str(WORKFLOW_DIR / "scripts"))

from alliance.intake.config import ConfigError  # noqa: E402
from alliance.intake.resources import intake_mem_mb  # noqa: E402
from alliance.intake.readers import not_a_data_file  # noqa: E402
from alliance.pooling.config import (  # noqa: E402
    check_pooling_config,
    multiverse_specifications,
    pooled_effect_names,
    study_configs,
    study_raw_inputs,
    window,
)
from alliance.pooling.specifications import (
    DIMENSIONS,
    effect_specification,
)  # noqa: E402
from alliance.report.pdf import browser_or_none  # noqa: E402

try:
    check_pooling_config(config)
except ConfigError as error:
    raise WorkflowError(f"config: {error}") from None

POOL = config["pooling"]["name"]
RESULTS = f"results/{POOL}"
LOGS = f"logs/{POOL}"
BENCHMARKS = f"benchmarks/{POOL}"
REPORTS = f"reports/{POOL}"
REPORT_HTML = f"{REPORTS}/report.html"
REPORT_PDF = f"{REPORTS}/report.pdf"
STUDIES = study_configs(config)
# the models fitted in every study (pooling.effects) and the pooled effects they give
STUDY_MODELS = list(config["pooling"]["effects"])
POOLED = pooled_effect_names(config)
SPECIFICATIONS = multiverse_specifications(config)
FIRST_SESSION, LAST_SESSION = window(config)
WINSOR_SD = (config.get("multiverse") or {}).get("winsor_sd", 2)
TRUTH = config["pooling"].get("truth")


wildcard_constraints:
    study="|".join(STUDIES),
    model="|".join(STUDY_MODELS),
    effect="|".join(POOLED),
    specification="[a-z0-9_-]+",


for _name, _study in STUDIES.items():
    for _path in study_raw_inputs(_study).values():
        if Path(_path).exists() and (_why := not_a_data_file(_path)) is not None:
            raise WorkflowError(f"studies.{_name}: {_path}: {_why}.")


def study_file(kind):
    """One file of every study: results/<pool>/studies/<study>/<kind>."""
    return expand(f"{RESULTS}/studies/{{study}}/{kind}", study=list(STUDIES))


# Chromium/Chrome for the PDF report, or None (then only the HTML report is made)
PDF_BROWSER = browser_or_none(REPORT_PDF)


def finished_message():
    """The console's last line after a successful run."""
    targets = {job.rule.name for job in workflow.dag.targetjobs}
    if targets & {"all", "default"}:
        made = [REPORT_HTML] + ([REPORT_PDF] if PDF_BROWSER else [])
        return f"Report: {' and '.join(made)}"
    if "clean_all" in targets:
        return f"Intake done: read {RESULTS}/studies/<study>/clean/validation_report.csv of each study."
    return "Done."
