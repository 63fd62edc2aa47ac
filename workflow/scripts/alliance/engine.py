"""Mixed-model engine: structured model specs -> statsmodels MixedLM -> tidy, lme4-comparable results.

One entry point, :func:`fit` (``fit(spec, data) -> FitResult``).  ``fit(..., engine=...)`` chooses
the engine (``"statsmodels"``, the default and reference Python engine, described below;
``"mixedlm"``: :mod:`alliance.engine_mixedlm`; ``"lme4"``: :mod:`alliance.engine_lme4`, R through a
subprocess) and ``fit(..., cross_check=<engine>)`` refits with a second engine and flags
``cross_check_disagreement`` (docs/engines.md).  Models are described by
:class:`ModelSpec` / :class:`RandomTerm` (never by user-supplied formula strings); the engine
validates every name, builds the fixed-effects design with patsy from a formula it writes
itself, builds the random-effects design directly, and fits it with statsmodels' ``MixedLM``.

Numerical safeguards (docs: methods.md section 7):

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

import dataclasses
import keyword
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import patsy
import scipy.stats
import statsmodels
from statsmodels.regression.mixed_linear_model import MixedLM, VCSpec

__all__ = [
    "RandomTerm",
    "ModelSpec",
    "FitResult",
    "FitWarning",
    "fit",
    "boundary_reasons",
    "group_covariances",
    "singular_groups",
    "to_lme4_formula",
    "to_patsy_formula",
    "DEFAULT_OPTIMIZERS",
]

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: names that would shadow patsy built-ins used in the formula or clash with output labels
RESERVED_NAMES = frozenset({"C", "Treatment", "Intercept", "Residual", "I", "Q"})
#: optimiser sequences tried by :func:`fit`; each is passed as ``MixedLM.fit(method=[...])``
DEFAULT_OPTIMIZERS: tuple[tuple[str, ...], ...] = (
    ("lbfgs",),
    ("powell", "lbfgs"),
    ("bfgs",),
    ("nm", "lbfgs"),
)
#: a variance <= BOUNDARY_REL_TOL * residual variance counts as on the boundary
BOUNDARY_REL_TOL = 1e-6
#: a correlation with |r| >= 1 - CORR_BOUNDARY_TOL counts as on the boundary
CORR_BOUNDARY_TOL = 1e-6
#: a random-effects covariance matrix Sigma whose relative Cholesky factor L (Sigma / sigma^2 = L L',
#: the elements of L are lme4's theta) has a diagonal element <= THETA_BOUNDARY_TOL is on the
#: boundary (:func:`singular_groups`).  For a single variance this is BOUNDARY_REL_TOL; for
#: correlated terms it also catches |correlation| -> 1 that CORR_BOUNDARY_TOL misses (the demo's
#: lagged_alliance_symptoms model: r = -0.999994, smallest theta 2.3e-4).  lme4's isSingular()
#: uses tol = 1e-4, so this flags a little more than lme4 does (the value the suite used).
THETA_BOUNDARY_TOL = 1e-3
#: converged attempts whose log-likelihoods differ by more than this raise ``optimum_disagreement``
#: (some attempt reported convergence at a worse optimum; non-converged attempts are ignored)
OPTIMUM_DISAGREEMENT_TOL = 1e-3
#: attempts within this of the best log-likelihood count as tied (earliest converged one wins)
TIE_TOL = 1e-6
Z_975 = float(scipy.stats.norm.ppf(0.975))  # 1.959963984540054
DF_METHOD = "Wald z (asymptotic)"
SE_METHOD = (
    "sigma^2 (X' V*^-1 X)^-1 at the fitted variance parameters (as lme4 vcov); "
    "statsmodels' Hessian-based SEs kept as se_statsmodels"
)
AIC_DEFINITION = (
    "AIC = -2 logLik + 2 k, BIC = -2 logLik + log(n_obs) k, k = fixed effects + covariance "
    "parameters + 1 (residual); for REML fits logLik is the REML log-likelihood, as lme4's "
    "AIC()/BIC() on a REML fit (compare REML AIC/BIC only between models with identical fixed effects)"
)
SIG_DIGITS = 10

FLAG_NAMES = (
    "not_converged",
    "boundary",
    "refitted",
    "optimum_disagreement",
    "exact_zero_fixed",
    "simplified",
    "cross_check_disagreement",
)
#: ``fit(..., cross_check=...)``: a fixed effect differing from the second engine's by more than
#: this (relative) raises ``cross_check_disagreement``
CROSS_CHECK_RTOL = 1e-4


class FitWarning(UserWarning):
    """Emitted when the winning optimiser attempt did not converge (the result is still returned)."""


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term: a random intercept (and optional slopes) for ``group``.

    ``RandomTerm("patient", nested_in="therapist")`` is lme4's ``(1 | therapist:patient)``.
    ``correlated=False`` is lme4's ``||`` (independent intercept and slopes).
    """

    group: str
    slopes: tuple[str, ...] = ()
    correlated: bool = True
    nested_in: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A linear mixed model; ``fixed=()`` means intercept only.  Fixed terms are column names
    or interactions ``"a:b"``; ``categorical`` lists ``(column, reference level)`` pairs that are
    treatment-coded with the given reference."""

    name: str
    outcome: str
    fixed: tuple[str, ...]
    random: tuple[RandomTerm, ...]
    categorical: tuple[tuple[str, str], ...] = ()
    reml: bool = True


# --------------------------------------------------------------------------------------------
# Validation and formula building
# --------------------------------------------------------------------------------------------


def _check_name(name: Any, what: str, columns: Sequence[str] | None) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(
            f"invalid {what} name {name!r}: names must match {NAME_RE.pattern}"
        )
    if keyword.iskeyword(name) or name in RESERVED_NAMES:
        raise ValueError(f"invalid {what} name {name!r}: reserved word")
    if columns is not None and name not in columns:
        raise ValueError(f"{what} {name!r} is not a column of the data")
    return name


def _check_level(col: str, level: Any) -> str:
    if not isinstance(level, str) or not level or len(level) > 200:
        raise ValueError(
            f"reference level for {col!r} must be a non-empty string (<= 200 chars), got {level!r}"
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in level):
        raise ValueError(f"reference level {level!r} for {col!r} contains control characters")
    return level


def _fixed_parts(term: Any) -> list[str]:
    if not isinstance(term, str):
        raise ValueError(f"fixed term {term!r} must be a string")
    parts = term.split(":")
    if len(set(parts)) != len(parts):
        raise ValueError(f"fixed term {term!r} repeats a column")
    return parts


def _validate_structure(spec: ModelSpec, columns: Sequence[str] | None = None) -> None:
    """Check every name in ``spec`` (against ``columns`` when given) and the random structure."""
    if not isinstance(spec, ModelSpec):
        raise TypeError("spec must be a ModelSpec")
    if not isinstance(spec.name, str) or not spec.name:
        raise ValueError("spec.name must be a non-empty string")
    _check_name(spec.outcome, "outcome", columns)
    seen_terms = set()
    for term in spec.fixed:
        parts = _fixed_parts(term)
        for part in parts:
            _check_name(part, "fixed-effect column", columns)
            if part == spec.outcome:
                raise ValueError(f"outcome {part!r} cannot also be a fixed effect")
        key = frozenset(parts)
        if key in seen_terms:
            raise ValueError(f"fixed term {term!r} is listed twice")
        seen_terms.add(key)
    cats = set()
    for item in spec.categorical:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise ValueError(f"categorical entry {item!r} must be (column, reference level)")
        col, level = item
        _check_name(col, "categorical column", columns)
        _check_level(col, level)
        if col in cats:
            raise ValueError(f"categorical column {col!r} is listed twice")
        cats.add(col)
    if not spec.random:
        raise ValueError("a mixed model needs at least one RandomTerm")
    groups = []
    for rt in spec.random:
        if not isinstance(rt, RandomTerm):
            raise TypeError(f"random terms must be RandomTerm, got {rt!r}")
        _check_name(rt.group, "grouping column", columns)
        if rt.nested_in is not None:
            _check_name(rt.nested_in, "grouping column", columns)
            if rt.nested_in == rt.group:
                raise ValueError(f"{rt.group!r} cannot be nested in itself")
        if len(set(rt.slopes)) != len(rt.slopes):
            raise ValueError(f"random slopes for {rt.group!r} repeat a column")
        for s in rt.slopes:
            _check_name(s, "random-slope column", columns)
            if s in cats:
                raise ValueError(f"random slope {s!r} is categorical: not supported")
            if s in (rt.group, rt.nested_in, spec.outcome):
                raise ValueError(f"random slope {s!r} is a grouping column or the outcome")
        if rt.group == spec.outcome or rt.nested_in == spec.outcome:
            raise ValueError("the outcome cannot be a grouping column")
        groups.append((rt.nested_in, rt.group))
    if len(set(groups)) != len(groups):
        raise ValueError("a grouping factor appears in more than one RandomTerm")
    outer = [rt for rt in spec.random if rt.nested_in is None]
    nested = [rt for rt in spec.random if rt.nested_in is not None]
    if len(outer) > 1:
        raise ValueError(
            "crossed random effects ("
            + ", ".join(rt.group for rt in outer)
            + ") are not supported; if one factor is nested in the other, declare nested_in"
        )
    outer_names = {rt.nested_in for rt in nested} | {rt.group for rt in outer}
    if len(outer_names) != 1:
        raise ValueError(
            "all nested terms must be nested in the same (outermost) grouping factor: "
            + ", ".join(sorted(outer_names))
        )
    outer_name = next(iter(outer_names))
    for rt in nested:
        if rt.group == outer_name:
            raise ValueError(f"{rt.group!r} is both the outer group and nested in it")
    fixed_cols = {p for t in spec.fixed for p in _fixed_parts(t)}
    group_cols = {outer_name} | {rt.group for rt in nested}
    clash = group_cols & (fixed_cols | cats)
    if clash:
        raise ValueError(f"grouping column(s) {sorted(clash)} also used as fixed effects")


def _cat_map(spec: ModelSpec) -> dict[str, str]:
    return {col: level for col, level in spec.categorical}


def _patsy_factor(col: str, cats: dict[str, str]) -> str:
    if col in cats:
        # repr() of a str is always a single, inert Python string literal; the level has
        # also been checked to be printable and (in fit) to be a level present in the data.
        return f"C({col}, Treatment(reference={cats[col]!r}))"
    return col


def to_patsy_formula(spec: ModelSpec) -> str:
    """The patsy formula of the fixed part, e.g. ``"y ~ 1 + x + C(g, Treatment(reference='a'))"``."""
    _validate_structure(spec)
    cats = _cat_map(spec)
    terms = ["1"] + [":".join(_patsy_factor(p, cats) for p in t.split(":")) for t in spec.fixed]
    return f"{spec.outcome} ~ " + " + ".join(terms)


def _r_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lme4_random_terms(spec: ModelSpec, fitted: bool) -> list[str]:
    out = []
    for rt in spec.random:
        grp = rt.group if rt.nested_in is None else f"{rt.nested_in}:{rt.group}"
        lhs = " + ".join(("1",) + tuple(rt.slopes))
        correlated = rt.correlated and not (fitted and rt.nested_in is not None)
        bar = "|" if (correlated or not rt.slopes) else "||"
        out.append(f"({lhs} {bar} {grp})")
    return out


def to_lme4_formula(spec: ModelSpec, *, fitted: bool = False) -> str:
    """The equivalent lme4 formula, e.g. ``"y ~ x_cwc + (1 | therapist) + (1 + x_cwc || therapist:patient)"``.

    Categorical columns appear as ``relevel(factor(col), ref = "level")``.  With ``fitted=True``
    the formula actually fitted by statsmodels is returned (a correlated nested term becomes ``||``).
    """
    _validate_structure(spec)
    cats = _cat_map(spec)

    def rname(col: str) -> str:
        if col in cats:
            return f"relevel(factor({col}), ref = {_r_string(cats[col])})"
        return col

    fixed = [":".join(rname(p) for p in t.split(":")) for t in spec.fixed] or ["1"]
    return f"{spec.outcome} ~ " + " + ".join(fixed + _lme4_random_terms(spec, fitted))


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


def _round_sig(x: float, digits: int = SIG_DIGITS) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    if x == 0.0:
        return 0.0
    return float(f"{x:.{digits}g}")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, pd.DataFrame):
        return [_jsonable(r) for r in obj.to_dict(orient="records")]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _round_sig(float(obj))
    if obj is None or isinstance(obj, str):
        return obj
    if obj is pd.NA or obj is pd.NaT:
        return None
    return str(obj)


@dataclass
class FitResult:
    """Everything a reader needs about one fitted model.

    Attributes
    ----------
    spec : the ModelSpec fitted
    fixed : DataFrame term, estimate, se, se_statsmodels, statistic (Wald z), p (two-sided normal),
        ci_low, ci_high (est +/- 1.959964 se), estimate_statsmodels (statsmodels engine); the mixedlm
        and lme4 engines have term, estimate, se, df, statistic (t with Satterthwaite df), p and CI
        from the t distribution (``fit["df_method"]`` says which; df = inf when it fell back to z)
    vcov : DataFrame, covariance matrix of the fixed effects (lme4-style, as used for ``se``)
    variance_components : DataFrame group, term, variance, sd, correlation.  Covariance rows have
        term ``"a:b"``, the covariance in ``variance`` and the correlation in ``correlation``.  The
        last row is group ``"Residual"``, term ``"Residual"``.
    random_effects : DataFrame of conditional modes (BLUPs): group, level, term, value, cond_sd
        (conditional SD given the data and the fixed effects).  ``level`` is a string; for a
        nested factor it is ``"<outer>:<inner>"``.
    fitted : DataFrame row (index label of the input data), fitted_marginal (X b),
        fitted_conditional (X b + Z u), resid (y - fitted_conditional); only rows used in the fit
    fit : dict of fit information (log-likelihood, AIC/BIC, flags, attempts, warnings, notes,
        ``boundary_reasons``: {group: why} for the flag ``boundary``, ...)
    flags : short names of raised flags, a subset of FLAG_NAMES in that order
    engine_result : the engine's own result object (statsmodels MixedLMResults, mixedlm
        LmerResult, or lme4's output as a dict)
    """

    spec: ModelSpec
    fixed: pd.DataFrame
    vcov: pd.DataFrame
    variance_components: pd.DataFrame
    random_effects: pd.DataFrame
    fitted: pd.DataFrame
    fit: dict
    flags: list[str]
    engine_result: Any = field(default=None, repr=False, compare=False)
    #: wall seconds of the fitting phases (external engines; for bench/, never written to tables)
    timings: dict = field(default_factory=dict, repr=False, compare=False)

    def fixed_effect(self, term: str) -> float:
        """Estimate of one fixed effect, e.g. ``"wai_cwc"``, ``"Intercept"``, ``"therapy[T.PDT]"``."""
        hit = self.fixed.loc[self.fixed["term"] == term, "estimate"]
        if hit.empty:
            raise KeyError(f"no fixed effect {term!r}; have {list(self.fixed['term'])}")
        return float(hit.iloc[0])

    def contrast(self, weights: dict[str, float]) -> dict[str, float]:
        """Wald z for a linear combination of fixed effects, e.g. ``{"wai_pm_c": 1, "wai_cwc": -1}``
        (the contextual effect).  Returns estimate, se, statistic, p, ci_low, ci_high."""
        terms = list(self.fixed["term"])
        w = np.zeros(len(terms))
        for t, v in weights.items():
            if t not in terms:
                raise KeyError(f"no fixed effect {t!r}")
            w[terms.index(t)] = float(v)
        b = self.fixed["estimate"].to_numpy(dtype=float)
        est = float(w @ b)
        se = float(np.sqrt(w @ self.vcov.to_numpy(dtype=float) @ w))
        z = est / se if se > 0 else math.nan
        return {
            "estimate": est,
            "se": se,
            "statistic": z,
            "p": float(2 * scipy.stats.norm.sf(abs(z))),
            "ci_low": est - Z_975 * se,
            "ci_high": est + Z_975 * se,
        }

    def wald_test(self, terms: Sequence[str]) -> dict[str, float]:
        """Joint Wald chi-square test that the listed fixed effects are all 0 (e.g. an
        interaction block).  Returns statistic, df, p."""
        names = list(self.fixed["term"])
        idx = []
        for t in terms:
            if t not in names:
                raise KeyError(f"no fixed effect {t!r}")
            idx.append(names.index(t))
        b = self.fixed["estimate"].to_numpy(dtype=float)[idx]
        v = self.vcov.to_numpy(dtype=float)[np.ix_(idx, idx)]
        stat = float(b @ np.linalg.solve(v, b))
        return {"statistic": stat, "df": len(idx), "p": float(scipy.stats.chi2.sf(stat, len(idx)))}

    def to_dict(self, include_random_effects: bool = False) -> dict:
        """JSON-serialisable dict; floats rounded to 10 significant digits, NaN -> None."""
        out = {
            "spec": self.spec,
            "fixed": self.fixed,
            "vcov": {
                "terms": list(self.vcov.columns),
                "matrix": self.vcov.to_numpy(dtype=float).tolist(),
            },
            "variance_components": self.variance_components,
            "fit": self.fit,
            "flags": self.flags,
        }
        if include_random_effects:
            out["random_effects"] = self.random_effects
        return _jsonable(out)


# --------------------------------------------------------------------------------------------
# Design construction
# --------------------------------------------------------------------------------------------


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


def _labels(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError:  # unsortable mixed types
        codes, uniques = pd.factorize(values.astype(str), sort=True)
    return codes.astype(np.int64), [str(u) for u in uniques]


@dataclass
class _ModelFrame:
    """The engine-independent part of a design: complete rows, response, fixed-effects matrix."""

    df: pd.DataFrame  # complete rows of the columns the model uses (index = input labels)
    y: np.ndarray
    X: np.ndarray
    fe_names: list[str]
    n_dropped: int
    outer_name: str
    outer: list[RandomTerm]  # the outer term (0 or 1)
    nested: list[RandomTerm]  # terms nested in the outer group


def _model_frame(spec: ModelSpec, data: pd.DataFrame) -> _ModelFrame:
    """Validate ``spec`` against ``data``, drop incomplete rows and build y and X (patsy,
    treatment coding with the declared reference levels); shared by every engine."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError("data must be a pandas DataFrame")
    columns = [str(c) for c in data.columns]
    _validate_structure(spec, columns)
    cats = _cat_map(spec)
    outer = [rt for rt in spec.random if rt.nested_in is None]
    nested = [rt for rt in spec.random if rt.nested_in is not None]
    outer_name = outer[0].group if outer else nested[0].nested_in
    fixed_cols = [p for t in spec.fixed for p in t.split(":")]
    slope_cols = [s for rt in spec.random for s in rt.slopes]
    group_cols = [outer_name] + [rt.group for rt in nested]
    # a declared categorical column that no fixed term uses does not cost rows
    needed = list(dict.fromkeys([spec.outcome] + fixed_cols + slope_cols + group_cols))
    df = data.loc[:, needed]
    keep = df.notna().all(axis=1).to_numpy()
    n_dropped = int((~keep).sum())
    df = df.loc[keep]
    if len(df) == 0:
        raise ValueError("no complete rows for the model's columns")

    numeric = [spec.outcome] + [c for c in fixed_cols if c not in cats] + slope_cols
    for c in dict.fromkeys(numeric):
        if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]):
            raise ValueError(
                f"column {c!r} is not numeric; declare it in ModelSpec.categorical to treatment-code it"
            )
    pdata: dict[str, Any] = {}
    for c in needed:
        if c in cats:
            s = df[c].astype(str)
            levels = sorted(s.unique())
            if cats[c] not in levels:
                raise ValueError(
                    f"reference level {cats[c]!r} is not a level of {c!r}; levels: {levels}"
                )
            if len(levels) < 2:
                raise ValueError(f"categorical column {c!r} has fewer than 2 levels")
            pdata[c] = pd.Categorical(s.to_numpy(dtype=object), categories=levels)
        elif c in numeric:
            pdata[c] = df[c].to_numpy(dtype=float)
    pframe = pd.DataFrame(pdata)
    formula = to_patsy_formula(spec)
    env = patsy.EvalEnvironment([{}])  # only data columns and patsy built-ins are visible
    y_dm, X_dm = patsy.dmatrices(formula, pframe, eval_env=env, NA_action="raise")
    X = np.asarray(X_dm, dtype=float)
    y = np.asarray(y_dm, dtype=float)[:, 0]
    fe_names = list(X_dm.design_info.column_names)
    for c in cats:  # tidy names: "therapy[T.PDT]" instead of "C(therapy, Treatment(...))[T.PDT]"
        fe_names = [n.replace(_patsy_factor(c, cats), c) for n in fe_names]
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError(f"fixed-effects design is rank deficient: {fe_names}")
    return _ModelFrame(df, y, X, fe_names, n_dropped, outer_name, outer, nested)


