"""The data one model of the suite is fitted to: analysis table, derived variables, sample filter.

A model's ``data`` key chooses the level:

* ``sessions`` (default): ``analysis.parquet``, one row per patient and session, with the
  centred variables of the intake stage (methods.md section 4);
* ``patients``: ``patients.parquet``, one row per patient, plus the patient-level variables
  the end-of-treatment models need (:func:`patient_frame`, listed in :data:`PATIENT_DERIVED`).

``centre: [col, ...]`` adds ``<col>_c`` (grand-mean centred; :func:`centre_columns`), and
``filter`` selects the sample with a small, closed language (:func:`apply_filter`): nothing in
the configuration is evaluated as code, every name is checked against the data.

Centring is done on the whole table before the filter, so a filtered model (a stratum, sessions
1-7) keeps the centring of the full sample; the fitted rows are then the complete cases. A
detrended part the intake does not make is made on the whole table too, and ``person_means:
model_rows`` recomputes the within/between parts on the complete cases after the filter
(alliance.models.person_means).

A model job reads only what its model uses (:func:`load_model_tables`): the session-table
columns of :func:`analysis_columns`, or, for a patient-level model, the patients table alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.models.moderation import moderated_fixed
from alliance.models.person_means import add_detrended_parts, parts_from_model_rows, source_columns
from alliance.outputs import read_columns

__all__ = [
    "PATIENT_DERIVED",
    "THERAPIST_DERIVED",
    "ID_COLUMNS",
    "ModelDataError",
    "therapist_decomposition",
    "patient_frame",
    "centre_columns",
    "apply_filter",
    "describe_filter",
    "model_frame",
    "model_variables",
    "sample_counts",
    "analysis_columns",
    "riclpm_columns",
    "spec_columns",
    "load_model_tables",
    "report_analysis_columns",
]

#: identifier columns carried along (for residuals and sample counts), when present
ID_COLUMNS = ("patient", "therapist", "session")

#: patient-level variables built by :func:`patient_frame` (name -> meaning)
PATIENT_DERIVED = {
    "symptoms_baseline_c": "baseline symptoms minus the mean over patients with a baseline (common outcome scale)",
    "symptoms_change_s3": "early change: symptoms at session 3 minus baseline (negative = improvement)",
    "alliance_pm_c": "patient mean alliance (all rated sessions) minus the grand mean of patient means",
    "alliance_cwt": (
        "patient mean alliance minus the therapist's mean of patient means (patient within therapist; methods wai_cwt)"
    ),
    "alliance_tm_c": (
        "therapist mean of patient mean alliance minus the grand mean of patient means "
        "(between therapists; methods wai_tm_c)"
    ),
    "alliance_s3_cwt": (
        "session-3 alliance minus the therapist's mean session-3 alliance (patients with a session-3 rating)"
    ),
    "alliance_s3_tm_c": "therapist mean session-3 alliance minus the grand mean of session-3 alliance",
    "alliance_s1_4_cwt": "mean alliance of sessions 1-4 minus the therapist's mean of it",
    "alliance_s1_4_tm_c": "therapist mean of the sessions 1-4 alliance minus its grand mean",
}

#: (source column, prefix of the therapist decomposition) built by patient_frame
_DECOMPOSED = (
    ("alliance_patient_mean", "alliance"),
    ("alliance_s3", "alliance_s3"),
    ("alliance_s1_4", "alliance_s1_4"),
)


#: the variables of :data:`PATIENT_DERIVED` built from therapist means (not made without a therapist column)
THERAPIST_DERIVED = tuple(f"{prefix}_{part}" for _, prefix in _DECOMPOSED for part in ("cwt", "tm_c"))


class ModelDataError(ValueError):
    """A model asks for data the analysis tables do not have; the message names the model and key."""


def therapist_decomposition(values: pd.Series, therapist: pd.Series) -> pd.DataFrame:
    """Split a patient-level value into patient-within-therapist and between-therapist parts.

    One value per patient (rows = patients).  Patients with a missing value are left out of the
    means and get missing parts.  Each patient weighs 1 in the therapist mean::

        cwt  = value - therapist mean            (patient within therapist)
        tm_c = therapist mean - grand mean        (between therapists; grand mean over patients)

    Example
    -------
    >>> v = pd.Series([3.0, 4.0, 2.0, np.nan])
    >>> t = pd.Series(["a", "a", "b", "b"])
    >>> therapist_decomposition(v, t).round(3).values.tolist()
    [[-0.5, 0.5], [0.5, 0.5], [0.0, -1.0], [nan, nan]]
    """
    present = values.notna()
    therapist_mean = values[present].groupby(therapist[present]).mean()
    grand = float(values[present].mean())
    tm = therapist.map(therapist_mean).where(present)
    return pd.DataFrame({"cwt": values - tm, "tm_c": tm - grand}, index=values.index)


def patient_frame(patients: pd.DataFrame) -> pd.DataFrame:
    """``patients.parquet`` plus the derived patient-level variables of :data:`PATIENT_DERIVED`.

    The patient's therapist is the therapist of the first session (as in the intake stage).
    Grand means are over every patient with the value (not only the patients a model uses).
    Without a therapist column (a design without therapists) :data:`THERAPIST_DERIVED` is not made.
    """
    out = patients.copy()
    needed = {"patient"}
    absent = needed - set(out.columns)
    if absent:
        raise ModelDataError(f"patients table lacks column(s) {', '.join(sorted(absent))}")
    if "symptoms_baseline" in out:
        out["symptoms_baseline_c"] = out["symptoms_baseline"] - out["symptoms_baseline"].mean()
        if "symptoms_s3" in out:
            out["symptoms_change_s3"] = out["symptoms_s3"] - out["symptoms_baseline"]
    if "alliance_patient_mean" in out:
        pm = out["alliance_patient_mean"]
        out["alliance_pm_c"] = pm - pm.mean()
    for source, prefix in _DECOMPOSED:
        if source in out and "therapist" in out:
            parts = therapist_decomposition(out[source].astype(float), out["therapist"])
            out[f"{prefix}_cwt"] = parts["cwt"]
            out[f"{prefix}_tm_c"] = parts["tm_c"]
    return out


def centre_columns(
    data: pd.DataFrame, columns: list[str], patient: str = "patient"
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Add ``<col>_c`` = col minus the grand mean of patient means (each patient weight 1).

    For a patient characteristic (constant within patients, such as expectancy) this is the mean
    over patients, not over sessions, so patients with many sessions do not weigh more.
    Returns the frame and the subtracted means.

    Example
    -------
    >>> d = pd.DataFrame({"patient": ["a", "a", "a", "b"], "expectancy": [8.0, 8.0, 8.0, 4.0]})
    >>> frame, means = centre_columns(d, ["expectancy"])
    >>> means, frame["expectancy_c"].tolist()
    ({'expectancy': 6.0}, [2.0, 2.0, 2.0, -2.0])
    """
    out = data.copy(deep=False)  # a new frame sharing the data (copy-on-write): ``data`` never changes
    means: dict[str, float] = {}
    for col in columns:
        if col not in out.columns:
            raise ModelDataError(f"centre: column {col!r} is not in the data")
        if not pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col]):
            raise ModelDataError(f"centre: column {col!r} is not numeric")
        target = f"{col}_c"
        if target in out.columns:
            raise ModelDataError(f"centre: the data already have a column {target!r}")
        values = out[col].astype(float)
        if patient in out.columns:
            grand = float(values.groupby(out[patient]).mean().mean())
        else:
            grand = float(values.mean())
        out[target] = values - grand
        means[col] = grand
    return out, means


