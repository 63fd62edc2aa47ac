"""The report's section "Which comes first: alliance and symptom change over sessions".

Both directions from the random-intercept cross-lagged panel model (RI-CLPM, docs/methods.md
§5.7), the lagged multilevel specifications beside it with their known biases (§5.3, §10.1) and,
for simulated data with a known truth, each estimate beside its true value.

Every number is quoted from the model stage's tables: an RI-CLPM's ``parameters.csv``,
``fit_indices.csv``, ``long_run.csv``, ``constraint_test.csv`` and ``fit.json``
(``alliance.models.riclpm_suite``), a lagged mixed model's ``fixed_effects.csv`` and ``fit.json``,
and the dataset's truth file (config ``dataset.truth``; ``alliance.report.truth``).  Nothing here
estimates anything; the only judgement made is whether a CI covers a true value.  Each row carries
the ``source`` prefix of its data-source (``riclpm¦<model>¦parameters¦<paths>¦<name>¦``, ``fixed¦<model>¦<term>¦``,
``truth¦<key>¦…``) so that the number-to-table test can look every quoted number up.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from alliance.models.lagged_recovery import estimands
from alliance.models.riclpm_suite import RICLPM_TABLES
from alliance.report.truth import true_value, truth_estimands, truth_targets
from alliance.report.wording import digits_for, is_missing, records

#: the lagged paths in the order the report shows them: both cross-lags first, then the carry-overs
PATH_ORDER = ("gamma", "beta", "alpha", "delta")
#: what each path is (alliance.models.riclpm_suite.PATH_MEANINGS, in the report's words)
PATH_WORDS = {
    "gamma": {"kind": "cross-lag", "direction": "alliance → next symptoms"},
    "beta": {"kind": "cross-lag", "direction": "symptoms → next alliance"},
    "alpha": {"kind": "carry-over", "direction": "alliance → next alliance"},
    "delta": {"kind": "carry-over", "direction": "symptoms → next symptoms"},
}
#: the long-run effects (elements of (I − B)⁻¹) in the report's order, and what each is
LONG_RUN_WORDS = {
    "x->y": "alliance → symptoms (long-run cross effect)",
    "y->x": "symptoms → alliance (long-run cross effect)",
    "x->x": "alliance → alliance (long-run own effect)",
    "y->y": "symptoms → symptoms (long-run own effect)",
}
#: the fit indices shown, as fit_indices.csv names them (lavaan's fitMeasures names)
FIT_INDEX_COLUMNS = (
    "chisq",
    "df",
    "pvalue",
    "cfi",
    "tli",
    "rmsea",
    "rmsea.ci.lower",
    "rmsea.ci.upper",
    "srmr",
    "aic",
    "bic",
)
#: what each flag of the RI-CLPM estimator (alliance.dynamics.riclpm.fit_riclpm) means for a reader
RICLPM_FLAG_MEANINGS = {
    "not_converged": "the optimiser did not reach a point where the gradient vanishes: the estimates may not be the "
    "maximum-likelihood estimates and must not be interpreted",
    "not_positive_definite": "a covariance matrix of the model (implied, random intercepts, innovations) or the "
    "information matrix is not positive definite: the solution is improper and its standard "
    "errors are not trustworthy",
    "boundary": "a variance is estimated at or below about zero (variances are not bounded, so it may be negative): "
    "that part of the model is not supported by the data",
    "not_stationary": "the path matrix B has a spectral radius of 1 or more: the process does not settle, and the "
    "long-run effects (I − B)⁻¹ are not defined",
    "few_clusters": "there are no more clusters than parameters: the cluster-robust covariance matrix is singular and "
    "its standard errors are unreliable",
}
#: the two fits of every RI-CLPM (alliance.models.riclpm_suite): lagged paths equal over waves, and free
FITS = ("constrained", "free")
#: flags after which a fit's estimates are not to be read as results
UNUSABLE_FLAGS = ("not_converged", "not_positive_definite")
PATH_NAME = re.compile(r"(alpha|beta|gamma|delta)(\d*)")


# --------------------------------------------------------------------------- reading


def read_riclpm(fit_path: str | Path) -> dict[str, Any]:
    """One RI-CLPM's files: ``fit`` (fit.json) and the tables beside it (``parameters``,
    ``fit_indices``, ``long_run``, ``constraint_test``; None for a file that is absent)."""
    directory = Path(fit_path).parent
    tables: dict[str, Any] = {"fit": json.loads(Path(fit_path).read_text(encoding="utf-8"))}
    for name in RICLPM_TABLES:
        path = directory / f"{name}.csv"
        tables[name] = pd.read_csv(path) if path.exists() else None
    return tables


# --------------------------------------------------------------------------- flags


def _split_flags(text: Any) -> list[str]:
    """A table's flags cell ('a;b', 'none', empty) as a list."""
    if is_missing(text) or str(text).strip() in ("", "none"):
        return []
    return [f for f in re.split(r"[;,]", str(text)) if f.strip()]


