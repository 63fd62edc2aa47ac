"""The simulator: byte-identical demo data from the seed, and the truth it states."""

import hashlib

import numpy as np
import pandas as pd
import pytest
import yaml

from alliance import simulate_truth
from alliance.dynamics.process import ProcessParams, simulate_process
from alliance.report.lagged import truth_estimands
from alliance.simulate import (
    DEMO_SEED,
    LAB2_SEED,
    STATIC_DESIGN,
    TrialDesign,
    draw_patients,
    draw_therapists,
    draw_trial,
    main,
    primary_items,
    simulate_trial,
    stable_levels,
    within_scores,
    write_lab2_trial,
    write_trial,
)
from alliance.simulate_export import split_total_into_items, write_csv
from testkit import ROOT

DEMO = ROOT / "data" / "raw" / "demo"
LAB2 = ROOT / "data" / "raw" / "demo_lab2"


def test_demo_files_regenerate_byte_for_byte(tmp_path):
    digests = write_trial(tmp_path, TrialDesign(), DEMO_SEED)
    for name, digest in digests.items():
        assert digest == hashlib.sha256((DEMO / name).read_bytes()).hexdigest(), name


@pytest.mark.parametrize("demo, argv", [(DEMO, []), (LAB2, ["--lab2"])])
def test_readme_command_regenerates_both_demos(tmp_path, capsys, demo, argv):
    """``python -m alliance.simulate --out DIR`` (``--lab2`` for the second demo), as the README says."""
    main([*argv, "--out", str(tmp_path)])
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in demo.iterdir())
    for name in written:
        assert (tmp_path / name).read_bytes() == (demo / name).read_bytes(), name
    assert len(capsys.readouterr().out.splitlines()) == len(written)  # one "digest  path" line per file


def test_second_demo_digests_are_of_the_files(tmp_path):
    digests = write_lab2_trial(tmp_path, LAB2_SEED)
    assert digests == {name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() for name in digests}


def test_between_effects_act_on_the_centred_stable_alliance():
    """Without symptom random intercepts, the stable symptom level is exactly beta_P x (patient's stable
    alliance - therapist mean) + beta_T x (therapist's stable alliance - grand mean); the patient part
    averages 0 within each therapist."""
    design = TrialDesign(n_therapists=9, patients_per_therapist=7, outcome_therapist_sd=0.0, outcome_patient_sd=0.0)
    rng = np.random.default_rng(8)
    therapists, patients = draw_therapists(design, rng), draw_patients(design, rng)
    stable = stable_levels(design, therapists, patients)
    frame = pd.DataFrame(
        {
            "t": patients.therapist,
            "p": stable.alliance_patient,
            "a": stable.alliance,
            "y": stable.symptoms - design.outcome_intercept,
        }
    )
    frame["p_c"] = frame["p"] - frame.groupby("t")["p"].transform("mean")
    therapist_level = frame.groupby("t")["a"].transform("mean") - design.alliance_intercept
    frame["t_c"] = therapist_level - therapist_level.groupby(frame["t"]).first().mean()
    coef, *_ = np.linalg.lstsq(frame[["p_c", "t_c"]].to_numpy(), frame["y"].to_numpy(), rcond=None)
    np.testing.assert_allclose(coef, [design.patient_between_effect, design.therapist_between_effect], atol=1e-9)
    assert np.allclose(frame.groupby("t")["p_c"].mean(), 0)


