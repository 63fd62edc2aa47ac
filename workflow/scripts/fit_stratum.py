"""Snakemake step (rule fit_stratum): fit a stratified model within one stratum, write its tables.

A stratum too small to fit, or whose fit fails, is written with flags, not raised."""

import logging

from alliance import step

# before the engine loads: mixedlm's Rust thread pool gets the job's threads (step.hold_threads)
snakemake = step.start(globals())

from alliance.models.data import load_model_tables
from alliance.models.suite import fit_stratum
from alliance.outputs import write_csv, write_json

inp, out, params = snakemake.input, snakemake.output, snakemake.params
stratum = snakemake.wildcards.stratum
# only the columns the model uses, with the strata.by columns the stratum filter needs
analysis, patients = load_model_tables(params.model, inp.analysis, inp.patients)
tables = fit_stratum(
    params.model,
    stratum,
    analysis,
    patients,
    params.context,
    engine=params.engine,
    cross_check=params.cross_check or None,
)
for key in ("fixed", "variance", "contrasts", "effects", "fit_statistics", "singular_fit"):
    write_csv(tables[key], getattr(out, key))
write_json(tables["fit"], out.fit)
logging.info("model %s, stratum %s: flags %s", params.model["name"], stratum, tables["fit"]["flags"])
