"""The data dictionary: meaning, units, source column, instrument and dtype of every output column.

Each column of the sessions and patients tables is described here, in the
words of the config that produced it (the lab's column names, the instruments,
the outcome scale). The descriptions are grouped as the tables are built:
design columns, measures, session variables, patient variables, the patients
file's covariates. A column without a description is a programming error, so
the dictionary never falls back on the column name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from alliance.intake.config import supplied_score
from alliance.intake.deid import AGE_TOPCODE_LIMIT, AGE_TOPCODE_VALUE
from alliance.intake.instruments import RCI_CRITICAL
from alliance.intake.layout import DESIGN_COLUMNS, Layout, item_column
from alliance.intake.registry import Instrument
from alliance.intake.reliability import already_keyed

#: (table, or None for both tables; column) -> (meaning, units, source, instrument).
Descriptions = dict[tuple[str | None, str], tuple[str, str, str, str]]


@dataclass(frozen=True)
class Context:
    """What the data dictionary needs to know about the run (``analysis`` with every setting)."""

    dataset: dict[str, Any]
    analysis: dict[str, Any]
    registry: dict[str, Instrument]
    layout: Layout
    patients_layout: Layout | None


DECOMPOSITION = {
    "patient_mean": ("the patient's mean over every session with a value (person mean; methods wai_pm)", None),
    "within_patient": ("deviation from the patient's own mean (within-patient, state-like; methods wai_cwc)", None),
    "between_patient": (
        "patient mean minus the grand mean of patient means (between-patient, two-level; methods wai_pm_c)",
        None,
    ),
    "therapist_mean": (
        "mean of the patient means of the patient's (first) therapist, each patient weight 1 (methods wai_tm)",
        None,
    ),
    "patient_within_therapist": (
        "patient mean minus the therapist mean (patient within therapist; methods wai_pm_cwt)",
        None,
    ),
    "between_therapist": (
        "therapist mean minus the grand mean of patient means (between-therapist; methods wai_tm_c)",
        None,
    ),
    "n_sessions": ("number of sessions behind the patient mean", "sessions"),
}

#: Units of the primary outcome per ``analysis.outcome_scale``.
OUTCOME_SCALE_UNITS = {
    "pomp": "POMP, percent of the maximum possible score (0-100)",
    "baseline_z": "z, SD units of the measure's baseline scores",
    "raw": "total points of the instrument",
}
#: Units of the raw primary outcome, whatever the scale.
RAW_OUTCOME_UNITS = "total points of the condition's instrument"


class _Book:
    """The descriptions, filled group by group (a later entry for the same key replaces an earlier one)."""

    def __init__(self) -> None:
        self.entries: Descriptions = {}

    def put(
        self,
        column: str,
        meaning: str,
        units: str = "",
        source: str = "",
        instrument: str = "",
        table: str | None = None,
    ) -> None:
        """Describe ``column`` (of ``table``, or of both tables when None)."""
        self.entries[(table, column)] = (meaning, units, source, instrument)


@dataclass(frozen=True)
class _Outcomes:
    """Units and instruments of the alliance and the primary outcome, shared by several groups."""

    alliance: Instrument
    alliance_key: str
    score: str
    alliance_units: str
    outcome_instruments: str
    symptoms_units: str
    scale: str
    outcome_totals: str

    @classmethod
    def of(cls, ctx: Context) -> _Outcomes:
        """The units and instruments of ``ctx``'s alliance measure and primary outcomes."""
        measures = ctx.dataset["measures"]
        alliance_key = ctx.analysis["alliance_measure"]
        alliance = ctx.registry[measures[alliance_key]["instrument"]]
        score = ctx.analysis["alliance_score"]
        low, high = alliance.score_range(score)
        alliance_units = f"{alliance.id} {'mean item score' if score == 'mean' else 'total'} ({low:g}-{high:g})"
        outcomes = {c: measures[k]["instrument"] for c, k in ctx.analysis["outcome_by_condition"].items()}
        outcome_instruments = "; ".join(f"{i} ({c})" for c, i in outcomes.items())
        scale = ctx.analysis["outcome_scale"]
        outcome_totals = ", ".join(f"{k}_total" for k in dict.fromkeys(ctx.analysis["outcome_by_condition"].values()))
        return cls(
            alliance,
            alliance_key,
            score,
            alliance_units,
            outcome_instruments,
            OUTCOME_SCALE_UNITS[scale],
            scale,
            outcome_totals,
        )


