"""Snakemake step (rule plot_alliance_forest): the alliance effect as r against the benchmark."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

import pandas as pd  # noqa: E402

from alliance.report.figures import BENCHMARK, alliance_forest, save  # noqa: E402

effects = pd.read_csv(snakemake.input.effects)  # noqa: F821
benchmark = {**BENCHMARK, **snakemake.params.benchmark}  # noqa: F821
save(alliance_forest(effects, benchmark), snakemake.output.png, snakemake.output.svg)  # noqa: F821