def _build_design(spec: ModelSpec, data: pd.DataFrame) -> tuple[_Design, int]:
    mf = _model_frame(spec, data)
    df, y, X, fe_names, n_dropped = mf.df, mf.y, mf.X, mf.fe_names, mf.n_dropped
    outer_name, outer, nested = mf.outer_name, mf.outer, mf.nested

    outer_codes, outer_labels = _labels(df[outer_name])
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
        inner_codes, inner_labels = _labels(df[rt.group])
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


# --------------------------------------------------------------------------------------------
# Result assembly shared by every engine: variance table, boundary, flags
# --------------------------------------------------------------------------------------------

VC_COLUMNS = ["group", "term", "variance", "sd", "correlation"]


def variance_table(blocks: Sequence[tuple[str, Sequence[str], np.ndarray, bool]], sigma2: float) -> pd.DataFrame:
    """The ``variance_components`` table of a :class:`FitResult`.

    ``blocks``: ``(group, term names, covariance matrix, correlated)`` in output order.  Each block
    gives one row per variance and, when ``correlated``, one row per covariance (term ``"a:b"``,
    covariance in ``variance``, correlation in ``correlation``); the residual row comes last."""
    rows = []
    for group, names, cov, correlated in blocks:
        k = len(names)
        for i, nm in enumerate(names):
            v = float(cov[i, i])
            rows.append((group, nm, v, math.sqrt(max(v, 0.0)), math.nan))
        if not correlated:
            continue
        for i in range(k):
            for j in range(i + 1, k):
                c = float(cov[i, j])
                den = math.sqrt(max(cov[i, i], 0.0) * max(cov[j, j], 0.0))
                rows.append((group, f"{names[i]}:{names[j]}", c, math.nan, c / den if den > 0 else math.nan))
    rows.append(("Residual", "Residual", sigma2, math.sqrt(sigma2), math.nan))
    return pd.DataFrame(rows, columns=VC_COLUMNS)


