"""Retention curves and time: churn events for a log-rank test (Schoenfeld) and the weeks from
enrolment to readout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from attribution.errors import InputError
from attribution.validation import non_negative as _non_negative
from attribution.validation import open_unit as _open_unit
from attribution.validation import positive as _positive
from experiments.design.sizing import alpha_and_power

# --------------------------------------------------------------------------------------------
# Retention curves and time


@dataclass(frozen=True)
class EventsDesign:
    """Events (churns) needed for a log-rank test, and the weeks to observe them."""

    events_exact: float
    events: int
    weeks: float | None


def schoenfeld_events(
    hazard_ratio: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    treated_share: float = 0.5,
    events_per_week: float | None = None,
) -> EventsDesign:
    """Events needed to detect a hazard ratio with a log-rank test (Schoenfeld 1983).

    ``d = (z_{1-a/2} + z_{power})^2 / (p (1 - p) log(HR)^2)`` with ``p`` the share of customers
    treated. Calendar time is ``d / events_per_week`` (events in both arms together).

    Parameters
    ----------
    hazard_ratio : float
        Hazard of churn in treatment over control, > 0 and not 1.
    alpha, power : float
        Two-sided level and target power.
    treated_share : float
        Share of customers treated, in (0, 1).
    events_per_week : float, optional
        Churn events expected per week across both arms, > 0.

    Returns
    -------
    EventsDesign
        ``events_exact`` (unrounded), ``events`` (rounded up) and ``weeks`` (None without a rate).

    Examples
    --------
    >>> round(schoenfeld_events(0.8).events_exact, 1)
    630.5
    """
    hr = _positive("hazard_ratio", hazard_ratio)
    if hr == 1.0:
        raise InputError(f"hazard_ratio must differ from 1, got {hazard_ratio!r}")
    a, target = alpha_and_power(alpha, power)
    p = _open_unit("treated_share", treated_share)
    z = float(stats.norm.ppf(1.0 - a / 2.0) + stats.norm.ppf(target))
    d = z**2 / (p * (1.0 - p) * math.log(hr) ** 2)
    weeks = None
    if events_per_week is not None:
        weeks = d / _positive("events_per_week", events_per_week)
    return EventsDesign(events_exact=d, events=math.ceil(round(d, 6)), weeks=weeks)


@dataclass(frozen=True)
class Timeline:
    """Weeks to enrol the sample, the outcome horizon, and the week the readout is due."""

    enrolment_weeks: float
    horizon_weeks: float
    readout_weeks: float


def weeks_to_readout(n_total: float, eligible_per_week: float, horizon_weeks: float) -> Timeline:
    """Weeks from launch until the last enrolled customer reaches the outcome horizon.

    ``enrolment = n_total / eligible_per_week``; ``readout = enrolment + horizon``. Every eligible
    customer is assumed to enter the test (control or treatment).

    Parameters
    ----------
    n_total : float
        Customers needed in both arms, > 0.
    eligible_per_week : float
        Customers who become eligible per week (e.g. bad service cases), > 0.
    horizon_weeks : float
        Weeks after enrolment until the outcome is measured, >= 0.

    Returns
    -------
    Timeline

    Examples
    --------
    >>> round(weeks_to_readout(7682, 1000, 12).readout_weeks, 3)
    19.682
    """
    n = _positive("n_total", n_total)
    rate = _positive("eligible_per_week", eligible_per_week)
    horizon = _non_negative("horizon_weeks", horizon_weeks)
    enrol = n / rate
    return Timeline(enrolment_weeks=enrol, horizon_weeks=horizon, readout_weeks=enrol + horizon)
