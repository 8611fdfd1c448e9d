"""A simulated customer base with known true effects, written into the store.

:func:`simulate` writes a whole world: customers with segment attributes, monthly outcomes
(active, revenue, cost-to-serve), service cases, three CX interventions (two randomized
experiments and one targeted, non-randomized programme) and the ``truth`` table of the effects
the simulator planted, so that models can be checked against the answer.

How the world works (one month at a time, per customer):

1. A service case occurs with a monthly rate (by tier, tenure, acquisition channel and a
   customer-level frailty; at most one case a month). Its resolution quality is drawn from
   :data:`RESOLUTIONS` with shares 28 / 26 / 22 / 24 %. CSAT, effort, first-contact resolution
   and handle minutes follow the resolution.
2. Every case adds a resolution-dependent bump to a "grievance" that raises the log churn hazard
   and decays by a fixed factor each month. A very ineffective case turns the customer into a
   "reducer" (purchase probability times :data:`UNHAPPY_PURCHASE_FACTOR`) unless the customer is
   of the "keeper" type (a fixed share :data:`KEEPER_SHARE` of customers).
3. Revenue is a hurdle: a purchase with a probability by tier, then a lognormal amount (customer
   level sigma 0.6 times purchase sigma 0.8, about 1 in all). Cost-to-serve is handle minutes
   times a cost per minute plus an order-handling cost in purchase months (and the premium desk
   cost for premium-support customers), so it is zero in quiet months.
4. Churn is drawn with the month's hazard and is absorbing: churned customers keep a row per
   month with ``active = false`` and zero revenue and cost.

All three interventions start at month ``t0 = months // 2``; the default readout horizon is the
last simulated month. For each intervention the simulator runs the treated and the untreated path
of every customer in the intervention's population with common random numbers (the same
uniforms), holding the other interventions at what actually happened, so the ``truth`` rows are
exact averages of individual differences, not expectations.

Calibration. The constants were tuned by a secant search on 24-month worlds of 200k customers
(seeds 0-2) so that these published survey facts hold when measured from the tables with
:func:`calibration_facts`: 28 % of problems resolved very effectively and 24 % very
ineffectively; 71 % of customers whose first problem was resolved very effectively are still
customers 12 months later against 46 % of the others; 13 % of very-ineffectively served
customers who stay still shop at the same level (see :func:`calibration_facts` for how that is
measured).

Branches (optional, ``branches=k``): every customer is served by one of ``k`` branches (a
``branch`` column of customers, ``B0001`` ...; sizes vary, coefficient of variation about 0.5),
and each branch shifts its customers' log churn hazard, log purchase probability and log spend
level by an effect of its own (normal, sd :data:`BRANCH_HAZARD_SD`, :data:`BRANCH_BUY_SD`,
:data:`BRANCH_LEVEL_SD`): outcomes correlate within a branch, as they do within a store, a team
or a region of real data, which is what a test randomized by branch must be read out with. The
branches come from their own random stream: the rest of the world is identical with and without
them (same customers, cases and draws), only shifted by the branch effects.

Staggered outreach (optional, ``outreach_months=K > 1``): the targeted proactive outreach is
spread over the months ``t0 .. t0 + K - 1``, as real programmes are. In each of those months every
customer it has not reached yet and who is still active is reached with a probability from their
own recent history (the same targeting as at ``t0``: spend level, badly resolved cases in the last
three months, no purchase in the last two; monthly odds divided by ``K``), so who is reached late
depends on what happened to them in between. The truth then describes the trials a randomized
test would have run: for every month ``m`` of the outreach and every customer eligible in it
(active, not reached before), the path reached in ``m`` and the path not reached in ``m`` (and
then reached or not later, by the same targeting on that path's own history, with the same
random numbers). ``ate`` averages over every (eligible customer, month) pair, ``att`` over the
pairs reached in their month; outcomes are summed over the ``months - (t0 + K - 1)`` months from
``m``, retention is activity in the last of them, and money runs that many months plus the value
horizon from ``m``. The other interventions are held at what actually happened.

A condition's trials (optional, ``condition_follow_up=H``): the truth of "a service case
resolved very ineffectively" (:data:`CONDITION`), the question ``cx attribute --condition
resolution=very_ineffective`` asks of the data, where nothing was assigned and the event also
changes later spend (it turns non-keepers into reducers) and churn (grievance). For every month
``m`` from the fourth (:data:`CONDITION_LOOKBACK` months of history) to the last with ``H``
months of follow-up, and every customer eligible in it (active, no very ineffective case
before), the observed path and the path with month ``m``'s case flipped: a customer who had a
very ineffective case in ``m`` gets instead what the month brings others given their own case
rate (no case, or a case resolved another way, in proportion; a fresh draw), everyone else gets
a very ineffective case in ``m``; then both go on with the same random numbers (a later very
ineffective case happens or not on each path's own state). ``ate`` averages every (eligible
customer, month) pair, ``att`` the pairs whose first very ineffective case was in their month;
outcomes over the ``H`` months from ``m``, money over those and the value horizon, at no unit
cost. The interventions are held at what actually happened. The same trials among the customers
with a service case in ``m`` (:data:`CONDITION_AMONG_CASES`) flip only the case's resolution
(very ineffective to another, drawn in proportion, and back): the question "what did resolving a
case very ineffectively cost, against resolving it some other way", which the comparison with
customers who had another case that month answers.

Determinism. Customers are generated in chunks of :data:`CHUNK_SIZE`; chunk ``k`` draws from
``np.random.SeedSequence(seed).spawn(...)[k]``, so the same seed gives identical tables on any
machine and whatever the memory.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import pyarrow as pa

from attribution import store
from attribution.errors import InputError
from attribution.settings import MoneySettings, payback_month

__all__ = [
    "ARMS",
    "BRANCH_BUY_SD",
    "BRANCH_HAZARD_SD",
    "BRANCH_LEVEL_SD",
    "CHUNK_SIZE",
    "CONDITION",
    "CONDITION_AMONG_CASES",
    "CONDITION_LOOKBACK",
    "EXPERIMENTS",
    "HIDDEN_HAZARD",
    "HIDDEN_LEVEL",
    "HIDDEN_TARGETING",
    "INTERVENTIONS",
    "KEEPER_SHARE",
    "OUTCOMES",
    "RESOLUTIONS",
    "SEGMENT_COLUMNS",
    "SimSummary",
    "UNHAPPY_PURCHASE_FACTOR",
    "UNIT_COSTS",
    "calibration_facts",
    "hidden_confounder",
    "simulate",
]

INTERVENTIONS = ("recovery_gift", "premium_support", "proactive_outreach")
EXPERIMENTS = {"exp_recovery_gift": "recovery_gift", "exp_premium_support": "premium_support"}
ARMS = ("control", "treatment")
SEGMENT_COLUMNS = ("tier", "region", "channel", "tenure_band")
RESOLUTIONS = ("very_effective", "somewhat_effective", "somewhat_ineffective", "very_ineffective")
#: Outcomes in the truth table, on the readout scale (see :func:`simulate`).
OUTCOMES = ("retention", "revenue", "cost_to_serve")
#: Money in the truth table (see :func:`simulate`): planted with the simulation's MoneySettings.
MONEY_OUTCOMES = ("net_value", "payback_months")
#: The condition whose trials the simulator can plant (``condition_follow_up``): a service case
#: resolved very ineffectively, written as ``cx attribute --condition`` takes it.
CONDITION = "resolution=very_ineffective"
#: The same condition's truth against a case resolved another way: the trials among the customers
#: with a service case in the month (``cx attribute --condition ... --compare-with other-events``).
CONDITION_AMONG_CASES = "resolution=very_ineffective vs other cases"
#: Months of history before the condition's first trial month (the observational default).
CONDITION_LOOKBACK = 3
#: Cost of one unit of each intervention (one interventions row per treated customer).
UNIT_COSTS = {"recovery_gift": 20.0, "premium_support": 60.0, "proactive_outreach": 8.0}
#: Customers per generation chunk; fixed so results do not depend on the machine.
CHUNK_SIZE = 250_000
#: Share of customers who keep shopping at the same level after a very ineffective case.
KEEPER_SHARE = 0.13
#: Purchase probability multiplier of a customer who reduced spend after a very ineffective case.
UNHAPPY_PURCHASE_FACTOR = 0.35

# --- segment attributes -------------------------------------------------------------------
TIERS = ("bronze", "silver", "gold", "platinum")
REGIONS = ("north", "south", "east", "west")
CHANNELS = ("web", "store", "partner", "referral")
TENURE_BANDS = ("<1y", "1-3y", "3y+")
_SEGMENT_LEVELS = {
    "tier": TIERS,
    "region": REGIONS,
    "channel": CHANNELS,
    "tenure_band": TENURE_BANDS,
}
_TENURE_MEAN_MONTHS = 30.0
# Tier shares given the tenure band: long-standing customers are more often in higher tiers.
_TIER_P = np.array([[0.60, 0.28, 0.10, 0.02], [0.50, 0.30, 0.15, 0.05], [0.40, 0.32, 0.20, 0.08]])
_REGION_P = np.array([0.30, 0.25, 0.25, 0.20])
_CHANNEL_P = np.array([0.45, 0.25, 0.15, 0.15])

# --- baseline behaviour by segment (index = code) ---------------------------------------------
_HAZARD_TIER = np.array([0.022, 0.016, 0.011, 0.008])  # monthly churn hazard, no grievance
_HAZARD_TENURE = np.array([1.6, 1.0, 0.75])
_HAZARD_REGION = np.array([1.0, 1.1, 0.95, 1.05])
_HAZARD_CHANNEL = np.array([1.1, 0.9, 1.25, 0.8])
_BUY_TIER = np.array([0.30, 0.42, 0.55, 0.68])  # monthly purchase probability
_BUY_CHANNEL = np.array([1.0, 1.05, 0.95, 1.02])
_BUY_SD = 0.3  # customer heterogeneity of the purchase probability (log scale)
_AMOUNT_TIER = np.array([35.0, 60.0, 110.0, 220.0])  # median purchase amount
_AMOUNT_REGION = np.array([1.0, 0.9, 1.1, 1.05])
_LEVEL_SD = 0.6  # customer spend level, log scale
_AMOUNT_SD = 0.8  # purchase amount around the customer level, log scale
_CASE_TIER = np.array([0.07, 0.085, 0.10, 0.12])  # monthly service-case rate
_CASE_TENURE = np.array([1.3, 1.0, 0.9])
_CASE_CHANNEL = np.array([1.0, 0.9, 1.2, 0.95])
_CASE_FRAILTY_SHAPE = 2.0  # gamma frailty of the case rate (mean 1)

# --- service cases ----------------------------------------------------------------------------
_RESOLUTION_P = np.array([0.28, 0.26, 0.22, 0.24])
_RESOLUTION_CUM = np.cumsum(_RESOLUTION_P)[:-1]
_VI = 3  # code of very_ineffective
# Grievance bump on the log churn hazard by resolution, and its monthly decay. Tuned (see the
# module docstring) to the 71 % / 46 % twelve-month survival facts.
_GRIEVANCE_DECAY = 0.9
_BUMP = np.array([0.0, 0.45, 0.75, 1.0])
_BUMP_GOOD = -0.47
_BUMP_SCALE = 1.572
# An unresolved (somewhat or very ineffective) case brings repeat contacts: the case rate is
# multiplied by 1 + _REPEAT_BOOST * pending, where pending is set to 1 by such a case and halves
# every month.
_REPEAT_BOOST = 1.5
_REPEAT_DECAY = 0.5
_MINUTES_MEDIAN = np.array([7.0, 11.0, 16.0, 24.0])  # handle minutes by resolution
_MINUTES_SD = 0.45
_COST_PER_MINUTE = 1.1
_ORDER_COST = 1.5  # account/order handling cost in a purchase month
_CASE_CHANNELS = ("phone", "chat", "email", "social")
_CASE_CHANNEL_P = np.array([0.35, 0.35, 0.20, 0.10])
_CASE_KINDS = ("billing", "delivery", "technical", "account")
_CASE_KIND_P = np.array([0.30, 0.30, 0.25, 0.15])
_CSAT_P = np.array(  # csat 1..5 given resolution
    [
        [0.00, 0.00, 0.05, 0.30, 0.65],
        [0.00, 0.05, 0.25, 0.50, 0.20],
        [0.15, 0.40, 0.35, 0.10, 0.00],
        [0.55, 0.35, 0.10, 0.00, 0.00],
    ]
)
_EFFORT_P = np.array(  # effort 1..7 given resolution (higher = more effort)
    [
        [0.35, 0.35, 0.20, 0.07, 0.03, 0.00, 0.00],
        [0.10, 0.20, 0.30, 0.25, 0.10, 0.05, 0.00],
        [0.00, 0.05, 0.15, 0.30, 0.30, 0.15, 0.05],
        [0.00, 0.00, 0.05, 0.10, 0.25, 0.30, 0.30],
    ]
)
_FCR_P = np.array([0.90, 0.65, 0.25, 0.05])

# --- planted intervention effects (by tier code unless stated) ---------------------------------
# recovery_gift: share of the grievance forgiven, share of reducers won back, the problem fixed
# (no pending repeat contacts) and fewer contacts afterwards, and a voucher that lifts the
# purchase probability in the gift month.
_GIFT_RELIEF = np.array([0.55, 0.45, 0.30, 0.15])
_GIFT_WINBACK = np.array([0.50, 0.40, 0.30, 0.20])
_GIFT_CASE_MULT = 0.85
_GIFT_BUY_BOOST = 0.10
# premium_support (gold and platinum only): lower churn, more purchases, longer (costlier) case
# handling and a monthly premium-desk cost.
_PREMIUM_TIERS = (2, 3)
_PREMIUM_CHURN = np.array([0.0, 0.0, 0.50, 0.30])  # cut in log hazard
_PREMIUM_BUY_MULT = np.array([1.0, 1.0, 1.06, 1.03])
_PREMIUM_MINUTES_MULT = 1.6
_PREMIUM_DESK_COST = np.array([0.0, 0.0, 4.0, 6.0])
_PREMIUM_TREATED_SHARE = 0.9
# proactive_outreach: lower churn (more for higher tiers and newer customers), fewer cases,
# slightly more purchases.
_OUTREACH_CHURN = np.array([0.15, 0.25, 0.35, 0.45])
_OUTREACH_CHURN_TENURE = np.array([1.3, 1.0, 0.7])
_OUTREACH_CASE_MULT = 0.75
_OUTREACH_BUY_MULT = 1.04
# Outreach targeting (logit): high pre-period spend, recent bad cases, recent inactivity.
_OUTREACH_LOGIT = (-3.4, 0.8, 1.5, 1.2)  # intercept, log spend, bad cases, no recent purchase
_OUTREACH_SPEND_CENTER = 3.0  # log1p(mean monthly pre-period revenue) is centred here ...
_OUTREACH_SPEND_SCALE = 1.5  # ... and scaled by this

# --- branches (optional clusters, see the module docstring) ----------------------------------
#: Between-branch sd of the log churn hazard, the log purchase probability and the log spend
#: level. Planted so that a branch of a hundred customers shares a visible part of its outcomes.
BRANCH_HAZARD_SD = 0.35
BRANCH_BUY_SD = 0.15
BRANCH_LEVEL_SD = 0.2
_BRANCH_SIZE_SD = 0.5  # log-normal spread of the branch sizes
_BRANCH_STREAM = 0x6272616E  # the branches' own seed stream ("bran")
# A hidden confounder (optional): per customer u ~ N(0, 1), never written to any table, from its
# own seed stream; per unit of strength it raises the outreach's targeting logit by
# HIDDEN_TARGETING x u, lowers the log churn hazard by HIDDEN_HAZARD x u and raises the log spend
# level by HIDDEN_LEVEL x u: the outreach team sees something the data does not.
HIDDEN_TARGETING = 1.0
HIDDEN_HAZARD = 0.3
HIDDEN_LEVEL = 0.15
_HIDDEN_STREAM = 0x68696464  # "hidd"
_MAX_HIDDEN = 5.0
_MAX_BRANCHES = 9999

_MAX_HAZARD = 0.9
_MAX_CUSTOMERS = 99_999_999  # ids are C + 8 digits
_MONTH = re.compile(r"(\d{4})-(\d{2})")

_EXPERIMENT_OF = {v: k for k, v in EXPERIMENTS.items()}
_FLAG = {"recovery_gift": "gift", "premium_support": "premium", "proactive_outreach": "outreach"}
_POPULATIONS = {
    "recovery_gift": "active customers with a somewhat or very ineffective case in the month "
    "before the start",
    "premium_support": "active gold and platinum customers",
    "proactive_outreach": "active customers (targeted, not randomized)",
}


@dataclass(frozen=True)
class SimSummary:
    """What :func:`simulate` wrote: rows per table, seconds taken and the key periods.

    Attributes
    ----------
    customers, interactions, interventions, outcomes, experiments, assignments, truth : int
        Rows written to each table.
    truth_customers : int
        Rows of individual effects written (0 unless ``individual_effects``).
    seconds : float
        Wall-clock seconds the simulation took.
    first_period : datetime.date
        First simulated month (first day).
    experiment_start : datetime.date
        Month all interventions started (``t0``); the experiments' ``started`` date.
    horizon : datetime.date
        Default readout period: the last simulated month.
    """

    customers: int
    interactions: int
    interventions: int
    outcomes: int
    experiments: int
    assignments: int
    truth: int
    seconds: float
    first_period: date
    experiment_start: date
    horizon: date
    truth_customers: int = 0

    @property
    def rows(self) -> dict[str, int]:
        """Rows written per table."""
        names = ("customers", "interactions", "interventions", "outcomes", "experiments")
        out = {name: getattr(self, name) for name in names}
        out["assignments"] = self.assignments
        out["truth"] = self.truth
        if self.truth_customers:
            out["truth_customers"] = self.truth_customers
        return out


def simulate(
    con: duckdb.DuckDBPyConnection,
    n_customers: int,
    months: int = 12,
    seed: int = 0,
    *,
    start: str = "2025-01",
    money: MoneySettings | None = None,
    branches: int = 0,
    outreach_months: int = 1,
    hidden_confounding: float = 0.0,
    outreach_targeting: float = 1.0,
    individual_effects: bool = False,
    condition_follow_up: int = 0,
) -> SimSummary:
    """Write a simulated customer base with known intervention effects into the store.

    The data tables are assumed empty. No transaction is opened or committed: wrap the call in
    one (``BEGIN`` ... ``COMMIT``) to make it atomic. The same arguments give identical tables.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An initialised store (:func:`attribution.store.connect`).
    n_customers : int
        Customers to simulate, 1 to 99,999,999 (ids ``C00000001`` ...).
    months : int
        Months of outcomes, at least 3. Interventions start at month ``months // 2``.
    seed : int
        Non-negative random seed.
    start : str
        First month, ``YYYY-MM``.
    money : MoneySettings, optional
        Margin, value horizon and discount rate of the planted money (default
        ``MoneySettings()``, the configuration's defaults). Stored in each experiment's design
        record under ``money``.
    branches : int
        0 (default) for none; else customers are served by this many branches (a ``branch``
        column of customers) whose effects make outcomes correlate within a branch (see the
        module docstring). At most 9,999.
    outreach_months : int
        1 (default): the targeted proactive outreach reaches its customers at ``t0``, like the
        other interventions. ``K > 1``: it is staggered over the months ``t0 .. t0 + K - 1``
        (see "Staggered outreach" in the module docstring); at most ``months - t0 - 1`` so that
        every trial month has a follow-up of at least two months.
    hidden_confounding : float
        0 (default): none. ``s > 0`` (at most 5): every customer has an unrecorded trait
        :func:`hidden_confounder` that the outreach targets on and that lowers churn and raises
        spend, ``s`` times the effects :data:`HIDDEN_TARGETING`, :data:`HIDDEN_HAZARD`,
        :data:`HIDDEN_LEVEL` per standard deviation: no adjustment on the stored data can remove
        the bias it causes, which is what the sensitivity analysis is for.
    outreach_targeting : float
        1 (default): the outreach targets spend, bad cases and quiet months as documented. 0:
        it reaches eligible customers at random (the intercept's monthly rate): a randomized
        staggered trial, where the difference in means must recover the planted truth (the
        check of the truth itself). Values in between (up to 2) scale the targeting.
    individual_effects : bool
        Also write ``truth_customers``: every customer's own planted effect on retention,
        revenue, cost-to-serve and net value, per intervention (per trial month for a staggered
        outreach), whose averages are the ``truth`` table's overall rows. Off by default: it is
        a row per customer of every population (the outreach's is everyone active).
    condition_follow_up : int
        0 (default): none. ``H >= 1``: also plant the effect of the condition
        :data:`CONDITION` (a service case resolved very ineffectively) in the trials
        ``cx attribute --condition resolution=very_ineffective --horizon H`` emulates (see
        "A condition's trials" in the module docstring), under the intervention name
        :data:`CONDITION`, and against a case resolved another way under
        :data:`CONDITION_AMONG_CASES`; at most ``months - 3``.

    Returns
    -------
    SimSummary

    Raises
    ------
    InputError
        A setting is out of range; the message names it.

    Notes
    -----
    ``truth`` holds, per intervention, outcome, estimand (``ate`` over the intervention's
    population, ``att`` over those treated) and segment, the exact average difference between
    each customer's treated and untreated path: for ``retention`` the difference in the share
    active at the horizon, for ``revenue`` and ``cost_to_serve`` the difference in the sum over
    the months from the start to the horizon, per customer. The outcomes tables hold the path of
    the arm each customer actually received.

    Money is planted the same way. After the last month, both paths of every customer go on for
    ``money.value_horizon_months`` more months (with the interventions as they were; these months
    are not written to ``outcomes``). Each month's cash flow is ``margin_rate x revenue -
    cost_to_serve``; ``net_value`` is the average over customers of the treated-minus-untreated
    flows discounted monthly from the start month (month 0), minus the intervention's unit cost;
    ``payback_months`` is the first month (1 = the start month) from which the cumulative mean
    discounted flow covers the unit cost to the end of the value horizon, ``inf`` when it does not
    (:func:`attribution.settings.payback_month`).

    Examples
    --------
    >>> from attribution import store
    >>> con = store.connect(":memory:")
    >>> summary = simulate(con, 500, months=6, seed=1)
    >>> summary.outcomes
    3000
    >>> str(summary.experiment_start), str(summary.horizon)
    ('2025-04-01', '2025-06-01')
    """
    began = time.perf_counter()
    first = _validate(n_customers, months, seed, start)
    if (
        not isinstance(branches, int | np.integer)
        or isinstance(branches, bool)
        or not 0 <= branches <= _MAX_BRANCHES
    ):
        raise InputError(
            f"branches must be a whole number from 0 to {_MAX_BRANCHES}, got {branches!r}"
        )
    branch = _Branches.draw(seed, int(branches)) if branches else None
    money = MoneySettings() if money is None else money
    t0 = months // 2
    if (
        not isinstance(outreach_months, int | np.integer)
        or isinstance(outreach_months, bool)
        or not 1 <= outreach_months <= max(1, months - t0 - 1)
    ):
        raise InputError(
            f"outreach_months must be a whole number from 1 to {max(1, months - t0 - 1)} with "
            f"{months} months (the outreach starts in month {t0 + 1} and every trial month needs "
            f"two months of follow-up), got {outreach_months!r}"
        )
    stagger = int(outreach_months)
    if (
        not isinstance(hidden_confounding, int | float | np.integer | np.floating)
        or isinstance(hidden_confounding, bool)
        or not 0.0 <= float(hidden_confounding) <= _MAX_HIDDEN
    ):
        raise InputError(
            f"hidden_confounding must be a number from 0 to {_MAX_HIDDEN:g}, got "
            f"{hidden_confounding!r}"
        )
    strength = float(hidden_confounding)
    if (
        not isinstance(outreach_targeting, int | float | np.integer | np.floating)
        or isinstance(outreach_targeting, bool)
        or not 0.0 <= float(outreach_targeting) <= 2.0
    ):
        raise InputError(
            f"outreach_targeting must be a number from 0 to 2, got {outreach_targeting!r}"
        )
    most = months - CONDITION_LOOKBACK
    if (
        not isinstance(condition_follow_up, int | np.integer)
        or isinstance(condition_follow_up, bool)
        or not 0 <= condition_follow_up <= most
    ):
        raise InputError(
            f"condition_follow_up must be a whole number from 0 to {most} with {months} months "
            f"(the condition's first trial month has {CONDITION_LOOKBACK} months of history), "
            f"got {condition_follow_up!r}"
        )
    if not isinstance(individual_effects, bool | np.bool_):
        raise InputError(f"individual_effects must be True or False, got {individual_effects!r}")
    month0 = np.datetime64(first, "M")
    periods = (month0 + np.arange(months)).astype("datetime64[D]")
    start_day = periods[t0]

    store.add_customer_columns(con, {"tenure_band": "VARCHAR"})
    if branch is not None:
        store.add_customer_columns(con, {"branch": "VARCHAR"})
    rows = dict.fromkeys(
        ("customers", "interactions", "interventions", "outcomes", "assignments"), 0
    )
    rows["truth_customers"] = 0
    acc = _TruthAccumulator(money, months - t0, periods if individual_effects else None)
    world = _World(
        months, t0, periods, money, stagger, float(outreach_targeting), int(condition_follow_up)
    )
    n_chunks = -(-n_customers // CHUNK_SIZE)
    for k, child in enumerate(np.random.SeedSequence(seed).spawn(n_chunks)):
        offset = k * CHUNK_SIZE
        n = min(CHUNK_SIZE, n_customers - offset)
        clusters = (branch.chunk(k, n), branch) if branch is not None else None
        hidden = strength * _hidden_chunk(seed, k, n) if strength else None
        chunk = _simulate_chunk(world, child, offset, n, acc, clusters, hidden)
        for table, frame in chunk.items():
            rows[table] += _append(con, table, frame)
        individual = acc.drain()
        if individual is not None:
            rows["truth_customers"] += _append(con, "truth_customers", individual)

    rows["experiments"] = _append(con, "experiments", _experiments(start_day, periods, seed, money))
    rows["truth"] = _append(con, "truth", acc.table())
    return SimSummary(
        customers=rows["customers"],
        interactions=rows["interactions"],
        interventions=rows["interventions"],
        outcomes=rows["outcomes"],
        experiments=rows["experiments"],
        assignments=rows["assignments"],
        truth=rows["truth"],
        seconds=time.perf_counter() - began,
        first_period=first,
        experiment_start=_to_date(start_day),
        horizon=_to_date(periods[-1]),
        truth_customers=rows["truth_customers"],
    )


def hidden_confounder(seed: int, n_customers: int) -> np.ndarray:
    """The hidden trait ``u`` (standard normal) of customers ``C00000001 ..`` in a world of
    this seed and size, as :func:`simulate` draws it (whatever ``hidden_confounding``; with 0 it
    has no effect). For tests that need the confounder's known strength.

    Examples
    --------
    >>> hidden_confounder(1, 3).shape
    (3,)
    """
    n_chunks = -(-n_customers // CHUNK_SIZE)
    parts = [
        _hidden_chunk(seed, k, min(CHUNK_SIZE, n_customers - k * CHUNK_SIZE))
        for k in range(n_chunks)
    ]
    return np.concatenate(parts)


def _hidden_chunk(seed: int, k: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([seed, _HIDDEN_STREAM, k + 1]))
    return rng.standard_normal(n)


def _validate(n_customers: object, months: object, seed: object, start: object) -> date:
    def is_int(x: object) -> bool:
        return isinstance(x, int | np.integer) and not isinstance(x, bool)

    if not is_int(n_customers) or not 1 <= n_customers <= _MAX_CUSTOMERS:
        raise InputError(
            f"n_customers must be an integer from 1 to {_MAX_CUSTOMERS:,}, got {n_customers!r}"
        )
    if not is_int(months) or months < 3:
        raise InputError(f"months must be an integer >= 3, got {months!r}")
    if not is_int(seed) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}")
    m = _MONTH.fullmatch(start) if isinstance(start, str) else None
    if m is None or not 1 <= int(m.group(2)) <= 12 or not 1900 <= int(m.group(1)) <= 9000:
        raise InputError(f"start must be a month written YYYY-MM (e.g. '2025-01'), got {start!r}")
    return date(int(m.group(1)), int(m.group(2)), 1)


def _to_date(day: np.datetime64) -> date:
    return date.fromisoformat(str(day.astype("datetime64[D]")))


# --- one chunk of customers ---------------------------------------------------------------------


class _Customers:
    """Per-customer constants of a chunk (or a subset of it), as aligned arrays."""

    __slots__ = (
        "buy",
        "case_rate",
        "desk_cost",
        "gift_relief",
        "gift_winback",
        "keeper",
        "level",
        "log_hazard",
        "outreach_churn",
        "premium_buy",
        "premium_churn",
        "tier",
        "hidden",
        "targeting",
    )

    def subset(self, idx: np.ndarray) -> _Customers:
        out = _Customers.__new__(_Customers)
        for name in self.__slots__:
            value = getattr(self, name)
            setattr(out, name, None if value is None else value[idx])
        return out


class _Path:
    """State of one potential-outcome path over a set of customers (``idx`` into the chunk)."""

    def __init__(self, idx, cust, active, grievance, pending, reducer, gift, premium, outreach):
        self.idx = idx
        self.cust = cust
        self.active = active
        self.grievance = grievance
        self.pending = pending
        self.reducer = reducer
        self.gift = gift
        self.premium = premium
        self.outreach = outreach
        self.was_active = active  # active during the last simulated month (before its churn)
        self.revenue_sum = np.zeros(len(active))
        self.cost_sum = np.zeros(len(active))
        self.flows: list[np.ndarray] = []  # per month: (revenue, cost) of the month
        self.actives: list[np.ndarray] = []  # per month: active during the month
        # What a staggered outreach targets on: revenue summed since the first month, the last
        # two months' revenue and the last three months' badly resolved cases.
        self.revenue_total = np.zeros(len(active))
        self.recent_revenue = [np.zeros(len(active))] * 2
        self.recent_bad = [np.zeros(len(active), dtype=bool)] * 3
        self.open = np.zeros(len(active), dtype=bool)  # may still be reached by the outreach

    def branch(self, idx: np.ndarray, cust: _Customers) -> _Path:
        """A new path over ``idx`` (indices into this path's customers) that starts from this
        path's present state; its outcomes are recorded from now on."""
        out = _Path(
            idx if self.idx is None else self.idx[idx],
            cust,
            self.active[idx].copy(),
            self.grievance[idx].copy(),
            self.pending[idx].copy(),
            self.reducer[idx].copy(),
            self.gift[idx].copy(),
            self.premium[idx].copy(),
            self.outreach[idx].copy(),
        )
        out.revenue_total = self.revenue_total[idx].copy()
        out.recent_revenue = [r[idx] for r in self.recent_revenue]
        out.recent_bad = [b[idx] for b in self.recent_bad]
        out.open = self.open[idx].copy()
        return out


@dataclass(frozen=True)
class _Branches:
    """The branches of a world: sizes (as shares) and effects, from their own seed stream."""

    seed: int
    share: np.ndarray
    hazard: np.ndarray
    buy: np.ndarray
    level: np.ndarray

    @classmethod
    def draw(cls, seed: int, k: int) -> _Branches:
        rng = np.random.default_rng(np.random.SeedSequence([seed, _BRANCH_STREAM]))
        size = np.exp(_BRANCH_SIZE_SD * rng.standard_normal(k))
        return cls(
            seed=seed,
            share=size / size.sum(),
            hazard=BRANCH_HAZARD_SD * rng.standard_normal(k),
            buy=BRANCH_BUY_SD * rng.standard_normal(k),
            level=BRANCH_LEVEL_SD * rng.standard_normal(k),
        )

    def chunk(self, k: int, n: int) -> np.ndarray:
        """Branch code of each of chunk ``k``'s ``n`` customers."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _BRANCH_STREAM, k + 1]))
        cum = np.cumsum(self.share)[:-1]
        return np.searchsorted(cum, rng.random(n), side="right").astype(np.int32)

    def shift(self, cust: _Customers, codes: np.ndarray) -> None:
        """Move each customer's churn hazard, purchase probability and spend level by their
        branch's effects (in place)."""
        cust.log_hazard = cust.log_hazard + self.hazard[codes]
        cust.buy = np.minimum(cust.buy * np.exp(self.buy[codes]), 0.95)
        cust.level = cust.level + self.level[codes]


@dataclass(frozen=True)
class _World:
    """The settings every chunk of one simulated world shares."""

    months: int
    t0: int  # the month the interventions start
    periods: np.ndarray  # first day of each month
    money: MoneySettings
    stagger: int = 1  # months the targeted outreach is spread over
    targeting: float = 1.0  # scale of the outreach's targeting slopes
    condition_follow_up: int = 0  # months of follow-up of the condition's trials (0: none)


def _simulate_chunk(world: _World, ss, offset, n, acc, branches=None, hidden=None):
    months, t0, periods, money = world.months, world.t0, world.periods, world.money
    stagger, targeting = world.stagger, world.targeting
    rng_attr, rng_dyn, rng_case = (np.random.default_rng(s) for s in ss.spawn(3))
    seg, signup, cust = _draw_customers(rng_attr, n, periods[0])
    if targeting != 1.0:  # the outreach's slopes on spend, bad cases and quiet months, scaled
        cust.targeting = np.full(n, float(targeting))
    if hidden is not None:  # strength x u
        cust.log_hazard = cust.log_hazard - HIDDEN_HAZARD * hidden
        cust.level = cust.level + HIDDEN_LEVEL * hidden
        cust.hidden = HIDDEN_TARGETING * hidden
    if branches is not None:
        codes, effects = branches
        effects.shift(cust, codes)
        seg["branch"] = codes
    digits = _id_digits(offset + 1, n)
    acc.ids = digits

    # Observed-path history, month-major.
    active_hist = np.zeros((months, n), dtype=bool)
    revenue_hist = np.zeros((months, n))
    cost_hist = np.zeros((months, n))
    bad_hist = np.zeros((months, n), dtype=bool)
    cases = []  # (month, chunk index, resolution code, minutes) per month
    none = np.zeros(n, dtype=bool)
    obs = _Path(
        None, cust, np.ones(n, dtype=bool), np.zeros(n), np.zeros(n), none.copy(), none, none, none
    )
    flips: dict[str, _Path] = {}
    staggered = stagger > 1
    # A staggered outreach: the month each customer was reached (-1: never), the trial paths
    # (one per outreach month: every eligible customer with that month's outreach flipped) and
    # the months each trial path records (its follow-up window and the value horizon).
    reached = np.full(n, -1, dtype=np.int64)
    trials: dict[int, _Path] = {}
    follow_up = months - (t0 + stagger - 1)
    recorded = follow_up + money.value_horizon_months
    rng_reach = np.random.default_rng(ss.spawn(1)[0]) if staggered else None
    # The condition's trials (condition_follow_up > 0): a path per trial month over the customers
    # eligible in it (active, no very ineffective case before), with the month's case flipped.
    cond_follow = world.condition_follow_up
    cond_months = range(CONDITION_LOOKBACK, months - cond_follow + 1) if cond_follow else ()
    rng_cond = np.random.default_rng(ss.spawn(1)[0]) if cond_follow else None
    vi_seen = np.zeros(n, dtype=bool)  # a very ineffective case before this month
    vi_month = np.full(n, -1, dtype=np.int64)  # the month of the first one (-1: none)
    cond_trials: dict[int, _Path] = {}
    among_trials: dict[int, _Path] = {}  # the same among the customers with a case in the month
    for t in range(months):
        draws = _draw_month(rng_dyn, n)
        new_trial = None
        if t in cond_months:
            eligible = np.flatnonzero(obs.active & ~vi_seen)
            new_trial = obs.branch(eligible, cust.subset(eligible))
        if t == t0:
            treat, population = _assign(rng_dyn, seg, obs, revenue_hist, bad_hist, t0, stagger)
            obs.gift = treat["recovery_gift"]
            obs.premium = treat["premium_support"]
            winback = rng_dyn.random(n)
            names = INTERVENTIONS[:2] if staggered else INTERVENTIONS
            if staggered:
                obs.open = np.ones(n, dtype=bool)
                _reach(obs, trials, t, treat.pop("proactive_outreach"), reached, cust, stagger)
            else:
                obs.outreach = treat["proactive_outreach"]
            flips = _flip_paths(obs, population, cust, names)
            held = (*cond_trials.values(), *among_trials.values())
            for path in (*held, *([new_trial] if new_trial else [])):
                _hold_interventions(path, obs)
            for path in (obs, *flips.values(), *trials.values(), *held):
                _start_gift(path, winback)
            if new_trial is not None:
                _start_gift(new_trial, winback)
        elif staggered and t0 < t < t0 + stagger:
            u = rng_reach.random(n)
            _reach(obs, trials, t, u < _path_outreach_p(obs, t, stagger), reached, cust, stagger)
            for m, path in trials.items():
                if m < t:
                    p = _path_outreach_p(path, t, stagger)
                    _take(path, path.open & path.active & (u[path.idx] < p))
            for path in (*flips.values(), *cond_trials.values(), *among_trials.values()):
                path.outreach = obs.outreach[path.idx]
            if new_trial is not None:
                new_trial.outreach = obs.outreach[new_trial.idx]
        step = _step(obs, draws, t == t0, record=True)
        active_hist[t], revenue_hist[t], cost_hist[t] = step[0], step[1], step[2]
        case, res, minutes = step[3], step[4], step[5]
        bad_hist[t] = case & (res >= 2)
        where = np.flatnonzero(case)
        cases.append((t, where, res[where], minutes[where]))
        vi_now = case & (res == _VI) & ~vi_seen
        vi_month[vi_now] = t
        vi_seen |= vi_now
        for path in flips.values():
            _step(path, draws, t == t0, record=False)
        for path in (*trials.values(), *cond_trials.values(), *among_trials.values()):
            _step(path, draws, t == t0, record=False)
        if new_trial is not None:
            had_case = np.flatnonzero(case[new_trial.idx])
            among = new_trial.branch(had_case, new_trial.cust.subset(had_case))
            flipped = _flip_case(new_trial, draws, vi_now[new_trial.idx], rng_cond)
            _step(new_trial, flipped, t == t0, record=False)
            cond_trials[t] = new_trial
            flipped = _flip_resolution(among, draws, vi_now[among.idx], rng_cond)
            _step(among, flipped, t == t0, record=False)
            among_trials[t] = among

    last_active = active_hist[-1]
    obs_rev = revenue_hist[t0:].sum(axis=0)
    obs_cost = cost_hist[t0:].sum(axis=0)
    diffs = {}
    for name, path in flips.items():
        sign = np.where(treat[name][path.idx], 1.0, -1.0)
        diffs[name] = [
            sign * (last_active[path.idx].astype(float) - path.was_active),
            sign * (obs_rev[path.idx] - path.revenue_sum),
            sign * (obs_cost[path.idx] - path.cost_sum),
        ]
    # The value horizon: both paths go on, unrecorded, with the same random numbers.
    for _ in range(money.value_horizon_months):
        draws = _draw_month(rng_dyn, n)
        for path in (obs, *flips.values()):
            _step(path, draws, False, record=False)
        for path in trials.values():
            if len(path.flows) < recorded:
                _step(path, draws, False, record=False)
        for path in (*cond_trials.values(), *among_trials.values()):
            if len(path.flows) < cond_follow + money.value_horizon_months:
                _step(path, draws, False, record=False)
    m = money.margin_rate
    obs_flows = obs.flows[t0:]
    for name, path in flips.items():
        sign = np.where(treat[name][path.idx], 1.0, -1.0)
        for (r_obs, c_obs), (r_alt, c_alt) in zip(obs_flows, path.flows, strict=True):
            diffs[name].append(sign * (m * (r_obs[path.idx] - r_alt) - (c_obs[path.idx] - c_alt)))
        acc.add(name, seg, path.idx, treat[name][path.idx], diffs[name])
    for month, path in trials.items():
        treated = reached[path.idx] == month
        _add_trial(acc, seg, obs, path, month, treated, follow_up, m, "proactive_outreach")
    for month, path in cond_trials.items():
        treated = vi_month[path.idx] == month
        _add_trial(acc, seg, obs, path, month, treated, cond_follow, m, CONDITION)
    for month, path in among_trials.items():
        treated = vi_month[path.idx] == month
        _add_trial(acc, seg, obs, path, month, treated, cond_follow, m, CONDITION_AMONG_CASES)
    if staggered:
        treat["proactive_outreach"] = reached >= 0

    return {
        "customers": _customers_table(digits, seg, signup),
        "outcomes": _outcomes_table(digits, periods, active_hist, revenue_hist, cost_hist),
        "interactions": _interactions_table(rng_case, digits, periods, cases),
        "interventions": _interventions_table(digits, treat, periods[t0], periods, reached),
        "assignments": _assignments_table(digits, seg, treat, population, periods[t0]),
    }


def _reach(obs, trials, t, chosen, reached, cust, stagger) -> None:
    """Month ``t`` of a staggered outreach: the observed path reaches the ``chosen`` customers
    among those it can still reach; the month's trial path starts from the observed state with
    that choice flipped for every eligible customer (active, not reached before)."""
    now = obs.open & obs.active & chosen
    eligible = np.flatnonzero(obs.open & obs.active)
    trial = obs.branch(eligible, cust.subset(eligible))
    trial.outreach = ~now[eligible]  # reached here when the observed path is not
    trial.open = now[eligible]  # not reached here: later months may reach them
    trials[t] = trial
    _take(obs, now)
    reached[now] = t


def _take(path, now) -> None:
    """The outreach reaches ``now`` on ``path``: from this month on, and never again."""
    path.outreach = path.outreach | now
    path.open = path.open & ~now


def _add_trial(acc, seg, obs, path, month, treated, follow_up, margin, name) -> None:
    """Individual effects of trial ``month`` (``treated``: the observed path's treatment in that
    month, per customer of ``path``): treated in that month or not (and then treated or not
    later, as the world goes on), over the ``follow_up`` months from it, and the cash flows over
    those months and the value horizon."""
    idx = path.idx
    recorded = follow_up + acc.money.value_horizon_months
    sign = np.where(treated, 1.0, -1.0)
    last = month + follow_up - 1
    window = range(follow_up)
    diffs = [
        sign * (obs.actives[last][idx].astype(float) - path.actives[follow_up - 1]),
        sign * sum(obs.flows[month + j][0][idx] - path.flows[j][0] for j in window),
        sign * sum(obs.flows[month + j][1][idx] - path.flows[j][1] for j in window),
    ]
    for j in range(recorded):
        (r_obs, c_obs), (r_alt, c_alt) = obs.flows[month + j], path.flows[j]
        diffs.append(sign * (margin * (r_obs[idx] - r_alt) - (c_obs[idx] - c_alt)))
    acc.add(name, seg, idx, treated, diffs, trial=month)


def _hold_interventions(path: _Path, obs: _Path) -> None:
    """Give a path the interventions its customers actually received at the start month."""
    path.gift = obs.gift[path.idx]
    path.premium = obs.premium[path.idx]
    path.outreach = obs.outreach[path.idx]
    path.open = obs.open[path.idx]


def _case_rate(path: _Path) -> np.ndarray:
    """The month's probability of a service case on a path (before the draw)."""
    rate = path.cust.case_rate * (1.0 + _REPEAT_BOOST * path.pending)
    if path.gift.any():
        rate = rate * np.where(path.gift, _GIFT_CASE_MULT, 1.0)
    if path.outreach.any():
        rate = rate * np.where(path.outreach, _OUTREACH_CASE_MULT, 1.0)
    return rate


def _flip_case(path: _Path, draws: dict, had_event: np.ndarray, rng) -> dict:
    """The month's draws with the condition flipped for ``path``'s customers.

    Who had a very ineffective case on the observed path has, here, what the month brings
    everyone else given their own case rate: no case, or a case resolved any other way, in
    their proportions (a fresh draw). Everyone else has a very ineffective case this month.
    """
    out = dict(draws)
    case, resolution = draws["case"].copy(), draws["resolution"].copy()
    idx = path.idx
    rate = np.minimum(_case_rate(path), 1.0)
    p_vi = _RESOLUTION_P[_VI]
    other_case = rng.random(len(idx)) < rate * (1.0 - p_vi) / (1.0 - rate * p_vi)
    other_res = rng.random(len(idx)) * _RESOLUTION_CUM[-1]
    case[idx] = np.where(had_event, np.where(other_case, 0.0, 1.0), 0.0)
    resolution[idx] = np.where(had_event, other_res, 1.0 - 0.5 * _RESOLUTION_P[_VI])
    out["case"], out["resolution"] = case, resolution
    return out


def _flip_resolution(path: _Path, draws: dict, had_event: np.ndarray, rng) -> dict:
    """The month's draws with the case's resolution flipped for ``path``'s customers (who all
    have a case this month, on every path: the case draw is shared): a very ineffective one is
    resolved another way (in proportion; a fresh draw), any other very ineffectively."""
    out = dict(draws)
    resolution = draws["resolution"].copy()
    other_res = rng.random(len(path.idx)) * _RESOLUTION_CUM[-1]
    resolution[path.idx] = np.where(had_event, other_res, 1.0 - 0.5 * _RESOLUTION_P[_VI])
    out["resolution"] = resolution
    return out


def _draw_customers(rng, n, first_day):
    band_months = np.minimum(rng.exponential(_TENURE_MEAN_MONTHS, n).astype(np.int64), 240)
    band = np.where(band_months < 12, 0, np.where(band_months < 36, 1, 2)).astype(np.int8)
    u = rng.random(n)
    tier = (u[:, None] > np.cumsum(_TIER_P, axis=1)[band][:, :-1]).sum(axis=1).astype(np.int8)
    region = _categorical(rng, _REGION_P, n)
    channel = _categorical(rng, _CHANNEL_P, n)
    signup_month = np.datetime64(first_day, "M") - 1 - band_months
    signup = signup_month.astype("datetime64[D]") + rng.integers(0, 28, n)

    cust = _Customers.__new__(_Customers)
    cust.tier = tier
    cust.log_hazard = np.log(
        _HAZARD_TIER[tier]
        * _HAZARD_TENURE[band]
        * _HAZARD_REGION[region]
        * _HAZARD_CHANNEL[channel]
    )
    frailty = rng.gamma(_CASE_FRAILTY_SHAPE, 1.0 / _CASE_FRAILTY_SHAPE, n)
    cust.case_rate = _CASE_TIER[tier] * _CASE_TENURE[band] * _CASE_CHANNEL[channel] * frailty
    cust.buy = np.minimum(
        _BUY_TIER[tier] * _BUY_CHANNEL[channel] * np.exp(_BUY_SD * rng.standard_normal(n)), 0.95
    )
    cust.level = np.log(_AMOUNT_TIER[tier] * _AMOUNT_REGION[region]) + _LEVEL_SD * (
        rng.standard_normal(n)
    )
    cust.keeper = rng.random(n) < KEEPER_SHARE
    cust.gift_relief = _GIFT_RELIEF[tier]
    cust.gift_winback = _GIFT_WINBACK[tier]
    cust.premium_churn = _PREMIUM_CHURN[tier]
    cust.premium_buy = _PREMIUM_BUY_MULT[tier]
    cust.desk_cost = _PREMIUM_DESK_COST[tier]
    cust.outreach_churn = _OUTREACH_CHURN[tier] * _OUTREACH_CHURN_TENURE[band]
    cust.hidden = None
    cust.targeting = None
    seg = {"tier": tier, "region": region, "channel": channel, "tenure_band": band}
    return seg, signup, cust


def _categorical(rng, p, n):
    return np.searchsorted(np.cumsum(p)[:-1], rng.random(n), side="right").astype(np.int8)


def _draw_month(rng, n):
    """The month's common random numbers, shared by every path."""
    return {
        "case": rng.random(n),
        "resolution": rng.random(n),
        "minutes": rng.standard_normal(n),
        "buy": rng.random(n),
        "amount": rng.standard_normal(n),
        "churn": rng.random(n),
    }


def _step(path, draws, gift_month, record):
    """Advance a path by one month; return the month's outcomes (and cases when recording)."""
    c = path.cust
    if path.idx is not None:
        draws = {k: v[path.idx] for k, v in draws.items()}
    active = path.active
    case = active & (draws["case"] < _case_rate(path))
    res = np.searchsorted(_RESOLUTION_CUM, draws["resolution"], side="right")
    bump = np.where(case, _BUMP_SCALE * _BUMP[res], 0.0)
    bump[case & (res == 0)] = _BUMP_GOOD
    path.grievance = path.grievance * _GRIEVANCE_DECAY + bump
    path.pending = np.where(case & (res >= 2), 1.0, path.pending * _REPEAT_DECAY)
    path.reducer |= case & (res == _VI) & ~c.keeper

    buy_p = c.buy * np.where(path.reducer, UNHAPPY_PURCHASE_FACTOR, 1.0)
    if path.premium.any():
        buy_p = buy_p * np.where(path.premium, c.premium_buy, 1.0)
    if path.outreach.any():
        buy_p = buy_p * np.where(path.outreach, _OUTREACH_BUY_MULT, 1.0)
    if gift_month:
        buy_p = buy_p + np.where(path.gift, _GIFT_BUY_BOOST, 0.0)
    buy = active & (draws["buy"] < buy_p)
    revenue = np.where(buy, np.exp(c.level + _AMOUNT_SD * draws["amount"]), 0.0)

    minutes = np.exp(np.log(_MINUTES_MEDIAN)[res] + _MINUTES_SD * draws["minutes"])
    if path.premium.any():
        minutes = minutes * np.where(path.premium, _PREMIUM_MINUTES_MULT, 1.0)
    minutes = np.where(case, minutes, 0.0)
    cost = minutes * _COST_PER_MINUTE + np.where(buy, _ORDER_COST, 0.0)
    if path.premium.any():
        cost = cost + np.where(path.premium & active, c.desk_cost, 0.0)

    log_h = c.log_hazard + path.grievance
    if path.premium.any():
        log_h = log_h - np.where(path.premium, c.premium_churn, 0.0)
    if path.outreach.any():
        log_h = log_h - np.where(path.outreach, c.outreach_churn, 0.0)
    churn = active & (draws["churn"] < np.minimum(np.exp(log_h), _MAX_HAZARD))
    path.was_active = active
    path.active = active & ~churn
    path.revenue_sum += revenue
    path.cost_sum += cost
    path.flows.append((revenue, cost))
    path.actives.append(active)
    path.revenue_total = path.revenue_total + revenue
    path.recent_revenue = [path.recent_revenue[-1], revenue]
    path.recent_bad = [*path.recent_bad[1:], case & (res >= 2)]
    if record:
        return active, revenue, cost, case, res, minutes
    return None


def _outreach_p(spend, recent_bad, quiet, stagger: int = 1, hidden=None, targeting=None):
    """Probability that the targeted outreach reaches a customer in a month: more likely for
    big spenders, customers with recent badly resolved cases and quiet ones; with a staggered
    outreach (``stagger`` months) the monthly odds are divided by ``stagger``."""
    a, b_spend, b_bad, b_quiet = _OUTREACH_LOGIT
    slopes = (
        b_spend * (spend - _OUTREACH_SPEND_CENTER) / _OUTREACH_SPEND_SCALE
        + b_bad * recent_bad
        + b_quiet * quiet
    )
    logit = a + (slopes if targeting is None else targeting * slopes)
    if stagger > 1:
        logit = logit - np.log(stagger)
    if hidden is not None:
        logit = logit + hidden
    return 1.0 / (1.0 + np.exp(-logit))


def _path_outreach_p(path: _Path, t: int, stagger: int) -> np.ndarray:
    """:func:`_outreach_p` from a path's own history before month ``t``."""
    spend = np.log1p(path.revenue_total / t)
    recent_bad = np.sum(path.recent_bad, axis=0)
    quiet = (path.recent_revenue[0] == 0) & (path.recent_revenue[1] == 0)
    return _outreach_p(spend, recent_bad, quiet, stagger, path.cust.hidden, path.cust.targeting)


def _assign(rng, seg, obs, revenue_hist, bad_hist, t0, stagger=1):
    """Decide who is in each population and who is treated, from pre-period data only."""
    n = len(obs.active)
    active = obs.active
    u_gift, u_premium, u_outreach = rng.random(n), rng.random(n), rng.random(n)
    gift_pop = active & bad_hist[t0 - 1]
    premium_pop = active & np.isin(seg["tier"], _PREMIUM_TIERS)
    spend = np.log1p(revenue_hist[:t0].mean(axis=0))
    recent_bad = bad_hist[max(0, t0 - 3) : t0].sum(axis=0)
    quiet = (revenue_hist[max(0, t0 - 2) : t0] == 0).all(axis=0)
    target_p = _outreach_p(spend, recent_bad, quiet, stagger, obs.cust.hidden, obs.cust.targeting)
    treated = {
        "recovery_gift": gift_pop & (u_gift < 0.5),
        "premium_support": premium_pop & (u_premium < _PREMIUM_TREATED_SHARE),
        "proactive_outreach": active & (u_outreach < target_p),
    }
    population = {
        "recovery_gift": gift_pop,
        "premium_support": premium_pop,
        "proactive_outreach": active.copy(),
    }
    return treated, population


def _flip_paths(obs, population, cust, names=INTERVENTIONS):
    """For each intervention, a path over its population with that intervention flipped."""
    out = {}
    for name in names:
        idx = np.flatnonzero(population[name])
        flags = {
            "gift": obs.gift[idx],
            "premium": obs.premium[idx],
            "outreach": obs.outreach[idx],
        }
        key = _FLAG[name]
        flags[key] = ~flags[key]
        out[name] = _Path(
            idx,
            cust.subset(idx),
            obs.active[idx].copy(),
            obs.grievance[idx].copy(),
            obs.pending[idx].copy(),
            obs.reducer[idx].copy(),
            flags["gift"],
            flags["premium"],
            flags["outreach"],
        )
    return out


def _start_gift(path, winback):
    """The gift's one-off effects at the start month: grievance forgiven, reducers won back."""
    if not path.gift.any():
        return
    u = winback if path.idx is None else winback[path.idx]
    g = path.gift
    path.grievance = np.where(g, path.grievance * (1.0 - path.cust.gift_relief), path.grievance)
    path.pending = np.where(g, 0.0, path.pending)
    path.reducer = path.reducer & ~(g & (u < path.cust.gift_winback))


# --- truth ----------------------------------------------------------------------------------------


class _TruthAccumulator:
    """Sums of individual effects and counts per intervention, estimand and segment."""

    def __init__(
        self, money: MoneySettings, window_months: int, periods: np.ndarray | None = None
    ) -> None:
        self.money = money
        self.window_months = window_months
        self.sums: dict[tuple[str, str, str], np.ndarray] = {}
        self.counts: dict[tuple[str, str, str], np.ndarray] = {}
        # individual effects (``periods`` given): the chunk's id bytes, set by the chunk, and
        # the rows collected since the last drain()
        self.periods = periods
        self.ids: np.ndarray | None = None
        self._individual: list[pa.Table] = []

    def add(self, name, seg, idx, treated, diffs, trial: int | None = None) -> None:
        if self.periods is not None:
            self._keep(name, idx, treated, diffs, trial)
        groups = {"all": np.zeros(len(idx), dtype=np.int8)}
        groups.update({col: seg[col][idx] for col in SEGMENT_COLUMNS})
        for estimand, mask in (("ate", None), ("att", treated)):
            for col, codes in groups.items():
                size = 1 if col == "all" else len(_SEGMENT_LEVELS[col])
                key = (name, estimand, col)
                if key not in self.sums:
                    self.sums[key] = np.zeros((len(diffs), size))
                    self.counts[key] = np.zeros(size, dtype=np.int64)
                sel = codes if mask is None else codes[mask]
                self.counts[key] += np.bincount(sel, minlength=size)
                for j, d in enumerate(diffs):
                    w = d if mask is None else d[mask]
                    self.sums[key][j] += np.bincount(sel, weights=w, minlength=size)

    def _keep(self, name, idx, treated, diffs, trial) -> None:
        """Every customer's own effects: the outcomes, and net value from the flows (discounted,
        minus the unit cost) exactly as :meth:`_effects` values their mean."""
        flows = np.asarray(diffs[3:]) * self.money.discount_factors(len(diffs) - 3)[:, None]
        n = len(idx)
        month = None if trial is None else _to_date(self.periods[trial])
        self._individual.append(
            pa.table(
                {
                    "intervention": pa.repeat(pa.scalar(name), n),
                    "experiment_id": pa.repeat(pa.scalar(_EXPERIMENT_OF.get(name), pa.string()), n),
                    "trial_month": pa.repeat(pa.scalar(month, pa.date32()), n),
                    "customer_id": _ids(self.ids[idx]),
                    "treated": pa.array(np.asarray(treated, dtype=bool)),
                    "retention": pa.array(diffs[0], pa.float64()),
                    "revenue": pa.array(diffs[1], pa.float64()),
                    "cost_to_serve": pa.array(diffs[2], pa.float64()),
                    "net_value": pa.array(
                        flows.sum(axis=0) - UNIT_COSTS.get(name, 0.0), pa.float64()
                    ),
                }
            )
        )

    def drain(self) -> pa.Table | None:
        """The individual effects collected since the last call (None when there are none)."""
        if not self._individual:
            return None
        out, self._individual = pa.concat_tables(self._individual), []
        return out

    def _effects(self, name: str, key: tuple, code: int, n: int) -> dict[str, float]:
        """Mean effects of one group: the outcomes, then net value and payback from the flows."""
        sums = self.sums[key][:, code] / n
        out: dict[str, float] = dict(zip(OUTCOMES, map(float, sums[:3]), strict=True))
        flows = sums[3:] * self.money.discount_factors(len(sums) - 3)
        cost = UNIT_COSTS.get(name, 0.0)
        out["net_value"] = float(flows.sum() - cost)
        out["payback_months"] = float(payback_month(np.cumsum(flows), cost))
        return out

    def table(self) -> pa.Table:
        rows = []
        for name in (*INTERVENTIONS, CONDITION, CONDITION_AMONG_CASES):
            for estimand in ("ate", "att"):
                for col in ("all", *SEGMENT_COLUMNS):
                    key = (name, estimand, col)
                    if key not in self.counts:
                        continue
                    levels = ("all",) if col == "all" else _SEGMENT_LEVELS[col]
                    for code, level in enumerate(levels):
                        n = int(self.counts[key][code])
                        if n == 0:
                            continue
                        effects = self._effects(name, key, code, n)
                        for outcome in (*OUTCOMES, *MONEY_OUTCOMES):
                            effect = effects[outcome]
                            rows.append(
                                (
                                    _EXPERIMENT_OF.get(name),
                                    name,
                                    "treatment",
                                    outcome,
                                    col,
                                    level,
                                    "absolute",
                                    estimand,
                                    effect,
                                    n,
                                )
                            )
        names = (
            "experiment_id",
            "intervention",
            "arm",
            "outcome",
            "segment_by",
            "segment",
            "metric",
            "estimand",
            "effect",
            "n",
        )
        types = (pa.string(),) * 8 + (pa.float64(), pa.int64())
        cols = list(zip(*rows, strict=True)) if rows else [()] * len(names)
        return pa.table(
            {k: pa.array(list(v), type=t) for k, v, t in zip(names, cols, types, strict=True)}
        )


# --- tables ---------------------------------------------------------------------------------------


def _id_digits(first: int, n: int) -> np.ndarray:
    """The ids ``C%08d`` for ``first .. first + n - 1`` as an ``(n, 9)`` byte matrix."""
    out = np.empty((n, 9), dtype=np.uint8)
    out[:, 0] = ord("C")
    x = np.arange(first, first + n, dtype=np.int64)
    for pos in range(8, 0, -1):
        out[:, pos] = ord("0") + x % 10
        x //= 10
    return out


def _ids(digits: np.ndarray) -> pa.Array:
    """Arrow strings from a fixed-width byte matrix, without building Python strings."""
    n = len(digits)
    offsets = np.arange(0, 9 * (n + 1), 9, dtype=np.int32)
    data = np.ascontiguousarray(digits).tobytes()
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))


def _labels(codes: np.ndarray, levels: tuple[str, ...]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int8()), pa.array(levels)).cast(
        pa.string()
    )


def _customers_table(digits, seg, signup):
    cols = {"customer_id": _ids(digits), "signup_date": pa.array(signup)}
    for col in SEGMENT_COLUMNS:
        cols[col] = _labels(seg[col], _SEGMENT_LEVELS[col])
    if "branch" in seg:
        codes = seg["branch"]
        levels = pa.array([f"B{i + 1:04d}" for i in range(int(codes.max()) + 1)])
        cols["branch"] = pa.DictionaryArray.from_arrays(pa.array(codes), levels).cast(pa.string())
    return pa.table(cols)


def _outcomes_table(digits, periods, active, revenue, cost):
    months, n = active.shape
    return pa.table(
        {
            "customer_id": _ids(np.repeat(digits, months, axis=0)),
            "period": pa.array(np.tile(periods, n)),
            "active": pa.array(active.T.ravel()),
            "revenue": pa.array(revenue.T.ravel()),
            "cost_to_serve": pa.array(cost.T.ravel()),
        }
    )


def _interactions_table(rng, digits, periods, cases):
    month = np.concatenate([np.full(len(w), t, dtype=np.int64) for t, w, _, _ in cases])
    where = np.concatenate([w for _, w, _, _ in cases])
    res = np.concatenate([r for _, _, r, _ in cases])
    minutes = np.concatenate([m for _, _, _, m in cases])
    k = len(where)
    starts = periods.astype("datetime64[s]")
    ends = (periods.astype("datetime64[M]") + 1).astype("datetime64[s]")
    span = (ends - starts).astype(np.int64)[month]
    ts = starts[month] + (rng.random(k) * span).astype(np.int64)
    csat = 1 + (rng.random(k)[:, None] > np.cumsum(_CSAT_P, axis=1)[res][:, :-1]).sum(axis=1)
    effort = 1 + (rng.random(k)[:, None] > np.cumsum(_EFFORT_P, axis=1)[res][:, :-1]).sum(axis=1)
    return pa.table(
        {
            "customer_id": _ids(digits[where]),
            "ts": pa.array(ts.astype("datetime64[us]")),
            "channel": _labels(_categorical(rng, _CASE_CHANNEL_P, k), _CASE_CHANNELS),
            "kind": _labels(_categorical(rng, _CASE_KIND_P, k), _CASE_KINDS),
            "resolution": _labels(res.astype(np.int8), RESOLUTIONS),
            "csat": pa.array(csat.astype(np.int16)),
            "effort": pa.array(effort.astype(np.int16)),
            "first_contact_resolution": pa.array(rng.random(k) < _FCR_P[res]),
            "handle_minutes": pa.array(np.round(minutes, 2)),
        }
    )


def _interventions_table(digits, treat, start_day, periods, reached):
    parts = []
    for name in INTERVENTIONS:
        where = np.flatnonzero(treat[name])
        k = len(where)
        ts = np.full(k, start_day.astype("datetime64[us]"))
        if name == "proactive_outreach" and (reached >= 0).any():
            ts = periods[reached[where]].astype("datetime64[us]")
        parts.append(
            pa.table(
                {
                    "customer_id": _ids(digits[where]),
                    "intervention": pa.array([name] * k, type=pa.string()),
                    "ts": pa.array(ts),
                    "unit_cost": pa.array(np.full(k, UNIT_COSTS[name])),
                    "experiment_id": pa.array([_EXPERIMENT_OF.get(name)] * k, type=pa.string()),
                }
            )
        )
    return pa.concat_tables(parts)


def _assignments_table(digits, seg, treat, population, start_day):
    parts = []
    for experiment_id, name in EXPERIMENTS.items():
        where = np.flatnonzero(population[name])
        k = len(where)
        arm = treat[name][where].astype(np.int8)  # ARMS = (control, treatment)
        parts.append(
            pa.table(
                {
                    "experiment_id": pa.array([experiment_id] * k, type=pa.string()),
                    "customer_id": _ids(digits[where]),
                    "arm": _labels(arm, ARMS),
                    "stratum": _labels(seg["tier"][where], TIERS),
                    "assigned_at": pa.array(np.full(k, start_day.astype("datetime64[us]"))),
                }
            )
        )
    return pa.concat_tables(parts)


def _experiments(start_day, periods, seed, money):
    ended = (periods[-1].astype("datetime64[M]") + 1).astype("datetime64[D]") - 1
    rows = []
    for experiment_id, name in EXPERIMENTS.items():
        control = 0.5 if name == "recovery_gift" else 1.0 - _PREMIUM_TREATED_SHARE
        design = {
            "population": _POPULATIONS[name],
            "unit": "customer",
            "randomization": "bernoulli",
            "allocation": {"control": control, "treatment": round(1.0 - control, 10)},
            "stratify_by": "tier",
            "outcomes": list(OUTCOMES),
            "horizon": str(periods[-1]),
            "unit_cost": UNIT_COSTS[name],
            # both keep a churn gap open at the window's end: premium support goes on (its cut
            # in churn lasts); the gift is given once, but a forgiven grievance keeps lowering
            # churn for months (1M world, seed 1, the window's last three month ends: retention
            # 0.952 a month in the gift arm against 0.918 in its control arm)
            "churn_effect_after_window": "held",
            "simulated": True,
            "seed": seed,
            "money": {
                "margin_rate": money.margin_rate,
                "value_horizon_months": money.value_horizon_months,
                "discount_rate": money.discount_rate,
            },
        }
        rows.append((experiment_id, name, json.dumps(design), start_day, ended))
    ids, names, designs, started, ends = zip(*rows, strict=True)
    return pa.table(
        {
            "experiment_id": pa.array(ids),
            "intervention": pa.array(names),
            "design": pa.array(designs),
            "started": pa.array(np.array(started, dtype="datetime64[D]")),
            "ended": pa.array(np.array(ends, dtype="datetime64[D]")),
        }
    )


def _append(con: duckdb.DuckDBPyConnection, table: str, frame: pa.Table) -> int:
    """Append an Arrow table, its columns matched to the table's by name.

    :func:`attribution.store.append` takes ``frame.columns`` as the column names, which for an
    Arrow table are the column arrays, so this inserts through a DuckDB relation instead.
    """
    cols = list(store.columns(con, table))
    missing = [c for c in frame.column_names if c not in cols]
    if missing:
        raise InputError(f"{table}: unknown columns {missing}")
    for c in cols:
        if c not in frame.column_names:
            frame = frame.append_column(c, pa.nulls(frame.num_rows))
    con.from_arrow(frame.select(cols)).insert_into(table)
    return frame.num_rows


# --- calibration --------------------------------------------------------------------------------

_FIRST_CASES_SQL = """
    SELECT customer_id, arg_min(resolution, ts) AS resolution,
           CAST(date_trunc('month', min(ts)) AS DATE) AS month
    FROM interactions GROUP BY customer_id
"""
_SHARES_SQL = """
    SELECT resolution, count(*) / sum(count(*)) OVER () AS share
    FROM interactions GROUP BY resolution
"""
_SURVIVAL_SQL = f"""
    WITH first_case AS ({_FIRST_CASES_SQL})
    SELECT f.resolution = 'very_effective' AS well_resolved,
           avg(CAST(o.active AS DOUBLE)) AS survival, count(*) AS n
    FROM first_case f JOIN outcomes o
      ON o.customer_id = f.customer_id
     AND o.period = CAST(f.month + INTERVAL 12 MONTH AS DATE)
    GROUP BY ALL
"""
_SAME_LEVEL_SQL = f"""
    WITH first_case AS ({_FIRST_CASES_SQL}),
    bounds AS (
        SELECT CAST(min(o.period) + INTERVAL 3 MONTH AS DATE) AS lo,
               CAST(e.started - INTERVAL 4 MONTH AS DATE) AS hi,
               CAST(e.started - INTERVAL 1 MONTH AS DATE) AS last_pre
        FROM outcomes o, (SELECT min(started) AS started FROM experiments) e
        GROUP BY e.started
    ),
    stayers AS (
        SELECT f.customer_id, f.month
        FROM first_case f, bounds b, outcomes o
        WHERE f.resolution = 'very_ineffective' AND f.month BETWEEN b.lo AND b.hi
          AND o.customer_id = f.customer_id AND o.period = b.last_pre AND o.active
    ),
    per_stayer AS (
        SELECT s.customer_id,
               count(*) FILTER (WHERE o.period > s.month AND o.revenue > 0) AS post_buys,
               count(*) FILTER (WHERE o.period > s.month) AS post_months,
               avg(CAST(o.revenue > 0 AS DOUBLE)) FILTER (WHERE o.period < s.month) AS pre_rate
        FROM stayers s, bounds b, outcomes o
        WHERE o.customer_id = s.customer_id AND o.period <= b.last_pre AND o.period <> s.month
        GROUP BY s.customer_id
    )
    SELECT sum(post_buys) / sum(pre_rate * post_months), count(*) FROM per_stayer
"""


def calibration_facts(con: duckdb.DuckDBPyConnection) -> dict[str, float | int | None]:
    """Measure the survey facts the simulator is calibrated to, from the store's tables.

    Definitions:

    - ``share_<resolution>``: share of all service cases with that resolution.
    - ``survival_well_resolved`` / ``survival_others``: share of customers still active 12 months
      after the month of their first case, for first cases resolved very effectively / any other
      way (first cases at least 12 months before the last period only; ``n_...`` counts them).
    - ``same_level_share``: among customers whose first case was very ineffective, at least 3
      months after the first period and at least 3 months before the interventions start, and
      who are still active in the month before the start ("stayers"), the share who still shop
      at the same level. It is measured as a mixture: the stayers' purchases (months with
      revenue > 0) from the case to the start, divided by the purchases expected at each
      stayer's own purchase rate before the case, is ``R = s + (1 - s) * f``, where
      ``f`` = :data:`UNHAPPY_PURCHASE_FACTOR` is the documented purchase-rate factor of those who
      reduce spend, so ``s = (R - f) / (1 - f)``. Purchase frequency is used rather than revenue
      because the simulator's reducers buy less often (not smaller baskets) and counts are far
      less noisy than lognormal amounts.
      ``purchase_rate_ratio`` is ``R`` and ``n_same_level`` the number of stayers.

    Facts that the data cannot support (a world too short) are None.

    Examples
    --------
    >>> from attribution import store
    >>> con = store.connect(":memory:")
    >>> _ = simulate(con, 2000, months=24, seed=3)
    >>> facts = calibration_facts(con)
    >>> round(facts["share_very_effective"], 1)
    0.3
    """
    out: dict[str, float | int | None] = {f"share_{r}": 0.0 for r in RESOLUTIONS}
    for resolution, share in con.execute(_SHARES_SQL).fetchall():
        out[f"share_{resolution}"] = float(share)
    out.update(survival_well_resolved=None, survival_others=None, n_well_resolved=0, n_others=0)
    for well, survival, n in con.execute(_SURVIVAL_SQL).fetchall():
        key = "well_resolved" if well else "others"
        out[f"survival_{key}"] = float(survival)
        out[f"n_{key}"] = int(n)
    ratio, n = con.execute(_SAME_LEVEL_SQL).fetchone() or (None, 0)
    f = UNHAPPY_PURCHASE_FACTOR
    out["purchase_rate_ratio"] = None if ratio is None else float(ratio)
    out["same_level_share"] = None if ratio is None else (float(ratio) - f) / (1.0 - f)
    out["n_same_level"] = int(n or 0)
    return out
