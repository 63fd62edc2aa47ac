"""Figures in one house style (colour-blind-safe Okabe-Ito palette), PNG and SVG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

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


def save(figure: plt.Figure, png: str | Path, svg: str | Path | None = None) -> None:
    """Save as PNG (and SVG) without timestamps, so reruns give identical files."""
    figure.savefig(png, metadata={"Software": None}, bbox_inches="tight")
    if svg is not None:
        figure.savefig(svg, metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    plt.close(figure)


def within_between(
    data: pd.DataFrame,
    within_slope: float | None = None,
    seed: int = 0,
    max_points: int = 20000,
) -> plt.Figure:
    """Two panels: the within-patient association (person-mean-centred alliance and
    symptoms, all therapy types) and the between-patient scatter of patient means by
    therapy type with a least-squares line each.

    Large datasets are sampled to ``max_points`` session rows (seeded) so the figure
    stays readable; fitted lines use all rows.
    """
    with plt.rc_context(STYLE):
        figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
        rows = data.dropna(subset=["alliance_within_patient", "symptoms_within_patient"])
        shown = rows.sample(n=min(max_points, len(rows)), random_state=seed) if len(rows) > max_points else rows
        left.scatter(shown["alliance_within_patient"], shown["symptoms_within_patient"], s=4, alpha=0.15, color="#555555", linewidths=0)
        x = np.linspace(rows["alliance_within_patient"].quantile(0.01), rows["alliance_within_patient"].quantile(0.99), 50)
        if within_slope is not None:
            left.plot(x, within_slope * x, color=OKABE_ITO[5], lw=2, label=f"model within-patient slope {within_slope:.2f}")
            left.legend(frameon=False, loc="upper right")
        left.set_xlabel("Alliance, deviation from patient's own mean")
        left.set_ylabel("Symptoms, deviation from patient's own mean")
        left.set_title("Within patients")
        means = data.groupby("patient").agg(
            alliance=("alliance", "mean"), symptoms=("symptoms", "mean"), therapy=("therapy", "first")
        ).dropna()
        for colour, (therapy, group) in zip(OKABE_ITO, sorted(means.groupby("therapy"), key=lambda kv: kv[0])):
            right.scatter(group["alliance"], group["symptoms"], s=8, alpha=0.5, color=colour, linewidths=0, label=therapy)
            if len(group) > 2:
                slope, intercept = np.polyfit(group["alliance"], group["symptoms"], 1)
                grid = np.linspace(group["alliance"].min(), group["alliance"].max(), 20)
                right.plot(grid, intercept + slope * grid, color=colour, lw=2)
        right.set_xlabel("Patient mean alliance")
        right.set_ylabel("Patient mean symptoms")
        right.set_title("Between patients, by therapy type")
        right.legend(frameon=False, title=None)
        figure.tight_layout()
    return figure
