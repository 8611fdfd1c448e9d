"""Beyond the experiments: score the customers of a decision month and pick whom to treat.

A randomized experiment's learner ranks its own customers out of fold (:func:`choose`); the
question a CX team asks next is about the customers it has now. :func:`population_rows` reads
the customers active in a month with the features the learners were fitted on, measured over
the months before it exactly as the experiments' rows were measured before their start
(:func:`attribution.observational.active_frame`). :func:`score_population` scores them with
each intervention's learner fitted on every customer of its experiment and picks at most one
intervention per customer within the budget and capacities, by the same greedy rule.

Two rules keep the numbers the experiments' evidence:

- **Support.** A customer is scored for an intervention only when every one of their features
  lies where the experiment had customers: categories it saw, numbers within the range of its
  customers. Premium support tested on gold and platinum customers says nothing about bronze
  ones; a recovery gift tested after a badly resolved case says nothing about customers
  without one. An eligibility rule that no feature records (e.g. "a bad case last month", when
  the features count the last three months) is the caller's to apply to the rows.
- **Group evidence.** A customer's expected net value is their learner's prediction (less the
  unit cost), but what the policy is said to be worth comes from the experiment: the customer
  falls in one of its groups (the decile of out-of-fold expected net value whose bounds hold
  the prediction; for a learner that did not beat random and fell back to segments,
  :func:`attribution.targeting.learners.segment_level`, the segment) and carries the mean
  doubly robust score of the experiment's customers in that group, with its normal interval
  and P(> 0). The total is the sum over picked customers of their group's mean, with the
  normal interval of that sum (groups are disjoint sets of the experiment's customers); where
  the experiment's effect on churn is held after the window, intervals also draw a point of
  the after-window span (:func:`attribution.targeting.policy.span_interval`). This
  assumes that customers in support respond as the experiment's customers in their group did
  (the months between the experiment and the decision month changed nothing that matters);
  the output says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from attribution import observational, store
from attribution.errors import InputError
from attribution.settings import INTERVAL, IntervalSetting
from attribution.targeting.data import TargetingData
from attribution.targeting.learners import UpliftFit
from attribution.targeting.policy import check_budget, greedy, span_interval

__all__ = [
    "PICK_COLUMNS",
    "PopulationPolicy",
    "check_month",
    "in_support",
    "population_rows",
    "score_population",
]

#: Columns of :attr:`PopulationPolicy.picks` (the policy file of ``cx target --score-month``).
PICK_COLUMNS = ("customer_id", "intervention", "experiment_id", "expected", "group",
                "group_estimate", "lo", "hi", "p_positive", "cost")  # fmt: skip
_TRANSPORT = (
    "Customers outside the experiments carry the evidence of the experiment's customers with "
    "the same predicted net value (their decile or segment group): this assumes they respond "
    "alike"
)


@dataclass(frozen=True)
class PopulationPolicy:
    """Who among a month's customers gets which intervention, and what that is worth.

    Attributes
    ----------
    month : str
        The decision month (``YYYY-MM``).
    picks : pandas.DataFrame
        :data:`PICK_COLUMNS`: ``expected`` is the learner's prediction less the unit cost;
        ``group`` ("decile 1" .. "decile 10", or "tier = gold" for a segment-level fit) and
        its ``group_estimate``, ``lo``, ``hi``, ``p_positive`` from the experiment's customers.
    total : dict
        ``mean``, ``lo``, ``hi``, ``p_positive`` of the picked customers' total incremental
        net value, ``customers``, ``cost``.
    coverage : pandas.DataFrame
        Per intervention: ``customers`` scored, ``in_support``, ``expected_to_gain`` (in
        support, expected net value > 0), ``picked``.
    budget : float
    notes : tuple of str
    """

    month: str
    picks: pd.DataFrame
    total: dict
    coverage: pd.DataFrame
    budget: float
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {
            "month": self.month,
            "total": self.total,
            "coverage": self.coverage.to_dict(orient="records"),
            "budget": None if np.isinf(self.budget) else self.budget,
            "customers_picked": len(self.picks),
            "notes": list(self.notes),
        }

    def describe(self) -> str:
        t = self.total
        lines = [f"Customers active in {self.month}, scored by the experiments' learners:"]
        for r in self.coverage.itertuples(index=False):
            lines.append(
                f"  {r.intervention:<18} {r.customers:>9,} scored, {r.in_support:>9,} in the "
                f"experiment's support, {r.expected_to_gain:>9,} expected to gain, "
                f"{r.picked:>9,} picked"
            )
        lines.append(
            f"  targeted: {t['customers']:,} customers, cost {t['cost']:,.0f}: total incremental "
            f"net value {t['mean']:,.0f} [{t['lo']:,.0f}, {t['hi']:,.0f}], "
            f"P(>0) = {t['p_positive']:.2f}"
        )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def check_month(con: duckdb.DuckDBPyConnection, month: str) -> date:
    """The decision month's first day (``"latest"``: the store's last month); an error unless
    it is one of the store's months."""
    first, last = store.periods(con)
    if month == "latest" and last is not None:
        return last
    start = store.parse_period(month)
    if first is None or not first <= start <= last:
        where = "the store has no outcomes" if first is None else (
            f"the store's months are {first:%Y-%m} to {last:%Y-%m}")  # fmt: skip
        raise InputError(f"score month {start:%Y-%m} is not a month of the store: {where}")
    return start


