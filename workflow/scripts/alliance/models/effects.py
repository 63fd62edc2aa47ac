"""Effect sizes of the alliance models (methods.md section 6), pingouin style.

One statistic per function; every function returns a tidy :class:`pandas.DataFrame` (one row per
estimate) and has a worked example.  Conventions:

* correlations are signed: with symptoms (higher = worse) a helpful alliance gives r < 0;
* confidence intervals are 95 %;
* ``df`` is stated on every row that uses one.

Functions
---------
rm_corr            within-patient r (repeated-measures correlation, Bakdash & Marusich 2017)
person_mean_r      between-patient r: correlation of person means
r_from_t           r-equivalent of a coefficient, r = t / sqrt(t^2 + df), with a CI
d_from_r           Cohen's d from r, d = 2r / sqrt(1 - r^2)
standardised_beta_within   within-person standardised coefficient (person-level SDs; Wang et al. 2019)
standardised_beta_between  between-level standardised coefficient (SDs of unit means)
r2_nakagawa        marginal and conditional R^2 (Nakagawa & Schielzeth 2013; Johnson 2014 for slopes)
icc                intraclass correlations from the variance components
mean_reliability   reliability of patient and therapist means, lambda = tau^2 / (tau^2 + error / n)
role_df            the df used for r-equivalents of a predictor at a given level
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

# one reading of a variance-components table, shared with the engines' checks
from alliance.engines.checks import group_covariances

__all__ = [
    "ROLES",
    "Z_975",
    "rm_corr",
    "person_mean_r",
    "r_from_t",
    "d_from_r",
    "standardised_beta_within",
    "standardised_beta_between",
    "r2_nakagawa",
    "icc",
    "mean_reliability",
    "role_df",
    "fisher_ci",
]

Z_975 = float(scipy.stats.norm.ppf(0.975))

#: roles of a focal predictor, and the df of its r-equivalent (see :func:`role_df`)
ROLES = {
    "within_patient": "n_obs - n_patients - 1 (df of the repeated-measures correlation)",
    "between_patient": "n_patients - 2 (df of a correlation of patient means)",
    "patient_within_therapist": "n_patients - 2 (df of a correlation of patient means)",
    "patient_level": "n_patients - 2 (df of a correlation over patients)",
    "between_therapist": "n_therapists - 2 (df of a correlation of therapist means)",
}


def role_df(role: str, n_obs: int, n_patients: int, n_therapists: int) -> int:
    """Degrees of freedom for the r-equivalent of a predictor with this role (see :data:`ROLES`).

    The df is that of a correlation at the predictor's own level: for a within-patient
    predictor the df of the repeated-measures correlation (observations minus patients minus 1),
    for a patient-level predictor patients minus 2, for a therapist-level one therapists minus 2.
    Using the number of observations for a between effect would overstate its precision.

    >>> role_df("within_patient", 7000, 600, 60), role_df("between_therapist", 7000, 600, 60)
    (6399, 58)
    """
    if role == "within_patient":
        return int(n_obs - n_patients - 1)
    if role in ("between_patient", "patient_within_therapist", "patient_level"):
        return int(n_patients - 2)
    if role == "between_therapist":
        return int(n_therapists - 2)
    raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")


def fisher_ci(r: float, n: float) -> tuple[float, float]:
    """95 % CI of a correlation by Fisher's z with SE 1/sqrt(n - 3) (as pingouin.compute_esci)."""
    if not (math.isfinite(r) and n > 3) or abs(r) >= 1:
        return (math.nan, math.nan)
    z = math.atanh(r)
    half = Z_975 / math.sqrt(n - 3)
    return (math.tanh(z - half), math.tanh(z + half))


