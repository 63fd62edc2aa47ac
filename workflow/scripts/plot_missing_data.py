"""Snakemake step (rule plot_missing_data): missing data by session and arm."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

from alliance.report.figures import MISSING_DATA_COLUMNS, MISSING_DATA_PATIENT_COLUMNS, missing_data, save  # noqa: E402
from alliance.outputs import read_columns  # noqa: E402

data = read_columns(snakemake.input.analysis, MISSING_DATA_COLUMNS)  # noqa: F821
patients = read_columns(snakemake.input.patients, MISSING_DATA_PATIENT_COLUMNS)  # noqa: F821
save(missing_data(data, patients), snakemake.output.png, snakemake.output.svg)  # noqa: F821
