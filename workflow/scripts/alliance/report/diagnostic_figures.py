"""Figures that check the data and the fits: therapist effects, missing data, exclusion flow,
residual diagnostics.

The same house style as ``alliance.report.figures`` (its palette, ``STYLE`` and ``save``); every
function takes the run's own tables and returns a matplotlib Figure.  The numbers the
missing-data figure draws come from ``missing_by_session``, which the tests check against pandas.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import FancyBboxPatch
from matplotlib.ticker import MaxNLocator
from scipy import stats

from alliance.report.figures import OKABE_ITO, STYLE, Z_975, category_colours, numeric_values

# --------------------------------------------------------------------------- therapist effects


def _sd_column(frame: pd.DataFrame) -> str | None:
    for name in ("sd", "cond_sd"):
        if name in frame.columns:
            return name
    return None


def therapist_caterpillar(
    random_effects: pd.DataFrame, group: str = "therapist", term: str = "Intercept", title: str = ""
) -> plt.Figure:
    """Caterpillar plot: each therapist's random intercept (conditional mode) with a
    95% interval (± 1.96 conditional SD), sorted; intervals that exclude 0 are coloured."""
    sub = random_effects[
        (random_effects["group"].astype(str) == group) & (random_effects["term"].astype(str) == term)
    ].copy()
    sub["value"] = numeric_values(sub["value"])
    sd_col = _sd_column(sub)
    sub["half"] = Z_975 * numeric_values(sub[sd_col]) if sd_col else np.nan
    sub = sub.sort_values(["value", "level"], kind="stable").reset_index(drop=True)
    y = np.arange(len(sub))
    outside = ((sub["value"] - sub["half"]) > 0) | ((sub["value"] + sub["half"]) < 0)
    with plt.rc_context(STYLE):
        figure, ax = plt.subplots(figsize=(5.0, max(2.8, min(0.06 * len(sub) + 1.2, 5.5))))
        colours = np.where(outside, OKABE_ITO[5], "#555555")
        ax.hlines(y, sub["value"] - sub["half"], sub["value"] + sub["half"], colors=colours, lw=0.8)
        ax.scatter(sub["value"], y, color=colours, s=6, zorder=3)
        ax.axvline(0, color="#888888", lw=0.8)
        if len(sub) <= 40:
            ax.set_yticks(y, sub["level"].astype(str), fontsize=7)
        else:
            ax.set_yticks([])
        ax.set_ylabel(f"{group.capitalize()}s, ranked ({len(sub)})")
        ax.set_xlabel(f"Random {term.lower()} of {group} (outcome units), ± 1.96 conditional SD")
        ax.set_title(f"{group.capitalize()} effects: {int(outside.sum())} of {len(sub)} intervals exclude 0")
        if title:
            figure.suptitle(title, fontsize=8)
        figure.tight_layout()
    return figure


# --------------------------------------------------------------------------- missing data


#: columns of the analysis table and of the patients table that :func:`missing_data` reads
MISSING_DATA_COLUMNS = ("patient", "session", "symptoms", "alliance")
MISSING_DATA_PATIENT_COLUMNS = ("patient", "therapy", "condition", "last_session")


def missing_by_session(data: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """Per arm (therapy × condition) and session: patients in the arm, patients with an
    outcome score, with an alliance score, patients still in treatment (session ≤ their
    last session) and how many of those lack an outcome or alliance score.

    Columns: therapy, condition, session, n_arm, n_outcome, n_alliance, n_in_treatment,
    n_missing_in_treatment, pct_outcome, pct_alliance, pct_missing_in_treatment.
    """
    pts = patients[["patient", "therapy", "condition", "last_session"]].copy()
    pts["patient"] = pts["patient"].astype(str)
    max_session = int(max(pd.to_numeric(data["session"]).max(), pts["last_session"].max()))
    grid = pts.merge(pd.DataFrame({"session": np.arange(1, max_session + 1)}), how="cross")
    rows = data[["patient", "session", "symptoms", "alliance"]].copy()
    rows["patient"] = rows["patient"].astype(str)
    rows["session"] = pd.to_numeric(rows["session"]).astype("int64")
    grid = grid.merge(rows, on=["patient", "session"], how="left")
    grid["has_outcome"] = grid["symptoms"].notna()
    grid["has_alliance"] = grid["alliance"].notna()
    grid["in_treatment"] = grid["session"] <= grid["last_session"]
    grid["missing_in_treatment"] = grid["in_treatment"] & ~(grid["has_outcome"] & grid["has_alliance"])
    grid["therapy"] = grid["therapy"].astype(str)
    grid["condition"] = grid["condition"].astype(str)
    out = (
        grid.groupby(["therapy", "condition", "session"], sort=True)
        .agg(
            n_arm=("patient", "size"),
            n_outcome=("has_outcome", "sum"),
            n_alliance=("has_alliance", "sum"),
            n_in_treatment=("in_treatment", "sum"),
            n_missing_in_treatment=("missing_in_treatment", "sum"),
        )
        .reset_index()
    )
    out["pct_outcome"] = 100 * out["n_outcome"] / out["n_arm"]
    out["pct_alliance"] = 100 * out["n_alliance"] / out["n_arm"]
    out["pct_missing_in_treatment"] = (
        100 * out["n_missing_in_treatment"] / out["n_in_treatment"].where(out["n_in_treatment"] > 0)
    )
    return out


def missing_data(data: pd.DataFrame, patients: pd.DataFrame) -> plt.Figure:
    """Two panels per session and arm: the share of the arm's patients with an outcome
    score (retention), and, among patients still in treatment, the share of sessions
    without an outcome or alliance score (missed sessions, missing questionnaires)."""
    table = missing_by_session(data, patients)
    colours = category_colours(table["therapy"].unique())
    styles = {c: s for c, s in zip(sorted(table["condition"].unique()), ["-", "--", ":", "-."] * 4)}
    with plt.rc_context(STYLE):
        figure, (left, right) = plt.subplots(1, 2, figsize=(9.4, 3.6))
        for (therapy, condition), arm in table.groupby(["therapy", "condition"], sort=True):
            label = f"{therapy}, {condition} (n = {int(arm['n_arm'].iloc[0]):,})"
            left.plot(
                arm["session"], arm["pct_outcome"], color=colours[therapy], ls=styles[condition], lw=1.5, label=label
            )
            right.plot(
                arm["session"],
                arm["pct_missing_in_treatment"],
                color=colours[therapy],
                ls=styles[condition],
                lw=1.5,
                marker="o",
                ms=2.5,
            )
        left.set_ylim(0, 102)
        for ax in (left, right):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        left.set_xlabel("Session")
        left.set_ylabel("% of the arm's patients with an outcome score")
        left.set_title("Patients observed (retention)")
        right.set_ylim(bottom=0)
        right.set_xlabel("Session")
        right.set_ylabel("% of patients in treatment")
        right.set_title("No outcome or alliance score while in treatment")
        left.legend(frameon=False, fontsize=7, loc="lower left")
        figure.tight_layout()
    return figure


# --------------------------------------------------------------------------- exclusion flow


def _fmt_int(value) -> str:
    return f"{int(value):,}"


def exclusion_flow(flow: pd.DataFrame) -> plt.Figure:
    """CONSORT-style diagram drawn from ``exclusion_flow.csv``: one box per cleaning step
    with the rows, patients and therapists remaining, and a side box with what the step
    removed and why."""
    n = len(flow)
    height = 1.15 * n + 0.3
    with plt.rc_context(STYLE):
        figure, ax = plt.subplots(figsize=(8.2, height))
        ax.set_xlim(0, 10)
        ax.set_ylim(0, height)
        ax.axis("off")
        box_w, box_h = 4.6, 0.72
        for k, step in enumerate(flow.itertuples(index=False)):
            y = height - 0.55 - 1.15 * k
            last = k == n - 1
            ax.add_patch(
                FancyBboxPatch(
                    (0.3, y - box_h / 2),
                    box_w,
                    box_h,
                    boxstyle="round,pad=0.02,rounding_size=0.08",
                    facecolor="#E8F1F8" if last else "#F4F4F4",
                    edgecolor=OKABE_ITO[0] if last else "#555555",
                    lw=1,
                )
            )
            counts = f"{_fmt_int(step.rows)} rows · {_fmt_int(step.patients)} patients · {_fmt_int(step.therapists)} therapists"
            ax.text(
                0.3 + box_w / 2,
                y + 0.13,
                str(step.step).capitalize(),
                ha="center",
                va="center",
                fontsize=8.5,
                fontweight="bold",
            )
            ax.text(0.3 + box_w / 2, y - 0.16, counts, ha="center", va="center", fontsize=8)
            if k < n - 1:
                ax.annotate(
                    "",
                    xy=(0.3 + box_w / 2, y - 1.15 + box_h / 2),
                    xytext=(0.3 + box_w / 2, y - box_h / 2),
                    arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": 1},
                )
            removed = [
                int(getattr(step, c, 0) or 0) for c in ("rows_excluded", "patients_excluded", "therapists_excluded")
            ]
            if any(removed):
                side_y = y
                reason = textwrap.fill(str(step.reason) if pd.notna(step.reason) else "", 42)
                text = f"Excluded: {_count(removed[0], 'row')}, {_count(removed[1], 'patient')}, {_count(removed[2], 'therapist')}\n{reason}"
                ax.add_patch(
                    FancyBboxPatch(
                        (5.6, side_y - box_h / 2),
                        4.2,
                        box_h,
                        boxstyle="round,pad=0.02,rounding_size=0.08",
                        facecolor="#FFFFFF",
                        edgecolor=OKABE_ITO[5],
                        lw=1,
                    )
                )
                ax.text(5.7, side_y, text, ha="left", va="center", fontsize=7.5)
                ax.annotate(
                    "",
                    xy=(5.6, side_y),
                    xytext=(0.3 + box_w, side_y),
                    arrowprops={"arrowstyle": "-|>", "color": OKABE_ITO[5], "lw": 1},
                )
    return figure


# --------------------------------------------------------------------------- diagnostics


def _qq(ax, values: np.ndarray, title: str, max_points: int = 2000) -> None:
    values = np.sort(values[np.isfinite(values)])
    if len(values) < 3:
        ax.text(0.5, 0.5, "too few values", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        return
    z = (values - values.mean()) / values.std(ddof=1)
    probs = (np.arange(1, len(z) + 1) - 0.5) / len(z)
    if len(z) > max_points:  # quantiles on a fixed grid: same picture, small file
        probs = (np.arange(1, max_points + 1) - 0.5) / max_points
        z = np.quantile(z, probs)
    theory = stats.norm.ppf(probs)
    ax.scatter(theory, z, s=5, color=OKABE_ITO[0], linewidths=0)
    lim = [min(theory.min(), z.min()), max(theory.max(), z.max())]
    ax.plot(lim, lim, color="#888888", lw=0.8)
    ax.set_xlabel("Normal quantile")
    ax.set_ylabel("Standardised value")
    ax.set_title(title)


def residual_columns(residuals: pd.DataFrame) -> tuple[str, str]:
    """The fitted and residual columns (contract: fitted, residual; engine: fitted_conditional, resid)."""
    fitted = next(c for c in ("fitted", "fitted_conditional") if c in residuals.columns)
    resid = next(c for c in ("residual", "resid") if c in residuals.columns)
    return fitted, resid


def model_diagnostics(
    residuals: pd.DataFrame,
    random_effects: pd.DataFrame | None = None,
    *,
    seed: int = 0,
    max_points: int = 20000,
    title: str = "",
) -> plt.Figure:
    """Residuals against fitted values (sampled to ``max_points``, with the binned mean),
    a normal QQ plot of the residuals and one of each random-effect term."""
    fitted_col, resid_col = residual_columns(residuals)
    fitted = numeric_values(residuals[fitted_col])
    resid = numeric_values(residuals[resid_col])
    keep = np.isfinite(fitted) & np.isfinite(resid)
    fitted, resid = fitted[keep], resid[keep]
    re_terms = []
    if random_effects is not None and len(random_effects):
        re_terms = sorted(
            random_effects[["group", "term"]].astype(str).drop_duplicates().itertuples(index=False, name=None)
        )
    n_panels = 2 + len(re_terms)
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(1, n_panels, figsize=(3.1 * n_panels, 3.2), squeeze=False)
        axes = axes[0]
        ax = axes[0]
        idx = np.arange(len(fitted))
        if len(idx) > max_points:
            idx = np.sort(np.random.default_rng(seed).choice(idx, size=max_points, replace=False))
        ax.scatter(fitted[idx], resid[idx], s=3, alpha=0.2, color="#555555", linewidths=0)
        if len(fitted) > 20:
            edges = np.quantile(fitted, np.linspace(0, 1, 21))
            which = np.clip(np.searchsorted(edges, fitted, side="right") - 1, 0, 19)
            centres = [fitted[which == b].mean() for b in range(20) if (which == b).any()]
            binned = [resid[which == b].mean() for b in range(20) if (which == b).any()]
            ax.plot(centres, binned, color=OKABE_ITO[5], lw=1.6, label="binned mean")
            ax.legend(frameon=False, fontsize=7)
        ax.axhline(0, color="#888888", lw=0.8)
        ax.set_xlabel("Fitted value")
        ax.set_ylabel("Residual")
        ax.set_title("Residuals vs fitted")
        _qq(axes[1], resid, "QQ: residuals")
        for ax, (group, term) in zip(axes[2:], re_terms):
            values = random_effects[
                (random_effects["group"].astype(str) == group) & (random_effects["term"].astype(str) == term)
            ]
            _qq(ax, numeric_values(values["value"]), f"QQ: {group} {term}")
        if title:
            figure.suptitle(title, fontsize=9)
        figure.tight_layout()
    return figure


def _count(n: int, noun: str) -> str:
    """'1 row', '2,310 rows': a count with its noun in the right number.

    >>> _count(1, "row"), _count(2310, "patient")
    ('1 row', '2,310 patients')
    """
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
