"""What the intake step declares to Snakemake, from measurement: memory as a function of the export's size.

Peak RSS grows with the export (``/usr/bin/time -v`` of the step run by hand, 1 Dec 2026): 1.9 GB on
106 MB of input (1.17M session rows, config/scale.yaml), 3.77 GB on 214 MB (2.34M rows,
bench/make_scale_data.py --patients-per-therapist 200): about 300 MB + 17.5 x the input's MB. The
rules (clean_data of one dataset, clean_study of each pooled study) declare 1.25 x that, at least 1 GB.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["intake_mem_mb"]


def intake_mem_mb(wildcards: Any, input: Any) -> int:
    """MB the intake needs for inputs of ``input.size_mb`` (a Snakemake resource callable).

    >>> from types import SimpleNamespace
    >>> intake_mem_mb(None, SimpleNamespace(size_mb=106)), intake_mem_mb(None, SimpleNamespace(size_mb=1))
    (2700, 1000)
    """
    return max(1000, 100 * math.ceil(1.25 * (300 + 17.5 * input.size_mb) / 100))
