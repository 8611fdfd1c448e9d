"""Sample sizes, power and minimum detectable effects: two proportions (retention), means (spend,
cost per customer), heavy-tailed spend, and several arms and metrics (Bonferroni, Holm).

Every size uses the two-sided normal approximation described in :mod:`experiments.design`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

from attribution.errors import InputError
from attribution.validation import finite as _finite
from attribution.validation import open_unit as _open_unit
from attribution.validation import positive as _positive


class DesignWarning(UserWarning):
    """A design that can be computed but should not be trusted as it stands."""


@dataclass(frozen=True)
class SampleSize:
    """Customers needed per arm, rounded up, with the unrounded total.

    Attributes
    ----------
    n_control, n_treatment : int
        Customers per arm, each rounded up from ``control_share * n_total_exact`` and
        ``(1 - control_share) * n_total_exact``.
    n_total : int
        ``n_control + n_treatment``.
    n_total_exact : float
        The unrounded total that gives exactly the target power.
    control_share, effect, alpha, power : float
        The settings the size was solved for; ``effect`` is the absolute difference sized for.
    metric : str
        ``"proportion"`` or ``"mean"``.
    """

    n_control: int
    n_treatment: int
    n_total: int
    n_total_exact: float
    control_share: float
    effect: float
    alpha: float
    power: float
    metric: str

    @property
    def n_control_exact(self) -> float:
        """Unrounded control size."""
        return self.control_share * self.n_total_exact

    @property
    def n_treatment_exact(self) -> float:
        """Unrounded treatment size."""
        return (1.0 - self.control_share) * self.n_total_exact

    @property
    def text(self) -> str:
        """The design in one sentence."""
        return (
            f"{self.n_total:,} customers ({self.n_control:,} control, {self.n_treatment:,} "
            f"treated) detect an absolute difference of {self.effect:g} in the {self.metric} "
            f"with power {self.power:g} at two-sided alpha {self.alpha:g}."
        )

    def summary(self) -> pd.DataFrame:
        """One row per arm and a total row: n (rounded up) and n_exact."""
        return pd.DataFrame(
            {
                "arm": ["control", "treatment", "total"],
                "n": [self.n_control, self.n_treatment, self.n_total],
                "n_exact": [self.n_control_exact, self.n_treatment_exact, self.n_total_exact],
            }
        )


# --------------------------------------------------------------------------------------------
# Validation


def alpha_and_power(alpha: float, power: float) -> tuple[float, float]:
    """``alpha`` in (0, 1) and ``power`` in (alpha, 1), checked; an InputError names the one
    that is not."""
    a = _open_unit("alpha", alpha)
    p = _finite("power", power)
    if not a < p < 1.0:
        raise InputError(
            f"power must be in (alpha, 1) = ({a:g}, 1): a two-sided test has power alpha with "
            f"no effect and never reaches 1; got {power!r}"
        )
    return a, p


def variance_factor(r2: float) -> float:
    """Factor ``1 - r2`` by which a covariate adjustment (CUPED) shrinks the outcome variance.

    Parameters
    ----------
    r2 : float
        Share of the outcome variance explained by pre-period data, in [0, 1).

    Returns
    -------
    float
        ``1 - r2``: multiply the variance (not the sd) by it; sample sizes shrink in proportion.

    Examples
    --------
    >>> variance_factor(0.3)
    0.7
    """
    x = _finite("r2", r2)
    if not 0.0 <= x < 1.0:
        raise InputError(f"r2 must be in [0, 1), got {r2!r}")
    return 1.0 - x


# --------------------------------------------------------------------------------------------
# The shared normal approximation


def _two_sided_power(delta: float, se0: float, se1: float, cc: float, alpha: float) -> float:
    z = stats.norm.ppf(1.0 - alpha / 2.0)
    near = stats.norm.cdf((delta - cc - z * se0) / se1)
    far = stats.norm.cdf((-delta - cc - z * se0) / se1)
    return float(near + far)


def _solve_increasing(
    fn: Callable[[float], float], target: float, guess: float, name: str, upper: float = math.inf
) -> float:
    """Root of ``fn(x) = target`` for ``fn`` increasing on (0, upper), bracketed from ``guess``."""
    limit = upper * (1.0 - 1e-12) if math.isfinite(upper) else math.inf
    lo = hi = min(guess, limit)
    for _ in range(200):
        if fn(lo) < target:
            break
        lo /= 2.0
    else:
        raise InputError(f"{name}: the target power {target:g} is reached at any {name}")
    for _ in range(200):
        if fn(hi) >= target:
            break
        if hi >= limit:
            raise InputError(f"no {name} below {upper:g} reaches the target power {target:g}")
        hi = min(2.0 * hi, limit)
    else:
        raise InputError(f"{name}: the target power {target:g} is never reached")
    return float(optimize.brentq(lambda x: fn(x) - target, lo, hi, xtol=1e-12, rtol=1e-14))


def _round_arms(n_total_exact: float, control_share: float) -> tuple[int, int]:
    # round(., 6) keeps 3841.0000000001 from becoming 3842
    n_control = math.ceil(round(control_share * n_total_exact, 6))
    n_treatment = math.ceil(round((1.0 - control_share) * n_total_exact, 6))
    return n_control, n_treatment


def _size(
    n_exact: float, share: float, effect: float, alpha: float, power: float, metric: str
) -> SampleSize:
    n_control, n_treatment = _round_arms(n_exact, share)
    return SampleSize(
        n_control=n_control,
        n_treatment=n_treatment,
        n_total=n_control + n_treatment,
        n_total_exact=n_exact,
        control_share=share,
        effect=effect,
        alpha=alpha,
        power=power,
        metric=metric,
    )


# --------------------------------------------------------------------------------------------
# Two proportions (retention)


def proportions_se(
    p_control: float, p_treatment: float, n_total: float, control_share: float, vf: float = 1.0
) -> float:
    """Standard error of a difference in proportions (unpooled) with ``n_total`` customers, a
    share ``control_share`` in control, the variance scaled by ``vf`` (:func:`variance_factor`,
    times a design effect for clusters).

    Examples
    --------
    >>> round(proportions_se(0.8, 0.82, 10_000, 0.5), 6)
    0.007843
    """
    c = control_share
    return math.sqrt(
        vf
        * (p_control * (1.0 - p_control) / c + p_treatment * (1.0 - p_treatment) / (1.0 - c))
        / n_total
    )


def _proportions_power_at(
    p1: float, p2: float, n_total: float, c: float, alpha: float, vf: float, continuity: bool
) -> float:
    inv = 1.0 / c + 1.0 / (1.0 - c)
    pbar = c * p1 + (1.0 - c) * p2
    se0 = math.sqrt(vf * pbar * (1.0 - pbar) * inv / n_total)
    se1 = proportions_se(p1, p2, n_total, c, vf)
    cc = 0.5 * inv / n_total if continuity else 0.0
    return _two_sided_power(p2 - p1, se0, se1, cc, alpha)


def _check_proportions(baseline: float, mde: float) -> tuple[float, float]:
    p1 = _open_unit("baseline", baseline)
    delta = _positive("mde", mde)
    if p1 + delta >= 1.0:
        raise InputError(
            f"mde must leave baseline + mde below 1, got mde={mde!r} with baseline={baseline!r}"
        )
    return p1, delta


def proportions_power(
    baseline: float,
    mde: float,
    n_total: float,
    *,
    control_share: float = 0.5,
    alpha: float = 0.05,
    r2: float = 0.0,
    continuity: bool = False,
) -> float:
    """Power to detect a rise from ``baseline`` to ``baseline + mde`` with ``n_total`` customers.

    Two-sided z-test of two proportions with the pooled variance under no effect (``pbar``, the
    share-weighted mean of the two proportions) and the unpooled variance under the effect.

    Parameters
    ----------
    baseline : float
        Control proportion (e.g. retention), in (0, 1).
    mde : float
        Absolute rise to detect, > 0, with ``baseline + mde < 1``. To size for a fall from ``p``
        to ``p - d``, pass ``baseline=p - d`` and ``mde=d`` (the variances are symmetric in the
        two proportions; with an unequal split the pooled term shifts slightly).
    n_total : float
        Customers in both arms together, > 0.
    control_share : float
        Share of customers in control, in (0, 1).
    alpha : float
        Two-sided significance level.
    r2 : float
        Variance explained by pre-period covariates (CUPED), in [0, 1); both variances are
        multiplied by ``1 - r2``.
    continuity : bool
        Apply the continuity correction ``(1/n_control + 1/n_treatment) / 2`` (Fleiss).

    Returns
    -------
    float
        Probability that the test rejects no effect, counting both tails.

    Notes
    -----
    With an unequal split the pooled variance under no effect differs from the variance under
    the effect, so for effects far below the MDE the power can dip slightly under ``alpha`` and
    is not monotone in ``mde`` there (the pooled test is biased). The property tests check that
    it rises with the effect from designs with power 0.5 upwards. It always rises with
    ``n_total``.

    Examples
    --------
    >>> round(proportions_power(0.10, 0.02, 2 * 3841), 3)
    0.8
    """
    p1, delta = _check_proportions(baseline, mde)
    c = _open_unit("control_share", control_share)
    a = _open_unit("alpha", alpha)
    n = _positive("n_total", n_total)
    return _proportions_power_at(p1, p1 + delta, n, c, a, variance_factor(r2), continuity)


def proportions_sample_size(
    baseline: float,
    mde: float,
    *,
    control_share: float = 0.5,
    alpha: float = 0.05,
    power: float = 0.8,
    r2: float = 0.0,
    continuity: bool = False,
) -> SampleSize:
    """Customers per arm to detect a rise of ``mde`` from ``baseline`` in a proportion.

    Without the continuity correction the closed form (Fleiss, Levin & Paik 2003, eq. 4.14,
    generalised to a control share ``c``) is::

        N = (z_{1-a/2} sqrt(pbar qbar (1/c + 1/(1-c))) + z_{power} sqrt(p1 q1/c + p2 q2/(1-c)))^2
            / mde^2

    With it (Fleiss, Tytun & Ury 1980)::

        N_cc = N/4 (1 + sqrt(1 + 2 (1/c + 1/(1-c)) / (N mde)))^2

    which for equal arms is the familiar ``n/4 (1 + sqrt(1 + 4 / (n mde)))^2`` per arm. The
    module solves :func:`proportions_power` for N, which equals these up to the far tail.

    Parameters
    ----------
    baseline, mde, control_share, alpha, r2, continuity
        As in :func:`proportions_power`.
    power : float
        Target power, in (alpha, 1).

    Returns
    -------
    SampleSize

    Examples
    --------
    >>> size = proportions_sample_size(0.10, 0.02)
    >>> size.n_control, size.n_treatment
    (3841, 3841)
    >>> proportions_sample_size(0.10, 0.02, continuity=True).n_control
    3941
    """
    p1, delta = _check_proportions(baseline, mde)
    c = _open_unit("control_share", control_share)
    a, target = alpha_and_power(alpha, power)
    vf = variance_factor(r2)
    p2 = p1 + delta
    inv = 1.0 / c + 1.0 / (1.0 - c)
    pbar = c * p1 + (1.0 - c) * p2
    z_a = stats.norm.ppf(1.0 - a / 2.0)
    z_b = stats.norm.ppf(target)
    s0 = math.sqrt(vf * pbar * (1.0 - pbar) * inv)
    s1 = math.sqrt(vf * (p1 * (1.0 - p1) / c + p2 * (1.0 - p2) / (1.0 - c)))
    guess = max((z_a * s0 + z_b * s1) ** 2 / delta**2, 1e-6)
    if continuity:
        guess = guess / 4.0 * (1.0 + math.sqrt(1.0 + 2.0 * inv / (guess * delta))) ** 2

    def fn(n: float) -> float:
        return _proportions_power_at(p1, p2, n, c, a, vf, continuity)

    n_exact = _solve_increasing(fn, target, guess, "n_total")
    return _size(n_exact, c, delta, a, target, "proportion")


def proportions_mde(
    baseline: float,
    n_total: float,
    *,
    control_share: float = 0.5,
    alpha: float = 0.05,
    power: float = 0.8,
    r2: float = 0.0,
    continuity: bool = False,
) -> float:
    """Smallest absolute rise from ``baseline`` detected with the target power.

    Parameters
    ----------
    baseline, n_total, control_share, alpha, r2, continuity
        As in :func:`proportions_power`.
    power : float
        Target power, in (alpha, 1).

    Returns
    -------
    float
        The minimum detectable effect (absolute, in proportion points).

    Examples
    --------
    >>> round(proportions_mde(0.10, 2 * 3840.85), 4)
    0.02
    """
    p1 = _open_unit("baseline", baseline)
    c = _open_unit("control_share", control_share)
    a, target = alpha_and_power(alpha, power)
    n = _positive("n_total", n_total)
    vf = variance_factor(r2)

    def fn(d: float) -> float:
        return _proportions_power_at(p1, p1 + d, n, c, a, vf, continuity)

    guess = min(0.5 * (1.0 - p1), 4.0 * math.sqrt(0.25 * (1.0 / c + 1.0 / (1.0 - c)) / n))
    try:
        return _solve_increasing(fn, target, guess, "mde", upper=1.0 - p1)
    except InputError:
        raise InputError(
            f"n_total={n_total!r} is too small: no rise from baseline={baseline!r} reaches "
            f"power={power!r}"
        ) from None


# --------------------------------------------------------------------------------------------
# Means (spend, cost per customer)


def means_se(sd: float, n_total: float, control_share: float, vf: float = 1.0) -> float:
    """Standard error of a difference in means with ``n_total`` customers, a share
    ``control_share`` in control, per-customer ``sd`` and the variance scaled by ``vf``
    (:func:`variance_factor`, times a design effect for clusters).

    Examples
    --------
    >>> means_se(100.0, 40_000, 0.5)
    1.0
    """
    c = control_share
    return sd * math.sqrt(vf * (1.0 / c + 1.0 / (1.0 - c)) / n_total)


def means_power(
    sd: float,
    mde: float,
    n_total: float,
    *,
    control_share: float = 0.5,
    alpha: float = 0.05,
    r2: float = 0.0,
) -> float:
    """Power to detect a difference ``mde`` in a mean with outcome standard deviation ``sd``.

    ``se = sd sqrt((1 - r2) (1/c + 1/(1-c)) / N)``; two-sided z-test, both tails counted (the
    same as ``statsmodels.stats.power.NormalIndPower`` with ``effect_size = mde / sd``).

    Parameters
    ----------
    sd : float
        Standard deviation of the outcome per customer (equal in both arms), > 0.
    mde : float
        Absolute difference in the mean to detect, > 0.
    n_total : float
        Customers in both arms together, > 0.
    control_share : float
        Share of customers in control, in (0, 1).
    alpha : float
        Two-sided significance level.
    r2 : float
        Variance explained by pre-period covariates (CUPED), in [0, 1).

    Returns
    -------
    float

    Examples
    --------
    >>> round(means_power(1.0, 0.2, 2 * 392.443), 4)
    0.8
    """
    s = _positive("sd", sd)
    delta = _positive("mde", mde)
    n = _positive("n_total", n_total)
    c = _open_unit("control_share", control_share)
    a = _open_unit("alpha", alpha)
    se = means_se(s, n, c, variance_factor(r2))
    return _two_sided_power(delta, se, se, 0.0, a)


def means_sample_size(
    sd: float,
    mde: float,
    *,
    control_share: float = 0.5,
    alpha: float = 0.05,
    power: float = 0.8,
    r2: float = 0.0,
) -> SampleSize:
    """Customers per arm to detect a difference ``mde`` in a mean.

    Closed form (near tail)::

        N = (z_{1-a/2} + z_{power})^2 sd^2 (1 - r2) (1/c + 1/(1-c)) / mde^2

    With ``c = 0.5`` that is the familiar ``2 (z_a + z_b)^2 sd^2 / mde^2`` per arm.

    Parameters
    ----------
    sd, mde, control_share, alpha, r2
        As in :func:`means_power`.
    power : float
        Target power, in (alpha, 1).

    Returns
    -------
    SampleSize

    Examples
    --------
    >>> round(means_sample_size(1.0, 0.2).n_control_exact, 2)
    392.44
    """
    s = _positive("sd", sd)
    delta = _positive("mde", mde)
    c = _open_unit("control_share", control_share)
    a, target = alpha_and_power(alpha, power)
    vf = variance_factor(r2)
    z = stats.norm.ppf(1.0 - a / 2.0) + stats.norm.ppf(target)
    guess = max(z**2 * s**2 * vf * (1.0 / c + 1.0 / (1.0 - c)) / delta**2, 1e-6)

    def fn(n: float) -> float:
        se = means_se(s, n, c, vf)
        return _two_sided_power(delta, se, se, 0.0, a)

    n_exact = _solve_increasing(fn, target, guess, "n_total")
    return _size(n_exact, c, delta, a, target, "mean")


def means_mde(
    sd: float,
    n_total: float,
    *,
    control_share: float = 0.5,
    alpha: float = 0.05,
    power: float = 0.8,
    r2: float = 0.0,
) -> float:
    """Smallest absolute difference in a mean detected with the target power.

    Near-tail closed form: ``(z_{1-a/2} + z_{power}) se``.

    Parameters
    ----------
    sd, n_total, control_share, alpha, r2
        As in :func:`means_power`.
    power : float
        Target power, in (alpha, 1).

    Returns
    -------
    float

    Examples
    --------
    >>> round(means_mde(120.0, 2 * 9000), 2)
    5.01
    """
    s = _positive("sd", sd)
    n = _positive("n_total", n_total)
    c = _open_unit("control_share", control_share)
    a, target = alpha_and_power(alpha, power)
    se = means_se(s, n, c, variance_factor(r2))
    guess = max((stats.norm.ppf(1.0 - a / 2.0) + stats.norm.ppf(target)) * se, 1e-12 * s)
    return _solve_increasing(lambda d: _two_sided_power(d, se, se, 0.0, a), target, guess, "mde")


# --------------------------------------------------------------------------------------------
# Heavy-tailed spend


def heavy_tail_sample_sizes(
    values: np.ndarray,
    mde: float,
    *,
    cap_quantile: float = 0.99,
    control_share: float = 0.5,
    alpha: float = 0.05,
    power: float = 0.8,
) -> pd.DataFrame:
    """Sample sizes for the raw mean, a capped mean and the log1p mean of a heavy-tailed outcome.

    The effect is read as a proportional lift: every customer's value is multiplied by
    ``1 + mde / mean(values)``, so the raw mean rises by exactly ``mde``. The same lift moves the
    capped mean (cap held at the ``cap_quantile`` of ``values``) and the mean of ``log1p`` by
    less; each metric's own effect and sd (from ``values``, equal in both arms) give its n
    through :func:`means_sample_size`. Capping buys power but measures a different quantity:
    ``bias`` is capped mean - raw mean (negative: capping loses the top of the distribution, and
    the part of the effect that lives there). The log1p metric estimates a change in the
    geometric-type mean, not in revenue; its ``bias`` is left NaN because it is on another scale.

    Parameters
    ----------
    values : numpy.ndarray
        Per-customer values from history (e.g. spend over the outcome window), finite, >= 0.
    mde : float
        Rise in the raw mean to detect, in currency per customer, > 0.
    cap_quantile : float
        Quantile of ``values`` to cap at, in (0, 1). Default 0.99.
    control_share, alpha, power
        As in :func:`means_sample_size`.

    Returns
    -------
    pandas.DataFrame
        One row per metric (``raw mean``, ``capped mean``, ``log1p mean``) with columns ``cap``,
        ``mean``, ``sd``, ``effect`` (on the metric's own scale), ``bias``, ``n_control``,
        ``n_treatment``, ``n_total`` and ``n_total_exact``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> spend = rng.lognormal(3.0, 1.5, 20_000)
    >>> table = heavy_tail_sample_sizes(spend, mde=5.0)
    >>> bool(table.loc[1, "n_total"] < table.loc[0, "n_total"])
    True
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size < 2:
        raise InputError(f"values must be a 1-D array of at least 2 numbers, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InputError(f"values must be finite, got {int((~np.isfinite(x)).sum())} non-finite")
    if np.any(x < 0):
        raise InputError(f"values must be >= 0, got minimum {float(x.min())!r}")
    delta = _positive("mde", mde)
    q = _open_unit("cap_quantile", cap_quantile)
    mean = float(x.mean())
    if mean <= 0.0 or float(x.std(ddof=1)) == 0.0:
        raise InputError("values must vary and have a positive mean")
    lift = 1.0 + delta / mean
    cap = float(np.quantile(x, q))
    metrics = {
        "raw mean": (x, x * lift, math.nan),
        "capped mean": (np.minimum(x, cap), np.minimum(x * lift, cap), cap),
        "log1p mean": (np.log1p(x), np.log1p(x * lift), math.nan),
    }
    rows = []
    for name, (control, treated, cap_value) in metrics.items():
        effect = float(treated.mean() - control.mean())
        sd = float(control.std(ddof=1))
        if sd == 0.0 or effect <= 0.0:
            raise InputError(
                f"cap_quantile={cap_quantile!r} leaves the {name} without variation or effect"
            )
        size = means_sample_size(sd, effect, control_share=control_share, alpha=alpha, power=power)
        bias = {"raw mean": 0.0, "capped mean": float(control.mean()) - mean}.get(name, math.nan)
        rows.append(
            {
                "metric": name,
                "cap": cap_value,
                "mean": float(control.mean()),
                "sd": sd,
                "effect": effect,
                "bias": bias,
                "n_control": size.n_control,
                "n_treatment": size.n_treatment,
                "n_total": size.n_total,
                "n_total_exact": size.n_total_exact,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Several arms and metrics


def n_comparisons(n_arms: int, n_metrics: int = 1) -> int:
    """Number of tests when every treated arm is compared with control on every metric.

    Examples
    --------
    >>> n_comparisons(3, 2)
    4
    """
    if int(n_arms) != n_arms or n_arms < 2:
        raise InputError(
            f"n_arms must be an integer >= 2 (control and a treatment), got {n_arms!r}"
        )
    if int(n_metrics) != n_metrics or n_metrics < 1:
        raise InputError(f"n_metrics must be an integer >= 1, got {n_metrics!r}")
    return (int(n_arms) - 1) * int(n_metrics)


def adjust_alpha(
    alpha: float, n_tests: int, method: Literal["bonferroni", "holm"] = "bonferroni"
) -> float:
    """Per-test alpha to size each test at when ``n_tests`` are read out together.

    Bonferroni tests every hypothesis at ``alpha / m``. Holm's step-down procedure tests the
    smallest p-value at ``alpha / m``, the next at ``alpha / (m - 1)`` and so on, but which test
    comes first is only known after the data arrive; at design time each test must be powered to
    pass the first, most conservative threshold, so the design alpha for Holm is also
    ``alpha / m``. Holm's gain (later tests face looser thresholds) is realised at the readout,
    not in the sample size.

    Parameters
    ----------
    alpha : float
        Family-wise error rate, in (0, 1).
    n_tests : int
        Number of tests (see :func:`n_comparisons`), >= 1.
    method : {"bonferroni", "holm"}

    Returns
    -------
    float

    Examples
    --------
    >>> adjust_alpha(0.05, 4, "holm")
    0.0125
    """
    a = _open_unit("alpha", alpha)
    if int(n_tests) != n_tests or n_tests < 1:
        raise InputError(f"n_tests must be an integer >= 1, got {n_tests!r}")
    if method not in ("bonferroni", "holm"):
        raise InputError(f"method must be 'bonferroni' or 'holm', got {method!r}")
    return a / int(n_tests)