def test_within_scores_are_the_dynamics_process():
    """The trial's within-person scores are alliance.dynamics.process.simulate_process's, called per therapy
    type with that type's innovation correlation (one therapy type: the same numbers from the same stream)."""
    design = TrialDesign(therapies=("CBT",), n_therapists=4, within_effect={"CBT": -7.0}, alliance_growth={"CBT": 0.0})
    ours = within_scores(design, np.zeros(40, dtype=int), np.random.default_rng(3))
    q = simulate_truth.innovation_covariance(design, "CBT")
    params = ProcessParams(n_sessions=16, innovation_corr=q[0, 1] / np.sqrt(q[0, 0] * q[1, 1]))
    data, truth = simulate_process(params, None, np.random.default_rng(3), intercepts=np.zeros((40, 2)))
    np.testing.assert_array_equal(ours[:, :, 0].ravel(), data["alliance_score"].to_numpy())
    np.testing.assert_array_equal(ours[:, :, 1].ravel(), data["symptom_score"].to_numpy())
    s = np.array(truth["within_cov"])
    assert s[0, 1] * design.symptom_within_sd / design.alliance_within_sd == pytest.approx(-7.0, abs=1e-9)


def test_closed_form_truths_are_consistent():
    design = TrialDesign()
    b = simulate_truth.paths(design)
    for therapy in design.therapies:
        s = simulate_truth.stationary_covariance(design, therapy)
        q = simulate_truth.innovation_covariance(design, therapy)
        np.testing.assert_allclose(b @ s @ b.T + q, s, atol=1e-12)  # stationary, unit within SDs
        assert s[0, 1] / s[0, 0] * design.symptom_within_sd / design.alliance_within_sd == pytest.approx(
            design.within_effect[therapy]
        )
    # the long-run effect sums the lagged effects over all lags
    np.testing.assert_allclose(sum(np.linalg.matrix_power(b, h) for h in range(200)), simulate_truth.long_run(design))
    vxx, vxy = simulate_truth.lag_covariances(b, simulate_truth.stationary_covariance(design, "IPT"), 4)
    assert vxy[2, 0] == pytest.approx((b @ b @ simulate_truth.stationary_covariance(design, "IPT"))[0, 1])
    assert vxy[0, 2] == pytest.approx((b @ b @ simulate_truth.stationary_covariance(design, "IPT"))[1, 0])
    with pytest.raises(ValueError, match="no innovation covariance"):
        impossible = TrialDesign(within_effect={"CBT": -24.0, "PDT": -10.0, "IPT": -8.0})
        simulate_truth.innovation_covariance(impossible, "CBT")


def _within_regression(trial, design) -> np.ndarray:
    """Pooled within-patient OLS of the observed symptoms on the observed alliance (one slope per therapy
    type) and the session: [slope of each therapy type, session slope]."""
    observed = trial.attended
    n_items, item_max = primary_items(design, trial.patients.condition)
    top = (n_items * item_max)[:, None]
    y = 100 * np.clip(np.rint(trial.pomp / 100 * top), 0, top) / top
    x = trial.wai_total / 12
    t = np.broadcast_to(np.arange(design.max_sessions, dtype=float), observed.shape)
    count = observed.sum(axis=1, keepdims=True)

    def centred(v):
        return np.where(observed, v - np.where(observed, v, 0).sum(axis=1, keepdims=True) / count, 0)

    code = trial.therapists.therapy_code[trial.patients.therapist]
    xs = centred(x)
    columns = [(xs * (code == k)[:, None]).ravel() for k in range(len(design.therapies))] + [centred(t).ravel()]
    coef, *_ = np.linalg.lstsq(np.column_stack(columns), centred(y).ravel(), rcond=None)
    return coef


def test_same_session_estimands_are_what_the_within_estimator_finds():
    """With attendance unrelated to the scores the closed-form same-session estimands are the limits of
    the within-patient estimator (12,000 patients, SE about 0.1: within 3 SE), and they are well short of
    the contemporaneous coefficient; under the demo's MAR dropout they move by up to 0.1 more. Without
    dynamics (B = 0) the estimand is the contemporaneous coefficient itself."""
    for design, tolerance in (
        (TrialDesign(n_therapists=1200, dropout_alliance_effect=0.0, dropout_symptom_effect=0.0), 0.3),
        (TrialDesign(n_therapists=1200), 0.4),
    ):
        trial = draw_trial(design, np.random.default_rng(2))
        code = trial.therapists.therapy_code[trial.patients.therapist]
        found = _within_regression(trial, design)
        stated = simulate_truth.same_session_estimands(design, code, trial.attended)
        np.testing.assert_allclose(found[:-1], list(stated["by_therapy"].values()), atol=tolerance)
        assert found[-1] == pytest.approx(stated["session_by_therapy_model"], abs=0.02)
        for therapy, value in stated["by_therapy"].items():
            assert 0.7 < value / design.within_effect[therapy] < 0.92, therapy
    static = STATIC_DESIGN
    trial = draw_trial(static, np.random.default_rng(2))
    code = trial.therapists.therapy_code[trial.patients.therapist]
    stated = simulate_truth.same_session_estimands(static, code, trial.attended)
    assert stated["by_therapy"] == pytest.approx(static.within_effect, abs=1e-9)
    assert stated["session_by_therapy_model"] == pytest.approx(static.outcome_session_slope, abs=1e-9)


