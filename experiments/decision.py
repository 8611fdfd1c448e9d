"""The decision on a randomized CX test, in money: roll out, stop or extend.

:func:`decide` reads one experiment out of the store in this order:

1. **Sample ratio.** The arm counts against the designed shares (``design["allocation"]``), a
   chi-square test that stops everything at ``p <`` :data:`experiments.design.SRM_ALARM_P`
   (:class:`attribution.errors.SampleRatioError`, exit code 4) before any model is fitted. It is
   the gate of :func:`attribution.readout.read_out`; ``check_srm=False`` overrides it.
2. **Balance.** Standardized mean differences (SMD) between each treatment arm and control for
   every segment column of ``customers`` (categories one-hot). ``|SMD| >`` :data:`BALANCE_SMD`
   is reported as a warning among the reasons; it does not stop the readout.
3. **Effects and money** from :func:`attribution.readout.read_out`: net value per treated
   customer with its interval, P(net value > 0) and the expected loss of rolling out.
4. **Guardrails**, each with a verdict ``pass``, ``fail``, ``unclear`` or ``not measured`` (see
   :func:`csat_guardrail` and :func:`cost_guardrail`). The rule is the same for both: *pass*
   when the whole interval is on the acceptable side of the threshold, *fail* when the whole
   interval is beyond it, *unclear* when the interval straddles it (the data cannot tell yet),
   *not measured* when the store has no such data at all (no CSAT rating anywhere, no
   cost-to-serve): it is not checked, and the reasons say so.

   - CSAT must not fall by more than ``decision.csat_tolerance`` points (non-inferiority):
     pass when ``lo >= -tolerance``, fail when ``hi < -tolerance``.
   - Cost-to-serve must not rise by more than the margin (currency per customer over the
     window): pass when ``hi <= margin``, fail when ``lo > margin``.

5. **The verdict** per treatment arm, with the thresholds of the ``[decision]`` configuration
   section (:class:`attribution.config.DecisionSettings`):

   - ``"roll out"``: the models passed their diagnostics, ``P(net value > 0) >=
     roll_out_threshold`` and every guardrail passed;
   - ``"stop"``: ``P(net value > 0) <= stop_threshold`` or a guardrail failed;
   - ``"extend"``: anything else (not enough evidence either way, or a guardrail unclear).

   A **monitored test** (a ``monitoring`` section in its design record, ``cx assign --looks``) is
   decided only at its planned looks (:mod:`attribution.looks`), each on the window ending at
   the look's month, with that look's stricter thresholds: roll out at P(net value > 0) >=
   ``thresholds[k]`` with every guardrail passing at ``z = guardrail_z[k]`` (alpha spending,
   :mod:`experiments.design.sequential`), so the chance of a false roll-out over all looks
   stays ``1 - roll_out_threshold``. Before the last look, what would be "extend" is
   ``"continue"`` (with the information fraction reached and the date of the next look);
   between looks, or before the first, every arm is ``"continue"``.

   When the models failed their diagnostics their numbers (P(net value > 0), the cost effect)
   are not trusted: the verdict is ``"extend"`` ("the models did not pass their diagnostics;
   extend / investigate") unless the CSAT guardrail, which uses no model, failed: then
   ``"stop"``.

Example (a fit: takes a minute the first time models compile)::

    >>> from attribution import store, synth                      # doctest: +SKIP
    >>> con = store.connect(":memory:")                           # doctest: +SKIP
    >>> _ = synth.simulate(con, 20_000, months=12, seed=11)       # doctest: +SKIP
    >>> print(decide(con, "exp_premium_support").describe())      # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from attribution import checks, store
from attribution.checks import Check, describe_checks
from attribution.config import OUTCOMES, Config, DecisionSettings
from attribution.estimates import as_estimate_rows
from attribution.jsonready import json_ready
from attribution.periods import add_months
from attribution.readout import ExperimentReadout, read_out
from attribution.settings import IntervalSetting
from attribution.srm import SRMCheck, srm_record
from attribution.uplift import CONTROL
from experiments import design

__all__ = [
    "BALANCE_SMD",
    "BALANCE_COLUMNS",
    "CONTINUE",
    "Decision",
    "GUARDRAIL_COLUMNS",
    "balance",
    "balance_check",
    "cost_guardrail",
    "csat_guardrail",
    "decide",
    "decide_readout",
    "guardrail_checks",
]

ROLL_OUT, STOP, EXTEND = "roll out", "stop", "extend"
#: A monitored test before its last planned look with not enough evidence yet (or between looks).
CONTINUE = "continue"
PASS, FAIL, UNCLEAR = "pass", "fail", "unclear"
#: A guardrail on data the store does not have (no CSAT ratings at all, no cost-to-serve): it
#: is not checked, and the decision says so instead of waiting for data that will not come.
NOT_MEASURED = "not measured"
#: A covariate whose standardized mean difference between arms exceeds this (in absolute value)
#: is flagged as imbalanced (the common rule of thumb for randomized and matched comparisons).
BALANCE_SMD = 0.1
BALANCE_COLUMNS = ["arm", "covariate", "level", "mean_control", "mean_arm", "smd", "flagged"]
GUARDRAIL_COLUMNS = ["arm", "guardrail", "estimate", "lo", "hi", "threshold", "verdict", "reason"]


@dataclass
class Decision:
    """Roll out, stop or extend, per treatment arm, stated in money.

    Attributes
    ----------
    experiment_id, intervention : str
    verdicts : dict
        ``{treatment arm: "roll out" | "stop" | "extend" | "continue"}``.
    money : pandas.DataFrame
        One row per treatment arm: ``net_value``, ``net_lo``, ``net_hi`` (per treated customer
        over the window, with the configured interval), ``p_positive`` (P(net value > 0)),
        ``expected_loss`` (expected loss of rolling out, per treated customer), ``total``,
        ``total_lo``, ``total_hi`` (over the experiment's treated customers), ``roi``,
        ``roi_lo``, ``roi_hi`` and ``n_treated``.
    srm : experiments.design.SRMCheck or None
        The sample-ratio-mismatch check (None when the design record has no allocation).
    balance : pandas.DataFrame
        Columns :data:`BALANCE_COLUMNS`.
    guardrails : pandas.DataFrame
        Columns :data:`GUARDRAIL_COLUMNS`, one row per treatment arm and guardrail.
    readout : attribution.readout.ExperimentReadout
        The full readout the money comes from.
    reasons : list of str
        Why, in plain words: the verdict's grounds per arm, then warnings (imbalance, an
        overridden SRM alarm).
    settings : DecisionSettings
        The thresholds used.
    interval : IntervalSetting
        Width of every interval shown.
    """

    experiment_id: str
    intervention: str
    verdicts: dict[str, str]
    money: pd.DataFrame = field(repr=False)
    srm: SRMCheck | None
    balance: pd.DataFrame = field(repr=False)
    guardrails: pd.DataFrame = field(repr=False)
    readout: ExperimentReadout = field(repr=False)
    reasons: list[str] = field(default_factory=list)
    settings: DecisionSettings = field(default_factory=DecisionSettings)
    interval: IntervalSetting = field(default_factory=IntervalSetting)

    @property
    def verdict(self) -> str:
        """One verdict for the experiment: ``"roll out"`` if any arm should be rolled out (see
        :attr:`best_arm`), else ``"continue"`` if a monitored test goes on, else ``"extend"``
        if any arm should be extended, else ``"stop"``."""
        values = set(self.verdicts.values())
        for v in (ROLL_OUT, CONTINUE, EXTEND):
            if v in values:
                return v
        return STOP

    @property
    def running(self) -> bool:
        """True for a monitored test that goes on (verdict ``"continue"``)."""
        return self.verdict == CONTINUE

    @property
    def best_arm(self) -> str | None:
        """The arm to roll out (highest expected net value among those rolled out), or None."""
        ok = self.money[self.money["arm"].map(self.verdicts) == ROLL_OUT]
        if ok.empty:
            return None
        return str(ok.sort_values("net_value", ascending=False)["arm"].iloc[0])

    def summary(self) -> pd.DataFrame:
        """The readout's headline rows (overall effects, net value and ROI per treatment arm) in
        the schema of the published estimates table, ``verdict`` holding the decision for the
        arm; :attr:`money` keeps the decision's own table (totals, expected loss)."""
        rows = as_estimate_rows(self.readout.headline(), interval_width=self.interval.width)
        rows["verdict"] = rows["arm"].map(self.verdicts)
        return rows

    def describe(self) -> str:
        """What a finance reviewer reads: verdict, money, guardrails, SRM, balance."""
        width = f"{self.interval.width:.0%}"
        head = self.verdict.upper()
        if len(self.verdicts) > 1 and self.best_arm is not None:
            head += f" ({self.best_arm})"
        lines = [
            f"{self.experiment_id} ({self.intervention}), outcomes {self.readout.start:%Y-%m} to "
            f"{self.readout.horizon:%Y-%m}: {head}."
        ]
        for _, m in self.money.iterrows():
            arm = m["arm"]
            lines.append(
                f"{arm}: {self.verdicts[arm]}. Net value per treated customer "
                f"{m['net_value']:,.2f} "
                f"({width} interval {m['net_lo']:,.2f} to {m['net_hi']:,.2f}), P(net value > 0) "
                f"= {m['p_positive']:.2f}, expected loss if rolled out {m['expected_loss']:,.2f} "
                f"per customer; over the {int(m['n_treated']):,} treated customers "
                f"{m['total']:,.0f} ({m['total_lo']:,.0f} to {m['total_hi']:,.0f})."
            )
        lines += [f"  - {r}" for r in self.reasons]
        lines.append("Checks:")
        lines += describe_checks(self.checks())
        lines += [n for n in self.readout.notes if n not in self.reasons]
        return "\n".join(lines)

    def checks(self) -> list[Check]:
        """Every check behind the verdict, in one shape: the guardrails (one per arm and
        guardrail), the sample-ratio check, the diagnostics gate, covariate balance."""
        return [
            *guardrail_checks(self.guardrails),
            *self.readout.checks(),
            balance_check(self.balance),
        ]

    def to_dict(self) -> dict:
        """JSON-ready: verdicts, money, guardrails, SRM, balance, reasons, settings, headline.

        ``assumed_unchanged`` lists the outcomes the store does not measure, which the money
        assumes the intervention did not change.
        """
        return json_ready(
            {
                "experiment_id": self.experiment_id,
                "intervention": self.intervention,
                "verdict": self.verdict,
                "best_arm": self.best_arm,
                "verdicts": dict(self.verdicts),
                "running": self.running,
                "look": _look_record(self.readout),
                "window": {"start": str(self.readout.start), "horizon": str(self.readout.horizon)},
                "interval_width": self.interval.width,
                "diagnostics_passed": self.readout.passed,
                "money": _records(self.money),
                "guardrails": _records(self.guardrails),
                "srm": srm_record(self.srm, self.readout.srm_arms),
                "balance": _records(self.balance),
                "checks": [c.to_dict() for c in self.checks()],
                "reasons": list(self.reasons),
                "notes": list(self.readout.notes),
                "assumed_unchanged": list(self.readout.assumed),
                "settings": asdict(self.settings),
                "headline": self.readout.headline().to_dict(orient="records"),
            }
        )


