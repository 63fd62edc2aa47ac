"""How the simulated trial (alliance.simulate) becomes a lab's export, byte for byte.

The simulator generates scores; this module turns them into what a real export holds: item
responses spread from a scale total (:func:`split_total_into_items`), text columns held as codes
into labels and decoded once (:func:`text_column`), the faults of a real export
(:func:`add_mess`) and the CSV bytes pandas would write, written faster (:func:`write_csv`);
and for the second demo, the same trial in another lab's columns, labels and totals with faults of
its own (:func:`lab2_sessions`, :func:`lab2_clients`, :func:`add_lab2_mess`).
Every function draws from the generator it is given in a fixed order: the demo data under
``data/raw/demo/`` depend on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

__all__ = [
    "WAI_ITEMS",
    "PHQ9_ITEMS",
    "GAD7_ITEMS",
    "BLOCK_ROWS",
    "CodedColumn",
    "pomp_to_total",
    "split_total_into_items",
    "text_column",
    "add_mess",
    "plain",
    "write_csv",
    "LAB2_THERAPY",
    "LAB2_DIAGNOSIS",
    "LAB2_CENTRE",
    "LAB2_SEX",
    "LAB2_MISSING",
    "supplied_total",
    "lab2_client_ids",
    "lab2_sessions",
    "lab2_clients",
    "add_lab2_mess",
    "lab2_export",
]

WAI_ITEMS = [f"wai_{k:02d}" for k in range(1, 13)]
PHQ9_ITEMS = [f"phq9_{k:02d}" for k in range(1, 10)]
GAD7_ITEMS = [f"gad7_{k:02d}" for k in range(1, 8)]
#: rows per block when drawing the per-cell random numbers (same stream as one draw; bounds memory)
BLOCK_ROWS = 1 << 16

#: a coded text column of the export: (codes, labels), the cell text is ``labels[code]``
CodedColumn = tuple[np.ndarray, list[str]]


def pomp_to_total(pomp: np.ndarray, n_items: int, item_max: int) -> np.ndarray:
    """The instrument total (0..n_items*item_max, rounded and clipped) of a POMP score (0-100).

    >>> pomp_to_total(np.array([0.0, 50.0, 120.0]), 9, 3).tolist()
    [0, 14, 27]
    """
    total_max = n_items * item_max
    return np.clip(np.rint(pomp / 100.0 * total_max), 0, total_max).astype(int)


def split_total_into_items(totals: np.ndarray, n_items: int, item_max: int, rng: np.random.Generator) -> np.ndarray:
    """Spread each total over items (0..item_max) at random: the counts per item of ``total`` unit
    slots chosen without replacement from the n_items*item_max slots (a multivariate hypergeometric
    draw), so every row's items sum to its total exactly.

    Rows are drawn grouped by their total, in increasing order of the total (numpy's
    ``multivariate_hypergeometric``, method "count"): one call per distinct total, memory bounded by
    the output.

    >>> items = split_total_into_items(np.array([0, 5, 27]), 9, 3, np.random.default_rng(1))
    >>> items.sum(axis=1).tolist(), int(items.max())
    ([0, 5, 27], 3)
    """
    totals = np.asarray(totals).astype(np.intp)
    if totals.size and (totals.min() < 0 or totals.max() > min(n_items * item_max, np.iinfo(np.int16).max)):
        raise ValueError(f"totals must lie in 0..{n_items * item_max}")
    counts = np.empty((len(totals), n_items), dtype=np.int8)
    order = np.argsort(totals.astype(np.int16), kind="stable")  # a radix sort on 16-bit keys
    starts = np.flatnonzero(np.diff(totals[order])) + 1
    for rows in np.split(order, starts) if len(order) else []:
        counts[rows] = rng.multivariate_hypergeometric(
            [item_max] * n_items, int(totals[rows[0]]), size=len(rows), method="count"
        )
    return counts


def text_column(codes: np.ndarray, labels: list[str]) -> pd.api.extensions.ExtensionArray:
    """``labels[codes]`` as a pandas string array (the ``str`` dtype of ``astype(str)``),
    decoded by pyarrow without a Python string object per cell."""
    dictionary = pa.array(labels, type=pa.large_string())
    decoded = pa.DictionaryArray.from_arrays(pa.array(codes), dictionary).dictionary_decode()
    return pd.array(decoded, dtype="str")


def add_mess(columns: dict[str, CodedColumn], n_rows: int, rng: np.random.Generator) -> list[dict]:
    """Add the faults a real export has to the coded text columns (``name -> (codes,
    labels)``, replaced in place); returns their descriptions."""
    picks = rng.choice(n_rows, 6, replace=False)
    notes = []

    def text(column: str, row: int) -> str:
        codes, labels = columns[column]
        return labels[codes[row]]

    def put(row: int, column: str, value: str, what: str) -> None:
        codes, labels = columns[column]
        if value not in labels:
            labels.append(value)
        codes[row] = labels.index(value)
        notes.append(
            {
                "patient": text("patient", row),
                "session": text("session", row),
                "column": column,
                "value": value,
                "fault": what,
            }
        )

    put(picks[0], "wai_05", "6", "out-of-range item (WAI-SR items are 1-5)")
    put(picks[1], "wai_09", "0", "out-of-range item (WAI-SR items are 1-5)")
    put(picks[2], "phq9_04", "4", "out-of-range item (PHQ-9 items are 0-3)")
    put(picks[3], "phq9_02", "missing", "text code for a missing value")
    put(picks[4], "gad7_03", "refused", "text in a numeric column")
    duplicate = picks[5]
    notes.append(
        {
            "patient": text("patient", duplicate),
            "session": text("session", duplicate),
            "column": None,
            "value": None,
            "fault": "exact duplicate row",
        }
    )
    # a post-treatment assessment exported with a text session code
    last = duplicate + 1 if duplicate + 1 < n_rows else 0
    notes.append(
        {
            "patient": text("patient", last),
            "session": "Post-Rx",
            "column": "session",
            "value": "Post-Rx",
            "fault": "text code in the session number column",
        }
    )
    # rows: ..., the duplicated row, its copy, the rest, then the post-treatment row
    order = np.concatenate([np.arange(duplicate + 1), [duplicate], np.arange(duplicate + 1, n_rows), [last]])
    for name, (codes, labels) in columns.items():
        columns[name] = (codes[order], labels)
    codes, labels = columns["session"]
    labels.append("Post-Rx")
    codes[-1] = len(labels) - 1
    return notes


def plain(value: Any) -> Any:
    """Make dataclass content YAML-safe (tuples -> lists).

    >>> plain({"therapies": ("CBT", "PDT"), "n": 3})
    {'therapies': ['CBT', 'PDT'], 'n': 3}
    """
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """``frame.to_csv(path, index=False, lineterminator="\\n")``: the same bytes, written by
    pyarrow when every column is text or integer (several times faster on the million-row
    scale data). Values that pandas would quote (a comma, quote or line break) make pyarrow
    refuse, and then pandas writes the file."""
    names = [str(name) for name in frame.columns]
    plain_names = len(names) > 1 and not any(set(name) & set(',"\r\n') for name in names)
    simple = all(
        isinstance(dtype, pd.StringDtype) or (isinstance(dtype, np.dtype) and dtype.kind in "iu")
        for dtype in frame.dtypes
    )
    if plain_names and simple:
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            with open(path, "wb") as handle:
                handle.write((",".join(names) + "\n").encode("utf-8"))
                pa_csv.write_csv(
                    table,
                    handle,
                    pa_csv.WriteOptions(include_header=False, quoting_style="none", eol="\n"),
                )
            return
        except pa.ArrowInvalid:
            pass
    frame.to_csv(path, index=False, lineterminator="\n")


# --------------------------------------------------------------------------- the second demo: another lab's format

LAB2_THERAPY = {"CBT": "Cognitive Behavioural Therapy", "PDT": "psychodynamic", "IPT": "Interpersonal Therapy"}
LAB2_DIAGNOSIS = {"depression": "MDD", "anxiety": "GAD"}
LAB2_CENTRE = {"S1": "Malmö", "S2": "Zürich", "S3": "Århus", "S4": "Liège"}
LAB2_SEX = {"female": "F", "male": "M"}
LAB2_MISSING = "-9"


def supplied_total(items: pd.DataFrame, max_missing: int) -> pd.Series:
    """A lab's own total: the item sum, prorated (n x mean of answered items, one decimal)
    when at most ``max_missing`` items are missing, else the missing code.

    >>> supplied_total(pd.DataFrame({"a": ["1", "2"], "b": ["2", ""], "c": ["3", ""]}), 1).tolist()
    ['6', '-9']
    """
    values = items.replace("", np.nan).astype(float)
    answered = values.notna().sum(axis=1)
    total = (values.mean(axis=1) * items.shape[1]).round(1)
    text = total.map(lambda v: f"{v:.1f}".removesuffix(".0"))
    return text.where(items.shape[1] - answered <= max_missing, LAB2_MISSING)


def lab2_client_ids(patients: pd.DataFrame) -> dict[str, str]:
    """The other lab's client id of each simulated patient id (P00012 -> K-0012)."""
    return {p: f"K-{int(p[1:]):04d}" for p in patients["patient"]}


