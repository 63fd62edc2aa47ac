"""Fitting the model suite: one configured model, or the same model within one stratum.

A model of the suite is a config entry (config/README.md, section ``models``): its outcome,
fixed terms, categorical columns with reference levels, random-effects terms, the data level
(``sessions`` or ``patients``), a sample ``filter``, grand-mean ``centre``-ing, the ``roles`` of
its focal predictors (for effect sizes), linear ``contrasts``, Wald ``tests``, a ``moderation``
block and ``strata``.  Nothing in it is evaluated: names are checked when the workflow loads
(alliance.models.config) and again by the engine against the data, and formulas are written by
the engine from those names.

The stages of one model job, each in its own module:

* alliance.models.data -- :func:`~alliance.models.data.load_model_tables`, the tables a job reads
  (only the columns the model uses), and the model's frame: derived variables, centring, filter;
* alliance.models.specs -- the engine spec of a config entry and its complete cases;
* this module -- :func:`fit_model` and :func:`fit_stratum`: the engine call (alliance.engines),
  with the minimum sample of a stratum and its failures reported rather than raised;
* alliance.models.tables -- every table of the model's directory, flags on every row;
* alliance.models.summary -- the forest-plot and meta-analysis tables across the suite.

No engine default is chosen here: ``engine=None`` leaves the choice to
:data:`alliance.engines.dispatch.DEFAULT_ENGINE`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from alliance.engines.dispatch import fit
from alliance.engines.identifiability import NotIdentifiable
from alliance.models.config import ModelConfigError, strata, stratum_model
from alliance.models.data import describe_filter, model_frame, sample_counts
from alliance.models.design import DESIGN_NOTE, without_therapists
from alliance.models.singular import apply_policy, policy_of
from alliance.models.specs import complete_cases, model_columns, spec_from_config
from alliance.models.tables import ModelRun, run_tables

__all__ = ["fit_model", "fit_stratum", "fit_configured_model", "fit_kwargs"]


def fit_kwargs(model: dict[str, Any], engine: str | None, cross_check: str | None = None) -> dict[str, Any]:
    """Keyword arguments of the engine call: only what is set (the engine's defaults otherwise)."""
    kwargs: dict[str, Any] = {}
    if engine is not None:
        kwargs["engine"] = engine
    if cross_check:
        kwargs["cross_check"] = cross_check
    if model.get("optimizers"):
        kwargs["optimizers"] = tuple(tuple(str(m) for m in seq) for seq in model["optimizers"])
    return kwargs


def _run(
    model: dict[str, Any],
    analysis: pd.DataFrame | None,
    patients: pd.DataFrame | None,
    engine: str | None,
    extra_filter: dict[str, str] | None = None,
    minimum: dict[str, int] | None = None,
    cross_check: str | None = None,
    singular_fits: str | None = None,
) -> ModelRun:
    """Fit ``model`` on its complete cases.  With ``minimum`` (a stratum) a sample below the minimum
    is not fitted and a failing fit is recorded, not raised: both come back without a result.
    A singular fit is refitted as ``singular_fits`` says (alliance.models.singular; None: the schema's
    default policy)."""
    spec = spec_from_config(model)
    frame, record = model_frame(model, analysis, patients, extra_filter)
    used = complete_cases(spec, frame)
    counts = sample_counts(used)
    record.update(counts)
    flags: list[str] = []
    if minimum:
        if counts["n_patients"] < minimum.get("min_patients", 0):
            flags.append("too_few_patients")
        uses_therapist = "therapist" in model_columns(spec)
        if uses_therapist and counts["n_therapists"] < minimum.get("min_therapists", 0):
            flags.append("too_few_therapists")
        if flags:
            record["not_fitted"] = (
                f"{counts['n_patients']} patients and {counts['n_therapists']} therapists with complete data; "
                f"minimum {minimum.get('min_patients', 0)} patients and {minimum.get('min_therapists', 0)} therapists"
            )
            return ModelRun(model, spec, None, used, record, flags, record["not_fitted"])
    kwargs = fit_kwargs(model, engine, cross_check)
    try:
        result = fit(spec, frame, **kwargs)
        singular = apply_policy(
            policy_of({"singular_fits": singular_fits}), spec, frame, result, lambda s: fit(s, frame, **kwargs)
        )
        result = singular.used
    except NotIdentifiable as error:  # refused before any engine ran: a row of the suite, not a crash
        record["not_fitted"] = str(error)
        return ModelRun(model, spec, None, used, record, ["not_identified"], record["not_fitted"])
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as error:
        if minimum is None:
            raise
        # a stratum: report a failure, do not stop the workflow
        record["not_fitted"] = f"{type(error).__name__}: {error}"
        return ModelRun(model, spec, None, used, record, ["fit_failed"], record["not_fitted"])
    used = frame.loc[result.fitted["row"].to_numpy()]
    record.update(sample_counts(used))
    flags = list(result.flags)
    return ModelRun(model, spec, result, used, record, flags, singular=singular)


def _for_design(model: dict[str, Any], context: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The model as the dataset's design allows (alliance.models.design.without_therapists): unchanged with
    therapists; without them skipped (None and why) or without its therapist level (noted under DESIGN_NOTE)."""
    if context.get("therapists", True):
        return model, ""
    kept, note = without_therapists(model, {"without_therapists": context.get("without_therapists")})
    if kept is None:
        return None, note
    return ({**kept, DESIGN_NOTE: note} if note else kept), ""


def _skipped(model: dict[str, Any], why: str) -> ModelRun:
    """A model the design leaves unfitted (flag ``no_therapist_level``): no rows, the reason."""
    record = {
        "data": model.get("data", "sessions"),
        "filter": describe_filter(model.get("filter")),
        "n_obs": 0,
        "n_patients": 0,
        "n_therapists": 0,
        "not_fitted": why,
    }
    return ModelRun(model, spec_from_config(model), None, pd.DataFrame(), record, ["no_therapist_level"], why)


def _with_levels(model: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The model with the canonical labels (for the simple slopes of every moderator level)."""
    out = dict(model)
    out["_levels"] = context.get("labels", {})
    return out


def fit_model(
    model: dict[str, Any],
    analysis: pd.DataFrame | None,
    patients: pd.DataFrame | None = None,
    context: dict[str, Any] | None = None,
    *,
    engine: str | None = None,
    cross_check: str | None = None,
) -> dict[str, Any]:
    """Fit one configured model and return every table of its directory.

    Keys: ``fixed``, ``variance``, ``random_effects`` (group, level, term, value, sd),
    ``residuals`` (patient, therapist, session, fitted, residual), ``contrasts`` (contrasts, Wald
    tests, simple slopes), ``effects`` (effect sizes), ``fit_statistics`` (one row), ``singular_fit``
    (a singular fit as specified and its simplified refits, alliance.models.singular; no rows otherwise)
    and ``fit`` (the fit.json dict).  A singular fit is refitted as ``context["singular_fits"]`` says.  Flags are on every row.  ``engine`` and ``cross_check`` (a second
    engine that refits the model) are passed to the engine only when given.

    A model is reported, not fitted, with NaN estimates and the reason when the data cannot identify it
    (flag ``not_identified``, alliance.engines.identifiability) or, in a design without therapists
    (``context["therapists"]`` False), when it needs a therapist level (flag ``no_therapist_level``,
    alliance.models.design.without_therapists; with ``drop_level`` it is fitted without that level).

    ``analysis`` need hold only the model's :func:`alliance.models.data.analysis_columns` (None for a
    patient-level model) and ``patients`` is used only by a patient-level model (None otherwise):
    :func:`alliance.models.data.load_model_tables` reads exactly that.
    """
    context = context or {}
    designed, why = _for_design(model, context)
    if designed is None:
        return run_tables(_skipped(_with_levels(model, context), why), context, full=True)
    run = _run(
        _with_levels(designed, context),
        analysis,
        patients,
        engine,
        cross_check=cross_check,
        singular_fits=context.get("singular_fits"),
    )
    return run_tables(run, context, full=True)


def fit_stratum(
    model: dict[str, Any],
    stratum: str,
    analysis: pd.DataFrame | None,
    patients: pd.DataFrame | None = None,
    context: dict[str, Any] | None = None,
    *,
    engine: str | None = None,
    cross_check: str | None = None,
) -> dict[str, Any]:
    """Fit the model (without moderation) within one stratum (:func:`alliance.models.config.strata`; ``all`` = every
    patient).  A stratum below ``strata.min_patients`` / ``strata.min_therapists`` or whose fit
    fails is returned with NaN estimates and the flag ``too_few_patients``, ``too_few_therapists``
    or ``fit_failed``: it is reported, not raised (as are ``not_identified`` and ``no_therapist_level``,
    see :func:`fit_model`)."""
    context = context or {}
    labels = context.get("labels") or {}
    all_strata = strata(model, labels)
    if stratum not in all_strata:
        raise ModelConfigError(f"models.{model['name']}: unknown stratum {stratum!r}; strata: {', '.join(all_strata)}")
    base, why = _for_design(stratum_model(model), context)
    settings = model["strata"]
    minimum = {
        "min_patients": int(settings.get("min_patients", 20)),
        "min_therapists": int(settings.get("min_therapists", 5)),
    }
    stratum_filter = all_strata[stratum] or None
    if base is None:
        run = _skipped(_with_levels(stratum_model(model), context), why)
    else:
        run = _run(
            _with_levels(base, context),
            analysis,
            patients,
            engine,
            stratum_filter,
            minimum,
            cross_check,
            singular_fits=context.get("singular_fits"),
        )
    run.record["stratum"] = stratum
    run.record["stratum_labels"] = all_strata[stratum]
    tables = run_tables(run, context, full=False)
    for key in ("fixed", "variance", "contrasts", "effects", "singular_fit"):
        tables[key].insert(1, "stratum", stratum)
    tables["fit_statistics"]["stratum"] = stratum
    return tables


def fit_configured_model(model: dict[str, Any], data: pd.DataFrame, *, engine: str | None = None) -> dict[str, Any]:
    """Fit one session-level config model on ``data`` (the analysis table); see :func:`fit_model`."""
    return fit_model(model, data, None, {}, engine=engine)
