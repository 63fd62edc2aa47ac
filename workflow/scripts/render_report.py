"""Snakemake step (rule render_report): the narrative HTML report."""

import json
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from alliance.report import render_report  # noqa: E402

inp = snakemake.input  # noqa: F821
html = render_report(
    title=snakemake.params.title,  # noqa: F821
    summary=json.loads(Path(inp.summary).read_text()),
    flow=pd.read_csv(inp.flow),
    findings=pd.read_csv(inp.validation, keep_default_na=False),
    models=snakemake.params.models,  # noqa: F821
    fixed=[pd.read_csv(p) for p in inp.fixed],
    variance=[pd.read_csv(p) for p in inp.variance],
    fits=[json.loads(Path(p).read_text()) for p in inp.fits],
    figures={"within_between": inp.figure},
    config=snakemake.params.config,  # noqa: F821
)
Path(snakemake.output.html).write_text(html, encoding="utf-8")  # noqa: F821