def _describe_design(book: _Book, ctx: Context) -> None:
    """The sessions file's design columns (ids, session, time, therapy, condition); a design
    column of the patients file only is named with that file."""
    patients_lab = ctx.patients_layout.lab if ctx.patients_layout else {}
    from_patients = {c: f"{patients_lab[c]} (patients file)" for c in DESIGN_COLUMNS if c in patients_lab}
    put, lab = book.put, {**from_patients, **ctx.layout.lab}
    put(
        "source_row",
        "Row of this session in the sessions file (header = row 1), to trace a value back",
        "row number",
        ctx.layout.file,
    )
    put("patient", "Patient pseudonymous id", "", lab["patient"])
    put("therapist", "Therapist pseudonymous id of this session", "", lab.get("therapist", ""), table="sessions")
    put(
        "therapist",
        "Therapist of the patient's first session (the patient's therapist in therapist-level variables)",
        "",
        lab.get("therapist", ""),
        table="patients",
    )
    put(
        "site",
        "Site (study centre) of the session; in the patients table, of the first session",
        "",
        lab.get("site", ""),
    )
    put("study", "Study the session belongs to", "", lab.get("study", ""))
    put("session", "Session number as recorded (gaps where sessions were missed)", "session number", lab["session"])
    date_note = ""
    if ctx.layout.origin.get("days_since_intake") == "cleaning.deidentification.dates_to_days":
        date_note = " (computed from full dates, which were then dropped)"
    put(
        "days_since_intake",
        f"Days since the patient's first recorded date{date_note}",
        "days",
        lab.get("days_since_intake", ""),
    )
    put("therapy", "Therapy type, canonical label (dataset.labels.therapy)", "", lab["therapy"])
    put("condition", "Primary problem, canonical label (dataset.labels.condition)", "", lab["condition"])
    put("alliance_rater", "Who rated the alliance (as recorded)", "", lab.get("alliance_rater", ""))


def _describe_measures(book: _Book, ctx: Context) -> None:
    """Every measure's items (if given) and scores."""
    put, lab = book.put, ctx.layout.lab
    for key, measure in ctx.dataset["measures"].items():
        inst = ctx.registry[measure["instrument"]]
        mean_low, mean_high = inst.score_range("mean")
        item_units = f"{mean_low:g}-{mean_high:g}"  # the mean's; each item's below (item_ranges)
        total_units = f"points ({inst.total_min:g}-{inst.total_max:g})"
        if "items" in measure:
            sources = [lab[item_column(key, k)] for k in range(1, inst.n_items + 1)]
            from_items = f"derived from items {sources[0]} ... {sources[-1]}"
            for k, source in enumerate(sources, start=1):
                reverse = (
                    ""
                    if k not in inst.reverse_items
                    else (
                        "; reverse-keyed, already keyed in the export (already_keyed: true)"
                        if already_keyed(measure)
                        else "; reverse-keyed in scoring"
                    )
                )
                low, high = inst.item_range(k)
                put(
                    item_column(key, k),
                    f"{inst.name}: item {k} as answered{reverse} (invalid values set missing)",
                    f"{low:g}-{high:g}",
                    source,
                    inst.id,
                )
            rule = (
                f"prorated as {inst.n_items} x the mean of the answered items when at most "
                f"{inst.prorate_max_missing} of {inst.n_items} items are missing, else missing"
            )
            put(
                f"{key}_total", f"{inst.name}: total score, sum of the items ({rule})", total_units, from_items, inst.id
            )
            put(
                f"{key}_mean",
                f"{inst.name}: mean item score (same missing-item rule as the total)",
                item_units,
                from_items,
                inst.id,
            )
            put(f"{key}_n_missing_items", f"{inst.name}: number of missing items", "items", from_items, inst.id)
            put(
                f"{key}_prorated",
                f"{inst.name}: the total was prorated from the answered items",
                "true/false",
                from_items,
                inst.id,
            )
            for name, items in inst.subscales.items():
                metric = "sum" if inst.score == "sum" else "mean"
                put(
                    f"{key}_sub_{name}",
                    f"{inst.name}: {name} subscale, {metric} of items {', '.join(map(str, items))} "
                    f"(at most {inst.subscale_max_missing(name)} missing)",
                    "points" if metric == "sum" else item_units,
                    from_items,
                    inst.id,
                )
        else:
            supplied = lab[f"{key}_{supplied_score(measure)}"]
            if supplied_score(measure) == "total":
                put(
                    f"{key}_total",
                    f"{inst.name}: total score as supplied in the file (out-of-range values set missing)",
                    total_units,
                    supplied,
                    inst.id,
                )
                put(
                    f"{key}_mean",
                    f"{inst.name}: mean item score, the supplied total / {inst.n_items}",
                    item_units,
                    f"derived from {supplied}",
                    inst.id,
                )
            else:
                put(
                    f"{key}_mean",
                    f"{inst.name}: mean item score as supplied in the file (out-of-range values set missing)",
                    item_units,
                    supplied,
                    inst.id,
                )
                put(
                    f"{key}_total",
                    f"{inst.name}: total score, {inst.n_items} x the supplied mean item score",
                    total_units,
                    f"derived from {supplied}",
                    inst.id,
                )


