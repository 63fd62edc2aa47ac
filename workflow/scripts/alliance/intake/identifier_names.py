"""Column names that suggest a direct identifier (``email``, ``PatientName``, ``dob``, ``postcode`` ...).

Part of the de-identification screen (:mod:`alliance.intake.screen`). The check is
word-aware and case insensitive: a name is split into words (``PatientName`` ->
patient, name) and matched against phrases of each kind of identifier, with
exceptions for study vocabulary (``site_name``, ``phone_session``). The canonical
pseudonymous ids ``patient``, ``therapist``, ``site`` and ``study`` are never flagged.
"""

from __future__ import annotations

import re
from typing import Any

from alliance.intake.findings import SOURCE_ROW

__all__ = ["CANONICAL_ID_COLUMNS", "identifier_label", "is_location_column"]

#: Pseudonymous study ids that are expected and never flagged by name.
CANONICAL_ID_COLUMNS = frozenset({"patient", "therapist", "site", "study"})

# What each kind of identifier is called in a finding ("... suggests a person's name").
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
    """The words of a column name, lower case: ``PatientName`` -> ["patient", "name"]."""
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


def is_location_column(column: Any) -> bool:
    """Whether a column's name suggests a place (``postcode``, ``home_town`` ...): postcodes and
    ZIP codes are looked for only in such columns."""
    return any(t in _LOCATION_TOKENS for t in _tokens(column))
