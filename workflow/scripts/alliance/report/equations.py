"""A model written out per level (Raudenbush & Bryk notation) from its spec in fit.json, and
the β that names each row of the fixed-effects table."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

_SUB = str.maketrans("0123456789tijsk", "₀₁₂₃₄₅₆₇₈₉ₜᵢⱼₛₖ")
_INDEX = {"patient": "i", "therapist": "j", "site": "s", "study": "k"}
_RE_LETTERS = ["u", "v", "w", "r", "q"]

#: the group a role's predictor varies over (alliance.models.suite roles)
ROLE_GROUP = {
    "between_patient": "patient",
    "patient_within_therapist": "patient",
    "patient_level": "patient",
    "between_therapist": "therapist",
}


def term_levels(data: pd.DataFrame | None, terms: list[str], groups: list[str]) -> dict[str, int]:
    """The level of each fixed term: 1 if it varies within the lowest group, else the level
    (2, 3, ...) of the lowest group within which it is constant.  ``groups`` go from the
    lowest (most numerous) to the highest.  Interactions take the lowest level of their parts."""
    levels: dict[str, int] = {}
    for term in terms:
        level = 1
        parts = term.split(":")
        if data is not None and all(p in data.columns for p in parts) and groups:
            part_levels = []
            for p in parts:
                part_level = 1
                for k, g in enumerate(groups):  # the highest group within which p is constant
                    if g not in data.columns:
                        break
                    spread = data[[g, p]].dropna().groupby(g)[p].nunique()
                    if not len(spread) or int(spread.max()) > 1:
                        break
                    part_level = k + 2
                part_levels.append(part_level)
            level = min(part_levels)
        levels[term] = level
    return levels


def _groups_in_order(spec: dict[str, Any], n_groups: dict[str, int] | None) -> list[str]:
    """The random-effects groups from the lowest (most units) to the highest."""
    groups = []
    for term in spec.get("random", []):
        if term["group"] not in groups:
            groups.append(term["group"])
    sizes = n_groups or {}

    def size(g: str) -> float:
        for key, n in sizes.items():
            if key == g or key.endswith(":" + g):
                return float(n)
        return -float({"patient": 1, "therapist": 2}.get(g, 3))  # patients below therapists when unknown

    return sorted(groups, key=lambda g: -size(g))


def _levels_with_roles(
    levels: dict[str, int], roles: dict[str, str] | None, groups: list[str], unit: str
) -> dict[str, int]:
    """The levels from the data, overridden by the level each predictor's role states."""
    levels = dict(levels)
    for term, role in (roles or {}).items():
        if term in levels:
            group = ROLE_GROUP.get(role)
            if role == "within_patient" or group is None or (unit == "patient" and group == "patient"):
                levels[term] = 1
            elif group in groups:
                levels[term] = groups.index(group) + 2
            elif group == "therapist" or not groups:
                levels[term] = len(groups) + 1
    return levels


@dataclass
class _Layout:
    """Names and indices of one model's equations: its groups (lowest first), each group's index
    letter and random-effect letter, random slopes, correlation and nesting, the β of each term."""

    fixed: list[str]
    groups: list[str]
    levels: dict[str, int]
    unit: str
    index: dict[str, str] = field(default_factory=dict)
    letters: dict[str, str] = field(default_factory=dict)
    slopes: dict[str, list[str]] = field(default_factory=dict)
    correlated: dict[str, bool] = field(default_factory=dict)
    nested: dict[str, str] = field(default_factory=dict)
    number: dict[str, str] = field(default_factory=dict)
    beta: dict[str, str] = field(default_factory=dict)
    sub_all: str = ""

    def subs(self, level: int) -> str:
        """Subscript of a quantity at a level: the indices of that level and above."""
        return ("".join(self.index[g] for g in self.groups[level - 2 :]) if level >= 2 else self.sub_all).translate(
            _SUB
        )


def _layout(spec: dict[str, Any], groups: list[str], levels: dict[str, int], unit: str, fitted_formula: str) -> _Layout:
    """The names and indices of the equations (see ``_Layout``)."""
    fixed = list(spec.get("fixed", []))
    lay = _Layout(fixed=fixed, groups=groups, levels=levels, unit=unit)
    lay.index = {g: _INDEX.get(g, g[0]) for g in groups}
    lay.number = {t: str(k + 1).translate(_SUB) for k, t in enumerate(fixed)}
    lay.beta = {t: f"β{lay.number[t]}" for t in fixed}
    lay.slopes = {g: [] for g in groups}
    lay.correlated = {g: True for g in groups}
    for term in spec.get("random", []):
        if term["group"] not in lay.slopes:
            continue
        lay.slopes[term["group"]] += [s for s in term.get("slopes", []) if s not in lay.slopes[term["group"]]]
        factor = f"{term['nested_in']}:{term['group']}" if term.get("nested_in") else term["group"]
        lay.correlated[term["group"]] = term.get("correlated", True) and f"|| {factor})" not in fitted_formula
        if term.get("nested_in"):
            lay.nested[term["group"]] = term["nested_in"]
    lay.letters = {g: _RE_LETTERS[k % len(_RE_LETTERS)] for k, g in enumerate(groups)}
    first = "i" if unit == "patient" else "t"
    lay.sub_all = (first + "".join(lay.index[g] for g in groups)).translate(_SUB)
    return lay