def decide(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    *,
    segments: list[str] | tuple[str, ...] | None = None,
    horizon_months: int | None = None,
    config: Config | None = None,
    check_srm: bool = True,
) -> Decision:
    """Decide one experiment: roll out, stop or extend, with the money and the guardrails.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open store.
    experiment_id : str
        An experiment with assignments and a ``control`` arm.
    segments : list of str, optional
        Segment columns for the readout's models (default: the configuration's).
    horizon_months : int, optional
        Outcome window length in months (default: up to the last outcome month).
    config : Config, optional
        Model, money, interval, gate and ``[decision]`` settings. ``[model] outcomes`` is
        ignored: a decision always fits retention, revenue and cost-to-serve.
    check_srm : bool
        Stop on a sample ratio mismatch (default). False overrides the alarm; the decision's
        reasons then warn that the effects may be biased.

    Returns
    -------
    Decision

    Raises
    ------
    SampleRatioError
        The arm counts do not match the designed shares; nothing is fitted.
    InputError
        As :func:`attribution.readout.read_out`.
    """
    cfg = config or Config()
    # A decision is about money and the cost guardrail: it fits all three outcomes whatever
    # ``[model] outcomes`` says (a subset there only trims what a refresh publishes).
    cfg = replace(cfg, model=replace(cfg.model, outcomes=OUTCOMES))
    readout = read_out(
        con,
        experiment_id,
        segments=segments,
        horizon_months=horizon_months,
        config=cfg,
        check_srm=check_srm,
    )
    return decide_readout(con, readout, config=cfg)


