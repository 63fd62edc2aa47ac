"""A reader's view of the HTML report (tests/report/): its quoted numbers, images, links and headings,
and the check that every quoted number ties to the result table it names.

Each number in the report's text is a ``<span class="num" data-source="kind¦key…">``;
``check_numbers`` looks every source up in the run's tables (``tables_from_disk``) and compares it
with the text to the decimals shown.  The contextual effect is recomputed here from fit.json,
independently of the report code.
"""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from alliance.report import wording as R


class ReportParser(HTMLParser):
    """Collects the quoted numbers (span.num), images, links and headings of a report."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: list[dict] = []
        self.images: list[dict] = []
        self.urls: list[str] = []
        self.headings: list[str] = []
        self._span: dict | None = None
        self._heading: list[str] | None = None
        self.meta: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "span" and "num" in (attrs.get("class") or "").split():
            self._span = {"source": attrs["data-source"], "transform": attrs.get("data-transform"), "text": ""}
        if tag == "img":
            self.images.append(attrs)
        if tag == "meta":
            self.meta.append(attrs)
        for key in ("src", "href", "action", "data", "poster"):
            if attrs.get(key):
                self.urls.append(attrs[key])
        if tag in ("h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag):
        if tag == "span" and self._span is not None:
            self.numbers.append(self._span)
            self._span = None
        if tag in ("h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None

    def handle_data(self, data):
        if self._span is not None:
            self._span["text"] += data
        if self._heading is not None:
            self._heading.append(data)


def parse(html: str) -> ReportParser:
    """The report's HTML, parsed."""
    parser = ReportParser()
    parser.feed(html)
    return parser


def _contextual(fit: dict, column: str) -> float:
    """β(between) − β(within) and its CI, computed here from fit.json (independently of report.py)."""
    terms = fit["vcov"]["terms"]
    matrix = np.array(fit["vcov"]["matrix"], dtype=float)
    i, j = terms.index("alliance_between_patient"), terms.index("alliance_within_patient")
    estimates = {r["term"]: r["estimate"] for r in fit["fixed"]}
    est = estimates["alliance_between_patient"] - estimates["alliance_within_patient"]
    se = math.sqrt(matrix[i, i] + matrix[j, j] - 2 * matrix[i, j])
    return {"estimate": est, "ci_low": est - 1.959964 * se, "ci_high": est + 1.959964 * se}[column]


def source_value(source: str, tables: dict) -> float:
    """Look a data-source up in the run's tables: 'fixed¦model¦term¦column', 'table1¦therapy¦condition¦column', ..."""
    kind, *key = source.split("¦")
    if kind == "fixed":
        model, term, column = key
        frame = tables["fixed"][model]
        return frame.loc[frame["term"] == term, column].iloc[0]
    if kind == "variance":
        model, group, term, column = key
        frame = tables["variance"][model]
        return frame.loc[(frame["group"] == group) & (frame["term"] == term), column].iloc[0]
    if kind == "table1":
        therapy, condition, column = key
        frame = tables["table1"]
        return frame.loc[(frame["therapy"] == therapy) & (frame["condition"] == condition), column].iloc[0]
    if kind == "comparison":
        model, term, column = key
        frame = tables["comparison"]
        return frame.loc[(frame["model"] == model) & (frame["term"] == term), column].iloc[0]
    if kind == "effects":
        level, label, term, column = key
        frame = tables["effects"]
        row = (frame["level"] == level) & (frame["label"] == label) & (frame["term"] == term)
        return frame.loc[row, column].iloc[0]
    if kind == "summary":
        value = tables["summary"]
        for part in key:
            value = value[part]
        return value
    if kind == "fit":
        model, column = key
        return tables["fits"][model]["fit"][column]
    if kind == "contextual":
        model, column = key
        return _contextual(tables["fits"][model], column)
    if kind == "contrast":
        model, name, column = key
        frame = tables["contrasts"][model]
        return frame.loc[frame["name"] == name, column].iloc[0]
    if kind == "riclpm":
        return _riclpm_value(key, tables["riclpm"][key[0]])
    if kind == "truth":
        value = tables["truth"]
        for part in key:
            value = value[part]
        return value
    if kind == "modeleffect":
        model, statistic, term, group, column = key
        frame = tables["model_effects"][model]
        hit = frame[
            (frame["statistic"] == statistic)
            & (frame["term"].astype(object).fillna("") == term)
            & (frame["group"].astype(object).fillna("") == group)
        ]
        assert len(hit) == 1, (source, len(hit))
        return hit[column].iloc[0]
    raise AssertionError(f"unknown data-source {source!r}")


