"""Values of the mapped id and label columns that are direct identifiers: health-service and
national numbers, postcodes, people's names.

Part of the de-identification screen (:mod:`alliance.intake.screen`). The columns a config maps
as the patient, therapist or site id, or as the therapy / condition label, must hold study codes
(``P0001``, ``T01``, ``S1``, ``CBT``). A lab's own ids often are something else:

* **numbers with a check digit**: an NHS number (England, Wales, Isle of Man) or a CHI number
  (Scotland) is 10 digits whose last is a mod-11 check digit; a Canadian social insurance number,
  a Swedish personal number, many hospital record numbers and card numbers carry a Luhn check
  digit (9 to 19 digits). A random number passes either check about one time in ten, so such a
  column is flagged only when at least half of its numbers of that length pass
  (:data:`CHECK_DIGIT_MIN_SHARE`): a real NHS-number column passes all, a column of the
  simulator's or a database's integers 1..n (or of random 10-digit codes) about a tenth;
* **numbers of a fixed form**: a US social security number (``123-45-6789``) or a UK national
  insurance number (``QQ 12 34 56 C``);
* **postcodes**: a full UK postcode (``LS1 4AP``) or a US ZIP+4 (``12345-6789``) in any of these
  columns (a site named by its postcode); a plain 5-digit number is not flagged (it is as likely
  a code as a ZIP or a German PLZ);
* **people's names** in the patient and therapist ids: a title and a name (``Dr Jane Smith``,
  ``Mrs. Patel``), two or three capitalised words (``Jane Smith``), an initial and a surname
  (``J. Smith``) or ``Smith, Jane``, unless a word is study vocabulary (``Team North``).

Each kind is reported once per column, at its first row, with a masked value; the findings stop
the run before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from alliance.intake.findings import STOP, Finding
from alliance.intake.identifier_values import mask_value

__all__ = ["CHECK_DIGIT_MIN_SHARE", "ID_ROLES", "id_code_findings", "luhn_valid", "nhs_number_valid"]

#: The canonical columns whose values are checked, and how a finding names each.
ID_ROLES = {
    "patient": "the patient id",
    "therapist": "the therapist id",
    "site": "the site",
    "therapy": "the therapy label",
    "condition": "the condition label",
}
_ADVICE = {
    role: f"replace such values with study codes (e.g. {example}) in the export before running"
    for role, example in (("patient", "P0001"), ("therapist", "T01"), ("site", "S1"))
}
_LABEL_ADVICE = "replace such labels with ones that name no person or place before running"
#: Roles whose values are people's codes, where a name is a direct identifier.
PERSON_ROLES = frozenset({"patient", "therapist"})
#: A column is flagged for check-digit numbers when at least this share of its numbers of that
#: length pass the check (chance alone gives about 1/11 for mod 11 and 1/10 for Luhn).
CHECK_DIGIT_MIN_SHARE = 0.5

_TEN_DIGITS = re.compile(r"[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}")
_LUHN_DIGITS = re.compile(r"[0-9](?:[ -]?[0-9]){8,18}")
_SSN = re.compile(r"(?!000|666|9[0-9]{2})[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}")
_NINO = re.compile(
    r"(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]", re.I
)
_UK_POSTCODE = re.compile(r"(?:^|.*[^A-Za-z0-9])([A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2})(?:[^A-Za-z0-9].*|$)", re.I)
_ZIP4 = re.compile(r"[0-9]{5}-[0-9]{4}")
_TITLES = (
    "dr|doctor|mr|mrs|ms|miss|mx|prof|professor|sir|dame|lady|lord|rev|revd|reverend|herr|frau|dott|dra|sr|sra|mme|mlle"
)
_TITLED = re.compile(rf"(?:{_TITLES})\.?[ \t]+[^\W\d_][^\W\d_'.\-]*.*", re.I)
_NAME_WORD = r"[^\W\d_][^\W\d_]*(?:['\-][^\W\d_]+)*"
_CAPITALISED = re.compile(rf"(?:{_NAME_WORD})(?:[ \t]+{_NAME_WORD}){{1,2}}")
_INITIAL_SURNAME = re.compile(rf"[^\W\d_]\.?[ \t]+{_NAME_WORD}")
_SURNAME_COMMA = re.compile(rf"{_NAME_WORD},[ \t]*{_NAME_WORD}")
# words of study codes that are not names ("Team North", "Clinic East", "Group Two")
_NOT_NAME_WORDS = frozenset(
    """team clinic centre center group unit service site ward practice hospital trial study arm
    therapist therapists counsellor counselor patient client north south east west central city
    county region district one two three four five six seven eight nine ten first second third
    main new old upper lower day night online remote phone video pilot control waitlist
    treatment therapy cbt pdt ipt unknown missing none other and of the""".split()
)

_REASONS = {
    "nhs": "looks like an NHS or CHI number (10 digits with a valid mod-11 check digit{share})",
    "luhn": "looks like a national identification, record or card number ({n} digits with a valid Luhn "
    "check digit{share})",
    "ssn": "looks like a US social security number",
    "nino": "looks like a UK national insurance number",
    "postcode": "looks like a full UK postcode",
    "zip4": "looks like a US ZIP+4 code",
    "titled_name": "looks like a person's name with a title",
    "name": "looks like a person's name",
}


def nhs_number_valid(digits: str) -> bool:
    """Whether 10 digits end in a valid NHS / CHI mod-11 check digit (weights 10..2; 10 is never valid).

    >>> nhs_number_valid("9434765919"), nhs_number_valid("9434765918")
    (True, False)
    """
    if len(digits) != 10 or not digits.isdigit():
        return False
    check = 11 - sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1))) % 11
    return (0 if check == 11 else check) == int(digits[9])


def luhn_valid(digits: str) -> bool:
    """Whether a number's last digit is its Luhn check digit.

    >>> luhn_valid("046454286"), luhn_valid("046454287")
    (True, False)
    """
    if not digits.isdigit():
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _id_text(values: pd.Series) -> pd.Series:
    """The column as stripped text; whole numbers of a numeric column without ``.0`` (as written)."""
    if pd.api.types.is_float_dtype(values.dtype):
        whole = values.notna() & np.isfinite(values) & (values == np.floor(values))
        text = values.astype("object").where(~whole, values.where(whole).astype("Int64").astype("str"))
        return text.astype("str").str.strip().where(values.notna())
    return values.astype("str").str.strip().where(values.notna())


def _check_digit_hits(
    values: list[str], shape: re.Pattern, valid: Callable[[str], bool]
) -> tuple[list[bool], int, int]:
    """(hit per value, values passing, values of the shape): numbers of ``shape`` whose check digit is ``valid``."""
    digits = [re.sub(r"[ -]", "", v) if shape.fullmatch(v) else None for v in values]
    ok = [d is not None and valid(d) for d in digits]
    return ok, sum(ok), sum(d is not None for d in digits)


def _is_name(value: str) -> bool:
    """Two or three capitalised words, an initial and a surname, or 'Surname, First' (no study word)."""
    if not (_CAPITALISED.fullmatch(value) or _INITIAL_SURNAME.fullmatch(value) or _SURNAME_COMMA.fullmatch(value)):
        return False
    words = re.split(r"[ \t,]+", value.replace(".", " ").strip())
    if any(w.lower() in _NOT_NAME_WORDS for w in words):
        return False
    long_words = [w for w in words if len(w) > 1]
    return bool(long_words) and all(w[:1].isupper() and not w.isupper() for w in long_words)


def _kind_hits(values: list[str], role: str) -> dict[str, tuple[list[bool], str]]:
    """Kind -> (hit per distinct value, why it is an identifier), for the kinds found in one column."""
    found: dict[str, tuple[list[bool], str]] = {}
    nhs, n_ok, n_shape = _check_digit_hits(values, _TEN_DIGITS, nhs_number_valid)
    if n_ok and n_ok / n_shape >= CHECK_DIGIT_MIN_SHARE:
        found["nhs"] = (nhs, _REASONS["nhs"].format(share=_share(n_ok, n_shape)))
    rest = [None if hit else v for v, hit in zip(values, nhs)]
    luhn = [bool(v) and _LUHN_DIGITS.fullmatch(v) is not None for v in rest]
    by_length: dict[int, list[int]] = {}
    for i, is_shape in enumerate(luhn):
        if is_shape:
            by_length.setdefault(len(re.sub(r"[ -]", "", values[i])), []).append(i)
    for length, positions in sorted(by_length.items()):
        ok = [i for i in positions if luhn_valid(re.sub(r"[ -]", "", values[i]))]
        if ok and len(ok) / len(positions) >= CHECK_DIGIT_MIN_SHARE and "luhn" not in found:
            hits = [False] * len(values)
            for i in ok:
                hits[i] = True
            found["luhn"] = (hits, _REASONS["luhn"].format(n=length, share=_share(len(ok), len(positions))))
    for kind, pattern in {"ssn": _SSN, "nino": _NINO, "zip4": _ZIP4}.items():
        hits = [pattern.fullmatch(v) is not None for v in values]
        if any(hits):
            found[kind] = (hits, _REASONS[kind])
    postcode = [_UK_POSTCODE.fullmatch(v) is not None for v in values]
    if any(postcode):
        found["postcode"] = (postcode, _REASONS["postcode"])
    if role in PERSON_ROLES:
        titled = [_TITLED.fullmatch(v) is not None for v in values]
        if any(titled):
            found["titled_name"] = (titled, _REASONS["titled_name"])
        named = [not t and _is_name(v) for v, t in zip(values, titled)]
        if any(named):
            found["name"] = (named, _REASONS["name"])
    return found


def _share(n_ok: int, n_shape: int) -> str:
    """What a check-digit reason adds: how many of the column's numbers of that form pass."""
    return f"; {n_ok:,} of {n_shape:,} such numbers in this column pass the check"


