"""Snakemake step (rule plot_lagged_dynamics): both cross-lags and both carry-overs, the RI-CLPM beside
the lagged multilevel models, with the true values of a simulated dataset."""

import json
from pathlib import Path

from alliance import step

snakemake = step.start(globals())

import pandas as pd

from alliance.report.figures import save
from alliance.report.lagged import lagged_section, read_riclpm
from alliance.report.lagged_figure import lagged_dynamics
from alliance.report.truth import read_truth

inp, out = snakemake.input, snakemake.output
section = lagged_section(
    [json.loads(Path(p).read_text()) for p in inp.fits],
    [pd.read_csv(p) for p in inp.fixed],
    [read_riclpm(p) for p in inp.riclpm_fits],
    truth=read_truth(dict(inp.items()).get("truth")),  # config dataset.truth, when the dataset has one
)
save(lagged_dynamics(section), out.png, out.svg)
