"""Can the data identify a model? Checks run before every engine fits, so that no engine reports
an estimate the data cannot give.

lme4 refuses some random-effects structures before it fits (``lFormula``'s checks
``check.nlev.gtr.1``, ``check.nobs.vs.nlev`` and ``check.nobs.vs.nRE``); statsmodels and mixedlm do
not, and return numbers: with one session per patient a patient random intercept cannot be told
apart from the residual, yet mixedlm reports a patient ICC. :func:`identifiability_problems` makes
the same checks for every engine, on the rows the model would be fitted to (its complete cases):

* the outcome varies;
* every column of every fixed term varies (a categorical one has at least 2 levels);
* every grouping factor has at least 2 levels (a nested factor: 2 outer:inner combinations);
* every grouping factor has fewer levels than there are observations (lme4's
  ``check.nobs.vs.nlev``): otherwise each level has one row and its variance is the residual's;
* the number of random effects of a term (levels x (1 + slopes)) is below the observations
  (lme4's ``check.nobs.vs.nRE``);
* a random slope varies within at least :data:`MIN_GROUPS_WITH_SLOPE_VARIATION` levels of its
  grouping factor: a slope's variance across groups needs within-group variation to show.

:func:`check_identifiable` raises :class:`NotIdentifiable` with every problem found, naming the
model; the model suite records it as a model that was not fitted (flag ``not_identified``).
"""

from __future__ import annotations

import pandas as pd

from alliance.engines.spec import ModelSpec

__all__ = ["MIN_GROUPS_WITH_SLOPE_VARIATION", "NotIdentifiable", "identifiability_problems", "check_identifiable"]

#: the fewest levels of a grouping factor within which a random slope's variable must vary
MIN_GROUPS_WITH_SLOPE_VARIATION = 2


class NotIdentifiable(ValueError):
    """The data cannot identify the model; ``reasons`` lists why (each names the term and the counts)."""

    def __init__(self, model: str, reasons: list[str]):
        self.model = model
        self.reasons = list(reasons)
        super().__init__(f"model '{model}' cannot be fitted to these data: " + "; ".join(self.reasons))


def _value_text(values: pd.Series) -> str:
    value = values.iloc[0]
    return f"{value:g}" if isinstance(value, float) else str(value)


def _complete_cases(spec: ModelSpec, data: pd.DataFrame) -> pd.DataFrame:
    """The rows with every column the spec uses present (the engines' listwise deletion)."""
    columns = [spec.outcome, *(p for t in spec.fixed for p in t.split(":"))]
    for term in spec.random:
        columns += [term.group, *([term.nested_in] if term.nested_in else []), *term.slopes]
    columns = [c for c in dict.fromkeys(columns) if c in data.columns]
    return data.loc[data[columns].notna().all(axis=1).to_numpy(), columns]


def _fixed_problems(spec: ModelSpec, rows: pd.DataFrame) -> list[str]:
    """The outcome and every column of a fixed term must vary."""
    problems = []
    if rows[spec.outcome].nunique() < 2:
        problems.append(
            f"the outcome '{spec.outcome}' does not vary (all {len(rows)} rows are {_value_text(rows[spec.outcome])})"
        )
    categorical = dict(spec.categorical)
    for column in dict.fromkeys(p for t in spec.fixed for p in t.split(":")):
        if column not in rows or rows[column].nunique() >= 2:
            continue
        kind = "categorical column" if column in categorical else "fixed term"
        problems.append(
            f"{kind} '{column}' does not vary (all {len(rows)} rows are {_value_text(rows[column])}): "
            "its coefficient cannot be told apart from the intercept"
        )
    return problems


def _group_codes(spec: ModelSpec, rows: pd.DataFrame) -> list[tuple[str, pd.Series, tuple[str, ...]]]:
    """(name as lme4 writes it, level of every row, slopes) of every random-effects term."""
    out = []
    for term in spec.random:
        if term.nested_in:
            name = f"{term.nested_in}:{term.group}"
            codes = rows[term.nested_in].astype(str) + "\x1f" + rows[term.group].astype(str)
        else:
            name, codes = term.group, rows[term.group].astype(str)
        out.append((name, codes, term.slopes))
    return out


def _random_problems(spec: ModelSpec, rows: pd.DataFrame) -> list[str]:
    """Levels of every grouping factor against the observations, and within-group variation of slopes."""
    problems = []
    n_obs = len(rows)
    for name, codes, slopes in _group_codes(spec, rows):
        levels = int(codes.nunique())
        if levels < 2:
            problems.append(f"grouping factor '{name}' has {levels} level; a random effect needs at least 2")
            continue
        if levels >= n_obs:
            problems.append(
                f"grouping factor '{name}' has {levels} levels for {n_obs} observations (one row per level): "
                "the number of levels of each grouping factor must be < the number of observations (as lme4 "
                "requires), else its variance cannot be told apart from the residual variance"
            )
            continue
        n_effects = levels * (1 + len(slopes))
        if slopes and n_effects >= n_obs:
            problems.append(
                f"random-effects term (1 + {' + '.join(slopes)} | {name}) has {n_effects} random effects for "
                f"{n_obs} observations; the random effects must be fewer than the observations (as lme4 requires)"
            )
        for slope in slopes:
            varying = int((rows[slope].groupby(codes.to_numpy()).nunique() >= 2).sum())
            if varying < MIN_GROUPS_WITH_SLOPE_VARIATION:
                problems.append(
                    f"random slope '{slope}' varies within {varying} of the {levels} levels of '{name}'; a random "
                    f"slope needs within-group variation in at least {MIN_GROUPS_WITH_SLOPE_VARIATION} levels"
                )
    return problems


def identifiability_problems(spec: ModelSpec, data: pd.DataFrame) -> list[str]:
    """Why the complete cases of ``data`` cannot identify ``spec`` (empty: they can, as far as these checks go).

    Columns the data lack are left to the engines' own check (it names them).

    >>> from alliance.engines.spec import RandomTerm
    >>> spec = ModelSpec("m", "y", ("x",), (RandomTerm("patient"),))
    >>> one_session = pd.DataFrame({"patient": ["a", "b", "c"], "x": [1.0, 2.0, 3.0], "y": [2.0, 1.0, 4.0]})
    >>> identifiability_problems(spec, one_session)[0][:57]
    "grouping factor 'patient' has 3 levels for 3 observations"
    """
    rows = _complete_cases(spec, data)
    if spec.outcome not in rows:
        return []
    if len(rows) == 0:
        return ["no row has every column of the model"]
    random_columns = [c for t in spec.random for c in (t.group, *([t.nested_in] if t.nested_in else []), *t.slopes)]
    problems = _fixed_problems(spec, rows)
    if all(c in rows for c in random_columns):
        problems += _random_problems(spec, rows)
    return problems


def check_identifiable(spec: ModelSpec, data: pd.DataFrame) -> None:
    """Raise :class:`NotIdentifiable` naming the model and every reason when the data cannot identify it."""
    problems = identifiability_problems(spec, data)
    if problems:
        raise NotIdentifiable(spec.name, problems)
