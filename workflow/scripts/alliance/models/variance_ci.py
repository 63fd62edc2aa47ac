"""Confidence intervals for every variance component and ICC: a seeded parametric bootstrap.

A variance component near its boundary (a therapist variance of 0, or 5 % of the total) has no
useful Wald interval: its sampling distribution is skewed and piles up at 0.  The parametric
bootstrap (Davison & Hinkley 1997, ch. 2; lme4's ``bootMer`` and ``confint(method = "boot")``)
gives an interval that respects the boundary, for the ICCs as well, which are functions of several
components.  :func:`variance_ci_table`:

1. takes the fitted model (its fixed part X b on the fitted rows, its random-effects covariance
   matrices and residual variance);
2. simulates ``replicates`` new outcomes y* = X b + Z u* + e*, u* ~ N(0, Sigma_l) per unit of each
   random-effects group, e* ~ N(0, sigma^2) (:func:`simulate_outcome`);
3. refits the model to each y* with the run's engine, on the same rows;
4. returns the percentile interval (2.5th and 97.5th percentiles, R's quantile type 7) of every
   variance, SD, correlation and ICC over the replicates that fitted.

Why the bootstrap and not profile likelihood: the ICCs are ratios of several components, which a
profile of one component does not give, and the bootstrap runs with every engine of the pipeline
(the same ``fit``), boundary fits included.  Monte Carlo error: with R replicates the percentile
endpoints carry an error of roughly sqrt(p (1 - p) / R) / f(q); 200 replicates (the default,
``report.variance_ci.replicates``) put the 2.5 % endpoint within about +/- 1.1 percentile points.

Two ICC definitions, labelled in the table (docs/methods.md section 6.6):

* ``icc`` / ``icc_cumulative`` -- the pipeline's: intercept variance(s) over intercept variances
  plus residual, i.e. at the slope variables' zero (:func:`alliance.models.effects.icc`);
* ``icc_adjusted`` -- Nakagawa, Johnson & Schielzeth's (2017) adjusted ICC, the one R's
  ``performance::icc`` reports: all random-effect variance, each group's averaged over the observed
  slope values (Johnson 2014: mean z' Sigma z, as in the conditional R^2), over that plus the
  residual.  It equals ``icc_cumulative`` of the lowest level in a random-intercept model and
  differs when there are random slopes.

Seeds: one :class:`numpy.random.Generator` per model from (``run.seed``, the model name's CRC-32),
so that the same data and config give byte-identical tables and models do not share a stream.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pandas as pd

from alliance.engines.checks import group_covariances
from alliance.engines.dispatch import fit
from alliance.engines.spec import FitResult
from alliance.models import effects as fx
from alliance.models.data import model_frame
from alliance.models.specs import spec_from_config

__all__ = [
    "VARIANCE_CI_COLUMNS",
    "ICC_DEFINITIONS",
    "model_rng",
    "simulate_outcome",
    "variance_quantities",
    "variance_ci_table",
]

VARIANCE_CI_COLUMNS = [
    "model",
    "group",
    "term",
    "quantity",
    "estimate",
    "ci_low",
    "ci_high",
    "boot_mean",
    "boot_se",
    "method",
    "replicates",
    "replicates_failed",
    "seed",
    "definition",
    "flags",
]

#: what each quantity of the table is (the ``definition`` column)
ICC_DEFINITIONS = {
    "variance": "variance of the random effect (residual: of the errors)",
    "sd": "standard deviation: square root of the variance",
    "correlation": "correlation of the two random effects",
    **fx.ICC_DEFINITIONS,
}
#: the percentile interval's level
LEVEL = 0.95


def model_rng(seed: int, model_name: str) -> np.random.Generator:
    """The bootstrap's random stream of one model: (run seed, CRC-32 of the model's name).

    >>> float(model_rng(1, "m").normal()) == float(model_rng(1, "m").normal()) != float(model_rng(1, "n").normal())
    True
    """
    return np.random.default_rng([int(seed), zlib.crc32(model_name.encode("utf-8"))])


def _unit_index(data: pd.DataFrame, group: str) -> np.ndarray:
    """The unit of each row in a random-effects group (``therapist:patient``: the pair)."""
    columns = group.split(":")
    # column-wise string concatenation: a row-wise join costs ~3 s per replicate at 7,000 rows
    keys = data[columns[0]].astype(str)
    for column in columns[1:]:
        keys = keys + "\x1f" + data[column].astype(str)
    return pd.factorize(keys, sort=True)[0]


def simulate_outcome(
    fixed_part: np.ndarray, variance_components: pd.DataFrame, data: pd.DataFrame, rng: np.random.Generator
) -> np.ndarray:
    """One draw of y* = X b + Z u* + e* on the fitted rows ``data`` (module docstring, step 2).

    Examples
    --------
    >>> vc = pd.DataFrame({"group": ["g", "Residual"], "term": ["Intercept", "Residual"], "variance": [4.0, 1.0]})
    >>> data = pd.DataFrame({"g": np.repeat(np.arange(2000), 2)})
    >>> y = simulate_outcome(np.zeros(4000), vc, data, np.random.default_rng(0))
    >>> means = pd.Series(y).groupby(data["g"]).mean()
    >>> bool(abs(means.var() - (4.0 + 1.0 / 2)) < 0.4)  # the variance of unit means: tau^2 + sigma^2 / n
    True
    """
    n = len(data)
    y = np.asarray(fixed_part, dtype=float).copy()
    for group, (terms, S) in group_covariances(variance_components).items():
        unit = _unit_index(data, group)
        n_units = int(unit.max()) + 1 if n else 0
        # eigh, not cholesky: a covariance on the boundary (singular) is allowed
        values, vectors = np.linalg.eigh(S)
        root = vectors * np.sqrt(np.clip(values, 0.0, None))
        u = rng.standard_normal((n_units, len(terms))) @ root.T
        Z = np.column_stack([np.ones(n) if t == "Intercept" else data[t].to_numpy(dtype=float) for t in terms])
        y += np.einsum("ij,ij->i", Z, u[unit])
    sigma2 = float(variance_components.loc[variance_components["group"] == "Residual", "variance"].iloc[0])
    return y + rng.standard_normal(n) * math.sqrt(max(sigma2, 0.0))


def variance_quantities(variance_components: pd.DataFrame, data: pd.DataFrame) -> dict[tuple[str, str, str], float]:
    """Every quantity of the table, ``(group, term, quantity) -> value``, from one fit.

    >>> vc = pd.DataFrame({"group": ["g", "Residual"], "term": ["Intercept", "Residual"], "variance": [1.0, 3.0],
    ...                    "sd": [1.0, 3 ** .5], "correlation": [np.nan, np.nan]})
    >>> q = variance_quantities(vc, pd.DataFrame(index=range(4)))
    >>> q[("g", "Intercept", "icc")], q[("all groups", "", "icc_adjusted")]
    (0.25, 0.25)
    """
    out: dict[tuple[str, str, str], float] = {}
    for r in variance_components.itertuples(index=False):
        group, term = str(r.group), str(r.term)
        if ":" in term and group != "Residual":
            out[(group, term, "correlation")] = float(r.correlation)
            continue
        out[(group, term, "variance")] = float(r.variance)
        out[(group, term, "sd")] = math.sqrt(max(float(r.variance), 0.0))
    for r in fx.icc(variance_components).itertuples(index=False):
        out[(r.group, "Intercept", "icc")] = float(r.icc)
        if ":" in r.group:
            out[(r.group, "Intercept", "icc_cumulative")] = float(r.icc_cumulative)
    r2 = fx.r2_nakagawa(np.zeros(len(data)), variance_components, data).iloc[0]
    out[("all groups", "", "icc_adjusted")] = fx.icc_adjusted(r2)
    return out


def _bootstrap(
    spec: Any, frame: pd.DataFrame, result: FitResult, replicates: int, rng: np.random.Generator, engine: str | None
) -> tuple[list[dict[tuple[str, str, str], float]], int]:
    """The quantities of every replicate that fitted, and the number that failed."""
    used = frame.loc[result.fitted["row"].to_numpy()].copy()
    fixed_part = result.fitted["fitted_marginal"].to_numpy(dtype=float)
    draws: list[dict[tuple[str, str, str], float]] = []
    failed = 0
    kwargs = {} if engine is None else {"engine": engine}
    for _ in range(int(replicates)):
        used[spec.outcome] = simulate_outcome(fixed_part, result.variance_components, used, rng)
        try:
            refit = fit(spec, used, **kwargs)
        except (ValueError, RuntimeError, np.linalg.LinAlgError):
            failed += 1
            continue
        draws.append(variance_quantities(refit.variance_components, used.loc[refit.fitted["row"].to_numpy()]))
    return draws, failed


def variance_ci_table(
    model: dict[str, Any],
    analysis: pd.DataFrame | None,
    patients: pd.DataFrame | None,
    *,
    replicates: int,
    seed: int,
    engine: str | None = None,
) -> pd.DataFrame:
    """Parametric-bootstrap percentile CIs of every variance component, SD, correlation and ICC.

    ``analysis`` / ``patients`` are the model's tables (:func:`alliance.models.data.load_model_tables`).
    The estimates are those of the model's own fit; ``boot_mean`` and ``boot_se`` are the mean and
    SD over replicates (the bootstrap's bias, e.g. of a variance near 0, and its standard error).

    Examples
    --------
    >>> rng = np.random.default_rng(4)
    >>> g = np.repeat(np.arange(30), 6)
    >>> data = pd.DataFrame({"patient": [f"P{i:02d}" for i in g], "y": np.repeat(rng.normal(0, 2, 30), 6) + rng.normal(size=180)})
    >>> m = {"name": "m", "outcome": "y", "fixed": [], "random": [{"group": "patient"}]}
    >>> t = variance_ci_table(m, data, None, replicates=30, seed=1).set_index("quantity")
    >>> row = t.loc["icc"]
    >>> bool(row["ci_low"] < row["estimate"] < row["ci_high"]), int(row["replicates"])
    (True, 30)
    """
    spec = spec_from_config(model)
    frame, _ = model_frame(model, analysis, patients)
    kwargs = {} if engine is None else {"engine": engine}
    result = fit(spec, frame, **kwargs)
    used = frame.loc[result.fitted["row"].to_numpy()]
    estimates = variance_quantities(result.variance_components, used)
    draws, failed = _bootstrap(spec, frame, result, replicates, model_rng(seed, model["name"]), engine)
    alpha = (1 - LEVEL) / 2
    rows = []
    for key, estimate in estimates.items():
        values = np.array([d.get(key, math.nan) for d in draws], dtype=float)
        values = values[np.isfinite(values)]
        low, high = np.percentile(values, [100 * alpha, 100 * (1 - alpha)]) if len(values) else (math.nan, math.nan)
        rows.append(
            {
                "model": model["name"],
                "group": key[0],
                "term": key[1],
                "quantity": key[2],
                "estimate": estimate,
                "ci_low": float(low),
                "ci_high": float(high),
                "boot_mean": float(values.mean()) if len(values) else math.nan,
                "boot_se": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                # the fit as specified, also when the singular-fit policy simplified it (docs/methods.md 7.6)
                "method": f"parametric bootstrap of the fit as specified, percentile {LEVEL:.0%} interval",
                "replicates": len(draws),
                "replicates_failed": failed,
                "seed": int(seed),
                "definition": ICC_DEFINITIONS[key[2]],
                "flags": ";".join(result.flags) or "none",
            }
        )
    return pd.DataFrame(rows, columns=VARIANCE_CI_COLUMNS)
