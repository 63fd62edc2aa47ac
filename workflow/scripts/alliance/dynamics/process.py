"""Simulate a bivariate within-person process (alliance x, symptoms y) over sessions, with known truth.

Data-generating model (all quantities in within-person standard units: the stationary
within-person SD of each variable is 1)::

    x[i,t] = mu_x[t] + kappa_x[i] + wx[i,t]          mu_x[t] = mean_x + trend_x * (t - 1)
    y[i,t] = mu_y[t] + kappa_y[i] + wy[i,t]          mu_y[t] = mean_y + trend_y * (t - 1)

    wx[i,t] = a * wx[i,t-1] + b * wy[i,t-1] + u[i,t]     (a: carry-over of x, b: y -> x)
    wy[i,t] = d * wy[i,t-1] + c * wx[i,t-1] + v[i,t]     (d: carry-over of y, c: x -> y)

    (kappa_x, kappa_y) ~ N(0, Phi)   stable person-level intercepts, correlated
    (u, v)             ~ N(0, Q)     within-wave innovations, correlated
    (wx[i,1], wy[i,1]) ~ N(0, S)     S = B S B' + Q, the stationary covariance of the VAR(1)

With ``B = [[a, b], [c, d]]`` the innovation variances are solved for so that ``diag(S) = 1``
given the innovation correlation; the paths are then standardised within-person effects (as in
Falkenström, Solomonov & Rubel 2022, JCCP 90(5):446-458: cross-lag -0.20, carry-over 0.40).
The long-run (cumulative) effect of a lasting unit change is ``(I - B)^-1`` (see
:func:`long_run_effects`).

Optional monotone MAR dropout: from session 2 on, a patient still in treatment leaves before
session ``t`` (and misses every later session) with probability
``expit(intercept + slope_x * x[t-1] + slope_y * y[t-1])``, a function of the observed scores
of the previous session only, so the missingness is missing at random.

The person intercepts can be supplied by the caller (``intercepts=``), e.g. drawn with a
therapist component by the project's trial simulator; the within-person process is then
simulated around them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import brentq

__all__ = [
    "DropoutParams",
    "ProcessParams",
    "long_run_effects",
    "simulate_process",
    "stationary_covariance",
]


@dataclass(frozen=True)
class ProcessParams:
    """Known truth of the bivariate within-person process (within-person standard units)."""

    #: number of sessions (waves) simulated per patient
    n_sessions: int = 7
    #: carry-over (autoregression) of alliance, wx[t-1] -> wx[t]
    carryover_x: float = 0.40
    #: carry-over (autoregression) of symptoms, wy[t-1] -> wy[t]
    carryover_y: float = 0.40
    #: cross-lag alliance -> next symptoms, wx[t-1] -> wy[t]
    cross_x_to_y: float = -0.20
    #: cross-lag symptoms -> next alliance, wy[t-1] -> wx[t]
    cross_y_to_x: float = -0.10
    #: correlation of the within-wave innovations u[t], v[t]
    innovation_corr: float = -0.20
    #: SD of the stable alliance intercept kappa_x, in within-person SD units
    intercept_sd_x: float = 1.0
    #: SD of the stable symptom intercept kappa_y, in within-person SD units
    intercept_sd_y: float = 1.0
    #: correlation of kappa_x and kappa_y
    intercept_corr: float = -0.30
    #: grand mean of alliance at session 1
    mean_x: float = 0.0
    #: grand mean of symptoms at session 1
    mean_y: float = 0.0
    #: linear change of the alliance mean per session
    trend_x: float = 0.0
    #: linear change of the symptom mean per session
    trend_y: float = 0.0

    @property
    def paths(self) -> np.ndarray:
        """B = [[a, b], [c, d]]: rows are the outcomes (x[t], y[t]), columns the predictors (x[t-1], y[t-1])."""
        return np.array([[self.carryover_x, self.cross_y_to_x], [self.cross_x_to_y, self.carryover_y]])

    @property
    def intercept_cov(self) -> np.ndarray:
        """Covariance matrix Phi of (kappa_x, kappa_y)."""
        sx, sy, r = self.intercept_sd_x, self.intercept_sd_y, self.intercept_corr
        return np.array([[sx * sx, r * sx * sy], [r * sx * sy, sy * sy]])

    @property
    def intercept_factor(self) -> np.ndarray:
        """Lower-triangular F with F F' = Phi (valid also when an intercept SD is 0)."""
        sx, sy, r = self.intercept_sd_x, self.intercept_sd_y, self.intercept_corr
        if sx < 0 or sy < 0 or not -1.0 <= r <= 1.0:
            raise ValueError("intercept SDs must be >= 0 and intercept_corr in [-1, 1]")
        return np.array([[sx, 0.0], [r * sy, sy * np.sqrt(1.0 - r * r)]])


