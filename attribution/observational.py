"""One row per customer and trial month for observational attribution: treatment, confounders
and outcomes, by target-trial emulation.

Most CX work was never randomized, so its effect is estimated by comparing treated and untreated
customers after adjusting for what made them differ. :func:`observational_frame` reads that
comparison out of the store, aggregated in DuckDB, as the trials a randomized test would have
run: one per month in which customers were treated.

Definitions (a *trial month* ``m`` is the first day of a month; the *lookback* is the
``lookback_months`` months before it, default 3; the *follow-up* is ``horizon_months`` months
from ``m``'s month):

- **Eligible in m**: customers active in ``m`` (an ``outcomes`` row for that month with
  ``active`` true) who were not treated before ``m``.
- **Treated in m**, for an intervention: eligible customers whose first row of it in
  ``interventions`` falls in month ``m``. Rows without an ``experiment_id`` (not randomized) are
  used when there are any; otherwise all rows (a note says so). For a condition ``column=value``
  (``|`` separates alternatives, e.g. ``resolution=very_effective`` or
  ``resolution=somewhat_ineffective|very_ineffective``): eligible customers whose first matching
  ``interactions`` row falls in month ``m``.
- **Untreated in m**: every other eligible customer, including those treated in a later month
  (the comparison is "treated now" against "not now", as a trial started in ``m`` would compare;
  their later treatment is part of what "not now" means). Counting the late-treated as treated
  from ``m`` on (the definition before target-trial emulation) credits the treatment with the
  untreated months they had to survive: immortal time. For a condition with
  ``compare_with="other_events"``, only the eligible customers with another ``interactions`` row
  in ``m`` (a case resolved some other way, not no case at all): customers prone to contact you
  differ from the others in ways the history measures only roughly.
- **Trial months**: with ``as_of``, that month alone (one baseline). By default, every month in
  which customers were first treated (for a condition, from ``lookback_months`` after the first
  outcome period) whose follow-up fits before the last outcome period; the trials are pooled:
  ``frame`` has a row per customer and trial month they were eligible in, with the categorical
  confounder ``trial_month``. Estimators resample whole customers (see
  :func:`attribution.causal.estimators.resampler`).
- **Follow-up** default: with ``as_of``, to the last outcome period; pooled, the months from the
  last trial candidate to the last period, at least half of those from the first. Treated
  customers in later months make no trial (a note counts them).
- **Confounders** (all measured strictly before the trial month, so never after a treatment or a
  condition's event; defaults are :data:`DEFAULT_CONFOUNDERS`): ``tenure_months`` (whole months
  from signup to ``m``), ``tier``, ``region``, ``channel``, ``prior_revenue`` and ``prior_cost``
  (mean per month over the customer's outcome months in the lookback; 0 without any),
  ``history_revenue`` (the same over up to :data:`HISTORY_MONTHS` months before ``m``: the
  customer's spend level, which three months measure poorly), ``prior_active_months`` (active
  months in the lookback), ``months_since_purchase`` (months from the last month with revenue > 0
  to ``m``, over the whole history; history length + 1 when there was none), ``prior_cases`` and
  ``prior_bad_cases`` (service cases in the lookback's outcome months, and those resolved
  somewhat or very ineffectively). Any ``customers`` column can be added by name (numeric types
  stay numeric, others are categories; a missing value is the category ``"(missing)"``).
- **Outcomes**: ``retained`` = active in the follow-up's last month; ``revenue`` and
  ``cost_to_serve`` = sums over the follow-up's months. A month without an ``outcomes`` row counts
  as inactive with zero revenue and cost (churned customers may stop having rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import duckdb
import pandas as pd

from attribution import store
from attribution.errors import InputError
from attribution.periods import add_months, window_months
from attribution.settings import COMPARE_WITH
from attribution.validation import one_of

__all__ = [
    "active_frame",
    "assigned_frame",
    "check_intervention",
    "confounder_kind",
    "BAD_RESOLUTIONS",
    "DEFAULT_CONFOUNDERS",
    "DERIVED_CONFOUNDERS",
    "OUTCOME_COLUMNS",
    "ObservationalData",
    "observational_frame",
]

#: Confounders computed from the store's history before ``as_of`` (see the module docstring).
DERIVED_CONFOUNDERS = {
    "tenure_months": "numeric",
    "prior_revenue": "numeric",
    "prior_cost": "numeric",
    "history_revenue": "numeric",
    "prior_active_months": "numeric",
    "months_since_purchase": "numeric",
    "prior_cases": "numeric",
    "prior_bad_cases": "numeric",
}
#: Derived confounders measured over the months before ``as_of`` (all but ``tenure_months``):
#: without an outcome month before ``as_of`` they cannot be measured.
HISTORY_CONFOUNDERS = tuple(c for c in DERIVED_CONFOUNDERS if c != "tenure_months")
#: Months before ``as_of`` that ``history_revenue`` (the customer's spend level) is averaged over.
HISTORY_MONTHS = 12
#: The default adjustment set.
DEFAULT_CONFOUNDERS = (
    "tenure_months",
    "tier",
    "region",
    "channel",
    "prior_revenue",
    "prior_cost",
    "history_revenue",
    "prior_active_months",
    "months_since_purchase",
    "prior_cases",
    "prior_bad_cases",
)
#: Resolutions that count as a badly resolved case.
BAD_RESOLUTIONS = ("somewhat_ineffective", "very_ineffective")
#: Outcome columns of :attr:`ObservationalData.frame` and their names on the readout scale.
OUTCOME_COLUMNS = {"retention": "retained", "revenue": "revenue", "cost_to_serve": "cost_to_serve"}
_MISSING = "(missing)"
#: The categorical confounder that tells pooled trials apart (``YYYY-MM`` of the trial month).
TRIAL = "trial_month"

# --- the SQL, in one place ----------------------------------------------------------------------
# Parameters, by name: trials (list of first days of the trial months), lookback and history
# (months before a trial month), follow (follow-up months after a trial month's own month),
# window_last (the last month any trial follows), first_period, bad (list of resolutions).
_INTERVENTION_TREATMENT = """
    SELECT customer_id, min(ts) AS first_ts
    FROM interventions
    WHERE intervention = $intervention AND (experiment_id IS NULL OR $use_randomized)
    GROUP BY customer_id