def _residual_variance(variance_components: pd.DataFrame) -> float:
    hit = variance_components.loc[variance_components["group"] == "Residual", "variance"]
    if hit.empty:
        raise ValueError("the variance components have no Residual row")
    return float(hit.iloc[0])


def group_covariances(variance_components: pd.DataFrame) -> dict[str, tuple[list[str], np.ndarray]]:
    """Per random-effects group of a ``variance_components`` table: its terms (intercept, slopes)
    and their covariance matrix (covariances absent from the table, as for ``||`` terms, are 0)."""
    out: dict[str, tuple[list[str], np.ndarray]] = {}
    random_rows = variance_components[variance_components["group"] != "Residual"]
    for group, rows in random_rows.groupby("group", sort=False):
        labels = rows["term"].astype(str).tolist()
        terms = [t for t in labels if ":" not in t]
        index = {t: i for i, t in enumerate(terms)}
        S = np.zeros((len(terms), len(terms)))
        for label, value in zip(labels, rows["variance"].astype(float)):
            a, _, b = label.partition(":")
            b = b or a
            if a not in index or b not in index:
                raise ValueError(f"cannot read covariance term {label!r} of group {group!r}")
            S[index[a], index[b]] = S[index[b], index[a]] = value
        out[str(group)] = (terms, S)
    return out


