"""The RI-CLPM as a model of the suite: config entry -> wide data of the first K sessions -> both fits -> tables.

A config entry with ``type: riclpm`` (config/README.md, models; docs/methods.md section 5.7) names the
alliance and symptom columns of the analysis table (``variables``), the number of waves K (session
numbers 1..K, ``waves``), which fit is reported (``paths``: lagged paths constrained equal over waves,
or free per wave) and the column whose value at each patient's first session clusters the
cluster-robust standard errors (``cluster``: therapist). Nothing in it is evaluated: the names are
checked by the schema and :func:`alliance.models.config.check_models`, and against the table here.

Both fits are always made, so that the likelihood-ratio test of the constraint is always reported
(:func:`alliance.dynamics.riclpm.compare_constraint`); long-run effects come from the constrained
fit, the only one where they are defined. The estimator is
:func:`alliance.dynamics.riclpm.fit_riclpm` (FIML under MAR, observed-information or cluster-robust
SEs, lavaan's defaults). Every row of every table carries the flags of its fit (``not_converged``,
``not_positive_definite``, ``boundary``, ``not_stationary``, ``few_clusters``); the test of the
constraint carries those of both fits; ``fit.json`` has the reported fit's ``flags`` and each fit's
own under ``fits``: a problem of either fit is never reported unflagged.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from alliance.dynamics.riclpm import RICLPMResult, compare_constraint, fit_riclpm, riclpm_long_to_wide
from alliance.models.data import ModelDataError, riclpm_columns

__all__ = ["RICLPM_TABLES", "PATH_MEANINGS", "riclpm_wide", "fit_riclpm_model"]

#: the tables of an RI-CLPM's directory besides fit.json (results/<dataset>/models/<model>/<name>.csv)
RICLPM_TABLES = ("parameters", "fit_indices", "long_run", "constraint_test")
#: what each lagged path is, with {x} the alliance and {y} the symptom column
PATH_MEANINGS = {
    "alpha": "carry-over of {x}: within-patient {x} at t-1 -> {x} at t",
    "beta": "cross-lag {y} -> {x}: within-patient {y} at t-1 -> {x} at t",
    "gamma": "cross-lag {x} -> {y}: within-patient {x} at t-1 -> {y} at t",
    "delta": "carry-over of {y}: within-patient {y} at t-1 -> {y} at t",
}
FIT_INFO = ("converged", "iterations", "gradient_max", "loglik", "n_patients", "n_patterns", "se_type", "n_clusters")


def _flag_text(flags: list[str]) -> str:
    return ";".join(flags) if flags else "none"


def riclpm_wide(model: dict[str, Any], analysis: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per patient: ``x1..xK`` (alliance at session numbers 1..K), ``y1..yK`` and the cluster.

    Waves are session numbers, never row positions: a patient who missed session 3 has ``x3``,
    ``y3`` missing, and a session after K is not used. The cluster is the value at the patient's
    first session (as the therapist of every therapist-level variable; docs/methods.md section 10.9).
    Returns the wide table and the sample record of ``fit.json``.

    Example
    -------
    >>> long = pd.DataFrame({"patient": ["a", "a", "b", "b"], "therapist": ["t1", "t2", "t1", "t1"],
    ...                      "session": [1, 3, 2, 5], "alliance": [4.0, 4.5, 3.0, 2.0],
    ...                      "symptoms": [60.0, 50.0, 70.0, 40.0]})
    >>> model = {"name": "r", "type": "riclpm", "variables": {"alliance": "alliance", "symptoms": "symptoms"},
    ...          "waves": 3, "cluster": "therapist"}
    >>> wide, record = riclpm_wide(model, long)
    >>> wide[["x1", "x2", "x3", "therapist"]].values.tolist()
    [[4.0, nan, 4.5, 't1'], [nan, 3.0, nan, 't1']]
    """
    variables, waves, cluster = model["variables"], int(model["waves"]), model.get("cluster")
    # the therapist id is read when there is one; only a cluster needs it (a design without therapists has none)
    needed = [c for c in riclpm_columns(model) if c != "therapist" or c == cluster]
    absent = [c for c in needed if c not in analysis.columns]
    if absent:
        raise ModelDataError(
            f"model {model['name']!r} uses column(s) {', '.join(absent)} that the analysis table does not have; "
            "see results/<dataset>/clean/data_dictionary.csv"
        )
    sessions = list(range(1, waves + 1))
    wide = riclpm_long_to_wide(
        analysis,
        patient="patient",
        session="session",
        x=variables["alliance"],
        y=variables["symptoms"],
        waves=waves,
        sessions=sessions,
    )
    if cluster:
        ordered = analysis.sort_values(["patient", "session"], kind="stable")
        first = ordered.groupby("patient", sort=True)[cluster].first()
        wide[cluster] = first.reindex(wide.index).to_numpy()
    observed = wide[[f"{v}{t}" for v in "xy" for t in range(1, waves + 1)]].notna()
    record = {
        "data": "sessions",
        "waves": waves,
        "sessions": sessions,
        "x": variables["alliance"],
        "y": variables["symptoms"],
        "patients_in_table": int(analysis["patient"].nunique()),
        "patients_with_a_wave": int(observed.any(axis=1).sum()),
        "observed_alliance_by_wave": observed[[f"x{t}" for t in sessions]].sum().astype(int).tolist(),
        "observed_symptoms_by_wave": observed[[f"y{t}" for t in sessions]].sum().astype(int).tolist(),
        "cluster": (
            f"cluster-robust SEs over {cluster} (value at each patient's first session)"
            if cluster
            else "none: model-based SEs"
        ),
        "missing_data": "FIML over every patient with at least one observed wave (missing at random assumed)",
    }
    return wide, record


