"""Intake: a lab's export becomes a validated, scored, analysis-ready dataset.

:func:`clean_dataset` runs every step in memory and returns everything the stage
writes; the step script writes only after it returned, so a stopping error leaves
no partial results. The steps, in order:

1. check the config's cross-references (``alliance.intake.config``); read the files
   (``alliance.intake.readers``) and screen them for direct identifiers
   (``alliance.intake.deid``) before anything else; turn an opted-in date column into
   ``days_since_intake``;
2. map the lab's column names onto the canonical ones (``patient``,
   ``therapist``, ``session``, ..., items as ``<measure>_item_01`` ...), every
   absent column reported at once;
3. validate with pandera, lazily, so that every problem is found in one pass;
   then duplicates, therapist switches and the patients file;
4. apply the cleaning policy of the config: every problem that stops the run is
   raised together in one :class:`~alliance.intake.findings.InputErrors`; the others are
   repaired or the row is excluded, and recorded;
5. score the instruments (``alliance.intake.instruments``), put the outcome on the
   configured common scale, derive centred, detrended, lagged and patient-level
   variables (``alliance.intake.derive``).

Every repair is a row of the validation report, naming the lab's file, row
(header = row 1), column and value; every exclusion is a step of the exclusion
flow. Nothing here loops over rows or patients: per-row work is vectorised, and
loops run over columns, measures or the problems found.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from alliance.intake import derive
from alliance.intake.config import check_dataset_config, measure_columns
from alliance.intake.deid import assert_deidentified, dates_to_days_since_intake, small_cells, topcode_age
from alliance.intake.findings import STOP, WARN, Finding, InputErrors, findings_to_frame
from alliance.intake.instruments import Instrument, reliable_change, score_items
from alliance.intake.readers import SOURCE_ROW, read_table

DEFAULT_POLICY: dict[str, Any] = {
    "out_of_range_item": "set_missing",
    "non_numeric_value": "set_missing",
    "exact_duplicate_rows": "keep_first",
    "conflicting_duplicates": "stop",
    "invalid_session": "exclude_row",
    "patient_switches_therapist": "keep_and_flag",
    "dropout_definition": "end_reason",
    "deidentification": {"allowed_columns": [], "dates_to_days": [], "date_format": None},
}
#: Canonical columns of the sessions file, in output order (the first five are required).
SESSION_COLUMNS = (
    "patient", "therapist", "site", "study", "session", "days_since_intake", "therapy", "condition",
    "alliance_rater",
)
REQUIRED_SESSION_COLUMNS = ("patient", "therapist", "session", "therapy", "condition")
#: Canonical columns of the optional patients file.
PATIENT_COLUMNS = ("patient", "age", "age_band", "sex", "expectancy", "end_reason", "planned_sessions")
#: Patient covariates copied onto every session row of the analysis dataset.
PATIENT_COVARIATES = ("age", "age_band", "sex", "expectancy", "dropout")
ROW = SOURCE_ROW
#: Lowest person-mean reliability reported as adequate in the summary.
LAMBDA_ADEQUATE = 0.7

#: Which cleaning key decides about each kind of validation failure (None: always stops).
CHECK_POLICY = {
    "present": None,
    "known_label": None,
    "unique_patient": None,
    "session_number": "invalid_session",
    "numeric_value": "non_numeric_value",
    "within_range": "out_of_range_item",
    "whole_number": "out_of_range_item",
}
REPAIR_ACTION = {
    "session_number": "row excluded",
    "numeric_value": "set to missing",
    "within_range": "set to missing",
    "whole_number": "set to missing",
}


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


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Number:
    """A numeric column of an input file: its valid range and what it holds (for messages)."""

    low: float
    high: float
    integer: bool
    what: str

    def range_reason(self) -> str:
        if math.isinf(self.high):
            return f"is below {self.low:g}, the smallest possible {self.what}"
        return f"is outside the valid range {self.low:g}-{self.high:g} of {self.what}"

    def whole_reason(self) -> str:
        return f"is not a whole number ({self.what} takes whole numbers)"


@dataclass
class _Layout:
    """How one input file maps onto canonical columns.

    ``lab`` maps canonical -> the lab's column name (for messages and the data
    dictionary); ``numbers`` holds the numeric canonical columns and their rules.
    """

    file: str
    lab: dict[str, str]
    numbers: dict[str, _Number]
    origin: dict[str, str] = field(default_factory=dict)  # canonical -> config key that maps it

    def absent(self, raw: pd.DataFrame) -> list[Finding]:
        """One stopping finding per mapped column the file does not have."""
        present = [c for c in raw.columns if c != ROW]
        shown = ", ".join(present[:40]) + (", ..." if len(present) > 40 else "")
        return [
            Finding(
                self.file, 1, lab, None,
                f"the column is missing from the header (needed by {self.origin[canonical]}); "
                f"columns present: {shown}",
                STOP,
            )
            for canonical, lab in self.lab.items()
            if lab not in raw.columns
        ]

    def canonical(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The mapped columns under their canonical names (plus the row numbers), as text."""
        data = pd.DataFrame({ROW: raw[ROW].to_numpy()}, index=raw.index)
        for canonical, lab in self.lab.items():
            data[canonical] = _as_text(raw[lab])
        return data


def _sessions_layout(dataset: dict[str, Any], registry: dict[str, Instrument]) -> _Layout:
    columns = dataset["columns"]
    lab = {c: str(columns[c]) for c in SESSION_COLUMNS if c in columns}
    origin = {c: f"dataset.columns.{c}" for c in lab}
    numbers: dict[str, _Number] = {}
    if "days_since_intake" in lab:
        numbers["days_since_intake"] = _Number(0, math.inf, True, "days since intake")
    for key, measure in dataset["measures"].items():
        instrument = registry[measure["instrument"]]
        sources = measure_columns(measure, instrument)
        if "items" in measure:
            for k, column in enumerate(sources, start=1):
                canonical = f"{key}_item_{k:02d}"
                lab[canonical] = column
                origin[canonical] = f"dataset.measures.{key}.items"
                numbers[canonical] = _Number(
                    instrument.item_min, instrument.item_max, True, f"{instrument.id} item {k}"
                )
        else:
            score = measure.get("score", "total")
            canonical = f"{key}_{score}"
            lab[canonical] = sources[0]
            origin[canonical] = f"dataset.measures.{key}.total"
            low, high = instrument.score_range(score)
            what = f"the {instrument.id} total" if score == "total" else f"the {instrument.id} mean item score"
            numbers[canonical] = _Number(low, high, False, what)
    return _Layout(str(dataset["sessions"]["path"]), lab, numbers, origin)