def _level_one(lay: _Layout, outcome: str) -> dict[str, Any]:
    """The level-1 equation: the outcome of a row from the level-1 predictors."""
    groups, sub_all = lay.groups, lay.sub_all
    rhs = [f"π₀{lay.subs(2) if groups else ''}"]
    for t in (t for t in lay.fixed if lay.levels[t] == 1):
        if any(t in lay.slopes[g] for g in groups):
            rhs.append(f"π{lay.number[t]}{lay.subs(2)}·{t}{sub_all}")
        else:
            rhs.append(f"{lay.beta[t]}·{t}{sub_all}")
    unit_name = "patient i" if lay.unit == "patient" else ("session t" if "patient" in groups else "observation t")
    return {
        "level": f"Level 1 ({unit_name})",
        "lines": [f"{outcome}{sub_all} = " + " + ".join(rhs) + f" + e{sub_all}", f"e{sub_all} ~ N(0, σ²)"],
    }


def _higher_level(lay: _Layout, k: int) -> dict[str, Any]:
    """The equations of the (k+2)-th level: its intercept, the random slopes it carries first,
    and the distribution of its random effects."""
    groups, g, level = lay.groups, lay.groups[k], k + 2
    letter, subs = lay.letters[g], lay.subs(level)
    l1_terms = [t for t in lay.fixed if lay.levels[t] == 1]
    upper = f"γ₀{lay.subs(level + 1)}" if level - 1 < len(groups) else "β₀"
    lhs = "π₀" if level == 2 else "γ₀"
    rhs = [upper] + [f"{lay.beta[t]}·{t}{subs}" for t in lay.fixed if lay.levels[t] == level] + [f"{letter}₀{subs}"]
    lines = [f"{lhs}{subs} = " + " + ".join(rhs)]
    for s in lay.slopes[g]:
        if s in l1_terms and k == min(j for j, h in enumerate(groups) if s in lay.slopes[h]):
            higher = [
                f"{lay.letters[h]}{lay.number[s]}{lay.subs(j + 2)}"
                for j, h in enumerate(groups)
                if s in lay.slopes[h] and j > k
            ]
            lines.append(
                f"π{lay.number[s]}{lay.subs(2)} = {lay.beta[s]} + {letter}{lay.number[s]}{subs}"
                + "".join(f" + {x}" for x in higher)
            )
    effects = [f"{letter}₀{subs}"] + [f"{letter}{lay.number[s]}{subs}" for s in lay.slopes[g] if s in lay.number]
    if len(effects) == 1:
        lines.append(f"{effects[0]} ~ N(0, τ²[{g}])")
    else:
        structure = (
            "unstructured covariance (correlated)"
            if lay.correlated[g]
            else "independent: diagonal covariance (lme4 ||)"
        )
        lines.append(f"({', '.join(effects)}) ~ N(0, T[{g}]), {structure}")
    where = f"{g} {lay.index[g]}" + (f" within {lay.nested[g]}" if g in lay.nested else "")
    return {"level": f"Level {level} ({where})", "lines": lines}


def model_equations(
    spec: dict[str, Any],
    data: pd.DataFrame | None = None,
    n_groups: dict[str, int] | None = None,
    *,
    roles: dict[str, str] | None = None,
    unit: str = "session",
    fitted_formula: str = "",
) -> list[dict[str, Any]]:
    """The model written out per level from its spec (the one in fit.json), as fitted.

    Returns a list of ``{"level": "Level 1 (session t)", "lines": [...]}``.  Coefficients
    are numbered β₀ (intercept), β₁, ... in the order of the spec's fixed terms (the fixed-
    effects table names the β of every row); random effects are u (lowest group), v (next), ...
    The level of a predictor comes from its role (within_patient, between_patient, ...) when the
    model states one, else from the data (the highest group within which it is constant).
    ``unit`` is what a row is: 'session' (rows in patients) or 'patient' (one row per patient).
    A correlated term that was fitted with independent components (``||`` in ``fitted_formula``)
    is written as fitted.

    Example
    -------
    >>> spec = {"outcome": "y", "fixed": ["x"], "random": [{"group": "patient"}]}
    >>> [b["lines"][0] for b in model_equations(spec, roles={"x": "within_patient"})]
    ['yₜᵢ = π₀ᵢ + β₁·xₜᵢ + eₜᵢ', 'π₀ᵢ = β₀ + u₀ᵢ']
    """
    groups = _groups_in_order(spec, n_groups)
    if unit == "patient":
        groups = [g for g in groups if g != "patient"]
    levels = _levels_with_roles(term_levels(data, list(spec.get("fixed", [])), groups), roles, groups, unit)
    lay = _layout(spec, groups, levels, unit, fitted_formula)
    return [_level_one(lay, spec.get("outcome", "y"))] + [_higher_level(lay, k) for k in range(len(groups))]


def coefficient_label(term: str, fixed_terms: list[str]) -> str:
    """The β of a fixed-effects table row: 'β0' for the intercept, 'β2' for the spec's second
    term, 'β3 (IPT)' for a treatment-coded level of a categorical term."""
    if term in ("Intercept", "(Intercept)"):
        return "β0"
    levels = re.findall(r"\[T\.([^\]]*)\]", term)
    base = re.sub(r"\[T\.[^\]]*\]", "", term)
    if base not in fixed_terms:
        return ""
    return f"β{fixed_terms.index(base) + 1}" + (f" ({', '.join(levels)})" if levels else "")
