"""The roll-out rule's operating characteristics: how often a test of a given size rolls out.

The readout does not run a two-sided test at ``alpha``: it rolls out when P(net value > 0) is at
least a threshold (``[decision] roll_out_threshold``, 0.90 by default) and the guardrails pass
(:func:`experiments.decision.decide`). A test sized for 80% power at two-sided 5% therefore
rolls out more often at the MDE than its power says, and at no effect more often than
``alpha / 2`` (10% with a threshold of 0.90 and no cost). These functions give those chances.

The approximation, stated: the readout's posterior of the effect is taken as normal around the
estimate with the design's standard error (a weak prior; the cell models' hierarchical priors
pull segment effects, not the overall one, and ignore the guardrails), so the net value per
treated customer ``value_per_unit * effect - unit_cost`` has ``P(net > 0) = Phi((value_per_unit
* estimate - unit_cost) / (value_per_unit * se))`` and the rule rolls out when the estimate
exceeds ``unit_cost / value_per_unit + z_threshold * se``. ``tests/test_power_simulation.py``
checks the chances on the simulator's customers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import optimize, stats

from attribution.errors import InputError
from attribution.validation import finite as _finite
from attribution.validation import non_negative as _non_negative
from attribution.validation import open_unit as _open_unit
from attribution.validation import positive as _positive

__all__ = [
    "any_rollout_probability",
    "guardrail_pass_probability",
    "per_arm_threshold",
    "rollout_probability",
    "rule_sample_size",
]


def rollout_probability(
    effect: float,
    se: float,
    *,
    threshold: float = 0.9,
    value_per_unit: float = 1.0,
    unit_cost: float = 0.0,
) -> float:
    """The chance the readout's rule rolls out when the true effect is ``effect``.

    Parameters
    ----------
    effect : float
        The true effect, in the metric's units (a difference in proportions, or currency per
        customer).
    se : float
        The standard error of the effect estimate at the test's size (> 0).
    threshold : float
        The rule: roll out when P(net value > 0) >= threshold, in (0, 1).
    value_per_unit : float
        Currency one unit of effect is worth per customer (> 0); 1 for a rule on the effect.
    unit_cost : float
        The intervention's cost per treated customer (>= 0).

    Returns
    -------
    float

    Examples
    --------
    >>> round(rollout_probability(0.0, 1.0), 3)  # no effect, no cost: 1 - threshold
    0.1
    >>> round(rollout_probability(2.8016, 1.0), 3)  # the MDE of a 5% two-sided, 80% power test
    0.936
    """
    e = _finite("effect", effect)
    s = _positive("se", se)
    t = _open_unit("threshold", threshold)
    v = _positive("value_per_unit", value_per_unit)
    c = _non_negative("unit_cost", unit_cost)
    return float(stats.norm.cdf((e - c / v) / s - stats.norm.ppf(t)))


def rule_sample_size(
    se_at: Callable[[float], float],
    effect: float,
    *,
    power: float = 0.8,
    threshold: float = 0.9,
    value_per_unit: float = 1.0,
    unit_cost: float = 0.0,
) -> float:
    """Customers (in total) for the rule to roll out with chance ``power`` at ``effect``.

    Parameters
    ----------
    se_at : callable
        ``se_at(n_total)``: the standard error of the effect estimate with ``n_total`` customers.
    effect, threshold, value_per_unit, unit_cost
        As in :func:`rollout_probability`.
    power : float
        The wanted chance of rolling out at ``effect``, in (1 - threshold, 1).

    Returns
    -------
    float
        The (unrounded) total; ``inf`` when the effect does not pay the cost (no size makes the
        rule roll out more often than ``1 - threshold``).

    Examples
    --------
    >>> n = rule_sample_size(lambda n: 2.0 / math.sqrt(n), 0.2)
    >>> round(rollout_probability(0.2, 2.0 / math.sqrt(n)), 6)
    0.8
    """
    p = _open_unit("power", power)
    t = _open_unit("threshold", threshold)
    if p <= 1.0 - t:
        raise InputError(
            f"power must exceed 1 - threshold = {1 - t:g}: the rule rolls out that often with no "
            f"effect at all; got {power!r}"
        )
    v = _positive("value_per_unit", value_per_unit)
    margin = _finite("effect", effect) - _non_negative("unit_cost", unit_cost) / v
    if margin <= 0:
        return math.inf
    # rollout_probability = power  <=>  se = margin / (z_power + z_threshold)
    target = margin / (stats.norm.ppf(p) + stats.norm.ppf(t))

    def gap(log_n: float) -> float:
        return math.log(se_at(math.exp(log_n))) - math.log(target)

    lo = math.log(4.0)
    if gap(lo) <= 0:
        return 4.0
    hi = lo + math.log(4.0)
    while gap(hi) > 0:
        lo, hi = hi, hi + math.log(4.0)
        if hi > math.log(1e13):
            return math.inf
    return float(math.exp(optimize.brentq(gap, lo, hi, xtol=1e-12)))


def any_rollout_probability(
    arms: int,
    se: float,
    *,
    control_share: float = 0.5,
    threshold: float = 0.9,
    value_per_unit: float = 1.0,
    unit_cost: float = 0.0,
) -> float:
    """The chance that at least one treated arm rolls out when no arm works.

    Every treated arm is compared with the shared control and rolled out on its own P(net
    value > 0) >= ``threshold``; the comparisons share the control's mean, so their estimates
    are positively correlated, ``rho = (1 / n_c) / (1 / n_c + 1 / n_t)`` (customers per
    comparison split ``control_share`` : ``1 - control_share``). With ``k`` treated arms that
    is ``1 - P(every z_j < z_threshold + cost margin)`` under that equicorrelated normal.

    Parameters
    ----------
    arms : int
        Arms including control, >= 2.
    se : float
        Standard error of one arm's effect estimate (> 0).
    control_share, threshold, value_per_unit, unit_cost
        As in :func:`rollout_probability`; ``control_share`` in (0, 1).

    Examples
    --------
    >>> round(any_rollout_probability(2, 1.0), 3)  # one treated arm: 1 - threshold
    0.1
    >>> round(any_rollout_probability(3, 1.0), 3)  # two treated arms sharing a 50/50 control
    0.168
    """
    k = int(arms) - 1
    if k < 1 or k != arms - 1:
        raise InputError(f"arms must be a whole number >= 2, got {arms!r}")
    c = _open_unit("control_share", control_share)
    s = _positive("se", se)
    cut = stats.norm.ppf(_open_unit("threshold", threshold))
    cut += _non_negative("unit_cost", unit_cost) / _positive("value_per_unit", value_per_unit) / s
    if k == 1:
        return float(stats.norm.sf(cut))
    rho = (1.0 / c) / (1.0 / c + 1.0 / (1.0 - c))
    cov = np.full((k, k), rho) + (1.0 - rho) * np.eye(k)
    inside = stats.multivariate_normal(mean=np.zeros(k), cov=cov).cdf(np.full(k, cut))
    return float(1.0 - inside)


def per_arm_threshold(arms: int, *, control_share: float = 0.5, family: float = 0.1) -> float:
    """The per-arm threshold that keeps the chance of any false roll-out at ``family``.

    With several treated arms each rolled out on its own P(net value > 0) >= t, the chance that
    one of them rolls out when none works grows with the arms (:func:`any_rollout_probability`).
    This solves for the ``t`` at which that chance is ``family`` (no cost: the worst case), so
    the rule for several arms keeps the one-arm rule's false roll-out rate.

    Parameters
    ----------
    arms : int
        Arms including control, >= 2 (two arms: ``1 - family``).
    control_share : float
        Control's share of one comparison's customers, in (0, 1).
    family : float
        The chance of any false roll-out to keep, in (0, 1): ``1 - roll_out_threshold``.

    Examples
    --------
    >>> per_arm_threshold(2), round(per_arm_threshold(3), 4)
    (0.9, 0.9426)
    """
    f = _open_unit("family", family)
    if int(arms) == 2:
        return 1.0 - f

    def gap(t: float) -> float:
        return any_rollout_probability(arms, 1.0, control_share=control_share, threshold=t) - f

    return float(optimize.brentq(gap, 1.0 - f, 1.0 - 1e-9, xtol=1e-10))


def guardrail_pass_probability(
    se: float, margin: float, *, change: float = 0.0, z: float = 1.6448536269514722
) -> float:
    """The chance a guardrail passes: its interval's far end clears the margin.

    A cost-type guardrail (must not rise by more than ``margin``) passes when ``estimate + z *
    se <= margin``; with the estimate normal around the true ``change``, that is ``Phi((margin
    - change) / se - z)``. A CSAT-type guardrail (must not fall by more than a tolerance) is the
    same with the sign turned: ``margin = tolerance`` and ``change = -(true change)``.

    Parameters
    ----------
    se : float
        Standard error of the guardrail's estimate at the test's size (> 0).
    margin : float
        The allowed change (>= 0).
    change : float
        The true change in the harmful direction (0: the intervention does not touch it).
    z : float
        The interval's normal quantile (1.645 for 90%; a monitored test's look boundary).

    Examples
    --------
    >>> round(guardrail_pass_probability(1.0, 1.6448536269514722 + 1.2815515655446004), 3)
    0.9
    >>> round(guardrail_pass_probability(1.0, 0.0), 3)  # no margin: passes only by luck
    0.05
    """
    s = _positive("se", se)
    m = _non_negative("margin", margin)
    return float(stats.norm.cdf((m - _finite("change", change)) / s - _positive("z", z)))