def _patients_layout(dataset: dict[str, Any]) -> _Layout:
    mapping = dataset.get("patient_columns") or {"patient": dataset["columns"]["patient"]}
    lab = {c: str(mapping[c]) for c in PATIENT_COLUMNS if c in mapping}
    origin = {c: f"dataset.patient_columns.{c}" for c in lab}
    numbers = {
        "age": _Number(0, 120, False, "an age in years"),
        "expectancy": _Number(-math.inf, math.inf, False, "expectancy"),
        "planned_sessions": _Number(1, math.inf, True, "planned number of sessions"),
    }
    return _Layout(str(dataset["patients"]["path"]), lab, {c: n for c, n in numbers.items() if c in lab}, origin)


def _table_options(table: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": table.get("format"),
        "delimiter": table.get("delimiter"),
        "encoding": table.get("encoding", "utf-8"),
        "sheet": table.get("sheet"),
    }


# --------------------------------------------------------------------------- text and numbers


def _as_text(column: pd.Series) -> pd.Series:
    """Values as stripped text (missing and blank become missing), whatever the format gave.

    A whole number read from Excel, SPSS or Parquet (3.0) becomes "3", so that it
    matches a label spelling or an id written as text.
    """
    if column.dtype.kind in "fiu":
        numeric = column.astype(float)
        whole = numeric.notna() & np.isfinite(numeric) & (numeric == np.floor(numeric))
        text = numeric.astype("str").where(numeric.notna())
        text = text.mask(whole, numeric[whole].astype("int64").astype("str"))
    elif column.dtype == object:
        is_number = column.map(
            lambda v: isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        ).astype(bool)
        text = column.astype("str").where(column.notna())
        if is_number.any():
            text = text.mask(is_number, _as_text(pd.to_numeric(column[is_number], errors="coerce")))
    else:
        text = column.astype("str")
    text = text.str.strip()
    return text.mask(text == "")


def _to_float(text: pd.Series) -> pd.Series:
    """Text parsed as numbers (NaN where missing or not a number), float64.

    Parses each distinct value once: item columns hold a handful of them.
    """
    codes, uniques = pd.factorize(text, use_na_sentinel=True)
    numbers = pd.to_numeric(pd.Series(np.asarray(uniques, dtype=object)), errors="coerce")
    numbers = numbers.to_numpy(dtype="float64", na_value=np.nan)
    values = np.where(codes >= 0, numbers[np.maximum(codes, 0)] if len(numbers) else np.nan, np.nan)
    return pd.Series(values, index=text.index)


def _aligned(values: pd.Series, like: pd.Series) -> pd.Series:
    """``values`` on the index of ``like`` (no reindexing when the index is the same)."""
    if values.index.equals(like.index):
        return values
    return values.reindex(like.index)


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class _Rule:
    """One check of one canonical column: ``test`` returns True where a value is fine."""

    column: str
    check: str
    test: Callable[[pd.Series], pd.Series]
    reason: str
    missing_reason: str | None = None  # reason when the failing cell is empty


def _session_rules(labels: dict[str, dict[str, str]], numbers: dict[str, _Number], parsed: dict[str, pd.Series]) -> list[_Rule]:

    session_number = parsed["session"]

    def is_session_number(values: pd.Series) -> pd.Series:
        number = _aligned(session_number, values)
        return number.notna() & (number == np.floor(number)) & (number >= 1)

    rules = [
        _Rule("patient", "present", _is_present, "", "the patient id is missing; every row needs one"),
        _Rule("therapist", "present", _is_present, "", "the therapist id is missing; every row needs one"),
        _Rule(
            "session", "session_number", is_session_number,
            "is not a session number (a whole number from 1)",
            "the session number is missing; every row needs one",
        ),
    ]
    for kind, mapping in labels.items():
        known = frozenset(mapping)
        rules.append(
            _Rule(
                kind, "known_label", _label_check(known),
                f"is an unknown {kind} label; known spellings: {', '.join(sorted(known))}; "
                f"add it under dataset.labels.{kind} in the config",
                f"the {kind} label is missing; every row needs one",
            )
        )
    rules += _number_rules(numbers, parsed)
    return rules


def _number_rules(numbers: dict[str, _Number], parsed: dict[str, pd.Series]) -> list[_Rule]:
    rules = []
    for column, rule in numbers.items():
        number = parsed[column]

        def is_numeric_or_missing(values: pd.Series, number: pd.Series = number) -> pd.Series:
            return values.isna() | _aligned(number, values).notna()

        def is_within_range(values: pd.Series, number: pd.Series = number, rule: _Number = rule) -> pd.Series:
            n = _aligned(number, values)
            return n.isna() | n.between(rule.low, rule.high)

        def is_whole_number(values: pd.Series, number: pd.Series = number, rule: _Number = rule) -> pd.Series:
            n = _aligned(number, values)
            return n.isna() | ~n.between(rule.low, rule.high) | (n == np.floor(n))

        rules.append(_Rule(column, "numeric_value", is_numeric_or_missing, f"is text in a numeric column ({rule.what})"))
        rules.append(_Rule(column, "within_range", is_within_range, rule.range_reason()))
        if rule.integer:
            rules.append(_Rule(column, "whole_number", is_whole_number, rule.whole_reason()))
    return rules


# The check functions' names must differ from pandera's built-in checks (in_range, isin ...):
# pandera would dispatch to the built-in of that name instead.
def _is_present(values: pd.Series) -> pd.Series:
    return values.notna()


