"""Full-information maximum likelihood for a multivariate normal model with missing data.

The rows of the data matrix are grouped by missing-data pattern; each pattern keeps only its
size, the indices of its observed variables, and the sample mean and (ML) covariance of those
variables. The log-likelihood of a mean vector ``mu`` and covariance ``Sigma`` is then, with
``d_g = mean_g - mu_O`` and ``W_g = cov_g + d_g d_g'``::

    logL = sum_g -n_g / 2 * (p_g log(2 pi) + log det Sigma_OO + tr(Sigma_OO^-1 W_g))

so every evaluation costs the same whatever the number of rows. Its derivatives with respect to
the moments are ``dlogL/dmu_O = n_g Sigma_OO^-1 d_g`` and, treating the entries of Sigma as
unconstrained, ``dlogL/dSigma_OO = n_g / 2 (Sigma_OO^-1 W_g Sigma_OO^-1 - Sigma_OO^-1)``. A
structural model passes its Jacobian (derivatives of mu and Sigma with respect to its free
parameters) to get the gradient, the expected (Fisher) information and the casewise scores.

Also here: the unrestricted (H1) model of lavaan's FIML fit measures, estimated by EM, and the
independence (baseline) model, whose FIML estimates are each variable's available-case mean and
ML variance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class Pattern:
    """One missing-data pattern: observed columns, its rows and their sufficient statistics."""

    observed: np.ndarray  # indices of the observed columns
    rows: np.ndarray  # row indices (into MissingData.values)
    mean: np.ndarray  # sample mean of the observed columns
    cov: np.ndarray  # ML (divide-by-n) sample covariance of the observed columns

    @property
    def n(self) -> int:
        return int(self.rows.size)


@dataclass(frozen=True)
class MissingData:
    """A data matrix with NaN for missing values, grouped by pattern (rows with no value dropped)."""

    values: np.ndarray  # (n, p), the non-empty rows
    kept: np.ndarray  # indices of the non-empty rows in the input
    patterns: tuple[Pattern, ...]
    n_input: int  # rows of the input, empty ones included

    @property
    def n(self) -> int:
        return int(self.values.shape[0])

    @property
    def p(self) -> int:
        return int(self.values.shape[1])

    @property
    def n_dropped(self) -> int:
        """Rows of the input with no observed value (dropped)."""
        return self.n_input - self.n


def group_patterns(values: np.ndarray) -> MissingData:
    """Group the rows of ``values`` (NaN = missing) by missing-data pattern.

    Patterns come in the deterministic order of :func:`numpy.unique` on the boolean masks.
    Rows with no observed value carry no information and are dropped (as lavaan does).
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError("values must be a 2-d array")
    mask = ~np.isnan(values)
    kept = np.flatnonzero(mask.any(axis=1))
    data = values[kept]
    mask = mask[kept]
    if data.shape[0] == 0:
        raise ValueError("no row has an observed value")
    masks, inverse = np.unique(mask, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    patterns = []
    for g in range(masks.shape[0]):
        rows = np.flatnonzero(inverse == g)
        obs = np.flatnonzero(masks[g])
        block = data[np.ix_(rows, obs)]
        mean = block.mean(axis=0)
        centred = block - mean
        patterns.append(Pattern(observed=obs, rows=rows, mean=mean, cov=centred.T @ centred / rows.size))
    return MissingData(values=data, kept=kept, patterns=tuple(patterns), n_input=int(values.shape[0]))


def _chol_inverse(sigma: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(inverse, log-determinant) of a symmetric matrix, or None if it is not positive definite."""
    try:
        chol = np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:
        return None
    inv_chol = np.linalg.solve(chol, np.eye(sigma.shape[0]))
    return inv_chol.T @ inv_chol, 2.0 * float(np.sum(np.log(np.diag(chol))))


def loglik(md: MissingData, mu: np.ndarray, sigma: np.ndarray) -> float:
    """FIML log-likelihood (with the 2 pi constant); -inf when a needed block of Sigma is not PD."""
    total = 0.0
    for pat in md.patterns:
        o = pat.observed
        inv = _chol_inverse(sigma[np.ix_(o, o)])
        if inv is None:
            return -np.inf
        prec, logdet = inv
        d = pat.mean - mu[o]
        quad = float(np.sum(prec * pat.cov) + d @ prec @ d)
        total -= 0.5 * pat.n * (o.size * LOG_2PI + logdet + quad)
    return total


def moment_gradient(md: MissingData, mu: np.ndarray, sigma: np.ndarray) -> tuple[float, np.ndarray, np.ndarray] | None:
    """(logL, dlogL/dmu, dlogL/dSigma) with Sigma's entries treated as unconstrained (symmetric G).

    A parameter theta_k then has ``dlogL/dtheta_k = g_mu . dmu/dtheta_k + sum(G * dSigma/dtheta_k)``.
    Returns None when a needed block of Sigma is not positive definite.
    """
    p = md.p
    g_mu = np.zeros(p)
    g_sigma = np.zeros((p, p))
    total = 0.0
    for pat in md.patterns:
        o = pat.observed
        inv = _chol_inverse(sigma[np.ix_(o, o)])
        if inv is None:
            return None
        prec, logdet = inv
        d = pat.mean - mu[o]
        pd_ = prec @ d
        w = pat.cov + np.outer(d, d)
        total -= 0.5 * pat.n * (o.size * LOG_2PI + logdet + float(np.sum(prec * w)))
        g_mu[o] += pat.n * pd_
        g_sigma[np.ix_(o, o)] += 0.5 * pat.n * (prec @ w @ prec - prec)
    return total, g_mu, g_sigma


def fisher_information(md: MissingData, sigma: np.ndarray, d_mu: np.ndarray, d_sigma: np.ndarray) -> np.ndarray:
    """Expected information of the free parameters (sum over rows; not divided by N).

    ``d_mu`` is (q, p) and ``d_sigma`` (q, p, p): derivatives of mu and Sigma with respect to
    the q free parameters. Per pattern: ``n_g (Dmu_O P Dmu_O' + 1/2 tr(P dS_k P dS_l))``.
    """
    q = d_mu.shape[0]
    info = np.zeros((q, q))
    for pat in md.patterns:
        o = pat.observed
        inv = _chol_inverse(sigma[np.ix_(o, o)])
        if inv is None:
            raise np.linalg.LinAlgError("implied covariance block not positive definite")
        prec = inv[0]
        dm = d_mu[:, o]
        ds = d_sigma[:, o][:, :, o]
        x = np.einsum("ab,kbc->kac", prec, ds)
        info += pat.n * (dm @ prec @ dm.T + 0.5 * np.einsum("kab,lba->kl", x, x))
    return (info + info.T) / 2.0


def casewise_scores(md: MissingData, mu: np.ndarray, sigma: np.ndarray, d_mu: np.ndarray, d_sigma: np.ndarray) -> np.ndarray:
    """(n, q) matrix of each row's derivative of its log-likelihood with respect to the free parameters.

    For a row with observed set O, residual ``e = y_O - mu_O`` and ``a = Sigma_OO^-1 e``:
    ``score_k = dmu_k,O . a + 1/2 (a' dS_k,OO a - tr(Sigma_OO^-1 dS_k,OO))``. The rows sum to
    the gradient of the FIML log-likelihood.
    """
    q = d_mu.shape[0]
    scores = np.zeros((md.n, q))
    for pat in md.patterns:
        o = pat.observed
        inv = _chol_inverse(sigma[np.ix_(o, o)])
        if inv is None:
            raise np.linalg.LinAlgError("implied covariance block not positive definite")
        prec = inv[0]
        dm = d_mu[:, o]
        ds = d_sigma[:, o][:, :, o]
        a = (md.values[np.ix_(pat.rows, o)] - mu[o]) @ prec  # (n_g, p_g)
        iu, ju = np.triu_indices(o.size)
        weight = np.where(iu == ju, 1.0, 2.0)
        quad_features = a[:, iu] * a[:, ju] * weight  # a_i a_j for the upper triangle, off-diagonal twice
        ds_upper = ds[:, iu, ju]  # (q, n_pairs)
        trace = np.einsum("ab,kba->k", prec, ds)
        scores[pat.rows] = a @ dm.T + 0.5 * (quad_features @ ds_upper.T - trace[None, :])
    return scores


@dataclass(frozen=True)
class H1Fit:
    """Unrestricted (saturated) FIML estimates of the mean vector and covariance matrix."""

    mean: np.ndarray
    cov: np.ndarray
    loglik: float
    iterations: int
    converged: bool


def estimate_h1(md: MissingData, tol: float = 1e-11, max_iter: int = 10000) -> H1Fit:
    """Saturated mean and covariance by EM (pattern sufficient statistics), started as lavaan does.

    Start: available-case means and ML variances, zero covariances. Stops when the largest
    absolute change of a mean or covariance element is below ``tol`` (lavaan stops at 1e-5).
    For complete data this is the sample mean and ML covariance after one step.
    """
    values = md.values
    n, p = values.shape
    mu = np.nanmean(values, axis=0)
    var0 = np.nanmean((values - mu) ** 2, axis=0)
    var0[~np.isfinite(var0) | (var0 == 0)] = 1.0
    sigma = np.diag(var0)
    # per-pattern sums of the observed block: s1 = sum y_O, s2 = sum y_O y_O'
    sums = [(pat.n * pat.mean, pat.n * (pat.cov + np.outer(pat.mean, pat.mean))) for pat in md.patterns]
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        t1 = np.zeros(p)
        t2 = np.zeros((p, p))
        for pat, (s1, s2) in zip(md.patterns, sums):
            o = pat.observed
            m = np.setdiff1d(np.arange(p), o)
            if m.size == 0:
                t1 += s1
                t2 += s2
                continue
            coef = np.linalg.solve(sigma[np.ix_(o, o)], sigma[np.ix_(o, m)]).T  # (m, o): E[y_m|y_o] = mu_m + coef (y_o - mu_o)
            resid_cov = sigma[np.ix_(m, m)] - coef @ sigma[np.ix_(o, m)]
            shift = mu[m] - coef @ mu[o]  # E[y_m | y_o] = shift + coef y_o
            e1m = pat.n * shift + coef @ s1
            t1[o] += s1
            t1[m] += e1m
            t2[np.ix_(o, o)] += s2
            cross = np.outer(shift, s1) + coef @ s2  # sum E[y_m] y_o'
            t2[np.ix_(m, o)] += cross
            t2[np.ix_(o, m)] += cross.T
            t2[np.ix_(m, m)] += (pat.n * (resid_cov + np.outer(shift, shift)) + np.outer(shift, s1 @ coef.T)
                                 + np.outer(coef @ s1, shift) + coef @ s2 @ coef.T)
        new_mu = t1 / n
        new_sigma = t2 / n - np.outer(new_mu, new_mu)
        new_sigma = (new_sigma + new_sigma.T) / 2.0
        delta = max(np.max(np.abs(new_mu - mu)), np.max(np.abs(new_sigma - sigma)))
        mu, sigma = new_mu, new_sigma
        if delta < tol:
            converged = True
            break
    return H1Fit(mean=mu, cov=sigma, loglik=loglik(md, mu, sigma), iterations=iteration, converged=converged)


def baseline_loglik(md: MissingData) -> float:
    """FIML log-likelihood of the independence model (free means and variances, zero covariances).

    The likelihood factorises over variables, so the estimates are each variable's
    available-case mean and ML variance.
    """
    values = md.values
    mu = np.nanmean(values, axis=0)
    var = np.nanmean((values - mu) ** 2, axis=0)
    return loglik(md, mu, np.diag(var))
