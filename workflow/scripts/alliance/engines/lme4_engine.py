"""Engine ``"lme4"``: R's lme4 (the field's reference) with lmerTest's Satterthwaite df, run
in a subprocess (``Rscript``; needs R with the packages lme4, lmerTest and jsonlite:
``apt-get install r-base-core r-cran-lme4 r-cran-lmertest``).

``fit(spec, data, engine="lme4")`` ends here.  The design is built in Python exactly as for the
other engines (same rows, same treatment coding, same names), written to a temporary binary file
(float64 columns; no CSV round trip, no rounding) and fitted by ``lme4::lmer`` with lme4's
default control (``nloptwrap``/BOBYQA, lme4's convergence checks).  lmerTest's Satterthwaite df
are computed on the fitted model (``as_lmerModLmerTest``).  Fixed effects, ``vcov``, ``VarCorr``,
sigma, the log-likelihood, the df and lme4's convergence messages come back as JSON; BLUPs,
conditional SDs, fitted values, flags and the profiled check are computed by
:mod:`alliance.engines.common`, as for mixedlm.

lme4's convergence messages ("Model failed to converge with max|grad| ...") raise
``not_converged`` (they are recorded in ``fit["warnings"]``); lme4 is known to give them on large
data at optima every engine agrees on (methods.md section 7.5), and ``run.cross_check`` is the way
to confirm such a fit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
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

ENGINE = "lme4"
INSTALL_HINT = "install R with lme4, lmerTest and jsonlite (Debian/Ubuntu: apt-get install r-base-core r-cran-lme4 r-cran-lmertest)"

R_SCRIPT = r"""
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
dir <- args[[1]]
meta <- fromJSON(file.path(dir, "meta.json"), simplifyVector = TRUE)
n <- meta$n
cols <- meta$columns
con <- file(file.path(dir, "data.bin"), "rb")
v <- readBin(con, "double", n = n * length(cols), size = 8, endian = "little")
close(con)
df <- as.data.frame(matrix(v, nrow = n, ncol = length(cols), dimnames = list(NULL, cols)))
rm(v)
for (g in meta$groups) df[[g]] <- factor(df[[g]])
ctrl <- if (is.null(meta$max_iter)) lmerControl() else lmerControl(optCtrl = list(maxeval = meta$max_iter, maxfun = meta$max_iter))
msgs <- character(0)
t0 <- proc.time()[["elapsed"]]
fit <- withCallingHandlers(
  lme4::lmer(as.formula(meta$formula), data = df, REML = meta$reml, control = ctrl),
  warning = function(w) { msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") },
  message = function(m) { msgs <<- c(msgs, trimws(conditionMessage(m))); invokeRestart("muffleMessage") }
)
t1 <- proc.time()[["elapsed"]]
df_sat <- NULL
df_error <- NULL
jac <- NULL
vcov_varpar <- NULL
tryCatch({
  lt <- withCallingHandlers(
    lmerTest::as_lmerModLmerTest(fit),
    warning = function(w) { msgs <<- c(msgs, paste("[lmerTest]", conditionMessage(w))); invokeRestart("muffleWarning") }
  )
  co <- summary(lt)$coefficients
  df_sat <- unname(co[, "df"])
  jac <- lapply(lt@Jac_list, function(J) unname(as.matrix(J)))
  vcov_varpar <- unname(as.matrix(lt@vcov_varpar))
}, error = function(e) { df_error <<- conditionMessage(e) })
t2 <- proc.time()[["elapsed"]]
vc <- VarCorr(fit)
varcorr <- lapply(names(vc), function(nm) {
  m <- vc[[nm]]
  list(name = nm, terms = I(rownames(m)), cov = unname(as.matrix(m)))
})
conv <- fit@optinfo$conv
out <- list(
  fixed_names = I(names(fixef(fit))),
  beta = I(unname(fixef(fit))),
  vcov = unname(as.matrix(vcov(fit))),
  sigma2 = sigma(fit)^2,
  n_obs = nrow(df),
  loglik = as.numeric(logLik(fit)),
  theta = I(unname(getME(fit, "theta"))),
  varcorr = varcorr,
  df = if (is.null(df_sat)) NULL else I(df_sat),
  jac_list = jac,
  vcov_varpar = vcov_varpar,
  df_error = df_error,
  is_singular = isSingular(fit),
  optimizer = fit@optinfo$optimizer,
  opt_code = if (is.null(conv$opt)) 0L else conv$opt,
  lme4_messages = I(as.character(unlist(conv$lme4$messages))),
  optinfo_warnings = I(as.character(unlist(fit@optinfo$warnings))),
  messages = I(msgs),
  feval = fit@optinfo$feval,
  seconds_fit = t1 - t0,
  seconds_satterthwaite = t2 - t1,
  versions = list(R = paste(R.version$major, R.version$minor, sep = "."),
                  lme4 = as.character(packageVersion("lme4")),
                  lmerTest = as.character(packageVersion("lmerTest")))
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null"), file.path(dir, "out.json"))
"""


def rscript() -> str:
    exe = shutil.which("Rscript")
    if exe is None:
        raise RuntimeError(f"engine 'lme4' needs Rscript on the PATH: {INSTALL_HINT}")
    return exe


def run_r(d, formula: str, reml: bool, max_iter: int | None = None) -> dict:
    """Fit ``formula`` on the engine columns of ``d`` in R; returns R's JSON output."""
    exe = rscript()
    cols = engine_columns(d)
    names = list(cols)
    groups = [g for g in ("GO", "GI") if g in cols]
    with tempfile.TemporaryDirectory(prefix="alliance_lme4_") as tmp:
        tmp = Path(tmp)
        with open(tmp / "data.bin", "wb") as fh:
            for c in names:
                np.ascontiguousarray(cols[c], dtype="<f8").tofile(fh)
        meta = {
            "n": int(d.n),
            "columns": names,
            "groups": groups,
            "formula": formula,
            "reml": bool(reml),
            "max_iter": None if max_iter is None else int(max_iter),
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        (tmp / "fit.R").write_text(R_SCRIPT)
        env = dict(os.environ, LC_ALL="C", LANG="C")
        proc = subprocess.run([exe, "--vanilla", str(tmp / "fit.R"), str(tmp)], capture_output=True, text=True, env=env)
        if proc.returncode != 0 or not (tmp / "out.json").exists():
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise RuntimeError(
                f"engine 'lme4': Rscript failed (exit {proc.returncode}): {tail or 'no output'}; {INSTALL_HINT}"
            )
        return json.loads((tmp / "out.json").read_text())


def _covariances(out: dict, d) -> tuple[np.ndarray, np.ndarray]:
    ko, ki = d.Zo.shape[1], d.Zi.shape[1]
    cov_o, cov_i = np.zeros((ko, ko)), np.zeros((ki, ki))
    names_o = ["(Intercept)"] + [f"SO{j}" for j in range(ko - 1)]
    names_i = ["(Intercept)"] + [f"SI{j}" for j in range(ki - 1)]
    seen = set()
    for block in out["varcorr"]:
        factor = block["name"].split(".")[0]  # '||' terms come as GO, GO.1, ...
        if factor == "GO":
            cov, names = cov_o, names_o
        elif factor == "GI":
            cov, names = cov_i, names_i
        else:
            raise RuntimeError(f"lme4 returned an unexpected grouping factor {block['name']!r}")
        terms = list(block["terms"])
        idx = [names.index(t) for t in terms]
        cov[np.ix_(idx, idx)] = np.asarray(block["cov"], dtype=float).reshape(len(terms), len(terms))
        seen.update((factor, t) for t in terms)
    expected = {("GO", t) for t in names_o[:ko]} | {("GI", t) for t in names_i[:ki]}
    if seen != expected:
        raise RuntimeError(f"lme4 variance components {sorted(seen)} do not match the design {sorted(expected)}")
    return cov_o, cov_i


def _satterthwaite_data(out: dict, p: int, method: str) -> SatterthwaiteData | None:
    """lmerTest's ``Jac_list`` (derivatives of Vcov(b) in (theta, sigma)) and ``vcov_varpar`` (2 H^-1
    of the deviance), for contrasts and joint tests (:mod:`alliance.engines.ddf`, style ``"lmerTest"``);
    None when lmerTest gave none or they are not finite."""
    if not out.get("jac_list") or out.get("vcov_varpar") is None:
        return None
    jacobian = np.stack([np.asarray(j, dtype=float).reshape(p, p) for j in out["jac_list"]])
    k = jacobian.shape[0]
    varpar_cov = np.asarray(out["vcov_varpar"], dtype=float).reshape(k, k)
    if not (np.all(np.isfinite(jacobian)) and np.all(np.isfinite(varpar_cov))):
        return None
    return SatterthwaiteData(jacobian, varpar_cov, "lmerTest", float(int(out["n_obs"]) - p), method)


def fit_engine(spec: ModelSpec, data: pd.DataFrame, *, max_iter: int | None = None, **_: Any) -> FitResult:
    """Fit ``spec`` with lme4 in R; see the module docstring."""
    t0 = time.perf_counter()
    d = block_design(spec, data, ENGINE)
    formula = fitting_formula(d)
    t1 = time.perf_counter()
    out = run_r(d, formula, spec.reml, max_iter)
    t2 = time.perf_counter()
    if list(out["fixed_names"]) != [f"X{j}" for j in range(d.p)]:
        raise RuntimeError(f"lme4 changed the fixed-effects design: {out['fixed_names']}")
    beta = np.asarray(out["beta"], dtype=float)
    vcov = np.asarray(out["vcov"], dtype=float).reshape(d.p, d.p)
    cov_o, cov_i = _covariances(out, d)
    v = out["versions"]
    version = f"{v['lme4']} (lmerTest {v['lmerTest']}, R {v['R']})"
    df = None
    df_method = "Wald z (asymptotic)"
    if out.get("df") is not None:
        df = np.asarray(out["df"], dtype=float)
        if np.all(np.isfinite(df)):
            df_method = f"Satterthwaite (lmerTest {v['lmerTest']})"
        else:
            df = None
    ddf_data = _satterthwaite_data(out, d.p, df_method) if df is not None else None
    lme4_messages = [m for m in out["lme4_messages"] if m]
    # lme4 reports a singular fit as a message too; that is the boundary flag, not non-convergence
    conv_messages = [m for m in lme4_messages if "singular" not in m.lower()]
    converged = int(out["opt_code"]) == 0 and not conv_messages
    messages = list(dict.fromkeys(list(out["messages"]) + lme4_messages + list(out["optinfo_warnings"])))
    if out.get("df_error"):
        messages.append(f"[lmerTest] {out['df_error']}; Wald z used")
    res = assemble(
        d,
        engine=ENGINE,
        engine_version=version,
        beta=beta,
        vcov=vcov,
        cov_outer=cov_o,
        cov_inner=cov_i,
        sigma2=float(out["sigma2"]),
        loglik=float(out["loglik"]),
        df=df,
        df_method=df_method,
        converged=converged,
        engine_singular=bool(out["is_singular"]),
        optimizer=f"lme4 {out['optimizer']}",
        refitted=False,
        messages=messages,
        extra={
            "engine_call": {
                "formula": formula,
                "REML": spec.reml,
                "control": "lmerControl() defaults" + ("" if max_iter is None else f", maxeval {max_iter}"),
            },
            "engine_message": "; ".join(conv_messages),
            "theta": [float(t) for t in out["theta"]],
            "max_iter": max_iter,
        },
        engine_result=out,
    )
    res.ddf = ddf_data
    res.timings = {
        "design": t1 - t0,
        "r_total": t2 - t1,
        "fit": float(out["seconds_fit"]),
        "satterthwaite": float(out["seconds_satterthwaite"]),
        "post": time.perf_counter() - t2,
    }
    if not converged:
        warnings.warn(
            f"model {spec.name!r}: lme4 reported a convergence problem ({'; '.join(conv_messages) or 'optimizer code ' + str(out['opt_code'])}); "
            "result returned with flag 'not_converged'",
            FitWarning,
            stacklevel=4,
        )
    return res
