"""The model frame shared by the engines: the rows a model uses and its fixed-effects design."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import patsy

from alliance.engines.spec import (
    ModelSpec,
    RandomTerm,  # noqa: F401 (annotations)
    _cat_map,
    _patsy_factor,
    _validate_structure,
    to_patsy_formula,
)


def labels(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError:  # unsortable mixed types
        codes, uniques = pd.factorize(values.astype(str), sort=True)
    return codes.astype(np.int64), [str(u) for u in uniques]


@dataclass
class ModelFrame:
    """The engine-independent part of a design: complete rows, response, fixed-effects matrix."""

    df: pd.DataFrame  # complete rows of the columns the model uses (index = input labels)
    y: np.ndarray
    X: np.ndarray
    fe_names: list[str]
    n_dropped: int
    outer_name: str
    outer: list[RandomTerm]  # the outer term (0 or 1)
    nested: list[RandomTerm]  # terms nested in the outer group


def model_frame(spec: ModelSpec, data: pd.DataFrame) -> ModelFrame:
    """Validate ``spec`` against ``data``, drop incomplete rows and build y and X (patsy,
    treatment coding with the declared reference levels); shared by every engine."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError("data must be a pandas DataFrame")
    columns = [str(c) for c in data.columns]
    _validate_structure(spec, columns)
    cats = _cat_map(spec)
    outer = [rt for rt in spec.random if rt.nested_in is None]
    nested = [rt for rt in spec.random if rt.nested_in is not None]
    outer_name = outer[0].group if outer else nested[0].nested_in
    fixed_cols = [p for t in spec.fixed for p in t.split(":")]
    slope_cols = [s for rt in spec.random for s in rt.slopes]
    group_cols = [outer_name] + [rt.group for rt in nested]
    # a declared categorical column that no fixed term uses does not cost rows
    needed = list(dict.fromkeys([spec.outcome] + fixed_cols + slope_cols + group_cols))
    df = data.loc[:, needed]
    keep = df.notna().all(axis=1).to_numpy()
    n_dropped = int((~keep).sum())
    df = df.loc[keep]
    if len(df) == 0:
        raise ValueError("no complete rows for the model's columns")

    numeric = [spec.outcome] + [c for c in fixed_cols if c not in cats] + slope_cols
    for c in dict.fromkeys(numeric):
        if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]):
            raise ValueError(f"column {c!r} is not numeric; declare it in ModelSpec.categorical to treatment-code it")
    pdata: dict[str, Any] = {}
    for c in needed:
        if c in cats:
            s = df[c].astype(str)
            levels = sorted(s.unique())
            if cats[c] not in levels:
                raise ValueError(f"reference level {cats[c]!r} is not a level of {c!r}; levels: {levels}")
            if len(levels) < 2:
                raise ValueError(f"categorical column {c!r} has fewer than 2 levels")
            pdata[c] = pd.Categorical(s.to_numpy(dtype=object), categories=levels)
        elif c in numeric:
            pdata[c] = df[c].to_numpy(dtype=float)
    pframe = pd.DataFrame(pdata)
    formula = to_patsy_formula(spec)
    env = patsy.EvalEnvironment([{}])  # only data columns and patsy built-ins are visible
    y_dm, X_dm = patsy.dmatrices(formula, pframe, eval_env=env, NA_action="raise")
    X = np.asarray(X_dm, dtype=float)
    y = np.asarray(y_dm, dtype=float)[:, 0]
    fe_names = list(X_dm.design_info.column_names)
    for c in cats:  # tidy names: "therapy[T.PDT]" instead of "C(therapy, Treatment(...))[T.PDT]"
        fe_names = [n.replace(_patsy_factor(c, cats), c) for n in fe_names]
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError(f"fixed-effects design is rank deficient: {fe_names}")
    return ModelFrame(df, y, X, fe_names, n_dropped, outer_name, outer, nested)