def singular_groups(variance_components: pd.DataFrame, tol: float | None = None) -> dict[str, str]:
    """Random-effects groups whose covariance matrix is (nearly) singular, by lme4's theta criterion.

    For each group, Sigma / sigma^2 is factored as L L' (lme4's theta are the elements of L); the
    group is singular when a diagonal element of L is <= ``tol`` (default
    :data:`THETA_BOUNDARY_TOL`; lme4's ``isSingular`` uses 1e-4) or when Sigma is not positive
    definite.  Returns ``{group: reason}`` in table order (empty: no singular group).

    >>> vc = pd.DataFrame({"group": ["p", "p", "p", "Residual"], "term": ["Intercept", "x", "Intercept:x", "Residual"],
    ...                    "variance": [100.0, 0.25, -4.99999, 60.0]})
    >>> list(singular_groups(vc))
    ['p']
    """
    tol = THETA_BOUNDARY_TOL if tol is None else float(tol)
    sigma2 = _residual_variance(variance_components)
    out: dict[str, str] = {}
    for group, (terms, S) in group_covariances(variance_components).items():
        if not terms:
            continue
        try:
            theta = np.diag(np.linalg.cholesky(S / sigma2))
        except np.linalg.LinAlgError:
            out[group] = "its covariance matrix is not positive definite"
            continue
        k = int(np.argmin(theta))
        if not theta[k] > tol:  # also NaN
            d = np.sqrt(np.clip(np.diag(S), 0.0, None))
            corr = [
                f"correlation {terms[i]}:{terms[j]} {S[i, j] / (d[i] * d[j]):.7g}"
                for i in range(len(terms)) for j in range(i + 1, len(terms)) if S[i, j] != 0 and d[i] * d[j] > 0
            ]
            out[group] = (
                f"diagonal element {theta[k]:.3g} ({terms[k]}) of the relative Cholesky factor of its "
                f"covariance matrix (lme4's theta) <= {tol:g}" + (f" ({'; '.join(corr)})" if corr else "")
            )
    return out


