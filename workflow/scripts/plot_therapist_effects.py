"""Snakemake step (rule plot_therapist_effects): caterpillar plot of therapist random effects."""

from alliance import step

snakemake = step.start(globals())

import pandas as pd

from alliance.report.diagnostic_figures import therapist_caterpillar
from alliance.report.figures import save

random_effects = pd.read_csv(snakemake.input.random_effects, dtype={"level": str})
params = snakemake.params
figure = therapist_caterpillar(
    random_effects,
    group=params.group,
    title=f"Model: {params.label}",  # the model's label, not its internal name
    variance=pd.read_csv(snakemake.input.variance),  # a variance at 0 is said in words
)
save(figure, snakemake.output.png, snakemake.output.svg)
