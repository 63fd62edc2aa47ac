"""APA-style tables for a manuscript: Table 1 of the sample and the fixed effects of the primary
models, as Word (.docx, python-docx) and LaTeX (booktabs) files that can be pasted into a paper.

One table is built once as text cells (:class:`Table`) and written by both writers, so the
.docx and the .tex hold the same numbers, rounded as in the report (estimates and SEs to two
decimals, df to whole numbers, p in APA form: no leading zero, "< .001").  Term names are the
report's readable labels (``alliance.report.terms``).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from alliance.report.terms import term_label
from alliance.report.wording import fmt, is_missing


@dataclass
class Table:
    """One manuscript table: its number and title (APA: 'Table 1' in bold, the title in
    italics), the column headers, the rows of text cells and a note under the table."""

    number: int
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""
    bold_rows: list[int] = field(default_factory=list)


def apa_p(p: Any) -> str:
    """A p value in APA style: three decimals without the leading zero, '< .001' below .001.

    >>> apa_p(0.0341), apa_p(2e-9), apa_p(0.5)
    ('.034', '< .001', '.500')
    """
    if is_missing(p):
        return "–"
    p = float(p)
    return "< .001" if p < 0.001 else f"{p:.3f}".lstrip("0")


def _mean_sd(mean: Any, sd: Any) -> str:
    return f"{fmt(mean, 1)} ({fmt(sd, 1)})"


def table1_table(table1: pd.DataFrame, number: int = 1) -> Table:
    """Table 1 of the sample (the report's table1.csv) by therapy type and condition."""
    sex = [c for c in table1.columns if c.startswith("sex: ")]
    header = ["Therapy", "Condition", "Patients", "Therapists", "Sessions, M (SD)", "Baseline symptoms, M (SD)"]
    header += ["Dropout, %"] + (["Age, M (SD)"] if "age_mean" in table1.columns else [])
    header += [f"{c.removeprefix('sex: ').removesuffix(' %')}, %" for c in sex]
    rows, bold = [], []
    for k, r in enumerate(table1.to_dict(orient="records")):
        cells = [str(r["therapy"]), str(r["condition"]), fmt(r["patients"], 0), fmt(r["therapists"], 0)]
        cells += [_mean_sd(r["sessions_mean"], r["sessions_sd"]), _mean_sd(r["baseline_mean"], r["baseline_sd"])]
        cells += [fmt(r["dropout_pct"], 1)] + ([_mean_sd(r["age_mean"], r["age_sd"])] if "age_mean" in r else [])
        cells += [fmt(r[c], 1) for c in sex]
        rows.append(cells)
        if r["condition"] == "all":
            bold.append(k)
    note = (
        "Note. Baseline symptoms: the primary outcome at each patient's first scored session, on the common "
        "outcome scale. Percentages are of the cell's patients."
    )
    return Table(number, "Sample by Therapy Type and Condition", header, rows, note, bold)


def model_table(fit: dict[str, Any], fixed: pd.DataFrame, number: int, labels: dict[str, str] | None = None) -> Table:
    """The fixed effects of one model (its fixed_effects.csv) with b, SE, df (when the engine gives
    Satterthwaite df), p and the 95% CI, term names as the report shows them."""
    has_df = "df" in fixed.columns and fixed["df"].notna().any()
    header = ["Term", "b", "SE"] + (["df"] if has_df else []) + ["p", "95% CI"]
    rows = []
    for r in fixed.to_dict(orient="records"):
        cells = [term_label(r["term"], labels), fmt(r["estimate"], 2), fmt(r["se"], 2)]
        cells += [fmt(r["df"], 0)] if has_df else []
        cells += [apa_p(r["p"]), f"[{fmt(r['ci_low'], 2)}, {fmt(r['ci_high'], 2)}]"]
        rows.append(cells)
    info = fit.get("fit") or {}
    test = "Satterthwaite t tests" if has_df else "Wald z tests"
    outcome = term_label((fit.get("spec") or {}).get("outcome", ""), labels)
    groups = ", ".join(f"{term_label(g, labels).lower()} {n}" for g, n in (info.get("n_groups") or {}).items())
    note = f"Note. Outcome: {outcome}. {info.get('method', '')} estimates; {test}; N = {fmt(info.get('n_obs'), 0)}"
    note += f" ({groups})." if groups else "."
    if fit.get("flags"):
        note += " The fit is flagged: " + ", ".join(str(f).replace("_", " ") for f in fit["flags"]) + "."
    return Table(number, str(fit.get("label") or (fit.get("spec") or {}).get("name", "")), header, rows, note)


# --------------------------------------------------------------------------- Word


def _set_border(cell: Any, **edges: str) -> None:
    """Set the borders of one Word table cell (APA tables: horizontal rules only)."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    tc_pr = cell._tc.get_or_add_tcPr()
    borders = tc_pr.find(qn("w:tcBorders"))
    if borders is None:
        borders = OxmlElement("w:tcBorders")
        tc_pr.append(borders)
    for edge, size in edges.items():
        element = OxmlElement(f"w:{edge}")
        element.set(qn("w:val"), "single" if size else "nil")
        element.set(qn("w:sz"), size or "0")
        element.set(qn("w:color"), "000000")
        borders.append(element)


def write_docx(tables: list[Table], path: str | Path) -> None:
    """The tables as one Word document, APA style: the number in bold, the title in italics, a
    rule above and below the header and below the last row, the note under the table."""
    import docx
    from docx.shared import Pt

    document = docx.Document()
    fixed_time = pd.Timestamp("2000-01-01").to_pydatetime()  # byte-stable output: no clock in the file
    document.core_properties.created = document.core_properties.modified = fixed_time
    document.core_properties.last_printed = fixed_time
    document.styles["Normal"].font.name = "Times New Roman"
    document.styles["Normal"].font.size = Pt(11)
    for k, table in enumerate(tables):
        if k:
            document.add_paragraph()
        document.add_paragraph().add_run(f"Table {table.number}").bold = True
        document.add_paragraph().add_run(table.title).italic = True
        grid = document.add_table(rows=1 + len(table.rows), cols=len(table.header))
        for j, text in enumerate(table.header):
            cell = grid.rows[0].cells[j]
            cell.text = text
            _set_border(cell, top="8", bottom="4")
        for i, row in enumerate(table.rows, start=1):
            for j, text in enumerate(row):
                cell = grid.rows[i].cells[j]
                cell.text = text
                if i - 1 in table.bold_rows:
                    for run in cell.paragraphs[0].runs:
                        run.bold = True
                if i == len(table.rows):
                    _set_border(cell, bottom="8")
        if table.note:
            document.add_paragraph().add_run(table.note).font.size = Pt(10)
    buffer = io.BytesIO()
    document.save(buffer)
    Path(path).write_bytes(_stable_zip(buffer.getvalue()))


def _stable_zip(data: bytes) -> bytes:
    """The .docx (a zip) with every member's time set to 1980-01-01, so the same tables give the same bytes."""
    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            member = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(member, source.read(info.filename))
    return out.getvalue()


def read_docx_tables(path: str | Path) -> list[list[list[str]]]:
    """The text of every table of a Word file, row by row (for the tests and for a reader's check)."""
    import docx

    return [[[c.text for c in row.cells] for row in t.rows] for t in docx.Document(str(path)).tables]


# --------------------------------------------------------------------------- LaTeX

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "−": "$-$",
    "×": r"$\times$",
    "²": r"\textsuperscript{2}",
    "–": "--",
    "<": "$<$",
    ">": "$>$",
}