def boundary_reasons(variance_components: pd.DataFrame, theta_tol: float | None = None) -> dict[str, str]:
    """Why each random-effects group is on the boundary (``{}``: the fit is not): a variance
    <= BOUNDARY_REL_TOL x residual variance, a correlation with |r| >= 1 - CORR_BOUNDARY_TOL, or
    lme4's theta criterion (:func:`singular_groups` with ``theta_tol``).  This decides the flag
    ``boundary`` of every engine (with the engine's own singular-fit verdict, where it has one)."""
    sigma2 = _residual_variance(variance_components)
    reasons: dict[str, list[str]] = {}
    for group, (terms, S) in group_covariances(variance_components).items():
        why = reasons.setdefault(group, [])
        d = np.diag(S)
        why += [f"variance of {t} {v:.3g} <= {BOUNDARY_REL_TOL:g} x residual variance"
                for t, v in zip(terms, d) if v <= BOUNDARY_REL_TOL * sigma2]
        for i in range(len(terms)):
            for j in range(i + 1, len(terms)):
                den = math.sqrt(max(d[i], 0.0) * max(d[j], 0.0))
                r = S[i, j] / den if den > 0 else math.nan
                if math.isfinite(r) and abs(r) >= 1.0 - CORR_BOUNDARY_TOL:
                    why.append(f"correlation {terms[i]}:{terms[j]} {r:.7g} within {CORR_BOUNDARY_TOL:g} of +-1")
    for group, why in singular_groups(variance_components, theta_tol).items():
        if not reasons[group]:  # otherwise implied by the reasons above
            reasons[group] = [why]
    return {group: "; ".join(why) for group, why in reasons.items() if why}


