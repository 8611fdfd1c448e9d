"""Control-group design maths: how many customers, how long, and what the test is worth.

Pure functions of the design settings; nothing here reads the store. Every sample size uses the
two-sided normal approximation at level ``alpha``:

    power(N) = Phi((delta - cc - z * se0) / se1) + Phi((-delta - cc - z * se0) / se1)

where ``z = z_{1 - alpha/2}``, ``N`` is the total sample, a share ``c`` of it in control, ``se0``
the standard error of the difference under no effect and ``se1`` under the effect ``delta``; ``cc``
is the continuity correction (zero unless asked for). Both rejection tails are counted, as
``statsmodels`` does. Sample sizes solve ``power(N) = target`` to machine precision, so computing
the power at the unrounded solution gives back the target. The textbook closed forms

    N = (z * s0 + z_beta * s1)^2 / delta^2,   s0^2 = N se0^2,   s1^2 = N se1^2

count only the near tail and are the starting point; the far tail changes N by less than one
customer at the usual settings. Each arm is rounded up separately, so ``n_total`` can exceed the
unrounded total by up to two customers.

Settings that cannot be used raise :class:`attribution.errors.InputError` naming the setting and
the value, never NaN.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from attribution.errors import InputError
from attribution.settings import INTERVAL, IntervalSetting

# The sample-ratio check lives with the readouts that run it (attribution.srm); designs use it too.
from attribution.srm import SRM_ALARM_P, SRMCheck, srm_check  # noqa: F401
from attribution.validation import finite as _finite
from attribution.validation import non_negative as _non_negative
from attribution.validation import open_unit as _open_unit
from attribution.validation import positive as _positive

#: Fewer clusters than this per arm and the normal approximation behind the cluster design effect
#: is not trusted: a common rule of thumb for cluster-randomised trials (with fewer, analyse with
#: small-sample corrections or recruit more clusters). :func:`cluster_sample_size` warns below it.
MIN_CLUSTERS_PER_ARM = 30


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


def _alpha_power(alpha: float, power: float) -> tuple[float, float]:
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


def _proportions_power_at(
    p1: float, p2: float, n_total: float, c: float, alpha: float, vf: float, continuity: bool
) -> float:
    inv = 1.0 / c + 1.0 / (1.0 - c)
    pbar = c * p1 + (1.0 - c) * p2
    se0 = math.sqrt(vf * pbar * (1.0 - pbar) * inv / n_total)
    se1 = math.sqrt(vf * (p1 * (1.0 - p1) / c + p2 * (1.0 - p2) / (1.0 - c)) / n_total)
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
    a, target = _alpha_power(alpha, power)
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
    a, target = _alpha_power(alpha, power)
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


def _means_se(sd: float, n_total: float, c: float, vf: float) -> float:
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
    se = _means_se(s, n, c, variance_factor(r2))
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
    a, target = _alpha_power(alpha, power)
    vf = variance_factor(r2)
    z = stats.norm.ppf(1.0 - a / 2.0) + stats.norm.ppf(target)
    guess = max(z**2 * s**2 * vf * (1.0 / c + 1.0 / (1.0 - c)) / delta**2, 1e-6)

    def fn(n: float) -> float:
        se = _means_se(s, n, c, vf)
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
    a, target = _alpha_power(alpha, power)
    se = _means_se(s, n, c, variance_factor(r2))
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


# --------------------------------------------------------------------------------------------
# Cluster designs


def design_effect(icc: float, cluster_size: float, cv: float = 0.0) -> float:
    """Variance inflation of a cluster design: ``1 + icc ((m - 1) + m cv^2)``.

    For unequal cluster sizes (Eldridge, Ashby & Kerry 2006), with ``m`` the mean cluster size
    and ``cv`` the coefficient of variation of the sizes.

    Parameters
    ----------
    icc : float
        Intra-cluster correlation of the outcome, in [0, 1].
    cluster_size : float
        Mean customers per cluster (team, store, queue), >= 1.
    cv : float
        Coefficient of variation of the cluster sizes, >= 0.

    Returns
    -------
    float

    Examples
    --------
    >>> round(design_effect(0.15, 30), 2)
    5.35
    """
    rho = _finite("icc", icc)
    if not 0.0 <= rho <= 1.0:
        raise InputError(f"icc must be in [0, 1], got {icc!r}")
    m = _finite("cluster_size", cluster_size)
    if m < 1.0:
        raise InputError(f"cluster_size must be >= 1, got {cluster_size!r}")
    k = _non_negative("cv", cv)
    return 1.0 + rho * ((m - 1.0) + m * k**2)


@dataclass(frozen=True)
class ClusterSampleSize:
    """Individual sample size inflated by the design effect, and the clusters it needs."""

    design_effect: float
    n_control: int
    n_treatment: int
    n_total: int
    clusters_control: int
    clusters_treatment: int

    def summary(self) -> pd.DataFrame:
        """One row per arm: customers and clusters."""
        return pd.DataFrame(
            {
                "arm": ["control", "treatment"],
                "n": [self.n_control, self.n_treatment],
                "clusters": [self.clusters_control, self.clusters_treatment],
                "design_effect": [self.design_effect] * 2,
            }
        )


def cluster_sample_size(
    size: SampleSize, icc: float, cluster_size: float, cv: float = 0.0
) -> ClusterSampleSize:
    """Inflate an individually randomised size for delivery by cluster.

    Each arm's unrounded n is multiplied by :func:`design_effect` and rounded up; clusters per
    arm are that n over the mean cluster size, rounded up. Warns (:class:`DesignWarning`) when
    either arm has fewer than :data:`MIN_CLUSTERS_PER_ARM` (30) clusters: the design effect rests
    on a normal approximation that few clusters do not support.

    Parameters
    ----------
    size : SampleSize
        From :func:`proportions_sample_size` or :func:`means_sample_size`.
    icc, cluster_size, cv
        As in :func:`design_effect`.

    Returns
    -------
    ClusterSampleSize

    Examples
    --------
    >>> base = means_sample_size(1.0, 0.2)
    >>> cluster_sample_size(base, 0.01, 10).clusters_control
    43
    """
    deff = design_effect(icc, cluster_size, cv)
    m = float(cluster_size)
    n_control = math.ceil(round(size.n_control_exact * deff, 6))
    n_treatment = math.ceil(round(size.n_treatment_exact * deff, 6))
    k_control = math.ceil(round(n_control / m, 6))
    k_treatment = math.ceil(round(n_treatment / m, 6))
    fewest = min(k_control, k_treatment)
    if fewest < MIN_CLUSTERS_PER_ARM:
        warnings.warn(
            f"only {fewest} clusters in an arm (fewer than {MIN_CLUSTERS_PER_ARM}): the normal "
            "approximation behind the design effect is not trustworthy; add clusters or plan a "
            "small-sample analysis",
            DesignWarning,
            stacklevel=2,
        )
    return ClusterSampleSize(
        design_effect=deff,
        n_control=n_control,
        n_treatment=n_treatment,
        n_total=n_control + n_treatment,
        clusters_control=k_control,
        clusters_treatment=k_treatment,
    )


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
    a, target = _alpha_power(alpha, power)
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


# --------------------------------------------------------------------------------------------
# Money


def mde_per_thousand(mde: float, value_per_unit: float) -> float:
    """The minimum detectable effect in currency per 1,000 eligible customers.

    Parameters
    ----------
    mde : float
        Absolute effect per customer (e.g. 0.02 retention, or 5.0 currency of spend), > 0.
    value_per_unit : float
        Currency one unit of the effect is worth per customer (e.g. the value of a retained
        customer; 1.0 or the margin rate for spend), > 0.

    Returns
    -------
    float
        ``1000 * mde * value_per_unit``.

    Examples
    --------
    >>> mde_per_thousand(0.02, 400.0)
    8000.0
    """
    return 1000.0 * _positive("mde", mde) * _positive("value_per_unit", value_per_unit)


@dataclass(frozen=True)
class TestRollSize:
    """Profit-maximising test size of a two-arm test & roll."""

    __test__ = False  # not a pytest test class

    n_per_arm_exact: float
    n_per_arm: int
    n_test: int
    n_rollout: int


def _test_roll_args(population: float, outcome_sd: float, prior_sd: float) -> tuple[float, ...]:
    n = _finite("population", population)
    if n <= 2:
        raise InputError(f"population must be > 2, got {population!r}")
    return n, _positive("outcome_sd", outcome_sd), _positive("prior_sd", prior_sd)


def profit_maximizing_test_size(
    population: float, outcome_sd: float, prior_sd: float
) -> TestRollSize:
    """Profit-maximising test size per arm of a symmetric test & roll (Feit & Berman 2019).

    A test shows each arm to ``n`` customers, then the arm with the higher posterior mean is
    rolled out to the other ``N - 2n``. With the outcome normal with sd ``s`` in both arms and a
    normal prior with sd ``sigma`` on each arm's mean (the same prior for both arms), expected
    profit over test and roll is maximised at (Feit & Berman 2019, eq. 10)::

        n* = sqrt(N s^2 / (4 sigma^2) + (3 s^2 / (4 sigma^2))^2) - 3 s^2 / (4 sigma^2)

    Reference: E. M. Feit and R. Berman, "Test & Roll: Profit-Maximizing A/B Tests", Marketing
    Science 38(6), 2019, 1038-1058; reference code ``test_size_nn`` in the authors' repository
    github.com/eleafeit/testandroll (``nn_functions.R``). Unlike a power calculation, n* grows
    with sqrt(N), and shrinks when the prior says the arms differ a lot (large ``sigma``).

    Parameters
    ----------
    population : float
        Customers available for test and roll together (N), > 2.
    outcome_sd : float
        Standard deviation of the outcome per customer (s), > 0.
    prior_sd : float
        Prior standard deviation of each arm's mean outcome (sigma), > 0.

    Returns
    -------
    TestRollSize
        ``n_per_arm`` is rounded up; ``n_rollout = N - n_test``.

    Examples
    --------
    >>> round(profit_maximizing_test_size(100_000, 0.1, 0.05).n_per_arm_exact, 2)
    313.24
    """
    n, s, sigma = _test_roll_args(population, outcome_sd, prior_sd)
    k = 3.0 * s**2 / (4.0 * sigma**2)
    n_star = math.sqrt(n * s**2 / (4.0 * sigma**2) + k**2) - k
    per_arm = min(math.ceil(round(n_star, 6)), int(n // 2))
    return TestRollSize(
        n_per_arm_exact=n_star,
        n_per_arm=per_arm,
        n_test=2 * per_arm,
        n_rollout=int(n) - 2 * per_arm,
    )


def expected_test_roll_profit(
    n_per_arm: float, population: float, outcome_sd: float, prior_mean: float, prior_sd: float
) -> float:
    """Expected profit per customer of a symmetric test & roll with ``n_per_arm`` per arm.

    Feit & Berman (2019), eq. 9, divided by N::

        [2 n mu + (N - 2n) (mu + sqrt(2) sigma^2 / (sqrt(pi) sqrt(2 sigma^2 + 2 s^2 / n)))] / N

    Parameters
    ----------
    n_per_arm : float
        Customers per arm in the test, with ``0 < 2 n <= N``.
    population, outcome_sd, prior_sd
        As in :func:`profit_maximizing_test_size`.
    prior_mean : float
        Prior mean of each arm's outcome (mu).

    Returns
    -------
    float

    Examples
    --------
    >>> round(expected_test_roll_profit(313.24, 100_000, 0.1, 0.7, 0.05), 4)
    0.7279
    """
    n, s, sigma = _test_roll_args(population, outcome_sd, prior_sd)
    mu = _finite("prior_mean", prior_mean)
    m = _positive("n_per_arm", n_per_arm)
    if 2.0 * m > n:
        raise InputError(f"n_per_arm must be at most population / 2, got {n_per_arm!r}")
    gain = math.sqrt(2.0) * sigma**2 / (math.sqrt(math.pi) * math.sqrt(2 * sigma**2 + 2 * s**2 / m))
    return (2.0 * m * mu + (n - 2.0 * m) * (mu + gain)) / n


@dataclass(frozen=True)
class Assurance:
    """Probability that the test ends with a credible positive result, and its Monte Carlo error."""

    probability: float
    mc_se: float
    n_sims: int


def assurance(
    prior_mean: float,
    prior_sd: float,
    sd: float,
    n_control: int,
    n_treatment: int,
    *,
    interval: IntervalSetting = INTERVAL,
    n_sims: int = 20_000,
    seed: int | np.random.Generator = 0,
) -> Assurance:
    """Bayesian assurance: chance the readout's credible interval lies above zero.

    Simulates the true effect ``theta ~ Normal(prior_mean, prior_sd)``, then the observed
    difference ``d ~ Normal(theta, se)`` with ``se = sd sqrt(1/n_control + 1/n_treatment)``,
    and counts a success when the lower end of the equal-tailed credible interval of width
    ``interval.width`` is above zero. The readout posterior is taken as ``Normal(d, se)`` (a flat
    analysis prior, which the readout's weakly informative priors approach at these sizes), so a
    success is ``d > z se`` with ``z`` the interval's upper quantile. Unlike power, assurance
    averages over what the effect might be, including the chance it is zero or negative.

    Parameters
    ----------
    prior_mean, prior_sd : float
        Design prior on the true effect (absolute, same units as ``sd``); ``prior_sd >= 0``
        (0 gives the power of the one-sided test at ``prior_mean``).
    sd : float
        Outcome standard deviation per customer, > 0.
    n_control, n_treatment : int
        Customers per arm, >= 1.
    interval : IntervalSetting
        Width of the credible interval the readout reports. Default the project setting (90%).
    n_sims : int
        Simulations, >= 100.
    seed : int or numpy.random.Generator
        Seed or generator; the same seed gives the same answer.

    Returns
    -------
    Assurance

    Examples
    --------
    >>> round(assurance(5.0, 5.0, 120.0, 9000, 9000, seed=1).probability, 2)
    0.65
    """
    mu = _finite("prior_mean", prior_mean)
    tau = _non_negative("prior_sd", prior_sd)
    s = _positive("sd", sd)
    for name, value in (("n_control", n_control), ("n_treatment", n_treatment)):
        if int(value) != value or value < 1:
            raise InputError(f"{name} must be an integer >= 1, got {value!r}")
    if int(n_sims) != n_sims or n_sims < 100:
        raise InputError(f"n_sims must be an integer >= 100, got {n_sims!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    se = s * math.sqrt(1.0 / n_control + 1.0 / n_treatment)
    z = stats.norm.ppf(interval.quantiles[1])
    theta = rng.normal(mu, tau, int(n_sims))
    observed = rng.normal(theta, se)
    p = float(np.mean(observed > z * se))
    return Assurance(
        probability=p, mc_se=math.sqrt(p * (1.0 - p) / int(n_sims)), n_sims=int(n_sims)
    )


# --------------------------------------------------------------------------------------------
# Holdout sized by value (value of information)

#: Totals on the grid that :func:`value_sized_holdout` searches and returns as its curve.
_VOI_GRID = 400
#: Shares of the costlier arm tried per total before refining (between 1/n and 1/2).
_VOI_SHARES = 48


@dataclass(frozen=True)
class HoldoutValue:
    """What a test with ``n_control`` and ``n_treatment`` customers is worth, in currency.

    Attributes
    ----------
    population, prior_mean, prior_sd, outcome_sd, n_control, n_treatment
        The inputs (see :func:`holdout_value`).
    tau : float
        Preposterior sd of the posterior mean of the effect.
    gain_per_customer : float
        ``E[max(m, 0)] - max(prior_mean, 0)``: expected value the test adds per customer decided
        after it.
    evsi : float
        Expected value of sample information: ``gain_per_customer`` times the customers left.
    cost_control, cost_treated : float
        Expected value the control arm forgoes and the treated arm loses, against deciding now.
    net : float
        ``evsi - cost_control - cost_treated``.
    """

    population: float
    prior_mean: float
    prior_sd: float
    outcome_sd: float
    n_control: int
    n_treatment: int
    tau: float
    gain_per_customer: float
    evsi: float
    cost_control: float
    cost_treated: float
    net: float

    @property
    def cost(self) -> float:
        """Total expected cost of the test against deciding now."""
        return self.cost_control + self.cost_treated

    def describe(self) -> str:
        """The value of this test in one sentence."""
        return (
            f"A holdout of {self.n_control:,} customers ({self.n_treatment:,} treated) buys "
            f"information worth {self.evsi:,.2f} against a cost of {self.cost:,.2f}: net "
            f"{self.net:,.2f}."
        )

    def to_dict(self) -> dict[str, float | int]:
        """Every field and the total cost, JSON-ready."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__}
        out["cost"] = self.cost
        return out


def _voi(
    population: float,
    prior_mean: float,
    prior_sd: float,
    outcome_sd: float,
    n_control: np.ndarray | float,
    n_treatment: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """tau, gain per customer, evsi, cost_control, cost_treated, net (vectorised, unchecked)."""
    nc = np.asarray(n_control, dtype=float)
    nt = np.asarray(n_treatment, dtype=float)
    tau = np.sqrt(prior_sd**4 / (prior_sd**2 + outcome_sd**2 * (1.0 / nc + 1.0 / nt)))
    # E[max(m, 0)] - max(mu, 0) = tau phi(u) - |mu| Phi(-u), u = |mu| / tau (the normal loss
    # function); written this way it has no cancellation against max(mu, 0).
    u = abs(prior_mean) / tau
    pdf = np.exp(-0.5 * u**2) / math.sqrt(2.0 * math.pi)
    gain = np.maximum(tau * pdf - abs(prior_mean) * special.ndtr(-u), 0.0)
    evsi = (population - nc - nt) * gain
    cost_control = nc * max(prior_mean, 0.0)
    cost_treated = nt * max(-prior_mean, 0.0)
    return tau, gain, evsi, cost_control, cost_treated, evsi - cost_control - cost_treated


def _voi_args(
    population: float, prior_mean: float, prior_sd: float, outcome_sd: float
) -> tuple[float, float, float, float]:
    return (
        _positive("population", population),
        _finite("prior_mean", prior_mean),
        _positive("prior_sd", prior_sd),
        _positive("outcome_sd", outcome_sd),
    )


def holdout_value(
    population: float,
    prior_mean: float,
    prior_sd: float,
    outcome_sd: float,
    n_control: int,
    n_treatment: int,
) -> HoldoutValue:
    """Expected value of the information a test buys, against what the test costs.

    The money model, per customer of the eligible population over the decision horizon: the
    intervention's net value per treated customer ``theta`` (already net of its unit cost), with
    prior ``theta ~ Normal(prior_mean, prior_sd)``, and an outcome sd ``outcome_sd`` (money) per
    customer. A test puts ``n_c`` customers in control and ``n_t`` in treatment; afterwards the
    remaining ``population - n_c - n_t`` customers get the intervention iff the posterior mean
    is above zero. Before the data arrive the posterior mean ``m`` is Normal(prior_mean, tau)
    with the preposterior sd::

        tau^2 = prior_sd^4 / (prior_sd^2 + outcome_sd^2 (1/n_c + 1/n_t))

    so the decision after the test is worth ``E[max(m, 0)] = mu Phi(mu/tau) + tau phi(mu/tau)``
    per remaining customer, against ``max(mu, 0)`` when deciding now::

        EVSI = (population - n_c - n_t) (E[max(m, 0)] - max(mu, 0))

    The test's cost against deciding now: the control arm forgoes ``n_c max(mu, 0)`` and the
    treated arm loses ``n_t max(-mu, 0)`` (treating when the prior says not to, intervention
    cost included); ``net = EVSI - cost``. With ``mu = 0`` the test costs nothing in expectation.

    The gain per remaining customer rises with either arm; EVSI rises with the test size while
    the test is small against the population and falls again as the test eats the customers
    whose decision it informs.

    Parameters
    ----------
    population : float
        Eligible customers over the decision horizon (test and rollout together), > 0.
    prior_mean, prior_sd : float
        Prior on the net value per treated customer, in currency; ``prior_sd > 0``.
    outcome_sd : float
        Standard deviation of the per-customer outcome, in currency, > 0.
    n_control, n_treatment : int
        Customers per arm, whole numbers >= 1, with ``n_control + n_treatment < population``.

    Returns
    -------
    HoldoutValue

    Examples
    --------
    >>> v = holdout_value(100_000, 2.0, 5.0, 100.0, 2_000, 3_000)
    >>> round(v.evsi), round(v.cost_control), v.cost_treated
    (86310, 4000, 0.0)
    """
    n, mu, sigma, s = _voi_args(population, prior_mean, prior_sd, outcome_sd)
    for name, value in (("n_control", n_control), ("n_treatment", n_treatment)):
        x = _finite(name, value)
        if x != int(x) or x < 1:
            raise InputError(f"{name} must be a whole number >= 1, got {value!r}")
    nc, nt = int(n_control), int(n_treatment)
    if nc + nt >= n:
        raise InputError(
            f"n_control + n_treatment must be below population ({population!r}) so that someone "
            f"is left to decide for, got {nc} + {nt} = {nc + nt}"
        )
    tau, gain, evsi, cc, ct, net = (float(v) for v in _voi(n, mu, sigma, s, nc, nt))
    return HoldoutValue(
        population=n,
        prior_mean=mu,
        prior_sd=sigma,
        outcome_sd=s,
        n_control=nc,
        n_treatment=nt,
        tau=tau,
        gain_per_customer=gain,
        evsi=evsi,
        cost_control=cc,
        cost_treated=ct,
        net=net,
    )


@dataclass(frozen=True, eq=False)
class HoldoutSize:
    """The test size that maximises the expected net value of information.

    Attributes
    ----------
    population, prior_mean, prior_sd, outcome_sd : float
        The inputs.
    control_share : float or None
        The fixed share of the test in control, or None when both arms were optimised.
    n_control, n_treatment, n_total : int
        The recommendation; all 0 when no test is worth its cost (decide now).
    value : HoldoutValue or None
        Value of the recommended test (None when the recommendation is not to test).
    curve : pandas.DataFrame
        ``n_total, n_control, n_treatment, evsi, cost, net`` over a grid of test sizes (the best
        split of each total, or the fixed share), the optimum included, for plotting.
    """

    population: float
    prior_mean: float
    prior_sd: float
    outcome_sd: float
    control_share: float | None
    n_control: int
    n_treatment: int
    n_total: int
    value: HoldoutValue | None
    curve: pd.DataFrame

    @property
    def worth_testing(self) -> bool:
        """True when some test has a positive expected net value."""
        return self.value is not None

    @property
    def net(self) -> float:
        """Expected net value of the recommended test (0 when deciding now)."""
        return self.value.net if self.value is not None else 0.0

    def describe(self) -> str:
        """The recommendation in plain words."""
        if self.value is not None:
            left = self.population - self.n_total
            return (
                f"{self.value.describe()} Then treat the other {left:,.0f} customers if the test's "
                "posterior mean net value per customer is above 0."
            )
        best = float(self.curve["net"].max()) if len(self.curve) else 0.0
        verdict = (
            f"roll out to all customers (prior mean {self.prior_mean:g} > 0)"
            if self.prior_mean > 0
            else f"do not roll out (prior mean {self.prior_mean:g} <= 0)"
        )
        return (
            f"No test is worth its cost: the best holdout nets {best:,.2f} <= 0. Recommend a "
            f"holdout of 0 and decide now: {verdict}."
        )

    def to_dict(self) -> dict:
        """The recommendation, its value and the curve (a list of rows), JSON-ready."""
        return {
            "population": self.population,
            "prior_mean": self.prior_mean,
            "prior_sd": self.prior_sd,
            "outcome_sd": self.outcome_sd,
            "control_share": self.control_share,
            "n_control": self.n_control,
            "n_treatment": self.n_treatment,
            "n_total": self.n_total,
            "worth_testing": self.worth_testing,
            "value": self.value.to_dict() if self.value is not None else None,
            "curve": self.curve.to_dict(orient="records"),
        }


def _split(n_total: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Whole arms for a fixed control share: control rounded half up, both arms at least 1."""
    nc = np.clip(np.floor(share * n_total + 0.5), 1, n_total - 1)
    return nc, n_total - nc


def _best_costly_share(
    totals: np.ndarray, net_of_share: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Per total, the share of the costlier arm in [1/n, 1/2] maximising the net value.

    A log-spaced grid of shares, then a vectorised golden-section search between the best
    grid point's neighbours.
    """
    t = totals[:, None]
    grid = np.exp(np.linspace(0.0, 1.0, _VOI_SHARES)[None, :] * np.log(0.5 * t) - np.log(t))
    values = net_of_share(np.broadcast_to(t, grid.shape), grid)
    best = np.argmax(values, axis=1)
    rows = np.arange(len(totals))
    lo = np.log(grid[rows, np.maximum(best - 1, 0)])
    hi = np.log(grid[rows, np.minimum(best + 1, _VOI_SHARES - 1)])
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(40):  # shrinks the bracket by 0.618^40, about 4e-9
        a = hi - golden * (hi - lo)
        b = lo + golden * (hi - lo)
        fa = net_of_share(totals, np.exp(a))
        fb = net_of_share(totals, np.exp(b))
        lo = np.where(fa < fb, a, lo)
        hi = np.where(fa < fb, hi, b)
    refined = np.exp(0.5 * (lo + hi))
    better = net_of_share(totals, refined) >= values[rows, best]
    return np.where(better, refined, grid[rows, best])


def value_sized_holdout(
    population: float,
    prior_mean: float,
    prior_sd: float,
    outcome_sd: float,
    *,
    control_share: float | None = None,
) -> HoldoutSize:
    """The holdout that maximises the expected value of information net of its cost.

    Maximises :func:`holdout_value`'s ``net`` over whole arm sizes with ``n_control,
    n_treatment >= 1`` and ``n_control + n_treatment < population``: over the total with the
    control share fixed (the control arm is the share of the total rounded to a whole number),
    or over both arms. A grid of 400 log-spaced totals (each with its best split) locates the
    optimum, a continuous search refines it, and a step search over whole numbers (one
    customer in either arm) ends at a point no neighbour beats. When no test has a positive
    net value the recommendation is 0: decide now, rolling out iff ``prior_mean > 0``.

    Relation to :func:`profit_maximizing_test_size` (Feit & Berman's test & roll): there both
    arms are uncertain, with independent Normal(mu, sigma) priors on their means, and the test's
    customers earn the prior mean whichever arm they are in, so testing only delays the better
    arm. Here the control arm is the known status quo and the prior is on the treatment's net
    effect. With ``prior_mean = 0``, ``prior_sd = sqrt(2) sigma`` (the sd of the difference of
    two such arms) and equal arms the two models coincide: the same per-customer gain
    ``sqrt(2) sigma^2 / (sqrt(pi) sqrt(2 sigma^2 + 2 s^2 / n))`` and so the same optimal n per
    arm. They differ when the prior mean is not zero: then the arm the prior disfavours costs
    money, the arms become unequal (the costlier arm smaller) and a confident prior makes any
    test a loss. The recommended size is not monotone in ``prior_sd``: as the prior tightens
    around a non-zero mean a test must first grow to be able to flip the decision, then, once
    no test repays its cost, the recommendation drops to 0 (a jump, not a slide).

    Parameters
    ----------
    population, prior_mean, prior_sd, outcome_sd : float
        As in :func:`holdout_value`; ``population`` must leave room for one customer per arm and
        one to decide for (> 2).
    control_share : float, optional
        Fix the share of the test in control, in (0, 1). Default: optimise both arms.

    Returns
    -------
    HoldoutSize

    Examples
    --------
    >>> size = value_sized_holdout(100_000, 0.0, math.sqrt(2) * 0.05, 0.1, control_share=0.5)
    >>> size.n_control, size.n_treatment
    (313, 313)
    >>> value_sized_holdout(100_000, 2.0, 0.01, 100.0).n_total
    0
    """
    n, mu, sigma, s = _voi_args(population, prior_mean, prior_sd, outcome_sd)
    if n <= 2:
        raise InputError(
            f"population must be > 2 (one customer per arm and one to decide for), got "
            f"{population!r}"
        )
    share = None if control_share is None else _open_unit("control_share", control_share)
    n_max = math.ceil(n) - 1  # largest whole test size below the population

    def net(nc: np.ndarray | float, nt: np.ndarray | float) -> np.ndarray:
        return _voi(n, mu, sigma, s, nc, nt)[5]

    # The costlier arm is control when the prior favours treating, else the treated arm.
    def arms(total: np.ndarray, costly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if mu >= 0:
            return total * costly, total * (1.0 - costly)
        return total * (1.0 - costly), total * costly

    def net_of_share(total: np.ndarray, costly: np.ndarray) -> np.ndarray:
        return net(*arms(total, costly))

    totals = np.unique(np.round(np.geomspace(2.0, max(n_max, 2), _VOI_GRID))).astype(float)
    if share is None:
        costly = _best_costly_share(totals, net_of_share)
        cont_c, cont_t = arms(totals, costly)
        nc = np.clip(np.round(cont_c), 1, totals - 1)
        nt = totals - nc
    else:
        nc, nt = _split(totals, share)
    curve_net = net(nc, nt)
    i = int(np.argmax(curve_net))
    bounds = (totals[max(i - 1, 0)], totals[min(i + 1, len(totals) - 1)])
    best_c, best_t = _refine(
        net, share, (int(nc[i]), int(nt[i])), bounds, n_max, net_of_share, arms
    )

    curve = pd.DataFrame({"n_total": totals, "n_control": nc, "n_treatment": nt})
    best_total = best_c + best_t
    curve = curve[curve["n_total"] != best_total]
    curve = pd.concat(
        [
            curve,
            pd.DataFrame({"n_total": [best_total], "n_control": [best_c], "n_treatment": [best_t]}),
        ]
    )
    curve = curve.sort_values("n_total").astype("int64").reset_index(drop=True)
    _, _, evsi, cc, ct, net_values = _voi(
        n, mu, sigma, s, curve["n_control"].to_numpy(), curve["n_treatment"].to_numpy()
    )
    curve["evsi"] = evsi
    curve["cost"] = cc + ct
    curve["net"] = net_values

    value = holdout_value(n, mu, sigma, s, best_c, best_t)
    if value.net <= 0.0:
        return HoldoutSize(n, mu, sigma, s, share, 0, 0, 0, None, curve)
    return HoldoutSize(n, mu, sigma, s, share, best_c, best_t, best_c + best_t, value, curve)


def _refine(
    net: Callable[[np.ndarray | float, np.ndarray | float], np.ndarray],
    share: float | None,
    start: tuple[int, int],
    bounds: tuple[float, float],
    n_max: int,
    net_of_share: Callable[[np.ndarray, np.ndarray], np.ndarray],
    arms: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> tuple[int, int]:
    """From the best grid point: continuous refinement, then a whole-number step search.

    ``bounds`` are the grid totals either side of ``start``. Free arms: the whole numbers
    around the continuous optimum, then steps of one customer in either arm. Fixed share: every
    total within 50 of the continuous optimum (rounding the control arm makes the net zig-zag
    from one total to the next), then steps of one or two in the total.
    """
    lo, hi = bounds
    candidates = [start]
    if share is None:

        def negative(total: float) -> float:
            t = np.array([total])
            return -float(net_of_share(t, _best_costly_share(t, net_of_share))[0])

        if hi > lo:
            t = np.array([optimize.minimize_scalar(negative, bounds=bounds, method="bounded").x])
            c, tr = (float(v[0]) for v in arms(t, _best_costly_share(t, net_of_share)))
            candidates += [
                (a, b)
                for a in (math.floor(c), math.ceil(c))
                for b in (math.floor(tr), math.ceil(tr))
            ]
    elif hi > lo:
        found = optimize.minimize_scalar(
            lambda x: -float(net(share * x, (1.0 - share) * x)), bounds=bounds, method="bounded"
        )
        window = np.arange(math.floor(found.x) - 50, math.ceil(found.x) + 51, dtype=float)
        a, b = _split(window[(window >= 2) & (window <= n_max)], share)
        candidates += list(zip(a.astype(int).tolist(), b.astype(int).tolist(), strict=True))

    def best_of(points: list[tuple[int, int]]) -> tuple[tuple[int, int] | None, float]:
        points = [(a, b) for a, b in points if a >= 1 and b >= 1 and a + b <= n_max]
        if not points:
            return None, -math.inf
        values = net(*(np.array(v, dtype=float) for v in zip(*points, strict=True)))
        j = int(np.argmax(values))
        return points[j], float(values[j])

    best, best_value = best_of(candidates)
    for _ in range(10_000):  # a handful of steps in practice
        if share is None:
            steps = [(best[0] + dc, best[1] + dt) for dc in (-1, 0, 1) for dt in (-1, 0, 1)]
        else:
            totals = np.array([best[0] + best[1] + dn for dn in (-2, -1, 1, 2)], dtype=float)
            a, b = _split(totals[(totals >= 2) & (totals <= n_max)], share)
            steps = list(zip(a.astype(int).tolist(), b.astype(int).tolist(), strict=True))
        step, value = best_of(steps)
        if step is None or value <= best_value:
            break
        best, best_value = step, value
    return best
