"""alliance.dynamics.process: the simulated process has the stated truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alliance.dynamics.process import (
    DropoutParams,
    ProcessParams,
    long_run_effects,
    simulate_process,
)


def _wide(data: pd.DataFrame, column: str) -> np.ndarray:
    return data.pivot(index="patient", columns="session", values=column).to_numpy()


@pytest.fixture(scope="module")
def big():
    """40,000 patients x 6 sessions, no intercept variance, so observed = mean + within."""
    params = ProcessParams(
        n_sessions=6, intercept_sd_x=0.0, intercept_sd_y=0.0, intercept_corr=0.0, mean_x=1.0, trend_x=0.5, trend_y=-0.25
    )
    data, truth = simulate_process(params, 40_000, np.random.default_rng(2024))
    return params, data, truth


def test_truth_is_internally_consistent(big):
    params, _, truth = big
    b, q, s = np.array(truth["paths"]), np.array(truth["innovation_cov"]), np.array(truth["within_cov"])
    np.testing.assert_allclose(s, b @ s @ b.T + q, atol=1e-12)  # stationary
    np.testing.assert_allclose(np.diag(s), 1.0, atol=1e-12)  # within-person standard units
    assert q[0, 1] / np.sqrt(q[0, 0] * q[1, 1]) == pytest.approx(params.innovation_corr, abs=1e-12)
    np.testing.assert_allclose(np.linalg.inv(np.eye(2) - b), long_run_effects(b))
    assert truth["long_run"]["x->y"] == pytest.approx(-0.20 / (0.6 * 0.6 - 0.02), rel=1e-12)
    assert truth["riclpm"]["gamma"] == -0.20 and truth["riclpm"]["beta"] == -0.10
    assert truth["riclpm"]["mean_x3"] == pytest.approx(2.0) and truth["riclpm"]["mean_y5"] == pytest.approx(-1.0)


def test_within_sds_are_constant_and_paths_recovered(big):
    _, data, truth = big
    x, y = _wide(data, "alliance_score"), _wide(data, "symptom_score")
    wx, wy = x - np.array(truth["means_x"]), y - np.array(truth["means_y"])
    se_var = np.sqrt(2 / 40_000)  # SE of a unit variance estimate
    assert np.all(np.abs(wx.var(axis=0) - 1) < 4 * se_var) and np.all(np.abs(wy.var(axis=0) - 1) < 4 * se_var)
    # OLS of w[t] on w[t-1], pooled over waves, recovers B
    prev = np.column_stack([wx[:, :-1].ravel(), wy[:, :-1].ravel()])
    nxt = np.column_stack([wx[:, 1:].ravel(), wy[:, 1:].ravel()])
    coef = np.linalg.lstsq(prev, nxt, rcond=None)[0].T
    np.testing.assert_allclose(coef, np.array(truth["paths"]), atol=0.01)
    assert np.corrcoef(wx[:, 0], wy[:, 0])[0, 1] == pytest.approx(truth["within_cov"][0][1], abs=0.015)


def test_intercepts_have_the_stated_covariance():
    params = ProcessParams(n_sessions=3, intercept_sd_x=2.0, intercept_sd_y=0.5, intercept_corr=-0.6)
    data, truth = simulate_process(params, 40_000, np.random.default_rng(5))
    means = data.groupby("patient")[["alliance_score", "symptom_score"]].mean().to_numpy()
    cov = np.cov(means.T)
    # person means = kappa + mean of 3 within scores: subtract the within part's known covariance
    s = np.array(truth["within_cov"])
    b = params.paths
    lags = [np.eye(2), b, b @ b]
    within = sum(lags[abs(i - j)] @ s if i >= j else (lags[abs(i - j)] @ s).T for i in range(3) for j in range(3)) / 9
    np.testing.assert_allclose(cov - within, params.intercept_cov, atol=0.06)


def test_supplied_intercepts_are_used_as_given():
    kappa = np.column_stack([np.arange(5) * 100.0, -np.arange(5) * 100.0])
    data, truth = simulate_process(ProcessParams(n_sessions=4), None, np.random.default_rng(1), intercepts=kappa)
    means = data.groupby("patient")[["alliance_score", "symptom_score"]].mean().to_numpy()
    np.testing.assert_allclose(means, kappa, atol=4.0)  # within part of a 4-session mean has SD < 1
    assert truth["intercepts_supplied"] and "var_RIx" not in truth["riclpm"]
    with pytest.raises(ValueError, match="shape"):
        simulate_process(ProcessParams(), None, np.random.default_rng(1), intercepts=np.zeros(5))


def test_dropout_is_monotone_and_depends_on_the_previous_observed_scores():
    params = ProcessParams(n_sessions=6)
    dropout = DropoutParams(intercept=-2.0, slope_x=0.0, slope_y=1.0)
    data, truth = simulate_process(params, 20_000, np.random.default_rng(3), dropout=dropout)
    counts = data.groupby("patient")["session"].agg(["max", "size"])
    assert (counts["max"] == counts["size"]).all()  # sessions 1..last, no gaps
    assert data.groupby("patient")["session"].min().eq(1).all()
    frac = np.array(truth["observed_fraction_by_session"])
    assert frac[0] == 1.0 and np.all(np.diff(frac) < 0)
    # P(leave before 2 | y1) follows the logistic model in the observed y1
    y1 = data[data["session"] == 1].set_index("patient")["symptom_score"]
    stayed = data[data["session"] == 2].set_index("patient").index
    left = ~y1.index.isin(stayed)
    for lo, hi in ((-1.5, -0.5), (0.5, 1.5)):
        band = (y1 > lo) & (y1 <= hi)
        expected = (1 / (1 + np.exp(-(-2.0 + y1[band])))).mean()
        assert left[band].mean() == pytest.approx(expected, abs=0.02)


def test_same_seed_same_data_and_errors():
    a = simulate_process(ProcessParams(), 200, np.random.default_rng(9), dropout=DropoutParams())
    b = simulate_process(ProcessParams(), 200, np.random.default_rng(9), dropout=DropoutParams())
    pd.testing.assert_frame_equal(a[0], b[0])
    assert a[1] == b[1]
    with pytest.raises(ValueError, match="not stationary"):
        simulate_process(ProcessParams(carryover_x=1.0, carryover_y=0.5), 10, np.random.default_rng(1))
    with pytest.raises(ValueError, match="first_session"):
        simulate_process(ProcessParams(), 10, np.random.default_rng(1), dropout=DropoutParams(first_session=1))
