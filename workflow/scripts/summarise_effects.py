"""Snakemake step (rule summarise_effects): the forest-plot and meta-analysis effect-size tables."""

import logging

from alliance import step

snakemake = step.start(globals())

from alliance.models.summary import read_effect_tables, summarise_effects
from alliance.outputs import write_csv

inp, out, params = snakemake.input, snakemake.output, snakemake.params
# results/<ds>/models/<model>/{effects,contrasts}.csv and .../strata/<stratum>/effects.csv
model_tables, stratum_tables = read_effect_tables(inp.effects, inp.contrasts, inp.strata)
tables = summarise_effects(params.models, model_tables, stratum_tables, params.context)
write_csv(tables["alliance_effects"], out.alliance_effects)
write_csv(tables["effect_sizes"], out.effect_sizes)
logging.info("%d forest rows, %d effect sizes", len(tables["alliance_effects"]), len(tables["effect_sizes"]))
