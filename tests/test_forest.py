"""One forest plot draws any rows of the estimate schema."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from attribution.errors import InputError
from attribution.estimates import as_estimate_rows
from attribution.forest import forest_plot


def _rows() -> pd.DataFrame:
    rows = []
    for arm, shift in (("gift", 0.0), ("call", 0.01)):
        for segment, mean in (("gold", 0.03), ("silver", 0.01), ("all", 0.02)):
            rows.append(("retention", arm, segment, mean + shift, 0.005, 0.5))
            rows.append(("revenue", arm, segment, 100 * mean + shift, 0.5, 0.5))
    frame = pd.DataFrame(rows, columns=["outcome", "arm", "segment", "mean", "half", "_"])
    frame = frame.assign(lo=frame["mean"] - frame["half"], hi=frame["mean"] + frame["half"])
    return as_estimate_rows(frame.assign(metric="absolute", segment_by="tier"), interval_width=0.8)


def _drawn(ax) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, x, y) of each error-bar series on ``ax``."""
    return [(c.get_label(), c.lines[0].get_xdata(), c.lines[0].get_ydata()) for c in ax.containers]


def test_one_panel_per_outcome_one_series_per_arm_overall_last():
    rows = _rows()
    fig = forest_plot(rows, ylabel="tier")
    retention, revenue = fig.axes
    assert [t.get_text() for t in retention.get_yticklabels()] == ["gold", "silver", "all"]
    assert retention.get_ylabel() == "tier"
    assert retention.get_xlabel() == "retention effect (pp), 80% interval"
    series = _drawn(retention)
    assert [label for label, _, _ in series] == ["gift", "call"]
    gift = rows[(rows["outcome"] == "retention") & (rows["arm"] == "gift")]
    np.testing.assert_allclose(series[0][1], 100 * gift["mean"].to_numpy())  # pp
    # the overall line is the lowest, the arms side by side around each segment
    assert series[0][2][-1] < series[0][2][0] and series[0][2][0] != series[1][2][0]
    np.testing.assert_allclose(
        _drawn(revenue)[1][1],
        rows[(rows["outcome"] == "revenue") & (rows["arm"] == "call")]["mean"],
    )


def test_rows_it_cannot_draw_are_named():
    rows = _rows()
    with pytest.raises(InputError, match="metric must be 'absolute' or 'relative'"):
        forest_plot(rows, metric="ratio")
    with pytest.raises(InputError, match="no relative rows"):
        forest_plot(rows, metric="relative")
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    with pytest.raises(InputError, match="ax holds one panel but the rows have 2 outcomes"):
        forest_plot(rows, ax=ax)
    assert forest_plot(rows[rows["outcome"] == "revenue"], ax=ax) is ax.figure
