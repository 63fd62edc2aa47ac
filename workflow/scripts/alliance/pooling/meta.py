"""Two-stage random-effects meta-analysis: REML pooling, meta-regression and leave-one-out, as metafor.

In the second stage of an individual-patient-data meta-analysis each study contributes one estimate
(its alliance-outcome coefficient, say) with its standard error. :func:`random_effects` pools them,
:func:`meta_regression` relates them to study-level moderators and :func:`leave_one_out` shows how
far each study moves the pooled value. The numbers are those of R's metafor (Viechtbauer 2010,
*J Stat Softw* 36(3)), ``rma(yi, vi, method = "REML", test = "knha")``, so that a reader can check
any of them in R (tests/r/metafor_reference.R; tests/pooling/test_meta.py holds them to 1e-6):

* tau^2 by REML with metafor's Fisher scoring: start at the Hedges (HE) estimate truncated at 0,
  step by ``(y'PPy - tr P) / tr PP``, halve a step that would make tau^2 negative, stop when tau^2
  changes by less than ``tol``; then metafor's check that tau^2 = 0 has no higher likelihood.
  metafor stops at a change of 1e-5; the default here, 1e-10, iterates on so that tau^2 does not
  depend on where the iterations stopped (``tol=1e-5`` repeats metafor's iterations exactly).
* Knapp-Hartung (the default; metafor's ``test = "knha"``): the covariance of the estimates scaled
  by ``s^2 = sum w_i (y_i - x_i'b)^2 / (k - p)`` and t tests with k - p df. As in metafor, s^2 is not
  truncated at 1, so that homogeneous studies get a narrower interval than the Wald z one. With few
  studies the Wald z interval is too narrow (IntHout, Ioannidis & Borm 2014, *BMC Med Res Methodol*
  14:25; tests/pooling/test_meta_recovery.py), hence Knapp-Hartung.
* Cochran's Q with fixed-effect weights 1/v_i; I^2 = tau^2 / (tau^2 + v~) and H^2 = tau^2 / v~ + 1
  with the 'typical' within-study variance v~ = (k - p) / tr P_FE (Higgins & Thompson 2002), as
  metafor gives them for a random-effects fit; I^2, R^2 and the study weights are in percent.
* The prediction interval of a new study's effect, ``mu -/+ crit sqrt(SE^2 + tau^2)`` with the test's
  quantile (t with k - 1 df under Knapp-Hartung), as metafor's ``predict()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import special

__all__ = ["PooledEffect", "MetaRegression", "random_effects", "meta_regression", "leave_one_out"]

#: metafor's ``control$tol``: how much higher the likelihood at tau^2 = 0 must be to replace tau^2
_LL0_TOL = float(np.finfo(float).eps ** 0.25)
#: metafor's ``evtol``: an eigenvalue of X'X at or below it means the model matrix is not of full rank
_EVTOL = 1e-7
_LOG_2PI = math.log(2.0 * math.pi)
_EPS = float(np.finfo(float).eps)

CI_KNAPP_HARTUNG = "knapp_hartung"
CI_WALD_Z = "wald_z"

LEAVE_ONE_OUT_COLUMNS = [
    "label", "k", "estimate", "se", "statistic", "p", "ci_low", "ci_high",
    "tau2", "i2", "h2", "q", "q_p", "pi_low", "pi_high",
]  # fmt: skip
COEFFICIENT_COLUMNS = ["term", "estimate", "se", "statistic", "df", "p", "ci_low", "ci_high"]


@dataclass(frozen=True)
class PooledEffect:
    """A random-effects pooled estimate with its test, heterogeneity and prediction interval.

    ``df`` is inf for the Wald z test; ``i2`` and ``weights`` are in percent; ``boundary`` is True
    when REML's tau^2 is 0 (the fit is then the fixed-effect one, with Knapp-Hartung's scaling).
    """

    k: int
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    df: float
    statistic: float
    p: float
    tau2: float
    tau: float
    i2: float
    h2: float
    q: float
    q_df: int
    q_p: float
    pi_low: float
    pi_high: float
    ci_method: str
    converged: bool
    iterations: int
    boundary: bool
    weights: np.ndarray = field(repr=False, compare=False)

    def as_row(self) -> dict[str, Any]:
        """The fit as one flat row (every field but ``weights``), for a tidy table."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "weights"}


