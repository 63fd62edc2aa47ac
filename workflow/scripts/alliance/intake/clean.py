"""Intake: a lab's export becomes a validated, scored, analysis-ready dataset.

:func:`clean_dataset` runs every step in memory and returns everything the stage
writes; the step script writes only after it returned, so a stopping error leaves
no partial results. The steps, in order:

1. check the config's cross-references (``alliance.intake.config``); read the files
   (``alliance.intake.readers``) and screen them for direct identifiers
   (``alliance.intake.screen``) before anything else; turn an opted-in date column into
   ``days_since_intake`` (``alliance.intake.deid``);
2. map the lab's column names onto the canonical ones (``alliance.intake.layout``:
   ``patient``, ``therapist``, ``session``, ..., items as ``<measure>_item_01`` ...),
   every absent column reported at once;
3. validate with pandera, lazily, so that every problem is found in one pass;
   then duplicates, therapist switches and the patients file (``alliance.intake.validation``);
4. apply the cleaning policy of the config: every problem that stops the run is
   raised together in one :class:`~alliance.intake.findings.InputErrors`; the others are
   repaired or the row is excluded, and recorded;
5. check every measure's keying against its item–rest correlations (a reverse key the data
   contradict stops the run) and estimate its reliability (``alliance.intake.reliability``);
   score the instruments (``alliance.intake.scoring``, ``alliance.intake.instruments``),
   put the outcome on the configured common scale, derive centred, detrended, lagged
   (``alliance.intake.derive``) and patient-level variables (``alliance.intake.patient_level``);
   describe every column (``alliance.intake.dictionary``) and the run (``alliance.intake.summary``).

Every repair is a row of the validation report, naming the lab's file, row
(header = row 1), column and value; every exclusion is a step of the exclusion
flow. Nothing here loops over rows or patients: per-row work is vectorised, and
loops run over columns, measures or the problems found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from alliance.intake.config import analysis_settings, check_dataset_config, cleaning_policy
from alliance.intake.deid import dates_to_days_since_intake
from alliance.intake.design import patients_design_checked, with_patients_design
from alliance.intake.design_checks import design_findings, patients_without_alliance, sessions_without_patient_row
from alliance.intake.dictionary import Context, data_dictionary
from alliance.intake.findings import SOURCE_ROW, STOP, Finding, InputError, InputErrors, findings_to_frame
from alliance.intake.layout import Layout, patients_layout, sessions_layout, table_options
from alliance.intake.patient_level import PATIENT_COVARIATES, patient_level
from alliance.intake.pseudonyms import IdentifierMask, id_columns, pseudonymise_ids, pseudonymised
from alliance.intake.readers import read_table
from alliance.intake.registry import Instrument
from alliance.intake.reliability import ITEM_REST_COLUMNS, RELIABILITY_COLUMNS, measure_reliability
from alliance.intake.repairs import trimmed_spaces, unify_ids
from alliance.intake.scoring import session_scores
from alliance.intake.screen import assert_deidentified
from alliance.intake.summary import run_summary
from alliance.intake.validation import (
    label_spellings,
    one_row_per_session,
    patients_table,
    sessions_checked,
    therapist_switches,
)


@dataclass
class CleanResult:
    """Everything the cleaning stage produces (see the module docstring)."""

    sessions: pd.DataFrame
    patients: pd.DataFrame
    dictionary: pd.DataFrame
    findings: pd.DataFrame
    flow: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    #: keying and reliability per measure and sample, and each item's item-rest r (alliance.intake.reliability)
    reliability: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RELIABILITY_COLUMNS))
    item_rest: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ITEM_REST_COLUMNS))


class _Flow:
    """Rows, patients and therapists remaining after each step (CONSORT-style)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def add(self, step: str, data: pd.DataFrame, reason: str = "") -> None:
        """Record what remains of ``data`` after ``step`` (``reason``: why rows left)."""
        self.steps.append(
            {
                "step": step,
                "rows": int(len(data)),
                "patients": int(data["patient"].nunique()),
                "therapists": int(data["therapist"].nunique()) if "therapist" in data else 0,  # none recorded
                "reason": reason,
            }
        )

    def frame(self) -> pd.DataFrame:
        """The steps as a table, with the rows, patients and therapists each step excluded."""
        flow = pd.DataFrame(self.steps)
        for level in ("rows", "patients", "therapists"):
            flow[f"{level}_excluded"] = (-flow[level].diff()).fillna(0).astype(int)
        return flow


