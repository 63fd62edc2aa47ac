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
from scipy import special  # ndtri: scipy.stats.norm.ppf without its 1 s import

from alliance.engines.spec import BOUNDARY_REL_TOL
from alliance.report.figures import OKABE_ITO, STYLE, Z_975, category_colours, numeric_values
from alliance.report.terms import term_label

# --------------------------------------------------------------------------- therapist effects


def _sd_column(frame: pd.DataFrame) -> str | None:
    for name in ("sd", "cond_sd"):
        if name in frame.columns:
            return name
    return None


def _no_caterpillar(group: str, term: str, title: str, fitted_without: bool) -> plt.Figure:
    """The caterpillar figure of a random effect with nothing to rank: why, in words."""
    why = zero_variance_text(group, term)
    if fitted_without:  # the singular-fit policy dropped the level (alliance.models.singular)
        why += f"\n(the {group} level was dropped from the fit)"
    with plt.rc_context(STYLE):
        figure, ax = plt.subplots(figsize=(5.0, 2.0))
        _no_effects(ax, why, f"{group.capitalize()} effects")
        if title:
            figure.suptitle(title, fontsize=8)
        figure.tight_layout()
    return figure


def therapist_caterpillar(
    random_effects: pd.DataFrame,
    group: str = "therapist",
    term: str = "Intercept",
    title: str = "",
    variance: pd.DataFrame | None = None,
) -> plt.Figure:
    """Caterpillar plot: each therapist's random intercept (conditional mode) with a
    95% interval (± 1.96 conditional SD), sorted; intervals that exclude 0 are coloured.
    A variance estimated at 0 (``variance``: the model's variance components; or BLUPs all
    equal), or a fit without the level, is said in words instead of an empty plot."""
    sub = random_effects[
        (random_effects["group"].astype(str) == group) & (random_effects["term"].astype(str) == term)
    ].copy()
    sub["value"] = numeric_values(sub["value"])
    sd_col = _sd_column(sub)
    sub["half"] = Z_975 * numeric_values(sub[sd_col]) if sd_col else np.nan
    sub = sub.sort_values(["value", "level"], kind="stable").reset_index(drop=True)
    if zero_variance(sub["value"].to_numpy(), variance, group, term) or not len(sub):
        return _no_caterpillar(group, term, title, fitted_without=not len(sub))
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


def still_in_treatment(patients: pd.DataFrame, by: str = "therapy") -> pd.DataFrame:
    """Per ``by`` group and session s = 1 ... the last session of anyone: the group's patients,
    those still in treatment at s (their last attended session is s or later) and their %.

    Columns: ``by``, session, n_patients, n_in_treatment, pct_in_treatment.

    >>> pts = pd.DataFrame({"therapy": ["A", "A", "B"], "last_session": [1, 3, 2]})
    >>> still_in_treatment(pts)["pct_in_treatment"].tolist()
    [100.0, 50.0, 50.0, 100.0, 100.0, 0.0]
    """
    last = pd.to_numeric(patients["last_session"], errors="coerce")
    groups = patients[by].astype(str)
    sessions = np.arange(1, int(last.max()) + 1)
    rows = []
    for group in sorted(groups.unique()):
        own = last[groups == group].dropna().to_numpy()
        for s in sessions:
            rows.append((group, int(s), len(own), int((own >= s).sum())))
    out = pd.DataFrame(rows, columns=[by, "session", "n_patients", "n_in_treatment"])
    out["pct_in_treatment"] = 100 * out["n_in_treatment"] / out["n_patients"]
    return out


def missing_while_in_treatment(table: pd.DataFrame) -> pd.DataFrame:
    """Per arm (therapy × condition) of :func:`missing_by_session`: the patient-sessions in treatment
    (session up to the patient's last), how many of them lack an outcome or alliance score, and the %.

    Columns: therapy, condition, n_arm, n_in_treatment, n_missing_in_treatment, pct_missing_in_treatment.
    """
    out = (
        table.groupby(["therapy", "condition"], sort=True)
        .agg(
            n_arm=("n_arm", "first"),
            n_in_treatment=("n_in_treatment", "sum"),
            n_missing_in_treatment=("n_missing_in_treatment", "sum"),
        )
        .reset_index()
    )
    out["pct_missing_in_treatment"] = (
        100 * out["n_missing_in_treatment"] / out["n_in_treatment"].where(out["n_in_treatment"] > 0)
    )
    return out


