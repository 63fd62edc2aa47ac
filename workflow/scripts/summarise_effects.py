"""Snakemake step (rule summarise_effects): the forest-plot and meta-analysis effect-size tables."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from alliance.outputs import write_csv  # noqa: E402
from alliance.models.suite import summarise_effects  # noqa: E402

inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821


def read(path):
    return pd.read_csv(path, dtype={"level": str, "flags": str})


def model_of(path, depth):
    return Path(path).parents[depth].name


model_tables = {}
for path in inp.effects:
    model_tables.setdefault(model_of(path, 0), {})["effects"] = read(path)
for path in inp.contrasts:
    model_tables.setdefault(model_of(path, 0), {})["contrasts"] = read(path)
stratum_tables = {}
for path in inp.strata:  # results/<ds>/models/<model>/strata/<stratum>/effects.csv
    stratum_tables.setdefault(model_of(path, 2), {})[model_of(path, 0)] = {"effects": read(path)}
tables = summarise_effects(params.models, model_tables, stratum_tables, params.context)
write_csv(tables["alliance_effects"], out.alliance_effects)
write_csv(tables["effect_sizes"], out.effect_sizes)
logging.info("%d forest rows, %d effect sizes", len(tables["alliance_effects"]), len(tables["effect_sizes"]))