@dataclass
class _Input:
    """One input file as read and screened: the table, the reader's metadata, its layout."""

    raw: pd.DataFrame
    meta: dict[str, Any]
    layout: Layout


# --------------------------------------------------------------------------- the stage


def clean_dataset(
    dataset: dict[str, Any],
    analysis: dict[str, Any],
    cleaning: dict[str, Any] | None = None,
    extra_instruments: dict[str, Any] | None = None,
) -> CleanResult:
    """Run the intake stage in memory (see the module docstring).

    Raises ``alliance.intake.config.ConfigError`` for a config mistake and
    :class:`~alliance.intake.findings.InputError` / :class:`~alliance.intake.findings.InputErrors`
    for input data that cannot be used; every stopping problem of the data is in
    one ``InputErrors``. Every finding, raised or returned, masks the patient, therapist and
    site ids it quotes (``alliance.intake.pseudonyms``).
    """
    mask = IdentifierMask()
    try:
        return _clean_dataset(dataset, analysis, cleaning, extra_instruments, mask)
    except InputError as error:
        raise mask.error(error) from None


def _clean_dataset(
    dataset: dict[str, Any],
    analysis: dict[str, Any],
    cleaning: dict[str, Any] | None,
    extra_instruments: dict[str, Any] | None,
    mask: IdentifierMask,
) -> CleanResult:
    """:func:`clean_dataset`; ``mask`` learns the lab's ids once the files are read."""
    cleaning = cleaning or {}
    policy, deid = cleaning_policy(cleaning)
    analysis = analysis_settings(analysis)
    registry = check_dataset_config(dataset, analysis, cleaning, extra_instruments)
    date_column = deid["dates_to_days"][0] if deid["dates_to_days"] else None
    flow = _Flow()
    findings: list[Finding] = []

    # 1. read and screen, before anything else; 2. canonical names, every absent column at once
    sessions, patients_input = _read_inputs(dataset, registry, deid, date_column, findings)
    for table in (sessions, patients_input) if patients_input else (sessions,):
        mask.learn(table.raw, table.layout)
    _check_columns(sessions, patients_input, date_column)
    id_stops = _spellings_repaired(sessions, patients_input, policy, findings)
    data = _canonical_sessions(sessions, deid, date_column)
    layout, sessions_meta = sessions.layout, sessions.meta
    del sessions  # the canonical copy is all that is needed from here on (memory)
    flow.add("rows read", data, layout.file)

    # 3. validate everything at once, then apply the policy: stop, or repair and record
    data, patients_file = _validated(data, layout, patients_input, dataset, policy, flow, findings, id_stops)

    # 4. the keying check (a contradiction stops the run) and reliability; scores, outcome on the
    # common scale, derived variables, the patient level
    reliability = measure_reliability(data, dataset, registry, layout)
    findings += reliability.findings
    keying_stops = [f for f in reliability.findings if f.is_stopping]
    if keying_stops:
        raise InputErrors(keying_stops, heading=_heading(len(keying_stops)))
    data = session_scores(data, dataset, analysis, registry)
    data = _design_checked(data, layout, analysis, policy, flow, findings)
    usable = data["alliance"].notna() & data["symptoms"].notna()
    flow.add(
        "rows with alliance and outcome",
        data.loc[usable],
        "alliance or outcome score missing (rows kept in the dataset; models leave them out)",
    )
    patients_file_layout = patients_input.layout if patients_input else None
    patients, patient_summary = patient_level(data, patients_file, patients_file_layout, registry, policy, findings)
    data, patients = _output_tables(data, patients)
    if pseudonymise_ids(dataset):
        data, patients = pseudonymised(data, patients)

    dictionary = data_dictionary(data, patients, Context(dataset, analysis, registry, layout, patients_file_layout))
    findings_frame = findings_to_frame(mask.findings(findings))
    summary = run_summary(
        data,
        patients,
        findings_frame,
        sessions_meta,
        patients_input.meta if patients_input else None,
        dataset,
        analysis,
        policy,
        date_column,
        patient_summary,
    )
    return CleanResult(
        sessions=data,
        patients=patients,
        dictionary=dictionary,
        findings=findings_frame,
        flow=flow.frame(),
        summary=summary,
        reliability=reliability.table,
        item_rest=reliability.items,
    )


