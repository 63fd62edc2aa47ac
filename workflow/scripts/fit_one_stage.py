"""Snakemake step (rule fit_one_stage): the one-stage model of every session-level pooled effect."""

from alliance import step

snakemake = step.start(globals())

from pathlib import Path

import pandas as pd

from alliance.outputs import write_csv, write_json
from alliance.pooling.one_stage import ONE_STAGE_COLUMNS, ONE_STAGE_MODELS, fit_one_stage, stack_studies

inp, out, params = snakemake.input, snakemake.output, snakemake.params
# results/<pool>/studies/<study>/harmonised/sessions.parquet: the study is the directory's name
stacked = stack_studies({Path(path).parents[1].name: pd.read_parquet(path) for path in inp.sessions})
rows, records = [], []
for effect in ONE_STAGE_MODELS:
    row, record = fit_one_stage(stacked, effect, engine=params.engine)
    rows.append(row)
    records.append(record)
write_csv(pd.DataFrame(rows, columns=ONE_STAGE_COLUMNS), out.estimates)
write_json(records, out.fit)
