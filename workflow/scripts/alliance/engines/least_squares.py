"""A linear model without random effects, as a :class:`~alliance.engines.spec.FitResult`.

The singular-fit policy (alliance.models.singular) can drop every random-effects term of a model
(a patient-level model whose only level, the therapist, has its intercept variance at 0).  What is
left is the linear regression of the fixed part, fitted here by least squares on exactly the rows
the mixed model used (:func:`alliance.engines.frame.model_frame` of the model as specified), with
the same term names and the tables every engine returns:

* fixed effects by least squares, their covariance sigma^2 (X'X)^-1 with sigma^2 = RSS / (n - p),
  t tests with the residual df n - p (exact under the model; what Satterthwaite's approximation, and
  lmerTest on a fit whose variances are all 0, give);
* the REML log-likelihood -((n - p) log(2 pi sigma^2) + (n - p) + log det X'X) / 2 (ML: the usual
  likelihood at sigma^2 = RSS / n), which is the limit of lme4's REML criterion as the random-effects
  variances go to 0 (a mixed fit on the boundary reaches the same value);
* a variance-components table with the residual row alone and no random effects.

No optimiser runs, so nothing here can fail to converge; the flags are all false.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from alliance.engines.checks import VC_COLUMNS, finish_result, likelihood_info
from alliance.engines.common import fixed_table
from alliance.engines.ddf import residual_df_data
from alliance.engines.frame import model_frame
from alliance.engines.spec import FitResult, ModelSpec, lme4_random_terms, to_lme4_formula, to_patsy_formula

__all__ = ["ENGINE", "DF_METHOD", "fit_least_squares", "fixed_formula"]

#: the ``engine`` of a least-squares fit (fit.json ``fit.engine``)
ENGINE = "least squares"
#: the df of its t tests
DF_METHOD = "Satterthwaite df of a model without random effects: the residual df n - p (t exact under the linear model)"


def fixed_formula(spec: ModelSpec) -> str:
    """The lme4-style formula of the fixed part of ``spec`` alone (R ``lm()``'s formula).

    >>> from alliance.engines.spec import RandomTerm
    >>> fixed_formula(ModelSpec("m", "y", ("a", "b"), (RandomTerm("therapist"),)))
    'y ~ a + b'
    """
    return to_lme4_formula(spec).replace(" + " + " + ".join(lme4_random_terms(spec, False)), "")


def _reml_loglik(rss: float, n: int, p: int, X: np.ndarray) -> float:
    """REML log-likelihood of the linear model at sigma^2 = RSS / (n - p)."""
    sigma2 = rss / (n - p)
    _, logdet = np.linalg.slogdet(X.T @ X)
    return -0.5 * ((n - p) * math.log(2 * math.pi * sigma2) + (n - p) + logdet)


def _ml_loglik(rss: float, n: int) -> float:
    """ML log-likelihood of the linear model at sigma^2 = RSS / n."""
    return -0.5 * n * (math.log(2 * math.pi * rss / n) + 1.0)


def fit_least_squares(specified: ModelSpec, data: pd.DataFrame, fitted_spec: ModelSpec) -> FitResult:
    """Fit the fixed part of ``specified`` by least squares to the rows its mixed model uses.

    ``specified`` (with its random terms) chooses the rows: the complete cases of every column the
    mixed model uses, grouping columns included, so that the two fits share their rows.
    ``fitted_spec`` is the spec recorded in the result (the same fixed part, no random terms).
    """
    mf = model_frame(specified, data)
    X, y = mf.X, mf.y
    n, p = X.shape
    if n <= p:
        raise ValueError(f"{specified.name}: {n} rows for {p} fixed effects: no residual df for least squares")
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    rss = float(resid @ resid)
    sigma2 = rss / (n - p)
    vcov = sigma2 * np.linalg.inv(X.T @ X)
    fixed = fixed_table(mf.fe_names, beta, vcov, np.full(p, float(n - p)))
    loglik = _reml_loglik(rss, n, p, X) if specified.reml else _ml_loglik(rss, n)
    formula = fixed_formula(specified)
    fit_info = {
        **likelihood_info(fitted_spec, ENGINE, np.__version__, loglik, p + 1, n),
        "engine_version": f"numpy {np.__version__} lstsq",
        "n_dropped_missing": mf.n_dropped,
        "n_groups": {},
        "residual_variance": sigma2,
        "optimizer": "none (closed form)",
        "converged": True,
        "boundary": False,
        "engine_singular": False,
        "refitted": False,
        "optimum_disagreement": False,
        "exact_zero_fixed": bool(np.any(beta == 0.0)),
        "simplified": False,
        "simplification": "",
        "attempts": [],
        "warnings": [],
        "notes": [],
        "df_method": DF_METHOD,
        "se_method": "sigma^2 (X'X)^-1, sigma^2 = RSS / (n - p)",
        "formula_lme4": formula,
        "formula_lme4_fitted": formula,
        "formula_patsy": to_patsy_formula(specified),
    }
    fitted = pd.DataFrame(
        {"row": mf.df.index, "fitted_marginal": X @ beta, "fitted_conditional": X @ beta, "resid": resid}
    )
    result = finish_result(
        fitted_spec,
        fixed=fixed,
        vcov=pd.DataFrame(vcov, index=mf.fe_names, columns=mf.fe_names),
        variance_components=pd.DataFrame(
            [("Residual", "Residual", sigma2, math.sqrt(sigma2), math.nan)], columns=VC_COLUMNS
        ),
        random_effects=pd.DataFrame(columns=["group", "level", "term", "value", "cond_sd"]),
        fitted=fitted,
        fit_info=fit_info,
        flag_values={"exact_zero_fixed": fit_info["exact_zero_fixed"]},
    )
    # contrasts and joint tests: exact t and F on the residual df (alliance.engines.ddf)
    result.ddf = residual_df_data(p, n, DF_METHOD)
    return result
