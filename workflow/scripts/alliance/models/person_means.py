"""Within/between parts made for one model: detrended parts and person means from the model's rows.

The intake stage splits alliance and symptoms once, on the whole analysis table, with person means
over every rated session (docs/methods.md section 4.2). Two of the lagged specifications of the
suite need more (docs/methods.md sections 5.3 and 10.2):

* a detrended within-patient part the intake does not make (``symptoms_within_patient_detrended``;
  the intake makes ``alliance_within_patient_detrended``): :func:`add_detrended_parts` makes it
  with the intake's own :func:`alliance.intake.derive.within_patient_detrended`, on the whole table
  as the intake does for the alliance;
* ``person_means: model_rows``: :func:`parts_from_model_rows` recomputes every within/between part
  the model uses from the rows it is fitted to (its complete cases after the filter), with the
  intake's :func:`alliance.intake.derive.decompose_within_between`. A lagged model's rows are the
  sessions followed by a scored next session, so its means leave out the sessions it cannot use
  (every patient's last one among them), and its within-patient parts sum to 0 over its own rows.

A part is named ``<value>_<part>``, ``value`` one of :data:`DECOMPOSED_VALUES`; nothing else is
touched, so a model that uses neither gets its frame back unchanged.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from alliance.intake.derive import decompose_within_between, within_patient_detrended

__all__ = [
    "PERSON_MEANS",
    "DECOMPOSED_VALUES",
    "DECOMPOSITION_PARTS",
    "DETRENDED_PART",
    "decomposed_value",
    "values_of_parts",
    "source_columns",
    "add_detrended_parts",
    "parts_from_model_rows",
]

#: settings of a model's ``person_means`` key: the intake's means (absent key) or the model's rows
PERSON_MEANS = ("all_sessions", "model_rows")
#: the session-level values whose parts a model may use (the intake decomposes both)
DECOMPOSED_VALUES = ("alliance", "symptoms")
#: the parts alliance.intake.derive.decompose_within_between makes, as name suffixes
DECOMPOSITION_PARTS = (
    "patient_mean",
    "within_patient",
    "between_patient",
    "therapist_mean",
    "patient_within_therapist",
    "between_therapist",
    "n_sessions",
)
#: the detrended within-patient part (alliance.intake.derive.within_patient_detrended)
DETRENDED_PART = "within_patient_detrended"


def decomposed_value(column: str) -> tuple[str, str] | None:
    """``(value, part)`` of a within/between part column, None for any other column.

    >>> decomposed_value("symptoms_within_patient_detrended"), decomposed_value("alliance_next")
    (('symptoms', 'within_patient_detrended'), None)
    """
    for value in DECOMPOSED_VALUES:
        for part in (*DECOMPOSITION_PARTS, DETRENDED_PART):
            if column == f"{value}_{part}":
                return value, part
    return None


def values_of_parts(columns: list[str]) -> list[str]:
    """The values (alliance, symptoms) whose parts appear among ``columns``, in :data:`DECOMPOSED_VALUES` order.

    >>> values_of_parts(["symptoms_next", "alliance_within_patient", "symptoms_between_patient", "session_c"])
    ['alliance', 'symptoms']
    """
    used = {found[0] for c in columns if (found := decomposed_value(c))}
    return [v for v in DECOMPOSED_VALUES if v in used]


def source_columns(columns: list[str], person_means: str | None) -> list[str]:
    """Analysis-table columns needed to make the parts among ``columns`` in the model stage.

    A detrended symptom part needs ``symptoms`` and ``session``; with ``model_rows`` every value
    whose parts the model uses is needed (and ``session`` for a detrended part).

    >>> source_columns(["symptoms_next", "alliance_within_patient", "symptoms_within_patient"], "model_rows")
    ['alliance', 'symptoms']
    >>> source_columns(["alliance_next", "symptoms_within_patient_detrended"], None)
    ['symptoms', 'session']
    """
    names: list[str] = []
    for column in columns:
        found = decomposed_value(column)
        if found is None:
            continue
        value, part = found
        if person_means == "model_rows" or (part == DETRENDED_PART and value != "alliance"):
            names.append(value)
        if part == DETRENDED_PART:
            names.append("session")
    return list(dict.fromkeys(names))


def add_detrended_parts(data: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Add each detrended part among ``columns`` that the table lacks; returns the frame and what was made.

    Made as the intake makes ``alliance_within_patient_detrended`` (docs/methods.md section 4.5):
    the residual of the patient's own least-squares line of the value on the session number,
    over the sessions with a value, missing with fewer than 3 such sessions. ``data`` never changes.

    Example
    -------
    >>> d = pd.DataFrame({"patient": ["a"] * 4, "session": [1, 2, 3, 4], "symptoms": [60.0, 50.0, 55.0, 40.0]})
    >>> frame, made = add_detrended_parts(d, ["symptoms_within_patient_detrended"])
    >>> frame["symptoms_within_patient_detrended"].round(2).tolist(), list(made)
    ([0.5, -4.0, 6.5, -3.0], ['symptoms_within_patient_detrended'])
    """
    wanted = [c for c in columns if c not in data.columns and (decomposed_value(c) or ("", ""))[1] == DETRENDED_PART]
    if not wanted:
        return data, {}
    out = data.copy(deep=False)  # a new frame sharing the data: ``data`` never changes
    made = {}
    for column in wanted:
        value = decomposed_value(column)[0]
        out[column] = within_patient_detrended(out, value)
        made[column] = (
            f"{value} minus the patient's own least-squares line over session (sessions with {value}; "
            "missing with fewer than 3), made in the model stage as the intake makes the alliance's"
        )
    return out, made


