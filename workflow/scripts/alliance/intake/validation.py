"""Validation of the canonical tables: rules, failures -> findings, duplicates, therapist switches.

Every rule of a table runs in one lazy pandera pass, so all problems of a file are
known at once; the cleaning policy of the config then decides, per kind of
failure, whether it stops the run or is repaired (value set missing, row
excluded) and recorded. Every finding names the lab's file, row (header = row 1),
column and value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from alliance.intake.deid import topcode_age
from alliance.intake.findings import SOURCE_ROW, STOP, Finding
from alliance.intake.layout import Layout, Number
from alliance.intake.plausibility import (
    NOT_FINITE,
    covariate_outliers,
    finite_check,
    plausible_check,
    plausible_reason,
)
from alliance.intake.repairs import rows_text, whole_numbers_with_decimals
from alliance.intake.text import parse_numbers

#: Which cleaning key decides about each kind of validation failure (None: always stops).
CHECK_POLICY = {
    "present": None,
    "known_label": None,
    "unique_patient": None,
    "session_number": "invalid_session",
    "finite_session": "invalid_session",
    "plausible_session": "invalid_session",
    "numeric_value": "non_numeric_value",
    "finite_number": "implausible_value",
    "plausible_value": "implausible_value",
    "within_range": "out_of_range_item",
    "whole_number": "out_of_range_item",
}
#: What a repair does, per kind of failure (the finding's action).
REPAIR_ACTION = {
    "session_number": "row excluded",
    "finite_session": "row excluded",
    "plausible_session": "row excluded",
    "numeric_value": "set to missing",
    "finite_number": "set to missing",
    "plausible_value": "set to missing",
    "within_range": "set to missing",
    "whole_number": "set to missing",
}
#: Checks whose failure takes the row out (no session number to place it).
ROW_CHECKS = ("present", "session_number", "finite_session", "plausible_session")
#: Checks whose failure sets a numeric cell missing when repaired.
NUMBER_CHECKS = ("numeric_value", "finite_number", "within_range", "whole_number", "plausible_value")
#: Stopping checks reported once per column and distinct value, with its count and example rows.
GROUPED_CHECKS = ("present", "known_label")
#: Columns of :func:`validate`'s table of failing cells.
FAILURE_COLUMNS = ["row", "index", "column", "check", "value", "reason"]


def label_spellings(dataset: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Per label kind (therapy, condition): the lab's spelling -> the canonical label."""
    return {
        kind: {str(s): canonical for canonical, spellings in dataset["labels"][kind].items() for s in spellings}
        for kind in ("therapy", "condition")
    }


def _aligned(values: pd.Series, like: pd.Series) -> pd.Series:
    """``values`` on the index of ``like`` (no reindexing when the index is the same)."""
    if values.index.equals(like.index):
        return values
    return values.reindex(like.index)


@dataclass(frozen=True)
class _Rule:
    """One check of one canonical column: ``test`` returns True where a value is fine."""

    column: str
    check: str
    test: Callable[[pd.Series], pd.Series]
    reason: str
    missing_reason: str | None = None  # reason when the failing cell is empty


def _session_rules(
    labels: dict[str, dict[str, str]],
    numbers: dict[str, Number],
    parsed: dict[str, pd.Series],
    ranges: dict[str, list[float]],
) -> list[_Rule]:
    """The rules of the sessions table: ids present, session numbers, known labels, numbers.

    ``parsed`` holds the session column and every numeric column parsed as numbers;
    ``ranges`` is ``cleaning.plausible_ranges``.
    """
    session_number = parsed["session"]

    def is_session_number(values: pd.Series) -> pd.Series:
        number = _aligned(session_number, values)
        infinite = np.isinf(number.to_numpy(dtype="float64", na_value=np.nan))
        return number.notna() & (infinite | ((number == np.floor(number)) & (number >= 1)))

    rules = [
        _Rule("patient", "present", _is_present, "", "the patient id is missing; every row needs one"),
        _Rule("therapist", "present", _is_present, "", "the therapist id is missing; every row needs one"),
        _Rule(
            "session",
            "session_number",
            is_session_number,
            "is not a session number (a whole number from 1)",
            "the session number is missing; every row needs one",
        ),
        _Rule("session", "finite_session", finite_check(session_number), NOT_FINITE),
        _Rule(
            "session",
            "plausible_session",
            plausible_check(session_number, *ranges["session"], valid=is_session_number),
            plausible_reason("session", "session numbers", ranges["session"]),
        ),
    ]
    for kind, mapping in labels.items():
        known = frozenset(mapping)
        rules.append(
            _Rule(
                kind,
                "known_label",
                _label_check(known),
                f"is an unknown {kind} label; known spellings: {', '.join(sorted(known))}; "
                f"add it under dataset.labels.{kind} in the config",
                f"the {kind} label is missing; every row needs one",
            )
        )
    rules += _number_rules(numbers, parsed, ranges)
    return rules


