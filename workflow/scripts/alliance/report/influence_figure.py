"""The figure of the leave-one-therapist-out analysis: how far one therapist moves each focal estimate.

It draws the model stage's ``<model>/therapist_influence.csv`` (``alliance.models.influence``) as it
is: for each focal term of each model, one dot per therapist left out at the estimate without that
therapist (ranked), the estimate with every therapist as a line and its 95% CI as a band (the
table's ``estimate_all``, ``ci_low_all``, ``ci_high_all``: the same fit the dots are compared with).
Therapists whose |DFBETAS| exceeds the table's cut-off are coloured, and the most influential of them
are labelled with their id as the results tables hold it (the study codes when the run pseudonymises
ids, config ``dataset.pseudonymise_ids``; the therapist caterpillar plot names them the same way).
Nothing is recomputed here.
"""

from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from alliance.report.figures import OKABE_ITO, STYLE
from alliance.report.terms import term_label

#: the columns of therapist_influence.csv the figure reads
INFLUENCE_FIGURE_COLUMNS = (
    "model",
    "therapist",
    "term",
    "estimate_all",
    "ci_low_all",
    "ci_high_all",
    "estimate_without",
    "dfbetas",
    "cutoff",
    "influential",
)
#: at most this many influential therapists are named in a panel (the largest |DFBETAS|)
MAX_NAMED = 3
#: panels per row of the figure
PANELS_PER_ROW = 3


def influence_panels(tables: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """One frame per (model, term), models in the order given and terms in the order of their
    table (the model's ``roles``), each ranked by the estimate without the therapist (ties by id)."""
    panels = []
    for table in tables:
        missing = [c for c in INFLUENCE_FIGURE_COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(f"therapist influence table lacks the columns {', '.join(missing)}")
        frame = table.assign(therapist=table["therapist"].astype(str))
        for _, sub in frame.groupby(["model", "term"], sort=False):
            panels.append(sub.sort_values(["estimate_without", "therapist"], kind="stable").reset_index(drop=True))
    return panels


def named_therapists(panel: pd.DataFrame, max_named: int = MAX_NAMED) -> pd.DataFrame:
    """The therapists a panel names: those beyond the DFBETAS cut-off (the table's ``influential``),
    at most ``max_named``, largest |DFBETAS| first (ties by id)."""
    beyond = panel[panel["influential"].astype(str) == "yes"]
    order = beyond.assign(_size=beyond["dfbetas"].abs()).sort_values(["_size", "therapist"], ascending=[False, True])
    return order.head(max_named).drop(columns="_size")


def _fmt_signed(value: float) -> str:
    return f"{value:.2f}".replace("-", "−")


def _panel(ax, panel: pd.DataFrame, title: str) -> None:
    """One (model, term): the ranked estimates without each therapist, the full-data estimate and
    its CI, the therapists beyond the cut-off coloured and the most influential ringed and named
    (in the panel's empty upper-left corner, so that names never overlap the dots or each other)."""
    y = np.arange(len(panel))
    full = panel.iloc[0]
    ax.axvspan(float(full["ci_low_all"]), float(full["ci_high_all"]), color=OKABE_ITO[0], alpha=0.15, linewidth=0)
    ax.axvline(float(full["estimate_all"]), color=OKABE_ITO[0], lw=1.3)
    beyond = (panel["influential"].astype(str) == "yes").to_numpy()
    colours = np.where(beyond, OKABE_ITO[5], "#444444")
    ax.scatter(panel["estimate_without"], y, s=12, color=colours, linewidths=0, zorder=3)
    named = named_therapists(panel)
    ax.scatter(named["estimate_without"], named.index, s=60, facecolors="none", edgecolors=OKABE_ITO[5], lw=1, zorder=4)
    cutoff = f"|DFBETAS| > {float(full['cutoff']):.2f}"
    if len(named):
        lines = [f"{int(beyond.sum())} of {len(panel)} with {cutoff}; largest:"]
        lines += [f"{r['therapist']}: {_fmt_signed(float(r['dfbetas']))}" for _, r in named.iterrows()]
    else:
        lines = [f"no therapist with {cutoff}"]
    ax.text(0.03, 0.97, "\n".join(lines), transform=ax.transAxes, ha="left", va="top", fontsize=7, color="#333333")
    ax.set_yticks([])
    ax.set_ylim(-1, len(panel) * 1.3)  # room above the dots for the names
    ax.set_ylabel(f"Therapists left out, ranked ({len(panel)})")
    ax.set_xlabel("Estimate without the therapist")
    ax.set_title(title, fontsize=8.5)


def therapist_influence_figure(
    tables: list[pd.DataFrame], model_labels: dict[str, str] | None = None, labels: dict[str, str] | None = None
) -> plt.Figure:
    """The leave-one-therapist-out figure of the influence tables (one per model, in the order
    given): one panel per model and focal term (:func:`influence_panels`).  ``model_labels``: model
    name -> its label; ``labels``: config report.term_labels."""
    panels = influence_panels(tables)
    n = max(len(panels), 1)
    cols = min(n, PANELS_PER_ROW)
    rows = math.ceil(n / cols)
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(rows, cols, figsize=(3.4 * cols + 0.3, 3.1 * rows + 0.7), squeeze=False)
        flat = list(axes.ravel())
        for ax, panel in zip(flat, panels):
            model = str(panel["model"].iloc[0])
            name = (model_labels or {}).get(model, term_label(model, labels))
            title = textwrap.fill(name, 44, break_on_hyphens=False) + "\n" + term_label(panel["term"].iloc[0], labels)
            _panel(ax, panel, title)
        for ax in flat[len(panels) :]:
            ax.axis("off")
        if not panels:
            flat[0].text(0.5, 0.5, "No leave-one-therapist-out analysis in this run", ha="center", va="center")
        handles = [
            Line2D([], [], ls="", marker="o", ms=4, color="#444444", label="estimate without one therapist"),
            Line2D([], [], ls="", marker="o", ms=4, color=OKABE_ITO[5], label="beyond the DFBETAS cut-off 2/√n"),
            Line2D([], [], color=OKABE_ITO[0], lw=1.3, label="estimate with every therapist"),
            Patch(color=OKABE_ITO[0], alpha=0.15, label="its 95% CI"),
        ]
        figure.tight_layout(rect=(0, 0.06 if rows > 1 else 0.1, 1, 1))
        figure.legend(handles=handles, loc="lower center", ncol=4, frameon=False, fontsize=8)
    return figure
