"""Engine ``"mixedlm"``: the PyPI package mixedlm (Rust-backed lme4 port, MIT licence).

``fit(spec, data, engine="mixedlm")`` ends here.  mixedlm fits lme4's model (same
parameterisation, profiled REML/ML criterion) including the correlated three-level form
``(1 | therapist) + (1 + x | therapist:patient)`` that statsmodels cannot fit, and gives
Satterthwaite df.  Its fixed effects, their covariance matrix, the covariance matrices of the
random effects, the residual variance, the log-likelihood and the df are taken from mixedlm;
BLUPs, conditional SDs, fitted values, flags and an independent profiled check are computed by
:mod:`alliance.engines.common` (mixedlm's own conditional variances cost O(q^2) and take minutes
at a million rows).  mixedlm's result object is freed after use (``FitResult.engine_result`` is
None): it holds its own copies of the design, about 0.7 GB at a million rows.  Agreement with lme4 is tested in ``tests/test_engines.py``; the comparison
with lme4 and statsmodels is in ``docs/engines.md``.

Settings: mixedlm's default optimiser ("auto": L-BFGS-B with exact gradients; if it does not
converge, ends with a large gradient or leaves a correlated variance near zero, COBYQA refits
from the same start and the lower deviance is kept).  A COBYQA result is flagged ``refitted``.
"""

from __future__ import annotations

import gc
import math
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from alliance.engines.common import (
    assemble,
    block_design,
    engine_columns,
    fitting_formula,
)
from alliance.engines.ddf import SatterthwaiteData
from alliance.engines.spec import FitResult, FitWarning, ModelSpec

ENGINE = "mixedlm"
INSTALL_HINT = "pip install mixedlm==1.3.0 (see requirements/run.txt)"
#: from this many rows on, the garbage collector runs after the fit to free mixedlm's design copies
LARGE_DATA_ROWS = 100_000


def _import():
    try:
        import mixedlm  # noqa: F401
        from mixedlm import LmerControl, lmer
        from mixedlm.inference.ddf import satterthwaite_df
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"engine 'mixedlm' needs the mixedlm package: {INSTALL_HINT}") from exc
    return mixedlm, LmerControl, lmer, satterthwaite_df


def engine_version() -> str:
    return _import()[0].__version__


def _covariances(result, d) -> tuple[np.ndarray, np.ndarray]:
    """Covariance matrices of the outer (GO) and inner (GI) terms from mixedlm's VarCorr
    (independent '||' terms may come as several blocks of one grouping factor)."""
    ko, ki = d.Zo.shape[1], d.Zi.shape[1]
    cov_o, cov_i = np.zeros((ko, ko)), np.zeros((ki, ki))
    names_o = ["(Intercept)"] + [f"SO{j}" for j in range(ko - 1)]
    names_i = ["(Intercept)"] + [f"SI{j}" for j in range(ki - 1)]
    seen = set()
    for grp in result.VarCorr().groups.values():
        factor = grp.grouping_factor
        if factor == "GO":
            cov, names = cov_o, names_o
        elif factor == "GI":
            cov, names = cov_i, names_i
        else:
            raise RuntimeError(f"mixedlm returned an unexpected grouping factor {factor!r}")
        idx = [names.index(t) for t in grp.term_names]
        cov[np.ix_(idx, idx)] = np.asarray(grp.cov, dtype=float)
        seen.update((factor, t) for t in grp.term_names)
    expected = {("GO", t) for t in names_o[:ko]} | {("GI", t) for t in names_i[:ki]}
    if seen != expected:
        raise RuntimeError(f"mixedlm variance components {sorted(seen)} do not match the design {sorted(expected)}")
    return cov_o, cov_i


def _satterthwaite_data(res, p: int, method: str) -> SatterthwaiteData:
    """The Jacobian of Vcov(b) in theta and theta's covariance that mixedlm's ``satterthwaite_df``
    used (mixedlm 1.3.0 caches them per result: no second computation), for contrasts and joint
    tests (:mod:`alliance.engines.ddf`, style ``"mixedlm"``)."""
    from mixedlm.inference.ddf import _vcov_derivatives  # private, pinned by requirements/run.txt

    gradients, theta_cov = _vcov_derivatives(res)
    jacobian = np.asarray(gradients, dtype=float).reshape(len(gradients), p, p)
    residual_df = float(res.matrices.n_obs - res.matrices.n_fixed)
    return SatterthwaiteData(jacobian, np.asarray(theta_cov, dtype=float), "mixedlm", residual_df, method)


