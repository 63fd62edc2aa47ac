"""Closed-form truths of the simulated trial (alliance.simulate): the within-person process and what
each model of the suite estimates under it.

The simulator's within-person process is a bivariate VAR(1) in within-person standard units (see
:mod:`alliance.simulate`): ``w[t] = B w[t-1] + e[t]`` with one path matrix ``B`` for every therapy
type and a therapy-specific stationary covariance ``S_k = [[1, rho_k], [rho_k, 1]]`` (innovations
``Q_k = S_k - B S_k B'``). Everything below follows from ``B``, ``S_k``, the design's scale factors
and, for the estimands of the person-mean-centred models, the sessions each simulated patient
attended:

* :func:`lag_covariances`: ``Cov(w_s, w_t)`` for every pair of sessions, ``B^(s-t) S_k``;
* :func:`same_session_estimands`: what the within-patient coefficient of a same-session model
  (outcome on the person-mean-centred alliance and the session number, patient intercepts)
  converges to for the realised attendance. With feedback over sessions it is *not* the
  contemporaneous coefficient ``Sigma_xy(0) / Sigma_xx(0)``: a patient's mean over T sessions
  carries the lagged cross-covariances, and centring on it removes part of the same-session
  association (on the demo by 12-21 %: CBT -4.73, PDT -8.75, IPT -6.71 for -6, -10, -8). The
  limit for patients i with attended sessions O_i (T_i of them, ``C = I - 11'/T_i``) is
  ``sum_i tr(C Vxy_i) / sum_i tr(C Vxx_i)``, scaled to POMP per WAI-SR point;
* :func:`between_estimands`: the same for the patient-within-therapist and between-therapist
  coefficients of models on *observed* patient and therapist means, which carry the within-person
  process too (the sampling error of a mean over T_i sessions; Lüdtke et al. 2008, Psychological
  Methods 13(3):203-229), with patients (therapists) weighted equally.

The estimands treat attendance as unrelated to the within-person scores; then they are exact (the
tests compare them with the within estimator on 12,000 simulated patients). Under the design's
dropout on the previous session (missing at random) the patients who leave are selected on their
last session: measured on 200,000 simulated patients, the within-patient limits move by less than
0.1 POMP per WAI-SR point, the patient-within-therapist coefficient of the observed means by about
-0.45. Mixed models with a random alliance slope (same_session, moderation) weight patients with
few sessions more than the pooled within estimator does and land a further 0.1-0.2 nearer zero
(60,000 simulated patients, mixedlm: same_session -6.44 against the estimand -6.71, -6.59 with a
random intercept only). Likelihood-based estimators of the whole process (the RI-CLPM by FIML)
are not affected by the dropout.
"""

from __future__ import annotations

import numpy as np

from alliance.simulate_lagged_truth import CENTRED_LAGGED, RAW_LAGGED, lagged_estimands

__all__ = [
    "paths",
    "contemporaneous_correlation",
    "stationary_covariance",
    "innovation_covariance",
    "long_run",
    "lag_covariances",
    "within_mean_moments",
    "moments_by_therapy",
    "same_session_estimands",
    "between_estimands",
    "riclpm_truth",
]


def paths(design) -> np.ndarray:
    """B = [[alliance carry-over, symptoms -> next alliance], [alliance -> next symptoms, symptom
    carry-over]] in within-person SD units (rows: x[t], y[t]; columns: x[t-1], y[t-1])."""
    return np.array(
        [
            [design.carryover_alliance, design.cross_symptoms_to_alliance],
            [design.cross_alliance_to_symptoms, design.carryover_symptoms],
        ]
    )


def contemporaneous_correlation(design, therapy: str) -> float:
    """rho_k = Sigma_xy(0) / sqrt(Sigma_xx(0) Sigma_yy(0)): the same-session within-person correlation
    implied by the therapy's within effect (POMP per WAI-SR point) and the within-person SDs.

    >>> from alliance.simulate import TrialDesign
    >>> contemporaneous_correlation(TrialDesign(), "IPT")
    -0.35
    """
    return design.within_effect[therapy] * design.alliance_within_sd / design.symptom_within_sd


def stationary_covariance(design, therapy: str) -> np.ndarray:
    """S_k, the stationary within-person covariance of (x, y) in SD units (unit diagonal)."""
    rho = contemporaneous_correlation(design, therapy)
    return np.array([[1.0, rho], [rho, 1.0]])


