"""One test plan from the design maths: size, time, money, and how the size moves with the split.

:func:`plan_test` is what ``cx design`` prints. It composes the pure functions of
:mod:`experiments.design` (nothing here reads the store; :mod:`experiments.history` turns store
history into the inputs) and answers the questions an analyst must settle with finance before a
test starts:

- how many customers per arm and in total, at the level left after correcting for several arms
  and metrics (each treated arm is compared with the shared control; a comparison is sized at the
  pair's control share, so the total is ``n_control + (arms - 1) * n_treatment``);
- how the control and total counts move when the control share shrinks (long-lived holdouts);
- the inflation when the intervention is delivered by cluster (team, store, queue);
- how many weeks until the readout, from the eligible-customer rate and the outcome horizon;
- what the minimum detectable effect is worth per 1,000 eligible customers.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

from attribution.config import DecisionSettings
from attribution.errors import InputError
from experiments import design

Metric = Literal["retention", "revenue", "cost_to_serve", "net_value"]
#: ``net_value`` is the decision's own metric (currency per customer, the readout's money before
#: the intervention's cost): size it with :meth:`experiments.history.DesignInputs.for_means`.
METRICS: tuple[str, ...] = ("retention", "revenue", "cost_to_serve", "net_value")

#: Weeks a test must read out in, enrolment and horizon together, unless stated otherwise.
MAX_WEEKS = 52.0
#: Control shares shown in the split table besides the chosen one.
SHARES: tuple[float, ...] = (0.5, 0.3, 0.2, 0.1, 0.05)


@dataclass(frozen=True)
class Guardrails:
    """What the decision's guardrails need to be predicted at a test size (see
    :func:`experiments.decision.decide`): the cost-to-serve margin and the spread of cost per
    customer over the window, the CSAT tolerance, the share of customers who rate service and the
    spread of their mean rating. :func:`guardrails_from_history` builds one from the store's
    history and the ``[decision]`` settings; a part left None is not predicted.
    """

    cost_margin: float | None = None
    cost_sd: float | None = None
    cost_r2: float = 0.0
    csat_tolerance: float | None = None
    csat_sd: float | None = None
    csat_rated_share: float | None = None
    interval_width: float = 0.9


def guardrails_from_history(
    inputs, decision: DecisionSettings | None = None, interval_width: float = 0.9
) -> Guardrails:
    """The guardrails of ``decision`` (default settings) predicted from design inputs
    (:class:`experiments.history.DesignInputs`): the cost margin is ``decision.cost_margin`` or
    its share of the population's mean cost over the horizon, as the decision sets it from the
    control arm."""
    rules = decision or DecisionSettings()
    margin = (
        rules.cost_margin
        if rules.cost_margin is not None
        else rules.cost_margin_share * inputs.cost_mean
    )
    return Guardrails(
        cost_margin=float(margin),
        cost_sd=inputs.cost_sd,
        cost_r2=inputs.r2_cost_bands,
        csat_tolerance=rules.csat_tolerance,
        csat_sd=inputs.csat_sd,
        csat_rated_share=inputs.csat_rated_share,
        interval_width=interval_width,
    )


@dataclass(frozen=True)
class TestPlan:
    """A sized test with the numbers behind it (see :func:`plan_test`).

    Attributes
    ----------
    metric : str
        ``retention`` (two proportions) or ``revenue`` / ``cost_to_serve`` (means).
    size : experiments.design.SampleSize
        Customers per arm for one treated arm against control, at ``alpha_per_test``.
    arms : int
        Arms including control.
    n_total : int
        Customers in all arms: ``n_control + (arms - 1) * n_treatment`` (times the design effect
        for a cluster design).
    alpha_per_test : float
        Level each comparison is sized at after the multiplicity correction.
    shares : pandas.DataFrame
        ``control_share, n_control, n_treatment, n_total`` for the chosen and the usual shares.
    cluster : experiments.design.ClusterSampleSize or None
    timeline : experiments.design.Timeline or None
    mde_value_per_1000 : float or None
        The MDE in currency per 1,000 eligible customers.
    assurance : experiments.design.Assurance or None
        With a prior on the effect: the chance the sized test ends with a credible positive result.
    events : experiments.design.EventsDesign or None
        With a hazard ratio: churn events a log-rank test needs (Schoenfeld), and the weeks to
        observe them at the churn-event rate.
    holdout : experiments.design.HoldoutSize or None
        With a prior, the value of a unit of effect and the population: the test size that
        maximises the value of the information it buys net of its cost.
    inputs : dict
        Every setting used, and where store-derived values came from.
    """

    __test__ = False  # not a pytest test class

    metric: str
    size: design.SampleSize
    arms: int
    n_total: int
    alpha_per_test: float
    shares: pd.DataFrame
    cluster: design.ClusterSampleSize | None
    timeline: design.Timeline | None
    mde_value_per_1000: float | None
    inputs: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    assurance: design.Assurance | None = None
    holdout: design.HoldoutSize | None = None
    events: design.EventsDesign | None = None
    deadline: dict | None = None
    rule: dict | None = None

    @property
    def n_control(self) -> int:
        """Customers in the control arm."""
        return self.cluster.n_control if self.cluster else self.size.n_control

    @property
    def n_treatment(self) -> int:
        """Customers in each treated arm."""
        return self.cluster.n_treatment if self.cluster else self.size.n_treatment

    def to_dict(self) -> dict:
        """JSON-ready: n per arm and in total, the settings, and every derived number."""
        out = {
            "metric": self.metric,
            "n_control": self.n_control,
            "n_treatment_per_arm": self.n_treatment,
            "arms": self.arms,
            "n_total": self.n_total,
            "n_pair_exact": self.size.n_total_exact,
            "alpha_per_test": self.alpha_per_test,
            "mde_value_per_1000": self.mde_value_per_1000,
            "shares": self.shares.to_dict(orient="records"),
            "inputs": self.inputs,
            "warnings": self.warnings,
        }
        if self.cluster is not None:
            out["cluster"] = {
                "design_effect": self.cluster.design_effect,
                "clusters_control": self.cluster.clusters_control,
                "clusters_treatment": self.cluster.clusters_treatment,
            }
        if self.assurance is not None:
            out["assurance"] = {
                "probability": self.assurance.probability,
                "mc_se": self.assurance.mc_se,
            }
        if self.holdout is not None:
            out["holdout_by_value"] = self.holdout.to_dict()
        if self.events is not None:
            out["events"] = {
                "hazard_ratio": self.inputs["hazard_ratio"],
                "events": self.events.events,
                "events_exact": self.events.events_exact,
                "weeks": self.events.weeks,
            }
        if self.rule is not None:
            out["rule"] = self.rule
        if self.deadline is not None:
            out["deadline"] = self.deadline
        if self.timeline is not None:
            out["timeline_weeks"] = {
                "enrolment": self.timeline.enrolment_weeks,
                "horizon": self.timeline.horizon_weeks,
                "readout": self.timeline.readout_weeks,
            }
        return out

    def describe(self) -> str:
        """The plan in the words an analyst takes to finance."""
        i = self.inputs
        if self.metric == "retention":
            what = (
                f"retention {i['baseline']:.1%} -> {i['baseline'] + i['mde']:.1%} "
                f"({i['mde'] * 100:+.2f} pp)"
            )
        else:
            name = self.metric.replace("_", " ")
            what = f"{name} per customer {i['mde']:+,.2f} (sd {i['sd']:,.2f})"
        lines = [
            f"Detect {what} with {i['power']:.0%} power at two-sided alpha {i['alpha']:g}"
            + (
                f" ({self.alpha_per_test:.4g} per comparison after {i['correction']} for "
                f"{design.n_comparisons(self.arms, i['metrics'])} comparisons)"
                if self.alpha_per_test != i["alpha"]
                else ""
            )
            + (f", variance reduced by R^2 = {i['r2']:.2f}" if i["r2"] else "")
            + ":",
            f"  control {self.n_control:,}, treatment {self.n_treatment:,}"
            + (f" in each of {self.arms - 1} arms" if self.arms > 2 else "")
            + f"; total {self.n_total:,} customers (control share {i['control_share']:.0%}).",
        ]
        if self.cluster is not None:
            lines.append(
                f"  Delivered by cluster: design effect {self.cluster.design_effect:.2f}, "
                f"{self.cluster.clusters_control} + {self.cluster.clusters_treatment} clusters."
            )
        if self.timeline is not None:
            lines.append(
                f"  Time: {self.timeline.enrolment_weeks:.1f} weeks to enrol + "
                f"{self.timeline.horizon_weeks:.1f} weeks of outcome = readout in week "
                f"{math.ceil(self.timeline.readout_weeks)}."
            )
        if self.deadline is not None and not self.deadline["fits"]:
            lines.append(f"  Too long: {self.deadline['sentence']}")
        if self.rule is not None:
            r = self.rule
            need = r["n_total_for_rule"]
            sized = (
                f"sized for the rule ({r['power']:.0%} roll-outs at the MDE) it needs "
                f"{need:,} customers"
                if need is not None
                else "at the MDE the intervention does not pay its cost, so no size makes the "
                "rule roll out"
            )
            lines.append(
                f"  The readout's rule (roll out when P(net value > 0) >= "
                f"{r['rule_threshold']:.2f}): "
                f"this test rolls out {r['p_rollout_at_mde']:.0%} of the time at the MDE and "
                f"{r['p_rollout_at_zero']:.1%} with no effect; {sized}."
            )
            w = r.get("looks")
            if w is not None:
                marks = ", ".join(f"{t:.3f}" for t in w["thresholds"])
                need = w["n_total_for_rule"]
                lines.append(
                    f"  Monitored over {w['looks']} looks ({w['spending']} alpha spending): roll "
                    f"out at P(net value > 0) >= {marks}; by the last look it rolls out "
                    f"{w['p_rollout_at_mde']:.0%} of the time at the MDE and "
                    f"{w['p_rollout_at_zero']:.1%} with no effect"
                    + (
                        f"; for {r['power']:.0%} at the MDE the looks cost "
                        f"{w['inflation'] - 1:.1%} more customers ({need:,})"
                        if need is not None
                        else ""
                    )
                    + f", and at the MDE it is expected to end after "
                    f"{w['expected_fraction_at_mde']:.0%} of its horizon."
                )
            g = r.get("guardrails")
            if g is not None:
                parts = []
                for name, words in (("cost_to_serve", "cost-to-serve"), ("csat", "CSAT")):
                    if name in g:
                        gi = g[name]
                        need = gi["n_total_for_90"]
                        parts.append(
                            f"{words} passes {gi['p_pass']:.0%} of the time"
                            + (f" (90% needs {need:,} customers)" if need is not None else "")
                        )
                if parts:
                    need = g["n_total_for_decision"]
                    lines.append(
                        f"  Guardrails at this size (untouched by the intervention): "
                        f"{'; '.join(parts)}. With them the test rolls out "
                        f"{g['p_rollout_at_mde_with_guardrails']:.0%} of the time at the MDE"
                        + (
                            f"; the decision (rule and guardrails) needs {need:,} customers for "
                            f"{r['power']:.0%}."
                            if need is not None
                            else "; no size gets the decision there."
                        )
                    )
            if self.arms > 2:
                lines.append(
                    f"  With {self.arms - 1} treated arms each is rolled out at P(net value > 0) "
                    f">= {r['threshold']:.3f}, so that the chance one of them rolls out when none "
                    f"works stays {r['p_any_rollout_at_zero']:.1%} (the arms share the control)."
                )
        if self.mde_value_per_1000 is not None:
            lines.append(
                f"  Money: the smallest effect this test can see is worth "
                f"{self.mde_value_per_1000:,.0f} per 1,000 eligible customers."
            )
        if self.assurance is not None:
            decided = (self.rule or {}).get("assurance")
            rolled = ""
            if decided is not None:
                rolled = f"; the decision's rule rolls out {decided['p_rollout']:.0%} of the time"
                if decided["p_rollout_with_guardrails"] is not None:
                    rolled += f" ({decided['p_rollout_with_guardrails']:.0%} with its guardrails)"
            lines.append(
                f"  Assurance: with the prior on the effect, the test ends with its 90% interval "
                f"above zero {self.assurance.probability:.0%} of the time{rolled}."
            )
        if self.holdout is not None:
            lines.append(f"  Holdout sized by value: {self.holdout.describe()}")
        if self.events is not None:
            when = (
                f", about {self.events.weeks:.1f} weeks at {self.inputs['events_per_week']:,.1f} "
                "churn events a week"
                if self.events.weeks is not None
                else ""
            )
            lines.append(
                f"  Retention curves: a hazard ratio of {self.inputs['hazard_ratio']:g} needs "
                f"{self.events.events:,} churn events (log-rank, Schoenfeld){when}."
            )
        lines.append("  How the size moves with the split:")
        table = self.shares.copy()
        table["control_share"] = table["control_share"].map(lambda v: f"{v:.0%}")
        for col in ("n_control", "n_treatment", "n_total"):
            table[col] = table[col].map(lambda v: f"{v:,}")
        lines += ["    " + row for row in table.to_string(index=False).splitlines()]
        lines += [f"  Warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _level(alpha: float, arms: int, metrics: int, correction: str) -> float:
    """The level each comparison is sized at: ``alpha`` corrected for several arms and metrics."""
    n_tests = design.n_comparisons(arms, metrics)
    return design.adjust_alpha(alpha, n_tests, correction) if n_tests > 1 else alpha


def _sizer(metric: str, baseline, sd, mde, alpha, power, r2, continuity):
    if metric not in METRICS:
        raise InputError(f"metric must be one of {METRICS}, got {metric!r}")
    if metric == "retention":
        if baseline is None:
            raise InputError("retention needs --baseline (share still active), e.g. 0.80")
        return lambda share: design.proportions_sample_size(
            baseline,
            mde,
            control_share=share,
            alpha=alpha,
            power=power,
            r2=r2,
            continuity=continuity,
        )
    if sd is None:
        raise InputError(f"{metric} needs --sd (per-customer standard deviation)")
    if continuity:
        raise InputError("continuity correction applies to retention only")
    return lambda share: design.means_sample_size(
        sd, mde, control_share=share, alpha=alpha, power=power, r2=r2
    )


def plan_test(
    metric: Metric,
    mde: float,
    *,
    baseline: float | None = None,
    sd: float | None = None,
    control_share: float = 0.5,
    alpha: float = 0.05,
    power: float = 0.8,
    r2: float = 0.0,
    continuity: bool = False,
    arms: int = 2,
    metrics: int = 1,
    correction: Literal["bonferroni", "holm"] = "holm",
    icc: float | None = None,
    cluster_size: float | None = None,
    cluster_cv: float = 0.0,
    eligible_per_week: float | None = None,
    horizon_weeks: float | None = None,
    value_per_unit: float | None = None,
    hazard_ratio: float | None = None,
    events_per_week: float | None = None,
    prior_mean: float | None = None,
    prior_sd: float | None = None,
    unit_cost: float = 0.0,
    population: float | None = None,
    source: dict | None = None,
    n_eligible: int | None = None,
    clusters_available: int | None = None,
    max_weeks: float = MAX_WEEKS,
    roll_out_threshold: float = DecisionSettings().roll_out_threshold,
    looks: int = 1,
    spending: str = "obrien-fleming",
    guardrails: Guardrails | None = None,
    horizon_months: int | None = None,
) -> TestPlan:
    """Size a CX test and say how long it takes and what its MDE is worth.

    Parameters
    ----------
    metric : {"retention", "revenue", "cost_to_serve"}
        Retention is sized as two proportions; revenue and cost as means per customer.
    mde : float
        Smallest effect worth detecting: percentage points as a fraction for retention (0.02),
        currency per customer for revenue and cost.
    baseline : float, optional
        Control retention, in (0, 1); required for retention.
    sd : float, optional
        Per-customer standard deviation over the outcome window; required for means.
    control_share : float
        Share of each comparison's customers held out as control, in (0, 1).
    alpha, power : float
        Family-wise two-sided level and target power.
    r2 : float
        Share of the outcome's variance explained by pre-period history (CUPED), in [0, 1).
    continuity : bool
        Fleiss continuity correction (retention only).
    arms, metrics : int
        Arms including control, and metrics read out; with more than one comparison the level
        per comparison is ``alpha / comparisons`` (:func:`experiments.design.adjust_alpha`).
    correction : {"holm", "bonferroni"}
        Both size at ``alpha / comparisons``; Holm gains only at the readout.
    icc, cluster_size, cluster_cv : float, optional
        Intra-cluster correlation, mean customers per cluster and the cluster sizes' coefficient
        of variation, for interventions delivered by team, store or queue.
    eligible_per_week, horizon_weeks : float, optional
        Customers becoming eligible per week and the outcome horizon in weeks, for the timeline.
    value_per_unit : float, optional
        Currency one unit of effect is worth per customer (value of a retained customer, or the
        margin rate for spend), for the MDE in money.
    hazard_ratio : float, optional
        Churn hazard ratio (treated over control) for a survival readout: gives the events a
        log-rank test needs; ``events_per_week`` (churn events in both arms) turns them into
        weeks.
    events_per_week : float, optional
        Churn events expected a week among enrolled customers.
    prior_mean, prior_sd : float, optional
        A prior on the true effect, in the units of ``mde``: gives the assurance of the sized
        test and, with ``value_per_unit`` and ``population``, the holdout sized by value.
    unit_cost : float
        The intervention's cost per treated customer (currency), for the holdout by value.
    population : float, optional
        Eligible customers the roll-out decision applies to (test included).
    source : dict, optional
        Where store-derived inputs came from; copied into ``inputs``.
    n_eligible : int, optional
        Customers eligible today (from the store); a warning when the test needs more.
    clusters_available : int, optional
        Clusters that exist (from the store); a warning when the design needs more.
    roll_out_threshold : float
        The readout's rule: roll out when P(net value > 0) is at least this (``[decision]
        roll_out_threshold``). The plan gives how often a test of this size rolls out at the MDE
        and with no effect, and the size the rule needs (:attr:`TestPlan.rule`,
        :mod:`experiments.design.rule`).
    max_weeks : float
        The time the test must finish in, enrolment and outcome horizon together (default
        :data:`MAX_WEEKS`, a year). With a timeline that runs longer, the plan says so plainly
        and gives the MDE the customers who can enrol in time support (:attr:`TestPlan.deadline`).
    looks : int
        Planned looks of a monitored test (``cx assign --looks``), evenly spread in
        information; 1 is one readout at the horizon. With more, :attr:`TestPlan.rule` gains
        ``looks``: each look's roll-out threshold (alpha spending,
        :mod:`experiments.design.sequential`), the chance of rolling out by the last look at
        the MDE and with no effect, the customers the rule needs with the looks, and the share
        of the horizon the test is expected to run at the MDE.
    spending : {"obrien-fleming", "pocock"}
        The alpha spending function of the looks.
    horizon_months : int, optional
        The outcome horizon in months of a monitored test (``cx assign --horizon-months``): the
        looks are then at the months the assignment records
        (:func:`experiments.design.look_months`, e.g. months 2, 3 and 4 of a 4-month horizon
        with 3 looks), so the plan's thresholds are the ones the readout will use. Without it,
        the looks are at information fractions 1/K, 2/K, ..., 1.
    guardrails : Guardrails, optional
        The decision rolls out only when its guardrails pass too. With them,
        :attr:`TestPlan.rule` gains ``guardrails``: each guardrail's standard error and chance
        of passing at the last look when the intervention does not touch it, the customers for
        a 90% chance, and ``p_rollout_at_mde_with_guardrails`` (the rule's chance times the
        guardrails', taken as independent).

    Returns
    -------
    TestPlan

    Raises
    ------
    InputError
        Any setting outside its range (named with its value), or a missing baseline / sd.

    Examples
    --------
    >>> p = plan_test("retention", 0.02, baseline=0.10)
    >>> (p.n_control, p.n_treatment, p.n_total)
    (3841, 3841, 7682)
    """
    if metric == "net_value" and value_per_unit is None:
        value_per_unit = 1.0  # the effect is money already
    per_test = _level(alpha, arms, metrics, correction)
    size_at = _sizer(metric, baseline, sd, mde, per_test, power, r2, continuity)
    size = size_at(control_share)
    cluster = None
    warn: list[str] = []
    if icc is not None or cluster_size is not None:
        if icc is None or cluster_size is None:
            raise InputError("a cluster design needs both --icc and --cluster-size")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", design.DesignWarning)
            cluster = design.cluster_sample_size(size, icc, cluster_size, cluster_cv)
        warn += [str(w.message) for w in caught if issubclass(w.category, design.DesignWarning)]
    if cluster is not None and clusters_available is not None:
        needed = cluster.clusters_control + (int(arms) - 1) * cluster.clusters_treatment
        if needed > clusters_available:
            warn.append(
                f"the design needs {needed:,} clusters but only {clusters_available:,} exist: "
                "randomise customers instead, or accept a larger MDE"
            )
    n_control = cluster.n_control if cluster else size.n_control
    n_treatment = cluster.n_treatment if cluster else size.n_treatment
    n_total = n_control + (int(arms) - 1) * n_treatment
    timeline = None
    if eligible_per_week is not None or horizon_weeks is not None:
        if eligible_per_week is None or horizon_weeks is None:
            raise InputError(
                "a timeline needs both the eligible rate per week and the horizon in weeks"
            )
        timeline = design.weeks_to_readout(n_total, eligible_per_week, horizon_weeks)
    rule = _rule(
        metric, baseline, sd, mde, r2, control_share, power, n_control, n_treatment, n_total,
        cluster, roll_out_threshold, value_per_unit, unit_cost, int(arms), looks, spending,
        guardrails, prior_mean, prior_sd, horizon_months,
    )  # fmt: skip
    deadline = None
    if timeline is not None:
        pair_share = (n_control + n_treatment) / n_total
        effect = cluster.design_effect if cluster is not None else 1.0
        deadline = _deadline(
            metric, timeline, float(eligible_per_week), max_weeks, pair_share / effect,
            baseline, sd, control_share, per_test, power, r2, continuity, value_per_unit,
            slack=int(arms) / float(eligible_per_week),
        )  # fmt: skip
    if int(metrics) > 1:
        warn.append(
            f"--metrics {metrics} sizes each comparison at alpha / {metrics}, but cx decide takes "
            "one decision on one metric, net value, with guardrails that must all pass (an "
            "intersection-union rule: requiring every one adds no false roll-outs, so the "
            "decision needs no correction); the per-metric effects it prints are descriptive. "
            "Size for several metrics only if each will be acted on by itself"
        )
    if n_eligible is not None and n_total > n_eligible and timeline is None:
        warn.append(
            f"the test needs {n_total:,} customers but only {n_eligible:,} are eligible now; "
            "give the rate at which customers become eligible (--eligible-per-week, or a "
            "--trigger with --from-store) to see how long enrolment takes"
        )
    money = None if value_per_unit is None else design.mde_per_thousand(mde, value_per_unit)
    events = None
    if hazard_ratio is not None:
        treated_share = 1.0 - float(control_share)
        events = design.schoenfeld_events(
            hazard_ratio,
            alpha=per_test,
            power=power,
            treated_share=treated_share,
            events_per_week=events_per_week,
        )
    elif events_per_week is not None:
        raise InputError("--events-per-week needs --hazard-ratio")
    assured, holdout = _money_of_information(
        metric, baseline, sd, r2, n_control, n_treatment, control_share,
        prior_mean, prior_sd, value_per_unit, unit_cost, population,
    )  # fmt: skip
    rows = []
    for share in sorted({*SHARES, float(control_share)}, reverse=True):
        s = size_at(share)
        if cluster is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", design.DesignWarning)
                s = design.cluster_sample_size(s, icc, cluster_size, cluster_cv)
        rows.append((share, s.n_control, s.n_treatment, s.n_control + (arms - 1) * s.n_treatment))
    shares = pd.DataFrame(rows, columns=["control_share", "n_control", "n_treatment", "n_total"])
    inputs = {
        "metric": metric,
        "mde": mde,
        "baseline": baseline,
        "sd": sd,
        "control_share": control_share,
        "alpha": alpha,
        "power": power,
        "r2": r2,
        "continuity": continuity,
        "arms": arms,
        "metrics": metrics,
        "correction": correction,
        "icc": icc,
        "cluster_size": cluster_size,
        "cluster_cv": cluster_cv,
        "eligible_per_week": eligible_per_week,
        "horizon_weeks": horizon_weeks,
        "value_per_unit": value_per_unit,
        "n_eligible": n_eligible,
        "hazard_ratio": hazard_ratio,
        "events_per_week": events_per_week,
        "prior_mean": prior_mean,
        "prior_sd": prior_sd,
        "unit_cost": unit_cost,
        "population": population,
        "max_weeks": max_weeks,
        "looks": looks,
        "spending": spending,
        "formula": "two proportions, pooled variance under H0"
        if metric == "retention"
        else "difference in means, normal approximation",
    }
    if source:
        inputs["source"] = source
    return TestPlan(
        metric=metric,
        size=size,
        arms=int(arms),
        n_total=n_total,
        alpha_per_test=per_test,
        shares=shares,
        cluster=cluster,
        timeline=timeline,
        mde_value_per_1000=money,
        inputs=inputs,
        warnings=warn,
        assurance=assured,
        holdout=holdout,
        events=events,
        deadline=deadline,
        rule=rule,
    )


def _rule(
    metric, baseline, sd, mde, r2, control_share, power, n_control, n_treatment, n_total,
    cluster, threshold, value_per_unit, unit_cost, arms, looks=1, spending="obrien-fleming",
    guardrails=None, prior_mean=None, prior_sd=None, horizon_months=None,
) -> dict:  # fmt: skip
    """How often the readout's rule rolls out at this size, at the MDE and with no effect, and
    the total the rule needs for ``power`` roll-outs at the MDE (normal approximation)."""
    c = float(control_share)
    vf = design.variance_factor(r2)
    deff = cluster.design_effect if cluster is not None else 1.0
    if metric == "retention":
        p0, p1 = float(baseline), float(baseline) + float(mde)

        def se_at(n_pair: float, p1: float = p1) -> float:
            return design.proportions_se(p0, p1, n_pair, c, deff * vf)

        def se_null(n_pair: float) -> float:
            return se_at(n_pair, p0)
    else:

        def se_at(n_pair: float) -> float:
            return design.means_se(float(sd), n_pair, c, deff * vf)

        se_null = se_at
    # one comparison's customers (a cluster plan's counts already carry the design effect,
    # which se_at applies to any count of customers)
    n_pair = n_control + n_treatment
    value = 1.0 if value_per_unit is None else float(value_per_unit)
    # several treated arms: decide() raises each arm's threshold so that any false roll-out
    # stays at 1 - threshold (experiments.design.per_arm_threshold)
    per_arm = design.per_arm_threshold(arms, control_share=c, family=1.0 - threshold)
    money = {"threshold": per_arm, "value_per_unit": value, "unit_cost": float(unit_cost)}
    at_mde = design.rollout_probability(mde, se_at(n_pair), **money)
    at_zero = design.rollout_probability(0.0, se_null(n_pair), **money)
    target = max(float(power), 1.0 - per_arm + 1e-6)
    need = design.rule_sample_size(se_at, mde, power=target, **money)
    per_pair = n_total / (n_control + n_treatment)  # several arms share the control
    any_at_zero = design.any_rollout_probability(arms, se_null(n_pair), control_share=c, **money)
    watched = None
    if int(looks) != looks or looks < 1:
        raise InputError(f"looks must be a whole number >= 1, got {looks!r}")
    fractions = _look_fractions(int(looks), horizon_months)
    if looks > 1:
        watched = _looks(
            fractions, spending, 1.0 - per_arm, target, (mde - money["unit_cost"] / value),
            se_at, se_null, n_pair, need, per_pair, money["unit_cost"] / value,
        )  # fmt: skip
        if horizon_months is not None:
            watched["look_months"] = list(design.look_months(horizon_months, int(looks)))
    rule_z = stats.norm.ppf(watched["thresholds"]) if watched else None

    def chance(effect: float, n: float) -> float:
        """P(the rule rolls out by the last look) at a true effect and a pair size."""
        if watched:
            drift = (effect - money["unit_cost"] / value) / se_at(n)
            return float(design.crossing_probabilities(watched["fractions"], rule_z, drift).sum())
        return design.rollout_probability(effect, se_at(n), **money)

    guarded = None
    if guardrails is not None:
        final_z = _final_guardrail_z(guardrails.interval_width, fractions, spending)
        at_end = watched["p_rollout_at_mde"] if watched else at_mde
        guarded = _guardrail_chances(guardrails, c, n_pair, per_pair, deff, final_z, at_end)
        terms = guarded.pop("_terms")
        guarded["n_total_for_decision"] = _decision_size(
            lambda n: chance(mde, n), terms, final_z, float(power), n_pair, per_pair
        )
    assured = None
    if prior_mean is not None and prior_sd is not None:
        # the decision's assurance: its roll-out chance averaged over the prior on the effect
        # (Gauss-Hermite, 40 nodes), times the guardrails' chance when they are predicted
        nodes, weights = np.polynomial.hermite_e.hermegauss(40)
        effects = float(prior_mean) + float(prior_sd) * nodes
        p = float(np.dot(weights, [chance(e, n_pair) for e in effects]) / math.sqrt(2 * math.pi))
        assured = {
            "p_rollout": p,
            "p_rollout_with_guardrails": p * guarded["p_all_pass"] if guarded else None,
        }
    return {
        "looks": watched,
        "guardrails": guarded,
        "assurance": assured,
        **money,
        "rule_threshold": threshold,
        "power": target,
        "p_rollout_at_mde": at_mde,
        "p_rollout_at_zero": at_zero,
        "p_any_rollout_at_zero": any_at_zero,
        "n_total_for_rule": None if math.isinf(need) else math.ceil(need * per_pair),
        "approximation": "normal posterior of the effect with the design's standard error; "
        "guardrails and the hierarchical priors not modelled",
    }


def _look_fractions(looks: int, horizon_months: int | None) -> list[float]:
    """Information fractions of the looks: at the recorded look months of a horizon in months
    (what the readout uses), else evenly spread."""
    if horizon_months is None or looks <= 1:
        return [k / looks for k in range(1, looks + 1)]
    return [m / horizon_months for m in design.look_months(horizon_months, looks)]


def _final_guardrail_z(width: float, fractions: list[float], spending: str) -> float:
    """The guardrails' z at the last look: the interval's, or the looks' last boundary."""
    alpha = (1.0 - width) / 2.0
    if len(fractions) <= 1:
        return float(stats.norm.isf(alpha))
    return float(design.boundaries(fractions, alpha, spending).z[-1])


def _guardrail_chances(g: Guardrails, c, n_pair, per_pair, deff, z, p_rule) -> dict:
    """Each guardrail's se, chance of passing (untouched by the intervention) and the customers
    for a 90% chance; the roll-out chance with them (independence taken)."""
    pair = 1.0 / c + 1.0 / (1.0 - c)
    need_se = 1.0 / (z + stats.norm.ppf(0.9))  # se as a share of the margin for a 90% pass
    # (name, margin key, margin, variance of one customer-pair unit) of the predictable ones
    parts = []
    if g.cost_margin is not None and g.cost_sd:
        var1 = g.cost_sd**2 * design.variance_factor(g.cost_r2) * pair * deff
        parts.append(("cost_to_serve", "margin", g.cost_margin, var1))
    if g.csat_tolerance is not None and g.csat_sd and g.csat_rated_share:
        var1 = g.csat_sd**2 * pair * deff / g.csat_rated_share
        parts.append(("csat", "tolerance", g.csat_tolerance, var1))
    out: dict = {"z": z}
    p_all = 1.0
    for name, key, margin, var1 in parts:
        se = math.sqrt(var1 / n_pair)
        p = design.guardrail_pass_probability(se, margin, z=z)
        need = var1 / (margin * need_se) ** 2 if margin > 0 else math.inf
        out[name] = {
            key: margin,
            "se": se,
            "p_pass": p,
            "n_total_for_90": None if math.isinf(need) else math.ceil(need * per_pair),
        }
        p_all *= p
    out["p_all_pass"] = p_all
    out["p_rollout_at_mde_with_guardrails"] = p_rule * p_all
    out["_terms"] = [(var1, margin) for _, _, margin, var1 in parts]
    return out


def _decision_size(p_rule, terms, z, power, n_pair, per_pair) -> int | None:
    """Customers (in total) for the decision, rule and guardrails together, to roll out with
    chance ``power`` at the MDE; None when no size gets there (an effect that does not pay)."""

    def chance(n: float) -> float:
        p = p_rule(n)
        for var1, margin in terms:
            p *= design.guardrail_pass_probability(math.sqrt(var1 / n), margin, z=z)
        return p

    lo, hi = max(n_pair * 1e-3, 4.0), n_pair * 1e4
    if chance(hi) < power:
        return None
    if chance(lo) >= power:
        return math.ceil(lo * per_pair)
    n = optimize.brentq(lambda x: chance(math.exp(x)) - power, math.log(lo), math.log(hi))
    return math.ceil(math.exp(n) * per_pair)


def _looks(
    fractions, spending, alpha, power, margin, se_at, se_null, n_pair, need, per_pair, cost,
) -> dict:  # fmt: skip
    """The rule over looks at information ``fractions``: thresholds, chances, size, expected
    length."""
    looks = len(fractions)
    b = design.boundaries(fractions, alpha, spending)
    at_mde = design.crossing_probabilities(fractions, b.z, margin / se_at(n_pair))
    at_zero = design.crossing_probabilities(fractions, b.z, -cost / se_null(n_pair))
    fixed = stats.norm.isf(alpha) + stats.norm.ppf(power)
    inflation = (design.sequential_drift(b, power) / fixed) ** 2
    expected = float(np.dot(at_mde, fractions) + (1.0 - at_mde.sum()) * 1.0)
    return {
        "looks": looks,
        "spending": spending,
        "fractions": fractions,
        "thresholds": list(b.thresholds),
        "p_rollout_at_mde": float(at_mde.sum()),
        "p_rollout_at_zero": float(at_zero.sum()),
        "inflation": inflation,
        "n_total_for_rule": None if math.isinf(need) else math.ceil(need * inflation * per_pair),
        "expected_fraction_at_mde": expected,
    }


def detectable_effect(
    metric: Metric,
    *,
    customers: int | None = None,
    weeks: float | None = None,
    eligible_per_week: float | None = None,
    horizon_weeks: float | None = None,
    baseline: float | None = None,
    sd: float | None = None,
    control_share: float = 0.5,
    alpha: float = 0.05,
    power: float = 0.8,
    r2: float = 0.0,
    continuity: bool = False,
    arms: int = 2,
    metrics: int = 1,
    correction: Literal["bonferroni", "holm"] = "holm",
    icc: float | None = None,
    cluster_size: float | None = None,
    cluster_cv: float = 0.0,
) -> tuple[float, int]:
    """The question asked the other way round: the smallest effect a test can detect with the
    customers it has, or in the weeks it has.

    Parameters
    ----------
    metric : {"retention", "revenue", "cost_to_serve"}
    customers : int, optional
        Customers in the whole test (every arm).
    weeks : float, optional
        Weeks until the readout, enrolment and outcome horizon together: the customers are those
        who become eligible in ``weeks - horizon_weeks`` at ``eligible_per_week``.
    eligible_per_week, horizon_weeks : float, optional
        Needed with ``weeks``.
    baseline, sd, control_share, alpha, power, r2, continuity, arms, metrics, correction
        As in :func:`plan_test`; the level is corrected for several comparisons the same way.
    icc, cluster_size, cluster_cv : float, optional
        A cluster design: its design effect shrinks the effective sample.

    Returns
    -------
    (float, int)
        The minimum detectable effect (in ``mde`` units) and the customers it was computed for.

    Examples
    --------
    >>> mde, n = detectable_effect("retention", customers=7682, baseline=0.10)
    >>> round(mde, 4), n
    (0.02, 7682)
    """
    if (customers is None) == (weeks is None):
        raise InputError("give either the customers the test has or the weeks it has, not both")
    if weeks is not None:
        if eligible_per_week is None or horizon_weeks is None:
            raise InputError(
                "the MDE in a number of weeks needs the eligible rate per week and the horizon "
                "in weeks (--eligible-per-week and --horizon-weeks, or --from-store)"
            )
        enrol = float(weeks) - float(horizon_weeks)
        customers = math.floor(float(eligible_per_week) * enrol) if enrol > 0 else 0
        if customers < 4:
            raise InputError(
                f"in {weeks:g} weeks with a {horizon_weeks:g}-week outcome horizon only "
                f"{max(customers, 0):,} customers can enrol: too few for any test"
            )
    n = int(customers)
    if n < 4:
        raise InputError(f"customers must be a whole number >= 4, got {customers!r}")
    c = float(control_share)
    per_test = _level(alpha, arms, metrics, correction)
    n_pair = n / (c + (int(arms) - 1) * (1.0 - c))
    if icc is not None or cluster_size is not None:
        if icc is None or cluster_size is None:
            raise InputError("a cluster design needs both --icc and --cluster-size")
        n_pair /= design.design_effect(icc, cluster_size, cluster_cv)
    mde = _mde_at(metric, n_pair, baseline, sd, c, per_test, power, r2, continuity)
    return mde, n


def _mde_at(metric, n_pair, baseline, sd, control_share, alpha, power, r2, continuity) -> float:
    """The MDE of one comparison of ``n_pair`` customers (the inverse of :func:`_sizer`)."""
    if metric not in METRICS:
        raise InputError(f"metric must be one of {METRICS}, got {metric!r}")
    kw = {"control_share": control_share, "alpha": alpha, "power": power, "r2": r2}
    if metric == "retention":
        if baseline is None:
            raise InputError("retention needs --baseline (share still active), e.g. 0.80")
        return design.proportions_mde(baseline, n_pair, continuity=continuity, **kw)
    if sd is None:
        raise InputError(f"{metric} needs --sd (per-customer standard deviation)")
    return design.means_mde(sd, n_pair, **kw)


def _deadline(
    metric, timeline, per_week, max_weeks, effective_share,
    baseline, sd, control_share, alpha, power, r2, continuity, value_per_unit, slack=0.0,
) -> dict:  # fmt: skip
    """Whether the test reads out within ``max_weeks``; if not, the MDE of the customers who can
    enrol in time (``effective_share`` of them count toward one comparison, after the design
    effect of a cluster design). ``slack``: the weeks the rounding of each arm up to a whole
    customer can add (a design sized for exactly the customers who fit is not too long)."""
    weeks = float(max_weeks)
    if not (math.isfinite(weeks) and weeks > 0):
        raise InputError(f"max_weeks must be a number of weeks > 0, got {max_weeks!r}")
    out = {"max_weeks": weeks, "readout_weeks": timeline.readout_weeks}
    out["fits"] = timeline.readout_weeks <= weeks + slack
    if out["fits"]:
        return {**out, "n_within": None, "mde_within": None, "sentence": ""}
    enrol = weeks - timeline.horizon_weeks
    head = (
        f"this design cannot finish within {weeks:g} weeks: enrolment takes "
        f"{timeline.enrolment_weeks:,.1f} weeks and the outcome horizon "
        f"{timeline.horizon_weeks:.1f} more (readout in week {math.ceil(timeline.readout_weeks):,})"
    )
    if enrol <= 0:
        sentence = f"{head}; the outcome horizon alone is longer than that."
        return {**out, "n_within": 0, "mde_within": None, "sentence": sentence}
    n_within = math.floor(per_week * enrol)
    n_pair = n_within * effective_share
    if n_pair < 4:
        sentence = f"{head}; only {n_within:,} customers can enrol in time: too few for any test."
        return {**out, "n_within": n_within, "mde_within": None, "sentence": sentence}
    mde = _mde_at(metric, n_pair, baseline, sd, control_share, alpha, power, r2, continuity)
    if metric == "retention":
        words = f"{mde * 100:.2f} pp of retention"
    else:
        words = f"{mde:,.2f} of {metric} per customer"
    money = ""
    if value_per_unit is not None:
        worth = design.mde_per_thousand(mde, value_per_unit)
        money = f", worth {worth:,.0f} per 1,000 eligible customers"
    sentence = (
        f"{head}. In {weeks:g} weeks {n_within:,} customers can enrol (at {per_week:,.1f} a week, "
        f"the horizon kept); with them the smallest effect it can detect is {words}{money}."
    )
    return {**out, "n_within": n_within, "mde_within": mde, "sentence": sentence}


def _money_of_information(
    metric, baseline, sd, r2, n_control, n_treatment, control_share,
    prior_mean, prior_sd, value_per_unit, unit_cost, population,
):  # fmt: skip
    """Assurance of the sized test, and the holdout sized by value, when a prior is given."""
    if prior_mean is None and prior_sd is None:
        if population is not None:
            raise InputError("the holdout by value needs --prior-mean and --prior-sd")
        return None, None
    if prior_mean is None or prior_sd is None:
        raise InputError("a prior on the effect needs both --prior-mean and --prior-sd")
    # Per-customer sd of the metric after variance reduction: what the readout's se is built on.
    unit_sd = math.sqrt(baseline * (1.0 - baseline)) if metric == "retention" else sd
    unit_sd *= math.sqrt(design.variance_factor(r2))
    assured = design.assurance(prior_mean, prior_sd, unit_sd, n_control, n_treatment)
    holdout = None
    if population is not None:
        if value_per_unit is None:
            raise InputError("the holdout by value needs --value-per-unit to price the effect")
        cost = float(unit_cost)
        if not math.isfinite(cost) or cost < 0:
            raise InputError(f"unit_cost must be >= 0, got {unit_cost!r}")
        holdout = design.value_sized_holdout(
            population,
            value_per_unit * prior_mean - cost,
            value_per_unit * prior_sd,
            value_per_unit * unit_sd,
            control_share=control_share,
        )
    return assured, holdout
