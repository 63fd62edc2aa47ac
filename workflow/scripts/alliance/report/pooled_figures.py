"""Figures of the individual-patient-data (IPD) meta-analysis: a forest plot per pooled effect and the
specification curve of the multiverse, in the house style of :mod:`alliance.report.figures`.

Each figure draws the rows of a small helper (:func:`forest_rows`, :func:`curve_order`,
:func:`dashboard_rows`) that the tests check against the tables, so what is drawn is what the
pooling stage wrote.  Nothing is sampled: the same tables give byte-identical files through
:func:`alliance.report.figures.save`.

The forest plot shows every study's estimate with its 95 % CI (marker area proportional to its
random-effects weight), the pooled diamond (Knapp–Hartung CI) with the prediction interval through
it, and, when given, the simulated truth and a published benchmark's band.  A specification with a
known bias carries that in words on the figure: a reader of the picture alone must not take it for
an unbiased estimate.  The specification curve (Simonsohn, Simmons & Nelson 2020, *Nature Human
Behaviour* 4, 1208–1214) ranks every specification's estimate and shows below it, in a dashboard,
which option of each analytic choice that specification made.

``i2`` is read in percent (0–100), as ``weight`` is, the way metafor reports both.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Polygon  # noqa: E402
from matplotlib.transforms import blended_transform_factory, offset_copy  # noqa: E402

from alliance.report.figures import OKABE_ITO, STYLE, numeric_values  # noqa: E402

#: symbols of a study's flags, one per distinct flag of the plot (in sorted order of the flags)
FLAG_SYMBOLS = ("†", "‡", "§", "¶", "‖", "#")
#: the symbol of a study without a 95 % CI (drawn as a point)
NO_CI_SYMBOL = "*"
#: the text of a ``flags`` cell that carries no flag
NO_FLAGS = frozenset({"", "none", "nan"})
#: the marker area (pt²) of the study with the largest weight; the others in proportion
MAX_MARKER_AREA = 160.0
#: an option of a choice that a specification does not make (no row in the dashboard)
NOT_APPLICABLE = "n/a"
STUDY_COLOUR, FLAG_COLOUR, POOLED_COLOUR = "#333333", OKABE_ITO[3], OKABE_ITO[0]
TRUTH_COLOUR, BENCHMARK_COLOUR, NULL_COLOUR = OKABE_ITO[5], OKABE_ITO[1], "#888888"
EXCLUDES_ZERO_COLOUR, INCLUDES_ZERO_COLOUR = OKABE_ITO[0], "#999999"
WRAP = 95  # characters per line of a figure's notes


def text_of(value: object) -> str:
    """A table cell as text, a missing cell (NaN, None: an empty CSV cell) as ``""``.

    >>> text_of(float("nan")), text_of(None), text_of(" raw ")
    ('', '', 'raw')
    """
    missing = value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))
    return "" if missing else str(value).strip()


def flag_list(value: object) -> list[str]:
    """The flags of a ``flags`` cell (``'none'`` or ``';'``-joined), without empties.

    >>> flag_list("not_converged;boundary"), flag_list("none"), flag_list(float("nan"))
    (['not_converged', 'boundary'], [], [])
    """
    return [f.strip() for f in text_of(value).split(";") if f.strip().lower() not in NO_FLAGS]


def _finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number (text and missing: None)."""
    x = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    return float(x) if pd.notna(x) and np.isfinite(x) else None


def number(value: object, digits: int = 2) -> str:
    """A number for a figure's text, a missing or infinite one as ``n/a``; below 0.1 in size with
    ``digits`` significant digits (an effect per POMP point is a few thousandths).

    >>> number(0.12345), number(float("nan")), number(3, 0), number(-0.003375)
    ('0.12', 'n/a', '3', '-0.0034')
    """
    x = _finite(value)
    if x is None:
        return "n/a"
    if 0 < abs(x) < 0.1 and digits > 0:
        return f"{x:.{digits}g}" if abs(x) >= 1e-4 else f"{x:.{digits - 1}e}"
    return f"{x:.{digits}f}"


# --------------------------------------------------------------------------- forest plot per effect