def _rows_flags(frame: pd.DataFrame | None) -> list[str]:
    """The flags of a table's rows, and ``not_converged`` when a row says it did not converge."""
    if frame is None:
        return []
    flags = [f for cell in frame["flags"] for f in _split_flags(cell)] if "flags" in frame else []
    if "converged" in frame and (frame["converged"].astype(str).str.lower() == "false").any():
        flags.append("not_converged")
    return flags


def fit_flags(tables: dict[str, Any]) -> dict[str, list[str]]:
    """The flags of each fit (``constrained``, ``free``): fit.json's, those on the fit's rows of
    parameters.csv and fit_indices.csv (and long_run.csv for the constrained fit), and
    ``not_converged`` whenever the fit says it did not converge, whether or not it was flagged."""
    fit = tables.get("fit") or {}
    out = {}
    for paths in FITS:
        part = (fit.get("fits") or {}).get(paths) or {}
        flags = list(part.get("flags") or []) + (["not_converged"] if part.get("converged") is False else [])
        for name in ("parameters", "fit_indices"):
            frame = tables.get(name)
            flags += _rows_flags(frame[frame["paths"] == paths] if frame is not None and "paths" in frame else None)
        if paths == "constrained":
            flags += _rows_flags(tables.get("long_run"))
        out[paths] = list(dict.fromkeys(f.strip() for f in flags))
    return out


def riclpm_flags(tables: dict[str, Any]) -> list[str]:
    """Every flag of an RI-CLPM: fit.json's, each fit's (:func:`fit_flags`) and the constraint
    test's; a problem of either fit is never shown unflagged."""
    flags = list((tables.get("fit") or {}).get("flags") or [])
    flags += [f for found in fit_flags(tables).values() for f in found]
    flags += _rows_flags(tables.get("constraint_test"))
    return list(dict.fromkeys(f.strip() for f in flags))


# --------------------------------------------------------------------------- the RI-CLPM


def _path_key(name: str) -> tuple[int, int]:
    """Sort key of a path parameter: the report's path order, then the wave."""
    found = PATH_NAME.fullmatch(name)
    return PATH_ORDER.index(found[1]), int(found[2] or 0)


def path_rows(model: str, parameters: pd.DataFrame | None, paths: str) -> list[dict[str, Any]]:
    """The lagged paths of one fit (``paths``: constrained or free) from parameters.csv, cross-lags
    first, each with what it is, the decimals to show and its data-source prefix."""
    if parameters is None:
        return []
    frame = parameters[(parameters["paths"] == paths) & parameters["name"].astype(str).str.fullmatch(PATH_NAME.pattern)]
    rows = []
    for r in sorted(records(frame), key=lambda r: _path_key(str(r["name"]))):
        found = PATH_NAME.fullmatch(str(r["name"]))
        rows.append(
            {
                **r,
                **PATH_WORDS[found[1]],
                "path": found[1],
                "wave": int(found[2]) if found[2] else None,
                "digits": digits_for(r.get("se")),
                "flag_list": _split_flags(r.get("flags")),
                "source": f"riclpm¦{model}¦parameters¦{paths}¦{r['name']}¦",
            }
        )
    return rows