def _number_rules(
    numbers: dict[str, Number], parsed: dict[str, pd.Series], ranges: dict[str, list[float]]
) -> list[_Rule]:
    """Per numeric column: a number (or missing), finite, within its range, whole where it must be,
    and inside its plausible range if ``ranges`` (``cleaning.plausible_ranges``) has one."""
    rules = []
    for column, rule in numbers.items():
        number = parsed[column]

        def is_numeric_or_missing(values: pd.Series, number: pd.Series = number) -> pd.Series:
            return values.isna() | _aligned(number, values).notna()

        def is_within_range(values: pd.Series, number: pd.Series = number, rule: Number = rule) -> pd.Series:
            n = _aligned(number, values)
            return n.isna() | np.isinf(n.to_numpy(dtype="float64", na_value=np.nan)) | n.between(rule.low, rule.high)

        def is_whole_number(values: pd.Series, number: pd.Series = number, rule: Number = rule) -> pd.Series:
            n = _aligned(number, values)
            return n.isna() | ~n.between(rule.low, rule.high) | (n == np.floor(n))

        rules.append(
            _Rule(column, "numeric_value", is_numeric_or_missing, f"is text in a numeric column ({rule.what})")
        )
        rules.append(_Rule(column, "finite_number", finite_check(number), NOT_FINITE))
        rules.append(_Rule(column, "within_range", is_within_range, rule.range_reason()))
        if rule.integer:
            rules.append(_Rule(column, "whole_number", is_whole_number, rule.whole_reason()))
        if column in ranges:

            def is_valid(values: pd.Series, range_ok=is_within_range, whole_ok=is_whole_number, rule=rule):
                return range_ok(values) & (whole_ok(values) if rule.integer else True)

            test = plausible_check(number, *ranges[column], valid=is_valid)
            rules.append(_Rule(column, "plausible_value", test, plausible_reason(column, rule.what, ranges[column])))
    return rules


# The check functions' names must differ from pandera's built-in checks (in_range, isin ...):
# pandera would dispatch to the built-in of that name instead.
def _is_present(values: pd.Series) -> pd.Series:
    """A check that a cell is not missing."""
    return values.notna()


def _label_check(known: frozenset[str]) -> Callable[[pd.Series], pd.Series]:
    """A check that a label is one of the ``known`` spellings."""

    def is_known_label(values: pd.Series) -> pd.Series:
        return values.isin(known)

    return is_known_label


def validate(data: pd.DataFrame, rules: list[_Rule], order: list[str]) -> pd.DataFrame:
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
        strict=False,
        coerce=False,
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
        raise RuntimeError(
            f"validation check {first['check']} of column {first['column']} failed: {first['failure_case']}"
        )
    if cases.empty:
        return empty
    index = cases["index"].astype("int64").to_numpy()
    columns = cases["column"].astype(str).to_numpy()
    checks = cases["check"].astype(str).to_numpy()
    values = [data.at[i, c] for i, c in zip(index, columns)]  # one per failing cell
    values = [None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]
    out = pd.DataFrame(
        {
            "row": data.loc[index, SOURCE_ROW].to_numpy(),
            "index": index,
            "column": columns,
            "check": checks,
            "value": pd.Series(values, dtype=object),
            "reason": [
                reasons[(c, k)].missing_reason
                if v is None and reasons[(c, k)].missing_reason
                else reasons[(c, k)].reason
                for c, k, v in zip(columns, checks, values)
            ],
        }
    )
    out["position"] = out["column"].map({c: i for i, c in enumerate(order)})
    return out.sort_values(["row", "position"], kind="stable").drop(columns="position").reset_index(drop=True)


