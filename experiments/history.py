"""Design inputs estimated from the store: baselines, spreads, R^2, rates and ICCs.

The sizing maths in :mod:`experiments.design` takes numbers; this module reads them from the
history in the store (read-only) for the population a test would enrol:

- ``eligible``: which customers may enter, a filter on ``customers`` columns;
- ``trigger``: optionally, the event that makes a customer eligible (e.g. a badly resolved
  service case), a filter on ``interactions`` columns;
- a reference month ``as_of`` that plays the test's start: its population is followed over the
  ``horizon_months`` months from ``as_of`` and described by the ``pre_months`` before it.

Filter syntax (both filters): conditions separated by ``;``, all of which must hold. Each is
``column=v1,v2`` (the value is one of the list) or ``column!=v1,v2`` (it is none of them; a
missing value counts as "none of them"). Values are compared as text with the column cast to
text; spaces around names and values are ignored; column names are matched in lower case. An
empty string or None selects everything. Examples: ``"tier=gold,platinum;region!=north"``,
``"resolution=very_ineffective,somewhat_ineffective"``.

Every number is aggregated in DuckDB: per-customer horizon sums and pre-period features are
computed in SQL, the regression R^2 comes from SQL covariance sums, the ICC from per-cluster
sums; only a handful of rows reach Python, so a store of millions of customers takes seconds.
The SQL lives in the constants below; the ``{...}`` placeholders are filled only with column
names checked against the schema and quoted, and with ``$name`` parameter markers; every value
is a bound parameter.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from attribution import store
from attribution.cells import PRE_BANDS, PRE_MONTHS, pre_band_sql
from attribution.errors import InputError
from attribution.periods import add_months, months_between
from attribution.settings import MoneySettings
from attribution.validation import whole

# --------------------------------------------------------------------------------------------
# SQL. Parameters: $as_of (first day of the reference month), $after (first day of the month
# after it), $before (first day of the month before it), $pre_start (first pre-period month),
# $h_end (last horizon month), filter values $e<i>_<j> (eligible) and $t<i>_<j> (trigger).

_POPULATION_SQL = """
WITH population AS (
    SELECT c.customer_id{cluster_select}
    FROM customers c
    WHERE {eligible}
      AND {entry}
),
horizon AS (
    SELECT o.customer_id,
           SUM(o.revenue)       AS revenue,
           SUM(o.cost_to_serve) AS cost,
           MAX(CASE WHEN o.period = $h_end AND o.active THEN 1 ELSE 0 END) AS retained
    FROM outcomes o
    WHERE o.period >= $as_of AND o.period <= $h_end
    GROUP BY o.customer_id
),
pre AS (
    SELECT o.customer_id,
           SUM(o.revenue)                             AS revenue,
           SUM(o.cost_to_serve)                       AS cost,
           SUM(CASE WHEN o.active THEN 1 ELSE 0 END)  AS months_active
    FROM outcomes o
    WHERE o.period >= $pre_start AND o.period < $as_of
    GROUP BY o.customer_id
),
cases AS (
    SELECT i.customer_id, COUNT(*) AS n_cases
    FROM interactions i
    WHERE i.ts >= $pre_start AND i.ts < $as_of
    GROUP BY i.customer_id
),
per_customer AS (
    SELECT p.*,
           CAST(COALESCE(h.revenue, 0) AS DOUBLE)         AS y_revenue,
           CAST(COALESCE(h.cost, 0) AS DOUBLE)            AS y_cost,
           CAST(COALESCE(h.retained, 0) AS DOUBLE)        AS y_retention,
           CAST(COALESCE(pr.revenue, 0) AS DOUBLE)        AS x_revenue,
           CAST(COALESCE(pr.cost, 0) AS DOUBLE)           AS x_cost,
           CAST(COALESCE(pr.months_active, 0) AS DOUBLE)  AS x_months_active,
           LN(1 + CAST(COALESCE(pr.revenue, 0) AS DOUBLE)) AS x_log_revenue,
           CAST(COALESCE(cs.n_cases, 0) AS DOUBLE)        AS x_cases
    FROM population p
    LEFT JOIN horizon h   ON h.customer_id = p.customer_id
    LEFT JOIN pre pr      ON pr.customer_id = p.customer_id
    LEFT JOIN cases cs    ON cs.customer_id = p.customer_id
)
"""

#: Entry into the population without a trigger: active in the month before ``as_of``.
_ENTRY_ACTIVE = (
    "c.customer_id IN (SELECT o.customer_id FROM outcomes o WHERE o.period = $before AND o.active)"
)
#: With a trigger, a rating counts only after the customer's first triggering interaction.
_AFTER_TRIGGER = (
    "i.ts > (SELECT min(j.ts) FROM interactions j WHERE j.customer_id = i.customer_id "
    "AND j.ts >= $as_of AND j.ts < $after AND {trigger})"
)
#: Entry with a trigger: a matching interaction during the ``as_of`` month.
_ENTRY_TRIGGER = (
    "c.customer_id IN (SELECT i.customer_id FROM interactions i "
    "WHERE i.ts >= $as_of AND i.ts < $after AND {trigger})"
)

_MOMENTS_SQL = _POPULATION_SQL + "SELECT COUNT(*) AS n{moments} FROM per_customer"

#: CSAT over the horizon, as the CSAT guardrail reads it: each population customer with a rating
#: in [$as_of, $h_after) counts once with the mean of their ratings; with a trigger, only ratings
#: after the customer's first triggering interaction ({after_trigger}): the test starts then.
_CSAT_SQL = (
    _POPULATION_SQL
    + """,