def innovation_covariance(design, therapy: str) -> np.ndarray:
    """Q_k = S_k - B S_k B', the innovation covariance that keeps S_k stationary; it must be
    positive definite (else the design is impossible and this raises)."""
    b, s = paths(design), stationary_covariance(design, therapy)
    q = s - b @ s @ b.T
    if abs(s[0, 1]) >= 1 or np.linalg.eigvalsh(q).min() <= 0:
        raise ValueError(f"{therapy}: no innovation covariance gives this within effect with these paths")
    return q


def long_run(design) -> np.ndarray:
    """(I - B)^-1 in SD units: [j, k] is the eventual change in the within-person level of j per
    lasting unit change in the innovations of k (the sum of the k -> j effects over all lags)."""
    b = paths(design)
    return np.linalg.inv(np.eye(2) - b)


def lag_covariances(b: np.ndarray, s: np.ndarray, n_sessions: int) -> tuple[np.ndarray, np.ndarray]:
    """(Vxx, Vxy), each n_sessions x n_sessions: ``Vxx[s, t] = Cov(wx_s, wx_t)`` and
    ``Vxy[s, t] = Cov(wx_s, wy_t)`` of the stationary VAR(1) (``Cov(w_{t+h}, w_t) = B^h S``).

    >>> vxx, vxy = lag_covariances(np.array([[0.5, 0.0], [0.0, 0.5]]), np.eye(2), 3)
    >>> vxx[0].tolist(), bool(vxy.any())
    ([1.0, 0.5, 0.25], False)
    """
    powers = [np.linalg.matrix_power(b, h) @ s for h in range(n_sessions)]  # Cov(w_{t+h}, w_t)
    vxx = np.empty((n_sessions, n_sessions))
    vxy = np.empty((n_sessions, n_sessions))
    for first in range(n_sessions):
        for second in range(n_sessions):
            h = abs(first - second)
            vxx[first, second] = powers[h][0, 0]
            # x at the later session with y at the earlier one is [x, y] of B^h S, the other way [y, x]
            vxy[first, second] = powers[h][0, 1] if first >= second else powers[h][1, 0]
    return vxx, vxy


def within_mean_moments(attended: np.ndarray, vxx: np.ndarray, vxy: np.ndarray) -> dict[str, np.ndarray]:
    """Per patient (rows of the boolean ``attended``, patients x sessions), in SD units:
    ``var_mean`` = Var(mean of wx over the attended sessions), ``cov_mean`` = Cov(mean wx, mean wy),
    ``within_xx`` = E sum_t (wx_t - mean wx)^2 and ``within_xy`` = E sum_t (wx_t - mean wx)(wy_t - mean wy)."""
    o = attended.astype(float)
    n = o.sum(axis=1)
    quad_xx = ((o @ vxx) * o).sum(axis=1)  # o' Vxx o per patient
    quad_xy = ((o @ vxy) * o).sum(axis=1)
    return {
        "var_mean": quad_xx / n**2,
        "cov_mean": quad_xy / n**2,
        "within_xx": o @ np.diag(vxx) - quad_xx / n,
        "within_xy": o @ np.diag(vxy) - quad_xy / n,
    }


def moments_by_therapy(design, therapy_code: np.ndarray, attended: np.ndarray) -> list[dict[str, np.ndarray]]:
    """within_mean_moments of each therapy type's patients (positions as in therapy_code)."""
    b = paths(design)
    out = []
    for k, therapy in enumerate(design.therapies):
        vxx, vxy = lag_covariances(b, stationary_covariance(design, therapy), design.max_sessions)
        out.append(within_mean_moments(attended[therapy_code == k], vxx, vxy))
    return out


