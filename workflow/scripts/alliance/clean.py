"""Intake: a lab's export becomes a validated, scored, analysis-ready dataset.

:func:`clean_dataset` runs every step in memory and returns everything the stage
writes; the step script writes only after it returned, so a stopping error leaves
no partial results. The steps, in order:

1. read the files (``alliance.readers``), screen them for direct identifiers
   (``alliance.deid``) before anything else;
2. map the lab's column names and labels onto the canonical ones;
3. validate with pandera, lazily, so that every problem is found in one pass;
4. apply the cleaning policy of the config: stop, or repair/exclude and record;
5. score the instruments (``alliance.instruments``), put the outcome on the
   configured common scale, derive centred, lagged and patient-level variables.

Every repair is a row of the validation report; every exclusion is a step of the
exclusion flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from alliance import derive
from alliance.config import item_columns
from alliance.deid import assert_deidentified, small_cells
from alliance.errors import Finding, InputError, InputErrors, findings_to_frame
from alliance.instruments import Instrument, load_registry, reliable_change, score_items
from alliance.readers import read_table

DEFAULT_POLICY: dict[str, Any] = {
    "out_of_range_item": "set_missing",
    "non_numeric_value": "set_missing",
    "exact_duplicate_rows": "keep_first",
    "conflicting_duplicates": "stop",
    "invalid_session": "exclude_row",
    "patient_switches_therapist": "keep_and_flag",
    "dropout_definition": "end_reason",
    "deidentification": {"allowed_columns": [], "dates_to_days": []},
}
KEYS = ("patient", "therapist", "session")
ROW = "_source_row"


@dataclass
class CleanResult:
    """Everything the cleaning stage produces (see the module docstring)."""

    sessions: pd.DataFrame
    patients: pd.DataFrame
    dictionary: pd.DataFrame
    findings: pd.DataFrame
    flow: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


class _Flow:
    """Rows, patients and therapists remaining after each step (CONSORT-style)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def add(self, step: str, data: pd.DataFrame, reason: str = "") -> None:
        self.steps.append(
            {
                "step": step,
                "rows": int(len(data)),
                "patients": int(data["patient"].nunique()),
                "therapists": int(data["therapist"].nunique()),
                "reason": reason,
            }
        )

    def frame(self) -> pd.DataFrame:
        flow = pd.DataFrame(self.steps)
        for level in ("rows", "patients", "therapists"):
            flow[f"{level}_excluded"] = (-flow[level].diff()).fillna(0).astype(int)
        return flow


def _table_options(table: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": table.get("format"),
        "delimiter": table.get("delimiter"),
        "encoding": table.get("encoding", "utf-8"),
        "sheet": table.get("sheet"),
    }


def _rename(raw: pd.DataFrame, mapping: dict[str, str], file: str, required: tuple[str, ...]) -> pd.DataFrame:
    """Rename the lab's columns to canonical names; stop when a mapped column is absent."""
    absent = [
        (canonical, lab) for canonical, lab in mapping.items() if lab not in raw.columns
    ]
    if absent:
        available = ", ".join(c for c in raw.columns if c != ROW)
        raise InputErrors(
            [
                Finding(
                    file=file,
                    row=None,
                    column=lab,
                    value=None,
                    reason=(
                        f"required column '{lab}' (canonical '{canonical}') is missing; "
                        f"columns present: {available}"
                    ),
                    action="stop",
                )
                for canonical, lab in absent
            ]
        )
    missing_required = [c for c in required if c not in mapping]
    if missing_required:
        raise InputError(
            file=file, reason=f"no column is mapped to {', '.join(missing_required)}"
        )
    return raw.rename(columns={lab: canonical for canonical, lab in mapping.items()})


def _as_text(column: pd.Series) -> pd.Series:
    """Values as stripped text (missing stays missing), whatever the file format gave."""
    text = column.astype("string").str.strip()
    numeric = pd.to_numeric(column, errors="coerce") if column.dtype.kind in "fiu" else None
    if numeric is not None:
        # 3.0 read from Excel or SPSS is the integer 3, not the text "3.0"
        whole = numeric.notna() & (numeric == np.floor(numeric))
        text = text.mask(whole, numeric[whole].astype("Int64").astype("string"))
    return text


