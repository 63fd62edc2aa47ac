"""``make init``: a commented draft config from a lab's export, and the check of what is left to fill.

:func:`read_export` reads the export with the intake's own reader (every format it reads),
:func:`build_draft` guesses the config from it (alliance.intake.draft_guess: columns from their
names, instruments from their item or score columns, the labels of the therapy and condition
columns, missing codes, a date column) and :func:`render_draft` writes it as YAML with comments,
built from validated names and from lab strings quoted by ``yaml.safe_dump`` (no template engine).

A key it cannot guess is written as ``null`` with a ``# TODO(init): ...`` comment: null is rejected
by the config schema wherever a value is required, and :func:`unfilled_keys` names every such key
at once (the schema's validation stops at the first), so ``make clean-data`` on the draft says
exactly what remains (alliance.intake.unfilled runs before it).

    python -m alliance.intake.draft_config DATA [--patients FILE] [--out FILE]
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from alliance.intake.draft_guess import (
    PATIENT_SYNONYMS,
    SESSION_SYNONYMS,
    GuessedMeasure,
    distinct_labels,
    found_missing_codes,
    guess_columns,
    guess_date_column,
    guess_measures,
)
from alliance.intake.findings import SOURCE_ROW, InputError, InputErrors
from alliance.intake.formats import infer_format
from alliance.intake.readers import read_table
from alliance.intake.registry import Instrument, load_registry
from alliance.intake.unfilled import MARK, unfilled_keys
from alliance.schema import config_schema

__all__ = [
    "Export",
    "Draft",
    "scalar",
    "sniff_text_options",
    "read_export",
    "build_draft",
    "render_draft",
    "draft_path",
    "main",
]

#: the design columns a draft always maps: marked TODO(init) when no header name says which it is
REQUIRED_COLUMNS = ("patient", "therapist", "session", "therapy", "condition")
#: design columns that may come from the patients file instead (dataset.patient_columns)
PATIENT_DESIGN_COLUMNS = ("therapy", "condition", "site", "study")
_WHAT = {
    "patient": "the patient (client) id",
    "therapist": "the therapist id (or delete this key for a design without therapists)",
    "session": "the session number",
    "therapy": "the therapy type (here or under patient_columns)",
    "condition": "the condition, the diagnosis (here or under patient_columns)",
}
#: model keys that name canonical labels (reference levels, moderators, strata): such models wait
_LABEL_KEYS = ("categorical", "moderation", "strata")


def scalar(value: Any) -> str:
    """``value`` as one line of YAML (quoted by ``yaml.safe_dump`` when needed, never multi-line).

    >>> scalar("Cognitive Behavioural Therapy"), scalar("-9"), scalar("a: b"), scalar("x\\ny"), scalar(None)
    ('Cognitive Behavioural Therapy', "'-9'", "'a: b'", '"x\\\\ny"', 'null')
    """

    def dump(**style: Any) -> str:
        text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**9, **style)
        return text.removesuffix("\n").removesuffix("\n...").removesuffix("\n")

    text = dump()
    return dump(default_style='"') if "\n" in text else text


def sniff_text_options(raw: bytes, fmt: str) -> dict[str, str]:
    """The encoding (utf-8 when the bytes decode, else cp1252 or latin-1) and the delimiter (the
    most frequent of , ; tab | in the header line) of a csv or tsv file."""
    try:
        text = raw.decode("utf-8-sig")
        encoding = "utf-8"
    except UnicodeDecodeError:
        encoding = "cp1252" if re.search(rb"[\x80-\x9f]", raw) else "latin-1"
        text = raw.decode(encoding, errors="replace")
    header = text.splitlines()[0] if text else ""
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    delimiter = max(counts, key=counts.get) if max(counts.values()) else ("\t" if fmt == "tsv" else ",")
    return {"encoding": encoding, "delimiter": delimiter}


@dataclass(frozen=True)
class Export:
    """One file of the export: how to read it, and its cells with value labels applied (``labelled``)
    and with SPSS codes kept as numbers (``numeric``; the same frame for other formats)."""

    path: str
    options: dict[str, str]
    labelled: pd.DataFrame
    numeric: pd.DataFrame

    @property
    def names(self) -> list[str]:
        return [str(c) for c in self.labelled.columns]


def read_export(path: str) -> Export:
    """Read a lab's file with the intake's reader (nothing turned into missing), its csv options sniffed."""
    fmt = infer_format(Path(path), None)
    options: dict[str, str] = {"format": fmt}
    if fmt in ("csv", "tsv") and Path(path).is_file():
        options.update(sniff_text_options(Path(path).read_bytes()[: 1 << 16], fmt))
    reader = {k: v for k, v in options.items() if k != "format"}
    labelled, meta = read_table(path, format=fmt, missing_codes=(), **reader)
    labelled = labelled.drop(columns=[SOURCE_ROW])
    numeric = labelled
    if fmt == "spss" and meta.get("value_labels"):
        numeric, _ = read_table(path, format=fmt, missing_codes=(), keep_codes=list(meta["value_labels"]))
        numeric = numeric.drop(columns=[SOURCE_ROW])
    return Export(path, options, labelled, numeric)


@dataclass(frozen=True)
class Draft:
    """Everything ``make init`` guessed from the export (None: not guessed)."""

    name: str
    sessions: Export
    patients: Export | None
    columns: dict[str, str]
    patient_columns: dict[str, str]
    labels: dict[str, list[str] | None]
    missing_codes: list[str]
    measures: dict[str, GuessedMeasure]
    date: tuple[str, str | None, list[str]] | None
    models: list[dict]
    dropped_models: list[str]


def _measure_keys(measures: list[GuessedMeasure], registry: dict[str, Instrument]) -> dict[str, GuessedMeasure]:
    """Key in dataset.measures of each measure: ``alliance`` for the first alliance instrument, else
    the instrument id in lower case without punctuation (``phq9``); a second of a kind gets ``_2``."""
    keyed: dict[str, GuessedMeasure] = {}
    for measure in measures:
        alliance = registry[measure.instrument].construct == "alliance" and "alliance" not in keyed
        key = "alliance" if alliance else re.sub(r"[^a-z0-9]", "", measure.instrument.lower())
        key = key if re.match(r"^[a-z]", key) else f"m{key}"
        base, n = key, 2
        while key in keyed:
            key, n = f"{base}_{n}", n + 1
        keyed[key] = measure
    return keyed


def dataset_name(path: str) -> str:
    """The dataset's name: the folder of the file under data/raw/ (``demo_lab2``), else its stem."""
    file = Path(path)
    folder = file.parent.name
    name = folder if folder and folder not in (".", "raw", "data") else file.stem
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "my_lab"


