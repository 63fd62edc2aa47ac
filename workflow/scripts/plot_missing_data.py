"""Snakemake step (rule plot_missing_data): dropout by session and therapy type, missed scores by arm."""

from alliance import step

snakemake = step.start(globals())

from alliance.outputs import read_columns
from alliance.report.diagnostic_figures import MISSING_DATA_COLUMNS, MISSING_DATA_PATIENT_COLUMNS, missing_data
from alliance.report.figures import save

data = read_columns(snakemake.input.analysis, MISSING_DATA_COLUMNS)
patients = read_columns(snakemake.input.patients, MISSING_DATA_PATIENT_COLUMNS)
save(missing_data(data, patients, by=snakemake.params.by), snakemake.output.png, snakemake.output.svg)
