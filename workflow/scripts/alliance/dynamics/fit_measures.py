"""Fit measures of a FIML structural equation model, as lavaan 0.6-14's ``fitMeasures()`` reports them.

* chi-square = 2 (logL_H1 - logL), H1 the unrestricted mean and covariance (EM,
  :func:`alliance.dynamics.fiml.estimate_h1`); df = p (p + 3) / 2 - npar;
* baseline: the independence model (free means and variances), chi-square against H1 and df
  p (p - 1) / 2; CFI = 1 - max(X2 - df, 0) / max(X2 - df, X2b - dfb, 0); TLI = 1 -
  ((X2 - df) dfb) / ((X2b - dfb) df);
* RMSEA = sqrt(max(X2 / (N df) - 1 / N, 0)) with N (not N - 1: lavaan's likelihood = "normal"),
  its 90 % CI by inverting the noncentral chi-square, and the p-value of close fit (0.05);
* SRMR: lavaan's default ``srmr`` for continuous data with a mean structure, Bentler's version
  with the means: residuals of the H1 means and covariances from the implied ones, scaled by
  the H1 standard deviations, root mean square over the p means and p (p + 1) / 2 covariances;
* logL, AIC = -2 logL + 2 npar, BIC = -2 logL + npar log N, sample-size adjusted BIC with
  N* = (N + 2) / 24.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats

from . import fiml


def rmsea_ci(x2: float, df: int, n: int, level: float = 0.90) -> tuple[float, float]:
    """lavaan's RMSEA confidence interval (noncentral chi-square inversion)."""
    if df < 1 or not np.isfinite(x2):
        return 0.0, 0.0

    def cdf(lam):
        return stats.chi2.cdf(x2, df) if lam <= 0 else stats.ncx2.cdf(x2, df, lam)

    upper_p, lower_p = 1 - (1 - level) / 2, (1 - level) / 2
    if cdf(0.0) - upper_p < 0:
        lo = 0.0
    else:
        lam = optimize.brentq(lambda v: cdf(v) - upper_p, 0.0, x2, xtol=1e-12)
        lo = float(np.sqrt(lam / (n * df)))
    top = max(n, 4 * x2)
    if cdf(top) - lower_p > 0 or cdf(0.0) - lower_p < 0:
        hi = 0.0
    else:
        lam = optimize.brentq(lambda v: cdf(v) - lower_p, 0.0, top, xtol=1e-12)
        hi = float(np.sqrt(lam / (n * df)))
    return lo, hi


def srmr_bentler(h1: fiml.H1Fit, mu: np.ndarray, sigma: np.ndarray) -> float:
    """lavaan's default srmr (Bentler, with means): residuals scaled by the H1 standard deviations."""
    sd = np.sqrt(np.diag(h1.cov))
    cov_res = (h1.cov - sigma) / np.outer(sd, sd)
    mean_res = (h1.mean - mu) / sd
    iu = np.triu_indices(sigma.shape[0])
    stats_ = np.concatenate([mean_res, cov_res[iu]])
    return float(np.sqrt(np.mean(stats_**2)))


def fit_measures(md: fiml.MissingData, npar: int, ll: float, mu: np.ndarray, sigma: np.ndarray, h1: fiml.H1Fit) -> dict:
    """lavaan's fitMeasures() under FIML (names as lavaan prints them)."""
    n, p, q = md.n, md.p, npar
    df = p * (p + 3) // 2 - q
    x2 = max(0.0, 2.0 * (h1.loglik - ll))
    ll_base = fiml.baseline_loglik(md)
    x2b, dfb = max(0.0, 2.0 * (h1.loglik - ll_base)), p * (p - 1) // 2
    t1, t2 = max(x2 - df, 0.0), max(x2 - df, x2b - dfb, 0.0)
    cfi = 1.0 if np.isclose(t1, 0) and np.isclose(t2, 0) else 1.0 - t1 / t2
    tli = 1.0 - (x2 - df) * dfb / ((x2b - dfb) * df) if df > 0 and x2b != dfb else 1.0
    rmsea = float(np.sqrt(max(x2 / n / df - 1.0 / n, 0.0))) if df > 0 else 0.0
    lo, hi = rmsea_ci(x2, df, n)
    return {
        "npar": q,
        "ntotal": n,
        "chisq": x2,
        "df": df,
        "pvalue": float(stats.chi2.sf(x2, df)) if df > 0 else np.nan,
        "baseline.chisq": x2b,
        "baseline.df": dfb,
        "baseline.pvalue": float(stats.chi2.sf(x2b, dfb)),
        "cfi": cfi,
        "tli": tli,
        "logl": ll,
        "unrestricted.logl": h1.loglik,
        "aic": -2 * ll + 2 * q,
        "bic": float(-2 * ll + q * np.log(n)),
        "bic2": float(-2 * ll + q * np.log((n + 2) / 24)),
        "rmsea": rmsea,
        "rmsea.ci.lower": lo,
        "rmsea.ci.upper": hi,
        "rmsea.ci.level": 0.90,
        "rmsea.pvalue": float(stats.ncx2.sf(x2, df, n * df * 0.05**2)) if df > 0 else np.nan,
        "srmr": srmr_bentler(h1, mu, sigma),
    }
