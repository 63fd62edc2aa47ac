"""Snakemake step (rule variance_ci): parametric-bootstrap CIs of the model's variance components and ICCs."""

import logging

from alliance import step

snakemake = step.start(globals())

from alliance.models.data import load_model_tables
from alliance.models.variance_ci import variance_ci_table
from alliance.outputs import write_csv

inp, out, params = snakemake.input, snakemake.output, snakemake.params
analysis, patients = load_model_tables(params.model, inp.analysis, inp.patients)
table = variance_ci_table(
    params.model,
    analysis,
    patients,
    replicates=params.settings["replicates"],
    seed=params.seed,
    engine=params.engine,
)
write_csv(table, out.variance_ci)
logging.info(
    "model %s: %d bootstrap replicates fitted, %d failed",
    params.model["name"],
    int(table["replicates"].iloc[0]),
    int(table["replicates_failed"].iloc[0]),
)