def decide_readout(
    con: duckdb.DuckDBPyConnection, readout: ExperimentReadout, *, config: Config | None = None
) -> Decision:
    """The decision on a readout already fitted (what :func:`decide` does after
    :func:`attribution.readout.read_out`; ``cx refresh`` uses it on the readouts it fitted).

    ``con`` is the store the readout came from: balance, the CSAT guardrail and the cost margin
    read it. Money and the cost guardrail need a readout with all three outcomes.
    """
    cfg = config or Config()
    rules = cfg.decision
    experiment_id = readout.experiment_id
    bal = balance(con, experiment_id)
    end = add_months(readout.horizon, 1)
    arms = [a for a in readout.arms if a != CONTROL]
    look = readout.look
    at_look = look is not None and look.look is not None and look.month == readout.window_months
    guard_z = look.guardrail_z if at_look else None
    csat = csat_guardrail(
        con,
        experiment_id,
        start=_first_day(con, experiment_id, readout.start),
        end=end,
        tolerance=rules.csat_tolerance,
        interval=cfg.interval,
        z=guard_z,
        cluster=readout.cluster,
    )
    margin, margin_text = _cost_margin(con, experiment_id, readout, rules)
    cost = cost_guardrail(
        readout.table,
        margin,
        margin_text=margin_text,
        interval=cfg.interval,
        measured="cost_to_serve" not in readout.assumed,
        z=guard_z,
    )
    guardrails = pd.concat([csat, cost], ignore_index=True)
    guardrails = guardrails.sort_values(["arm", "guardrail"], kind="stable").reset_index(drop=True)
    money = _money(readout, arms)
    verdicts: dict[str, str] = {}
    reasons: list[str] = []
    arm_rules = rules
    if look is not None:
        if at_look:  # the look's threshold already covers several arms (monitoring_record)
            arm_rules = replace(rules, roll_out_threshold=float(look.threshold))
        reasons.append(look.sentence(readout.start))
    elif len(arms) > 1:
        arm_rules, words = _several_arms(readout, arms, rules)
        reasons.append(words)
    for arm in arms:
        row = money.set_index("arm").loc[arm]
        verdict, why = _verdict(
            row["p_positive"], guardrails[guardrails["arm"] == arm], readout, arm_rules
        )
        if look is not None:
            verdict, why = _monitored(verdict, why, look, at_look)
        verdicts[arm] = verdict
        prefix = f"{arm}: " if len(arms) > 1 else ""
        reasons += [prefix + w for w in why]
    reasons += _unmeasured_words(guardrails)
    if "revenue" in readout.assumed:
        reasons.append(
            "Revenue is not measured in this store: a change in retention is worth nothing in "
            "this net value, which is the intervention's cost and any cost-to-serve change "
            "only. Load revenue to put money on retention."
        )
    flagged = bal[bal["flagged"]] if len(bal) else bal
    if len(flagged):
        worst = flagged.reindex(flagged["smd"].abs().sort_values(ascending=False).index)
        listed = ", ".join(
            f"{r.covariate}{'=' + str(r.level) if _present(r.level) else ''} "
            f"({r.arm} SMD {r.smd:+.2f})"
            for r in worst.head(5).itertuples()
        )
        reasons.append(
            f"Warning: {len(flagged)} covariate level(s) differ between arms by more than "
            f"|SMD| {BALANCE_SMD:g}: {listed}. Randomization may be broken or the test small; "
            "check the assignment before acting on the verdict."
        )
    if readout.srm is not None and readout.srm.alarm:
        reasons.append(
            "Warning: the sample-ratio-mismatch alarm was overridden (check_srm=False): the "
            "effects may be biased."
        )
    return Decision(
        experiment_id=experiment_id,
        intervention=readout.intervention,
        verdicts=verdicts,
        money=money,
        srm=readout.srm,
        balance=bal,
        guardrails=guardrails[GUARDRAIL_COLUMNS],
        readout=readout,
        reasons=reasons,
        settings=rules,
        interval=cfg.interval,
    )


