"""Snakemake step (rule pool_effects): stage two, every pooled effect with its tables, beside the truth."""

from alliance import step

snakemake = step.start(globals())

import json

import pandas as pd

from alliance.outputs import write_csv
from alliance.pooling.truth import truth_table
from alliance.pooling.two_stage import pool_all

inp, out, params = snakemake.input, snakemake.output, snakemake.params
records = [json.loads(open(path, encoding="utf-8").read()) for path in inp.records]
estimates = pd.concat([pd.read_csv(path) for path in inp.estimates], ignore_index=True)
tables = pool_all(
    estimates,
    effects=list(params.effects),
    moderators={r["study"]: r["moderators"] for r in records},
    outcome_scale=params.outcome_scale,
    level=params.level,
)
for key in ("study_estimates", "pooled", "leave_one_out", "meta_regression"):
    write_csv(tables[key], getattr(out, key))
harmonisation = pd.DataFrame([{k: v for k, v in r.items() if k != "moderators"} | r["moderators"] for r in records])
write_csv(harmonisation, out.harmonisation)
write_csv(truth_table(inp.truth[0] if inp.truth else None, tables["pooled"], tables["study_estimates"]), out.truth)
