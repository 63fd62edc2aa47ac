"""The lab's own ids in what the intake shows and writes: masked in findings, pseudonymised on request.

* :class:`IdentifierMask` masks the values of the patient, therapist and site ids wherever a
  finding quotes them, in its value or in its reason (``patient P00017`` -> ``patient P***``), so
  that the validation report and the console never repeat the lab's ids. It is applied once, to
  every finding of the intake after the files were read (:func:`alliance.intake.clean.clean_dataset`);
  the identifier screen's own findings are masked where they are made
  (:mod:`alliance.intake.identifier_values`, :mod:`alliance.intake.identifier_codes`).
* :func:`pseudonymised` replaces the ids in the analysis and patients tables by study codes
  (``dataset.pseudonymise_ids: true``): ``P0001``, ``P0002`` ... in the order in which patients
  first appear in the sessions file (then the patients file), likewise ``T01`` ... for therapists
  and ``S1`` ... for sites. The codes depend only on that order, so a rerun gives byte-identical
  tables, and no key is needed or kept: the table that links codes to the lab's ids is never
  written to results/ (anyone with the raw files can rebuild it with :func:`pseudonym_key`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from alliance.intake.findings import SOURCE_ROW, Finding, InputError, InputErrors
from alliance.intake.identifier_codes import ID_ROLES
from alliance.intake.identifier_values import mask_value
from alliance.schema import schema_default

__all__ = ["MASKED_ROLES", "IdentifierMask", "id_columns", "pseudonym_key", "pseudonymise_ids", "pseudonymised"]

#: The ids whose values findings mask and ``pseudonymise_ids`` replaces, and each code's prefix.
MASKED_ROLES = {"patient": "P", "therapist": "T", "site": "S"}
#: Digits from which a bare number in a reason is taken for an id even without "patient" before it.
_LONG_NUMBER = 6
_TOKEN = re.compile(r"(?P<lead>\b(?:patient|therapist|site)s?:? )?(?P<token>'[^']*'|[^\s'(),;:=]+)")


def id_columns(layout: Any) -> dict[str, str]:
    """The lab's column -> canonical role, for the id and label columns a layout maps (:data:`ID_ROLES`)."""
    return {str(lab): role for role, lab in layout.lab.items() if role in ID_ROLES}


@dataclass
class IdentifierMask:
    """The lab's id columns and id values, learnt from the raw tables; masks the findings that quote them."""

    columns: set[str] = field(default_factory=set)
    values: set[str] = field(default_factory=set)

    def learn(self, raw: pd.DataFrame, layout: Any) -> None:
        """Take the id columns of one raw table (``layout``: its :class:`~alliance.intake.layout.Layout`)."""
        for role in MASKED_ROLES:
            column = layout.lab.get(role)
            if column is None or column not in raw.columns:
                continue
            self.columns.add(str(column))
            text = raw[column].dropna().astype("str").str.strip()
            self.values.update(text.unique().tolist())

    def _is_id(self, token: str, lead: bool) -> bool:
        """Whether a token of a reason is one of the ids (a bare short number only after "patient" etc.)."""
        if token not in self.values:
            return False
        return lead or not token.isdigit() or len(token) >= _LONG_NUMBER

    def text(self, reason: str) -> str:
        """``reason`` with every id it quotes masked."""

        def masked(match: re.Match) -> str:
            lead, token = match.group("lead") or "", match.group("token")
            quoted = token.startswith("'") and token.endswith("'") and len(token) >= 2
            core = token[1:-1] if quoted else token
            tail = ""
            if not quoted and core.endswith(".") and not self._is_id(core, bool(lead)):
                core, tail = core[:-1], "."
            if not self._is_id(core, bool(lead)):
                return match.group(0)
            shown = mask_value(core)
            return f"{lead}'{shown}'" if quoted else f"{lead}{shown}{tail}"

        return _TOKEN.sub(masked, reason) if self.values else reason

    def finding(self, finding: Finding) -> Finding:
        """The finding with its value masked when its column is an id column, and the ids in its reason."""
        value = finding.value
        if value is not None and finding.column in self.columns:
            value = mask_value(value)
        elif value is not None:  # e.g. a small cell "site=North, age_band=26-35"
            value = self.text(str(value))
        return replace(finding, value=value, reason=self.text(finding.reason))

    def findings(self, findings: list[Finding]) -> list[Finding]:
        """Every finding masked (:meth:`finding`)."""
        return [self.finding(f) for f in findings]

    def error(self, error: InputError) -> InputError:
        """The same stopping error with its findings masked."""
        if not (self.values or self.columns):
            return error
        if isinstance(error, InputErrors):
            return InputErrors(self.findings(error.findings), heading=error.heading)
        return self.finding(error.to_finding()).to_error()


@functools.cache
def pseudonymise_default() -> bool:
    """The schema's default of ``dataset.pseudonymise_ids`` (the one source of it)."""
    return bool(schema_default("dataset", "pseudonymise_ids"))


def pseudonymise_ids(dataset: dict[str, Any]) -> bool:
    """Whether the config asks for study codes in place of the lab's ids."""
    return bool(dataset.get("pseudonymise_ids", pseudonymise_default()))


def pseudonym_key(sessions: pd.DataFrame, patients: pd.DataFrame | None = None) -> dict[str, dict[str, str]]:
    """Role -> {the lab's id: its code}: codes numbered in the order of first appearance.

    Sessions rows are taken in the order of the lab's file (``source_row`` or ``_source_row`` when
    present), then the patients table's rows. Codes are the role's prefix and a zero-padded number
    as wide as the count needs (``P001`` ... ``P250``).
    """
    order = next((c for c in ("source_row", SOURCE_ROW) if c in sessions.columns), None)
    frames = [sessions.sort_values(order, kind="stable") if order else sessions]
    if patients is not None:
        frames.append(patients)
    key: dict[str, dict[str, str]] = {}
    for role, prefix in MASKED_ROLES.items():
        seen = pd.concat([f[role] for f in frames if role in f.columns], ignore_index=True).dropna()
        ids = pd.unique(seen.astype("str"))
        if len(ids) == 0:
            continue
        width = max(len(str(len(ids))), 1 if role == "site" else 2 if role == "therapist" else 4)
        key[role] = {raw: f"{prefix}{i:0{width}d}" for i, raw in enumerate(ids, start=1)}
    return key


def pseudonymised(sessions: pd.DataFrame, patients: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(sessions, patients) with study codes in place of the lab's patient, therapist and site ids.

    Rows keep their order; the sessions are re-sorted by (patient code, session) as the intake
    sorts them. The key is not returned: see :func:`pseudonym_key`.
    """
    key = pseudonym_key(sessions, patients)

    def coded(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        for role, codes in key.items():
            if role in out.columns:
                missing = out[role].isna()
                out[role] = out[role].astype("str").map(codes).where(~missing).astype("str")
        return out

    sessions = coded(sessions)
    if "session" in sessions.columns:
        sessions = sessions.sort_values(["patient", "session"], kind="stable").reset_index(drop=True)
    patients = coded(patients).sort_values("patient", kind="stable").reset_index(drop=True)
    return sessions, patients
