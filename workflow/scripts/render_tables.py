"""Snakemake step (rule report_tables): Table 1 and the model comparison table as CSV."""

import json
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from alliance.outputs import write_csv  # noqa: E402
from alliance.report.core import model_comparison, table1  # noqa: E402

inp = snakemake.input  # noqa: F821
patients = pd.read_parquet(inp.patients)
fits = [json.loads(Path(p).read_text()) for p in inp.fits]
fixed = [pd.read_csv(p) for p in inp.fixed]
write_csv(table1(patients), snakemake.output.table1)  # noqa: F821
write_csv(model_comparison(fits, fixed), snakemake.output.comparison)  # noqa: F821
