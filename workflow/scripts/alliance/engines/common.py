"""Shared machinery of the external engines (``mixedlm``, ``lme4``): design, lme4-style block
computations and the assembly of a :class:`alliance.engines.spec.FitResult`.

An external engine only has to find the estimates (fixed effects, their covariance matrix, the
random-effects covariance matrices, the residual variance, the log-likelihood, convergence
information and, where it has them, Satterthwaite df).  Everything else is computed here, the
same way for every engine, from the engine's covariance parameters:

* BLUPs (conditional modes) and conditional SDs, fitted values and residuals;
* an independent profiled evaluation at the engine's relative covariance parameters (GLS fixed
  effects, sigma^2 (X'V*^-1 X)^-1, residual variance and (RE)ML log-likelihood, lme4's
  parameterisation), recorded as ``max_rel_diff_fixed_vs_profiled`` and
  ``abs_diff_loglik_vs_profiled`` so that an engine reporting numbers that do not belong together
  is caught;
* flags with the definitions of the statsmodels engine; ``boundary`` is decided by
  :func:`alliance.engines.checks.finish_result` (a variance <= 1e-6 residual variance, a correlation
  within 1e-6 of +-1, lme4's theta criterion :func:`alliance.engines.checks.singular_groups`, or the
  engine's own ``isSingular``), as for every engine.

Supported random structures (all the suite uses): one outer grouping factor with an optional term
``(1 + slopes | outer)`` and at most one term nested in it ``(1 + slopes | outer:inner)``; either
term may be correlated (``|``) or independent (``||``).  The random-effects precision then has an
"arrow" structure per outer group (outer block coupled to each inner block, inner blocks not
coupled to each other), which is solved exactly with O(n) work: no q x q matrices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

from alliance.engines.checks import finish_result, likelihood_info, variance_table
from alliance.engines.frame import labels, model_frame
from alliance.engines.spec import (
    FitResult,
    ModelSpec,
    RandomTerm,
    to_lme4_formula,
    to_patsy_formula,
)

#: engines report estimates that reproduce the profiled evaluation at their own covariance
#: parameters to within this (relative, fixed effects); larger differences are recorded in notes
PROFILE_CHECK_RTOL = 1e-6


@dataclass
class BlockDesign:
    """Design of a model with one outer factor and at most one nested factor.

    ``Zo`` (n x k_o) are the outer term's columns (intercept, slopes; k_o = 0 without an outer
    term), ``Zi`` (n x k_i) the nested term's (k_i = 0 without one).  Codes index sorted labels;
    inner levels are the (outer, inner) combinations, ordered by outer then inner label.
    """

    spec: ModelSpec
    y: np.ndarray
    X: np.ndarray
    fe_names: list[str]
    n_dropped: int
    row_index: pd.Index
    outer_name: str
    outer_codes: np.ndarray
    outer_labels: list[str]
    outer_term: RandomTerm | None
    outer_re_names: list[str]
    Zo: np.ndarray
    inner_label: str | None
    inner_term: RandomTerm | None
    inner_codes: np.ndarray | None
    inner_labels: list[str]
    inner_outer: np.ndarray | None  # outer code of each inner level
    inner_re_names: list[str]
    Zi: np.ndarray
    n_groups: dict[str, int]

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def p(self) -> int:
        return self.X.shape[1]


def block_design(spec: ModelSpec, data: pd.DataFrame, engine: str) -> BlockDesign:
    """Validate and build the design; raises ValueError for structures the block engines do not fit."""
    mf = model_frame(spec, data)
    if len(mf.nested) > 1:
        raise ValueError(
            f"engine {engine!r} supports at most one random term nested in {mf.outer_name!r}; "
            f"got {', '.join(rt.group for rt in mf.nested)}"
        )
    df = mf.df
    n = len(df)
    outer_codes, outer_labels = labels(df[mf.outer_name])
    n_outer = len(outer_labels)
    if n_outer < 2:
        raise ValueError(f"grouping factor {mf.outer_name!r} has fewer than 2 levels")
    n_groups = {mf.outer_name: n_outer}

    outer_term = mf.outer[0] if mf.outer else None
    outer_re_names: list[str] = []
    Zo = np.zeros((n, 0))
    if outer_term is not None:
        outer_re_names = ["Intercept"] + list(outer_term.slopes)
        Zo = np.column_stack([np.ones(n)] + [df[s].to_numpy(dtype=float) for s in outer_term.slopes])

    inner_term = mf.nested[0] if mf.nested else None
    inner_label = None
    inner_codes = None
    inner_outer = None
    inner_labels: list[str] = []
    inner_re_names: list[str] = []
    Zi = np.zeros((n, 0))
    if inner_term is not None:
        inner_label = f"{mf.outer_name}:{inner_term.group}"
        icodes, ilabels = labels(df[inner_term.group])
        combo = outer_codes * (len(ilabels) + 1) + icodes
        inner_codes, uniq = pd.factorize(combo, sort=True)
        inner_codes = inner_codes.astype(np.int64)
        uniq = np.asarray(uniq, dtype=np.int64)
        inner_outer = uniq // (len(ilabels) + 1)
        inner_inner = uniq % (len(ilabels) + 1)
        inner_labels = [f"{outer_labels[o]}:{ilabels[i]}" for o, i in zip(inner_outer, inner_inner)]
        n_groups[inner_label] = len(inner_labels)
        if len(inner_labels) < 2:
            raise ValueError(f"grouping factor {inner_label!r} has fewer than 2 levels")
        inner_re_names = ["Intercept"] + list(inner_term.slopes)
        Zi = np.column_stack([np.ones(n)] + [df[s].to_numpy(dtype=float) for s in inner_term.slopes])
    return BlockDesign(
        spec=spec,
        y=mf.y,
        X=mf.X,
        fe_names=mf.fe_names,
        n_dropped=mf.n_dropped,
        row_index=df.index,
        outer_name=mf.outer_name,
        outer_codes=outer_codes,
        outer_labels=outer_labels,
        outer_term=outer_term,
        outer_re_names=outer_re_names,
        Zo=Zo,
        inner_label=inner_label,
        inner_term=inner_term,
        inner_codes=inner_codes,
        inner_labels=inner_labels,
        inner_outer=inner_outer,
        inner_re_names=inner_re_names,
        Zi=Zi,
        n_groups=n_groups,
    )


# --------------------------------------------------------------------------------------------
# lme4-style computations at given covariance parameters
# --------------------------------------------------------------------------------------------


def _psd_factor(S: np.ndarray) -> np.ndarray:
    """A matrix L with L L' = S (S symmetric positive semi-definite; zero directions allowed)."""
    if S.size == 0:
        return S
    w, U = np.linalg.eigh((S + S.T) / 2)
    return U * np.sqrt(np.clip(w, 0.0, None))