def _riclpm_value(key: list[str], tables: dict) -> float:
    """An RI-CLPM's number: 'model¦parameters¦paths¦name¦column', 'model¦fit_indices¦paths¦column',
    'model¦long_run¦effect¦column', 'model¦constraint_test¦column' or 'model¦sample¦key[¦index]' (fit.json)."""
    _, table, *rest = key
    if table == "sample":
        value = tables["fit"]["sample"]
        for part in rest:
            value = value[int(part)] if isinstance(value, list) else value[part]
        return value
    frame = tables[table]
    if table == "parameters":
        paths, name, column = rest
        hit = frame[(frame["paths"] == paths) & (frame["name"] == name)]
    elif table == "fit_indices":
        paths, column = rest
        hit = frame[frame["paths"] == paths]
    elif table == "long_run":
        effect, column = rest
        hit = frame[frame["effect"] == effect]
    elif table == "constraint_test":
        (column,) = rest
        hit = frame
    else:
        raise AssertionError(f"unknown RI-CLPM table {table!r}")
    assert len(hit) == 1, (key, len(hit))
    return hit[column].iloc[0]


def check_numbers(html: str, tables: dict) -> int:
    """Every quoted number equals its source rounded to the decimals shown. Returns how many."""
    numbers = parse(html).numbers
    problems = []
    for n in numbers:
        expected = source_value(n["source"], tables)
        if expected is None or (isinstance(expected, float) and math.isnan(expected)):
            if n["text"].strip() != "–":
                problems.append((n, expected))
            continue
        expected = -float(expected) if n["transform"] == "neg" else float(expected)
        shown = R.parse_number(n["text"])
        if abs(shown - expected) > 0.5 * 10 ** -R.decimals(n["text"]) + 1e-9:
            problems.append((n, expected))
    assert not problems, problems[:10]
    return len(numbers)


def read_riclpm_tables(directory: Path) -> dict:
    """An RI-CLPM's directory: fit.json and its four tables."""
    tables = {"fit": json.loads((directory / "fit.json").read_text())}
    for name in ("parameters", "fit_indices", "long_run", "constraint_test"):
        tables[name] = pd.read_csv(directory / f"{name}.csv")
    return tables


def tables_from_disk(results: Path, effects: bool = False, truth: Path | None = None) -> dict:
    """The run's result tables, read as a reader would: a mixed model's directory, an RI-CLPM's
    (parameters.csv instead of fixed_effects.csv) under ``riclpm``, and ``truth``, the truth file."""
    directories = [p for p in (results / "models").iterdir() if p.is_dir()]
    models = sorted(p.name for p in directories if (p / "fixed_effects.csv").exists())
    riclpm = sorted(p.name for p in directories if (p / "parameters.csv").exists())

    def optional(model: str, name: str) -> bool:
        return (results / "models" / model / name).exists()

    return {
        "riclpm": {m: read_riclpm_tables(results / "models" / m) for m in riclpm},
        "truth": yaml.safe_load(truth.read_text()) if truth is not None and truth.exists() else None,
        "fixed": {m: pd.read_csv(results / "models" / m / "fixed_effects.csv") for m in models},
        "variance": {m: pd.read_csv(results / "models" / m / "variance_components.csv") for m in models},
        "fits": {m: json.loads((results / "models" / m / "fit.json").read_text()) for m in models},
        "contrasts": {
            m: pd.read_csv(results / "models" / m / "contrasts.csv") for m in models if optional(m, "contrasts.csv")
        },
        "model_effects": {
            m: pd.read_csv(results / "models" / m / "effects.csv") for m in models if optional(m, "effects.csv")
        },
        "table1": pd.read_csv(results / "report" / "table1.csv"),
        "comparison": pd.read_csv(results / "report" / "model_comparison.csv"),
        "summary": json.loads((results / "clean" / "summary.json").read_text()),
        "effects": pd.read_csv(results / "effects" / "alliance_effects.csv") if effects else None,
    }
