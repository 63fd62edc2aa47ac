"""The engine interface: model specifications, the fit result, flags and tolerances.

Every engine (:mod:`alliance.engines.statsmodels_engine`, :mod:`alliance.engines.mixedlm_engine`,
:mod:`alliance.engines.lme4_engine`) takes a :class:`ModelSpec` and returns a :class:`FitResult`;
:mod:`alliance.engines.dispatch` chooses the engine.  Models are described by specs, never by
user-supplied formula strings: every name is validated here and formulas are written from it.
"""

from __future__ import annotations

import dataclasses
import keyword
import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.stats

from alliance.engines.ddf import contrast_df, joint_test

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
#: a joint test's method when the engine gives no Satterthwaite df (FitResult.wald_test)
JOINT_DF_METHOD = "Wald chi-square (asymptotic)"
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
        raise ValueError(f"invalid {what} name {name!r}: names must match {NAME_RE.pattern}")
    if keyword.iskeyword(name) or name in RESERVED_NAMES:
        raise ValueError(f"invalid {what} name {name!r}: reserved word")
    if columns is not None and name not in columns:
        raise ValueError(f"{what} {name!r} is not a column of the data")
    return name


def _check_level(col: str, level: Any) -> str:
    if not isinstance(level, str) or not level or len(level) > 200:
        raise ValueError(f"reference level for {col!r} must be a non-empty string (<= 200 chars), got {level!r}")
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
            "all nested terms must be nested in the same (outermost) grouping factor: " + ", ".join(sorted(outer_names))
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


def lme4_random_terms(spec: ModelSpec, fitted: bool) -> list[str]:
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
    return f"{spec.outcome} ~ " + " + ".join(fixed + lme4_random_terms(spec, fitted))


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


def _round_sig(x: float, digits: int = SIG_DIGITS) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    if x == 0.0:
        return 0.0
    return float(f"{x:.{digits}g}")


def jsonable(obj: Any) -> Any:
    if isinstance(obj, pd.DataFrame):
        return [jsonable(r) for r in obj.to_dict(orient="records")]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
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
    ddf : :class:`alliance.engines.ddf.SatterthwaiteData` of the mixedlm and lme4 engines (for
        :meth:`contrast` and :meth:`wald_test`), None for statsmodels or when the df failed
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
    #: what contrasts and joint tests need for Satterthwaite df (alliance.engines.ddf.SatterthwaiteData;
    #: None: the engine gives none, tests are Wald z / chi-square); never written to tables
    ddf: Any = field(default=None, repr=False, compare=False)
    #: wall seconds of the fitting phases (external engines; for bench/, never written to tables)
    timings: dict = field(default_factory=dict, repr=False, compare=False)

    def fixed_effect(self, term: str) -> float:
        """Estimate of one fixed effect, e.g. ``"wai_cwc"``, ``"Intercept"``, ``"therapy[T.PDT]"``."""
        hit = self.fixed.loc[self.fixed["term"] == term, "estimate"]
        if hit.empty:
            raise KeyError(f"no fixed effect {term!r}; have {list(self.fixed['term'])}")
        return float(hit.iloc[0])

    def _weight_vector(self, weights: dict[str, float]) -> np.ndarray:
        terms = list(self.fixed["term"])
        w = np.zeros(len(terms))
        for t, v in weights.items():
            if t not in terms:
                raise KeyError(f"no fixed effect {t!r}")
            w[terms.index(t)] = float(v)
        return w

    def contrast(self, weights: dict[str, float]) -> dict[str, Any]:
        """Test of a linear combination of fixed effects, e.g. ``{"wai_pm_c": 1, "wai_cwc": -1}``
        (the contextual effect): t with Satterthwaite df when the engine exposes them
        (``self.ddf``, :mod:`alliance.engines.ddf`; as lmerTest's ``contest1D``), else Wald z
        (df NaN).  Returns estimate, se, statistic, df, p, ci_low, ci_high, df_method."""
        w = self._weight_vector(weights)
        b = self.fixed["estimate"].to_numpy(dtype=float)
        v = self.vcov.to_numpy(dtype=float)
        est = float(w @ b)
        se = float(np.sqrt(w @ v @ w))
        stat = est / se if se > 0 else math.nan
        if self.ddf is not None:
            df = contrast_df(self.ddf, v, w)
            p = float(2 * scipy.stats.t.sf(abs(stat), df))
            half = float(scipy.stats.t.ppf(0.975, df)) * se
            method = f"t, {self.ddf.method}"
        else:
            df, p, half, method = math.nan, float(2 * scipy.stats.norm.sf(abs(stat))), Z_975 * se, DF_METHOD
        return {
            "estimate": est,
            "se": se,
            "statistic": stat,
            "df": df,
            "p": p,
            "ci_low": est - half,
            "ci_high": est + half,
            "df_method": method,
        }

    def wald_test(self, terms: Sequence[str]) -> dict[str, Any]:
        """Joint test that the listed fixed effects are all 0 (e.g. an interaction block): F with
        Satterthwaite denominator df when the engine exposes them (as lmerTest's ``contestMD``),
        else Wald chi-square.  Returns statistic (F or chi-square), df (numerator), df_denominator
        (NaN for chi-square), p, df_method."""
        names = list(self.fixed["term"])
        for t in terms:
            if t not in names:
                raise KeyError(f"no fixed effect {t!r}")
        rows = np.stack([self._weight_vector({t: 1.0}) for t in terms])
        b = self.fixed["estimate"].to_numpy(dtype=float)
        v = self.vcov.to_numpy(dtype=float)
        if self.ddf is not None:
            f = joint_test(self.ddf, b, v, rows)
            p = float(scipy.stats.f.sf(f["statistic"], f["df"], f["df_denominator"]))
            return {
                "statistic": f["statistic"],
                "df": f["df"],
                "df_denominator": f["df_denominator"],
                "p": p,
                "df_method": f"F, {self.ddf.method}",
            }
        sub_b, sub_v = rows @ b, rows @ v @ rows.T
        stat = float(sub_b @ np.linalg.solve(sub_v, sub_b))
        return {
            "statistic": stat,
            "df": len(terms),
            "df_denominator": math.nan,
            "p": float(scipy.stats.chi2.sf(stat, len(terms))),
            "df_method": JOINT_DF_METHOD,
        }

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
        return jsonable(out)