def _group_cross(A: np.ndarray, B: np.ndarray, codes: np.ndarray, n_levels: int) -> np.ndarray:
    """sum over rows of level g of A[r]' B[r]  ->  (n_levels, a, b)."""
    a, b = A.shape[1], B.shape[1]
    out = np.empty((n_levels, a, b))
    for i in range(a):
        for j in range(b):
            out[:, i, j] = np.bincount(codes, weights=A[:, i] * B[:, j], minlength=n_levels)
    return out


class BlockProfiler:
    """Sufficient statistics of a :class:`BlockDesign`; evaluates the lme4 criterion, GLS fixed
    effects, their covariance and the BLUPs at relative covariance matrices
    ``(Sigma_outer / sigma^2, Sigma_inner / sigma^2)``."""

    def __init__(self, d: BlockDesign):
        self.d = d
        W = np.column_stack([d.X, d.y])  # right-hand sides: X and y
        self.WtW = W.T @ W
        G = len(d.outer_labels)
        self.G = G
        self.ko = d.Zo.shape[1]
        self.ki = d.Zi.shape[1]
        if self.ko:
            self.ZoZo = _group_cross(d.Zo, d.Zo, d.outer_codes, G)
            self.ZoW = _group_cross(d.Zo, W, d.outer_codes, G)
        if self.ki:
            J = len(d.inner_labels)
            self.J = J
            self.ZiZi = _group_cross(d.Zi, d.Zi, d.inner_codes, J)
            self.ZiW = _group_cross(d.Zi, W, d.inner_codes, J)
            if self.ko:
                self.ZoZi = _group_cross(d.Zo, d.Zi, d.inner_codes, J)

    def _solve(self, lam_o: np.ndarray, lam_i: np.ndarray):
        """Factor M = Lambda' Z' Z Lambda + I per outer group and solve M x = Lambda' Z' W.
        Returns (logdet M, c_o, a, c_i, b, S_inv, Dinv, B) with x = (a, b)."""
        logdet = 0.0
        c_o = a = c_i = b = S_inv = Dinv = B = None
        if self.ki:
            D = np.einsum("ji,gjk,kl->gil", lam_i, self.ZiZi, lam_i) + np.eye(self.ki)
            Dinv = np.linalg.inv(D)
            logdet += float(np.linalg.slogdet(D)[1].sum())
            c_i = np.einsum("ji,gjm->gim", lam_i, self.ZiW)
        if self.ko:
            A = np.einsum("ji,gjk,kl->gil", lam_o, self.ZoZo, lam_o) + np.eye(self.ko)
            c_o = np.einsum("ji,gjm->gim", lam_o, self.ZoW)
            rhs = c_o.copy()
            if self.ki:
                B = np.einsum("ji,gjk,kl->gil", lam_o, self.ZoZi, lam_i)  # per inner level
                BDinv = B @ Dinv
                io = self.d.inner_outer
                A = A.copy()
                np.subtract.at(A, io, BDinv @ np.swapaxes(B, 1, 2))
                np.subtract.at(rhs, io, BDinv @ c_i)
            logdet += float(np.linalg.slogdet(A)[1].sum())
            S_inv = np.linalg.inv(A)
            a = S_inv @ rhs
        if self.ki:
            r = c_i
            if self.ko:
                r = c_i - np.swapaxes(B, 1, 2) @ a[self.d.inner_outer]
            b = Dinv @ r
        return logdet, c_o, a, c_i, b, S_inv, Dinv, B

    def evaluate(self, rel_o: np.ndarray, rel_i: np.ndarray, reml: bool) -> dict[str, Any]:
        """Profiled criterion, GLS beta, sigma^2 and sigma^2 (X'V*^-1X)^-1 at relative covariances."""
        lam_o, lam_i = _psd_factor(rel_o), _psd_factor(rel_i)
        logdet_M, c_o, a, c_i, b, *_ = self._solve(lam_o, lam_i)
        Q = self.WtW.copy()  # W' V*^-1 W = W'W - sum c' x
        if self.ko:
            Q -= np.einsum("gim,gin->mn", c_o, a)
        if self.ki:
            Q -= np.einsum("gim,gin->mn", c_i, b)
        p = self.d.p
        C, Xty, yty = Q[:p, :p], Q[:p, p], float(Q[p, p])
        Lc = np.linalg.cholesky(C)
        beta = np.linalg.solve(C, Xty)
        rss = yty - float(beta @ Xty)
        n = self.d.n
        denom = n - p if reml else n
        sigma2 = rss / denom
        m2ll = denom * (math.log(2 * math.pi * sigma2) + 1.0) + logdet_M
        if reml:
            m2ll += 2.0 * float(np.log(np.diag(Lc)).sum())
        return {"beta": beta, "sigma2": sigma2, "loglik": -0.5 * m2ll, "vcov": sigma2 * np.linalg.inv(C)}

    def blups(self, beta: np.ndarray, sigma2: float, cov_o: np.ndarray, cov_i: np.ndarray) -> dict[str, Any]:
        """Conditional modes and conditional SDs (given the data and beta) at the covariances."""
        lam_o = _psd_factor(cov_o / sigma2)
        lam_i = _psd_factor(cov_i / sigma2)
        # residual right-hand side: the y column minus X beta, for the stored W = [X, y]
        wvec = np.concatenate([-beta, [1.0]])
        saved = {}
        for name in ("ZoW", "ZiW"):
            if hasattr(self, name):
                saved[name] = getattr(self, name)
                setattr(self, name, getattr(self, name) @ wvec[:, None])
        try:
            _, _, a, _, b, S_inv, Dinv, B = self._solve(lam_o, lam_i)
        finally:
            for name, val in saved.items():
                setattr(self, name, val)
        out: dict[str, Any] = {}
        if self.ko:
            out["u_outer"] = (lam_o @ a)[..., 0]  # (G, k_o)
            cv = sigma2 * np.einsum("ij,gjk,lk->gil", lam_o, S_inv, lam_o)
            out["sd_outer"] = np.sqrt(np.clip(np.diagonal(cv, axis1=1, axis2=2), 0.0, None))
        if self.ki:
            out["u_inner"] = (lam_i @ b)[..., 0]  # (J, k_i)
            Minv = Dinv
            if self.ko:
                BD = B @ Dinv  # (J, k_o, k_i)
                Minv = Dinv + np.swapaxes(BD, 1, 2) @ S_inv[self.d.inner_outer] @ BD
            cv = sigma2 * np.einsum("ij,gjk,lk->gil", lam_i, Minv, lam_i)
            out["sd_inner"] = np.sqrt(np.clip(np.diagonal(cv, axis1=1, axis2=2), 0.0, None))
        return out