REASONS = {
    "present": "missing {column} id",
    "positive_session": "session number is not a positive whole number",
    "known_label": "unknown {column} label; known spellings: {known}",
    "numeric_value": "text in a numeric column",
    "valid_range": "outside the valid range {low:g}-{high:g}{whole}",
}


def _number_checks(low: float, high: float, integer: bool) -> list[pa.Check]:
    """Pandera checks for a numeric column read as text: numeric, then in range."""

    # (the check functions must not share a name with a pandera built-in check)
    def is_numeric_or_missing(values: pd.Series) -> pd.Series:
        return values.isna() | pd.to_numeric(values, errors="coerce").notna()

    def is_within_range(values: pd.Series) -> pd.Series:
        number = pd.to_numeric(values, errors="coerce")
        ok = number.isna() | number.between(low, high)
        if integer:
            ok &= number.isna() | (number == np.floor(number))
        return ok

    return [
        pa.Check(is_numeric_or_missing, name="numeric_value"),
        pa.Check(is_within_range, name="valid_range"),
    ]


def _validate(
    data: pd.DataFrame,
    file: str,
    ranges: dict[str, tuple[float, float, bool]],
    labels: dict[str, dict[str, str]],
) -> pd.DataFrame:
    """Lazy pandera validation of the renamed text table; returns one row per failure.

    Checks: ids present, session a positive whole number, therapy and condition
    labels known, numeric columns numeric and in the instrument's range. Missing
    codes were turned into missing values by the reader.
    """

    def present(values: pd.Series) -> pd.Series:
        return values.notna() & (values.astype("string").str.len() > 0)

    def positive_whole(values: pd.Series) -> pd.Series:
        number = pd.to_numeric(values, errors="coerce")
        return number.notna() & (number == np.floor(number)) & (number >= 1)

    columns: dict[str, pa.Column] = {
        "patient": pa.Column(None, pa.Check(present, name="present"), nullable=True),
        "therapist": pa.Column(None, pa.Check(present, name="present"), nullable=True),
        "session": pa.Column(None, pa.Check(positive_whole, name="positive_session"), nullable=True),
    }
    reasons: dict[tuple[str, str], str] = {
        ("patient", "present"): REASONS["present"].format(column="patient"),
        ("therapist", "present"): REASONS["present"].format(column="therapist"),
        ("session", "positive_session"): REASONS["positive_session"],
    }
    for kind, mapping in labels.items():
        columns[kind] = pa.Column(
            None,
            pa.Check(lambda values, known=frozenset(mapping): values.isin(known), name="known_label"),
            nullable=True,
        )
        reasons[(kind, "known_label")] = REASONS["known_label"].format(
            column=kind, known=", ".join(sorted(mapping))
        )
    for column, (low, high, integer) in ranges.items():
        columns[column] = pa.Column(None, _number_checks(low, high, integer), nullable=True)
        reasons[(column, "numeric_value")] = REASONS["numeric_value"]
        reasons[(column, "valid_range")] = REASONS["valid_range"].format(
            low=low, high=high, whole=" (whole numbers)" if integer else ""
        )
    schema = pa.DataFrameSchema(columns, strict=False, coerce=False)
    empty = pd.DataFrame(columns=["row", "index", "column", "check", "value", "reason", "file"])
    try:
        schema.validate(data, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        cases = cases.loc[cases["index"].notna() & cases["check"].isin(
            ["present", "positive_session", "known_label", "numeric_value", "valid_range"]
        )]
        if cases.empty:
            return empty
        index = cases["index"].astype(int).to_numpy()
        out = pd.DataFrame(
            {
                "row": data.loc[index, ROW].to_numpy(),
                "index": index,
                "column": cases["column"].astype(str).to_numpy(),
                "check": cases["check"].astype(str).to_numpy(),
                "value": cases["failure_case"].astype(str).to_numpy(),
            }
        )
        # a text value fails "numeric" and, coerced to NaN, passes "valid_range": one finding each
        out["reason"] = [reasons[(c, k)] for c, k in zip(out["column"], out["check"])]
        out["file"] = file
        return out.sort_values(["row", "column"]).reset_index(drop=True)
    return empty


def _as_findings(failures: pd.DataFrame, action: str) -> list[Finding]:
    return [
        Finding(
            file=r.file, row=int(r.row), column=r.column, value=r.value, reason=r.reason, action=action
        )
        for r in failures.itertuples()
    ]


def _duplicates(data: pd.DataFrame, file: str, policy: dict[str, Any]) -> tuple[pd.DataFrame, list[Finding]]:
    """Drop exact duplicate rows (keep first) and handle conflicting patient-session pairs."""
    findings: list[Finding] = []
    content = [c for c in data.columns if c != ROW]
    exact = data.duplicated(subset=content, keep="first")
    if exact.any():
        first_rows = data.loc[data.duplicated(subset=content, keep=False) & ~exact]
        if policy["exact_duplicate_rows"] == "stop":
            raise InputErrors(
                [
                    Finding(file, int(r), None, None, "exact duplicate of an earlier row", "stop")
                    for r in data.loc[exact, ROW]
                ]
            )
        for row, patient, session in data.loc[exact, [ROW, "patient", "session"]].itertuples(index=False):
            original = first_rows.loc[
                (first_rows["patient"] == patient) & (first_rows["session"] == session), ROW
            ]
            findings.append(
                Finding(
                    file, int(row), None, None,
                    f"exact duplicate of row {int(original.iloc[0])} (patient {patient}, session {session})",
                    "dropped (first copy kept)",
                )
            )
        data = data.loc[~exact]
    conflict = data.duplicated(subset=["patient", "session"], keep=False)
    if conflict.any():
        groups = data.loc[conflict].groupby(["patient", "session"], sort=True)
        conflicts = []
        for (patient, session), rows in groups:
            differing = [c for c in content if rows[c].nunique(dropna=False) > 1]
            what = (
                "a patient with two therapists in one session"
                if "therapist" in differing
                else "two different rows for one patient and session"
            )
            rows_text = ", ".join(str(int(r)) for r in rows[ROW])
            for row in rows[ROW].iloc[1:]:
                conflicts.append(
                    Finding(
                        file, int(row), ", ".join(differing[:5]), f"patient {patient}, session {session}",
                        f"{what} (rows {rows_text} differ in {', '.join(differing[:5])})",
                        "stop" if policy["conflicting_duplicates"] == "stop" else "dropped (first kept)",
                    )
                )
        if policy["conflicting_duplicates"] == "stop":
            raise InputErrors(conflicts)
        findings += conflicts
        data = data.loc[~data.duplicated(subset=["patient", "session"], keep="first")]
    return data, findings


def _score_measures(
    data: pd.DataFrame,
    measures: dict[str, dict[str, Any]],
    registry: dict[str, Instrument],
    numeric: dict[str, pd.Series],
) -> pd.DataFrame:
    """Totals, means and subscales of every measure, with the prorating rule applied."""
    scored = {}
    for key, measure in measures.items():
        instrument = registry[measure["instrument"]]
        if "items" in measure:
            items = pd.DataFrame(
                {f"item_{k + 1}": numeric[c] for k, c in enumerate(item_columns(measure, instrument.n_items))}
            )
            scores = score_items(items, instrument)
            for column in scores.columns:
                scored[f"{key}_{column}"] = scores[column]
        else:
            value = numeric[measure["total"]]
            if measure.get("score", "total") == "mean":
                scored[f"{key}_mean"] = value
                scored[f"{key}_total"] = value * instrument.n_items
            else:
                scored[f"{key}_total"] = value
                scored[f"{key}_mean"] = value / instrument.n_items
    return pd.DataFrame(scored, index=data.index)


def _common_scale(
    raw: pd.Series, instrument_of_row: pd.Series, registry: dict[str, Instrument], scale: str,
    baseline_rows: pd.Series,
) -> pd.Series:
    """Put each row's primary-outcome total on the configured common scale."""
    if scale == "raw":
        return raw.astype(float)
    out = pd.Series(np.nan, index=raw.index, dtype=float)
    for instrument_id in sorted(instrument_of_row.dropna().unique()):
        rows = instrument_of_row == instrument_id
        instrument = registry[instrument_id]
        if scale == "pomp":
            span = instrument.total_max - instrument.total_min
            out[rows] = 100.0 * (raw[rows] - instrument.total_min) / span
        else:  # baseline_z
            base = raw[rows & baseline_rows]
            out[rows] = (raw[rows] - base.mean()) / base.std(ddof=1)
    return out


def clean_dataset(
    dataset: dict[str, Any],
    analysis: dict[str, Any],
    cleaning: dict[str, Any] | None = None,
    extra_instruments: dict[str, Any] | None = None,
) -> CleanResult:
    """Run the intake stage in memory (see the module docstring); raises InputError(s)."""
    policy = {**DEFAULT_POLICY, **(cleaning or {})}
    deid_policy = {**DEFAULT_POLICY["deidentification"], **policy.get("deidentification", {})}
    registry = load_registry(extra_instruments or None)
    missing_codes = {str(c) for c in dataset.get("missing_codes", ["", "NA"])}
    flow = _Flow()
    findings: list[Finding] = []

    # 1. read and screen, before anything else
    sessions_file = dataset["sessions"]["path"]
    raw, sessions_meta = read_table(
        sessions_file, **_table_options(dataset["sessions"]), missing_codes=sorted(missing_codes)
    )
    findings += assert_deidentified(
        raw, file=sessions_file, allowed_columns=deid_policy["allowed_columns"],
        date_columns_to_days=deid_policy["dates_to_days"] or None,
    )
    patients_raw, patients_meta, patients_file = None, None, None
    if dataset.get("patients"):
        patients_file = dataset["patients"]["path"]
        patients_raw, patients_meta = read_table(
            patients_file, **_table_options(dataset["patients"]), missing_codes=sorted(missing_codes)
        )
        findings += assert_deidentified(
            patients_raw, file=patients_file, allowed_columns=deid_policy["allowed_columns"],
        )

    # 2. canonical names
    data = _rename(raw, dataset["columns"], sessions_file, required=("patient", "therapist", "session", "therapy", "condition"))
    measure_columns: dict[str, list[str]] = {}
    ranges: dict[str, tuple[float, float, bool]] = {}
    for key, measure in dataset["measures"].items():
        instrument = registry[measure["instrument"]]
        if "items" in measure:
            columns = item_columns(measure, instrument.n_items)
            for column in columns:
                ranges[column] = (instrument.item_min, instrument.item_max, True)
        else:
            columns = [measure["total"]]
            if measure.get("score", "total") == "mean":
                ranges[columns[0]] = (instrument.item_min, instrument.item_max, False)
            else:
                ranges[columns[0]] = (instrument.total_min, instrument.total_max, False)
        absent = [c for c in columns if c not in data.columns]
        if absent:
            raise InputError(
                file=sessions_file, column=absent[0],
                reason=(
                    f"measure '{key}' ({instrument.id}) needs column(s) {', '.join(absent)}, "
                    "which the file does not have"
                ),
            )
        measure_columns[key] = columns
    keep = [ROW] + list(dataset["columns"]) + [c for cols in measure_columns.values() for c in cols]
    data = data.loc[:, list(dict.fromkeys(keep))]
    for column in data.columns:
        if column != ROW:
            data[column] = _as_text(data[column])
    flow.add("rows read", data, f"{sessions_file}")

    # 3. validate everything at once
    labels = {
        kind: {str(s): canonical for canonical, spellings in dataset["labels"][kind].items() for s in spellings}
        for kind in ("therapy", "condition")
    }
    failures = _validate(data, sessions_file, ranges, labels)

    # 4. policy: stop, or repair and record
    stopping = failures["check"].isin(["present", "known_label"])
    if policy["invalid_session"] == "stop":
        stopping |= failures["check"] == "positive_session"
    if policy["non_numeric_value"] == "stop":
        stopping |= failures["check"] == "numeric_value"
    if policy["out_of_range_item"] == "stop":
        stopping |= failures["check"] == "valid_range"
    if stopping.any():
        raise InputErrors(_as_findings(failures.loc[stopping], "stop"))

    bad_session = failures.loc[failures["check"] == "positive_session"]
    findings += _as_findings(bad_session, "row excluded")
    data = data.drop(index=bad_session["index"])
    flow.add("valid session number", data, "session not a positive whole number")

    numeric_failures = failures.loc[failures["check"].isin(["numeric_value", "valid_range"])]
    findings += _as_findings(numeric_failures, "set to missing")
    numeric: dict[str, pd.Series] = {}
    for column in ranges:
        number = pd.to_numeric(data[column], errors="coerce")
        bad = numeric_failures.loc[numeric_failures["column"] == column, "index"]
        numeric[column] = number.mask(number.index.isin(bad)).astype(float)
    for column, values in numeric.items():
        data[column] = values
    data["session"] = pd.to_numeric(data["session"]).astype(int)
    for kind in ("therapy", "condition"):
        data[kind] = data[kind].map(labels[kind])

    data, duplicate_findings = _duplicates(data, sessions_file, policy)
    findings += duplicate_findings
    flow.add("one row per patient and session", data, "duplicate rows removed")

    therapists_per_patient = data.groupby("patient")["therapist"].nunique()
    switchers = therapists_per_patient[therapists_per_patient > 1].index
    if len(switchers) and policy["patient_switches_therapist"] == "stop":
        raise InputErrors(
            [Finding(sessions_file, None, "therapist", p, "patient has more than one therapist", "stop") for p in switchers]
        )
    for patient in switchers:
        rows = data.loc[data["patient"] == patient]
        findings.append(
            Finding(
                sessions_file, int(rows[ROW].iloc[0]), "therapist", patient,
                "patient switches therapist (" + ", ".join(rows["therapist"].unique()) + "); cross-classified",
                "kept and flagged (therapist_switch)",
            )
        )
    data["therapist_switch"] = data["patient"].isin(switchers)

    # 5. scores, outcome on the common scale, derived variables
    data = data.sort_values(["patient", "session"]).reset_index(drop=True)
    scored = _score_measures(data, dataset["measures"], registry, {c: data[c] for c in ranges})
    data = pd.concat([data, scored], axis=1)
    alliance_key = analysis["alliance_measure"]
    data["alliance"] = data[f"{alliance_key}_{analysis.get('alliance_score', 'mean')}"]
    outcome_key = data["condition"].map(analysis["outcome_by_condition"])
    instrument_ids = {key: m["instrument"] for key, m in dataset["measures"].items()}
    data["outcome_measure"] = outcome_key.map(instrument_ids)
    raw_outcome = pd.Series(np.nan, index=data.index)
    for key in sorted(set(analysis["outcome_by_condition"].values())):
        rows = outcome_key == key
        raw_outcome[rows] = data.loc[rows, f"{key}_total"]
    data["symptoms_raw"] = raw_outcome
    first_session = data.groupby("patient")["session"].transform("min")
    data["symptoms"] = _common_scale(
        raw_outcome, data["outcome_measure"], registry, analysis.get("outcome_scale", "pomp"),
        baseline_rows=data["session"] == first_session,
    )
    data["session_c"] = data["session"] - 1
    data = pd.concat(
        [
            data,
            derive.decompose_within_between(data, "alliance"),
            derive.decompose_within_between(data, "symptoms"),
        ],
        axis=1,
    )
    data = pd.concat(
        [
            data,
            derive.next_session_values(data, ["symptoms", "alliance"]),
            derive.previous_session_values(data, ["symptoms", "alliance"]),
        ],
        axis=1,
    )
    flow.add("analysis dataset", data, "")
    usable = data["alliance"].notna() & data["symptoms"].notna()
    flow.add("alliance and outcome both present", data.loc[usable], "rows without alliance or outcome score")

    patients = _patient_level(data, patients_raw, patients_file, dataset, analysis, registry, policy, findings)
    keep_patient = [c for c in ("age_band", "sex", "expectancy", "dropout") if c in patients.columns]
    if keep_patient:
        data = data.merge(patients[["patient"] + keep_patient], on="patient", how="left")

    dictionary = data_dictionary(data, patients, dataset, registry)
    findings_frame = findings_to_frame(findings)
    summary = _summary(data, patients, findings_frame, sessions_meta, patients_meta, dataset, analysis)
    return CleanResult(
        sessions=data.drop(columns=[ROW]).rename(columns={}),
        patients=patients,
        dictionary=dictionary,
        findings=findings_frame,
        flow=flow.frame(),
        summary=summary,
    )


def _patient_level(
    data: pd.DataFrame, patients_raw: pd.DataFrame | None, patients_file: str | None,
    dataset: dict[str, Any], analysis: dict[str, Any], registry: dict[str, Instrument],
    policy: dict[str, Any], findings: list[Finding],
) -> pd.DataFrame:
    """One row per patient: design, baseline and end scores, change, early alliance, dropout."""
    first = data.groupby("patient", sort=True).first()
    patients = pd.DataFrame(
        {
            "therapist": first["therapist"],
            "therapy": first["therapy"],
            "condition": first["condition"],
            "outcome_measure": first["outcome_measure"],
            "n_sessions": data.groupby("patient")["session"].size(),
            "last_session": data.groupby("patient")["session"].max(),
            "therapist_switch": first["therapist_switch"],
        }
    )
    if "site" in data.columns:
        patients.insert(0, "site", first["site"])
    patients = patients.join(derive.first_and_last_observed(data, "symptoms_raw"))
    patients = patients.join(derive.first_and_last_observed(data, "symptoms")[["symptoms_baseline", "symptoms_last", "symptoms_change"]])
    patients["alliance_s3"] = derive.value_at_session(data, "alliance", 3)
    patients["alliance_s1_4"] = derive.mean_over_sessions(data, "alliance", 1, 4)
    patients["symptoms_s3"] = derive.value_at_session(data, "symptoms", 3)
    for method in ("fixed", "jacobson_truax"):
        parts = []
        for instrument_id, rows in patients.groupby("outcome_measure"):
            instrument = registry[instrument_id]
            if method == "fixed" and instrument.reliable_change is None:
                continue
            change = reliable_change(rows["symptoms_raw_baseline"], rows["symptoms_raw_last"], instrument, method=method)
            parts.append(change["category"])
        if parts:
            patients[f"change_category_{method}"] = pd.concat(parts)
    patients = patients.reset_index()

    if patients_raw is not None:
        mapping = dataset.get("patient_columns") or {"patient": dataset["columns"]["patient"]}
        table = _rename(patients_raw, mapping, patients_file, required=("patient",))
        table = table.loc[:, [ROW] + list(mapping)]
        duplicated = table.duplicated("patient", keep="first")
        if duplicated.any():
            raise InputErrors(
                [Finding(patients_file, int(r.row), "patient", r.patient, "patient listed twice in the patients file", "stop")
                 for r in table.loc[duplicated, [ROW, "patient"]].rename(columns={ROW: "row"}).itertuples()]
            )
        for column in ("expectancy", "planned_sessions"):
            if column in table.columns:
                table[column] = pd.to_numeric(table[column], errors="coerce")
        unmatched = sorted(set(patients["patient"]) - set(table["patient"].astype(str)))
        for patient in unmatched[:20]:
            findings.append(Finding(patients_file, None, "patient", patient, "patient has sessions but no row in the patients file", "kept; covariates missing"))
        patients = patients.merge(table.drop(columns=[ROW]), on="patient", how="left")
        findings += small_cells(patients, ("site", "age_band", "sex"), file=patients_file)

    definition = policy["dropout_definition"]
    if definition == "end_reason" and "end_reason" in patients.columns:
        patients["dropout"] = patients["end_reason"].astype("string").str.lower().eq("dropout")
    elif definition == "fewer_than_planned" and "planned_sessions" in patients.columns:
        patients["dropout"] = patients["last_session"] < patients["planned_sessions"]
    else:
        patients["dropout"] = pd.NA
    return patients


DICTIONARY: dict[str, tuple[str, str]] = {
    "patient": ("Patient pseudonymous id", ""),
    "therapist": ("Therapist pseudonymous id (of that session)", ""),
    "site": ("Site", ""),
    "session": ("Session number (from the lab's session column; gaps kept)", "session"),
    "session_c": ("Session number minus 1 (0 = first session)", "sessions"),
    "therapy": ("Therapy type, canonical label", ""),
    "condition": ("Primary problem, canonical label", ""),
    "therapist_switch": ("Patient was seen by more than one therapist", "bool"),
    "alliance": ("Session alliance score (analysis.alliance_score of the alliance measure)", "score"),
    "outcome_measure": ("Instrument of the condition's primary outcome", ""),
    "symptoms_raw": ("Primary outcome total on its own instrument's scale", "points"),
    "symptoms": ("Primary outcome on the common scale (analysis.outcome_scale)", "scale"),
    "alliance_next": ("Alliance at session t+1 (missing where t+1 not observed)", "score"),
    "symptoms_next": ("Symptoms at session t+1 (missing where t+1 not observed)", "scale"),
    "alliance_prev": ("Alliance at session t-1", "score"),
    "symptoms_prev": ("Symptoms at session t-1", "scale"),
    "dropout": ("Dropped out (cleaning.dropout_definition)", "bool"),
}
DECOMPOSITION = {
    "patient_mean": "patient mean over sessions",
    "within_patient": "within-patient deviation from the patient mean (state)",
    "between_patient": "patient mean minus grand mean of patient means",
    "therapist_mean": "therapist mean of patient means (each patient weight 1)",
    "patient_within_therapist": "patient mean minus therapist mean",
    "between_therapist": "therapist mean minus grand mean of patient means",
    "n_sessions": "number of sessions behind the patient mean",
}


def data_dictionary(
    sessions: pd.DataFrame, patients: pd.DataFrame, dataset: dict[str, Any], registry: dict[str, Instrument]
) -> pd.DataFrame:
    """Every column of both output tables: meaning, units, source column, instrument."""
    rows = []
    lab_names = dataset["columns"]
    measure_of = {}
    for key, measure in dataset["measures"].items():
        instrument = registry[measure["instrument"]]
        source = item_columns(measure, instrument.n_items) if "items" in measure else [measure["total"]]
        for column in source:
            measure_of[column] = (key, instrument.id, f"item of {instrument.id}" if "items" in measure else f"{instrument.id} supplied score")
        for suffix, meaning in (("total", "total score (prorated)"), ("mean", "mean item score"), ("n_missing_items", "missing items"), ("prorated", "total prorated from answered items")):
            measure_of[f"{key}_{suffix}"] = (key, instrument.id, meaning)
        for sub in instrument.subscales:
            measure_of[f"{key}_sub_{sub}"] = (key, instrument.id, f"subscale {sub}")
    for table, frame in (("sessions", sessions), ("patients", patients)):
        for column in frame.columns:
            if column == ROW:
                continue
            meaning, units, source, instrument = "", "", "derived", ""
            if column in DICTIONARY:
                meaning, units = DICTIONARY[column]
            elif column in measure_of:
                key, instrument, meaning = measure_of[column]
                source = column if column in [c for cols in [measure_of] for c in cols] else "derived"
            else:
                for variable in ("alliance", "symptoms"):
                    for part, text in DECOMPOSITION.items():
                        if column == f"{variable}_{part}":
                            meaning = f"{variable}: {text}"
            if column in lab_names:
                source = lab_names[column]
            rows.append({"table": table, "column": column, "meaning": meaning or column.replace("_", " "),
                         "units": units, "source": source, "instrument": instrument, "dtype": str(frame[column].dtype)})
    return pd.DataFrame(rows)


def _summary(
    data: pd.DataFrame, patients: pd.DataFrame, findings: pd.DataFrame, sessions_meta: dict,
    patients_meta: dict | None, dataset: dict[str, Any], analysis: dict[str, Any],
) -> dict[str, Any]:
    """Sample sizes per level, design cells, missingness and input checksums."""
    per_patient = data.groupby("patient")["session"].size()
    per_therapist = data.groupby("therapist")["patient"].nunique()
    cells = patients.groupby(["therapy", "condition"]).size().rename("patients").reset_index()
    usable = data["alliance"].notna() & data["symptoms"].notna()
    return {
        "dataset": dataset["name"],
        "inputs": {
            "sessions": {"path": dataset["sessions"]["path"], "sha256": sessions_meta.get("sha256"), "rows": sessions_meta.get("n_rows")},
            **({"patients": {"path": dataset["patients"]["path"], "sha256": patients_meta.get("sha256"), "rows": patients_meta.get("n_rows")}} if patients_meta else {}),
        },
        "rows": int(len(data)),
        "rows_with_alliance_and_outcome": int(usable.sum()),
        "patients": int(data["patient"].nunique()),
        "therapists": int(data["therapist"].nunique()),
        "sessions_per_patient": {"mean": round(float(per_patient.mean()), 4), "min": int(per_patient.min()), "max": int(per_patient.max())},
        "patients_per_therapist": {"mean": round(float(per_therapist.mean()), 4), "min": int(per_therapist.min()), "max": int(per_therapist.max())},
        "design_cells": cells.to_dict(orient="records"),
        "missing_share": {c: round(float(data[c].isna().mean()), 6) for c in ("alliance", "symptoms")},
        "dropout_rate": round(float(patients["dropout"].astype(float).mean()), 6) if patients["dropout"].notna().any() else None,
        "findings": {str(k): int(v) for k, v in findings.groupby("action").size().items()} if len(findings) else {},
        "outcome_scale": analysis.get("outcome_scale", "pomp"),
        "alliance_score": analysis.get("alliance_score", "mean"),
        "outcome_by_condition": {c: dataset["measures"][k]["instrument"] for c, k in analysis["outcome_by_condition"].items()},
        "patient_switches": int(patients["therapist_switch"].sum()),
    }