def likelihood_info(spec: ModelSpec, engine: str, engine_version: str, loglik: float, k: int, n: int) -> dict[str, Any]:
    """The first entries of ``FitResult.fit``: engine, method, log-likelihood, AIC/BIC (``k``
    parameters, ``n`` observations)."""
    return {
        "model": spec.name,
        "engine": engine,
        "engine_version": engine_version,
        "method": "REML" if spec.reml else "ML",
        "loglik": loglik,
        "reml_criterion" if spec.reml else "deviance": -2.0 * loglik,
        "aic": -2.0 * loglik + 2.0 * k,
        "bic": -2.0 * loglik + math.log(n) * k,
        "aic_definition": AIC_DEFINITION,
        "n_params": k,
        "n_obs": n,
    }


def finish_result(
    spec: ModelSpec,
    *,
    fixed: pd.DataFrame,
    vcov: pd.DataFrame,
    variance_components: pd.DataFrame,
    random_effects: pd.DataFrame,
    fitted: pd.DataFrame,
    fit_info: dict[str, Any],
    flag_values: dict[str, bool],
    engine_singular: bool = False,
    engine_result: Any = None,
) -> FitResult:
    """The last step of every engine: the flag ``boundary`` (:func:`boundary_reasons`, or the
    engine's own singular-fit verdict ``engine_singular``) with its groups and reasons in
    ``fit_info["boundary_reasons"]`` and ``fit_info["notes"]``, the flags in FLAG_NAMES order, and
    the :class:`FitResult`."""
    reasons = boundary_reasons(variance_components)
    boundary = bool(reasons) or bool(engine_singular)
    notes = fit_info.setdefault("notes", [])
    if reasons:
        notes.append("boundary: " + "; ".join(f"{group}: {why}" for group, why in reasons.items()))
    elif boundary:
        notes.append(f"boundary: {fit_info.get('engine', 'the engine')} reports a singular fit (isSingular)")
    fit_info["boundary"] = boundary
    fit_info["boundary_reasons"] = reasons
    flag_values = {**flag_values, "boundary": boundary}
    return FitResult(
        spec=spec,
        fixed=fixed,
        vcov=vcov,
        variance_components=variance_components,
        random_effects=random_effects,
        fitted=fitted,
        fit=fit_info,
        flags=[k for k in FLAG_NAMES if flag_values.get(k)],
        engine_result=engine_result,
    )


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


