"""Plain, strict-JSON values from results: one conversion for every ``to_dict``."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd

__all__ = ["json_ready"]


def json_ready(value):
    """Recursively: dict keys as text, numpy scalars as Python, NaN/inf/NA as None, dates as text.

    Examples
    --------
    >>> json_ready({1: [np.float64("nan"), np.int64(3), date(2025, 1, 1)]})
    {'1': [None, 3, '2025-01-01']}
    """
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, date):
        return value.isoformat()
    return value