def _complete(data: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise KeyError(f"column(s) {missing} not in the data")
    return data.loc[data[columns].notna().all(axis=1), columns]


def rm_corr(data: pd.DataFrame, x: str, y: str, subject: str) -> pd.DataFrame:
    """Within-subject (repeated-measures) correlation of ``x`` and ``y``.

    The correlation of the subject-mean-centred variables, df = N - P - 1 (N rows, P subjects),
    p from the t test of r, CI by Fisher's z with n = df + 2.  Equal to ``pingouin.rm_corr``
    (checked in tests/test_effects.py), computed in closed form: pingouin fits an ANCOVA with one
    dummy per subject (7 s on the demo data) and rounds its CI to 2 decimals.  Listwise deletion.

    Example
    -------
    >>> d = pd.DataFrame({"id": [1, 1, 1, 2, 2, 2], "x": [1, 2, 3, 4, 5, 6.0],
    ...                   "y": [2, 1, 0, 9, 8, 8.0]})
    >>> rm_corr(d, "x", "y", "id")[["r", "df", "n_obs", "n_subjects"]].round(3).values.tolist()
    [[-0.919, 3.0, 6.0, 2.0]]
    """
    d = _complete(data, [x, y, subject])
    xs = d[x].astype(float)
    ys = d[y].astype(float)
    g = d[subject]
    xc = xs - xs.groupby(g).transform("mean")
    yc = ys - ys.groupby(g).transform("mean")
    n, p = len(d), int(g.nunique())
    dof = n - p - 1
    sxy, sxx, syy = float((xc * yc).sum()), float((xc**2).sum()), float((yc**2).sum())
    r = sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else math.nan
    t = r * math.sqrt(dof / (1 - r * r)) if dof > 0 and math.isfinite(r) and abs(r) < 1 else math.nan
    pval = float(2 * scipy.stats.t.sf(abs(t), dof)) if math.isfinite(t) else math.nan
    lo, hi = fisher_ci(r, dof + 2)
    return pd.DataFrame(
        [
            {
                "statistic": "r_within",
                "x": x,
                "y": y,
                "r": r,
                "ci_low": lo,
                "ci_high": hi,
                "df": float(dof),
                "p": pval,
                "n_obs": float(n),
                "n_subjects": float(p),
                "method": "repeated-measures correlation (Bakdash & Marusich 2017): r of subject-mean-centred x and y",
            }
        ]
    )


def person_mean_r(data: pd.DataFrame, x: str, y: str, subject: str) -> pd.DataFrame:
    """Between-subject r: Pearson correlation of the subjects' means of ``x`` and ``y``.

    Means over the rows where both are present (listwise), each subject once; df = P - 2;
    CI by Fisher's z.

    Example
    -------
    >>> d = pd.DataFrame({"id": [1, 1, 2, 2, 3, 3], "x": [1, 3, 2, 4, 5, 7.0],
    ...                   "y": [5, 5, 3, 3, 2, 1.0]})
    >>> round(float(person_mean_r(d, "x", "y", "id")["r"].iloc[0]), 3)
    -0.935
    """
    d = _complete(data, [x, y, subject])
    means = d.groupby(subject)[[x, y]].mean()
    p = len(means)
    if p >= 3 and means[x].std() > 0 and means[y].std() > 0:
        r, pval = scipy.stats.pearsonr(means[x], means[y])
        r, pval = float(r), float(pval)
    else:
        r, pval = math.nan, math.nan
    lo, hi = fisher_ci(r, p)
    return pd.DataFrame(
        [
            {
                "statistic": "r_between",
                "x": x,
                "y": y,
                "r": r,
                "ci_low": lo,
                "ci_high": hi,
                "df": float(p - 2),
                "p": pval,
                "n_obs": float(len(d)),
                "n_subjects": float(p),
                "method": "Pearson r of subject means (each subject weight 1)",
            }
        ]
    )


def r_from_t(estimate: float, se: float, df: float) -> pd.DataFrame:
    """r-equivalent of a coefficient: r = t / sqrt(t^2 + df), t = estimate / se (signed).

    The 95 % CI maps the Wald interval of the coefficient, t -/+ 1.959964, through the same
    monotone function, so the r interval excludes 0 exactly when the coefficient's interval does.
    The df is the caller's choice and is returned (see :func:`role_df`).

    Example
    -------
    >>> r_from_t(-8.0, 0.3, 6400)[["t", "r", "r_ci_low", "r_ci_high"]].round(4).values.tolist()
    [[-26.6667, -0.3162, -0.3369, -0.2951]]
    """
    t = estimate / se if se > 0 else math.nan

    def conv(tt: float) -> float:
        return tt / math.sqrt(tt * tt + df) if math.isfinite(tt) and df > 0 else math.nan

    return pd.DataFrame(
        [
            {
                "t": t,
                "df": float(df),
                "r": conv(t),
                "r_ci_low": conv(t - Z_975),
                "r_ci_high": conv(t + Z_975),
                "method": "r = t / sqrt(t^2 + df); CI from t -/+ 1.96",
            }
        ]
    )


def d_from_r(r: float | pd.Series | np.ndarray) -> pd.DataFrame:
    """Cohen's d equivalent of a correlation, d = 2r / sqrt(1 - r^2) (methods.md section 1).

    Example
    -------
    >>> round(float(d_from_r(0.278)["d"].iloc[0]), 3)
    0.579
    """
    rr = np.atleast_1d(np.asarray(r, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        d = 2 * rr / np.sqrt(1 - rr**2)
    return pd.DataFrame({"r": rr, "d": d})


def standardised_beta_within(
    data: pd.DataFrame, x: str, y: str, estimate: float, subject: str, method: str = "person"
) -> pd.DataFrame:
    """Within-person standardised coefficient (Wang, Zhang, Maxwell & Bergeman 2019).

    Global standardisation (by the total SDs) mixes between-person spread into a within-person
    effect.  ``method="person"`` (default): the average over persons of ``estimate * s_x,i / s_y,i``
    with each person's own SDs of x and y (persons with >= 2 rows and both SDs > 0), i.e. the
    fixed slope in person-standardised units.  ``method="pooled"``: ``estimate * S_x / S_y`` with
    the pooled within-person SDs (root mean within-person variance, df = N - P).

    Example
    -------
    >>> d = pd.DataFrame({"id": [1, 1, 1, 2, 2, 2], "x": [0, 1, 2, 0, 2, 4.0],
    ...                   "y": [0, 2, 4, 0, 2, 4.0]})
    >>> float(standardised_beta_within(d, "x", "y", 2.0, "id")["beta_std"].iloc[0])
    1.5
    """
    d = _complete(data, [x, y, subject])
    g = d.groupby(subject)
    sx = g[x].std(ddof=1)
    sy = g[y].std(ddof=1)
    if method == "person":
        ok = (g.size() >= 2) & (sx > 0) & (sy > 0)
        value = float((estimate * sx[ok] / sy[ok]).mean()) if ok.any() else math.nan
        n_used = int(ok.sum())
        text = "mean over persons of b * SD_x,i / SD_y,i (person-level SDs; Wang et al. 2019)"
        sdx, sdy = float(sx[ok].mean()), float(sy[ok].mean())
    elif method == "pooled":
        xc = d[x] - g[x].transform("mean")
        yc = d[y] - g[y].transform("mean")
        dof = len(d) - g.ngroups
        sdx = math.sqrt(float((xc**2).sum()) / dof) if dof > 0 else math.nan
        sdy = math.sqrt(float((yc**2).sum()) / dof) if dof > 0 else math.nan
        value = estimate * sdx / sdy if sdy > 0 else math.nan
        n_used = int(g.ngroups)
        text = "b * pooled within-person SD_x / pooled within-person SD_y"
    else:
        raise ValueError("method must be 'person' or 'pooled'")
    return pd.DataFrame(
        [
            {
                "statistic": "beta_std_within",
                "x": x,
                "y": y,
                "estimate": estimate,
                "sd_x": sdx,
                "sd_y": sdy,
                "beta_std": value,
                "n_subjects": float(n_used),
                "method": text,
            }
        ]
    )


def standardised_beta_between(data: pd.DataFrame, x: str, y: str, estimate: float, unit: str) -> pd.DataFrame:
    """Between-level standardised coefficient: ``estimate * SD(unit means of x) / SD(unit means of y)``.

    ``unit`` is the level of the predictor (``patient`` for a between-patient or patient-level
    predictor, ``therapist`` for a between-therapist one); means over the rows where both are
    present, each unit once.

    Example
    -------
    >>> d = pd.DataFrame({"id": [1, 1, 2, 2, 3, 3], "x": [1, 1, 2, 2, 3, 3.0],
    ...                   "y": [0, 2, 3, 5, 4, 8.0]})
    >>> round(float(standardised_beta_between(d, "x", "y", 2.0, "id")["beta_std"].iloc[0]), 4)
    0.7947
    """
    d = _complete(data, [x, y, unit])
    means = d.groupby(unit)[[x, y]].mean()
    sdx, sdy = float(means[x].std(ddof=1)), float(means[y].std(ddof=1))
    value = estimate * sdx / sdy if sdy > 0 else math.nan
    return pd.DataFrame(
        [
            {
                "statistic": "beta_std_between",
                "x": x,
                "y": y,
                "estimate": estimate,
                "sd_x": sdx,
                "sd_y": sdy,
                "beta_std": value,
                "n_subjects": float(len(means)),
                "method": f"b * SD of {unit} means of x / SD of {unit} means of y",
            }
        ]
    )


def r2_nakagawa(fixed_part: np.ndarray, variance_components: pd.DataFrame, data: pd.DataFrame) -> pd.DataFrame:
    """Marginal and conditional R^2 of a linear mixed model (Nakagawa & Schielzeth 2013), with
    Johnson's (2014) extension for random slopes.

    ``fixed_part`` is X b for the fitted rows; ``data`` the same rows, holding the random-slope
    columns.  With sigma2_f = var(X b) (n - 1 denominator, as MuMIn), and for each random-effects
    group l with covariance Sigma_l of (intercept, slopes) and z_i its covariate row
    (1, slope values), sigma2_l = mean_i z_i' Sigma_l z_i (Johnson's mean random-effect variance;
    for a random intercept it is its variance):

        R2_marginal    = sigma2_f / (sigma2_f + sum_l sigma2_l + sigma2_e)
        R2_conditional = (sigma2_f + sum_l sigma2_l) / (same denominator)

    Example
    -------
    >>> vc = pd.DataFrame({"group": ["patient", "Residual"], "term": ["Intercept", "Residual"],
    ...                    "variance": [2.0, 1.0], "sd": [2 ** .5, 1.0], "correlation": [np.nan, np.nan]})
    >>> r2 = r2_nakagawa(np.array([0.0, 2.0]), vc, pd.DataFrame(index=[0, 1]))
    >>> r2[["r2_marginal", "r2_conditional"]].values.tolist()
    [[0.4, 0.8]]
    """
    fx = np.asarray(fixed_part, dtype=float)
    var_f = float(np.var(fx, ddof=1)) if len(fx) > 1 else 0.0
    resid = float(variance_components.loc[variance_components["group"] == "Residual", "variance"].iloc[0])
    var_r = 0.0
    parts = []
    for group, (terms, S) in group_covariances(variance_components).items():
        cols = [np.ones(len(fx)) if t == "Intercept" else data[t].to_numpy(dtype=float) for t in terms]
        Z = np.column_stack(cols) if cols else np.zeros((len(fx), 0))
        v = float(np.mean(np.einsum("ij,jk,ik->i", Z, S, Z))) if len(fx) else math.nan
        parts.append(f"{group}: {v:.6g}")
        var_r += v
    total = var_f + var_r + resid
    return pd.DataFrame(
        [
            {
                "r2_marginal": var_f / total,
                "r2_conditional": (var_f + var_r) / total,
                "var_fixed": var_f,
                "var_random": var_r,
                "var_residual": resid,
                "random_parts": "; ".join(parts),
                "method": "Nakagawa & Schielzeth (2013); random slopes: Johnson (2014) mean z' Sigma z",
            }
        ]
    )


def icc(variance_components: pd.DataFrame) -> pd.DataFrame:
    """Intraclass correlations: each group's random-intercept variance over the total of the
    intercept variances and the residual (for a model with random slopes: at the slope
    variables' zero, e.g. the patient's mean alliance for a within-patient slope).

    For nested groups (therapist, therapist:patient) ``icc`` is the share of the level and
    ``icc_cumulative`` adds the levels above it (the correlation of two sessions of one patient).

    Example
    -------
    >>> vc = pd.DataFrame({"group": ["therapist", "therapist:patient", "Residual"],
    ...                    "term": ["Intercept", "Intercept", "Residual"], "variance": [1.0, 3.0, 6.0]})
    >>> icc(vc)[["group", "icc", "icc_cumulative"]].values.tolist()
    [['therapist', 0.1, 0.1], ['therapist:patient', 0.3, 0.4]]
    """
    v = variance_components[variance_components["term"].astype(str).isin(["Intercept", "Residual"])]
    total = float(v["variance"].astype(float).sum())
    rows = []
    cumulative = 0.0
    for r in v.itertuples(index=False):
        if r.group == "Residual":
            continue
        share = float(r.variance) / total if total > 0 else math.nan
        outer = str(r.group).split(":")[:-1]
        above = sum(x["icc"] for x in rows if x["group"] in {":".join(outer[: k + 1]) for k in range(len(outer))})
        cumulative = share + above
        rows.append(
            {
                "group": str(r.group),
                "variance": float(r.variance),
                "icc": share,
                "icc_cumulative": cumulative,
                "total_variance": total,
            }
        )
    return pd.DataFrame(rows, columns=["group", "variance", "icc", "icc_cumulative", "total_variance"])


#: the ICC definitions, labelled in every table that prints an ICC (effects.csv's ``method``,
#: variance_ci.csv's ``definition``; docs/methods.md section 6.6)
ICC_DEFINITIONS = {
    "icc": "intercept variance / (intercept variances + residual), at the slope variables' zero",
    "icc_cumulative": "this level and the levels above it over the same total: two rows of one unit",
    "icc_adjusted": (
        "adjusted ICC of Nakagawa, Johnson & Schielzeth (2017), as R's performance::icc: random variance "
        "(slopes averaged over the observed values, Johnson 2014) / (random variance + residual)"
    ),
}


def icc_adjusted(r2: pd.Series | dict) -> float:
    """Nakagawa, Johnson & Schielzeth's (2017) adjusted ICC from a row of :func:`r2_nakagawa`:
    var_random / (var_random + var_residual), the random variance with each slope's part averaged
    over the fitted rows (as R's ``performance::icc``; tests/models/test_icc_definitions.py).

    >>> icc_adjusted({"var_random": 3.0, "var_residual": 1.0})
    0.75
    """
    denominator = float(r2["var_random"]) + float(r2["var_residual"])
    return float(r2["var_random"]) / denominator if denominator > 0 else math.nan


def mean_reliability(variance_components: pd.DataFrame, data: pd.DataFrame) -> pd.DataFrame:
    """Reliability of the patient and therapist means of the outcome (methods.md section 4).

    From the random-intercept variances tau^2 and the residual sigma^2 of the model and the
    counts in ``data`` (the fitted rows, with ``patient`` and, for therapists, ``therapist``):

        patient i:    lambda_i = tau2_p / (tau2_p + sigma2 / n_i)
        therapist t:  lambda_t = tau2_t / (tau2_t + tau2_p / m_t + sigma2 / n_t)

    (n rows, m patients).  Returns the mean, minimum and maximum over units per level.

    Example
    -------
    >>> vc = pd.DataFrame({"group": ["patient", "Residual"], "term": ["Intercept", "Residual"],
    ...                    "variance": [1.0, 4.0]})
    >>> d = pd.DataFrame({"patient": ["a"] * 4 + ["b"] * 12})
    >>> mean_reliability(vc, d)[["level", "mean", "min", "max"]].values.tolist()
    [['patient', 0.625, 0.5, 0.75]]
    """
    v = variance_components
    intercepts = {str(g): float(x) for g, t, x in zip(v["group"], v["term"], v["variance"]) if t == "Intercept"}
    sigma2 = float(v.loc[v["group"] == "Residual", "variance"].iloc[0])
    tau_t = intercepts.get("therapist")
    tau_p = next((x for g, x in intercepts.items() if g == "patient" or g.endswith(":patient")), None)
    rows = []
    if tau_p is not None and "patient" in data.columns:
        n_i = data.groupby("patient").size().astype(float)
        lam = tau_p / (tau_p + sigma2 / n_i)
        rows.append(("patient", len(n_i), lam))
    if tau_t is not None and "therapist" in data.columns:
        n_t = data.groupby("therapist").size().astype(float)
        error = sigma2 / n_t
        if tau_p is not None and "patient" in data.columns:
            m_t = data.groupby("therapist")["patient"].nunique().astype(float)
            error = error + tau_p / m_t
        lam = tau_t / (tau_t + error)
        rows.append(("therapist", len(n_t), lam))
    return pd.DataFrame(
        [
            {
                "level": lv,
                "n_units": float(n),
                "mean": float(lam.mean()),
                "min": float(lam.min()),
                "max": float(lam.max()),
            }
            for lv, n, lam in rows
        ],
        columns=["level", "n_units", "mean", "min", "max"],
    )


def term_columns(term: str) -> list[str]:
    """Data columns of a fixed-effect term name (``a:b[T.x]`` -> ``['a', 'b']``)."""
    return [re.sub(r"\[T\..*\]$", "", part) for part in term.split(":")]


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
