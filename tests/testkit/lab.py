"""A lab's small export in a temporary directory, broken one way per test (the bad-input corpus).

``Lab`` writes a clean simulated export (3 therapists x 2 patients, one row per attended
session) and the config that reads it; a test breaks it and asserts what the lab is told.
The fixture ``lab`` (tests/conftest.py) gives each test its own, in its own working directory.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest

from alliance.intake.clean import CleanResult, clean_dataset
from alliance.intake.findings import InputError, InputErrors
from alliance.simulate import TrialDesign, simulate_trial
from testkit import demo_config

SESSIONS = "data/raw/lab/sessions.csv"
PATIENTS = "data/raw/lab/patients.csv"
BASE_SESSIONS, BASE_PATIENTS, BASE_TRUTH = simulate_trial(
    TrialDesign(n_therapists=3, patients_per_therapist=2, add_mess=False), seed=11
)
HEADER = list(BASE_SESSIONS.columns)  # site, therapist, patient, session, therapy, condition, items ...


def row_of(index: int) -> int:
    """Spreadsheet row of a 0-based data row (header = row 1)."""
    return index + 2


class Lab:
    """A lab's export in a temporary working directory, and the config that reads it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "data/raw/lab").mkdir(parents=True)
        self.config = demo_config()
        self.config["dataset"]["name"] = "lab"
        self.config["dataset"]["sessions"]["path"] = SESSIONS
        self.config["dataset"]["patients"]["path"] = PATIENTS
        self.write(BASE_SESSIONS, BASE_PATIENTS)

    def write(self, sessions: pd.DataFrame | None = None, patients: pd.DataFrame | None = None) -> None:
        if sessions is not None:
            sessions.to_csv(self.root / SESSIONS, index=False, lineterminator="\n")
        if patients is not None:
            patients.to_csv(self.root / PATIENTS, index=False, lineterminator="\n")

    def write_bytes(self, data: bytes) -> None:
        (self.root / SESSIONS).write_bytes(data)

    def clean(self, **cleaning) -> CleanResult:
        config = copy.deepcopy(self.config)
        config["cleaning"].update(cleaning)
        return clean_dataset(config["dataset"], config["analysis"], config["cleaning"], config["instruments"])

    def stop(self, **cleaning) -> list[str]:
        """The messages of a stopping error (one per problem)."""
        with pytest.raises(InputError) as info:
            self.clean(**cleaning)
        error = info.value
        return [f.message() for f in error.findings] if isinstance(error, InputErrors) else [str(error)]

    def findings(self, **cleaning) -> list[tuple]:
        """(row, column, value, reason, action) of each finding about the sessions file."""
        frame = self.clean(**cleaning).findings
        frame = frame.loc[frame["file"] == SESSIONS]
        return [
            (
                None if pd.isna(r.row) else int(r.row),
                None if pd.isna(r.column) else r.column,
                None if pd.isna(r.value) else r.value,
                r.reason,
                r.action,
            )
            for r in frame.itertuples()
        ]


def sessions() -> pd.DataFrame:
    return BASE_SESSIONS.copy()
