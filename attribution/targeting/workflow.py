"""One targeting run: per-customer uplift for each experiment, its evaluation, and the budgeted
policy across them; what ``cx target`` prints and writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pandas as pd

from attribution.checks import Check, describe_checks
from attribution.config import Config
from attribution.errors import InputError
from attribution.targeting.data import TargetingData, experiment_rows
from attribution.targeting.evaluate import Evaluation, evaluate
from attribution.targeting.learners import UpliftFit, fit_uplift, segment_level
from attribution.targeting.policy import Policy, check_budget, choose
from attribution.targeting.population import (
    PopulationPolicy,
    check_month,
    population_rows,
    score_population,
)

__all__ = ["POLICY_COLUMNS", "TargetingResult", "check_out", "score_month", "target",
           "target_rows", "write_table"]  # fmt: skip

#: Columns of the policy file, in order.
POLICY_COLUMNS = ("customer_id", "intervention", "experiment_id", "expected", "lo", "hi",
                  "p_positive", "cost")  # fmt: skip
#: Arms this unbalanced (treated share outside [0.25, 0.75]) get the X-learner by default.
_UNBALANCED = 0.25


def check_out(path: str | Path) -> Path:
    """The policy file's path; an error unless it ends in ``.csv`` or ``.parquet``."""
    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise InputError(f"--out {path}: the policy file must end in .csv or .parquet")
    return path


@dataclass(frozen=True)
class TargetingResult:
    """Uplift fits, their evaluations and the policy of one targeting run."""

    fits: tuple[UpliftFit, ...]
    evaluations: tuple[Evaluation, ...]
    policy: Policy

    @property
    def checks(self) -> list[Check]:
        """One check per fit: does its ranking beat random?"""
        return [e.as_check() for e in self.evaluations]

    def policy_table(self) -> pd.DataFrame:
        """The picked customers with the interval and P(> 0) of their group (intervention x
        decile of expected net value): :data:`POLICY_COLUMNS`."""
        picks = self.policy.picks.copy()
        if picks.empty:
            return pd.DataFrame(columns=list(POLICY_COLUMNS))
        deciles = []
        for f in self.fits:
            deciles.append(pd.DataFrame({"customer_id": f.data.frame["customer_id"],
                                         "intervention": f.data.intervention,
                                         "decile": f.deciles}))  # fmt: skip
        keyed = picks.merge(pd.concat(deciles), on=["customer_id", "intervention"], how="left")
        groups = self.policy.groups[["intervention", "decile", "lo", "hi", "p_positive"]]
        out = keyed.merge(groups, on=["intervention", "decile"], how="left")
        return out[list(POLICY_COLUMNS)]

    def write_policy(self, path: str | Path) -> Path:
        """Write :meth:`policy_table` to ``path`` (``.csv`` or ``.parquet``), all or nothing."""
        return write_table(self.policy_table(), path)

    def to_dict(self) -> dict:
        return {
            "fits": [
                {
                    "experiment_id": f.data.experiment_id,
                    "intervention": f.data.intervention,
                    "learner": f.learner,
                    "customers": len(f.oof),
                    "notes": list(f.data.notes),
                }
                for f in self.fits
            ],  # fmt: skip
            "checks": [c.to_dict() for c in self.checks],
            "policy": self.policy.comparison.to_dict(orient="records"),
            "budget": None if self.policy.budget == float("inf") else self.policy.budget,
            "customers_picked": len(self.policy.picks),
            "notes": list(self.policy.notes),
        }

    def describe(self) -> str:
        lines = [f"Targeting on {', '.join(f.data.experiment_id for f in self.fits)}:"]
        lines += describe_checks(self.checks)
        lines.append("Policies (total incremental net value, 90% interval):")
        for r in self.policy.comparison.itertuples(index=False):
            lines.append(
                f"  {r.policy:<18} {r.customers:>8,} customers, cost {r.cost:>12,.0f}: "
                f"{r.mean:>12,.0f} [{r.lo:,.0f}, {r.hi:,.0f}], P(>0) = {r.p_positive:.2f}  "
                f"({r.rule})"
            )
        lines += [f"  note: {n}" for n in self.policy.notes]
        return "\n".join(lines)


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a policy ``table`` to ``path`` (``.csv`` or ``.parquet``), all or nothing."""
    path = check_out(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if path.suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def score_month(
    con: duckdb.DuckDBPyConnection,
    result: TargetingResult,
    month: str,
    *,
    budget: float | None = None,
    capacity: Mapping[str, int] | None = None,
    config: Config | None = None,
) -> PopulationPolicy:
    """The policy over the customers active in ``month`` (:mod:`attribution.targeting.population`):
    ``result``'s learners score them, its groups are the evidence of what they are worth."""
    cfg = config or Config()
    start = check_month(con, month)
    frame = population_rows(con, f"{start:%Y-%m}", [f.data for f in result.fits])
    return score_population(
        result.fits, frame, month=f"{start:%Y-%m}",
        budget=budget, capacity=capacity, setting=cfg.interval,
    )  # fmt: skip


