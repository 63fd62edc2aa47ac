"""Figures of the IPD meta-analysis: each draws the numbers of the pooling stage's tables.

Small hand-made tables (the pooling stage's columns), with numbers chosen so that a wrong order,
a wrong scale or a swapped limit gives a different figure.
"""

from __future__ import annotations

import hashlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_hex, to_rgba
from matplotlib.patches import Polygon, Rectangle

from alliance.report import pooled_figures as P
from alliance.report.figures import save

UNITS = "POMP points per within-study SD of the alliance"


def study_table() -> pd.DataFrame:
    """Four studies of same_session (written out of name order) and two of another effect."""
    return pd.DataFrame(
        {
            "effect": ["same_session"] * 4 + ["lagged"] * 2,
            "effect_label": ["Same-session alliance"] * 4 + ["Lagged alliance"] * 2,
            "study": ["trial_c", "trial_a", "trial_d", "trial_b", "trial_a", "trial_b"],
            "estimate": [-3.1, -5.5, -2.0, -4.2, 1.0, 2.0],
            "se": [1.0, 2.0, 1.2, 0.8, 1.0, 1.0],
            "ci_low": [-5.1, -9.5, -4.4, -5.8, -1.0, 0.0],
            "ci_high": [-1.1, -1.5, 0.4, -2.6, 3.0, 4.0],
            "weight": [22.0, 9.5, 18.0, 50.5, 50.0, 50.0],
            "n_patients": [120, 40, 80, 300, 40, 80],
            "flags": ["none", "boundary", "none", "not_converged;boundary", "none", "none"],
        }
    )


def pooled_row(**changes) -> dict:
    row = {
        "effect": "same_session",
        "effect_label": "Same-session alliance and symptoms",
        "k": 4,
        "estimate": -3.6,
        "se": 0.5,
        "ci_low": -4.9,
        "ci_high": -2.3,
        "pi_low": -6.0,
        "pi_high": -1.2,
        "tau2": 0.412,
        "i2": 23.4,
        "q": 5.2,
        "q_p": 0.157,
        "flags": "none",
        "known_bias": "",
        "units": UNITS,
    }
    return {**row, **changes}


def study_points(ax) -> PathCollection:
    return next(c for c in ax.collections if isinstance(c, PathCollection) and c.get_gid() == "studies")


def is_hollow(points: PathCollection) -> bool:
    """Whether markers have no fill (facecolor 'none': no face colours, or fully transparent ones)."""
    return all(to_rgba(c)[3] == 0 for c in points.get_facecolors())


def texts(figure, gid: str) -> list[str]:
    """The texts of a gid, in the axes and on the figure."""
    found = [t for ax in figure.axes for t in ax.texts] + list(figure.texts)
    return [t.get_text() for t in found if t.get_gid() == gid]


# --------------------------------------------------------------------------- forest


def test_forest_rows_are_one_effects_studies_sorted_by_name():
    rows = P.forest_rows(study_table(), "same_session")
    assert list(rows["study"]) == ["trial_a", "trial_b", "trial_c", "trial_d"]
    assert list(rows["estimate"]) == [-5.5, -4.2, -3.1, -2.0]  # each study keeps its own numbers
    assert list(rows["ci_low"]) == [-9.5, -5.8, -5.1, -4.4]
    assert list(rows["weight_text"]) == ["9.5 %", "50.5 %", "22.0 %", "18.0 %"]
    assert list(rows["flag_list"]) == [["boundary"], ["not_converged", "boundary"], [], []]
    assert rows["has_ci"].all()
    assert rows["estimate_text"].iloc[0] == "-5.50 [-9.50, -1.50]"
    assert list(P.forest_rows(study_table(), "lagged")["study"]) == ["trial_a", "trial_b"]