@dataclass(frozen=True)
class DropoutParams:
    """Monotone MAR dropout: logit P(leave before session t | still in) = intercept + slopes . scores[t-1]."""

    #: log-odds of leaving before a session when both previous scores are 0
    intercept: float = -2.5
    #: change in log-odds per unit of the previous session's observed alliance score
    slope_x: float = -0.4
    #: change in log-odds per unit of the previous session's observed symptom score
    slope_y: float = 0.4
    #: first session that can be missed (sessions before it are always observed); >= 2
    first_session: int = 2


def spectral_radius(paths: np.ndarray) -> float:
    """Largest absolute eigenvalue of the 2x2 path matrix B."""
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(paths, dtype=float)))))


def stationary_covariance(paths: np.ndarray, innovation_cov: np.ndarray) -> np.ndarray:
    """S solving S = B S B' + Q (the stationary covariance of w[t] = B w[t-1] + e[t], cov(e) = Q)."""
    paths = np.asarray(paths, dtype=float)
    if spectral_radius(paths) >= 1.0:
        raise ValueError(f"the path matrix is not stationary (spectral radius {spectral_radius(paths):.4f} >= 1)")
    k = paths.shape[0]
    vec = np.linalg.solve(np.eye(k * k) - np.kron(paths, paths), np.asarray(innovation_cov, dtype=float).reshape(-1))
    out = vec.reshape(k, k)
    return (out + out.T) / 2.0


def long_run_effects(paths: np.ndarray) -> np.ndarray:
    """(I - B)^-1: element [j, k] is the cumulative (long-run) change in variable j per lasting unit change of k.

    Summing the lagged effects over all future sessions, a unit shift of the within-person
    innovation of variable k that is sustained indefinitely moves the within-person level of
    j by ``(I - B)^-1[j, k]`` once the process has settled (B stationary). Off-diagonal
    elements are the long-run cross effects; ``[1, 0]`` is alliance -> symptoms.
    """
    paths = np.asarray(paths, dtype=float)
    return np.linalg.inv(np.eye(paths.shape[0]) - paths)


def _innovation_covariance(paths: np.ndarray, corr: float) -> np.ndarray:
    """Q with correlation ``corr`` and variances chosen so that the stationary variances are 1."""
    if not -1.0 < corr < 1.0:
        raise ValueError(f"innovation_corr must lie in (-1, 1), got {corr}")

    def stationary(ratio: float) -> np.ndarray:  # S for innovation SDs (1, ratio)
        q = np.array([[1.0, corr * ratio], [corr * ratio, ratio * ratio]])
        return stationary_covariance(paths, q)

    def gap(log_ratio: float) -> float:
        s = stationary(np.exp(log_ratio))
        return float(np.log(s[0, 0]) - np.log(s[1, 1]))

    lo, hi = -20.0, 20.0
    if gap(lo) * gap(hi) > 0:
        raise ValueError("cannot scale the innovations to unit stationary variances for these paths")
    ratio = float(np.exp(brentq(gap, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)))
    s = stationary(ratio)
    scale = 1.0 / s[0, 0]
    return scale * np.array([[1.0, corr * ratio], [corr * ratio, ratio * ratio]])


