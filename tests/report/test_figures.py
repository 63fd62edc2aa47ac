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
from matplotlib.patches import Rectangle
from PIL import Image
from scipy import stats

from alliance.engines.dispatch import fit
from alliance.models.influence import therapist_influence
from alliance.models.specs import complete_cases, spec_from_config
from alliance.report import diagnostic_figures as D
from alliance.report import figures as F
from alliance.report.comparisons import patient_level_rows
from alliance.report.influence_figure import therapist_influence_figure
from testkit.trials import effects_table, make_trial


@pytest.fixture(scope="session")
def trial(tmp_path_factory) -> dict:
    return make_trial(tmp_path_factory.mktemp("figures_trial"))


def _as_specified(trial: dict, name: str):
    """A model of the fixture fitted by the engine as specified (no singular-fit policy): its
    variance components and random effects as the model stage writes them."""
    spec = spec_from_config(trial["models"][name])
    return fit(spec, complete_cases(spec, trial["analysis"]))


@pytest.fixture(scope="module")
def three_level(trial):
    """The three-level model as specified: on the fixture its therapist variance is 0 (BLUPs all 0)."""
    return _as_specified(trial, "three_level")


@pytest.fixture(scope="module")
def therapist_fit(trial):
    """The alliance variance split as specified: a therapist variance above 0."""
    return _as_specified(trial, "variance_alliance")


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


def _bands(ax) -> list[tuple[float, float]]:
    """The x-ranges of the shaded bands (axvspan rectangles) of an axes."""
    return [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches if isinstance(p, Rectangle)]


def test_forest_plot_draws_the_benchmark_only_behind_its_own_design(trial, benchmark):
    """Like with like: the band of a benchmark of patient-level associations lies behind the
    patient-level models' r-equivalents and behind no within-patient or between-patient row."""
    fits = [trial["fitted"][name]["fit"] for name in ("same_session", "three_level", "early_alliance")]
    patient_level = patient_level_rows(fits, benchmark)
    assert [r["model"] for r in patient_level] == ["early_alliance"]
    figure = F.alliance_forest(effects_table(), benchmark, patient_level=patient_level)
    within, between, patients = figure.axes
    assert within.get_title() == "Within patients\n(no published benchmark of this design)"
    assert between.get_title().startswith("Between patients\n")
    assert _bands(within) == [] and _bands(between) == []
    assert not any(0.278 in np.atleast_1d(line.get_xdata()) for ax in (within, between) for line in ax.lines)
    assert _bands(patients) == [pytest.approx((0.256, 0.299))]
    assert any(0.278 in np.atleast_1d(line.get_xdata()) for line in patients.lines)
    # the patient-level panel draws the model stage's r-equivalent (r with improvement) and its CI
    point = next(c for c in patients.collections if isinstance(c, PathCollection)).get_offsets()[0]
    assert point[0] == pytest.approx(patient_level[0]["r"])
    segment = next(c for c in patients.collections if isinstance(c, LineCollection)).get_segments()[0]
    assert (segment[0][0], segment[1][0]) == pytest.approx((patient_level[0]["ci_low"], patient_level[0]["ci_high"]))
    # the legend says what the band is: whose value, and the design it pools
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == [
        "Band: Flückiger et al. 2018, r = .278 [.256, .299], pooled patient-level associations of alliance\n"
        "with end-of-treatment outcome"
    ]
    xs = sorted(float(c.get_offsets()[0][0]) for c in within.collections if isinstance(c, PathCollection))
    assert xs == pytest.approx(sorted([0.31, 0.24, 0.36, 0.30, 0.22]))
    assert within.get_xlabel() == "r between alliance and symptom improvement"
    plt.close(figure)


def test_forest_plot_without_an_estimate_of_the_benchmarks_design_draws_no_band(benchmark):
    figure = F.alliance_forest(effects_table(), benchmark)
    assert len(figure.axes) == 2 and all(_bands(ax) == [] for ax in figure.axes)
    assert not figure.legends
    assert [t.get_text() for t in figure.texts] == [
        "No estimate of the design Flückiger et al. 2018 pooled (patient-level associations of alliance with\n"
        "end-of-treatment outcome) in this run: its band is not drawn."
    ]
    plt.close(figure)


