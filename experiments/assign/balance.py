"""Covariate balance between arms: standardized mean differences on chosen columns
(:func:`balance_report`) or on the store's customers and pre-period outcomes
(:func:`store_balance`), and the Mahalanobis distance re-randomization accepts on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd

from attribution import store
from attribution.errors import InputError
from attribution.periods import add_months
from attribution.validation import finite as _finite
from experiments.assign.rules import (
    BALANCE_COLUMNS,
    CONTROL,
    MISSING_LEVEL,
    PRE_COVARIATES,
    PRE_MONTHS,
    SMD_THRESHOLD,
    setting_names,
)

# --------------------------------------------------------------------------------------------
# Covariates and balance


def is_numeric(series: pd.Series) -> bool:
    """True for numeric and boolean columns (balanced on their mean, not per level)."""
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def design_matrix(frame: pd.DataFrame, covariates: list[str]) -> tuple[np.ndarray, list]:
    """Numeric matrix of the covariates (categoricals as indicators of all levels but the first)
    and, per matrix column, its (covariate, level) name (level None for numeric columns)."""
    cols, names = [], []
    for col in covariates:
        series = frame[col]
        if is_numeric(series):
            cols.append(series.to_numpy(dtype="float64", na_value=np.nan))
            names.append((col, None))
            continue
        codes, levels = coded_levels(series)
        for i, level in enumerate(levels[1:], start=1):
            cols.append((codes == i).astype(np.float64))
            names.append((col, level))
    X = np.column_stack(cols) if cols else np.empty((len(frame), 0))
    return X, names


class Mahalanobis:
    """Mahalanobis distance between arm means, with the covariance of all units fixed once."""

    def __init__(self, X: np.ndarray, names: list, label: str):
        self.X = X
        self.names = names
        self.label = label
        self.ok = X.shape[1] > 0 and not np.isnan(X).any() and X.shape[0] > 1
        self.k = 0
        if self.ok:
            S = np.atleast_2d(np.cov(X, rowvar=False))
            self.k = int(np.linalg.matrix_rank(S))
            self.S_inv = np.linalg.pinv(S, hermitian=True)
            self.ok = self.k > 0

    def require(self, covariates: list[str]) -> None:
        if self.X.shape[1] and np.isnan(self.X).any():
            row, col = np.argwhere(np.isnan(self.X))[0]
            raise InputError(
                f"{self.label} row {row + 1}: covariate {self.names[col][0]!r} is missing; "
                "re-randomization needs every numeric covariate value"
            )
        if not self.ok:
            raise InputError(
                f"covariates {covariates}: no variation among the eligible customers, nothing to "
                "re-randomize on"
            )

    def distance(self, arm_idx: np.ndarray, n_arms: int) -> float | None:
        if not self.ok:
            return None
        control = arm_idx == 0
        n_c = int(control.sum())
        worst = 0.0
        for j in range(1, n_arms):
            treated = arm_idx == j
            n_t = int(treated.sum())
            if n_t == 0 or n_c == 0:
                return math.inf
            d = self.X[treated].mean(axis=0) - self.X[control].mean(axis=0)
            worst = max(worst, float(n_t * n_c / (n_t + n_c) * d @ self.S_inv @ d))
        return worst


def balance_report(
    frame: pd.DataFrame,
    covariates: Sequence[str],
    *,
    arm_col: str = "arm",
    control: str = CONTROL,
    threshold: float = SMD_THRESHOLD,
) -> pd.DataFrame:
    """Standardized mean differences of covariates between each arm and control.

    ``smd = (mean_arm - mean_control) / sqrt((var_control + var_arm) / 2)`` with sample variances
    (ddof 1); missing numeric values are left out of that covariate's means and variances. A
    categorical covariate gives one row per level except the first in sorted order, comparing
    the share of customers at that level (a missing value is the level ``(missing)``). When both
    variances are zero, ``smd`` is 0 for equal means and +-inf otherwise.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per customer with the arm column and the covariates.
    covariates : sequence of str
        Covariate columns; numeric (and boolean) columns as numbers, others as categories.
    arm_col : str
        The arm column.
    control : str
        The control arm's name.
    threshold : float
        Flag rows with ``|smd| > threshold``, > 0. Default 0.1, the usual rule of thumb.

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, covariate, level, mean_control, mean_arm, smd, flagged``; one row per
        non-control arm (sorted) and covariate (and level), ``level`` None for numeric columns.

    Examples
    --------
    >>> frame = pd.DataFrame({"arm": ["control"] * 3 + ["treatment"] * 3, "x": [1, 2, 3, 2, 4, 6]})
    >>> round(float(balance_report(frame, ["x"])["smd"].iloc[0]), 4)
    1.2649
    """
    t = _finite("threshold", threshold)
    if t <= 0:
        raise InputError(f"threshold must be > 0, got {threshold!r}")
    covariates = setting_names("covariates", covariates) if covariates else []
    if arm_col not in frame.columns:
        raise InputError(f"balance: no arm column {arm_col!r}; columns: {list(frame.columns)}")
    for col in covariates:
        if col not in frame.columns:
            raise InputError(
                f"covariates: column {col!r} is not in the frame; columns: {list(frame)}"
            )
    arm = frame[arm_col].astype(object).to_numpy()
    if not (arm == control).any():
        raise InputError(f"balance: no customer in the control arm {control!r}")
    X, names = design_matrix(frame, covariates)
    rows = []
    treated_arms = sorted((a for a in pd.unique(arm) if a != control and not pd.isna(a)), key=str)
    base = X[arm == control]
    for name in treated_arms:
        other = X[arm == name]
        for j, (cov, level) in enumerate(names):
            xc, xt = _clean(base[:, j]), _clean(other[:, j])
            mc, mt = _mean(xc), _mean(xt)
            vc, vt = _var(xc), _var(xt)
            rows.append((name, cov, level, mc, mt, _smd(mt - mc, vc, vt)))
    out = pd.DataFrame(rows, columns=BALANCE_COLUMNS[:-1])
    if out.empty:
        return empty_balance()
    out["level"] = pd.Series([lv for *_, lv in names] * len(treated_arms), dtype=object)
    out["flagged"] = out["smd"].abs() > t
    return out


def _clean(x: np.ndarray) -> np.ndarray:
    return x[~np.isnan(x)]


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else math.nan


def _var(x: np.ndarray) -> float:
    return float(x.var(ddof=1)) if len(x) > 1 else math.nan


def _smd(diff: float, var_c: float, var_t: float) -> float:
    pooled = math.sqrt((var_c + var_t) / 2.0) if not math.isnan(var_c + var_t) else math.nan
    if math.isnan(pooled) or math.isnan(diff):
        return math.nan
    if pooled == 0.0:
        return 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
    return diff / pooled


def empty_balance() -> pd.DataFrame:
    """A balance report with no rows, its columns typed."""
    return pd.DataFrame(
        {
            "arm": pd.Series(dtype=object),
            "covariate": pd.Series(dtype=object),
            "level": pd.Series(dtype=object),
            "mean_control": pd.Series(dtype="float64"),
            "mean_arm": pd.Series(dtype="float64"),
            "smd": pd.Series(dtype="float64"),
            "flagged": pd.Series(dtype=bool),
        }
    )


_STORE_BALANCE_SQL = """
SELECT a.customer_id, a.arm{segment_cols}
FROM assignments a
LEFT JOIN customers c ON c.customer_id = a.customer_id
WHERE a.experiment_id = ?
"""

_PRE_PERIOD_SQL = """
SELECT a.customer_id,
       avg(o.revenue) AS pre_revenue,
       avg(o.cost_to_serve) AS pre_cost,
       max(CASE WHEN o.period = ? THEN CAST(o.active AS DOUBLE) END) AS pre_active
