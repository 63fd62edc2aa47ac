# Paths and helpers shared by the rules. Config was validated in the Snakefile.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))

from alliance.intake.config import check_config  # noqa: E402
from alliance.report.core import BrowserNotFound, find_browser  # noqa: E402

check_config(config)

DATASET = config["dataset"]["name"]
RESULTS = f"results/{DATASET}"
LOGS = f"logs/{DATASET}"
# one report directory per dataset, so that a second config never overwrites (or passes off) the first's
REPORTS = f"reports/{DATASET}"
REPORT_HTML = f"{REPORTS}/report.html"
MODELS = {m["name"]: m for m in config["models"] if m.get("enabled", True)}
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


def model_results(kind):
    """One result file of every enabled model."""
    return expand(f"{RESULTS}/models/{{model}}/{kind}", model=sorted(MODELS))


def primary_model_fixed(wildcards):
    """Fixed effects of the primary model, if one is enabled (else the figure has no line)."""
    if PRIMARY_MODEL is None:
        return []
    return f"{RESULTS}/models/{PRIMARY_MODEL}/fixed_effects.csv"


# --- figures and report: files of the model and effects stages join the report once a rule
# declares them (random_effects.csv, residuals.parquet, effects/alliance_effects.csv)
def declared(suffix):
    """True if some rule of the workflow declares an output ending in ``suffix``."""
    from snakemake.io import strip_wildcard_constraints as plain

    return any(plain(str(f)).endswith(suffix) for r in workflow.rules for f in r.output)


def model_file(name, model=None):
    """Input function: results/<ds>/models/<model>/<name> if a rule writes it, else nothing."""
    return lambda wc: (
        f"{RESULTS}/models/{model or wc.model}/{name}"
        if declared(f"{{model}}/{name}")
        else []
    )


def report_inputs(wildcards):
    """The report's inputs (REPORT_INPUTS) and the optional files that are declared."""
    files = dict(REPORT_INPUTS)
    if declared("effects/alliance_effects.csv"):
        files["effects"] = f"{RESULTS}/effects/alliance_effects.csv"
        files["fig_alliance_forest"] = f"{RESULTS}/figures/alliance_forest.png"
    if declared("effects/effect_sizes.csv"):
        files["effect_sizes"] = f"{RESULTS}/effects/effect_sizes.csv"
    if THERAPIST_MODEL and declared("{model}/random_effects.csv"):
        files["fig_therapist_effects"] = f"{RESULTS}/figures/therapist_effects.png"
    if declared("{model}/residuals.parquet"):
        for model in sorted(MODELS):
            files[f"fig_diagnostics_{model}"] = (
                f"{RESULTS}/figures/diagnostics_{model}.png"
            )
    return files


def _pdf_browser():
    """Chromium/Chrome for the PDF report, or None (then only the HTML report is made)."""
    try:
        return find_browser()
    except BrowserNotFound as error:
        print(
            f"Note: reports/{DATASET}/report.pdf is skipped. {error}", file=sys.stderr
        )
        return None


PDF_BROWSER = _pdf_browser()
