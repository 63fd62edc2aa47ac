"""Which engine fits a model: the one default engine, the registry, and the cross-check."""

from __future__ import annotations

import importlib
from typing import Sequence

import numpy as np
import pandas as pd

from alliance.engines.identifiability import check_identifiable
from alliance.engines.spec import (
    BOUNDARY_REL_TOL,
    CROSS_CHECK_RTOL,
    DEFAULT_OPTIMIZERS,
    FLAG_NAMES,
    FitResult,
    ModelSpec,
)

#: engine name -> module that provides it.  The module is imported on first use and must
#: define ``fit_engine(spec, data, **options) -> FitResult``, which records ``fit["engine_version"]``.
ENGINE_MODULES: dict[str, str | None] = {
    "statsmodels": "alliance.engines.statsmodels_engine",
    "mixedlm": "alliance.engines.mixedlm_engine",
    "lme4": "alliance.engines.lme4_engine",
}
#: the one default engine, for the pipeline (the config schema's ``run.engine`` default, checked by a
#: test) and for Python callers alike (docs/engines.md: why mixedlm)
DEFAULT_ENGINE = "mixedlm"


def available_engines() -> tuple[str, ...]:
    """Names accepted by ``fit(..., engine=...)`` (whether or not their package is installed)."""
    return tuple(ENGINE_MODULES)


def _engine_function(engine: str):
    if not isinstance(engine, str) or engine not in ENGINE_MODULES:
        raise ValueError(f"unknown engine {engine!r}; known engines: {', '.join(ENGINE_MODULES)}")
    return importlib.import_module(ENGINE_MODULES[engine]).fit_engine


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

    ``engine``: one of :func:`available_engines` -- ``"mixedlm"`` (PyPI package mixedlm; the default,
    :data:`DEFAULT_ENGINE`), ``"statsmodels"`` (the reference Python engine) or ``"lme4"`` (R's lme4 and
    lmerTest through ``Rscript``); ``None`` means the default.  Recorded in ``fit["engine"]`` and
    ``fit["engine_version"]``; docs/engines.md compares them.

    ``cross_check``: ``None``/``False`` (default) or the name of a second engine.  The model is then
    refitted with that engine on the same rows; ``fit["cross_check"]`` records the second engine,
    its flags and log-likelihood, and the largest relative differences of the fixed effects and
    variance components, ``fit["cross_check_max_rel_diff"]`` the largest fixed-effect one, and the
    flag ``cross_check_disagreement`` is raised when a fixed effect differs by more than
    ``CROSS_CHECK_RTOL`` (1e-4) relative.

    Before any engine runs, :func:`alliance.engines.identifiability.check_identifiable` refuses a model the
    data cannot identify (raises ``NotIdentifiable``, a ValueError naming the model and the reasons).

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
    check_identifiable(spec, data)  # the same refusals whatever the engine (alliance.engines.identifiability)
    result = _run_engine(fn, spec, data, optimizers, max_iter)
    if second is not None:
        other = _run_engine(second, spec, data, optimizers, max_iter)
        _record_cross_check(result, other)
    return result


def _run_engine(fn, spec, data, optimizers, max_iter) -> FitResult:
    """Call one engine; the optimiser sequences apply to the statsmodels engine alone."""
    if fn.__module__ == ENGINE_MODULES["statsmodels"]:
        return fn(spec, data, optimizers=optimizers, max_iter=max_iter)
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
        "variance_components_only_in_one": sorted(f"{k[0]}|{k[1]}" for k in set(va.index) ^ set(vb.index)),
        "loglik": other.fit["loglik"],
        "abs_diff_loglik": abs(float(result.fit["loglik"]) - float(other.fit["loglik"])),
        "flags": list(other.flags),
        "df_method": other.fit["df_method"],
        "disagreement": disagree,
        "note": (
            "the two engines fitted different models (simplified: "
            + ", ".join(
                e for e, r in ((result.fit["engine"], result), (other.fit["engine"], other)) if "simplified" in r.flags
            )
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