def missing_data(data: pd.DataFrame, patients: pd.DataFrame, by: str = "therapy") -> plt.Figure:
    """Two panels: dropout, as the % of each ``by`` group's patients still in treatment at each
    session (a survival-style step line per group), and intermittent missingness, as the % of the
    sessions patients were in treatment without an outcome or alliance score, one bar per arm
    (therapy × condition), with its counts."""
    retention = still_in_treatment(patients, by)
    missing = missing_while_in_treatment(missing_by_session(data, patients))
    colours = category_colours(retention[by].unique())
    arm_colours = category_colours(missing["therapy"].unique()) if by != "therapy" else colours
    with plt.rc_context(STYLE):
        figure, (left, right) = plt.subplots(1, 2, figsize=(9.4, 3.6), gridspec_kw={"width_ratios": [1.15, 1]})
        for group, rows in retention.groupby(by, sort=True):
            label = f"{group} (n = {int(rows['n_patients'].iloc[0]):,})"
            left.step(rows["session"], rows["pct_in_treatment"], where="mid", color=colours[group], lw=1.8, label=label)
        left.set_ylim(0, 102)
        left.xaxis.set_major_locator(MaxNLocator(integer=True))
        left.set_xlabel("Session")
        left.set_ylabel("% of patients still in treatment")
        left.set_title("Dropout: patients still in treatment")
        left.legend(frameon=False, fontsize=8, loc="lower left", title=term_label(by), title_fontsize=8)
        y = np.arange(len(missing))[::-1]
        pct = missing["pct_missing_in_treatment"].fillna(0)
        right.barh(y, pct, color=[arm_colours[t] for t in missing["therapy"]], height=0.6)
        for yy, value, k, n in zip(y, pct, missing["n_missing_in_treatment"], missing["n_in_treatment"]):
            right.text(value, yy, f"  {value:.1f}% ({int(k):,} of {int(n):,})", va="center", fontsize=7.5)
        labels = [
            f"{t}, {c} (n = {int(n):,})" for t, c, n in zip(missing["therapy"], missing["condition"], missing["n_arm"])
        ]
        right.set_yticks(y, labels, fontsize=8)
        right.set_xlim(0, max(float(pct.max()) * 1.6, 1.0))
        right.set_xlabel("% of sessions in treatment without\nan outcome or alliance score")
        right.set_title("Missed scores while in treatment")
        figure.tight_layout()
    return figure


# --------------------------------------------------------------------------- exclusion flow


def _fmt_int(value) -> str:
    return f"{int(value):,}"


#: the flow diagram's spacing, in inches: inside a box, between rows (the arrow), between a step
#: and its side box, around the drawing
FLOW_PAD, FLOW_GAP_Y, FLOW_GAP_X, FLOW_MARGIN = 0.13, 0.38, 0.45, 0.08
#: characters per line of a step's name and of a side box's reason
FLOW_TITLE_WIDTH, FLOW_REASON_WIDTH = 56, 48


#: measured text widths are widened by this factor: hinted glyphs are not exactly proportional to
#: the resolution, and the SVG's text is set by the reader's own font (svg.fonttype none)
FLOW_TEXT_SLACK = 1.06


def _extent(text, renderer, dpi: float) -> tuple[float, float]:
    """Width (with :data:`FLOW_TEXT_SLACK`) and height of a drawn text, in inches, measured by the
    renderer at the resolution the PNG is saved at, not guessed from the number of characters."""
    box = text.get_window_extent(renderer)
    return FLOW_TEXT_SLACK * box.width / dpi, box.height / dpi