def lab2_sessions(
    sessions: pd.DataFrame, patients: pd.DataFrame, client_id: dict[str, str], rng: np.random.Generator
) -> pd.DataFrame:
    """The session table in the other lab's columns and labels: totals instead of items, and session
    dates (weekly from a random intake date in 2024, +-1 day after the first session)."""
    n_patients = len(patients)
    intake = pd.Timestamp("2024-01-08") + pd.to_timedelta(rng.integers(0, 365, n_patients), unit="D")
    intake = pd.Series(intake, index=patients["patient"])
    session_number = sessions["session"].astype(int)
    jitter = rng.integers(-1, 2, len(sessions)) * (session_number > 1)
    dates = (
        intake.reindex(sessions["patient"]).to_numpy()
        + pd.to_timedelta(7 * (session_number - 1) + jitter, unit="D").to_numpy()
    )
    return pd.DataFrame(
        {
            "ClientID": sessions["patient"].map(client_id),
            "TherapistCode": "TH" + sessions["therapist"].str[1:],
            "Centre": sessions["site"].map(LAB2_CENTRE),
            "SessionNo": sessions["session"],
            "SessionDate": pd.Series(dates).dt.strftime("%d.%m.%Y").to_numpy(),
            "Treatment": sessions["therapy"].map(LAB2_THERAPY),
            "Diagnosis": sessions["condition"].map(LAB2_DIAGNOSIS),
            "WAI_total": supplied_total(sessions[WAI_ITEMS], 2),
            "PHQ9_total": supplied_total(sessions[PHQ9_ITEMS], 1),
            "GAD7_total": supplied_total(sessions[GAD7_ITEMS], 1),
        }
    )


