"""Snakemake step (rule clean_data): the lab's files -> the analysis-ready dataset.

Writes only after ``clean_dataset`` returned, so a stopping problem leaves no
partial results; the problem goes to the log and to the console.
"""

import logging
import sys

console = sys.stderr
sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")

from alliance.intake.clean import clean_dataset  # noqa: E402
from alliance.intake.config import ConfigError  # noqa: E402
from alliance.intake.findings import InputError  # noqa: E402
from alliance.outputs import write_csv, write_json, write_parquet  # noqa: E402

try:
    result = clean_dataset(
        snakemake.params.dataset,  # noqa: F821
        snakemake.params.analysis,  # noqa: F821
        snakemake.params.cleaning,  # noqa: F821
        snakemake.params.instruments,  # noqa: F821
    )
except (InputError, ConfigError) as error:
    logging.error("%s", error)
    print(f"clean_data stopped; nothing was written.\n{error}", file=console)
    sys.exit(1)
out = snakemake.output  # noqa: F821
write_parquet(result.sessions, out.analysis)
write_parquet(result.patients, out.patients)
write_csv(result.dictionary, out.dictionary)
write_csv(result.findings, out.validation)
write_csv(result.flow, out.flow)
write_json(result.summary, out.summary)
logging.info("clean dataset: %d rows, %d findings", len(result.sessions), len(result.findings))
