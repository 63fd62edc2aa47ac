"""Snakemake step (rule therapist_influence): the model refitted without each therapist in turn."""

import logging

from alliance import step

snakemake = step.start(globals())

from alliance.models.data import load_model_tables
from alliance.models.influence import therapist_influence
from alliance.outputs import write_csv

inp, out, params = snakemake.input, snakemake.output, snakemake.params
analysis, patients = load_model_tables(params.model, inp.analysis, inp.patients)
table = therapist_influence(params.model, analysis, patients, engine=params.engine, singular_fits=params.singular_fits)
write_csv(table, out.influence)
logging.info(
    "model %s: %d therapists left out in turn, %d influential (term, therapist) pairs",
    params.model["name"],
    table["therapist"].nunique(),
    int((table["influential"] == "yes").sum()),
)
