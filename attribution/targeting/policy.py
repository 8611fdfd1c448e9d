"""Who gets which intervention under a budget, and what that policy is worth, with an interval.

:func:`choose` takes one net-value :class:`~attribution.targeting.learners.UpliftFit` per
intervention (each from its own randomized experiment) and gives each customer at most one
intervention, maximising the expected incremental net value (the out-of-fold uplift) subject to
the total cost of the interventions given (unit cost per customer) staying within ``budget``, and
optionally to a ``capacity``: the most customers an intervention can take (agent hours or desk
seats, in customers). The rule is greedy by expected net value per unit of cost, among options
expected to gain: the textbook approximation of this multiple-choice knapsack, within one
option's value of the optimum, and it keeps the policy a ranking a reader can follow.

The policy's value is estimated on the same customers with their doubly robust scores
(:func:`attribution.targeting.learners.dr_scores`), which are out of fold like the uplift the
choice used, so the estimate does not reward the learner for fitting the noise it chose on.
Its interval resamples customers within each experiment's arms. Beside it, on the same
resamples: treat-all (every customer of every experiment gets that experiment's
intervention, budget ignored), treat-none (0) and the best single segment rule (the one
intervention and one value of one categorical feature, e.g. "the recovery gift for platinum
customers", with the highest estimated value within the budget).

Per group of customers (intervention x decile of expected net value), the table ``groups`` gives
the estimated mean incremental net value with its interval and P(> 0): how sure the evidence is
about each slice the ranking puts where it does.

Where an experiment's design record holds its effect on churn after the window, each customer's
value after the window lies on a span (:func:`attribution.targeting.learners.customer_value`);
estimates are at its middle, and every interval draws a point of the span (linear between the
doubly robust scores at its two ends), one per experiment and resample, as the readout does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from attribution import cellmodel
from attribution.errors import InputError
from attribution.settings import INTERVAL, IntervalSetting
from attribution.targeting.learners import UpliftFit

__all__ = ["Policy", "check_budget", "choose", "greedy", "span_interval"]


@dataclass(frozen=True)
class Policy:
    """A budgeted targeting policy and its estimated worth.

    Attributes
    ----------
    picks : pandas.DataFrame
        One row per customer given an intervention: ``customer_id``, ``intervention``,
        ``experiment_id``, ``expected`` (out-of-fold incremental net value), ``cost``.
    comparison : pandas.DataFrame
        One row per policy (``policy``: "targeted", "treat all", "treat none", "best segment
        rule"): ``rule`` in words, ``customers``, ``cost``, and the total incremental net value
        ``mean``, ``lo``, ``hi``, ``p_positive``.
    groups : pandas.DataFrame
        Per intervention and decile of expected net value (1 = highest): ``customers``,
        ``expected``, ``estimated`` (mean DR score), ``lo``, ``hi``, ``p_positive``.
    members : pandas.DataFrame
        ``experiment_id``, ``customer_id`` and one boolean column per policy of
        ``comparison``: whom each policy treats (to audit it, or to check it against a truth).
    budget : float
    notes : tuple of str
    """

    picks: pd.DataFrame
    comparison: pd.DataFrame
    groups: pd.DataFrame
    members: pd.DataFrame
    budget: float
    notes: tuple[str, ...] = field(default=())

    def value(self, policy: str = "targeted") -> dict:
        """``mean``, ``lo``, ``hi``, ``p_positive`` of one policy's total incremental net value."""
        row = self.comparison.set_index("policy").loc[policy]
        return {k: float(row[k]) for k in ("mean", "lo", "hi", "p_positive")}


def check_budget(budget: float | None, unit_costs: Sequence[float]) -> float:
    """The budget as a number (no limit: infinity); an error when it cannot pay for one
    customer of the cheapest intervention."""
    if budget is None:
        return np.inf
    cheapest = min(unit_costs)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or np.isnan(budget):
        raise InputError(f"budget must be an amount, got {budget!r}")
    if budget < cheapest:
        raise InputError(
            f"budget {budget:g} is below the cheapest intervention's unit cost ({cheapest:g}): "
            "it cannot pay for one customer"
        )
    return float(budget)


def _candidates(fits: Sequence[UpliftFit]) -> pd.DataFrame:
    parts = []
    for k, fit in enumerate(fits):
        d = fit.data
        parts.append(
            pd.DataFrame(
                {"fit": k, "row": np.arange(len(d.frame)), "customer_id": d.frame["customer_id"],
                 "intervention": d.intervention, "experiment_id": d.experiment_id,
                 "expected": fit.oof, "cost": d.unit_cost}
            )
        )  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def greedy(options: pd.DataFrame, budget: float, capacity: Mapping[str, int]) -> pd.DataFrame:
    """At most one option per customer, within budget and capacity, best value per cost first.

    ``options`` has one row per (customer, intervention) with ``customer_id``,
    ``intervention``, ``expected`` and ``cost``; the rows kept are returned.
    """
    gain = options[options["expected"] > 0]
    ratio = gain["expected"] / gain["cost"].where(gain["cost"] > 0, np.nan)
    order = gain.assign(_r=ratio.fillna(np.inf)).sort_values(
        ["_r", "expected", "customer_id"], ascending=[False, False, True], kind="stable"
    )
    spent, taken, seen, keep = 0.0, dict.fromkeys(capacity, 0), set(), []
    for idx, cid, name, cost in zip(
        order.index, order["customer_id"], order["intervention"], order["cost"], strict=True
    ):
        if cid in seen or spent + cost > budget:
            continue
        if name in capacity and taken[name] >= capacity[name]:
            continue
        seen.add(cid)
        spent += cost
        if name in taken:
            taken[name] += 1
        keep.append(idx)
    return options.loc[keep]


def _segment_rules(fits: Sequence[UpliftFit], budget: float):
    """Every (intervention, feature = value) rule affordable within the budget, as masks."""
    for k, fit in enumerate(fits):
        d = fit.data
        for name in d.categorical:
            for level, rows in d.frame.groupby(name, sort=True).groups.items():
                mask = np.zeros(len(d.frame), dtype=bool)
                mask[np.asarray(d.frame.index.get_indexer(rows))] = True
                if mask.sum() * d.unit_cost <= budget:
                    yield f"{d.intervention} for {name} = {level}", k, mask


def choose(
    fits: Sequence[UpliftFit],
    budget: float | None = None,
    *,
    capacity: Mapping[str, int] | None = None,
    resamples: int = 200,
    seed: int = 0,
    setting: IntervalSetting = INTERVAL,
) -> Policy:
    """Choose who gets which intervention within ``budget`` and estimate what it is worth.

    Parameters
    ----------
    fits : sequence of UpliftFit
        Net-value fits (:func:`attribution.targeting.fit_uplift` with ``target="net_value"``),
        one per intervention.
    budget : float, optional
        Most to spend on the interventions' unit costs, in the money's currency; default no
        limit (everyone expected to gain gets their best intervention).
    capacity : mapping of str to int, optional
        Most customers per intervention (by intervention name).
    resamples : int
        Bootstrap resamples for the intervals (>= 20).
    seed : int
    setting : IntervalSetting

    Returns
    -------
    Policy

    Raises
    ------
    InputError
        No fits, a fit of another target, two fits of one intervention, a budget below the
        cheapest intervention's unit cost, an unknown intervention or a negative number in
        ``capacity``.
    """
    fits = list(fits)
    if not fits:
        raise InputError("choose needs at least one net-value uplift fit")
    names = [f.data.intervention for f in fits]
    for f in fits:
        if f.target != "net_value":
            raise InputError(
                f"the {f.data.intervention} fit is of {f.target}; a budgeted policy needs "
                "net-value fits (fit_uplift(..., target='net_value'))"
            )
    if len(set(names)) != len(names):
        raise InputError(f"one fit per intervention, got {names}")
    budget = check_budget(budget, [f.data.unit_cost for f in fits])
    capacity = dict(capacity or {})
    for name, limit in capacity.items():
        if name not in names:
            raise InputError(f"capacity names {name!r}, not one of the interventions {names}")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise InputError(f"capacity of {name} must be a whole number >= 0, got {limit!r}")
    if not isinstance(resamples, int) or isinstance(resamples, bool) or resamples < 20:
        raise InputError(f"resamples must be a whole number >= 20, got {resamples!r}")

    options = _candidates(fits)
    picked = greedy(options, float(budget), capacity)
    masks = {"targeted": [np.zeros(len(f.oof), dtype=bool) for f in fits]}
    for k, rows in picked.groupby("fit")["row"]:
        masks["targeted"][k][rows.to_numpy()] = True
    masks["treat all"] = [np.ones(len(f.oof), dtype=bool) for f in fits]
    masks["treat none"] = [np.zeros(len(f.oof), dtype=bool) for f in fits]
    within = "no budget limit" if np.isinf(budget) else f"within {budget:,.0f}"
    rules = {"targeted": f"greedy by expected net value per cost, {within}",
             "treat all": "every customer of each experiment gets its intervention",
             "treat none": "nobody"}  # fmt: skip
    best = max(
        _segment_rules(fits, float(budget)),
        key=lambda r: float(fits[r[1]].scores[r[2]].sum()),
        default=None,
    )
    if best is not None:
        label, k, mask = best
        masks["best segment rule"] = [
            mask if j == k else np.zeros(len(f.oof), dtype=bool) for j, f in enumerate(fits)
        ]
        rules["best segment rule"] = label

    rng = np.random.default_rng(seed)
    draws = {name: np.zeros(resamples) for name in masks}
    for k, f in enumerate(fits):
        t = f.data.frame["treated"].to_numpy(int)
        arms = [np.flatnonzero(t == a) for a in (0, 1)]
        for b in range(resamples):
            idx = np.concatenate([rng.choice(a, size=len(a), replace=True) for a in arms])
            scores = f.scores
            if f.span_scores is not None:  # a point of the span, one per resample
                lo, hi = f.span_scores
                scores = lo + rng.uniform() * (hi - lo)
            for name, m in masks.items():
                draws[name][b] += scores[idx][m[k][idx]].sum()
    rows = []
    for name, m in masks.items():
        lo, hi = cellmodel.interval(draws[name], setting)
        rows.append({
            "policy": name, "rule": rules[name],
            "customers": int(sum(x.sum() for x in m)),
            "cost": float(sum(x.sum() * f.data.unit_cost for x, f in zip(m, fits, strict=True))),
            "mean": float(sum(f.scores[x].sum() for x, f in zip(m, fits, strict=True))),
            "lo": lo, "hi": hi, "p_positive": float((draws[name] > 0).mean()),
        })  # fmt: skip
    picks = picked[["customer_id", "intervention", "experiment_id", "expected", "cost"]]
    notes = []
    if picked.empty:
        notes.append("No customer is expected to gain from any intervention: nobody is picked")
    return Policy(
        picks=picks.sort_values("expected", ascending=False).reset_index(drop=True),
        comparison=pd.DataFrame(rows),
        groups=_groups(fits, setting),
        members=pd.concat(
            [
                pd.DataFrame(
                    {
                        "experiment_id": f.data.experiment_id,
                        "customer_id": f.data.frame["customer_id"].to_numpy(),
                    }
                    | {name: m[k] for name, m in masks.items()}
                )
                for k, f in enumerate(fits)
            ],
            ignore_index=True,
        ),  # fmt: skip
        budget=float(budget),
        notes=tuple(notes),
    )


def span_interval(
    mean: float, sd: float, span: Sequence[tuple[float, float]] = (),
    setting: IntervalSetting = INTERVAL, *, draws: int = 4000, seed: int = 0,
) -> tuple[float, float, float]:  # fmt: skip
    """``lo``, ``hi`` and P(> 0) of an estimate with normal error ``sd`` about ``mean``; with
    ``span``, pairs (estimate at one end, at the other) of the after-window rule's span, the
    estimate is the sum over pairs of a uniform point between them (one independent point per
    pair, as the readout draws it), plus the normal error: the interval then carries how long
    an effect on churn lasts, which the data cannot say.

    >>> lo, hi, p = span_interval(10.0, 1.0)
    >>> round(lo, 2), round(hi, 2), round(p, 3)
    (8.36, 11.64, 1.0)
    """
    if not span:
        z = stats.norm.isf((1 - setting.width) / 2)
        p = stats.norm.sf(0.0, loc=mean, scale=sd) if sd > 0 else float(mean > 0)
        return float(mean - z * sd), float(mean + z * sd), float(p)
    rng = np.random.default_rng(seed)
    ends = np.asarray(span, dtype=float)
    total = ends[:, 0] + rng.uniform(size=(draws, len(ends))) * (ends[:, 1] - ends[:, 0])
    total = total.sum(axis=1) + sd * rng.standard_normal(draws)
    lo, hi = cellmodel.interval(total, setting)
    return float(lo), float(hi), float((total > 0).mean())


def _groups(fits: Sequence[UpliftFit], setting: IntervalSetting) -> pd.DataFrame:
    rows = []
    for f in fits:
        decile = f.deciles
        for d in range(1, 11):
            m = decile == d
            s = f.scores[m]
            se = s.std(ddof=1) / np.sqrt(len(s))
            span = () if f.span_scores is None else [tuple(e[m].mean() for e in f.span_scores)]
            lo, hi, p = span_interval(float(s.mean()), float(se), span, setting, seed=d)
            rows.append({
                "intervention": f.data.intervention, "decile": d, "customers": int(m.sum()),
                "expected": float(f.oof[m].mean()), "estimated": float(s.mean()),
                "lo": lo, "hi": hi, "p_positive": p,
            })  # fmt: skip
    return pd.DataFrame(rows)
