"""What the store can answer, before any model runs (``cx check``).

For every experiment it runs the readout's own checks (:func:`attribution.readout.preflight`:
the same rules, so a readout cannot fail where the check passed for a reason the check knows
about) and the one cheap aggregation a readout starts with (cells over the outcome window), and
says in words: arms and their sizes, whether a control arm exists, the outcome window and
horizon that will be used, history for the pre-period adjustment, segment columns and their
numbers of values, which outcomes have data, and what money will assume. For every
observational question of the configuration it counts the eligible treated and untreated
customers. Nothing is fitted and nothing is written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import duckdb

from attribution import store
from attribution.cells import cells
from attribution.config import Config
from attribution.errors import CxError
from attribution.joint import STATUS
from attribution.periods import month_text
from attribution.readout import SPEND_OUTCOMES, experiment_ids, preflight, unmeasured

__all__ = ["ExperimentCheck", "QuestionCheck", "StoreCheck", "check_store"]


@dataclass(frozen=True)
class ExperimentCheck:
    """What a readout of one experiment would use, or why it cannot run.

    Attributes
    ----------
    experiment_id, intervention : str
    arms : dict
        Customers per arm.
    has_control : bool
    start, horizon : str or None
        First and last outcome month of the window (``YYYY-MM``), None when there is none.
    window_months : int
    history_months : int
        Outcome months in the store before the start (pre-period adjustment needs at least 1).
    segments : dict
        Every segment column with its number of distinct values among the experiment's
        customers; ``used`` lists the ones effects will be broken down by.
    used : list of str
    outcomes : dict
        ``retention``, ``revenue``, ``cost_to_serve``: True when the window has data for it.
    notes : list of str
        What will be skipped or assumed, in words.
    problems : list of str
        Why the experiment cannot be read out (empty when it can).
    """

    experiment_id: str
    intervention: str | None = None
    arms: dict = field(default_factory=dict)
    has_control: bool = False
    start: str | None = None
    horizon: str | None = None
    window_months: int = 0
    history_months: int = 0
    segments: dict = field(default_factory=dict)
    used: list = field(default_factory=list)
    outcomes: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class QuestionCheck:
    """An observational question of the configuration: eligible customers, or why not."""

    name: str
    treatment: str
    as_of: str | None = None
    treated: int = 0
    untreated: int = 0
    notes: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class StoreCheck:
    """The answer of :func:`check_store`."""

    path: str
    tables: dict
    first_period: str | None
    last_period: str | None
    experiments: list[ExperimentCheck]
    questions: list[QuestionCheck]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every experiment can be read out and every question answered."""
        return (
            not self.problems
            and all(e.ok for e in self.experiments)
            and all(q.ok for q in self.questions)
        )

    def describe(self) -> str:
        """Plain lines: the store, then one block per experiment and question."""
        periods = (
            f"outcome months {self.first_period} to {self.last_period}"
            if self.first_period
            else "no outcome months"
        )
        counts = ", ".join(f"{t} {n:,}" for t, n in self.tables.items())
        lines = [f"store {self.path}: {periods}; rows: {counts}."]
        lines += [f"PROBLEM: {p}" for p in self.problems]
        for e in self.experiments:
            head = "can be read out" if e.ok else "CANNOT be read out"
            lines.append(f"\n{e.experiment_id} ({e.intervention or '?'}): {head}.")
            if e.arms:
                control = "" if e.has_control else " (no arm named 'control')"
                arms = ", ".join(f"{a} {n:,}" for a, n in e.arms.items())
                lines.append(f"  arms: {arms}{control}")
            if e.start:
                lines.append(
                    f"  window: {e.start} to {e.horizon} ({e.window_months} month"
                    f"{'s' if e.window_months != 1 else ''}); history before it: "
                    f"{e.history_months} month{'s' if e.history_months != 1 else ''}"
                )
            if e.segments:
                seg = ", ".join(f"{c} {n}" for c, n in e.segments.items())
                used = ", ".join(e.used) if e.used else "none (overall only)"
                lines.append(f"  segment columns (values): {seg}; used: {used}")
            if e.outcomes:
                have = ", ".join(f"{o} {'yes' if v else 'no'}" for o, v in e.outcomes.items())
                lines.append(f"  outcomes with data: {have}")
            lines += [f"  note: {n}" for n in e.notes]
            lines += [f"  PROBLEM: {p}" for p in e.problems]
        for q in self.questions:
            head = "can be answered" if q.ok else "CANNOT be answered"
            lines.append(f"\nobservational {q.name} ({q.treatment}): {head}.")
            if q.ok:
                lines.append(
                    f"  from {q.as_of}: {q.treated:,} treated and {q.untreated:,} untreated "
                    "eligible (customer-trials when trials are pooled; see the design)"
                )
            lines += [f"  note: {n}" for n in q.notes]
            lines += [f"  PROBLEM: {p}" for p in q.problems]
        if not self.experiments and not self.questions:
            lines.append("No experiments and no observational questions to check.")
        lines.append(
            "\nEverything can be read out."
            if self.ok
            else "\nSome things cannot be read out: see PROBLEM above."
        )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready, with ``ok`` per experiment and question and overall."""
        return {
            "path": self.path,
            "ok": self.ok,
            "tables": dict(self.tables),
            "first_period": self.first_period,
            "last_period": self.last_period,
            "problems": list(self.problems),
            "experiments": [{**asdict(e), "ok": e.ok} for e in self.experiments],
            "questions": [{**asdict(q), "ok": q.ok} for q in self.questions],
        }


def check_store(con: duckdb.DuckDBPyConnection, config: Config | None = None) -> StoreCheck:
    """Check what the store can answer with these settings; fits nothing, writes nothing.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open store (read-only is enough).
    config : Config, optional
        The settings a refresh would use (segments, outcomes, horizon, observational questions).

    Returns
    -------
    StoreCheck

    Examples
    --------
    >>> from attribution import store, synth
    >>> con = store.connect(":memory:")
    >>> _ = synth.simulate(con, 2000, months=6, seed=1)
    >>> result = check_store(con)
    >>> result.ok, [e.experiment_id for e in result.experiments]
    (True, ['exp_premium_support', 'exp_recovery_gift'])
    """
    cfg = config or Config()
    first, last = store.periods(con)
    problems = []
    if first is None:
        problems.append("the store has no outcomes: load outcomes (see data/README.md)")
    chosen = list(cfg.experiments.include) or experiment_ids(con)
    experiments = [_experiment(con, e, cfg) for e in chosen]
    questions = [_question(con, q, cfg) for q in cfg.observational]
    return StoreCheck(
        path=str(store.store_path(con) or ":memory:"),
        tables=store.table_counts(con),
        first_period=month_text(first),
        last_period=month_text(last),
        experiments=experiments,
        questions=questions,
        problems=problems,
    )


def _experiment(con: duckdb.DuckDBPyConnection, experiment_id: str, cfg: Config) -> ExperimentCheck:
    facts: dict = {"experiment_id": experiment_id}
    row = con.execute(
        "SELECT intervention FROM experiments WHERE experiment_id = ?", [experiment_id]
    ).fetchone()
    facts["intervention"] = row[0] if row else None
    arms = store.arm_counts(con, experiment_id)
    facts["arms"] = arms
    facts["has_control"] = "control" in arms
    profile = store.segment_profile(con, experiment_id)
    facts["segments"] = dict(zip(profile["column"], profile["values"].astype(int), strict=True))
    problems: list[str] = []
    notes: list[str] = []
    try:
        pre = preflight(
            con, experiment_id, horizon_months=cfg.model.horizon_months, config=cfg,
            check_srm=False,
        )  # fmt: skip
    except CxError as exc:
        return ExperimentCheck(**facts, problems=[str(exc)])
    if pre.srm is not None and pre.srm.alarm:
        problems.append(
            f"the arm counts do not match the designed shares (sample-ratio check p = "
            f"{pre.srm.p_value:.2g}): a readout stops here; check the assignment, or read out "
            "with --ignore-srm"
        )
    notes += [n for n in pre.notes if "overridden" not in n]
    history = con.execute(
        "SELECT count(DISTINCT period) FROM outcomes WHERE period < ?", [pre.start]
    ).fetchone()[0]
    outcomes = {"retention": True}
    try:
        split = cells(
            con, [STATUS], experiment_id=experiment_id, start=pre.start, horizon=pre.horizon
        )
        missing = unmeasured(split, experiment_id, pre.start, pre.horizon, cfg, notes)
        outcomes |= {o: o not in missing for o in SPEND_OUTCOMES}
    except CxError as exc:
        problems.append(str(exc))
    return ExperimentCheck(
        **facts,
        start=month_text(pre.start),
        horizon=month_text(pre.horizon),
        window_months=pre.window_months,
        history_months=int(history),
        used=list(pre.segments),
        outcomes=outcomes,
        notes=notes,
        problems=problems,
    )


def _question(con: duckdb.DuckDBPyConnection, question, cfg: Config) -> QuestionCheck:
    from attribution.observational import observational_frame

    treatment = (
        f"intervention={question.intervention}"
        if question.intervention
        else f"condition={question.condition}"
    )
    try:
        data = observational_frame(
            con,
            question.intervention or None,
            condition=question.condition or None,
            confounders=list(question.confounders or cfg.causal.confounders) or None,
            as_of=question.as_of or None,
            lookback_months=cfg.causal.lookback_months,
        )
    except CxError as exc:
        return QuestionCheck(name=question.name, treatment=treatment, problems=[str(exc)])
    return QuestionCheck(
        name=question.name,
        treatment=treatment,
        as_of=month_text(data.as_of),
        treated=int(data.n_treated),
        untreated=int(len(data.frame) - data.n_treated),
        notes=[f"design: {data.design}", *data.notes],
    )
