"""The patient-level table: design, baseline / last / change of the outcome, reliable change,
early alliance, person-mean reliability, the patients file's covariates and dropout.

One row per patient, built from the scored session table (:mod:`alliance.intake.scoring`)
and the validated patients file. Reliable and clinically significant change follows
Jacobson & Truax (1991) with the registry's published thresholds
(:func:`alliance.intake.instruments.reliable_change`); the reliability of the
patient's alliance mean is lambda_i = tau^2 / (tau^2 + sigma^2 / n_i) (methods.md section 4.6).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from alliance.intake import derive
from alliance.intake.deid import QUASI_IDENTIFIERS, small_cells
from alliance.intake.findings import SOURCE_ROW, WARN, Finding
from alliance.intake.instruments import reliable_change
from alliance.intake.layout import DESIGN_COLUMNS, Layout
from alliance.intake.registry import Instrument

#: Patient covariates copied onto every session row of the analysis dataset.
PATIENT_COVARIATES = ("age", "age_band", "sex", "expectancy", "dropout")
#: Lowest person-mean reliability reported as adequate in the summary.
LAMBDA_ADEQUATE = 0.7


def patient_level(
    data: pd.DataFrame,
    table: pd.DataFrame | None,
    layout: Layout | None,
    registry: dict[str, Instrument],
    policy: dict[str, Any],
    findings: list[Finding],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per patient: design, baseline/last/change, reliable change, early alliance,
    person-mean reliability, the patients file's covariates, dropout.

    ``data`` is sorted by patient and session; ``table`` and ``layout`` are the
    validated patients file and its layout (None without one). Appends its findings
    to ``findings``; returns (patients, summary entries).
    """
    patients = patient_variables(data)
    tau2, sigma2 = derive.variance_split_anova(data, "alliance")
    lam = derive.person_mean_reliability(patients["alliance_n_sessions"], tau2, sigma2)
    patients["alliance_pm_reliability"] = lam.where(patients["alliance_n_sessions"] > 0)

    change_summary = reliable_change_by_instrument(patients, registry)

    patients = patients.reset_index()
    if table is not None:
        patients = _with_patients_file(patients, table, layout, findings)
    findings += small_cells(patients, QUASI_IDENTIFIERS, file=layout.file if layout else None)
    patients["dropout"] = _dropout(patients, policy["dropout_definition"], findings)
    reliability = _reliability_summary(patients["alliance_pm_reliability"], tau2, sigma2)
    return patients, {"reliable_change": change_summary, "person_mean_reliability": reliability}


def patient_variables(data: pd.DataFrame) -> pd.DataFrame:
    """The patient-level variables computed from the session table, indexed by patient: design,
    sessions, baseline / last / change of the outcome, early alliance and the alliance mean.

    ``data`` is the scored session table (``symptoms_raw``, ``symptoms``, ``alliance``), sorted by
    patient and session; the pooling stage calls it on each study's harmonised sessions.
    """
    heads = data.drop_duplicates("patient").set_index("patient")
    grouped = data.groupby("patient", sort=True)
    columns: dict[str, pd.Series] = {
        c: heads[c] for c in ("site", "study", "therapist", "therapy", "condition", "outcome_measure") if c in heads
    }
    columns.update(
        n_sessions=grouped.size(),
        first_session=grouped["session"].min(),
        last_session=grouped["session"].max(),
    )
    if "therapist_switch" in heads:  # absent in a design without therapists
        columns["therapist_switch"] = heads["therapist_switch"]
    patients = pd.DataFrame(columns)
    patients.index.name = "patient"

    raw_ends = derive.first_and_last_observed(data, "symptoms_raw").reindex(patients.index)
    ends = derive.first_and_last_observed(data, "symptoms").reindex(patients.index)
    single = raw_ends["symptoms_raw_baseline_session"] == raw_ends["symptoms_raw_last_session"]
    raw_ends["symptoms_raw_change"] = raw_ends["symptoms_raw_change"].mask(single)
    ends["symptoms_change"] = ends["symptoms_change"].mask(single)
    for column in ("symptoms_raw_baseline_session", "symptoms_raw_last_session"):
        raw_ends[column] = raw_ends[column].astype("Int64")
    patients = patients.join(raw_ends).join(ends[["symptoms_baseline", "symptoms_last", "symptoms_change"]])

    patients["alliance_s3"] = derive.value_at_session(data, "alliance", 3).reindex(patients.index)
    patients["alliance_s1_4"] = derive.mean_over_sessions(data, "alliance", 1, 4).reindex(patients.index)
    patients["symptoms_s3"] = derive.value_at_session(data, "symptoms", 3).reindex(patients.index)
    patients["alliance_patient_mean"] = grouped["alliance"].mean()
    patients["alliance_n_sessions"] = grouped["alliance"].count().astype("int64")
    return patients


