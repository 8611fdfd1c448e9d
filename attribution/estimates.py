"""The one schema of an estimate row: the columns of the published ``estimates`` table.

Every result object's ``summary()`` (uplift models, the joint fit, the g-formula, an
experiment's readout, an observational attribution) returns its rows in this schema, so a row
reads the same in a notebook, in ``cx readout --json`` and in the store
(``attribution/schema.sql``); columns a result has no value for are null (an uplift model knows
no experiment id; a randomized effect has no refutation verdict).

Foundation layer: it imports nothing of the package.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["EFFECT_COLUMNS", "ESTIMATE_COLUMNS", "as_estimate_rows"]

#: Columns of the ``estimates`` table, in its order (attribution/schema.sql): the one list that
#: publishing, readers and every ``summary()`` derive from.
ESTIMATE_COLUMNS = [
    "run_id",
    "experiment_id",
    "intervention",
    "arm",
    "outcome",
    "segment_by",
    "segment",
    "metric",
    "mean",
    "lo",
    "hi",
    "p_positive",
    "expected_loss",
    "n_treated",
    "n_control",
    "interval_width",
    "method",
    "estimand",
    "verdict",
    "question",
    "estimator",
    "population",
]
#: An estimate row before it is published: :data:`ESTIMATE_COLUMNS` without the run id.
EFFECT_COLUMNS = [c for c in ESTIMATE_COLUMNS if c != "run_id"]


def as_estimate_rows(frame: pd.DataFrame, **constants) -> pd.DataFrame:
    """``frame`` in the estimate schema: :data:`EFFECT_COLUMNS` in order, ``constants`` filled
    in where ``frame`` has no such column (or only nulls), other columns null; extra columns of
    ``frame`` are dropped.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows with some of the schema's columns.
    **constants
        Values for whole columns (``method="bayesian_cells"``, ``interval_width=0.9``).

    Examples
    --------
    >>> rows = as_estimate_rows(pd.DataFrame({"outcome": ["retention"], "mean": [0.02]}),
    ...                         method="bayesian_cells")
    >>> rows.loc[0, ["outcome", "method"]].tolist(), bool(rows["experiment_id"].isna().all())
    (['retention', 'bayesian_cells'], True)
    """
    unknown = set(constants) - set(EFFECT_COLUMNS)
    if unknown:
        raise ValueError(f"not columns of an estimate row: {sorted(unknown)}")
    out = frame.copy()
    for name, value in constants.items():
        if name not in out or out[name].isna().all():
            out[name] = value
    return out.reindex(columns=EFFECT_COLUMNS).reset_index(drop=True)
