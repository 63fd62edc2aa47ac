"""Snakemake step (rule summarise_multiverse): the specification curve's table, its summary and the choices."""

from alliance import step

snakemake = step.start(globals())

import pandas as pd

from alliance.outputs import write_csv
from alliance.pooling.multiverse import summarise

inp, out, params = snakemake.input, snakemake.output, snakemake.params
tables = summarise(
    pd.concat([pd.read_csv(p, keep_default_na=False, na_values=[""]) for p in inp.specifications], ignore_index=True),
    list(params.dimensions),
)
for key in ("curve", "summary", "choices"):
    write_csv(tables[key], getattr(out, key))