def _describe_session_variables(book: _Book, o: _Outcomes) -> None:
    """The session-level variables derived from the scores (alliance, outcome, centring, lags)."""
    put = book.put
    alliance, alliance_units, symptoms_units = o.alliance, o.alliance_units, o.symptoms_units
    outcome_instruments, score, alliance_key = o.outcome_instruments, o.score, o.alliance_key
    raw_units, outcome_totals, scale = RAW_OUTCOME_UNITS, o.outcome_totals, o.scale
    put(
        "therapist_switch",
        "The patient was seen by more than one therapist (cross-classified)",
        "true/false",
        "derived from therapist",
    )
    put(
        "alliance",
        f"Session alliance score: the {score} score of measure '{alliance_key}' (analysis.alliance_score)",
        alliance_units,
        f"derived from {alliance_key}_{score}",
        alliance.id,
    )
    put(
        "outcome_measure",
        "Instrument of the primary outcome of the patient's condition (analysis.outcome_by_condition)",
        "",
        "derived from condition",
    )
    put(
        "symptoms_raw",
        "Primary outcome total on its instrument's own scale",
        raw_units,
        f"derived from {outcome_totals}",
        outcome_instruments,
    )
    put(
        "symptoms",
        f"Primary outcome on the common scale (analysis.outcome_scale: {scale})",
        symptoms_units,
        "derived from symptoms_raw",
        outcome_instruments,
    )
    put("session_c", "Session number minus 1 (0 = first session)", "sessions", "derived from session")
    put(
        "session_index",
        "Position among the patient's attended sessions (1, 2, 3, ...; no gaps)",
        "sessions",
        "derived from session",
    )
    for variable, units, instrument in (
        ("alliance", alliance_units, alliance.id),
        ("symptoms", symptoms_units, outcome_instruments),
    ):
        for part, (meaning, part_units) in DECOMPOSITION.items():
            put(
                f"{variable}_{part}",
                f"{variable.capitalize()}: {meaning}",
                part_units or units,
                f"derived from {variable}",
                instrument,
            )
        put(
            f"{variable}_next",
            f"{variable.capitalize()} at session t+1 of the same patient (missing where session t+1 was not attended)",
            units,
            f"derived from {variable}, session",
            instrument,
        )
        put(
            f"{variable}_prev",
            f"{variable.capitalize()} at session t-1 of the same patient (missing where session t-1 was not attended)",
            units,
            f"derived from {variable}, session",
            instrument,
        )
    put(
        "alliance_within_patient_detrended",
        "Alliance: within-patient deviation with the patient's own linear trend over sessions removed (residual "
        "of the patient's least-squares line on session number; missing with fewer than 3 rated sessions; "
        "methods wai_dt)",
        alliance_units,
        "derived from alliance, session",
        alliance.id,
    )