# --------------------------------------------------------------------------------------------
# Result assembly
# --------------------------------------------------------------------------------------------


def fixed_table(fe_names: list[str], beta: np.ndarray, vcov: np.ndarray, df: np.ndarray | None) -> pd.DataFrame:
    """Fixed-effects table.  With Satterthwaite ``df``: t statistic, p and CI from the t
    distribution with those df; without (``None``): Wald z, as the statsmodels engine."""
    se = np.sqrt(np.clip(np.diag(vcov), 0.0, None))
    stat = np.divide(beta, se, out=np.full_like(beta, np.nan), where=se > 0)
    if df is None:
        dfv = np.full_like(beta, np.inf)
    else:
        dfv = np.asarray(df, dtype=float)
    q = scipy.stats.t.ppf(0.975, dfv)
    return pd.DataFrame(
        {
            "term": fe_names,
            "estimate": beta,
            "se": se,
            "df": dfv,
            "statistic": stat,
            "p": 2 * scipy.stats.t.sf(np.abs(stat), dfv),
            "ci_low": beta - q * se,
            "ci_high": beta + q * se,
        }
    )


def assemble(
    d: BlockDesign,
    *,
    engine: str,
    engine_version: str,
    beta: np.ndarray,
    vcov: np.ndarray,
    cov_outer: np.ndarray,
    cov_inner: np.ndarray,
    sigma2: float,
    loglik: float,
    df: np.ndarray | None,
    df_method: str,
    converged: bool,
    engine_singular: bool,
    optimizer: str,
    refitted: bool,
    messages: list[str],
    extra: dict[str, Any],
    engine_result: Any = None,
) -> FitResult:
    """Build a :class:`FitResult` from an engine's estimates (see the module docstring)."""
    spec = d.spec
    beta = np.asarray(beta, dtype=float)
    vcov = np.asarray(vcov, dtype=float)
    fixed = fixed_table(d.fe_names, beta, vcov, df)
    vcov_df = pd.DataFrame(vcov, index=d.fe_names, columns=d.fe_names)

    # ---- variance components (same layout as the statsmodels engine)
    blocks = [
        (group, names, cov, term.correlated)
        for group, names, cov, term in (
            (d.outer_name, d.outer_re_names, cov_outer, d.outer_term),
            (d.inner_label, d.inner_re_names, cov_inner, d.inner_term),
        )
        if term is not None
    ]
    variance_components = variance_table(blocks, sigma2)
    n_cov_params = sum(
        len(names) * (len(names) + 1) // 2 if correlated else len(names) for _, names, _, correlated in blocks
    )

    # ---- independent profiled evaluation and BLUPs
    prof = BlockProfiler(d)
    ev = prof.evaluate(cov_outer / sigma2, cov_inner / sigma2, reml=spec.reml)
    rel_beta = np.abs(ev["beta"] - beta) / np.maximum(np.abs(beta), 1e-12 * max(1.0, float(np.abs(beta).max())))
    max_rel_beta = float(rel_beta.max())
    ll_diff = abs(ev["loglik"] - loglik)
    bl = prof.blups(beta, sigma2, cov_outer, cov_inner)

    re_rows: list[pd.DataFrame] = []
    fitted_cond = d.X @ beta
    if d.outer_term is not None:
        u, sd = bl["u_outer"], bl["sd_outer"]
        for i, nm in enumerate(d.outer_re_names):
            re_rows.append(
                pd.DataFrame(
                    {"group": d.outer_name, "level": d.outer_labels, "term": nm, "value": u[:, i], "cond_sd": sd[:, i]}
                )
            )
        fitted_cond = fitted_cond + np.einsum("nk,nk->n", d.Zo, u[d.outer_codes])
    if d.inner_term is not None:
        u, sd = bl["u_inner"], bl["sd_inner"]
        for i, nm in enumerate(d.inner_re_names):
            re_rows.append(
                pd.DataFrame(
                    {"group": d.inner_label, "level": d.inner_labels, "term": nm, "value": u[:, i], "cond_sd": sd[:, i]}
                )
            )
        fitted_cond = fitted_cond + np.einsum("nk,nk->n", d.Zi, u[d.inner_codes])
    random_effects = pd.concat(re_rows, ignore_index=True)
    random_effects = random_effects.sort_values(["group", "term", "level"], kind="stable", ignore_index=True)
    fitted = pd.DataFrame(
        {
            "row": d.row_index,
            "fitted_marginal": d.X @ beta,
            "fitted_conditional": fitted_cond,
            "resid": d.y - fitted_cond,
        }
    )

    # ---- flags (boundary: finish_result, with the engine's own verdict)
    exact_zero = bool(np.any(beta == 0.0))
    flag_values = {
        "not_converged": not converged,
        "refitted": bool(refitted),
        "optimum_disagreement": False,
        "exact_zero_fixed": exact_zero,
        "simplified": False,
    }
    notes = []
    if max_rel_beta > PROFILE_CHECK_RTOL:
        notes.append(
            f"fixed effects differ from the profiled GLS evaluation at the engine's covariance "
            f"parameters by up to {max_rel_beta:.2g} (relative)"
        )
    if exact_zero:
        notes.append("a fixed effect is exactly 0.0")
    fit_info = {
        **likelihood_info(spec, engine, engine_version, loglik, d.p + n_cov_params + 1, d.n),
        "n_dropped_missing": d.n_dropped,
        "n_groups": d.n_groups,
        "residual_variance": sigma2,
        "optimizer": optimizer,
        "converged": bool(converged),
        "boundary": False,  # set by finish_result
        "engine_singular": bool(engine_singular),
        "refitted": bool(refitted),
        "optimum_disagreement": False,
        "exact_zero_fixed": exact_zero,
        "simplified": False,
        "simplification": "",
        "attempts": [
            {"optimizer": optimizer, "loglik": loglik, "converged": bool(converged), "warnings": list(messages)}
        ],
        "warnings": list(messages),
        "notes": notes,
        "df_method": df_method,
        "se_method": "vcov reported by the engine (sigma^2 (X' V*^-1 X)^-1 at the estimates, as lme4 vcov)",
        "max_rel_diff_fixed_vs_profiled": max_rel_beta,
        "abs_diff_loglik_vs_profiled": ll_diff,
        "formula_lme4": to_lme4_formula(spec),
        "formula_lme4_fitted": to_lme4_formula(spec),
        "formula_patsy": to_patsy_formula(spec),
        **extra,
    }
    return finish_result(
        spec,
        fixed=fixed,
        vcov=vcov_df,
        variance_components=variance_components,
        random_effects=random_effects,
        fitted=fitted,
        fit_info=fit_info,
        flag_values=flag_values,
        engine_singular=engine_singular,
        engine_result=engine_result,
    )


