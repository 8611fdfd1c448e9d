"""Where a monitored test stands: which planned look the data have reached, and the next one.

A design record may carry a ``monitoring`` section (written by ``cx assign --looks``, built by
:func:`experiments.design.monitoring_record`): the horizon in months, the months of the planned
looks and, per look, the roll-out threshold and the guardrails' z. Decisions are taken only at
those looks, each on the window that ends at the look's month, whatever night the refresh runs:
between looks the answer is "continue". This module only locates the look; the thresholds are
applied by :func:`experiments.decision.decide`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from attribution.errors import InputError
from attribution.periods import add_months, month_text, window_months

__all__ = ["LookState", "look_state"]


@dataclass(frozen=True)
class LookState:
    """Where a monitored test stands.

    Attributes
    ----------
    look : int or None
        The latest planned look the outcomes reach (1-based), None before the first.
    looks : int
        Looks planned.
    month : int or None
        Window length of that look in months (the start month is month 1).
    fraction : float or None
        Its information fraction as planned, ``month / horizon``.
    horizon_months : int
        The planned horizon.
    months_observed : int
        Outcome months from the start to the last month in the store.
    next_look : int or None
        The next planned look, None after the last.
    next_date : datetime.date or None
        The first day after the next look's month: the earliest date its decision can be taken
        (once that month's outcomes are loaded).
    threshold, guardrail_z : float or None
        The roll-out threshold (P(net value > 0)) and the guardrails' z at ``look``.
    look_months : tuple of int
        Window length of every planned look.
    """

    look: int | None
    looks: int
    month: int | None
    fraction: float | None
    horizon_months: int
    months_observed: int
    next_look: int | None
    next_date: date | None
    threshold: float | None
    guardrail_z: float | None
    look_months: tuple[int, ...] = ()

    @property
    def final(self) -> bool:
        """True at (or past) the last planned look: the test's final decision."""
        return self.look == self.looks

    def sentence(self, start: date) -> str:
        """One sentence: the look reached, its information fraction and the next decision."""
        if self.look is None:
            head = (
                f"Monitored test, {self.months_observed} of {self.horizon_months} months "
                f"observed: no planned look reached yet"
            )
        else:
            head = (
                f"Monitored test: look {self.look} of {self.looks} (month {self.month} of "
                f"{self.horizon_months}, information fraction {self.fraction:.2f}; roll out at "
                f"P(net value > 0) >= {self.threshold:.4f})"
            )
        if self.next_look is None:
            return head + "; this is the final look."
        end = add_months(start, self.look_months[self.next_look - 1] - 1)
        return (
            head + f"; next decision at look {self.next_look}, on the outcomes to "
            f"{month_text(end)}, expected from {self.next_date:%Y-%m-%d}."
        )


def look_state(monitoring: dict, start: date, last: date) -> LookState:
    """Locate a monitored test's planned look from its design record's ``monitoring`` section.

    Parameters
    ----------
    monitoring : dict
        ``horizon_months``, ``look_months`` (increasing, the last the horizon), ``thresholds``
        and ``guardrail_z`` (one per look).
    start : datetime.date
        First day of the experiment's start month.
    last : datetime.date
        The last outcome month observed (first day).

    Returns
    -------
    LookState

    Raises
    ------
    InputError
        A monitoring section without its looks, thresholds or horizon.

    Examples
    --------
    >>> m = {"horizon_months": 6, "look_months": [2, 4, 6], "thresholds": [0.99, 0.96, 0.91],
    ...      "guardrail_z": [3.0, 2.2, 1.7]}
    >>> s = look_state(m, date(2025, 1, 1), date(2025, 5, 1))
    >>> s.look, s.month, s.next_look, str(s.next_date)
    (2, 4, 3, '2025-07-01')
    >>> look_state(m, date(2025, 1, 1), date(2025, 12, 1)).final
    True
    """
    try:
        months = tuple(int(m) for m in monitoring["look_months"])
        horizon = int(monitoring["horizon_months"])
        thresholds = [float(t) for t in monitoring["thresholds"]]
        guard = [float(z) for z in monitoring["guardrail_z"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"the design record's monitoring section is incomplete ({exc!r}): it needs "
            "horizon_months, look_months, thresholds and guardrail_z"
        ) from None
    if not months or len(thresholds) != len(months) or len(guard) != len(months):
        raise InputError(
            "the design record's monitoring section needs one threshold and one guardrail z "
            f"per look; got {len(months)} looks, {len(thresholds)} thresholds, {len(guard)} z"
        )
    observed = window_months(start, last) if last >= start else 0
    reached = [i for i, m in enumerate(months) if m <= observed]
    k = reached[-1] if reached else None
    nxt = k + 1 if k is not None else 0
    has_next = nxt < len(months)
    return LookState(
        look=None if k is None else k + 1,
        looks=len(months),
        month=None if k is None else months[k],
        fraction=None if k is None else months[k] / horizon,
        horizon_months=horizon,
        months_observed=observed,
        next_look=nxt + 1 if has_next else None,
        next_date=add_months(start, months[nxt]) if has_next else None,
        threshold=None if k is None else thresholds[k],
        guardrail_z=None if k is None else guard[k],
        look_months=months,
    )
