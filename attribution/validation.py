"""Checks of numeric settings: what was expected, what was received, under which name.

Each returns the value as a float or raises :class:`attribution.errors.InputError` naming the
setting and the value received (never NaN, never a bare ``ValueError``). scikit-learn's
``utils/validation.py`` is the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from attribution.errors import InputError


def finite(name: str, value: float) -> float:
    """``value`` as a finite float.

    Examples
    --------
    >>> finite("alpha", "0.05")
    0.05
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return x


def open_unit(name: str, value: float) -> float:
    """``value`` strictly between 0 and 1 (a share, a probability, a level)."""
    x = finite(name, value)
    if not 0.0 < x < 1.0:
        raise InputError(f"{name} must be in (0, 1), got {value!r}")
    return x


def positive(name: str, value: float) -> float:
    """``value`` > 0."""
    x = finite(name, value)
    if x <= 0.0:
        raise InputError(f"{name} must be > 0, got {value!r}")
    return x


def non_negative(name: str, value: float) -> float:
    """``value`` >= 0."""
    x = finite(name, value)
    if x < 0.0:
        raise InputError(f"{name} must be >= 0, got {value!r}")
    return x


def whole(name: str, value: object, minimum: int = 1) -> int:
    """``value`` a whole number (not a bool, not a float) >= ``minimum``.

    Examples
    --------
    >>> whole("bands", 3, minimum=2)
    3
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def one_of(name: str, value: object, choices: Iterable) -> object:
    """``value`` one of ``choices``.

    Examples
    --------
    >>> one_of("metric", "absolute", ("absolute", "relative"))
    'absolute'
    """
    allowed = list(choices)
    if value not in allowed:
        raise InputError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def text(name: str, value: object) -> str:
    """``value`` non-empty text, stripped.

    Examples
    --------
    >>> text("intervention", "  recovery gift ")
    'recovery gift'
    """
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{name} must be non-empty text, got {value!r}")
    return value.strip()
