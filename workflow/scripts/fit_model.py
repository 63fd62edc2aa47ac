"""Snakemake step (rule fit_model): fit one model of the suite, write its tables."""

import logging

from alliance import step

# before the engine loads: mixedlm's Rust thread pool gets the job's threads (step.hold_threads)
snakemake = step.start(globals())

from alliance.models.data import load_model_tables
from alliance.models.suite import fit_model
from alliance.outputs import write_csv, write_json, write_parquet

inp, out, params = snakemake.input, snakemake.output, snakemake.params
# only the columns the model uses (a patient-level model: the patients table alone)
analysis, patients = load_model_tables(params.model, inp.analysis, inp.patients)
tables = fit_model(
    params.model,
    analysis,
    patients,
    params.context,
    engine=params.engine,
    cross_check=params.cross_check or None,
)
for key in ("fixed", "variance", "random_effects", "contrasts", "effects", "fit_statistics", "singular_fit"):
    write_csv(tables[key], getattr(out, key))
write_parquet(tables["residuals"], out.residuals)
write_json(tables["fit"], out.fit)
fit = tables["fit"]
logging.info("model %s: %d rows, flags %s", params.model["name"], fit["sample"]["n_obs"], fit["flags"])
