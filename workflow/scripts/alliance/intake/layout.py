"""The column layout of the input files: how the lab's columns map onto canonical ones.

A :class:`Layout` holds, for one input file (sessions or patients), the lab's
column name of every canonical column it maps (``patient``, ``therapist``,
``session``, ..., items as ``<measure>_item_01`` ...), the config key that maps it
(for messages) and the rule of every numeric column (:class:`Number`: valid range,
whole numbers or not). Validation, the data dictionary and the findings all name
the lab's columns through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from alliance.intake.config import measure_columns, supplied_score
from alliance.intake.findings import SOURCE_ROW, STOP, Finding
from alliance.intake.registry import Instrument
from alliance.intake.text import cell_text

#: Canonical columns of the sessions file, in output order.
SESSION_COLUMNS = (
    "patient",
    "therapist",
    "site",
    "study",
    "session",
    "days_since_intake",
    "therapy",
    "condition",
    "alliance_rater",
)
#: Design columns: each may come from the sessions file, the patients file or both (alliance.intake.design).
DESIGN_COLUMNS = ("site", "study", "therapy", "condition", "alliance_rater")
#: Design columns whose values are labels mapped by ``dataset.labels``; every session needs one.
LABELLED_DESIGN_COLUMNS = ("therapy", "condition")
#: Canonical columns of the optional patients file.
PATIENT_COLUMNS = (
    "patient",
    *DESIGN_COLUMNS,
    "age",
    "age_band",
    "sex",
    "expectancy",
    "end_reason",
    "planned_sessions",
)


@dataclass(frozen=True)
class Number:
    """A numeric column of an input file: its valid range and what it holds (for messages)."""

    low: float
    high: float
    integer: bool
    what: str

    def range_reason(self) -> str:
        """Why a value outside the range is a problem (reads after "value '...'")."""
        if math.isinf(self.high):
            return f"is below {self.low:g}, the smallest possible {self.what}"
        return f"is outside the valid range {self.low:g}-{self.high:g} of {self.what}"

    def whole_reason(self) -> str:
        """Why a fractional value is a problem (reads after "value '...'")."""
        return f"is not a whole number ({self.what} takes whole numbers)"


@dataclass
class Layout:
    """How one input file maps onto canonical columns.

    ``lab`` maps canonical -> the lab's column name (for messages and the data
    dictionary); ``numbers`` holds the numeric canonical columns and their rules.
    """

    file: str
    lab: dict[str, str]
    numbers: dict[str, Number]
    origin: dict[str, str] = field(default_factory=dict)  # canonical -> config key that maps it

    def absent(self, raw: pd.DataFrame) -> list[Finding]:
        """One stopping finding per mapped column the file does not have."""
        present = [c for c in raw.columns if c != SOURCE_ROW]
        shown = ", ".join(present[:40]) + (", ..." if len(present) > 40 else "")
        return [
            Finding(
                self.file,
                1,
                lab,
                None,
                f"the column is missing from the header (needed by {self.origin[canonical]}); columns present: {shown}",
                STOP,
            )
            for canonical, lab in self.lab.items()
            if lab not in raw.columns
        ]

    def canonical(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The mapped columns under their canonical names (plus the row numbers), as text."""
        data = pd.DataFrame({SOURCE_ROW: raw[SOURCE_ROW].to_numpy()}, index=raw.index)
        for canonical, lab in self.lab.items():
            data[canonical] = cell_text(raw[lab])
        return data


def item_column(key: str, k: int) -> str:
    """Canonical name of item ``k`` (1-based) of measure ``key``: ``wai_item_01``."""
    return f"{key}_item_{k:02d}"


def sessions_layout(dataset: dict[str, Any], registry: dict[str, Instrument]) -> Layout:
    """The sessions file's layout: design columns, then every measure's items or supplied score."""
    columns = dataset["columns"]
    lab = {c: str(columns[c]) for c in SESSION_COLUMNS if c in columns}
    origin = {c: f"dataset.columns.{c}" for c in lab}
    numbers: dict[str, Number] = {}
    if "days_since_intake" in lab:
        numbers["days_since_intake"] = Number(0, math.inf, True, "days since intake")
    for key, measure in dataset["measures"].items():
        instrument = registry[measure["instrument"]]
        sources = measure_columns(measure, instrument)
        if "items" in measure:
            for k, column in enumerate(sources, start=1):
                canonical = item_column(key, k)
                lab[canonical] = column
                origin[canonical] = f"dataset.measures.{key}.items"
                low, high = instrument.item_range(k)  # items may differ in range (registry item_ranges)
                numbers[canonical] = Number(low, high, True, f"{instrument.id} item {k}")
        else:
            score = supplied_score(measure)
            canonical = f"{key}_{score}"
            lab[canonical] = sources[0]
            origin[canonical] = f"dataset.measures.{key}.total"
            low, high = instrument.score_range(score)
            what = f"the {instrument.id} total" if score == "total" else f"the {instrument.id} mean item score"
            numbers[canonical] = Number(low, high, False, what)
    return Layout(str(dataset["sessions"]["path"]), lab, numbers, origin)


def patients_layout(dataset: dict[str, Any]) -> Layout:
    """The patients file's layout; its patient column is the sessions file's unless ``patient_columns`` names it."""
    mapping = {"patient": dataset["columns"]["patient"], **(dataset.get("patient_columns") or {})}
    lab = {c: str(mapping[c]) for c in PATIENT_COLUMNS if c in mapping}
    origin = {c: f"dataset.patient_columns.{c}" for c in lab}
    numbers = {
        "age": Number(0, 120, False, "an age in years"),
        "expectancy": Number(-math.inf, math.inf, False, "expectancy"),
        "planned_sessions": Number(1, math.inf, True, "planned number of sessions"),
    }
    return Layout(str(dataset["patients"]["path"]), lab, {c: n for c, n in numbers.items() if c in lab}, origin)


def table_options(table: dict[str, Any]) -> dict[str, Any]:
    """The reader's options (format, delimiter, encoding, sheet) of one configured file."""
    return {
        "format": table.get("format"),
        "delimiter": table.get("delimiter"),
        "encoding": table.get("encoding", "utf-8"),
        "sheet": table.get("sheet"),
    }