def _truth(params: ProcessParams, q: np.ndarray, s: np.ndarray, intercepts_supplied: bool) -> dict:
    """Plain-dict truth, including the RI-CLPM parameters under the names of alliance.dynamics.riclpm."""
    b = params.paths
    lr = long_run_effects(b)
    phi = params.intercept_cov
    sessions = np.arange(1, params.n_sessions + 1)
    truth: dict = {
        "params": asdict(params),
        "paths": b.tolist(),
        "innovation_cov": q.tolist(),
        "within_cov": s.tolist(),
        "spectral_radius": spectral_radius(b),
        "long_run": {
            "x->x": float(lr[0, 0]),
            "y->x": float(lr[0, 1]),
            "x->y": float(lr[1, 0]),
            "y->y": float(lr[1, 1]),
        },
        "means_x": (params.mean_x + params.trend_x * (sessions - 1)).tolist(),
        "means_y": (params.mean_y + params.trend_y * (sessions - 1)).tolist(),
        "intercepts_supplied": intercepts_supplied,
    }
    riclpm = {
        "alpha": b[0, 0],
        "beta": b[0, 1],
        "gamma": b[1, 0],
        "delta": b[1, 1],
        "var_wx1": s[0, 0],
        "var_wy1": s[1, 1],
        "cov_wx1_wy1": s[0, 1],
    }
    for t in range(2, params.n_sessions + 1):
        riclpm.update({f"var_u{t}": q[0, 0], f"var_v{t}": q[1, 1], f"cov_u{t}_v{t}": q[0, 1]})
    if not intercepts_supplied:
        riclpm.update({"var_RIx": phi[0, 0], "var_RIy": phi[1, 1], "cov_RIx_RIy": phi[0, 1]})
    for t in sessions:
        riclpm[f"mean_x{t}"] = truth["means_x"][t - 1]
        riclpm[f"mean_y{t}"] = truth["means_y"][t - 1]
    truth["riclpm"] = {k: float(v) for k, v in riclpm.items()}
    return truth


def _draw_dropout(x: np.ndarray, y: np.ndarray, dropout: DropoutParams, rng: np.random.Generator) -> np.ndarray:
    """Boolean (n, K) mask of observed sessions under monotone MAR dropout."""
    n, k = x.shape
    if dropout.first_session < 2:
        raise ValueError("dropout.first_session must be >= 2 (session 1 is always observed)")
    uniforms = rng.random((n, k))  # one draw per patient and session, used or not (stable stream)
    observed = np.ones((n, k), dtype=bool)
    for t in range(dropout.first_session - 1, k):  # 0-based session index
        logit = dropout.intercept + dropout.slope_x * x[:, t - 1] + dropout.slope_y * y[:, t - 1]
        leave = uniforms[:, t] < 1.0 / (1.0 + np.exp(-logit))
        observed[:, t] = observed[:, t - 1] & ~leave
    return observed


def _check_size(n_patients: int | None, intercepts: np.ndarray | None) -> int:
    """Number of patients, from ``n_patients`` and/or the shape of the supplied intercepts."""
    if intercepts is None:
        if n_patients is None or n_patients < 1:
            raise ValueError("n_patients must be a positive integer when intercepts are not supplied")
        return int(n_patients)
    intercepts = np.asarray(intercepts, dtype=float)
    if intercepts.ndim != 2 or intercepts.shape[1] != 2:
        raise ValueError("intercepts must have shape (n_patients, 2)")
    if n_patients is not None and n_patients != intercepts.shape[0]:
        raise ValueError(f"n_patients={n_patients} but intercepts has {intercepts.shape[0]} rows")
    return int(intercepts.shape[0])