def test_forest_draws_each_study_weighted_and_the_pooled_diamond_with_its_prediction_interval():
    figure = P.pooled_forest(study_table(), pooled_row())
    (ax,) = figure.axes
    rows = P.forest_rows(study_table(), "same_session")
    points = study_points(ax)
    offsets = points.get_offsets()
    assert len(offsets) == 4  # one marker per study
    assert list(offsets[:, 0]) == list(rows["estimate"])
    assert list(offsets[:, 1]) == [5.0, 4.0, 3.0, 2.0]  # trial_a at the top, the pooled row at 0
    sizes = points.get_sizes()
    assert sizes / sizes.max() == pytest.approx(rows["weight"] / 50.5)  # area in proportion to the weight
    # each study's CI, at its row
    (segments,) = [c.get_segments() for c in ax.collections if isinstance(c, LineCollection)]
    assert [(s[0][0], s[1][0], s[0][1]) for s in segments] == [
        (-9.5, -1.5, 5.0),
        (-5.8, -2.6, 4.0),
        (-5.1, -1.1, 3.0),
        (-4.4, 0.4, 2.0),
    ]
    (diamond,) = [p for p in ax.patches if isinstance(p, Polygon)]
    xy = diamond.get_xy()
    assert (xy[:, 0].min(), xy[:, 0].max()) == pytest.approx((-4.9, -2.3))  # the Knapp–Hartung CI
    assert xy[xy[:, 1] == xy[:, 1].max(), 0] == pytest.approx([-3.6])  # its apex at the estimate
    assert xy[:, 1].mean() == pytest.approx(0.0)
    (interval,) = [line for line in ax.lines if line.get_gid() == "prediction_interval"]
    assert list(interval.get_xdata()) == [-6.0, -1.2] and list(interval.get_ydata()) == [0, 0]
    assert texts(figure, "weight") == ["9.5 %", "50.5 %", "22.0 %", "18.0 %"]
    assert texts(figure, "estimate")[-1] == "-3.60 [-4.90, -2.30]"
    zero = [line for line in ax.lines if list(line.get_xdata()) == [0, 0]]
    assert len(zero) == 1 and zero[0].get_linestyle() == "--"
    assert ax.get_title() == "Same-session alliance and symptoms"
    assert UNITS in ax.get_xlabel()
    (notes,) = texts(figure, "notes")
    assert notes.startswith("k = 4; τ² = 0.412; I² = 23 %; Q = 5.20, p = 0.157.")
    # flags: a symbol on the study's label and a footnote naming the flag and its studies
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [
        "trial_a (n = 40) †",
        "trial_b (n = 300) †‡",
        "trial_c (n = 120)",
        "trial_d (n = 80)",
        "Pooled (random effects)",
    ]
    assert "† flagged boundary: trial_a, trial_b" in notes and "‡ flagged not_converged: trial_b" in notes
    colours = [to_hex(c) for c in points.get_facecolors()]
    assert colours == [P.FLAG_COLOUR.lower()] * 2 + [P.STUDY_COLOUR.lower()] * 2
    assert not [p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() is None and p.get_alpha()]
    assert not [line for line in ax.lines if line.get_label() == "simulated truth"]
    plt.close(figure)


def test_forest_labels_a_known_bias_only_when_the_specification_has_one(tmp_path):
    text = "raw alliance: between-patient differences mixed into the within-patient slope"
    figure = P.pooled_forest(study_table(), pooled_row(known_bias=text))
    (label,) = texts(figure, "known_bias")
    assert label.replace("\n", " ") == f"Known bias: {text}"
    plt.close(figure)
    # read back from the pooling stage's CSV, an empty known_bias is a missing cell: no label
    pd.DataFrame([pooled_row()]).to_csv(tmp_path / "pooled.csv", index=False)
    row = pd.read_csv(tmp_path / "pooled.csv").iloc[0]
    assert pd.isna(row["known_bias"])
    figure = P.pooled_forest(study_table(), row)
    assert texts(figure, "known_bias") == []
    assert not any("Known bias" in t for t in texts(figure, "notes"))
    plt.close(figure)


def test_forest_draws_the_truth_and_the_benchmark_when_given():
    benchmark = {"estimate": -3.0, "ci_low": -3.5, "ci_high": -2.5, "label": "Lab 2030", "design": "IPD"}
    figure = P.pooled_forest(study_table(), pooled_row(), truth=-4.0, benchmark=benchmark)
    ax = figure.axes[0]
    (truth,) = [line for line in ax.lines if line.get_label() == "simulated truth"]
    assert list(truth.get_xdata()) == [-4.0, -4.0]
    (band,) = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_label().startswith("benchmark")]
    assert (band.get_x(), band.get_x() + band.get_width()) == pytest.approx((-3.5, -2.5))
    assert "simulated truth" in [t.get_text() for t in figure.legends[0].get_texts()]
    plt.close(figure)
    # NaN: the specification targets no single parameter, so no truth line
    figure = P.pooled_forest(study_table(), pooled_row(), truth=float("nan"))
    assert not [line for line in figure.axes[0].lines if line.get_label() == "simulated truth"]
    plt.close(figure)
    truth = pd.DataFrame({"effect": ["same_session", "lagged"], "truth": [-4.0, np.nan]})
    assert P.truth_value(truth, "same_session") == -4.0
    assert P.truth_value(truth, "lagged") is None and P.truth_value(truth, "riclpm") is None
    assert P.truth_value(None, "same_session") is None


