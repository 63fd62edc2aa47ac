"""Simulate a de-identified multi-site psychotherapy trial with known truth.

The demo data under ``data/raw/demo/`` are made by :func:`write_demo`, and a test
regenerates them byte for byte from the seed. The same simulator makes the small
datasets of the end-to-end tests and the large ones of the benchmarks.

Data-generating model (outcome on the POMP scale, percent of maximum possible,
so that PHQ-9 and GAD-7 share one scale; alliance is the WAI-SR mean score, 1-5)::

    alliance_latent[t] = a0 + a_growth[therapy]*(t-1) + a_exp*(expectancy-5)
                         + u_therapist + v_patient + e_session
    wai items          = clip(round(alliance_latent + item noise), 1, 5)
    wai                = mean of the 12 observed items (before the mess is added)

    y[t] = b0 + b_session*(t-1)
           + b_within[therapy] * wai_cwc          (within patient)
           + b_patient         * wai_pm_cwt       (patient within therapist)
           + b_therapist       * wai_tm_c         (between therapists)
           + r_therapist + r0_patient + r1_patient*wai_cwc + e

The centred alliance terms are computed from the observed alliance of the sessions
the patient attended (methods.md section 4), exactly as the pipeline computes them,
so the fixed effects above are what the models estimate. Outcome and alliance are
linked within the same session (the symptom score is rated before the session and
the alliance after it); the simulator states an association, not a temporal order.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import yaml

WAI_ITEMS = [f"wai_{k:02d}" for k in range(1, 13)]
PHQ9_ITEMS = [f"phq9_{k:02d}" for k in range(1, 10)]
GAD7_ITEMS = [f"gad7_{k:02d}" for k in range(1, 8)]
DEMO_SEED = 20261125
AGE_BANDS = ("18-25", "26-35", "36-45", "46-55", "56-65", "66+")
#: rows per block when drawing the per-cell random numbers (same stream as one draw; bounds memory)
_BLOCK_ROWS = 1 << 16


@dataclass(frozen=True)
class TrialDesign:
    """Known truth and design of a simulated trial (defaults: the bundled demo)."""

    n_therapists: int = 60
    patients_per_therapist: int = 10
    n_sites: int = 4
    max_sessions: int = 16
    therapies: tuple[str, ...] = ("CBT", "PDT", "IPT")
    conditions: tuple[str, ...] = ("depression", "anxiety")
    primary_measure: dict[str, str] = field(
        default_factory=lambda: {"depression": "PHQ-9", "anxiety": "GAD-7"}
    )
    # alliance, WAI-SR mean-score units (1-5)
    alliance_intercept: float = 3.55
    alliance_growth: dict[str, float] = field(
        default_factory=lambda: {"CBT": 0.030, "PDT": 0.020, "IPT": 0.025}
    )
    alliance_expectancy_effect: float = 0.05
    alliance_therapist_sd: float = 0.20
    alliance_patient_sd: float = 0.40
    alliance_session_sd: float = 0.30
    wai_item_noise_sd: float = 0.55
    # outcome, POMP units (0-100) per WAI-SR mean-score point
    outcome_intercept: float = 58.0
    outcome_session_slope: float = -1.6
    within_effect: dict[str, float] = field(
        default_factory=lambda: {"CBT": -6.0, "PDT": -10.0, "IPT": -8.0}
    )
    patient_between_effect: float = -6.0
    therapist_between_effect: float = -14.0
    outcome_therapist_sd: float = 3.5
    outcome_patient_sd: float = 10.0
    within_slope_sd: float = 2.5
    outcome_residual_sd: float = 7.0
    # secondary (non-primary) symptom measure: 0.7 * primary + 12 + noise, POMP
    secondary_loading: float = 0.7
    secondary_noise_sd: float = 8.0
    # attendance
    dropout_hazard_logit: float = -3.3
    dropout_alliance_effect: float = -1.2
    missed_session_probability: float = 0.05
    missing_item_probability: float = 0.01
    add_mess: bool = True

    @property
    def n_patients(self) -> int:
        return self.n_therapists * self.patients_per_therapist


def _pomp_to_total(pomp: np.ndarray, n_items: int, item_max: int) -> np.ndarray:
    total_max = n_items * item_max
    return np.clip(np.rint(pomp / 100.0 * total_max), 0, total_max).astype(int)


def _split_total_into_items(
    totals: np.ndarray,
    n_items: int,
    item_max: int,
    rng: np.random.Generator,
    block_rows: int = _BLOCK_ROWS,
) -> np.ndarray:
    """Spread each total over items (0..item_max) at random: choose `total` of the
    n_items*item_max unit slots without replacement and count slots per item.

    The chosen slots are those with the `total` smallest of one uniform key per slot.
    Keys are drawn in blocks of rows (the same random stream as one draw of all rows)
    and each row's (total+1)-th smallest key is the cut, so that memory stays bounded.
    """
    n_slots = n_items * item_max
    counts = np.empty((len(totals), n_items), dtype=np.int8)
    for start in range(0, len(totals), block_rows):
        block = totals[start : start + block_rows]
        keys = rng.random((len(block), n_slots))
        ordered = np.empty((len(block), n_slots + 1))
        ordered[:, :n_slots] = np.sort(keys, axis=1)
        ordered[:, n_slots] = np.inf
        cut = np.take_along_axis(ordered, block[:, None].astype(np.intp), axis=1)
        chosen = (keys < cut).reshape(len(block), n_items, item_max).view(np.int8)
        counts[start : start + len(block)] = sum(chosen[:, :, k] for k in range(item_max))
    return counts


def _text_column(codes: np.ndarray, labels: list[str]) -> pd.api.extensions.ExtensionArray:
    """``labels[codes]`` as a pandas string array (the ``str`` dtype of ``astype(str)``),
    decoded by pyarrow without a Python string object per cell."""
    dictionary = pa.array(labels, type=pa.large_string())
    decoded = pa.DictionaryArray.from_arrays(pa.array(codes), dictionary).dictionary_decode()
    return pd.array(decoded, dtype="str")


def simulate_trial(
    design: TrialDesign = TrialDesign(), seed: int = DEMO_SEED
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Simulate one trial. Returns (sessions, patients, truth).

    ``sessions`` has one row per attended session with the item responses as
    strings, as a lab's export would hold them (mess included when
    ``design.add_mess``); ``patients`` has baseline covariates and end status;
    ``truth`` holds the design and the realised sample quantities.

    Example
    -------
    >>> sessions, patients, truth = simulate_trial(TrialDesign(n_therapists=6), seed=1)
    >>> sorted(truth["within_effect_by_therapy"])
    ['CBT', 'IPT', 'PDT']
    """
    rng = np.random.default_rng(seed)
    n_t, n_p, max_s = design.n_therapists, design.n_patients, design.max_sessions

    # --- therapists: site and the therapy they deliver (a therapist-level variable)
    therapist_ids = [f"T{k + 1:03d}" for k in range(n_t)]
    therapist_site = [f"S{(k % design.n_sites) + 1}" for k in range(n_t)]
    therapist_therapy_code = np.arange(n_t) % len(design.therapies)
    therapist_therapy = np.array(design.therapies)[therapist_therapy_code]
    alliance_u = rng.normal(0, design.alliance_therapist_sd, n_t)
    outcome_u = rng.normal(0, design.outcome_therapist_sd, n_t)

    # --- patients
    patient_therapist = np.repeat(np.arange(n_t), design.patients_per_therapist)
    patient_ids = [f"P{k + 1:05d}" for k in range(n_p)]
    condition = rng.choice(np.array(design.conditions), n_p)
    expectancy = rng.integers(0, 11, n_p)
    age_band = rng.choice(
        np.array(AGE_BANDS), n_p, p=[0.2, 0.25, 0.2, 0.17, 0.12, 0.06]
    )
    sex = rng.choice(np.array(["female", "male"]), n_p, p=[0.64, 0.36])
    alliance_v = rng.normal(0, design.alliance_patient_sd, n_p)
    outcome_r0 = rng.normal(0, design.outcome_patient_sd, n_p)
    outcome_r1 = rng.normal(0, design.within_slope_sd, n_p)

    # dropout: a constant per-session hazard, higher for patients with weak alliance
    hazard = 1.0 / (
        1.0
        + np.exp(
            -(design.dropout_hazard_logit + design.dropout_alliance_effect * alliance_v)
        )
    )
    n_sessions = np.minimum(rng.geometric(hazard), max_s)
    end_reason = np.where(n_sessions >= max_s, "completed", "dropout")

    # --- session rows (long format); missed sessions leave gaps in session numbers
    row_patient = np.repeat(np.arange(n_p), n_sessions)
    first_row = np.cumsum(n_sessions) - n_sessions
    session = np.arange(len(row_patient)) - first_row[row_patient] + 1
    is_last = session == n_sessions[row_patient]
    missed = (
        (session > 1)
        & ~is_last
        & (rng.random(len(session)) < design.missed_session_probability)
    )
    row_patient, session = row_patient[~missed], session[~missed]
    row_therapist = patient_therapist[row_patient]
    row_therapy_code = therapist_therapy_code[row_therapist]
    n_rows = len(session)

    growth = np.array([design.alliance_growth[t] for t in design.therapies])[row_therapy_code]
    alliance_latent = (
        design.alliance_intercept
        + growth * (session - 1)
        + design.alliance_expectancy_effect * (expectancy[row_patient] - 5)
        + alliance_u[row_therapist]
        + alliance_v[row_patient]
        + rng.normal(0, design.alliance_session_sd, n_rows)
    )
    # clip(rint(latent + item noise), 1, 5), computed in place
    wai_values = rng.normal(0, design.wai_item_noise_sd, (n_rows, len(WAI_ITEMS)))
    wai_values += alliance_latent[:, None]
    np.clip(np.rint(wai_values, out=wai_values), 1, 5, out=wai_values)
    wai_items = wai_values.astype(np.int8)
    del wai_values
    wai = wai_items.mean(axis=1)

    # centring exactly as methods.md section 4 (patients weigh 1 in therapist means)
    frame = pd.DataFrame(
        {"patient": row_patient, "therapist": row_therapist, "wai": wai}
    )
    wai_pm = frame.groupby("patient")["wai"].transform("mean").to_numpy()
    patient_means = frame.groupby("patient").agg(
        wai_pm=("wai", "mean"), therapist=("therapist", "first")
    )
    therapist_means = patient_means.groupby("therapist")["wai_pm"].mean()
    grand_mean = patient_means["wai_pm"].mean()
    wai_tm = therapist_means.reindex(row_therapist).to_numpy()
    wai_cwc = wai - wai_pm
    wai_pm_cwt = wai_pm - wai_tm
    wai_tm_c = wai_tm - grand_mean

    b_within = np.array([design.within_effect[t] for t in design.therapies])[row_therapy_code]
    outcome_pomp = (
        design.outcome_intercept
        + design.outcome_session_slope * (session - 1)
        + b_within * wai_cwc
        + design.patient_between_effect * wai_pm_cwt
        + design.therapist_between_effect * wai_tm_c
        + outcome_u[row_therapist]
        + outcome_r0[row_patient]
        + outcome_r1[row_patient] * wai_cwc
        + rng.normal(0, design.outcome_residual_sd, n_rows)
    )
    secondary_pomp = (
        design.secondary_loading * outcome_pomp
        + 12.0
        + rng.normal(0, design.secondary_noise_sd, n_rows)
    )
    depression = (condition == "depression")[row_patient]
    phq_pomp = np.where(depression, outcome_pomp, secondary_pomp)
    gad_pomp = np.where(depression, secondary_pomp, outcome_pomp)
    phq_items = _split_total_into_items(_pomp_to_total(phq_pomp, 9, 3), 9, 3, rng)
    gad_items = _split_total_into_items(_pomp_to_total(gad_pomp, 7, 3), 7, 3, rng)

    # The export's columns are all text. Each is held as codes into its labels (item k
    # is label str(k), a missing item the empty label) and decoded to strings once, after
    # the mess: no Python string per cell, so the million-row scale data stays fast and small.
    item_names = WAI_ITEMS + PHQ9_ITEMS + GAD7_ITEMS
    item_codes = np.concatenate([wai_items, phq_items, gad_items], axis=1)
    del wai_items, phq_items, gad_items
    item_labels = ["0", "1", "2", "3", "4", "5", ""]  # WAI-SR items are 1-5, PHQ/GAD 0-3
    for start in range(0, n_rows, _BLOCK_ROWS):  # one draw per cell, in blocks of rows
        block = item_codes[start : start + _BLOCK_ROWS]
        block[rng.random(block.shape) < design.missing_item_probability] = len(item_labels) - 1
    columns = {
        "site": (row_therapist, therapist_site),
        "therapist": (row_therapist, therapist_ids),
        "patient": (row_patient, patient_ids),
        "session": (session, [str(k) for k in range(max_s + 1)]),
        "therapy": (row_therapist, [str(t) for t in therapist_therapy]),
        "condition": (row_patient, [str(c) for c in condition]),
    }
    for j, name in enumerate(item_names):
        columns[name] = (item_codes[:, j], list(item_labels))

    patients = pd.DataFrame(
        {
            "patient": patient_ids,
            "age_band": age_band,
            "sex": sex,
            "expectancy": expectancy,
            "planned_sessions": max_s,
            "end_reason": end_reason,
        }
    )

    mess = _add_mess(columns, n_rows, rng) if design.add_mess else []
    sessions = pd.DataFrame(
        {name: _text_column(codes, labels) for name, (codes, labels) in columns.items()}
    )
    del columns, item_codes

    patient_slopes = pd.Series(b_within, index=row_patient).groupby(level=0).first()
    truth = {
        "seed": seed,
        "design": _plain(asdict(design)),
        "scales": {
            "alliance": "WAI-SR mean score (1-5), mean of the 12 items",
            "outcome": "POMP (percent of maximum possible, 0-100) of the condition's primary measure",
            "primary_measure": dict(design.primary_measure),
        },
        "within_effect_by_therapy": dict(design.within_effect),
        "within_effect_population": float(np.mean(list(design.within_effect.values()))),
        "within_effect_sample_patient_mean": round(float(patient_slopes.mean()), 6),
        "patient_between_effect": design.patient_between_effect,
        "therapist_between_effect": design.therapist_between_effect,
        "within_effect_by_condition": "no moderation by condition (same as by therapy)",
        "sample": {
            "therapists": int(n_t),
            "patients": int(n_p),
            "session_rows": int(n_rows),
            "completed": int((end_reason == "completed").sum()),
            "dropout": int((end_reason == "dropout").sum()),
        },
        "mess": [m for m in mess],
    }
    return sessions, patients, truth