"""
# {column} is an interactions column checked against the schema and quoted.
_CONDITION_TREATMENT = """
    SELECT customer_id, min(ts) AS first_ts
    FROM interactions
    WHERE CAST({column} AS VARCHAR) IN (SELECT unnest($values))
    GROUP BY customer_id
"""
# Every confounder of a trial month comes from the months before it (RANGE frames over each
# customer's months); every outcome from the trial month and the ``follow`` months after it.
# {restrict} is empty or ``AND customer_id IN (...)``: the population's rows only, before the
# windows (a window over every customer's months costs the whole outcomes table).
_FRAME_SQL = """
WITH treatment AS ({treatment}),
cases AS (
    SELECT customer_id, CAST(date_trunc('month', ts) AS DATE) AS period, count(*) AS cases,
        count(*) FILTER (WHERE resolution IN (SELECT unnest($bad))) AS bad_cases
    FROM interactions
    WHERE ts < CAST($window_last AS TIMESTAMP) + INTERVAL 1 MONTH{restrict}
    GROUP BY ALL
),
series AS (
    SELECT o.customer_id, o.period, o.active, o.revenue, o.cost_to_serve,
        coalesce(k.cases, 0) AS cases, coalesce(k.bad_cases, 0) AS bad_cases,
        (o.revenue IS NULL OR o.cost_to_serve IS NULL OR o.active IS NULL) AS null_row
    FROM outcomes o
    LEFT JOIN cases k USING (customer_id, period)
    WHERE o.period <= $window_last{restrict}
),
windowed AS (
    SELECT customer_id, period, active,
        avg(revenue) OVER (w RANGE BETWEEN to_months($lookback) PRECEDING
                             AND INTERVAL 1 MONTH PRECEDING) AS prior_revenue,
        avg(cost_to_serve) OVER (w RANGE BETWEEN to_months($lookback) PRECEDING
                                   AND INTERVAL 1 MONTH PRECEDING) AS prior_cost,
        count(*) FILTER (WHERE active) OVER (w RANGE BETWEEN to_months($lookback) PRECEDING
                                               AND INTERVAL 1 MONTH PRECEDING)
            AS prior_active_months,
        sum(cases) OVER (w RANGE BETWEEN to_months($lookback) PRECEDING
                           AND INTERVAL 1 MONTH PRECEDING) AS prior_cases,
        sum(bad_cases) OVER (w RANGE BETWEEN to_months($lookback) PRECEDING
                               AND INTERVAL 1 MONTH PRECEDING) AS prior_bad_cases,
        cases AS month_cases,
        avg(revenue) OVER (w RANGE BETWEEN to_months($history) PRECEDING
                             AND INTERVAL 1 MONTH PRECEDING) AS history_revenue,
        max(period) FILTER (WHERE revenue > 0) OVER (w RANGE BETWEEN UNBOUNDED PRECEDING
                                                       AND INTERVAL 1 MONTH PRECEDING)
            AS last_purchase,
        bool_or(active) OVER (w RANGE BETWEEN to_months($follow) FOLLOWING
                                AND to_months($follow) FOLLOWING) AS retained,
        sum(revenue) OVER (w RANGE BETWEEN CURRENT ROW AND to_months($follow) FOLLOWING)
            AS revenue,
        sum(cost_to_serve) OVER (w RANGE BETWEEN CURRENT ROW AND to_months($follow) FOLLOWING)
            AS cost_to_serve,
        count(*) FILTER (WHERE null_row) OVER (w RANGE BETWEEN CURRENT ROW
                                                 AND to_months($follow) FOLLOWING) AS null_rows
    FROM series
    WINDOW w AS (PARTITION BY customer_id ORDER BY period)
)
SELECT x.customer_id, strftime(x.period, '%Y-%m') AS trial_month,
    CAST(t.first_ts IS NOT NULL AND t.first_ts < x.period + INTERVAL 1 MONTH AS INTEGER)
        AS treated,
    CAST(datediff('month', c.signup_date, x.period) AS DOUBLE) AS tenure_months,
    CAST(coalesce(x.prior_revenue, 0) AS DOUBLE) AS prior_revenue,
    CAST(coalesce(x.prior_cost, 0) AS DOUBLE) AS prior_cost,
    CAST(coalesce(x.history_revenue, 0) AS DOUBLE) AS history_revenue,
    CAST(coalesce(x.prior_active_months, 0) AS DOUBLE) AS prior_active_months,
    CAST(coalesce(datediff('month', x.last_purchase, x.period),
                  datediff('month', $first_period, x.period) + 1) AS DOUBLE)
        AS months_since_purchase,
    CAST(coalesce(x.prior_cases, 0) AS DOUBLE) AS prior_cases,
    CAST(coalesce(x.prior_bad_cases, 0) AS DOUBLE) AS prior_bad_cases,
    {customer_columns}
    CAST(coalesce(x.retained, false) AS INTEGER) AS retained,
    CAST(x.revenue AS DOUBLE) AS revenue,
    CAST(x.cost_to_serve AS DOUBLE) AS cost_to_serve,
    x.null_rows, x.period
