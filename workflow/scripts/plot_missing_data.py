"""Snakemake step (rule plot_missing_data): missing data by session and arm."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

import pandas as pd  # noqa: E402

from alliance.figures import missing_data, save  # noqa: E402

data = pd.read_parquet(snakemake.input.analysis)  # noqa: F821
patients = pd.read_parquet(snakemake.input.patients)  # noqa: F821
save(missing_data(data, patients), snakemake.output.png, snakemake.output.svg)  # noqa: F821
