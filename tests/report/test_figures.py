"""Figures: each function draws the numbers it claims to draw, in one deterministic house style.

The fixture is a small simulated trial cleaned and fitted in memory by the pipeline's own
functions, so the figures are checked on real tables, not on hand-made stand-ins.
"""

from __future__ import annotations

import hashlib
import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection
from PIL import Image
from scipy import stats

from alliance.engines.dispatch import fit
from alliance.models.specs import complete_cases, spec_from_config
from alliance.report import diagnostic_figures as D
from alliance.report import figures as F
from testkit.trials import effects_table, make_trial


@pytest.fixture(scope="session")
def trial(tmp_path_factory) -> dict:
    return make_trial(tmp_path_factory.mktemp("figures_trial"))


# --------------------------------------------------------------------------- trajectories


def test_session_means_are_means_with_t_intervals(trial):
    data = trial["analysis"]
    means = F.session_means(data, "symptoms").set_index(["therapy", "session"])
    direct = data.dropna(subset=["symptoms"]).groupby(["therapy", "session"])["symptoms"].agg(["mean", "count"])
    assert means.index.equals(direct.index)
    assert np.allclose(means["mean"], direct["mean"])
    assert (means["n"] == direct["count"]).all()
    means = means.reset_index()
    row = means[(means["therapy"] == "CBT") & (means["session"] == 1)].iloc[0]
    values = data.loc[(data["therapy"] == "CBT") & (data["session"] == 1), "symptoms"].dropna()
    half = stats.t.ppf(0.975, len(values) - 1) * values.std() / np.sqrt(len(values))
    assert row["n"] == len(values)
    assert row["mean"] == pytest.approx(values.mean())
    assert row["ci_low"] == pytest.approx(values.mean() - half)
    assert row["ci_high"] == pytest.approx(values.mean() + half)


def test_fixed_part_is_the_engines_marginal_prediction(trial):
    same = trial["same"]
    data = trial["analysis"]
    spec = spec_from_config(trial["models"]["same_session"])
    used = complete_cases(spec, data)
    prediction = F.fixed_part(used, same["fixed"])
    engine = fit(spec, used)
    assert np.allclose(prediction.to_numpy(), engine.fitted["fitted_marginal"].to_numpy(), atol=1e-6)


def test_model_implied_mean_is_the_mean_prediction_per_session(trial):
    data = trial["analysis"]
    fixed = trial["same"]["fixed"]
    implied = F.model_implied_means(data, fixed)
    beta = fixed.set_index("term")["estimate"]
    rows = data[(data["therapy"] == "IPT") & (data["session"] == 4)].dropna(
        subset=["symptoms", "alliance_within_patient", "alliance_between_patient"]
    )
    by_hand = (
        beta["Intercept"]
        + beta["alliance_within_patient"] * rows["alliance_within_patient"].astype(float)
        + beta["alliance_between_patient"] * rows["alliance_between_patient"].astype(float)
        + beta["session_c"] * rows["session_c"]
    ).mean()
    got = implied[(implied["therapy"] == "IPT") & (implied["session"] == 4)]["mean"].iloc[0]
    assert got == pytest.approx(by_hand)
    # a categorical term cannot be predicted from numeric columns: no line rather than a wrong one
    assert F.model_implied_means(data, pd.DataFrame({"term": ["Intercept", "therapy"], "estimate": [1.0, 2.0]})) is None