def _as_values(column: pd.Series, wanted: list[Any]) -> pd.Series:
    """Rows whose value is one of ``wanted`` (compared as text for text and category columns)."""
    if pd.api.types.is_bool_dtype(column) or str(column.dtype) == "boolean":
        wanted_bool = []
        for w in wanted:
            if isinstance(w, bool):
                wanted_bool.append(w)
            elif str(w).lower() in ("true", "false"):
                wanted_bool.append(str(w).lower() == "true")
            else:
                raise ModelDataError(f"value {w!r} is not true/false")
        return column.isin(wanted_bool).fillna(False).astype(bool)
    if pd.api.types.is_numeric_dtype(column):
        numbers = []
        for w in wanted:
            if isinstance(w, bool) or not isinstance(w, int | float):
                raise ModelDataError(f"value {w!r} is not a number")
            numbers.append(float(w))
        return column.astype(float).isin(numbers)
    return column.astype("string").isin([str(w) for w in wanted]).fillna(False).astype(bool)


def apply_filter(data: pd.DataFrame, spec: dict[str, Any] | None, *, session: str = "session") -> pd.DataFrame:
    """Select rows with the model's ``filter`` (no code is evaluated).

    Keys (all optional; all given conditions must hold):

    * ``session_min``, ``session_max``: session numbers (inclusive), session-level data only;
    * ``include: {column: [values]}``: keep rows whose value is one of the listed values;
    * ``exclude: {column: [values]}``: drop rows whose value is one of the listed values.

    Rows with a missing value in an ``include`` column are dropped; in an ``exclude`` column kept.

    Example
    -------
    >>> d = pd.DataFrame({"session": [1, 5, 9], "therapy": ["CBT", "PDT", "CBT"]})
    >>> apply_filter(d, {"session_max": 7, "include": {"therapy": ["CBT"]}})["session"].tolist()
    [1]
    """
    if not spec:
        return data
    keep = pd.Series(True, index=data.index)
    for key in ("session_min", "session_max"):
        if key in spec and spec[key] is not None:
            if session not in data.columns:
                raise ModelDataError(f"filter.{key}: the data have no {session!r} column (patient-level data?)")
            bound = spec[key]
            values = data[session].astype(float)
            keep &= (values >= bound) if key == "session_min" else (values <= bound)
    for key in ("include", "exclude"):
        for column, wanted in (spec.get(key) or {}).items():
            if column not in data.columns:
                raise ModelDataError(f"filter.{key}: column {column!r} is not in the data")
            hit = _as_values(data[column], list(wanted))
            keep &= hit if key == "include" else ~hit
    return data.loc[keep.to_numpy()]


