"""Tests for the de-identification screen (alliance.intake.screen, identifier_names,
identifier_values) and the de-identifying transforms (alliance.intake.deid)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.intake.deid import dates_to_days_since_intake, small_cells, topcode_age
from alliance.intake.findings import SOURCE_ROW, InputError, InputErrors
from alliance.intake.identifier_names import identifier_label
from alliance.intake.identifier_values import mask_value
from alliance.intake.readers import read_table
from alliance.intake.screen import assert_deidentified, screen_identifiers

BAD = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
REMOVE = "remove the column or map it out before running."


def _screen(name: str, **kwargs):
    path = BAD / name
    df, _ = read_table(path)
    return str(path), screen_identifiers(df, file=str(path), **kwargs)


def _messages(findings):
    return [f.message() for f in findings]


# --------------------------------------------------------------------------- no false positives


CLEAN = pd.DataFrame(
    {
        "patient": ["P0001", "P0002", "P0003"],
        "therapist": ["T01", "T01", "T02"],
        "site": ["S1", "S1", "S2"],
        "study": ["alliance-1", "alliance-1", "alliance-1"],
        "session": ["3", "1", "12"],
        "wai_01": ["4", "5", "7"],
        "phq9_03": ["0", "2", "3"],
        "therapy": ["CBT", "PDT", "CBT"],
        "condition": ["depression", "anxiety", "depression"],
        "age_band": ["26-35", "18-25", "66-75"],
        "sex": ["female", "male", "female"],
        "end_reason": ["completed", "dropout", None],
        "phq9_total": ["12", "7", "21"],
    }
)


def test_canonical_clean_columns_produce_no_finding():
    assert screen_identifiers(CLEAN, file="clean.csv") == []
    assert assert_deidentified(CLEAN, file="clean.csv") == []
    # also with numeric columns, as from Excel/SPSS
    numeric = CLEAN.assign(session=[3, 1, 12], wai_01=[4.0, 5.0, 7.0])
    assert screen_identifiers(numeric, file="clean.xlsx") == []


def test_clean_fixture_file_produces_no_finding():
    _, findings = _screen("clean.csv")
    assert findings == []


@pytest.mark.parametrize(
    "column",
    [
        "patient",
        "therapist",
        "site",
        "study",
        "session",
        "condition",
        "phq9_03",
        "wai_12",
        "age_band",
        "end_reason",
        "therapy",
        "sex",
        "visit_date",
        "week",
        "age",
        "site_name",
        "therapy_name",
        "measure_name",
        "patient_id",
        "therapist_id",
        "hotel",
        "phone_session",
        "n_phone_calls",
        "email_reminder_sent",
        "outcome",
        "reason",
        "zipped",
        "Session",
    ],
)
def test_innocent_column_names(column):
    assert identifier_label(column) is None


@pytest.mark.parametrize(
    "column, label",
    [
        ("name", "a person's name"),
        ("first_name", "a person's name"),
        ("FirstName", "a person's name"),
        ("surname", "a person's name"),
        ("Last Name", "a person's name"),
        ("full_name", "a person's name"),
        ("therapist_name", "a person's name"),
        ("PatientName", "a person's name"),
        ("email", "an email address"),
        ("E-Mail", "an email address"),
        ("e_mail", "an email address"),
        ("email_address", "an email address"),
        ("phone", "a telephone or fax number"),
        ("mobile", "a telephone or fax number"),
        ("tel", "a telephone or fax number"),
        ("address", "a postal address"),
        ("street", "a postal address"),
        ("postcode", "a postcode or ZIP code"),
        ("zip", "a postcode or ZIP code"),
        ("zipcode", "a postcode or ZIP code"),
        ("nhs_number", "a medical record / health service number"),
        ("NHSNumber", "a medical record / health service number"),
        ("mrn", "a medical record / health service number"),
        ("medical_record", "a medical record / health service number"),
        ("record_number", "a medical record / health service number"),
        ("ssn", "a national identification number (e.g. SSN, national insurance, passport)"),
        (
            "social_security",
            "a national identification number (e.g. SSN, national insurance, passport)",
        ),
        ("dob", "a date of birth"),
        ("DOB", "a date of birth"),
        ("date_of_birth", "a date of birth"),
        ("birth_date", "a date of birth"),
        ("notes", "free-text notes, which often contain names and other identifiers"),
        ("comments", "free-text notes, which often contain names and other identifiers"),
        ("free_text", "free-text notes, which often contain names and other identifiers"),
        ("session_note", "free-text notes, which often contain names and other identifiers"),
        ("ip_address", "an IP address, URL or user name"),
    ],
)
def test_identifier_column_names(column, label):
    assert identifier_label(column) == label


# --------------------------------------------------------------------------- fixtures


def test_email_column():
    file, findings = _screen("email_column.csv")
    assert len(findings) == 1
    f = findings[0]
    assert (f.file, f.row, f.column, f.value, f.action) == (
        file,
        3,
        "email",
        "j***@***.org",
        "stop",
    )
    assert f.message() == (
        f"{file}, row 3, column 'email': value 'j***@***.org' looks like an email address "
        f"(a direct identifier); {REMOVE}"
    )


def test_email_in_innocuous_column_row_7_is_masked():
    path = BAD / "email_in_extra.csv"
    df, _ = read_table(path)
    with pytest.raises(InputErrors) as info:
        assert_deidentified(df, file=str(path))
    err = info.value
    assert len(err.findings) == 1
    assert err.findings[0].message() == (
        f"{path}, row 7, column 'extra': value 'j***@***.org' looks like an email address "
        f"(a direct identifier); {REMOVE}"
    )
    text = str(err)
    assert text.startswith(
        f"{path}: the de-identification screen found 1 possible direct identifier; nothing has been written:\n  1. "
    )
    assert "jo.bloggs" not in text and "mail.org" not in text  # never printed back


def test_free_text_notes_column():
    file, findings = _screen("free_text_notes.csv")
    assert len(findings) == 1
    f = findings[0]
    assert (f.row, f.column) == (2, "notes")
    assert f.value == "<free text: 11 words, 62 characters>"
    assert f.message() == (
        f"{file}, row 2, column 'notes': value '<free text: 11 words, 62 characters>' is free "
        "text (4 of 5 values have 4 or more words or more than 40 characters) and may contain "
        "names or other identifiers; remove the column, or check it by hand and list it under "
        "cleaning: deidentification: allowed_columns in the config."
    )
    assert "Mary" not in f.message()


def test_notes_column_with_short_values_is_flagged_by_name():
    df = pd.DataFrame({"patient": ["P1", "P2"], "notes": ["fine", "ok"], SOURCE_ROW: [2, 3]})
    (f,) = screen_identifiers(df, file="n.csv")
    assert f.message() == (
        "n.csv, row 2, column 'notes': value 'f***' is in a column whose name suggests free-text "
        "notes, which often contain names and other identifiers (a direct identifier); " + REMOVE
    )


def test_phone_number():
    file, findings = _screen("phone_number.csv")
    assert len(findings) == 1
    assert findings[0].message() == (
        f"{file}, row 4, column 'info': value '+** **** ****23' looks like a telephone number "
        f"(a direct identifier); {REMOVE}"
    )


def test_full_date_column_and_opt_in():
    file, findings = _screen("visit_date.csv")
    assert len(findings) == 1
    assert findings[0].message() == (
        f"{file}, row 2, column 'visit_date': value '2024-**-**' looks like a full date (day, "
        "month and year: an identifier under HIPAA Safe Harbor); keep only the year, or opt the "
        "column in to conversion to days since intake (cleaning: deidentification: "
        "dates_to_days in the config)."
    )
    _, findings = _screen("visit_date.csv", date_columns_to_days=["visit_date"])
    assert findings == []


def test_allowed_columns_are_skipped():
    _, findings = _screen("free_text_notes.csv", allowed_columns=["notes"])
    assert findings == []


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "value, kind, masked",
    [
        ("jane.doe@example.org", "email", "j***@***.org"),
        ("please mail J.Smith+x@nhs.net today", "email", "J***@***.net"),
        ("+44 7700 900123", "phone", "+** **** ****23"),
        ("+1 (555) 123-4567", "phone", "+* (***) ***-**67"),
        ("(555) 123-4567", "phone", "(***) ***-**67"),
        ("555-123-4567", "phone", "***-***-**67"),
        ("555.123.4567", "phone", "***.***.**67"),
        ("020 7946 0958", "phone", "*** **** **58"),
        ("07700 900123", "phone", "***** ****23"),
        ("07700900123", "phone", "*********23"),
        ("2024-03-05", "date", "2024-**-**"),
        ("2024-03-05T10:30:00", "date", "2024-**-**"),
        ("05/03/2024", "date", "**/**/2024"),
        ("5.3.2024", "date", "*.*.2024"),
        ("5 March 2024", "date", "* M*** 2024"),
        ("seen on March 5, 2024", "date", "M*** *, 2024"),
        ("12 High Street", "street", "** H*** Street"),
        ("Flat 2, 221b Baker St", "street", "**** B*** St"),
        ("192.168.0.1", "ip", "192.168.*.*"),
    ],
)
def test_identifier_values_found_and_masked(value, kind, masked):
    df = pd.DataFrame({"extra": ["x", value, "y"], SOURCE_ROW: [2, 5, 9]})
    findings = screen_identifiers(df, file="v.csv")
    assert [(f.row, f.column, f.value) for f in findings] == [(5, "extra", masked)]
    assert value not in findings[0].message()
    assert mask_value(value, kind) == masked


@pytest.mark.parametrize(
    "value",
    [
        "P0012",
        "T01",
        "3",
        "4",
        "12",
        "26-35",
        "123456789",
        "5551234567",
        "2024",
        "03/2024",
        "3.14159265358",
        "1 2 3 4 5 6 7 8 9",
        "12.5",
        "-99",
        "CBT",
        "AB12CD",
        "10-15",
        "1,234,567",
        "session 3",
        "phq9_03",
    ],
)
def test_non_identifier_values_are_not_flagged(value):
    df = pd.DataFrame({"extra": [value, value]})
    assert screen_identifiers(df, file="v.csv") == []


def test_postcodes_only_in_location_columns():
    df = pd.DataFrame(
        {
            "home_area": ["", "SW1A 1AA", "LS1 4AP"],
            "residence_zip": ["90210", "10001-1234", None],
            "code": ["SW1A 1AA", "AB12CD", "X"],
        }
    )
    findings = screen_identifiers(df, file="p.csv")
    msgs = _messages(findings)
    assert msgs[0] == (
        "p.csv, row 3, column 'home_area': value 'SW** ***' looks like a full postcode (a "
        "geographic identifier); remove the column or reduce it to a larger area (e.g. region) "
        "before running."
    )
    assert msgs[1] == (
        "p.csv, row 2, column 'residence_zip': value '902**' looks like a ZIP code (a geographic "
        "identifier); remove the column or keep at most the first 3 digits before running."
    )
    assert [f.column for f in findings] == ["home_area", "residence_zip"]  # 'code' not flagged


def test_datetime_dtype_column_is_a_full_date():
    df = pd.DataFrame({"patient": ["P1", "P2"], "visit": pd.to_datetime([None, "2024-03-05"]), SOURCE_ROW: [2, 3]})
    (f,) = screen_identifiers(df, file="d.xlsx")
    assert (f.row, f.column, f.value) == (3, "visit", "2024-**-**")
    assert "is a full date" in f.reason
    assert screen_identifiers(df, file="d.xlsx", date_columns_to_days=["visit"]) == []


def test_categorical_and_object_columns_are_screened():
    df = pd.DataFrame(
        {
            "a": pd.Categorical(["x", "sam@example.org"]),
            "b": pd.Series([1, "+44 7700 900123"], dtype=object),
        }
    )
    findings = screen_identifiers(df, file="o.sav")
    assert [(f.row, f.column, f.value) for f in findings] == [
        (3, "a", "s***@***.org"),
        (3, "b", "+** **** ****23"),
    ]


def test_name_column_reports_first_filled_row_masked_and_empty_column_warns():
    df = pd.DataFrame(
        {
            "therapist_name": [None, "Dr Jane Smith", "Bob"],
            "email": [None, None, None],
            SOURCE_ROW: [2, 3, 4],
        }
    )
    findings = screen_identifiers(df, file="t.csv")
    assert _messages(findings) == [
        "t.csv, row 3, column 'therapist_name': value 'D***' is in a column whose name suggests a "
        f"person's name (a direct identifier); {REMOVE}",
        "t.csv, column 'email': the column name suggests an email address (a direct identifier) "
        "but the column is empty; drop it before sharing the data.",
    ]
    assert [f.action for f in findings] == ["stop", "warn"]
    with pytest.raises(InputErrors) as info:
        assert_deidentified(df, file="t.csv")
    assert len(info.value.findings) == 1  # the warning does not stop the run
    warnings = assert_deidentified(df[["email", SOURCE_ROW]], file="t.csv")
    assert [f.column for f in warnings] == ["email"]


def test_rows_default_to_position_plus_two_without_source_row():
    df = pd.DataFrame({"extra": ["a", "b", "x@y.com"]})
    (f,) = screen_identifiers(df, file="f.csv")
    assert f.row == 4


def test_free_text_threshold_ignores_repeated_category_labels():
    df = pd.DataFrame({"condition": ["Mixed anxiety and depressive disorder"] * 50 + ["depression"] * 50})
    assert screen_identifiers(df, file="c.csv") == []


def test_screen_is_vectorised_on_large_frames():
    n = 200_000
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "patient": [f"P{i:05d}" for i in rng.integers(0, 5000, n)],
            "wai_01": rng.integers(1, 8, n).astype(str),
            "extra": ["a"] * (n - 1) + ["late@example.org"],
        }
    ).astype("str")
    findings = screen_identifiers(df, file="big.csv")
    assert [(f.row, f.column) for f in findings] == [(n + 1, "extra")]


# --------------------------------------------------------------------------- fixes


def test_dates_to_days_since_intake():
    df, _ = read_table(BAD / "visit_date.csv")
    days = dates_to_days_since_intake(df, "visit_date", "patient")
    assert days.tolist() == [0, 7, 0, 14]
    assert str(days.dtype) == "Int64" and days.name == "days_since_intake"
    assert days.index.equals(df.index)


def test_dates_to_days_since_intake_formats_missing_and_errors():
    df = pd.DataFrame(
        {
            "patient": ["P1", "P1", "P2", "P2"],
            "visit": ["12/03/2024", "05/03/2024", None, "01/01/2024"],
            SOURCE_ROW: [2, 3, 4, 5],
        }
    )
    days = dates_to_days_since_intake(df, "visit", "patient", format="%d/%m/%Y")
    assert days.tolist()[:2] == [7, 0] and pd.isna(days.iloc[2]) and days.iloc[3] == 0
    with pytest.raises(InputError) as info:
        dates_to_days_since_intake(df, "visit", "patient", file="v.csv")
    assert str(info.value) == (
        "v.csv, row 2, column 'visit': value '**/**/2024' cannot be read as a date in the form "
        "YYYY-MM-DD (ISO 8601) (3 values in this column); fix the values or set the date format "
        "for this column in the config (e.g. '%d/%m/%Y')."
    )
    native = pd.DataFrame({"patient": ["P1", "P1"], "visit": pd.to_datetime(["2024-01-01 09:00", "2024-01-03 08:00"])})
    assert dates_to_days_since_intake(native, "visit", "patient").tolist() == [0, 2]


def test_topcode_age_numeric_and_text():
    ages = pd.Series([34, 91, 89, 104], name="age")
    out, findings = topcode_age(ages, file="p.csv", source_rows=[2, 3, 4, 5])
    assert out.tolist() == [34, 90, 89, 90] and out.dtype == ages.dtype
    (f,) = findings
    assert (f.file, f.row, f.column, f.value, f.action) == (
        "p.csv",
        3,
        "age",
        ">89",
        "top-coded to 90",
    )
    assert not f.is_stopping
    assert f.message() == (
        "p.csv, row 3, column 'age': value '>89' is an age over 89 (2 values in this column); "
        "ages over 89 are identifiers under HIPAA Safe Harbor and were top-coded to 90."
    )
    text = pd.Series(["34", "95", None, "x"], name="age", dtype="str")
    out, findings = topcode_age(text)
    assert out.tolist()[:2] == ["34", "90"] and out.iloc[3] == "x"
    assert findings[0].row == 3
    same, none = topcode_age(pd.Series([20, 30]))
    assert none == [] and same.tolist() == [20, 30]


def test_small_cells():
    patients = pd.DataFrame(
        {
            "patient": [f"P{i}" for i in range(12)],
            "site": ["A"] * 10 + ["B"] * 2,
            "age_band": ["26-35"] * 12,
            "sex": ["female"] * 6 + ["male"] * 4 + ["female", "female"],
        }
    )
    findings = small_cells(patients, file="patients.csv")
    assert _messages(findings) == [
        "patients.csv, column 'site, age_band, sex': value 'site=A, age_band=26-35, sex=male' is "
        "a group of only 4 patients (fewer than k=5); people in small groups can be "
        "re-identified: consider coarser age bands, merging small sites, or suppressing these rows.",
        "patients.csv, column 'site, age_band, sex': value 'site=B, age_band=26-35, sex=female' "
        "is a group of only 2 patients (fewer than k=5); people in small groups can be "
        "re-identified: consider coarser age bands, merging small sites, or suppressing these rows.",
    ]
    assert all(f.action == "warn" for f in findings)
    assert small_cells(patients, k=2) == []
    assert small_cells(patients, quasi_identifiers=("site",), k=3)[0].value == "site=B"
    assert small_cells(patients.drop(columns=["site", "age_band", "sex"])) == []