def test_trajectories_sample_patients_and_draw_the_means(trial):
    data = trial["analysis"]
    implied = F.model_implied_means(data, trial["same"]["fixed"])
    figure = F.trajectories(data, "symptoms", ylabel="Symptoms", seed=5, max_patients=7, model_means=implied)
    axes = figure.axes
    therapies = sorted(data["therapy"].unique())
    assert len(axes) == len(therapies)
    means = F.session_means(data, "symptoms")
    for ax, therapy in zip(axes, therapies):
        collection = next(c for c in ax.collections if isinstance(c, LineCollection))
        assert 1 <= len(collection.get_segments()) <= 7  # at most 7 patients drawn faint
        bold = next(line for line in ax.lines if line.get_linewidth() > 2)
        expected = means[means["therapy"] == therapy]
        assert np.allclose(bold.get_ydata(), expected["mean"])
        dashed = next(line for line in ax.lines if line.get_linestyle() == "--")
        assert np.allclose(dashed.get_ydata(), implied[implied["therapy"] == therapy]["mean"])
        assert ax.get_title().startswith(f"{therapy} (7 of")
    plt.close(figure)


def test_within_between_samples_points_but_fits_lines_to_every_patient(trial):
    """At routine-monitoring size the between-patient panel shows a seeded sample of patients
    per therapy type; each least-squares line still uses every patient (the title says so)."""
    data = trial["analysis"]
    means = (
        data.groupby("patient")
        .agg(alliance=("alliance", "mean"), symptoms=("symptoms", "mean"), therapy=("therapy", "first"))
        .dropna()
    )
    cap = 3
    figure = F.within_between(data, within_slope=-8.0, seed=2, max_patients_per_group=cap)
    right = figure.axes[1]
    therapies = sorted(means["therapy"].unique())
    points = [c for c in right.collections if isinstance(c, PathCollection)]
    assert [len(c.get_offsets()) for c in points] == [min(cap, (means["therapy"] == t).sum()) for t in therapies]
    assert f"lines use all {len(means):,}" in right.get_title()
    coloured = [line for line in right.lines if line.get_color() != "white"]
    for line, therapy in zip(coloured, therapies):
        group = means[means["therapy"] == therapy]
        slope = np.polyfit(group["alliance"], group["symptoms"], 1)[0]
        x, y = line.get_xdata(), line.get_ydata()
        assert (y[-1] - y[0]) / (x[-1] - x[0]) == pytest.approx(slope)
    again = F.within_between(data, within_slope=-8.0, seed=2, max_patients_per_group=cap)
    assert np.array_equal(
        points[0].get_offsets(),
        [c for c in again.axes[1].collections if isinstance(c, PathCollection)][0].get_offsets(),
    )
    unsampled = F.within_between(data, within_slope=-8.0, seed=2)
    assert "shown" not in unsampled.axes[1].get_title()
    for fig in (figure, again, unsampled):
        plt.close(fig)


def test_patient_sample_is_seeded_and_capped():
    rng = np.random.default_rng(0)
    n_patients, sessions = 2400, 16
    data = pd.DataFrame(
        {
            "patient": np.repeat([f"P{k:05d}" for k in range(n_patients)], sessions),
            "therapy": np.repeat(np.array(["CBT", "IPT", "PDT"])[np.arange(n_patients) % 3], sessions),
            "session": np.tile(np.arange(1, sessions + 1), n_patients),
        }
    )
    data["symptoms"] = 60 - 1.5 * data["session"] + rng.normal(0, 8, len(data))
    first = F.sample_patients(data, 200, seed=42)
    again = F.sample_patients(data, 200, seed=42)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert all(len(ids) == 200 for ids in first.values())
    other = F.sample_patients(data, 200, seed=43)
    assert not np.array_equal(first["CBT"], other["CBT"])
    figure = F.trajectories(data, "symptoms", ylabel="Symptoms", seed=42)
    for ax in figure.axes:
        segments = next(c for c in ax.collections if isinstance(c, LineCollection)).get_segments()
        assert len(segments) == 200
    plt.close(figure)


# --------------------------------------------------------------------------- forest


def test_forest_rows_flip_the_sign_to_improvement():
    rows = F.forest_rows(effects_table())
    overall = rows[(rows["level"] == "overall") & (rows["term"] == "alliance_within_patient")].iloc[0]
    assert overall["r_improvement"] == pytest.approx(0.31)
    assert overall["ci_low_improvement"] == pytest.approx(0.28)
    assert overall["ci_high_improvement"] == pytest.approx(0.34)
    within = rows[rows["term"] == "alliance_within_patient"]
    assert list(within["level"]) == ["overall", "therapy", "therapy", "condition", "stratum"]


