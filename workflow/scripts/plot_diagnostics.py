"""Snakemake step (rule plot_diagnostics): residual and random-effect diagnostics of one model."""

from alliance import step

snakemake = step.start(globals())

import pandas as pd

from alliance.report.diagnostic_figures import model_diagnostics
from alliance.report.figures import save

inp, params = snakemake.input, snakemake.params
residuals = pd.read_parquet(inp.residuals)
random_effects = pd.read_csv(inp.random_effects, dtype={"level": str})
figure = model_diagnostics(
    residuals,
    random_effects,
    seed=params.seed,
    title=params.label,
    variance=pd.read_csv(inp.variance),  # the model's variance components: a variance at 0 is said in words
    labels=params.term_labels,
)
save(figure, snakemake.output.png, snakemake.output.svg)
