"""Two-stage random-effects meta-analysis (alliance.pooling.meta) against R's metafor 3.8.1.

Inputs: tests/data/dat_bcg.csv, metafor's dat.bcg as log risk ratios (``escalc(measure = "RR")``,
exported by ``Rscript tests/r/metafor_reference.R <out_dir> --export-bcg tests/data/dat_bcg.csv``),
and tests/data/meta_homogeneous.csv, six studies written by hand whose estimates scatter less than
their sampling variances allow (Q = 0.31 on 5 df), so that REML's tau^2 is 0. metafor's values of
them are committed in tests/reference/metafor/ (tests/r/metafor_reference.R) and, in the slow run,
recomputed live. Every metafor fit is there twice: with metafor's default threshold (1e-5 on the
change of tau^2) and with 1e-10; ours are compared with tol = 1e-5 and with the default 1e-10.

Tolerance: 1e-6 absolute on every number (the issue asks for 1e-4). Reached: at most 2e-9 (QE of
mods ~ ablat + year, a sum of squares of 28 whose model matrix has year ~ 1970 beside the
intercept), most numbers within 1e-14. With our default tol of 1e-10 against metafor's default
threshold the meta-regressions would miss 1e-6 (by up to 1.5e-4 in a coefficient): metafor's
default stops short of the REML optimum, hence the second set of references.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import FrozenInstanceError

import numpy as np
import pandas as pd
import pytest

from alliance.pooling import meta
from testkit import ROOT

BCG = ROOT / "tests/data/dat_bcg.csv"
HOMOGENEOUS = ROOT / "tests/data/meta_homogeneous.csv"
REFERENCE = ROOT / "tests/reference/metafor"
R_SCRIPT = ROOT / "tests/r/metafor_reference.R"
REFERENCE_FILES = ["random_effects.csv", "weights.csv", "meta_regression.csv", "leave_one_out.csv"]

TOL = 1e-6
#: metafor's threshold -> our tol: its default (1e-5, the same iterations) and tight (our default)
THRESHOLDS = {1e-5: 1e-5, 1e-10: 1e-10}
MODERATORS = {"ablat": ["ablat"], "ablat_year": ["ablat", "year"], "alloc": ["alloc"]}
POOLED_COLUMNS = ["estimate", "se", "statistic", "p", "ci_low", "ci_high", "tau2", "tau", "i2", "h2", "q", "q_p"]
POOLED_COLUMNS += ["pi_low", "pi_high"]


def _bcg() -> pd.DataFrame:
    d = pd.read_csv(BCG)
    d["label"] = d["trial"].astype(str) + ": " + d["author"] + " " + d["year"].astype(str)
    return d


def _homogeneous() -> pd.DataFrame:
    return pd.read_csv(HOMOGENEOUS).rename(columns={"study": "label"})


DATASETS = {"bcg": _bcg, "homogeneous": _homogeneous}


def _reference(file: str, threshold: float, **where: str) -> pd.DataFrame:
    ref = pd.read_csv(REFERENCE / file)
    keep = np.isclose(ref["threshold"], threshold, rtol=1e-9, atol=0)
    for column, value in where.items():
        keep &= ref[column] == value
    assert keep.any(), (file, threshold, where)
    return ref[keep].reset_index(drop=True)


def _assert_close(ours: dict, ref: pd.Series, columns: list[str], what: str) -> None:
    for column in columns:
        assert ours[column] == pytest.approx(ref[column], abs=TOL, rel=0), f"{what}: {column}"


@pytest.fixture(scope="module")
def bcg() -> pd.DataFrame:
    return _bcg()


def _pool(data: pd.DataFrame, **kwargs) -> meta.PooledEffect:
    return meta.random_effects(data["yi"], np.sqrt(data["vi"]), **kwargs)


def test_known_values_of_dat_bcg(bcg):
    """The values every metafor user has seen (rma(yi, vi, data = dat) of the escalc'd dat.bcg)."""
    z = _pool(bcg, knapp_hartung=False, tol=1e-5)
    assert z.tau2 == pytest.approx(0.313243, abs=5e-7)
    assert z.estimate == pytest.approx(-0.714532, abs=5e-7)
    assert z.se == pytest.approx(0.179782, abs=5e-7)  # z test; 0.180792 is the Knapp-Hartung SE
    assert (z.i2, z.h2, z.q) == pytest.approx((92.2214, 12.8558, 152.2330), abs=5e-5)
    kh = _pool(bcg, tol=1e-5)
    assert kh.se == pytest.approx(0.180792, abs=5e-7)
    assert (kh.ci_low, kh.ci_high, kh.pi_low, kh.pi_high) == pytest.approx(
        (-1.1084, -0.3206, -1.9960, 0.5670), abs=5e-5
    )
    assert kh.df == 12 and math.isinf(z.df)


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("test", ["knha", "z"])
@pytest.mark.parametrize("dataset", DATASETS)
def test_random_effects_equal_metafor(dataset, test, threshold):
    data = DATASETS[dataset]()
    fit = _pool(data, knapp_hartung=test == "knha", tol=THRESHOLDS[threshold])
    ref = _reference("random_effects.csv", threshold, dataset=dataset, test=test).iloc[0]
    row = fit.as_row()
    _assert_close(row, ref, POOLED_COLUMNS, f"{dataset} {test}")
    assert (row["k"], row["q_df"], row["df"]) == (ref["k"], ref["q_df"], ref["df"])
    assert row["ci_method"] == ("knapp_hartung" if test == "knha" else "wald_z")
    assert row["converged"] and row["iterations"] >= 1
    assert row["boundary"] == (dataset == "homogeneous")
    weights = _reference("weights.csv", threshold, dataset=dataset)
    assert weights["label"].tolist() == data["label"].tolist()
    np.testing.assert_allclose(fit.weights, weights["weight"], atol=TOL, rtol=0)
    assert fit.weights.sum() == pytest.approx(100.0)


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("model", MODERATORS)
def test_meta_regression_equal_metafor(bcg, model, threshold):
    fit = meta.meta_regression(bcg["yi"], np.sqrt(bcg["vi"]), bcg[MODERATORS[model]], tol=THRESHOLDS[threshold])
    ref = _reference("meta_regression.csv", threshold, model=model)
    coefs = ref[ref["kind"] == "coef"].reset_index(drop=True)
    assert fit.coefficients.columns.tolist() == meta.COEFFICIENT_COLUMNS
    assert fit.coefficients["term"].tolist() == coefs["term"].tolist()
    numbers = ["estimate", "se", "statistic", "df", "p", "ci_low", "ci_high"]
    np.testing.assert_allclose(fit.coefficients[numbers], coefs[numbers], atol=TOL, rtol=0)
    stats = ref[ref["kind"] == "fit"].iloc[0]
    row = fit.as_row()
    _assert_close(row, stats, ["tau2", "i2", "h2", "r2", "qm", "qm_p", "qe", "qe_p"], model)
    assert (row["k"], row["n_coef"], row["qm_df1"], row["qm_df2"], row["qe_df"]) == tuple(
        stats[["k", "n_coef", "qm_df1", "qm_df2", "qe_df"]]
    )
    assert row["ci_method"] == "knapp_hartung" and row["converged"]


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_leave_one_out_equal_metafor(dataset, threshold):
    data = DATASETS[dataset]()
    ours = meta.leave_one_out(data["yi"], np.sqrt(data["vi"]), data["label"], tol=THRESHOLDS[threshold])
    ref = _reference("leave_one_out.csv", threshold, dataset=dataset)
    assert ours.columns.tolist() == meta.LEAVE_ONE_OUT_COLUMNS
    assert ours["label"].tolist() == ref["label"].tolist()
    assert (ours["k"] == len(data) - 1).all()
    numbers = [c for c in meta.LEAVE_ONE_OUT_COLUMNS if c not in ("label", "k")]
    np.testing.assert_allclose(ours[numbers], ref[numbers], atol=TOL, rtol=0)


def test_default_tol_converges_beyond_metafor_default(bcg):
    """Our default (1e-10) against metafor's default stop (1e-5): close for the pooled estimate, off by
    more than the tolerance for a meta-regression -- the reason for the tight references."""
    pooled = _reference("random_effects.csv", 1e-5, dataset="bcg", test="knha").iloc[0]
    assert abs(_pool(bcg).tau2 - pooled["tau2"]) < 1e-6
    ref = _reference("meta_regression.csv", 1e-5, model="ablat", kind="fit").iloc[0]
    fit = meta.meta_regression(bcg["yi"], np.sqrt(bcg["vi"]), bcg[["ablat"]])
    assert abs(fit.tau2 - ref["tau2"]) > 1e-6
    assert fit.iterations > meta.meta_regression(bcg["yi"], np.sqrt(bcg["vi"]), bcg[["ablat"]], tol=1e-5).iterations


def _dl_tau2(y: np.ndarray, v: np.ndarray) -> float:
    w = 1 / v
    q = np.sum(w * (y - np.sum(w * y) / w.sum()) ** 2)
    return max(0.0, (q - (len(y) - 1)) / (w.sum() - np.sum(w**2) / w.sum()))


def test_references_tell_the_wrong_methods_apart(bcg):
    """The tolerance (1e-6) is far below the gap between the right numbers and the usual mistakes, so
    the comparisons above fail for code that makes them."""
    ref = _reference("random_effects.csv", 1e-10, dataset="bcg", test="knha").iloc[0]
    ref_z = _reference("random_effects.csv", 1e-10, dataset="bcg", test="z").iloc[0]
    y, v = bcg["yi"].to_numpy(), bcg["vi"].to_numpy()
    gap = 1000 * TOL
    # DerSimonian-Laird instead of REML
    assert abs(_dl_tau2(y, v) - ref["tau2"]) > gap
    # Knapp-Hartung off (z SE and CI) or on with the z quantile
    assert abs(ref_z["se"] - ref["se"]) > gap and abs(ref_z["ci_low"] - ref["ci_low"]) > gap
    z_pi = ref["estimate"] - 1.959963984540054 * math.sqrt(ref["se"] ** 2 + ref["tau2"])
    assert abs(z_pi - ref["pi_low"]) > gap
    # a prediction interval without the SE of the mean, or with tau alone
    t12 = 2.178812829663418  # qt(0.975, 12)
    assert abs(ref["estimate"] - t12 * math.sqrt(ref["tau2"]) - ref["pi_low"]) > gap
    # I^2 from Q ((Q - df) / Q) instead of from tau^2 and the typical within-study variance
    assert abs(100 * (ref["q"] - ref["q_df"]) / ref["q"] - ref["i2"]) > gap
    # Knapp-Hartung's scale truncated at 1 (metafor's "adhoc"): the homogeneous case tells
    hom_kh = _reference("random_effects.csv", 1e-10, dataset="homogeneous", test="knha").iloc[0]
    hom_z = _reference("random_effects.csv", 1e-10, dataset="homogeneous", test="z").iloc[0]
    assert hom_kh["se"] < hom_z["se"] - gap  # s^2 = Q / (k - 1) = 0.06 is not raised to 1


def test_homogeneous_studies_sit_on_the_boundary():
    data = _homogeneous()
    kh, z = _pool(data), _pool(data, knapp_hartung=False)
    for fit in (kh, z):
        assert fit.tau2 == 0.0 and fit.tau == 0.0 and fit.boundary
        assert fit.i2 == 0.0 and fit.h2 == 1.0
        assert fit.iterations == 1 and fit.converged  # started at 0 (Hedges' estimate < 0) and stayed
        assert (fit.pi_low, fit.pi_high) == pytest.approx((fit.ci_low, fit.ci_high), abs=1e-15)
    # Knapp-Hartung's scale s^2 = Q / (k - 1) below 1 narrows the CI (not truncated at 1)
    assert kh.se == pytest.approx(z.se * math.sqrt(kh.q / kh.q_df), rel=1e-12)
    assert kh.ci_high - kh.ci_low < z.ci_high - z.ci_low


def test_fit_row_and_dataclass(bcg):
    fit = _pool(bcg)
    row = fit.as_row()
    assert list(row) == [
        "k", "estimate", "se", "ci_low", "ci_high", "df", "statistic", "p", "tau2", "tau", "i2", "h2",
        "q", "q_df", "q_p", "pi_low", "pi_high", "ci_method", "converged", "iterations", "boundary",
    ]  # fmt: skip
    assert row["k"] == 13 and row["boundary"] is False and isinstance(row["iterations"], int)
    with pytest.raises(FrozenInstanceError):
        fit.tau2 = 0.0  # type: ignore[misc]
    assert pd.DataFrame([row]).shape == (1, 21)
    # a Series' index names the studies; the level sets both intervals
    wide = meta.random_effects(bcg["yi"], np.sqrt(bcg["vi"]), level=0.99)
    assert wide.ci_low < fit.ci_low and wide.pi_high > fit.pi_high
    reg = meta.meta_regression(bcg["yi"], np.sqrt(bcg["vi"]), bcg[["ablat"]]).as_row()
    assert "coefficients" not in reg and reg["n_coef"] == 2


def test_not_converged_is_flagged(bcg):
    fit = _pool(bcg, max_iter=1)
    assert not fit.converged and fit.iterations == 2  # metafor counts the step that exceeds maxiter
    assert _pool(bcg).converged


@pytest.mark.parametrize(
    ("estimates", "ses", "message"),
    [
        ([0.1, float("nan"), 0.3], [0.1, 0.1, 0.1], "study 'B': the estimate is nan"),
        ([0.1, 0.2, 0.3], [0.1, float("inf"), 0.1], "study 'B': the standard error is inf"),
        ([0.1, 0.2, 0.3], [0.1, 0.0, 0.1], "study 'B': the standard error is 0.0; it must be positive"),
        ([0.1, 0.2, 0.3], [0.1, 0.1, -0.2], "study 'C': the standard error is -0.2"),
        ([0.1], [0.1], "pooling needs at least two studies; got 1"),
        ([0.1, 0.2, 0.3], [0.1, 0.1], "3 estimates but 2 standard errors"),
    ],
)
def test_inputs_that_cannot_be_pooled_are_refused(estimates, ses, message):
    labels = list("ABC")[: len(estimates)]
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        meta.random_effects(estimates, ses, labels=labels)


def test_refusals_name_the_study():
    s = pd.Series([0.1, float("nan"), 0.3], index=["Oslo", "Bern", "Ulm"])
    with pytest.raises(ValueError, match="study 'Bern': the estimate is nan"):
        meta.random_effects(s, [0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="study 'study 2': the standard error is 0.0"):
        meta.random_effects([0.1, 0.2], [0.1, 0.0])
    with pytest.raises(ValueError, match="leave-one-out needs at least three studies"):
        meta.leave_one_out([0.1, 0.2], [0.1, 0.1], ["a", "b"])
    with pytest.raises(ValueError, match="study 'b': the standard error is nan"):
        meta.leave_one_out([0.1, 0.2, 0.3], [0.1, float("nan"), 0.1], ["a", "b", "c"])
    with pytest.raises(ValueError, match="level must be between 0 and 1"):
        meta.random_effects([0.1, 0.2], [0.1, 0.1], level=95)


def test_meta_regression_refusals(bcg):
    y, se = bcg["yi"].iloc[:3], np.sqrt(bcg["vi"].iloc[:3])
    with pytest.raises(ValueError, match=r"3 coefficients \(Intercept, ablat, year\) needs more than 3 studies"):
        meta.meta_regression(y, se, bcg[["ablat", "year"]].iloc[:3])
    y, se = bcg["yi"], np.sqrt(bcg["vi"])
    twice = bcg[["ablat"]].assign(again=bcg["ablat"] * 2)
    with pytest.raises(ValueError, match="collinear"):
        meta.meta_regression(y, se, twice)
    with pytest.raises(ValueError, match="moderator 'setting' has a single level 'outpatient'"):
        meta.meta_regression(y, se, pd.DataFrame({"setting": ["outpatient"] * 13}))
    gap = bcg[["ablat"]].astype(float)
    gap.loc[2, "ablat"] = np.nan
    with pytest.raises(ValueError, match="moderator 'ablat' is missing for study '2'"):  # y's index names it
        meta.meta_regression(y, se, gap)
    with pytest.raises(ValueError, match="moderators have 12 rows for 13 studies"):
        meta.meta_regression(y, se, bcg[["ablat"]].iloc[:12])


def test_categorical_moderators_become_treatment_dummies(bcg):
    """Strings against the first level in sorted order (as R's factor), named like patsy; a Categorical
    keeps its own order; booleans are a two-level factor."""
    y, se = bcg["yi"], np.sqrt(bcg["vi"])
    as_strings = meta.meta_regression(y, se, bcg[["alloc"]]).coefficients
    assert as_strings["term"].tolist() == ["Intercept", "alloc[T.random]", "alloc[T.systematic]"]
    shuffled = bcg.iloc[::-1]
    same = meta.meta_regression(shuffled["yi"], np.sqrt(shuffled["vi"]), shuffled[["alloc"]]).coefficients
    np.testing.assert_allclose(same["estimate"], as_strings["estimate"], atol=1e-10)
    ordered = pd.Categorical(bcg["alloc"], categories=["random", "alternate", "systematic", "unused"])
    relevelled = meta.meta_regression(y, se, pd.DataFrame({"alloc": ordered})).coefficients
    assert relevelled["term"].tolist() == ["Intercept", "alloc[T.alternate]", "alloc[T.systematic]"]
    # the same model, reparametrised: the intercept is now the mean of 'random'
    assert relevelled["estimate"].iloc[0] == pytest.approx(as_strings["estimate"].iloc[:2].sum(), abs=1e-8)
    flag = meta.meta_regression(y, se, pd.DataFrame({"north": bcg["ablat"] > 30})).coefficients
    assert flag["term"].tolist() == ["Intercept", "north[T.True]"]


@pytest.mark.slow
@pytest.mark.needs_r  # tests/conftest.py skips it without Rscript (and fails it in CI)
def test_metafor_reference_live(tmp_path):
    """Rerun tests/r/metafor_reference.R and compare its files with the committed references."""
    out = tmp_path / "metafor"
    exported = tmp_path / "dat_bcg.csv"
    subprocess.run(
        ["Rscript", str(R_SCRIPT), str(out), "--export-bcg", str(exported)],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    pairs = [(out / name, REFERENCE / name) for name in REFERENCE_FILES] + [(exported, BCG)]
    for live_path, committed_path in pairs:
        live, committed = pd.read_csv(live_path), pd.read_csv(committed_path)
        assert live.columns.tolist() == committed.columns.tolist(), live_path.name
        assert live.shape == committed.shape, live_path.name
        for column in committed.columns:
            if pd.api.types.is_numeric_dtype(committed[column]):
                np.testing.assert_allclose(live[column], committed[column], rtol=1e-10, atol=1e-14, err_msg=column)
            else:
                assert live[column].fillna("").tolist() == committed[column].fillna("").tolist(), column