def forest_rows(study_estimates: pd.DataFrame, effect: str) -> pd.DataFrame:
    """The studies of one pooled effect in display order (sorted by study name, top to bottom).

    Numbers as floats (text and missing as NaN), and what the plot prints: ``flag_list``,
    ``has_ci`` (both CI limits finite: otherwise the study is drawn as a point and noted),
    ``weight_text`` ("12.3 %") and ``estimate_text`` ("0.25 [0.10, 0.40]").
    """
    frame = study_estimates[study_estimates["effect"].astype(str) == str(effect)].copy()
    frame["study"] = frame["study"].astype(str)
    frame = frame.sort_values("study", kind="stable").reset_index(drop=True)
    for column in ("estimate", "se", "ci_low", "ci_high", "weight", "n_patients"):
        frame[column] = numeric_values(frame[column]) if column in frame else np.nan
    frame["flag_list"] = [flag_list(v) for v in frame["flags"]] if "flags" in frame else [[] for _ in range(len(frame))]
    frame["has_ci"] = np.isfinite(frame["ci_low"]) & np.isfinite(frame["ci_high"])
    frame["weight_text"] = [f"{w:.1f} %" if np.isfinite(w) else "n/a" for w in frame["weight"]]
    frame["estimate_text"] = [
        f"{number(e)} [{number(lo)}, {number(hi)}]" if ok else f"{number(e)} [no CI]"
        for e, lo, hi, ok in zip(frame["estimate"], frame["ci_low"], frame["ci_high"], frame["has_ci"])
    ]
    return frame


