"""Snakemake step (rule plot_pooled_forest): the forest plot of one pooled effect of the IPD meta-analysis,
each study, the pooled diamond and its prediction interval, the simulated truth when there is one."""

from alliance import step

snakemake = step.start(globals())

import pandas as pd

from alliance.report.figures import save
from alliance.report.pooled_figures import pooled_forest, truth_value

inp, out, params = snakemake.input, snakemake.output, snakemake.params
effect = str(params.effect)
pooled = pd.read_csv(inp.pooled)
rows = pooled[pooled["effect"].astype(str) == effect]
if len(rows) != 1:
    raise ValueError(f"{inp.pooled}: {len(rows)} rows of the effect {effect!r}, expected 1")
truth_path = dict(inp.items()).get("truth")  # a simulated dataset's generating values, when it has them
figure = pooled_forest(
    pd.read_csv(inp.study_estimates),
    rows.iloc[0],
    truth=truth_value(pd.read_csv(truth_path), effect) if truth_path else None,
    benchmark=params.benchmark,  # None unless the caller judged the benchmark's design to match
)
save(figure, out.png, dict(out.items()).get("svg"))
