"""A small simulated trial, cleaned and fitted in memory, and a hand-made effects table (tests/report/).

The figures and report tests check their output on real tables made by the pipeline's own
functions, not on hand-made stand-ins; ``effects_table`` is the one exception, a fixed
alliance_effects.csv with round numbers whose signs and ranks the tests know.
"""

from __future__ import annotations

import pandas as pd

from alliance.intake.clean import clean_dataset
from alliance.models.config import model_context
from alliance.models.suite import fit_model
from alliance.simulate import TrialDesign, write_trial
from testkit import demo_config


def make_trial(directory, n_therapists: int = 12, patients_per_therapist: int = 6, seed: int = 11) -> dict:
    """Simulate, clean and fit a small trial with the pipeline's own functions (the demo config's
    same-session, three-level and session-3 alliance models)."""
    design = TrialDesign(n_therapists=n_therapists, patients_per_therapist=patients_per_therapist)
    write_trial(directory, design, seed=seed)
    config = demo_config()
    config["dataset"]["name"] = "fixture"
    config["dataset"]["sessions"]["path"] = str(directory / "sessions.csv")
    config["dataset"]["patients"]["path"] = str(directory / "patients.csv")
    cleaned = clean_dataset(config["dataset"], config["analysis"], config.get("cleaning"), config.get("instruments"))
    context = model_context(config)
    models = {m["name"]: m for m in config["models"]}
    fitted = {
        name: fit_model(models[name], cleaned.sessions, cleaned.patients, context)
        for name in ("same_session", "three_level", "early_alliance")
    }
    return {
        "config": config,
        "models": models,
        "analysis": cleaned.sessions,
        "patients": cleaned.patients,
        "flow": cleaned.flow,
        "findings": cleaned.findings,
        "summary": cleaned.summary,
        "dictionary": cleaned.dictionary,
        "reliability": cleaned.reliability,
        "fitted": fitted,
        "same": fitted["same_session"],
        "three_tables": fitted["three_level"],
        "random_effects": fitted["three_level"]["random_effects"],
        "residuals": fitted["three_level"]["residuals"],
    }


def effects_table() -> pd.DataFrame:
    """An alliance_effects.csv as the effects stage writes it (contract columns)."""
    rows = [
        ("overall", "all", "alliance_within_patient", -8.1, 0.3, -0.31, -0.34, -0.28, 600, 60),
        ("therapy", "CBT", "alliance_within_patient", -6.2, 0.5, -0.24, -0.29, -0.19, 200, 20),
        ("therapy", "PDT", "alliance_within_patient", -10.1, 0.5, -0.36, -0.41, -0.31, 200, 20),
        ("condition", "anxiety", "alliance_within_patient", -8.0, 0.4, -0.30, -0.35, -0.25, 284, 60),
        ("stratum", "CBT × anxiety", "alliance_within_patient", -6.0, 0.7, -0.22, -0.30, -0.14, 95, 20),
        ("overall", "all", "alliance_between_patient", -7.5, 0.9, -0.33, -0.40, -0.26, 600, 60),
    ]
    cols = ["level", "label", "term", "estimate", "se", "r", "r_ci_low", "r_ci_high", "n_patients", "n_therapists"]
    frame = pd.DataFrame(rows, columns=cols)
    frame["flags"] = "none"
    return frame
