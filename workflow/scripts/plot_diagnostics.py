"""Snakemake step (rule plot_diagnostics): residual and random-effect diagnostics of one model."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

import pandas as pd  # noqa: E402

from alliance.report.figures import model_diagnostics, save  # noqa: E402

inp = snakemake.input  # noqa: F821
residuals = pd.read_parquet(inp.residuals)
random_effects = pd.read_csv(inp.random_effects, dtype={"level": str}) if inp.random_effects else None
figure = model_diagnostics(
    residuals, random_effects, seed=snakemake.params.seed, title=snakemake.params.label  # noqa: F821
)
save(figure, snakemake.output.png, snakemake.output.svg)  # noqa: F821