def _flow_texts(ax, flow: pd.DataFrame) -> list[dict]:
    """The texts of each step (name, counts, the side box of what it removed), not yet placed."""
    steps = []
    for step in flow.itertuples(index=False):
        name = textwrap.fill(str(step.step).capitalize(), FLOW_TITLE_WIDTH, break_on_hyphens=False)
        counts = (
            f"{_fmt_int(step.rows)} rows · {_fmt_int(step.patients)} patients · {_fmt_int(step.therapists)} therapists"
        )
        removed = [int(getattr(step, c, 0) or 0) for c in ("rows_excluded", "patients_excluded", "therapists_excluded")]
        side = None
        if any(removed):
            reason = textwrap.fill(str(step.reason) if pd.notna(step.reason) else "", FLOW_REASON_WIDTH)
            side = f"Excluded: {_count(removed[0], 'row')}, {_count(removed[1], 'patient')}, {_count(removed[2], 'therapist')}"
            side += f"\n{reason}" if reason else ""
        steps.append(
            {
                "name": ax.text(
                    0, 0, name, ha="center", va="top", fontsize=8.5, fontweight="bold", multialignment="center"
                ),
                "counts": ax.text(0, 0, counts, ha="center", va="top", fontsize=8),
                "side": None if side is None else ax.text(0, 0, side, ha="left", va="center", fontsize=7.5),
            }
        )
    return steps


def _flow_box(ax, x: float, y: float, w: float, h: float, face: str, edge: str) -> None:
    ax.add_patch(
        FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", facecolor=face, edgecolor=edge, lw=1)
    )


def exclusion_flow(flow: pd.DataFrame) -> plt.Figure:
    """CONSORT-style diagram drawn from ``exclusion_flow.csv``: one box per cleaning step
    with the rows, patients and therapists remaining, and a side box with what the step
    removed and why.  The boxes are sized to their texts as the renderer measures them (the
    axes' units are inches), so no text runs over its box whatever the step names say."""
    with plt.rc_context(STYLE):
        # resized to the measured texts below; measured at the PNG's resolution
        figure = plt.figure(figsize=(8.0, 1.0), dpi=STYLE["savefig.dpi"])
        ax = figure.add_axes((0, 0, 1, 1))
        ax.axis("off")
        steps = _flow_texts(ax, flow)
        renderer, dpi = figure.canvas.get_renderer(), figure.dpi
        for st in steps:
            st["name_wh"], st["counts_wh"] = _extent(st["name"], renderer, dpi), _extent(st["counts"], renderer, dpi)
            st["side_wh"] = _extent(st["side"], renderer, dpi) if st["side"] is not None else (0.0, 0.0)
            st["block"] = st["name_wh"][1] + 0.06 + st["counts_wh"][1]
            st["height"] = max(st["block"], st["side_wh"][1]) + 2 * FLOW_PAD
        main_w = max((max(st["name_wh"][0], st["counts_wh"][0]) for st in steps), default=1.0) + 2 * FLOW_PAD
        side_w = max((st["side_wh"][0] for st in steps), default=0.0)
        side_w = side_w + 2 * FLOW_PAD if side_w else 0.0
        width = 2 * FLOW_MARGIN + main_w + (FLOW_GAP_X + side_w if side_w else 0.0)
        height = 2 * FLOW_MARGIN + sum(st["height"] for st in steps) + FLOW_GAP_Y * max(len(steps) - 1, 0)
        figure.set_size_inches(width, height)
        ax.set_xlim(0, width)
        ax.set_ylim(0, height)
        top, centre_x, side_x = height - FLOW_MARGIN, FLOW_MARGIN + main_w / 2, FLOW_MARGIN + main_w + FLOW_GAP_X
        for k, st in enumerate(steps):
            bottom, middle = top - st["height"], top - st["height"] / 2
            last = k == len(steps) - 1
            _flow_box(
                ax,
                FLOW_MARGIN,
                bottom,
                main_w,
                st["height"],
                "#E8F1F8" if last else "#F4F4F4",
                OKABE_ITO[0] if last else "#555555",
            )
            st["name"].set_position((centre_x, middle + st["block"] / 2))
            st["counts"].set_position((centre_x, middle + st["block"] / 2 - st["name_wh"][1] - 0.06))
            if st["side"] is not None:
                _flow_box(ax, side_x, bottom, side_w, st["height"], "#FFFFFF", OKABE_ITO[5])
                st["side"].set_position((side_x + FLOW_PAD, middle))
                arrow = {"arrowstyle": "-|>", "color": OKABE_ITO[5], "lw": 1}
                ax.annotate("", xy=(side_x, middle), xytext=(FLOW_MARGIN + main_w, middle), arrowprops=arrow)
            if not last:
                arrow = {"arrowstyle": "-|>", "color": "#555555", "lw": 1}
                ax.annotate("", xy=(centre_x, bottom - FLOW_GAP_Y), xytext=(centre_x, bottom), arrowprops=arrow)
            top = bottom - FLOW_GAP_Y
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
    theory = special.ndtri(probs)
    ax.scatter(theory, z, s=5, color=OKABE_ITO[0], linewidths=0)
    lim = [min(theory.min(), z.min()), max(theory.max(), z.max())]
    ax.plot(lim, lim, color="#888888", lw=0.8)
    ax.set_xlabel("Normal quantile")
    ax.set_ylabel("Standardised value")
    ax.set_title(title)