def build_draft(
    sessions: Export, patients: Export | None, registry: dict[str, Instrument], models: list[dict]
) -> Draft:
    """The guesses of a draft config from the export's files (see the module docstring)."""
    missing = found_missing_codes(sessions.numeric)
    if patients is not None:
        missing += [c for c in found_missing_codes(patients.numeric) if c not in missing]
    measures = _measure_keys(guess_measures(sessions.numeric, registry, set(missing)), registry)
    taken = {c for m in measures.values() for c in m.columns}
    columns = guess_columns(sessions.names, SESSION_SYNONYMS, taken)
    date = None
    if "days_since_intake" not in columns:
        date = guess_date_column(sessions.labelled, taken | set(columns.values()), set(missing))
    patient_columns: dict[str, str] = {}
    if patients is not None:
        # a design column the sessions file lacks may be the patients file's (one value per patient)
        design = {c: SESSION_SYNONYMS[c] for c in PATIENT_DESIGN_COLUMNS if c not in columns}
        patient_columns = guess_columns(patients.names, {**PATIENT_SYNONYMS, **design})
        if "patient" not in patient_columns and columns.get("patient") in patients.names:
            patient_columns = {"patient": columns["patient"], **patient_columns}
    labels: dict[str, list[str] | None] = {}
    for kind in ("therapy", "condition"):
        if kind in columns:
            labels[kind] = distinct_labels(sessions.labelled[columns[kind]], set(missing))
        elif kind in patient_columns:
            labels[kind] = distinct_labels(patients.labelled[patient_columns[kind]], set(missing))
        else:
            labels[kind] = None
    kept = [m for m in models if not any(k in m for k in _LABEL_KEYS)]
    dropped = [m["name"] for m in models if any(k in m for k in _LABEL_KEYS)]
    return Draft(
        dataset_name(sessions.path),
        sessions,
        patients,
        columns,
        patient_columns,
        labels,
        missing,
        measures,
        date,
        kept,
        dropped,
    )


def _table_lines(export: Export) -> list[str]:
    """The ``sessions:`` / ``patients:`` entry of a file (its path and how it was read)."""
    lines = [f"    path: {scalar(export.path)}", f"    format: {export.options['format']}"]
    for key in ("delimiter", "encoding"):
        if key in export.options:
            lines.append(f"    {key}: {scalar(export.options[key])}")
    return lines


