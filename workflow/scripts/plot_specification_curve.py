"""Snakemake step (rule plot_specification_curve): the multiverse of the IPD meta-analysis as a
specification curve, every specification's estimate ranked, with the dashboard of its choices."""

from alliance import step

snakemake = step.start(globals())

import pandas as pd

from alliance.report.figures import save
from alliance.report.pooled_figures import specification_curve

inp, out, params = snakemake.input, snakemake.output, snakemake.params
curve = pd.read_csv(inp.curve)
figure = specification_curve(curve, list(params.dimensions), truth=dict(params.items()).get("truth"))
save(figure, out.png, dict(out.items()).get("svg"))
