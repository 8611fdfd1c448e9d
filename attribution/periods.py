"""Months, the one period of the data contract: shift, count and write them in one place.

Outcomes are monthly (``period`` is the first day of a month); every window, horizon and
schedule in the package is counted in whole months with these helpers.

Foundation layer: it imports nothing of the package.
"""

from __future__ import annotations

from datetime import date, datetime

__all__ = ["add_months", "month_text", "months_between", "window_months"]


def add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after (or before, negative) ``day``'s month.

    Examples
    --------
    >>> add_months(date(2025, 11, 17), 3)
    datetime.date(2026, 2, 1)
    """
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def months_between(start: date, end: date) -> int:
    """Whole months from ``start``'s month to ``end``'s month (negative when ``end`` is earlier).

    Examples
    --------
    >>> months_between(date(2025, 11, 1), date(2026, 2, 1))
    3
    """
    return (end.year - start.year) * 12 + end.month - start.month


def window_months(start: date, horizon: date) -> int:
    """Months in a window from ``start``'s month to ``horizon``'s month, both included.

    Examples
    --------
    >>> window_months(date(2025, 11, 1), date(2026, 2, 1))
    4
    """
    return months_between(start, horizon) + 1


def month_text(value: date | datetime | None) -> str | None:
    """A month as ``YYYY-MM``; None stays None.

    Examples
    --------
    >>> month_text(date(2026, 2, 1)), month_text(None)
    ('2026-02', None)
    """
    return None if value is None else f"{value:%Y-%m}"