FROM windowed x
JOIN customers c USING (customer_id)
LEFT JOIN treatment t USING (customer_id)
WHERE x.period IN (SELECT unnest($trials)) AND x.active
  AND (t.first_ts IS NULL OR t.first_ts >= x.period){among}
ORDER BY x.period, x.customer_id
"""
# A condition compared with other events: only the customer-trials with an interactions row in
# the trial month (the treated have theirs).
_AMONG_EVENTS = "\n  AND x.month_cases > 0"
# Months with a first treatment (or a first event), and how many customers start in each.
# A randomized experiment's arm as the treatment, from the experiment's start month.
_ARM_TREATMENT = """
    SELECT customer_id, CAST($start AS TIMESTAMP) AS first_ts
    FROM assignments WHERE experiment_id = $experiment_id AND arm = $arm
"""
# No treatment at all: the customers of a month as they are (scoring, not comparing).
_NO_TREATMENT = (
    "SELECT CAST(NULL AS VARCHAR) AS customer_id, CAST(NULL AS TIMESTAMP) AS first_ts WHERE false"
)
_ARM_POPULATION = (
    "SELECT customer_id FROM assignments "
    "WHERE experiment_id = $experiment_id AND arm IN ($arm, $control)"
)
_TREATMENT_MONTHS_SQL = """
WITH treatment AS ({treatment})
SELECT CAST(date_trunc('month', first_ts) AS DATE) AS month, count(*) AS n
FROM treatment GROUP BY 1 ORDER BY 1
"""
_NULL_ROW_SQL = """
    SELECT customer_id, period,
        CASE WHEN active IS NULL THEN 'active' WHEN revenue IS NULL THEN 'revenue'
             ELSE 'cost_to_serve' END AS col
    FROM outcomes
    WHERE customer_id = ? AND period >= ? AND period <= ?
      AND (active IS NULL OR revenue IS NULL OR cost_to_serve IS NULL)
    ORDER BY period LIMIT 1