def describe_filter(spec: dict[str, Any] | None) -> str:
    """Plain-language text of a filter, for tables and the report.

    >>> describe_filter({"session_max": 7, "include": {"therapy": ["CBT"]}})
    'session <= 7; therapy in [CBT]'
    """
    if not spec:
        return "none"
    parts = []
    if spec.get("session_min") is not None:
        parts.append(f"session >= {spec['session_min']}")
    if spec.get("session_max") is not None:
        parts.append(f"session <= {spec['session_max']}")
    for key, word in (("include", "in"), ("exclude", "not in")):
        for column, wanted in (spec.get(key) or {}).items():
            parts.append(f"{column} {word} [{', '.join(str(w) for w in wanted)}]")
    return "; ".join(parts) or "none"


def model_variables(model: dict[str, Any]) -> list[str]:
    """The columns a config model's fit uses (outcome, fixed terms with moderation, random-effects
    columns), as :func:`alliance.models.specs.model_columns` lists them for its spec.

    >>> model_variables({"outcome": "y", "fixed": ["x", "x:therapy"], "random": [{"group": "patient"}]})
    ['y', 'x', 'therapy', 'patient']
    """
    fixed = moderated_fixed(list(model.get("fixed") or []), model.get("moderation"))
    return spec_columns({"outcome": model.get("outcome"), "fixed": fixed, "random": model.get("random") or []})


