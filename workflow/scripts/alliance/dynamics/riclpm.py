"""Random-intercept cross-lagged panel model (RI-CLPM; Hamaker, Kuiper & Grasman 2015) by FIML.

Model (lavaan's standard RI-CLPM, Mulder & Hamaker 2021), for patient i and wave t = 1..K::

    x_t = mu_x_t + RIx + wx_t          y_t = mu_y_t + RIy + wy_t
    wx_t = alpha_t wx_{t-1} + beta_t  wy_{t-1} + u_t        (t >= 2)
    wy_t = delta_t wy_{t-1} + gamma_t wx_{t-1} + v_t

with free wave means; free var(RIx), var(RIy), cov(RIx, RIy); the random intercepts uncorrelated
with the wave-1 within components; free wave-1 within variances and covariance; free innovation
variances and covariance per wave; observed residual variances fixed at 0. The within-person
paths are free per wave (``constrain_paths=False``) or equal over waves (``True``, labels a, b,
c, d); :func:`compare_constraint` tests the constraint by the likelihood ratio.

Estimation is full-information maximum likelihood under missing data (MAR), on the sufficient
statistics of each missing-data pattern (:mod:`alliance.dynamics.fiml`), with the analytic
gradient of the log-likelihood. The optimiser (:mod:`alliance.dynamics.optimise`) is scipy's
``trust-exact`` with the expected (Fisher) information as the Hessian, followed by Newton steps
on the observed information; several starting values are tried if the first does not
converge. Estimates and every default below follow ``lavaan::sem(model, data, missing = "fiml")`` (lavaan 0.6-14):

* standard errors from the observed information, the Hessian of the FIML log-likelihood
  (central finite differences of the analytic gradient, like lavaan's ``observed.information =
  "hessian"``); no bounds on variances (a negative variance is reported and flagged);
* chi-square against the unrestricted (H1) model estimated by EM; baseline = independence
  model (free means and variances); CFI, TLI; RMSEA with N (not N - 1) and its 90 % CI; SRMR =
  lavaan's ``srmr`` (Bentler's, means included, residuals scaled by the H1 SDs); AIC, BIC;
* standardised estimates = lavaan's ``std.all``.

Therapist clustering: when ``cluster`` is given, standard errors are cluster-robust (sandwich)
``H^-1 (G/(G-1) sum_c g_c g_c') H^-1``, with ``H`` the observed information, ``g_c`` the sum of
the casewise score vectors of the patients of cluster c, and G the number of clusters (lavaan's
``se = "robust.cluster"`` for ML); estimates and the chi-square are unchanged. Without a
cluster, standard errors are model-based.

Long-run (cumulative) effects, constrained model only: with ``B = [[alpha, beta], [gamma,
delta]]`` (rows: outcome wx_t, wy_t; columns: predictor wx_{t-1}, wy_{t-1}) the cumulative
effect of a lasting unit change is ``(I - B)^-1``: element [j, k] is the eventual change in the
within-person level of j when the innovation of k is raised by one unit at every wave from now
on (the sum of the k -> j effects over all lags, ``sum_s B^s``). Reported: all four elements with
delta-method SEs and 95 % CIs; ``x->y`` (element [y, x] = gamma / det(I - B)) is the long-run
effect of alliance on symptoms. Requires the spectral radius of B < 1, otherwise the flag
``not_stationary`` is set and the long-run effects are NaN.

Examples
--------
>>> import numpy as np
>>> from alliance.dynamics.process import ProcessParams, simulate_process
>>> long, truth = simulate_process(ProcessParams(n_sessions=4), 300, np.random.default_rng(5))
>>> fit = fit_riclpm(long, waves=4, patient="patient", session="session",
...                  x="alliance_score", y="symptom_score")
>>> fit.converged, fit.flags, fit.fit_indices["df"]
(True, [], 17)
>>> round(float(fit.estimate("gamma")), 3), round(float(fit.long_run.loc["x->y", "estimate"]), 3)
(-0.174, -0.473)
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from . import fiml
from .fit_measures import fit_measures
from .optimise import GRADIENT_TOL, Objective, optimise
from .riclpm_model import RICLPMSpec

__all__ = ["RICLPMResult", "RICLPMWarning", "compare_constraint", "fit_riclpm", "riclpm_long_to_wide"]

Z975 = float(stats.norm.ppf(0.975))
#: a variance at or below this share of the observed variance of its variable is "at the boundary"
BOUNDARY_SHARE = 1e-3


class RICLPMWarning(UserWarning):
    """A fit problem (non-convergence, non-positive-definite matrices, boundary, non-stationarity)."""


@dataclass
class RICLPMResult:
    """A fitted RI-CLPM.

    ``parameters``: one row per free parameter, indexed by ``name`` -- ``alpha``, ``beta``,
    ``gamma``, ``delta`` (equal paths; ``alpha3`` etc. per wave when free: alpha wx[t-1] -> wx[t],
    beta wy[t-1] -> wx[t], gamma wx[t-1] -> wy[t], delta wy[t-1] -> wy[t]); ``var_RIx``,
    ``var_RIy``, ``cov_RIx_RIy``; ``var_wx1``, ``var_wy1``, ``cov_wx1_wy1``; per wave t >= 2
    ``var_u{t}``, ``var_v{t}``, ``cov_u{t}_v{t}`` (innovations of x and y); ``mean_x{t}``,
    ``mean_y{t}``. Columns: lavaan-style ``lhs``, ``op``, ``rhs``, ``label``, then ``estimate``,
    ``se``, ``z``, ``p``, ``ci_low``, ``ci_high`` (95 % Wald) and ``std_all`` (NaN for an equal
    path, whose standardised value differs by wave: see :meth:`lavaan_table`).
    ``fit_indices``: keys as lavaan's ``fitMeasures()`` names them (``chisq``, ``df``,
    ``pvalue``, ``cfi``, ``tli``, ``rmsea``, ``rmsea.ci.lower``, ``srmr``, ``logl``, ``aic``,
    ``bic``, ...). ``long_run``: indexed ``x->x``, ``y->x``, ``x->y``, ``y->y`` (constrained
    model; empty otherwise). ``flags`` / ``notes``: problems found (never silent). ``vcov``: the
    covariance matrix of the estimates (model-based or cluster-robust, ``se_type``).
    """

    parameters: pd.DataFrame
    fit_indices: dict
    long_run: pd.DataFrame
    flags: list[str]
    notes: list[str]
    n_patients: int
    n_patterns: int
    waves: int
    constrain_paths: bool
    converged: bool
    iterations: int
    loglik: float
    vcov: pd.DataFrame
    se_type: str
    n_clusters: int | None
    implied_mean: np.ndarray
    implied_cov: np.ndarray
    h1_mean: np.ndarray
    h1_cov: np.ndarray
    gradient_max: float
    data_digest: str
    std_all_by_wave: dict = field(default_factory=dict)

    def estimate(self, name: str) -> float:
        """The estimate of one parameter by name (e.g. ``"gamma"``, ``"var_RIx"``)."""
        return float(self.parameters.loc[name, "estimate"])

    def lavaan_table(self) -> pd.DataFrame:
        """One row per row of lavaan's parameter table: equality-constrained paths repeated per wave."""
        rows = []
        for name, row in self.parameters.iterrows():
            cells = self.std_all_by_wave[name]
            if self.constrain_paths and row["op"] == "~":
                out_var, in_var = row["lhs"][:2], row["rhs"][:2]
                for t, std in zip(range(2, self.waves + 1), cells):
                    rows.append(
                        {
                            **row.to_dict(),
                            "name": name,
                            "lhs": f"{out_var}{t}",
                            "rhs": f"{in_var}{t - 1}",
                            "std_all": std,
                        }
                    )
            else:
                rows.append({**row.to_dict(), "name": name, "std_all": cells[0]})
        return pd.DataFrame(rows)


