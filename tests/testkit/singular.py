"""Simulated patient-level data with a therapist-level predictor, for the singular-fit policy's tests.

One row per patient: y = 40 + beta_x x + beta_z z_t + u_t + e, x a patient-level predictor, z_t a
therapist-level one (the therapist's value, the same for all of a therapist's patients), u_t ~ N(0,
tau^2) the therapist effect (tau = 0: no therapist variance) and e ~ N(0, sigma^2).
:func:`replicate` fits the model ``y ~ x + z + (1 | therapist)`` once with the singular-fit policy
and reports the therapist-level coefficient with the df the policy uses and the df of the fit as
specified (tests/models/test_singular_fits.py).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats

#: the config model of the simulated data (alliance.models.suite.fit_model)
MODEL = {
    "name": "therapist_level",
    "data": "patients",
    "outcome": "y",
    "fixed": ["x", "z"],
    "random": [{"group": "therapist"}],
    "roles": {"x": "patient_within_therapist", "z": "between_therapist"},
}


@dataclass(frozen=True)
class Scenario:
    """The truth and the design of one simulation."""

    n_therapists: int = 60
    per_therapist: int = 10
    beta_x: float = -10.0
    beta_z: float = -8.0
    tau: float = 0.0
    sigma: float = 12.0


def simulate(seed: int | np.random.SeedSequence, scenario: Scenario = Scenario()) -> pd.DataFrame:
    """A patients table (patient, therapist, x, z, y) drawn from ``scenario`` with ``seed``."""
    rng = np.random.default_rng(seed)
    s = scenario
    n = s.n_therapists * s.per_therapist
    therapist = np.repeat([f"T{j:03d}" for j in range(s.n_therapists)], s.per_therapist)
    z = np.repeat(rng.normal(0.0, 0.4, s.n_therapists), s.per_therapist)
    u = np.repeat(rng.normal(0.0, s.tau, s.n_therapists), s.per_therapist) if s.tau > 0 else np.zeros(n)
    x = rng.normal(0.0, 0.5, n)
    y = 40.0 + s.beta_x * x + s.beta_z * z + u + rng.normal(0.0, s.sigma, n)
    return pd.DataFrame({"patient": [f"P{i:05d}" for i in range(n)], "therapist": therapist, "x": x, "z": z, "y": y})


def _covers(est: float, se: float, df: float, truth: float) -> bool:
    q = scipy.stats.t.ppf(0.975, df)
    return bool(est - q * se <= truth <= est + q * se)


def replicate(seed: np.random.SeedSequence, scenario: Scenario = Scenario()) -> dict[str, float]:
    """One replication: the therapist-level coefficient z, its SE, the df of the policy's fit and of
    the fit as specified, whether each 95 % CI covers the truth, and whether the fit was singular."""
    from alliance.models.suite import fit_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = fit_model(MODEL, None, simulate(seed, scenario), {"singular_fits": "simplify"})
    z = tables["fixed"].set_index("term").loc["z"]
    record = tables["fit"].get("singular_fit") or {}
    specified = {r["term"]: r for r in (record.get("as_specified") or {}).get("fixed", [])}
    df_specified = float(specified["z"]["df"]) if record.get("simplified") else float(z["df"])
    se_specified = float(specified["z"]["se"]) if record.get("simplified") else float(z["se"])
    est, se, df = float(z["estimate"]), float(z["se"]), float(z["df"])
    return {
        "estimate": est,
        "se": se,
        "df": df,
        "df_as_specified": df_specified,
        "covers": _covers(est, se, df, scenario.beta_z),
        "covers_as_specified": _covers(est, se_specified, df_specified, scenario.beta_z),
        "singular": bool(record.get("singular")),
    }


def summarise(rows: list[dict[str, float]], truth: float) -> dict[str, float]:
    """Bias, coverage of the policy's CI and of the as-specified fit's CI, over all replications and
    over the singular ones; ``mcse``: the Monte Carlo SE of a 95 % coverage over all replications."""
    t = pd.DataFrame(rows)
    sing = t[t["singular"]]
    return {
        "replications": len(t),
        "singular_share": float(t["singular"].mean()),
        "bias": float(t["estimate"].mean() - truth),
        "coverage": float(t["covers"].mean()),
        "coverage_as_specified": float(t["covers_as_specified"].mean()),
        "coverage_singular": float(sing["covers"].mean()) if len(sing) else math.nan,
        "coverage_singular_as_specified": float(sing["covers_as_specified"].mean()) if len(sing) else math.nan,
        "mcse": math.sqrt(0.95 * 0.05 / len(t)),
    }