def _path_meaning(name: str, x: str, y: str) -> str:
    """The meaning of a path parameter (``gamma``, ``gamma3``), "" for any other parameter."""
    found = re.fullmatch(r"(alpha|beta|gamma|delta)(\d*)", name)
    if not found:
        return ""
    wave = f" (wave {found[2]})" if found[2] else " (equal over waves)"
    return PATH_MEANINGS[found[1]].format(x=x, y=y) + wave


def _parameters(name: str, fits: dict[str, RICLPMResult], reported: str, x: str, y: str) -> pd.DataFrame:
    """parameters.csv: every free parameter of both fits, the reported fit's first."""
    frames = []
    for paths in sorted(fits, key=lambda p: p != reported):
        table = fits[paths].parameters.reset_index(drop=True)
        table.insert(0, "model", name)
        table.insert(1, "paths", paths)
        table.insert(2, "reported", paths == reported)
        table["description"] = [_path_meaning(n, x, y) for n in table["name"]]
        table["se_type"] = fits[paths].se_type
        table["flags"] = _flag_text(fits[paths].flags)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def _fit_indices(name: str, fits: dict[str, RICLPMResult], reported: str) -> pd.DataFrame:
    """fit_indices.csv: one row per fit (chi-square, CFI, TLI, RMSEA with its CI, SRMR, AIC, BIC, ...)."""
    rows = []
    for paths in sorted(fits, key=lambda p: p != reported):
        fit = fits[paths]
        info = {key: getattr(fit, key) for key in FIT_INFO}
        rows.append(
            {
                "model": name,
                "paths": paths,
                "reported": paths == reported,
                "waves": fit.waves,
                **info,
                **fit.fit_indices,
                "flags": _flag_text(fit.flags),
            }
        )
    return pd.DataFrame(rows)


def _long_run(name: str, constrained: RICLPMResult, x: str, y: str) -> pd.DataFrame:
    """long_run.csv: the four elements of (I - B)^-1 of the constrained fit, with delta-method SEs."""
    table = constrained.long_run.reset_index()
    variable = {"x": x, "y": y}
    table.insert(0, "model", name)
    table.insert(1, "paths", "constrained")
    table.insert(4, "from_variable", table["from"].map(variable))
    table.insert(5, "to_variable", table["to"].map(variable))
    table["flags"] = _flag_text(constrained.flags)
    return table


