"""Snakemake step (rule plot_alliance_forest): the alliance effect as r against the benchmark."""

from alliance import step

snakemake = step.start(globals())

import pandas as pd

from alliance.report.figures import alliance_forest, save

effects = pd.read_csv(snakemake.input.effects)
benchmark = snakemake.params.benchmark  # (config report.benchmark, with the schema's defaults)
save(alliance_forest(effects, benchmark), snakemake.output.png, snakemake.output.svg)
