"""Snakemake step (rule fit_study_model): one model of pooling.effects in one study (stage one)."""

from alliance import step

snakemake = step.start(globals())

import logging

import pandas as pd

from alliance.outputs import write_csv
from alliance.pooling.study_fits import study_rows

inp, out, params = snakemake.input, snakemake.output, snakemake.params
rows = study_rows(  # a study the model cannot be fitted in: its row says why (flag fit_failed)
    dict(params.choices),
    pd.read_parquet(inp.sessions),
    pd.read_parquet(inp.patients),
    study=params.study,
    waves=params.waves,
    winsor_sd=params.winsor_sd,
    engine=params.engine,
    singular_fits=params.singular_fits,
)
write_csv(rows, out.estimates)
logging.info("study %s: %s", params.study, rows[["effect", "estimate", "se", "flags"]].to_dict(orient="records"))
