"""Derived variables: centring (methods.md section 4), leads and lags, patient summaries.

All functions take the session-level analysis frame (one row per patient and
session, canonical column names) and return new columns; none relies on row order.
"""

from __future__ import annotations

import pandas as pd

#: the parts of :func:`decompose_within_between` built from therapist means (absent without a therapist column)
THERAPIST_PARTS = ("therapist_mean", "patient_within_therapist", "between_therapist")


def decompose_within_between(
    data: pd.DataFrame,
    value: str,
    prefix: str | None = None,
    patient: str = "patient",
    therapist: str = "therapist",
) -> pd.DataFrame:
    """Split a session-level variable into within- and between-level parts.

    Following Curran & Bauer (2011) and methods.md section 4, with ``v`` the value::

        {p}_patient_mean              mean of the patient's non-missing values
        {p}_within_patient            v - patient mean                    ("state")
        {p}_between_patient           patient mean - grand mean of patient means
        {p}_therapist_mean            mean of the therapist's patient means (each patient weight 1)
        {p}_patient_within_therapist  patient mean - therapist mean
        {p}_between_therapist         therapist mean - grand mean of patient means
        {p}_n_sessions                sessions behind the patient mean

    A patient's therapist is the one of their first session (switches are flagged
    in cleaning). Person means use every session where the value is present. Without a
    ``therapist`` column (a design without therapists) the therapist parts
    (:data:`THERAPIST_PARTS`) are not made.

    Example
    -------
    >>> d = pd.DataFrame({"patient": ["a", "a", "b", "b"], "therapist": ["t", "t", "t", "t"],
    ...                   "wai": [3.0, 4.0, 2.0, 2.0]})
    >>> decompose_within_between(d, "wai")["wai_within_patient"].tolist()
    [-0.5, 0.5, 0.0, 0.0]
    """
    p = prefix or value
    present = data[value].notna()
    patient_mean = data[value].groupby(data[patient]).mean()
    n_sessions = present.groupby(data[patient]).sum()
    if therapist not in data:
        row_patient_mean = data[patient].map(patient_mean)
        grand_mean = patient_mean.dropna().mean()
        parts = {
            f"{p}_patient_mean": row_patient_mean,
            f"{p}_within_patient": data[value] - row_patient_mean,
            f"{p}_between_patient": row_patient_mean - grand_mean,
            f"{p}_n_sessions": data[patient].map(n_sessions).astype("Int64"),
        }
        return pd.DataFrame(parts, index=data.index)
    patient_therapist = data.groupby(patient, sort=True)[therapist].first()
    patient_level = pd.DataFrame({"mean": patient_mean, "therapist": patient_therapist}).dropna(subset=["mean"])
    grand_mean = patient_level["mean"].mean()
    therapist_mean = patient_level.groupby("therapist")["mean"].mean()

    row_patient_mean = data[patient].map(patient_mean)
    row_therapist_mean = data[patient].map(patient_therapist).map(therapist_mean)
    return pd.DataFrame(
        {
            f"{p}_patient_mean": row_patient_mean,
            f"{p}_within_patient": data[value] - row_patient_mean,
            f"{p}_between_patient": row_patient_mean - grand_mean,
            f"{p}_therapist_mean": row_therapist_mean,
            f"{p}_patient_within_therapist": row_patient_mean - row_therapist_mean,
            f"{p}_between_therapist": row_therapist_mean - grand_mean,
            f"{p}_n_sessions": data[patient].map(n_sessions).astype("Int64"),
        },
        index=data.index,
    )


def within_patient_detrended(
    data: pd.DataFrame,
    value: str,
    patient: str = "patient",
    session: str = "session",
    min_sessions: int = 3,
) -> pd.Series:
    """Within-patient deviation with the patient's own linear trend over sessions removed.

    methods.md section 4.5 (``wai_dt``): for each patient, the least-squares line of
    ``value`` on the session number is fitted to the sessions where the value is
    present, and the residual is returned. Needs at least ``min_sessions`` (3)
    rated sessions -- with two, the line passes through both points -- else
    missing. Vectorised: per-patient sums, no loop over patients.

    Example
    -------
    >>> d = pd.DataFrame({"patient": ["a"] * 4 + ["b"] * 2, "session": [1, 2, 3, 4, 1, 2],
    ...                   "wai": [3.0, 3.5, 3.0, 3.5, 4.0, 5.0]})
    >>> within_patient_detrended(d, "wai").round(2).tolist()
    [-0.1, 0.3, -0.3, 0.1, nan, nan]
    """
    present = data[value].notna()
    x = data[session].astype(float).where(present)
    y = data[value].astype(float)
    groups = data[patient]
    n = present.groupby(groups).transform("sum")
    x_mean = x.groupby(groups).transform("mean")
    y_mean = y.groupby(groups).transform("mean")
    dx, dy = x - x_mean, y - y_mean
    sxy = (dx * dy).groupby(groups).transform("sum")
    sxx = (dx * dx).groupby(groups).transform("sum")
    slope = sxy / sxx.where(sxx > 0)
    residual = dy - slope * dx
    return residual.where(n >= min_sessions).astype(float).rename(f"{value}_within_patient_detrended")