def _constraint_test(name: str, fits: dict[str, RICLPMResult]) -> pd.DataFrame:
    """constraint_test.csv: the likelihood-ratio test of equal lagged paths over waves."""
    test = compare_constraint(fits["free"], fits["constrained"])
    return pd.DataFrame(
        [
            {
                "model": name,
                "test": "lagged paths equal over waves (constrained) against free per wave",
                "chisq_diff": test["chisq_diff"],
                "df_diff": test["df_diff"],
                "p": test["p"],
                "loglik_constrained": fits["constrained"].loglik,
                "loglik_free": fits["free"].loglik,
                "flags": _flag_text(test["flags"]),
            }
        ]
    )


def fit_riclpm_model(model: dict[str, Any], analysis: pd.DataFrame) -> dict[str, Any]:
    """Fit one ``type: riclpm`` config model on the analysis table; every table of its directory.

    Keys: ``parameters``, ``fit_indices``, ``long_run``, ``constraint_test`` (DataFrames, flags on
    every row) and ``fit`` (the fit.json dict). ``analysis`` need hold only
    :func:`alliance.models.data.riclpm_columns`. Deterministic: the same table gives the same numbers.
    """
    wide, record = riclpm_wide(model, analysis)
    waves, cluster = int(model["waves"]), model.get("cluster") or None
    reported = model.get("paths", "constrained")
    x, y = model["variables"]["alliance"], model["variables"]["symptoms"]
    try:
        fits = {
            paths: fit_riclpm(wide, waves, constrain_paths=paths == "constrained", cluster=cluster, x="x", y="y")
            for paths in ("constrained", "free")
        }
    except ValueError as error:  # not identified: a wave with fewer than 2 observed values
        raise ModelDataError(f"model {model['name']!r}: {error}") from None
    name = model["name"]
    tables: dict[str, Any] = {
        "parameters": _parameters(name, fits, reported, x, y),
        "fit_indices": _fit_indices(name, fits, reported),
        "long_run": _long_run(name, fits["constrained"], x, y),
        "constraint_test": _constraint_test(name, fits),
    }
    primary = fits[reported]
    fit = {
        "model": name,
        "type": "riclpm",
        "label": model.get("label", name),
        "paths": reported,
        "flags": list(primary.flags),
        "estimator": (
            "alliance.dynamics.riclpm.fit_riclpm: FIML over missing-data patterns, observed-information SEs "
            "(cluster-robust sandwich with a cluster), lavaan::sem(missing = 'fiml') defaults"
        ),
        "sample": record,
        "fits": {
            paths: {
                **{key: getattr(f, key) for key in FIT_INFO},
                "flags": f.flags,
                "notes": f.notes,
                "fit_indices": f.fit_indices,
            }
            for paths, f in fits.items()
        },
        "constraint_test": tables["constraint_test"].drop(columns=["model"]).to_dict(orient="records")[0],
        "long_run": tables["long_run"].drop(columns=["model"]).to_dict(orient="records"),
        "parameters": primary.parameters.to_dict(orient="records"),
        "std_all_by_wave": {
            p: [float(v) for v in values] for p, values in primary.std_all_by_wave.items() if _path_meaning(p, x, y)
        },
        "definitions": {
            "x": x,
            "y": y,
            **{key: text.format(x=x, y=y) for key, text in PATH_MEANINGS.items()},
            "long_run": "(I - B)^-1 of the constrained fit, B = [[alpha, beta], [gamma, delta]]; x->y = gamma / det",
        },
        "config": {k: v for k, v in model.items() if not k.startswith("_")},
    }
    if model.get("known_bias"):
        fit["known_bias"] = model["known_bias"]
    if model.get("_design_note"):  # fitted without its therapist cluster (alliance.models.design)
        fit["design_note"] = model["_design_note"]
    tables["fit"] = fit
    return tables