"""


@dataclass(frozen=True)
class ObservationalData:
    """One row per customer of the population, with treatment, confounders and outcomes.

    Attributes
    ----------
    frame : pandas.DataFrame
        ``customer_id``, ``treated`` (int 0/1), the confounder columns (numeric floats or
        categorical strings) and the outcomes ``retained`` (int 0/1), ``revenue`` and
        ``cost_to_serve`` (floats >= 0, summed over the window).
    treatment : str
        What "treated" means, e.g. ``"intervention=proactive_outreach"``.
    as_of : datetime.date
        First day of the month outcomes are measured from.
    horizon_months : int
        Months in the outcome window, counting ``as_of``'s month.
    confounders, numeric, categorical : list of str
        The adjustment set, and which of it is numeric (binned into quantile bands by the cell
        route) or categorical.
    intervention : str or None
        The intervention's name (None for a condition).
    unit_cost : float
        Mean unit cost of the treated customers' intervention rows (0 for a condition).
    lookback_months : int
        Months before ``as_of`` that prior revenue, cost and cases are measured over.
    notes : tuple of str
        Caveats in plain words (customers left out, randomized rows used).
    trials : tuple of datetime.date
        The trial months (first days); one for a single baseline. With several, ``frame`` has a
        row per customer and trial month they were eligible in, and a categorical confounder
        ``trial_month``.
    compare_with : str
        ``"eligible"`` or, for a condition, ``"other_events"``
        (:data:`attribution.settings.COMPARE_WITH`).
    """

    frame: pd.DataFrame
    treatment: str
    as_of: date
    horizon_months: int
    confounders: list[str]
    numeric: list[str]
    categorical: list[str]
    intervention: str | None = None
    unit_cost: float = 0.0
    lookback_months: int = 3
    notes: tuple[str, ...] = field(default=())
    trials: tuple[date, ...] = field(default=())
    compare_with: str = "eligible"

    @property
    def horizon(self) -> date:
        """First day of the first trial's last follow-up month."""
        return add_months(self.as_of, self.horizon_months - 1)

    @property
    def pooled(self) -> bool:
        """Whether the frame pools several emulated trials (rows are customer x trial month)."""
        return len(self.trials) > 1

    @property
    def design(self) -> str:
        """The design in words: one baseline, or pooled emulated trials."""
        h = f"{self.horizon_months} month(s) of follow-up"
        if self.compare_with == "other_events":
            versus = "eligible with another interaction in it"
        else:
            versus = "eligible and not treated in it"
        if not self.pooled:
            other = " with another interaction" if self.compare_with == "other_events" else ""
            return f"one trial at {self.as_of:%Y-%m} (treated in that month vs not{other}), {h}"
        return (
            f"{len(self.trials)} emulated trials pooled, one per month from "
            f"{self.trials[0]:%Y-%m} to {self.trials[-1]:%Y-%m} (treated in the month vs "
            f"{versus}), {h} each; "
            f"{self.frame['customer_id'].nunique():,} customers in "
            f"{len(self.frame):,} customer-trials"
        )

    @property
    def n_treated(self) -> int:
        """Treated customers."""
        return int(self.frame["treated"].sum())

    @property
    def n_untreated(self) -> int:
        """Untreated customers."""
        return int(len(self.frame) - self.frame["treated"].sum())


def observational_frame(
    con: duckdb.DuckDBPyConnection,
    intervention: str | None = None,
    *,
    condition: str | None = None,
    confounders: Sequence[str] | None = None,
    as_of: str | date | None = None,
    horizon_months: int | None = None,
    lookback_months: int = 3,
    compare_with: str = "eligible",
) -> ObservationalData:
    """Read treatment, confounders and outcomes, one row per customer, from the store.

    Definitions of the population, treatment, confounders and outcomes are in the module
    docstring. All aggregation runs in DuckDB; only one row per customer reaches pandas.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open store.
    intervention : str, optional
        A name in ``interventions.intervention``. Exactly one of ``intervention`` and
        ``condition`` is given.
    condition : str, optional
        ``column=value`` on ``interactions`` (``|`` between alternative values).
    confounders : sequence of str, optional
        The adjustment set; default :data:`DEFAULT_CONFOUNDERS`. Names come from
        :data:`DERIVED_CONFOUNDERS` or the ``customers`` columns.
    as_of : str or date, optional
        One trial at this month (``YYYY-MM`` or a date inside it); default: pooled trials, one
        per month with first treatments (see the module docstring).
    horizon_months : int, optional
        Months of follow-up, counting the trial month; default in the module docstring.
    lookback_months : int
        Months before ``as_of`` for prior revenue, cost, activity and cases. Default 3.
    compare_with : str
        ``"eligible"`` (default): the treated against every eligible customer not treated in
        the month. ``"other_events"``, for a condition only: against the eligible customers
        with another ``interactions`` row in the month (a very ineffective resolution against
        a case resolved some other way, not against no case at all): customers prone to
        contact you are compared with each other, which the history measures only roughly.

    Returns
    -------
    ObservationalData

    Raises
    ------
    InputError
        Neither or both of intervention and condition; an unknown intervention, condition
        column or confounder (the message lists the valid names); no treated or no untreated
        customers; a window outside the store's periods; an outcome value that is missing.

    Examples
    --------
    >>> from attribution import store, synth
    >>> con = store.connect(":memory:")
    >>> _ = synth.simulate(con, 2000, months=8, seed=1)
    >>> data = observational_frame(con, "proactive_outreach")
    >>> str(data.as_of), data.horizon_months, data.n_treated > 0
    ('2025-05-01', 4, True)
    """
    if (intervention is None) == (condition is None):
        raise InputError("give exactly one of an intervention or a condition, not both or neither")
    if not isinstance(lookback_months, int) or isinstance(lookback_months, bool):
        raise InputError(f"lookback_months must be a whole number, got {lookback_months!r}")
    if lookback_months < 1:
        raise InputError(f"lookback_months must be >= 1, got {lookback_months}")
    one_of("compare_with", compare_with, COMPARE_WITH)
    if compare_with == "other_events" and condition is None:
        raise InputError(
            "compare_with='other_events' compares a condition's events with other events; "
            f"intervention={intervention!r} is not a condition"
        )
    first, last = store.periods(con)
    if first is None or last is None:
        raise InputError("the store has no outcomes: load or simulate data first")
    customer_cols = store.columns(con, "customers")
    chosen = list(DEFAULT_CONFOUNDERS if confounders is None else confounders)
    _check_confounders(chosen, customer_cols)
    notes: list[str] = []

    params: dict = {}
    unit_cost = 0.0
    if intervention is not None:
        treatment_sql, params, unit_cost = _intervention(con, intervention, notes)
        label = f"intervention={intervention}"
    else:
        treatment_sql, params = _condition(con, condition)
        label = f"condition={condition}"
        if compare_with == "eligible":
            notes.append(
                "a condition's customers are compared with every eligible customer without it "
                "that month, most of whom had no interaction at all; how prone a customer is to "
                "contact you shapes both and the history measures it only roughly (on the "
                "simulator this overstates a very ineffective case's cost-to-serve and churn by "
                "about a tenth): compare_with='other_events' (--compare-with other-events) "
                "compares customers who each had an interaction that month"
            )
    trials, horizon = _trials(
        con, treatment_sql, params, label, as_of, horizon_months, first, last,
        condition=condition is not None, lookback=lookback_months, notes=notes,
    )  # fmt: skip
    as_of_d = trials[0]
    chosen = _measurable(con, chosen, defaults=confounders is None, as_of=as_of_d, first=first,
                         notes=notes)  # fmt: skip
    if horizon == 1:
        notes.append(
            "The outcome window is the trial month alone, the month the population is defined "
            "as active in: retention cannot differ between treated and untreated (load later "
            "months to measure it)"
        )
    frame, numeric, categorical = _read(
        con, treatment_sql, params, label, trials, horizon, chosen, customer_cols,
        lookback=lookback_months, first=first, among_events=compare_with == "other_events",
    )  # fmt: skip
    excluded = _excluded_count(con, treatment_sql, params | {"as_of": as_of_d})
    if excluded:
        notes.append(
            f"{excluded} customers treated before {as_of_d:%Y-%m} are left out (their history "
            "is not pre-treatment)"
        )
    if len(trials) > 1:
        chosen = [*chosen, TRIAL]
        categorical.append(TRIAL)
    keep = ["customer_id", "treated", *chosen, "retained", "revenue", "cost_to_serve"]
    frame = frame[list(dict.fromkeys(keep))].reset_index(drop=True)
    return ObservationalData(
        frame=frame,
        treatment=label,
        as_of=as_of_d,
        horizon_months=horizon,
        confounders=chosen,
        numeric=numeric,
        categorical=categorical,
        intervention=intervention,
        unit_cost=unit_cost,
        lookback_months=lookback_months,
        notes=tuple(notes),
        trials=tuple(trials),
        compare_with=compare_with,
    )