def session_variables(data: pd.DataFrame) -> pd.DataFrame:
    """``data`` with every derived session variable of the analysis table added: ``session_c``,
    ``session_index``, the within/between parts of the alliance and symptoms, the alliance's
    detrended within-patient part and the next and previous sessions' values.

    ``data`` holds ``patient``, ``session``, ``alliance`` and ``symptoms`` (and ``therapist`` for the
    therapist parts), sorted by patient and session. The intake makes them once from the scored
    sessions; the pooling stage again on each study's harmonised sessions
    (alliance.pooling.harmonise), so that both derive them the same way.

    Example
    -------
    >>> d = pd.DataFrame({"patient": ["a", "a", "b"], "session": [1, 2, 1],
    ...                   "alliance": [3.0, 5.0, 4.0], "symptoms": [50.0, 40.0, 60.0]})
    >>> out = session_variables(d)
    >>> out["alliance_within_patient"].tolist(), out["symptoms_next"].tolist()[:1]
    ([-1.0, 1.0, 0.0], [40.0])
    """
    counts = pd.DataFrame({"session_c": data["session"] - 1, "session_index": session_index(data)}, index=data.index)
    return pd.concat(
        [
            data,
            counts,
            decompose_within_between(data, "alliance"),
            within_patient_detrended(data, "alliance"),
            decompose_within_between(data, "symptoms"),
            next_session_values(data, ["symptoms", "alliance"]),
            previous_session_values(data, ["symptoms", "alliance"]),
        ],
        axis=1,
    )


def session_index(data: pd.DataFrame, patient: str = "patient", session: str = "session") -> pd.Series:
    """Position of each session among the patient's attended sessions (1, 2, 3, ...).

    Differs from the session number where sessions were missed: sessions 1, 2, 4
    have the index 1, 2, 3.
    """
    return data.groupby(patient)[session].rank(method="first").astype("int64").rename("session_index")


def next_session_values(
    data: pd.DataFrame,
    columns: list[str],
    patient: str = "patient",
    session: str = "session",
) -> pd.DataFrame:
    """Values at session t+1 of the same patient, NaN where session t+1 is absent.

    Built from session numbers, never from row order: a gap (session 5 missed)
    leaves session 4's lead missing rather than borrowing session 6.
    """
    keyed = data.set_index([patient, session])[columns]
    following = pd.MultiIndex.from_arrays([data[patient], data[session] + 1])
    values = keyed.reindex(following)
    values.index = data.index
    return values.add_suffix("_next")


def previous_session_values(
    data: pd.DataFrame,
    columns: list[str],
    patient: str = "patient",
    session: str = "session",
) -> pd.DataFrame:
    """Values at session t-1 of the same patient (NaN where absent); see next_session_values."""
    keyed = data.set_index([patient, session])[columns]
    preceding = pd.MultiIndex.from_arrays([data[patient], data[session] - 1])
    values = keyed.reindex(preceding)
    values.index = data.index
    return values.add_suffix("_prev")


def value_at_session(
    data: pd.DataFrame, value: str, at: int, patient: str = "patient", session: str = "session"
) -> pd.Series:
    """Per patient: the value at session number ``at`` (NaN if not observed)."""
    rows = data.loc[data[session] == at].drop_duplicates(patient)
    return rows.set_index(patient)[value]


def mean_over_sessions(
    data: pd.DataFrame,
    value: str,
    first: int,
    last: int,
    patient: str = "patient",
    session: str = "session",
) -> pd.Series:
    """Per patient: mean of ``value`` over sessions first..last that were observed."""
    window = data.loc[data[session].between(first, last)]
    return window.groupby(patient)[value].mean()


def first_and_last_observed(
    data: pd.DataFrame, value: str, patient: str = "patient", session: str = "session"
) -> pd.DataFrame:
    """Per patient: first and last observed value and the sessions they come from.

    Baseline is the first session with the value present, which need not be session 1.
    """
    observed = data.loc[data[value].notna(), [patient, session, value]].sort_values([patient, session])
    grouped = observed.groupby(patient)
    first = grouped.first()
    last = grouped.last()
    return pd.DataFrame(
        {
            f"{value}_baseline": first[value],
            f"{value}_baseline_session": first[session],
            f"{value}_last": last[value],
            f"{value}_last_session": last[session],
            f"{value}_change": last[value] - first[value],
        }
    )


def person_mean_reliability(n_sessions: pd.Series, between_variance: float, within_variance: float) -> pd.Series:
    """Reliability of each person mean, lambda_i = tau^2 / (tau^2 + sigma^2 / n_i)."""
    n = n_sessions.astype(float)
    return between_variance / (between_variance + within_variance / n.where(n > 0))


def variance_split_anova(data: pd.DataFrame, value: str, patient: str = "patient") -> tuple[float, float]:
    """Moment estimates (between-patient tau^2, within-patient sigma^2) of a variable.

    Used only to report person-mean reliability in the data summary; the
    model-based variance split is in the model suite.
    """
    present = data.loc[data[value].notna(), [patient, value]]
    groups = present.groupby(patient)[value]
    within = float((present[value] - groups.transform("mean")).pow(2).sum())
    n_i = groups.size()
    k, n = len(n_i), int(n_i.sum())
    if k < 2 or n <= k:
        return float("nan"), float("nan")
    sigma2 = within / (n - k)
    means = groups.mean()
    grand = present[value].mean()
    between_ss = float((n_i * (means - grand) ** 2).sum())
    n0 = (n - (n_i**2).sum() / n) / (k - 1)
    tau2 = max((between_ss / (k - 1) - sigma2) / n0, 0.0)
    return tau2, sigma2


__all__ = [
    "THERAPIST_PARTS",
    "decompose_within_between",
    "within_patient_detrended",
    "session_index",
    "session_variables",
    "next_session_values",
    "previous_session_values",
    "value_at_session",
    "mean_over_sessions",
    "first_and_last_observed",
    "person_mean_reliability",
    "variance_split_anova",
]