def session_spread(attended: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean session index, sum of squared deviations of the session index from it) per patient."""
    index = np.arange(attended.shape[1], dtype=float)
    n = attended.sum(axis=1)
    mean = (attended * index).sum(axis=1) / n
    spread = (attended * (index[None, :] - mean[:, None]) ** 2).sum(axis=1)
    return mean, spread


def same_session_estimands(
    design, therapy_code: np.ndarray, attended: np.ndarray, moments: list[dict] | None = None
) -> dict:
    """What the within-patient coefficients of the same-session models converge to, for patients of
    the given therapy types (``therapy_code``, index into design.therapies) and attendance
    (patients x sessions). POMP per WAI-SR point; the session coefficient in POMP per session.

    Within patients, alliance is ``g_k t + sx wx`` and symptoms ``m_k t + sy wy`` (mean trends
    g_k, m_k). The limit of the regression of the person-mean-centred symptoms on the centred
    alliance and the centred session solves the normal equations built from
    ``E sum (x - xbar)^2 = g_k^2 S_t + sx^2 sum_i within_xx_i``, ``E sum (x - xbar)(y - ybar) =
    g_k m_k S_t + sx sy sum_i within_xy_i``, ``E sum (x - xbar)(t - tbar) = g_k S_t`` ... (``S_t``:
    the summed squared session deviations). With its own session coefficient a therapy's alliance
    coefficient is exactly ``(sy / sx) sum within_xy / sum within_xx``.

    Returns ``by_therapy`` (one alliance coefficient per therapy type, one session coefficient:
    the moderation model), ``pooled`` (one of each: the same-session model without moderation)
    and ``patient_mean`` (the by-therapy coefficients averaged over the patients). ``moments``:
    :func:`moments_by_therapy` of the same patients, when already computed.
    """
    _, spread = session_spread(attended)
    moments = moments or moments_by_therapy(design, therapy_code, attended)
    parts = []
    for k, (therapy, mine) in enumerate(zip(design.therapies, moments)):
        parts.append(
            {
                "g": design.alliance_growth[therapy],
                "m": symptom_mean_slope(design, therapy),
                "s_tt": spread[therapy_code == k].sum(),
                "xx": mine["within_xx"].sum(),
                "xy": mine["within_xy"].sum(),
            }
        )
    every = [k for k, q in enumerate(parts) if q["xx"] > 0]  # therapy types with within-patient variation
    by_therapy = _within_regression_limit(design, parts, [[k] for k in every])
    pooled = _within_regression_limit(design, parts, [every])
    coefficients = {design.therapies[k]: by_therapy[i] for i, k in enumerate(every)}
    return {
        "by_therapy": {t: float(v) for t, v in coefficients.items()},
        "session_by_therapy_model": float(by_therapy[-1]),
        "pooled": {"alliance_within_patient": float(pooled[0]), "session_c": float(pooled[1])},
        "patient_mean": float(np.mean([coefficients[design.therapies[k]] for k in therapy_code if k in every])),
    }


def _within_regression_limit(design, parts: list[dict], groups: list[list[int]]) -> np.ndarray:
    """Solve the limiting normal equations of the within-patient regression of symptoms on alliance
    (one coefficient per group of therapy types) and session (one coefficient): returns
    [alliance coefficient of each group..., session coefficient]."""
    sx, sy = design.alliance_within_sd, design.symptom_within_sd
    n = len(groups)
    normal = np.zeros((n + 1, n + 1))
    right = np.zeros(n + 1)
    for c, members in enumerate(groups):
        for k in members:
            q = parts[k]
            normal[c, c] += q["g"] ** 2 * q["s_tt"] + sx * sx * q["xx"]
            normal[c, n] += q["g"] * q["s_tt"]
            right[c] += q["g"] * q["m"] * q["s_tt"] + sx * sy * q["xy"]
            normal[n, n] += q["s_tt"]
            right[n] += q["m"] * q["s_tt"]
    normal[n, :n] = normal[:n, n]
    return np.linalg.solve(normal, right)


def symptom_mean_slope(design, therapy: str) -> float:
    """The symptom mean's change per session: the slope at constant alliance plus the same-session
    association of the alliance growth (outcome_session_slope + within_effect x alliance_growth)."""
    return design.outcome_session_slope + design.within_effect[therapy] * design.alliance_growth[therapy]


def _centred_within(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """values minus the mean of their group (unweighted)."""
    sums = np.bincount(groups, weights=values)
    counts = np.bincount(groups)
    return values - (sums / counts)[groups]


def _expected_centred_products(own: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """E[(a_i - mean_g a)(b_i - mean_g b)] for independent units with E[a_i b_i] = own_i."""
    counts = np.bincount(groups)[groups]
    group_sums = np.bincount(groups, weights=own)[groups]
    return own * (1 - 2 / counts) + group_sums / counts**2


def between_estimands(
    design,
    therapist: np.ndarray,
    therapy_code: np.ndarray,
    attended: np.ndarray,
    alliance_patient: np.ndarray,
    alliance_therapist: np.ndarray,
    session_coefficient: float,
    moments: list[dict] | None = None,
) -> dict:
    """The coefficients of the observed patient-within-therapist and between-therapist alliance means
    (each patient, each therapist weight 1), given the sample's stable alliance parts
    (``alliance_patient`` per patient, ``alliance_therapist`` per therapist, WAI-SR points), its
    attendance and the model's session coefficient.

    A patient's observed mean alliance is ``stable + g_k tbar_i + sx mean(wx)`` and the part of the
    mean symptoms the model leaves to it ``beta_P (stable - therapist mean) + (m_k - session
    coefficient) tbar_i + sy mean(wy)``; the estimand is the ratio of the expected cross-product to
    the expected square after centring within therapists (therapist level: therapist means centred
    within therapy type).
    """
    sx, sy = design.alliance_within_sd, design.symptom_within_sd
    growth = np.array([design.alliance_growth[t] for t in design.therapies])[therapy_code]
    slopes = np.array([symptom_mean_slope(design, t) for t in design.therapies])
    residual_slope = slopes[therapy_code] - session_coefficient
    mean_session, _ = session_spread(attended)
    var_mean = np.empty(len(therapy_code))
    cov_mean = np.empty(len(therapy_code))
    for k, mine in enumerate(moments or moments_by_therapy(design, therapy_code, attended)):
        var_mean[therapy_code == k] = mine["var_mean"]
        cov_mean[therapy_code == k] = mine["cov_mean"]
    # patients within therapists
    p = _centred_within(alliance_patient, therapist)
    tbar = _centred_within(mean_session, therapist)
    x_fixed, y_fixed = p + growth * tbar, design.patient_between_effect * p + residual_slope * tbar
    cross = (x_fixed * y_fixed).sum() + sx * sy * _expected_centred_products(cov_mean, therapist).sum()
    square = (x_fixed**2).sum() + sx * sx * _expected_centred_products(var_mean, therapist).sum()
    patient = cross / square if square > 0 else float("nan")
    # therapists within therapy types: therapist means of the patient quantities
    counts = np.bincount(therapist)
    stable = alliance_therapist + np.bincount(therapist, weights=alliance_patient) / counts
    t_code = np.bincount(therapist, weights=therapy_code) / counts
    t_code = np.rint(t_code).astype(int)
    t_growth = np.array([design.alliance_growth[t] for t in design.therapies])[t_code]
    t_slope = np.array([symptom_mean_slope(design, t) for t in design.therapies])[t_code] - session_coefficient
    t_session = _centred_within(np.bincount(therapist, weights=mean_session) / counts, t_code)
    stable_c = _centred_within(stable, t_code)
    x_fixed, y_fixed = stable_c + t_growth * t_session, design.therapist_between_effect * stable_c + t_slope * t_session
    t_cov = np.bincount(therapist, weights=cov_mean) / counts**2
    t_var = np.bincount(therapist, weights=var_mean) / counts**2
    cross = (x_fixed * y_fixed).sum() + sx * sy * _expected_centred_products(t_cov, t_code).sum()
    square = (x_fixed**2).sum() + sx * sx * _expected_centred_products(t_var, t_code).sum()
    therapist_level = cross / square if square > 0 else float("nan")  # nan: one therapist per therapy type
    return {"patient_within_therapist": float(patient), "between_therapist": float(therapist_level)}


def riclpm_truth(design, waves: int) -> dict:
    """The RI-CLPM's parameters on the first ``waves`` sessions, on the observed scores (WAI-SR mean
    score and POMP), pooled over therapy types (equal shares, as in the design): paths, wave-1
    within covariance, innovation covariance and the wave means; ``standardised``: the same paths
    in within-person SD units. The random-intercept variances are those of the stable parts."""
    sx, sy = design.alliance_within_sd, design.symptom_within_sd
    b = paths(design)
    scale = np.diag([sx, sy])
    s = np.mean([stationary_covariance(design, t) for t in design.therapies], axis=0)
    q = np.mean([innovation_covariance(design, t) for t in design.therapies], axis=0)
    raw_b = scale @ b @ np.linalg.inv(scale)
    raw_s, raw_q = scale @ s @ scale, scale @ q @ scale
    growth = np.mean(list(design.alliance_growth.values()))
    slope = np.mean([symptom_mean_slope(design, t) for t in design.therapies])
    lr = np.linalg.inv(np.eye(2) - raw_b)
    # stable parts: alliance = therapist u + patient p (p includes the expectancy term, var 10 for 0-10);
    # symptoms = beta_P (p - therapist mean of p) + beta_T (u + therapist mean of p) + r_therapist + r_patient
    m = design.patients_per_therapist
    var_u = design.alliance_therapist_sd**2
    var_p = design.alliance_patient_sd**2 + 10 * design.alliance_expectancy_effect**2
    bp, bt = design.patient_between_effect, design.therapist_between_effect
    return {
        "var_RIx": float(var_u + var_p),
        "var_RIy": float(
            bt * bt * (var_u + var_p / m)
            + bp * bp * var_p * (1 - 1 / m)
            + design.outcome_therapist_sd**2
            + design.outcome_patient_sd**2
        ),
        "cov_RIx_RIy": float(bt * (var_u + var_p / m) + bp * var_p * (1 - 1 / m)),
        "alpha": float(raw_b[0, 0]),
        "beta": float(raw_b[0, 1]),
        "gamma": float(raw_b[1, 0]),
        "delta": float(raw_b[1, 1]),
        "var_wx1": float(raw_s[0, 0]),
        "var_wy1": float(raw_s[1, 1]),
        "cov_wx1_wy1": float(raw_s[0, 1]),
        "var_u": float(raw_q[0, 0]),
        "var_v": float(raw_q[1, 1]),
        "cov_u_v": float(raw_q[0, 1]),
        "long_run": {
            "x->x": float(lr[0, 0]),
            "y->x": float(lr[0, 1]),
            "x->y": float(lr[1, 0]),
            "y->y": float(lr[1, 1]),
        },
        "mean_x": [float(design.alliance_intercept + growth * t) for t in range(waves)],
        "mean_y": [float(design.outcome_intercept + slope * t) for t in range(waves)],
        "standardised": {
            "alpha": float(b[0, 0]),
            "beta": float(b[0, 1]),
            "gamma": float(b[1, 0]),
            "delta": float(b[1, 1]),
        },
    }


# --------------------------------------------------------------------------- TRUTH.yaml sections


def _r(value: float) -> float | None:
    """Rounded to 6 decimals for TRUTH.yaml (readable, and stable in the last digits); None for NaN
    (not identified in this sample)."""
    return None if np.isnan(value) else round(float(value), 6)


def rounded(value):
    """Every float in nested dicts and lists rounded by :func:`_r`.

    >>> rounded({"a": [0.1234567891, 2], "b": 1.0})
    {'a': [0.123457, 2], 'b': 1.0}
    """
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return _r(value) if isinstance(value, float) else value


def _matrix(m: np.ndarray) -> list[list[float]]:
    return [[_r(v) for v in row] for row in m]


def measurement_truth(design) -> dict:
    """Rounding error of the observed scores (uniform: SD = unit / sqrt 12) and the reliability of
    the within-person part, within SD^2 / (within SD^2 + rounding variance)."""
    sx, sy = design.alliance_within_sd, design.symptom_within_sd
    wai_unit = 1 / 12
    out = {
        "alliance": {
            "score": "WAI-SR total = round(12 x) clipped to 12-60, items spread exactly from it; x = total / 12",
            "rounding_sd": _r(wai_unit / np.sqrt(12)),
            "within_reliability": _r(sx**2 / (sx**2 + wai_unit**2 / 12)),
        },
    }
    for measure, items in (("PHQ-9", 27), ("GAD-7", 21)):
        unit = 100 / items
        out[measure] = {
            "score": f"{measure} total = round(y x {items} / 100) clipped to 0-{items}; POMP = 100 x total / {items}",
            "rounding_sd": _r(unit / np.sqrt(12)),
            "within_reliability": _r(sy**2 / (sy**2 + unit**2 / 12)),
        }
    out["note"] = (
        "the process generates the observed scores; rounding and clipping (about 1 % of the alliance "
        "scores, at 5; 0.1 % of the symptom scores) are the only measurement error; 1 % of items are "
        "deleted at random afterwards"
    )
    return out


def process_truth(design) -> dict:
    """The within-person process in SD units and in the scales' units."""
    sx, sy = design.alliance_within_sd, design.symptom_within_sd
    b, lr = paths(design), long_run(design)
    to_y, to_x = sy / sx, sx / sy  # SD-unit x -> y effect in POMP per WAI-SR point; y -> x the reverse
    return {
        "definition": (
            "w[t] = B w[t-1] + e[t] within person (the person's stable level and the mean trends removed); "
            "long-run effects (I - B)^-1: [j, k] is the eventual change in j per lasting unit change "
            "in the innovations of k (the sum of the k -> j effects over all lags)"
        ),
        "within_sd": {"alliance_wai_points": sx, "symptoms_pomp_points": sy},
        "sd_units": {
            "alliance_carryover": _r(b[0, 0]),
            "symptom_carryover": _r(b[1, 1]),
            "alliance_to_next_symptoms": _r(b[1, 0]),
            "symptoms_to_next_alliance": _r(b[0, 1]),
            "spectral_radius": _r(np.max(np.abs(np.linalg.eigvals(b)))),
            "long_run": {
                "alliance_to_alliance": _r(lr[0, 0]),
                "symptoms_to_alliance": _r(lr[0, 1]),
                "alliance_to_symptoms": _r(lr[1, 0]),
                "symptoms_to_symptoms": _r(lr[1, 1]),
            },
            "contemporaneous_correlation_by_therapy": {
                t: _r(contemporaneous_correlation(design, t)) for t in design.therapies
            },
            "innovation_cov_by_therapy": {t: _matrix(innovation_covariance(design, t)) for t in design.therapies},
        },
        "scale_units": {
            "alliance_carryover": _r(b[0, 0]),
            "symptom_carryover": _r(b[1, 1]),
            "alliance_to_next_symptoms_pomp_per_wai_point": _r(b[1, 0] * to_y),
            "symptoms_to_next_alliance_wai_points_per_pomp_point": _r(b[0, 1] * to_x),
            "long_run": {
                "alliance_to_alliance": _r(lr[0, 0]),
                "symptoms_to_alliance_wai_points_per_pomp_point": _r(lr[0, 1] * to_x),
                "alliance_to_symptoms_pomp_per_wai_point": _r(lr[1, 0] * to_y),
                "symptoms_to_symptoms": _r(lr[1, 1]),
            },
        },
    }


