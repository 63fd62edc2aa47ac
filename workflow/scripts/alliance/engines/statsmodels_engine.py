"""The statsmodels engine: structured model specs -> statsmodels MixedLM -> tidy, lme4-comparable results.

One entry point, :func:`fit` (``fit(spec, data) -> FitResult``).  ``fit(..., engine=...)`` chooses
the engine (``"statsmodels"``, the default and reference Python engine, described below;
``"mixedlm"``: :mod:`alliance.engines.mixedlm_engine`; ``"lme4"``: :mod:`alliance.engines.lme4_engine`, R through a
subprocess) and ``fit(..., cross_check=<engine>)`` refits with a second engine and flags
``cross_check_disagreement`` (docs/engines.md).  Models are described by
:class:`ModelSpec` / :class:`RandomTerm` (never by user-supplied formula strings); the engine
validates every name, builds the fixed-effects design with patsy from a formula it writes
itself, builds the random-effects design directly, and fits it with statsmodels' ``MixedLM``.

Numerical safeguards (docs/methods.md section 7.2):

* several optimiser sequences are tried; the best log-likelihood wins, and every attempt, its
  log-likelihood, convergence flag and warnings are recorded;
* fixed effects, their covariance matrix ``sigma^2 (X' V*^-1 X)^-1`` (what lme4's ``vcov`` reports),
  the profiled residual variance and the log-likelihood are recomputed from the fitted
  relative covariance parameters (theta), lme4 style.  This gives lme4's SEs on the boundary
  (statsmodels' Hessian SEs are inflated there; kept as ``se_statsmodels``) and avoids
  statsmodels issue #10239 (fixed effects returned as exactly 0.0 when a variance < 1e-10);
* flags: ``not_converged``, ``boundary``, ``refitted``, ``optimum_disagreement``,
  ``exact_zero_fixed``, ``simplified`` (and ``cross_check_disagreement`` with ``cross_check``).
  ``boundary`` is decided for every engine in one place, :func:`boundary_reasons` on the
  variance-components table (a variance or correlation at its limit, or lme4's theta criterion:
  :func:`singular_groups`); the groups and reasons go to ``fit["boundary_reasons"]`` and ``fit["notes"]``.

Inference with the statsmodels engine is Wald z (asymptotic normal); no Satterthwaite /
Kenward-Roger df.  With few therapists a z test overstates significance for therapist-level
effects; the mixedlm and lme4 engines report Satterthwaite df (column ``df`` of ``fixed``; t-based
``p`` and CI).  ``FitResult.contrast`` and ``wald_test`` are Wald z / chi-square for every engine.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.stats
import statsmodels
from statsmodels.regression.mixed_linear_model import MixedLM, VCSpec

from alliance.engines.checks import finish_result, likelihood_info, variance_table
from alliance.engines.frame import labels, model_frame
from alliance.engines.spec import (
    DEFAULT_OPTIMIZERS,
    DF_METHOD,
    OPTIMUM_DISAGREEMENT_TOL,
    SE_METHOD,
    TIE_TOL,
    Z_975,
    FitResult,
    FitWarning,
    ModelSpec,
    to_lme4_formula,
    to_patsy_formula,
)


@dataclass
class _Design:
    y: np.ndarray
    X: np.ndarray
    fe_names: list[str]
    outer_name: str
    outer_codes: np.ndarray
    outer_labels: list[str]
    re_names: list[str]  # columns of exog_re ("Intercept", slopes); empty if no outer term
    exog_re: np.ndarray | None
    vc_names: list[str]  # statsmodels variance-component names
    vc_info: list[tuple[str, str]]  # (group label for output, term) per variance component
    vc_mats: list[list[np.ndarray]]
    vc_levels: list[list[list[str]]]  # level labels per vc, per outer group, per column
    vc_formula: dict[str, str]
    re_formula: str | None
    n_groups: dict[str, int]
    row_index: pd.Index
    simplification: list[str]


def _build_design(spec: ModelSpec, data: pd.DataFrame) -> tuple[_Design, int]:
    mf = model_frame(spec, data)
    df, y, X, fe_names, n_dropped = mf.df, mf.y, mf.X, mf.fe_names, mf.n_dropped
    outer_name, outer, nested = mf.outer_name, mf.outer, mf.nested

    outer_codes, outer_labels = labels(df[outer_name])
    n_outer = len(outer_labels)
    n_groups = {outer_name: n_outer}
    if n_outer < 2:
        raise ValueError(f"grouping factor {outer_name!r} has fewer than 2 levels")
    order = np.argsort(outer_codes, kind="stable")
    rows_by_group = np.split(order, np.cumsum(np.bincount(outer_codes, minlength=n_outer))[:-1])

    re_names: list[str] = []
    exog_re = None
    re_formula = None
    vc_names: list[str] = []
    vc_info: list[tuple[str, str]] = []
    vc_mats: list[list[np.ndarray]] = []
    vc_levels: list[list[list[str]]] = []
    vc_formula: dict[str, str] = {}
    simplification: list[str] = []

    if outer:
        rt = outer[0]
        if rt.correlated and rt.slopes:
            re_names = ["Intercept"] + list(rt.slopes)
        else:
            re_names = ["Intercept"]
        re_formula = " + ".join(["1"] + re_names[1:])
        cols = [np.ones(len(df))] + [df[s].to_numpy(dtype=float) for s in re_names[1:]]
        exog_re = np.column_stack(cols)
        if not rt.correlated:
            for s in rt.slopes:
                name = f"{outer_name}_slope_{s}"
                x = df[s].to_numpy(dtype=float)
                vc_names.append(name)
                vc_info.append((outer_name, s))
                vc_mats.append([x[r][:, None] for r in rows_by_group])
                vc_levels.append([[outer_labels[g]] for g in range(n_outer)])
                vc_formula[name] = f"0 + {s}"

    for rt in nested:
        label = f"{outer_name}:{rt.group}"
        inner_codes, inner_labels = labels(df[rt.group])
        combo = outer_codes * (len(inner_labels) + 1) + inner_codes
        combo_codes, _ = pd.factorize(combo, sort=True)
        n_groups[label] = int(combo_codes.max()) + 1
        if n_groups[label] < 2:
            raise ValueError(f"grouping factor {label!r} has fewer than 2 levels")
        ind_mats, lev = [], []
        for g, r in enumerate(rows_by_group):
            cc = combo_codes[r]
            uniq, pos = np.unique(cc, return_inverse=True)
            m = np.zeros((len(r), len(uniq)))
            m[np.arange(len(r)), pos] = 1.0
            ind_mats.append(m)
            first = [r[np.flatnonzero(cc == u)[0]] for u in uniq]
            lev.append([f"{outer_labels[g]}:{inner_labels[inner_codes[i]]}" for i in first])
        vc_names.append(rt.group)
        vc_info.append((label, "Intercept"))
        vc_mats.append(ind_mats)
        vc_levels.append(lev)
        vc_formula[rt.group] = f"0 + C({rt.group})"
        for s in rt.slopes:
            x = df[s].to_numpy(dtype=float)
            name = f"{rt.group}_slope_{s}"
            vc_names.append(name)
            vc_info.append((label, s))
            vc_mats.append([m * x[r][:, None] for m, r in zip(ind_mats, rows_by_group)])
            vc_levels.append(lev)
            vc_formula[name] = f"0 + C({rt.group}):{s}"
        if rt.correlated and rt.slopes:
            lhs = " + ".join(("1",) + tuple(rt.slopes))
            simplification.append(
                f"correlated ({lhs} | {label}) fitted as independent components "
                f"({lhs} || {label}): statsmodels cannot estimate this correlation"
            )

    design = _Design(
        y=y,
        X=X,
        fe_names=fe_names,
        outer_name=outer_name,
        outer_codes=outer_codes,
        outer_labels=outer_labels,
        re_names=re_names,
        exog_re=exog_re,
        vc_names=vc_names,
        vc_info=vc_info,
        vc_mats=vc_mats,
        vc_levels=vc_levels,
        vc_formula=vc_formula,
        re_formula=re_formula,
        n_groups=n_groups,
        row_index=df.index,
        simplification=simplification,
    )
    return design, n_dropped


# --------------------------------------------------------------------------------------------
# lme4-style profiled computations at given relative covariance parameters
# --------------------------------------------------------------------------------------------


class _Profiler:
    """Sufficient statistics per outer group; evaluates the profiled (RE)ML criterion, GLS fixed
    effects, sigma^2 (X'V*^-1X)^-1 and BLUPs at relative covariance parameters
    (cov_re / sigma^2, vcomp / sigma^2), with V* = I + Z Lambda Lambda' Z' (lme4 parameterisation;
    no inverse of the random-effects covariance, so exact zeros are fine)."""

    def __init__(self, model: MixedLM, design: _Design):
        self.n, self.p = design.X.shape
        self.k_re = model.k_re
        self.vc_widths: list[list[int]] = []
        X, y = design.X, design.y
        self.XtX = X.T @ X
        self.Xty = X.T @ y
        self.yty = float(y @ y)
        self.layouts: dict[tuple[int, ...], list[int]] = {}
        Zs = []
        for gi in range(model.n_groups):
            parts = []
            if self.k_re > 0:
                parts.append(model.exog_re_li[gi])
            widths = []
            for j in range(model.k_vc):
                m = np.asarray(model.exog_vc.mats[j][gi], dtype=float)
                parts.append(m)
                widths.append(m.shape[1])
            Zs.append(np.hstack(parts))
            self.layouts.setdefault(tuple(widths), []).append(gi)
        self.Z = Zs
        self.X_li = model.exog_li
        self.y_li = model.endog_li
        self.batches = []
        for widths, gidx in self.layouts.items():
            ZtZ = np.stack([Zs[g].T @ Zs[g] for g in gidx])
            ZtX = np.stack([Zs[g].T @ model.exog_li[g] for g in gidx])
            Zty = np.stack([Zs[g].T @ model.endog_li[g] for g in gidx])
            self.batches.append((widths, np.asarray(gidx), ZtZ, ZtX, Zty))

    def _lambda(self, cov_re_rel: np.ndarray, vc_rel: np.ndarray, widths: tuple[int, ...]):
        q = self.k_re + sum(widths)
        lam = np.zeros((q, q))
        if self.k_re > 0:
            w, U = np.linalg.eigh((cov_re_rel + cov_re_rel.T) / 2)
            lam[: self.k_re, : self.k_re] = U * np.sqrt(np.clip(w, 0.0, None))
        pos = self.k_re
        for j, wdt in enumerate(widths):
            idx = np.arange(pos, pos + wdt)
            lam[idx, idx] = math.sqrt(max(float(vc_rel[j]), 0.0))
            pos += wdt
        return lam

    def evaluate(self, cov_re_rel: np.ndarray, vc_rel: np.ndarray, reml: bool, blups: bool = False):
        C = self.XtX.copy()
        Xty = self.Xty.copy()
        yty = self.yty
        logdet_M = 0.0
        cache = []
        for widths, gidx, ZtZ, ZtX, Zty in self.batches:
            lam = self._lambda(cov_re_rel, vc_rel, widths)
            q = lam.shape[0]
            M = lam.T @ ZtZ @ lam + np.eye(q)
            L = np.linalg.cholesky(M)
            logdet_M += 2.0 * float(np.log(np.diagonal(L, axis1=1, axis2=2)).sum())
            AtX = lam.T @ ZtX
            Aty = (lam.T @ Zty[..., None])[..., 0]
            rhs = np.concatenate([AtX, Aty[..., None]], axis=2)
            sol = np.linalg.solve(M, rhs)
            C -= np.einsum("gqi,gqj->ij", AtX, sol[..., : self.p])
            Xty -= np.einsum("gqi,gq->i", AtX, sol[..., self.p])
            yty -= float(np.einsum("gq,gq->", Aty, sol[..., self.p]))
            cache.append((lam, gidx, M, AtX, Aty))
        Lc = np.linalg.cholesky(C)
        beta = np.linalg.solve(C, Xty)
        rss = float(yty - beta @ Xty)  # r' V*^-1 r at the GLS beta
        denom = self.n - self.p if reml else self.n
        sigma2 = rss / denom
        logdet_C = 2.0 * float(np.log(np.diag(Lc)).sum())
        if reml:
            m2ll = denom * (math.log(2 * math.pi * sigma2) + 1.0) + logdet_M + logdet_C
        else:
            m2ll = denom * (math.log(2 * math.pi * sigma2) + 1.0) + logdet_M
        out = {
            "beta": beta,
            "sigma2": sigma2,
            "loglik": -0.5 * m2ll,
            "vcov": sigma2 * np.linalg.inv(C),
        }
        if blups:
            u = [None] * len(self.Z)
            csd = [None] * len(self.Z)
            for lam, gidx, M, AtX, Aty in cache:
                Atr = Aty - AtX @ beta
                v = np.linalg.solve(M, Atr[..., None])[..., 0]
                b = v @ lam.T
                Minv = np.linalg.inv(M)
                cv = sigma2 * np.einsum("ij,gjk,lk->gil", lam, Minv, lam)
                sd = np.sqrt(np.clip(np.diagonal(cv, axis1=1, axis2=2), 0.0, None))
                for k, g in enumerate(gidx):
                    u[g] = b[k]
                    csd[g] = sd[k]
            out["u"] = u
            out["cond_sd"] = csd
        return out


def _warning_text(w: warnings.WarningMessage) -> str:
    return f"{w.category.__name__}: {w.message}"


def _relative_params(res) -> tuple[np.ndarray, np.ndarray]:
    po = res.params_object
    cov_re = np.asarray(po.cov_re, dtype=float) if res.k_re > 0 else np.zeros((0, 0))
    vc = np.asarray(po.vcomp, dtype=float)
    return cov_re, vc


def fit_engine(
    spec: ModelSpec,
    data: pd.DataFrame,
    *,
    optimizers: Sequence[Sequence[str]] = DEFAULT_OPTIMIZERS,
    max_iter: int | None = None,
) -> FitResult:
    """Fit ``spec`` to ``data`` with statsmodels MixedLM and return a :class:`FitResult`.

    Rows with a missing value in any column the model uses are dropped (``fit["n_dropped_missing"]``).
    ``optimizers``: optimiser sequences, each passed as ``MixedLM.fit(method=[...])``; the attempt
    with the best log-likelihood wins.  ``max_iter`` caps optimiser iterations (for testing).
    """
    design, n_dropped = _build_design(spec, data)
    vcspec = None
    if design.vc_names:
        vcspec = VCSpec(
            design.vc_names,
            [
                [[f"{name}[{i}]" for i in range(m.shape[1])] for m in mats]
                for name, mats in zip(design.vc_names, design.vc_mats)
            ],
            design.vc_mats,
        )
    model = MixedLM(design.y, design.X, groups=design.outer_codes, exog_re=design.exog_re, exog_vc=vcspec)
    prof = _Profiler(model, design)

    fit_kwargs = {} if max_iter is None else {"maxiter": int(max_iter)}
    attempts: list[dict] = []
    results: list[Any] = []
    evals: list[dict | None] = []
    for methods in optimizers:
        methods = [str(m) for m in methods]
        label = "+".join(methods)
        rec: dict[str, Any] = {"optimizer": label}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res = model.fit(reml=spec.reml, method=methods, **fit_kwargs)
            except Exception as exc:  # recorded; another attempt may succeed
                res = None
                rec["error"] = f"{type(exc).__name__}: {exc}"
        wtexts = list(dict.fromkeys(_warning_text(w) for w in caught))
        ev = None
        if res is not None:
            try:
                ev = prof.evaluate(*_relative_params(res), reml=spec.reml)
            except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
                rec["error"] = f"{type(exc).__name__}: {exc}"
            rec["loglik"] = ev["loglik"] if ev else math.nan
            rec["llf_statsmodels"] = float(res.llf)
            rec["converged"] = bool(res.converged)
            rec["retried"] = any("Retrying MixedLM optimization" in t for t in wtexts)
        else:
            rec.update(loglik=math.nan, llf_statsmodels=math.nan, converged=False, retried=False)
        rec["warnings"] = wtexts
        attempts.append(rec)
        results.append(res)
        evals.append(ev)

    ok = [i for i, ev in enumerate(evals) if ev is not None and math.isfinite(ev["loglik"])]
    if not ok:
        raise RuntimeError(
            f"model {spec.name!r}: every optimiser attempt failed: "
            + "; ".join(f"{a['optimizer']}: {a.get('error', 'non-finite log-likelihood')}" for a in attempts)
        )
    best_ll = max(evals[i]["loglik"] for i in ok)
    tied = [i for i in ok if evals[i]["loglik"] >= best_ll - TIE_TOL]
    conv_tied = [i for i in tied if attempts[i]["converged"]]
    win = (conv_tied or tied)[0]
    res = results[win]
    cov_re_rel, vc_rel = _relative_params(res)
    ev = prof.evaluate(cov_re_rel, vc_rel, reml=spec.reml, blups=True)
    sigma2 = ev["sigma2"]
    cov_re = sigma2 * cov_re_rel
    vcomp = sigma2 * vc_rel
    beta = ev["beta"]
    vcov = ev["vcov"]

    # ---- fixed effects
    se = np.sqrt(np.clip(np.diag(vcov), 0.0, None))
    z = np.divide(beta, se, out=np.full_like(beta, np.nan), where=se > 0)
    fe_sm = np.asarray(res.fe_params, dtype=float)
    with warnings.catch_warnings(record=True) as caught_se:
        warnings.simplefilter("always")
        try:
            se_sm = np.asarray(res.bse_fe, dtype=float)
        except Exception:  # singular Hessian
            se_sm = np.full_like(beta, np.nan)
    se_sm_warnings = list(dict.fromkeys(_warning_text(w) for w in caught_se))
    fixed = pd.DataFrame(
        {
            "term": design.fe_names,
            "estimate": beta,
            "se": se,
            "se_statsmodels": se_sm,
            "statistic": z,
            "p": 2 * scipy.stats.norm.sf(np.abs(z)),
            "ci_low": beta - Z_975 * se,
            "ci_high": beta + Z_975 * se,
            "estimate_statsmodels": fe_sm,
        }
    )
    vcov_df = pd.DataFrame(vcov, index=design.fe_names, columns=design.fe_names)

    # ---- variance components (the outer term's correlated block, then one row per variance component)
    k_re = len(design.re_names)
    blocks = [(design.outer_name, list(design.re_names), cov_re, True)] if k_re else []
    blocks += [(grp, [term], np.array([[v]], dtype=float), False) for (grp, term), v in zip(design.vc_info, vcomp)]
    variance_components = variance_table(blocks, sigma2)

    # ---- BLUPs and fitted values
    re_rows = []
    fitted_cond = np.empty(len(design.y))
    for g in range(model.n_groups):
        u = ev["u"][g]
        sd = ev["cond_sd"][g]
        for i, nm in enumerate(design.re_names):
            re_rows.append((design.outer_name, design.outer_labels[g], nm, u[i], sd[i]))
        pos = k_re
        for j, (grp, term) in enumerate(design.vc_info):
            width = design.vc_mats[j][g].shape[1]
            for c in range(width):
                re_rows.append((grp, design.vc_levels[j][g][c], term, u[pos + c], sd[pos + c]))
            pos += width
        rows = model.row_indices[g]
        fitted_cond[rows] = prof.X_li[g] @ beta + prof.Z[g] @ u
    random_effects = pd.DataFrame(re_rows, columns=["group", "level", "term", "value", "cond_sd"])
    random_effects = random_effects.sort_values(["group", "term", "level"], kind="stable", ignore_index=True)
    fitted = pd.DataFrame(
        {
            "row": design.row_index,
            "fitted_marginal": design.X @ beta,
            "fitted_conditional": fitted_cond,
            "resid": design.y - fitted_cond,
        }
    )

    # ---- flags
    converged = bool(attempts[win]["converged"])
    # among attempts that reported convergence: some stopped at a worse optimum
    lls = [evals[i]["loglik"] for i in ok if attempts[i]["converged"]]
    optimum_disagreement = len(lls) > 1 and (max(lls) - min(lls)) > OPTIMUM_DISAGREEMENT_TOL
    refitted = win != 0 or bool(attempts[win]["retried"])
    exact_zero = bool(np.any(fe_sm == 0.0) or np.any(beta == 0.0))
    simplified = bool(design.simplification)

    all_warnings = []
    for a in attempts:
        for t in a["warnings"]:
            all_warnings.append(f"[{a['optimizer']}] {t}")
    for t in se_sm_warnings:
        all_warnings.append(f"[se_statsmodels] {t}")
    notes = []
    if exact_zero:
        notes.append(
            "statsmodels returned a fixed effect of exactly 0.0 (statsmodels issue #10239); "
            "estimates reported are GLS at the fitted variance parameters"
        )
    n_cov = model.k_re2 + model.k_vc
    fit_info = {
        **likelihood_info(
            spec, "statsmodels", statsmodels.__version__, ev["loglik"], design.X.shape[1] + n_cov + 1, len(design.y)
        ),
        "n_dropped_missing": n_dropped,
        "n_groups": design.n_groups,
        "residual_variance": sigma2,
        "optimizer": attempts[win]["optimizer"],
        "converged": converged,
        "boundary": False,  # set by finish_result
        "refitted": refitted,
        "optimum_disagreement": optimum_disagreement,
        "exact_zero_fixed": exact_zero,
        "simplified": simplified,
        "simplification": "; ".join(design.simplification),
        "attempts": attempts,
        "warnings": all_warnings,
        "notes": notes,
        "df_method": DF_METHOD,
        "se_method": SE_METHOD,
        "llf_statsmodels": float(res.llf),
        "max_abs_diff_estimate_vs_statsmodels": float(np.max(np.abs(beta - fe_sm))),
        "formula_lme4": to_lme4_formula(spec),
        "formula_lme4_fitted": to_lme4_formula(spec, fitted=True),
        "formula_patsy": to_patsy_formula(spec),
        "statsmodels_call": {
            "groups": design.outer_name,
            "re_formula": design.re_formula if design.re_formula is not None else "0",
            "vc_formula": design.vc_formula,
        },
        "max_iter": max_iter,
    }
    if not converged:
        warnings.warn(
            f"model {spec.name!r}: the best optimiser attempt ({attempts[win]['optimizer']}) did not "
            "converge; result returned with flag 'not_converged'",
            FitWarning,
            stacklevel=4,
        )
    flag_values = {
        "not_converged": not converged,
        "refitted": refitted,
        "optimum_disagreement": optimum_disagreement,
        "exact_zero_fixed": exact_zero,
        "simplified": simplified,
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
        engine_result=res,
    )


def engine_version() -> str:
    """The statsmodels version this engine runs on."""
    return statsmodels.__version__
