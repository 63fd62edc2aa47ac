"""The multi-study (IPD) demo: byte-identical files from the seed, every study through the intake, the
truth it states (the closed-form alliance SD, the drawn effects, the harmonised RI-CLPM cross-lag)."""

import copy
import dataclasses
import hashlib
import os
import warnings
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from alliance import simulate_truth
from alliance.dynamics.riclpm import fit_riclpm
from alliance.intake.clean import clean_dataset
from alliance.intake.registry import load_registry
from alliance.simulate import TrialDesign, alliance_mean_scores, draw_trial
from alliance.simulate_export import plain
from alliance.simulate_studies import (
    CONFIG_MARKER,
    IPD_SEED,
    MU,
    STUDIES,
    TAU,
    WAVES,
    alliance_sd,
    attendance_probabilities,
    check_process,
    common_design,
    draw_cross_lags,
    instrument_steps,
    main,
    registry,
    simulate_studies,
    simulate_study,
    studies_config_text,
    study_designs,
    write_studies_config,
)
from testkit import ROOT, demo_config

DEMO = ROOT / "data" / "raw" / "demo_ipd"
CONFIG = ROOT / "config" / "demo_ipd.yaml"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def truth() -> dict:
    return yaml.safe_load((DEMO / "TRUTH.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def simulated() -> dict:
    return {data.spec.name: data for data in simulate_studies()}


def test_files_regenerate_byte_for_byte(tmp_path, capsys):
    """``python -m alliance.simulate_studies --out DIR --config FILE`` writes the committed files, and the
    committed config ends with the studies block it writes (whatever another block put above it)."""
    config = tmp_path / "demo_ipd.yaml"
    main(["--out", str(tmp_path / "demo_ipd"), "--config", str(config)])
    printed = [line.split("  ") for line in capsys.readouterr().out.splitlines()]
    committed = sorted(p.relative_to(DEMO).as_posix() for p in DEMO.rglob("*") if p.is_file())
    assert sorted(os.path.relpath(path, tmp_path / "demo_ipd") for _, path in printed) == committed
    for digest, path in printed:
        name = os.path.relpath(path, tmp_path / "demo_ipd")
        assert digest == hashlib.sha256((DEMO / name).read_bytes()).hexdigest(), name
    block = studies_config_text()
    text = CONFIG.read_text(encoding="utf-8")
    assert text.endswith(block) and text.count(CONFIG_MARKER) == 1
    assert config.read_text(encoding="utf-8") == studies_config_text(str(tmp_path / "demo_ipd"))


def test_the_studies_block_keeps_what_was_prepended(tmp_path):
    path = tmp_path / "demo_ipd.yaml"
    path.write_text("pooling:\n  name: demo_ipd\n\n" + CONFIG_MARKER + "\nstudies: []\n", encoding="utf-8")
    write_studies_config(path)
    assert path.read_text(encoding="utf-8") == "pooling:\n  name: demo_ipd\n\n" + studies_config_text()
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert config["pooling"] == {"name": "demo_ipd"} and len(config["studies"]) == 5


def test_the_studies_differ_as_the_design_says():
    studies = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["studies"]
    assert [s["name"] for s in studies] == [s.name for s in STUDIES]
    formats = {s["dataset"]["sessions"]["format"] for s in studies}
    alliance = {s["dataset"]["measures"][s["analysis"]["alliance_measure"]]["instrument"] for s in studies}
    outcomes = {m["instrument"] for s in studies for k, m in s["dataset"]["measures"].items()} - alliance
    assert formats == {"csv", "tsv"} and alliance == {"WAI-SR", "WAI-S", "SRS"}
    assert outcomes == {"PHQ-9", "GAD-7", "BDI-II", "CORE-10", "OQ-45"}
    assert "OQ-45" not in load_registry() and [s["name"] for s in studies if "instruments" in s] == ["lakeside"]
    assert len({s["dataset"]["columns"]["patient"] for s in studies}) == 5
    for spec in STUDIES:
        assert 20 <= spec.n_therapists <= 50 and 6 <= spec.patients_per_therapist <= 12 and spec.max_sessions >= 8
        assert spec.setting in ("outpatient", "university_clinic")
    rows = sum(len(pd.read_csv(DEMO / s.name / s.sessions_file, sep=s.delimiter, dtype=str)) for s in STUDIES)
    assert rows < 25_000


def _single_study_config(entry: dict) -> dict:
    """A single-study config from a ``studies:`` entry and config/config.yaml's run and models."""
    base = demo_config()
    return {
        "run": base["run"],
        "dataset": copy.deepcopy(entry["dataset"]),
        "instruments": copy.deepcopy(entry.get("instruments", {})),
        "analysis": copy.deepcopy(entry["analysis"]),
        "cleaning": copy.deepcopy(entry.get("cleaning", {})),
        "models": base["models"],
    }


@pytest.mark.parametrize("index", range(len(STUDIES)), ids=[s.name for s in STUDIES])
def test_every_study_passes_the_intake_with_the_simulated_scores(index, simulated, truth):
    """Each study block makes a valid single-study config; the intake passes with no stopping finding,
    and its alliance and outcome scores are the simulated ones mapped to the study's instruments:
    exactly on rows with every item, within half a step of the unrounded process value, and the
    alliance SD over sessions 1-7 (as the harmonisation computes it) is TRUTH.yaml's sample SD."""
    entry = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["studies"][index]
    config = _single_study_config(entry)
    validate(copy.deepcopy(config), str(SCHEMA))
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = clean_dataset(config["dataset"], config["analysis"], config["cleaning"], config["instruments"])
    finally:
        os.chdir(cwd)
    # the only warnings: the registry's WAI-S reverse keys, not yet verified (the keying check agrees with them)
    assert all("not yet verified against the source" in str(w.message) for w in caught)
    assert not (result.findings["action"].astype(str).str.contains("stop")).any()
    data = simulated[entry["name"]]
    sessions = result.sessions
    assert len(sessions) == data.trial.rows.n and sessions["alliance"].notna().mean() > 0.95
    row = sessions["source_row"].to_numpy() - 2  # header = row 1
    assert (sessions["session"].to_numpy() == data.trial.rows.session[row]).all()
    key = entry["analysis"]["alliance_measure"]
    measure = entry["dataset"]["measures"][key]
    instruments = registry()
    instrument = instruments[measure["instrument"]]
    complete = sessions[f"{key}_n_missing_items"].eq(0) if "items" in measure else sessions["alliance"].notna()
    np.testing.assert_allclose(sessions["alliance"][complete], data.alliance_score[row][complete], atol=1e-9)
    # the mapping: through the POMP, p = (x - 1) / 4, onto the instrument's score, clipped; within half a step
    low, high = instrument.score_range(entry["analysis"]["alliance_score"])
    mapped = np.clip(low + (high - low) * (data.x[row] - 1) / 4, low, high)
    step = (high - low) / instrument_steps(instrument)
    assert np.abs(sessions["alliance"][complete] - mapped[complete]).max() <= step / 2 + 1e-9
    outcome_key = sessions["condition"].map(entry["analysis"]["outcome_by_condition"])
    missing = pd.Series([sessions.at[i, f"{k}_n_missing_items"] for i, k in outcome_key.items()], index=sessions.index)
    whole = missing.eq(0).to_numpy()
    np.testing.assert_allclose(sessions["symptoms"][whole], data.outcome_pomp[row][whole], atol=1e-9)
    top = sessions["outcome_measure"].map(lambda m: instruments[m].total_max).to_numpy()
    gap = np.abs(sessions["symptoms"].to_numpy() - np.clip(data.y[row], 0, 100))[whole]
    assert (gap <= 50 / top[whole] + 1e-9).all()
    # the harmonisation's alliance SD (sessions 1-7, ddof 1) in WAI-SR points: the sample SD of TRUTH.yaml
    window = sessions["session"].le(WAVES) & sessions["alliance"].notna()
    sd = sessions.loc[window, "alliance"].std(ddof=1) * 4 / (high - low)
    assert sd == pytest.approx(truth["studies"][entry["name"]]["sample"]["alliance_sd_sample"], rel=0.005)
    assert truth["studies"][entry["name"]]["moderators"] == entry["moderators"]


def test_drawn_effects_and_pooled_truths_recompute(truth):
    assert (truth["seed"], truth["mu"], truth["tau"]) == (IPD_SEED, MU, TAU)
    drawn = draw_cross_lags()
    designs = study_designs()
    assert list(truth["studies"]) == [s.name for s in STUDIES]
    sd = alliance_sd(designs[0])
    factor = 8.0 / 0.35 * sd
    assert truth["harmonised_scale"]["alliance_sd"] == pytest.approx(sd, abs=1e-6)
    assert truth["harmonised_scale"]["alliance_to_symptoms_factor"] == pytest.approx(factor, abs=1e-5)
    effects = truth["effects"]
    forward, back, same = (effects[k] for k in ("riclpm_alliance_symptoms", "riclpm_symptoms_alliance", "same_session"))
    for spec, gamma, design in zip(STUDIES, drawn, designs):
        study = truth["studies"][spec.name]
        assert study["cross_alliance_to_symptoms"] == pytest.approx(gamma, abs=1e-6)
        assert study["design"] == simulate_truth.rounded(plain(asdict(design)))
        assert alliance_sd(design) == pytest.approx(sd, rel=1e-12)  # the conversion is common
        check_process(design)
        assert np.linalg.eigvalsh(simulate_truth.innovation_covariance(design, design.therapies[0])).min() > 0
        assert forward["by_study"][spec.name]["value"] == pytest.approx(gamma * factor, abs=1e-5)
        sample = study["sample"]["alliance_sd_sample"]
        assert forward["by_study"][spec.name]["at_sample_sd"] == pytest.approx(gamma * factor * sample / sd, abs=1e-5)
        assert back["by_study"][spec.name]["value"] == pytest.approx(-0.10 * 0.35 / 8.0 / sd, abs=1e-6)
        assert same["by_study"][spec.name]["value"] == pytest.approx(
            study["same_session_estimand_wai_points"]["patient_mean"] * sd, abs=1e-5
        )
    assert forward["pooled"]["mean"] == pytest.approx(MU * factor, abs=1e-5)
    assert forward["pooled"]["between_study_sd"] == pytest.approx(TAU * factor, abs=1e-5)
    assert forward["pooled"]["mean_of_studies"] == pytest.approx(drawn.mean() * factor, abs=1e-5)
    assert same["pooled"]["mean"] == pytest.approx(np.mean([v["value"] for v in same["by_study"].values()]), abs=1e-5)
    for name in ("lagged_alliance_symptoms", "lagged_symptoms_alliance", "early_alliance"):
        assert effects[name]["targets"].startswith("no single parameter")
    assert set(truth) == {"seed", "streams", "mu", "tau", "units", "harmonised_scale", "studies", "effects"}


def test_the_same_session_truth_is_on_sessions_1_to_7(simulated, truth):
    data = simulated["riverside"]
    code = data.trial.therapists.therapy_code[data.trial.patients.therapist]
    short = dataclasses.replace(data.design, max_sessions=WAVES)
    limit = simulate_truth.same_session_estimands(short, code, data.trial.attended[:, :WAVES])
    stated = truth["studies"]["riverside"]["same_session_estimand_wai_points"]["patient_mean"]
    assert stated == pytest.approx(limit["patient_mean"], abs=1e-6)
    whole = simulate_truth.same_session_estimands(data.design, code, data.trial.attended)["patient_mean"]
    assert abs(whole - stated) > 0.05  # the window matters


@pytest.mark.parametrize(
    "design",
    [
        common_design(n_therapists=5000, patients_per_therapist=10, max_sessions=8),
        # the general case: growth by therapy, another hazard and missed-session probability, 7 sessions planned
        dataclasses.replace(
            common_design(n_therapists=5000, patients_per_therapist=10, max_sessions=7),
            alliance_growth={"CBT": 0.06, "PDT": 0.0, "IPT": 0.03},
            dropout_hazard_logit=-2.0,
            missed_session_probability=0.15,
        ),
    ],
    ids=["common", "growth_by_therapy"],
)
def test_closed_form_alliance_sd_matches_a_big_simulation(design):
    """50,000 simulated patients: attendance as stated, and the SD of the alliance over the session rows
    1-7 within 1 % of the closed form, before rounding and as observed (WAI-SR total / 12, rounded and
    clipped; the rounding's unit^2 / 12 added to the closed form)."""
    trial = draw_trial(design, np.random.default_rng(5))
    attended = trial.attended[:, :WAVES]
    np.testing.assert_allclose(attended.mean(axis=0), attendance_probabilities(design), atol=0.01)
    code = trial.therapists.therapy_code[trial.patients.therapist]
    x = alliance_mean_scores(design, code, trial.stable, trial.within)[:, :WAVES][attended]
    assert np.std(x, ddof=1) == pytest.approx(alliance_sd(design), rel=0.01)
    observed = trial.wai_total[:, :WAVES][attended] / 12
    assert np.std(observed, ddof=1) == pytest.approx(alliance_sd(design, rounding_unit=1 / 12), rel=0.01)


def test_a_design_that_is_not_mcar_or_not_stationary_is_refused():
    with pytest.raises(ValueError, match="no closed form"):
        attendance_probabilities(TrialDesign())
    with pytest.raises(ValueError):
        check_process(common_design(cross_alliance_to_symptoms=-3.0))


def test_the_harmonised_riclpm_cross_lag_is_recovered_on_a_large_study(truth):
    """6,000 patients of a study like campus (WAI-S, BDI-II, 8 sessions) with the pooled mean cross-lag:
    the alliance z-standardised over sessions 1-7 (ddof 1), the outcome POMP, the RI-CLPM on sessions 1-7
    recovers TRUTH.yaml's pooled mean of both cross-lags on the harmonised scale (within 3 SE)."""
    spec = dataclasses.replace(STUDIES[1], n_therapists=600, patients_per_therapist=10)
    design = common_design(
        spec.therapies,
        n_therapists=600,
        patients_per_therapist=10,
        max_sessions=spec.max_sessions,
        conditions=spec.conditions,
        primary_measure=dict(spec.outcomes),
        cross_alliance_to_symptoms=MU,
    )
    data = simulate_study(spec, design, np.random.default_rng(11))
    rows = data.trial.rows
    frame = pd.DataFrame(
        {"patient": rows.patient, "session": rows.session, "alliance": data.alliance_score, "y": data.outcome_pomp}
    )
    frame = frame[frame["session"] <= WAVES]
    frame["z"] = (frame["alliance"] - frame["alliance"].mean()) / frame["alliance"].std(ddof=1)
    fit = fit_riclpm(frame, waves=WAVES, patient="patient", session="session", x="z", y="y")
    assert fit.converged and not fit.flags
    effects = truth["effects"]
    for path, effect in (("gamma", "riclpm_alliance_symptoms"), ("beta", "riclpm_symptoms_alliance")):
        se = fit.parameters.loc[path, "se"]
        assert fit.estimate(path) == pytest.approx(effects[effect]["pooled"]["mean"], abs=3 * se), path
