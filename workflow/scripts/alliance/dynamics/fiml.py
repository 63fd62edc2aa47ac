"""Full-information maximum likelihood for a multivariate normal model with missing data.

The rows of the data matrix are grouped by missing-data pattern; each pattern g keeps only its
size n_g, its observed variables O_g, and the sample mean and (ML) covariance of those
variables. The log-likelihood of a mean vector ``mu`` and covariance ``Sigma`` is then, with
``d_g = mean_g - mu_O`` and ``W_g = cov_g + d_g d_g'``::

    logL = sum_g -n_g / 2 * (p_g log(2 pi) + log det Sigma_OO + tr(Sigma_OO^-1 W_g))

so every evaluation costs the same whatever the number of rows. Its derivatives with respect to
the moments are ``dlogL/dmu_O = n_g Sigma_OO^-1 d_g`` and, treating the entries of Sigma as
unconstrained, ``dlogL/dSigma_OO = n_g / 2 (Sigma_OO^-1 W_g Sigma_OO^-1 - Sigma_OO^-1)``. A
structural model passes its Jacobian (derivatives of mu and Sigma with respect to its free
parameters) to get the expected (Fisher) information and the casewise scores.

All patterns are processed at once: the inverse of each observed block ``Sigma_OO`` is embedded
in a p x p matrix ``P_g`` (zero rows and columns for the missing variables), so that sums over
patterns are array contractions rather than Python loops (data with gaps have hundreds of
patterns), and all blocks are inverted by one batched Cholesky factorisation.

Also here: the unrestricted (H1) model of lavaan's FIML fit measures, estimated by EM, and the
independence (baseline) model, whose FIML estimates are each variable's available-case mean and
ML variance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))
#: rows per block when computing casewise scores (bounds memory: block x p x p floats)
_SCORE_BLOCK = 8192


@dataclass(frozen=True)
class MissingData:
    """A data matrix with NaN for missing values, grouped by pattern (rows with no value dropped).

    Pattern arrays are embedded in the full p variables: ``means`` and ``covs`` are zero where a
    variable is missing in the pattern.
    """

    values: np.ndarray  # (n, p), the non-empty rows
    kept: np.ndarray  # indices of the non-empty rows in the input
    n_input: int  # rows of the input, empty ones included
    masks: np.ndarray  # (G, p) bool, observed variables of each pattern
    counts: np.ndarray  # (G,) rows per pattern
    means: np.ndarray  # (G, p) pattern means (0 where missing)
    covs: np.ndarray  # (G, p, p) pattern ML covariances (0 where missing)
    row_pattern: np.ndarray  # (n,) pattern index of each row

    @property
    def n(self) -> int:
        return int(self.values.shape[0])

    @property
    def p(self) -> int:
        return int(self.values.shape[1])

    @property
    def n_patterns(self) -> int:
        return int(self.counts.size)

    @property
    def n_dropped(self) -> int:
        """Rows of the input with no observed value (dropped)."""
        return self.n_input - self.n


def group_patterns(values: np.ndarray) -> MissingData:
    """Group the rows of ``values`` (NaN = missing) by missing-data pattern.

    Patterns come in a deterministic order (of the integer whose bit j says "variable j observed").
    Rows with no observed value carry no information and are dropped (as lavaan does).
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError("values must be a 2-d array")
    observed = ~np.isnan(values)
    kept = np.flatnonzero(observed.any(axis=1))
    data, observed = values[kept], observed[kept]
    if data.shape[0] == 0:
        raise ValueError("no row has an observed value")
    p = observed.shape[1]
    if p <= 62:  # one integer code per row (bit j = variable j observed): a fast 1-d unique
        codes, inverse = np.unique(observed @ (np.int64(1) << np.arange(p, dtype=np.int64)), return_inverse=True)
        masks = ((codes[:, None] >> np.arange(p, dtype=np.int64)) & 1).astype(bool)
    else:
        masks, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    g_count = masks.shape[0]
    counts = np.bincount(inverse, minlength=g_count)
    filled = np.where(observed, data, 0.0)
    means = np.zeros((g_count, p))
    np.add.at(means, inverse, filled)
    means /= counts[:, None]
    centred = np.where(observed, filled - means[inverse], 0.0)
    covs = np.zeros((g_count, p, p))
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    for g in range(g_count):  # once per fit; one (n_g x p)' (n_g x p) product per pattern
        block = centred[order[bounds[g] : bounds[g + 1]]]
        covs[g] = block.T @ block / counts[g]
    return MissingData(
        values=data,
        kept=kept,
        n_input=int(values.shape[0]),
        masks=masks,
        counts=counts,
        means=means,
        covs=covs,
        row_pattern=inverse,
    )


