"""Snakemake step (rule render_report): the main report and its supplement, each one self-contained HTML file."""

import json
from pathlib import Path

from alliance import step

snakemake = step.start(globals())

import pandas as pd

from alliance.intake.registry import load_registry
from alliance.models.data import report_analysis_columns
from alliance.outputs import read_columns, write_csv
from alliance.report.context import report_context
from alliance.report.html import render_html
from alliance.report.lagged import read_riclpm
from alliance.report.pdf import BrowserNotFound, browser_version, find_browser
from alliance.report.truth import read_truth

inp, out, params = snakemake.input, snakemake.output, snakemake.params
try:  # the PDF is printed by rule render_report_pdf; here only its tool is named
    pdf_tool = browser_version(find_browser())
except BrowserNotFound:
    pdf_tool = ""

figures = {key.removeprefix("fig_"): path for key, path in inp.items() if key.startswith("fig_")}
fits = [json.loads(Path(p).read_text()) for p in inp.fits]
truth_path = dict(inp.items()).get("truth")  # config dataset.truth, when the dataset has one
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
    benchmark=params.config["report"]["benchmark"],  # config report.benchmark, with the schema's defaults
    effects=pd.read_csv(inp.effects),
    effect_sizes=pd.read_csv(inp.effect_sizes),
    patients=pd.read_parquet(inp.patients),
    model_order=params.model_order,
    primary_model=params.primary_model,
    pdf_tool=pdf_tool,
    riclpm=[read_riclpm(p) for p in inp.riclpm_fits],
    configured_riclpm=params.riclpm_models,
    truth=read_truth(truth_path),
    truth_path=truth_path,
    reviewer_table_paths=list(dict(inp.items()).get("reviewer_tables") or []),
    measure_reliability=pd.read_csv(inp.reliability),  # the intake's alpha per measure (clean/reliability.csv)
)
write_csv(context["checklist_frame"], out.checklist)
Path(out.html).write_text(render_html(context), encoding="utf-8")
Path(out.supplement).write_text(render_html(context, "supplement.html.j2"), encoding="utf-8")