def one_per_value(failures: pd.DataFrame) -> pd.DataFrame:
    """The failures of :data:`GROUPED_CHECKS` collapsed to one per column and distinct value.

    An unknown label typed in 50 rows is one problem: it is reported at its first row,
    its reason ending with the number of rows and the first of them (:func:`rows_text`).
    """
    grouped = failures["check"].isin(GROUPED_CHECKS)
    if not grouped.any():
        return failures
    keys = [failures["column"], failures["check"], failures["value"].fillna("\x00missing")]
    by_value = failures["row"].groupby(keys, sort=False)
    rows, count = by_value.transform(rows_text), by_value.transform("size")
    first = ~failures.duplicated(subset=["column", "check", "value"], keep="first")
    out = failures.copy()
    many = grouped & (count > 1)
    out.loc[many, "reason"] = out.loc[many, "reason"] + "; found in " + rows[many]
    return out.loc[~grouped | first].reset_index(drop=True)


def failures_to_findings(
    failures: pd.DataFrame, layout: Layout, policy: dict[str, Any]
) -> tuple[list[Finding], list[Finding]]:
    """Split validation failures into (stopping, repaired) findings by the cleaning policy."""
    stops, repairs = [], []
    for r in failures.itertuples(index=False):
        key = CHECK_POLICY[r.check]
        stop = key is None or policy[key] == "stop"
        finding = Finding(
            layout.file,
            int(r.row),
            layout.lab.get(r.column, r.column),
            r.value,
            r.reason,
            STOP if stop else REPAIR_ACTION[r.check],
        )
        (stops if stop else repairs).append(finding)
    return stops, repairs


def sessions_checked(
    data: pd.DataFrame, layout: Layout, labels: dict[str, dict[str, str]], policy: dict[str, Any]
) -> tuple[pd.DataFrame, list[Finding], list[Finding]]:
    """The sessions table validated, rows without ids or a session number excluded, numbers
    repaired and typed, labels canonical: (table, repaired findings, stopping findings).

    ``labels`` is :func:`label_spellings` of the dataset.
    """
    parsed = {c: parse_numbers(data[c]) for c in ["session", *layout.numbers]}
    rules = _session_rules(labels, layout.numbers, parsed, policy["plausible_ranges"])
    if "therapist" not in data:  # a design without therapists (no dataset.columns.therapist)
        rules = [r for r in rules if r.column != "therapist"]
    failures = validate(data, rules, list(data.columns))
    stops, repairs = failures_to_findings(one_per_value(failures), layout, policy)
    repairs += whole_numbers_with_decimals(data, layout)
    unusable = failures.loc[failures["check"].isin(ROW_CHECKS), "index"]
    data = data.drop(index=unusable.unique())
    _repair_numbers(data, layout.numbers, parsed, failures)
    data["session"] = parsed["session"].reindex(data.index).astype("int64")
    del parsed
    if "days_since_intake" in layout.numbers:
        data["days_since_intake"] = data["days_since_intake"].round().astype("Int64")
    for kind in labels:  # the label kinds the sessions file maps (the others come from the patients file)
        data[kind] = data[kind].map(labels[kind]).astype("str")
    return data, repairs, stops


# --------------------------------------------------------------------------- duplicates and switches


def one_row_per_session(
    data: pd.DataFrame, layout: Layout, policy: dict[str, Any]
) -> tuple[pd.DataFrame, list[Finding], list[Finding]]:
    """Exact duplicate rows and conflicting rows of one patient and session.

    Returns (data with one row per patient and session, repaired findings, stopping
    findings). Vectorised: the loops below run over the duplicated rows only.
    """
    file, repairs, stops = layout.file, [], []
    content = [c for c in data.columns if c != SOURCE_ROW]
    exact = data.duplicated(subset=content, keep="first")
    if exact.any():
        copies = data.loc[data.duplicated(subset=content, keep=False)]
        first_row = copies.groupby(content, dropna=False, sort=False)[SOURCE_ROW].transform("first")
        stop = policy["exact_duplicate_rows"] == "stop"
        for row, original, patient, session in zip(
            copies.loc[exact, SOURCE_ROW],
            first_row[exact[exact].index],
            copies.loc[exact, "patient"],
            copies.loc[exact, "session"],
        ):
            finding = Finding(
                file,
                int(row),
                None,
                None,
                f"the row is an exact duplicate of row {int(original)} (patient {patient}, session {session})",
                STOP if stop else "dropped (earlier row kept)",
            )
            (stops if stop else repairs).append(finding)
        data = data.loc[~exact]

    conflict = data.duplicated(subset=["patient", "session"], keep=False)
    if conflict.any():
        rows = data.loc[conflict].sort_values([SOURCE_ROW])
        stop = policy["conflicting_duplicates"] == "stop"
        keys = ["patient", "session"]
        lead = rows.index.to_series(index=rows.index).groupby([rows["patient"], rows["session"]], sort=False)
        first = rows.loc[lead.transform("first").to_numpy()].set_axis(rows.index)
        later = rows.duplicated(subset=keys, keep="first")
        differs = rows[content].ne(first[content]) & ~(rows[content].isna() & first[content].isna())
        for index in rows.index[later]:
            row, patient, session = rows.at[index, SOURCE_ROW], rows.at[index, "patient"], rows.at[index, "session"]
            first_row = int(first.at[index, SOURCE_ROW])
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
                file,
                int(row),
                layout.lab.get(column, column),
                None if pd.isna(value) else _shown(value),
                reason,
                STOP if stop else "dropped (earlier row kept)",
            )
            (stops if stop else repairs).append(finding)
        data = data.loc[~data.duplicated(subset=keys, keep="first")]
    return data, repairs, stops


