"""Snakemake step (rule render_report): the narrative report as one self-contained HTML file."""

import json
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from alliance.intake.instruments import load_registry  # noqa: E402
from alliance.models.data import report_analysis_columns  # noqa: E402
from alliance.outputs import read_columns, write_csv  # noqa: E402
from alliance.report.core import (  # noqa: E402
    BrowserNotFound,
    browser_version,
    find_browser,
    render_html,
    report_context,
)

inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
try:  # the PDF is printed by rule render_report_pdf; here only its tool is named
    pdf_tool = browser_version(find_browser())
except BrowserNotFound:
    pdf_tool = ""

figures = {key.removeprefix("fig_"): path for key, path in inp.items() if key.startswith("fig_")}
fits = [json.loads(Path(p).read_text()) for p in inp.fits]
context = report_context(
    title=params.title,
    summary=json.loads(Path(inp.summary).read_text()),
    flow=pd.read_csv(inp.flow),
    findings=pd.read_csv(inp.validation, keep_default_na=False),
    fits=fits,
    fixed=[pd.read_csv(p) for p in inp.fixed],
    variance=[pd.read_csv(p) for p in inp.variance],
    analysis=read_columns(inp.analysis, report_analysis_columns(fits)),  # only what the report uses
    table1=pd.read_csv(inp.table1),
    comparison=pd.read_csv(inp.comparison),
    dictionary=pd.read_csv(inp.dictionary, keep_default_na=False),
    figures=figures,
    config=params.config,
    registry=load_registry(params.instruments or None),
    effects=pd.read_csv(inp.effects) if "effects" in inp.keys() else None,
    effect_sizes=pd.read_csv(inp.effect_sizes) if "effect_sizes" in inp.keys() else None,
    patients=pd.read_parquet(inp.patients),
    model_order=params.model_order,
    primary_model=params.primary_model,
    pdf_tool=pdf_tool,
)
write_csv(context["checklist_frame"], out.checklist)
Path(out.html).write_text(render_html(context), encoding="utf-8")