# --------------------------------------------------------------------------------------------
# Verdict
# --------------------------------------------------------------------------------------------
def _verdict(
    p: float, guards: pd.DataFrame, readout: ExperimentReadout, rules: DecisionSettings
) -> tuple[str, list[str]]:
    failed = guards[guards["verdict"] == FAIL]
    unclear = guards[guards["verdict"] == UNCLEAR]
    p_text = f"P(net value > 0) = {p:.2f}"
    if not readout.passed:
        csat_failed = failed[failed["guardrail"] == "csat"]
        if len(csat_failed):
            return STOP, [
                "A guardrail failed: CSAT fell (this guardrail uses no model, so it stands "
                "although the models did not pass their diagnostics)."
            ]
        return EXTEND, ["The models did not pass their diagnostics; extend / investigate."]
    if len(failed):
        names = ", ".join(failed["guardrail"])
        return STOP, [f"Guardrail(s) failed: {names}."]
    if p <= rules.stop_threshold:
        return STOP, [f"{p_text} <= the stop threshold {rules.stop_threshold:g}."]
    if p >= rules.roll_out_threshold and unclear.empty:
        return ROLL_OUT, [
            f"{p_text} >= the roll-out threshold {rules.roll_out_threshold:.4g}, diagnostics "
            "passed and every guardrail passed."
        ]
    why = []
    if p < rules.roll_out_threshold:
        why.append(
            f"{p_text} is between the stop ({rules.stop_threshold:g}) and roll-out "
            f"({rules.roll_out_threshold:.4g}) thresholds: not enough evidence yet."
        )
    if len(unclear):
        names = ", ".join(unclear["guardrail"])
        why.append(f"Guardrail(s) unclear: {names}; more data is needed to rule out harm.")
    return EXTEND, why


def _first_day(con: duckdb.DuckDBPyConnection, experiment_id: str, start: date) -> date:
    """The experiment's own start day when it is later than its start month's first day: a
    rating before the test started (a triggered test's triggering case, say) is not evidence
    about the intervention, so the CSAT guardrail counts ratings from that day."""
    row = con.execute(
        "SELECT started FROM experiments WHERE experiment_id = ?", [experiment_id]
    ).fetchone()
    day = row[0] if row and row[0] is not None else start
    if isinstance(day, datetime):
        day = day.date()
    return max(start, day)


def _monitored(verdict: str, why: list[str], look, at_look: bool) -> tuple[str, list[str]]:
    """A monitored test's verdict: nothing is decided off a planned look, and before the last
    look "not enough evidence" means continue, not extend."""
    if not at_look:
        return CONTINUE, [
            "Continue: decisions on this monitored test are taken only at its planned looks "
            "(what the numbers say between looks is not evidence for a decision)."
        ]
    if verdict == EXTEND and not look.final:
        return CONTINUE, [*why, f"Continue to look {look.next_look} of {look.looks}."]
    return verdict, why


def _look_record(readout: ExperimentReadout) -> dict | None:
    look = readout.look
    if look is None:
        return None
    return {
        "look": look.look,
        "looks": look.looks,
        "month": look.month,
        "information_fraction": look.fraction,
        "horizon_months": look.horizon_months,
        "months_observed": look.months_observed,
        "threshold": look.threshold,
        "guardrail_z": look.guardrail_z,
        "final": look.final,
        "next_look": look.next_look,
        "next_date": look.next_date,
        "at_look": look.look is not None and look.month == readout.window_months,
    }


