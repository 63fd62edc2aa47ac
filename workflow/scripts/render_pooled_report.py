"""Snakemake step (rule render_pooled_report): the pooled report, one self-contained HTML file."""

from alliance import step

snakemake = step.start(globals())

import datetime as dt
import json
from pathlib import Path

import pandas as pd

from alliance.report.html import embed_png, git_commit, package_versions, render_html
from alliance.report.pooled import pooled_context

inp, out, params = snakemake.input, snakemake.output, snakemake.params
named = dict(inp.items())
TABLES = ("harmonisation", "pooled", "study_estimates", "leave_one_out", "meta_regression", "truth", "one_stage")
MULTIVERSE = ("curve", "multiverse_summary", "multiverse_choices")
# "n/a" is a choice of the multiverse tables, not a missing value
tables = {k: pd.read_csv(named[k], keep_default_na=False, na_values=[""]) for k in (*TABLES, *MULTIVERSE) if k in named}
figures = {Path(p).stem: embed_png(p) for p in inp.forests}
if "fig_curve" in named:
    figures["specification_curve"] = embed_png(named["fig_curve"])
context = pooled_context(
    title=params.title,
    pooling=dict(params.pooling),
    multiverse=dict(params.multiverse),
    studies=dict(params.studies),
    effects=list(params.effects),
    tables=tables,
    summaries=[json.loads(Path(p).read_text(encoding="utf-8")) for p in inp.summaries],
    figures=figures,
    provenance={
        "versions": package_versions(),
        "commit": git_commit(),
        "run_date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "engine": params.run["engine"],
    },
)
Path(out.html).write_text(render_html(context, "pooled_report.html.j2"), encoding="utf-8")