def assigned_frame(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    *,
    arm: str,
    control: str,
    start: date,
    horizon_months: int,
    features: Sequence[str] | None = None,
    lookback_months: int = 3,
) -> ObservationalData:
    """One row per customer of a randomized experiment's ``arm`` and ``control``, with the
    pre-period features of :func:`observational_frame` (measured before ``start``) and the
    outcomes over ``horizon_months`` months from it: the rows a per-customer uplift learner fits.

    Customers not active in the start month are left out (a note counts them); ``treated`` is 1
    for ``arm``. Features, their defaults and the outcome definitions are the module
    docstring's confounders and outcomes.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
    experiment_id, arm, control : str
        The experiment and the two arms compared (names checked by the caller).
    start : date
        First day of the experiment's first outcome month.
    horizon_months : int
        Outcome months, counting the start month.
    features : sequence of str, optional
        Default :data:`DEFAULT_CONFOUNDERS` less what the store cannot measure (with a note).
    lookback_months : int
        As in :func:`observational_frame`.

    Returns
    -------
    ObservationalData
        ``confounders`` are the features; ``as_of`` is ``start``.
    """
    first, _ = store.periods(con)
    if first is None:
        raise InputError("the store has no outcomes: load or simulate data first")
    customer_cols = store.columns(con, "customers")
    chosen = list(DEFAULT_CONFOUNDERS if features is None else features)
    _check_confounders(chosen, customer_cols)
    notes: list[str] = []
    chosen = _measurable(con, chosen, defaults=features is None, as_of=start, first=first,
                         notes=notes)  # fmt: skip
    params = {"experiment_id": experiment_id, "arm": arm, "control": control, "start": start}
    label = f"experiment {experiment_id}, arm {arm} against {control}"
    frame, numeric, categorical = _read(
        con, _ARM_TREATMENT, params, label, [start], horizon_months, chosen, customer_cols,
        lookback=lookback_months, first=first, population=_ARM_POPULATION,
    )  # fmt: skip
    ((assigned,),) = con.execute(
        "SELECT count(*) FROM assignments WHERE experiment_id = ? AND arm IN (?, ?)",
        [experiment_id, arm, control],
    ).fetchall()
    if assigned > len(frame):
        notes.append(
            f"{assigned - len(frame):,} of the {assigned:,} customers assigned to {arm} or "
            f"{control} were not active in {start:%Y-%m} and are left out"
        )
    keep = ["customer_id", "treated", *chosen, "retained", "revenue", "cost_to_serve"]
    return ObservationalData(
        frame=frame[list(dict.fromkeys(keep))].reset_index(drop=True),
        treatment=f"arm={arm}",
        as_of=start,
        horizon_months=horizon_months,
        confounders=chosen,
        numeric=numeric,
        categorical=categorical,
        lookback_months=lookback_months,
        notes=tuple(notes),
        trials=(start,),
    )