# ============================================================================ data
def riclpm_long_to_wide(
    data: pd.DataFrame,
    *,
    patient: str,
    session: str,
    x: str,
    y: str,
    waves: int,
    sessions: list | None = None,
    cluster: str | None = None,
) -> pd.DataFrame:
    """Long (one row per patient and session) to the wide matrix of :func:`fit_riclpm`.

    Columns ``x1..xK, y1..yK`` (NaN where a session is missing) for the first ``waves`` sessions
    in sorted order of ``session`` over the whole data set (or the given ``sessions``), one row
    per patient (sorted), plus ``cluster`` when named (it must be constant within patient).
    """
    for col in [patient, session, x, y] + ([cluster] if cluster else []):
        if col not in data.columns:
            raise KeyError(f"column {col!r} not in the data")
    if data.duplicated([patient, session]).any():
        raise ValueError(f"more than one row per {patient} and {session}")
    chosen = list(sessions) if sessions is not None else sorted(pd.unique(data[session].dropna()))[:waves]
    if len(chosen) != waves:
        raise ValueError(f"asked for {waves} waves but the data have {len(chosen)} sessions")
    sub = data[data[session].isin(chosen)]
    position = {s: t for t, s in enumerate(chosen, start=1)}
    patients = np.sort(pd.unique(data[patient]))
    wide = pd.DataFrame(index=pd.Index(patients, name=patient))
    for var, prefix in ((x, "x"), (y, "y")):
        piv = sub.pivot(index=patient, columns=session, values=var).reindex(index=patients, columns=chosen)
        for s in chosen:
            wide[f"{prefix}{position[s]}"] = piv[s].astype(float).to_numpy()
    if cluster:
        per = data.groupby(patient)[cluster].agg(["nunique", "first"])
        if (per["nunique"] > 1).any():
            raise ValueError(f"{cluster!r} is not constant within {patient}")
        wide[cluster] = per["first"].reindex(patients).to_numpy()
    return wide


