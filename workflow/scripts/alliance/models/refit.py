"""Refitting a configured model on changed data: what influence and sensitivity analyses share.

:func:`primary_fit` fits a config model (alliance.models.specs) on the full tables with the engine
of the run and applies the singular-fit policy to it exactly as the suite does
(alliance.models.singular.apply_policy, ``analysis.singular_fits``), so that it gives the fit the
model's fixed-effects table reports and the random-effects :class:`Structure` that fit used.
:func:`refit` fits the model on changed tables (without one therapist, completers, winsorised
scores) with that structure and the same df rule, and :func:`focal_estimates` keeps the rows of the
model's ``roles`` terms with the sample counts and the fit's flags.  Unlike
:func:`alliance.models.suite.fit_model` it makes none of the model directory's tables: an influence
analysis refits the same model once per therapist.

Why the full data's structure and not the policy rerun on every refit (docs/methods.md section 7.6):
an influence or sensitivity estimate is read as a change from the primary estimate, which is only
meaningful when both come from the same model; a policy rerun per refit could drop the therapist
level in one leave-one-out fit and keep it in the next, so that part of a DFBETAS would be a change
of model, not of data.  It is also cheaper (one fit per refit, not up to four).  A refit that is
itself singular under that structure is reported with its flags, not simplified further.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pandas as pd

from alliance.engines.dispatch import fit
from alliance.engines.least_squares import fit_least_squares
from alliance.engines.spec import FLAG_NAMES, FitResult, ModelSpec, RandomTerm
from alliance.models.data import model_frame, sample_counts
from alliance.models.singular import apply_policy, level_df, policy_of, with_level_df
from alliance.models.specs import spec_from_config
from alliance.models.suite import fit_kwargs

__all__ = [
    "ESTIMATE_COLUMNS",
    "COUNT_COLUMNS",
    "FOCAL_COLUMNS",
    "Structure",
    "AS_SPECIFIED",
    "primary_fit",
    "refit",
    "focal_estimates",
]

#: what a table of coefficients gives of each one (the fixed-effects table's columns)
ESTIMATE_COLUMNS = ["estimate", "se", "df", "p", "ci_low", "ci_high"]
#: the sample counts of a fit (alliance.models.data.sample_counts)
COUNT_COLUMNS = ["n_obs", "n_patients", "n_therapists"]
#: the columns of :func:`focal_estimates`
FOCAL_COLUMNS = ["term", "role", *ESTIMATE_COLUMNS, *COUNT_COLUMNS, "flags"]


@dataclass(frozen=True)
class Structure:
    """The random-effects structure the primary fit's inference used.

    ``random`` None: the model as specified (not singular, or ``analysis.singular_fits: keep``);
    otherwise the simplified random terms (empty: a linear model), the grouping levels the policy
    dropped (their predictors are tested on between-level df) and what it dropped, in words."""

    random: tuple[RandomTerm, ...] | None = None
    levels_dropped: tuple[str, ...] = ()
    dropped: str = ""

    @property
    def simplified(self) -> bool:
        """Whether the refits use a simplified structure."""
        return self.random is not None


#: the structure of a model fitted as specified
AS_SPECIFIED = Structure()


def primary_fit(
    model: dict[str, Any],
    analysis: pd.DataFrame | None,
    patients: pd.DataFrame | None,
    engine: str | None = None,
    singular_fits: str | None = None,
) -> tuple[FitResult, dict[str, int], Structure]:
    """The fit inference uses on the full tables, as in the suite: fitted as specified, then the
    singular-fit policy ``singular_fits`` (None: the schema's default); returns that fit, the counts
    of the rows it used and the structure :func:`refit` should use on changed data."""
    frame, _ = model_frame(model, analysis, patients)
    spec = spec_from_config(model)
    kwargs = fit_kwargs(model, engine)
    result = fit(spec, frame, **kwargs)
    policy = policy_of({"singular_fits": singular_fits})
    chosen = apply_policy(policy, spec, frame, result, lambda s: fit(s, frame, **kwargs))
    structure = AS_SPECIFIED
    if chosen.simplified:
        structure = Structure(
            random=tuple(chosen.steps[-1].result.spec.random),
            levels_dropped=tuple(level for s in chosen.steps for level in s.levels_dropped),
            dropped="; then ".join(s.dropped for s in chosen.steps),
        )
    used = frame.loc[chosen.used.fitted["row"].to_numpy()]
    return chosen.used, sample_counts(used), structure


def _fit_structure(spec: ModelSpec, frame: pd.DataFrame, structure: Structure, kwargs: dict[str, Any]) -> FitResult:
    """``spec``'s fixed part fitted with the simplified ``structure`` on ``frame``, marked as the
    policy marks its fit: flag ``simplified``, the between-level df of every term measured at a
    dropped level (alliance.models.singular.level_df) and what was dropped."""
    simple = dataclasses.replace(spec, random=structure.random)
    result = fit(simple, frame, **kwargs) if simple.random else fit_least_squares(spec, frame, simple)
    info = result.fit
    if structure.levels_dropped:
        methods = with_level_df(result, level_df(spec, frame, list(structure.levels_dropped)))
        if any(m != info.get("df_method") for m in methods.values()):
            info["term_df_method"] = methods
    text = f"refitted with the structure the singular-fit policy chose on the full data: without {structure.dropped}"
    info["simplified"] = True
    info["simplification"] = (info.get("simplification") + "; " if info.get("simplification") else "") + text
    info.setdefault("notes", []).append("singular-fit policy: " + text)
    result.flags = [f for f in FLAG_NAMES if f in set(result.flags) | {"simplified"}]
    return result


def refit(
    model: dict[str, Any],
    analysis: pd.DataFrame | None,
    patients: pd.DataFrame | None,
    engine: str | None = None,
    structure: Structure = AS_SPECIFIED,
) -> tuple[FitResult, dict[str, int]]:
    """Fit ``model`` to the given tables (its frame, filter and centring as in the suite) with
    ``engine`` (None: the default engine) and the random-effects ``structure`` of the primary fit
    (:func:`primary_fit`; default: as specified); returns the fit and the counts of the rows it used."""
    frame, _ = model_frame(model, analysis, patients)
    spec = spec_from_config(model)
    kwargs = fit_kwargs(model, engine)
    result = _fit_structure(spec, frame, structure, kwargs) if structure.simplified else fit(spec, frame, **kwargs)
    used = frame.loc[result.fitted["row"].to_numpy()]
    return result, sample_counts(used)


def focal_estimates(
    model: dict[str, Any], fixed: pd.DataFrame, flags: list[str], counts: dict[str, int]
) -> pd.DataFrame:
    """The fixed effects (a fit's ``fixed`` table) of the model's ``roles`` terms, in roles order,
    with the counts of the rows used and the fit's ``flags``.

    Examples
    --------
    >>> fixed = pd.DataFrame({"term": ["Intercept", "a"], "estimate": [1.0, 2.0], "se": [0.1, 0.5],
    ...                       "df": [10.0, 20.0], "statistic": [10.0, 4.0], "p": [0.0, 0.001],
    ...                       "ci_low": [0.8, 1.0], "ci_high": [1.2, 3.0]})
    >>> counts = {"n_obs": 30, "n_patients": 5, "n_therapists": 2}
    >>> rows = focal_estimates({"roles": {"a": "within_patient"}}, fixed, [], counts)
    >>> rows[["term", "role", "estimate", "n_obs", "flags"]].values.tolist()
    [['a', 'within_patient', 2.0, 30, 'none']]
    """
    roles = model.get("roles") or {}
    fixed = fixed.set_index("term")
    rows = []
    for term, role in roles.items():
        if term not in fixed.index:
            continue
        row = fixed.loc[term]
        rows.append(
            {
                "term": term,
                "role": role,
                **{k: float(row[k]) for k in ESTIMATE_COLUMNS},
                **counts,
                "flags": ";".join(flags) or "none",
            }
        )
    return pd.DataFrame(rows, columns=FOCAL_COLUMNS)