def _columns_lines(draft: Draft) -> list[str]:
    """``columns:``: the guessed mapping, a TODO for every required column not found, and the
    columns left unmapped."""
    lines = ["  columns:                  # canonical name: your column in the sessions file (guessed from the names)"]
    for canonical in REQUIRED_COLUMNS:
        if canonical in draft.columns:
            lines.append(f"    {canonical}: {scalar(draft.columns[canonical])}")
        elif canonical not in draft.patient_columns:  # mapped in the patients file: nothing here
            lines.append(f"    {canonical}: null   # {MARK}: your column of {_WHAT[canonical]}; no header name says it")
    lines += [f"    {c}: {scalar(lab)}" for c, lab in draft.columns.items() if c not in REQUIRED_COLUMNS]
    used = set(draft.columns.values()) | {c for m in draft.measures.values() for c in m.columns}
    if draft.date:
        used.add(draft.date[0])
    unmapped = [n for n in draft.sessions.names if n not in used]
    if unmapped:
        lines.append("  # columns of the sessions file not read (a direct identifier among them stops the run):")
        lines.append("  #   " + ", ".join(scalar(n) for n in unmapped))
    if draft.patients is not None:
        lines.append("  patient_columns:          # canonical name: your column in the patients file")
        if "patient" not in draft.patient_columns:
            lines.append(f"    patient: null   # {MARK}: your column of the patient id in the patients file")
        lines += [f"    {c}: {scalar(lab)}" for c, lab in draft.patient_columns.items()]
    return lines


def _labels_lines(draft: Draft) -> list[str]:
    """``labels:``: always to fill in, with every spelling found in the data listed below its kind."""
    lines = [
        "  labels:",
        f"    # {MARK}: group the spellings of your data under canonical labels, the names the",
        '    # results use (and the models\' reference levels), e.g. CBT: ["Cognitive Behavioural Therapy", "CBT"]',
    ]
    for kind in ("therapy", "condition"):
        found = draft.labels[kind]
        if found is None:
            lines.append(f"    {kind}: null   # {MARK}: map dataset.columns.{kind} first, then its spellings")
            continue
        in_sessions = kind in draft.columns
        column = scalar(draft.columns[kind] if in_sessions else draft.patient_columns[kind])
        where = "" if in_sessions else " of the patients file"
        lines.append(f"    {kind}: null   # {MARK}: the {len(found)} spelling(s) of column {column}{where}:")
        lines += [f"    #   - {scalar(spelling)}" for spelling in found]
    return lines


def _measures_lines(draft: Draft, registry: dict[str, Instrument]) -> list[str]:
    """``measures:``: each instrument found, with its items template or score column."""
    if not draft.measures:
        return [f"  measures: null   # {MARK}: no item or score columns of a registry instrument were found"]
    lines = [
        "  measures:                 # found from the item or score columns; rater and timing are assumed: check them"
    ]
    for key, m in draft.measures.items():
        inst = registry[m.instrument]
        if m.items is not None:
            found = f"{len(m.columns)} item columns {scalar(m.columns[0])} .. {scalar(m.columns[-1])}, answers {inst.item_min:g}-{inst.item_max:g}"
        else:
            low, high = inst.score_range("mean" if m.score == "mean" else "total")
            found = f"a {'mean' if m.score == 'mean' else 'total'} score {low:g}-{high:g}"
        also = f"; also fits {', '.join(m.also_fits)}: check" if m.also_fits else ""
        lines += [f"    {key}:", f"      instrument: {m.instrument}   # {found}{also}"]
        if m.items is not None:
            items = m.items if isinstance(m.items, str) else list(m.items)
            lines.append(f"      items: {scalar(items)}")
        else:
            lines += [f"      total: {scalar(m.total)}", f"      score: {m.score}"]
        timing = "after session" if inst.construct == "alliance" else "before session"
        lines += ["      rater: patient", f"      timing: {timing}"]
    return lines


def _analysis_lines(draft: Draft, registry: dict[str, Instrument]) -> list[str]:
    """``analysis:``: the alliance measure when one was found; the outcome of each condition to fill in."""
    alliance = [k for k, m in draft.measures.items() if registry[m.instrument].construct == "alliance"]
    outcomes = [k for k, m in draft.measures.items() if registry[m.instrument].construct != "alliance"]
    lines = ["analysis:"]
    if alliance:
        lines.append(f"  alliance_measure: {alliance[0]}")
    else:
        lines.append(f"  alliance_measure: null   # {MARK}: the key in dataset.measures of the alliance measure")
    shown = ", ".join(outcomes) or "none found"
    lines.append(
        f"  outcome_by_condition: null   # {MARK}: canonical condition: key of its primary outcome ({shown}), e.g. {{depression: phq9}}"
    )
    return lines