def _wide_matrix(data, waves, x, y, patient, session, sessions, cluster):
    """(values (n, 2K), cluster labels or None, x names, y names) from wide or long input."""
    if session is not None:
        if patient is None or waves is None:
            raise ValueError("long data need patient=, session= and waves=")
        if cluster is not None and not isinstance(cluster, str):
            raise TypeError("with long data, cluster must name a column (constant within patient)")
        cluster_col = cluster
        wide = riclpm_long_to_wide(
            data, patient=patient, session=session, x=x, y=y, waves=waves, sessions=sessions, cluster=cluster_col
        )
        xs, ys = [f"x{t}" for t in range(1, waves + 1)], [f"y{t}" for t in range(1, waves + 1)]
        labels = wide[cluster_col].to_numpy() if cluster_col else None
        return wide[xs + ys].to_numpy(float), labels, xs, ys
    frame = pd.DataFrame(data)
    if waves is None:
        waves = 0
        while f"{x}{waves + 1}" in frame.columns and f"{y}{waves + 1}" in frame.columns:
            waves += 1
    xs, ys = [f"{x}{t}" for t in range(1, waves + 1)], [f"{y}{t}" for t in range(1, waves + 1)]
    missing = [c for c in xs + ys if c not in frame.columns]
    if missing:
        raise KeyError(f"wide data lack the columns {missing}")
    labels = frame[cluster].to_numpy() if isinstance(cluster, str) else cluster
    if labels is not None and len(labels) != len(frame):
        raise ValueError(f"cluster has {len(labels)} labels for {len(frame)} rows")
    return frame[xs + ys].to_numpy(float), labels, xs, ys