@dataclass(frozen=True)
class MetaRegression:
    """A mixed-effects meta-regression: the coefficient table and the fit's heterogeneity tests.

    ``coefficients`` has the columns term, estimate, se, statistic, df, p, ci_low, ci_high (term
    ``Intercept`` first); ``tau2`` is the residual heterogeneity, ``i2`` its share of the residual
    variability and ``r2`` the share of the intercept-only fit's tau^2 that the moderators account
    for, ``max(0, 100 (tau2_RE - tau2) / tau2_RE)`` (0 when tau2_RE is 0), both in percent as in
    metafor. ``qm`` tests all moderators at once (F with ``qm_df1``, ``qm_df2`` df under
    Knapp-Hartung, chi^2 with ``qm_df1`` df otherwise); ``qe`` is the residual heterogeneity test.
    """

    k: int
    n_coef: int
    coefficients: pd.DataFrame = field(repr=False, compare=False)
    tau2: float
    i2: float
    h2: float
    r2: float
    qm: float
    qm_df1: int
    qm_df2: float
    qm_p: float
    qe: float
    qe_df: int
    qe_p: float
    ci_method: str
    converged: bool
    iterations: int
    boundary: bool

    def as_row(self) -> dict[str, Any]:
        """The fit statistics as one flat row (every field but the coefficient table)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "coefficients"}


def _labels(estimates: Any, labels: Sequence[Any] | None, k: int) -> list[str]:
    """The studies' names for messages: ``labels``, else a Series' index, else 'study 1', 'study 2', ..."""
    if labels is None:
        if isinstance(estimates, pd.Series):
            return [str(i) for i in estimates.index]
        return [f"study {i + 1}" for i in range(k)]
    out = [str(label) for label in labels]
    if len(out) != k:
        raise ValueError(f"{len(out)} labels for {k} studies")
    return out


def _check_inputs(
    estimates: Any, ses: Any, labels: Sequence[Any] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Estimates and sampling variances as float arrays, refusing what cannot be pooled."""
    y = np.asarray(estimates, dtype=float).reshape(-1)
    se = np.asarray(ses, dtype=float).reshape(-1)
    if y.shape != se.shape:
        raise ValueError(f"{y.size} estimates but {se.size} standard errors")
    names = _labels(estimates, labels, y.size)
    if y.size < 2:
        raise ValueError(f"pooling needs at least two studies; got {y.size}")
    for i in range(y.size):
        if not math.isfinite(y[i]):
            raise ValueError(f"study {names[i]!r}: the estimate is {float(y[i])!r}, not a finite number")
        if not math.isfinite(se[i]):
            raise ValueError(f"study {names[i]!r}: the standard error is {float(se[i])!r}, not a finite number")
        if se[i] <= 0:
            raise ValueError(f"study {names[i]!r}: the standard error is {float(se[i])!r}; it must be positive")
    return y, se**2, names


def _score_terms(w: np.ndarray, X: np.ndarray, ymc: np.ndarray) -> tuple[float, float, float]:
    """``y'PPy``, ``tr P`` and ``tr PP`` of Fisher scoring's REML step, with P = W - W X (X'WX)^-1 X'W.

    From p x p matrices only (``A = X'WX``, ``C = X'W^2X``, ``D = X'W^3X``): ``tr P = sum w - tr A^-1 C``,
    ``tr PP = sum w^2 - 2 tr A^-1 D + tr (A^-1 C)^2``, ``Py = w y - W X A^-1 X'W y``. metafor forms the
    k x k P; the numbers are the same (to rounding), at a cost linear in k."""
    w2 = w * w
    if X.shape[1] == 1 and not (X[:, 0] - 1.0).any():  # intercept only: A, C, D are sums of weights
        s1, s2 = float(w.sum()), float(w2.sum())
        r = ymc - float(w @ ymc) / s1
        return float(w2 @ (r * r)), s1 - s2 / s1, s2 - 2.0 * float(w2 @ w) / s1 + (s2 / s1) ** 2
    wx = w[:, None] * X
    a_inv = np.linalg.inv(X.T @ wx)
    ac = a_inv @ (wx.T @ wx)
    py = w * ymc - wx @ (a_inv @ (wx.T @ ymc))
    tr_p = float(w.sum()) - float(np.trace(ac))
    tr_pp = float(w2.sum()) - 2.0 * float(np.sum(a_inv * (wx.T @ (w[:, None] * wx)))) + float(np.sum(ac * ac.T))
    return float(py @ py), tr_p, tr_pp


