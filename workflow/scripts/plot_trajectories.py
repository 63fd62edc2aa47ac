"""Snakemake step (rules plot_trajectories_*): symptom or alliance trajectories by therapy type."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

import pandas as pd  # noqa: E402

from alliance.figures import model_implied_means, save, trajectories  # noqa: E402

params = snakemake.params  # noqa: F821
data = pd.read_parquet(snakemake.input.analysis)  # noqa: F821
fixed_path = getattr(snakemake.input, "fixed", None)  # noqa: F821
model_means = model_implied_means(data, pd.read_csv(fixed_path), outcome=params.measure) if fixed_path else None
labels = {"symptoms": "Symptoms (common outcome scale, higher = worse)", "alliance": "Alliance (higher = better)"}
figure = trajectories(
    data,
    params.measure,
    ylabel=labels.get(params.measure, params.measure),
    seed=params.seed,
    max_patients=params.max_patients,
    model_means=model_means,
)
save(figure, snakemake.output.png, snakemake.output.svg)  # noqa: F821
