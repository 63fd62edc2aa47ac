"""Snakemake step (rule fit_model): fit one model of the suite, write its tidy tables."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")

import pandas as pd  # noqa: E402

from alliance.outputs import write_csv, write_json  # noqa: E402
from alliance.suite import fit_configured_model  # noqa: E402

data = pd.read_parquet(snakemake.input.analysis)  # noqa: F821
tables = fit_configured_model(snakemake.params.spec, data)  # noqa: F821
write_csv(tables["fixed"], snakemake.output.fixed)  # noqa: F821
write_csv(tables["variance"], snakemake.output.variance)  # noqa: F821
write_json(tables["fit"], snakemake.output.fit)  # noqa: F821
logging.info("model %s: flags %s", snakemake.wildcards.model, tables["fit"]["flags"])  # noqa: F821