rated AS (
    SELECT i.customer_id, AVG(i.csat) AS csat
    FROM interactions i
    WHERE i.csat IS NOT NULL AND i.ts >= $as_of AND i.ts < $h_after
      AND i.customer_id IN (SELECT customer_id FROM per_customer)
      AND {after_trigger}
    GROUP BY i.customer_id
)
SELECT COUNT(*) AS n_rated, VAR_SAMP(csat) AS var_csat FROM rated
"""
)

#: The readout's adjustment: the pre-period spend bands of attribution/cells.sql itself
#: (:func:`attribution.cells.pre_band_sql`, parameters $pre_start, $start, $pre_bands). Per
#: band: customers, and each outcome's mean and population variance.
#: The population's customers with their band (``banded``), for the queries below.
_BANDED = (
    _POPULATION_SQL
    + ","
    + pre_band_sql()
    + """
banded AS (
    SELECT pc.*, pb.pre_band AS band
    FROM per_customer pc
    LEFT JOIN pre_band pb ON pb.customer_id = pc.customer_id
)"""
)
_BANDS_SQL = (
    _BANDED
    + """
SELECT band, COUNT(*) AS n{stats} FROM banded GROUP BY band ORDER BY band
"""
)

#: Per cluster: customers and each outcome's mean and population variance, the outcomes taken
#: within the readout's pre-period spend bands (minus their band's mean): the readout compares
#: customers within bands, so the clustering it meets is what the bands leave.
_CLUSTER_SQL = (
    _BANDED
    + """,
adjusted AS (
    SELECT cluster{residuals} FROM banded
)
SELECT cluster, COUNT(*) AS n{stats} FROM adjusted GROUP BY cluster ORDER BY n
"""
)

#: Distinct triggered customers per month in [$rate_start, $rate_end).
_RATE_SQL = """
SELECT date_trunc('month', i.ts) AS month, COUNT(DISTINCT i.customer_id) AS n
FROM interactions i
JOIN customers c ON c.customer_id = i.customer_id
WHERE i.ts >= $rate_start AND i.ts < $rate_end
  AND {eligible}
  AND {trigger}