def _warning_text(w: warnings.WarningMessage) -> str:
    return f"{w.category.__name__}: {w.message}"


def _relative_params(res) -> tuple[np.ndarray, np.ndarray]:
    po = res.params_object
    cov_re = np.asarray(po.cov_re, dtype=float) if res.k_re > 0 else np.zeros((0, 0))
    vc = np.asarray(po.vcomp, dtype=float)
    return cov_re, vc


def _fit_statsmodels(
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
    random_effects = random_effects.sort_values(
        ["group", "term", "level"], kind="stable", ignore_index=True
    )
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
        **likelihood_info(spec, "statsmodels", statsmodels.__version__, ev["loglik"],
                          design.X.shape[1] + n_cov + 1, len(design.y)),
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


# --------------------------------------------------------------------------------------------
# Engine registry and the public entry point
# --------------------------------------------------------------------------------------------

#: engine name -> module that provides it.  The module is imported on first use and must
#: define ``fit_engine(spec, data, **options) -> FitResult`` (and ``engine_version() -> str``).
#: ``"statsmodels"`` is built in (this module).
ENGINE_MODULES: dict[str, str | None] = {
    "statsmodels": None,
    "mixedlm": "alliance.engine_mixedlm",
    "lme4": "alliance.engine_lme4",
}
DEFAULT_ENGINE = "statsmodels"


def available_engines() -> tuple[str, ...]:
    """Names accepted by ``fit(..., engine=...)`` (whether or not their package is installed)."""
    return tuple(ENGINE_MODULES)


def _engine_function(engine: str):
    if not isinstance(engine, str) or engine not in ENGINE_MODULES:
        raise ValueError(
            f"unknown engine {engine!r}; known engines: {', '.join(ENGINE_MODULES)}"
        )
    module = ENGINE_MODULES[engine]
    if module is None:
        return _fit_statsmodels
    import importlib

    return importlib.import_module(module).fit_engine


def fit(
    spec: ModelSpec,
    data: pd.DataFrame,
    *,
    engine: str | None = DEFAULT_ENGINE,
    cross_check: str | bool | None = None,
    optimizers: Sequence[Sequence[str]] = DEFAULT_OPTIMIZERS,
    max_iter: int | None = None,
) -> FitResult:
    """Fit ``spec`` to ``data`` with the chosen ``engine`` and return a :class:`FitResult`.

    ``engine``: one of :func:`available_engines` -- ``"statsmodels"`` (the default and the
    reference Python engine), ``"mixedlm"`` (PyPI package mixedlm) or ``"lme4"`` (R's lme4 and
    lmerTest through ``Rscript``); ``None`` means the default.  Recorded in ``fit["engine"]`` and
    ``fit["engine_version"]``; docs/engines.md compares them.

    ``cross_check``: ``None``/``False`` (default) or the name of a second engine.  The model is then
    refitted with that engine on the same rows; ``fit["cross_check"]`` records the second engine,
    its flags and log-likelihood, and the largest relative differences of the fixed effects and
    variance components, ``fit["cross_check_max_rel_diff"]`` the largest fixed-effect one, and the
    flag ``cross_check_disagreement`` is raised when a fixed effect differs by more than
    ``CROSS_CHECK_RTOL`` (1e-4) relative.

    Rows with a missing value in any column the model uses are dropped (``fit["n_dropped_missing"]``).
    ``optimizers`` applies to the statsmodels engine (optimiser sequences, each passed as
    ``MixedLM.fit(method=[...])``; the attempt with the best log-likelihood wins); ``max_iter`` caps
    optimiser iterations (for testing) in every engine.
    """
    engine = DEFAULT_ENGINE if engine is None else engine
    fn = _engine_function(engine)
    second = None
    if cross_check is not None and cross_check is not False:
        if cross_check is True or not isinstance(cross_check, str):
            raise ValueError(
                f"cross_check must be false or an engine name ({', '.join(ENGINE_MODULES)}), got {cross_check!r}"
            )
        second = _engine_function(cross_check)  # unknown name -> ValueError before any fitting
        if cross_check == engine:
            raise ValueError(f"cross_check engine {cross_check!r} is the engine itself; name another engine")
    result = _run_engine(fn, spec, data, optimizers, max_iter)
    if second is not None:
        other = _run_engine(second, spec, data, optimizers, max_iter)
        _record_cross_check(result, other)
    return result


def _run_engine(fn, spec, data, optimizers, max_iter) -> FitResult:
    if fn is _fit_statsmodels:
        return _fit_statsmodels(spec, data, optimizers=optimizers, max_iter=max_iter)
    return fn(spec, data, max_iter=max_iter)


def _rel_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| / max(|a|, |b|), 0 where both are 0."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    den = np.maximum(np.abs(a), np.abs(b))
    return np.divide(np.abs(a - b), den, out=np.zeros_like(den), where=den > 0)


def _record_cross_check(result: FitResult, other: FitResult) -> None:
    """Compare ``result`` with the same model fitted by another engine (in place)."""
    fa = result.fixed.set_index("term")["estimate"]
    fb = other.fixed.set_index("term")["estimate"]
    if list(fa.index) != list(fb.index):
        raise RuntimeError(f"cross-check: fixed-effect terms differ: {list(fa.index)} vs {list(fb.index)}")
    rel = _rel_diff(fa.to_numpy(), fb.to_numpy())
    key = ["group", "term"]
    va = result.variance_components.set_index(key)["variance"]
    vb = other.variance_components.set_index(key)["variance"]
    common = [k for k in va.index if k in vb.index]
    # variances: relative to the larger of the two, with the residual variance as the floor
    # (a variance both engines put at ~0 is agreement)
    floor = BOUNDARY_REL_TOL * float(result.fit["residual_variance"])
    vrel = {}
    for k in common:
        x, y = float(va[k]), float(vb[k])
        den = max(abs(x), abs(y), floor)
        vrel[f"{k[0]}|{k[1]}"] = abs(x - y) / den
    max_rel = float(rel.max()) if len(rel) else 0.0
    disagree = max_rel > CROSS_CHECK_RTOL
    result.fit["cross_check"] = {
        "engine": other.fit["engine"],
        "engine_version": other.fit["engine_version"],
        "tolerance_fixed_rel": CROSS_CHECK_RTOL,
        "max_rel_diff_fixed": max_rel,
        "rel_diff_fixed": dict(zip(fa.index, rel)),
        "max_rel_diff_variance": max(vrel.values()) if vrel else None,
        "rel_diff_variance": vrel,
        "variance_components_only_in_one": sorted(
            f"{k[0]}|{k[1]}" for k in set(va.index) ^ set(vb.index)
        ),
        "loglik": other.fit["loglik"],
        "abs_diff_loglik": abs(float(result.fit["loglik"]) - float(other.fit["loglik"])),
        "flags": list(other.flags),
        "df_method": other.fit["df_method"],
        "disagreement": disagree,
        "note": (
            "the two engines fitted different models (simplified: "
            + ", ".join(e for e, r in ((result.fit["engine"], result), (other.fit["engine"], other)) if "simplified" in r.flags)
            + ")"
            if ("simplified" in result.flags) != ("simplified" in other.flags)
            else ""
        ),
    }
    result.fit["cross_check_max_rel_diff"] = max_rel
    result.fit["cross_check_disagreement"] = disagree
    if disagree and "cross_check_disagreement" not in result.flags:
        result.flags.append("cross_check_disagreement")
        result.flags.sort(key=FLAG_NAMES.index)
