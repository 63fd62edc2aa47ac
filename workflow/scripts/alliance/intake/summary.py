"""The run summary (``summary.json``): inputs and their checksums, sample sizes per level,
design cells, missingness, the settings applied, person-mean reliability, reliable change."""

from __future__ import annotations

from typing import Any

import pandas as pd

from alliance.intake.config import supplied_score
from alliance.intake.deid import AGE_TOPCODE_VALUE


def run_summary(
    data: pd.DataFrame,
    patients: pd.DataFrame,
    findings: pd.DataFrame,
    sessions_meta: dict,
    patients_meta: dict | None,
    dataset: dict[str, Any],
    analysis: dict[str, Any],
    policy: dict[str, Any],
    date_column: str | None,
    patient_summary: dict[str, Any],
) -> dict[str, Any]:
    """Sample sizes per level, design cells, missingness, checksums, reliability, change.

    ``analysis`` holds every setting (:func:`alliance.intake.config.analysis_settings`);
    ``patient_summary`` is what :func:`alliance.intake.patient_level.patient_level` returned.
    """
    per_patient = data.groupby("patient")["session"].size()
    has_therapist = "therapist" in data  # not in a design without therapists
    per_therapist = data.groupby("therapist")["patient"].nunique() if has_therapist else None
    cells = patients.groupby(["therapy", "condition"]).size().rename("patients").reset_index()
    usable = data["alliance"].notna() & data["symptoms"].notna()
    dropout = patients["dropout"]
    inputs = {"sessions": _input_entry(dataset["sessions"], sessions_meta)}
    if patients_meta:
        inputs["patients"] = _input_entry(dataset["patients"], patients_meta)
    return {
        "dataset": dataset["name"],
        "inputs": inputs,
        "rows": int(len(data)),
        "rows_with_alliance_and_outcome": int(usable.sum()),
        "patients": int(data["patient"].nunique()),
        "therapists": int(data["therapist"].nunique()) if has_therapist else 0,
        "sessions_per_patient": _spread(per_patient),
        "patients_per_therapist": _spread(per_therapist) if has_therapist else None,
        "design_cells": cells.to_dict(orient="records"),
        "missing_share": {c: round(float(data[c].isna().mean()), 6) for c in ("alliance", "symptoms")},
        "dropout_definition": policy["dropout_definition"],
        "dropout_rate": round(float(dropout.dropna().astype(float).mean()), 6) if dropout.notna().any() else None,
        "findings": {str(k): int(v) for k, v in findings.groupby("action").size().items()} if len(findings) else {},
        "outcome_scale": analysis["outcome_scale"],
        "alliance_score": analysis["alliance_score"],
        "outcome_by_condition": {
            c: dataset["measures"][k]["instrument"] for c, k in analysis["outcome_by_condition"].items()
        },
        "measures": {
            key: {"instrument": m["instrument"], "supplied": "items" if "items" in m else supplied_score(m)}
            for key, m in dataset["measures"].items()
        },
        "person_means_from": analysis["person_means_from"],
        "person_mean_reliability": patient_summary["person_mean_reliability"],
        "reliable_change": patient_summary["reliable_change"],
        "deidentification": {
            "dates_to_days": {"column": date_column, "stored_as": "days_since_intake"} if date_column else None,
            "patients_aged_90_or_over": (
                int(patients["age"].eq(AGE_TOPCODE_VALUE).sum()) if "age" in patients.columns else None
            ),
        },
        "patient_switches": int(patients["therapist_switch"].sum()) if has_therapist else 0,
    }


def _input_entry(table: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """One input file in the summary: its configured path, checksum and rows read."""
    return {"path": table["path"], "sha256": meta.get("sha256"), "rows": meta.get("n_rows")}


def _spread(counts: pd.Series) -> dict[str, Any]:
    """Mean (4 decimals), min and max of a count per unit."""
    return {"mean": round(float(counts.mean()), 4), "min": int(counts.min()), "max": int(counts.max())}