def _several_arms(
    readout: ExperimentReadout, arms: list[str], rules: DecisionSettings
) -> tuple[DecisionSettings, str]:
    """The rule for several treated arms: each arm's roll-out threshold raised so the chance that
    any arm rolls out when none works stays ``1 - roll_out_threshold``
    (:func:`experiments.design.per_arm_threshold`; the arms share the control, so their
    estimates are correlated). Control's share of a comparison comes from the arm counts."""
    n_control = readout.arms[CONTROL]
    n_treated = float(np.mean([readout.arms[a] for a in arms]))
    share = n_control / (n_control + n_treated)
    family = 1.0 - rules.roll_out_threshold
    per_arm = design.per_arm_threshold(len(arms) + 1, control_share=share, family=family)
    words = (
        f"{len(arms)} treated arms: each is rolled out only at P(net value > 0) >= "
        f"{per_arm:.3f} (not {rules.roll_out_threshold:g}), so that the chance any arm is "
        f"rolled out when none works stays {family:.0%} (the arms share the control)."
    )
    return replace(rules, roll_out_threshold=per_arm), words


def _unmeasured_words(guards: pd.DataFrame) -> list[str]:
    missing = guards[guards["verdict"] == NOT_MEASURED]
    if missing.empty:
        return []
    names = ", ".join(dict.fromkeys(missing["guardrail"]))
    return [f"Guardrail(s) not measured in this store, so not checked: {names}."]