def _mask(value: str, kind: str) -> str:
    """A value of ``kind`` as a finding shows it: digits but the last two starred, a title kept."""
    if kind in ("nhs", "luhn", "ssn"):
        return mask_value(value, "phone")  # every digit starred but the last two
    if kind == "nino":
        return value[:2] + re.sub(r"[A-Za-z0-9]", "*", value[2:])
    if kind == "postcode":
        return mask_value(value, "postcode")
    if kind == "zip4":
        return mask_value(value, "zip")
    if kind == "titled_name":
        title = value.split()[0]
        return f"{title} " + " ".join("***" for _ in value.split()[1:])
    return mask_value(value)


def id_code_findings(values: pd.Series, column: str, role: str, file: str | None, rows: np.ndarray) -> list[Finding]:
    """Stopping findings for direct identifiers among the values of a mapped id or label column.

    ``role`` is the canonical column (a key of :data:`ID_ROLES`); ``rows`` the spreadsheet row of
    each value. One finding per kind found, at its first row, with a masked value.
    """
    text = _id_text(values)
    codes, uniques = pd.factorize(text, use_na_sentinel=True)
    if len(uniques) == 0:
        return []
    distinct = [str(u) for u in uniques]
    findings = []
    for kind, (hits, why) in _kind_hits(distinct, role).items():
        hit_rows = np.asarray(hits, dtype=bool)[np.maximum(codes, 0)] & (codes >= 0)
        pos = int(hit_rows.argmax())
        findings.append(
            Finding(
                file,
                int(rows[pos]),
                column,
                _mask(distinct[codes[pos]], kind),
                f"{why}, a direct identifier, in the column mapped as {ID_ROLES[role]}; {_ADVICE.get(role, _LABEL_ADVICE)}",
                STOP,
            )
        )
    return findings
