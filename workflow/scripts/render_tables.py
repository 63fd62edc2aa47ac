"""Snakemake step (rule report_tables): Table 1 and the model comparison table as CSV, and the
manuscript's APA-style Table 1 and primary models as Word and LaTeX."""

import json
from pathlib import Path

from alliance import step

snakemake = step.start(globals())

import pandas as pd

from alliance.outputs import write_csv
from alliance.report.manuscript import manuscript_tables, write_manuscript_tables
from alliance.report.tables import model_comparison, table1

inp = snakemake.input
patients = pd.read_parquet(inp.patients)
fits = [json.loads(Path(p).read_text()) for p in inp.fits]
fixed = [pd.read_csv(p) for p in inp.fixed]
write_csv(table1(patients), snakemake.output.table1)
write_csv(model_comparison(fits, fixed), snakemake.output.comparison)
tables = manuscript_tables(
    pd.read_csv(snakemake.output.table1),  # as the report reads it back
    fits,
    fixed,
    primary_model=snakemake.params.primary_model,
    benchmark=snakemake.params.benchmark,
    labels=snakemake.params.term_labels,
)
write_manuscript_tables(
    tables,
    {key: snakemake.output[key] for key in ("table1_docx", "table1_tex", "primary_models_docx", "primary_models_tex")},
)
