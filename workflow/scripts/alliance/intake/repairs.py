"""Repairs of how values are written: id spellings, surrounding spaces, whole numbers with decimals.

Nothing here is done silently: every repair is a row of the validation report
(action ``repaired: ...``), once per column or per id spelling, with the number of
rows it touched and the first of them.

* Ids (patient, therapist, site, study) that differ only in case or spaces (``P001``,
  ``p001``, ``'P001 '``) name one unit twice. ``cleaning.id_case_variants: merge`` (the
  default) writes every variant as the spelling used in most rows of the sessions file;
  ``stop`` stops the run. Ids are compared across the sessions and the patients file.
* Labels and ids with spaces before or after the text are trimmed.
* A whole number written with a decimal part of zeros (``3.0``) is read as that whole number.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from alliance.intake.findings import SOURCE_ROW, STOP, Finding
from alliance.intake.layout import Layout
from alliance.intake.text import parse_numbers

#: Canonical id columns whose spellings are compared.
ID_COLUMNS = ("patient", "therapist", "site", "study")
#: How many example rows a repair lists.
EXAMPLE_ROWS = 5


def rows_text(rows: pd.Series) -> str:
    """``"3 rows: 5, 9, 14"`` or ``"1 row: 5"`` (at most :data:`EXAMPLE_ROWS` listed)."""
    listed = ", ".join(str(int(r)) for r in rows.iloc[:EXAMPLE_ROWS])
    more = f" and {len(rows) - EXAMPLE_ROWS} more" if len(rows) > EXAMPLE_ROWS else ""
    return f"{len(rows)} row{'s' if len(rows) != 1 else ''}: {listed}{more}"


def _spelled(raw: pd.Series) -> pd.Series:
    """Text cells as written (surrounding spaces kept), blank as missing; other cells missing."""
    if not (pd.api.types.is_string_dtype(raw.dtype) or raw.dtype == object):
        return pd.Series(pd.NA, index=raw.index, dtype="string")
    text = raw.map(lambda v: v if isinstance(v, str) else None).astype("string")
    return text.mask(text.str.strip().eq("").fillna(False).astype(bool))


def unify_ids(tables: list[tuple[pd.DataFrame, Layout]], policy: dict[str, Any]) -> tuple[list[Finding], list[Finding]]:
    """Ids that differ only in case or spaces: merged into one spelling (in the raw tables, in place)
    or stopping, by ``cleaning.id_case_variants``. ``tables`` are (raw, layout), the sessions file first.

    Returns (repaired findings, stopping findings): one per variant spelling.
    """
    merge = policy["id_case_variants"] == "merge"
    repairs, stops = [], []
    for column in ID_COLUMNS:
        spellings = []
        for order, (raw, layout) in enumerate(tables):
            if column not in layout.lab:
                continue
            text = _spelled(raw[layout.lab[column]])
            rows = raw.loc[text.notna(), SOURCE_ROW]
            spellings.append(pd.DataFrame({"order": order, "spelling": text.dropna(), "row": rows}))
        if not spellings:
            continue
        cells = pd.concat(spellings, ignore_index=True)
        cells["key"] = cells["spelling"].str.replace(r"\s+", "", regex=True).str.casefold()
        distinct = cells.groupby("key")["spelling"].nunique()
        varied = cells.loc[cells["key"].isin(distinct.index[distinct > 1])]
        if varied.empty:
            continue
        chosen = _chosen_spellings(varied)
        for (order, key, spelling), group in varied.groupby(["order", "key", "spelling"], sort=True):
            canonical = chosen[key]
            if spelling == canonical:
                continue
            raw, layout = tables[order]
            n_canonical = int(((varied["key"] == key) & (varied["spelling"] == canonical)).sum())
            reason = (
                f"differs only in case or spaces from the {column} id '{canonical}' ({n_canonical} rows in all files); "
                f"found in {rows_text(group['row'])}"
            )
            if merge:
                reason += f"; written as '{canonical}', one {column}"
            if not merge:
                reason += f"; correct the ids, or set cleaning.id_case_variants: merge to treat them as one {column}"
            finding = Finding(
                layout.file,
                int(group["row"].iloc[0]),
                layout.lab[column],
                spelling,
                reason,
                "repaired: spellings merged" if merge else STOP,
            )
            (repairs if merge else stops).append(finding)
            if merge:
                lab = layout.lab[column]
                raw[lab] = raw[lab].mask(_spelled(raw[lab]).eq(spelling).fillna(False).astype(bool), canonical)
    return repairs, stops


def _chosen_spellings(varied: pd.DataFrame) -> dict[str, str]:
    """Per id key, the spelling (without surrounding spaces) used in most rows; the sessions file
    counts first, then the patients file, then the first spelling in row order."""
    varied = varied.assign(stripped=varied["spelling"].str.strip(), position=range(len(varied)))
    counts = (
        varied.groupby(["key", "stripped"])
        .agg(first_order=("order", "min"), rows=("row", "size"), position=("position", "min"))
        .reset_index()
    )
    sessions_rows = varied.loc[varied["order"] == 0].groupby(["key", "stripped"]).size()
    counts["session_rows"] = [int(sessions_rows.get((k, s), 0)) for k, s in zip(counts["key"], counts["stripped"])]
    counts = counts.sort_values(["key", "session_rows", "rows", "position"], ascending=[True, False, False, True])
    return dict(counts.drop_duplicates("key")[["key", "stripped"]].itertuples(index=False, name=None))


def trimmed_spaces(raw: pd.DataFrame, layout: Layout) -> list[Finding]:
    """One repair per text column (labels and ids) whose cells had spaces before or after the text."""
    findings = []
    for canonical, lab in layout.lab.items():
        if canonical in layout.numbers or canonical == "session":
            continue
        text = _spelled(raw[lab])
        spaced = (text.notna() & text.ne(text.str.strip())).fillna(False).astype(bool)
        if not spaced.any():
            continue
        values = text[spaced]
        findings.append(
            Finding(
                layout.file,
                int(raw.loc[spaced, SOURCE_ROW].iloc[0]),
                lab,
                values.iloc[0],
                f"has spaces before or after the text; removed in {rows_text(raw.loc[spaced, SOURCE_ROW])} "
                f"({values.nunique()} distinct value{'s' if values.nunique() != 1 else ''})",
                "repaired: surrounding spaces removed",
            )
        )
    return findings


def whole_numbers_with_decimals(data: pd.DataFrame, layout: Layout) -> list[Finding]:
    """One repair per whole-number column (session, integer items ...) with values such as ``3.0``.

    ``data`` is the canonical text table (:meth:`Layout.canonical`).
    """
    columns = [c for c in ("session", *layout.numbers) if c in data.columns]
    columns = [c for c in columns if c == "session" or layout.numbers[c].integer]
    findings = []
    for column in columns:
        text = data[column]
        decimal = text.str.fullmatch(r"[+-]?\d+\.0+").fillna(False).astype(bool)
        if not decimal.any():
            continue
        number = parse_numbers(text[decimal])
        lab = layout.lab.get(column, column)
        findings.append(
            Finding(
                layout.file,
                int(data.loc[decimal, SOURCE_ROW].iloc[0]),
                lab,
                str(text[decimal].iloc[0]),
                f"is a whole number written with decimals; read as {int(number.iloc[0])} "
                f"(such values in {rows_text(data.loc[decimal, SOURCE_ROW])})",
                "repaired: read as whole numbers",
            )
        )
    return findings