def _add_mess(
    columns: dict[str, tuple[np.ndarray, list[str]]], n_rows: int, rng: np.random.Generator
) -> list[dict]:
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
    order = np.concatenate(
        [np.arange(duplicate + 1), [duplicate], np.arange(duplicate + 1, n_rows), [last]]
    )
    for name, (codes, labels) in columns.items():
        columns[name] = (codes[order], labels)
    codes, labels = columns["session"]
    labels.append("Post-Rx")
    codes[-1] = len(labels) - 1
    return notes


def _plain(value):
    """Make dataclass content YAML-safe (tuples -> lists)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """``frame.to_csv(path, index=False, lineterminator="\\n")``: the same bytes, written by
    pyarrow when every column is text or integer (several times faster on the million-row
    scale data). Values that pandas would quote (a comma, quote or line break) make pyarrow
    refuse, and then pandas writes the file."""
    names = [str(name) for name in frame.columns]
    plain = len(names) > 1 and not any(set(name) & set(',"\r\n') for name in names)
    simple = all(
        isinstance(dtype, pd.StringDtype) or (isinstance(dtype, np.dtype) and dtype.kind in "iu")
        for dtype in frame.dtypes
    )
    if plain and simple:
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


def write_trial(
    outdir: Path | str, design: TrialDesign = TrialDesign(), seed: int = DEMO_SEED
) -> dict[str, str]:
    """Simulate and write ``sessions.csv``, ``patients.csv`` and ``TRUTH.yaml``.

    Returns the SHA-256 of each written file.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    sessions, patients, truth = simulate_trial(design, seed)
    _write_csv(sessions, outdir / "sessions.csv")
    _write_csv(patients, outdir / "patients.csv")
    header = (
        "# Known truth of the simulated demo trial (alliance.simulate).\n"
        "# Regenerate: python -m alliance.simulate --out data/raw/demo\n"
    )
    (outdir / "TRUTH.yaml").write_text(
        header + yaml.safe_dump(truth, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return {
        name: hashlib.sha256((outdir / name).read_bytes()).hexdigest()
        for name in ("sessions.csv", "patients.csv", "TRUTH.yaml")
    }


# --------------------------------------------------------------------------- second demo: another lab's export

LAB2_SEED = 20261126
#: The second demo's design: the same data-generating model, a smaller trial, its own faults.
LAB2_DESIGN = TrialDesign(n_therapists=45, patients_per_therapist=8, add_mess=False)
LAB2_THERAPY = {"CBT": "Cognitive Behavioural Therapy", "PDT": "psychodynamic", "IPT": "Interpersonal Therapy"}
LAB2_DIAGNOSIS = {"depression": "MDD", "anxiety": "GAD"}
LAB2_CENTRE = {"S1": "Malmö", "S2": "Zürich", "S3": "Århus", "S4": "Liège"}
LAB2_SEX = {"female": "F", "male": "M"}
LAB2_MISSING = "-9"


def _supplied_total(items: pd.DataFrame, max_missing: int) -> pd.Series:
    """A lab's own total: the item sum, prorated (n x mean of answered items, one decimal)
    when at most ``max_missing`` items are missing, else the missing code."""
    values = items.replace("", np.nan).astype(float)
    answered = values.notna().sum(axis=1)
    total = (values.mean(axis=1) * items.shape[1]).round(1)
    text = total.map(lambda v: f"{v:.1f}".removesuffix(".0"))
    return text.where(items.shape[1] - answered <= max_missing, LAB2_MISSING)


def lab2_tables(
    design: TrialDesign = LAB2_DESIGN, seed: int = LAB2_SEED
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The simulated trial as another lab would export it: (sessions, clients, truth).

    Other column names (``ClientID``, ``TherapistCode``, ``SessionNo``, ``Treatment``,
    ``Diagnosis``, ``Centre``), other labels ("Cognitive Behavioural Therapy",
    "MDD" ...), totals instead of items (``WAI_total`` 12-60 = 12 x the WAI-SR mean,
    ``PHQ9_total``, ``GAD7_total``; prorated like the registry's rule, ``-9`` when
    too many items are missing), session dates (dd.mm.yyyy) instead of day counts,
    exact ages (some over 89) and a planned number of sessions instead of an end
    reason. Faults of its own are listed in ``truth["mess"]``.
    """
    sessions, patients, truth = simulate_trial(design, seed)
    rng = np.random.default_rng(seed + 1)  # a separate stream: the trial itself is as simulated

    n_patients = len(patients)
    intake = pd.Timestamp("2024-01-08") + pd.to_timedelta(rng.integers(0, 365, n_patients), unit="D")
    intake = pd.Series(intake, index=patients["patient"])
    session_number = sessions["session"].astype(int)
    jitter = rng.integers(-1, 2, len(sessions)) * (session_number > 1)
    dates = intake.reindex(sessions["patient"]).to_numpy() + pd.to_timedelta(
        7 * (session_number - 1) + jitter, unit="D"
    ).to_numpy()

    client_id = {p: f"K-{int(p[1:]):04d}" for p in patients["patient"]}
    export = pd.DataFrame(
        {
            "ClientID": sessions["patient"].map(client_id),
            "TherapistCode": "TH" + sessions["therapist"].str[1:],
            "Centre": sessions["site"].map(LAB2_CENTRE),
            "SessionNo": sessions["session"],
            "SessionDate": pd.Series(dates).dt.strftime("%d.%m.%Y").to_numpy(),
            "Treatment": sessions["therapy"].map(LAB2_THERAPY),
            "Diagnosis": sessions["condition"].map(LAB2_DIAGNOSIS),
            "WAI_total": _supplied_total(sessions[WAI_ITEMS], 2),
            "PHQ9_total": _supplied_total(sessions[PHQ9_ITEMS], 1),
            "GAD7_total": _supplied_total(sessions[GAD7_ITEMS], 1),
        }
    )

    low = {"18-25": 18, "26-35": 26, "36-45": 36, "46-55": 46, "56-65": 56, "66+": 66}
    high = {"18-25": 25, "26-35": 35, "36-45": 45, "46-55": 55, "56-65": 65, "66+": 95}
    lows = patients["age_band"].map(low).to_numpy()
    highs = patients["age_band"].map(high).to_numpy()
    clients = pd.DataFrame(
        {
            "ClientID": patients["patient"].map(client_id),
            "Age": (lows + np.floor(rng.random(n_patients) * (highs - lows + 1))).astype(int),
            "Gender": patients["sex"].map(LAB2_SEX),
            "Expectancy": patients["expectancy"],
            "PlannedSessions": patients["planned_sessions"],
        }
    )

    picks = rng.choice(len(export), 5, replace=False)
    mess = []

    def put(row: int, column: str, value: str, fault: str) -> None:
        export.iloc[row, export.columns.get_loc(column)] = value
        mess.append(
            {"client": export.iloc[row]["ClientID"], "session": export.iloc[row]["SessionNo"],
             "column": column, "value": value, "fault": fault}
        )

    put(picks[0], "PHQ9_total", "31", "out-of-range total (PHQ-9 totals are 0-27)")
    put(picks[1], "WAI_total", "72", "out-of-range total (WAI-SR totals are 12-60)")
    put(picks[2], "GAD7_total", "k.A.", "text in a numeric column ('keine Angabe')")
    follow_up = export.iloc[[picks[3]]].copy()
    follow_up.loc[:, "SessionNo"] = "FU"
    mess.append({"client": follow_up.iloc[0]["ClientID"], "session": "FU", "column": "SessionNo",
                 "value": "FU", "fault": "follow-up assessment exported with a text session code"})
    duplicate = export.iloc[[picks[4]]]
    mess.append({"client": duplicate.iloc[0]["ClientID"], "session": duplicate.iloc[0]["SessionNo"],
                 "column": None, "value": None, "fault": "exact duplicate row"})
    export = pd.concat(
        [export.iloc[: picks[4] + 1], duplicate, export.iloc[picks[4] + 1 :], follow_up], ignore_index=True
    )

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


def write_lab2_trial(outdir: Path | str, seed: int = LAB2_SEED, design: TrialDesign = LAB2_DESIGN) -> dict[str, str]:
    """Write the second demo (:func:`lab2_tables`): ``therapy_sessions.csv``, ``clients.csv``
    (semicolon-separated, latin-1) and ``TRUTH.yaml``. Returns the SHA-256 of each file."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    sessions, clients, truth = lab2_tables(design, seed)
    for frame, name in ((sessions, "therapy_sessions.csv"), (clients, "clients.csv")):
        frame.to_csv(outdir / name, index=False, sep=";", encoding="latin-1", lineterminator="\n")
    header = (
        "# Known truth of the second simulated demo trial, exported in another lab's format\n"
        "# (alliance.simulate.write_lab2_trial). Regenerate:\n"
        "#   python -m alliance.simulate --lab2 --out data/raw/demo_lab2\n"
    )
    (outdir / "TRUTH.yaml").write_text(
        header + yaml.safe_dump(truth, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    return {
        name: hashlib.sha256((outdir / name).read_bytes()).hexdigest()
        for name in ("therapy_sessions.csv", "clients.csv", "TRUTH.yaml")
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/raw/demo")
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--therapists", type=int, default=TrialDesign.n_therapists)
    parser.add_argument(
        "--patients-per-therapist", type=int, default=TrialDesign.patients_per_therapist
    )
    parser.add_argument(
        "--lab2", action="store_true",
        help="write the second demo (another lab's format, seed %d) instead" % LAB2_SEED,
    )
    args = parser.parse_args(argv)
    if args.lab2:
        seed = LAB2_SEED if args.seed == DEMO_SEED else args.seed
        for name, digest in write_lab2_trial(args.out, seed).items():
            print(f"{digest}  {Path(args.out) / name}")
        return
    design = TrialDesign(
        n_therapists=args.therapists,
        patients_per_therapist=args.patients_per_therapist,
    )
    for name, digest in write_trial(args.out, design, args.seed).items():
        print(f"{digest}  {Path(args.out) / name}")


if __name__ == "__main__":
    main()