# ============================================================================ inference
def _long_run(theta, vcov, spec: RICLPMSpec) -> tuple[pd.DataFrame, bool]:
    """(I - B)^-1 with delta-method SEs (constrained model); NaN when B is not stationary."""
    names = [p.name for p in spec.params]
    idx = [names.index(n) for n in ("alpha", "beta", "gamma", "delta")]
    a, b, c, d = theta[idx]
    bmat = np.array([[a, b], [c, d]])
    stationary = bool(np.max(np.abs(np.linalg.eigvals(bmat))) < 1.0)
    inv = np.linalg.inv(np.eye(2) - bmat)
    # d inv / d B_ij = inv E_ij inv; parameters in the order a (0,0), b (0,1), c (1,0), d (1,1)
    jac = np.array(
        [
            [np.outer(inv[:, i], inv[j, :])[r, s] for i, j in ((0, 0), (0, 1), (1, 0), (1, 1))]
            for r, s in ((0, 0), (0, 1), (1, 0), (1, 1))
        ]
    )
    cov = jac @ vcov[np.ix_(idx, idx)] @ jac.T
    rows = []
    labels = {(0, 0): "x->x", (0, 1): "y->x", (1, 0): "x->y", (1, 1): "y->y"}
    defs = {(0, 0): "(1-delta)/det", (0, 1): "beta/det", (1, 0): "gamma/det", (1, 1): "(1-alpha)/det"}
    for k, (r, s) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        est, se = (inv[r, s], float(np.sqrt(cov[k, k]))) if stationary else (np.nan, np.nan)
        z = est / se if stationary else np.nan
        rows.append(
            {
                "effect": labels[(r, s)],
                "from": "xy"[s],
                "to": "xy"[r],
                "definition": f"[(I-B)^-1][{'xy'[r]},{'xy'[s]}] = {defs[(r, s)]}, det = (1-alpha)(1-delta)-beta*gamma",
                "estimate": est,
                "se": se,
                "z": z,
                "p": 2 * stats.norm.sf(abs(z)) if stationary else np.nan,
                "ci_low": est - Z975 * se,
                "ci_high": est + Z975 * se,
            }
        )
    return pd.DataFrame(rows).set_index("effect"), stationary


def _cluster_meat(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, int]:
    """G/(G-1) * sum_c g_c g_c' with g_c the within-cluster sums of the casewise scores."""
    codes, uniq = pd.factorize(pd.Series(labels), sort=True)
    if (codes < 0).any():
        raise ValueError("cluster labels must not be missing")
    g = len(uniq)
    if g < 2:
        raise ValueError("cluster-robust standard errors need at least 2 clusters")
    sums = np.zeros((g, scores.shape[1]))
    np.add.at(sums, codes, scores)
    return sums.T @ sums * g / (g - 1), g


def _check_flags(spec, theta, parts, info, md, stationary) -> tuple[list[str], list[str]]:
    """Flags and the notes that explain them."""
    flags, notes = [], []

    def pd_ok(m):
        return bool(np.all(np.linalg.eigvalsh((m + m.T) / 2) > 0))

    bad = []
    if not pd_ok(parts["sigma"]):
        bad.append("implied covariance matrix")
    if not pd_ok(parts["phi"]):
        bad.append("random-intercept covariance (Phi)")
    for t in range(1, spec.waves + 1):
        cells = [spec.within(0, t), spec.within(1, t)]
        if not pd_ok(parts["psi"][np.ix_(cells, cells)]):
            bad.append("wave-1 within covariance" if t == 1 else f"innovation covariance at wave {t}")
    if info is None or not pd_ok(info):
        bad.append("information matrix")
    if bad:
        flags.append("not_positive_definite")
        notes.append("not positive definite: " + "; ".join(bad))
    observed_var = np.nanvar(md.values, axis=0)
    scale = {"x": np.nanmean(observed_var[: spec.waves]), "y": np.nanmean(observed_var[spec.waves :])}
    at_zero = [
        p.name
        for value, p in zip(theta, spec.params)
        if p.is_variance
        and value <= BOUNDARY_SHARE * scale["y" if p.lhs in ("RIy", "wy1") or p.lhs.startswith("wy") else "x"]
    ]
    if at_zero:
        flags.append("boundary")
        notes.append("variance at or below ~0: " + ", ".join(at_zero))
    if not stationary:
        flags.append("not_stationary")
        notes.append("spectral radius of the path matrix B >= 1: long-run effects not defined (NaN)")
    return flags, notes


