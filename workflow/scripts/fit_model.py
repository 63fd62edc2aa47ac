"""Snakemake step (rule fit_model): fit one model of the suite, write its tables."""

import logging
import os
import sys

# mixedlm's Rust thread pool gets the job's threads, as Snakemake does for BLAS/OpenMP (it does
# not set RAYON_NUM_THREADS): no oversubscription when jobs run side by side, one reduction order
os.environ.setdefault("RAYON_NUM_THREADS", str(snakemake.threads))  # noqa: F821

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
logging.captureWarnings(True)

from alliance.outputs import write_csv, write_json, write_parquet  # noqa: E402
from alliance.models.suite import fit_model, load_model_tables  # noqa: E402

inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
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
for key in ("fixed", "variance", "random_effects", "contrasts", "effects", "fit_statistics"):
    write_csv(tables[key], getattr(out, key))
write_parquet(tables["residuals"], out.residuals)
write_json(tables["fit"], out.fit)
logging.info("model %s: %d rows, flags %s", params.model["name"], tables["fit"]["sample"]["n_obs"], tables["fit"]["flags"])
