"""Snakemake step (rule plot_within_between): the within/between association figure."""

from alliance import step

snakemake = step.start(globals())

import pandas as pd

from alliance.outputs import read_columns
from alliance.report.figures import WITHIN_BETWEEN_COLUMNS, save, within_between

data = read_columns(snakemake.input.analysis, WITHIN_BETWEEN_COLUMNS)
within_slope = None
if snakemake.input.fixed:
    fixed = pd.read_csv(snakemake.input.fixed)
    within_slope = float(fixed.set_index("term").loc["alliance_within_patient", "estimate"])
figure = within_between(data, within_slope=within_slope, seed=snakemake.params.seed)
save(figure, snakemake.output.png, snakemake.output.svg)