def _read_inputs(
    dataset: dict[str, Any],
    registry: dict[str, Instrument],
    deid: dict[str, Any],
    date_column: str | None,
    findings: list[Finding],
) -> tuple[_Input, _Input | None]:
    """The sessions file and the patients file (if any), each read and screened for identifiers.

    The screen's warnings are appended to ``findings``; an identifier stops the run here.
    """
    missing_codes = sorted({str(c) for c in dataset.get("missing_codes", ["", "NA"])})

    def read_screened(table: dict[str, Any], layout: Layout, date_columns: list[str] | None) -> _Input:
        """One configured file read and screened; the screen's warnings go to ``findings``."""
        raw, meta = read_table(
            layout.file,
            **table_options(table),
            missing_codes=missing_codes,
            keep_codes=[layout.lab[c] for c in layout.numbers],
        )
        findings.extend(
            assert_deidentified(
                raw,
                file=layout.file,
                allowed_columns=deid["allowed_columns"],
                date_columns_to_days=date_columns,
                id_columns=id_columns(layout),
            )
        )
        return _Input(raw, meta, layout)

    sessions = read_screened(
        dataset["sessions"], sessions_layout(dataset, registry), [date_column] if date_column else None
    )
    patients = None
    if dataset.get("patients"):
        patients = read_screened(dataset["patients"], patients_layout(dataset), None)
    return sessions, patients


def _check_columns(sessions: _Input, patients: _Input | None, date_column: str | None) -> None:
    """Raise one InputErrors naming every mapped column absent from its file."""
    absent = sessions.layout.absent(sessions.raw)
    if date_column and date_column not in sessions.raw.columns:
        absent.append(
            Finding(
                sessions.layout.file,
                1,
                date_column,
                None,
                "the column is missing from the header (named by cleaning.deidentification.dates_to_days)",
                STOP,
            )
        )
    if patients is not None:
        absent += patients.layout.absent(patients.raw)
    if absent:
        raise InputErrors(absent, heading=_heading(len(absent)))


def _canonical_sessions(sessions: _Input, deid: dict[str, Any], date_column: str | None) -> pd.DataFrame:
    """The sessions file under canonical names, with ``days_since_intake`` from an opted-in date column.

    The date column's conversion is recorded in the layout (for the data dictionary).
    """
    layout = sessions.layout
    data = layout.canonical(sessions.raw)
    if date_column:
        days = dates_to_days_since_intake(
            sessions.raw, date_column, layout.lab["patient"], format=deid.get("date_format"), file=layout.file
        )
        data.insert(list(data.columns).index("session") + 1, "days_since_intake", days)
        layout.lab["days_since_intake"] = date_column
        layout.origin["days_since_intake"] = "cleaning.deidentification.dates_to_days"
    return data


