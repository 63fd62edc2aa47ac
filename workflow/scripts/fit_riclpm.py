"""Snakemake step (rule fit_riclpm): fit one RI-CLPM of the suite (both path settings), write its tables."""

import logging

from alliance import step

snakemake = step.start(globals())

from alliance.models.data import riclpm_columns
from alliance.models.riclpm_suite import RICLPM_TABLES, fit_riclpm_model
from alliance.outputs import read_columns, write_csv, write_json

inp, out, params = snakemake.input, snakemake.output, snakemake.params
# only the identifiers, the two variables and the cluster column
analysis = read_columns(inp.analysis, riclpm_columns(params.model))
tables = fit_riclpm_model(params.model, analysis)
for key in RICLPM_TABLES:
    write_csv(tables[key], getattr(out, key))
write_json(tables["fit"], out.fit)
fit = tables["fit"]
logging.info(
    "RI-CLPM %s: %d waves, %d patients, flags %s",
    params.model["name"],
    fit["sample"]["waves"],
    fit["fits"][fit["paths"]]["n_patients"],
    fit["flags"] or "none",
)