def test_forest_of_a_single_study_and_of_a_study_without_a_ci():
    one = study_table().iloc[[1]].assign(ci_low=np.nan, ci_high=np.nan, weight=100.0)
    row = pooled_row(k=1, tau2=np.nan, i2=np.nan, q=np.nan, q_p=np.nan, pi_low=np.nan, pi_high=np.nan)
    figure = P.pooled_forest(one, row)
    ax = figure.axes[0]
    assert [tuple(xy) for xy in study_points(ax).get_offsets()] == [(-5.5, 2.0)]  # drawn as a point
    assert all(len(c.get_segments()) == 0 for c in ax.collections if isinstance(c, LineCollection))
    assert [t.get_text() for t in ax.get_yticklabels()][0] == "trial_a (n = 40) †*"
    (notes,) = texts(figure, "notes")
    assert "* no 95 % CI (drawn as a point): trial_a" in notes
    assert "No prediction interval" in notes and "τ² = n/a; I² = n/a" in notes
    assert not [line for line in ax.lines if line.get_gid() == "prediction_interval"]
    assert texts(figure, "weight") == ["100.0 %"]
    plt.close(figure)
    # a pooled estimate without a CI: a point, not a diamond; one of several studies without a CI
    studies = study_table()
    studies.loc[0, ["ci_low", "ci_high"]] = np.nan  # trial_c
    figure = P.pooled_forest(studies, pooled_row(ci_low=np.nan, ci_high=np.nan))
    ax = figure.axes[0]
    assert not [p for p in ax.patches if isinstance(p, Polygon)]
    assert len(study_points(ax).get_offsets()) == 4
    (segments,) = [c.get_segments() for c in ax.collections if isinstance(c, LineCollection)]
    assert [s[0][1] for s in segments] == [5.0, 4.0, 2.0]  # no CI at trial_c's row (3)
    assert "[no CI]" in texts(figure, "estimate")[2]
    plt.close(figure)


def test_forest_grows_with_the_number_of_studies():
    many = pd.concat([study_table().iloc[:4].assign(study=lambda d, k=k: d["study"] + f"_{k}") for k in range(5)])
    small, large = P.pooled_forest(study_table(), pooled_row()), P.pooled_forest(many, pooled_row())
    note_lines = [texts(f, "notes")[0].count("\n") for f in (small, large)]  # more studies named in the flags' notes
    growth = 0.3 * 16 + 0.14 * (note_lines[1] - note_lines[0])
    assert large.get_figheight() - small.get_figheight() == pytest.approx(growth)
    assert len(study_points(large.axes[0]).get_offsets()) == 20
    plt.close("all")


# --------------------------------------------------------------------------- specification curve

DIMENSIONS = ["model", "alliance", "outliers"]


def curve_table() -> pd.DataFrame:
    """Six specifications: a tie (s2, s5) broken by id, a missing estimate, a known bias, a flag."""
    return pd.DataFrame(
        {
            "specification": ["s5", "s1", "s2", "s3", "s4", "s6"],
            "estimate": [0.5, -2.0, 0.5, 1.5, np.nan, -0.5],
            "ci_low": [0.1, -3.0, -0.2, 0.5, np.nan, -1.5],
            "ci_high": [0.9, -1.0, 1.2, 2.5, np.nan, 0.5],
            "k": [5, 5, 5, 5, 5, 5],
            "flags": ["none", "none", "boundary", "none", "not_converged", "none"],
            "model": ["same_session", "lagged", "same_session", "riclpm", "riclpm", "lagged"],
            "alliance": ["raw", "detrended", "detrended", "n/a", "n/a", "raw"],
            "outliers": ["keep", "keep", "winsorise", "keep", "winsorise", "winsorise"],
            "known_bias": ["raw alliance", "", "", "", "", "raw alliance"],
        }
    )


def test_curve_order_ranks_by_estimate_then_id_missing_last():
    ordered = P.curve_order(curve_table())
    assert list(ordered["specification"]) == ["s1", "s6", "s2", "s5", "s3", "s4"]
    assert list(ordered["rank"]) == [1, 2, 3, 4, 5, 6]
    assert list(ordered["excludes_zero"]) == [True, False, False, True, True, False]
    assert list(ordered["biased"]) == [False, True, False, True, False, False]
    assert list(ordered["flagged"]) == [False, False, True, False, False, True]
    # the same rows in another order give the same ranks
    again = P.curve_order(curve_table().iloc[::-1])
    assert list(again["specification"]) == list(ordered["specification"])