def _label_check(known: frozenset[str]) -> Callable[[pd.Series], pd.Series]:
    def is_known_label(values: pd.Series) -> pd.Series:
        return values.isin(known)

    return is_known_label


FAILURE_COLUMNS = ["row", "index", "column", "check", "value", "reason"]


def _validate(data: pd.DataFrame, rules: list[_Rule], order: list[str]) -> pd.DataFrame:
    """Lazy pandera validation of a canonical text table; one row per failing cell.

    Every rule runs on every row in one pass (``lazy=True``), so all problems of a
    file are known at once. Returns columns row (spreadsheet row), index, column
    (canonical), check, value (the cell as text, None if empty) and reason,
    sorted by row and by the column's position in ``order``.
    """
    by_column: dict[str, list[pa.Check]] = {}
    reasons: dict[tuple[str, str], _Rule] = {}
    for rule in rules:
        by_column.setdefault(rule.column, []).append(pa.Check(rule.test, name=rule.check, ignore_na=False))
        reasons[(rule.column, rule.check)] = rule
    schema = pa.DataFrameSchema(
        {column: pa.Column(None, checks, nullable=True) for column, checks in by_column.items()},
        strict=False, coerce=False,
    )
    empty = pd.DataFrame({c: pd.Series(dtype="object") for c in FAILURE_COLUMNS})
    try:
        schema.validate(data, lazy=True)
        return empty
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    # a check that raised instead of returning a mask has no index: a programming error
    crashed = cases.loc[cases["index"].isna()]
    if len(crashed):
        first = crashed.iloc[0]
        raise RuntimeError(f"validation check {first['check']} of column {first['column']} failed: {first['failure_case']}")
    if cases.empty:
        return empty
    index = cases["index"].astype("int64").to_numpy()
    columns = cases["column"].astype(str).to_numpy()
    checks = cases["check"].astype(str).to_numpy()
    values = [data.at[i, c] for i, c in zip(index, columns)]  # one per failing cell
    values = [None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]
    out = pd.DataFrame(
        {
            "row": data.loc[index, ROW].to_numpy(),
            "index": index,
            "column": columns,
            "check": checks,
            "value": pd.Series(values, dtype=object),
            "reason": [
                reasons[(c, k)].missing_reason if v is None and reasons[(c, k)].missing_reason else reasons[(c, k)].reason
                for c, k, v in zip(columns, checks, values)
            ],
        }
    )
    out["position"] = out["column"].map({c: i for i, c in enumerate(order)})
    return out.sort_values(["row", "position"], kind="stable").drop(columns="position").reset_index(drop=True)


def _findings(failures: pd.DataFrame, layout: _Layout, policy: dict[str, Any]) -> tuple[list[Finding], list[Finding]]:
    """Split validation failures into (stopping, repaired) findings by the cleaning policy."""
    stops, repairs = [], []
    for r in failures.itertuples(index=False):
        key = CHECK_POLICY[r.check]
        stop = key is None or policy[key] == "stop"
        finding = Finding(
            layout.file, int(r.row), layout.lab.get(r.column, r.column), r.value, r.reason,
            STOP if stop else REPAIR_ACTION[r.check],
        )
        (stops if stop else repairs).append(finding)
    return stops, repairs


# --------------------------------------------------------------------------- duplicates and switches


def _duplicates(
    data: pd.DataFrame, layout: _Layout, policy: dict[str, Any]
) -> tuple[pd.DataFrame, list[Finding], list[Finding]]:
    """Exact duplicate rows and conflicting rows of one patient and session.

    Returns (data with one row per patient and session, repaired findings, stopping
    findings). Vectorised: the loops below run over the duplicated rows only.
    """
    file, repairs, stops = layout.file, [], []
    content = [c for c in data.columns if c != ROW]
    exact = data.duplicated(subset=content, keep="first")
    if exact.any():
        copies = data.loc[data.duplicated(subset=content, keep=False)]
        first_row = copies.groupby(content, dropna=False, sort=False)[ROW].transform("first")
        stop = policy["exact_duplicate_rows"] == "stop"
        for row, original, patient, session in zip(
            copies.loc[exact, ROW], first_row[exact[exact].index], copies.loc[exact, "patient"], copies.loc[exact, "session"]
        ):
            finding = Finding(
                file, int(row), None, None,
                f"the row is an exact duplicate of row {int(original)} (patient {patient}, session {session})",
                STOP if stop else "dropped (earlier row kept)",
            )
            (stops if stop else repairs).append(finding)
        data = data.loc[~exact]

    conflict = data.duplicated(subset=["patient", "session"], keep=False)
    if conflict.any():
        rows = data.loc[conflict].sort_values([ROW])
        stop = policy["conflicting_duplicates"] == "stop"
        keys = ["patient", "session"]
        lead = rows.index.to_series(index=rows.index).groupby([rows["patient"], rows["session"]], sort=False)
        first = rows.loc[lead.transform("first").to_numpy()].set_axis(rows.index)
        later = rows.duplicated(subset=keys, keep="first")
        differs = rows[content].ne(first[content]) & ~(rows[content].isna() & first[content].isna())
        for index in rows.index[later]:
            row, patient, session = rows.at[index, ROW], rows.at[index, "patient"], rows.at[index, "session"]
            first_row = int(first.at[index, ROW])
            changed = [c for c in content if differs.at[index, c]] or ["patient"]
            column = "therapist" if "therapist" in changed else changed[0]
            value, earlier = rows.at[index, column], first.at[index, column]
            if column == "therapist":
                reason = (
                    f"is a second therapist for patient {patient} in session {session} "
                    f"(row {first_row} has '{earlier}'); one session has one therapist: "
                    "correct the session number or the therapist"
                )
            else:
                listed = ", ".join(layout.lab.get(c, c) for c in changed)
                reason = (
                    f"differs from row {first_row} ('{_shown(earlier)}'), which has the same patient "
                    f"{patient} and session {session}; columns that differ: {listed}"
                )
            finding = Finding(
                file, int(row), layout.lab.get(column, column), None if pd.isna(value) else _shown(value),
                reason, STOP if stop else "dropped (earlier row kept)",
            )
            (stops if stop else repairs).append(finding)
        data = data.loc[~data.duplicated(subset=keys, keep="first")]
    return data, repairs, stops


