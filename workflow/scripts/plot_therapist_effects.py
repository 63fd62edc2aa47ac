"""Snakemake step (rule plot_therapist_effects): caterpillar plot of therapist random effects."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

import pandas as pd  # noqa: E402

from alliance.report.figures import save, therapist_caterpillar  # noqa: E402

random_effects = pd.read_csv(snakemake.input.random_effects, dtype={"level": str})  # noqa: F821
params = snakemake.params  # noqa: F821
figure = therapist_caterpillar(random_effects, group=params.group, title=f"Model: {params.label} ({params.model})")
save(figure, snakemake.output.png, snakemake.output.svg)  # noqa: F821