def long_run_rows(model: str, long_run: pd.DataFrame | None) -> list[dict[str, Any]]:
    """long_run.csv's four elements of (I − B)⁻¹, the cross effects first."""
    if long_run is None:
        return []
    by_effect = {r["effect"]: r for r in records(long_run)}
    return [
        {
            **by_effect[e],
            "meaning": LONG_RUN_WORDS[e],
            "digits": digits_for(by_effect[e].get("se")),
            "flag_list": _split_flags(by_effect[e].get("flags")),
            "source": f"riclpm¦{model}¦long_run¦{e}¦",
        }
        for e in LONG_RUN_WORDS
        if e in by_effect
    ]


def fit_index_rows(model: str, fit_indices: pd.DataFrame | None) -> list[dict[str, Any]]:
    """fit_indices.csv, the reported fit first (as written), each row with its data-source prefix."""
    return [
        {**r, "flag_list": _split_flags(r.get("flags")), "source": f"riclpm¦{model}¦fit_indices¦{r['paths']}¦"}
        for r in records(fit_indices)
    ]


def _sample(model: str, fit: dict[str, Any], indices: list[dict[str, Any]]) -> dict[str, Any]:
    """The sample of the reported fit: fit.json's ``sample`` and the fit's patients, patterns and clusters."""
    sample = {
        "sessions": [],
        "waves": None,
        "patients_in_table": None,
        "patients_with_a_wave": None,
        "cluster": "not recorded",
        "missing_data": "not recorded",
        **(fit.get("sample") or {}),
    }
    reported = next((r for r in indices if r.get("reported") in (True, "True", "true")), indices[0] if indices else {})
    waves = sample.get("sessions") or []
    return {
        **sample,
        "by_wave": [
            {"session": s, "alliance": a, "symptoms": y, "index": k}
            for k, (s, a, y) in enumerate(
                zip(waves, sample.get("observed_alliance_by_wave") or [], sample.get("observed_symptoms_by_wave") or [])
            )
        ],
        "reported_fit": reported,
        "source": f"riclpm¦{model}¦sample¦",
    }


def riclpm_context(tables: dict[str, Any]) -> dict[str, Any]:
    """What the section shows of one RI-CLPM: the constrained paths with the likelihood-ratio test of
    the constraint, the free paths when those are the reported fit, the long-run effects, the fit
    indices of both fits, the sample and clustering, and every flag with what it means."""
    fit = tables.get("fit") or {}
    name = fit.get("model") or "?"
    reported = fit.get("paths", "constrained")
    indices = fit_index_rows(name, tables.get("fit_indices"))
    flags, by_fit = riclpm_flags(tables), fit_flags(tables)
    paths = path_rows(name, tables.get("parameters"), "constrained")
    free_paths = path_rows(name, tables.get("parameters"), "free") if reported == "free" else []
    long_run = long_run_rows(name, tables.get("long_run"))
    for rows, fitted in ((paths, "constrained"), (free_paths, "free"), (long_run, "constrained")):
        for r in rows:  # the fit's flags, so that a non-converged fit is flagged even where a table is silent
            r["flag_list"] = by_fit[fitted]
    for r in indices:
        r["flag_list"] = by_fit.get(r["paths"], r["flag_list"])
    notes = [n for part in (fit.get("fits") or {}).values() for n in (part.get("notes") or [])]
    constraint = records(tables.get("constraint_test"))
    return {
        "name": name,
        "label": fit.get("label") or name,
        "reported": reported,
        "variables": {
            "alliance": (fit.get("sample") or {}).get("x", "alliance"),
            "symptoms": (fit.get("sample") or {}).get("y", "symptoms"),
        },
        "paths": paths,
        "free_paths": free_paths,
        "long_run": long_run,
        "long_run_definition": (fit.get("definitions") or {}).get("long_run", ""),
        "fit_indices": indices,
        "constraint": {
            **constraint[0],
            "flag_list": _split_flags(constraint[0].get("flags")),
            "source": f"riclpm¦{name}¦constraint_test¦",
        }
        if constraint
        else None,
        "sample": _sample(name, fit, indices),
        "estimator": fit.get("estimator", ""),
        "flags": flags,
        "fit_flags": by_fit,
        "flag_fits": {f: [p for p in FITS if f in by_fit[p]] for f in flags},
        # the reported estimates (constrained paths, long-run effects; the free paths when reported) are not results
        "unusable": [f for f in flags if f in UNUSABLE_FLAGS and (f in by_fit["constrained"] or f in by_fit[reported])],
        # the likelihood-ratio test compares both fits
        "test_unusable": [f for f in flags if f in UNUSABLE_FLAGS and any(f in by_fit[p] for p in FITS)],
        "flag_meanings": {f: RICLPM_FLAG_MEANINGS.get(f, "see the fit's notes") for f in flags},
        "notes": list(dict.fromkeys(notes)),
        "known_bias": fit.get("known_bias") or (fit.get("config") or {}).get("known_bias"),
        "missing_tables": [t for t in RICLPM_TABLES if tables.get(t) is None],
    }


