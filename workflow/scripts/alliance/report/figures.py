"""Figures in one house style (colour-blind-safe Okabe-Ito palette), PNG and SVG.

Every function takes the run's own tables and returns a matplotlib Figure; ``save``
writes it without timestamps, so the same data give byte-identical files.  Random
sampling (which patients are drawn faintly, which sessions are shown in a scatter)
uses the run seed.  The numbers a figure draws come from small helper functions
(``session_means``, ``model_implied_means``, ``forest_rows``) that the tests check against
pandas directly.  This module holds the house style and the figures of the findings
(trajectories, within/between, the forest plot); the figures that check the data and the
fits (therapist effects, missing data, exclusion flow, residual diagnostics) are in
``alliance.report.diagnostic_figures``.

Sign convention: symptoms are scored higher = worse and alliance higher = better,
so a beneficial alliance gives a *negative* correlation with symptoms.  The forest
plot shows ``r_improvement = -r`` ("r between alliance and symptom improvement"),
the metric of the published benchmark it is drawn against (config ``report.benchmark``,
by default Flückiger et al. 2018).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from scipy import stats  # noqa: E402

from alliance.report.wording import benchmark_text  # noqa: E402

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO),
    "svg.hashsalt": "alliance",  # stable element ids in SVG output
    "svg.fonttype": "none",
}

#: Order and wording of the effect levels in the forest plot.
LEVELS = {"overall": "Overall", "therapy": "Therapy type", "condition": "Condition", "stratum": "Therapy × condition"}
TERM_LABELS = {
    "alliance_within_patient": "Within patients",
    "alliance_between_patient": "Between patients",
    "alliance_patient_within_therapist": "Patients within therapists",
    "alliance_between_therapist": "Between therapists",
}
Z_975 = float(stats.norm.ppf(0.975))


def save(figure: plt.Figure, png: str | Path, svg: str | Path | None = None) -> None:
    """Save as PNG (and SVG) without timestamps, so reruns give identical files (the house
    style's SVG hash salt must be active while saving: it fixes the SVG element ids)."""
    with plt.rc_context(STYLE):
        figure.savefig(png, metadata={"Software": None}, bbox_inches="tight")
        if svg is not None:
            figure.savefig(svg, metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    plt.close(figure)


def category_colours(labels) -> dict[str, str]:
    """One Okabe-Ito colour per label, in sorted order (the same therapy gets the same colour everywhere)."""
    return {label: OKABE_ITO[k % len(OKABE_ITO)] for k, label in enumerate(sorted(labels))}


def numeric_values(series: pd.Series) -> np.ndarray:
    """A column as floats, text and missing values as NaN (what every figure plots)."""
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


# --------------------------------------------------------------------------- trajectories


def session_means(data: pd.DataFrame, value: str, by: str = "therapy") -> pd.DataFrame:
    """Mean of ``value`` per ``by`` group and session with a t-based 95% CI.

    Columns: ``by``, session, n, mean, sd, ci_low, ci_high (CI missing where n < 2).
    """
    rows = pd.DataFrame(
        {by: data[by].astype(str), "session": numeric_values(data["session"]), "y": numeric_values(data[value])}
    )
    rows = rows.dropna()
    out = rows.groupby([by, "session"], sort=True)["y"].agg(n="count", mean="mean", sd="std").reset_index()
    half = stats.t.ppf(0.975, np.maximum(out["n"] - 1, 1)) * out["sd"] / np.sqrt(out["n"])
    half = half.where(out["n"] >= 2)
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    return out


def fixed_part(data: pd.DataFrame, fixed: pd.DataFrame) -> pd.Series | None:
    """The fixed-effects prediction X·β of each row (NaN where a predictor is missing).

    Returns None when a term cannot be built from numeric columns of ``data``
    (a categorical term, say): then no model-implied mean is drawn.
    """
    prediction = pd.Series(0.0, index=data.index)
    for term, estimate in zip(fixed["term"], fixed["estimate"]):
        if term in ("Intercept", "(Intercept)"):
            prediction += float(estimate)
            continue
        parts = term.split(":")
        if any(p not in data.columns or not pd.api.types.is_numeric_dtype(data[p]) for p in parts):
            return None
        product = np.ones(len(data))
        for p in parts:
            product = product * numeric_values(data[p])
        prediction += float(estimate) * product
    return prediction


def model_implied_means(
    data: pd.DataFrame, fixed: pd.DataFrame, outcome: str = "symptoms", by: str = "therapy"
) -> pd.DataFrame | None:
    """Mean of the fixed-effects prediction per group and session, over the rows the
    model could use (outcome and every predictor present)."""
    prediction = fixed_part(data, fixed)
    if prediction is None:
        return None
    used = prediction.notna() & data[outcome].notna()
    frame = pd.DataFrame(
        {
            by: data.loc[used, by].astype(str),
            "session": numeric_values(data.loc[used, "session"]),
            "y": prediction[used],
        }
    )
    return frame.groupby([by, "session"], sort=True)["y"].mean().rename("mean").reset_index()


def sample_patients(data: pd.DataFrame, max_patients: int, seed: int, by: str = "therapy") -> dict[str, np.ndarray]:
    """At most ``max_patients`` patient ids per group, drawn with the run seed (sorted ids)."""
    rng = np.random.default_rng(seed)
    chosen = {}
    for group in sorted(data[by].astype(str).unique()):
        ids = np.sort(data.loc[data[by].astype(str) == group, "patient"].astype(str).unique())
        if len(ids) > max_patients:
            ids = np.sort(rng.choice(ids, size=max_patients, replace=False))
        chosen[group] = ids
    return chosen


#: analysis-table columns :func:`trajectories` reads besides the measure drawn (the step reads only these)
TRAJECTORY_COLUMNS = ("patient", "therapy", "session")


def trajectory_columns(value: str, fixed: pd.DataFrame | None = None) -> list[str]:
    """The analysis-table columns of the trajectories figure of ``value``: :data:`TRAJECTORY_COLUMNS`,
    the measure, and, with a fixed-effects table for :func:`model_implied_means`, every part of its terms.

    >>> trajectory_columns("symptoms", pd.DataFrame({"term": ["Intercept", "alliance_within_patient", "session_c"]}))
    ['patient', 'therapy', 'session', 'symptoms', 'alliance_within_patient', 'session_c']
    """
    names = [*TRAJECTORY_COLUMNS, value]
    if fixed is not None:
        names += [p for t in fixed["term"].astype(str) if t not in ("Intercept", "(Intercept)") for p in t.split(":")]
    return list(dict.fromkeys(names))


def trajectories(
    data: pd.DataFrame,
    value: str,
    *,
    ylabel: str,
    seed: int = 0,
    max_patients: int = 200,
    model_means: pd.DataFrame | None = None,
    model_label: str = "model-implied mean",
) -> plt.Figure:
    """One panel per therapy type: each sampled patient's trajectory faint, the mean per
    session bold with its 95% CI band, and (optionally) a model-implied mean dashed."""
    therapies = sorted(data["therapy"].astype(str).unique())
    colours = category_colours(therapies)
    means = session_means(data, value)
    shown = sample_patients(data, max_patients, seed)
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(
            1, len(therapies), figsize=(3.1 * len(therapies) + 0.6, 3.4), sharey=True, squeeze=False
        )
        for ax, therapy in zip(axes[0], therapies):
            colour = colours[therapy]
            sub = data[data["therapy"].astype(str) == therapy]
            sub = sub[sub["patient"].astype(str).isin(set(shown[therapy]))]
            segments = []
            for _, rows in sub.sort_values(["patient", "session"]).groupby(sub["patient"].astype(str), sort=True):
                xy = np.column_stack([numeric_values(rows["session"]), numeric_values(rows[value])])
                xy = xy[~np.isnan(xy).any(axis=1)]
                if len(xy) > 1:
                    segments.append(xy)
            ax.add_collection(LineCollection(segments, colors="#777777", linewidths=0.5, alpha=0.18, label="_patients"))
            m = means[means["therapy"] == therapy]
            ax.fill_between(
                m["session"],
                m["ci_low"],
                m["ci_high"],
                color=colour,
                alpha=0.30,
                linewidth=0,
                label="95% CI of the mean",
            )
            ax.plot(m["session"], m["mean"], color=colour, lw=2.4, label="mean per session")
            if model_means is not None:
                mm = model_means[model_means["therapy"] == therapy]
                ax.plot(mm["session"], mm["mean"], color="#000000", lw=1.4, ls="--", label=model_label)
            n_total = data.loc[data["therapy"].astype(str) == therapy, "patient"].nunique()
            ax.set_title(f"{therapy} ({len(shown[therapy]):,} of {n_total:,} patients drawn)")
            ax.set_xlabel("Session")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.autoscale_view()
        axes[0][0].set_ylabel(ylabel)
        axes[0][-1].legend(frameon=False, loc="best", fontsize=8)
        figure.tight_layout()
    return figure


# --------------------------------------------------------------------------- association


#: analysis-table columns :func:`within_between` reads (the step reads only these)
WITHIN_BETWEEN_COLUMNS = (
    "patient",
    "therapy",
    "alliance",
    "symptoms",
    "alliance_within_patient",
    "symptoms_within_patient",
)


def within_between(
    data: pd.DataFrame,
    within_slope: float | None = None,
    seed: int = 0,
    max_points: int = 20000,
    max_patients_per_group: int = 1000,
) -> plt.Figure:
    """Two panels: the within-patient association (person-mean-centred alliance and
    symptoms, all therapy types) and the between-patient scatter of patient means by
    therapy type with a least-squares line each.

    Large datasets are sampled (seeded) so the figure stays readable: at most ``max_points``
    session rows on the left and ``max_patients_per_group`` patients per therapy type on the
    right (the panel title says so); fitted lines use every row and every patient.
    """
    with plt.rc_context(STYLE):
        figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
        rows = data.dropna(subset=["alliance_within_patient", "symptoms_within_patient"])
        shown = rows.sample(n=min(max_points, len(rows)), random_state=seed) if len(rows) > max_points else rows
        left.scatter(
            shown["alliance_within_patient"],
            shown["symptoms_within_patient"],
            s=4,
            alpha=0.15,
            color="#555555",
            linewidths=0,
        )
        x = np.linspace(
            rows["alliance_within_patient"].quantile(0.01), rows["alliance_within_patient"].quantile(0.99), 50
        )
        if within_slope is not None:
            left.plot(
                x, within_slope * x, color=OKABE_ITO[5], lw=2, label=f"model within-patient slope {within_slope:.2f}"
            )
            left.legend(frameon=False, loc="upper right")
        left.set_xlabel("Alliance, deviation from patient's own mean")
        left.set_ylabel("Symptoms, deviation from patient's own mean")
        left.set_title("Within patients")
        means = (
            data.groupby("patient")
            .agg(alliance=("alliance", "mean"), symptoms=("symptoms", "mean"), therapy=("therapy", "first"))
            .dropna()
        )
        groups = sorted(means.groupby("therapy"), key=lambda kv: kv[0])
        sampled = any(len(group) > max_patients_per_group for _, group in groups)
        for colour, (therapy, group) in zip(OKABE_ITO, groups):
            shown_group = (
                group.sample(n=max_patients_per_group, random_state=seed)
                if len(group) > max_patients_per_group
                else group
            )
            right.scatter(
                shown_group["alliance"],
                shown_group["symptoms"],
                s=8,
                alpha=0.35 if sampled else 0.5,
                color=colour,
                linewidths=0,
                label=therapy,
            )
            if len(group) > 2:  # zorder: the lines lie over every group's points
                slope, intercept = np.polyfit(group["alliance"], group["symptoms"], 1)
                grid = np.linspace(group["alliance"].quantile(0.01), group["alliance"].quantile(0.99), 20)
                right.plot(grid, intercept + slope * grid, color="white", lw=4, zorder=3)
                right.plot(grid, intercept + slope * grid, color=colour, lw=2, zorder=4)
        right.set_xlabel("Patient mean alliance")
        right.set_ylabel("Patient mean symptoms")
        title = "Between patients, by therapy type"
        if sampled:
            title += f"\n({max_patients_per_group:,} random patients per type shown; lines use all {len(means):,})"
        right.set_title(title)
        right.legend(frameon=False, title=None)
        figure.tight_layout()
    return figure


# --------------------------------------------------------------------------- forest plot


def forest_rows(effects: pd.DataFrame) -> pd.DataFrame:
    """The rows of the forest plot, in display order, with the sign flipped.

    ``r_improvement = -r`` and its CI ``[-r_ci_high, -r_ci_low]``: the correlation between
    alliance and symptom *improvement* (symptoms are higher = worse).
    """
    frame = effects.copy()
    frame = frame[frame["level"].isin(LEVELS)]
    frame["level_order"] = frame["level"].map({k: i for i, k in enumerate(LEVELS)})
    frame["r_improvement"] = -pd.to_numeric(frame["r"], errors="coerce")
    frame["ci_low_improvement"] = -pd.to_numeric(frame["r_ci_high"], errors="coerce")
    frame["ci_high_improvement"] = -pd.to_numeric(frame["r_ci_low"], errors="coerce")
    frame["label"] = frame["label"].astype(str)
    frame = frame.sort_values(["term", "level_order", "label"], kind="stable").reset_index(drop=True)
    return frame.drop(columns="level_order")


def alliance_forest(effects: pd.DataFrame, benchmark: dict) -> plt.Figure:
    """Forest plot of the alliance effect as r (sign flipped: alliance and symptom
    improvement) per therapy type, condition and stratum, one panel per alliance term,
    against the band of the published benchmark (config ``report.benchmark``: ``r``,
    ``ci_low``, ``ci_high`` and ``citation``, which with the values labels the band)."""
    label = f"{benchmark['citation']}: {benchmark_text(benchmark)}"
    rows = forest_rows(effects)
    terms = [t for t in TERM_LABELS if t in set(rows["term"])] + sorted(set(rows["term"]) - set(TERM_LABELS))
    n_rows = max((rows["term"] == t).sum() for t in terms) if terms else 1
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(
            1, max(len(terms), 1), figsize=(4.6 * max(len(terms), 1) + 1.2, 0.32 * n_rows + 1.6), squeeze=False
        )
        for ax, term in zip(axes[0], terms):
            sub = rows[rows["term"] == term].reset_index(drop=True)
            y = np.arange(len(sub))[::-1]
            ax.axvspan(
                benchmark["ci_low"], benchmark["ci_high"], color=OKABE_ITO[1], alpha=0.25, linewidth=0, label=label
            )
            ax.axvline(benchmark["r"], color=OKABE_ITO[1], lw=1.2)
            ax.axvline(0, color="#888888", lw=0.8)
            colours = [OKABE_ITO[0] if lvl == "overall" else "#333333" for lvl in sub["level"]]
            ax.hlines(y, sub["ci_low_improvement"], sub["ci_high_improvement"], colors=colours, lw=1.4)
            sizes = [40 if lvl == "overall" else 22 for lvl in sub["level"]]
            markers = ["D" if lvl == "overall" else "s" for lvl in sub["level"]]
            for yy, xx, c, s, mk in zip(y, sub["r_improvement"], colours, sizes, markers):
                ax.scatter([xx], [yy], color=c, s=s, marker=mk, zorder=3)
            labels = [
                f"{LEVELS[lvl]}: {lab}" if lvl != "overall" else "Overall"
                for lvl, lab in zip(sub["level"], sub["label"])
            ]
            labels = [
                f"{lab} (n = {int(n):,})" if pd.notna(n) else lab
                for lab, n in zip(labels, sub.get("n_patients", [np.nan] * len(sub)))
            ]
            ax.set_yticks(y, labels)
            ax.set_ylim(-0.8, len(sub) - 0.2)
            ax.set_xlabel("r between alliance and symptom improvement")
            ax.set_title(TERM_LABELS.get(term, term))
        handles, labels = axes[0][0].get_legend_handles_labels()
        figure.tight_layout(rect=(0, 0.09 if n_rows > 2 else 0.14, 1, 1))
        figure.legend(handles[:1], labels[:1], frameon=False, loc="lower center", fontsize=8)
    return figure