def _money(readout: ExperimentReadout, arms: list[str]) -> pd.DataFrame:
    t = readout.table
    top = t[(t["segment"] == "all") & (t["segment_by"] == "all")]
    rows = []
    for arm in arms:
        mine = top[top["arm"] == arm].set_index("outcome")

        def pick(outcome: str, col: str, mine=mine) -> float:
            return float(mine.loc[outcome, col]) if outcome in mine.index else math.nan

        rows.append(
            {
                "arm": arm,
                "net_value": pick("net_value", "mean"),
                "net_lo": pick("net_value", "lo"),
                "net_hi": pick("net_value", "hi"),
                "p_positive": pick("net_value", "p_positive"),
                "expected_loss": pick("net_value", "expected_loss"),
                "total": pick("total_net_value", "mean"),
                "total_lo": pick("total_net_value", "lo"),
                "total_hi": pick("total_net_value", "hi"),
                "roi": pick("roi", "mean"),
                "roi_lo": pick("roi", "lo"),
                "roi_hi": pick("roi", "hi"),
                "n_treated": readout.arms.get(arm, 0),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Guardrails
# --------------------------------------------------------------------------------------------
def _three_way(lo: float, hi: float, ok_when_lo_at_least: float | None, bad_above: float | None):
    """pass / fail / unclear of an interval against a threshold (see the module docstring)."""
    if ok_when_lo_at_least is not None:  # lower bound guardrail: CSAT
        if lo >= ok_when_lo_at_least:
            return PASS
        if hi < ok_when_lo_at_least:
            return FAIL
        return UNCLEAR
    if hi <= bad_above:  # upper bound guardrail: cost
        return PASS
    if lo > bad_above:
        return FAIL
    return UNCLEAR


#: Each rated customer of the experiment once, with the mean of their ratings in the window.
_CSAT_PER_CUSTOMER = """
    WITH per_customer AS (
        SELECT a.arm, a.customer_id, avg(i.csat) AS csat
        FROM assignments a
        JOIN interactions i ON i.customer_id = a.customer_id
        WHERE a.experiment_id = $e AND i.csat IS NOT NULL
          AND i.ts >= $start AND i.ts < $end
        GROUP BY ALL
    )
"""
_CSAT_SQL = (
    _CSAT_PER_CUSTOMER
    + """
    SELECT arm, count(*) AS n, avg(csat) AS mean, var_samp(csat) AS var
    FROM per_customer GROUP BY arm
"""
)
#: The same per customer, summed per (arm, cluster) of a cluster-randomized test; ``{cluster}``
#: is a quoted customers column (schema-checked, never user text).
_CSAT_CLUSTER_SQL = (
    _CSAT_PER_CUSTOMER
    + """
    SELECT p.arm, CAST(c.{cluster} AS STRING) AS cluster, count(*) AS n, sum(p.csat) AS total
    FROM per_customer p JOIN customers c ON c.customer_id = p.customer_id
    GROUP BY ALL
"""
)


def _csat_arms(con: duckdb.DuckDBPyConnection, params: dict, cluster: str | None) -> pd.DataFrame:
    """Per arm: rated customers ``n``, their mean CSAT ``mean`` and the variance of that mean
    ``var_mean`` (customers independent; with ``cluster``, the cluster-robust variance of a
    ratio mean, ``C / (C - 1) sum_c (Y_c - mean n_c)^2 / n^2`` over the arm's ``C`` clusters,
    and ``units`` counts clusters)."""
    if cluster is None:
        per_arm = con.execute(_CSAT_SQL, params).df().set_index("arm")
        per_arm["var_mean"] = np.nan_to_num(per_arm["var"]) / per_arm["n"]
        per_arm["units"] = per_arm["n"]
        return per_arm
    sql = _CSAT_CLUSTER_SQL.format(cluster=store.quote_identifier(cluster))
    per = con.execute(sql, params).df()
    rows = {}
    for arm, g in per.groupby("arm"):
        n, total, k = float(g["n"].sum()), float(g["total"].sum()), len(g)
        mean = total / n
        resid = g["total"].to_numpy(float) - mean * g["n"].to_numpy(float)
        var_mean = k / (k - 1) * float((resid**2).sum()) / n**2 if k > 1 else math.nan
        rows[arm] = {"n": int(n), "mean": mean, "var_mean": var_mean, "units": k}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["n", "mean", "var_mean", "units"])


def csat_guardrail(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    *,
    start: date,
    end: date,
    tolerance: float = 0.05,
    interval: IntervalSetting | None = None,
    z: float | None = None,
    cluster: str | None = None,
) -> pd.DataFrame:
    """CSAT must not fall: treated minus control mean CSAT, per treatment arm.

    :func:`decide` passes the later of the window's first month and the experiment's own start
    day as ``start``: a rating before the test started is not evidence about it.

    Each customer of the experiment with at least one CSAT rating in ``[start, end)`` counts
    once, with the mean of their ratings; arms are compared by the difference of the means of
    those per-customer values, with a Welch (unequal variances) normal interval of the
    configured width: ``d +- z * sqrt(v_t / n_t + v_c / n_c)``, ``z`` the interval's upper
    normal quantile. CSAT is only observed for customers who contacted service and rated it;
    when the intervention changes who contacts, the comparison is among contacting customers
    and no longer purely randomized.

    Verdict (non-inferiority with margin ``tolerance``): ``pass`` when ``lo >= -tolerance``
    (a fall beyond the tolerance is ruled out), ``fail`` when ``hi < -tolerance`` (CSAT fell by
    more than the tolerance), ``unclear`` otherwise, and ``unclear`` without ratings (fewer than
    two rated customers in an arm); ``not measured`` when the store has no CSAT rating at all.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open store.
    experiment_id : str
        The experiment.
    start, end : datetime.date
        Ratings with ``start <= ts < end`` count (the outcome window).
    tolerance : float
        CSAT points (1-5 scale) the treated arm may fall below control and still pass, >= 0.
    interval : IntervalSetting, optional
        Width of the interval; default the project setting.
    z : float, optional
        The normal quantile of the interval instead of the width's: a monitored test's look
        boundary (:mod:`experiments.design.sequential`).
    cluster : str, optional
        A cluster-randomized test's customers column of clusters: the variance of each arm's
        mean is the cluster-robust one (ratings of one cluster's customers are not independent),
        and an arm needs two rated clusters.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`GUARDRAIL_COLUMNS` with ``guardrail = "csat"``; ``estimate`` is the
        difference in points and ``threshold`` is ``-tolerance``.

    Examples
    --------
    >>> from attribution import store, synth
    >>> con = store.connect(":memory:")
    >>> _ = synth.simulate(con, 5000, months=6, seed=2)
    >>> g = csat_guardrail(con, "exp_recovery_gift", start=date(2025, 4, 1), end=date(2025, 7, 1))
    >>> list(g["guardrail"]), bool(g["lo"].iloc[0] < g["estimate"].iloc[0] < g["hi"].iloc[0])
    (['csat'], True)
    """
    width = interval or IntervalSetting()
    pct = f"{width.width:.0%}"
    if z is None:
        z = float(stats.norm.ppf(width.quantiles[1]))
    else:
        pct = f"z = {z:.2f} look-boundary"
    arms = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT arm FROM assignments WHERE experiment_id = ? AND arm <> ? "
            "ORDER BY arm",
            [experiment_id, CONTROL],
        ).fetchall()
    ]
    per_arm = _csat_arms(con, {"e": experiment_id, "start": start, "end": end}, cluster)
    rated = con.execute("SELECT count(*) FROM interactions WHERE csat IS NOT NULL").fetchone()[0]
    window = f"from {start:%Y-%m-%d} to before {end:%Y-%m-%d}"
    rows = []
    for arm in arms:
        row = {"arm": arm, "guardrail": "csat", "threshold": -tolerance}
        n_t = int(per_arm["n"].get(arm, 0))
        n_c = int(per_arm["n"].get(CONTROL, 0))
        units = min(int(per_arm["units"].get(arm, 0)), int(per_arm["units"].get(CONTROL, 0)))
        if rated == 0:
            rows.append(
                {
                    **row,
                    "estimate": math.nan,
                    "lo": math.nan,
                    "hi": math.nan,
                    "verdict": NOT_MEASURED,
                    "reason": "No CSAT ratings anywhere in this store: not checked.",
                }
            )
            continue
        if min(n_t, n_c) < 2 or units < 2:
            reason = (
                "No CSAT ratings"
                if n_t + n_c == 0
                else f"Too few CSAT ratings (control {n_c}, {arm} {n_t} rated customers"
                + (f"; fewer than two rated {cluster} values in an arm)" if cluster else ")")
            )
            rows.append(
                {
                    **row,
                    "estimate": math.nan,
                    "lo": math.nan,
                    "hi": math.nan,
                    "verdict": UNCLEAR,
                    "reason": f"{reason} {window}: cannot tell whether CSAT fell.",
                }
            )
            continue
        d = float(per_arm.loc[arm, "mean"] - per_arm.loc[CONTROL, "mean"])
        se = math.sqrt(per_arm.loc[arm, "var_mean"] + per_arm.loc[CONTROL, "var_mean"])
        lo, hi = d - z * se, d + z * se
        verdict = _three_way(lo, hi, -tolerance, None)
        said = (
            f"Mean CSAT {arm} minus control {d:+.3f} points ({pct} interval {lo:+.3f} to "
            f"{hi:+.3f}; {n_t:,} and {n_c:,} rated customers"
            + (f", clustered by {cluster})" if cluster else ")")
        )
        if verdict == PASS:
            said += f": a fall of more than {tolerance:g} points is ruled out."
        elif verdict == FAIL:
            said += f": CSAT fell by more than the tolerated {tolerance:g} points."
        else:
            said += (
                f": a fall of more than {tolerance:g} points is not ruled out; more data is needed."
            )
        rows.append({**row, "estimate": d, "lo": lo, "hi": hi, "verdict": verdict, "reason": said})
    return pd.DataFrame(rows, columns=GUARDRAIL_COLUMNS)


