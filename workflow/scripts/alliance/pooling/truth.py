"""Estimates beside the simulated truth (pooling.truth: a TRUTH.yaml of alliance.simulate_studies).

For every pooled effect the truth file gives either a generating value on the harmonised scale
(``effects.<effect>.pooled.mean`` and ``between_study_sd``; per study ``by_study.<study>.value``,
and ``at_sample_sd`` when the study's own sample SD of the alliance makes it differ) or, for a
specification that estimates no single parameter, the text saying so (``targets``). The table puts
each pooled and each study's estimate beside it, with whether the 95 % CI covers it; a row with no
single parameter has no truth and no coverage, and says what it is to be compared with.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

__all__ = ["TRUTH_COLUMNS", "truth_table"]

TRUTH_COLUMNS = [
    "level",
    "effect",
    "study",
    "truth",
    "estimate",
    "ci_low",
    "ci_high",
    "covered",
    "between_study_sd_truth",
    "tau_estimate",
    "units",
    "definition",
]


def _covered(truth: float, low: float, high: float) -> Any:
    if not all(math.isfinite(float(v)) for v in (truth, low, high)):
        return pd.NA
    return bool(low <= truth <= high)


def truth_table(path: str | Path | None, pooled: pd.DataFrame, study_estimates: pd.DataFrame) -> pd.DataFrame:
    """The pooled and study estimates beside the truth of ``path`` (an empty table without one).

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "TRUTH.yaml"
    >>> _ = path.write_text("effects:\\n  same_session:\\n    units: u\\n    definition: d\\n"
    ...                     "    pooled: {mean: -4.0, between_study_sd: 1.0}\\n    by_study: {a: {value: -5.0}}\\n")
    >>> pooled = pd.DataFrame({"effect": ["same_session"], "estimate": [-3.5], "ci_low": [-4.5], "ci_high": [-2.5],
    ...                        "tau": [0.8]})
    >>> studies = pd.DataFrame({"effect": ["same_session"], "study": ["a"], "estimate": [-4.2], "ci_low": [-4.9],
    ...                         "ci_high": [-3.5]})
    >>> truth_table(path, pooled, studies)[["level", "truth", "covered"]].values.tolist()
    [['pooled', -4.0, True], ['study', -5.0, False]]
    """
    if not path:
        return pd.DataFrame(columns=TRUTH_COLUMNS)
    effects = (yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}).get("effects") or {}
    rows = []
    for _, row in pooled.iterrows():
        entry = effects.get(row["effect"])
        if entry is None:
            continue
        truth = (entry.get("pooled") or {}).get("mean", math.nan)
        text = entry.get("definition") or entry.get("targets", "")
        rows.append(
            {
                "level": "pooled",
                "effect": row["effect"],
                "study": "pooled",
                "truth": float(truth),
                **{k: row[k] for k in ("estimate", "ci_low", "ci_high")},
                "covered": _covered(truth, row["ci_low"], row["ci_high"]),
                "between_study_sd_truth": float((entry.get("pooled") or {}).get("between_study_sd", math.nan)),
                "tau_estimate": row.get("tau", math.nan),
                "units": entry.get("units", ""),
                "definition": text,
            }
        )
        for _, study in study_estimates[study_estimates["effect"] == row["effect"]].iterrows():
            found = (entry.get("by_study") or {}).get(study["study"]) or {}
            value = float(found.get("at_sample_sd", found.get("value", math.nan)))
            rows.append(
                {
                    "level": "study",
                    "effect": row["effect"],
                    "study": study["study"],
                    "truth": value,
                    **{k: study[k] for k in ("estimate", "ci_low", "ci_high")},
                    "covered": _covered(value, study["ci_low"], study["ci_high"]),
                    "between_study_sd_truth": math.nan,
                    "tau_estimate": math.nan,
                    "units": entry.get("units", ""),
                    "definition": text,
                }
            )
    return pd.DataFrame(rows, columns=TRUTH_COLUMNS)