def fit_engine(spec: ModelSpec, data: pd.DataFrame, *, max_iter: int | None = None, **_: Any) -> FitResult:
    """Fit ``spec`` with mixedlm; see the module docstring."""
    mixedlm, LmerControl, lmer, satterthwaite_df = _import()
    t0 = time.perf_counter()
    d = block_design(spec, data, ENGINE)
    frame = pd.DataFrame(engine_columns(d))
    formula = fitting_formula(d)
    # the design was validated (names, rank, levels) by block_design; mixedlm's own checks
    # would only warn about the 'X0..' column scaling or few levels, which the flags cover
    ctrl = LmerControl(
        check_scaleX="ignore",
        check_nlev_gtreq_5="ignore",
        check_singular=False,
        check_conv=False,
        **({"maxiter": int(max_iter)} if max_iter is not None else {}),
    )
    t1 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = lmer(formula, frame, REML=spec.reml, control=ctrl)
    t2 = time.perf_counter()
    messages = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    if list(res.matrices.fixed_names) != [f"X{j}" for j in range(d.p)]:
        raise RuntimeError(f"mixedlm changed the fixed-effects design: {res.matrices.fixed_names}")
    beta = np.asarray(res.beta, dtype=float)
    vcov = np.asarray(res.vcov(), dtype=float)
    sigma2 = float(res.sigma) ** 2
    loglik = float(res.logLik())
    cov_o, cov_i = _covariances(res, d)

    df = None
    df_method = "Wald z (asymptotic)"
    ddf_data = None
    try:
        with warnings.catch_warnings(record=True) as caught_df:
            warnings.simplefilter("always")
            df = np.asarray(satterthwaite_df(res).df, dtype=float)
            ddf_data = _satterthwaite_data(res, d.p, f"Satterthwaite (mixedlm {mixedlm.__version__})")
        messages += [f"[satterthwaite] {w.category.__name__}: {w.message}" for w in caught_df]
        if not np.all(np.isfinite(df)):
            raise ValueError("non-finite Satterthwaite df")
        df_method = ddf_data.method
    except Exception as exc:  # recorded; tests fall back to Wald z
        messages.append(f"[satterthwaite] {type(exc).__name__}: {exc}; Wald z used")
        df, ddf_data = None, None

    t3 = time.perf_counter()
    message = str(res.message)
    optimizer = str(res.optimizer)
    refitted = optimizer != "L-BFGS-B" and "after L-BFGS-B" in message
    converged = bool(res.converged)
    try:
        singular = bool(res.isSingular())
    except Exception:  # pragma: no cover
        singular = False
    n_iter = int(res.n_iter) if res.n_iter is not None else None
    gradient_norm = (
        None if res.gradient_norm is None or not math.isfinite(res.gradient_norm) else float(res.gradient_norm)
    )
    theta = [float(t) for t in np.asarray(res.theta, dtype=float)]
    # mixedlm's result holds its own copies of the design (about 0.7 GB at a million rows):
    # free it before the BLUPs are computed, and do not keep it in the FitResult (a full
    # collection costs ~0.1 s, more than a small fit: only where the memory matters)
    n_rows = len(frame)
    del res, frame
    if n_rows >= LARGE_DATA_ROWS:
        gc.collect()
    out = assemble(
        d,
        engine=ENGINE,
        engine_version=mixedlm.__version__,
        beta=beta,
        vcov=vcov,
        cov_outer=cov_o,
        cov_inner=cov_i,
        sigma2=sigma2,
        loglik=loglik,
        df=df,
        df_method=df_method,
        converged=converged,
        engine_singular=singular,
        optimizer=f"mixedlm auto ({optimizer})",
        refitted=refitted,
        messages=messages,
        extra={
            "engine_call": {"formula": formula, "REML": spec.reml, "control": repr(ctrl)},
            "engine_message": message,
            "n_iter": n_iter,
            "gradient_norm": gradient_norm,
            "theta": theta,
            "max_iter": max_iter,
        },
        engine_result=None,
    )
    out.ddf = ddf_data
    out.timings = {"design": t1 - t0, "fit": t2 - t1, "satterthwaite": t3 - t2, "post": time.perf_counter() - t3}
    if not converged:
        warnings.warn(
            f"model {spec.name!r}: mixedlm did not converge ({message}); result returned with flag 'not_converged'",
            FitWarning,
            stacklevel=4,
        )
    return out
