"""What a lab's export probably holds: the guesses behind ``make init`` (alliance.intake.draft_config).

Every guess is made from the header names and the cells alone, never by evaluating text:
design columns by their names (:func:`guess_columns`: ``ClientID`` is the patient, ``visit`` the
session), instruments by their item columns or score columns (:func:`guess_measures`: ``wai_01`` ..
``wai_12`` with answers 1-5 are the WAI-SR items, template ``wai_{item:02d}``), the labels of the
therapy and condition columns (:func:`distinct_labels`), the missing codes that occur
(:func:`found_missing_codes`) and a column of full dates (:func:`guess_date_column`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from alliance.intake.config import item_columns
from alliance.intake.readers import DEFAULT_MISSING_CODES
from alliance.intake.registry import Instrument
from alliance.intake.text import cell_text, parse_numbers

__all__ = [
    "SESSION_SYNONYMS",
    "PATIENT_SYNONYMS",
    "MISSING_CODE_CANDIDATES",
    "GuessedMeasure",
    "tokens",
    "guess_columns",
    "guess_measures",
    "distinct_labels",
    "found_missing_codes",
    "guess_date_column",
]

#: canonical column of the sessions file -> header names (as :func:`tokens` joins them) that mean it
SESSION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "patient": ("patient", "client", "pat", "pid", "subject", "participant", "case", "klient", "id"),
    "therapist": ("therapist", "clinician", "counsellor", "counselor", "provider", "therapeut", "tid", "th"),
    "session": ("session", "visit", "week", "sitzung", "appointment", "sess"),
    "therapy": ("therapy", "treatment", "arm", "tx", "intervention", "modality", "therapie"),
    "condition": ("condition", "diagnosis", "dx", "disorder", "diag", "diagnose"),
    "site": ("site", "centre", "center", "clinic", "location", "practice"),
    "study": ("study", "trial", "project"),
    "days_since_intake": ("dayssinceintake", "daysintreatment", "days", "day"),
    "alliance_rater": ("rater", "informant", "alliancerater"),
}
#: canonical column of the patients file -> header names that mean it
PATIENT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "patient": SESSION_SYNONYMS["patient"],
    "age": ("age", "ageyears", "alter"),
    "age_band": ("ageband", "agegroup", "agegrp", "agecat", "agecategory"),
    "sex": ("sex", "gender", "geschlecht"),
    "expectancy": ("expectancy", "expectation", "expect", "expectations"),
    "end_reason": ("endreason", "endstatus", "status", "termination", "exitreason", "ending"),
    "planned_sessions": ("plannedsessions", "sessionsplanned", "planned", "plannedn", "nplanned"),
}
#: words after a design column's name that keep its meaning (``ClientID``, ``SessionNo``)
_NAME_SUFFIXES = frozenset({"id", "no", "nr", "num", "number", "code", "name", "label", "type", "key", "n"})
#: words that make a column something else than a design column (``SessionDate``, ``WAI_total``)
_NOT_DESIGN = frozenset({"date", "datum", "time", "total", "sum", "score", "mean"})
#: words of a column holding a score: the score word -> what the column holds
_SCORE_WORDS = {"total": "total", "sum": "total", "tot": "total", "summe": "total", "score": "total"}
_SCORE_WORDS.update({"mean": "mean", "avg": "mean", "average": "mean"})
#: missing codes a lab's export may use; those that occur are proposed for ``dataset.missing_codes``
MISSING_CODE_CANDIDATES: tuple[str, ...] = (
    *DEFAULT_MISSING_CODES,
    *("-9", "-99", "-999", "-9999", "missing", "Missing", "MISSING"),
)
#: the date formats tried on a column of dates (None: ISO 8601, the intake's default)
_DATE_FORMATS: tuple[tuple[str, str | None], ...] = (
    ("%Y-%m-%d", None),
    ("%d.%m.%Y", "%d.%m.%Y"),
    ("%d/%m/%Y", "%d/%m/%Y"),
    ("%m/%d/%Y", "%m/%d/%Y"),
    ("%Y/%m/%d", "%Y/%m/%d"),
    ("%d-%m-%Y", "%d-%m-%Y"),
)
#: share of an item or score column's numbers inside the instrument's range for it to count as one
_IN_RANGE_SHARE = 0.99
_NUMBERED = re.compile(r"^(?P<prefix>.*?)(?P<number>\d+)(?P<suffix>\D*)$")


def tokens(name: str) -> list[str]:
    """The words of a header name, lower case: camelCase, digits after letters and punctuation split
    words, but a digit stays with the letters before it (``PHQ9_total`` -> phq9, total).

    >>> tokens("ClientID"), tokens("session_no"), tokens("PHQ9_total"), tokens("WAI 3")
    (['client', 'id'], ['session', 'no'], ['phq9', 'total'], ['wai', '3'])
    """
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", str(name))
    return [word.lower() for word in re.split(r"[^A-Za-z0-9]+", spaced) if word]


def _name_score(name: str, synonyms: tuple[str, ...]) -> int:
    """How surely a header name means a canonical column: 2 (the whole name is a synonym), 1 (a
    synonym and a suffix such as 'id'), 0 (no)."""
    words = tokens(name)
    if not words or _NOT_DESIGN & set(words):
        return 0
    if "".join(words) in synonyms:
        return 2
    if words[0] in synonyms and set(words[1:]) <= _NAME_SUFFIXES:
        return 1
    return 0


def guess_columns(
    names: list[str], synonyms: dict[str, tuple[str, ...]], taken: set[str] = frozenset()
) -> dict[str, str]:
    """Canonical column -> the lab's column, for the canonical columns a header name clearly means.

    Each column is used once (the best match in the order of ``synonyms``; ties: the first column of
    the file); columns in ``taken`` (read by a measure) are left alone.

    >>> guess_columns(["ClientID", "TherapistCode", "SessionNo", "SessionDate", "Treatment"], SESSION_SYNONYMS)
    {'patient': 'ClientID', 'therapist': 'TherapistCode', 'session': 'SessionNo', 'therapy': 'Treatment'}
    """
    used = set(taken)
    guessed: dict[str, str] = {}
    for canonical, words in synonyms.items():
        scored = [(_name_score(n, words), -i, n) for i, n in enumerate(names) if n not in used]
        best = max((s for s in scored if s[0] > 0), default=None)
        if best is not None:
            guessed[canonical] = best[2]
            used.add(best[2])
    return guessed


@dataclass(frozen=True)
class GuessedMeasure:
    """An instrument found in the export: its item template (or list) or its score column."""

    instrument: str
    columns: tuple[str, ...]
    items: str | list[str] | None = None  # the config's `items`: a template, or the columns in item order
    total: str | None = None
    score: str = "total"  # with `total`: what the column holds (total or mean)
    also_fits: tuple[str, ...] = field(default=())  # other instruments the columns fit as well


def _aliases(instrument: str) -> set[str]:
    """Names of an instrument in column prefixes: WAI-SR -> {waisr, wai}, PHQ-9 -> {phq9, phq}."""
    compact = re.sub(r"[^a-z0-9]", "", instrument.lower())
    letters = re.match(r"[a-z]+", instrument.lower())
    return {compact, letters.group(0)} if letters else {compact}


def _in_range(values: pd.Series, low: float, high: float) -> bool:
    """Whether nearly all numbers of the columns (missing and text left out) lie in low..high."""
    numbers = values.dropna()
    if numbers.empty:
        return False
    return bool(((numbers >= low) & (numbers <= high)).mean() >= _IN_RANGE_SHARE)


def _numbers(frame: pd.DataFrame, columns: list[str], missing: set[str]) -> pd.Series:
    """The cells of ``columns`` as numbers, missing codes and text as NaN (one long series)."""
    texts = [cell_text(frame[c]) for c in columns]
    text = pd.concat(texts, ignore_index=True)
    return parse_numbers(text.mask(text.isin(missing)))


def _template(columns: list[str], prefix: str, suffix: str, n_items: int) -> str | list[str]:
    """The config's ``items`` for columns numbered 1..n: a ``{item}`` template when one gives them
    exactly, else the list in item order."""
    if "{" in prefix + suffix or "}" in prefix + suffix:
        return columns
    numbers = [_NUMBERED.match(c).group("number") for c in columns]
    width = max((len(n) for n in numbers if n.startswith("0")), default=0)
    template = f"{prefix}{{item:0{width}d}}{suffix}" if width else f"{prefix}{{item}}{suffix}"
    return template if item_columns({"items": template}, n_items) == columns else columns


def _fitting(
    candidates: list[Instrument], values: pd.Series, mean: bool = False, items: bool = True
) -> list[Instrument]:
    """The candidates whose item (or score) range holds the values, narrowest range first."""
    ranges = []
    for inst in candidates:
        low, high = (inst.item_min, inst.item_max) if items else inst.score_range("mean" if mean else "total")
        if _in_range(values, low, high):
            ranges.append((high - low, inst.id, inst))
    return [inst for _, _, inst in sorted(ranges, key=lambda r: (r[0], r[1]))]


def _item_groups(names: list[str]) -> dict[tuple[str, str], list[str]]:
    """Columns that differ only by a number, grouped by (prefix, suffix), in item order."""
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for name in names:
        match = _NUMBERED.match(name)
        if match:
            groups.setdefault((match["prefix"], match["suffix"]), []).append((int(match["number"]), name))
    return {key: [n for _, n in sorted(cols)] for key, cols in groups.items() if len(cols) > 1}


def guess_measures(frame: pd.DataFrame, registry: dict[str, Instrument], missing: set[str]) -> list[GuessedMeasure]:
    """The registry's instruments the export holds, as item columns or as score columns.

    Item columns: a prefix naming the instrument (``wai_``, ``PHQ_``, ``GAD7_``), numbers 1..n_items
    and nearly all answers in the item range; when several instruments fit (WAI-SR and WAI-S), the
    narrowest range is taken and the others noted. A score column (``WAI_total``, ``phq9_sum``) is
    taken for an instrument found without items.
    """
    names = [str(c) for c in frame.columns]
    found: list[GuessedMeasure] = []
    for (prefix, suffix), columns in _item_groups(names).items():
        words = tokens(prefix)
        while words and words[-1] in ("item", "items", "q", "question"):  # WAI_item_3, PHQ9_Q3
            words.pop()
        alias = "".join(words)
        numbers = [int(_NUMBERED.match(c)["number"]) for c in columns]
        candidates = [
            inst
            for inst in registry.values()
            if alias in _aliases(inst.id) and numbers == list(range(1, inst.n_items + 1))
        ]
        fitting = _fitting(candidates, _numbers(frame, columns, missing))
        if fitting:
            items = _template(columns, prefix, suffix, fitting[0].n_items)
            also = tuple(i.id for i in fitting[1:])
            found.append(GuessedMeasure(fitting[0].id, tuple(columns), items=items, also_fits=also))
    with_items = {m.instrument for m in found}
    taken = {c for m in found for c in m.columns}
    for name in names:
        words = tokens(name)
        kinds = [_SCORE_WORDS[w] for w in words if w in _SCORE_WORDS]
        rest = "".join(w for w in words if w not in _SCORE_WORDS)
        if name in taken or len(kinds) != 1 or not rest:
            continue
        candidates = [i for i in registry.values() if rest in _aliases(i.id) and i.id not in with_items]
        mean = kinds[0] == "mean"
        fitting = _fitting(candidates, _numbers(frame, [name], missing), mean=mean, items=False)
        if fitting:
            also = tuple(i.id for i in fitting[1:])
            found.append(GuessedMeasure(fitting[0].id, (name,), total=name, score=kinds[0], also_fits=also))
            with_items.add(fitting[0].id)
    return found


def distinct_labels(column: pd.Series, missing: set[str]) -> list[str]:
    """Every distinct label of a therapy or condition column, as the intake compares them (stripped
    text; missing codes left out), sorted.

    >>> distinct_labels(pd.Series([" CBT", "IPT", "CBT", "", "NA"]), {"", "NA"})
    ['CBT', 'IPT']
    """
    text = cell_text(column).dropna()
    return sorted({t for t in text if t not in missing})


def found_missing_codes(frame: pd.DataFrame) -> list[str]:
    """The candidate missing codes (:data:`MISSING_CODE_CANDIDATES`) that occur in the export's
    cells, with "" (a blank cell) first."""
    present: set[str] = set()
    for column in frame.columns:
        present |= set(cell_text(frame[column]).dropna().unique())
    return [""] + [code for code in MISSING_CODE_CANDIDATES if code and code in present]


def guess_date_column(
    frame: pd.DataFrame, taken: set[str], missing: set[str]
) -> tuple[str, str | None, list[str]] | None:
    """(column, strftime format or None for ISO, other formats that fit) of the first text column
    whose every value is a date, or None."""
    for name in frame.columns:
        if name in taken:
            continue
        values = distinct_labels(frame[name], missing)
        if not values or not all(re.fullmatch(r"[0-9./-]{8,10}", v) for v in values):
            continue
        fits = [config for fmt, config in _DATE_FORMATS if all(_parses(v, fmt) for v in values)]
        if fits:
            return str(name), fits[0], [f or "ISO 8601" for f in fits[1:]]
    return None


def _parses(value: str, fmt: str) -> bool:
    """Whether ``value`` is a date in strftime format ``fmt``."""
    try:
        datetime.strptime(value, fmt)
    except ValueError:
        return False
    return True
