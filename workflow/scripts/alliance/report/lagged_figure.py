"""The figure of the section "Which comes first": the cross-lags in both directions and the two
carry-overs, one panel each, with the RI-CLPM and every lagged multilevel model as rows, their 95 %
CIs and, for simulated data, the true value.

It draws the rows of :func:`alliance.report.lagged.lagged_section`, the same rows the report's
tables quote, so the figure and the text cannot disagree.  The panels have their own x axes: a
cross-lag from a 1–5 alliance score to a 0–100 symptom score and the reverse are in different units.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from alliance.report.figures import OKABE_ITO, STYLE  # noqa: E402
from alliance.report.lagged import PATH_ORDER  # noqa: E402

#: the panels, in the report's path order: both cross-lags first
PANEL_TITLES = {
    "gamma": "Cross-lag: alliance → next symptoms",
    "beta": "Cross-lag: symptoms → next alliance",
    "alpha": "Carry-over of the alliance",
    "delta": "Carry-over of symptoms",
}
#: the units of each panel's x axis (each panel has its own)
PANEL_UNITS = {
    "gamma": "symptom points per alliance point (95% CI)",
    "beta": "alliance points per symptom point (95% CI)",
    "alpha": "per alliance point at the previous session (95% CI)",
    "delta": "per symptom point at the previous session (95% CI)",
}
ROW_COLUMNS = ["path", "model", "kind", "estimate", "ci_low", "ci_high", "truth", "flagged"]


def figure_rows(section: dict[str, Any]) -> pd.DataFrame:
    """One row per path and model: the RI-CLPMs' constrained paths, then each lagged multilevel
    model's cross-lag and carry-over, with the true value where the truth file gives one and
    whether the model carries a flag (``flagged``)."""
    truth = {
        (t["model"], t["row"]["path"]): t["truth"]
        for t in ((section.get("truth") or {}).get("rows") or [])
        if "path" in t["row"]
    }
    rows = []
    for m in section.get("riclpm") or []:
        for r in m["paths"]:
            rows.append(
                {
                    "path": r["path"],
                    "model": m["name"],
                    "kind": "RI-CLPM",
                    "flagged": bool(r["flag_list"]),
                    **_numbers(r),
                }
            )
    for s in section.get("specs") or []:
        for r in s["rows"]:
            rows.append(
                {
                    "path": r["path"],
                    "model": s["name"],
                    "kind": "lagged multilevel",
                    "flagged": bool(s["flags"]),
                    **_numbers(r),
                }
            )
    frame = pd.DataFrame(rows, columns=[c for c in ROW_COLUMNS if c != "truth"])
    frame["truth"] = [truth.get((m, p)) for m, p in zip(frame["model"], frame["path"])]
    return frame[ROW_COLUMNS]


def _numbers(row: dict[str, Any]) -> dict[str, float | None]:
    """The estimate and CI of a row, as the tables give them."""
    return {k: row.get(k) for k in ("estimate", "ci_low", "ci_high")}


def lagged_dynamics(section: dict[str, Any]) -> plt.Figure:
    """Four panels (cross-lags, carry-overs), one row per model: the estimate with its 95 % CI (RI-CLPM
    in blue diamonds, lagged multilevel models in grey squares; a hollow marker when the model carries a
    flag), the true value as an orange bar when known, and zero."""
    rows = figure_rows(section)
    paths = [p for p in PATH_ORDER if p in set(rows["path"])]
    with plt.rc_context(STYLE):
        if not paths:
            figure, ax = plt.subplots(figsize=(6, 1.2))
            ax.axis("off")
            ax.text(0.5, 0.5, "No lagged model (RI-CLPM or lagged multilevel) in this run", ha="center", va="center")
            return figure
        n_rows = max((rows["path"] == p).sum() for p in paths)
        columns = 2 if len(paths) > 1 else 1
        grid = (len(paths) + columns - 1) // columns
        figure, axes = plt.subplots(
            grid, columns, figsize=(5.2 * columns + 1.0, grid * (0.34 * n_rows + 1.3)), squeeze=False
        )
        for ax in axes.flat[len(paths) :]:
            ax.axis("off")
        for ax, path in zip(axes.flat, paths):
            _panel(ax, rows[rows["path"] == path].reset_index(drop=True), path)
        figure.tight_layout(rect=(0, 0.06, 1, 1))
        figure.legend(*_legend_handles(rows), frameon=False, loc="lower center", ncol=4, fontsize=8)
    return figure


def _panel(ax: plt.Axes, sub: pd.DataFrame, path: str) -> None:
    """One path's panel: a row per model, top to bottom in the section's order."""
    y = list(range(len(sub)))[::-1]
    ax.axvline(0, color="#888888", lw=0.8)
    for yy, r in zip(y, sub.itertuples(index=False)):
        colour = OKABE_ITO[0] if r.kind == "RI-CLPM" else "#333333"
        ax.hlines(yy, r.ci_low, r.ci_high, colors=colour, lw=1.4)
        ax.scatter(
            [r.estimate],
            [yy],
            marker="D" if r.kind == "RI-CLPM" else "s",
            s=34,
            zorder=3,
            facecolors="white" if r.flagged else colour,
            edgecolors=colour,
        )
        if r.truth is not None and not pd.isna(r.truth):
            ax.vlines(r.truth, yy - 0.32, yy + 0.32, colors=OKABE_ITO[5], lw=2.0, zorder=4)
    ax.set_yticks(y, [f"{m} ({k})" for m, k in zip(sub["model"], sub["kind"])])
    ax.set_ylim(-0.8, len(sub) - 0.2)
    ax.set_title(PANEL_TITLES[path])
    ax.set_xlabel(PANEL_UNITS[path])
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))  # long tick labels (−0.004) must not overlap


def _legend_handles(rows: pd.DataFrame) -> tuple[list, list[str]]:
    """Legend entries for what the panels show (the truth only when some row has one)."""
    handles = [
        plt.Line2D([], [], color=OKABE_ITO[0], marker="D", lw=1.4),
        plt.Line2D([], [], color="#333333", marker="s", lw=1.4),
        plt.Line2D([], [], color="#333333", marker="s", markerfacecolor="white", lw=0),
    ]
    labels = ["RI-CLPM", "lagged multilevel model", "hollow: the model carries a flag"]
    if rows["truth"].notna().any():
        handles.append(plt.Line2D([], [], color=OKABE_ITO[5], lw=2.0))
        labels.append("true value (truth file)")
    return handles, labels
