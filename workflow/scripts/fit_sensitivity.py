"""Snakemake step (rule fit_sensitivity): the model's focal estimates under each sensitivity specification."""

import logging

from alliance import step

snakemake = step.start(globals())

from alliance.models.sensitivity import load_sensitivity_tables, sensitivity_table
from alliance.outputs import write_csv

inp, out, params = snakemake.input, snakemake.output, snakemake.params
analysis, patients = load_sensitivity_tables(params.model, inp.analysis, inp.patients)
table = sensitivity_table(
    params.model, analysis, patients, params.winsor_sd, engine=params.engine, singular_fits=params.singular_fits
)
write_csv(table, out.sensitivity)
logging.info("model %s: specifications %s", params.model["name"], ", ".join(dict.fromkeys(table["specification"])))