GROUP BY date_trunc('month', i.ts)
"""

_PERIODS_SQL = "SELECT min(period), max(period) FROM outcomes"
_FIRST_INTERACTION_SQL = "SELECT min(ts) FROM interactions"

#: Pre-period features of the regression adjustment (CUPED), in SQL column names.
FEATURES = ("x_revenue", "x_cost", "x_months_active", "x_log_revenue", "x_cases")
#: Horizon outcomes, in SQL column names.
OUTCOMES = ("y_revenue", "y_cost", "y_retention")
#: Months of interactions the eligible rate averages over (at most).
RATE_MONTHS = 6
_DAYS_PER_WEEK = 7.0
_WEEKS_PER_MONTH = 365.25 / 12.0 / 7.0

_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(!=|=)(.*)$", re.S)


# --------------------------------------------------------------------------------------------
# Filters


@dataclass(frozen=True)
class Condition:
    """One filter condition: ``column`` is (or, with ``negate``, is not) one of ``values``.

    Examples
    --------
    >>> Condition("tier", ("gold", "platinum")).text
    'tier=gold,platinum'
    """

    column: str
    values: tuple[str, ...]
    negate: bool = False

    @property
    def text(self) -> str:
        """The condition written back in filter syntax."""
        return f"{self.column}{'!=' if self.negate else '='}{','.join(self.values)}"


def parse_eligible(text: str | None) -> list[Condition]:
    """Parse a filter such as ``"tier=gold,platinum;region!=north"`` into conditions.

    Conditions are separated by ``;`` and must all hold. Each is ``column=v1,v2`` (in the list)
    or ``column!=v1,v2`` (not in it). Empty pieces between semicolons are skipped; column names
    are lower-cased. The columns are checked against the store later, by the caller that knows
    the table (:func:`design_inputs`).

    Parameters
    ----------
    text : str or None
        The filter; None or blank selects everyone.

    Returns
    -------
    list of Condition

    Raises
    ------
    InputError
        A condition is malformed; the message quotes it.

    Examples
    --------
    >>> [c.text for c in parse_eligible("tier = gold, platinum; region!=north")]
    ['tier=gold,platinum', 'region!=north']
    >>> parse_eligible(None)
    []
    """
    if text is None:
        return []
    if not isinstance(text, str):
        raise InputError(f"filter must be text such as 'tier=gold', got {text!r}")
    out = []
    for piece in text.split(";"):
        if not piece.strip():
            continue
        m = _CONDITION.match(piece)
        if m is None:
            raise InputError(
                f"filter condition {piece.strip()!r} is not 'column=v1,v2' or 'column!=v1,v2'"
            )
        column, op, rest = m.group(1).lower(), m.group(2), m.group(3)
        values = tuple(v.strip() for v in rest.split(","))
        if any(not v for v in values) or any(("=" in v) for v in values):
            raise InputError(
                f"filter condition {piece.strip()!r} needs a comma-separated list of non-empty "
                "values after the '=' or '!=' (and no further '=')"
            )
        out.append(Condition(column=column, values=values, negate=op == "!="))
    return out


def _where(
    con: duckdb.DuckDBPyConnection,
    conditions: Sequence[Condition],
    table: str,
    alias: str,
    prefix: str,
    setting: str,
) -> tuple[str, dict[str, str]]:
    """SQL for the conditions on ``alias`` (columns checked and quoted) and its parameters."""
    if not conditions:
        return "TRUE", {}
    known = list(store.columns(con, table))
    parts, params = [], {}
    for i, cond in enumerate(conditions):
        if cond.column not in known:
            raise InputError(
                f"{setting}: column {cond.column!r} (in {cond.text!r}) is not a column of "
                f"{table}; choose from {known}"
            )
        names = []
        for j, value in enumerate(cond.values):
            name = f"{prefix}{i}_{j}"
            params[name] = value
            names.append(f"${name}")
        col = f"{alias}.{store.quote_identifier(cond.column)}"
        listed = f"CAST({col} AS STRING) IN ({', '.join(names)})"
        parts.append(f"({col} IS NULL OR NOT {listed})" if cond.negate else listed)
    return " AND ".join(parts), params


# --------------------------------------------------------------------------------------------
# Result


@dataclass(frozen=True)
class DesignInputs:
    """Numbers for sizing a test, estimated from the store's history.

    Attributes
    ----------
    eligible, trigger, cluster : str or None
        The filters and cluster column the inputs were computed for.
    as_of, horizon_end, pre_start : str
        Reference month, last horizon month and first pre-period month (``YYYY-MM``).
    horizon_months, pre_months : int
        Months in the outcome window (``as_of .. horizon_end``) and in the pre-period actually
        used (fewer than asked for when the store's history is shorter).
    n_eligible : int
        Customers in the population: eligible and active in the month before ``as_of`` or, with
        a trigger, eligible and triggered during ``as_of``.
    retention_baseline : float
        Share of them active in ``horizon_end`` (no outcome row there counts as not active).
    churn_per_month : float
        Constant monthly churn hazard implied by the baseline over the horizon:
        ``1 - retention_baseline ** (1 / horizon_months)``.
    revenue_mean, revenue_sd, cost_mean, cost_sd : float
        Mean and sample sd per customer of revenue and cost-to-serve summed over the horizon
        months (missing months count 0; churned customers with what they had).
    r2_revenue, r2_cost, r2_retention : float
        In-sample OLS R^2 of each horizon outcome (retention as a 0/1 indicator) on the
        pre-period features: revenue sum, cost sum, months active, log1p of the revenue sum and
        number of service cases (with an intercept): what a regression on those features could
        remove. Reported only: the readout does not adjust for them.
    r2_revenue_bands, r2_cost_bands, r2_retention_bands : float
        Adjusted R^2 of each horizon outcome on the readout's own adjustment, the pre-period
        spend bands (:data:`attribution.cells.PRE_BANDS` of revenue over the
        :data:`attribution.cells.PRE_MONTHS` months before the reference month; 0 without
        history). :meth:`for_retention` and :meth:`for_means` size with these, so a design
        promises the precision the readout then has.
    eligible_per_week : float or None
        Distinct triggered eligible customers per week over the last up-to-6 complete months
        (None without a trigger: the whole population is eligible at once).
    rate_months : int or None
        Months the rate averages over.
    events_per_week : float or None
        Churn events per week among newly eligible customers:
        ``eligible_per_week * (1 - retention_baseline)``.
    n_clusters, mean_cluster_size, cluster_size_cv : int, float, float or None
        With ``cluster``: clusters holding population customers, their mean size and the
        coefficient of variation of the sizes (population sd over mean).
    icc_revenue, icc_cost, icc_retention : float or None
        With ``cluster``: one-way ANOVA ICC of each horizon outcome within the readout's
        pre-period spend bands (each customer's outcome minus their band's mean: the clustering
        the readout's comparison meets), truncated at 0.
    net_value_mean, net_value_sd, r2_net_value_bands : float
        Each customer's net value as the readout's money counts it, before any intervention
        cost: the window's margin on spend minus cost-to-serve, ``flow = margin x revenue -
        cost``, plus, when active at the horizon, that flow carried over the value horizon,
        ``flow x value_carry`` (:attr:`value_carry`). Mean, sample sd and the adjusted R^2 on
        the pre-period spend bands. The decision is taken on net value, whose spread is mostly
        the carried value of retained customers: size a test for the decision with
        ``for_means("net_value")`` (measured on the simulator within 10% of the readout's net
        value interval, ``tests/test_loop.py``).
    csat_rated_share, csat_sd : float, float or None
        The share of the population with a CSAT rating over the horizon and the sample sd of
        their per-customer mean rating, as the CSAT guardrail compares them (None without
        ratings): what the guardrail's precision at a test size follows from. With a trigger,
        only ratings after the customer's first triggering interaction count (the guardrail
        counts ratings from the test's start).
    value_carry : float
        ``sum_{j=1..H} rho^j d^(W+j) / W``: what a month of a retained customer's window flow is
        worth over the value horizon ``H`` (``money.value_horizon_months``), decaying with the
        population's monthly retention ``rho = retention_baseline^(1 / max(W - 1, 1))`` and
        discounted at ``d = (1 + discount_rate)^(-1/12)`` a month, ``W`` the horizon months
        (:mod:`attribution.value`'s schedule; the window's own discounting is left out).
    """

    eligible: str | None
    trigger: str | None
    cluster: str | None
    as_of: str
    horizon_end: str
    pre_start: str
    horizon_months: int
    pre_months: int
    n_eligible: int
    retention_baseline: float
    churn_per_month: float
    revenue_mean: float
    revenue_sd: float
    cost_mean: float
    cost_sd: float
    r2_revenue: float
    r2_cost: float
    r2_retention: float
    r2_revenue_bands: float = 0.0
    r2_cost_bands: float = 0.0
    r2_retention_bands: float = 0.0
    eligible_per_week: float | None = None
    rate_months: int | None = None
    events_per_week: float | None = None
    n_clusters: int | None = None
    mean_cluster_size: float | None = None
    cluster_size_cv: float | None = None
    icc_revenue: float | None = None
    icc_cost: float | None = None
    icc_retention: float | None = None
    net_value_mean: float = 0.0
    net_value_sd: float = 0.0
    r2_net_value_bands: float = 0.0
    value_carry: float = 0.0
    csat_rated_share: float = 0.0
    csat_sd: float | None = None

    @property
    def horizon_weeks(self) -> float:
        """The outcome horizon in weeks (a month is 365.25 / 12 days)."""
        return self.horizon_months * _WEEKS_PER_MONTH

    def for_retention(self) -> dict[str, float]:
        """Keyword arguments for :func:`experiments.design.proportions_sample_size`.

        Returns
        -------
        dict
            ``baseline`` and ``r2``.
        """
        p = self.retention_baseline
        if not 0.0 < p < 1.0:
            raise InputError(
                f"retention baseline is {p:g} for {self._population_text()}: a proportion test "
                "needs a baseline strictly between 0 and 1"
            )
        return {"baseline": p, "r2": self.r2_retention_bands}

    def for_means(self, metric: str = "revenue") -> dict[str, float]:
        """Keyword arguments for :func:`experiments.design.means_sample_size`.

        Parameters
        ----------
        metric : {"revenue", "cost", "net_value"}
            ``"cost_to_serve"`` is accepted for ``"cost"``.

        Returns
        -------
        dict
            ``sd`` and ``r2``.
        """
        key = {
            "revenue": "revenue",
            "cost": "cost",
            "cost_to_serve": "cost",
            "net_value": "net_value",
        }.get(metric)
        if key is None:
            raise InputError(f"metric must be 'revenue', 'cost' or 'net_value', got {metric!r}")
        sd = getattr(self, f"{key}_sd")
        if not sd > 0.0:
            raise InputError(
                f"{metric} does not vary over the horizon for {self._population_text()} "
                f"(sd {sd!r}): nothing to size a test of means on"
            )
        return {"sd": sd, "r2": getattr(self, f"r2_{key}_bands")}

    def for_cluster(self, metric: str = "revenue") -> dict[str, float]:
        """Keyword arguments for :func:`experiments.design.cluster_sample_size`.

        Parameters
        ----------
        metric : {"revenue", "cost", "retention"}

        Returns
        -------
        dict
            ``icc``, ``cluster_size`` and ``cv``.
        """
        key = {"revenue": "revenue", "cost": "cost", "cost_to_serve": "cost"}.get(metric, metric)
        if key not in ("revenue", "cost", "retention"):
            raise InputError(f"metric must be 'revenue', 'cost' or 'retention', got {metric!r}")
        if self.cluster is None:
            raise InputError("no cluster column was given: pass cluster= to design_inputs")
        return {
            "icc": getattr(self, f"icc_{key}"),
            "cluster_size": self.mean_cluster_size,
            "cv": self.cluster_size_cv,
        }

    def _population_text(self) -> str:
        text = f"eligible {self.eligible!r}" if self.eligible else "every customer"
        if self.trigger:
            text += f" triggered by {self.trigger!r}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-ready values (None where not computed)."""
        out = dataclasses.asdict(self)
        out["horizon_weeks"] = self.horizon_weeks
        return out

    def summary(self) -> pd.DataFrame:
        """One row per field: ``name`` and ``value``."""
        return pd.DataFrame(list(self.to_dict().items()), columns=["name", "value"])

    def describe(self) -> str:
        """The inputs in a few plain lines for the terminal."""
        lines = [
            f"Design inputs from the store, as of {self.as_of}: outcomes over {self.as_of} .. "
            f"{self.horizon_end} ({self.horizon_months} months), history from {self.pre_start} "
            f"({self.pre_months} months).",
            f"Population: {self._population_text()}, {self.n_eligible:,} customers.",
            f"Retention at {self.horizon_end}: {self.retention_baseline:.4f} (churn "
            f"{self.churn_per_month:.4f} a month); R^2 {self.r2_retention_bands:.3f}.",
            f"Revenue per customer over the horizon: mean {self.revenue_mean:,.2f}, sd "
            f"{self.revenue_sd:,.2f}; R^2 {self.r2_revenue_bands:.3f} (variance x "
            f"{1.0 - self.r2_revenue_bands:.3f}).",
            f"Cost to serve per customer: mean {self.cost_mean:,.2f}, sd {self.cost_sd:,.2f}; "
            f"R^2 {self.r2_cost_bands:.3f} (variance x {1.0 - self.r2_cost_bands:.3f}).",
            f"Net value per customer (window margin less cost, a retained customer's carried "
            f"over the value horizon): mean {self.net_value_mean:,.2f}, sd "
            f"{self.net_value_sd:,.2f}; R^2 {self.r2_net_value_bands:.3f}.",
            (
                f"CSAT: {self.csat_rated_share:.1%} of them rate service over the horizon "
                f"(per-customer mean rating sd {self.csat_sd:.3f})."
                if self.csat_sd is not None
                else "CSAT: no ratings over the horizon."
            ),
            "R^2 is that of the readout's own adjustment (pre-period spend bands), so the size "
            "is what the readout's precision supports; a regression on five pre-period "
            f"features would reach {self.r2_retention:.3f} / {self.r2_revenue:.3f} / "
            f"{self.r2_cost:.3f} (retention / revenue / cost), which the readout does not use.",
        ]
        if self.eligible_per_week is not None:
            lines.append(
                f"Newly eligible customers: {self.eligible_per_week:,.1f} a week (last "
                f"{self.rate_months} months); churn events {self.events_per_week:,.1f} a week."
            )
        else:
            lines.append("No trigger: the whole population is eligible at once.")
        if self.cluster is not None:
            lines.append(
                f"Clusters by {self.cluster}: {self.n_clusters} clusters, mean size "
                f"{self.mean_cluster_size:,.1f}, size CV {self.cluster_size_cv:.3f}; ICC revenue "
                f"{self.icc_revenue:.4f}, cost {self.icc_cost:.4f}, retention "
                f"{self.icc_retention:.4f}."
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Estimation


def design_inputs(
    con: duckdb.DuckDBPyConnection,
    *,
    eligible: str | None = None,
    trigger: str | None = None,
    horizon_months: int = 3,
    pre_months: int = 3,
    cluster: str | None = None,
    as_of: str | date | None = None,
    money: MoneySettings | None = None,
) -> DesignInputs:
    """Estimate baselines, spreads, R^2, rates and ICCs for a test from the store's history.

    The population is the customers matching ``eligible`` (module docstring for the syntax)
    that were active in the month before ``as_of`` or, with a ``trigger``, that had a matching
    interaction during ``as_of``. Their outcomes are followed over the ``horizon_months`` months
    ``as_of .. as_of + horizon_months - 1``, and their history over the ``pre_months`` months
    before ``as_of`` (service cases counted by timestamp in the same months).

    The eligible rate (with a trigger) counts, for each of the last up-to-6 complete months
    (months up to the last outcome period, from the first month with interactions), the distinct
    eligible customers with a matching interaction, and divides their total by the weeks those
    months span (days / 7). A customer triggered in two months counts twice: once per month in
    which they became eligible.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open store; only read.
    eligible : str, optional
        Filter on ``customers`` columns, e.g. ``"tier=gold,platinum"``.
    trigger : str, optional
        Filter on ``interactions`` columns, e.g. ``"resolution=very_ineffective"``.
    horizon_months : int
        Months of outcomes per customer, >= 1.
    pre_months : int
        Months of history for the regression adjustment, >= 1.
    cluster : str, optional
        A customers segment column (e.g. ``region``) to estimate the ICC and cluster sizes on.
    as_of : str or date, optional
        Reference month. Default: the latest month with ``horizon_months`` of outcomes from it
        (``as_of + horizon_months - 1 <= last period``), which also leaves the most history
        before it. At least one month of history must precede it.

    Returns
    -------
    DesignInputs

    Raises
    ------
    InputError
        A bad setting or filter, a store without outcomes, a horizon longer than the observed
        history, or an empty population; the message names the setting and value.

    Examples
    --------
    >>> from attribution import store, synth
    >>> con = store.connect(":memory:")
    >>> _ = synth.simulate(con, 2000, months=8, seed=1)
    >>> inputs = design_inputs(con, eligible="tier=gold", horizon_months=3)
    >>> inputs.as_of, inputs.horizon_end, inputs.pre_months
    ('2025-06', '2025-08', 3)
    >>> sorted(inputs.for_means("revenue"))
    ['r2', 'sd']
    """
    h = whole("horizon_months", horizon_months)
    k = whole("pre_months", pre_months)
    first, last = con.execute(_PERIODS_SQL).fetchone()
    if first is None:
        raise InputError("the store has no outcomes: load outcomes (or simulate) first")
    first, last = store.parse_period(first), store.parse_period(last)
    observed = months_between(first, last) + 1
    if as_of is None:
        if h + 1 > observed:
            raise InputError(
                f"horizon_months={h} is longer than the observed history allows: the store holds "
                f"{observed} months ({first:%Y-%m} .. {last:%Y-%m}) and at least one month of "
                "history must precede the horizon"
            )
        ref = add_months(last, -(h - 1))
    else:
        ref = store.parse_period(as_of)
        if ref <= first:
            raise InputError(
                f"as_of={as_of!r}: at least one month of history must precede it and the "
                f"store's outcomes start {first:%Y-%m}"
            )
        if add_months(ref, h - 1) > last:
            raise InputError(
                f"horizon_months={h} from as_of {ref:%Y-%m} ends {add_months(ref, h - 1):%Y-%m}, "
                f"after the last observed period {last:%Y-%m}"
            )
    pre_start = max(first, add_months(ref, -k))
    h_end = add_months(ref, h - 1)

    eligible_conds = parse_eligible(eligible)
    trigger_conds = parse_eligible(trigger)
    eligible_sql, filter_params = _where(con, eligible_conds, "customers", "c", "e", "eligible")
    trigger_sql, trigger_params = _where(con, trigger_conds, "interactions", "i", "t", "trigger")
    filter_params.update(trigger_params)
    entry = _ENTRY_TRIGGER.format(trigger=trigger_sql) if trigger_conds else _ENTRY_ACTIVE
    if cluster is not None:
        segments = store.segment_columns(con)
        if cluster not in segments:
            raise InputError(
                f"cluster column {cluster!r} is not a segment column of customers; choose from "
                f"{segments}"
            )
        cluster_select = f", c.{store.quote_identifier(cluster)} AS cluster"
    else:
        cluster_select = ""
    params = dict(filter_params, as_of=ref, pre_start=pre_start, h_end=h_end)
    if trigger_conds:
        params["after"] = add_months(ref, 1)
    else:
        params["before"] = add_months(ref, -1)
    fill = {"cluster_select": cluster_select, "eligible": eligible_sql, "entry": entry}
    after_trigger = "TRUE"
    if trigger_conds:  # the same conditions on the subquery's own alias (same parameters)
        trigger_j, _ = _where(con, trigger_conds, "interactions", "j", "t", "trigger")
        after_trigger = _AFTER_TRIGGER.format(trigger=trigger_j)

    moments = _moments(con, fill, params)
    n = int(moments["n"])
    if n == 0:
        who = f"eligible={eligible!r}" if eligible_conds else "every customer"
        how = (
            f"triggered by {trigger!r} during {ref:%Y-%m}"
            if trigger_conds
            else f"active in {add_months(ref, -1):%Y-%m}"
        )
        raise InputError(f"no customers in the population: {who}, {how}")
    baseline = float(moments["avg_y_retention"])
    carry = _carry(baseline, h, money or MoneySettings())
    net = {"margin": (money or MoneySettings()).margin_rate, "carry": carry}
    fields: dict[str, Any] = {
        "eligible": eligible if eligible_conds else None,
        "trigger": trigger if trigger_conds else None,
        "cluster": cluster,
        "as_of": f"{ref:%Y-%m}",
        "horizon_end": f"{h_end:%Y-%m}",
        "pre_start": f"{pre_start:%Y-%m}",
        "horizon_months": h,
        "pre_months": months_between(pre_start, ref),
        "n_eligible": n,
        "retention_baseline": baseline,
        "churn_per_month": 1.0 - baseline ** (1.0 / h),
        "revenue_mean": float(moments["avg_y_revenue"]),
        "revenue_sd": _sd(moments["var_y_revenue"]),
        "cost_mean": float(moments["avg_y_cost"]),
        "cost_sd": _sd(moments["var_y_cost"]),
        "r2_revenue": _r2(moments, "y_revenue"),
        "r2_cost": _r2(moments, "y_cost"),
        "r2_retention": _r2(moments, "y_retention"),
        **_band_r2(con, fill, {**params, **net}, first, ref),
        "value_carry": carry,
        **_csat(con, {**fill, "after_trigger": after_trigger}, params, h_end, n),
    }
    if trigger_conds:
        rate, months = _eligible_rate(con, first, last, eligible_sql, trigger_sql, filter_params)
        fields.update(
            eligible_per_week=rate,
            rate_months=months,
            events_per_week=rate * (1.0 - baseline),
        )
    if cluster is not None:
        fields.update(_clusters(con, fill, _band_params(params, first, ref), cluster))
    return DesignInputs(**fields)


def _moments(
    con: duckdb.DuckDBPyConnection, fill: dict[str, str], params: dict[str, Any]
) -> dict[str, float]:
    """Count, outcome means and variances, and every covariance among features and outcomes."""
    columns = [f"AVG({x}) AS avg_{x}" for x in FEATURES]
    for y in OUTCOMES:
        columns += [f"AVG({y}) AS avg_{y}", f"VAR_SAMP({y}) AS var_{y}"]
    variables = FEATURES + OUTCOMES
    for i, a in enumerate(variables):
        for b in variables[i:]:
            columns.append(f"COVAR_POP({a}, {b}) AS cov__{a}__{b}")
    sql = _MOMENTS_SQL.format(**fill, moments="".join(f", {c}" for c in columns))
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return dict(zip(names, cursor.fetchone(), strict=True))


def _cov(moments: dict[str, float], a: str, b: str) -> float:
    key = f"cov__{a}__{b}" if f"cov__{a}__{b}" in moments else f"cov__{b}__{a}"
    value = moments[key]
    return 0.0 if value is None else float(value)


def _r2(moments: dict[str, float], outcome: str) -> float:
    """R^2 of OLS of ``outcome`` on the features with an intercept, from covariances.

    ``R^2 = r' R^{-1} r`` with ``R`` the features' correlation matrix and ``r`` their
    correlations with the outcome; features without variation are dropped (the intercept
    covers them) and a rank-deficient ``R`` is solved by least squares.
    """
    var_y = _cov(moments, outcome, outcome)
    if not var_y > 0.0:
        return 0.0
    kept = [
        f
        for f in FEATURES
        if _cov(moments, f, f) > 1e-12 * max(1.0, float(moments[f"avg_{f}"] or 0.0) ** 2)
    ]
    if not kept:
        return 0.0
    sd = np.sqrt([_cov(moments, f, f) for f in kept])
    corr = np.array([[_cov(moments, a, b) for b in kept] for a in kept]) / np.outer(sd, sd)
    r = np.array([_cov(moments, f, outcome) for f in kept]) / (sd * math.sqrt(var_y))
    beta = np.linalg.lstsq(corr, r, rcond=1e-10)[0]
    return float(min(max(float(beta @ r), 0.0), 1.0))


def _band_params(params: dict[str, Any], first: date, ref: date) -> dict[str, Any]:
    """The parameters of the readout's pre-period bands for a start at ``ref``: their own window
    (the features' ``$pre_start`` is not theirs), one band without a month of history."""
    band_start = max(first, add_months(ref, -PRE_MONTHS))
    no_bands = band_start >= ref
    return {
        **params,
        "pre_start": band_start,
        "start": ref,
        "pre_bands": PRE_BANDS if not no_bands else 1,
    }


def _band_r2(
    con: duckdb.DuckDBPyConnection,
    fill: dict[str, str],
    params: dict[str, Any],
    first: date,
    ref: date,
) -> dict[str, float]:
    """Adjusted R^2 of each horizon outcome on the readout's pre-period spend bands.

    The readout adjusts for :data:`attribution.cells.PRE_BANDS` bands of revenue in the
    :data:`attribution.cells.PRE_MONTHS` months before the start (fewer when the store starts
    later; none without a month of history). The share of the outcome's variance between those
    bands, adjusted for their number (``1 - (1 - R^2)(n - 1)/(n - B)``), is the variance
    reduction the readout's precision gets from them: the R^2 a design must be sized with.
    """
    outcomes = {**dict(zip(("revenue", "cost", "retention"), OUTCOMES, strict=True))}
    outcomes["net_value"] = _NET_SQL
    stats = "".join(f", AVG({y}) AS avg_{k}, VAR_POP({y}) AS var_{k}" for k, y in outcomes.items())
    banded = _band_params(params, first, ref)
    no_bands = banded["pre_bands"] == 1
    frame = con.execute(
        # without history the bands' query still gives the net value's moments (one band)
        _BANDS_SQL.format(**fill, stats=stats),
        banded,
    ).df()
    n, bands = frame["n"].to_numpy(dtype=float), len(frame)
    total = n.sum()
    out = {}
    for key in outcomes:
        mean_b = frame[f"avg_{key}"].to_numpy(dtype=float)
        var_b = frame[f"var_{key}"].fillna(0.0).to_numpy(dtype=float)
        grand = float(n @ mean_b / total)
        between = float(n @ (mean_b - grand) ** 2)
        whole = between + float(n @ var_b)
        if key == "net_value":
            out["net_value_mean"] = grand
            out["net_value_sd"] = math.sqrt(whole / (total - 1.0)) if total > 1 else 0.0
        if no_bands or not whole > 0.0 or total - bands < 1:
            out[f"r2_{key}_bands"] = 0.0
            continue
        adjusted = 1.0 - (1.0 - between / whole) * (total - 1.0) / (total - bands)
        out[f"r2_{key}_bands"] = float(min(max(adjusted, 0.0), 1.0))
    return out


#: A customer's net value before the intervention's cost, as the readout's money counts it
#: (``DesignInputs.net_value_sd``); parameters $margin and $carry.
_NET_SQL = "(($margin * y_revenue - y_cost) * (1 + y_retention * $carry))"


def _csat(
    con: duckdb.DuckDBPyConnection, fill: dict[str, str], params: dict[str, Any], end: date, n: int
) -> dict[str, Any]:
    """``csat_rated_share`` and ``csat_sd`` of the population over the horizon."""
    rated, var = con.execute(
        _CSAT_SQL.format(**fill), {**params, "h_after": add_months(end, 1)}
    ).fetchone()
    sd = math.sqrt(var) if var is not None and var > 0 else None
    return {"csat_rated_share": float(rated) / n if n else 0.0, "csat_sd": sd}


def _carry(baseline: float, months: int, money: MoneySettings) -> float:
    """``DesignInputs.value_carry``: a window month of a retained customer's flow, carried over
    the value horizon with the population's decay and the discount (see the class)."""
    rho = max(baseline, 0.0) ** (1.0 / max(months - 1, 1))
    d = (1.0 + money.discount_rate) ** (-1.0 / 12.0)
    horizon = money.value_horizon_months
    return float(sum(rho**j * d ** (months + j) for j in range(1, horizon + 1)) / months)


def _clusters(
    con: duckdb.DuckDBPyConnection, fill: dict[str, str], params: dict[str, Any], cluster: str
) -> dict[str, Any]:
    stats = "".join(f", AVG({y}) AS avg_{y}, VAR_POP({y}) AS var_{y}" for y in OUTCOMES)
    residuals = "".join(f", {y} - AVG({y}) OVER (PARTITION BY band) AS {y}" for y in OUTCOMES)
    sql = _CLUSTER_SQL.format(**fill, stats=stats, residuals=residuals)
    frame = con.execute(sql, params).df()
    k = len(frame)
    sizes = frame["n"].to_numpy(dtype=float)
    total = sizes.sum()
    if k < 2:
        raise InputError(
            f"cluster column {cluster!r} takes a single value in the population: an ICC needs "
            "at least two clusters"
        )
    if total <= k:
        raise InputError(
            f"cluster column {cluster!r} has one customer per cluster in the population: the "
            "ICC needs clusters of two or more"
        )
    out: dict[str, Any] = {
        "n_clusters": k,
        "mean_cluster_size": float(sizes.mean()),
        "cluster_size_cv": float(sizes.std() / sizes.mean()),
    }
    n0 = (total - float((sizes**2).sum()) / total) / (k - 1)
    for y, name in zip(OUTCOMES, ("revenue", "cost", "retention"), strict=True):
        means = frame[f"avg_{y}"].to_numpy(dtype=float)
        within = frame[f"var_{y}"].fillna(0.0).to_numpy(dtype=float) * sizes
        grand = float((sizes * means).sum() / total)
        msb = float((sizes * (means - grand) ** 2).sum()) / (k - 1)
        msw = float(within.sum()) / (total - k)
        denom = msb + (n0 - 1.0) * msw
        icc = (msb - msw) / denom if denom > 0.0 else 0.0
        out[f"icc_{name}"] = float(min(max(icc, 0.0), 1.0))
    return out


def _eligible_rate(
    con: duckdb.DuckDBPyConnection,
    first: date,
    last: date,
    eligible_sql: str,
    trigger_sql: str,
    params: dict[str, Any],
) -> tuple[float, int]:
    """Distinct triggered eligible customers per week over the last up-to-6 complete months."""
    earliest = con.execute(_FIRST_INTERACTION_SQL).fetchone()[0]
    start = add_months(last, -(RATE_MONTHS - 1))
    start = max(start, first, store.parse_period(earliest) if earliest is not None else last)
    start = min(start, last)
    end = add_months(last, 1)
    rate_params = dict(params, rate_start=start, rate_end=end)
    sql = _RATE_SQL.format(eligible=eligible_sql, trigger=trigger_sql)
    counts = con.execute(sql, rate_params).fetchall()
    weeks = (end - start).days / _DAYS_PER_WEEK
    return float(sum(int(row[1]) for row in counts)) / weeks, months_between(start, end)


# --------------------------------------------------------------------------------------------
# Small helpers


def _sd(variance: float | None) -> float:
    return math.sqrt(max(float(variance), 0.0)) if variance is not None else 0.0
