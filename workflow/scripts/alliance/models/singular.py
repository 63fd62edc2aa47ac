"""The singular-fit policy: refit a singular model with a simpler random-effects structure.

A fit is singular (flag ``boundary``, :func:`alliance.engines.checks.boundary_reasons`) when a
random-effects covariance matrix is (nearly) singular: a variance at 0 or a correlation at +-1.
The data then do not support the structure as specified, and its tests of effects at that level
are not trustworthy: a therapist-level predictor of a model whose therapist variance is 0 is
tested on patient-level df.  With ``analysis.singular_fits: simplify`` (the schema's default) the
model is refitted with the structure of the singular groups simplified, one kind of step at a
time, in this order (docs/methods.md section 7.6):

1. drop the correlations of a singular group's random effects (``|`` becomes ``||``);
2. drop a singular group's random slope whose variance is at 0;
3. drop a singular group (a grouping level) whose intercept variance is at 0 and that has no
   slopes left; when it was the last random term, the model is a linear regression
   (alliance.engines.least_squares).

This is the order of Bates, Kliegl, Vasishth & Baayen's (2015) parsimonious mixed models (the
zero-correlation-parameter model first, then the variance components the data do not support,
higher-order terms before intercepts), which Matuschek et al. (2017) showed keeps the Type I error
of the maximal model (Barr et al. 2013) while gaining power.  Steps 2 and 3 remove only variances
estimated at 0, so the log-likelihood does not change; step 1 can lower it (a correlation at +-1
with a slope variance above 0 is a degenerate but not empty structure: on the demo's lagged models
the REML log-likelihood fell by 1.2, and the slope variance then went to 0).  Every fit's
log-likelihood is recorded.  The policy stops at the first fit that is not singular; both fits are
reported (:func:`singular_fit_table`) and inference uses the simplified one.

A fixed effect whose column is constant within every unit of a grouping level the policy dropped
(a therapist-level predictor when the therapist level went) is tested on that level's df,
``n_units - k - 1`` (k: the fixed effects constant within the level's units; the between-within
or containment df of SAS's ``DDFM=BW``) instead of the simplified fit's patient- or row-level df.
Where the level stays, the engine's Satterthwaite df already rest on it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
import scipy.stats

from alliance.engines.frame import model_frame
from alliance.engines.least_squares import fit_least_squares
from alliance.engines.spec import (
    BOUNDARY_REL_TOL,
    FLAG_NAMES,
    FitResult,
    ModelSpec,
    RandomTerm,
    jsonable,
    to_lme4_formula,
)

__all__ = [
    "POLICIES",
    "SINGULAR_COLUMNS",
    "SingularFit",
    "apply_policy",
    "level_df",
    "next_simplification",
    "policy_of",
    "singular_fit_table",
    "singular_record",
    "with_level_df",
]

#: ``analysis.singular_fits``: simplify (refit with a simpler structure) or keep (report as fitted)
POLICIES = ("simplify", "keep")
#: the columns of :func:`singular_fit_table` (models/<model>/singular_fit.csv)
SINGULAR_COLUMNS = [
    "model",
    "fit",
    "step",
    "formula",
    "dropped",
    "used_for_inference",
    "kind",
    "group",
    "term",
    "estimate",
    "se",
    "df",
    "df_method",
    "p",
    "ci_low",
    "ci_high",
    "loglik",
    "flags",
]


def policy_of(context: dict[str, Any] | None) -> str:
    """The run's ``analysis.singular_fits`` (the model context's ``singular_fits``), else the schema's default."""
    chosen = (context or {}).get("singular_fits")
    if chosen:
        return str(chosen)
    from alliance.schema import schema_default

    return str(schema_default("analysis", "singular_fits"))


@dataclass
class Step:
    """One refit of the policy: what it dropped (in words and the grouping levels it removed) and the fit."""

    number: int  # 1, 2 or 3: the kind of step (module docstring)
    dropped: str
    levels_dropped: list[str]
    result: FitResult


@dataclass
class SingularFit:
    """The as-specified fit, the policy's refits and the fit inference uses (with its df per term)."""

    policy: str
    as_specified: FitResult
    steps: list[Step] = field(default_factory=list)
    used: FitResult | None = None
    note: str = ""

    @property
    def simplified(self) -> bool:
        """Whether inference uses a simplified fit."""
        return bool(self.steps) and self.used is self.steps[-1].result