# ============================================================================ main
def fit_riclpm(
    data: pd.DataFrame,
    waves: int | None = None,
    *,
    constrain_paths: bool = True,
    cluster=None,
    patient: str | None = None,
    session: str | None = None,
    x: str = "x",
    y: str = "y",
    sessions: list | None = None,
    max_iter: int = 500,
) -> RICLPMResult:
    """Fit the RI-CLPM by FIML (see the module docstring for the model and lavaan's defaults it follows).

    Parameters
    ----------
    data
        Wide (one row per patient; columns ``{x}1..{x}K``, ``{y}1..{y}K``; NaN = missing) or,
        when ``session`` is given, long (one row per patient and session; ``x``/``y`` name the
        alliance and symptom columns) - converted by :func:`riclpm_long_to_wide`.
    waves
        K, the number of waves (the first K sessions). Required for long data; for wide data
        the default is every consecutive ``{x}t``/``{y}t`` pair. K >= 3 (identification).
    constrain_paths
        True: lagged paths equal over waves (a, b, c, d); False: free per wave.
    cluster
        None (model-based SEs), a column name (wide: a column; long: constant within patient),
        or labels aligned with the rows of the wide data: cluster-robust sandwich SEs.
    patient, session, sessions
        Long data only: the id columns and, optionally, the session values to use as waves.
    max_iter
        Iteration limit of the trust-region optimiser (per start).

    Returns
    -------
    RICLPMResult
        ``parameters`` (name, lhs, op, rhs, label, estimate, se, z, p, ci_low, ci_high,
        std_all), ``fit_indices``, ``long_run``, ``flags``, ``vcov``, and the sample counts.
        Flags (each also raised as :class:`RICLPMWarning`): ``not_converged``,
        ``not_positive_definite``, ``boundary``, ``not_stationary``, ``few_clusters`` (no more
        clusters than parameters: the sandwich is singular).

    Raises
    ------
    ValueError
        Fewer than 3 waves, or a variable observed in fewer than 2 rows (not identified).
    """
    # (long only for its docstring and the one-keyword-per-line result constructor below)
    values, labels, xs, ys = _wide_matrix(data, waves, x, y, patient, session, sessions, cluster)
    spec = RICLPMSpec(len(xs), constrain_paths, xs, ys)
    md = fiml.group_patterns(values)
    counts = (~np.isnan(md.values)).sum(axis=0)
    if (counts < 2).any():
        raise ValueError(
            f"not identified: {[n for n, c in zip(xs + ys, counts) if c < 2]} observed in fewer than 2 rows"
        )
    notes = [f"{md.n_dropped} rows with no observed value dropped"] if md.n_dropped else []
    h1 = fiml.estimate_h1(md)
    if not h1.converged:
        notes.append(f"EM for the unrestricted model did not converge in {h1.iterations} iterations")
    starts = [spec.start_from_moments(h1.mean, h1.cov)] + [spec.start_default(h1.mean, h1.cov, b) for b in (0.2, 0.0)]
    run = optimise(Objective(spec, md), starts, max_iter)
    theta = run["theta"]
    parts = spec.implied(theta)
    info = None if run["hess"] is None else run["hess"] * md.n  # observed information (of the total logL)
    vcov, se_type, n_clusters = _covariance(
        spec, md, parts, info, None if labels is None else np.asarray(labels)[md.kept]
    )
    std = spec.standardized(theta, parts)
    if constrain_paths:
        long_run, stationary = _long_run(theta, vcov, spec)
    else:
        long_run, stationary = (
            pd.DataFrame(columns=["from", "to", "definition", "estimate", "se", "z", "p", "ci_low", "ci_high"]),
            True,
        )
        notes.append("long-run effects are reported for the constrained (equal-paths) model only")
    opt_flags, opt_notes = _optimiser_flags(run, n_clusters, spec.q)
    flags, flag_notes = _check_flags(spec, theta, parts, info, md, stationary)
    flags, flag_notes = opt_flags + flags, opt_notes + flag_notes
    if flags:
        warnings.warn(f"RI-CLPM fit: {', '.join(flags)} ({'; '.join(flag_notes)})", RICLPMWarning, stacklevel=2)
    ll = -run["fun"] * md.n
    table = _parameter_table(spec, theta, vcov, std)
    return RICLPMResult(
        parameters=table,
        fit_indices=fit_measures(md, spec.q, ll, parts["mu"], parts["sigma"], h1),
        long_run=long_run,
        flags=flags,
        notes=notes + flag_notes,
        n_patients=md.n,
        n_patterns=md.n_patterns,
        waves=spec.waves,
        constrain_paths=constrain_paths,
        converged=run["converged"],
        iterations=run["iterations"],
        loglik=ll,
        vcov=pd.DataFrame(vcov, index=table.index, columns=table.index),
        se_type=se_type,
        n_clusters=n_clusters,
        implied_mean=parts["mu"],
        implied_cov=parts["sigma"],
        h1_mean=h1.mean,
        h1_cov=h1.cov,
        gradient_max=run["gmax"],
        data_digest=hashlib.sha256(np.ascontiguousarray(md.values).tobytes()).hexdigest(),
        std_all_by_wave={p.name: s for p, s in zip(spec.params, std)},
    )


