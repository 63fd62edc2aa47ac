"""Snakemake step (rule plot_therapist_influence): each focal estimate with each therapist left out."""

from alliance import step

snakemake = step.start(globals())

import pandas as pd

from alliance.report.figures import save
from alliance.report.influence_figure import therapist_influence_figure

params = snakemake.params
tables = [pd.read_csv(p, dtype={"therapist": str}) for p in snakemake.input.influence]  # in params.models order
figure = therapist_influence_figure(tables, params.model_labels, params.term_labels)
save(figure, snakemake.output.png, snakemake.output.svg)