# --------------------------------------------------------------------------- lagged multilevel specifications


def is_lagged_spec(fit: dict[str, Any]) -> bool:
    """Whether a mixed model's fit.json is a lagged specification (an outcome at session t + 1)."""
    return str((fit.get("spec") or {}).get("outcome", "")).endswith("_next")


def spec_context(fit: dict[str, Any], fixed: pd.DataFrame) -> dict[str, Any] | None:
    """One lagged multilevel specification: its cross-lag and carry-over coefficients (the terms
    that estimate them, ``alliance.models.lagged_recovery.estimands``), its flags and its
    known-bias note from fit.json.  None for a model that is not lagged."""
    if not is_lagged_spec(fit):
        return None
    spec = fit.get("spec") or {}
    entry = {"outcome": spec.get("outcome"), "fixed": spec.get("fixed") or [], **(fit.get("config") or {})}
    paths = estimands(entry)
    name = spec.get("name") or entry.get("name", "?")
    by_term = {r["term"]: r for r in records(fixed)}
    rows = [
        {
            **by_term[term],
            **PATH_WORDS[path],
            "path": path,
            "digits": digits_for(by_term[term].get("se")),
            "source": f"fixed¦{name}¦{term}¦",
        }
        for term, path in sorted(paths.items(), key=lambda kv: PATH_ORDER.index(kv[1]))
        if term in by_term
    ]
    return {
        "name": name,
        "label": fit.get("label") or name,
        "outcome": spec.get("outcome"),
        "rows": rows,
        "flags": list(fit.get("flags") or []),
        "known_bias": fit.get("known_bias") or (fit.get("config") or {}).get("known_bias"),
        "person_means": (fit.get("config") or {}).get("person_means", "all_sessions"),
        "not_fitted": (fit.get("fit") or {}).get("not_fitted"),
    }


# --------------------------------------------------------------------------- the truth


def _truth_row(
    model: str, row: dict[str, Any], what: str, truth: tuple[float, str], flags: list[str]
) -> dict[str, Any]:
    """An estimate beside its true value, and whether its 95 % CI covers it."""
    low, high = row.get("ci_low"), row.get("ci_high")
    covered = None if is_missing(low) or is_missing(high) else bool(low <= truth[0] <= high)
    return {
        "model": model,
        "what": what,
        "row": row,
        "truth": truth[0],
        "truth_source": truth[1],
        "covered": covered,
        "flags": flags,
    }