def _with_patients_file(
    patients: pd.DataFrame, table: pd.DataFrame, layout: Layout, findings: list[Finding]
) -> pd.DataFrame:
    """``patients`` with the patients file's columns; patients in only one of the two are findings."""
    file, lab = layout.file, layout.lab["patient"]
    # patients with sessions but no row here: alliance.intake.design_checks.sessions_without_patient_row
    unused = table.loc[~table["patient"].isin(patients["patient"])]
    for row, patient in zip(unused[SOURCE_ROW], unused["patient"]):
        findings.append(
            Finding(
                file, int(row), lab, str(patient), "is in the patients file but has no sessions", "not in the analysis"
            )
        )
    # the design columns of the file are on the session rows already (alliance.intake.design)
    design = [c for c in DESIGN_COLUMNS if c in table.columns]
    return patients.merge(table.drop(columns=[SOURCE_ROW, *design]), on="patient", how="left")


def _dropout(patients: pd.DataFrame, definition: str, findings: list[Finding]) -> pd.Series:
    """Dropout by ``cleaning.dropout_definition``; missing (and a warning) without the column it needs."""
    needed = {"end_reason": "end_reason", "fewer_than_planned": "planned_sessions"}[definition]
    if definition == "end_reason" and "end_reason" in patients.columns:
        reason = patients["end_reason"].astype("string").str.strip().str.lower()
        return reason.eq("dropout").astype("boolean").mask(reason.isna())
    if definition == "fewer_than_planned" and "planned_sessions" in patients.columns:
        planned = patients["planned_sessions"]
        return (patients["last_session"] < planned).astype("boolean").mask(planned.isna())
    findings.append(
        Finding(
            None,
            None,
            None,
            None,
            f"dropout is not derived: cleaning.dropout_definition '{definition}' needs the patients-file "
            f"column dataset.patient_columns.{needed}, which is not mapped",
            WARN,
        )
    )
    return pd.Series(pd.array([pd.NA] * len(patients), dtype="boolean"), index=patients.index)


def _reliability_summary(lam: pd.Series, tau2: float, sigma2: float) -> dict[str, Any]:
    """The variance split behind the person-mean reliabilities ``lam`` and their distribution."""
    reliability: dict[str, Any] = {
        "between_patient_variance": tau2,
        "within_patient_variance": sigma2,
        "formula": "lambda_i = tau^2 / (tau^2 + sigma^2 / n_i), n_i = sessions with an alliance score",
    }
    lam = lam.dropna()
    if len(lam):
        reliability.update(
            mean=float(lam.mean()),
            median=float(lam.median()),
            min=float(lam.min()),
            max=float(lam.max()),
            share_below_0_7=float((lam < LAMBDA_ADEQUATE).mean()),
        )
    return reliability


def reliable_change_by_instrument(patients: pd.DataFrame, registry: dict[str, Instrument]) -> dict[str, Any]:
    """Reliable and clinically significant change per patient (in place) and its summary.

    Two methods, each on the raw totals of the condition's instrument: the fixed
    published threshold (``change_category_fixed``) and Jacobson & Truax (1991) with
    the sample's baseline SD and the registry's reliability (``rci_jacobson_truax``,
    ``change_category_jacobson_truax``). Patients with a single observation get none.
    """
    baseline = patients["symptoms_raw_baseline"]
    last = patients["symptoms_raw_last"].where(patients["symptoms_raw_change"].notna())
    categories = {m: pd.Series(pd.NA, index=patients.index, dtype="string") for m in ("fixed", "jacobson_truax")}
    rci = pd.Series(np.nan, index=patients.index)
    summary: dict[str, Any] = {}
    for instrument_id in sorted(patients["outcome_measure"].dropna().unique()):
        rows = patients.index[patients["outcome_measure"] == instrument_id]
        instrument = registry[instrument_id]
        entry: dict[str, Any] = {"clinical_cutoff": instrument.clinical_cutoff}
        if instrument.reliable_change is not None:
            result = reliable_change(baseline[rows], last[rows], instrument, method="fixed")
            categories["fixed"][rows] = result["category"].astype("string")
            entry["fixed_threshold"] = instrument.reliable_change
        else:
            entry["fixed_threshold"] = None
            entry["fixed_note"] = "no published fixed threshold in the registry"
        sd = float(baseline[rows].std(ddof=1)) if baseline[rows].notna().sum() > 1 else math.nan
        if instrument.reliability is None:
            entry["jacobson_truax_note"] = "no published reliability in the registry"
        elif not (np.isfinite(sd) and sd > 0):
            entry["jacobson_truax_note"] = "baseline SD not estimable (fewer than 2 distinct baselines)"
        else:
            result = reliable_change(baseline[rows], last[rows], instrument, method="jacobson_truax", sd_baseline=sd)
            categories["jacobson_truax"][rows] = result["category"].astype("string")
            rci[rows] = result["rci"]
            entry.update(
                reliability=instrument.reliability,
                sd_baseline=sd,
                s_diff=math.sqrt(2.0) * sd * math.sqrt(1.0 - instrument.reliability),
            )
        for method, category in categories.items():
            counts = category[rows].value_counts()
            entry[f"categories_{method}"] = {str(k): int(v) for k, v in sorted(counts.items())}
        summary[instrument_id] = entry
    patients["rci_jacobson_truax"] = rci
    patients["change_category_fixed"] = categories["fixed"]
    patients["change_category_jacobson_truax"] = categories["jacobson_truax"]
    return summary
