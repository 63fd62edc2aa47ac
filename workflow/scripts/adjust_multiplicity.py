"""Snakemake step (rule adjust_multiplicity): Holm and Benjamini-Hochberg p of the suite's focal terms."""

import logging

from alliance import step

snakemake = step.start(globals())

from alliance.models.multiplicity import multiplicity_table, read_fixed_tables
from alliance.outputs import write_csv

inp, out, params = snakemake.input, snakemake.output, snakemake.params
# results/<ds>/models/<model>/fixed_effects.csv and .../strata/<stratum>/fixed_effects.csv
fixed_tables, stratum_tables = read_fixed_tables(inp.fixed, inp.strata)
table = multiplicity_table(params.models, fixed_tables, stratum_tables)
write_csv(table, out.multiplicity)
logging.info("%d tests in %d families", len(table), table["family"].nunique())
