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
the metric of the published benchmark (config ``report.benchmark``, by default Flückiger et
al. 2018), whose band it draws only behind estimates of the benchmark's design (the
patient-level models: like with like, as ``alliance.report.comparisons``).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from scipy import special  # noqa: E402  (ndtri, stdtrit: what scipy.stats' norm/t ppf call, without its 1 s import)

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
Z_975 = float(special.ndtri(0.975))


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
    half = special.stdtrit(np.maximum(out["n"] - 1, 1), 0.975) * out["sd"] / np.sqrt(out["n"])
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

#: the forest panel of the patient-level models (one row per model): the benchmark's design
PATIENT_LEVEL_PANEL = "patient_level_models"
#: the role of a predictor measured once per patient (config models[].roles), as in alliance.report.comparisons
PATIENT_LEVEL_ROLE = "patient_level"


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


def patient_level_forest_rows(rows: list[dict] | None) -> pd.DataFrame:
    """The patient-level models' r-equivalents (``alliance.report.comparisons.patient_level_rows``:
    already r with symptom improvement where the outcome is a symptom score) as rows of the
    forest's patient-level panel, one per model and predictor, in the order given."""
    rows = rows or []
    return pd.DataFrame(
        {
            "term": PATIENT_LEVEL_PANEL,
            "level": "model",
            "label": [str(r["label"]) for r in rows],
            "r_improvement": [float(r["r"]) for r in rows],
            "ci_low_improvement": [float(r["ci_low"]) for r in rows],
            "ci_high_improvement": [float(r["ci_high"]) for r in rows],
            "n_patients": [r.get("n_patients") for r in rows],
        },
        columns=["term", "level", "label", "r_improvement", "ci_low_improvement", "ci_high_improvement", "n_patients"],
    )


def benchmark_design_terms(models: list[dict]) -> set[str]:
    """The terms whose estimates are of the benchmark's design (config ``report.benchmark.design``):
    predictors of role ``patient_level`` in models on one row per patient (``data: patients``).

    >>> sorted(benchmark_design_terms([{"data": "patients", "roles": {"alliance_s3": "patient_level"}},
    ...                                {"roles": {"alliance_within_patient": "within_patient"}}]))
    ['alliance_s3']
    """
    return {
        term
        for m in models or []
        if m.get("data") == "patients"
        for term, role in (m.get("roles") or {}).items()
        if role == PATIENT_LEVEL_ROLE
    }


def _forest_label(level: str, label: str, n) -> str:
    """A row's tick label: its level and group (a patient-level model: its label, wrapped), and n."""
    if level == "model":
        text = textwrap.fill(label, 40, break_on_hyphens=False)
    else:
        text = f"{LEVELS[level]}: {label}" if level != "overall" else "Overall"
    return f"{text} (n = {int(n):,})" if pd.notna(n) else text


def _forest_title(term: str, with_band: bool) -> str:
    if term == PATIENT_LEVEL_PANEL:
        return "Patient level: alliance and end-of-treatment outcome\n(the benchmark's design)"
    return f"{TERM_LABELS.get(term, term)}\n" + (
        "(the benchmark's design)" if with_band else "(no published benchmark of this design)"
    )


def _forest_panel(ax, sub: pd.DataFrame, term: str, benchmark: dict, with_band: bool, band_label: str) -> None:
    """One panel: a row per estimate with its CI, the benchmark band only when ``with_band``."""
    y = np.arange(len(sub))[::-1]
    if with_band:
        ax.axvspan(
            benchmark["ci_low"], benchmark["ci_high"], color=OKABE_ITO[1], alpha=0.25, linewidth=0, label=band_label
        )
        ax.axvline(benchmark["r"], color=OKABE_ITO[1], lw=1.2)
    ax.axvline(0, color="#888888", lw=0.8)
    colours = [OKABE_ITO[0] if lvl in ("overall", "model") else "#333333" for lvl in sub["level"]]
    ax.hlines(y, sub["ci_low_improvement"], sub["ci_high_improvement"], colors=colours, lw=1.4)
    for yy, xx, c, lvl in zip(y, sub["r_improvement"], colours, sub["level"]):
        big = lvl in ("overall", "model")
        ax.scatter([xx], [yy], color=c, s=40 if big else 22, marker="D" if big else "s", zorder=3)
    n = sub["n_patients"] if "n_patients" in sub else pd.Series([np.nan] * len(sub))
    ax.set_yticks(y, [_forest_label(lvl, lab, k) for lvl, lab, k in zip(sub["level"], sub["label"], n)])
    ax.set_ylim(-0.8, len(sub) - 0.2)
    ax.set_xlabel("r between alliance and symptom improvement")
    ax.set_title(_forest_title(term, with_band), fontsize=9)