def random_effect_title(group: str, term: str, labels: dict[str, str] | None = None) -> str:
    r"""The reader's name of a random-effect term's QQ panel (``labels``: config report.term_labels).

    >>> random_effect_title("therapist", "Intercept")
    'QQ: therapist intercepts'
    >>> random_effect_title("therapist:patient", "alliance_within_patient")
    'QQ: patient (within therapist) slopes\nof alliance (within patient)'
    """
    who = term_label(group, labels).lower()
    if term == "Intercept":
        return f"QQ: {who} intercepts"
    return f"QQ: {who} slopes\nof {term_label(term, labels).lower()}"


def zero_variance_text(group: str, term: str, labels: dict[str, str] | None = None) -> str:
    r"""What a random-effect panel says instead of an empty QQ plot when the variance is 0.

    >>> zero_variance_text("therapist", "Intercept")
    'therapist variance estimated at 0:\nno therapist effects to plot'
    >>> zero_variance_text("therapist:patient", "alliance_within_patient")
    'variance of the patient (within therapist)\nslopes of alliance (within patient)\nestimated at 0: no such slopes to plot'
    """
    who = term_label(group, labels).lower()
    if term == "Intercept":
        return f"{who} variance estimated at 0:\nno {who} effects to plot"
    return (
        f"variance of the {who}\nslopes of {term_label(term, labels).lower()}\nestimated at 0: no such slopes to plot"
    )


def zero_variance(
    values: np.ndarray, variance: pd.DataFrame | None, group: str, term: str, rel_tol: float = BOUNDARY_REL_TOL
) -> bool:
    """Whether a random-effect term has nothing to plot: its variance (the model stage's
    variance_components.csv, when given) is at most ``rel_tol`` x the residual variance, the
    engines' boundary criterion, or its conditional modes (BLUPs) are all equal."""
    finite = values[np.isfinite(values)]
    if len(finite) and np.ptp(finite) == 0:
        return True
    if variance is None or not len(variance):
        return False
    table = variance.assign(group=variance["group"].astype(str), term=variance["term"].astype(str))
    row = table[(table["group"] == group) & (table["term"] == term)]
    residual = table.loc[table["group"] == "Residual", "variance"]
    if not len(row):
        return False
    scale = float(residual.iloc[0]) if len(residual) else 1.0
    return float(row["variance"].iloc[0]) <= rel_tol * scale


def _no_effects(ax, text: str, title: str) -> None:
    """A random-effect panel without points: the reason in words, no empty axes."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=8.5, color="#333333")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
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
    variance: pd.DataFrame | None = None,
    labels: dict[str, str] | None = None,
) -> plt.Figure:
    """Residuals against fitted values (sampled to ``max_points``, with the binned mean),
    a normal QQ plot of the residuals and one of each random-effect term; a term whose variance
    is estimated at 0 (``variance``: the model's variance components; or BLUPs all equal) says so
    in words instead (:func:`zero_variance`).  ``labels``: config report.term_labels."""
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
            blups, name = numeric_values(values["value"]), random_effect_title(group, term, labels)
            if zero_variance(blups, variance, group, term):
                _no_effects(ax, zero_variance_text(group, term, labels), name)
            else:
                _qq(ax, blups, name)
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
