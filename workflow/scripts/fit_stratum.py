"""Snakemake step (rule fit_stratum): fit a stratified model within one stratum, write its tables.

A stratum too small to fit, or whose fit fails, is written with flags, not raised."""

import logging
import os
import sys

# mixedlm's Rust thread pool gets the job's threads, as Snakemake does for BLAS/OpenMP (it does
# not set RAYON_NUM_THREADS): no oversubscription when jobs run side by side, one reduction order
os.environ.setdefault("RAYON_NUM_THREADS", str(snakemake.threads))  # noqa: F821

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
logging.captureWarnings(True)

from alliance.outputs import write_csv, write_json  # noqa: E402
from alliance.models.suite import fit_stratum, load_model_tables  # noqa: E402

inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
stratum = snakemake.wildcards.stratum  # noqa: F821
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
for key in ("fixed", "variance", "contrasts", "effects", "fit_statistics"):
    write_csv(tables[key], getattr(out, key))
write_json(tables["fit"], out.fit)
logging.info("model %s, stratum %s: flags %s", params.model["name"], stratum, tables["fit"]["flags"])