def active_frame(
    con: duckdb.DuckDBPyConnection,
    month: str | date,
    features: Sequence[str],
    *,
    lookback_months: int = 3,
) -> pd.DataFrame:
    """One row per customer active in ``month``, with ``features`` measured before it exactly
    as :func:`assigned_frame` measures them before an experiment's start: the rows a fitted
    uplift learner scores when it picks customers beyond its experiment's own.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
    month : str or date
        A month of the store (``YYYY-MM``): the decision month.
    features : sequence of str
        Names as for :func:`assigned_frame`.
    lookback_months : int
        As in :func:`observational_frame`.

    Returns
    -------
    pandas.DataFrame
        ``customer_id`` and the features (numeric ones float, categorical ones text).

    Raises
    ------
    InputError
        A month outside the store's outcome periods, an unknown feature, a history feature
        without history before ``month``, no customer active in it.
    """
    first, last = store.periods(con)
    if first is None:
        raise InputError("the store has no outcomes: load or simulate data first")
    start = store.parse_period(month)
    _horizon(start, 1, first, last)
    customer_cols = store.columns(con, "customers")
    chosen = _measurable(con, list(features), defaults=False, as_of=start, first=first,
                         notes=[])  # fmt: skip
    frame, _, _ = _read(
        con, _NO_TREATMENT, {}, f"customers active in {start:%Y-%m}", [start], 1, chosen,
        customer_cols, lookback=lookback_months, first=first, compare=False,
    )  # fmt: skip
    return frame[["customer_id", *chosen]].reset_index(drop=True)


def _read(
    con, treatment_sql, params, label, trials, horizon, chosen, customer_cols, *, lookback,
    first, population: str = "", compare: bool = True, among_events: bool = False,
) -> tuple[pd.DataFrame, list[str], list[str]]:  # fmt: skip
    """Run :data:`_FRAME_SQL` for these trials and type its columns: the frame and which of
    ``chosen`` are numeric and categorical. ``population``, a query of the customer ids to
    keep (it may use the bound parameters), restricts the rows before the windows run;
    ``compare`` False skips the check that each trial has treated and untreated customers;
    ``among_events`` keeps only customer-trials with an interactions row in the month."""
    extra = _check_confounders(chosen, customer_cols)
    params = params | {
        "trials": list(trials),
        "lookback": lookback,
        "history": HISTORY_MONTHS,
        "follow": horizon - 1,
        "window_last": add_months(trials[-1], horizon - 1),
        "first_period": first,
        "bad": list(BAD_RESOLUTIONS),
    }
    restrict = f" AND customer_id IN ({population})" if population else ""
    sql = _FRAME_SQL.format(
        treatment=treatment_sql,
        customer_columns="".join(f"c.{store.quote_identifier(c)}, " for c in extra),
        restrict=restrict,
        among=_AMONG_EVENTS if among_events else "",
    )
    frame = con.execute(sql, _used(sql, params)).df()
    _check_frame(con, frame, label, trials, horizon, compare=compare)
    numeric, categorical = [], []
    for name in chosen:
        if confounder_kind(name, customer_cols) == "numeric":
            frame[name] = frame[name].astype(float)
            if frame[name].isna().any():
                bad = frame.loc[frame[name].isna(), "customer_id"].iloc[0]
                raise InputError(
                    f"customers.{name}: missing value for customer {bad}; a numeric confounder "
                    "needs a value for every customer"
                )
            numeric.append(name)
        else:
            frame[name] = frame[name].astype("string").fillna(_MISSING).astype(str)
            categorical.append(name)
    frame["treated"] = frame["treated"].astype(int)
    frame["retained"] = frame["retained"].astype(int)
    return frame, numeric, categorical


