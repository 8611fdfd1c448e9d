"""One forest plot for every result: any rows in the estimate schema, one panel per outcome.

Because every ``summary()`` returns rows of :data:`attribution.estimates.EFFECT_COLUMNS`, one
function draws them all: an uplift model's segments, an experiment's readout, a g-formula fit's
ATE and ATT, the observational estimators side by side. Each result's ``plot()`` calls
:func:`forest_plot` on its own summary.

Retention effects and relative effects are drawn in percent (points), money per customer as
it is. Matplotlib's object API only (no pyplot state): safe in scripts, notebooks and threads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from attribution.errors import InputError

__all__ = ["forest_plot", "series_column"]

#: Axis words per (outcome, metric); other outcomes fall back to their name.
_AXIS = {
    ("retention", "absolute"): "retention effect (pp)",
    ("revenue", "absolute"): "revenue effect per customer",
    ("cost_to_serve", "absolute"): "cost-to-serve effect per customer",
    ("net_value", "absolute"): "net value per customer",
}


def series_column(rows: pd.DataFrame) -> str | None:
    """The column that tells the series of a forest apart: the estimator and estimand for
    observational rows, the arm when there are several, else none."""
    if "estimator" in rows and rows["estimator"].notna().any():
        return "estimator"
    if "estimand" in rows and rows["estimand"].dropna().nunique() > 1:
        return "estimand"
    if "arm" in rows and rows["arm"].dropna().nunique() > 1:
        return "arm"
    return None


def forest_plot(
    rows: pd.DataFrame,
    *,
    metric: str = "absolute",
    interval_width: float | None = None,
    ax=None,
    ylabel: str | None = None,
):
    """Draw ``rows`` (estimate schema) as a forest: one panel per outcome, one line per segment
    and series, ``"all"`` at the bottom.

    Parameters
    ----------
    rows : pandas.DataFrame
        At least ``outcome``, ``segment``, ``metric``, ``mean``, ``lo``, ``hi``; series are told
        apart by :func:`series_column`.
    metric : {"absolute", "relative"}
        Which rows to draw.
    interval_width : float, optional
        Named on the axis (default: the rows' ``interval_width``).
    ax : matplotlib Axes, optional
        Draw here (rows must then hold one outcome); else a new Figure is made.
    ylabel : str, optional
        The segment column's name, shown on the y axis.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if metric not in ("absolute", "relative"):
        raise InputError(f"metric must be 'absolute' or 'relative', got {metric!r}")
    rows = rows[(rows["metric"] == metric) & rows["mean"].notna()]
    if rows.empty:
        raise InputError(f"nothing to plot: no {metric} rows with an estimate")
    outcomes = list(dict.fromkeys(rows["outcome"]))
    if ax is not None and len(outcomes) > 1:
        raise InputError(
            f"ax holds one panel but the rows have {len(outcomes)} outcomes ({outcomes}); "
            "pass rows of one outcome or no ax"
        )
    if interval_width is None and "interval_width" in rows and rows["interval_width"].notna().any():
        interval_width = float(rows["interval_width"].dropna().iloc[0])
    by = series_column(rows)
    series = [None] if by is None else list(dict.fromkeys(_series_labels(rows, by)))
    segments = [s for s in dict.fromkeys(rows["segment"].astype(str)) if s != "all"] + ["all"]
    if ax is None:
        from matplotlib.figure import Figure

        height = 0.45 * len(segments) * max(1, len(series)) + 1.2
        fig = Figure(figsize=(5.5 * len(outcomes), height), layout="constrained")
        axes = list(np.atleast_1d(fig.subplots(1, len(outcomes), sharey=True)))
    else:
        fig, axes = ax.figure, [ax]
    step = 0.8 / max(1, len(series))
    base = np.arange(len(segments))[::-1].astype(float)
    for panel, outcome in zip(axes, outcomes, strict=True):
        mine = rows[rows["outcome"] == outcome]
        scale = 100.0 if (outcome == "retention" or metric == "relative") else 1.0
        for i, name in enumerate(series):
            sub = mine if by is None else mine[_series_labels(mine, by) == name]
            sub = sub.assign(segment=sub["segment"].astype(str)).drop_duplicates("segment")
            sub = sub.set_index("segment").reindex(segments)
            y = base + (i - (len(series) - 1) / 2) * step
            keep = sub["mean"].notna().to_numpy()
            if not keep.any():
                continue
            mean, lo, hi = (sub.loc[keep, c].to_numpy(dtype=float) for c in ("mean", "lo", "hi"))
            panel.errorbar(
                mean * scale,
                y[keep],
                xerr=[(mean - lo) * scale, (hi - mean) * scale],
                fmt="o",
                capsize=3,
                label=name,
            )
        panel.axvline(0.0, color="grey", lw=0.8, ls="--")
        words = _AXIS.get((outcome, metric), f"relative {outcome} effect (%)")
        width = "" if interval_width is None else f", {interval_width:.0%} interval"
        panel.set_xlabel(words + width)
    axes[0].set_yticks(base, segments)
    if ylabel:
        axes[0].set_ylabel(ylabel)
    if by is not None:
        axes[-1].legend(title=by, fontsize="small")
    return fig


def _series_labels(rows: pd.DataFrame, by: str) -> pd.Series:
    if by == "estimator" and "estimand" in rows:
        estimand = rows["estimand"].fillna("").str.upper()
        return rows["estimator"].astype(str) + np.where(estimand != "", " " + estimand, "")
    return rows[by].astype(str)