def test_forest_plot_without_any_alliance_estimate_says_so(benchmark):
    """Every model skipped (a design without therapists whose suite needs them): no panel to draw,
    a figure that says why rather than a crash of the figure step."""
    effects = effects_table().iloc[0:0]
    figure = F.alliance_forest(effects, benchmark, patient_level=[])
    (ax,) = figure.axes
    assert [t.get_text() for t in ax.texts] == [F.NO_FOREST_ESTIMATE]
    assert not figure.legends
    plt.close(figure)


def test_forest_plot_band_follows_the_configured_benchmark_and_its_design_terms(benchmark):
    """A stratified patient-level model puts its rows in the forest's table: the configured
    benchmark's band lies behind that term's panel, not behind the within-patient one."""
    effects = effects_table()
    effects.loc[effects["term"] == "alliance_between_patient", "term"] = "alliance_s3"
    models = [{"name": "eot", "data": "patients", "roles": {"alliance_s3": "patient_level"}}]
    other = {**benchmark, "r": 0.2, "ci_low": 0.15, "ci_high": 0.25, "citation": "Lab 2030", "design": "early alliance"}
    figure = F.alliance_forest(effects, other, benchmark_terms=F.benchmark_design_terms(models))
    within, early = figure.axes
    assert _bands(within) == [] and _bands(early) == [pytest.approx((0.15, 0.25))]
    assert any(0.2 in np.atleast_1d(line.get_xdata()) for line in early.lines)
    assert early.get_title() == "alliance_s3\n(the benchmark's design)"
    assert [t.get_text() for t in figure.legends[0].get_texts()] == [
        "Band: Lab 2030, r = .200 [.150, .250], pooled early alliance"
    ]
    plt.close(figure)


# --------------------------------------------------------------------------- therapist effects


def test_caterpillar_ranks_therapists_with_95_intervals(therapist_fit):
    re = therapist_fit.random_effects.rename(columns={"cond_sd": "sd"})
    figure = D.therapist_caterpillar(re, variance=therapist_fit.variance_components)
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


def test_caterpillar_says_when_there_are_no_therapist_effects(three_level):
    """A therapist variance at 0 (the fit as specified), or a fit whose singular-fit policy dropped
    the therapist level (no therapist rows), is said in words, not drawn as an empty plot."""
    zero = D.therapist_caterpillar(three_level.random_effects, variance=three_level.variance_components)
    dropped = D.therapist_caterpillar(three_level.random_effects.query("group != 'therapist'"))
    for figure in (zero, dropped):
        ax = figure.axes[0]
        assert _points(ax) == 0 and not ax.lines
        assert ax.texts[0].get_text().startswith("therapist variance estimated at 0:\nno therapist effects to plot")
    assert dropped.axes[0].texts[0].get_text().endswith("\n(the therapist level was dropped from the fit)")
    plt.close("all")


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


def test_missing_data_draws_one_dropout_line_per_therapy_and_one_bar_per_arm(trial):
    """Left: a survival-style step line per therapy type (few lines, in the legend), at the % of its
    patients whose last attended session is s or later; right: one bar per therapy x condition arm
    at the % of in-treatment sessions without an outcome or alliance score."""
    data, patients = trial["analysis"], trial["patients"]
    figure = D.missing_data(data, patients)
    left, right = figure.axes
    therapies = sorted(patients["therapy"].unique())
    assert len(left.lines) == len(therapies) == 3
    assert [t.get_text() for t in left.get_legend().get_texts()] == [
        f"{t} (n = {(patients['therapy'] == t).sum()})" for t in therapies
    ]
    for line, therapy in zip(left.lines, therapies):
        assert line.get_drawstyle() == "steps-mid"
        last = patients.loc[patients["therapy"] == therapy, "last_session"].to_numpy()
        sessions = np.arange(1, patients["last_session"].max() + 1)
        assert np.array_equal(line.get_xdata(), sessions)
        assert np.allclose(line.get_ydata(), [100 * (last >= s).mean() for s in sessions])
        assert np.all(np.diff(line.get_ydata()) <= 0)  # dropout only ever lowers it
    bars = [p for p in right.patches if isinstance(p, Rectangle)]
    arms = patients.groupby(["therapy", "condition"]).size()
    assert len(bars) == len(arms) == 6
    # CBT x anxiety, the first arm (top bar), by hand: its patients' sessions 1..last, and which lack a score
    pts = patients[(patients["therapy"] == "CBT") & (patients["condition"] == "anxiety")]
    scored = data.dropna(subset=["symptoms", "alliance"])
    scored = set(zip(scored["patient"].astype(str), scored["session"].astype(int)))
    due = [(str(p), s) for p, last in zip(pts["patient"], pts["last_session"]) for s in range(1, int(last) + 1)]
    missed = sum(key not in scored for key in due)
    top = max(bars, key=lambda b: b.get_y())
    assert top.get_width() == pytest.approx(100 * missed / len(due))
    assert f"({missed:,} of {len(due):,})" in " ".join(t.get_text() for t in right.texts)
    assert right.get_yticklabels()[0].get_text() == f"CBT, anxiety (n = {len(pts)})"  # the top bar
    plt.close(figure)