def fitting_formula(d: BlockDesign) -> str:
    """lme4-syntax formula on the engine's column names: response ``Y_``, fixed columns ``X0..``
    (no implicit intercept), outer/inner slopes ``SO0..``/``SI0..``, groups ``GO``/``GI``."""
    fixed = " + ".join(f"X{j}" for j in range(d.p))
    terms = []
    if d.outer_term is not None:
        lhs = " + ".join(["1"] + [f"SO{j}" for j in range(len(d.outer_term.slopes))])
        bar = "|" if (d.outer_term.correlated or not d.outer_term.slopes) else "||"
        terms.append(f"({lhs} {bar} GO)")
    if d.inner_term is not None:
        lhs = " + ".join(["1"] + [f"SI{j}" for j in range(len(d.inner_term.slopes))])
        bar = "|" if (d.inner_term.correlated or not d.inner_term.slopes) else "||"
        terms.append(f"({lhs} {bar} GI)")
    return f"Y_ ~ 0 + {fixed} + " + " + ".join(terms)


def engine_columns(d: BlockDesign) -> dict[str, np.ndarray]:
    """The columns :func:`fitting_formula` refers to (group columns as integer codes)."""
    cols: dict[str, np.ndarray] = {"Y_": d.y}
    for j in range(d.p):
        cols[f"X{j}"] = d.X[:, j]
    if d.outer_term is not None:
        for j in range(len(d.outer_term.slopes)):
            cols[f"SO{j}"] = d.Zo[:, j + 1]
        cols["GO"] = d.outer_codes
    if d.inner_term is not None:
        for j in range(len(d.inner_term.slopes)):
            cols[f"SI{j}"] = d.Zi[:, j + 1]
        cols["GI"] = d.inner_codes
    return cols
