"""Snakemake step (rule plot_within_between): the within/between association figure."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

import pandas as pd  # noqa: E402

from alliance.report.figures import WITHIN_BETWEEN_COLUMNS, save, within_between  # noqa: E402
from alliance.outputs import read_columns  # noqa: E402

data = read_columns(snakemake.input.analysis, WITHIN_BETWEEN_COLUMNS)  # noqa: F821
within_slope = None
if snakemake.input.fixed:  # noqa: F821
    fixed = pd.read_csv(snakemake.input.fixed)  # noqa: F821
    within_slope = float(fixed.set_index("term").loc["alliance_within_patient", "estimate"])
figure = within_between(data, within_slope=within_slope, seed=snakemake.params.seed)  # noqa: F821
save(figure, snakemake.output.png, snakemake.output.svg)  # noqa: F821
