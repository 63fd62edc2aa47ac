"""De-identification screen, run on every input table before anything is written.

**This is a screening aid, not a certification of de-identification.** The
HIPAA Safe Harbor method lists 18 kinds of identifiers (names, geographic
units smaller than a state, all elements of dates except the year, phone and
fax numbers, email addresses, social security and medical record numbers,
account and licence numbers, device ids, URLs, IP addresses, biometrics,
photographs, any other unique code...). This module catches the common ones
that turn up in psychotherapy study exports; the data owner remains
responsible for the release of their data (and for GDPR / local rules).

What is checked
---------------
* **Column names** that suggest a direct identifier (word-aware, case
  insensitive: ``email``, ``first_name``, ``therapist_name``, ``PatientName``,
  ``dob``, ``nhs_number``, ``postcode``, ``notes`` ...). The canonical
  pseudonymous ids ``patient``, ``therapist``, ``site`` and ``study`` are fine,
  as are names such as ``session``, ``condition``, ``site_name`` or ``therapy_name``.
* **Values** in every text column: email addresses, telephone numbers
  (international ``+44 ...``, UK/US formats with separators and >= 9 digits,
  UK mobiles ``07...``; plain integers and codes such as ``P0012`` are not
  flagged), IP addresses, full dates (``2024-03-05``, ``05/03/2024``,
  ``5 March 2024``) outside the columns opted in for conversion, street
  addresses (``12 High Street``), UK postcodes / US ZIP codes in columns whose
  name suggests a location, and free text (a column where a substantial share
  of values have 4+ words or more than 40 characters). Columns of a
  date/datetime type count as full dates.

Each problem is reported once per column and kind, at the **first** offending
row (the ``_source_row`` added by :func:`alliance.intake.readers.read_table`; header
= row 1), with a **masked** value (``j***@***.org``) -- an identifier is never
printed back in full.

Helpers for the fixes: :func:`dates_to_days_since_intake`,
:func:`topcode_age` (ages over 89 -> 90) and :func:`small_cells` (k-anonymity
style warning for small groups of quasi-identifiers).

Speed: value checks run vectorised on the *distinct* values of each column
(``value_counts``), so item-score columns with a handful of distinct values
cost almost nothing even with millions of rows. All regular expressions avoid
look-arounds so they run on pyarrow-backed strings (RE2) as well as Python ``re``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from alliance.intake.findings import STOP, WARN, Finding, InputError, InputErrors

__all__ = [
    "CANONICAL_ID_COLUMNS",
    "assert_deidentified",
    "dates_to_days_since_intake",
    "identifier_label",
    "mask_value",
    "screen_identifiers",
    "small_cells",
    "topcode_age",
]

SOURCE_ROW = "_source_row"  # same as alliance.intake.readers.SOURCE_ROW (kept local: no import cycle)

#: Pseudonymous study ids that are expected and never flagged by name.
CANONICAL_ID_COLUMNS = frozenset({"patient", "therapist", "site", "study"})

_REMOVE = "remove the column or map it out before running"

# --------------------------------------------------------------------------- column names

EMAIL = "an email address"
PHONE = "a telephone or fax number"
NAME = "a person's name"
ADDRESS = "a postal address"
POSTCODE = "a postcode or ZIP code"
PLACE = "a town or city (a place smaller than a state)"
DOB = "a date of birth"
RECORD = "a medical record / health service number"
NATIONAL = "a national identification number (e.g. SSN, national insurance, passport)"
FREE = "free-text notes, which often contain names and other identifiers"
WEB = "an IP address, URL or user name"
ACCOUNT = "an account, licence, vehicle or device number"
CONTACT = "a person's contact details"

# fmt: off
_PHRASES: list[tuple[tuple[str, ...], str]] = [
    # email
    (("email",), EMAIL), (("emails",), EMAIL), (("e", "mail"), EMAIL),
    (("emailaddress",), EMAIL), (("mail", "address"), EMAIL),
    # web
    (("ip", "address"), WEB), (("ip", "addr"), WEB), (("ipaddress",), WEB), (("url",), WEB),
    (("urls",), WEB), (("website",), WEB), (("web", "address"), WEB), (("username",), WEB),
    (("user", "name"), WEB), (("login",), WEB), (("twitter",), WEB), (("facebook",), WEB),
    (("instagram",), WEB), (("social", "media"), WEB),
    # phone
    (("phone",), PHONE), (("phones",), PHONE), (("telephone",), PHONE), (("tel",), PHONE),
    (("telno",), PHONE), (("mobile",), PHONE), (("mobileno",), PHONE), (("cellphone",), PHONE),
    (("cell", "phone"), PHONE), (("fax",), PHONE), (("phonenumber",), PHONE),
    # names
    (("firstname",), NAME), (("lastname",), NAME), (("surname",), NAME), (("surnames",), NAME),
    (("forename",), NAME), (("forenames",), NAME), (("fullname",), NAME), (("givenname",), NAME),
    (("familyname",), NAME), (("maidenname",), NAME), (("nickname",), NAME),
    (("initials",), NAME), (("signature",), NAME),
    # contact / relatives
    (("next", "of", "kin"), CONTACT), (("nextofkin",), CONTACT), (("emergency", "contact"), CONTACT),
    (("contact", "details"), CONTACT), (("contact", "number"), CONTACT), (("contact", "no"), CONTACT),
    # dates of birth
    (("dob",), DOB), (("d", "o", "b"), DOB), (("birthdate",), DOB), (("birthday",), DOB),
    (("dateofbirth",), DOB), (("date", "of", "birth"), DOB), (("birth", "date"), DOB),
    (("birth", "day"), DOB),
    # record numbers
    (("nhs",), RECORD), (("nhsno",), RECORD), (("nhsnumber",), RECORD), (("mrn",), RECORD),
    (("medical", "record"), RECORD), (("medicalrecord",), RECORD), (("record", "number"), RECORD),
    (("record", "no"), RECORD), (("hospital", "number"), RECORD), (("hospital", "no"), RECORD),
    (("chi", "number"), RECORD), (("chi", "no"), RECORD), (("health", "number"), RECORD),
    (("health", "card"), RECORD), (("insurance", "number"), RECORD),
    # national ids
    (("ssn",), NATIONAL), (("social", "security"), NATIONAL), (("national", "insurance"), NATIONAL),
    (("ni", "number"), NATIONAL), (("ni", "no"), NATIONAL), (("nino",), NATIONAL),
    (("passport",), NATIONAL), (("tax", "id"), NATIONAL),
    # accounts / devices
    (("account", "number"), ACCOUNT), (("account", "no"), ACCOUNT), (("licence",), ACCOUNT),
    (("license",), ACCOUNT), (("vehicle",), ACCOUNT), (("serial", "number"), ACCOUNT),
    (("device", "id"), ACCOUNT), (("imei",), ACCOUNT), (("bank",), ACCOUNT),
    # addresses and places
    (("address",), ADDRESS), (("addresses",), ADDRESS), (("addr",), ADDRESS),
    (("street",), ADDRESS), (("streetaddress",), ADDRESS), (("homeaddress",), ADDRESS),
    (("house", "number"), ADDRESS), (("housenumber",), ADDRESS),
    (("postcode",), POSTCODE), (("postcodes",), POSTCODE), (("post", "code"), POSTCODE),
    (("postal", "code"), POSTCODE), (("postalcode",), POSTCODE), (("zip",), POSTCODE),
    (("zipcode",), POSTCODE), (("zip", "code"), POSTCODE),
    (("city",), PLACE), (("town",), PLACE), (("hometown",), PLACE), (("village",), PLACE),
    # free text
    (("notes",), FREE), (("note",), FREE), (("comments",), FREE), (("comment",), FREE),
    (("free", "text"), FREE), (("freetext",), FREE), (("remarks",), FREE), (("narrative",), FREE),
    (("verbatim",), FREE), (("transcript",), FREE), (("open", "text"), FREE), (("specify",), FREE),
]
# fmt: on
_BY_FIRST: dict[str, list[tuple[tuple[str, ...], str]]] = {}
for _phrase, _label in _PHRASES:
    _BY_FIRST.setdefault(_phrase[0], []).append((_phrase, _label))

# "site_name", "therapy_name" ... are not people's names.
_BENIGN_BEFORE_NAME = frozenset(
    """site study therapy treatment condition measure item scale instrument file variable var
    group arm service team programme program protocol session questionnaire form centre center
    clinic trial intervention diagnosis drug medication medicine module outcome event task sheet
    column field code test stage phase unit ward organisation organization org country region
    state project dataset data label category level""".split()
)
# "phone_session", "email_reminder_sent", "notes_count" ... describe study events, not people.
_BENIGN_AFTER = frozenset(
    """session sessions call calls therapy appointment appointments consultation consultations
    delivered delivery mode modality support contacts followup count n used use app sent
    reminder reminders consent consented opt ok flag type format available""".split()
)
_LOCATION_TOKENS = frozenset(
    """zip zipcode postcode postcodes postal post address addr location city town area residence
    home region district locality geo geography county lsoa ward neighbourhood neighborhood
    borough municipality""".split()
)


def _tokens(name: Any) -> list[str]:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    return re.findall(r"[a-z]+|\d+", s.lower())


def identifier_label(column: Any) -> str | None:
    """What kind of direct identifier a column *name* suggests, or None.

    Word-aware: ``PatientName``, ``patient_name`` and ``Patient Name`` all give
    "a person's name"; ``session``, ``condition``, ``phq9_03``, ``wai_12``,
    ``age_band``, ``end_reason``, ``site_name`` give None.
    """
    name = str(column)
    if name.strip().lower() in CANONICAL_ID_COLUMNS or name == SOURCE_ROW:
        return None
    toks = _tokens(name)
    for i, tok in enumerate(toks):
        for phrase, label in _BY_FIRST.get(tok, ()):
            end = i + len(phrase)
            if tuple(toks[i:end]) == phrase:
                after = toks[end] if end < len(toks) else None
                if after in _BENIGN_AFTER:
                    continue
                return label
        if tok in ("name", "names"):
            before = toks[i - 1] if i > 0 else None
            after = toks[i + 1] if i + 1 < len(toks) else None
            if before in _BENIGN_BEFORE_NAME or after in _BENIGN_AFTER:
                continue
            return NAME
    return None


def _is_location_column(column: Any) -> bool:
    return any(t in _LOCATION_TOKENS for t in _tokens(column))


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
_UK_POSTCODE = (
    r"(?i)(?:^|[^A-Za-z0-9])[A-Z]{1,2}[0-9][A-Z0-9]?" + _SP + r"*[0-9][A-Z]{2}(?:[^A-Za-z0-9]|$)"
)
_US_ZIP = r"^[ \t]*[0-9]{5}(?:-[0-9]{4})?[ \t]*$"

_WORDS = r"[^ \t\r\n]+"
FREE_TEXT_MIN_WORDS = 4
FREE_TEXT_MIN_CHARS = 41  # "more than 40 characters"
FREE_TEXT_MIN_SHARE = 0.2

_REASONS = {
    "email": f"looks like an email address (a direct identifier); {_REMOVE}",
    "phone": f"looks like a telephone number (a direct identifier); {_REMOVE}",
    "ip": f"looks like an IP address (a direct identifier); {_REMOVE}",
    "street": f"looks like a street address (a direct identifier); {_REMOVE}",
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
    return re.sub(
        r"(?:19|20)\d{2}|\d", lambda x: x.group(0) if len(x.group(0)) == 4 else "*", found
    )


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


# --------------------------------------------------------------------------- screening


def _source_rows(df: pd.DataFrame) -> np.ndarray:
    if SOURCE_ROW in df.columns:
        return df[SOURCE_ROW].to_numpy()
    return np.arange(2, len(df) + 2)  # as if exported with a header row


def _as_text(s: pd.Series) -> pd.Series:
    if pd.api.types.is_string_dtype(s.dtype) and not s.dtype == object:
        return s
    return s.astype("str").where(s.notna())  # object / category -> str, keeping missing


def _bool(mask: pd.Series) -> pd.Series:
    return mask.fillna(False).astype(bool)


def _trim(found: str) -> str:
    """Drop the boundary characters a pattern consumed around the match."""
    return re.sub(r"^[^A-Za-z0-9+(]+|[^A-Za-z0-9]+$", "", found)


def _value_findings(
    s: pd.Series, column: str, file: str | None, rows: np.ndarray, *, check_dates: bool
) -> list[Finding]:
    findings: list[Finding] = []

    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        if check_dates and s.notna().any():
            pos = int(s.notna().to_numpy().argmax())
            findings.append(
                Finding(
                    file,
                    int(rows[pos]),
                    column,
                    _mask_date(str(s.iloc[pos].date())),
                    _REASONS["date"].replace("looks like", "is", 1),
                    STOP,
                )
            )
        return findings
    if not (pd.api.types.is_string_dtype(s.dtype) or isinstance(s.dtype, pd.CategoricalDtype)):
        return findings  # numbers, booleans: nothing textual to screen

    # Work on the distinct values; map results back to rows through the codes.
    text = _as_text(s)
    codes, uniques = pd.factorize(text, use_na_sentinel=True)
    if len(uniques) == 0:
        return findings
    uniq = pd.Series(uniques, dtype="str")
    freq = np.bincount(codes[codes >= 0], minlength=len(uniq))
    keep = _bool(uniq.str.strip().str.len() > 0).to_numpy()

    def report(kind: str, hit: pd.Series | np.ndarray, reason: str | None = None) -> None:
        hit_u = np.asarray(hit, dtype=bool) & keep
        rows_hit = np.where(codes >= 0, hit_u[np.maximum(codes, 0)], False)
        pos = int(rows_hit.argmax())
        findings.append(
            Finding(
                file,
                int(rows[pos]),
                column,
                mask_value(text.iloc[pos], kind),
                reason or _REASONS[kind],
                STOP,
            )
        )

    def contains(pattern: str, where: pd.Series = uniq) -> pd.Series:
        return _bool(where.str.contains(pattern, regex=True))

    # A column of plain numbers (item scores, session numbers) can hold none of the
    # patterns below except a UK mobile number written without spaces, or a ZIP code
    # (only looked for in location columns): skip the other patterns (speed).
    if (
        not _is_location_column(column)
        and (contains(_PLAIN_NUMBER) | ~keep).all()
        and not (contains(_UK_MOBILE) & keep).any()
    ):
        return findings

    is_email = contains(_EMAIL)
    if (is_email & keep).any():
        report("email", is_email)
    is_ip = contains(_IP)
    if (is_ip & keep).any():
        report("ip", is_ip)
    is_date = contains(_DATE)
    if check_dates and (is_date & keep).any():
        report("date", is_date)

    phone = pd.Series(False, index=uniq.index)
    maybe = contains(_PHONE_PREFILTER) & ~contains(_PLAIN_NUMBER)
    if maybe.any():
        cand = uniq[maybe].str.extract(_PHONE_CANDIDATE, expand=False)
        n_digits = cand.str.count(r"[0-9]").fillna(0)
        sep = _bool(cand.str.startswith("+")) | contains(r"[ \-.()/]", cand)
        phone.loc[maybe] = (
            _bool(n_digits.between(9, 15)) & sep & contains(r"[0-9]{3}", cand)
        ).to_numpy()
    phone = (phone | contains(_UK_MOBILE)) & ~is_date & ~is_ip & ~is_email & ~contains(_US_ZIP)
    if (phone & keep).any():
        report("phone", phone)

    is_street = contains(_STREET)
    if (is_street & keep).any():
        report("street", is_street)

    if _is_location_column(column):
        is_pc = contains(_UK_POSTCODE)
        if (is_pc & keep).any():
            report("postcode", is_pc)
        is_zip = contains(_US_ZIP)
        if (is_zip & keep).any():
            report("zip", is_zip)

    n_words = uniq.str.count(_WORDS).fillna(0).to_numpy()
    long = (
        (n_words >= FREE_TEXT_MIN_WORDS)
        | (uniq.str.len().fillna(0).to_numpy() >= FREE_TEXT_MIN_CHARS)
    ) & keep
    if long.any():
        n_long = int(freq[long].sum())
        n_total = int(freq[keep].sum())
        n_unique_long = int(long.sum())
        if n_long / n_total >= FREE_TEXT_MIN_SHARE and (
            n_unique_long > 50 or (n_unique_long >= 3 and n_unique_long / n_long >= 0.5)
        ):
            report(
                "free_text",
                long,
                f"is free text ({n_long:,} of {n_total:,} values have {FREE_TEXT_MIN_WORDS} or more "
                f"words or more than {FREE_TEXT_MIN_CHARS - 1} characters) and may contain names "
                "or other identifiers; remove the column, or check it by hand and list it under "
                "cleaning: deidentification: allowed_columns in the config",
            )
    return findings


def screen_identifiers(
    df: pd.DataFrame,
    *,
    file: str | None,
    allowed_columns: Iterable[str] = (),
    date_columns_to_days: Iterable[str] | None = None,
) -> list[Finding]:
    """Screen a table for direct identifiers; returns findings (does not raise).

    Parameters
    ----------
    df : the table as read (ideally with ``_source_row`` from ``read_table``;
        without it, rows are numbered as if exported with a header: 2, 3, ...).
    file : shown in every finding.
    allowed_columns : columns the data owner has checked and accepts; they are
        skipped entirely (name and values).
    date_columns_to_days : columns that will be converted to days since intake
        (:func:`dates_to_days_since_intake`); full dates in them are not flagged.

    Returns
    -------
    list[Finding]
        Stopping findings (action ``"stop"``) for identifier-like values and
        columns; ``"warn"`` for empty columns whose name suggests an
        identifier. At most one finding per column and kind; value-based
        findings take precedence over the name-based one for the same column.
    """
    file = None if file is None else str(file)
    allowed = {str(c) for c in allowed_columns}
    to_days = {str(c) for c in (date_columns_to_days or ())}
    rows = _source_rows(df)
    findings: list[Finding] = []
    for column in df.columns:
        col = str(column)
        if col == SOURCE_ROW or col in allowed:
            continue
        s = df[column]
        found = _value_findings(s, col, file, rows, check_dates=col not in to_days)
        findings.extend(found)
        label = identifier_label(col)
        if label is None or any(f.is_stopping for f in found):
            continue
        if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
            filled = _bool(_as_text(s).str.strip().str.len() > 0).to_numpy()
        else:
            filled = s.notna().to_numpy()
        if filled.any():
            pos = int(filled.argmax())
            findings.append(
                Finding(
                    file,
                    int(rows[pos]),
                    col,
                    _mask_generic(s.iloc[pos]),
                    f"is in a column whose name suggests {label} (a direct identifier); {_REMOVE}",
                    STOP,
                )
            )
        else:
            findings.append(
                Finding(
                    file,
                    None,
                    col,
                    None,
                    f"the column name suggests {label} (a direct identifier) but the column is "
                    "empty; drop it before sharing the data",
                    WARN,
                )
            )
    return findings


def assert_deidentified(
    df: pd.DataFrame,
    *,
    file: str | None,
    allowed_columns: Iterable[str] = (),
    date_columns_to_days: Iterable[str] | None = None,
) -> list[Finding]:
    """Run :func:`screen_identifiers`; raise :class:`InputErrors` if anything stops the run.

    Returns the non-stopping findings (warnings) when nothing stops the run.
    """
    findings = screen_identifiers(
        df, file=file, allowed_columns=allowed_columns, date_columns_to_days=date_columns_to_days
    )
    stopping = [f for f in findings if f.is_stopping]
    if stopping:
        n = len(stopping)
        raise InputErrors(
            stopping,
            heading=(
                f"{file}: the de-identification screen found {n} possible direct "
                f"identifier{'s' if n != 1 else ''}; nothing has been written"
            ),
        )
    return [f for f in findings if not f.is_stopping]


# --------------------------------------------------------------------------- fixes


def dates_to_days_since_intake(
    df: pd.DataFrame,
    date_column: str,
    patient_column: str = "patient",
    *,
    format: str | None = None,
    file: str | None = None,
) -> pd.Series:
    """Days since each patient's first (earliest) date in ``date_column``.

    For labs that opt a date column in: the caller stores the result (e.g. as
    ``days_since_intake``) and then drops ``date_column``. Text dates are
    parsed as ISO 8601 (``2024-03-05``, optionally with a time) unless
    ``format`` (e.g. ``"%d/%m/%Y"``) is given -- day/month order is never
    guessed. Times of day are ignored. Returns an ``Int64`` Series aligned to
    ``df.index``, named ``days_since_intake``; missing dates or patients give
    <NA>.

    Raises InputError naming the first row whose date cannot be read.
    """
    s = df[date_column]
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        dates = s
    else:
        text = _as_text(s)
        dates = pd.to_datetime(text, format=format or "ISO8601", errors="coerce")
        blank = _bool(text.str.strip().str.len() == 0) | text.isna()
        bad = (dates.isna() & ~blank).to_numpy()
        if bad.any():
            pos = int(bad.argmax())
            rows = _source_rows(df)
            shown = "YYYY-MM-DD (ISO 8601)" if format is None else f"'{format}'"
            raise InputError(
                f"cannot be read as a date in the form {shown} ({int(bad.sum()):,} value"
                f"{'s' if bad.sum() != 1 else ''} in this column); fix the values or set the date "
                "format for this column in the config (e.g. '%d/%m/%Y')",
                file=file,
                row=int(rows[pos]),
                column=date_column,
                value=_mask_date(str(text.iloc[pos])),
            )
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    days = dates.dt.normalize()
    first = days.groupby(df[patient_column], dropna=True).transform("min")
    out = (days - first).dt.days
    return out.astype("Int64").rename("days_since_intake")


def topcode_age(
    series: pd.Series,
    *,
    file: str | None = None,
    source_rows: Sequence[int] | pd.Series | None = None,
    limit: int = 89,
    top: int = 90,
) -> tuple[pd.Series, list[Finding]]:
    """Top-code ages over ``limit`` (89) to ``top`` (90), as HIPAA Safe Harbor requires.

    Works on numeric or text (``"93"``) series and keeps the dtype. Returns the
    new series and at most one non-stopping finding (action "top-coded to 90")
    with the count and first row affected; pass ``source_rows`` (e.g.
    ``df["_source_row"]``) so the row number is the spreadsheet row.
    """
    numeric = pd.to_numeric(series, errors="coerce")
    over = _bool(numeric > limit)
    if not over.any():
        return series, []
    if pd.api.types.is_numeric_dtype(series.dtype):
        out = series.mask(over, top)
    else:
        out = series.mask(over, str(top))
    pos = int(over.to_numpy().argmax())
    rows = np.asarray(source_rows) if source_rows is not None else np.arange(2, len(series) + 2)
    n = int(over.sum())
    finding = Finding(
        None if file is None else str(file),
        int(rows[pos]),
        None if series.name is None else str(series.name),
        f">{limit}",
        f"is an age over {limit} ({n:,} value{'s' if n != 1 else ''} in this column); ages over "
        f"{limit} are identifiers under HIPAA Safe Harbor and were top-coded to {top}",
        f"top-coded to {top}",
    )
    return out, [finding]


def small_cells(
    patients_df: pd.DataFrame,
    quasi_identifiers: Sequence[str] = ("site", "age_band", "sex"),
    k: int = 5,
    *,
    file: str | None = None,
    patient_column: str = "patient",
) -> list[Finding]:
    """Warn (action "warn") for combinations of quasi-identifiers shared by fewer than ``k`` patients.

    Counts distinct ``patient_column`` values per cell if that column exists,
    else rows. Quasi-identifiers missing from the table are ignored (no
    findings if none is present). Missing values form their own group.
    """
    qis = [q for q in quasi_identifiers if q in patients_df.columns]
    if not qis or patients_df.empty:
        return []
    keys = patients_df[qis].astype("str").fillna("(missing)")
    if patient_column in patients_df.columns:
        counts = patients_df[patient_column].groupby([keys[q] for q in qis]).nunique()
    else:
        counts = keys.groupby(qis).size()
    small = counts[counts < k]
    findings = []
    for key, n in small.items():
        key = key if isinstance(key, tuple) else (key,)
        cell = ", ".join(f"{q}={v}" for q, v in zip(qis, key))
        findings.append(
            Finding(
                None if file is None else str(file),
                None,
                ", ".join(qis),
                cell,
                f"is a group of only {int(n)} patient{'s' if n != 1 else ''} (fewer than k={k}); "
                "people in small groups can be re-identified: consider coarser age bands, "
                "merging small sites, or suppressing these rows",
                WARN,
            )
        )
    return findings
