"""Several studies in one run (rules/pooling.smk): the multi-study demo from its config, end to end.

The default suite pools two of the demo's studies through the workflow (intake, harmonisation,
stage one, stage two: about half a minute); the slow suite runs `make run CONFIG=config/demo_ipd.yaml`
as a newcomer would, and reads its tables and report against the simulator's TRUTH.yaml.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from alliance.pooling.meta import random_effects
from testkit import ROOT, run_snakemake
from testkit.checkout import checkout, digests, make, write_config

DEMO = ROOT / "data/raw/demo_ipd"
CONFIG = "config/demo_ipd.yaml"
TRUTH = yaml.safe_load((DEMO / "TRUTH.yaml").read_text())


def _two_studies() -> dict:
    """The demo config with its first two studies, the same-session model and the RI-CLPM, no multiverse."""
    config = yaml.safe_load((ROOT / CONFIG).read_text())
    config["studies"] = config["studies"][:2]
    config["pooling"].update(name="two", effects=["same_session", "riclpm"], truth=None)
    del config["multiverse"]
    return config


def test_two_studies_pool_through_the_workflow(tmp_path):
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "demo_ipd").symlink_to(DEMO)
    result = run_snakemake(tmp_path, _two_studies(), "--forceall", "results/two/pooled/pooled.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    pooled = pd.read_csv(tmp_path / "results/two/pooled/pooled.csv").set_index("effect")
    assert list(pooled.index) == ["same_session", "riclpm_alliance_symptoms", "riclpm_symptoms_alliance"]
    studies = pd.read_csv(tmp_path / "results/two/pooled/study_estimates.csv")
    same = studies[studies["effect"] == "same_session"].sort_values("study")
    assert list(same["study"]) == ["campus", "riverside"]
    # stage two is the random-effects pooling of stage one's rows (each study's own job)
    refit = random_effects(same["estimate"], same["se"])
    assert pooled.loc["same_session", "estimate"] == pytest.approx(refit.estimate, rel=1e-9)
    assert pooled.loc["same_session", "k"] == 2
    harmonisation = pd.read_csv(tmp_path / "results/two/pooled/harmonisation.csv").set_index("study")
    assert harmonisation.loc["campus", "alliance_instrument"] == "WAI-S"
    assert harmonisation.loc["riverside", "outcome_instruments"] == "GAD-7; PHQ-9"
    for study in ("campus", "riverside"):  # each study's own intake, its own validation report
        assert (tmp_path / f"results/two/studies/{study}/clean/validation_report.csv").exists()
    # same data and config, the same bytes: stage one and two made again
    tables = tmp_path / "results/two"
    before = {
        p: p.read_bytes() for p in sorted(tables.glob("studies/*/effects/*.csv")) + sorted(tables.glob("pooled/*.csv"))
    }
    again = run_snakemake(
        tmp_path, _two_studies(), "--forcerun", "fit_study_model", "pool_effects", "--", "results/two/pooled/pooled.csv"
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.read_bytes() for p in before} == before


#: a second config file merged over the demo's (as `--configfile` merges several): the multiverse grid
#: cut from 72 specifications to 10 (every model, completers or all, early change adjusted or not), so
#: that the end-to-end run fits CI's time; the full grid's 72 jobs are timed by bench/bench_pooling.py
#: (344 s on 1 core, 201 s on 2) and each kind of specification is fitted in tests/pooling/
SMALLER_GRID = {
    "multiverse": {
        "alliance": ["raw"],
        "therapist_level": ["with"],
        "outliers": ["keep"],
        "early_alliance": ["session_3"],
    }
}


@pytest.mark.slow
@pytest.mark.e2e
def test_the_multi_study_demo_runs_from_its_config(tmp_path):
    """README: `make run CONFIG=config/demo_ipd.yaml` (with :data:`SMALLER_GRID` merged over it): the report
    shows the pooled effects, the forest plots, the specification curve and every estimate beside the truth;
    the pooled cross-lag's CI covers the mean."""
    before = digests(DEMO)
    raw = tmp_path / "raw"
    shutil.copytree(DEMO, raw / DEMO.name)
    directory = checkout(tmp_path / "checkout", data=raw)
    shutil.copy(ROOT / CONFIG, directory / CONFIG)
    write_config(directory / "config/smaller_grid.yaml", SMALLER_GRID)
    run = make(directory, "run", f"CONFIG={CONFIG} config/smaller_grid.yaml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert run.stdout.splitlines()[-1].startswith("Report: reports/demo_ipd/report.html")
    assert digests(tmp_path / "raw" / "demo_ipd") == before  # the pipeline never writes to data/raw
    results = directory / "results/demo_ipd"

    truth = pd.read_csv(results / "pooled/truth.csv")
    pooled_truth = truth[truth["level"] == "pooled"].set_index("effect")
    cross_lag = pooled_truth.loc["riclpm_alliance_symptoms"]
    assert cross_lag["truth"] == pytest.approx(TRUTH["effects"]["riclpm_alliance_symptoms"]["pooled"]["mean"])
    assert cross_lag["ci_low"] <= cross_lag["truth"] <= cross_lag["ci_high"] and bool(cross_lag["covered"])
    assert pooled_truth.loc["same_session", "truth"] == pytest.approx(
        TRUTH["effects"]["same_session"]["pooled"]["mean"]
    )
    assert pd.isna(pooled_truth.loc["early_alliance", "truth"])  # no single parameter: no coverage claimed

    pooled = pd.read_csv(results / "pooled/pooled.csv", keep_default_na=False).set_index("effect")
    assert pooled["k"].eq(5).all()
    assert "Nickell" in pooled.loc["lagged_alliance_symptoms", "known_bias"]
    assert pooled.loc["riclpm_alliance_symptoms", "known_bias"] == ""
    one_stage = pd.read_csv(results / "pooled/one_stage.csv").set_index("effect")
    assert abs(one_stage.loc["same_session", "estimate"] - pooled.loc["same_session", "estimate"]) < 0.5

    curve = pd.read_csv(results / "multiverse/curve.csv", keep_default_na=False, na_values=[""])
    assert len(curve) == 10 and curve["estimate"].notna().all()
    assert sorted(set(curve["model"])) == ["early_alliance", "lagged", "riclpm", "same_session"]
    summary = pd.read_csv(results / "multiverse/summary.csv").set_index("statistic")
    assert summary.loc["specifications", "value"] == 10
    assert 0 <= summary.loc["share_ci_excludes_zero", "value"] <= 1

    html = (directory / "reports/demo_ipd/report.html").read_text()
    for text in (
        "Estimates beside the simulated truth",
        "Two-stage and one-stage",
        "The multiverse",
        "Leave one study out",
    ):
        assert text in html
    assert html.count('id="fig-forest_') == 6 and 'id="fig-specification_curve"' in html
    assert html.count("(known bias)") >= 2