def _shown(value: Any) -> str:
    """A number as it was probably written (4.0 -> '4'), anything else as text."""
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and value == np.floor(value):
        return str(int(value))
    return str(value)


def therapist_switches(
    data: pd.DataFrame, layout: Layout, policy: dict[str, Any]
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
        at_change[SOURCE_ROW],
        at_change["patient"],
        at_change["session"],
        at_change["therapist"],
        first[at_change.index],
    ):
        reason = f"is a change of therapist for patient {patient} (from '{earlier}', at session {session})"
        if stop:
            reason += "; set cleaning.patient_switches_therapist: keep_and_flag to keep such patients"
        else:
            reason += (
                f"; kept as cross-classified: '{earlier}' stays the patient's therapist in therapist-level variables"
            )
        findings.append(
            Finding(
                layout.file,
                int(row),
                layout.lab["therapist"],
                str(therapist),
                reason,
                STOP if stop else "kept and flagged (therapist_switch)",
            )
        )
    return switch, ([] if stop else findings), (findings if stop else [])


def _repair_numbers(
    data: pd.DataFrame, numbers: dict[str, Number], parsed: dict[str, pd.Series], failures: pd.DataFrame
) -> None:
    """Replace the text of numeric columns by numbers, failing cells set to missing (in place)."""
    numeric_checks = failures["check"].isin(NUMBER_CHECKS)
    for column in numbers:
        bad = failures.loc[numeric_checks & (failures["column"] == column), "index"]
        number = parsed[column].reindex(data.index)
        data[column] = number.mask(number.index.isin(bad)) if len(bad) else number


def patients_table(
    raw: pd.DataFrame, layout: Layout, policy: dict[str, Any]
) -> tuple[pd.DataFrame, list[Finding], list[Finding]]:
    """The patients file validated and repaired: (table, repaired findings, stopping findings)."""
    data = layout.canonical(raw)
    parsed = {c: parse_numbers(data[c]) for c in layout.numbers}
    rules = [
        _Rule(
            "patient",
            "present",
            _is_present,
            "",
            "the patient id is missing; every row of the patients file needs one",
        )
    ] + _number_rules(layout.numbers, parsed, policy["plausible_ranges"])
    failures = validate(data, rules, list(layout.lab))
    stops, repairs = failures_to_findings(one_per_value(failures), layout, policy)
    repairs += whole_numbers_with_decimals(data, layout)
    _repair_numbers(data, layout.numbers, parsed, failures)
    for column, rule in layout.numbers.items():
        if rule.integer:
            data[column] = data[column].round().astype("Int64")

    listed = data["patient"].notna()
    twice = listed & data.duplicated("patient", keep="first")
    if twice.any():
        first_row = data.loc[listed].groupby("patient", sort=False)[SOURCE_ROW].transform("first")
        for index in data.index[twice]:
            stops.append(
                Finding(
                    layout.file,
                    int(data.at[index, SOURCE_ROW]),
                    layout.lab["patient"],
                    str(data.at[index, "patient"]),
                    f"is listed twice in the patients file (first at row {int(first_row[index])}); "
                    "the file needs one row per patient",
                    STOP,
                )
            )
    if "age" in data.columns:
        ages, topcoded = topcode_age(
            data["age"].rename(layout.lab["age"]), file=layout.file, source_rows=data[SOURCE_ROW]
        )
        data["age"] = ages.rename("age")
        repairs += topcoded
    numeric = {c: layout.lab[c] for c in layout.numbers}
    data, outliers = covariate_outliers(data, layout.file, numeric, policy["covariate_outliers"])
    repairs += outliers
    return data.loc[listed & ~twice], repairs, stops