def block_inverses(md: MissingData, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(P (G, p, p), log det (G,)): embedded inverses of every pattern's Sigma_OO; None if one is not PD.

    One batched Cholesky for all patterns: the missing rows and columns of each pattern's copy
    of Sigma are replaced by those of the identity, which leaves the determinant and the
    inverse of the observed block unchanged (and exactly zero outside it).
    """
    m = md.masks.astype(float)
    block = sigma[None, :, :] * (m[:, :, None] * m[:, None, :])
    diag = np.arange(md.p)
    block[:, diag, diag] += 1.0 - m
    try:
        chol = np.linalg.cholesky(block)
    except np.linalg.LinAlgError:
        return None
    logdet = 2.0 * np.log(chol[:, diag, diag]).sum(axis=1)
    inv_chol = np.linalg.inv(chol)
    prec = np.swapaxes(inv_chol, 1, 2) @ inv_chol
    prec[:, diag, diag] -= 1.0 - m
    return prec, logdet


def _residual_moments(md: MissingData, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d (G, p), W (G, p, p)): pattern mean residuals and cov + d d', zero where missing."""
    d = np.where(md.masks, md.means - mu, 0.0)
    return d, md.covs + d[:, :, None] * d[:, None, :]


def _loglik_from(md, prec, logdet, w) -> float:
    quad = np.sum(prec * w, axis=(1, 2))  # tr(P W), both symmetric
    return float(-0.5 * np.sum(md.counts * (md.masks.sum(axis=1) * LOG_2PI + logdet + quad)))


def loglik(md: MissingData, mu: np.ndarray, sigma: np.ndarray) -> float:
    """FIML log-likelihood (with the 2 pi constant); -inf when a needed block of Sigma is not PD."""
    inv = block_inverses(md, sigma)
    if inv is None:
        return -np.inf
    _, w = _residual_moments(md, mu)
    return _loglik_from(md, inv[0], inv[1], w)


def moment_gradient(md: MissingData, mu: np.ndarray, sigma: np.ndarray) -> tuple[float, np.ndarray, np.ndarray] | None:
    """(logL, dlogL/dmu, dlogL/dSigma) with Sigma's entries treated as unconstrained (symmetric G).

    A parameter theta_k then has ``dlogL/dtheta_k = g_mu . dmu/dtheta_k + sum(G * dSigma/dtheta_k)``.
    Returns None when a needed block of Sigma is not positive definite.
    """
    inv = block_inverses(md, sigma)
    if inv is None:
        return None
    prec, logdet = inv
    d, w = _residual_moments(md, mu)
    n = md.counts.astype(float)
    g_mu = n @ (prec @ d[:, :, None])[:, :, 0]
    g_sigma = 0.5 * np.tensordot(n, prec @ w @ prec - prec, axes=1)
    return _loglik_from(md, prec, logdet, w), g_mu, (g_sigma + g_sigma.T) / 2.0


def fisher_information(md: MissingData, sigma: np.ndarray, d_mu: np.ndarray, d_sigma: np.ndarray) -> np.ndarray:
    """Expected information of the free parameters (sum over rows; not divided by N).

    ``d_mu`` is (q, p) and ``d_sigma`` (q, p, p): derivatives of mu and Sigma with respect to
    the q free parameters. Per pattern ``n_g (Dmu P Dmu' + 1/2 tr(P dS_k P dS_l))``; the second
    term is contracted through ``F = sum_g n_g P_g (x) P_g`` (one p^2 x p^2 matrix product).
    """
    inv = block_inverses(md, sigma)
    if inv is None:
        raise np.linalg.LinAlgError("implied covariance block not positive definite")
    prec = inv[0]
    n = md.counts.astype(float)
    p, q = md.p, d_mu.shape[0]
    flat = prec.reshape(-1, p * p)
    f = (flat.T * n) @ flat  # F[(i, j), (k, l)] = sum_g n_g P_ij P_kl
    # tr(P A P B) = sum P_ij A_jk P_kl B_li: reorder F to [(j, k), (l, i)]
    f_jk_li = f.reshape(p, p, p, p).transpose(1, 2, 3, 0).reshape(p * p, p * p)
    ds = d_sigma.reshape(q, p * p)
    info = 0.5 * ds @ f_jk_li @ ds.T + d_mu @ np.tensordot(n, prec, axes=1) @ d_mu.T
    return (info + info.T) / 2.0


def casewise_scores(
    md: MissingData, mu: np.ndarray, sigma: np.ndarray, d_mu: np.ndarray, d_sigma: np.ndarray
) -> np.ndarray:
    """(n, q) matrix of each row's derivative of its log-likelihood with respect to the free parameters.

    For a row with residual ``e`` (zero where missing) and ``a = P e``:
    ``score_k = dmu_k . a + 1/2 (a' dS_k a - tr(P dS_k))``. The rows sum to the gradient.
    """
    inv = block_inverses(md, sigma)
    if inv is None:
        raise np.linalg.LinAlgError("implied covariance block not positive definite")
    prec = inv[0]
    q = d_mu.shape[0]
    q_flat = d_sigma.reshape(q, -1)
    trace = prec.reshape(md.n_patterns, -1) @ q_flat.T  # (G, q): tr(P dS_k), both symmetric
    resid = np.where(np.isnan(md.values), 0.0, md.values - mu)
    scores = np.empty((md.n, q))
    for start in range(0, md.n, _SCORE_BLOCK):
        rows = slice(start, start + _SCORE_BLOCK)
        pat = md.row_pattern[rows]
        a = (prec[pat] @ resid[rows][:, :, None])[:, :, 0]
        quad = (a[:, :, None] * a[:, None, :]).reshape(a.shape[0], -1) @ q_flat.T
        scores[rows] = a @ d_mu.T + 0.5 * (quad - trace[pat])
    return scores


@dataclass(frozen=True)
class H1Fit:
    """Unrestricted (saturated) FIML estimates of the mean vector and covariance matrix."""

    mean: np.ndarray
    cov: np.ndarray
    loglik: float
    iterations: int
    converged: bool


def estimate_h1(md: MissingData, tol: float = 1e-11, max_iter: int = 20000) -> H1Fit:
    """Saturated mean and covariance by EM (pattern sufficient statistics), started as lavaan does.

    Start: available-case means and ML variances, zero covariances. Stops when the largest
    absolute change of a mean or covariance element is below ``tol`` (lavaan stops at 1e-5).
    For complete data this is the sample mean and ML covariance after one step. With the
    embedded inverses ``P_g``, ``E[y | y_O] = mu + Sigma P_g (y - mu)`` and
    ``Cov[y | y_O] = Sigma - Sigma P_g Sigma`` for every pattern at once.
    """
    values = md.values
    n, p = values.shape
    mu = np.nanmean(values, axis=0)
    var0 = np.nanmean((values - mu) ** 2, axis=0)
    var0[~np.isfinite(var0) | (var0 == 0)] = 1.0
    sigma = np.diag(var0)
    counts = md.counts.astype(float)
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        inv = block_inverses(md, sigma)
        if inv is None:
            break
        prec = inv[0]
        d = np.where(md.masks, md.means - mu, 0.0)
        sp = sigma @ prec  # (G, p, p): Sigma P_g
        cond_mean = mu + (sp @ d[:, :, None])[:, :, 0]  # E[y | y_O] at the pattern mean
        t1 = counts @ cond_mean
        within = np.tensordot(counts, sp @ md.covs @ np.swapaxes(sp, 1, 2), axes=1)  # sum n Sigma P S P Sigma
        t2 = (
            counts.sum() * sigma
            - np.tensordot(counts, sp @ sigma, axes=1)
            + (cond_mean.T * counts) @ cond_mean
            + within
        )
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
