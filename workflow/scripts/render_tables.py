"""Snakemake step (rule report_tables): Table 1 and the model comparison table as CSV."""

import json
from pathlib import Path

from alliance import step

snakemake = step.start(globals())

import pandas as pd

from alliance.outputs import write_csv
from alliance.report.tables import model_comparison, table1

inp = snakemake.input
patients = pd.read_parquet(inp.patients)
fits = [json.loads(Path(p).read_text()) for p in inp.fits]
fixed = [pd.read_csv(p) for p in inp.fixed]
write_csv(table1(patients), snakemake.output.table1)
write_csv(model_comparison(fits, fixed), snakemake.output.comparison)