#: the RI-CLPM's waves on the demo (Flückiger et al. 2020 used sessions 1-7)
RICLPM_WAVES = 7


def truth_sections(
    design,
    therapist: np.ndarray,
    therapy_code: np.ndarray,
    attended: np.ndarray,
    alliance_patient: np.ndarray,
    alliance_therapist: np.ndarray,
) -> dict:
    """The known-truth sections of TRUTH.yaml for a simulated sample: the process, the same-session
    and between truths with what the suite's estimators target, the RI-CLPM's parameters and one
    entry per model of the shipped suite (config/config.yaml)."""
    moments = moments_by_therapy(design, therapy_code, attended)
    same = same_session_estimands(design, therapy_code, attended, moments)
    between = between_estimands(
        design,
        therapist,
        therapy_code,
        attended,
        alliance_patient,
        alliance_therapist,
        same["session_by_therapy_model"],
        moments,
    )
    riclpm = riclpm_truth(design, RICLPM_WAVES)
    sections = {
        "within_effect_sample_patient_mean": _r(same["patient_mean"]),
        "within_person_process": process_truth(design),
        "measurement": measurement_truth(design),
        "same_session": {
            "contemporaneous_by_therapy": dict(design.within_effect),
            "contemporaneous_definition": (
                "Sigma_xy(0) / Sigma_xx(0) of the stationary within-person process, POMP per WAI-SR point"
            ),
            "estimand_by_therapy": {t: _r(v) for t, v in same["by_therapy"].items()},
            "estimand_session_slope": _r(same["session_by_therapy_model"]),
            "estimand_pooled": {k: _r(v) for k, v in same["pooled"].items()},
            "estimand_patient_mean": _r(same["patient_mean"]),
            "estimand_definition": (
                "the limit, for this sample's attendance, of the within-patient coefficient of symptoms on "
                "the person-mean-centred alliance with the session number and patient intercepts "
                "(alliance.simulate_truth.same_session_estimands); smaller than the contemporaneous "
                "coefficient because the person mean carries the lagged cross-covariances"
            ),
        },
        "between": {
            "patient_within_therapist_stable": design.patient_between_effect,
            "between_therapist_stable": design.therapist_between_effect,
            "stable_definition": (
                "effects of the stable alliance (patient minus therapist mean; therapist mean minus grand mean) "
                "on the stable symptom level, POMP per WAI-SR point"
            ),
            "manifest_patient_within_therapist": _r(between["patient_within_therapist"]),
            "manifest_between_therapist": _r(between["between_therapist"]),
            "manifest_definition": (
                "the limit of the coefficients of the observed patient-within-therapist and therapist means "
                "(patients, therapists weight 1) beside the by-therapy within slopes and the session: the "
                "means carry the within-person process over the sessions attended "
                "(alliance.simulate_truth.between_estimands). Exact when attendance is unrelated to the "
                "scores; with dropout on the previous session (this design) the patients who leave are "
                "selected on their last session and the patient-level coefficient is about 0.45 more negative "
                "(measured on 200,000 simulated patients): no single parameter"
            ),
        },
        f"riclpm_first_{RICLPM_WAVES}_sessions": rounded(riclpm),
        "estimands": model_estimands(design, same, riclpm),
    }
    return sections


