"""Settings used everywhere: the interval width, the diagnostics gate and the money assumptions.

The payback rule lives here too, beside the money assumptions, because the simulator (which
plants the true payback) and the money layer (which estimates it) must apply the same one.

One place, so every number a user sees carries an interval of the same width and kind. A
configuration file (``cx.toml``) or a caller may override them; nothing else hard-codes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attribution.errors import InputError

#: The samplers a cell model can run on: nutpie (default, compiled with numba) or PyMC's own NUTS.
SAMPLERS = ("nutpie", "pymc")
#: What an observational question's treated customers are compared with: ``"eligible"``, every
#: eligible customer not treated in the trial month; ``"other_events"`` (conditions only), those
#: among them with another ``interactions`` row in the month (a case resolved another way).
COMPARE_WITH = ("eligible", "other_events")


@dataclass(frozen=True)
class IntervalSetting:
    """Width and kind of every reported interval.

    Parameters
    ----------
    width : float
        Probability mass inside the interval, in (0, 1). Default 0.90.
    kind : str
        ``"eti"`` (equal-tailed) or ``"hdi"`` (highest density).
    """

    width: float = 0.90
    kind: str = "eti"

    def __post_init__(self) -> None:
        if not 0.0 < self.width < 1.0:
            raise InputError(f"interval width must be in (0, 1), got {self.width}")
        if self.kind not in ("eti", "hdi"):
            raise InputError(f"interval kind must be 'eti' or 'hdi', got {self.kind!r}")

    @property
    def quantiles(self) -> tuple[float, float]:
        """Lower and upper quantiles of an equal-tailed interval."""
        tail = (1.0 - self.width) / 2.0
        return tail, 1.0 - tail


@dataclass(frozen=True)
class GateSetting:
    """Thresholds a fit must pass before anything it produced may be published.

    Defaults follow the design: R-hat <= 1.01, bulk and tail ESS >= 400, no divergences.
    """

    max_rhat: float = 1.01
    min_ess_bulk: float = 400.0
    min_ess_tail: float = 400.0
    max_divergences: int = 0

    def __post_init__(self) -> None:
        if self.max_rhat < 1.0:
            raise InputError(f"gate max_rhat must be >= 1.0, got {self.max_rhat}")
        if self.min_ess_bulk < 0 or self.min_ess_tail < 0:
            raise InputError("gate ESS thresholds must be >= 0")
        if self.max_divergences < 0:
            raise InputError("gate max_divergences must be >= 0")


#: What an intervention's effect on churn does after the readout window, as an experiment's
#: design record states it (``churn_effect_after_window``): "ends" (the default: over by the
#: window's end) or "held" (it goes on, such as a support tier, or its churn gap outlasts the
#: window). See :mod:`attribution.value`.
CHURN_AFTER_WINDOW = ("ends", "held")


@dataclass(frozen=True)
class MoneySettings:
    """Assumptions that turn effects into money; all come from configuration.

    Shared by the money layer (:mod:`attribution.value`) and the simulator, which plants the true
    money with the same assumptions.

    Parameters
    ----------
    margin_rate : float
        Gross margin on revenue, in [0, 1]. Default 0.30.
    value_horizon_months : int
        Months after the readout horizon over which retained customers are valued. Default 12.
    discount_rate : float
        Yearly discount rate; cash flows are discounted monthly from the start month. Default 0.10.
    """

    margin_rate: float = 0.30
    value_horizon_months: int = 12
    discount_rate: float = 0.10

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin_rate <= 1.0:
            raise InputError(f"margin_rate must be in [0, 1], got {self.margin_rate}")
        if self.value_horizon_months < 0:
            raise InputError(f"value_horizon_months must be >= 0, got {self.value_horizon_months}")
        if not -0.99 < self.discount_rate < 10:
            raise InputError(
                f"discount_rate must be a yearly rate such as 0.1, got {self.discount_rate}"
            )

    def discount_factors(self, months: int) -> np.ndarray:
        """Discount factor of months 0 .. months - 1 counted from the start (month 0 is 1.0).

        Examples
        --------
        >>> [round(float(x), 4) for x in MoneySettings(discount_rate=0.1).discount_factors(2)]
        [1.0, 0.9921]
        """
        monthly = (1.0 + self.discount_rate) ** (1.0 / 12.0)
        return monthly ** -np.arange(months, dtype=float)


def payback_month(cumulative: np.ndarray, cost: np.ndarray | float) -> np.ndarray:
    """First month (1-based) from which the cumulative flow covers ``cost`` to the end.

    A flow that covers the cost and later falls below it again (costs that come after the gains)
    has not paid back then: payback is the month from which it stays covered, so a schedule
    pays back exactly when its net value is >= 0. ``inf`` when it does not within the schedule.
    ``cumulative`` has months on its last axis; ``cost`` broadcasts against the other axes. A
    cost of zero: NaN (nothing to pay back).

    Examples
    --------
    >>> payback_month(np.array([5.0, 10.0, 15.0]), 9.0).item()
    2.0
    >>> payback_month(np.array([5.0, 10.0, 8.0]), 9.0).item()
    inf
    >>> payback_month(np.array([5.0, 10.0, 15.0]), 20.0).item()
    inf
    """
    cumulative = np.asarray(cumulative, dtype=float)
    cost = np.broadcast_to(np.asarray(cost, dtype=float), cumulative.shape[:-1])
    covered = cumulative >= cost[..., None]
    # covered from this month to the end of the schedule
    stays = np.logical_and.accumulate(covered[..., ::-1], axis=-1)[..., ::-1]
    first = np.argmax(stays, axis=-1).astype(float) + 1.0
    out = np.where(stays.any(axis=-1), first, np.inf)
    return np.where(cost > 0, out, np.nan)


INTERVAL = IntervalSetting()
GATE = GateSetting()
