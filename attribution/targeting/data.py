"""The rows a per-customer uplift learner fits: one per customer of a randomized experiment.

:func:`experiment_rows` reads, for the customers of one treatment arm and the control arm, the
pre-period features (customer attributes, spend, cost, activity, service cases and their
resolutions, all measured before the experiment's start month: the definitions of
:mod:`attribution.observational`) and the outcomes over the readout window (the window
:func:`attribution.readout.preflight` settles: retention at the horizon, revenue and
cost-to-serve summed). The features are computed in DuckDB; only one row per customer reaches
pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from attribution import observational, value
from attribution.cells import EVERYONE, monthly_totals
from attribution.config import Config
from attribution.errors import InputError
from attribution.periods import window_months
from attribution.readout import preflight

__all__ = ["MIN_PER_ARM", "OUTCOMES", "TargetingData", "experiment_rows"]

#: Outcomes a learner can fit, and their columns in :attr:`TargetingData.frame`.
OUTCOMES = {"retention": "retained", "revenue": "revenue", "cost_to_serve": "cost_to_serve"}
#: Fewest customers per arm for cross-fitting: every fold's training part must hold both arms
#: with enough customers for a gradient-boosted model of each (5 folds x 40).
MIN_PER_ARM = 200


@dataclass(frozen=True)
class TargetingData:
    """One row per customer of an experiment's treatment arm and control arm.

    Attributes
    ----------
    frame : pandas.DataFrame
        ``customer_id``, ``treated`` (0/1), the features, ``retained``, ``revenue``,
        ``cost_to_serve``.
    experiment_id, intervention, arm, control : str
    start : datetime.date
        First day of the first outcome month.
    horizon_months : int
        Outcome months, counting the start month.
    features, numeric, categorical : tuple of str
    unit_cost : float
        Mean cost per treated customer of the intervention's rows in this experiment.
    notes : tuple of str
        What was left out or assumed, in words.
    late_retention : tuple of float or None
        When the experiment's design record holds the effect on churn after the window
        (:mod:`attribution.value`): the control and treatment arms' monthly retention over the
        window's last month ends (:func:`attribution.value.late_retention`); None when the
        effect ends with the window.
    """

    frame: pd.DataFrame
    experiment_id: str
    intervention: str
    arm: str
    control: str
    start: date
    horizon_months: int
    features: tuple[str, ...]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    unit_cost: float = 0.0
    notes: tuple[str, ...] = field(default=())
    late_retention: tuple[float, float] | None = None

    @property
    def treated_share(self) -> float:
        """Share of the customers in the treatment arm (the design's, as assigned)."""
        return float(self.frame["treated"].mean())

    def matrix(self) -> pd.DataFrame:
        """The features as numbers: numeric ones as they are, categories one-hot (every level
        of the data, so a model scores new rows with :func:`align`)."""
        parts = [self.frame[list(self.numeric)].astype(float)]
        for name in self.categorical:
            parts.append(pd.get_dummies(self.frame[name], prefix=name, dtype=float))
        return pd.concat(parts, axis=1)


def align(matrix: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """``matrix`` with exactly ``columns`` (a level unseen in training is all zeros)."""
    return matrix.reindex(columns=list(columns), fill_value=0.0).to_numpy(dtype=float)


def experiment_rows(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    *,
    arm: str | None = None,
    features: Sequence[str] | None = None,
    horizon_months: int | None = None,
    config: Config | None = None,
) -> TargetingData:
    """Read one row per customer of ``experiment_id``'s treatment ``arm`` and control arm.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open store.
    experiment_id : str
    arm : str, optional
        The treatment arm; needed only when the experiment has several.
    features : sequence of str, optional
        Pre-period features by name (:func:`attribution.observational.valid_confounders`);
        default :data:`attribution.observational.DEFAULT_CONFOUNDERS`, less what the store
        cannot measure and features with a single value (each with a note).
    horizon_months : int, optional
        As for :func:`attribution.readout.read_out`.
    config : Config, optional

    Returns
    -------
    TargetingData

    Raises
    ------
    InputError
        An unknown experiment or arm; several treatment arms and no ``arm``; fewer than
        :data:`MIN_PER_ARM` customers in an arm; a named feature with a single value.
    """
    pre = preflight(con, experiment_id, horizon_months=horizon_months, config=config,
                    check_srm=False)  # fmt: skip
    arms = list(pre.arms)
    control, treatments = arms[0], arms[1:]
    if arm is None:
        if len(treatments) != 1:
            raise InputError(
                f"experiment {experiment_id} has {len(treatments)} treatment arms "
                f"({', '.join(treatments)}): choose one with arm"
            )
        arm = treatments[0]
    elif arm not in treatments:
        raise InputError(
            f"arm {arm!r} is not a treatment arm of experiment {experiment_id}; its treatment "
            f"arms: {', '.join(treatments)}"
        )
    for name in (control, arm):
        if pre.arms[name] < MIN_PER_ARM:
            raise InputError(
                f"experiment {experiment_id}: arm {name} has {pre.arms[name]} customers; "
                f"cross-fitted per-customer uplift needs at least {MIN_PER_ARM} per arm (read "
                "the segment-level effects with cx readout instead)"
            )
    data = observational.assigned_frame(
        con, experiment_id, arm=arm, control=control, start=pre.start,
        horizon_months=window_months(pre.start, pre.horizon), features=features,
    )  # fmt: skip
    notes = list(pre.notes) + list(data.notes)
    if pre.cluster:
        notes.append(
            f"Randomized by {pre.cluster}: customers of one {pre.cluster} share outcomes, so the "
            "evaluation's intervals, which resample customers, are too narrow"
        )
    kept = []
    for name in data.confounders:
        if data.frame[name].nunique() > 1:
            kept.append(name)
        elif features is not None:
            raise InputError(
                f"feature {name!r} has one value ({data.frame[name].iloc[0]!r}) for every "
                f"customer of experiment {experiment_id}: it cannot tell customers apart; "
                "leave it out"
            )
        else:
            notes.append(f"Feature {name} has a single value here and is left out")
    (unit_cost,) = con.execute(
        "SELECT coalesce(avg(unit_cost), 0) FROM interventions WHERE experiment_id = ? "
        "AND customer_id IN (SELECT customer_id FROM assignments "
        "WHERE experiment_id = ? AND arm = ?)",
        [experiment_id, experiment_id, arm],
    ).fetchone()
    late = None
    if pre.churn_after_window == "held":
        totals = monthly_totals(con, experiment_id, None, pre.start, pre.horizon)
        W = window_months(pre.start, pre.horizon)
        rates = value.late_retention(value.window_profile(totals, control, arm, [EVERYONE], W)).sel(
            segment=EVERYONE
        )
        late = (float(rates.sel(role="control")), float(rates.sel(role="treated")))
    return TargetingData(
        frame=data.frame.drop(columns=[c for c in data.confounders if c not in kept]),
        experiment_id=experiment_id,
        intervention=pre.experiment["intervention"],
        arm=arm,
        control=control,
        start=pre.start,
        horizon_months=data.horizon_months,
        features=tuple(kept),
        numeric=tuple(c for c in data.numeric if c in kept),
        categorical=tuple(c for c in data.categorical if c in kept),
        unit_cost=float(unit_cost),
        notes=tuple(notes),
        late_retention=late,
    )
