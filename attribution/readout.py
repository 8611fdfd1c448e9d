"""Read out one randomized experiment from the store: cells, uplift models, money, verdict.

This is the path from the store to a number a finance reviewer can check:

0. the sample-ratio-mismatch gate, before anything else: the arm counts against the designed
   shares in the experiment's design record (``design["allocation"] = {arm: share}``), a
   chi-square test (:func:`attribution.srm.srm_check`) that raises
   :class:`~attribution.errors.SampleRatioError` at ``p <`` :data:`attribution.srm.SRM_ALARM_P`
   unless the caller overrides it (``check_srm=False``); without an allocation it is skipped and
   a note says so;
1. the experiment's arms (one named ``control``) and its outcome window: from the start month to
   the horizon (by default the last outcome month observed for its customers);
2. cells by segment and arm, with pre-period spend bands where history exists (CUPED's Bayesian
   analogue);
3. three cell models: retention (binomial), and revenue and cost-to-serve (hurdles) conditional on
   retention status at the horizon, combined draw by draw into one joint posterior
   (:mod:`attribution.joint`);
4. money per posterior draw (:mod:`attribution.value`): a monthly cash-flow schedule, net value,
   ROI, payback, expected loss; the overall row is the weighted sum of the segment rows;
5. the diagnostics gate over every model and the combined effects: only a readout whose fits all
   passed is publishable.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from attribution import joint, runs, store, uplift
from attribution.cells import (
    EVERYONE,
    MISSING_SEGMENT,
    PRE_BANDS,
    cells,
    monthly_totals,
    segment_sql,
)
from attribution.checks import FAIL, PASS, WARN, Check, describe_checks
from attribution.config import OUTCOMES as CONFIG_OUTCOMES
from attribution.config import Config, ModelSettings
from attribution.errors import InputError, SampleRatioError
from attribution.estimates import as_estimate_rows
from attribution.forest import forest_plot
from attribution.looks import LookState, look_state
from attribution.periods import add_months, window_months
from attribution.settings import CHURN_AFTER_WINDOW, IntervalSetting, MoneySettings
from attribution.srm import SRM_ALARM_P, SRMCheck, srm_check, srm_record
from attribution.uplift import CONTROL, RetentionUplift, SpendUplift
from attribution.value import (
    MONEY_OUTCOMES,
    assumption,
    held_survival,
    late_months,
    money_draws,
    payback_reason,
    summarize_money,
    window_profile,
)

#: Every outcome a readout can fit (``[model] outcomes`` picks a subset; money needs all three).
OUTCOMES = CONFIG_OUTCOMES
#: Estimand of a randomized readout: intention to treat (assigned treated minus control).
ESTIMAND = "itt"
#: ``method`` of the rows a readout publishes.
METHOD = "bayesian_cells"
#: Said wherever money would be when ``[model] outcomes`` is a subset.
NO_MONEY_NOTE = (
    "No net value, ROI or payback: [model] outcomes fits only {outcomes}, and money needs "
    "retention, revenue and cost_to_serve."
)
#: Outcomes measured in money (revenue and cost to serve); one without data is assumed unchanged.
SPEND_OUTCOMES = ("revenue", "cost_to_serve")
#: The default segment columns: skipped with a note where the store has no values for them.
DEFAULT_SEGMENTS = ModelSettings().segments
#: Segment column used when effects are wanted overall only (one segment, "everyone").
OVERALL = "_overall"
#: Columns of :attr:`ExperimentReadout.table`: the ``estimates`` table's, less ``run_id`` and
#: ``interval_width`` (set when a run publishes), plus ``diagnostics`` (passed / failed).
COLUMNS = [
    *(c for c in runs.ESTIMATE_COLUMNS if c not in ("run_id", "interval_width")),
    "diagnostics",
]


@dataclass
class ExperimentReadout:
    """The readout of one experiment.

    Attributes
    ----------
    experiment_id, intervention : str
    start, horizon : date
        First and last month of the outcome window.
    arms : dict
        Customers assigned per arm.
    models : dict
        Fitted uplift models keyed by (outcome, segment column). With money, the revenue and
        cost-to-serve models are fitted conditional on retention status (segments
        ``"<segment>/<0|1>"``); their effects on everyone are in :attr:`joints`.
    table : pandas.DataFrame
        Every reported number (see :data:`COLUMNS`).
    passed : bool
        True when every model passed the diagnostics gate.
    reasons : list of str
        Why the gate failed, in plain words.
    notes : list of str
        Caveats in plain words (a skipped or overridden SRM check, missing intervention costs).
    srm : attribution.srm.SRMCheck or None
        The sample-ratio-mismatch check run before any fitting; None when the design record has
        no allocation to check against. Its counts and expected counts are in the order of
        :attr:`srm_arms`.
    srm_arms : tuple of str
        Arm names of ``srm.counts``: the arms of :attr:`arms`, then any arm of the allocation
        with no customers.
    money : MoneySettings
        The money assumptions used.
    joints : dict
        :class:`attribution.joint.JointFit` per segment column: retention, revenue and
        cost-to-serve combined draw by draw (empty when ``[model] outcomes`` is a subset).
    interval : IntervalSetting
        The interval setting every interval of the readout was computed with.
    assumed : tuple of str
        Outcomes not measured in this store (no positive value in the window): not fitted, and
        money assumes the intervention did not change them
        (:func:`attribution.value.assumption`).
    look : attribution.looks.LookState or None
        A monitored test's planned look (the window ends at it when one is reached); None for
        a fixed-horizon test.
    cluster : str or None
        A cluster-randomized test's customers column of clusters (a level of every model);
        None when customers were randomized.
    churn_after_window : str
        What net value assumed the effect on churn did after the window ("ends" or "held",
        from the design record; see :mod:`attribution.value`).
    """

    experiment_id: str
    intervention: str
    start: date
    horizon: date
    arms: dict[str, int]
    models: dict = field(repr=False)
    table: pd.DataFrame = field(repr=False)
    passed: bool = True
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    srm: SRMCheck | None = None
    srm_arms: tuple[str, ...] = ()
    money: MoneySettings = field(default_factory=MoneySettings)
    joints: dict = field(default_factory=dict, repr=False)
    assumed: tuple[str, ...] = ()
    interval: IntervalSetting = field(default_factory=IntervalSetting)
    look: LookState | None = None
    cluster: str | None = None
    churn_after_window: str = CHURN_AFTER_WINDOW[0]

    @property
    def window_months(self) -> int:
        return window_months(self.start, self.horizon)

    def summary(self) -> pd.DataFrame:
        """Every reported number, one row each, in the schema of the published estimates table
        (:data:`attribution.estimates.EFFECT_COLUMNS`; :attr:`table` adds the gate's verdict)."""
        return as_estimate_rows(self.table, interval_width=self.interval.width)

    def plot(
        self,
        outcomes: tuple[str, ...] = ("retention", "revenue", "cost_to_serve", "net_value"),
        segment_by: str | None = None,
    ):
        """Forest plot of the effects and the net value, one panel per outcome
        (:func:`attribution.forest.forest_plot` of :meth:`summary`).

        Parameters
        ----------
        outcomes : tuple of str
            The panels, in order (those the readout has).
        segment_by : str, optional
            The segment column to show (default: the first the readout used); the overall
            effect is always the bottom line.
        """
        rows = self.summary()
        column = segment_by or next((s for s in rows["segment_by"] if s not in ("all", None)), None)
        keep = rows["outcome"].isin(outcomes) & (
            (rows["segment"] == "all") | (rows["segment_by"] == column)
        )
        rows = rows[keep]
        order = {o: i for i, o in enumerate(outcomes)}
        rows = rows.sort_values("outcome", key=lambda s: s.map(order), kind="stable")
        return forest_plot(rows, ylabel=column)

    def headline(self) -> pd.DataFrame:
        """Overall absolute effects and money, per treatment arm: what a reviewer reads first."""
        t = self.table
        keep = (t["segment"] == "all") & (
            ((t["metric"] == "absolute") & t["outcome"].isin([*OUTCOMES, "net_value"]))
            | (t["outcome"] == "roi")
        )
        return t[keep].reset_index(drop=True)

    def describe(self) -> str:
        """Plain sentences: the window, each headline effect, the money and the verdict."""
        lines = [
            f"{self.experiment_id} ({self.intervention}): outcomes from {self.start:%Y-%m} to "
            f"{self.horizon:%Y-%m}, "
            + ", ".join(f"{arm} {n:,}" for arm, n in self.arms.items())
            + " customers."
        ]
        checks = self.checks()
        lines += describe_checks(checks[:1], indent="")
        first = next(iter(self.models))[1]
        for (outcome, seg_by), model in self.models.items():
            if seg_by == first and (outcome == "retention" or first not in self.joints):
                lines.append(model.describe())
        if first in self.joints and self.joints[first].describe(self.intervention):
            lines.append(self.joints[first].describe(self.intervention))
        t = self.table
        for _, r in self.headline().iterrows():
            if r["outcome"] == "net_value":
                pay = t[(t["outcome"] == "payback_months") & (t["segment"] == "all")
                        & (t["arm"] == r["arm"])]  # fmt: skip
                lines.append(
                    f"Net value per assigned customer ({r['arm']}): {r['mean']:,.2f} "
                    f"({self.interval.width:.0%} interval {r['lo']:,.2f} to {r['hi']:,.2f}), "
                    f"P(net value > 0) = {r['p_positive']:.2f}; " + _payback_words(pay, self)
                )
        lines += describe_checks(checks[1:], indent="")
        return "\n".join(lines + self.notes)

    def checks(self) -> list[Check]:
        """The sample-ratio check, then the diagnostics gate over every model (its table one row
        per model and variable, ``model`` naming the fit)."""
        if self.srm is None:
            srm = Check(
                "sample ratio", WARN, "SRM check skipped: the design record has no allocation."
            )
        else:
            srm = self.srm.as_check(self.srm_arms)
        tables = [
            model.diagnostics_.summary().assign(model=f"{outcome} by {seg}")
            for (outcome, seg), model in self.models.items()
        ] + [
            joint.diagnostics.summary().assign(model=f"joint by {seg}")
            for seg, joint in self.joints.items()
        ]
        gate = Check(
            "diagnostics",
            PASS if self.passed else FAIL,
            "Diagnostics passed: publishable."
            if self.passed
            else "Diagnostics FAILED, not publishable: " + "; ".join(self.reasons),
            pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(),
        )
        return [srm, gate]

    def to_records(self) -> list[dict]:
        """JSON-ready rows; each carries ``srm_p``, the SRM p-value (null when not checked).

        A payback row whose mean is null (no payback within the schedule) carries ``reason``.
        Money rows carry ``assumed_unchanged``: the outcomes not measured in this store, which
        the money assumes the intervention did not change (empty when all were measured), and
        ``churn_effect_after_window``: what the value after the window assumed ("ends" or
        "held", from the design record).
        """
        records = json.loads(self.table.to_json(orient="records"))
        srm_p = None if self.srm is None else self.srm.p_value
        for record in records:
            record["srm_p"] = srm_p
            if record["outcome"] in MONEY_OUTCOMES:
                record["assumed_unchanged"] = list(self.assumed)
                record["churn_effect_after_window"] = self.churn_after_window
            if record["outcome"] == "payback_months" and record["mean"] is None:
                record["reason"] = self.payback_reason
        return records

    @property
    def payback_reason(self) -> str:
        """Plain words for a payback that does not happen within the window and value horizon."""
        return payback_reason(self.window_months, self.money)

    def srm_dict(self) -> dict:
        """The SRM check as a JSON-ready dict (``checked`` False when there was no allocation)."""
        return srm_record(self.srm, self.srm_arms)


def _payback_words(pay: pd.DataFrame, readout: ExperimentReadout) -> str:
    if pay.empty:
        return "no intervention cost, so no payback."
    r = pay.iloc[0]
    chance = f"P(pays back) = {r['p_positive']:.2f}"
    if pd.isna(r["mean"]):
        return f"{readout.payback_reason} ({chance})."
    return f"pays back in month {int(r['mean'])} of the schedule ({chance})."


def read_out(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    *,
    segments: list[str] | tuple[str, ...] | None = None,
    horizon_months: int | None = None,
    config: Config | None = None,
    check_srm: bool = True,
) -> ExperimentReadout:
    """Check the sample ratio, then fit one experiment and turn its effects into money.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open store.
    experiment_id : str
        An experiment in the store, with assignments and one arm named ``control``.
    segments : list of str, optional
        Segment columns; defaults to the configuration's ``model.segments``. Empty: overall only.
    horizon_months : int, optional
        Length of the outcome window in months, counting the start month (1 = the start month
        only). Default: up to the last outcome month observed for the experiment's customers;
        for a monitored test (a ``monitoring`` section in its design record, ``cx assign
        --looks``), up to its latest planned look the data reach (:mod:`attribution.looks`).
    config : Config, optional
        Sampler, money, interval and gate settings; defaults to :class:`Config()`.
    check_srm : bool
        Stop with :class:`SampleRatioError` when the sample-ratio-mismatch check alarms
        (default). False overrides the alarm: the readout proceeds and a note records it.

    Returns
    -------
    ExperimentReadout

    Raises
    ------
    InputError
        Unknown experiment, no control arm, an arm without customers, an unusable allocation in
        the design record, an unknown segment column, or outcomes missing for the horizon.
    SampleRatioError
        The arm counts do not match the designed shares (``p <``
        :data:`attribution.srm.SRM_ALARM_P`), or arms in the data and in the allocation
        differ; raised before any cells or models are computed.

    Examples
    --------
    >>> from attribution import store, synth
    >>> con = store.connect(":memory:")
    >>> _ = synth.simulate(con, 2000, months=6, seed=1)
    >>> drop = "DELETE FROM assignments WHERE arm = 'treatment' AND customer_id < 'C0000150'"
    >>> _ = con.execute(drop)
    >>> read_out(con, "exp_recovery_gift")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    attribution.errors.SampleRatioError: experiment 'exp_recovery_gift' fails the sample-ratio...
    """
    cfg = config or Config()
    inputs = gather(
        con, experiment_id, segments=segments, horizon_months=horizon_months, config=cfg,
        check_srm=check_srm,
    )  # fmt: skip
    precompile([inputs], cfg)
    return fit_inputs(inputs, cfg)


@dataclass(frozen=True)
class ReadoutInputs:
    """Everything a readout of one experiment reads from the store, and nothing more.

    What :func:`gather` returns and :func:`fit_inputs` fits: the preflight, and per segment
    column (None: overall) the cells split by retention status, the intervention costs per
    assigned customer and the monthly totals of the money profile. Thousands of rows whatever
    the number of customers, so a refresh reads them and closes the store before sampling.
    """

    preflight: Preflight
    splits: dict[str | None, pd.DataFrame]
    unit_costs: dict[str | None, dict[str, pd.Series]]
    totals: dict[str | None, pd.DataFrame]


def gather(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    *,
    segments: list[str] | tuple[str, ...] | None = None,
    horizon_months: int | None = None,
    config: Config | None = None,
    check_srm: bool = True,
) -> ReadoutInputs:
    """Read what :func:`read_out` fits from the store: checks first, then cells and money inputs.

    Parameters and errors are those of :func:`read_out`.
    """
    cfg = config or Config()
    pre = preflight(
        con, experiment_id, segments=segments, horizon_months=horizon_months, config=cfg,
        check_srm=check_srm,
    )  # fmt: skip
    splits, costs, totals = {}, {}, {}
    for seg_by in list(pre.segments) or [None]:
        by = [seg_by, joint.STATUS] if seg_by else [joint.STATUS]
        split = cells(
            con,
            [*by, pre.cluster] if pre.cluster else by,
            experiment_id=experiment_id,
            start=pre.start,
            horizon=pre.horizon,
            pre_bands=pre.pre_bands,
        )
        if seg_by is None:
            split = split.assign(**{OVERALL: EVERYONE})
        splits[seg_by] = split
        if cfg.model.money:
            costs[seg_by] = _unit_costs(con, experiment_id, seg_by)
            totals[seg_by] = monthly_totals(con, experiment_id, seg_by, pre.start, pre.horizon)
    return ReadoutInputs(preflight=pre, splits=splits, unit_costs=costs, totals=totals)


def fit_inputs(inputs: ReadoutInputs, config: Config | None = None) -> ExperimentReadout:
    """Fit the models of one experiment on what :func:`gather` read (no store needed).

    Parameters
    ----------
    inputs : ReadoutInputs
    config : Config, optional
        The settings ``inputs`` were gathered with (default :class:`Config()`).

    Returns
    -------
    ExperimentReadout
    """
    cfg = config or Config()
    pre = inputs.preflight
    experiment_id = pre.experiment_id
    exp, arms, srm, srm_arms = pre.experiment, pre.arms, pre.srm, pre.srm_arms
    seg_cols, start, horizon = list(pre.segments), pre.start, pre.horizon
    notes = list(pre.notes)
    readout_models: dict = {}
    joints: dict[str, joint.JointFit] = {}
    tables = []
    reasons: list[str] = []
    assumed, plan = _plan(inputs, cfg, notes)
    for seg_by, fits in plan.items():
        seg_name = seg_by or OVERALL
        fitted = {}
        for outcome, model, data, segment in fits:
            model.fit(data, segment)
            fitted[outcome] = model
            readout_models[(outcome, seg_name)] = model
            if not model.diagnostics_.passed:
                reasons += [f"{outcome} by {seg_name}: {r}" for r in model.diagnostics_.reasons]
            if outcome == "retention" or not cfg.model.money:
                tables.append(model.effects_.copy())
        if cfg.model.money:
            combined = joint.combine(
                fitted["retention"],
                {o: fitted[o] for o in ("revenue", "cost_to_serve") if o in fitted},
                interval=cfg.interval,
                gate=cfg.gate,
            )
            joints[seg_name] = combined
            if not combined.diagnostics.passed:
                reasons += [f"joint by {seg_name}: {r}" for r in combined.diagnostics.reasons]
            tables.append(combined.effects)
            counts = fitted["retention"].effects_
            money = _money(inputs, combined, counts, seg_by, cfg, notes)
            tables.append(money)
    if not cfg.model.money:
        notes.append(NO_MONEY_NOTE.format(outcomes=", ".join(cfg.model.outcomes)))
    table = pd.concat(tables, ignore_index=True)
    if seg_cols == []:
        table = table[table["segment"] == "all"]
        table["segment_by"] = "all"
    table["segment_by"] = np.where(table["segment"] == "all", "all", table["segment_by"])
    table = table.drop_duplicates(subset=["arm", "outcome", "segment_by", "segment", "metric"])
    passed = not reasons
    table = table.assign(
        experiment_id=experiment_id,
        intervention=exp["intervention"],
        method=METHOD,
        estimand=ESTIMAND,
        diagnostics="passed" if passed else "failed",
    )
    for col in COLUMNS:
        if col not in table:
            table[col] = np.nan
    return ExperimentReadout(
        experiment_id=experiment_id,
        intervention=exp["intervention"],
        start=start,
        horizon=horizon,
        arms=arms,
        models=readout_models,
        table=table[COLUMNS].reset_index(drop=True),
        passed=passed,
        reasons=reasons,
        notes=notes,
        srm=srm,
        srm_arms=srm_arms,
        money=cfg.money,
        joints=joints,
        assumed=assumed,
        interval=cfg.interval,
        look=pre.look,
        cluster=pre.cluster,
        churn_after_window=pre.churn_after_window,
    )


def _plan(inputs: ReadoutInputs, cfg: Config, notes: list[str]) -> tuple[tuple[str, ...], dict]:
    """The outcomes assumed unchanged (not measured, a note each) and, per segment column, the
    (outcome, estimator, cells, segment) of each fit, in fitting order.

    Retention is fitted on cells summed over retention status; with money, revenue and
    cost-to-serve are fitted conditional on it, for one joint posterior (attribution.joint).
    """
    pre = inputs.preflight
    first = inputs.splits[(list(pre.segments) or [None])[0]]  # the first breakdown's cells say it
    assumed = unmeasured(first, pre.experiment_id, pre.start, pre.horizon, cfg, notes)
    plan = {}
    for seg_by, split in inputs.splits.items():
        seg_name = seg_by or OVERALL
        keys = [c for c in split.columns if c in (seg_name, "pre_band", "arm", pre.cluster)]
        stats = [c for c in split.columns if c not in (*keys, joint.STATUS, OVERALL, seg_by)]
        frame = split.groupby(keys, as_index=False, sort=True)[stats].sum()
        fits = []
        for outcome in [o for o in cfg.model.outcomes if o not in assumed]:
            model = _model(outcome, pre.experiment["intervention"], cfg, pre.cluster)
            if outcome == "retention" or not cfg.model.money:
                fits.append((outcome, model, frame, seg_name))
            else:
                fits.append((outcome, model, split, [seg_name, joint.STATUS]))
        plan[seg_by] = fits
    return assumed, plan


def precompile(inputs: list[ReadoutInputs], config: Config | None = None) -> int:
    """Compile the models several readouts will need, side by side, before fitting any.

    Worth it on the first run on a machine (nothing in the compiled-model cache): each model
    compiles in its own helper process (:func:`attribution.uplift.precompile`). Returns how
    many models were compiled.
    """
    cfg = config or Config()
    fits = []
    for one in inputs:
        _, plan = _plan(one, cfg, [])
        fits += [fit for fits_ in plan.values() for _, *fit in fits_]
    return uplift.precompile(fits)


@dataclass(frozen=True)
class Preflight:
    """What a readout of one experiment will use, settled before any cells or models.

    Attributes
    ----------
    experiment_id : str
    experiment : dict
        ``intervention``, ``started`` (first day of the start month) and ``design`` (dict).
    arms : dict
        Customers per arm, control first.
    srm : SRMCheck or None
        The sample-ratio check (None without an allocation).
    srm_arms : tuple of str
    segments : tuple of str
        Segment columns effects are broken down by (see :func:`read_out`).
    start, horizon : date
        The outcome window.
    pre_bands : int
        Pre-period spend bands (0 without history before ``start``).
    notes : tuple of str
        What was skipped or overridden, in words.
    look : attribution.looks.LookState or None
        For a test with a monitoring plan in its design record: the planned look the window
        ends at (see :func:`_look`); None for a fixed-horizon test.
    cluster : str or None
        For a cluster-randomized test: the customers column of its clusters, a level of every
        model (:mod:`attribution.uplift`); None when customers were randomized.
    churn_after_window : str
        What net value assumes the intervention's effect on churn does after the window, from
        the design record (:data:`attribution.settings.CHURN_AFTER_WINDOW`; "ends" by default).
    """

    experiment_id: str
    experiment: dict
    arms: dict
    srm: SRMCheck | None
    srm_arms: tuple[str, ...]
    segments: tuple[str, ...]
    start: date
    horizon: date
    pre_bands: int
    notes: tuple[str, ...]
    look: LookState | None = None
    cluster: str | None = None
    churn_after_window: str = CHURN_AFTER_WINDOW[0]

    @property
    def window_months(self) -> int:
        return window_months(self.start, self.horizon)


def preflight(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    *,
    segments: list[str] | tuple[str, ...] | None = None,
    horizon_months: int | None = None,
    config: Config | None = None,
    check_srm: bool = True,
) -> Preflight:
    """Every check :func:`read_out` makes before it computes cells: the same rules, no models.

    Parameters and errors are those of :func:`read_out` (``check_srm=False`` records an alarm
    in the notes instead of raising). ``cx check`` runs this for every experiment.
    """
    cfg = config or Config()
    exp = _experiment(con, experiment_id)
    arms = _arms(con, experiment_id, exp["design"])
    notes: list[str] = []
    srm, srm_arms, cluster = design_srm(
        con, experiment_id, arms, exp["design"], check_srm=check_srm, notes=notes
    )
    seg_cols = _segment_columns(con, experiment_id, segments, cfg, notes)
    if cluster in seg_cols:
        seg_cols.remove(cluster)
        notes.append(
            f"Not broken down by {cluster}: the test was randomized by {cluster}, so each "
            f"{cluster} is in one arm only and has no comparison of its own."
        )
    last = _last_period(con, experiment_id)
    look = _look(exp, last, horizon_months)
    if look is not None:
        if horizon_months is None and look.month is not None:
            horizon_months = look.month  # a monitored test is read at its latest planned look
        notes.append(look.sentence(exp["started"]))
    start, horizon = _window(experiment_id, exp["started"], last, horizon_months)
    first, _ = store.periods(con)
    pre_bands = PRE_BANDS if cfg.model.pre_period and first is not None and first < start else 0
    if cfg.model.pre_period and not pre_bands:
        notes.append(
            f"No outcome months before {start:%Y-%m} in this store: effects are not adjusted "
            "for pre-period spend (load earlier months to narrow the intervals)."
        )
    note = rerandomization_note(exp["design"], seg_cols)
    if note:
        notes.append(note)
    churn = churn_after_window(experiment_id, exp["design"], window_months(start, horizon), notes)
    return Preflight(
        experiment_id=experiment_id,
        experiment=exp,
        arms=arms,
        srm=srm,
        srm_arms=tuple(srm_arms),
        segments=tuple(seg_cols),
        start=start,
        horizon=horizon,
        pre_bands=pre_bands,
        notes=tuple(notes),
        look=look,
        cluster=cluster,
        churn_after_window=churn,
    )


def churn_after_window(
    experiment_id: str, design: dict | None, window: int, notes: list[str]
) -> str:
    """What net value assumes the effect on churn does after the window: the design record's
    ``churn_effect_after_window`` ("ends" when it has none; see :mod:`attribution.value`).

    A "held" effect needs two months to read a churn rate from: a one-month window is read as
    "ends", and ``notes`` says so.
    """
    record = design if isinstance(design, dict) else {}
    rule = record.get("churn_effect_after_window", CHURN_AFTER_WINDOW[0])
    if rule not in CHURN_AFTER_WINDOW:
        raise InputError(
            f"experiment {experiment_id!r}: design.churn_effect_after_window must be one of "
            f"{', '.join(repr(r) for r in CHURN_AFTER_WINDOW)}, got {rule!r}"
        )
    if rule == "held" and window < 2:
        notes.append(
            f"{experiment_id}: its design holds the effect on churn after the window, but a "
            "one-month window has no churn to read: net value lets the effect end with it."
        )
        return CHURN_AFTER_WINDOW[0]
    return rule


def design_srm(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    arms: dict[str, int],
    design: dict,
    *,
    check_srm: bool = True,
    notes: list[str] | None = None,
) -> tuple[SRMCheck | None, tuple[str, ...], str | None]:
    """The sample-ratio gate on the unit the design randomized: customers, or the clusters of a
    cluster-randomized test (:func:`cluster_units`, :func:`srm_gate`).

    Returns the check, the arm order of its counts and the cluster column (None for customers).
    """
    cluster, units = cluster_units(con, experiment_id, design, arms, notes)
    check, order = srm_gate(
        experiment_id, units or arms, design, check_srm=check_srm, notes=notes,
        unit="clusters" if cluster else "customers",
    )  # fmt: skip
    return check, order, cluster


def cluster_units(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    design: dict,
    arms: dict[str, int],
    notes: list[str] | None = None,
) -> tuple[str | None, dict[str, int] | None]:
    """The cluster column of a cluster-randomized test and its clusters per arm (a note says
    how it is read out); (None, None) when customers were randomized.

    Raises InputError when the column is not a customers column or a cluster sits in two arms
    (the record says clusters were assigned whole: the data say otherwise).
    """
    record = design.get("cluster") if isinstance(design, dict) else None
    if not record:
        return None, None
    column = record.get("column") if isinstance(record, dict) else None
    if not isinstance(column, str) or not column:
        raise InputError(
            f"experiment {experiment_id!r}: design.cluster must name a customers column, "
            f"got {record!r}"
        )
    columns = store.segment_columns(con)
    if column not in columns:
        raise InputError(
            f"experiment {experiment_id!r} was randomized by {column!r}, which is not a column "
            f"of customers ({columns}); load it with the customers to read the test out"
        )
    counts, mixed = store.cluster_counts(con, experiment_id, column)
    if mixed:
        raise InputError(
            f"experiment {experiment_id!r} was randomized by {column}, but {column} "
            f"{', '.join(map(repr, mixed))} ha{'s' if len(mixed) == 1 else 've'} customers in "
            "more than one arm: the assignments are not the cluster design the record states"
        )
    units = {a: counts.get(a, 0) for a in arms}
    per_arm = ", ".join(f"{a} {k:,}" for a, k in units.items())
    notes = [] if notes is None else notes
    notes.append(
        f"Randomized by {column}: {sum(units.values()):,} clusters ({per_arm}), "
        f"{sum(arms.values()) / max(sum(units.values()), 1):,.0f} customers each on average. "
        f"Every model has a {column} level (random intercepts), so the intervals carry the "
        f"variation between {column} values, and the sample-ratio check counts clusters."
    )
    return column, units


def rerandomization_note(design: dict | None, segments: list[str] | tuple[str, ...]) -> str:
    """Words for a re-randomized test whose readout does not adjust for every balancing
    covariate: valid, but its intervals are wider than the balance it was given supports.

    Re-randomization (Morgan & Rubin 2012) accepts only assignments that balance the covariates,
    which makes the difference in means more precise than a plain randomization; a readout that
    does not adjust for those covariates keeps the plain randomization's variance, so its
    intervals are conservative. The readout adjusts for its segment columns (and pre-period
    spend bands), so the note names the covariates outside them; empty when there are none.

    Examples
    --------
    >>> rerandomization_note({"rerandomized": True, "inputs": {"covariates": ["tier", "score"]}},
    ...                      ["tier"])[:41]
    'Re-randomized on tier, score: the readout'
    """
    design = design or {}
    covariates = list((design.get("inputs") or {}).get("covariates") or [])
    if not design.get("rerandomized") or not covariates:
        return ""
    unadjusted = [c for c in covariates if c not in set(segments)]
    if not unadjusted:
        return ""
    return (
        f"Re-randomized on {', '.join(covariates)}: the readout does not adjust for "
        f"{', '.join(unadjusted)}, so its intervals are conservative (wider than the balance "
        "the assignment guaranteed supports; the estimates are unbiased). Read it out by "
        f"{unadjusted[0]} (segments) to use that balance."
    )


def unmeasured(
    split: pd.DataFrame,
    experiment_id: str,
    start: date,
    horizon: date,
    cfg: Config,
    notes: list[str],
) -> tuple[str, ...]:
    """Outcomes asked for whose values are all zero in the window: not measured in this store.

    ``split`` is any cells frame of the experiment's window. The outcomes are not fitted; money
    (when asked for) assumes the intervention did not change them, and a note says so.
    """
    out = tuple(
        o for o in SPEND_OUTCOMES if o in cfg.model.outcomes and split[f"{o}_npos"].sum() == 0
    )
    for outcome in out:
        words = outcome.replace("_", " ")
        note = (
            f"{words.capitalize()} not measured in this store (no customer of {experiment_id} "
            f"has a positive {outcome} from {start:%Y-%m} to {horizon:%Y-%m})"
        )
        if cfg.model.money:
            note += f": {assumption(outcome)}"
        notes.append(note + ".")
    return out


def _segment_columns(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    segments: list[str] | tuple[str, ...] | None,
    cfg: Config,
    notes: list[str],
) -> list[str]:
    """The segment columns to break effects down by: the requested ones that have values.

    Asked for by name (``segments``, or a ``[model] segments`` other than the default), a column
    that is not in the store or has no value for the experiment's customers is an error naming
    the columns that do have values. The default (``tier``) adapts: a column without values is
    skipped with a note. Customers without a value in a used column form the segment
    :data:`attribution.cells.MISSING_SEGMENT` (a note counts them).
    """
    explicit = segments is not None or tuple(cfg.model.segments) != DEFAULT_SEGMENTS
    asked = list(cfg.model.segments if segments is None else segments)
    profile = store.segment_profile(con, experiment_id).set_index("column")
    with_values = [c for c in profile.index if profile.at[c, "values"] > 0]
    have = ", ".join(with_values) if with_values else "none"
    keep = []
    for col in asked:
        if col in with_values:
            keep.append(col)
            missing = int(profile.at[col, "missing"])
            if missing:
                notes.append(
                    f"{col} is missing for {missing:,} of {experiment_id}'s "
                    f"{int(profile.at[col, 'customers']):,} customers: they are the segment "
                    f"{MISSING_SEGMENT!r}."
                )
            continue
        what = (
            "is not a column of customers"
            if col not in profile.index
            else (f"has no value for any customer of {experiment_id}")
        )
        if explicit:
            raise InputError(
                f"segment column {col!r} {what}; columns with values: {have} "
                "(--segments COL,COL, or --segments '' for overall effects only)"
            )
        notes.append(f"No {col} in this store: effects are not broken down by it.")
    if asked and not keep:
        notes[-1] = notes[-1][:-1] + (
            f", overall only; --segments COL to break them down (columns with values: {have})."
        )
    return keep


def experiment_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every experiment in the store that has assignments, sorted."""
    rows = con.execute(
        "SELECT DISTINCT experiment_id FROM assignments ORDER BY experiment_id"
    ).fetchall()
    return [r[0] for r in rows]


def srm_gate(
    experiment_id: str,
    arms: dict[str, int],
    design: dict,
    *,
    check_srm: bool = True,
    notes: list[str] | None = None,
    unit: str = "customers",
) -> tuple[SRMCheck | None, tuple[str, ...]]:
    """Sample-ratio-mismatch gate: arm counts against the design record's allocation.

    Parameters
    ----------
    experiment_id : str
        For messages.
    arms : dict
        Customers (or, for a cluster-randomized test, clusters) assigned per arm (arms with
        customers only).
    design : dict
        The experiment's design record; ``design["allocation"]`` maps arm to designed share.
    check_srm : bool
        Raise on an alarm (default); False records the override in ``notes`` instead.
    notes : list of str, optional
        Receives a line when the check is skipped (no allocation) or an alarm is overridden.
    unit : str
        What ``arms`` counts, for messages: ``"customers"`` or ``"clusters"``.

    Returns
    -------
    (SRMCheck or None, tuple of str)
        The check (None when skipped) and the arm names in the order of its counts. Arms that
        are in the data but not in the allocation, or in the allocation without customers, give
        an alarm with ``chi2 = inf`` and ``p_value = 0``.

    Raises
    ------
    InputError
        The allocation is not a table of arm -> share > 0 summing to 1.
    SampleRatioError
        On an alarm when ``check_srm`` is True.

    Examples
    --------
    >>> check, order = srm_gate("e", {"control": 500, "treatment": 510},
    ...                         {"allocation": {"control": 0.5, "treatment": 0.5}})
    >>> order, check.alarm
    (('control', 'treatment'), False)
    """
    notes = [] if notes is None else notes
    allocation = design.get("allocation") if isinstance(design, dict) else None
    if allocation is None:
        notes.append(
            f"SRM check skipped for {experiment_id}: its design record has no allocation "
            "(designed share per arm) to check the arm counts against."
        )
        return None, tuple(arms)
    shares = _allocation(experiment_id, allocation)
    extra = [a for a in arms if a not in shares]
    empty = [a for a in shares if arms.get(a, 0) == 0]
    order = tuple(arms) + tuple(empty)
    counts = [arms.get(a, 0) for a in order]
    total = sum(counts)
    if extra or empty:
        expected = tuple(shares.get(a, 0.0) * total for a in order)
        check = SRMCheck(math.inf, 0.0, True, tuple(counts), expected)
        problems = []
        if extra:
            problems.append(f"arm(s) {extra} have {unit} but are not in the design's allocation")
        if empty:
            problems.append(f"arm(s) {empty} of the design's allocation have no {unit}")
        cause = "; ".join(problems)
    else:
        check = srm_check(counts, [shares[a] for a in order])
        cause = f"chi2 = {check.chi2:.2f}, p = {check.p_value:.3g} < {SRM_ALARM_P:g}"
    if not check.alarm:
        return check, order
    observed = ", ".join(f"{a} {n:,}" for a, n in zip(order, counts, strict=True))
    designed = ", ".join(f"{a} {s:g}" for a, s in shares.items())
    message = (
        f"experiment {experiment_id!r} fails the sample-ratio-mismatch check: {unit} "
        f"{observed} against designed shares {designed} ({cause})"
    )
    if check_srm:
        raise SampleRatioError(
            message + "; nothing was fitted or published. Find why the arms are out of "
            "proportion (assignment, eligibility or logging) before reading the test out; "
            "check_srm=False (cx --ignore-srm) overrides.",
            experiment_id=experiment_id,
            srm=check,
            arms=order,
        )
    notes.append(f"SRM alarm overridden (check_srm=False): {message}. The effects may be biased.")
    return check, order


def _allocation(experiment_id: str, allocation: object) -> dict[str, float]:
    where = f"experiment {experiment_id!r}: design.allocation"
    if not isinstance(allocation, dict) or len(allocation) < 2:
        raise InputError(
            f"{where} must map at least two arms to their designed shares, got {allocation!r}"
        )
    shares = {}
    for arm, share in allocation.items():
        if isinstance(share, bool) or not isinstance(share, int | float):
            raise InputError(f"{where}[{arm!r}] must be a number, got {share!r}")
        if not (math.isfinite(share) and share > 0):
            raise InputError(f"{where}[{arm!r}] must be a share > 0, got {share!r}")
        shares[str(arm)] = float(share)
    if not math.isclose(sum(shares.values()), 1.0, abs_tol=1e-6):
        raise InputError(f"{where} shares must sum to 1, got {allocation!r}")
    return shares


def _model(outcome: str, intervention: str, cfg: Config, cluster: str | None = None):
    kwargs = dict(
        intervention=intervention,
        cluster=cluster,
        sampler=cfg.model.sampler,
        draws=cfg.model.draws,
        tune=cfg.model.tune,
        chains=cfg.model.chains,
        seed=cfg.model.seed,
        interval=cfg.interval,
        gate=cfg.gate,
    )
    if outcome == "retention":
        return RetentionUplift(**kwargs)
    return SpendUplift(family=outcome, **kwargs)


def _experiment(con: duckdb.DuckDBPyConnection, experiment_id: str) -> dict:
    row = con.execute(
        "SELECT intervention, started, design FROM experiments WHERE experiment_id = ?",
        [experiment_id],
    ).fetchone()
    if row is None:
        known = [r[0] for r in con.execute("SELECT experiment_id FROM experiments").fetchall()]
        raise InputError(f"experiment {experiment_id!r} is not in the store; known: {known}")
    try:
        design = json.loads(row[2]) if row[2] else {}
    except ValueError as exc:  # DuckDB's JSON type accepts more than strict JSON
        raise InputError(
            f"experiment {experiment_id!r}: its design record is not strict JSON ({exc}); "
            "reload the experiments row with a valid design"
        ) from None
    return {"intervention": row[0], "started": store.parse_period(row[1]), "design": design}


def _arms(con: duckdb.DuckDBPyConnection, experiment_id: str, design: dict) -> dict[str, int]:
    counts = store.arm_counts(con, experiment_id)
    if not counts:
        raise InputError(f"experiment {experiment_id!r} has no assignments")
    if CONTROL not in counts:
        raise InputError(
            f"experiment {experiment_id!r} has no arm named 'control' (arms: {sorted(counts)})"
        )
    declared = design.get("arms") if isinstance(design, dict) else None
    empty = [a for a in (declared or []) if counts.get(a, 0) == 0]
    if len(counts) < 2:
        empty = empty or ["(treatment)"]
    if empty:
        raise InputError(
            f"experiment {experiment_id!r}: arm(s) {empty} have no customers; a readout needs "
            "customers in the control arm and in every treatment arm"
        )
    return {CONTROL: counts[CONTROL], **{a: n for a, n in counts.items() if a != CONTROL}}


def _last_period(con: duckdb.DuckDBPyConnection, experiment_id: str) -> date | None:
    """The last outcome month observed for the experiment's customers.

    Usually the store's last month (known from its statistics without a scan): checked with one
    existence probe of that month, and only otherwise found by scanning their outcomes (at 10M
    customers 0.1 s against 1 s).
    """
    _, store_last = store.periods(con)
    if store_last is None:
        return None
    in_experiment = "customer_id IN (SELECT customer_id FROM assignments WHERE experiment_id = ?)"
    seen = con.execute(
        f"SELECT EXISTS (SELECT 1 FROM outcomes WHERE period = ? AND {in_experiment})",
        [store_last, experiment_id],
    ).fetchone()[0]
    if seen:
        return store_last
    return con.execute(
        f"SELECT max(period) FROM outcomes WHERE {in_experiment}", [experiment_id]
    ).fetchone()[0]


def _look(exp: dict, last: date | None, horizon_months: int | None) -> LookState | None:
    """The planned look of a monitored test (None without a ``monitoring`` design section).

    Without a horizon the window ends at the latest planned look the outcomes reach (the
    final one once the data pass the planned horizon); a horizon given explicitly is a window
    the user chose, located among the looks as it is (a decision is only taken when it ends
    exactly at a planned look).
    """
    design = exp["design"] if isinstance(exp["design"], dict) else {}
    monitoring = design.get("monitoring")
    if not monitoring:
        return None
    start = exp["started"]
    if last is None:
        return None  # _window says what is missing
    if horizon_months:
        last = min(last, add_months(start, int(horizon_months) - 1))
    return look_state(monitoring, start, last)


def _window(
    experiment_id: str, start: date, last: date | None, horizon_months: int | None
) -> tuple[date, date]:
    """The outcome window from ``start``: to ``last`` (the last outcome month) or the horizon."""
    if last is None or last < start:
        raise InputError(
            f"experiment {experiment_id!r}: no outcomes from its start {start:%Y-%m} on; "
            "load outcomes for its customers"
        )
    if horizon_months is None or horizon_months == 0:
        return start, last
    if horizon_months < 1:
        raise InputError(f"horizon must be >= 1 month, got {horizon_months}")
    horizon = add_months(start, horizon_months - 1)
    if horizon > last:
        raise InputError(
            f"experiment {experiment_id!r}: outcomes are missing for the horizon {horizon:%Y-%m} "
            f"({horizon_months} months from {start:%Y-%m}); the last outcome month is "
            f"{last:%Y-%m}"
        )
    return start, horizon


def _money(
    inputs: ReadoutInputs,
    combined: joint.JointFit,
    counts: pd.DataFrame,
    seg_by: str | None,
    cfg: Config,
    notes: list[str],
) -> pd.DataFrame:
    """Money rows per treatment arm and segment from the joint posterior's per-arm levels.

    Money is per assigned customer (intention to treat). The overall row is the
    population-weighted sum of the segment rows, draw by draw (:func:`money_draws`). ``counts``
    are the retention fit's effect rows (customers per arm and segment).
    """
    experiment_id = inputs.preflight.experiment_id
    window = inputs.preflight.window_months
    seg_col = seg_by or OVERALL
    levels = combined.levels
    segments = [str(x) for x in levels.coords["segment"].values]
    costs = inputs.unit_costs[seg_by]
    totals = inputs.totals[seg_by]
    effects = counts[(counts["outcome"] == "retention")]
    out = []
    if inputs.preflight.churn_after_window == "held":
        notes.append(
            f"Net value holds the effect on churn after the window (the design record of "
            f"{experiment_id} says it goes on): over the {cfg.money.value_horizon_months}-month "
            f"value horizon each arm keeps between none and all of its churn gap over the last "
            f"{late_months(window)} window months, evenly across the draws."
        )
    for arm in [a for a in levels.coords["arm"].values if a != CONTROL]:
        if arm not in costs:
            notes.append(
                f"No intervention costs recorded for arm {str(arm)!r} of {experiment_id}: "
                "net value assumes it cost nothing."
            )
        profile = window_profile(totals, CONTROL, arm, segments, window)
        survival = None
        if inputs.preflight.churn_after_window == "held":
            survival = held_survival(
                profile,
                levels["p_active"].sel(arm=CONTROL, drop=True),
                window,
                seed=cfg.model.seed,
            )
        draws = money_draws(
            levels.sel(arm=CONTROL, drop=True),
            levels.sel(arm=arm, drop=True),
            unit_cost=costs.get(arm, pd.Series(0.0, index=segments)),
            window_months=window,
            settings=cfg.money,
            weights=combined.weights,
            profile=profile,
            survival=survival,
        )
        eff = effects[(effects["arm"] == arm) & (effects["metric"] == "absolute")]
        eff = eff.drop_duplicates("segment").set_index("segment")
        table = summarize_money(draws, n_treated=eff["n_treated"], interval=cfg.interval)
        table["arm"] = arm
        table["segment_by"] = seg_col
        table["n_treated"] = table["segment"].map(eff["n_treated"])
        table["n_control"] = table["segment"].map(eff["n_control"])
        out.append(table)
    return pd.concat(out, ignore_index=True)


def _unit_costs(
    con: duckdb.DuckDBPyConnection, experiment_id: str, seg_by: str | None
) -> dict[str, pd.Series]:
    """Intervention cost per assigned customer, per arm and segment (and 'all').

    Total cost recorded for the arm's customers in this experiment divided by the customers
    assigned to the arm: customers who were assigned but never treated count at zero cost, as
    the effect estimates are intention-to-treat.
    """
    seg = segment_sql(con, seg_by)
    frame = con.execute(
        f"""
        WITH cost AS (
            SELECT customer_id, SUM(unit_cost) AS cost FROM interventions
            WHERE experiment_id = $e GROUP BY customer_id
        )
        SELECT a.arm, {seg} AS segment, SUM(COALESCE(cost.cost, 0)) AS total, COUNT(*) AS n,
               COUNT(cost.cost) AS n_costed
        FROM assignments a
        JOIN customers c ON c.customer_id = a.customer_id
        LEFT JOIN cost ON cost.customer_id = a.customer_id
        WHERE a.experiment_id = $e AND a.arm <> 'control'
        GROUP BY ALL
        """,
        {"e": experiment_id},
    ).df()
    out = {}
    for arm, g in frame.groupby("arm"):
        if g["n_costed"].sum() == 0:
            continue
        per = g.set_index("segment")
        series = per["total"] / per["n"]
        series["all"] = per["total"].sum() / per["n"].sum()
        out[arm] = series
    return out
