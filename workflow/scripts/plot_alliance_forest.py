"""Snakemake step (rule plot_alliance_forest): the alliance effect as r, the benchmark behind its own design."""

import json
from pathlib import Path

from alliance import step

snakemake = step.start(globals())

import pandas as pd

from alliance.report.comparisons import patient_level_rows
from alliance.report.figures import alliance_forest, benchmark_design_terms, save

effects = pd.read_csv(snakemake.input.effects)
benchmark = snakemake.params.benchmark  # (config report.benchmark, with the schema's defaults)
order = {name: k for k, name in enumerate(snakemake.params.model_order)}  # config order of the suite
fits = sorted(
    (json.loads(Path(p).read_text(encoding="utf-8")) for p in snakemake.input.fits),
    key=lambda fit: order.get((fit.get("config") or {}).get("name"), len(order)),
)
figure = alliance_forest(
    effects,
    benchmark,
    patient_level=patient_level_rows(fits, benchmark),  # the benchmark's design: the patient-level models
    benchmark_terms=benchmark_design_terms(snakemake.params.models),
)
save(figure, snakemake.output.png, snakemake.output.svg)