def _shown(value: Any) -> str:
    """A number as it was probably written (4.0 -> '4'), anything else as text."""
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and value == np.floor(value):
        return str(int(value))
    return str(value)


def _therapist_switches(
    data: pd.DataFrame, layout: _Layout, policy: dict[str, Any]
) -> tuple[pd.Series, list[Finding], list[Finding]]:
    """Flag patients seen by more than one therapist (data sorted by patient and session).

    One finding per switching patient, at the first session with another therapist.
    """
    first = data.groupby("patient", sort=False)["therapist"].transform("first")
    changed = data["therapist"] != first
    switch = data["patient"].isin(data.loc[changed, "patient"])
    stop = policy["patient_switches_therapist"] == "stop"
    findings = []
    at_change = data.loc[changed].drop_duplicates("patient")
    for row, patient, session, therapist, earlier in zip(
        at_change[ROW], at_change["patient"], at_change["session"], at_change["therapist"], first[at_change.index]
    ):
        reason = f"is a change of therapist for patient {patient} (from '{earlier}', at session {session})"
        if stop:
            reason += "; set cleaning.patient_switches_therapist: keep_and_flag to keep such patients"
        else:
            reason += f"; kept as cross-classified: '{earlier}' stays the patient's therapist in therapist-level variables"
        findings.append(
            Finding(
                layout.file, int(row), layout.lab["therapist"], str(therapist), reason,
                STOP if stop else "kept and flagged (therapist_switch)",
            )
        )
    return switch, ([] if stop else findings), (findings if stop else [])


def _repair_numbers(
    data: pd.DataFrame, numbers: dict[str, _Number], parsed: dict[str, pd.Series], failures: pd.DataFrame
) -> None:
    """Replace the text of numeric columns by numbers, failing cells set to missing (in place)."""
    numeric_checks = failures["check"].isin(["numeric_value", "within_range", "whole_number"])
    for column in numbers:
        bad = failures.loc[numeric_checks & (failures["column"] == column), "index"]
        number = parsed[column].reindex(data.index)
        data[column] = number.mask(number.index.isin(bad)) if len(bad) else number


def _patients_table(
    raw: pd.DataFrame, layout: _Layout, policy: dict[str, Any]
) -> tuple[pd.DataFrame, list[Finding], list[Finding]]:
    """The patients file validated and repaired: (table, repaired findings, stopping findings)."""
    data = layout.canonical(raw)
    parsed = {c: _to_float(data[c]) for c in layout.numbers}
    rules = [
        _Rule(
            "patient", "present", _is_present, "",
            "the patient id is missing; every row of the patients file needs one",
        )
    ] + _number_rules(layout.numbers, parsed)
    failures = _validate(data, rules, list(layout.lab))
    stops, repairs = _findings(failures, layout, policy)
    _repair_numbers(data, layout.numbers, parsed, failures)
    for column, rule in layout.numbers.items():
        if rule.integer:
            data[column] = data[column].round().astype("Int64")

    listed = data["patient"].notna()
    twice = listed & data.duplicated("patient", keep="first")
    if twice.any():
        first_row = data.loc[listed].groupby("patient", sort=False)[ROW].transform("first")
        for index in data.index[twice]:
            stops.append(
                Finding(
                    layout.file, int(data.at[index, ROW]), layout.lab["patient"], str(data.at[index, "patient"]),
                    f"is listed twice in the patients file (first at row {int(first_row[index])}); "
                    "the file needs one row per patient",
                    STOP,
                )
            )
    if "age" in data.columns:
        ages, topcoded = topcode_age(data["age"].rename(layout.lab["age"]), file=layout.file, source_rows=data[ROW])
        data["age"] = ages.rename("age")
        repairs += topcoded
    return data.loc[listed & ~twice], repairs, stops