def _reml_loglik(ymc: np.ndarray, v: np.ndarray, X: np.ndarray, tau2: float) -> float:
    """The REML log-likelihood of tau^2 as metafor's check against tau^2 = 0 computes it."""
    k, p = X.shape
    w = 1.0 / (v + tau2)
    xtwx = X.T @ (w[:, None] * X)
    beta = np.linalg.solve(xtwx, X.T @ (w * ymc))
    rss = float(np.sum(w * (ymc - X @ beta) ** 2))
    logdet = float(np.linalg.slogdet(xtwx)[1])
    return -0.5 * (k - p) * _LOG_2PI - 0.5 * float(np.sum(np.log(v + tau2))) - 0.5 * logdet - 0.5 * rss


def _reml_tau2(y: np.ndarray, v: np.ndarray, X: np.ndarray, tol: float, max_iter: int) -> tuple[float, bool, int]:
    """REML tau^2 by metafor's Fisher scoring (rma.uni, method "REML"): (tau^2, converged, iterations)."""
    k, p = X.shape
    ymc = y - y.mean()
    resid = ymc - X @ np.linalg.lstsq(X, ymc, rcond=None)[0]
    hat_diag = np.einsum("ij,ji->i", X, np.linalg.solve(X.T @ X, X.T))
    tau2 = max(0.0, (float(resid @ resid) - float(np.sum((1.0 - hat_diag) * v))) / (k - p))  # Hedges' start
    change, iterations, converged = tol + 1.0, 0, True
    while change > tol:
        iterations += 1
        old = tau2
        ypp, tr_p, tr_pp = _score_terms(1.0 / (v + tau2), X, ymc)
        adj = (ypp - tr_p) / tr_pp
        if math.isnan(adj):
            adj = 0.0
        if tau2 == 0.0 and adj < 0.0:
            adj = 0.0  # metafor halves the step until it underflows to -0: the same tau^2 = 0
        while tau2 + adj < 0.0:
            adj /= 2.0
        tau2 = tau2 + adj
        change = abs(old - tau2)
        if iterations > max_iter:
            converged = False
            break
    if converged and tau2 > tol and _reml_loglik(ymc, v, X, 0.0) - _reml_loglik(ymc, v, X, tau2) > _LL0_TOL:
        tau2 = 0.0  # metafor: "Fisher scoring algorithm may have gotten stuck at a local maximum"
    return max(0.0, tau2), converged, iterations


def _critical(level: float, df: float) -> float:
    """The two-sided critical value: t with ``df`` df, or z when df is inf."""
    alpha = 1.0 - level
    return float(-special.ndtri(alpha / 2.0)) if math.isinf(df) else float(-special.stdtrit(df, alpha / 2.0))


def _two_sided_p(statistic: np.ndarray, df: float) -> np.ndarray:
    a = -np.abs(statistic)
    return 2.0 * (special.ndtr(a) if math.isinf(df) else special.stdtr(df, a))


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95); got {level!r}")