def latex_escape(text: str) -> str:
    r"""Text for LaTeX, special characters escaped.

    >>> latex_escape("Dropout, % & b_1 − 2")
    'Dropout, \\% \\& b\\_1 $-$ 2'
    """
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(tables: list[Table]) -> str:
    """The tables as LaTeX (booktabs, threeparttable-free: the note is a footnotesize paragraph),
    one ``table`` environment each; needs ``\\usepackage{booktabs}``."""
    out = ["% APA-style tables written by the alliance workflow; needs \\usepackage{booktabs}"]
    for table in tables:
        align = "l" * 2 + "r" * (len(table.header) - 2) if table.number == 1 else "l" + "r" * (len(table.header) - 1)
        out += [
            "\\begin{table}[htbp]",
            "\\centering",
            f"\\textbf{{Table {table.number}}}\\par\\smallskip\\textit{{{latex_escape(table.title)}}}\\par\\smallskip",
            f"\\begin{{tabular}}{{{align}}}",
            "\\toprule",
            " & ".join(latex_escape(h) for h in table.header) + " \\\\",
            "\\midrule",
        ]
        for i, row in enumerate(table.rows):
            cells = [latex_escape(c) for c in row]
            if i in table.bold_rows:
                cells = [f"\\textbf{{{c}}}" for c in cells]
            out.append(" & ".join(cells) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}"]
        if table.note:
            out.append(f"\\par\\smallskip{{\\footnotesize {latex_escape(table.note)}}}")
        out.append("\\end{table}")
    return "\n".join(out) + "\n"


def write_latex(tables: list[Table], path: str | Path) -> None:
    """The tables as a LaTeX file (:func:`to_latex`)."""
    Path(path).write_text(to_latex(tables), encoding="utf-8")


# --------------------------------------------------------------------------- the set the workflow writes


def primary_model_names(fits: list[dict[str, Any]], primary_model: str | None, benchmark: dict[str, Any]) -> list[str]:
    """The primary models of the manuscript, as in the main report: the main model, then the
    patient-level models of the benchmark comparison (``alliance.report.comparisons``)."""
    from alliance.report.comparisons import patient_level_rows

    names = [n for n in [primary_model] if n]
    names += [r["model"] for r in patient_level_rows(fits, benchmark)]
    return list(dict.fromkeys(names))


def manuscript_tables(
    table1: pd.DataFrame,
    fits: list[dict[str, Any]],
    fixed: list[pd.DataFrame],
    *,
    primary_model: str | None,
    benchmark: dict[str, Any],
    labels: dict[str, str] | None = None,
) -> dict[str, list[Table]]:
    """Table 1 and the primary models' tables (numbered from 2, in the main report's order)."""
    by_name = {str((f.get("spec") or {}).get("name")): (f, fx) for f, fx in zip(fits, fixed)}
    names = [n for n in primary_model_names(fits, primary_model, benchmark) if n in by_name]
    models = [model_table(*by_name[n], number=k, labels=labels) for k, n in enumerate(names, start=2)]
    return {"table1": [table1_table(table1)], "primary_models": models}


def write_manuscript_tables(tables: dict[str, list[Table]], outputs: dict[str, str | Path]) -> None:
    """Each set as .docx and .tex: ``outputs`` maps '<set>_docx' / '<set>_tex' to a path."""
    for name, set_ in tables.items():
        write_docx(set_, outputs[f"{name}_docx"])
        write_latex(set_, outputs[f"{name}_tex"])
