"""Looks at a running test: group-sequential boundaries by alpha spending (Lan-DeMets).

A test read out by a nightly refresh is looked at every night. Each look that may end the test
spends some of the chance of a false decision, so the thresholds at the looks must be stricter
than one fixed-horizon threshold. The plan names the looks in advance (``K`` looks at months
``m_1 < ... < m_K`` of a horizon of ``H`` months) and each look's boundary comes from an alpha
spending function (Lan and DeMets 1983):

- O'Brien-Fleming type (the default), ``alpha(t) = 2 * (1 - Phi(z_{1 - alpha/2} / sqrt(t)))``:
  almost nothing is spent early, so an early stop needs overwhelming evidence and the final
  threshold is barely stricter than a fixed-horizon one;
- Pocock type, ``alpha(t) = alpha * log(1 + (e - 1) * t)``: equal-ish boundaries, earlier stops,
  a stricter final one.

``t`` is the information fraction of the look. The boundaries assume the z statistics of the
looks behave like a Brownian motion observed at ``t_k`` (``corr(Z_j, Z_k) = sqrt(t_j / t_k)``)
and solve, look by look, ``P(first crossing at look k | no effect) = alpha(t_k) - alpha(t_{k-1})``
by recursive numerical integration (Armitage, McPherson and Rowe 1969; Jennison and Turnbull
2000, ch. 19) on a grid, deterministic to about 1e-7. Written here because no well-kept Python
library ships group-sequential designs (statsmodels and scipy do not; gsDesign and rpact are R).

How the project uses them (``cx design --looks``, ``cx assign --looks``,
:func:`experiments.decision.decide`):

- the Bayesian roll-out rule, P(net value > 0) >= threshold, is a one-sided rule at level
  ``1 - threshold`` under a flat prior (``P = Phi(z)``), so look ``k`` rolls out when
  ``P >= Phi(c_k)`` with ``c_k`` the boundary at level ``1 - threshold``
  (:attr:`Boundaries.thresholds`); the hierarchical priors of the cell models shrink effects
  toward zero, which only makes the rule more cautious;
- a guardrail passes at look ``k`` when its interval with ``z = c_k`` at level
  ``(1 - interval width) / 2`` clears the margin.

Looks are planned in calendar months with ``t_k = m_k / H``. The readout at month ``m`` measures
retention at ``m`` and spend summed to ``m``: months of one customer are positively correlated, so
the looks are more correlated than a Brownian motion at ``m_k / H`` and the boundaries are
conservative (the false roll-out rate stays at or below the plan; ``tests/test_sequential.py``
checks the rate on simulated z paths and ``tests/test_loop.py`` on the full loop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from attribution.errors import InputError
from attribution.validation import open_unit as _open_unit
from experiments.design.rule import per_arm_threshold

__all__ = [
    "SPENDING",
    "Boundaries",
    "boundaries",
    "crossing_probabilities",
    "look_months",
    "monitoring_record",
    "sequential_drift",
    "simulate_crossings",
    "spent",
]

OBRIEN_FLEMING, POCOCK = "obrien-fleming", "pocock"
#: Alpha spending functions by name.
SPENDING: tuple[str, ...] = (OBRIEN_FLEMING, POCOCK)
#: Grid points per look of the numerical integration (odd, for Simpson's rule).
_POINTS = 801
#: Standard deviations below the mean where the grid starts.
_TAIL = 10.0


def spent(t: float, alpha: float, kind: str = OBRIEN_FLEMING) -> float:
    """Cumulative one-sided alpha spent by information fraction ``t``.

    Parameters
    ----------
    t : float
        Information fraction, in (0, 1]; 1 spends all of ``alpha``.
    alpha : float
        One-sided level of the whole test, in (0, 1).
    kind : {"obrien-fleming", "pocock"}
        The spending function (module docstring).

    Examples
    --------
    >>> round(spent(1.0, 0.025), 6), round(spent(0.5, 0.025), 5)
    (0.025, 0.00153)
    """
    a = _open_unit("alpha", alpha)
    if not 0.0 < t <= 1.0:
        raise InputError(f"information fraction must be in (0, 1], got {t!r}")
    if kind == OBRIEN_FLEMING:
        return float(2.0 * stats.norm.sf(stats.norm.isf(a / 2.0) / math.sqrt(t)))
    if kind == POCOCK:
        return float(a * math.log(1.0 + (math.e - 1.0) * t))
    raise InputError(f"spending must be one of {SPENDING}, got {kind!r}")


@dataclass(frozen=True)
class Boundaries:
    """One-sided upper boundaries of a group-sequential test (see :func:`boundaries`).

    Attributes
    ----------
    fractions : tuple of float
        Information fraction of each look, increasing, the last 1.
    z : tuple of float
        Boundary per look: stop for success when the z statistic is at least ``z[k]``.
    spent : tuple of float
        Cumulative alpha spent by each look.
    alpha : float
        One-sided level of the whole test.
    kind : str
        Spending function.
    """

    fractions: tuple[float, ...]
    z: tuple[float, ...]
    spent: tuple[float, ...]
    alpha: float
    kind: str

    @property
    def thresholds(self) -> tuple[float, ...]:
        """The boundaries as posterior probabilities: roll out at look ``k`` when
        P(net value > 0) >= ``Phi(z[k])`` (flat prior)."""
        return tuple(float(stats.norm.cdf(z)) for z in self.z)

    def to_dict(self) -> dict:
        """JSON-ready: fractions, z, thresholds, spent, alpha, kind."""
        return {
            "fractions": list(self.fractions),
            "z": list(self.z),
            "thresholds": list(self.thresholds),
            "spent": list(self.spent),
            "alpha": self.alpha,
            "spending": self.kind,
        }


def look_months(horizon_months: int, looks: int) -> tuple[int, ...]:
    """The months (counting the start month as 1) of ``looks`` evenly spread looks.

    Look ``k`` is at month ``ceil(k * horizon / looks)``; the last is the horizon.

    Examples
    --------
    >>> look_months(6, 3), look_months(4, 3), look_months(3, 1)
    ((2, 4, 6), (2, 3, 4), (3,))
    """
    h, k = int(horizon_months), int(looks)
    if h != horizon_months or h < 1:
        raise InputError(f"horizon must be a whole number of months >= 1, got {horizon_months!r}")
    if k != looks or not 1 <= k <= h:
        raise InputError(
            f"looks must be a whole number from 1 to the horizon's {h} months (one look a month "
            f"at most), got {looks!r}"
        )
    return tuple(math.ceil(i * h / k) for i in range(1, k + 1))


def boundaries(
    fractions: tuple[float, ...] | list[float], alpha: float, kind: str = OBRIEN_FLEMING
) -> Boundaries:
    """Boundaries that spend ``alpha`` over looks at ``fractions`` (Lan-DeMets).

    Parameters
    ----------
    fractions : sequence of float
        Information fraction of each look, strictly increasing in (0, 1], the last 1.
    alpha : float
        One-sided level of the whole test (the chance of any false crossing), in (0, 1).
    kind : {"obrien-fleming", "pocock"}

    Returns
    -------
    Boundaries

    Examples
    --------
    Three equally spaced looks at one-sided 2.5% (gsDesign's ``sfLDOF``: 3.710, 2.511, 1.993):

    >>> b = boundaries([1 / 3, 2 / 3, 1.0], 0.025)
    >>> [round(z, 3) for z in b.z]
    [3.71, 2.511, 1.993]
    >>> round(boundaries([1.0], 0.1).thresholds[0], 6)  # one look: the fixed rule
    0.9
    """
    t = _fractions(fractions)
    a = _open_unit("alpha", alpha)
    spend = [spent(x, a, kind) for x in t]
    z: list[float] = []
    for k in range(len(t)):
        target = spend[k] - (spend[k - 1] if k else 0.0)
        if target <= 1e-15:
            z.append(math.inf)
            continue
        if k == 0:  # the first look alone: a normal quantile
            z.append(float(stats.norm.isf(target)))
            continue

        def gap(c: float, k: int = k, target: float = target) -> float:
            return crossing_probabilities(t[: k + 1], (*z, c), 0.0)[k] - target

        z.append(float(optimize.brentq(gap, -5.0, 12.0, xtol=1e-10)))
    return Boundaries(tuple(t), tuple(z), tuple(spend), a, kind)


def crossing_probabilities(
    fractions: tuple[float, ...] | list[float], z: tuple[float, ...] | list[float], drift: float
) -> np.ndarray:
    """The chance that the test first crosses its boundary at each look.

    Parameters
    ----------
    fractions : sequence of float
        Information fraction per look.
    z : sequence of float
        Boundary per look (``inf``: no stop at that look).
    drift : float
        The expected z statistic at full information, ``effect / se(final)``; 0 for no effect.
        Look ``k``'s statistic is normal with mean ``drift * sqrt(t_k)``.

    Returns
    -------
    numpy.ndarray
        One probability per look; their sum is the chance of crossing at any look.

    Examples
    --------
    >>> round(float(crossing_probabilities([1.0], [1.6449], 0.0)[0]), 4)
    0.05
    """
    t = np.asarray(fractions, dtype=float)
    b = np.asarray(z, dtype=float) * np.sqrt(t)  # boundaries on the score scale S_k = Z_k sqrt(t_k)
    out = np.zeros(len(t))
    sd, mean = math.sqrt(t[0]), drift * t[0]
    out[0] = stats.norm.sf((b[0] - mean) / sd)
    if len(t) == 1:
        return out
    grid, w = _simpson(mean - _TAIL * sd, b[0], mean, sd)
    dens = stats.norm.pdf(grid, mean, sd)
    for k in range(1, len(t)):
        dt = t[k] - t[k - 1]
        sdd, mud = math.sqrt(dt), drift * dt
        out[k] = float(np.sum(w * dens * stats.norm.sf((b[k] - grid - mud) / sdd)))
        if k == len(t) - 1:
            break
        mean, sd = drift * t[k], math.sqrt(t[k])
        new_grid, new_w = _simpson(mean - _TAIL * sd, b[k], mean, sd)
        kernel = stats.norm.pdf((new_grid[:, None] - grid[None, :] - mud) / sdd) / sdd
        dens = kernel @ (w * dens)
        grid, w = new_grid, new_w
    return out


def sequential_drift(b: Boundaries, power: float) -> float:
    """The drift (expected final z) at which the looks cross with chance ``power``.

    A fixed-horizon one-sided test at level ``alpha`` needs ``z_{1-alpha} + z_power``; the ratio
    squared is the sample-size inflation the looks cost.

    Examples
    --------
    >>> b = boundaries([0.5, 1.0], 0.025)
    >>> fixed = 1.959964 + 0.841621
    >>> round((sequential_drift(b, 0.8) / fixed) ** 2, 3)  # O'Brien-Fleming, two looks
    1.004
    """
    p = _open_unit("power", power)

    def gap(d: float) -> float:
        return float(crossing_probabilities(b.fractions, b.z, d).sum()) - p

    return float(optimize.brentq(gap, -10.0, 20.0, xtol=1e-10))


def simulate_crossings(
    b: Boundaries, drift: float, *, paths: int = 200_000, seed: int = 0
) -> np.ndarray:
    """Monte Carlo counterpart of :func:`crossing_probabilities`: simulate Brownian z paths
    observed at the looks and count first crossings (a check on the integration)."""
    rng = np.random.default_rng(seed)
    t = np.asarray(b.fractions)
    steps = rng.standard_normal((paths, len(t))) * np.sqrt(np.diff(np.concatenate([[0.0], t])))
    score = np.cumsum(steps + drift * np.diff(np.concatenate([[0.0], t])), axis=1)
    crossed = score >= np.asarray(b.z) * np.sqrt(t)
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    return np.array([(first == k).mean() for k in range(len(t))])


def monitoring_record(
    horizon_months: int,
    looks: int,
    *,
    roll_out_threshold: float = 0.9,
    interval_width: float = 0.9,
    arms: int = 2,
    control_share: float = 0.5,
    kind: str = OBRIEN_FLEMING,
) -> dict:
    """The ``monitoring`` section of a design record: when a running test may be decided, and on
    what thresholds (read by :func:`attribution.looks.look_state` and
    :func:`experiments.decision.decide`).

    Parameters
    ----------
    horizon_months : int
        The planned outcome window, months from the start month (included).
    looks : int
        Planned looks, evenly spread (:func:`look_months`); 1 is the fixed-horizon test.
    roll_out_threshold : float
        The readout's rule (``[decision] roll_out_threshold``): ``1 - roll_out_threshold`` is
        the chance of any false roll-out kept over all looks (and, with several treated arms,
        all arms: each arm gets ``1 - per_arm_threshold`` of it, as at a single look).
    interval_width : float
        The intervals' width: a guardrail is a one-sided check at ``(1 - width) / 2``, spent
        over the looks the same way.
    arms, control_share : int, float
        Arms including control and control's share of one comparison, for several arms.
    kind : {"obrien-fleming", "pocock"}

    Returns
    -------
    dict
        ``horizon_months``, ``looks``, ``look_months``, ``fractions``, ``spending``,
        ``false_rollout``, ``alpha_per_arm``, ``thresholds``, ``rollout_z``,
        ``guardrail_alpha``, ``guardrail_z`` and ``rule`` (in words).

    Examples
    --------
    >>> m = monitoring_record(6, 3)
    >>> m["look_months"], [round(t, 4) for t in m["thresholds"]]
    ([2, 4, 6], [0.9956, 0.9574, 0.913])
    >>> monitoring_record(6, 1)["thresholds"]  # one look: the fixed rule
    [0.9]
    """
    months = look_months(horizon_months, looks)
    fractions = [m / int(horizon_months) for m in months]
    family = 1.0 - _open_unit("roll_out_threshold", roll_out_threshold)
    per_arm = 1.0 - per_arm_threshold(arms, control_share=control_share, family=family)
    roll = boundaries(fractions, per_arm, kind)
    guard_alpha = (1.0 - _open_unit("interval_width", interval_width)) / 2.0
    guard = boundaries(fractions, guard_alpha, kind)
    return {
        "horizon_months": int(horizon_months),
        "looks": int(looks),
        "look_months": list(months),
        "fractions": fractions,
        "spending": kind,
        "false_rollout": family,
        "alpha_per_arm": per_arm,
        "thresholds": list(roll.thresholds),
        "rollout_z": list(roll.z),
        "guardrail_alpha": guard_alpha,
        "guardrail_z": list(guard.z),
        "rule": (
            f"Lan-DeMets {kind} alpha spending over {len(months)} look(s) at months "
            f"{', '.join(map(str, months))} of {int(horizon_months)}: roll out at look k when "
            "P(net value > 0) >= thresholds[k] and every guardrail passes at z = guardrail_z[k]; "
            "between looks and below the threshold before the last look: continue"
        ),
    }


def _fractions(fractions) -> list[float]:
    t = [float(x) for x in fractions]
    if not t:
        raise InputError("a sequential design needs at least one look")
    if any(not 0.0 < x <= 1.0 for x in t) or any(b <= a for a, b in zip(t, t[1:], strict=False)):
        raise InputError(f"information fractions must increase within (0, 1]; got {t}")
    if abs(t[-1] - 1.0) > 1e-12:
        raise InputError(f"the last look must be at full information (1), got {t[-1]}")
    return t


def _simpson(lo: float, hi: float, mean: float, sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid and Simpson weights on [lo, hi] (an empty region when ``hi <= lo``)."""
    hi = min(hi, mean + _TAIL * sd)  # an infinite boundary: integrate the whole density
    if hi <= lo:
        return np.array([lo]), np.array([0.0])
    grid = np.linspace(lo, hi, _POINTS)
    h = (hi - lo) / (_POINTS - 1)
    w = np.full(_POINTS, 2.0)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return grid, w * h / 3.0