def parts_from_model_rows(rows: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The complete cases of ``columns`` with every within/between part among them recomputed on those rows.

    ``rows`` is the model's frame after its filter; the complete cases are the rows with every
    column in ``columns`` (the model's variables) present, as the engine would fit them. For each
    value whose parts the model uses, :func:`~alliance.intake.derive.decompose_within_between`
    (and, for a detrended part, :func:`~alliance.intake.derive.within_patient_detrended`) is run on
    those rows alone, and the parts replace the intake's. The complete cases do not change: a part
    is present exactly where its value is. Returns the rows and a record for ``fit.json``.

    Example
    -------
    >>> d = pd.DataFrame({"patient": ["a", "a", "a", "b", "b"], "therapist": ["t"] * 5,
    ...                   "alliance": [3.0, 4.0, 5.0, 2.0, 4.0], "symptoms_next": [1.0, 2.0, None, 1.0, None],
    ...                   "alliance_within_patient": [-1.0, 0.0, 1.0, -1.0, 1.0]})
    >>> used, record = parts_from_model_rows(d, ["symptoms_next", "alliance_within_patient"])
    >>> used["alliance_within_patient"].tolist(), used["alliance_patient_mean"].tolist()
    ([-0.5, 0.5, 0.0], [3.5, 3.5, 2.0])
    >>> record["rows"], record["values"]
    (3, ['alliance'])
    """
    used = rows.loc[rows[columns].notna().all(axis=1)]
    values = values_of_parts(columns)
    if values:
        used = used.copy()
    for value in values:
        if value not in used.columns:
            raise KeyError(f"person_means: model_rows needs the column {value!r} to recompute its parts")
        parts = decompose_within_between(used, value)
        for name in parts.columns:
            used[name] = parts[name]
        detrended = f"{value}_{DETRENDED_PART}"
        if detrended in columns:
            used[detrended] = within_patient_detrended(used, value)
    record = {
        "setting": "model_rows",
        "rows": int(len(used)),
        "values": values,
        "text": (
            f"person means and every within/between part of {' and '.join(values) or 'no value'} recomputed "
            f"from the model's {len(used):,} complete-case rows, not from every rated session "
            "(docs/methods.md section 4.2)"
        ),
    }
    return used, record