def target(
    con: duckdb.DuckDBPyConnection,
    experiment_ids: Sequence[str],
    *,
    budget: float | None = None,
    capacity: Mapping[str, int] | None = None,
    learner: str = "auto",
    seed: int = 0,
    config: Config | None = None,
) -> TargetingResult:
    """Fit net-value uplift for each experiment, evaluate it, and choose the policy.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
    experiment_ids : sequence of str
        Randomized experiments, one per intervention.
    budget, capacity
        As for :func:`attribution.targeting.choose`.
    learner : {"auto", "dr", "t", "x"}
        ``auto``: the X-learner where the arms are unbalanced (treated share outside
        [0.25, 0.75], e.g. a 10% holdout), the doubly robust learner otherwise. A fit whose
        ranking does not beat random (:func:`attribution.targeting.evaluate`) is not used to
        rank: its customers take their segment's estimated net value (the first of the
        configuration's segments among the features, e.g. tier), out of fold, with a note.
    seed : int
    config : Config, optional
        The money settings and the readout window's rules.

    Returns
    -------
    TargetingResult
    """
    cfg = config or Config()
    if not experiment_ids:
        raise InputError("give at least one experiment to target")
    rows = [experiment_rows(con, e, config=cfg) for e in experiment_ids]
    return target_rows(rows, budget=budget, capacity=capacity, learner=learner, seed=seed,
                       config=cfg)  # fmt: skip


def target_rows(
    rows: Sequence[TargetingData],
    *,
    budget: float | None = None,
    capacity: Mapping[str, int] | None = None,
    learner: str = "auto",
    seed: int = 0,
    config: Config | None = None,
) -> TargetingResult:
    """:func:`target` on rows already read (no store needed: the refresh reads them while the
    store is open and fits after closing it)."""
    cfg = config or Config()
    check_budget(budget, [d.unit_cost for d in rows])  # before minutes of fitting
    fits, evaluations, fallbacks = [], [], []
    for data in rows:
        chosen = learner
        if learner == "auto":
            share = data.treated_share
            chosen = "x" if min(share, 1 - share) < _UNBALANCED else "dr"
        fit = fit_uplift(data, "net_value", learner=chosen, seed=seed, settings=cfg.money)
        checked = evaluate(fit, seed=seed, setting=cfg.interval)
        evaluations.append(checked)
        if not checked.beats_random:  # rank by segment, not by a ranking no better than random
            segment = next((s for s in cfg.model.segments if s in data.categorical), None)
            fit = segment_level(fit, segment)
            fallbacks.append(
                f"{data.intervention}: customers ranked by their {segment or 'experiment'}'s "
                "estimated net value, the per-customer ranking not beating random"
            )
        fits.append(fit)
        if fit.span_scores is not None:
            fallbacks.append(
                f"{data.intervention}: its effect on churn is held after the window (design "
                "record): customers are ranked at the middle of the readout's span of how long "
                "it lasts, and the intervals draw along it"
            )
    policy = choose(fits, budget, capacity=capacity, seed=seed, setting=cfg.interval)
    policy = replace(policy, notes=(*fallbacks, *policy.notes))
    return TargetingResult(fits=tuple(fits), evaluations=tuple(evaluations), policy=policy)