def _score_measures(data: pd.DataFrame, dataset: dict[str, Any], registry: dict[str, Instrument]) -> pd.DataFrame:
    """Totals, means and subscales of every measure, with the prorating rule applied.

    Items are scored by ``alliance.intake.instruments.score_items``; a supplied total gives
    the mean (total / n_items) and a supplied mean the total.
    """
    scored: dict[str, pd.Series] = {}
    for key, measure in dataset["measures"].items():
        instrument = registry[measure["instrument"]]
        if "items" in measure:
            items = data[[f"{key}_item_{k:02d}" for k in range(1, instrument.n_items + 1)]]
            scores = score_items(items, instrument)
            for column in scores.columns:
                scored[f"{key}_{column}"] = scores[column]
        elif measure.get("score", "total") == "total":
            scored[f"{key}_mean"] = data[f"{key}_total"] / instrument.n_items
        else:
            scored[f"{key}_total"] = data[f"{key}_mean"] * instrument.n_items
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
    one ``InputErrors``.
    """
    cleaning = cleaning or {}
    policy = {**DEFAULT_POLICY, **cleaning}
    deid = {**DEFAULT_POLICY["deidentification"], **(cleaning.get("deidentification") or {})}
    registry = check_dataset_config(dataset, analysis, cleaning, extra_instruments)
    missing_codes = sorted({str(c) for c in dataset.get("missing_codes", ["", "NA"])})
    flow = _Flow()
    findings: list[Finding] = []
    layout = _sessions_layout(dataset, registry)
    date_column = deid["dates_to_days"][0] if deid["dates_to_days"] else None

    # 1. read and screen, before anything else
    sessions_file = layout.file
    raw, sessions_meta = read_table(
        sessions_file, **_table_options(dataset["sessions"]), missing_codes=missing_codes,
        keep_codes=[layout.lab[c] for c in layout.numbers],
    )
    findings += assert_deidentified(
        raw, file=sessions_file, allowed_columns=deid["allowed_columns"],
        date_columns_to_days=[date_column] if date_column else None,
    )
    patients_raw, patients_meta, patients_layout = None, None, None
    if dataset.get("patients"):
        patients_layout = _patients_layout(dataset)
        patients_raw, patients_meta = read_table(
            patients_layout.file, **_table_options(dataset["patients"]), missing_codes=missing_codes,
            keep_codes=[patients_layout.lab[c] for c in patients_layout.numbers],
        )
        findings += assert_deidentified(
            patients_raw, file=patients_layout.file, allowed_columns=deid["allowed_columns"]
        )

    # 2. canonical names; every absent column at once
    absent = layout.absent(raw)
    if date_column and date_column not in raw.columns:
        absent.append(
            Finding(
                sessions_file, 1, date_column, None,
                "the column is missing from the header (named by cleaning.deidentification.dates_to_days)",
                STOP,
            )
        )
    if patients_layout is not None:
        absent += patients_layout.absent(patients_raw)
    if absent:
        raise InputErrors(absent, heading=_heading(len(absent)))
    data = layout.canonical(raw)
    if date_column:
        days = dates_to_days_since_intake(
            raw, date_column, layout.lab["patient"], format=deid.get("date_format"), file=sessions_file
        )
        data.insert(list(data.columns).index("session") + 1, "days_since_intake", days)
        layout.lab["days_since_intake"] = date_column
        layout.origin["days_since_intake"] = "cleaning.deidentification.dates_to_days"
    del raw  # the canonical copy is all that is needed from here on (memory)
    flow.add("rows read", data, sessions_file)

    # 3. validate everything at once, then apply the policy: stop, or repair and record
    labels = {
        kind: {str(s): canonical for canonical, spellings in dataset["labels"][kind].items() for s in spellings}
        for kind in ("therapy", "condition")
    }
    parsed = {c: _to_float(data[c]) for c in ["session", *layout.numbers]}
    failures = _validate(data, _session_rules(labels, layout.numbers, parsed), list(data.columns))
    stops, repairs = _findings(failures, layout, policy)
    findings += repairs

    unusable = failures.loc[failures["check"].isin(["session_number", "present"]), "index"]
    data = data.drop(index=unusable.unique())
    flow.add("valid session number", data, "session number not a positive whole number")
    _repair_numbers(data, layout.numbers, parsed, failures)
    data["session"] = parsed["session"].reindex(data.index).astype("int64")
    del parsed
    if "days_since_intake" in layout.numbers:
        data["days_since_intake"] = data["days_since_intake"].round().astype("Int64")
    for kind in ("therapy", "condition"):
        data[kind] = data[kind].map(labels[kind]).astype("str")

    data, repairs, duplicate_stops = _duplicates(data, layout, policy)
    findings += repairs
    stops += duplicate_stops
    flow.add("one row per patient and session (analysis dataset)", data, "duplicate rows removed")

    data = data.sort_values(["patient", "session"], kind="stable").reset_index(drop=True)
    data["therapist_switch"], repairs, switch_stops = _therapist_switches(data, layout, policy)
    findings += repairs
    stops += switch_stops

    patients_table = None
    if patients_layout is not None:
        patients_table, repairs, patient_stops = _patients_table(patients_raw, patients_layout, policy)
        findings += repairs
        stops += patient_stops
    if stops:
        raise InputErrors(stops, heading=_heading(len(stops)))

    # 4. scores, outcome on the common scale, derived variables
    scored = _score_measures(data, dataset, registry)
    data = pd.concat([data, scored], axis=1)
    alliance_key = analysis["alliance_measure"]
    data["alliance"] = data[f"{alliance_key}_{analysis.get('alliance_score', 'mean')}"]
    outcome_key = data["condition"].map(analysis["outcome_by_condition"])
    instrument_ids = {key: m["instrument"] for key, m in dataset["measures"].items()}
    data["outcome_measure"] = outcome_key.map(instrument_ids).astype("str")
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
    data["session_index"] = derive.session_index(data)
    data = pd.concat(
        [
            data,
            derive.decompose_within_between(data, "alliance"),
            derive.within_patient_detrended(data, "alliance"),
            derive.decompose_within_between(data, "symptoms"),
            derive.next_session_values(data, ["symptoms", "alliance"]),
            derive.previous_session_values(data, ["symptoms", "alliance"]),
        ],
        axis=1,
    )
    usable = data["alliance"].notna() & data["symptoms"].notna()
    flow.add(
        "rows with alliance and outcome", data.loc[usable],
        "alliance or outcome score missing (rows kept in the dataset; models leave them out)",
    )

    patients, patient_summary = _patient_level(data, patients_table, patients_layout, registry, policy, findings)
    covariates = [c for c in PATIENT_COVARIATES if c in patients.columns]
    data = data.merge(patients[["patient", *covariates]], on="patient", how="left")
    data = data.rename(columns={ROW: "source_row"})
    data = _tidy_dtypes(data[["source_row", *[c for c in data.columns if c != "source_row"]]])
    patients = _tidy_dtypes(patients)

    context = _Context(dataset, analysis, registry, layout, patients_layout)
    dictionary = data_dictionary(data, patients, context)
    findings_frame = findings_to_frame(findings)
    summary = _summary(
        data, patients, findings_frame, sessions_meta, patients_meta, dataset, analysis, policy,
        date_column, patient_summary,
    )
    return CleanResult(
        sessions=data, patients=patients, dictionary=dictionary, findings=findings_frame,
        flow=flow.frame(), summary=summary,
    )


def _heading(n: int) -> str:
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
        elif pd.api.types.is_string_dtype(dtype) or dtype == object:
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


# --------------------------------------------------------------------------- patient level


def _patient_level(
    data: pd.DataFrame, table: pd.DataFrame | None, layout: _Layout | None,
    registry: dict[str, Instrument], policy: dict[str, Any], findings: list[Finding],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per patient: design, baseline/last/change, reliable change, early alliance,
    person-mean reliability, the patients file's covariates, dropout.

    ``data`` is sorted by patient and session. Appends its findings to ``findings``;
    returns (patients, summary entries).
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
        therapist_switch=heads["therapist_switch"],
    )
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
    tau2, sigma2 = derive.variance_split_anova(data, "alliance")
    lam = derive.person_mean_reliability(patients["alliance_n_sessions"], tau2, sigma2)
    patients["alliance_pm_reliability"] = lam.where(patients["alliance_n_sessions"] > 0)

    change_summary = _reliable_change(patients, registry)

    patients = patients.reset_index()
    if table is not None:
        file, lab = layout.file, layout.lab["patient"]
        listed = patients["patient"].isin(table["patient"])
        for patient in patients.loc[~listed, "patient"]:
            findings.append(
                Finding(file, None, lab, str(patient), "has sessions but no row in the patients file; "
                        "the patient's covariates are missing", "kept; covariates missing")
            )
        unused = table.loc[~table["patient"].isin(patients["patient"])]
        for row, patient in zip(unused[ROW], unused["patient"]):
            findings.append(
                Finding(file, int(row), lab, str(patient), "is in the patients file but has no sessions",
                        "not in the analysis")
            )
        patients = patients.merge(table.drop(columns=[ROW]), on="patient", how="left")
    findings += small_cells(
        patients, ("site", "age_band", "sex"), file=layout.file if layout else None
    )

    definition = policy["dropout_definition"]
    needed = {"end_reason": "end_reason", "fewer_than_planned": "planned_sessions"}[definition]
    if definition == "end_reason" and "end_reason" in patients.columns:
        reason = patients["end_reason"].astype("string").str.strip().str.lower()
        patients["dropout"] = reason.eq("dropout").astype("boolean").mask(reason.isna())
    elif definition == "fewer_than_planned" and "planned_sessions" in patients.columns:
        planned = patients["planned_sessions"]
        patients["dropout"] = (patients["last_session"] < planned).astype("boolean").mask(planned.isna())
    else:
        patients["dropout"] = pd.array([pd.NA] * len(patients), dtype="boolean")
        findings.append(
            Finding(
                None, None, None, None,
                f"dropout is not derived: cleaning.dropout_definition '{definition}' needs the patients-file "
                f"column dataset.patient_columns.{needed}, which is not mapped",
                WARN,
            )
        )
    reliability = {
        "between_patient_variance": tau2,
        "within_patient_variance": sigma2,
        "formula": "lambda_i = tau^2 / (tau^2 + sigma^2 / n_i), n_i = sessions with an alliance score",
    }
    lam = patients["alliance_pm_reliability"].dropna()
    if len(lam):
        reliability.update(
            mean=float(lam.mean()), median=float(lam.median()), min=float(lam.min()), max=float(lam.max()),
            share_below_0_7=float((lam < LAMBDA_ADEQUATE).mean()),
        )
    return patients, {"reliable_change": change_summary, "person_mean_reliability": reliability}


def _reliable_change(patients: pd.DataFrame, registry: dict[str, Instrument]) -> dict[str, Any]:
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
                reliability=instrument.reliability, sd_baseline=sd,
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


# --------------------------------------------------------------------------- data dictionary


@dataclass(frozen=True)
class _Context:
    """What the data dictionary needs to know about the run."""

    dataset: dict[str, Any]
    analysis: dict[str, Any]
    registry: dict[str, Instrument]
    layout: _Layout
    patients_layout: _Layout | None


DECOMPOSITION = {
    "patient_mean": ("the patient's mean over every session with a value (person mean; methods wai_pm)", None),
    "within_patient": ("deviation from the patient's own mean (within-patient, state-like; methods wai_cwc)", None),
    "between_patient": (
        "patient mean minus the grand mean of patient means (between-patient, two-level; methods wai_pm_c)", None
    ),
    "therapist_mean": (
        "mean of the patient means of the patient's (first) therapist, each patient weight 1 (methods wai_tm)", None
    ),
    "patient_within_therapist": (
        "patient mean minus the therapist mean (patient within therapist; methods wai_pm_cwt)", None
    ),
    "between_therapist": (
        "therapist mean minus the grand mean of patient means (between-therapist; methods wai_tm_c)", None
    ),
    "n_sessions": ("number of sessions behind the patient mean", "sessions"),
}


def _descriptions(ctx: _Context) -> dict[tuple[str | None, str], tuple[str, str, str, str]]:
    """(table or None for both, column) -> (meaning, units, source, instrument)."""
    d: dict[tuple[str | None, str], tuple[str, str, str, str]] = {}

    def put(column: str, meaning: str, units: str = "", source: str = "", instrument: str = "", table: str | None = None) -> None:
        d[(table, column)] = (meaning, units, source, instrument)

    lab = ctx.layout.lab
    patient_lab = ctx.patients_layout.lab if ctx.patients_layout else {}
    measures = ctx.dataset["measures"]
    alliance_key = ctx.analysis["alliance_measure"]
    alliance = ctx.registry[measures[alliance_key]["instrument"]]
    score = ctx.analysis.get("alliance_score", "mean")
    low, high = alliance.score_range(score)
    alliance_units = f"{alliance.id} {'mean item score' if score == 'mean' else 'total'} ({low:g}-{high:g})"
    outcomes = {c: measures[k]["instrument"] for c, k in ctx.analysis["outcome_by_condition"].items()}
    outcome_instruments = "; ".join(f"{i} ({c})" for c, i in outcomes.items())
    scale = ctx.analysis.get("outcome_scale", "pomp")
    symptoms_units = {
        "pomp": "POMP, percent of the maximum possible score (0-100)",
        "baseline_z": "z, SD units of the measure's baseline scores",
        "raw": "total points of the instrument",
    }[scale]
    raw_units = "total points of the condition's instrument"
    outcome_totals = ", ".join(f"{k}_total" for k in dict.fromkeys(ctx.analysis["outcome_by_condition"].values()))

    put("source_row", "Row of this session in the sessions file (header = row 1), to trace a value back",
        "row number", ctx.layout.file)
    put("patient", "Patient pseudonymous id", "", lab["patient"])
    put("therapist", "Therapist pseudonymous id of this session", "", lab["therapist"], table="sessions")
    put("therapist", "Therapist of the patient's first session (the patient's therapist in therapist-level "
        "variables)", "", lab["therapist"], table="patients")
    put("site", "Site (study centre) of the session; in the patients table, of the first session", "", lab.get("site", ""))
    put("study", "Study the session belongs to", "", lab.get("study", ""))
    put("session", "Session number as recorded (gaps where sessions were missed)", "session number", lab["session"])
    date_note = ""
    if ctx.layout.origin.get("days_since_intake") == "cleaning.deidentification.dates_to_days":
        date_note = " (computed from full dates, which were then dropped)"
    put("days_since_intake", f"Days since the patient's first recorded date{date_note}", "days",
        lab.get("days_since_intake", ""))
    put("therapy", "Therapy type, canonical label (dataset.labels.therapy)", "", lab["therapy"])
    put("condition", "Primary problem, canonical label (dataset.labels.condition)", "", lab["condition"])
    put("alliance_rater", "Who rated the alliance (as recorded)", "", lab.get("alliance_rater", ""))

    for key, measure in measures.items():
        inst = ctx.registry[measure["instrument"]]
        item_units = f"{inst.item_min:g}-{inst.item_max:g}"
        total_units = f"points ({inst.total_min:g}-{inst.total_max:g})"
        if "items" in measure:
            sources = [lab[f"{key}_item_{k:02d}"] for k in range(1, inst.n_items + 1)]
            from_items = f"derived from items {sources[0]} ... {sources[-1]}"
            for k, source in enumerate(sources, start=1):
                reverse = "; reverse-keyed in scoring" if k in inst.reverse_items else ""
                put(f"{key}_item_{k:02d}", f"{inst.name}: item {k} as answered{reverse} (invalid values set missing)",
                    item_units, source, inst.id)
            rule = (
                f"prorated as {inst.n_items} x the mean of the answered items when at most "
                f"{inst.prorate_max_missing} of {inst.n_items} items are missing, else missing"
            )
            put(f"{key}_total", f"{inst.name}: total score, sum of the items ({rule})", total_units, from_items, inst.id)
            put(f"{key}_mean", f"{inst.name}: mean item score (same missing-item rule as the total)", item_units,
                from_items, inst.id)
            put(f"{key}_n_missing_items", f"{inst.name}: number of missing items", "items", from_items, inst.id)
            put(f"{key}_prorated", f"{inst.name}: the total was prorated from the answered items", "true/false",
                from_items, inst.id)
            for name, items in inst.subscales.items():
                metric = "sum" if inst.score == "sum" else "mean"
                put(f"{key}_sub_{name}",
                    f"{inst.name}: {name} subscale, {metric} of items {', '.join(map(str, items))} "
                    f"(at most {inst.subscale_max_missing(name)} missing)",
                    "points" if metric == "sum" else item_units, from_items, inst.id)
        else:
            supplied = lab[f"{key}_{measure.get('score', 'total')}"]
            if measure.get("score", "total") == "total":
                put(f"{key}_total", f"{inst.name}: total score as supplied in the file (out-of-range values set "
                    "missing)", total_units, supplied, inst.id)
                put(f"{key}_mean", f"{inst.name}: mean item score, the supplied total / {inst.n_items}", item_units,
                    f"derived from {supplied}", inst.id)
            else:
                put(f"{key}_mean", f"{inst.name}: mean item score as supplied in the file (out-of-range values set "
                    "missing)", item_units, supplied, inst.id)
                put(f"{key}_total", f"{inst.name}: total score, {inst.n_items} x the supplied mean item score",
                    total_units, f"derived from {supplied}", inst.id)

    put("therapist_switch", "The patient was seen by more than one therapist (cross-classified)", "true/false",
        "derived from therapist")
    put("alliance", f"Session alliance score: the {score} score of measure '{alliance_key}' (analysis.alliance_score)",
        alliance_units, f"derived from {alliance_key}_{score}", alliance.id)
    put("outcome_measure", "Instrument of the primary outcome of the patient's condition "
        "(analysis.outcome_by_condition)", "", "derived from condition")
    put("symptoms_raw", "Primary outcome total on its instrument's own scale", raw_units,
        f"derived from {outcome_totals}", outcome_instruments)
    put("symptoms", f"Primary outcome on the common scale (analysis.outcome_scale: {scale})", symptoms_units,
        "derived from symptoms_raw", outcome_instruments)
    put("session_c", "Session number minus 1 (0 = first session)", "sessions", "derived from session")
    put("session_index", "Position among the patient's attended sessions (1, 2, 3, ...; no gaps)", "sessions",
        "derived from session")
    for variable, units, instrument in (
        ("alliance", alliance_units, alliance.id), ("symptoms", symptoms_units, outcome_instruments)
    ):
        for part, (meaning, part_units) in DECOMPOSITION.items():
            put(f"{variable}_{part}", f"{variable.capitalize()}: {meaning}", part_units or units,
                f"derived from {variable}", instrument)
        put(f"{variable}_next", f"{variable.capitalize()} at session t+1 of the same patient (missing where session "
            "t+1 was not attended)", units, f"derived from {variable}, session", instrument)
        put(f"{variable}_prev", f"{variable.capitalize()} at session t-1 of the same patient (missing where session "
            "t-1 was not attended)", units, f"derived from {variable}, session", instrument)
    put("alliance_within_patient_detrended",
        "Alliance: within-patient deviation with the patient's own linear trend over sessions removed (residual "
        "of the patient's least-squares line on session number; missing with fewer than 3 rated sessions; "
        "methods wai_dt)", alliance_units, "derived from alliance, session", alliance.id)

    put("n_sessions", "Number of attended sessions (rows in the analysis dataset)", "sessions", "derived from session")
    put("first_session", "First attended session number", "session number", "derived from session")
    put("last_session", "Last attended session number", "session number", "derived from session")
    for variable, units in (("symptoms_raw", raw_units), ("symptoms", symptoms_units)):
        put(f"{variable}_baseline", "Primary outcome at the first session where it was recorded (baseline; need "
            "not be session 1)", units, f"derived from {variable}", outcome_instruments)
        put(f"{variable}_last", "Primary outcome at the last session where it was recorded", units,
            f"derived from {variable}", outcome_instruments)
        put(f"{variable}_change", "Last minus baseline primary outcome (missing with a single observation; "
            "negative = improvement)", units, f"derived from {variable}", outcome_instruments)
    put("symptoms_raw_baseline_session", "Session number of the baseline outcome score", "session number",
        "derived from symptoms_raw, session")
    put("symptoms_raw_last_session", "Session number of the last observed outcome score", "session number",
        "derived from symptoms_raw, session")
    put("alliance_s3", "Early alliance: alliance at session 3 (missing if session 3 was not attended or rated)",
        alliance_units, "derived from alliance", alliance.id)
    put("alliance_s1_4", "Early alliance: mean alliance over the rated sessions among sessions 1-4",
        alliance_units, "derived from alliance", alliance.id)
    put("symptoms_s3", "Primary outcome at session 3 (common scale)", symptoms_units, "derived from symptoms",
        outcome_instruments)
    put("alliance_pm_reliability", "Reliability of the patient's alliance mean, lambda_i = tau^2 / (tau^2 + "
        "sigma^2 / n_i) (methods section 4; tau^2 and sigma^2 in summary.json)", "0-1",
        "derived from alliance", alliance.id)
    put("rci_jacobson_truax", "Reliable change index (last - baseline) / S_diff, S_diff = sqrt(2) x baseline SD x "
        "sqrt(1 - r_xx) (Jacobson & Truax 1991); |RCI| > 1.96 is reliable", "z",
        "derived from symptoms_raw_baseline, symptoms_raw_last", outcome_instruments)
    put("change_category_fixed", "Recovered, improved, unchanged or deteriorated by the instrument's published fixed "
        "reliable-change threshold and clinical cut-off (missing where the instrument has none)", "category",
        "derived from symptoms_raw_baseline, symptoms_raw_last", outcome_instruments)
    put("change_category_jacobson_truax", "Recovered, improved, unchanged or deteriorated by the Jacobson & Truax "
        "RCI (|RCI| > 1.96) and the instrument's clinical cut-off", "category",
        "derived from rci_jacobson_truax", outcome_instruments)
    put("age", "Age in years (ages over 89 top-coded to 90)", "years", patient_lab.get("age", ""))
    put("age_band", "Age band (as recorded in the patients file)", "", patient_lab.get("age_band", ""))
    put("sex", "Sex (as recorded in the patients file)", "", patient_lab.get("sex", ""))
    put("expectancy", "Treatment expectancy at intake", "as recorded", patient_lab.get("expectancy", ""))
    put("end_reason", "Reason treatment ended (as recorded)", "", patient_lab.get("end_reason", ""))
    put("planned_sessions", "Planned number of sessions", "sessions", patient_lab.get("planned_sessions", ""))
    definition = {
        "end_reason": "end_reason is 'dropout'",
        "fewer_than_planned": "last session before planned_sessions",
    }
    put("dropout", "Dropped out of treatment (cleaning.dropout_definition: "
        + " / ".join(definition.values()) + ", whichever is configured)", "true/false",
        "derived from end_reason or planned_sessions")
    return d


def data_dictionary(sessions: pd.DataFrame, patients: pd.DataFrame, context: _Context) -> pd.DataFrame:
    """Every column of both output tables: meaning, units, source column, instrument, dtype.

    ``source`` is the lab's column for a column read from a file, else "derived
    from ...". A column without a description is a programming error (ValueError),
    so the dictionary never falls back on the column name.
    """
    descriptions = _descriptions(context)
    rows = []
    for table, frame in (("sessions", sessions), ("patients", patients)):
        for column in frame.columns:
            entry = descriptions.get((table, column)) or descriptions.get((None, column))
            if entry is None:
                raise ValueError(f"the data dictionary has no description of column {column!r} of the {table} table")
            meaning, units, source, instrument = entry
            rows.append(
                {"table": table, "column": column, "meaning": meaning, "units": units, "source": source,
                 "instrument": instrument, "dtype": str(frame[column].dtype)}
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- summary


def _summary(
    data: pd.DataFrame, patients: pd.DataFrame, findings: pd.DataFrame, sessions_meta: dict,
    patients_meta: dict | None, dataset: dict[str, Any], analysis: dict[str, Any], policy: dict[str, Any],
    date_column: str | None, patient_summary: dict[str, Any],
) -> dict[str, Any]:
    """Sample sizes per level, design cells, missingness, checksums, reliability, change."""
    per_patient = data.groupby("patient")["session"].size()
    per_therapist = data.groupby("therapist")["patient"].nunique()
    cells = patients.groupby(["therapy", "condition"]).size().rename("patients").reset_index()
    usable = data["alliance"].notna() & data["symptoms"].notna()
    dropout = patients["dropout"]
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
        "dropout_definition": policy["dropout_definition"],
        "dropout_rate": round(float(dropout.dropna().astype(float).mean()), 6) if dropout.notna().any() else None,
        "findings": {str(k): int(v) for k, v in findings.groupby("action").size().items()} if len(findings) else {},
        "outcome_scale": analysis.get("outcome_scale", "pomp"),
        "alliance_score": analysis.get("alliance_score", "mean"),
        "outcome_by_condition": {c: dataset["measures"][k]["instrument"] for c, k in analysis["outcome_by_condition"].items()},
        "measures": {
            key: {"instrument": m["instrument"], "supplied": "items" if "items" in m else m.get("score", "total")}
            for key, m in dataset["measures"].items()
        },
        "person_means_from": analysis.get("person_means_from", "all_sessions"),
        "person_mean_reliability": patient_summary["person_mean_reliability"],
        "reliable_change": patient_summary["reliable_change"],
        "deidentification": {
            "dates_to_days": {"column": date_column, "stored_as": "days_since_intake"} if date_column else None,
            "patients_aged_90_or_over": int(patients["age"].eq(90).sum()) if "age" in patients.columns else None,
        },
        "patient_switches": int(patients["therapist_switch"].sum()),
    }