#: the forest's text when it has no row: its rows are a moderation model's per-stratum fits
#: (alliance.models.summary) and the patient-level models, and a suite may have neither
NO_FOREST_ESTIMATE = (
    "No estimate for this plot in this run: it shows a moderation model's fits per therapy type,\n"
    "condition and stratum, and the patient-level models, and the suite fitted neither"
)


def _forest_axes(figure: plt.Figure, n_top: int, top_rows: int, bottom_rows: int) -> tuple[list, object | None]:
    """The forest's axes: ``n_top`` panels side by side (the session-level terms), sharing the row
    labels, and below them one panel across the width (the patient-level models) when
    ``bottom_rows`` > 0; heights in proportion to the rows."""
    heights = [r for r in (top_rows if n_top else 0, bottom_rows) if r]
    grid = figure.add_gridspec(len(heights), max(n_top, 1), height_ratios=[h + 2.2 for h in heights])
    top = [figure.add_subplot(grid[0, k]) for k in range(n_top)]
    bottom = figure.add_subplot(grid[len(heights) - 1, :]) if bottom_rows else None
    return top, bottom


def alliance_forest(
    effects: pd.DataFrame,
    benchmark: dict,
    patient_level: list[dict] | None = None,
    benchmark_terms: set[str] | frozenset[str] = frozenset(),
) -> plt.Figure:
    """Forest plot of the alliance effect as r (sign flipped: alliance and symptom improvement):
    one panel per alliance term of ``effects`` (per therapy type, condition and stratum), and
    below them a panel of the patient-level models (``patient_level``: rows of
    ``alliance.report.comparisons.patient_level_rows``) when there are any.

    Like with like: the band of the published benchmark (config ``report.benchmark``: ``r``,
    ``ci_low``, ``ci_high``, ``citation``, ``design``) is drawn only behind estimates of its design,
    the patient-level panel and the panels of ``benchmark_terms``
    (:func:`benchmark_design_terms`); the within- and between-patient panels of the session-level
    models have none.  The legend says what the band is, or that no estimate of its design was made.
    """
    design = benchmark.get("design") or "associations of alliance with outcome"
    band_label = textwrap.fill(
        f"Band: {benchmark['citation']}, {benchmark_text(benchmark)}, pooled {design}", 100, break_on_hyphens=False
    )
    rows = forest_rows(effects)
    terms = [t for t in TERM_LABELS if t in set(rows["term"])] + sorted(set(rows["term"]) - set(TERM_LABELS))
    panels = [(t, rows[rows["term"] == t].reset_index(drop=True), t in benchmark_terms) for t in terms]
    patient_rows = patient_level_forest_rows(patient_level)
    top_rows = max((len(sub) for _, sub, _ in panels), default=0)
    bottom_rows = int(1.6 * len(patient_rows))  # a model's label takes two lines
    with plt.rc_context(STYLE):
        figure = plt.figure(
            figsize=(3.4 * max(len(panels), 1) + 3.0, 0.3 * (top_rows + bottom_rows) + 1.6 + 1.6 * bool(bottom_rows))
        )
        if not panels and not bottom_rows:  # no moderation model and no patient-level model fitted
            ax = figure.add_subplot(111)
            ax.axis("off")
            ax.text(0.5, 0.5, NO_FOREST_ESTIMATE, ha="center", va="center", wrap=True)
            return figure
        top, bottom = _forest_axes(figure, len(panels), top_rows, bottom_rows)
        labels = [list(sub["label"]) + list(sub["level"]) for _, sub, _ in panels]
        for k, (ax, (term, sub, with_band)) in enumerate(zip(top, panels)):
            _forest_panel(ax, sub, term, benchmark, with_band, band_label)
            if k and labels[k] == labels[0]:  # the same rows as the first panel: its labels serve both
                ax.tick_params(labelleft=False)
        if bottom is not None:
            _forest_panel(bottom, patient_rows, PATIENT_LEVEL_PANEL, benchmark, True, band_label)
        figure.tight_layout(rect=(0, 0.07 if top_rows + bottom_rows > 8 else 0.14, 1, 1))
        axes = [*top, *([bottom] if bottom is not None else [])]
        handles = [h for ax in axes for h, lab in zip(*ax.get_legend_handles_labels()) if lab == band_label]
        if handles:
            figure.legend(handles[:1], [band_label], frameon=False, loc="lower center", fontsize=8)
        else:
            note = f"No estimate of the design {benchmark['citation']} pooled ({design}) in this run: its band is not drawn."
            figure.text(0.5, 0.01, textwrap.fill(note, 100), ha="center", va="bottom", fontsize=8)
    return figure