def test_dashboard_marks_the_options_each_specification_uses():
    figure = P.specification_curve(curve_table(), DIMENSIONS)
    top, dash = figure.axes
    marks = {c.get_gid(): c.get_offsets() for c in dash.collections if c.get_gid() != "_cells"}
    assert list(marks) == [
        "model: same_session",
        "model: lagged",
        "model: riclpm",
        "alliance: raw",
        "alliance: detrended",  # n/a: no row
        "outliers: keep",
        "outliers: winsorise",
    ]
    curve = curve_table()
    ranks = P.curve_order(curve).set_index("specification")["rank"]
    for gid, offsets in marks.items():
        dimension, option = gid.split(": ")
        users = curve.loc[curve[dimension] == option, "specification"]
        assert len(offsets) == len(users)  # one filled marker per specification with that option
        assert sorted(offsets[:, 0]) == sorted(ranks[users])
        assert len(set(offsets[:, 1])) == 1
    assert [t.get_text() for t in dash.get_yticklabels()] == [g.split(": ")[1] for g in marks]
    assert [t.get_text() for t in dash.texts] == DIMENSIONS
    plt.close(figure)


def test_curve_draws_the_ranked_estimates_by_their_ci_bias_and_flags():
    figure = P.specification_curve(curve_table(), DIMENSIONS, truth={"lagged": -1.0, "riclpm": np.nan})
    top, dash = figure.axes
    assert top.get_shared_x_axes().joined(top, dash)
    groups = {c.get_gid(): c for c in top.collections if (c.get_gid() or "").startswith("estimates")}
    points = sorted((x, y) for c in groups.values() for x, y in c.get_offsets())
    assert points == [(1, -2.0), (2, -0.5), (3, 0.5), (4, 0.5), (5, 1.5)]  # s4 has no estimate
    # s6 (rank 2): CI includes 0, known bias -> hollow grey; s5 (rank 4): excludes 0, biased -> hollow blue
    hollow = groups["estimates excludes_zero=False biased=True flagged=False"]
    assert list(hollow.get_offsets()[:, 0]) == [2] and is_hollow(hollow)
    assert to_hex(hollow.get_edgecolors()[0]) == P.INCLUDES_ZERO_COLOUR.lower()
    assert list(groups["estimates excludes_zero=True biased=True flagged=False"].get_offsets()[:, 0]) == [4]
    assert is_hollow(groups["estimates excludes_zero=True biased=True flagged=False"])
    filled = groups["estimates excludes_zero=True biased=False flagged=False"]
    assert not is_hollow(filled)
    assert to_hex(filled.get_facecolors()[0]) == P.EXCLUDES_ZERO_COLOUR.lower()
    assert list(filled.get_offsets()[:, 0]) == [1, 5]
    assert groups["estimates excludes_zero=False biased=False flagged=True"].get_paths()[0] != filled.get_paths()[0]
    (cis,) = [c.get_segments() for c in top.collections if isinstance(c, LineCollection)]
    assert [(s[0][0], s[0][1], s[1][1]) for s in cis] == [
        (1, -3.0, -1.0),
        (2, -1.5, 0.5),
        (3, -0.2, 1.2),
        (4, 0.1, 0.9),
        (5, 0.5, 2.5),
    ]
    (truth,) = [c for c in top.collections if c.get_gid() == "truth"]
    assert [tuple(xy) for xy in truth.get_offsets()] == [(1, -1.0), (2, -1.0)]  # the lagged specifications
    assert top.get_title() == "Specification curve: 6 specifications; 3 of 5 95 % CIs exclude 0"
    (notes,) = texts(figure, "curve_notes")
    assert "Known bias (hollow): raw alliance" in notes and "1 specification(s) without an estimate" in notes
    plt.close(figure)


# --------------------------------------------------------------------------- determinism


def test_the_same_tables_save_to_the_same_bytes(tmp_path):
    digests = []
    for k in range(2):
        forest, curve = tmp_path / f"forest{k}.png", tmp_path / f"curve{k}.png"
        save(P.pooled_forest(study_table(), pooled_row(known_bias="raw"), truth=-4.0), forest, tmp_path / f"f{k}.svg")
        save(P.specification_curve(curve_table(), DIMENSIONS, truth={"lagged": -1.0}), curve)
        digests.append([hashlib.sha256(p.read_bytes()).hexdigest() for p in (forest, curve, tmp_path / f"f{k}.svg")])
    assert digests[0] == digests[1]