def _validated(
    data: pd.DataFrame,
    layout: Layout,
    patients_input: _Input | None,
    dataset: dict[str, Any],
    policy: dict[str, Any],
    flow: _Flow,
    findings: list[Finding],
    stops: list[Finding],
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(sessions, patients file) validated and repaired by the policy, sorted by patient and session.

    Repairs are appended to ``findings`` and exclusions to ``flow``; every stopping
    problem of both files (and the earlier ``stops``) is raised at once.
    """
    labels = label_spellings(dataset)
    in_sessions = {kind: spellings for kind, spellings in labels.items() if kind in layout.lab}
    data, repairs, session_stops = sessions_checked(data, layout, in_sessions, policy)
    findings += repairs
    stops = [*stops, *session_stops]
    flow.add(
        "valid session number",
        data,
        "session number missing, not a positive whole number, not finite or outside its plausible range",
    )

    data, repairs, duplicate_stops = one_row_per_session(data, layout, policy)
    findings += repairs
    stops += duplicate_stops
    flow.add("one row per patient and session (analysis dataset)", data, "duplicate rows removed")

    data = data.sort_values(["patient", "session"], kind="stable").reset_index(drop=True)
    if "therapist" in data:  # a design without therapists (no dataset.columns.therapist) has no switches
        data["therapist_switch"], repairs, switch_stops = therapist_switches(data, layout, policy)
        findings += repairs
        stops += switch_stops

    table = None
    if patients_input is not None:
        table, repairs, patient_stops = patients_table(patients_input.raw, patients_input.layout, policy)
        findings += repairs
        stops += patient_stops
        # design columns of the patients file: labels made canonical, copied onto the session rows
        table, label_stops = patients_design_checked(table, patients_input.layout, labels)
        data, repairs, design_stops = with_patients_design(data, layout, table, patients_input.layout, policy, labels)
        findings += repairs
        stops += label_stops + design_stops
        data, repairs, unlisted_stops = sessions_without_patient_row(
            data, table, layout, patients_input.layout.file, policy
        )
        findings += repairs
        stops += unlisted_stops
        if policy["sessions_without_patient_row"] == "exclude":
            flow.add("patients with a row in the patients file", data, "sessions of patients the patients file lacks")
    if stops:
        raise InputErrors(stops, heading=_heading(len(stops)))
    return data, table


def _spellings_repaired(
    sessions: _Input, patients: _Input | None, policy: dict[str, Any], findings: list[Finding]
) -> list[Finding]:
    """Id spellings unified and surrounding spaces trimmed in the raw tables (repairs to ``findings``);
    returns the stopping findings (ids that differ only in case or spaces, when they stop)."""
    tables = [(sessions.raw, sessions.layout)] + ([(patients.raw, patients.layout)] if patients else [])
    repairs, stops = unify_ids(tables, policy)
    findings += repairs
    for raw, layout in tables:
        findings += trimmed_spaces(raw, layout)
    return stops


def _design_checked(
    data: pd.DataFrame,
    layout: Layout,
    analysis: dict[str, Any],
    policy: dict[str, Any],
    flow: _Flow,
    findings: list[Finding],
) -> pd.DataFrame:
    """Patients without an alliance score by the policy, then the design checks: what the models need.

    Raises one InputErrors with every stopping finding (a design no model can use, or patients
    without alliance under ``stop``).
    """
    data, repairs, stops = patients_without_alliance(data, layout, policy)
    findings += repairs
    if policy["patients_without_alliance"] == "exclude":
        flow.add("patients with an alliance score", data, "no alliance score in any session")
    stops += design_findings(data, layout, analysis["alliance_measure"])
    if stops:
        raise InputErrors(stops, heading=_heading(len(stops)))
    return data


def _output_tables(data: pd.DataFrame, patients: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(sessions, patients) as written: covariates on every session, ``source_row`` first, tidy dtypes."""
    covariates = [c for c in PATIENT_COVARIATES if c in patients.columns]
    data = data.merge(patients[["patient", *covariates]], on="patient", how="left")
    data = data.rename(columns={SOURCE_ROW: "source_row"})
    data = _tidy_dtypes(data[["source_row", *[c for c in data.columns if c != "source_row"]]])
    return data, _tidy_dtypes(patients)


def _heading(n: int) -> str:
    """The heading of the InputErrors that stops the run with ``n`` problems."""
    problems = f"{n} problem{'s' if n != 1 else ''}"
    verb = "stops" if n == 1 else "stop"
    return f"{problems} in the input data {verb} the run; nothing was written"


def _tidy_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """One dtype per kind of column: str, float64, int64/Int64, bool/boolean."""
    out = {}
    for column in frame.columns:
        s = frame[column]
        dtype = s.dtype
        if isinstance(dtype, pd.ArrowDtype):
            import pyarrow as pyarrow_types

            arrow = dtype.pyarrow_dtype
            if pyarrow_types.types.is_floating(arrow):
                s = s.astype("float64")
            elif pyarrow_types.types.is_boolean(arrow):
                s = s.astype("boolean")
            elif pyarrow_types.types.is_integer(arrow):
                s = s.astype("Int64")
            else:
                s = s.astype("str")
        elif pd.api.types.is_string_dtype(dtype) or dtype == object:  # noqa: E721 (numpy dtype equality, not a type identity)
            kind = pd.api.types.infer_dtype(s, skipna=True)
            if kind == "boolean":
                s = s.astype("boolean")
            elif kind in ("floating", "integer", "mixed-integer-float"):
                s = s.astype("float64")
            else:
                s = s.astype("str")
        elif isinstance(dtype, pd.Float64Dtype):
            s = s.astype("float64")
        out[column] = s
    return pd.DataFrame(out, index=frame.index)