def group_label(term: RandomTerm) -> str:
    """The label of a random term's group in the engine's tables (``therapist``, ``therapist:patient``)."""
    return term.group if term.nested_in is None else f"{term.nested_in}:{term.group}"


def _variances(result: FitResult) -> dict[tuple[str, str], float]:
    vc = result.variance_components
    return {(str(g), str(t)): float(v) for g, t, v in zip(vc["group"], vc["term"], vc["variance"])}


def next_simplification(spec: ModelSpec, result: FitResult) -> tuple[int, ModelSpec, str, list[str]] | None:
    """The policy's next step for a singular ``result`` of ``spec``: (step number, the simpler spec,
    what was dropped, grouping levels removed), or None when no step applies to its singular groups.

    >>> vc = pd.DataFrame({"group": ["therapist", "Residual"], "term": ["Intercept", "Residual"],
    ...                    "variance": [0.0, 160.0], "sd": [0.0, 12.6], "correlation": [np.nan, np.nan]})
    >>> spec = ModelSpec("m", "y", ("x",), (RandomTerm("therapist"),))
    >>> res = FitResult(spec, None, None, vc, None, None, {"boundary_reasons": {"therapist": "variance 0"}}, ["boundary"])
    >>> number, simpler, dropped, levels = next_simplification(spec, res)
    >>> number, simpler.random, dropped, levels
    (3, (), 'the therapist level (intercept variance 0; no random effects left: a linear model)', ['therapist'])
    """
    singular = set((result.fit.get("boundary_reasons") or {}).keys())
    terms = [t for t in spec.random if group_label(t) in singular]
    if not terms:
        return None
    var = _variances(result)
    sigma2 = var.get(("Residual", "Residual"), np.nan)
    at_zero = {key for key, v in var.items() if not v > BOUNDARY_REL_TOL * sigma2}
    # 1. correlations
    correlated = [t for t in terms if t.correlated and t.slopes]
    if correlated:
        new = tuple(dataclasses.replace(t, correlated=False) if t in correlated else t for t in spec.random)
        what = "; ".join(f"the correlations of the random effects of {group_label(t)}" for t in correlated)
        return 1, dataclasses.replace(spec, random=new), what, []
    # 2. random slopes with variance 0
    zero_slopes = {t: [s for s in t.slopes if (group_label(t), s) in at_zero] for t in terms}
    zero_slopes = {t: s for t, s in zero_slopes.items() if s}
    if zero_slopes:
        new = tuple(
            dataclasses.replace(t, slopes=tuple(s for s in t.slopes if s not in zero_slopes[t]))
            if t in zero_slopes
            else t
            for t in spec.random
        )
        what = "; ".join(
            f"the random slope{'s' if len(s) > 1 else ''} of {', '.join(s)} by {group_label(t)} (variance 0)"
            for t, s in zero_slopes.items()
        )
        return 2, dataclasses.replace(spec, random=new), what, []
    # 3. grouping levels with intercept variance 0 and no slopes
    gone = [t for t in terms if not t.slopes and (group_label(t), "Intercept") in at_zero]
    if gone:
        new = tuple(t for t in spec.random if t not in gone)
        left = "" if new else "; no random effects left: a linear model"
        what = "; ".join(f"the {group_label(t)} level (intercept variance 0{left})" for t in gone)
        return 3, dataclasses.replace(spec, random=new), what, [group_label(t) for t in gone]
    return None


def _formula(spec: ModelSpec, result: FitResult) -> str:
    """The formula a fit used (as the engine fitted it; a linear model's fixed part)."""
    return str(result.fit.get("formula_lme4_fitted") or (to_lme4_formula(spec, fitted=True) if spec.random else ""))


def _level_units(data: pd.DataFrame, label: str) -> pd.Series:
    """The unit of each row at a grouping level (``therapist:patient``: the pair)."""
    parts = label.split(":")
    if len(parts) == 1:
        return data[parts[0]].astype(str)
    return data[parts[0]].astype(str) + ":" + data[parts[1]].astype(str)


