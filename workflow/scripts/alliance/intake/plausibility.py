"""Plausibility of numeric values: finite numbers, plausible ranges, a robust outlier screen.

A number can be valid (a whole number from 1 is a session number) and still not be
plausible (session 1e12 is a typing slip that moves every estimate and asks a figure
for terabytes). Three checks, each a finding naming file, row, column and value:

* every numeric cell must be a finite number ("inf", "-inf", "1e309" are not);
* session numbers, planned sessions, days, ages and covariates must lie inside
  ``cleaning.plausible_ranges`` (defaults in the config schema; a lab widens them);
  a session outside is handled by ``cleaning.invalid_session``, any other value by
  ``cleaning.implausible_value``;
* the patients file's numeric columns are screened for extreme values by the robust
  z of Iglewicz & Hoaglin (1993), |x - median| / (1.4826 MAD) above
  ``cleaning.covariate_outliers.robust_z``: reported, and set missing only when
  ``cleaning.covariate_outliers.action`` says so.

The check functions return True where a value passes; each passes what an earlier
check of the same column already failed, so one bad cell is one finding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from alliance.intake.findings import SOURCE_ROW, WARN, Finding

#: Scale factor that makes the MAD estimate the SD of normal data.
MAD_TO_SD = 1.4826
#: Reason of a non-finite number (reads after "value '...'").
NOT_FINITE = "is not a finite number (infinite, or too large to store)"

Check = Callable[[pd.Series], pd.Series]


def _on(number: pd.Series, values: pd.Series) -> pd.Series:
    """``number`` on the index of ``values``."""
    return number if number.index.equals(values.index) else number.reindex(values.index)


def _finite(n: pd.Series) -> pd.Series:
    return pd.Series(np.isfinite(n.to_numpy(dtype="float64", na_value=np.nan)), index=n.index)


def finite_check(number: pd.Series) -> Check:
    """A check that a parsed number is finite (missing passes: other checks see to it)."""

    def is_finite_number(values: pd.Series) -> pd.Series:
        n = _on(number, values)
        return n.isna() | _finite(n)

    return is_finite_number


def plausible_check(number: pd.Series, low: float, high: float, valid: Check | None = None) -> Check:
    """A check that a parsed number lies in [low, high]; missing, non-finite and values that
    ``valid`` already fails pass (they are findings of their own)."""

    def is_plausible_value(values: pd.Series) -> pd.Series:
        n = _on(number, values)
        passed = n.isna() | ~_finite(n) | n.between(low, high)
        if valid is not None:
            passed |= ~valid(values)
        return passed

    return is_plausible_value


def plausible_reason(column: str, what: str, bounds: list[float]) -> str:
    """Why a value outside its plausible range is a finding (reads after "value '...'")."""
    low, high = bounds
    return (
        f"is outside the plausible range {low:g} to {high:g} of {what}; if such values are real, "
        f"widen cleaning.plausible_ranges.{column}"
    )


def robust_z(values: pd.Series) -> pd.Series:
    """|x - median| / (1.4826 MAD) of each value; NaN where missing or when the MAD is 0.

    >>> robust_z(pd.Series([4.0, 5.0, 6.0, 5.0, 60.0, 3.0, 7.0])).round(2).tolist()
    [0.67, 0.0, 0.67, 0.0, 37.1, 1.35, 1.35]
    """
    x = values.astype("float64")
    median = x.median()
    mad = (x - median).abs().median()
    if not (np.isfinite(mad) and mad > 0):
        return pd.Series(np.nan, index=values.index)
    return (x - median).abs() / (MAD_TO_SD * mad)


def covariate_outliers(
    table: pd.DataFrame, file: str, columns: dict[str, str], settings: dict[str, Any]
) -> tuple[pd.DataFrame, list[Finding]]:
    """The robust outlier screen of the patients file's numeric ``columns`` (canonical -> lab's name).

    Returns (table, findings): a warning per extreme value, or the value set missing
    when ``settings["action"]`` is ``set_missing``.
    """
    threshold, set_missing = float(settings["robust_z"]), settings["action"] == "set_missing"
    findings = []
    for column, lab in columns.items():
        values = pd.to_numeric(table[column], errors="coerce").astype("float64")
        z = robust_z(values)
        extreme = z > threshold
        if not extreme.any():
            continue
        median = values.median()
        mad = (values - median).abs().median()
        for index in table.index[extreme.to_numpy()]:
            findings.append(
                Finding(
                    file,
                    int(table.at[index, SOURCE_ROW]),
                    lab,
                    _number_text(values[index]),
                    f"is an extreme value: robust z {z[index]:.1f} (median {median:g}, MAD {mad:g}) is above "
                    f"cleaning.covariate_outliers.robust_z ({threshold:g}); check it",
                    "set to missing" if set_missing else WARN,
                )
            )
        if set_missing:
            table[column] = table[column].mask(extreme.to_numpy())
    return table, findings


def _number_text(value: float) -> str:
    """A number as a lab would write it (5.0 -> '5', 1e12 -> '1000000000000')."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else f"{value:g}"