def _describe_patient_variables(book: _Book, o: _Outcomes) -> None:
    """The patient-level variables: sessions, baseline / last / change, early alliance, reliable change."""
    put = book.put
    alliance, alliance_units, symptoms_units = o.alliance, o.alliance_units, o.symptoms_units
    outcome_instruments, raw_units = o.outcome_instruments, RAW_OUTCOME_UNITS
    put("n_sessions", "Number of attended sessions (rows in the analysis dataset)", "sessions", "derived from session")
    put("first_session", "First attended session number", "session number", "derived from session")
    put("last_session", "Last attended session number", "session number", "derived from session")
    for variable, units in (("symptoms_raw", raw_units), ("symptoms", symptoms_units)):
        put(
            f"{variable}_baseline",
            "Primary outcome at the first session where it was recorded (baseline; need not be session 1)",
            units,
            f"derived from {variable}",
            outcome_instruments,
        )
        put(
            f"{variable}_last",
            "Primary outcome at the last session where it was recorded",
            units,
            f"derived from {variable}",
            outcome_instruments,
        )
        put(
            f"{variable}_change",
            "Last minus baseline primary outcome (missing with a single observation; negative = improvement)",
            units,
            f"derived from {variable}",
            outcome_instruments,
        )
    put(
        "symptoms_raw_baseline_session",
        "Session number of the baseline outcome score",
        "session number",
        "derived from symptoms_raw, session",
    )
    put(
        "symptoms_raw_last_session",
        "Session number of the last observed outcome score",
        "session number",
        "derived from symptoms_raw, session",
    )
    put(
        "alliance_s3",
        "Early alliance: alliance at session 3 (missing if session 3 was not attended or rated)",
        alliance_units,
        "derived from alliance",
        alliance.id,
    )
    put(
        "alliance_s1_4",
        "Early alliance: mean alliance over the rated sessions among sessions 1-4",
        alliance_units,
        "derived from alliance",
        alliance.id,
    )
    put(
        "symptoms_s3",
        "Primary outcome at session 3 (common scale)",
        symptoms_units,
        "derived from symptoms",
        outcome_instruments,
    )
    put(
        "alliance_pm_reliability",
        "Reliability of the patient's alliance mean, lambda_i = tau^2 / (tau^2 + "
        "sigma^2 / n_i) (methods section 4; tau^2 and sigma^2 in summary.json)",
        "0-1",
        "derived from alliance",
        alliance.id,
    )
    put(
        "rci_jacobson_truax",
        "Reliable change index (last - baseline) / S_diff, S_diff = sqrt(2) x baseline SD x "
        f"sqrt(1 - r_xx) (Jacobson & Truax 1991); |RCI| > {RCI_CRITICAL:g} is reliable",
        "z",
        "derived from symptoms_raw_baseline, symptoms_raw_last",
        outcome_instruments,
    )
    put(
        "change_category_fixed",
        "Recovered, improved, unchanged or deteriorated by the instrument's published fixed "
        "reliable-change threshold and clinical cut-off (missing where the instrument has none)",
        "category",
        "derived from symptoms_raw_baseline, symptoms_raw_last",
        outcome_instruments,
    )
    put(
        "change_category_jacobson_truax",
        "Recovered, improved, unchanged or deteriorated by the Jacobson & Truax "
        f"RCI (|RCI| > {RCI_CRITICAL:g}) and the instrument's clinical cut-off",
        "category",
        "derived from rci_jacobson_truax",
        outcome_instruments,
    )


def _describe_patients_file(book: _Book, ctx: Context) -> None:
    """The patients file's covariates and dropout."""
    put = book.put
    patient_lab = ctx.patients_layout.lab if ctx.patients_layout else {}
    put(
        "age",
        f"Age in years (ages over {AGE_TOPCODE_LIMIT} top-coded to {AGE_TOPCODE_VALUE})",
        "years",
        patient_lab.get("age", ""),
    )
    put("age_band", "Age band (as recorded in the patients file)", "", patient_lab.get("age_band", ""))
    put("sex", "Sex (as recorded in the patients file)", "", patient_lab.get("sex", ""))
    put("expectancy", "Treatment expectancy at intake", "as recorded", patient_lab.get("expectancy", ""))
    put("end_reason", "Reason treatment ended (as recorded)", "", patient_lab.get("end_reason", ""))
    put("planned_sessions", "Planned number of sessions", "sessions", patient_lab.get("planned_sessions", ""))
    definition = {
        "end_reason": "end_reason is 'dropout'",
        "fewer_than_planned": "last session before planned_sessions",
    }
    put(
        "dropout",
        "Dropped out of treatment (cleaning.dropout_definition: "
        + " / ".join(definition.values())
        + ", whichever is configured)",
        "true/false",
        "derived from end_reason or planned_sessions",
    )


def descriptions(ctx: Context) -> Descriptions:
    """(table or None for both, column) -> (meaning, units, source, instrument)."""
    book = _Book()
    outcomes = _Outcomes.of(ctx)
    _describe_design(book, ctx)
    _describe_measures(book, ctx)
    _describe_session_variables(book, outcomes)
    _describe_patient_variables(book, outcomes)
    _describe_patients_file(book, ctx)
    return book.entries


def data_dictionary(sessions: pd.DataFrame, patients: pd.DataFrame, context: Context) -> pd.DataFrame:
    """Every column of both output tables: meaning, units, source column, instrument, dtype.

    ``source`` is the lab's column for a column read from a file, else "derived
    from ...". A column without a description is a programming error (ValueError),
    so the dictionary never falls back on the column name.
    """
    entries = descriptions(context)
    rows = []
    for table, frame in (("sessions", sessions), ("patients", patients)):
        for column in frame.columns:
            entry = entries.get((table, column)) or entries.get((None, column))
            if entry is None:
                raise ValueError(f"the data dictionary has no description of column {column!r} of the {table} table")
            meaning, units, source, instrument = entry
            rows.append(
                {
                    "table": table,
                    "column": column,
                    "meaning": meaning,
                    "units": units,
                    "source": source,
                    "instrument": instrument,
                    "dtype": str(frame[column].dtype),
                }
            )
    return pd.DataFrame(rows)
