"""Snakemake step (rule plot_specification_curve): the multiverse of the IPD meta-analysis as a
specification curve, every specification's estimate ranked, with the dashboard of its choices."""

from alliance import step

snakemake = step.start(globals())

import pandas as pd

from alliance.pooling.multiverse import truth_by_model
from alliance.report.figures import save
from alliance.report.pooled_figures import specification_curve

inp, out, params = snakemake.input, snakemake.output, snakemake.params
curve = pd.read_csv(inp.curve, keep_default_na=False, na_values=[""])  # "n/a" is a choice, not a missing value
truth = truth_by_model(pd.read_csv(inp.truth)) if "truth" in inp.keys() else None  # the simulator's, when given
figure = specification_curve(curve, list(params.dimensions), truth=truth or None)
save(figure, out.png, dict(out.items()).get("svg"))