def _optimiser_flags(run: dict, n_clusters: int | None, q: int) -> tuple[list[str], list[str]]:
    """``not_converged``; ``few_clusters`` (no more clusters than parameters: the sandwich is singular)."""
    flags, notes = [], []
    if not run["converged"]:
        flags.append("not_converged")
        notes.append(f"optimiser: {run['message']}; max |gradient| per case {run['gmax']:.2e} (tol {GRADIENT_TOL:g})")
    if n_clusters is not None and n_clusters <= q:
        flags.append("few_clusters")
        notes.append(f"{n_clusters} clusters for {q} parameters: the cluster-robust covariance matrix is singular")
    return flags, notes


def _covariance(spec, md, parts, info, labels) -> tuple[np.ndarray, str, int | None]:
    """(vcov, description, number of clusters): inverse observed information, or the cluster sandwich."""
    try:
        bread = np.linalg.inv(info)
    except (np.linalg.LinAlgError, TypeError):  # no Hessian (None) or singular
        bread = np.full((spec.q, spec.q), np.nan)
    if labels is None:
        return (bread + bread.T) / 2, "observed information (model-based)", None
    d_mu, d_sigma = spec.jacobian(parts)
    meat, n_clusters = _cluster_meat(fiml.casewise_scores(md, parts["mu"], parts["sigma"], d_mu, d_sigma), labels)
    vcov = bread @ meat @ bread
    return (vcov + vcov.T) / 2, f"cluster-robust sandwich, {n_clusters} clusters, G/(G-1) correction", n_clusters


def _parameter_table(spec, theta, vcov, std) -> pd.DataFrame:
    """One row per free parameter, indexed by name."""
    var = np.diag(vcov)
    se = np.sqrt(np.where(var >= 0, var, np.nan))
    z = theta / se
    table = pd.DataFrame(
        {
            "name": [p.name for p in spec.params],
            "lhs": [p.lhs for p in spec.params],
            "op": [p.op for p in spec.params],
            "rhs": [p.rhs for p in spec.params],
            "label": [p.label for p in spec.params],
            "estimate": theta,
            "se": se,
            "z": z,
            "p": 2 * stats.norm.sf(np.abs(z)),
            "ci_low": theta - Z975 * se,
            "ci_high": theta + Z975 * se,
            "std_all": [s[0] if s.size == 1 else np.nan for s in std],  # per wave for equal paths: lavaan_table()
        }
    ).set_index("name", drop=False)
    table.index.name = None
    return table


def compare_constraint(free: RICLPMResult, constrained: RICLPMResult) -> dict:
    """Likelihood-ratio (chi-square difference) test of equal paths over waves.

    Both fits must be on the same data (same rows and waves). Returns ``chisq_diff`` =
    2 (logL_free - logL_constrained), ``df_diff`` = difference in free parameters, and ``p``.
    """
    if free.constrain_paths or not constrained.constrain_paths:
        raise ValueError("pass the free-paths fit first and the constrained fit second")
    if free.data_digest != constrained.data_digest or free.waves != constrained.waves:
        raise ValueError("the two fits are not on the same data")
    diff = max(0.0, 2.0 * (free.loglik - constrained.loglik))
    dfd = int(free.fit_indices["npar"] - constrained.fit_indices["npar"])
    return {
        "chisq_diff": diff,
        "df_diff": dfd,
        "p": float(stats.chi2.sf(diff, dfd)),
        "flags": sorted(set(free.flags) | set(constrained.flags)),
    }
