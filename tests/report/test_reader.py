"""The report as a reader sees it: the main report and the supplement name no column or term
identifier and no internal file name in their text, and the manuscript tables (.docx re-opened
by python-docx, .tex) hold the same numbers as the model tables."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from alliance.report import manuscript as M
from alliance.report import terms as TL
from alliance.report import wording as W
from report.test_report import render_run, truth_file
from testkit.trials import make_trial

#: a file name of the workflow's (results, config, data, docs)
FILE_NAME = re.compile(r"\b[\w./-]+\.(?:csv|json|parquet|ya?ml|png|svg|md|smk|py|j2|tsv)\b")


class VisibleText(HTMLParser):
    """The text a reader sees: no <style>, and (``skip_code``) none of <code> / <pre>, where the
    supplement shows formulas and the configuration as they were run."""

    def __init__(self, skip_code: bool) -> None:
        super().__init__()
        self.skip = {"style", "script"} | ({"code", "pre"} if skip_code else set())
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.skip:
            self.depth += 1
        for key, value in attrs:
            if key in ("alt", "title") and value and not self.depth:
                self.parts.append(value)

    def handle_endtag(self, tag):
        if tag in self.skip:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


def visible_text(html: str, skip_code: bool = False) -> str:
    parser = VisibleText(skip_code)
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def identifiers(run: dict) -> set[str]:
    """The names a reader should never see: the analysis table's columns and the models' terms and
    names that are identifiers (with an underscore or a colon), and the models' names."""
    names = set(run["trial"]["analysis"].columns) | set(run["trial"]["patients"].columns)
    for fit in run["context"]["models"]:
        names |= set(fit["spec"].get("fixed", [])) | {fit["name"], fit["spec"].get("outcome", "")}
        names |= {str(r["group"]) for r in fit["variance"]}
    return {n for n in names if "_" in n or ":" in n}


def leaks(text: str, names: set[str]) -> list[str]:
    """The identifiers and file names found in ``text`` (as whole words)."""
    found = [n for n in sorted(names) if re.search(rf"(?<![\w:]){re.escape(n)}(?![\w:])", text)]
    return found + FILE_NAME.findall(text)


@pytest.fixture(scope="module")
def run(tmp_path_factory, benchmark) -> dict:
    """A report and its supplement rendered from a small trial, and the manuscript tables of the run."""
    root = tmp_path_factory.mktemp("reader")
    trial = make_trial(root / "raw")
    rendered = render_run(root, trial, trial["fitted"], benchmark)
    fits = [m for m in rendered["context"]["models"]]
    fixed = {m["name"]: pd.read_csv(rendered["results"] / "models" / m["name"] / "fixed_effects.csv") for m in fits}
    raw_fits = [trial["fitted"][m["name"]]["fit"] for m in fits]
    tables = M.manuscript_tables(
        pd.read_csv(rendered["results"] / "report" / "table1.csv"),
        raw_fits,
        [fixed[m["name"]] for m in fits],
        primary_model="same_session",
        benchmark=benchmark,
    )
    outputs = {f"{n}_{k}": root / f"{n}.{k}" for n in ("table1", "primary_models") for k in ("docx", "tex")}
    M.write_manuscript_tables(tables, outputs)
    return {**rendered, "outputs": outputs, "fixed": fixed}


def test_the_main_report_names_no_identifier_or_file(run):
    text = visible_text(run["html"])
    assert leaks(text, identifiers(run)) == []
    assert "Alliance (within patient)" in text and "(check)" not in text and "§" not in text


def test_the_supplement_names_identifiers_only_in_code(run):
    text = visible_text(run["supplement"], skip_code=True)
    found = leaks(text, identifiers(run))
    assert found == [], [(n, text[max(0, text.find(n) - 80) : text.find(n) + 40]) for n in found]


def test_the_leak_check_finds_an_identifier_and_a_file_name(run):
    html = run["html"].replace("</body>", "<p>see alliance_within_patient in fixed_effects.csv</p></body>")
    assert leaks(visible_text(html), identifiers(run)) == ["alliance_within_patient", "fixed_effects.csv"]


def test_term_labels_default_and_follow_the_config():
    assert TL.term_label("therapist:patient") == "Patient (within therapist)"
    assert TL.term_label("wai_cwc") == "Alliance (within patient)"
    assert TL.term_label("dropout_flag") == "Dropout flag"
    assert TL.term_label("session_c:therapy[T.PDT]") == "Session (centred) × Therapy: PDT"
    labels = TL.term_labels({"report": {"term_labels": {"session_c": "Session number − mean"}}})
    assert TL.term_label("session_c", labels) == "Session number − mean"
    assert TL.term_labels({}) == {}


def _numbers(cells: list[str]) -> list[float]:
    return [W.parse_number(x) for c in cells for x in re.findall(r"[−-]?\d[\d,]*\.?\d*", c)]