def _fit(
    y: np.ndarray, v: np.ndarray, X: np.ndarray, knapp_hartung: bool, level: float, tol: float, max_iter: int
) -> dict[str, Any]:
    """The REML mixed-effects model of metafor's rma.uni: coefficients, tests, heterogeneity."""
    k, p = X.shape
    tau2, converged, iterations = _reml_tau2(y, v, X, tol, max_iter)
    w = 1.0 / (v + tau2)
    vb = np.linalg.inv(X.T @ (w[:, None] * X))
    beta = vb @ (X.T @ (w * y))
    if knapp_hartung:
        rss = float(np.sum(w * (y - X @ beta) ** 2))
        vb = (0.0 if rss <= _EPS else rss / (k - p)) * vb
        df = float(k - p)
    else:
        df = math.inf
    se = np.sqrt(np.diag(vb))
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = beta / se
    crit = _critical(level, df)
    btt = np.arange(1, p) if p > 1 else np.array([0])
    try:
        qm = float(beta[btt] @ np.linalg.solve(vb[np.ix_(btt, btt)], beta[btt]))
    except np.linalg.LinAlgError:  # Knapp-Hartung's s^2 = 0: identical estimates (metafor: QM NA)
        qm = math.nan
    if knapp_hartung:
        qm /= btt.size
        qm_p = float(special.fdtrc(btt.size, k - p, qm))
    else:
        qm_p = float(special.chdtrc(btt.size, qm))
    w_fe = 1.0 / v  # Q and the typical within-study variance: fixed-effect weights
    b_fe = np.linalg.solve(X.T @ (w_fe[:, None] * X), X.T @ (w_fe * y))
    qe = max(0.0, float(np.sum(w_fe * (y - X @ b_fe) ** 2)))  # y' P_FE y
    typical_v = (k - p) / _score_terms(w_fe, X, y - y.mean())[1]  # (k - p) / tr P_FE
    return {
        "k": k,
        "tau2": tau2,
        "converged": converged,
        "iterations": iterations,
        "w": w,
        "beta": beta,
        "vb": vb,
        "se": se,
        "statistic": statistic,
        "p": _two_sided_p(statistic, df),
        "df": df,
        "crit": crit,
        "qm": qm,
        "qm_df": (btt.size, df),
        "qm_p": qm_p,
        "qe": qe,
        "qe_df": k - p,
        "qe_p": float(special.chdtrc(k - p, qe)),
        "i2": 100.0 * tau2 / (typical_v + tau2),
        "h2": tau2 / typical_v + 1.0,
    }


def random_effects(
    estimates: Sequence[float] | np.ndarray | pd.Series,
    ses: Sequence[float] | np.ndarray | pd.Series,
    *,
    knapp_hartung: bool = True,
    level: float = 0.95,
    max_iter: int = 1000,
    tol: float = 1e-10,
    labels: Sequence[Any] | None = None,
) -> PooledEffect:
    """Pool study estimates by a REML random-effects model, as ``metafor::rma(method = "REML")``.

    Parameters
    ----------
    estimates, ses
        One estimate and its standard error per study (at least two studies; a Series' index, or
        ``labels``, names the studies in error messages).
    knapp_hartung
        Knapp-Hartung SE, t test and CI with k - 1 df (metafor's ``test = "knha"``); False: Wald z.
    level
        Coverage of the confidence and prediction intervals.
    max_iter, tol
        Fisher scoring stops when tau^2 changes by less than ``tol``; after ``max_iter`` steps
        without that, ``converged`` is False (metafor stops with an error) and the last tau^2 is used.

    Returns
    -------
    PooledEffect
        The pooled estimate, its test and CI, tau^2, I^2, H^2, Q, the prediction interval and the
        studies' weights in percent; ``.as_row()`` gives one flat row.

    Examples
    --------
    >>> fit = random_effects([0.30, 0.12, 0.45, 0.05, 0.26], [0.10, 0.08, 0.15, 0.09, 0.12])
    >>> {k: round(v, 4) for k, v in fit.as_row().items() if k in ("estimate", "se", "ci_low", "tau2", "i2", "pi_high")}
    {'estimate': 0.2081, 'se': 0.0663, 'ci_low': 0.0241, 'tau2': 0.0098, 'i2': 48.1568, 'pi_high': 0.5389}
    >>> fit.df, fit.ci_method, fit.weights.round(1).tolist()
    (4.0, 'knapp_hartung', [21.0, 25.7, 12.9, 23.2, 17.2])
    """
    _check_level(level)
    y, v, _ = _check_inputs(estimates, ses, labels)
    fit = _fit(y, v, np.ones((y.size, 1)), knapp_hartung, level, tol, max_iter)
    mu, se, crit = float(fit["beta"][0]), float(fit["se"][0]), fit["crit"]
    half_pi = crit * math.sqrt(se**2 + fit["tau2"])
    w = fit["w"]
    return PooledEffect(
        k=fit["k"],
        estimate=mu,
        se=se,
        ci_low=mu - crit * se,
        ci_high=mu + crit * se,
        df=fit["df"],
        statistic=float(fit["statistic"][0]),
        p=float(fit["p"][0]),
        tau2=fit["tau2"],
        tau=math.sqrt(fit["tau2"]),
        i2=fit["i2"],
        h2=fit["h2"],
        q=fit["qe"],
        q_df=fit["qe_df"],
        q_p=fit["qe_p"],
        pi_low=mu - half_pi,
        pi_high=mu + half_pi,
        ci_method=CI_KNAPP_HARTUNG if knapp_hartung else CI_WALD_Z,
        converged=fit["converged"],
        iterations=fit["iterations"],
        boundary=fit["tau2"] == 0.0,
        weights=100.0 * w / w.sum(),
    )


