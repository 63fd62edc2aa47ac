"""Multiplicity control across the suite (alliance.models.multiplicity) against R's p.adjust.

The p values of tests/data/multiplicity_p.csv (three families, ties and a missing p; how they were
made: tests/data/README.md); R's Holm and BH values of them are committed in
tests/reference/multiplicity_p_adjust.csv (tests/r/p_adjust.R) and, in the slow run, recomputed live.
"""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from alliance.models import multiplicity
from testkit import ROOT

P_VALUES = ROOT / "tests/data/multiplicity_p.csv"
R_REFERENCE = ROOT / "tests/reference/multiplicity_p_adjust.csv"
R_SCRIPT = ROOT / "tests/r/p_adjust.R"


def _adjusted_by_family(p: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for _, part in p.groupby("family", sort=False):
        adj = multiplicity.adjust_p(part["p"])
        parts.append(part.reset_index(drop=True).join(adj))
    return pd.concat(parts, ignore_index=True)


def _assert_same(ours: pd.DataFrame, r: pd.DataFrame) -> None:
    assert ours["family"].tolist() == r["family"].tolist()
    for column in ("p_holm", "p_bh"):
        a, b = ours[column].to_numpy(float), r[column].to_numpy(float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), column
        ok = ~np.isnan(a)
        np.testing.assert_allclose(a[ok], b[ok], rtol=1e-12, atol=0, err_msg=column)


def test_holm_and_bh_equal_r_p_adjust_committed():
    ours = _adjusted_by_family(pd.read_csv(P_VALUES))
    _assert_same(ours, pd.read_csv(R_REFERENCE))
    # the reference is not trivial: the adjustments differ from p and from each other
    r = pd.read_csv(R_REFERENCE).dropna()
    assert (r["p_holm"] > r["p_bh"]).sum() >= 10 and (r["p_bh"] > r["p"]).sum() >= 15


@pytest.mark.slow
@pytest.mark.needs_r  # tests/conftest.py skips it without Rscript (and fails it in CI)
def test_holm_and_bh_equal_r_p_adjust_live(tmp_path):
    out = tmp_path / "adjusted.csv"
    subprocess.run(["Rscript", str(R_SCRIPT), str(P_VALUES), str(out)], check=True, cwd=ROOT, capture_output=True)
    _assert_same(_adjusted_by_family(pd.read_csv(P_VALUES)), pd.read_csv(out))


def _fixed(terms_p: dict[str, float], stratum: str | None = None) -> pd.DataFrame:
    terms = ["Intercept", *terms_p]
    frame = pd.DataFrame(
        {
            "term": terms,
            "estimate": [1.0] * len(terms),
            "se": 0.5,
            "df": 100.0,
            "statistic": 2.0,
            "p": [0.5, *terms_p.values()],
            "flags": "none",
        }
    )
    if stratum is not None:
        frame.insert(0, "stratum", stratum)
    return frame


MODELS = [
    {"name": "plain", "roles": {"a": "within_patient", "b": "between_patient"}},
    {
        "name": "moderated",
        "roles": {"a": "within_patient", "c": "patient_level"},
        "moderation": {"terms": ["a"], "by": ["therapy"]},
        "strata": {"by": ["therapy"]},
    },
    {"name": "no_roles"},
]


def test_families_are_the_suite_and_each_stratified_model():
    fixed = {
        "plain": _fixed({"a": 0.001, "b": 0.04, "x": 0.0001}),  # x has no role: not tested
        "moderated": _fixed({"a": 0.9, "c": 0.02}),  # a is the reference-level slope: left out
        "no_roles": _fixed({"a": 1e-9}),
    }
    strata = {
        "moderated": {
            "all": _fixed({"a": 0.003, "c": 0.02}, "all"),
            "cbt": _fixed({"a": 0.01, "c": 0.3}, "cbt"),
            "pdt": _fixed({"a": float("nan"), "c": float("nan")}, "pdt"),  # too few patients
        }
    }
    table = multiplicity.multiplicity_table(MODELS, fixed, strata)
    suite = table[table["family"] == "suite"]
    assert list(zip(suite["model"], suite["stratum"], suite["term"])) == [
        ("plain", "", "a"),
        ("plain", "", "b"),
        ("moderated", "", "c"),
        ("moderated", "all", "a"),
    ]
    # Holm over p = .001, .04, .02, .003 (m = 4): .004, .04, .04, .009; BH: .004, .04, .02667, .006
    np.testing.assert_allclose(suite["p_holm"], [0.004, 0.04, 0.04, 0.009], rtol=1e-12)
    np.testing.assert_allclose(suite["p_bh"], [0.004, 0.04, 0.08 / 3, 0.006], rtol=1e-12)
    assert suite["family_size"].unique().tolist() == [4]
    assert suite["reject_holm_05"].tolist() == ["yes", "yes", "yes", "yes"]
    assert suite.loc[suite["stratum"] == "all", "source"].item() == "stratum 'all' fit (no moderators)"
    sub = table[table["family"] == "strata:moderated"]
    assert sub["stratum"].tolist() == ["cbt", "cbt", "pdt", "pdt"]
    assert sub["family_size"].unique().tolist() == [2]  # the stratum not fitted does not count
    np.testing.assert_allclose(sub["p_holm"].iloc[:2], [0.02, 0.3], rtol=1e-12)
    assert sub["p_holm"].iloc[2:].isna().all() and sub["reject_bh_05"].iloc[2:].tolist() == ["", ""]


def test_table_on_the_written_files(tmp_path):
    for name in ("plain", "moderated"):
        (tmp_path / name).mkdir()
        _fixed({"a": 0.01, "b": 0.02, "c": 0.03}).to_csv(tmp_path / name / "fixed_effects.csv", index=False)
    (tmp_path / "moderated/strata/all").mkdir(parents=True)
    _fixed({"a": 0.04}, "all").to_csv(tmp_path / "moderated/strata/all/fixed_effects.csv", index=False)
    fixed, strata = multiplicity.read_fixed_tables(
        [tmp_path / "plain/fixed_effects.csv", tmp_path / "moderated/fixed_effects.csv"],
        [tmp_path / "moderated/strata/all/fixed_effects.csv"],
    )
    table = multiplicity.multiplicity_table(MODELS, fixed, strata)
    assert table.columns.tolist() == multiplicity.MULTIPLICITY_COLUMNS
    assert table["p"].tolist() == [0.01, 0.02, 0.03, 0.04]
    assert math.isclose(table["p_holm"].iloc[0], 0.04)


def test_sensitivity_key_is_optional_with_its_schema_default():
    """report.sensitivity (the winsorised refits) may be left out: the schema's default fills it."""
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config.get("report", {}).pop("sensitivity", None)
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))
    assert config["report"]["sensitivity"]["winsor_sd"] == 2