def simulate_process(
    params: ProcessParams,
    n_patients: int | None,
    rng: np.random.Generator,
    *,
    intercepts: np.ndarray | None = None,
    dropout: DropoutParams | None = None,
    patient_ids: np.ndarray | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Simulate the process for ``n_patients`` patients.

    Parameters
    ----------
    params
        The known truth (:class:`ProcessParams`).
    n_patients
        Number of patients; may be ``None`` when ``intercepts`` is given.
    rng
        The random generator (explicit seed: ``np.random.default_rng(seed)``). Draw order:
        intercepts (unless supplied), wave-1 within scores, innovations, dropout uniforms.
    intercepts
        Optional pre-drawn person intercepts, shape ``(n_patients, 2)`` (kappa_x, kappa_y), in
        within-person SD units; e.g. a patient plus a therapist component. ``params``'
        intercept SDs and correlation are then ignored (and the truth reports no RI-CLPM
        intercept variances).
    dropout
        Optional monotone MAR dropout (:class:`DropoutParams`); sessions after dropout have no row.
    patient_ids
        Optional patient labels (default ``1..n``).

    Returns
    -------
    data : DataFrame
        One row per patient and attended session: ``patient``, ``session`` (1-based),
        ``alliance_score``, ``symptom_score``.
    truth : dict
        Plain values: the paths, innovation and stationary covariances, long-run effects, means
        per session, and ``truth["riclpm"]``, the RI-CLPM parameters under the names used by
        :func:`alliance.dynamics.riclpm.fit_riclpm`.

    Examples
    --------
    >>> data, truth = simulate_process(ProcessParams(n_sessions=4), 3, np.random.default_rng(1))
    >>> data.shape, round(truth["long_run"]["x->y"], 4)
    ((12, 4), -0.5882)
    """
    k = int(params.n_sessions)
    if k < 2:
        raise ValueError("n_sessions must be >= 2")
    supplied = intercepts is not None
    n = _check_size(n_patients, intercepts)
    b = params.paths
    q = _innovation_covariance(b, params.innovation_corr)
    s = stationary_covariance(b, q)

    if supplied:
        intercepts = np.asarray(intercepts, dtype=float)
    else:
        intercepts = rng.standard_normal((n, 2)) @ params.intercept_factor.T
    within = np.empty((n, k, 2))
    within[:, 0, :] = rng.standard_normal((n, 2)) @ np.linalg.cholesky(s).T
    shocks = rng.standard_normal((n, k - 1, 2)) @ np.linalg.cholesky(q).T
    for t in range(1, k):
        within[:, t, :] = within[:, t - 1, :] @ b.T + shocks[:, t - 1, :]

    sessions = np.arange(1, k + 1)
    mean_x = params.mean_x + params.trend_x * (sessions - 1)
    mean_y = params.mean_y + params.trend_y * (sessions - 1)
    x = mean_x[None, :] + intercepts[:, [0]] + within[:, :, 0]
    y = mean_y[None, :] + intercepts[:, [1]] + within[:, :, 1]
    observed = np.ones((n, k), dtype=bool) if dropout is None else _draw_dropout(x, y, dropout, rng)

    ids = np.arange(1, n + 1) if patient_ids is None else np.asarray(patient_ids)
    if ids.shape != (n,):
        raise ValueError("patient_ids must have one label per patient")
    keep = observed.reshape(-1)
    data = pd.DataFrame(
        {
            "patient": np.repeat(ids, k)[keep],
            "session": np.tile(sessions, n)[keep],
            "alliance_score": x.reshape(-1)[keep],
            "symptom_score": y.reshape(-1)[keep],
        }
    ).reset_index(drop=True)

    truth = _truth(params, q, s, intercepts_supplied=supplied)
    truth["n_patients"] = n
    truth["dropout"] = None if dropout is None else asdict(dropout)
    truth["observed_fraction_by_session"] = observed.mean(axis=0).tolist()
    return data, truth
