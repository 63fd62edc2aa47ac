"""Snakemake step (rule plot_flow_diagram): CONSORT-style exclusion flow."""

from alliance import step

snakemake = step.start(globals())

import pandas as pd

from alliance.report.diagnostic_figures import exclusion_flow
from alliance.report.figures import save

flow = pd.read_csv(snakemake.input.flow)
save(exclusion_flow(flow), snakemake.output.png, snakemake.output.svg)
