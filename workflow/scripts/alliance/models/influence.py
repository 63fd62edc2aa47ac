"""Leave-one-therapist-out influence on a model's focal estimates (DFBETAS over therapists).

A reviewer asks whether one therapist carries an effect: with 60 therapists and a therapist-level
predictor, one caseload can move a between-therapist slope a long way.  :func:`therapist_influence`
refits the model once without each therapist's patients (all their sessions, or their rows of the
patients table) and reports, for every ``roles`` term,

* ``estimate_all``, ``se_all``, ``df_all``, ``ci_low_all``, ``ci_high_all``: the fit with every
  therapist, the one the fixed-effects table reports (after the singular-fit policy, with its df);
* ``estimate_without``, ``se_without`` and ``df_without``: the fit without the therapist;
* ``change`` = estimate (all therapists) - estimate_without (DFBETA);
* ``dfbetas`` = change / se_without, the standardised change of Belsley, Kuh & Welsch (1980)
  for a group of observations, as in R's influence.ME (Nieuwenhuis, te Grotenhuis & Pelzer
  2012, ``dfbetas.estex``);
* ``influential``: ``yes`` when |dfbetas| > 2 / sqrt(number of therapists), their size-adjusted
  cut-off.

Every refit uses the random-effects structure that the singular-fit policy (``analysis.singular_fits``,
alliance.models.singular) chose on the full data, and its df rule (alliance.models.refit): when the
therapist variance is 0 and the policy dropped the therapist level, each fit without a therapist is
the same linear model, a therapist-level predictor on n_therapists - 1 - k - 1 df; the rows say
``simplified`` in their flags as the primary fit's do.

Deterministic: the refits use the engine of the run with its fixed start values, on the same
rows in the same order.  Person means and therapist means are not recomputed without the
therapist (a shift of a centred predictor by a constant leaves its slope unchanged; the
patient-level therapist decomposition is recomputed because the patients table is rebuilt).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from alliance.models.refit import focal_estimates, primary_fit, refit

__all__ = ["INFLUENCE_COLUMNS", "therapist_influence", "dfbetas_cutoff"]

INFLUENCE_COLUMNS = [
    "model",
    "therapist",
    "term",
    "role",
    "estimate_all",
    "se_all",
    "df_all",
    "ci_low_all",
    "ci_high_all",
    "estimate_without",
    "se_without",
    "df_without",
    "change",
    "dfbetas",
    "cutoff",
    "influential",
    "n_patients_dropped",
    "n_obs",
    "flags",
]


def dfbetas_cutoff(n_therapists: int) -> float:
    """The size-adjusted DFBETAS cut-off 2 / sqrt(n) over ``n_therapists`` groups.

    >>> round(dfbetas_cutoff(60), 4)
    0.2582
    """
    return 2.0 / math.sqrt(n_therapists)


def therapist_influence(
    model: dict[str, Any],
    analysis: pd.DataFrame | None,
    patients: pd.DataFrame | None,
    engine: str | None = None,
    singular_fits: str | None = None,
) -> pd.DataFrame:
    """One row per therapist and focal term: the estimate without that therapist and its DFBETAS.

    ``singular_fits`` is the run's ``analysis.singular_fits`` (None: the schema's default); the full fit
    and every refit use the structure it chose on the full data (module docstring).

    ``analysis`` / ``patients`` are the tables :func:`alliance.models.data.load_model_tables` reads
    for the model (the one the model does not use is None); both must have a ``therapist`` column.
    Rows are sorted by term (roles order) and therapist id.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> t = np.repeat([f"T{i}" for i in range(8)], 10)
    >>> x = rng.normal(size=80)
    >>> y = 2 * x + rng.normal(size=80) + np.repeat(rng.normal(size=8), 10)
    >>> y[t == "T3"] += 6 * x[t == "T3"]  # one therapist whose patients show a steeper slope
    >>> pts = pd.DataFrame({"patient": [f"P{i}" for i in range(80)], "therapist": t, "x": x, "y": y})
    >>> m = {"name": "m", "data": "patients", "outcome": "y", "fixed": ["x"],
    ...      "random": [{"group": "therapist"}], "roles": {"x": "patient_level"}}
    >>> table = therapist_influence(m, None, pts)
    >>> table.loc[table["dfbetas"].abs().idxmax(), ["therapist", "influential"]].tolist()
    ['T3', 'yes']
    """
    base = patients if model.get("data") == "patients" else analysis
    if base is None or "therapist" not in base:
        raise ValueError(f"model {model['name']!r}: leave-one-therapist-out needs a therapist column")
    full, counts, structure = primary_fit(model, analysis, patients, engine, singular_fits)
    main = focal_estimates(model, full.fixed, full.flags, counts).set_index("term")
    therapists = sorted(base["therapist"].dropna().astype(str).unique())
    cutoff = dfbetas_cutoff(len(therapists))
    rows: list[dict[str, Any]] = []
    for therapist in therapists:
        keep = base["therapist"].astype(str) != therapist
        dropped = base.loc[~keep, "patient"].nunique()
        sub_a = analysis[keep] if analysis is not None and base is analysis else analysis
        sub_p = patients[keep] if patients is not None and base is patients else patients
        result, sub_counts = refit(model, sub_a, sub_p, engine, structure)
        for _, r in focal_estimates(model, result.fixed, result.flags, sub_counts).iterrows():
            m = main.loc[r["term"]]
            change = float(m["estimate"]) - float(r["estimate"])
            dfb = change / float(r["se"]) if float(r["se"]) > 0 else math.nan
            rows.append(
                {
                    "model": model["name"],
                    "therapist": therapist,
                    "term": r["term"],
                    "role": r["role"],
                    "estimate_all": float(m["estimate"]),
                    "se_all": float(m["se"]),
                    "df_all": float(m["df"]),
                    "ci_low_all": float(m["ci_low"]),  # the full fit's 95% CI (its df method)
                    "ci_high_all": float(m["ci_high"]),
                    "estimate_without": float(r["estimate"]),
                    "se_without": float(r["se"]),
                    "df_without": float(r["df"]),
                    "change": change,
                    "dfbetas": dfb,
                    "cutoff": cutoff,
                    "influential": "yes" if abs(dfb) > cutoff else "no",
                    "n_patients_dropped": int(dropped),
                    "n_obs": int(r["n_obs"]),
                    "flags": r["flags"],
                }
            )
    table = pd.DataFrame(rows, columns=INFLUENCE_COLUMNS)
    order = {t: i for i, t in enumerate(model.get("roles") or {})}
    return (
        table.assign(_o=table["term"].map(order))
        .sort_values(["_o", "therapist"], kind="stable")
        .drop(columns="_o")
        .reset_index(drop=True)
    )