def model_frame(
    model: dict[str, Any],
    analysis: pd.DataFrame | None,
    patients: pd.DataFrame | None = None,
    extra_filter: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table a model is fitted to (before listwise deletion) and a record of how it was made.

    ``extra_filter`` (an ``include`` mapping, used for strata) is applied after the model's own.
    The record holds the data level, the rows before and after the filter, the filter as text,
    the centring means, the variables made here and, with a ``person_means`` key, how the person
    means were taken. With ``person_means: model_rows`` the table is already the complete cases,
    their within/between parts recomputed on them (:func:`alliance.models.person_means.parts_from_model_rows`).
    """
    level = model.get("data", "sessions")
    if level == "patients":
        if patients is None:
            raise ModelDataError(f"model {model['name']!r}: data: patients, but no patients table was given")
        base = patient_frame(patients)
    elif level == "sessions":
        if analysis is None:
            raise ModelDataError(f"model {model['name']!r}: data: sessions, but no analysis table was given")
        base = analysis
    else:
        raise ModelDataError(f"model {model['name']!r}: data must be 'sessions' or 'patients', not {level!r}")
    variables = model_variables(model)
    made: dict[str, str] = {}
    try:
        frame, means = centre_columns(base, list(model.get("centre") or []))
        if level == "sessions":
            frame, made = add_detrended_parts(frame, variables)
        filtered = apply_filter(frame, model.get("filter"))
        if extra_filter:
            filtered = apply_filter(filtered, {"include": {c: [v] for c, v in extra_filter.items()}})
    except ModelDataError as error:
        raise ModelDataError(f"model {model['name']!r}: {error}") from None
    rows_after_filter = int(len(filtered))
    person_means = None
    if model.get("person_means") == "model_rows" and set(variables) <= set(filtered.columns):
        try:
            filtered, person_means = parts_from_model_rows(filtered, variables)
        except KeyError as error:
            raise ModelDataError(f"model {model['name']!r}: {error.args[0]}") from None
    elif model.get("person_means"):
        person_means = {"setting": model["person_means"], "text": "person means over every rated session (intake)"}
    record = {
        "data": level,
        "rows_in_table": int(len(base)),
        "rows_after_filter": rows_after_filter,
        "filter": describe_filter(model.get("filter")),
        "stratum_filter": (
            describe_filter({"include": {c: [v] for c, v in extra_filter.items()}}) if extra_filter else "none"
        ),
        "centring": {
            f"{c}_c": f"{c} minus {m:.10g} (grand mean of patient means, whole table)" for c, m in means.items()
        },
        "derived": {**{c: PATIENT_DERIVED[c] for c in PATIENT_DERIVED if level == "patients"}, **made},
    }
    if person_means is not None:
        record["person_means"] = person_means
    return filtered, record


def sample_counts(frame: pd.DataFrame, rows: pd.Index | np.ndarray | None = None) -> dict[str, int]:
    """Rows, patients and therapists of (the given rows of) a model frame."""
    used = frame if rows is None else frame.loc[rows]
    out = {"n_obs": int(len(used))}
    for col, key in (("patient", "n_patients"), ("therapist", "n_therapists")):
        out[key] = int(used[col].nunique()) if col in used.columns else 0
    return out


def _parts(term: str) -> list[str]:
    return str(term).split(":")


def _random_columns(terms: list[dict[str, Any]]) -> list[str]:
    """The grouping, ``nested_in`` and slope columns of random-effects terms (config or fit.json form)."""
    columns: list[str] = []
    for t in terms:
        columns += [t["group"], *([t["nested_in"]] if t.get("nested_in") else []), *(t.get("slopes") or [])]
    return columns


def analysis_columns(model: dict[str, Any]) -> list[str]:
    """The columns of the analysis table (``analysis.parquet``) one config model needs.

    In this order, each once: the identifiers (:data:`ID_COLUMNS`: residuals and sample counts
    use them), the outcome, every part of every fixed term (with a ``moderation`` block its
    moderators and interactions), the ``categorical`` columns, the random-effects groups,
    ``nested_in`` groups and slopes, the ``centre`` columns, the ``filter`` columns
    (``session_min``/``session_max`` use ``session``) and the ``strata.by`` columns (the stratum
    jobs filter on them), then the columns the model stage makes its own parts from
    (:func:`alliance.models.person_means.source_columns`: the values behind a detrended symptom
    part, or behind every part with ``person_means: model_rows``).  A centred column ``<col>_c`` is
    made from ``<col>`` by :func:`centre_columns`, so it is not listed.  A patient-level model
    (``data: patients``) reads no session rows: the list is empty; an RI-CLPM (``type: riclpm``)
    reads :func:`riclpm_columns`.  Names are not checked against the table
    (:func:`alliance.outputs.read_columns` skips those it does not have; the model stage
    then names what is missing).

    Example
    -------
    >>> analysis_columns({"name": "m", "outcome": "symptoms", "fixed": ["alliance_within_patient", "expectancy_c"],
    ...                   "centre": ["expectancy"], "categorical": {"therapy": "CBT"},
    ...                   "moderation": {"terms": ["alliance_within_patient"], "by": ["therapy"]},
    ...                   "random": [{"group": "patient", "slopes": ["alliance_within_patient"]}],
    ...                   "filter": {"session_max": 7, "exclude": {"site": ["s9"]}}, "strata": {"by": ["condition"]}})
    ['patient', 'therapist', 'session', 'symptoms', 'alliance_within_patient', 'therapy', 'expectancy', 'site',
     'condition']
    >>> analysis_columns({"name": "p", "data": "patients", "outcome": "symptoms_last", "fixed": ["alliance_s3"],
    ...                   "random": [{"group": "therapist"}]})
    []
    """
    if model.get("type") == "riclpm":
        return riclpm_columns(model)
    if model.get("data", "sessions") == "patients":
        return []
    names: list[str] = [*ID_COLUMNS, model["outcome"]]
    for term in moderated_fixed(list(model.get("fixed") or []), model.get("moderation")):
        names += _parts(term)
    names += [str(c) for c in (model.get("categorical") or {})]
    names += _random_columns(model.get("random") or [])
    centred = [str(c) for c in (model.get("centre") or [])]
    names += centred
    spec = model.get("filter") or {}
    if spec.get("session_min") is not None or spec.get("session_max") is not None:
        names.append("session")
    for key in ("include", "exclude"):
        names += [str(c) for c in (spec.get(key) or {})]
    names += [str(c) for c in (model.get("strata") or {}).get("by", [])]
    names += source_columns(model_variables(model), model.get("person_means"))
    made = {f"{c}_c" for c in centred}
    return [n for n in dict.fromkeys(names) if n not in made]


def riclpm_columns(model: dict[str, Any]) -> list[str]:
    """The analysis-table columns an RI-CLPM (``type: riclpm``) reads: identifiers, its two variables, its cluster.

    >>> riclpm_columns({"type": "riclpm", "variables": {"alliance": "alliance", "symptoms": "symptoms"},
    ...                 "cluster": "therapist"})
    ['patient', 'therapist', 'session', 'alliance', 'symptoms']
    """
    variables = model["variables"]
    cluster = [model["cluster"]] if model.get("cluster") else []
    names = [*ID_COLUMNS, variables["alliance"], variables["symptoms"], *cluster]
    return list(dict.fromkeys(names))


def spec_columns(spec: dict[str, Any]) -> list[str]:
    """The data columns of a fitted model's spec (the ``spec`` of ``fit.json``): outcome, parts of
    the fixed terms, random-effects groups, ``nested_in`` groups and slopes, each once.

    >>> spec_columns({"outcome": "symptoms", "fixed": ["session_c", "session_c:therapy"],
    ...               "random": [{"group": "patient", "slopes": ["session_c"], "nested_in": "therapist"}]})
    ['symptoms', 'session_c', 'therapy', 'patient', 'therapist']
    """
    names: list[str] = [spec["outcome"]] if spec.get("outcome") else []
    for term in spec.get("fixed") or []:
        names += _parts(term)
    names += _random_columns(spec.get("random") or [])
    return list(dict.fromkeys(names))


#: analysis-table columns the report uses besides the models' own: the reliability of patient and
#: therapist means (alliance, patient, therapist) and the descriptive sections
REPORT_ANALYSIS_COLUMNS = ("alliance", "symptoms", "patient", "therapist", "session", "therapy", "condition")


def report_analysis_columns(fits: list[dict[str, Any]]) -> list[str]:
    """The analysis-table columns the report reads: :data:`REPORT_ANALYSIS_COLUMNS` and the
    columns of every fitted model's spec (a model's equations give each term its level from
    its columns and the model's groups).

    >>> report_analysis_columns([{"spec": {"outcome": "symptoms_next", "fixed": ["alliance_within_patient"]}}])[-2:]
    ['symptoms_next', 'alliance_within_patient']
    """
    names = list(REPORT_ANALYSIS_COLUMNS) + [c for f in fits for c in spec_columns(f.get("spec") or {})]
    return list(dict.fromkeys(names))


def load_model_tables(
    model: dict[str, Any], analysis_path: str | Path, patients_path: str | Path
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The tables one config model is fitted to, read from the intake stage's files: ``(analysis, patients)``.

    * ``data: sessions`` (default): only the :func:`analysis_columns` of ``analysis.parquet``
      (at 1.17M rows about 10 of its 80 columns); the patients table is not read (None): a
      session-level model does not use it;
    * ``data: patients``: the whole ``patients.parquet`` (one row per patient: small, and
      :func:`patient_frame` derives its variables from several columns); the analysis table is
      not read (None).

    Pass both to :func:`alliance.models.suite.fit_model` or :func:`alliance.models.suite.fit_stratum` (the
    columns include the ``strata.by`` columns the stratum jobs filter on).

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> pd.DataFrame({"patient": ["a", "b"], "therapist": ["t", "t"], "session": [1, 1], "symptoms": [50.0, 40.0],
    ...               "alliance": [4.0, 3.0], "phq9_item_01": [1.0, 2.0]}).to_parquet(folder / "analysis.parquet")
    >>> pd.DataFrame({"patient": ["a", "b"], "therapist": ["t", "t"]}).to_parquet(folder / "patients.parquet")
    >>> model = {"name": "m", "outcome": "symptoms", "fixed": ["alliance"], "random": [{"group": "patient"}]}
    >>> analysis, patients = load_model_tables(model, folder / "analysis.parquet", folder / "patients.parquet")
    >>> analysis.columns.tolist(), patients
    (['patient', 'therapist', 'session', 'symptoms', 'alliance'], None)
    >>> analysis, patients = load_model_tables({**model, "data": "patients"}, folder / "analysis.parquet",
    ...                                        folder / "patients.parquet")
    >>> analysis, patients.shape
    (None, (2, 2))
    """
    if model.get("data", "sessions") == "patients":
        return None, pd.read_parquet(patients_path)
    return read_columns(analysis_path, analysis_columns(model)), None
