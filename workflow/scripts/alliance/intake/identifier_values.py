"""Values that look like direct identifiers (emails, phone numbers, full dates, addresses, free
text), and how such a value is masked when a finding shows it.

Part of the de-identification screen (:mod:`alliance.intake.screen`). Value checks run
vectorised on the *distinct* values of each column (``pd.factorize``), so item-score
columns with a handful of distinct values cost almost nothing even with millions of
rows. All regular expressions avoid look-arounds so they run on pyarrow-backed strings
(RE2) as well as Python ``re``. A finding names the **first** offending row and shows a
**masked** value (``j***@***.org``): an identifier is never printed back in full.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alliance.intake.findings import STOP, Finding
from alliance.intake.identifier_names import is_location_column
from alliance.intake.text import as_str, missing_as_false

__all__ = [
    "FREE_TEXT_MIN_CHARS",
    "FREE_TEXT_MIN_SHARE",
    "FREE_TEXT_MIN_WORDS",
    "REMOVE_ADVICE",
    "mask_value",
    "value_findings",
]

#: What to do about a column holding direct identifiers (ends the reason of such findings).
REMOVE_ADVICE = "remove the column or map it out before running"

# --------------------------------------------------------------------------- value patterns
# Written for RE2 (pyarrow) as well as Python ``re``: no look-arounds, and no \d \s \w \b
# (pandas falls back to slow per-value Python regex for those on pyarrow strings).

_B = r"(?:^|[^A-Za-z0-9_])"  # word boundary before
_E = r"(?:[^A-Za-z0-9_]|$)"  # word boundary after
_SP = r"[ \t]"
_EMAIL = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
_IP = r"(?:^|[^0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?:[^0-9.]|$)"
_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DAY = r"(?:0?[1-9]|[12][0-9]|3[01])"
_MONTH = r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:19|20)[0-9]{2}"
_DATE = (
    r"(?i)(?:"
    # ISO 2024-03-05 (also 2024/03/05, 2024.03.05, with or without a time)
    r"(?:^|[^0-9])"
    + _YEAR
    + r"[-/.]"
    + _MONTH
    + r"[-/.]"
    + _DAY
    + r"(?:[^0-9]|$)"
    # 05/03/2024, 5-3-2024, 05.03.2024 (day/month order is irrelevant here), 05/03/24
    + r"|(?:^|[^0-9])"
    + _DAY
    + r"[-/.]"
    + _DAY
    + r"[-/.]"
    + _YEAR
    + r"(?:[^0-9]|$)"
    + r"|(?:^|[^0-9/])"
    + _DAY
    + r"/"
    + _DAY
    + r"/[0-9]{2}(?:[^0-9/]|$)"
    # 5 March 2024, 5th Mar. 2024, March 5, 2024
    + r"|"
    + _B
    + r"[0-9]{1,2}(?:st|nd|rd|th)?"
    + _SP
    + "+"
    + _MONTHS
    + r",?"
    + _SP
    + "+"
    + _YEAR
    + _E
    + r"|"
    + _B
    + _MONTHS
    + _SP
    + r"+[0-9]{1,2}(?:st|nd|rd|th)?,?"
    + _SP
    + "+"
    + _YEAR
    + _E
    + r")"
)
_PHONE_PREFILTER = r"[0-9][0-9 \-.()/]{7,24}[0-9]"
_PHONE_CANDIDATE = r"(?:^|[^0-9A-Za-z_+])(\+?\(?[0-9][0-9 \-.()/]{7,24}[0-9])"
_UK_MOBILE = r"(?:^|[^0-9])(?:07[0-9]{9}|447[0-9]{9})(?:[^0-9]|$)"
_PLAIN_NUMBER = r"^[ \t]*[-+]?[0-9]+(?:[.,][0-9]+)?[ \t]*$"
_STREET = (
    r"(?i)" + _B + r"[0-9]{1,5}[a-z]?,?" + _SP + r"+(?:[a-z'\-]+" + _SP + r"+){1,3}"
    r"(?:street|st|road|rd|avenue|ave|lane|ln|drive|dr|close|way|court|ct|place|pl|boulevard"
    r"|blvd|crescent|cres|terrace|grove|gardens|square|sq|mews|parade|walk|row|hill|highway"
    r"|hwy)" + _E
)
_UK_POSTCODE = r"(?i)(?:^|[^A-Za-z0-9])[A-Z]{1,2}[0-9][A-Z0-9]?" + _SP + r"*[0-9][A-Z]{2}(?:[^A-Za-z0-9]|$)"
_US_ZIP = r"^[ \t]*[0-9]{5}(?:-[0-9]{4})?[ \t]*$"

_WORDS = r"[^ \t\r\n]+"
FREE_TEXT_MIN_WORDS = 4
FREE_TEXT_MIN_CHARS = 41  # "more than 40 characters"
FREE_TEXT_MIN_SHARE = 0.2

_REASONS = {
    "email": f"looks like an email address (a direct identifier); {REMOVE_ADVICE}",
    "phone": f"looks like a telephone number (a direct identifier); {REMOVE_ADVICE}",
    "ip": f"looks like an IP address (a direct identifier); {REMOVE_ADVICE}",
    "street": f"looks like a street address (a direct identifier); {REMOVE_ADVICE}",
    "date": (
        "looks like a full date (day, month and year: an identifier under HIPAA Safe Harbor); "
        "keep only the year, or opt the column in to conversion to days since intake "
        "(cleaning: deidentification: dates_to_days in the config)"
    ),
    "postcode": (
        "looks like a full postcode (a geographic identifier); remove the column or reduce it "
        "to a larger area (e.g. region) before running"
    ),
    "zip": (
        "looks like a ZIP code (a geographic identifier); remove the column or keep at most "
        "the first 3 digits before running"
    ),
}

# --------------------------------------------------------------------------- masking


def _mask_email(text: str) -> str:
    m = re.search(_EMAIL, text)
    found = m.group(0) if m else text
    local, _, domain = found.partition("@")
    tld = domain.rsplit(".", 1)[-1] if "." in domain else "***"
    return f"{local[:1]}***@***.{tld}"


def _mask_digits_keep_last(text: str, keep: int = 2) -> str:
    n_digits = sum(ch.isdigit() for ch in text)
    out, seen = [], 0
    for ch in text:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > n_digits - keep else "*")
        else:
            out.append(ch)
    return "".join(out)


def _mask_phone(text: str) -> str:
    m = re.search(_PHONE_CANDIDATE, text) or re.search(r"\+?[0-9][0-9 \-.()/]*[0-9]", text)
    return _mask_digits_keep_last(m.group(m.lastindex or 0) if m else text)


def _mask_date(text: str) -> str:
    m = re.search(_DATE, text)
    found = re.sub(r"[^0-9]+$", "", _trim(m.group(0) if m else text))  # dates end in a digit
    found = re.sub(r"(?i)\b" + _MONTHS, lambda x: x.group(0)[0] + "***", found)
    # keep a 4-digit year (allowed under Safe Harbor), star every other digit
    return re.sub(r"(?:19|20)\d{2}|\d", lambda x: x.group(0) if len(x.group(0)) == 4 else "*", found)


def _mask_ip(text: str) -> str:
    m = re.search(r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}", text)
    parts = (m.group(0) if m else text).split(".")
    return ".".join(parts[:2] + ["*"] * max(0, len(parts) - 2))


def _mask_street(text: str) -> str:
    m = re.search(_STREET, text)
    words = _trim(m.group(0) if m else text).split()
    masked = ["*" * len(w) if any(c.isdigit() for c in w) else w[:1] + "***" for w in words[:-1]]
    return " ".join(masked + words[-1:])


def _mask_postcode(text: str) -> str:
    m = re.search(_UK_POSTCODE, text)
    found = _trim(m.group(0) if m else text)
    return found[:2] + re.sub(r"[A-Za-z0-9]", "*", found[2:])


def _mask_zip(text: str) -> str:
    found = text.strip()
    return found[:3] + re.sub(r"\d", "*", found[3:])


def _mask_free_text(text: str) -> str:
    return f"<free text: {len(text.split())} words, {len(text)} characters>"


def _mask_generic(text: str) -> str:
    text = str(text).strip()
    return "***" if len(text) <= 2 else text[:1] + "***"


_MASKS = {
    "email": _mask_email,
    "phone": _mask_phone,
    "ip": _mask_ip,
    "date": _mask_date,
    "street": _mask_street,
    "postcode": _mask_postcode,
    "zip": _mask_zip,
    "free_text": _mask_free_text,
}


def mask_value(value: Any, kind: str | None = None) -> str:
    """Mask a value for display: ``j***@***.org``, ``+** **** ****23``, ``**/**/2024``..."""
    text = str(value)
    return _MASKS.get(kind or "", _mask_generic)(text)


def _trim(found: str) -> str:
    """Drop the boundary characters a pattern consumed around the match."""
    return re.sub(r"^[^A-Za-z0-9+(]+|[^A-Za-z0-9]+$", "", found)


# --------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class _Distinct:
    """The distinct values of one text column, and which of them each row holds."""

    text: pd.Series  # the column as text, one value per row
    codes: np.ndarray  # row -> position in ``values`` (-1 where missing)
    values: pd.Series  # the distinct values
    freq: np.ndarray  # rows per distinct value
    keep: np.ndarray  # distinct values that are not blank

    @classmethod
    def of(cls, column: pd.Series) -> _Distinct | None:
        """The distinct values of ``column``; None when it holds none."""
        text = as_str(column)
        codes, uniques = pd.factorize(text, use_na_sentinel=True)
        if len(uniques) == 0:
            return None
        values = pd.Series(uniques, dtype="str")
        freq = np.bincount(codes[codes >= 0], minlength=len(values))
        keep = missing_as_false(values.str.strip().str.len() > 0).to_numpy()
        return cls(text, codes, values, freq, keep)

    def contains(self, pattern: str, where: pd.Series | None = None) -> pd.Series:
        """Distinct values (or ``where``) in which ``pattern`` matches."""
        where = self.values if where is None else where
        return missing_as_false(where.str.contains(pattern, regex=True))

    def first_row(self, hit: pd.Series | np.ndarray) -> int:
        """Position of the first row whose (non-blank) value is a ``hit``."""
        hit_u = np.asarray(hit, dtype=bool) & self.keep
        rows_hit = np.where(self.codes >= 0, hit_u[np.maximum(self.codes, 0)], False)
        return int(rows_hit.argmax())


def _date_typed_finding(values: pd.Series, column: str, file: str | None, rows: np.ndarray) -> list[Finding]:
    """A column of a date/datetime type holds full dates: one finding at its first date."""
    if not values.notna().any():
        return []
    pos = int(values.notna().to_numpy().argmax())
    return [
        Finding(
            file,
            int(rows[pos]),
            column,
            _mask_date(str(values.iloc[pos].date())),
            _REASONS["date"].replace("looks like", "is", 1),
            STOP,
        )
    ]


def _phone_numbers(v: _Distinct) -> pd.Series:
    """Distinct values holding a telephone number: 9-15 digits with separators, or a UK mobile."""
    phone = pd.Series(False, index=v.values.index)
    maybe = v.contains(_PHONE_PREFILTER) & ~v.contains(_PLAIN_NUMBER)
    if maybe.any():
        cand = v.values[maybe].str.extract(_PHONE_CANDIDATE, expand=False)
        n_digits = cand.str.count(r"[0-9]").fillna(0)
        sep = missing_as_false(cand.str.startswith("+")) | v.contains(r"[ \-.()/]", cand)
        phone.loc[maybe] = (missing_as_false(n_digits.between(9, 15)) & sep & v.contains(r"[0-9]{3}", cand)).to_numpy()
    return phone | v.contains(_UK_MOBILE)


def _pattern_hits(v: _Distinct, *, check_dates: bool, location: bool) -> dict[str, pd.Series]:
    """Kind of identifier -> the distinct values that look like it, for the kinds found (in report order)."""
    is_email = v.contains(_EMAIL)
    is_ip = v.contains(_IP)
    is_date = v.contains(_DATE)
    hits = {"email": is_email, "ip": is_ip}
    if check_dates:
        hits["date"] = is_date
    hits["phone"] = _phone_numbers(v) & ~is_date & ~is_ip & ~is_email & ~v.contains(_US_ZIP)
    hits["street"] = v.contains(_STREET)
    if location:
        hits["postcode"] = v.contains(_UK_POSTCODE)
        hits["zip"] = v.contains(_US_ZIP)
    return {kind: hit for kind, hit in hits.items() if (hit & v.keep).any()}


def _free_text(v: _Distinct) -> tuple[np.ndarray, str] | None:
    """(long values, reason) when the column is free text: many long, mostly distinct values."""
    n_words = v.values.str.count(_WORDS).fillna(0).to_numpy()
    long = (
        (n_words >= FREE_TEXT_MIN_WORDS) | (v.values.str.len().fillna(0).to_numpy() >= FREE_TEXT_MIN_CHARS)
    ) & v.keep
    if not long.any():
        return None
    n_long = int(v.freq[long].sum())
    n_total = int(v.freq[v.keep].sum())
    n_unique_long = int(long.sum())
    if n_long / n_total >= FREE_TEXT_MIN_SHARE and (
        n_unique_long > 50 or (n_unique_long >= 3 and n_unique_long / n_long >= 0.5)
    ):
        return long, (
            f"is free text ({n_long:,} of {n_total:,} values have {FREE_TEXT_MIN_WORDS} or more "
            f"words or more than {FREE_TEXT_MIN_CHARS - 1} characters) and may contain names "
            "or other identifiers; remove the column, or check it by hand and list it under "
            "cleaning: deidentification: allowed_columns in the config"
        )
    return None


def value_findings(
    values: pd.Series, column: str, file: str | None, rows: np.ndarray, *, check_dates: bool
) -> list[Finding]:
    """Stopping findings for the identifier-like values of one column, one per kind found.

    ``rows`` holds the spreadsheet row of each value; ``check_dates`` False skips
    full dates (a column opted in to conversion to days since intake). Numbers and
    booleans hold nothing textual to screen; a column of a date type holds full dates.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return _date_typed_finding(values, column, file, rows) if check_dates else []
    if not (pd.api.types.is_string_dtype(values.dtype) or isinstance(values.dtype, pd.CategoricalDtype)):
        return []
    v = _Distinct.of(values)
    if v is None:
        return []
    location = is_location_column(column)
    # A column of plain numbers (item scores, session numbers) can hold none of the
    # patterns except a UK mobile number written without spaces, or a ZIP code
    # (only looked for in location columns): skip the other patterns (speed).
    if not location and (v.contains(_PLAIN_NUMBER) | ~v.keep).all() and not (v.contains(_UK_MOBILE) & v.keep).any():
        return []

    def finding(kind: str, hit: pd.Series | np.ndarray, reason: str) -> Finding:
        pos = v.first_row(hit)
        return Finding(file, int(rows[pos]), column, mask_value(v.text.iloc[pos], kind), reason, STOP)

    hits = _pattern_hits(v, check_dates=check_dates, location=location)
    found = [finding(kind, hit, _REASONS[kind]) for kind, hit in hits.items()]
    free = _free_text(v)
    if free is not None:
        found.append(finding("free_text", *free))
    return found