def _design(moderators: pd.DataFrame, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """The model matrix: an intercept, numeric moderators as they are, categorical ones as treatment
    dummies against their first level (sorted; a pandas Categorical's own order), named like patsy."""
    columns, terms = [np.ones(len(moderators))], ["Intercept"]
    for name in moderators.columns:
        s = moderators[name]
        missing = s.isna().to_numpy()
        if missing.any():
            raise ValueError(f"moderator {name!r} is missing for study {names[int(np.argmax(missing))]!r}")
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            values = s.to_numpy(dtype=float)
            bad = ~np.isfinite(values)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(
                    f"moderator {name!r} is {float(values[i])!r} for study {names[i]!r}, not a finite number"
                )
            columns.append(values)
            terms.append(str(name))
            continue
        if isinstance(s.dtype, pd.CategoricalDtype):
            levels = [c for c in s.cat.categories if (s == c).any()]
        else:
            levels = sorted(s.unique())
        if len(levels) < 2:
            raise ValueError(f"moderator {name!r} has a single level {levels[0]!r}: there is no contrast to estimate")
        for level in levels[1:]:
            columns.append((s == level).to_numpy(dtype=float))
            terms.append(f"{name}[T.{level}]")
    return np.column_stack(columns), terms


def meta_regression(
    estimates: Sequence[float] | np.ndarray | pd.Series,
    ses: Sequence[float] | np.ndarray | pd.Series,
    moderators: pd.DataFrame,
    *,
    knapp_hartung: bool = True,
    level: float = 0.95,
    max_iter: int = 1000,
    tol: float = 1e-10,
    labels: Sequence[Any] | None = None,
) -> MetaRegression:
    """Mixed-effects meta-regression by REML, as ``metafor::rma(yi, vi, mods = ~ ..., test = "knha")``.

    The model has an intercept and the columns of ``moderators`` (one row per study, in the order of
    ``estimates``): a numeric column as it is, any other (strings, booleans, a Categorical) as
    treatment dummies against its first level, named like ``setting[T.inpatient]``. Knapp-Hartung
    (default) gives t tests with k - p df and QM an F test with (p - 1, k - p) df; otherwise z and
    chi^2. Refused: as many coefficients as studies or more, collinear moderators, missing values.

    Returns
    -------
    MetaRegression
        The coefficient table (``.coefficients``), residual tau^2, I^2, H^2, pseudo R^2 (percent),
        QM and QE with their df and p; ``.as_row()`` gives the fit statistics as one flat row.

    Examples
    --------
    >>> y, se = [0.30, 0.12, 0.45, 0.05, 0.26, 0.40], [0.10, 0.08, 0.15, 0.09, 0.12, 0.11]
    >>> mods = pd.DataFrame({"setting": ["in", "out", "in", "out", "out", "in"]})
    >>> fit = meta_regression(y, se, mods)
    >>> fit.coefficients[["term", "estimate", "se", "df"]].round(4).to_dict(orient="list")
    {'term': ['Intercept', 'setting[T.out]'], 'estimate': [0.3658, -0.2427], 'se': [0.0556, 0.0714], 'df': [4.0, 4.0]}
    >>> round(fit.tau2, 6), fit.r2, fit.qm_df1, fit.qm_df2, round(fit.qm_p, 4)
    (0.0, 100.0, 1, 4.0, 0.0273)
    """
    _check_level(level)
    y, v, names = _check_inputs(estimates, ses, labels)
    if not isinstance(moderators, pd.DataFrame):
        raise ValueError("moderators must be a pandas DataFrame, one column per moderator")
    if len(moderators) != y.size:
        raise ValueError(f"moderators have {len(moderators)} rows for {y.size} studies")
    if moderators.shape[1] == 0:
        raise ValueError("no moderators: use random_effects for the intercept-only model")
    X, terms = _design(moderators.reset_index(drop=True), names)
    k, p = X.shape
    if k <= p:
        raise ValueError(
            f"meta-regression with {p} coefficients ({', '.join(terms)}) needs more than {p} studies "
            f"(tau^2 and the Knapp-Hartung tests need k - p >= 1 residual df); got k = {k}"
        )
    if np.linalg.eigvalsh(X.T @ X).min() <= _EVTOL:
        raise ValueError(f"the moderators are collinear: the model matrix of {', '.join(terms)} is not of full rank")
    fit = _fit(y, v, X, knapp_hartung, level, tol, max_iter)
    tau2_re = _reml_tau2(y, v, np.ones((k, 1)), tol, max_iter)[0]
    r2 = 0.0 if tau2_re == 0.0 else max(0.0, 100.0 * (tau2_re - fit["tau2"]) / tau2_re)
    crit = fit["crit"]
    coefficients = pd.DataFrame(
        {
            "term": terms,
            "estimate": fit["beta"],
            "se": fit["se"],
            "statistic": fit["statistic"],
            "df": fit["df"],
            "p": fit["p"],
            "ci_low": fit["beta"] - crit * fit["se"],
            "ci_high": fit["beta"] + crit * fit["se"],
        },
        columns=COEFFICIENT_COLUMNS,
    )
    return MetaRegression(
        k=k,
        n_coef=p,
        coefficients=coefficients,
        tau2=fit["tau2"],
        i2=fit["i2"],
        h2=fit["h2"],
        r2=r2,
        qm=fit["qm"],
        qm_df1=fit["qm_df"][0],
        qm_df2=fit["qm_df"][1],
        qm_p=fit["qm_p"],
        qe=fit["qe"],
        qe_df=fit["qe_df"],
        qe_p=fit["qe_p"],
        ci_method=CI_KNAPP_HARTUNG if knapp_hartung else CI_WALD_Z,
        converged=fit["converged"],
        iterations=fit["iterations"],
        boundary=fit["tau2"] == 0.0,
    )


def leave_one_out(
    estimates: Sequence[float] | np.ndarray | pd.Series,
    ses: Sequence[float] | np.ndarray | pd.Series,
    labels: Sequence[Any],
    *,
    knapp_hartung: bool = True,
    level: float = 0.95,
    max_iter: int = 1000,
    tol: float = 1e-10,
) -> pd.DataFrame:
    """The random-effects pooled estimate with each study left out in turn, as ``metafor::leave1out``.

    One row per omitted study (``label``), in the input order: the pooled estimate of the other
    k - 1 studies with its SE, test, CI, tau^2, I^2, H^2, Q and prediction interval (the latter is
    ``predict()`` of the same refit; leave1out itself does not give it). Needs three studies or more.

    Examples
    --------
    >>> loo = leave_one_out([0.30, 0.12, 0.45, 0.05, 0.26], [0.10, 0.08, 0.15, 0.09, 0.12], list("abcde"))
    >>> loo[["label", "k", "estimate", "tau2"]].round(4).to_dict(orient="list")
    {'label': ['a', 'b', 'c', 'd', 'e'], 'k': [4, 4, 4, 4, 4], 'estimate': [0.1864, 0.243, 0.1685, 0.2513, 0.2031], 'tau2': [0.0119, 0.0148, 0.0043, 0.0064, 0.0153]}
    """
    y, _, names = _check_inputs(estimates, ses, labels)
    if y.size < 3:
        raise ValueError(f"leave-one-out needs at least three studies (pooling needs at least two); got {y.size}")
    se = np.asarray(ses, dtype=float).reshape(-1)
    rows = []
    for i in range(y.size):
        keep = np.arange(y.size) != i
        fit = random_effects(y[keep], se[keep], knapp_hartung=knapp_hartung, level=level, max_iter=max_iter, tol=tol)
        row = fit.as_row()
        rows.append({"label": names[i], **{c: row[c] for c in LEAVE_ONE_OUT_COLUMNS[1:]}})
    return pd.DataFrame(rows, columns=LEAVE_ONE_OUT_COLUMNS)