def _inside(inner, outer) -> bool:
    return inner.x0 >= outer.x0 and inner.x1 <= outer.x1 and inner.y0 >= outer.y0 and inner.y1 <= outer.y1


@pytest.mark.parametrize("long_texts", [False, True])
def test_flow_diagram_texts_lie_inside_their_boxes(trial, long_texts):
    """The renderer's extent of every text lies inside exactly one box, whatever the length of the
    step names and reasons (the boxes are sized to the measured texts)."""
    flow = trial["flow"].copy()
    if long_texts:
        flow.loc[1, ["step", "rows_excluded"]] = ["one row per patient and session (analysis dataset) " * 2, 1_234_567]
        flow.loc[len(flow) - 1, ["reason", "rows_excluded"]] = ["a reason that runs on " * 12, 1]
    figure = D.exclusion_flow(flow)
    renderer = figure.canvas.get_renderer()
    ax = figure.axes[0]
    boxes = [p.get_window_extent(renderer) for p in ax.patches]
    assert len(boxes) == len(flow) + int(
        (flow[["rows_excluded", "patients_excluded", "therapists_excluded"]].sum(axis=1) > 0).sum()
    )
    texts = [t for t in ax.texts if t.get_text()]
    assert len(texts) == len(boxes) + len(flow)  # a step's box holds its name and its counts
    for text in texts:
        extent = text.get_window_extent(renderer)
        assert sum(_inside(extent, box) for box in boxes) == 1, text.get_text()
    if long_texts:
        assert any(t.get_text().startswith("Excluded: 1 row, 0 patients, 0 therapists\n") for t in texts)
        assert any(t.get_text().startswith("Excluded: 1,234,567 rows,") for t in texts)
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


# --------------------------------------------------------------------------- therapist influence


@pytest.fixture(scope="module")
def influence_table() -> pd.DataFrame:
    """The model stage's leave-one-therapist-out table of a small patient-level model with two focal
    terms, one therapist (T3) planted with a steeper slope (alliance.models.influence, real refits)."""
    rng = np.random.default_rng(1)
    therapist = np.repeat([f"T{i}" for i in range(6)], 8)
    x, z = rng.normal(size=48), rng.normal(size=48)
    y = 2 * x + z + rng.normal(size=48) + np.repeat(rng.normal(size=6), 8)
    y[therapist == "T3"] += 6 * x[therapist == "T3"]
    pts = pd.DataFrame({"patient": [f"P{i}" for i in range(48)], "therapist": therapist, "x": x, "z": z, "y": y})
    model = {
        "name": "eot",
        "data": "patients",
        "outcome": "y",
        "fixed": ["x", "z"],
        "random": [{"group": "therapist"}],
        "roles": {"x": "patient_level", "z": "between_therapist"},
    }
    return therapist_influence(model, None, pts)


