"""Snakemake step (rule clean_data): the lab's files -> the analysis-ready dataset.

Writes only after ``clean_dataset`` returned, so a stopping problem leaves no
partial results; the problem goes to the log and to the console (``step``: errors are shown in full).
"""

import logging
import sys

from alliance import step

snakemake = step.start(globals())

from alliance.intake.clean import clean_dataset
from alliance.intake.config import ConfigError
from alliance.intake.findings import InputError
from alliance.outputs import write_csv, write_json, write_parquet

params, out = snakemake.params, snakemake.output
try:
    result = clean_dataset(params.dataset, params.analysis, params.cleaning, params.instruments)
except (InputError, ConfigError) as error:
    logging.error("stopped; nothing was written.\n%s", error)  # to the log and, in full, to the console
    sys.exit(1)
write_parquet(result.sessions, out.analysis)
write_parquet(result.patients, out.patients)
write_csv(result.dictionary, out.dictionary)
write_csv(result.findings, out.validation)
write_csv(result.flow, out.flow)
write_json(result.summary, out.summary)
write_csv(result.reliability, out.reliability)
write_csv(result.item_rest, out.item_rest)
logging.info("clean dataset: %d rows, %d findings", len(result.sessions), len(result.findings))
