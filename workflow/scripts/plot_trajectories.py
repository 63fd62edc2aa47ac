"""Snakemake step (rules plot_trajectories_*): symptom or alliance trajectories by therapy type."""

from alliance import step

snakemake = step.start(globals())

import pandas as pd

from alliance.outputs import read_columns
from alliance.report.figures import model_implied_means, save, trajectories, trajectory_columns

params = snakemake.params
fixed_path = getattr(snakemake.input, "fixed", None)
fixed = pd.read_csv(fixed_path) if fixed_path else None
# only the columns the figure draws and, for the model-implied mean, the model's terms
data = read_columns(snakemake.input.analysis, trajectory_columns(params.measure, fixed))
model_means = model_implied_means(data, fixed, outcome=params.measure) if fixed is not None else None
labels = {"symptoms": "Symptoms (common outcome scale, higher = worse)", "alliance": "Alliance (higher = better)"}
figure = trajectories(
    data,
    params.measure,
    ylabel=labels.get(params.measure, params.measure),
    seed=params.seed,
    max_patients=params.max_patients,
    model_means=model_means,
)
save(figure, snakemake.output.png, snakemake.output.svg)
