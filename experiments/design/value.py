"""What a test is worth: the MDE in money, test-and-roll sizing that maximises profit, assurance
(the chance of a conclusive test under a prior), and holdouts sized by the value of information.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from attribution.errors import InputError
from attribution.settings import INTERVAL, IntervalSetting
from attribution.validation import finite as _finite
from attribution.validation import non_negative as _non_negative
from attribution.validation import open_unit as _open_unit
from attribution.validation import positive as _positive

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