def _cleaning_lines(draft: Draft) -> list[str]:
    """``cleaning:``: how dropout is defined from the patients file, and a date column turned into days."""
    lines = ["cleaning:"]
    if "end_reason" not in draft.patient_columns and "planned_sessions" in draft.patient_columns:
        lines.append(
            "  dropout_definition: fewer_than_planned   # the patients file has planned sessions, no end reason"
        )
    if draft.date:
        column, fmt, others = draft.date
        also = f"; also reads as {', '.join(others)}: check" if others else ""
        lines += [
            "  deidentification:",
            f"    dates_to_days: [{scalar(column)}]   # full dates become days since each patient's first session",
            f"    date_format: {scalar(fmt)}{'   # ' + also.lstrip('; ') if also else ''}",
        ]
    return lines if len(lines) > 1 else ["cleaning: {}"]


def render_draft(draft: Draft, registry: dict[str, Instrument], out: str) -> str:
    """The draft config as YAML text with comments."""
    sources = " and ".join(scalar(e.path) for e in (draft.sessions, draft.patients) if e is not None)
    lines = [
        f"# Draft configuration written by `make init` from {sources}.",
        "# Every value was guessed from the export's header names and cells: check each one.",
        f"# Keys marked {MARK} could not be guessed; their value null is rejected, and",
        f"#   make clean-data CONFIG={scalar(out)}",
        "# names every key still to fill in. config/README.md explains every key.",
        "",
        "run:",
        f"  title: {scalar('Alliance-outcome analysis: ' + draft.name)}",
        "",
        "dataset:",
        f"  name: {draft.name}",
        "  sessions:",
        *_table_lines(draft.sessions),
    ]
    if draft.patients is not None:
        lines += ["  patients:", *_table_lines(draft.patients)]
    lines += _columns_lines(draft) + _labels_lines(draft)
    lines.append(f"  missing_codes: {scalar(draft.missing_codes)}   # the codes for 'missing' found in the cells")
    lines += _measures_lines(draft, registry)
    lines += ["", "instruments: {}   # your own instruments, same fields as the registry (config/README.md)"]
    lines += ["", *_analysis_lines(draft, registry), "", *_cleaning_lines(draft), ""]
    lines.append(
        "# the model suite of config/config.yaml"
        + (
            f", without the models that name canonical labels ({', '.join(draft.dropped_models)}):"
            " copy them from there once dataset.labels is filled in"
            if draft.dropped_models
            else ""
        )
    )
    lines.append("models:")
    text = "\n".join(lines) + "\n"
    return text + yaml.safe_dump(draft.models, sort_keys=False, allow_unicode=True, width=100)


def draft_path(name: str) -> Path:
    """Where the draft goes when no OUT= is given: config/draft_<dataset name>.yaml."""
    return Path("config") / f"draft_{name}.yaml"


def _init(args: argparse.Namespace) -> int:
    """``make init``: read, guess, write the draft (never over an existing file unless OUT= names it)."""
    registry = load_registry()
    models_file = Path(args.models_from)
    if not models_file.is_file():
        print(f"error: {models_file}: the config whose model suite the draft takes does not exist", file=sys.stderr)
        return 1
    models = (yaml.safe_load(models_file.read_text(encoding="utf-8")) or {}).get("models") or []
    sessions = read_export(args.data)
    patients = read_export(args.patients) if args.patients else None
    draft = build_draft(sessions, patients, registry, models)
    out = Path(args.out) if args.out else draft_path(draft.name)
    raw_folders = {Path(e.path).resolve().parent for e in (sessions, patients) if e is not None}
    if out.resolve().parent in raw_folders:
        print(
            f"error: {out}: the draft is not written beside the lab's raw files; give OUT=config/<name>.yaml",
            file=sys.stderr,
        )
        return 1
    if out.exists() and not args.out:
        print(f"error: {out} exists; give OUT=<file> to write the draft elsewhere (or to replace it)", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_draft(draft, registry, str(out)), encoding="utf-8")
    left = unfilled_keys(yaml.safe_load(out.read_text(encoding="utf-8")), config_schema())
    print(f"Draft config written to {out}.")
    print(f"Fill in the keys marked {MARK} ({', '.join(left)}), check the rest, then: make clean-data CONFIG={out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the sessions file (csv, tsv, excel, spss or parquet)")
    parser.add_argument("--patients", help="the patients file, when there is one")
    parser.add_argument("--out", help="where to write the draft (default config/draft_<name>.yaml, never overwritten)")
    parser.add_argument("--models-from", default="config/config.yaml", help="the config whose model suite to take")
    args = parser.parse_args(argv)
    try:
        return _init(args)
    except (InputError, InputErrors) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