def lab2_clients(patients: pd.DataFrame, client_id: dict[str, str], rng: np.random.Generator) -> pd.DataFrame:
    """The client table in the other lab's columns: an exact age drawn within the age band (the
    oldest band reaches 95, so some clients are over 89) and the planned number of sessions."""
    low = {"18-25": 18, "26-35": 26, "36-45": 36, "46-55": 46, "56-65": 56, "66+": 66}
    high = {"18-25": 25, "26-35": 35, "36-45": 45, "46-55": 55, "56-65": 65, "66+": 95}
    lows = patients["age_band"].map(low).to_numpy()
    highs = patients["age_band"].map(high).to_numpy()
    return pd.DataFrame(
        {
            "ClientID": patients["patient"].map(client_id),
            "Age": (lows + np.floor(rng.random(len(patients)) * (highs - lows + 1))).astype(int),
            "Gender": patients["sex"].map(LAB2_SEX),
            "Expectancy": patients["expectancy"],
            "PlannedSessions": patients["planned_sessions"],
        }
    )


def add_lab2_mess(export: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, list[dict]]:
    """The other lab's faults: out-of-range totals, a text code, a follow-up row with a text session
    number (appended) and a duplicated row.  Returns (export with the faults, their descriptions);
    the cells are changed in ``export`` itself."""
    picks = rng.choice(len(export), 5, replace=False)
    mess = []

    def put(row: int, column: str, value: str, fault: str) -> None:
        export.iloc[row, export.columns.get_loc(column)] = value
        mess.append(
            {
                "client": export.iloc[row]["ClientID"],
                "session": export.iloc[row]["SessionNo"],
                "column": column,
                "value": value,
                "fault": fault,
            }
        )

    put(picks[0], "PHQ9_total", "31", "out-of-range total (PHQ-9 totals are 0-27)")
    put(picks[1], "WAI_total", "72", "out-of-range total (WAI-SR totals are 12-60)")
    put(picks[2], "GAD7_total", "k.A.", "text in a numeric column ('keine Angabe')")
    follow_up = export.iloc[[picks[3]]].copy()
    follow_up.loc[:, "SessionNo"] = "FU"
    mess.append(
        {
            "client": follow_up.iloc[0]["ClientID"],
            "session": "FU",
            "column": "SessionNo",
            "value": "FU",
            "fault": "follow-up assessment exported with a text session code",
        }
    )
    duplicate = export.iloc[[picks[4]]]
    mess.append(
        {
            "client": duplicate.iloc[0]["ClientID"],
            "session": duplicate.iloc[0]["SessionNo"],
            "column": None,
            "value": None,
            "fault": "exact duplicate row",
        }
    )
    export = pd.concat(
        [export.iloc[: picks[4] + 1], duplicate, export.iloc[picks[4] + 1 :], follow_up], ignore_index=True
    )
    return export, mess


def lab2_export(
    sessions: pd.DataFrame, patients: pd.DataFrame, truth: dict, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The simulated trial (``alliance.simulate.simulate_trial``'s tables and truth) in the other lab's
    format: (sessions, clients, truth with the lab's format, its sample counts and its faults)."""
    client_id = lab2_client_ids(patients)
    export = lab2_sessions(sessions, patients, client_id, rng)
    clients = lab2_clients(patients, client_id, rng)
    export, mess = add_lab2_mess(export, rng)
    truth = {
        **truth,
        "lab_format": {
            "sessions": "therapy_sessions.csv: semicolon-separated, latin-1, dates dd.mm.yyyy",
            "clients": "clients.csv: semicolon-separated, latin-1",
            "scales": (
                "WAI_total is the WAI-SR total (12-60) = 12 x the WAI-SR mean score of the truth; "
                "PHQ9_total and GAD7_total are totals, so the POMP outcome is 100 x total / maximum"
            ),
            "dropout": "planned 16 sessions; a client whose last session is before 16 dropped out",
        },
        "sample": {**truth["sample"], "clients_over_89": int((clients["Age"] > 89).sum())},
        "mess": mess,
    }
    return export, clients, truth