def level_df(specified: ModelSpec, data: pd.DataFrame, levels: list[str]) -> dict[str, tuple[float, str]]:
    """The between-level df of every fixed effect measured at a dropped grouping level.

    For each level in ``levels`` (labels such as ``therapist``), a fixed-effect column that is
    constant within every unit of the level (on the rows the model uses) is measured at that level;
    with n units and k such columns its df are n - k - 1 (the containment / between-within df).
    A column measured at several dropped levels gets the smallest of their df.  Returns
    ``{term: (df, how)}``.

    >>> d = pd.DataFrame({"therapist": np.repeat(list("abcdef"), 4), "y": np.arange(24.0),
    ...                   "x": np.tile([0.0, 1.0, 2.0, 3.0], 6), "z": np.repeat(np.arange(6.0) ** 2, 4)})
    >>> spec = ModelSpec("m", "y", ("x", "z"), (RandomTerm("therapist"),))
    >>> level_df(spec, d, ["therapist"])
    {'z': (4.0, 'between therapist: 6 units - 1 fixed effect measured at that level - 1 = 4')}
    """
    mf = model_frame(specified, data)
    out: dict[str, tuple[float, str]] = {}
    for label in levels:
        units = _level_units(mf.df, label).to_numpy()
        X = pd.DataFrame(mf.X, columns=mf.fe_names)
        spread = X.groupby(units, sort=False).agg(lambda c: float(c.max() - c.min()))
        scale = np.maximum(X.abs().max().to_numpy(), 1.0)
        constant = [
            name
            for name, s, sc in zip(mf.fe_names, spread.max().to_numpy(), scale)
            if name != "Intercept" and s <= 1e-12 * sc
        ]
        n_units, k = len(set(units)), len(constant)
        df = float(n_units - k - 1)
        how = (
            f"between {label}: {n_units} units - {k} fixed effect{'s' if k != 1 else ''} measured at that level - 1 "
            f"= {n_units - k - 1}"
        )
        for name in constant:
            if name not in out or df < out[name][0]:
                out[name] = (df if df > 0 else np.nan, how)
    return out


def with_level_df(result: FitResult, dfs: dict[str, tuple[float, str]]) -> dict[str, str]:
    """Replace the df, p and CI of the terms in ``dfs`` (in place); returns each term's df method."""
    fixed = result.fixed
    engine_method = str(result.fit.get("df_method", ""))
    methods = {str(t): engine_method for t in fixed["term"]}
    for i, term in enumerate(fixed["term"]):
        if term not in dfs:
            continue
        df, how = dfs[term]
        est, se = float(fixed.at[i, "estimate"]), float(fixed.at[i, "se"])
        stat = est / se if se > 0 else np.nan
        q = scipy.stats.t.ppf(0.975, df)
        fixed.loc[i, ["df", "statistic", "p", "ci_low", "ci_high"]] = [
            df,
            stat,
            2 * scipy.stats.t.sf(abs(stat), df),
            est - q * se,
            est + q * se,
        ]
        methods[str(term)] = how
    return methods


def _summary(spec: ModelSpec, result: FitResult) -> dict[str, Any]:
    """A fit as fit.json's ``singular_fit`` records it: formula, flags, why singular, log-likelihood."""
    return {
        "formula": _formula(spec, result),
        "flags": list(result.flags),
        "boundary_reasons": dict(result.fit.get("boundary_reasons") or {}),
        "loglik": result.fit.get("loglik"),
    }


def _finish(sf: SingularFit, specified: ModelSpec, data: pd.DataFrame) -> SingularFit:
    """Mark the fit inference uses: flag ``simplified``, the level df, and the fit notes."""
    if not sf.simplified:
        return sf
    used = sf.used
    levels = [level for s in sf.steps for level in s.levels_dropped]
    methods = with_level_df(used, level_df(specified, data, levels)) if levels else {}
    dropped = "; then ".join(f"{s.dropped} (step {s.number})" for s in sf.steps)
    reasons = "; ".join(f"{g}: {why}" for g, why in (sf.as_specified.fit.get("boundary_reasons") or {}).items())
    text = f"as specified the fit was singular ({reasons}); refitted without {dropped}"
    info = used.fit
    info["simplified"] = True
    info["simplification"] = (info.get("simplification") + "; " if info.get("simplification") else "") + text
    info.setdefault("notes", []).append("singular-fit policy: " + text)
    between = {t: m for t, m in methods.items() if m != info.get("df_method")}
    if between:
        info["term_df_method"] = methods
        levels_said = sorted({m.split(":")[0] for m in between.values()})
        info["df_method"] = (
            f"{info.get('df_method')}; a term measured at a level the simplification dropped: "
            f"{' and '.join(levels_said)} df, units - k - 1 (column df_method)"
        )
    if "simplified" not in used.flags:
        used.flags = [f for f in FLAG_NAMES if f in set(used.flags) | {"simplified"}]
    return sf