def test_influence_figure_draws_each_therapist_left_out_at_the_tables_values(influence_table):
    figure = therapist_influence_figure([influence_table], {"eot": "End of treatment"}, {"x": "Early alliance"})
    panels = [ax for ax in figure.axes if ax.get_visible() and ax.collections]
    assert [ax.get_title() for ax in panels] == ["End of treatment\nEarly alliance", "End of treatment\nZ"]
    for ax, (term, rows) in zip(panels, influence_table.groupby("term", sort=False)):
        dots = next(c for c in ax.collections if isinstance(c, PathCollection)).get_offsets()
        assert len(dots) == rows["therapist"].nunique() == 6  # one point per therapist left out
        assert np.allclose(dots[:, 0], np.sort(rows["estimate_without"]))  # ranked, at the table's values
        assert np.array_equal(dots[:, 1], np.arange(6))
        assert _bands(ax) == [pytest.approx((rows["ci_low_all"].iloc[0], rows["ci_high_all"].iloc[0]))]
        assert any(np.allclose(line.get_xdata(), rows["estimate_all"].iloc[0]) for line in ax.lines)
        named = rows.assign(a=rows["dfbetas"].abs())[rows["influential"] == "yes"].sort_values("a", ascending=False)
        text = next(t.get_text() for t in ax.texts)
        expected = [f"{t}: {d:.2f}".replace("-", "−") for t, d in zip(named["therapist"], named["dfbetas"])][:3]
        assert text.splitlines()[1:] == expected
    # the planted therapist moves the slope of x beyond the cut-off and is named first
    assert next(t.get_text() for t in panels[0].texts).splitlines()[1].startswith("T3: ")
    plt.close(figure)


def test_influence_figure_needs_the_full_fits_ci(influence_table):
    with pytest.raises(ValueError, match="therapist influence table lacks the columns ci_low_all, ci_high_all"):
        therapist_influence_figure([influence_table.drop(columns=["ci_low_all", "ci_high_all"])])


# --------------------------------------------------------------------------- diagnostics


def test_diagnostics_show_residuals_and_every_random_effect(trial, three_level):
    figure = D.model_diagnostics(trial["residuals"], three_level.random_effects, seed=1, title="three_level")
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[:2] == ["Residuals vs fitted", "QQ: residuals"]
    assert titles[2:] == [
        "QQ: therapist intercepts",
        "QQ: patient (within therapist) intercepts",
        "QQ: patient (within therapist) slopes\nof alliance (within patient)",
    ]
    scatter = next(c for c in figure.axes[0].collections if isinstance(c, PathCollection)).get_offsets()
    assert len(scatter) == len(trial["residuals"])
    # simulated residuals are normal: the QQ points lie close to the diagonal
    qq = next(c for c in figure.axes[1].collections if isinstance(c, PathCollection)).get_offsets()
    assert np.corrcoef(qq[:, 0], qq[:, 1])[0, 1] > 0.99
    plt.close(figure)


def _points(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))


def test_a_random_effect_variance_of_zero_is_said_in_words(trial, three_level):
    """The fixture's three-level model as specified puts the therapist variance at 0 (its BLUPs are
    all 0): that panel says so instead of drawing empty axes; the other random effects keep their QQ plots."""
    variance, re = three_level.variance_components, three_level.random_effects
    zero = variance[(variance["group"] == "therapist") & (variance["term"] == "Intercept")]["variance"].iloc[0]
    assert zero == 0 and (re.loc[re["group"] == "therapist", "value"] == 0).all()
    figure = D.model_diagnostics(trial["residuals"], re, variance=variance)
    therapist, patient, slope = figure.axes[2:]
    assert [t.get_text() for t in therapist.texts] == [
        "therapist variance estimated at 0:\nno therapist effects to plot"
    ]
    assert _points(therapist) == 0 and not therapist.lines
    assert _points(patient) == (re["group"] == "therapist:patient").sum() / 2 and not patient.texts
    plt.close(figure)
    # a variance at 0 in the model's variance table, even with BLUPs that are not all equal (a slope)
    at_zero = variance.copy()
    at_zero.loc[at_zero["term"] == "alliance_within_patient", "variance"] = 0.0
    slope = D.model_diagnostics(trial["residuals"], re, variance=at_zero).axes[4]
    assert [t.get_text() for t in slope.texts] == [
        "variance of the patient (within therapist)\nslopes of alliance (within patient)\n"
        "estimated at 0: no such slopes to plot"
    ]
    assert _points(slope) == 0
    plt.close("all")


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


def test_flow_diagram_sized_by_measured_text_is_byte_identical_across_runs(trial, tmp_path):
    """The figure whose boxes are sized by the renderer's measure of its texts saves to the same bytes twice."""
    digests = set()
    for k in range(2):
        png = tmp_path / f"flow{k}.png"
        F.save(D.exclusion_flow(trial["flow"]), png)
        digests.add(hashlib.sha256(png.read_bytes()).hexdigest())
    assert len(digests) == 1
