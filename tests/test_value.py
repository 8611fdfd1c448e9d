"""Money: per-draw arithmetic a finance reviewer can redo by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from attribution.errors import InputError
from attribution.settings import IntervalSetting
from attribution.value import MoneySettings, money_draws, remaining_value, summarize_money


def draws(values: np.ndarray, segments=("gold", "all")) -> xr.DataArray:
    """(chain=1, draw, segment) draws from a (draw, segment) array."""
    return xr.DataArray(
        values[None, :, :],
        dims=("chain", "draw", "segment"),
        coords={"segment": list(segments)},
    )


def test_net_value_is_margin_on_retention_and_spend_minus_cost():
    ones = np.ones((4, 2))
    ds = money_draws(
        draws(0.05 * ones),  # +5 pp retained
        draws(12.0 * ones),  # +12 revenue per customer over the window
        draws(2.0 * ones),  # +2 cost to serve
        unit_cost=20.0,
        retained_value=400.0,
        window_months=6,
        settings=MoneySettings(margin_rate=0.25),
    )
    # 0.05 x 0.25 x 400 = 5; 12 x 0.25 = 3; minus 2; minus 20 -> -14
    np.testing.assert_allclose(ds["net_value"].values, -14.0)
    np.testing.assert_allclose(ds["roi"].values, -14.0 / 20.0)
    # gross monthly margin (5 + 3 - 2) / 6 = 1 per month -> 20 months to pay back
    np.testing.assert_allclose(ds["payback_months"].values, 20.0)


def test_costs_and_values_may_differ_by_segment():
    ds = money_draws(
        draws(np.zeros((3, 2))),
        draws(np.full((3, 2), 100.0)),
        draws(np.zeros((3, 2))),
        unit_cost=pd.Series({"gold": 10.0, "all": 5.0}),
        retained_value=0.0,
        window_months=1,
        settings=MoneySettings(margin_rate=0.5),
    )
    assert ds["net_value"].sel(segment="gold").values.ravel().tolist() == [40.0] * 3
    assert ds["net_value"].sel(segment="all").values.ravel().tolist() == [45.0] * 3
    with pytest.raises(InputError, match=r"unit_cost has no value for segment\(s\) \['all'\]"):
        money_draws(
            draws(np.zeros((3, 2))),
            draws(np.zeros((3, 2))),
            draws(np.zeros((3, 2))),
            unit_cost=pd.Series({"gold": 1.0}),
            retained_value=0.0,
            window_months=1,
        )


def test_summary_reports_interval_probability_and_expected_loss():
    rng = np.random.default_rng(0)
    net = rng.normal(2.0, 4.0, size=(20_000, 1))
    ds = money_draws(
        draws(np.zeros_like(net), ["all"]),
        draws(net / 0.5, ["all"]),
        draws(np.zeros_like(net), ["all"]),
        unit_cost=0.0,
        retained_value=0.0,
        window_months=3,
        settings=MoneySettings(margin_rate=0.5),
    )
    table = summarize_money(ds, n_treated=pd.Series({"all": 1000}), interval=IntervalSetting(0.9))
    row = table[table["outcome"] == "net_value"].iloc[0]
    assert row["mean"] == pytest.approx(2.0, abs=0.1)
    assert row["lo"] == pytest.approx(2.0 - 1.645 * 4.0, abs=0.15)
    assert row["hi"] == pytest.approx(2.0 + 1.645 * 4.0, abs=0.15)
    assert row["p_positive"] == pytest.approx(0.6915, abs=0.01)
    # E[max(0, -X)] for X ~ N(2, 4^2) = 4 * phi(0.5) - 2 * (1 - Phi(0.5)) = 0.79
    assert row["expected_loss"] == pytest.approx(0.790, abs=0.03)
    total = table[table["outcome"] == "total_net_value"].iloc[0]
    assert total["mean"] == pytest.approx(1000 * row["mean"])
    assert "roi" not in set(table["outcome"])  # zero cost: ROI undefined, not infinite


def test_remaining_value_discounts_and_applies_churn():
    flat = MoneySettings(value_horizon_months=12, discount_rate=0.0)
    assert remaining_value(10.0, 1.0, flat) == pytest.approx(120.0)
    assert remaining_value(10.0, 0.5, MoneySettings(value_horizon_months=2, discount_rate=0.0)) == (
        pytest.approx(10 * 0.5 + 10 * 0.25)
    )
    discounted = remaining_value(10.0, 1.0, MoneySettings(value_horizon_months=12))
    assert 110 < discounted < 120


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"margin_rate": 1.5}, "margin_rate must be in"),
        ({"value_horizon_months": -1}, "value_horizon_months must be >= 0"),
        ({"discount_rate": -5}, "discount_rate must be"),
    ],
)
def test_bad_money_settings_are_named(kwargs, message):
    with pytest.raises(InputError, match=message):
        MoneySettings(**kwargs)