def test_attendance_is_missing_at_random_on_the_last_attended_session():
    design = TrialDesign(n_therapists=300)
    trial = draw_trial(design, np.random.default_rng(4))
    attended = trial.attended
    assert attended[:, 0].all()
    in_treatment = np.maximum.accumulate(attended[:, ::-1], axis=1)[:, ::-1]  # attends this or a later session
    left = in_treatment[:, :-1] & ~in_treatment[:, 1:]  # session t is the last one attended
    wai_last = trial.wai_total[:, :-1][left] / 12
    stayed = in_treatment[:, :-1] & in_treatment[:, 1:] & attended[:, :-1]
    wai_stay = trial.wai_total[:, :-1][stayed] / 12
    assert wai_last.mean() < wai_stay.mean() - 0.15  # weak alliance at the last session before leaving
    assert (trial.end_reason == "completed").sum() == attended[:, -1].sum()
    gaps = in_treatment & ~attended
    assert 0.03 < gaps[:, 1:-1].sum() / in_treatment[:, 1:-1].sum() < 0.07 and not gaps[:, -1].any()


def test_truth_gives_the_report_its_estimands():
    """TRUTH.yaml's ``estimands`` mapping is what the report's section "Which comes first" reads: the
    RI-CLPM's paths and long-run effects, and the RI-CLPM path each lagged mixed model is compared with."""
    truth = yaml.safe_load((DEMO / "TRUTH.yaml").read_text())
    found, keys = truth_estimands(truth)
    assert keys == ["estimands"]
    riclpm = truth["riclpm_first_7_sessions"]
    assert found["riclpm"]["gamma"] == riclpm["gamma"] == pytest.approx(-0.20 * 8.0 / 0.35, abs=1e-6)
    assert found["riclpm"]["long_run"]["x->y"] == pytest.approx(-0.20 / 0.34 * 8.0 / 0.35, abs=1e-5)
    assert found["lagged_alliance_symptoms"]["alliance_within_patient"] == riclpm["gamma"]
    assert found["lagged_symptoms_alliance"]["symptoms_within_patient"] == riclpm["beta"]
    assert found["same_session"]["alliance_within_patient"] == truth["within_effect_sample_patient_mean"]


def test_design_matches_the_issue():
    truth = yaml.safe_load((DEMO / "TRUTH.yaml").read_text())
    sessions = pd.read_csv(DEMO / "sessions.csv", dtype=str, keep_default_na=False)
    assert truth["sample"]["therapists"] == sessions["therapist"].nunique() == 60
    assert sessions["patient"].nunique() == 600
    assert set(sessions["therapy"]) == {"CBT", "PDT", "IPT"}
    assert set(sessions["condition"]) == {"depression", "anxiety"}
    numbers = pd.to_numeric(sessions["session"], errors="coerce")
    assert numbers.max() == 16
    # every therapist delivers a single therapy type
    assert sessions.groupby("therapist")["therapy"].nunique().max() == 1


