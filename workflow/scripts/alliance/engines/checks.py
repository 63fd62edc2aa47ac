"""Result assembly shared by every engine: the variance table, boundary checks, flags."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from alliance.engines.spec import (
    AIC_DEFINITION,
    BOUNDARY_REL_TOL,
    CORR_BOUNDARY_TOL,
    FLAG_NAMES,
    THETA_BOUNDARY_TOL,
    FitResult,
    ModelSpec,
)

VC_COLUMNS = ["group", "term", "variance", "sd", "correlation"]


def variance_table(blocks: Sequence[tuple[str, Sequence[str], np.ndarray, bool]], sigma2: float) -> pd.DataFrame:
    """The ``variance_components`` table of a :class:`FitResult`.

    ``blocks``: ``(group, term names, covariance matrix, correlated)`` in output order.  Each block
    gives one row per variance and, when ``correlated``, one row per covariance (term ``"a:b"``,
    covariance in ``variance``, correlation in ``correlation``); the residual row comes last."""
    rows = []
    for group, names, cov, correlated in blocks:
        k = len(names)
        for i, nm in enumerate(names):
            v = float(cov[i, i])
            rows.append((group, nm, v, math.sqrt(max(v, 0.0)), math.nan))
        if not correlated:
            continue
        for i in range(k):
            for j in range(i + 1, k):
                c = float(cov[i, j])
                den = math.sqrt(max(cov[i, i], 0.0) * max(cov[j, j], 0.0))
                rows.append((group, f"{names[i]}:{names[j]}", c, math.nan, c / den if den > 0 else math.nan))
    rows.append(("Residual", "Residual", sigma2, math.sqrt(sigma2), math.nan))
    return pd.DataFrame(rows, columns=VC_COLUMNS)


def _residual_variance(variance_components: pd.DataFrame) -> float:
    hit = variance_components.loc[variance_components["group"] == "Residual", "variance"]
    if hit.empty:
        raise ValueError("the variance components have no Residual row")
    return float(hit.iloc[0])


def group_covariances(variance_components: pd.DataFrame) -> dict[str, tuple[list[str], np.ndarray]]:
    """Per random-effects group of a ``variance_components`` table: its terms (intercept, slopes)
    and their covariance matrix (covariances absent from the table, as for ``||`` terms, are 0)."""
    out: dict[str, tuple[list[str], np.ndarray]] = {}
    random_rows = variance_components[variance_components["group"] != "Residual"]
    for group, rows in random_rows.groupby("group", sort=False):
        labels = rows["term"].astype(str).tolist()
        terms = [t for t in labels if ":" not in t]
        index = {t: i for i, t in enumerate(terms)}
        S = np.zeros((len(terms), len(terms)))
        for label, value in zip(labels, rows["variance"].astype(float)):
            a, _, b = label.partition(":")
            b = b or a
            if a not in index or b not in index:
                raise ValueError(f"cannot read covariance term {label!r} of group {group!r}")
            S[index[a], index[b]] = S[index[b], index[a]] = value
        out[str(group)] = (terms, S)
    return out


def singular_groups(variance_components: pd.DataFrame, tol: float | None = None) -> dict[str, str]:
    """Random-effects groups whose covariance matrix is (nearly) singular, by lme4's theta criterion.

    For each group, Sigma / sigma^2 is factored as L L' (lme4's theta are the elements of L); the
    group is singular when a diagonal element of L is <= ``tol`` (default
    :data:`THETA_BOUNDARY_TOL`; lme4's ``isSingular`` uses 1e-4) or when Sigma is not positive
    definite.  Returns ``{group: reason}`` in table order (empty: no singular group).

    >>> vc = pd.DataFrame({"group": ["p", "p", "p", "Residual"], "term": ["Intercept", "x", "Intercept:x", "Residual"],
    ...                    "variance": [100.0, 0.25, -4.99999, 60.0]})
    >>> list(singular_groups(vc))
    ['p']
    """
    tol = THETA_BOUNDARY_TOL if tol is None else float(tol)
    sigma2 = _residual_variance(variance_components)
    out: dict[str, str] = {}
    for group, (terms, S) in group_covariances(variance_components).items():
        if not terms:
            continue
        try:
            theta = np.diag(np.linalg.cholesky(S / sigma2))
        except np.linalg.LinAlgError:
            out[group] = "its covariance matrix is not positive definite"
            continue
        k = int(np.argmin(theta))
        if not theta[k] > tol:  # also NaN
            d = np.sqrt(np.clip(np.diag(S), 0.0, None))
            corr = [
                f"correlation {terms[i]}:{terms[j]} {S[i, j] / (d[i] * d[j]):.7g}"
                for i in range(len(terms))
                for j in range(i + 1, len(terms))
                if S[i, j] != 0 and d[i] * d[j] > 0
            ]
            out[group] = (
                f"diagonal element {theta[k]:.3g} ({terms[k]}) of the relative Cholesky factor of its "
                f"covariance matrix (lme4's theta) <= {tol:g}" + (f" ({'; '.join(corr)})" if corr else "")
            )
    return out


def boundary_reasons(variance_components: pd.DataFrame, theta_tol: float | None = None) -> dict[str, str]:
    """Why each random-effects group is on the boundary (``{}``: the fit is not): a variance
    <= BOUNDARY_REL_TOL x residual variance, a correlation with |r| >= 1 - CORR_BOUNDARY_TOL, or
    lme4's theta criterion (:func:`singular_groups` with ``theta_tol``).  This decides the flag
    ``boundary`` of every engine (with the engine's own singular-fit verdict, where it has one)."""
    sigma2 = _residual_variance(variance_components)
    reasons: dict[str, list[str]] = {}
    for group, (terms, S) in group_covariances(variance_components).items():
        why = reasons.setdefault(group, [])
        d = np.diag(S)
        why += [
            f"variance of {t} {v:.3g} <= {BOUNDARY_REL_TOL:g} x residual variance"
            for t, v in zip(terms, d)
            if v <= BOUNDARY_REL_TOL * sigma2
        ]
        for i in range(len(terms)):
            for j in range(i + 1, len(terms)):
                den = math.sqrt(max(d[i], 0.0) * max(d[j], 0.0))
                r = S[i, j] / den if den > 0 else math.nan
                if math.isfinite(r) and abs(r) >= 1.0 - CORR_BOUNDARY_TOL:
                    why.append(f"correlation {terms[i]}:{terms[j]} {r:.7g} within {CORR_BOUNDARY_TOL:g} of +-1")
    for group, why in singular_groups(variance_components, theta_tol).items():
        if not reasons[group]:  # otherwise implied by the reasons above
            reasons[group] = [why]
    return {group: "; ".join(why) for group, why in reasons.items() if why}


def likelihood_info(spec: ModelSpec, engine: str, engine_version: str, loglik: float, k: int, n: int) -> dict[str, Any]:
    """The first entries of ``FitResult.fit``: engine, method, log-likelihood, AIC/BIC (``k``
    parameters, ``n`` observations)."""
    return {
        "model": spec.name,
        "engine": engine,
        "engine_version": engine_version,
        "method": "REML" if spec.reml else "ML",
        "loglik": loglik,
        "reml_criterion" if spec.reml else "deviance": -2.0 * loglik,
        "aic": -2.0 * loglik + 2.0 * k,
        "bic": -2.0 * loglik + math.log(n) * k,
        "aic_definition": AIC_DEFINITION,
        "n_params": k,
        "n_obs": n,
    }


def finish_result(
    spec: ModelSpec,
    *,
    fixed: pd.DataFrame,
    vcov: pd.DataFrame,
    variance_components: pd.DataFrame,
    random_effects: pd.DataFrame,
    fitted: pd.DataFrame,
    fit_info: dict[str, Any],
    flag_values: dict[str, bool],
    engine_singular: bool = False,
    engine_result: Any = None,
) -> FitResult:
    """The last step of every engine: the flag ``boundary`` (:func:`boundary_reasons`, or the
    engine's own singular-fit verdict ``engine_singular``) with its groups and reasons in
    ``fit_info["boundary_reasons"]`` and ``fit_info["notes"]``, the flags in FLAG_NAMES order, and
    the :class:`FitResult`."""
    reasons = boundary_reasons(variance_components)
    boundary = bool(reasons) or bool(engine_singular)
    notes = fit_info.setdefault("notes", [])
    if reasons:
        notes.append("boundary: " + "; ".join(f"{group}: {why}" for group, why in reasons.items()))
    elif boundary:
        notes.append(f"boundary: {fit_info.get('engine', 'the engine')} reports a singular fit (isSingular)")
    fit_info["boundary"] = boundary
    fit_info["boundary_reasons"] = reasons
    flag_values = {**flag_values, "boundary": boundary}
    return FitResult(
        spec=spec,
        fixed=fixed,
        vcov=vcov,
        variance_components=variance_components,
        random_effects=random_effects,
        fitted=fitted,
        fit=fit_info,
        flags=[k for k in FLAG_NAMES if flag_values.get(k)],
        engine_result=engine_result,
    )