FROM assignments a
LEFT JOIN outcomes o
  ON o.customer_id = a.customer_id AND o.period >= ? AND o.period < ?
WHERE a.experiment_id = ?
GROUP BY a.customer_id
"""


def store_balance(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    covariates: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Balance report of an experiment in the store, on customer segments and pre-period history.

    Covariates are the customers table's segment columns and, when the store has outcomes before
    the experiment's start month, ``pre_revenue`` and ``pre_cost`` (mean monthly revenue and
    cost-to-serve over the up to 3 months before the start that the customer has outcome rows
    for) and ``pre_active`` (1 if active in the month before the start, 0 if not, missing without
    a row).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open store.
    experiment_id : str
        An experiment in the ``experiments`` table with assignments.
    covariates : sequence of str, optional
        Segment columns of customers and/or the pre-period names above. Default: every segment
        column, plus the pre-period covariates when history exists.

    Returns
    -------
    pandas.DataFrame
        As :func:`balance_report`.

    Raises
    ------
    InputError
        Unknown experiment, no assignments, an unknown covariate, or a pre-period covariate
        asked for without outcomes before the start.

    Examples
    --------
    >>> from attribution import synth
    >>> con = store.connect(":memory:")
    >>> _ = synth.simulate(con, 2000, months=6, seed=1)
    >>> report = store_balance(con, "exp_recovery_gift", ["tier", "pre_revenue"])
    >>> sorted(set(report["covariate"]))
    ['pre_revenue', 'tier']
    """
    found = con.execute(
        "SELECT started FROM experiments WHERE experiment_id = ?", [experiment_id]
    ).fetchall()
    row = found[0] if found else None
    if row is None:
        known = [
            r[0] for r in con.execute("SELECT experiment_id FROM experiments ORDER BY 1").fetchall()
        ]
        raise InputError(f"experiment {experiment_id!r} is not in the store; known: {known}")
    start = store.parse_period(row[0])
    first, _ = store.periods(con)
    has_pre = first is not None and first < start
    segments = store.segment_columns(con)
    if covariates is None:
        wanted = segments + (list(PRE_COVARIATES) if has_pre else [])
    else:
        wanted = setting_names("covariates", covariates)
        for name in wanted:
            if name in PRE_COVARIATES:
                if not has_pre:
                    raise InputError(
                        f"covariate {name!r}: the store has no outcomes before the experiment's "
                        f"start {start:%Y-%m}"
                    )
            elif name not in segments:
                raise InputError(
                    f"covariate {name!r} is not a customers segment column {segments} or one of "
                    f"{list(PRE_COVARIATES)}"
                )
    seg = [c for c in wanted if c in segments]
    seg_sql = "".join(f", c.{store.quote_identifier(c)}" for c in seg)
    frame = con.execute(_STORE_BALANCE_SQL.format(segment_cols=seg_sql), [experiment_id]).df()
    if frame.empty:
        raise InputError(f"experiment {experiment_id!r} has no assignments")
    pre = [c for c in wanted if c in PRE_COVARIATES]
    if pre:
        history = con.execute(
            _PRE_PERIOD_SQL,
            [add_months(start, -1), add_months(start, -PRE_MONTHS), start, experiment_id],
        ).df()
        frame = frame.merge(history, on="customer_id", how="left")
    return balance_report(frame, wanted)


def coded_levels(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each row's level index into the sorted level texts (a missing value is ``(missing)``)."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    texts = [str(v) for v in uniques]
    if (codes < 0).any():
        codes = np.where(codes < 0, len(texts), codes)
        texts.append(MISSING_LEVEL)
    levels = sorted(set(texts))
    position = {t: i for i, t in enumerate(levels)}
    remap = np.array([position[t] for t in texts], dtype=np.int64)
    return remap[codes], levels
