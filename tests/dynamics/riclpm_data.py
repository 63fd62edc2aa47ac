"""The committed RI-CLPM test data sets (tests/data/riclpm_*.csv), made by alliance.dynamics.process.

    .venv/bin/python tests/dynamics/riclpm_data.py      # rewrite tests/data/riclpm_*.csv (byte for byte)

* ``riclpm_complete.csv``: 300 patients x 5 waves, no missing values, linear trends in the means.
* ``riclpm_dropout.csv``: 80 therapists x 5 patients x 7 waves, monotone MAR dropout plus 4 %
  of the scores missing completely at random (intermittent, so many missing-data patterns); the
  person intercepts include a therapist component (passed to the simulator as pre-drawn
  intercepts).
* ``riclpm_boundary.csv``: 300 patients x 5 waves, no stable symptom differences and 30 % of
  each patient's mean symptom score subtracted, so the ML estimate of var(RIy) is negative
  (lavaan, without bounds, reports it and warns; the tests check the flags).

Wide: ``patient``, ``therapist``, ``x1..xK`` (alliance), ``y1..yK`` (symptoms), ``NA`` = missing,
five decimals. The lavaan references (tests/reference/riclpm/) are fitted to these files by
tests/r/riclpm_reference.R.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))  # when run as a script

from alliance.dynamics.process import DropoutParams, ProcessParams, simulate_process  # noqa: E402
from alliance.dynamics.riclpm import riclpm_long_to_wide  # noqa: E402

COMPLETE = ProcessParams(n_sessions=5, trend_x=0.10, trend_y=-0.15, mean_x=0.5, mean_y=1.0)
DROPOUT = ProcessParams(n_sessions=7, trend_y=-0.10)
DROPOUT_MODEL = DropoutParams(intercept=-2.2, slope_x=-0.4, slope_y=0.4)
BOUNDARY = ProcessParams(n_sessions=5, intercept_sd_y=0.0, intercept_corr=0.0)
SEEDS = {"complete": 20250611, "dropout": 20250612, "boundary": 20250613}


def _wide(long: pd.DataFrame, waves: int, therapist: np.ndarray) -> pd.DataFrame:
    wide = riclpm_long_to_wide(
        long, patient="patient", session="session", x="alliance_score", y="symptom_score", waves=waves
    )
    wide.insert(0, "therapist", therapist)
    return wide.reset_index()


def complete_data() -> pd.DataFrame:
    rng = np.random.default_rng(SEEDS["complete"])
    long, _ = simulate_process(COMPLETE, 300, rng)
    return _wide(long, 5, np.repeat(np.arange(1, 31), 10))


def dropout_data() -> pd.DataFrame:
    rng = np.random.default_rng(SEEDS["dropout"])
    therapist = np.repeat(np.arange(1, 81), 5)
    phi = DROPOUT.intercept_cov
    # 30 % of each intercept variance between therapists, 70 % between patients of a therapist
    t_part = rng.standard_normal((80, 2)) @ np.linalg.cholesky(0.3 * phi).T
    p_part = rng.standard_normal((400, 2)) @ np.linalg.cholesky(0.7 * phi).T
    long, _ = simulate_process(DROPOUT, None, rng, intercepts=t_part[therapist - 1] + p_part, dropout=DROPOUT_MODEL)
    wide = _wide(long, 7, therapist)
    # and 4 % of the remaining scores missing completely at random (intermittent: many patterns)
    cols = [f"{v}{t}" for v in "xy" for t in range(1, 8)]
    holes = rng.random((len(wide), len(cols))) < 0.04
    values = wide[cols].to_numpy()
    values[holes] = np.nan
    wide[cols] = values
    return wide


def boundary_data() -> pd.DataFrame:
    rng = np.random.default_rng(SEEDS["boundary"])
    long, _ = simulate_process(BOUNDARY, 300, rng)
    wide = _wide(long, 5, np.repeat(np.arange(1, 31), 10))
    ys = [f"y{t}" for t in range(1, 6)]
    wide[ys] = wide[ys].sub(0.3 * wide[ys].mean(axis=1), axis=0)
    return wide


def write(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, float_format="%.5f", na_rep="NA", lineterminator="\n")


if __name__ == "__main__":
    write(complete_data(), DATA / "riclpm_complete.csv")
    write(dropout_data(), DATA / "riclpm_dropout.csv")
    write(boundary_data(), DATA / "riclpm_boundary.csv")