def test_forest_plot_draws_flipped_r_against_the_benchmark_band(benchmark):
    figure = F.alliance_forest(effects_table(), benchmark)
    assert [ax.get_title() for ax in figure.axes] == ["Within patients", "Between patients"]
    ax = figure.axes[0]
    xs = sorted(float(c.get_offsets()[0][0]) for c in ax.collections if isinstance(c, PathCollection))
    assert xs == pytest.approx(sorted([0.31, 0.24, 0.36, 0.30, 0.22]))
    band = next(p for p in ax.patches)
    x0, x1 = band.get_x(), band.get_x() + band.get_width()
    assert (x0, x1) == pytest.approx((0.256, 0.299))
    assert ax.get_xlabel() == "r between alliance and symptom improvement"
    assert any(0.278 in np.atleast_1d(line.get_xdata()) for line in ax.lines)
    assert band.get_label() == "Flückiger et al. 2018: r = .278 [.256, .299]"
    plt.close(figure)


def test_forest_plot_band_follows_the_configured_benchmark(benchmark):
    figure = F.alliance_forest(
        effects_table(), {**benchmark, "r": 0.2, "ci_low": 0.15, "ci_high": 0.25, "citation": "Lab 2030"}
    )
    ax = figure.axes[0]
    band = next(p for p in ax.patches)
    assert (band.get_x(), band.get_x() + band.get_width()) == pytest.approx((0.15, 0.25))
    assert any(0.2 in np.atleast_1d(line.get_xdata()) for line in ax.lines)
    assert band.get_label() == "Lab 2030: r = .200 [.150, .250]"
    plt.close(figure)


# --------------------------------------------------------------------------- therapist effects


def test_caterpillar_ranks_therapists_with_95_intervals(trial):
    re = trial["random_effects"]
    figure = D.therapist_caterpillar(re)
    ax = figure.axes[0]
    therapists = re[(re["group"] == "therapist") & (re["term"] == "Intercept")]
    points = next(c for c in ax.collections if isinstance(c, PathCollection)).get_offsets()
    assert len(points) == len(therapists) == 12
    assert np.all(np.diff(points[:, 0]) >= 0)  # ranked
    intervals = next(c for c in ax.collections if isinstance(c, LineCollection)).get_segments()
    lowest = therapists.sort_values("value").iloc[0]
    assert intervals[0][0][0] == pytest.approx(lowest["value"] - 1.959964 * lowest["sd"], rel=1e-5)
    excluding = int(
        ((therapists["value"] - 1.959964 * therapists["sd"]) > 0).sum()
        + ((therapists["value"] + 1.959964 * therapists["sd"]) < 0).sum()
    )
    assert ax.get_title() == f"Therapist effects: {excluding} of 12 intervals exclude 0"
    plt.close(figure)


# --------------------------------------------------------------------------- missing data and flow


def test_missing_by_session_counts_patients_per_arm(trial):
    data, patients = trial["analysis"], trial["patients"]
    table = D.missing_by_session(data, patients)
    arm = table[(table["therapy"] == "CBT") & (table["condition"] == "depression")]
    n_arm = int(((patients["therapy"] == "CBT") & (patients["condition"] == "depression")).sum())
    assert set(arm["n_arm"]) == {n_arm}
    rows = data[(data["therapy"] == "CBT") & (data["condition"] == "depression") & (data["session"] == 3)]
    s3 = arm[arm["session"] == 3].iloc[0]
    assert s3["n_outcome"] == rows["symptoms"].notna().sum()
    assert s3["pct_outcome"] == pytest.approx(100 * rows["symptoms"].notna().sum() / n_arm)
    in_treatment = patients[
        (patients["therapy"] == "CBT") & (patients["condition"] == "depression") & (patients["last_session"] >= 3)
    ]
    assert s3["n_in_treatment"] == len(in_treatment)
    complete = rows.dropna(subset=["symptoms", "alliance"])["patient"]
    assert s3["n_missing_in_treatment"] == len(set(in_treatment["patient"]) - set(complete))
    assert (table["n_outcome"] <= table["n_arm"]).all()
    figure = D.missing_data(data, patients)
    assert len(figure.axes[0].lines) == len(table.groupby(["therapy", "condition"]))
    plt.close(figure)