def cost_guardrail(
    table: pd.DataFrame,
    margin: float,
    *,
    margin_text: str = "",
    interval: IntervalSetting | None = None,
    measured: bool = True,
    z: float | None = None,
) -> pd.DataFrame:
    """Cost-to-serve must not rise beyond ``margin``, per treatment arm.

    Reads the overall (segment ``"all"``) absolute cost-to-serve effect of a readout: currency
    per customer summed over the window, with its credible interval. ``pass`` when
    ``hi <= margin`` (a rise beyond the margin is ruled out), ``fail`` when ``lo > margin`` (it
    rose beyond the margin), ``unclear`` otherwise or when the readout has no cost row.

    Parameters
    ----------
    table : pandas.DataFrame
        :attr:`attribution.readout.ExperimentReadout.table`.
    margin : float
        Allowed rise, currency per customer over the window, >= 0.
    margin_text : str
        How the margin was set, for the reason sentence.
    interval : IntervalSetting, optional
        Only for the wording (the readout's intervals are already computed).
    measured : bool
        False when the store has no cost-to-serve data (the readout's ``assumed``): every arm's
        verdict is :data:`NOT_MEASURED`.
    z : float, optional
        A monitored test's look boundary: each side of the readout's interval is stretched by
        ``z / z_interval`` around the mean (a normal approximation of the posterior).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`GUARDRAIL_COLUMNS` with ``guardrail = "cost_to_serve"``.

    Examples
    --------
    >>> t = pd.DataFrame({"arm": ["treatment"], "outcome": ["cost_to_serve"], "segment": ["all"],
    ...                   "metric": ["absolute"], "mean": [4.0], "lo": [3.0], "hi": [5.0]})
    >>> cost_guardrail(t, 2.0)["verdict"].tolist()
    ['fail']
    """
    width = interval or IntervalSetting()
    pct = f"{width.width:.0%}"
    stretch = 1.0
    if z is not None:
        stretch = z / float(stats.norm.ppf(width.quantiles[1]))
        pct = f"z = {z:.2f} look-boundary"
    rows = []
    overall = table[
        (table["outcome"] == "cost_to_serve")
        & (table["segment"] == "all")
        & (table["metric"] == "absolute")
    ]
    arms = [a for a in pd.unique(table["arm"]) if a != CONTROL]
    for arm in arms:
        row = {"arm": arm, "guardrail": "cost_to_serve", "threshold": margin}
        mine = overall[overall["arm"] == arm]
        if mine.empty or not measured:
            rows.append(
                {
                    **row,
                    "estimate": math.nan,
                    "lo": math.nan,
                    "hi": math.nan,
                    "verdict": UNCLEAR if measured else NOT_MEASURED,
                    "reason": "No cost-to-serve effect in the readout: cannot tell."
                    if measured
                    else "No cost-to-serve data in this store: not checked.",
                }
            )
            continue
        r = mine.iloc[0]
        mean, lo, hi = float(r["mean"]), float(r["lo"]), float(r["hi"])
        lo, hi = mean - (mean - lo) * stretch, mean + (hi - mean) * stretch
        verdict = _three_way(lo, hi, None, margin)
        said = (
            f"Cost-to-serve per customer {arm} minus control {mean:+,.2f} ({pct} interval "
            f"{lo:+,.2f} to {hi:+,.2f}) against a margin of {margin:,.2f}{margin_text}"
        )
        if verdict == PASS:
            said += ": a rise beyond the margin is ruled out."
        elif verdict == FAIL:
            said += ": cost rose beyond the margin."
        else:
            said += ": a rise beyond the margin is not ruled out; more data is needed."
        rows.append(
            {**row, "estimate": mean, "lo": lo, "hi": hi, "verdict": verdict, "reason": said}
        )
    return pd.DataFrame(rows, columns=GUARDRAIL_COLUMNS)


