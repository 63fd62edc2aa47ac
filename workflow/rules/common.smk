# Paths and helpers shared by the rules. Config was validated in the Snakefile.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))

from alliance.config import check_config  # noqa: E402

check_config(config)

DATASET = config["dataset"]["name"]
RESULTS = f"results/{DATASET}"
LOGS = f"logs/{DATASET}"
REPORT_HTML = "reports/report.html"
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