def test_flow_diagram_prints_every_step_and_exclusion(trial):
    flow = trial["flow"]
    figure = D.exclusion_flow(flow)
    texts = [t.get_text() for t in figure.axes[0].texts]
    for step in flow.itertuples():
        assert f"{step.rows:,} rows · {step.patients:,} patients · {step.therapists:,} therapists" in texts
        if step.rows_excluded:
            rows = f"{step.rows_excluded:,} row" + ("" if step.rows_excluded == 1 else "s")  # "1 row", "2 rows"
            assert any(t.startswith(f"Excluded: {rows},") for t in texts)
    assert sum(t.startswith("Excluded:") for t in texts) == int(
        (flow[["rows_excluded", "patients_excluded", "therapists_excluded"]].sum(axis=1) > 0).sum()
    )
    plt.close(figure)


# --------------------------------------------------------------------------- diagnostics


def test_diagnostics_show_residuals_and_every_random_effect(trial):
    figure = D.model_diagnostics(trial["residuals"], trial["random_effects"], seed=1, title="three_level")
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[:2] == ["Residuals vs fitted", "QQ: residuals"]
    assert set(titles[2:]) == {
        "QQ: therapist Intercept",
        "QQ: therapist:patient Intercept",
        "QQ: therapist:patient alliance_within_patient",
    }
    scatter = next(c for c in figure.axes[0].collections if isinstance(c, PathCollection)).get_offsets()
    assert len(scatter) == len(trial["residuals"])
    # simulated residuals are normal: the QQ points lie close to the diagonal
    qq = next(c for c in figure.axes[1].collections if isinstance(c, PathCollection)).get_offsets()
    assert np.corrcoef(qq[:, 0], qq[:, 1])[0, 1] > 0.99
    plt.close(figure)


def test_diagnostics_accept_the_engine_column_names(trial):
    spec = spec_from_config(trial["models"]["same_session"])
    engine_names = fit(spec, complete_cases(spec, trial["analysis"])).fitted  # fitted_conditional, resid
    figure = D.model_diagnostics(engine_names, None)
    assert len(figure.axes) == 2
    plt.close(figure)


# --------------------------------------------------------------------------- style and determinism


def test_save_is_byte_identical_and_at_most_150_dpi(trial, tmp_path):
    digests = []
    for k in range(2):
        figure = F.trajectories(trial["analysis"], "alliance", ylabel="Alliance", seed=3)
        png, svg = tmp_path / f"a{k}.png", tmp_path / f"a{k}.svg"
        F.save(figure, png, svg)
        digests.append((hashlib.sha256(png.read_bytes()).hexdigest(), hashlib.sha256(svg.read_bytes()).hexdigest()))
    assert digests[0] == digests[1]
    image = Image.open(io.BytesIO((tmp_path / "a0.png").read_bytes()))
    assert round(image.info["dpi"][0]) <= 150
    assert b"Date" not in (tmp_path / "a0.svg").read_bytes().split(b"<svg")[0]


def test_one_colour_per_therapy_everywhere():
    assert F.category_colours(["PDT", "CBT", "IPT"]) == {
        "CBT": F.OKABE_ITO[0],
        "IPT": F.OKABE_ITO[1],
        "PDT": F.OKABE_ITO[2],
    }