def _cost_margin(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    readout: ExperimentReadout,
    rules: DecisionSettings,
) -> tuple[float, str]:
    """The cost margin and how it was set: explicit, or a share of control's mean cost."""
    if rules.cost_margin is not None:
        return float(rules.cost_margin), " (decision.cost_margin)"
    # summed as exact decimals (as the cells are): the same margin from either engine
    total, n = con.execute(
        """
        WITH cost AS (
            SELECT customer_id, sum(CAST(cost_to_serve AS DECIMAL(18, 6))) AS cost FROM outcomes
            WHERE period >= $start AND period <= $horizon GROUP BY customer_id
        )
        SELECT sum(coalesce(cost.cost, 0)), count(*)
        FROM assignments a LEFT JOIN cost ON cost.customer_id = a.customer_id
        WHERE a.experiment_id = $e AND a.arm = 'control'
        """,
        {"e": experiment_id, "start": readout.start, "horizon": readout.horizon},
    ).fetchone()
    mean = float(total) / n if n else 0.0
    return rules.cost_margin_share * mean, (
        f" ({rules.cost_margin_share:.0%} of control's mean cost-to-serve of {mean:,.2f} per "
        "customer over the window)"
    )


# --------------------------------------------------------------------------------------------
# Balance
# --------------------------------------------------------------------------------------------
def balance(con: duckdb.DuckDBPyConnection, experiment_id: str) -> pd.DataFrame:
    """Standardized mean differences per covariate between each treatment arm and control.

    :func:`experiments.assign.store_balance`: the segment columns of ``customers`` and pre-period
    revenue, cost and activity, ``smd = (mean_arm - mean_control) / sqrt((var_arm +
    var_control) / 2)`` with sample variances, one level less per category (the formula is
    documented there). ``flagged`` when ``|smd| >`` :data:`BALANCE_SMD`.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open store.
    experiment_id : str
        The experiment.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`BALANCE_COLUMNS`; ``level`` is None for numeric covariates, and a
        missing value of a text column is the level ``"(missing)"``.

    Examples
    --------
    >>> from attribution import store, synth
    >>> con = store.connect(":memory:")
    >>> _ = synth.simulate(con, 5000, months=6, seed=2)
    >>> b = balance(con, "exp_recovery_gift")
    >>> {"channel", "region", "tenure_band", "tier"} <= set(b["covariate"])
    True
    """
    from experiments.assign import store_balance

    return store_balance(con, experiment_id)


#: A guardrail's verdict as a check's: unclear and not measured warn, they do not block.
_GUARDRAIL_CHECK = {
    PASS: checks.PASS,
    FAIL: checks.FAIL,
    UNCLEAR: checks.WARN,
    NOT_MEASURED: checks.WARN,
}


def guardrail_checks(guardrails: pd.DataFrame) -> list[Check]:
    """One :class:`attribution.checks.Check` per row of a guardrail table
    (:data:`GUARDRAIL_COLUMNS`); ``unclear`` and ``not measured`` become warnings."""
    out = []
    for row in guardrails.to_dict(orient="records"):
        out.append(
            Check(
                f"guardrail: {row['guardrail']}",
                _GUARDRAIL_CHECK[row["verdict"]],
                f"Guardrail {row['guardrail']} ({row['arm']}): {row['verdict']}. {row['reason']}",
                pd.DataFrame([row]),
                subject=str(row["arm"]),
            )
        )
    return out


def balance_check(bal: pd.DataFrame) -> Check:
    """Covariate balance as a :class:`attribution.checks.Check`: a warning when any level
    differs by more than :data:`BALANCE_SMD`; the table is ``bal`` (:data:`BALANCE_COLUMNS`)."""
    flagged = bal is not None and not bal.empty and bool(bal["flagged"].any())
    table = pd.DataFrame(columns=BALANCE_COLUMNS) if bal is None else bal
    return Check("balance", checks.WARN if flagged else checks.PASS, _balance_text(bal), table)


def _balance_text(bal: pd.DataFrame) -> str:
    if bal is None or bal.empty:
        return "Balance: no segment columns to compare."
    worst = bal.loc[bal["smd"].abs().idxmax()]
    level = f"={worst['level']}" if _present(worst["level"]) else ""
    n_flag = int(bal["flagged"].sum())
    lead = (
        f"Balance: {n_flag} of {len(bal)} covariate levels differ by |SMD| > {BALANCE_SMD:g}"
        if n_flag
        else f"Balance: all {len(bal)} covariate levels within |SMD| {BALANCE_SMD:g}"
    )
    return lead + f" (largest {worst['covariate']}{level}: {worst['smd']:+.3f})."


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------
def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