#: the name of the RI-CLPM's entry in ``estimands`` (the config's ``type: riclpm`` model must have it)
RICLPM_MODEL = "riclpm"


def model_estimands(design, same: dict, riclpm: dict) -> dict:
    """``estimands: {<model>: {<term or path>: value}}`` for every model of the shipped suite
    (config/config.yaml) and its RI-CLPM, as the report's section "Which comes first" reads them
    (config/README.md, dataset.truth); ``targets`` says in words what the model's coefficients
    estimate under the process. Lagged mixed models target no single parameter: their entries give
    the generating (RI-CLPM) path each coefficient should be compared with
    (alliance.simulate_lagged_truth)."""
    raw = {k: _r(riclpm[k]) for k in ("alpha", "beta", "gamma", "delta")}
    patient_level = (
        "no single parameter: one score per patient mixes the stable between effects, the within-person "
        "process over the sessions and the attendance"
    )
    growth = design.alliance_growth
    first = design.therapies[0]
    return {
        "variance_outcome": {"targets": "variance split; the session level holds sy^2, the mean trends and rounding"},
        "variance_alliance": {"targets": "variance split; the session level holds sx^2, the growth and rounding"},
        "alliance_growth": {
            "targets": "the alliance growth per session by therapy and the expectancy effect (design values)",
            "session_c": growth[first],
            **{f"session_c:therapy[T.{t}]": _r(growth[t] - growth[first]) for t in design.therapies[1:]},
            "session_c:condition[T.anxiety]": 0.0,
            "expectancy_c": design.alliance_expectancy_effect,
        },
        "same_session": {
            "targets": (
                "the same-session estimands (same_session.estimand_*), not the contemporaneous coefficient; "
                "alliance_between_patient: no single parameter"
            ),
            "alliance_within_patient": _r(same["patient_mean"]),
            "session_c": _r(same["pooled"]["session_c"]),
        },
        "moderation": {
            "targets": (
                "the by-therapy same-session estimands as simple slopes; no moderation by condition; "
                "alliance_between_patient: no single parameter"
            ),
            **{f"alliance_within_patient | therapy = {t}": _r(v) for t, v in same["by_therapy"].items()},
        },
        **lagged_estimands(raw, list(RAW_LAGGED)),
        "early_alliance": {"targets": patient_level},
        "early_alliance_early_change": {"targets": patient_level},
        "early_alliance_mean": {"targets": patient_level},
        "baldwin": {"targets": patient_level + " (the last session's symptoms, baseline controlled)"},
        **lagged_estimands(raw, list(CENTRED_LAGGED)),
        RICLPM_MODEL: {
            "targets": (
                f"the RI-CLPM on sessions 1-{RICLPM_WAVES} (observed scores; paths equal over waves): its paths and "
                f"long-run effects (riclpm_first_{RICLPM_WAVES}_sessions has every parameter)"
            ),
            **raw,
            "long_run": rounded(riclpm["long_run"]),
        },
    }
