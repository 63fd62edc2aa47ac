"""Moderation of alliance effects by categorical moderators (methods.md section 5, item 6).

A model's ``moderation`` block, e.g. ``{terms: [alliance_within_patient, alliance_between_patient],
by: [therapy, condition]}``, adds each moderator's main effect and every ``term:moderator``
interaction to the fixed part, i.e. ``(within + between) * therapy + (within + between) * condition``.
Moderators are treatment-coded with the reference level named in the model's ``categorical``.

From the fitted model:

* :func:`wald_blocks` -- an omnibus test per interaction block (all the ``term:moderator``
  coefficients of one moderator, and of one term and one moderator): F with Satterthwaite
  denominator df where the engine gives them, else Wald chi-square (``FitResult.wald_test``);
* :func:`simple_slopes` -- the slope of each moderated term in each level of each moderator, a
  linear combination of fixed effects (``FitResult.contrast``: t with Satterthwaite df, else z).  With two moderators the slope in
  level L of one is averaged over the other's levels, weighted by their share of the fitted rows
  within level L (the average slope of the patients in level L; with no interaction the weights
  do not matter).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:  # the engine is not needed to build terms (the workflow checks config without it)
    from alliance.engines.spec import FitResult

__all__ = ["moderated_fixed", "expand_term", "wald_blocks", "simple_slopes", "level_term"]


def moderated_fixed(fixed: list[str], moderation: dict[str, Any] | None) -> list[str]:
    """The fixed terms of a moderated model: the base terms, each moderator, each term:moderator.

    >>> moderated_fixed(["w", "b", "s"], {"terms": ["w", "b"], "by": ["therapy"]})
    ['w', 'b', 's', 'therapy', 'w:therapy', 'b:therapy']
    """
    out = list(fixed)
    if not moderation:
        return out
    for m in moderation["by"]:
        if m not in out:
            out.append(m)
    for m in moderation["by"]:
        for t in moderation["terms"]:
            out.append(f"{t}:{m}")
    return out


def level_term(column: str, level: str) -> str:
    """Name of the treatment-coded coefficient of ``level`` of ``column`` (engine naming).

    >>> level_term("therapy", "PDT")
    'therapy[T.PDT]'
    """
    return f"{column}[T.{level}]"


def expand_term(term: str, names: list[str], categorical: dict[str, str]) -> list[str]:
    """Coefficient names of the fitted model that a config-level term generates.

    A config term is a column or an interaction ``a:b``; a categorical column contributes one
    coefficient per non-reference level (``therapy[T.PDT]``).

    >>> expand_term("session_c:therapy", ["Intercept", "session_c", "session_c:therapy[T.IPT]",
    ...             "session_c:therapy[T.PDT]"], {"therapy": "CBT"})
    ['session_c:therapy[T.IPT]', 'session_c:therapy[T.PDT]']
    """
    parts = term.split(":")
    patterns = [
        re.compile(re.escape(p) + r"\[T\..+\]$") if p in categorical else re.compile(re.escape(p) + "$") for p in parts
    ]
    out = []
    for name in names:
        pieces = _split_name(name)
        if len(pieces) == len(parts) and all(pat.match(pc) for pat, pc in zip(patterns, pieces)):
            out.append(name)
    return out


def _split_name(name: str) -> list[str]:
    """Split a coefficient name on the ':' that separate factors (not those inside [T.level])."""
    pieces, depth, current = [], 0, ""
    for ch in name:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == ":" and depth == 0:
            pieces.append(current)
            current = ""
        else:
            current += ch
    pieces.append(current)
    return pieces


def wald_blocks(result: FitResult, moderation: dict[str, Any], categorical: dict[str, str]) -> pd.DataFrame:
    """Omnibus tests of the interaction blocks of a moderated model (F with Satterthwaite df, or
    Wald chi-square: ``df_method`` says which).

    One row per moderator (all its interactions with the moderated terms) and, with several
    moderated terms, one per term x moderator.  Columns: block, moderator, term, coefficients,
    statistic, df, df_denominator, p, df_method.
    """
    names = list(result.fixed["term"])
    rows = []
    for m in moderation["by"]:
        per_term = {t: expand_term(f"{t}:{m}", names, categorical) for t in moderation["terms"]}
        everything = [c for t in moderation["terms"] for c in per_term[t]]
        if len(moderation["terms"]) == 1:
            blocks = [(f"{moderation['terms'][0]} x {m}", moderation["terms"][0], everything)]
        else:
            blocks = [(f"{'+'.join(moderation['terms'])} x {m}", "all", everything)]
            blocks += [(f"{t} x {m}", t, per_term[t]) for t in moderation["terms"]]
        for block, term, coefs in blocks:
            if not coefs:
                continue
            test = result.wald_test(coefs)
            rows.append({"block": block, "moderator": m, "term": term, "coefficients": "; ".join(coefs), **test})
    columns = ["block", "moderator", "term", "coefficients", "statistic", "df", "df_denominator", "p", "df_method"]
    return pd.DataFrame(rows, columns=columns)


def simple_slopes(
    result: FitResult,
    used: pd.DataFrame,
    moderation: dict[str, Any],
    categorical: dict[str, str],
    levels: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """Slope of each moderated term in each level of each moderator, with its CI (t with
    Satterthwaite df, or Wald z: ``FitResult.contrast``).

    ``used`` are the fitted rows (with the moderator columns, ``patient`` and ``therapist``);
    ``levels`` orders the levels (default: sorted levels present in ``used``).
    """
    names = set(result.fixed["term"])
    rows = []
    for m in moderation["by"]:
        present = sorted(used[m].astype(str).unique())
        order = [lv for lv in (levels or {}).get(m, []) if lv in present] + [
            lv for lv in present if lv not in (levels or {}).get(m, [])
        ]
        for level in order:
            in_level = used[used[m].astype(str) == level]
            for t in moderation["terms"]:
                weights: dict[str, float] = {t: 1.0}
                if level != categorical[m]:
                    weights[f"{t}:{level_term(m, level)}"] = 1.0
                for other in moderation["by"]:
                    if other == m:
                        continue
                    shares = in_level[other].astype(str).value_counts(normalize=True).sort_index()
                    for olevel, share in shares.items():
                        if olevel != categorical[other]:
                            weights[f"{t}:{level_term(other, olevel)}"] = float(share)
                missing = [k for k in weights if k not in names]
                if missing:
                    raise KeyError(f"simple slope of {t} in {m}={level}: no coefficient(s) {missing}")
                c = result.contrast(weights)
                rows.append(
                    {
                        "moderator": m,
                        "level": level,
                        "term": t,
                        **c,
                        "weights": "; ".join(f"{k} x {v:.6g}" for k, v in weights.items()),
                        "n_obs": int(len(in_level)),
                        "n_patients": int(in_level["patient"].nunique()) if "patient" in in_level else 0,
                        "n_therapists": int(in_level["therapist"].nunique()) if "therapist" in in_level else 0,
                    }
                )
    return pd.DataFrame(rows)
