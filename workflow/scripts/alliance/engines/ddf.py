"""Satterthwaite degrees of freedom for contrasts L'b and joint tests of several rows of L.

The engines that give Satterthwaite df for the fixed effects (mixedlm, lme4 + lmerTest) also
expose what that computation needs: the Jacobian of Vcov(b) with respect to the variance
parameters and the asymptotic covariance matrix of those parameters (:class:`SatterthwaiteData`).
From it a contrast gets a t test and a set of contrasts an F test with the same df method as
the fixed-effects table, as lmerTest's ``contest()`` does:

* one row L (``contest1D``): var = L' V L, g_k = L' J_k L, df = 2 var^2 / (g' A g);
* several rows (``contestMD``): eigen-decompose L V L' = P D P' (eigenvalues > sqrt(eps) d_1),
  F = sum_m (P_m' L b)^2 / d_m / q, nu_m the one-row df of P_m' L, and the denominator df
  2 E / (E - q), E = sum nu_m / (nu_m - 2) (2 when some nu_m <= 2; the mean when all nu_m agree).

Two styles of one-row df, so that a contrast with one coefficient reproduces that engine's own
fixed-effect df exactly:

* ``"lmerTest"`` -- the variance parameters are (theta, sigma) and A is 2 H^-1 of the deviance
  (lmerTest's ``Jac_list`` and ``vcov_varpar``), df = 2 var^2 / (g' A g);
* ``"mixedlm"`` -- mixedlm 1.3.0 (``mixedlm.inference.ddf.satterthwaite_df``) differentiates the
  profiled Vcov(b) with respect to theta only (sigma^2 profiled out) and adds the residual
  variance's own uncertainty as 2 / (n - p): df = 2 / (r' A r + 2 / (n - p)), r = g / var,
  clipped to [1, n - p].

Examples
--------
>>> J = np.array([[[2.0]], [[0.0]]])          # dV/dtheta, dV/dsigma for one coefficient
>>> data = SatterthwaiteData(J, np.diag([0.5, 0.0]), "lmerTest", 100.0, "Satterthwaite")
>>> contrast_df(data, np.array([[1.0]]), np.array([1.0]))   # 2 * 1^2 / (2 * 0.5 * 2)
1.0
>>> ddf_of_f([10.0, 10.0])
10.0
>>> round(ddf_of_f([10.0, 20.0]), 6)   # E = 10/8 + 20/18 = 2.36111, 2E/(E-2)
13.076923
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SatterthwaiteData", "contrast_df", "joint_test", "ddf_of_f", "residual_df_data"]

#: lmerTest's ``eps`` of contestMD: eigenvalues of L V L' at or below eps * the largest are dropped
EIGEN_EPS = float(np.sqrt(np.finfo(float).eps))
#: lmerTest's ``get_Fstat_ddf(tol = 1e-8)``: one-row df that agree this closely are averaged
NU_TIE_TOL = 1e-8
#: mixedlm's lower bound of a df (``mixedlm.inference.ddf._MIN_DF``)
MIXEDLM_MIN_DF = 1.0


@dataclass(frozen=True)
class SatterthwaiteData:
    """What an engine's Satterthwaite computation exposes (the module docstring).

    jacobian : (k, p, p) derivatives of Vcov(b) with respect to the k variance parameters
    varpar_cov : (k, k) asymptotic covariance matrix of those parameters
    style : ``"lmerTest"`` or ``"mixedlm"`` (how the one-row df is formed)
    residual_df : n - p (the ``"mixedlm"`` style's residual term and upper bound)
    method : the df method's text, as ``fit["df_method"]`` of the fixed effects
    """

    jacobian: np.ndarray
    varpar_cov: np.ndarray
    style: str
    residual_df: float
    method: str

    def __post_init__(self) -> None:
        if self.style not in ("lmerTest", "mixedlm"):
            raise ValueError(f"unknown Satterthwaite style {self.style!r}")


def residual_df_data(p: int, n: int, method: str) -> SatterthwaiteData:
    """The Satterthwaite data of a model without variance parameters (a least-squares fit): no
    Jacobian, so every contrast and F test gets the residual df n - p (exact t and F).

    >>> d = residual_df_data(3, 50, "residual df")
    >>> contrast_df(d, np.eye(3), np.array([1.0, -1.0, 0.0]))
    47.0
    """
    return SatterthwaiteData(np.zeros((0, p, p)), np.zeros((0, 0)), "mixedlm", float(n - p), method)


def contrast_df(data: SatterthwaiteData, vcov: np.ndarray, row: np.ndarray) -> float:
    """Satterthwaite df of the contrast ``row' b`` (lmerTest's ``contest1D``; the module docstring)."""
    row = np.asarray(row, dtype=float)
    var = float(row @ vcov @ row)
    grad = np.einsum("i,kij,j->k", row, data.jacobian, row)
    if data.style == "lmerTest":
        denominator = float(grad @ data.varpar_cov @ grad)
        return 2.0 * var**2 / denominator if denominator > 0 else float("inf")
    if var <= 0:
        return float(data.residual_df)
    rel = grad / var
    uncertainty = max(float(rel @ data.varpar_cov @ rel), 0.0)
    df = 2.0 / (uncertainty + 2.0 / data.residual_df)
    return float(np.clip(df, MIXEDLM_MIN_DF, data.residual_df))


def ddf_of_f(nu: list[float] | np.ndarray) -> float:
    """Denominator df of an F test from the one-row df of its orthogonal contrasts (lmerTest's
    ``get_Fstat_ddf``)."""
    nu = np.asarray(nu, dtype=float)
    if len(nu) == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < NU_TIE_TOL):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    e = float(np.sum(nu / (nu - 2.0)))
    return 2.0 * e / (e - len(nu))


def joint_test(data: SatterthwaiteData, beta: np.ndarray, vcov: np.ndarray, rows: np.ndarray) -> dict[str, float]:
    """F test that ``rows @ b = 0`` with Satterthwaite denominator df (lmerTest's ``contestMD``).

    Returns statistic (F), df (numerator: the rank q of L V L'), df_denominator, and the
    one-row df ``nu`` of the q orthogonal contrasts.
    """
    rows = np.atleast_2d(np.asarray(rows, dtype=float))
    values, vectors = np.linalg.eigh(rows @ vcov @ rows.T)
    order = np.argsort(values)[::-1]  # descending, as R's eigen()
    values, vectors = values[order], vectors[:, order]
    keep = values > max(EIGEN_EPS * values[0], 0.0)
    q = int(keep.sum())
    if q == 0:
        raise ValueError("the contrasts of the joint test have no variance (L V L' is zero)")
    ptl = vectors[:, keep].T @ rows
    statistic = float(np.sum((ptl @ beta) ** 2 / values[keep]) / q)
    nu = [contrast_df(data, vcov, r) for r in ptl]
    return {"statistic": statistic, "df": q, "df_denominator": ddf_of_f(nu), "nu": nu}
