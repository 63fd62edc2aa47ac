"""Snakemake step (rule harmonise_study): one study's clean tables on the pooled run's common scale."""

from alliance import step

snakemake = step.start(globals())

import logging

from alliance.intake.config import load_instruments
from alliance.outputs import read_columns, write_json, write_parquet
from alliance.pooling.harmonise import SESSION_COLUMNS, harmonise_study

inp, out, params = snakemake.input, snakemake.output, snakemake.params
harmonised = harmonise_study(
    read_columns(inp.analysis, [*SESSION_COLUMNS, "alliance", "symptoms_raw"]),
    read_columns(inp.patients, ["patient", "dropout"]),
    study=params.study,
    window=tuple(params.window),
    outcome_scale=params.outcome_scale,
    registry=load_instruments(params.instruments),
    alliance_instrument=params.measures[params.alliance_measure]["instrument"],
)
record = {**harmonised.record, "label": params.label, "moderators": dict(params.moderators)}
write_parquet(harmonised.sessions, out.sessions)
write_parquet(harmonised.patients, out.patients)
write_json(record, out.record)
logging.info(
    "study %s: %d session rows in the window, %d patients", params.study, record["session_rows"], record["patients"]
)
