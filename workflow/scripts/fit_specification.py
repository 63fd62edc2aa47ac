"""Snakemake step (rule fit_specification): one specification of the multiverse, in every study and pooled."""

from alliance import step

snakemake = step.start(globals())

import logging

import pandas as pd

from alliance.outputs import write_csv
from alliance.pooling.multiverse import specification_table

inp, out, params = snakemake.input, snakemake.output, snakemake.params
studies = {
    name: (pd.read_parquet(sessions), pd.read_parquet(patients))
    for name, sessions, patients in zip(params.studies, inp.sessions, inp.patients)
}
table = specification_table(
    dict(params.choices),
    studies,
    waves=params.waves,
    winsor_sd=params.winsor_sd,
    engine=params.engine,
    level=params.level,
    outcome_scale=params.outcome_scale,
)
write_csv(table, out.estimates)
pooled = table[table["study"] == "pooled"].iloc[0]
logging.info(
    "%s: pooled %.4g [%.4g, %.4g], flags %s",
    params.specification,
    pooled["estimate"],
    pooled["ci_low"],
    pooled["ci_high"],
    pooled["flags"],
)
