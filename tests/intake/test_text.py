"""Cells as text and text as numbers (alliance.intake.text), and the light import of the config checks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd

from alliance.intake.config import analysis_settings, cleaning_policy, supplied_score
from alliance.intake.text import as_str, cell_text, missing_as_false, parse_numbers
from testkit import ROOT


def test_cell_text_writes_whole_numbers_as_integers_and_blanks_as_missing():
    assert cell_text(pd.Series([3.0, 2.5, np.nan])).tolist()[:2] == ["3", "2.5"]
    assert pd.isna(cell_text(pd.Series([3.0, 2.5, np.nan])).iloc[2])
    mixed = cell_text(pd.Series([" P1 ", 7, 4.0, "", None], dtype=object))
    assert mixed.tolist()[:3] == ["P1", "7", "4"]
    assert mixed.iloc[3:].isna().all()


def test_parse_numbers_gives_nan_for_text_and_missing():
    parsed = parse_numbers(pd.Series(["1", "2.5", "x", None, "1"], index=[5, 6, 7, 8, 9]))
    assert parsed.index.tolist() == [5, 6, 7, 8, 9]
    assert parsed.iloc[[0, 1, 4]].tolist() == [1.0, 2.5, 1.0]
    assert parsed.iloc[[2, 3]].isna().all()


def test_as_str_keeps_missing_and_missing_as_false():
    text = as_str(pd.Series([1, None, "a"], dtype=object))
    assert text.iloc[0] == "1" and pd.isna(text.iloc[1]) and text.iloc[2] == "a"
    assert missing_as_false(text.str.contains("a")).tolist() == [False, False, True]


def test_config_defaults_fill_only_what_is_left_out():
    policy, deid = cleaning_policy({"invalid_session": "stop", "deidentification": {"dates_to_days": ["visit"]}})
    assert policy["invalid_session"] == "stop" and policy["conflicting_duplicates"] == "stop"
    assert deid == {"allowed_columns": [], "dates_to_days": ["visit"], "date_format": None}
    assert analysis_settings({"outcome_scale": "raw"})["outcome_scale"] == "raw"
    assert analysis_settings({})["alliance_score"] == "mean"
    assert supplied_score({"total": "x", "score": "mean"}) == "mean"


def test_config_checks_import_without_pandas():
    # the workflow imports alliance.intake.config when it loads; it must stay light
    code = "import sys, alliance.intake.config; print(sorted({'pandas', 'numpy'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "workflow" / "scripts")},
    )
    assert out.stdout.strip() == "[]"