def _trials(
    con, treatment_sql, params, label, as_of, horizon_months, first, last, *, condition,
    lookback, notes,
) -> tuple[list[date], int]:  # fmt: skip
    """The trial months and the follow-up (months, counting the trial month).

    With ``as_of``: one trial at that month, follow-up to the last period by default. Without:
    a trial per month in which customers were first treated (for a condition, first had the
    event) from the first such month that has history before it; the follow-up is, by default,
    the months from the last such month to the last period, at least half of those from the
    first; months whose follow-up would run past the last period make no trial (a note counts
    their treated customers, who are untreated in the earlier trials).
    """
    if as_of is not None:
        month = store.parse_period(as_of)
        return [month], _horizon(month, horizon_months, first, last)
    sql = _TREATMENT_MONTHS_SQL.format(treatment=treatment_sql)
    rows = con.execute(sql, _used(sql, params)).fetchall()
    starts = [(store.parse_period(m), int(k)) for m, k in rows]
    earliest = add_months(first, lookback if condition else 0)
    starts = [(m, k) for m, k in starts if earliest <= m <= last]
    if not starts:
        raise InputError(
            f"{label}: no customer is first treated between {earliest:%Y-%m} and {last:%Y-%m} "
            "(the store's outcome periods"
            + (f", after {lookback} month(s) of history for a condition)" if condition else ")")
        )
    if horizon_months is None:
        horizon = max(
            window_months(starts[-1][0], last), -(-window_months(starts[0][0], last) // 2)
        )
    else:
        horizon = _horizon(starts[0][0], horizon_months, first, last)
    fits = [m for m, _ in starts if window_months(m, last) >= horizon]
    left = sum(k for m, k in starts if window_months(m, last) < horizon)
    if left:
        notes.append(
            f"{left:,} customers first treated after {fits[-1]:%Y-%m} make no trial of their "
            f"own (fewer than {horizon} months of follow-up before {last:%Y-%m}); they count as "
            "untreated in the earlier trials"
        )
    return fits, horizon


def confounder_kind(name: str, customer_cols: dict[str, str]) -> str:
    """``"numeric"`` or ``"categorical"``: derived confounders by definition, ``customers``
    columns by their DuckDB type (``customer_cols``: name -> type, see ``store.columns``)."""
    kind = DERIVED_CONFOUNDERS.get(name)
    if kind is not None:
        return kind
    return "numeric" if store.is_numeric_type(customer_cols[name]) else "categorical"


def valid_confounders(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every name :func:`observational_frame` accepts as a confounder."""
    return [*DERIVED_CONFOUNDERS, *store.segment_columns(con)]


def _check_confounders(chosen: list[str], customer_cols: dict[str, str]) -> list[str]:
    """Validate confounder names; return the customers columns to select."""
    valid = [*DERIVED_CONFOUNDERS, *(c for c in customer_cols if c not in _NOT_CONFOUNDERS)]
    if not chosen:
        raise InputError("confounders: give at least one (or leave them out for the defaults)")
    for name in chosen:
        if not isinstance(name, str) or name not in valid:
            raise InputError(
                f"confounder {name!r} is not a column; valid confounders: {', '.join(valid)}"
            )
    if len(set(chosen)) != len(chosen):
        raise InputError(f"confounders: a name is given twice in {chosen}")
    return [c for c in chosen if c not in DERIVED_CONFOUNDERS]


_NOT_CONFOUNDERS = ("customer_id", "signup_date")


def check_intervention(
    con: duckdb.DuckDBPyConnection, intervention: str, *, where: str = ""
) -> None:
    """Raise an InputError naming the known interventions when ``intervention`` has no rows.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
    intervention : str
    where : str
        Prefix of the message naming the setting (e.g. ``"observational 'q': "``).
    """
    ((n,),) = con.execute(
        "SELECT count(*) FROM interventions WHERE intervention = ?", [intervention]
    ).fetchall()
    if n:
        return
    sql = "SELECT DISTINCT intervention FROM interventions ORDER BY 1"
    known = [r[0] for r in con.execute(sql).fetchall()]
    raise InputError(
        f"{where}intervention {intervention!r} has no rows in interventions; known: {known}"
    )


def _intervention(con, intervention: str, notes: list[str]):
    check_intervention(con, intervention)
    rows = con.execute(
        "SELECT count(*) FILTER (WHERE experiment_id IS NULL), count(*) "
        "FROM interventions WHERE intervention = ?",
        [intervention],
    ).fetchone()
    use_randomized = rows[0] == 0
    if use_randomized:
        notes.append(
            f"every {intervention} row belongs to an experiment: the randomized rows are used "
            "as observational data (the experiment's readout is the better estimate)"
        )
    (unit_cost,) = con.execute(
        "SELECT avg(unit_cost) FROM interventions "
        "WHERE intervention = ? AND (experiment_id IS NULL OR ?)",
        [intervention, use_randomized],
    ).fetchone()
    params = {"intervention": intervention, "use_randomized": use_randomized}
    return _INTERVENTION_TREATMENT, params, float(unit_cost or 0.0)


def _condition(con, condition: str):
    if not isinstance(condition, str) or "=" not in condition:
        raise InputError(
            f"condition {condition!r} must be column=value on interactions, e.g. "
            "resolution=very_effective"
        )
    column, _, text = condition.partition("=")
    column = column.strip()
    cols = [c for c in store.columns(con, "interactions") if c not in ("customer_id", "ts")]
    if column not in cols:
        raise InputError(
            f"condition {condition!r}: {column!r} is not an interactions column; valid: "
            f"{', '.join(cols)}"
        )
    values = [v.strip() for v in text.split("|") if v.strip()]
    if not values:
        raise InputError(f"condition {condition!r}: no value after '='")
    sql = _CONDITION_TREATMENT.format(column=store.quote_identifier(column))
    return sql, {"values": values}


def _measurable(
    con, chosen: list[str], *, defaults: bool, as_of: date, first: date, notes: list[str]
) -> list[str]:
    """The confounders the store can measure at ``as_of``.

    Without an outcome month before ``as_of`` the history confounders
    (:data:`HISTORY_CONFOUNDERS`) cannot be measured: left out of the defaults with a note, an
    error when asked for by name. Default customer columns without any value (``tier`` in a
    store that has none) are left out with a note.
    """
    keep = list(chosen)
    if as_of <= first:
        needs = [c for c in keep if c in HISTORY_CONFOUNDERS]
        if needs and not defaults:
            raise InputError(
                f"as_of {as_of:%Y-%m} leaves no history before it (the first outcome period is "
                f"{first:%Y-%m}): confounders {', '.join(needs)} are measured over earlier "
                "months; leave them out (customer columns and tenure_months need no history) "
                "or choose a later as_of"
            )
        if needs:
            keep = [c for c in keep if c not in HISTORY_CONFOUNDERS]
            notes.append(
                f"No outcome months before {as_of:%Y-%m}: the history confounders "
                f"({', '.join(needs)}) are left out of the defaults; the adjustment is for "
                "customer attributes and tenure only, so hidden differences in past spend are "
                "not adjusted for"
            )
    if defaults:
        profile = store.segment_profile(con).set_index("column")
        empty = [c for c in keep if c in profile.index and profile.at[c, "values"] == 0]
        if empty:
            keep = [c for c in keep if c not in empty]
            notes.append(f"No {', '.join(empty)} in this store: left out of the confounders")
    if not keep:
        raise InputError(
            f"no confounder can be measured at {as_of:%Y-%m}: name customer columns with "
            "--confounders, or choose a later as_of with history before it"
        )
    return keep


def _horizon(as_of: date, horizon_months: int | None, first: date, last: date) -> int:
    if as_of < first:
        raise InputError(
            f"as_of {as_of:%Y-%m} is before the first outcome period in the store ({first:%Y-%m})"
        )
    available = window_months(as_of, last)
    if available < 1:
        raise InputError(
            f"as_of {as_of:%Y-%m} is after the last outcome period in the store ({last:%Y-%m})"
        )
    if horizon_months is None:
        return available
    if not isinstance(horizon_months, int) or isinstance(horizon_months, bool):
        raise InputError(f"horizon_months must be a whole number, got {horizon_months!r}")
    if not 1 <= horizon_months <= available:
        raise InputError(
            f"horizon_months must be 1 to {available} (as_of {as_of:%Y-%m} to the last outcome "
            f"period {last:%Y-%m}), got {horizon_months}"
        )
    return horizon_months


def _excluded_count(con, treatment_sql: str, params: dict) -> int:
    sql = f"""
        WITH treatment AS ({treatment_sql})
        SELECT count(*) FROM outcomes o JOIN treatment t USING (customer_id)
        WHERE o.period = $as_of AND o.active AND t.first_ts < $as_of
    """
    return int(con.execute(sql, _used(sql, params)).fetchone()[0])


def _check_frame(
    con, frame: pd.DataFrame, label: str, trials: list[date], horizon: int, *, compare: bool = True
) -> None:
    if frame.empty:
        raise InputError(
            f"no customers are active in {trials[0]:%Y-%m}"
            + (f" or the other trial months to {trials[-1]:%Y-%m}" if len(trials) > 1 else "")
        )
    nulls = frame["null_rows"].fillna(0) > 0
    if nulls.any():
        customer = frame.loc[nulls, "customer_id"].iloc[0]
        start = frame.loc[nulls, "period"].iloc[0]
        row = con.execute(
            _NULL_ROW_SQL, [customer, start, add_months(store.parse_period(start), horizon - 1)]
        ).fetchone()
        raise InputError(
            f"outcomes.{row[2]} is missing (null) for customer {customer} in period "
            f"{row[1]:%Y-%m}; {frame.loc[nulls, 'customer_id'].nunique()} customers have missing "
            "outcome values in the window: fill them (0 revenue and cost for inactive months) "
            "before attributing"
        )
    for col in ("revenue", "cost_to_serve"):
        frame[col] = frame[col].fillna(0.0)
    frame["retained"] = frame["retained"].fillna(0)
    if not compare:
        return
    for month, rows in frame.groupby("trial_month", sort=True):
        n_treated = int(rows["treated"].sum())
        where = f"{label}, trial month {month}" if len(trials) > 1 else label
        if n_treated == 0:
            raise InputError(
                f"{where}: no treated customers among the {len(rows)} active in {month}; "
                "nothing to compare"
            )
        if n_treated == len(rows):
            raise InputError(
                f"{where}: no untreated customers (all {len(rows)} eligible in {month} are "
                "treated); there is no comparison group"
            )


def _used(sql: str, params: dict) -> dict:
    """The named parameters that a statement uses (DuckDB rejects unused ones)."""
    return {k: v for k, v in params.items() if f"${k}" in sql}