def flag_symbols(rows: pd.DataFrame) -> dict[str, str]:
    """One symbol per distinct flag of the rows, in sorted order of the flags (the same data, the same symbols).

    >>> flag_symbols(pd.DataFrame({"flag_list": [["not_converged", "boundary"], [], ["boundary"]]}))
    {'boundary': '†', 'not_converged': '‡'}
    """
    flags = sorted({f for fl in rows["flag_list"] for f in fl})
    return {f: FLAG_SYMBOLS[k % len(FLAG_SYMBOLS)] * (1 + k // len(FLAG_SYMBOLS)) for k, f in enumerate(flags)}


def forest_notes(rows: pd.DataFrame, pooled_row: Mapping) -> list[str]:
    """The footnotes of a forest plot: the pooling's statistics, each flag and the studies it names,
    the studies drawn without a CI, and the pooled estimate's own flags."""
    i2 = _finite(pooled_row.get("i2"))
    notes = [
        f"k = {number(pooled_row.get('k'), 0)}; τ² = {number(pooled_row.get('tau2'), 3)}; "
        f"I² = {f'{i2:.0f} %' if i2 is not None else 'n/a'}; Q = {number(pooled_row.get('q'))}, "
        f"p = {number(pooled_row.get('q_p'), 3)}.  Diamond: pooled estimate, 95 % CI (Knapp–Hartung); "
        "line through it: 95 % prediction interval."
    ]
    for flag, symbol in flag_symbols(rows).items():
        studies = ", ".join(rows.loc[[flag in fl for fl in rows["flag_list"]], "study"])
        notes.append(f"{symbol} flagged {flag}: {studies}")
    without = rows.loc[~rows["has_ci"], "study"]
    if len(without):
        notes.append(f"{NO_CI_SYMBOL} no 95 % CI (drawn as a point): {', '.join(without)}")
    if _finite(pooled_row.get("pi_low")) is None or _finite(pooled_row.get("pi_high")) is None:
        notes.append("No prediction interval (not estimable from these studies).")
    if pooled := flag_list(pooled_row.get("flags")):
        notes.append(f"Pooled estimate flagged: {', '.join(pooled)}")
    return [textwrap.fill(n, WRAP, break_on_hyphens=False) for n in notes]


def known_bias_label(known_bias: object) -> str:
    """The figure's label of a specification with a known bias (wrapped), ``""`` without one.

    >>> known_bias_label("")
    ''
    >>> known_bias_label("raw alliance: between-patient confounding")
    'Known bias: raw alliance: between-patient confounding'
    >>> known_bias_label("known bias: Nickell's")  # a label that already says so is not prefixed twice
    "Known bias: Nickell's"
    """
    text = text_of(known_bias)
    text = text[len("known bias:") :].strip() if text.lower().startswith("known bias:") else text
    return textwrap.fill(f"Known bias: {text}", WRAP, break_on_hyphens=False) if text else ""


def _study_label(row: pd.Series, symbols: Mapping[str, str]) -> str:
    """A study's tick label: its name, n, and the symbols of its flags and of a missing CI."""
    n = f" (n = {int(row['n_patients']):,})" if np.isfinite(row["n_patients"]) else ""
    marks = "".join(symbols[f] for f in sorted(row["flag_list"])) + ("" if row["has_ci"] else NO_CI_SYMBOL)
    return f"{row['study']}{n}{' ' + marks if marks else ''}"


def _diamond(ax: plt.Axes, y: float, estimate: float, low: float, high: float) -> None:
    """The pooled estimate as a diamond spanning its CI (a point marker when the CI is missing)."""
    if np.isfinite(low) and np.isfinite(high):
        vertices = [(low, y), (estimate, y + 0.32), (high, y), (estimate, y - 0.32)]
        ax.add_patch(Polygon(vertices, closed=True, color=POOLED_COLOUR, zorder=4, label="pooled (95 % CI)"))
    elif np.isfinite(estimate):
        ax.scatter([estimate], [y], marker="D", s=50, color=POOLED_COLOUR, zorder=4, label="pooled (no CI)")


def pooled_forest(
    study_estimates: pd.DataFrame,
    pooled_row: Mapping | pd.Series,
    *,
    truth: float | None = None,
    benchmark: Mapping | None = None,
) -> plt.Figure:
    """Forest plot of one pooled effect (``pooled_row``: its row of the pooled table).

    One row per study (:func:`forest_rows`): its estimate and 95 % CI, the marker area proportional
    to its weight, its estimate and weight printed at the right, its flags as symbols named in a
    footnote; below, the pooled diamond (Knapp–Hartung CI) with the prediction interval as a thin
    whiskered line through it.  A dashed line at 0; the simulated ``truth`` as a vertical line when it
    is a finite number; the ``benchmark`` (``estimate``, ``ci_low``, ``ci_high``, ``label``,
    ``design``) as a band only when given: whether its design matches is the caller's decision.
    A ``known_bias`` of the pooled row is written on the figure.
    """
    pooled_row = dict(pooled_row)
    rows = forest_rows(study_estimates, str(pooled_row["effect"]))
    symbols = flag_symbols(rows)
    notes = "\n".join(forest_notes(rows, pooled_row))
    bias = known_bias_label(pooled_row.get("known_bias"))
    n = len(rows)
    y_studies = np.arange(n, 0, -1) + 1.0  # first study at the top; the pooled row at y = 0
    top_in = 0.17 * (bias.count("\n") + 1) + 0.15 if bias else 0.0  # inches above the title: the bias label
    bottom_in = 0.14 * (notes.count("\n") + 1) + 0.45  # below the axes: the legend and the notes
    height = 0.3 * (n + 2) + 1.4 + top_in + bottom_in
    with plt.rc_context(STYLE):
        figure, ax = plt.subplots(figsize=(8.6, height))
        if benchmark is not None:
            band = textwrap.fill(f"benchmark: {benchmark['label']} ({benchmark['design']})", 70)
            low, high = float(benchmark["ci_low"]), float(benchmark["ci_high"])
            ax.axvspan(low, high, color=BENCHMARK_COLOUR, alpha=0.25, linewidth=0, label=band)
            ax.axvline(float(benchmark["estimate"]), color=BENCHMARK_COLOUR, lw=1.2)
        ax.axvline(0, color=NULL_COLOUR, lw=0.9, ls="--", zorder=1)
        if (true_value := _finite(truth)) is not None:
            ax.axvline(true_value, color=TRUTH_COLOUR, lw=1.6, ls=":", zorder=5, label="simulated truth")
        flagged = np.array([bool(fl) for fl in rows["flag_list"]], dtype=bool)
        colours = np.where(flagged, FLAG_COLOUR, STUDY_COLOUR)
        ci = rows["has_ci"].to_numpy(dtype=bool)
        ax.hlines(y_studies[ci], rows["ci_low"][ci], rows["ci_high"][ci], colors=list(colours[ci]), lw=1.2, zorder=2)
        weights = rows["weight"].to_numpy(dtype=float)
        top = np.nanmax(weights) if np.isfinite(weights).any() and np.nanmax(weights) > 0 else 1.0
        sizes = np.where(np.isfinite(weights), MAX_MARKER_AREA * weights / top, 12.0)
        ax.scatter(rows["estimate"], y_studies, s=sizes, marker="s", c=list(colours), zorder=3, gid="studies")
        estimate, low, high = (_finite(pooled_row.get(c)) for c in ("estimate", "ci_low", "ci_high"))
        pi_low, pi_high = _finite(pooled_row.get("pi_low")), _finite(pooled_row.get("pi_high"))
        if pi_low is not None and pi_high is not None:
            ax.plot(
                [pi_low, pi_high], [0, 0], color=POOLED_COLOUR, lw=1.0, marker="|", ms=9, zorder=3,
                label="95 % prediction interval", gid="prediction_interval",
            )  # fmt: skip
        _diamond(ax, 0.0, *(np.nan if v is None else v for v in (estimate, low, high)))
        # the two columns at the right, a fixed distance (inches) from the axes' right edge
        right = blended_transform_factory(ax.transAxes, ax.transData)
        column = {k: offset_copy(right, fig=figure, x=x, units="inches") for k, x in (("est", 0.15), ("w", 2.0))}
        ax.text(1, n + 2.0, "Estimate [95 % CI]", transform=column["est"], ha="left", va="center", weight="bold")
        ax.text(1, n + 2.0, "Weight", transform=column["w"], ha="left", va="center", weight="bold")
        for yy, est, w in zip(y_studies, rows["estimate_text"], rows["weight_text"]):
            ax.text(1, yy, est, transform=column["est"], ha="left", va="center", gid="estimate")
            ax.text(1, yy, w, transform=column["w"], ha="left", va="center", gid="weight")
        pooled_text = f"{number(estimate)} [{number(low)}, {number(high)}]"
        ax.text(1, 0, pooled_text, transform=column["est"], ha="left", va="center", weight="bold", gid="estimate")
        labels = [_study_label(r, symbols) for _, r in rows.iterrows()]
        ax.set_yticks([*y_studies, 0.0], [*labels, "Pooled (random effects)"])
        ax.set_ylim(-1.0, n + 2.6)
        ax.tick_params(axis="y", length=0)
        units = text_of(pooled_row.get("units"))
        ax.set_xlabel(textwrap.fill(f"{units or 'Estimate'} (95 % CI)", 80))
        ax.set_title(textwrap.fill(text_of(pooled_row.get("effect_label")) or str(pooled_row["effect"]), 70))
        figure.tight_layout(rect=(0, bottom_in / height, 1, 1 - top_in / height))
        figure.text(0.01, 0.01, notes, ha="left", va="bottom", fontsize=7.5, gid="notes")
        handles, texts = ax.get_legend_handles_labels()
        if handles:
            figure.legend(
                handles, texts, frameon=False, fontsize=8, ncol=len(handles), loc="lower left",
                bbox_to_anchor=(0.0, (bottom_in - 0.4) / height),
            )  # fmt: skip
        if bias:
            figure.text(
                0.01, 0.99, bias, ha="left", va="top", fontsize=9, weight="bold", color=TRUTH_COLOUR,
                gid="known_bias", bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": TRUTH_COLOUR},
            )  # fmt: skip
    return figure


def truth_value(truth: pd.DataFrame | None, effect: str) -> float | None:
    """The simulated generating value of ``effect`` from the truth table (None: no table, no row, or NaN).

    >>> truth_value(pd.DataFrame({"effect": ["same_session", "lagged"], "truth": [-4.0, float("nan")]}), "lagged")
    >>> truth_value(pd.DataFrame({"effect": ["same_session"], "truth": [-4.0]}), "same_session")
    -4.0
    """
    if truth is None:
        return None
    values = truth.loc[truth["effect"].astype(str) == str(effect), "truth"]
    return _finite(values.iloc[0]) if len(values) else None


# --------------------------------------------------------------------------- specification curve


def curve_order(curve: pd.DataFrame) -> pd.DataFrame:
    """The specifications ranked by estimate (ascending; ties by specification id, so that the order
    is deterministic; missing estimates last), with ``rank`` (1, 2, ...), ``position`` (the row's
    place in ``curve``) and what the curve draws: ``excludes_zero`` (the 95 % CI lies on one side
    of 0), ``biased`` (a known bias) and ``flagged``."""
    frame = curve.copy()
    frame["position"] = np.arange(len(frame))  # the row's place in the table as written
    for column in ("estimate", "ci_low", "ci_high"):
        frame[column] = numeric_values(frame[column])
    frame = frame.sort_values(["estimate", "specification"], kind="stable", na_position="last")
    frame = frame.reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    frame["excludes_zero"] = (frame["ci_low"] > 0) | (frame["ci_high"] < 0)
    frame["biased"] = [bool(text_of(b)) for b in frame.get("known_bias", pd.Series("", index=frame.index))]
    frame["flagged"] = [bool(flag_list(f)) for f in frame.get("flags", pd.Series("none", index=frame.index))]
    return frame


def dashboard_rows(ordered: pd.DataFrame, dimensions: Sequence[str]) -> pd.DataFrame:
    """One row per option of each choice dimension (in the order of ``dimensions``, options in their
    order of first appearance in the table as written, not in rank order, so that the rows do not move
    when the estimates do; ``n/a`` left out), with the ranks of the specifications that use it and the
    row's height ``y`` in the dashboard.

    >>> ordered = curve_order(pd.DataFrame({"specification": ["a", "b", "c"], "estimate": [2, 1, 3],
    ...     "ci_low": [1, 0, 2], "ci_high": [3, 2, 4], "model": ["lagged", "same_session", "lagged"],
    ...     "alliance": ["raw", "n/a", "detrended"]}))
    >>> dashboard_rows(ordered, ["model", "alliance"])[["dimension", "option", "ranks"]].to_dict("records")
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'dimension': 'model', 'option': 'lagged', 'ranks': [2, 3]},
     {'dimension': 'model', 'option': 'same_session', 'ranks': [1]},
     {'dimension': 'alliance', 'option': 'raw', 'ranks': [2]},
     {'dimension': 'alliance', 'option': 'detrended', 'ranks': [3]}]
    """
    records = []
    for dimension in dimensions:
        values = ordered[dimension].map(text_of)
        as_written = values.iloc[np.argsort(ordered["position"].to_numpy(), kind="stable")]
        for option in pd.unique(as_written):
            if option in ("", NOT_APPLICABLE):
                continue
            ranks = [int(r) for r in ordered.loc[values == option, "rank"]]
            records.append({"dimension": dimension, "option": option, "ranks": ranks})
    frame = pd.DataFrame(records, columns=["dimension", "option", "ranks"])
    frame["y"] = np.arange(len(frame))[::-1]  # the first dimension's first option at the top
    return frame


def truth_ticks(ordered: pd.DataFrame, truth: Mapping[str, float] | None) -> list[tuple[int, float]]:
    """(rank, true value) of each ranked specification whose ``model`` option has a finite truth.

    >>> truth_ticks(pd.DataFrame({"rank": [1, 2, 3], "model": ["lagged", "riclpm", "lagged"]}), {"lagged": -1.0})
    [(1, -1.0), (3, -1.0)]
    """
    if not truth or "model" not in ordered:
        return []
    values = [_finite(truth.get(text_of(m))) for m in ordered["model"]]
    return [(int(r), v) for r, v in zip(ordered["rank"], values) if v is not None]


def _curve_legend(ordered: pd.DataFrame, with_truth: bool) -> tuple[list[Line2D], list[str]]:
    """Legend entries for what the top panel shows (only what occurs)."""
    entries = [
        (ordered["excludes_zero"].any(), Line2D([], [], color=EXCLUDES_ZERO_COLOUR, marker="o", ls=""), "CI excludes 0"),
        ((~ordered["excludes_zero"]).any(), Line2D([], [], color=INCLUDES_ZERO_COLOUR, marker="o", ls=""), "CI includes 0"),
        (ordered["biased"].any(), Line2D([], [], color="#555555", marker="o", mfc="none", ls=""), "known bias (hollow)"),
        (ordered["flagged"].any(), Line2D([], [], color="#555555", marker="^", ls=""), "flagged (triangle)"),
        (with_truth, Line2D([], [], color=TRUTH_COLOUR, marker="_", ms=10, mew=2, ls=""), "simulated truth"),
    ]  # fmt: skip
    return [h for shown, h, _ in entries if shown], [lab for shown, _, lab in entries if shown]


def specification_curve(
    curve: pd.DataFrame,
    dimensions: Sequence[str],
    *,
    truth: Mapping[str, float] | None = None,
    ylabel: str = "Pooled estimate (95 % CI)",
) -> plt.Figure:
    """The specification curve of the multiverse (Simonsohn, Simmons & Nelson 2020).

    Top: every specification's estimate and 95 % CI, ranked ascending (:func:`curve_order`), blue
    where the CI excludes 0 and grey where it does not, hollow with a known bias, a triangle when
    flagged, a dashed line at 0; with ``truth`` ({model option: value}), a short tick at the true
    value above each specification of that model.  Bottom (the dashboard): one row per option of
    each dimension (:func:`dashboard_rows`), a filled marker at the ranks that use it.  The two
    panels share the x axis (the rank).
    """
    ordered = curve_order(curve)
    board = dashboard_rows(ordered, dimensions)
    n = len(ordered)
    estimated = ordered[np.isfinite(ordered["estimate"])]
    # each known bias once, though a specification may carry several (joined by " | ")
    labels = {part.strip() for b in ordered.get("known_bias", pd.Series(dtype=str)) for part in text_of(b).split(" | ")}
    biases = sorted(known_bias_label(b) for b in labels - {""})
    notes = [
        textwrap.fill(b.replace("Known bias:", "Known bias (hollow):", 1), WRAP + 30, break_on_hyphens=False)
        for b in biases
    ]
    if missing := n - len(estimated):
        notes.append(f"{missing} specification(s) without an estimate (ranked last, not drawn).")
    n_lines = sum(t.count("\n") + 1 for t in notes)
    height = 3.2 + 0.2 * len(board) + 0.9 + 0.15 * n_lines
    width = max(6.5, 0.09 * n + 3.0)
    with plt.rc_context(STYLE):
        figure, (top, dash) = plt.subplots(
            2, 1, figsize=(width, height), sharex=True,
            gridspec_kw={"height_ratios": [3.2, 0.2 * max(len(board), 1) + 0.3]},
        )  # fmt: skip
        top.axhline(0, color=NULL_COLOUR, lw=0.9, ls="--", zorder=1)
        with_ci = estimated[np.isfinite(estimated["ci_low"]) & np.isfinite(estimated["ci_high"])]
        ci_colours = np.where(with_ci["excludes_zero"], EXCLUDES_ZERO_COLOUR, INCLUDES_ZERO_COLOUR)
        top.vlines(with_ci["rank"], with_ci["ci_low"], with_ci["ci_high"], colors=list(ci_colours), lw=1.0, zorder=2)
        for (excludes, biased, flagged), group in estimated.groupby(["excludes_zero", "biased", "flagged"], sort=True):
            colour = EXCLUDES_ZERO_COLOUR if excludes else INCLUDES_ZERO_COLOUR
            top.scatter(
                group["rank"], group["estimate"], s=22, marker="^" if flagged else "o", zorder=3,
                facecolors="none" if biased else colour, edgecolors=colour, linewidths=1.1,
                gid=f"estimates excludes_zero={excludes} biased={biased} flagged={flagged}",
            )  # fmt: skip
        if ticks := truth_ticks(ordered, truth):
            length = min(10.0, 0.6 * 72 * (width - 2.4) / max(n, 1))  # points: 60 % of a specification's width
            top.scatter(*zip(*ticks), marker="_", s=length**2, linewidths=2, color=TRUTH_COLOUR, zorder=4, gid="truth")
        top.set_ylabel(ylabel)
        excluding = int(estimated["excludes_zero"].sum())
        top.set_title(f"Specification curve: {n} specifications; {excluding} of {len(estimated)} 95 % CIs exclude 0")
        top.legend(*_curve_legend(estimated, bool(ticks)), frameon=False, fontsize=8, loc="best")
        cells = np.array([(r, y) for y in board["y"] for r in range(1, n + 1)], dtype=float).reshape(-1, 2)
        dash.scatter(cells[:, 0], cells[:, 1], s=10, color="#E3E3E3", linewidths=0, zorder=1, gid="_cells")
        for row in board.itertuples():
            dash.scatter(
                row.ranks, np.full(len(row.ranks), row.y), s=16, color="#222222", linewidths=0, zorder=2,
                gid=f"{row.dimension}: {row.option}",
            )  # fmt: skip
        dash.set_yticks(board["y"].to_numpy(), list(board["option"]))
        side = blended_transform_factory(dash.transAxes, dash.transData)
        for dimension, group in board.groupby("dimension", sort=False):
            dash.text(1.01, group["y"].mean(), dimension, transform=side, ha="left", va="center", style="italic")
            if group["y"].min() > 0:  # a rule between this dimension and the next
                dash.axhline(group["y"].min() - 0.5, color="#BBBBBB", lw=0.6)
        dash.set_ylim(-0.6, max(len(board), 1) - 0.4)
        dash.set_xlim(0.2, n + 0.8)
        dash.set_xlabel("Specification (ranked by estimate)")
        dash.tick_params(axis="y", length=0)
        figure.tight_layout(rect=(0, (0.15 * n_lines + 0.1) / height, 1, 1))
        if notes:
            figure.text(0.01, 0.01, "\n".join(notes), ha="left", va="bottom", fontsize=8, gid="curve_notes")
    return figure