def population_rows(
    con: duckdb.DuckDBPyConnection, month: str, rows: Sequence[TargetingData]
) -> pd.DataFrame:
    """The customers active in ``month`` with every feature any experiment's ``rows`` use
    (:func:`attribution.targeting.experiment_rows`, or the ``data`` of the fits), measured
    before the month as the experiments' rows were (:func:`observational.active_frame`)."""
    if not rows:
        raise InputError("give at least one experiment's rows to score customers with")
    features = list(dict.fromkeys(name for d in rows for name in d.features))
    return observational.active_frame(con, month, features)


def in_support(fit: UpliftFit, frame: pd.DataFrame) -> np.ndarray:
    """Which rows of ``frame`` lie where ``fit``'s experiment had customers: each categorical
    feature at a level it saw, each numeric feature within its customers' range."""
    return _inside(_outside(fit, frame), len(frame))


def _inside(outside: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Rows outside no feature's support (``outside``: :func:`_outside`'s masks)."""
    keep = np.ones(n, dtype=bool)
    for mask in outside.values():
        keep &= ~mask
    return keep


def _outside(fit: UpliftFit, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per feature, the rows of ``frame`` outside ``fit``'s experiment's customers."""
    seen = fit.data.frame
    out = {name: ~frame[name].isin(seen[name].unique()).to_numpy()
           for name in fit.data.categorical}  # fmt: skip
    for name in fit.data.numeric:
        values = frame[name].to_numpy(float)
        out[name] = (values < seen[name].min()) | (values > seen[name].max())
    return out


def _why_outside(fit: UpliftFit, outside: dict[str, np.ndarray]) -> str:
    """The features that put customers outside the support (``outside``: :func:`_outside`'s
    masks), most first, in words."""
    counts = {k: int(v.sum()) for k, v in outside.items() if v.any()}
    parts = []
    for name, n in sorted(counts.items(), key=lambda kv: -kv[1])[:3]:
        seen = fit.data.frame[name]
        where = (f"outside {seen.min():.4g}-{seen.max():.4g}" if name in fit.data.numeric
                 else "at a level it did not see")  # fmt: skip
        parts.append(f"{name} {where}: {n:,}")
    return "; ".join(parts)


def _evidence(fit: UpliftFit, frame: pd.DataFrame, expected: np.ndarray):
    """The group of each row of ``frame`` and each group's evidence from the experiment.

    Groups are deciles of out-of-fold expected net value (a row falls in a decile by its
    bounds), or for a :func:`segment_level` fit the segments themselves (its deciles would
    split a segment's tied customers at random). Evidence per group: the mean doubly robust
    score of the experiment's customers in it and its standard error.
    """
    own = fit.data.frame
    if fit.segment_values is not None:
        name = fit.segment_values.index.name
        if name is None:
            return np.full(len(frame), "everyone"), _table(np.full(len(own), "everyone"), fit)
        return (f"{name} = " + frame[name].astype(str)).to_numpy(), _table(
            (f"{name} = " + own[name].astype(str)).to_numpy(), fit
        )
    deciles = fit.deciles
    lows = np.array([fit.oof[deciles == d].min() for d in range(1, 10)])
    new = 1 + (expected[:, None] < lows[None, :]).sum(axis=1)
    label = np.char.add("decile ", new.astype(str)) if len(new) else np.array([], dtype=str)
    return label, _table(np.char.add("decile ", deciles.astype(str)), fit)


def _table(labels: np.ndarray, fit: UpliftFit) -> pd.DataFrame:
    """Per group: the mean score ``estimated``, its standard error ``se``, and the means at
    the two ends of the after-window span ``end_lo``, ``end_hi`` (the mean itself without
    one)."""
    stats_ = pd.Series(fit.scores).groupby(labels).agg(["mean", "std", "count"])
    table = pd.DataFrame({"estimated": stats_["mean"],
                          "se": stats_["std"] / np.sqrt(stats_["count"])})  # fmt: skip
    ends = fit.span_scores or (fit.scores, fit.scores)
    for name, e in zip(("end_lo", "end_hi"), ends, strict=True):
        table[name] = pd.Series(e).groupby(labels).mean()
    table["span"] = fit.span_scores is not None
    return table