def test_docx_tables_hold_the_model_tables_numbers(run):
    docx_tables = M.read_docx_tables(run["outputs"]["primary_models_docx"])
    fixed = run["fixed"]["same_session"]
    table = docx_tables[0]
    assert table[0] == ["Term", "b", "SE", "df", "p", "95% CI"]  # the default engine gives Satterthwaite df
    shown = {row[0]: row for row in table[1:]}
    for r in fixed.to_dict(orient="records"):
        row = shown[TL.term_label(r["term"])]
        assert W.parse_number(row[1]) == pytest.approx(round(r["estimate"], 2), abs=1e-9)
        assert W.parse_number(row[2]) == pytest.approx(round(r["se"], 2), abs=1e-9)
        low, high = _numbers([row[-1]])
        assert (low, high) == (pytest.approx(round(r["ci_low"], 2)), pytest.approx(round(r["ci_high"], 2)))
        assert row[-2] == M.apa_p(r["p"])
    t1 = M.read_docx_tables(run["outputs"]["table1_docx"])[0]
    table1 = pd.read_csv(run["results"] / "report" / "table1.csv")
    total = next(row for row in t1 if row[:2] == ["all", "all"])
    everyone = table1[(table1["therapy"] == "all") & (table1["condition"] == "all")].iloc[0]
    assert int(W.parse_number(total[2])) == everyone["patients"]
    assert _numbers([total[4]]) == [round(everyone["sessions_mean"], 1), round(everyone["sessions_sd"], 1)]


def test_latex_tables_hold_the_same_numbers_as_the_docx(run):
    for name in ("table1", "primary_models"):
        lines = Path(run["outputs"][f"{name}_tex"]).read_text().splitlines()
        docx_tables = M.read_docx_tables(run["outputs"][f"{name}_docx"])
        assert sum(line.startswith("\\begin{tabular}") for line in lines) == len(docx_tables)
        for row in [r for t in docx_tables for r in t]:
            plain = " & ".join(M.latex_escape(c) for c in row) + " \\\\"
            bold = " & ".join(f"\\textbf{{{M.latex_escape(c)}}}" for c in row) + " \\\\"
            assert plain in lines or bold in lines, row


def test_manuscript_tables_are_byte_identical_when_written_again(run, tmp_path):
    fits = run["context"]["models"]
    tables = M.manuscript_tables(
        pd.read_csv(run["results"] / "report" / "table1.csv"),
        [run["trial"]["fitted"][m["name"]]["fit"] for m in fits],
        [run["fixed"][m["name"]] for m in fits],
        primary_model="same_session",
        benchmark={"ci_low": 0.256, "ci_high": 0.299},
    )
    again = {k: tmp_path / Path(v).name for k, v in run["outputs"].items()}
    M.write_manuscript_tables(tables, again)
    for key, path in run["outputs"].items():
        assert Path(path).read_bytes() == again[key].read_bytes(), key


def test_the_primary_models_are_the_main_model_and_the_benchmarks_design(run):
    tables = M.read_docx_tables(run["outputs"]["primary_models_docx"])
    assert len(tables) == 2  # same_session, then the patient-level early_alliance model
    assert any("Alliance at session 3" == row[0] for row in tables[1])


def test_design_and_term_labels_are_optional_with_schema_defaults():
    import copy

    import yaml
    from snakemake.utils import validate
    from snakemake_interface_common.exceptions import WorkflowError

    from testkit import ROOT

    schema = ROOT / "workflow/schemas/config.schema.yaml"
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["report"]["benchmark"].pop("design", None)
    config["report"].pop("term_labels", None)
    filled = copy.deepcopy(config)
    validate(filled, str(schema))
    assert filled["report"]["benchmark"]["design"] == (
        "patient-level associations of alliance with end-of-treatment outcome"
    )
    assert filled["report"]["term_labels"] == {}
    labelled = copy.deepcopy(config)
    labelled["report"]["term_labels"] = {"session_c": "Session (centred at the mean)", "therapist:patient": "Patient"}
    validate(labelled, str(schema))
    labelled["report"]["term_labels"] = {"session_c": 3}
    with pytest.raises(WorkflowError, match="Error validating config file"):
        validate(labelled, str(schema))


def test_the_main_report_sets_each_estimate_beside_its_truth(run):
    import yaml

    estimands = yaml.safe_load(truth_file(run["trial"]).read_text())["estimands"]
    truth = run["context"]["suite_truth"]
    rows = {(r["model"], r["term"]): r for r in truth["rows"]}
    fixed = run["fixed"]["same_session"].set_index("term")
    for term in ("alliance_within_patient", "session_c"):
        row, value = rows[("same_session", term)], estimands["same_session"][term]
        assert row["truth"] == value and row["estimate"] == fixed.loc[term, "estimate"]
        assert row["covers"] == bool(fixed.loc[term, "ci_low"] <= value <= fixed.loc[term, "ci_high"])
    assert "early_alliance" in truth["not_estimands"]  # its truth names no single parameter: not scored
    assert "three_level" in truth["not_estimands"]  # a lagged specification: beside the RI-CLPM's truth instead
    # ... and shown apart, beside the generating value it is compared with, labelled as biased
    assert [(r["model"], r["term"]) for r in truth["biased"]] == [
        ("three_level", "alliance_within_patient"),
        ("three_level", "symptoms"),
    ]
    assert not {r["model"] for r in truth["rows"]} & {r["model"] for r in truth["biased"]}
    text = visible_text(run["html"])
    # the main report says where they are; the supplement's lagged section shows them, each labelled
    assert "The 1 lagged multilevel specification of the suite is biased by design" in text
    assert "Specifications with a known bias, beside the generating value" not in text
    supplement = visible_text(run["supplement"])
    assert "Specifications with a known bias, beside the generating value" in supplement
    assert supplement.count("known bias") >= len(truth["biased"])
    assert "8. Estimates beside the known truth" in text
    assert f"{sum(r['covers'] for r in truth['rows'])} of {len(truth['rows'])} 95% CIs cover the true value" in text
