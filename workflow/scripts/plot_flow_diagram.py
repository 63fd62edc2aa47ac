"""Snakemake step (rule plot_flow_diagram): CONSORT-style exclusion flow."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

import pandas as pd  # noqa: E402

from alliance.report.figures import exclusion_flow, save  # noqa: E402

flow = pd.read_csv(snakemake.input.flow)  # noqa: F821
save(exclusion_flow(flow), snakemake.output.png, snakemake.output.svg)  # noqa: F821