def apply_policy(
    policy: str,
    specified: ModelSpec,
    data: pd.DataFrame,
    result: FitResult,
    refit: Callable[[ModelSpec], FitResult],
) -> SingularFit:
    """The singular-fit policy for one fitted model (module docstring).

    ``result`` is the fit of ``specified`` to ``data``; ``refit(spec)`` fits a simpler spec with the
    run's engine on the same data.  With ``policy`` ``keep``, or a fit that is not singular, the fit
    is used as it is; with ``simplify`` the steps run until a fit is not singular or no step applies,
    the last fit is used, its ``fit`` records ``simplified``, ``simplification`` and the df of every
    term measured at a dropped level (``term_df_method``), and fit.json's ``singular_fit`` (see
    :func:`singular_record`) both fits.
    """
    if policy not in POLICIES:
        raise ValueError(f"analysis.singular_fits must be one of {', '.join(POLICIES)}, got {policy!r}")
    sf = SingularFit(policy, result, used=result)
    if "boundary" not in result.flags:
        return sf
    if policy == "keep":
        sf.note = "the fit is singular and kept as specified (analysis.singular_fits: keep)"
        return sf
    spec, current = specified, result
    while "boundary" in current.flags:
        step = next_simplification(spec, current)
        if step is None:
            sf.note = "no step of the policy applies to the singular groups of the last fit; it is used as it is"
            break
        number, spec, dropped, levels = step
        current = refit(spec) if spec.random else fit_least_squares(specified, data, spec)
        sf.steps.append(Step(number, dropped, levels, current))
    sf.used = current
    return _finish(sf, specified, data)


def singular_record(sf: SingularFit) -> dict[str, Any]:
    """fit.json's ``singular_fit``: the policy, the as-specified fit, every refit, and which is used."""
    spec = sf.as_specified.spec
    record = {
        "policy": sf.policy,
        "singular": "boundary" in sf.as_specified.flags,
        "simplified": sf.simplified,
        "note": sf.note,
        "as_specified": {
            **_summary(spec, sf.as_specified),
            "fixed": sf.as_specified.fixed.to_dict(orient="records"),
            "variance_components": sf.as_specified.variance_components.to_dict(orient="records"),
        },
        "steps": [{"step": s.number, "dropped": s.dropped, **_summary(s.result.spec, s.result)} for s in sf.steps],
        "used": "simplified" if sf.simplified else "as_specified",
    }
    return jsonable(record)


def _fit_rows(name: str, fit_name: str, step: int, dropped: str, spec: ModelSpec, res: FitResult, used: bool) -> list:
    """The rows of one fit in :func:`singular_fit_table`: its fixed effects, then its variance components."""
    common = {
        "model": name,
        "fit": fit_name,
        "step": step,
        "formula": _formula(spec, res),
        "dropped": dropped,
        "used_for_inference": used,
        "loglik": res.fit.get("loglik"),
        "flags": ";".join(res.flags) or "none",
    }
    methods = res.fit.get("term_df_method") or {}
    rows = [
        {
            **common,
            "kind": "fixed",
            "term": r["term"],
            **{k: r.get(k, np.nan) for k in ("estimate", "se", "df", "p", "ci_low", "ci_high")},
            "df_method": methods.get(r["term"], res.fit.get("df_method", "")),
        }
        for r in res.fixed.to_dict(orient="records")
    ]
    rows += [
        {**common, "kind": "variance", "group": r["group"], "term": r["term"], "estimate": r["variance"]}
        for r in res.variance_components.to_dict(orient="records")
    ]
    return rows


def singular_fit_table(name: str, sf: SingularFit | None) -> pd.DataFrame:
    """singular_fit.csv: both fits of a singular model (as specified, flag ``boundary``; each refit,
    the used one flagged ``simplified``), fixed effects and variance components; no rows otherwise."""
    rows: list[dict[str, Any]] = []
    if sf is not None and "boundary" in sf.as_specified.flags:
        a = sf.as_specified
        rows += _fit_rows(name, "as_specified", 0, "", a.spec, a, sf.used is a)
        for s in sf.steps:
            rows += _fit_rows(name, "simplified", s.number, s.dropped, s.result.spec, s.result, sf.used is s.result)
    return pd.DataFrame(rows, columns=SINGULAR_COLUMNS)
