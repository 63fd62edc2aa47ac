"""Tests for alliance.intake.readers.read_table and the error types in alliance.intake.findings."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.intake.findings import SOURCE_ROW, Finding, InputError, InputErrors, findings_to_frame, raise_findings
from alliance.intake.readers import DEFAULT_MISSING_CODES, column_letter, read_table

BAD = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


# --------------------------------------------------------------------------- errors.py


def test_input_error_is_one_sentence_with_all_fields():
    err = InputError(
        "looks like an email address (a direct identifier); remove the column or map it out before running.",
        file="data/raw/x.csv",
        row=14,
        column="email",
        value="a@b.org",
    )
    assert str(err) == (
        "data/raw/x.csv, row 14, column 'email': value 'a@b.org' looks like an email address "
        "(a direct identifier); remove the column or map it out before running."
    )
    assert (err.file, err.row, err.column, err.value) == ("data/raw/x.csv", 14, "email", "a@b.org")
    assert isinstance(err, Exception)


def test_input_error_without_location_and_added_full_stop():
    assert str(InputError("something is wrong")) == "Something is wrong."
    assert str(InputError("the file is empty", file="a.csv")) == "a.csv: the file is empty."


def test_input_error_survives_pickling():
    err = InputError("bad", file="a.csv", row=3, column="x", value="v")
    back = pickle.loads(pickle.dumps(err))
    assert (back.file, back.row, back.column, back.value, str(back)) == (
        "a.csv",
        3,
        "x",
        "v",
        str(err),
    )
    many = InputErrors([err, InputError("worse", file="a.csv", row=4)])
    back = pickle.loads(pickle.dumps(many))
    assert str(back) == str(many) and len(back.findings) == 2


def test_input_errors_numbered_list_capped_at_50():
    findings = [Finding("a.csv", r, "x", str(r), "is wrong", "stop") for r in range(2, 62)]
    err = InputErrors(findings)
    text = str(err)
    lines = text.splitlines()
    assert lines[0] == "60 problems in the input data stop the run:"
    assert lines[1] == "  1. a.csv, row 2, column 'x': value '2' is wrong."
    assert lines[50] == "  50. a.csv, row 51, column 'x': value '51' is wrong."
    assert lines[51] == "  ... and 10 more."
    assert len(lines) == 52
    assert isinstance(err, InputError) and err.file == "a.csv" and len(err) == 60


def test_raise_findings_and_frame():
    warn = Finding("a.csv", None, "age", ">89", "was top-coded", "top-coded to 90")
    raise_findings([warn])  # nothing stopping: no exception
    stop = Finding("a.csv", 5, "email", "j***@***.org", "looks like an email address", "stop")
    with pytest.raises(InputError) as info:
        raise_findings([warn, stop])
    assert not isinstance(info.value, InputErrors)
    assert str(info.value) == "a.csv, row 5, column 'email': value 'j***@***.org' looks like an email address."
    with pytest.raises(InputErrors):
        raise_findings([stop, stop])

    frame = findings_to_frame([warn, stop, InputError("bad header", file="b.csv", row=1)])
    assert list(frame.columns) == ["file", "row", "column", "value", "reason", "action"]
    assert str(frame["row"].dtype) == "Int64"
    assert frame["row"].tolist()[1:] == [5, 1] and pd.isna(frame["row"].iloc[0])
    assert frame["action"].tolist() == ["top-coded to 90", "stop", "stop"]
    assert findings_to_frame([]).shape == (0, 6)


def test_column_letter():
    assert [column_letter(i) for i in (1, 2, 26, 27, 52, 703)] == ["A", "B", "Z", "AA", "AZ", "AAA"]


# --------------------------------------------------------------------------- csv happy path


def test_clean_csv_is_read_as_strings_with_source_rows():
    path = BAD / "clean.csv"
    df, meta = read_table(path)
    assert list(df.columns) == [
        "patient",
        "therapist",
        "site",
        "session",
        "wai_01",
        "phq9_03",
        "therapy",
        "condition",
        "age_band",
        "sex",
        "end_reason",
        SOURCE_ROW,
    ]
    for col in df.columns.drop(SOURCE_ROW):
        assert pd.api.types.is_string_dtype(df[col].dtype), col
    assert df["session"].tolist() == ["3", "1", "2"]  # not parsed as numbers
    assert df["phq9_03"].tolist() == ["2", "1", "0"]
    assert df[SOURCE_ROW].tolist() == [2, 3, 4]
    assert df[SOURCE_ROW].dtype == np.int64
    assert pd.isna(df.loc[2, "end_reason"])  # "" is a missing code
    assert meta == {
        "format": "csv",
        "n_rows": 3,
        "columns": list(df.columns.drop(SOURCE_ROW)),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def test_header_whitespace_bom_blank_lines_quotes_and_missing_codes(tmp_path):
    path = _write(
        tmp_path / "x.csv",
        '\ufeff patient , wai_01 ,note,\nP1,4,"a, b",\n\nP2,NA,"two\nlines",\n,,,\nP3, n/a ,-99,\n',
    )
    df, meta = read_table(path)
    assert list(df.columns) == [
        "patient",
        "wai_01",
        "note",
        SOURCE_ROW,
    ]  # empty trailing column dropped
    assert df["patient"].tolist() == ["P1", "P2", "P3"]
    # blank record (row 3) and all-empty record (row 5) dropped without renumbering
    assert df[SOURCE_ROW].tolist() == [2, 4, 6]
    assert df["note"].tolist() == ["a, b", "two\nlines", "-99"]
    assert df["wai_01"].isna().tolist() == [False, True, True]
    assert meta["n_rows"] == 3

    df2, _ = read_table(path, missing_codes=("-99", "NA", ""))
    assert pd.isna(df2.loc[2, "note"]) and df2.loc[2, "wai_01"] == " n/a "
    df3, _ = read_table(path, missing_codes=())
    assert df3["wai_01"].tolist() == ["4", "NA", " n/a "]
    assert "NA" in DEFAULT_MISSING_CODES


def test_tsv_and_explicit_delimiter(tmp_path):
    df, meta = read_table(BAD / "tab_separated.csv", format="tsv")
    assert meta["format"] == "tsv" and df["wai_01"].tolist() == ["4"]
    df, _ = read_table(BAD / "semicolon_separated.csv", delimiter=";")
    assert df["patient"].tolist() == ["P0001", "P0002"]
    df, _ = read_table(_write(tmp_path / "p.tsv", "a\tb\n1\t2\n"))
    assert df[["a", "b"]].values.tolist() == [["1", "2"]]


def test_blank_header_over_data_is_kept_as_unnamed(tmp_path):
    df, meta = read_table(_write(tmp_path / "u.csv", "patient,,wai_01\nP1,x,4\n"))
    assert meta["columns"] == ["patient", "Unnamed: 1", "wai_01"]


# --------------------------------------------------------------------------- csv errors


def test_semicolon_file_read_as_csv():
    path = BAD / "semicolon_separated.csv"
    with pytest.raises(InputError) as info:
        read_table(path)
    err = info.value
    assert (err.file, err.row) == (str(path), 1)
    assert str(err) == (
        f"{path}, row 1: value 'patient;therapist;session;wai_01' is the whole header read as a "
        "single column, but it contains ';' 3 times: the file looks semicolon-separated; "
        "set delimiter: ';' for this file in the config."
    )


def test_tab_file_read_as_csv():
    path = BAD / "tab_separated.csv"
    with pytest.raises(InputError) as info:
        read_table(path)
    assert "the file looks tab-separated; set format: tsv (or delimiter: '\\t')" in str(info.value)


def test_duplicated_header_names_both_positions():
    path = BAD / "duplicated_header.csv"
    with pytest.raises(InputError) as info:
        read_table(path)
    err = info.value
    assert (err.file, err.row, err.column) == (str(path), 1, "session")
    assert str(err) == (
        f"{path}, row 1, column 'session': the header name appears twice, in columns 2 (B) "
        "and 4 (D); rename or remove one so that every column has a unique name."
    )


def test_duplicates_after_stripping_and_several_at_once(tmp_path):
    path = _write(tmp_path / "d.csv", "a, a ,b,b,b\n1,2,3,4,5\n")
    with pytest.raises(InputErrors) as info:
        read_table(path)
    msgs = [f.message() for f in info.value.findings]
    assert msgs == [
        f"{path}, row 1, column 'a': the header name appears twice, in columns 1 (A) and 2 (B); "
        "rename or remove one so that every column has a unique name.",
        f"{path}, row 1, column 'b': the header name appears 3 times, in columns 3 (C), 4 (D) "
        "and 5 (E); rename or remove one so that every column has a unique name.",
    ]


def test_ragged_rows_all_reported():
    path = BAD / "ragged_rows.csv"
    with pytest.raises(InputErrors) as info:
        read_table(path)
    err = info.value
    assert [(f.file, f.row) for f in err.findings] == [(str(path), 4), (str(path), 6)]
    assert err.findings[0].message() == (
        f"{path}, row 4: the row has 4 fields but the header has 3; a value probably contains "
        "the delimiter ',' without quotes; put such values in double quotes or remove the stray "
        "delimiter."
    )
    assert err.findings[1].message() == (
        f"{path}, row 6: the row has 2 fields but the header has 3; a value or delimiter is "
        "missing; leave an empty field for a missing value."
    )
    assert str(err).startswith(f"{path}: 2 rows do not have 3 fields like the header:\n  1. ")


def test_ragged_row_after_multiline_value_names_line(tmp_path):
    path = _write(tmp_path / "m.csv", 'a,b\n"x\ny",1\n2\n')
    with pytest.raises(InputError) as info:
        read_table(path)
    assert info.value.row == 3
    assert "(it starts on line 4 of the file)" in str(info.value)


def test_empty_file_zero_bytes():
    path = BAD / "empty.csv"
    with pytest.raises(InputError) as info:
        read_table(path)
    assert str(info.value) == (
        f"{path}: the file is empty (0 bytes): it has no header and no data rows; check that the export finished."
    )


def test_whitespace_only_file(tmp_path):
    path = _write(tmp_path / "w.csv", "\n  \n")
    with pytest.raises(InputError, match=r"the file is empty: its 4 bytes are only blank lines"):
        read_table(path)


def test_header_only_file():
    path = BAD / "header_only.csv"
    with pytest.raises(InputError) as info:
        read_table(path)
    assert str(info.value) == (
        f"{path}: the file has a header row (3 columns: patient, session, wai_01) but no data rows."
    )


def test_latin1_file_declared_utf8():
    path = BAD / "latin1_declared_utf8.csv"
    raw = path.read_bytes()
    offset = raw.index(b"\xe9")
    with pytest.raises(InputError) as info:
        read_table(path)
    err = info.value
    assert (err.file, err.row, err.value) == (str(path), 3, "0xE9")
    assert str(err) == (
        f"{path}, row 3: value '0xE9' is not valid utf-8 (byte offset {offset}, line 3, "
        "character 13): the file was probably saved in another encoding; set encoding: latin-1 "
        "(or cp1252 for files from Windows Excel) for this file in the config, or re-save the "
        "file as UTF-8."
    )
    df, _ = read_table(path, encoding="latin-1")
    assert df["therapy"].tolist() == ["CBT", "thérapie"]


def test_unknown_encoding_name():
    with pytest.raises(InputError, match="'utf-9' set in the config is not a known text encoding"):
        read_table(BAD / "clean.csv", encoding="utf-9")


def test_missing_file_and_directory(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(InputError) as info:
        read_table(missing)
    assert str(info.value).startswith(f"{missing}: the file does not exist; check the path in the config")
    with pytest.raises(InputError, match="is a directory"):
        read_table(tmp_path, format="csv")


def test_unknown_format(tmp_path):
    path = _write(tmp_path / "data.txt", "a\n1\n")
    with pytest.raises(InputError) as info:
        read_table(path)
    assert str(info.value).startswith(
        f"{path}: cannot tell the file format from the extension '.txt'; set format: to one of "
        "csv, tsv, excel, spss, parquet"
    )
    with pytest.raises(InputError, match=r"unknown format 'stata' in the config"):
        read_table(path, format="stata")
    df, meta = read_table(path, format="csv")
    assert meta["format"] == "csv" and df["a"].tolist() == ["1"]


def test_reserved_source_row_column(tmp_path):
    path = _write(tmp_path / "r.csv", "a,_source_row\n1,2\n")
    with pytest.raises(InputError, match="'_source_row' is reserved"):
        read_table(path)


def test_bad_delimiter_config(tmp_path):
    with pytest.raises(InputError, match="must be a single character"):
        read_table(BAD / "clean.csv", delimiter=";;")


# --------------------------------------------------------------------------- excel


def _workbook(path: Path) -> Path:
    import datetime as dt

    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "sessions"
    ws.append([" patient", "session", "wai_01", "visit", "therapy"])
    ws.append(["P0001", 1, 4, dt.datetime(2024, 3, 5), "CBT"])
    ws.append([None, None, None, None, None])
    ws.append(["P0002", 2, 5.5, dt.datetime(2024, 3, 12), "NA"])
    other = wb.create_sheet("patients")
    other.append(["patient", "age_band"])
    other.append(["P0001", "26-35"])
    empty = wb.create_sheet("empty_one")
    empty.append(["patient", "session"])
    wb.save(path)
    return path


def test_excel_native_types_and_sheets(tmp_path):
    path = _workbook(tmp_path / "study.xlsx")
    df, meta = read_table(path)
    assert meta["format"] == "excel" and meta["sheet"] == "sessions"
    assert meta["columns"] == ["patient", "session", "wai_01", "visit", "therapy"]
    assert meta["n_rows"] == 2
    assert df[SOURCE_ROW].tolist() == [2, 4]  # sheet rows; the empty row 3 is dropped
    assert pd.api.types.is_integer_dtype(df["session"].dtype)
    assert pd.api.types.is_float_dtype(df["wai_01"].dtype)
    assert pd.api.types.is_datetime64_any_dtype(df["visit"].dtype)
    assert df["therapy"].tolist()[0] == "CBT" and pd.isna(df["therapy"].iloc[1])
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()

    by_name, meta2 = read_table(path, sheet="patients")
    by_index, meta3 = read_table(path, sheet=1)
    assert meta2["sheet"] == meta3["sheet"] == "patients"
    assert by_name["age_band"].tolist() == by_index["age_band"].tolist() == ["26-35"]


def test_excel_errors(tmp_path):
    path = _workbook(tmp_path / "study.xlsx")
    with pytest.raises(InputError) as info:
        read_table(path, sheet="Sheet9")
    assert str(info.value) == (
        f"{path}: has no sheet named 'Sheet9'; the sheets are 'sessions', 'patients', 'empty_one'."
    )
    with pytest.raises(InputError, match=r"sheet: 5 does not exist \(0 is the first sheet\)"):
        read_table(path, sheet=5)
    with pytest.raises(InputError) as info:
        read_table(path, sheet="empty_one")
    assert str(info.value) == (
        f"{path}: the sheet 'empty_one' has a header row (2 columns: patient, session) but no data rows."
    )
    broken = _write(tmp_path / "broken.xlsx", b"not a zip file")
    with pytest.raises(InputError, match="cannot be read as an Excel .xlsx workbook"):
        read_table(broken)
    old = _write(tmp_path / "old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest")
    with pytest.raises(InputError, match=r"old-style Excel .xls workbook.*save it as .xlsx or .csv"):
        read_table(old)


def test_excel_duplicate_header_and_offset_header(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws["B3"], ws["C3"], ws["D3"] = "patient", "wai_01", "wai_01"
    ws["B4"], ws["C4"], ws["D4"] = "P1", 3, 4
    path = tmp_path / "dup.xlsx"
    wb.save(path)
    with pytest.raises(InputError) as info:
        read_table(path)
    assert "column 'wai_01': the header name appears twice, in columns 3 (C) and 4 (D)" in str(info.value)

    ws["D3"] = "wai_02"
    wb.save(path)
    df, _ = read_table(path)
    assert df[SOURCE_ROW].tolist() == [4]  # real sheet row of the data
    assert df.columns.tolist() == ["patient", "wai_01", "wai_02", SOURCE_ROW]


# --------------------------------------------------------------------------- spss / parquet


def test_spss_value_and_variable_labels(tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    src = pd.DataFrame(
        {
            "patient": ["P0001", "P0002", "P0003"],
            "therapy": [1.0, 2.0, 1.0],
            "wai_01": [4.0, np.nan, 5.0],
        }
    )
    path = tmp_path / "study.sav"
    pyreadstat.write_sav(
        src,
        str(path),
        column_labels={
            "patient": "Patient code",
            "therapy": "Therapy type",
            "wai_01": "WAI item 1",
        },
        variable_value_labels={"therapy": {1: "CBT", 2: "PDT"}},
    )
    df, meta = read_table(path)
    assert df["therapy"].tolist() == ["CBT", "PDT", "CBT"]
    assert pd.api.types.is_float_dtype(df["wai_01"].dtype)
    assert df[SOURCE_ROW].tolist() == [2, 3, 4]
    assert meta["format"] == "spss" and meta["n_rows"] == 3
    assert meta["variable_labels"] == {
        "patient": "Patient code",
        "therapy": "Therapy type",
        "wai_01": "WAI item 1",
    }
    assert meta["value_labels"]["therapy"] == {1.0: "CBT", 2.0: "PDT"}
    assert set(meta) == {"format", "n_rows", "columns", "sha256", "variable_labels", "value_labels"}


def test_spss_missing_code_on_numbers_and_broken_file(tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    path = tmp_path / "codes.sav"
    pyreadstat.write_sav(pd.DataFrame({"patient": ["P1", "P2"], "wai_01": [4.0, -99.0]}), str(path))
    df, _ = read_table(path, missing_codes=("-99",))
    assert df["wai_01"].iloc[0] == 4.0 and pd.isna(df["wai_01"].iloc[1])
    broken = _write(tmp_path / "broken.sav", b"garbage")
    with pytest.raises(InputError, match="cannot be read as an SPSS .sav file"):
        read_table(broken)


def test_parquet(tmp_path):
    src = pd.DataFrame({"patient": ["P1", "P2"], "session": [1, 2], "wai_01": [4.5, 5.0]})
    path = tmp_path / "study.parquet"
    src.to_parquet(path)
    df, meta = read_table(path)
    assert meta["format"] == "parquet" and meta["n_rows"] == 2
    assert df["session"].dtype == np.int64 and df["wai_01"].tolist() == [4.5, 5.0]
    assert df[SOURCE_ROW].tolist() == [2, 3]

    indexed = tmp_path / "indexed.parquet"
    src.set_index("patient").to_parquet(indexed)
    df2, meta2 = read_table(indexed)
    assert meta2["columns"] == ["patient", "session", "wai_01"]

    empty = tmp_path / "empty.parquet"
    src.iloc[:0].to_parquet(empty)
    with pytest.raises(InputError) as info:
        read_table(empty)
    assert str(info.value) == (
        f"{empty}: the file has column definitions (3 columns: patient, session, wai_01) but no data rows."
    )
