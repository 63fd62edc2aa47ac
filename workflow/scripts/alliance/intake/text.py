"""Cells as text and text as numbers, shared by the identifier screen and the cleaning.

Two notions of "a cell as text" are needed. The screen looks at values as they
were exported (:func:`as_str`: ``str`` dtype, missing kept); the cleaning compares
cells with label spellings and ids (:func:`cell_text`: stripped, blank = missing,
a whole number read from Excel as 3.0 becomes "3").
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def as_str(values: pd.Series) -> pd.Series:
    """Values as ``str`` with missing kept; a column that already holds strings is returned as is."""
    if pd.api.types.is_string_dtype(values.dtype) and not values.dtype == object:
        return values
    return values.astype("str").where(values.notna())  # object / category -> str, keeping missing


def missing_as_false(mask: pd.Series) -> pd.Series:
    """A boolean mask with missing results (from string methods on missing cells) as False."""
    return mask.fillna(False).astype(bool)


def cell_text(column: pd.Series) -> pd.Series:
    """Values as stripped text (missing and blank become missing), whatever the format gave.

    A whole number read from Excel, SPSS or Parquet (3.0) becomes "3", so that it
    matches a label spelling or an id written as text.
    """
    if column.dtype.kind in "fiu":
        numeric = column.astype(float)
        # beyond 2**53 a float is no longer an exact whole number (and int64 would overflow)
        whole = numeric.notna() & np.isfinite(numeric) & (numeric == np.floor(numeric)) & (numeric.abs() < 2**53)
        text = numeric.astype("str").where(numeric.notna())
        text = text.mask(whole, numeric[whole].astype("int64").astype("str"))
    elif column.dtype == object:
        is_number = column.map(
            lambda v: isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        ).astype(bool)
        text = column.astype("str").where(column.notna())
        if is_number.any():
            text = text.mask(is_number, cell_text(pd.to_numeric(column[is_number], errors="coerce")))
    else:
        text = column.astype("str")
    text = text.str.strip()
    return text.mask(text == "")


def parse_numbers(text: pd.Series) -> pd.Series:
    """Text parsed as numbers (NaN where missing or not a number), float64.

    Parses each distinct value once: item columns hold a handful of them.
    """
    codes, uniques = pd.factorize(text, use_na_sentinel=True)
    numbers = pd.to_numeric(pd.Series(np.asarray(uniques, dtype=object)), errors="coerce")
    numbers = numbers.to_numpy(dtype="float64", na_value=np.nan)
    values = np.where(codes >= 0, numbers[np.maximum(codes, 0)] if len(numbers) else np.nan, np.nan)
    return pd.Series(values, index=text.index)