def truth_rows(
    truth: dict[str, Any] | None, riclpms: list[dict[str, Any]], specs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every estimate of the section whose true value the truth file gives: the RI-CLPMs' paths and
    long-run effects, then each lagged specification's cross-lag and carry-over."""
    found, keys = truth_estimands(truth)
    rows = []
    for m in riclpms:
        for r in m["paths"]:
            value = true_value(found, keys, m["name"], [str(r["name"])])
            if value:
                rows.append(_truth_row(m["name"], r, f"{r['kind']} {r['direction']}", value, r["flag_list"]))
        for r in m["long_run"]:
            value = true_value(found, keys, m["name"], [str(r["effect"]), f"long_run¦{r['effect']}"])
            if value:
                rows.append(_truth_row(m["name"], r, r["meaning"], value, r["flag_list"]))
    for s in specs:
        for r in s["rows"]:
            value = true_value(found, keys, s["name"], [str(r["term"]), r["path"]])
            if value:
                rows.append(
                    _truth_row(s["name"], r, f"{r['kind']} {r['direction']} (term {r['term']})", value, s["flags"])
                )
    return rows


# --------------------------------------------------------------------------- the section


def timing_text(config: dict[str, Any]) -> str:
    """When the alliance and the symptoms are rated (config ``dataset.measures``), as the sentence
    that says what one lag spans; '' when the config does not say."""
    dataset, analysis = config.get("dataset") or {}, config.get("analysis") or {}
    measures = dataset.get("measures") or {}
    alliance = measures.get(analysis.get("alliance_measure", ""), {}).get("timing")
    outcomes = {measures.get(m, {}).get("timing") for m in (analysis.get("outcome_by_condition") or {}).values()}
    if not alliance or len(outcomes) != 1 or None in outcomes:
        return ""
    outcome = next(iter(outcomes))
    if alliance == "after session" and outcome == "before session":
        return (
            "In this dataset the alliance is rated after each session and the symptoms before it, so the "
            "alliance → symptoms cross-lag spans the interval between two sessions, the symptoms → alliance "
            "cross-lag spans that interval and the next session, and the symptoms of a session precede its alliance "
            "rating (their association within a session is the innovations' covariance, not a lagged path)."
        )
    return f"In this dataset the alliance is rated {alliance} and the symptoms {outcome}; a lag is one session."


def lagged_section(
    fits: list[dict[str, Any]],
    fixed: list[pd.DataFrame],
    riclpm: list[dict[str, Any]] | None,
    *,
    configured_riclpm: list[str] | None = None,
    truth: dict[str, Any] | None = None,
    truth_path: str | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the section shows: the RI-CLPMs read (``riclpm``: :func:`read_riclpm` of each),
    the RI-CLPMs configured but not read (``configured_riclpm`` names), the lagged mixed models of
    the suite with their known biases, and, with a truth file, the estimates beside the truth."""
    riclpms = [riclpm_context(t) for t in (riclpm or [])]
    read = {m["name"] for m in riclpms}
    specs = [s for s in (spec_context(f, fx) for f, fx in zip(fits, fixed)) if s is not None]
    rows = truth_rows(truth, riclpms, specs)
    primary = riclpms[0] if riclpms else None
    return {
        "riclpm": riclpms,
        "riclpm_missing": [n for n in (configured_riclpm or []) if n not in read],
        "primary": primary,
        "primary_cross": [r for r in (primary["paths"] if primary else []) if r["kind"] == "cross-lag"],
        "specs": specs,
        "specs_without_note": [s["name"] for s in specs if not s["known_bias"]],
        "truth": {
            "path": truth_path,
            "rows": rows,
            "targets": truth_targets(truth, [r["model"] for r in rows]),
            "has_estimands": bool(truth_estimands(truth)[0]),
        }
        if truth is not None
        else None,
        "timing": timing_text(config or {}),
        "flag_meanings": RICLPM_FLAG_MEANINGS,
    }