def test_mess_is_present_as_stated():
    truth = yaml.safe_load((DEMO / "TRUTH.yaml").read_text())
    sessions = pd.read_csv(DEMO / "sessions.csv", dtype=str, keep_default_na=False)
    faults = {m["fault"] for m in truth["mess"]}
    assert "exact duplicate row" in faults
    assert sessions.duplicated().sum() == 1
    assert (sessions["session"] == "Post-Rx").sum() == 1
    assert (sessions["wai_05"] == "6").sum() >= 1
    assert (sessions["gad7_03"] == "refused").sum() == 1
    # gaps: some patient misses a session between two attended ones
    numbers = pd.to_numeric(sessions["session"], errors="coerce").dropna().astype(int)
    steps = numbers.groupby(sessions.loc[numbers.index, "patient"]).diff()
    assert (steps > 1).sum() > 10


def test_item_totals_follow_the_generated_outcome():
    """Items are spread from the generated totals: in range, and summing to the totals."""
    sessions, _, _ = simulate_trial(TrialDesign(n_therapists=6, add_mess=False), seed=3)
    phq = sessions[[f"phq9_{k:02d}" for k in range(1, 10)]].replace("", np.nan).astype(float)
    assert phq.min().min() >= 0 and phq.max().max() <= 3
    wai = sessions[[f"wai_{k:02d}" for k in range(1, 13)]].replace("", np.nan).astype(float)
    assert wai.min().min() >= 1 and wai.max().max() <= 5
    # the WAI-SR items of a complete row sum to the process's rounded total
    trial = draw_trial(TrialDesign(n_therapists=6, add_mess=False), np.random.default_rng(3))
    complete = wai.notna().all(axis=1).to_numpy()
    totals = trial.wai_total[trial.rows.patient, trial.rows.session - 1]
    assert np.array_equal(wai[complete].sum(axis=1).to_numpy(), totals[complete])


def test_different_seeds_differ():
    a, _, _ = simulate_trial(TrialDesign(n_therapists=3), seed=1)
    b, _, _ = simulate_trial(TrialDesign(n_therapists=3), seed=2)
    assert not a.equals(b)


def test_items_are_spread_from_the_total_as_a_hypergeometric_draw():
    """Each row's items sum to its total, stay in range, and each item count is hypergeometric: the
    total's unit slots chosen without replacement (mean and variance checked at one total)."""
    totals = np.repeat([0, 13, 27], 20_000)
    counts = split_total_into_items(totals, 9, 3, np.random.default_rng(5)).astype(int)
    assert (counts.sum(axis=1) == totals).all() and counts.min() == 0 and counts.max() == 3
    mid = counts[totals == 13]
    slots, k = 27, 13
    mean, var = k * 3 / slots, k * (3 / slots) * (1 - 3 / slots) * (slots - k) / (slots - 1)
    np.testing.assert_allclose(mid.mean(axis=0), mean, atol=4 * np.sqrt(var / len(mid)))
    np.testing.assert_allclose(mid.var(axis=0), var, rtol=0.05)
    with pytest.raises(ValueError, match="totals must lie"):
        split_total_into_items(np.array([28]), 9, 3, np.random.default_rng(5))


def test_simulated_columns_are_pandas_strings():
    sessions, _, _ = simulate_trial(TrialDesign(n_therapists=3, patients_per_therapist=4), seed=2)
    assert (sessions.dtypes == pd.Series(["1"]).astype(str).dtype).all()
    assert set(sessions["wai_01"]) <= {"", "1", "2", "3", "4", "5", "6", "0"}


@pytest.mark.parametrize(
    "values",
    [
        ["P1", "", "Post-Rx", "66+", " x "],  # written by pyarrow
        ["P1", "", "a,b", 'say "no"', "x"],  # pandas quotes these: written by pandas
    ],
)
def test_csv_writer_matches_pandas(tmp_path, values):
    frame = pd.DataFrame({"text": values, "number": np.arange(-2, 3)}).astype({"text": "str"})
    frame.loc[1, "text"] = np.nan
    write_csv(frame, tmp_path / "fast.csv")
    frame.to_csv(tmp_path / "pandas.csv", index=False, lineterminator="\n")
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