def score_population(
    fits: Sequence[UpliftFit],
    frame: pd.DataFrame,
    *,
    month: str,
    budget: float | None = None,
    capacity: Mapping[str, int] | None = None,
    setting: IntervalSetting = INTERVAL,
) -> PopulationPolicy:
    """Score ``frame``'s customers with each fit and pick at most one intervention each.

    Parameters
    ----------
    fits : sequence of UpliftFit
        Net-value fits, one per intervention (as :func:`attribution.targeting.choose` takes).
    frame : pandas.DataFrame
        :func:`population_rows`: ``customer_id`` and the fits' features.
    month : str
        The decision month, for the output.
    budget, capacity
        As for :func:`attribution.targeting.choose`.
    setting : IntervalSetting

    Returns
    -------
    PopulationPolicy
    """
    fits = list(fits)
    if any(f.target != "net_value" for f in fits):
        raise InputError("scoring customers for a policy needs net-value fits")
    budget = check_budget(budget, [f.data.unit_cost for f in fits])
    capacity = dict(capacity or {})
    options, coverage, tables, why = [], [], [], []
    for f in fits:
        name = f.data.intervention
        outside = _outside(f, frame)
        inside = _inside(outside, len(frame))
        why.append(_why_outside(f, outside) if not inside.all() else "")
        expected = np.full(len(frame), np.nan)
        if inside.any():
            expected[inside] = f.predict(frame.loc[inside])
        labels, table = _evidence(f, frame.loc[inside], expected[inside])
        tables.append(table.assign(intervention=name).set_index("intervention", append=True))
        rows = frame.loc[inside, ["customer_id"]].assign(
            intervention=name, experiment_id=f.data.experiment_id,
            expected=expected[inside], cost=f.data.unit_cost, group=labels,
        )  # fmt: skip
        options.append(rows)
        coverage.append({"intervention": name, "customers": len(frame),
                         "in_support": int(inside.sum()),
                         "expected_to_gain": int((expected[inside] > 0).sum())})  # fmt: skip
    options = pd.concat(options, ignore_index=True)
    picked = greedy(options, float(budget), capacity)
    groups = pd.concat(tables).swaplevel()  # (intervention, group)
    bounds = [  # each group's interval and P(> 0)
        span_interval(g.estimated, g.se, [(g.end_lo, g.end_hi)] if g.span else [], setting)
        for g in groups.itertuples()
    ]
    groups[["lo", "hi", "p_positive"]] = np.array(bounds, dtype=float).reshape(-1, 3)
    evidence = groups.reindex(pd.MultiIndex.from_arrays([picked["intervention"], picked["group"]]))
    picks = picked.assign(
        group_estimate=evidence["estimated"].to_numpy(), lo=evidence["lo"].to_numpy(),
        hi=evidence["hi"].to_numpy(), p_positive=evidence["p_positive"].to_numpy(),
    )  # fmt: skip
    # each group's estimate counts once per picked customer in it: n_g x mean_g, var n_g^2 se_g^2;
    # one point of the span per intervention
    n = picked.groupby(["intervention", "group"]).size()
    chosen = groups.reindex(n.index)
    mean = float((n * chosen["estimated"]).sum())
    sd = float(np.sqrt((n**2 * chosen["se"] ** 2).sum()))
    ends = (chosen[["end_lo", "end_hi"]].mul(n, axis=0))[chosen["span"].astype(bool)]
    span = [tuple(map(float, row)) for row in ends.groupby(level=0).sum().to_numpy()]
    lo, hi, p = span_interval(mean, sd, span, setting)
    total = {"customers": len(picks), "cost": float(picks["cost"].sum()), "mean": mean,
             "lo": lo, "hi": hi, "p_positive": p}  # fmt: skip
    counts = picks["intervention"].value_counts()
    coverage = pd.DataFrame(coverage).assign(
        picked=lambda c: c["intervention"].map(counts).fillna(0).astype(int)
    )
    notes = [_TRANSPORT]
    for because, r in zip(why, coverage.itertuples(index=False), strict=True):
        if r.in_support < r.customers:
            notes.append(
                f"{r.intervention}: {r.customers - r.in_support:,} of {r.customers:,} customers "
                "lie outside its experiment's customers and are not scored for it (by feature, "
                f"a customer may count under several: {because})"
            )
    if picks.empty:
        notes.append("No customer in support is expected to gain from any intervention")
    picks = picks.sort_values("expected", ascending=False, kind="stable")
    return PopulationPolicy(
        month=month,
        picks=picks[list(PICK_COLUMNS)].reset_index(drop=True),
        total=total,
        coverage=coverage,
        budget=float(budget),
        notes=tuple(notes),
    )
