"""Money: a monthly cash-flow schedule per draw that a finance reviewer can redo by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from attribution.errors import InputError
from attribution.settings import IntervalSetting
from attribution.value import (
    MoneySettings,
    cash_flows,
    held_survival,
    late_survival,
    money_draws,
    payback_month,
    summarize_money,
    window_profile,
)

# The example: a 6-month window, +0.05 retention, +10 revenue per customer.
CONTROL = {"p_active": 0.80, "revenue": 60.0, "cost_to_serve": 12.0,
           "revenue_retained": 70.0, "cost_retained": 13.0}  # fmt: skip
TREATED = {"p_active": 0.85, "revenue": 70.0, "cost_to_serve": 12.0,
           "revenue_retained": 78.0, "cost_retained": 13.0}  # fmt: skip


def levels(values: dict, segments=("gold",), draws: int = 1) -> xr.Dataset:
    """(chain=1, draw, segment) levels, the same value in every draw and segment."""
    shape = (1, draws, len(segments))

    def arr(v):
        v = np.asarray(v, dtype=float)
        return np.broadcast_to(v[:, None] if v.ndim == 1 else v, shape).copy()

    return xr.Dataset(
        {
            k: xr.DataArray(
                arr(v),
                dims=("chain", "draw", "segment"),
                coords={"segment": list(segments)},
            )
            for k, v in values.items()
        }
    )


def hand_schedule(margin: float, horizon: int, discount: float) -> np.ndarray:
    """The example's discounted incremental flows, written out month by month."""
    window = [margin * (70.0 - 60.0) / 6 - (12.0 - 12.0) / 6] * 6
    after = []
    for j in range(1, horizon + 1):
        # both arms' retained customers leave at the control arm's monthly rate, 0.8^(1/5)
        treated = 0.85 * (0.80 ** (1 / 5)) ** j * (margin * 78.0 - 13.0) / 6
        control = 0.80 * (0.80 ** (1 / 5)) ** j * (margin * 70.0 - 13.0) / 6
        after.append(treated - control)
    flows = np.array(window + after)
    return flows / (1.0 + discount) ** (np.arange(len(flows)) / 12.0)


def test_the_six_month_example_matches_a_hand_computed_schedule():
    settings = MoneySettings(margin_rate=0.3, value_horizon_months=2, discount_rate=0.0)
    ds = money_draws(levels(CONTROL), levels(TREATED), unit_cost=20.0, window_months=6,
                     settings=settings)  # fmt: skip
    hand = hand_schedule(0.3, 2, 0.0)
    np.testing.assert_allclose(ds["flow"].sel(segment="gold").values.ravel(), hand, rtol=1e-12)
    # 0.5 a month in the window (3.0), then 0.389 and 0.372 after the horizon: 3.76 - 20
    assert float(ds["net_value"].squeeze()) == pytest.approx(hand.sum() - 20.0)
    assert float(ds["net_value"].squeeze()) == pytest.approx(-16.239, abs=1e-3)
    assert float(ds["roi"].squeeze()) == pytest.approx((hand.sum() - 20.0) / 20.0)
    # It never covers a cost of 20: no payback month, not "16.6 months".
    assert np.isinf(float(ds["payback_months"].squeeze()))
    cheap = money_draws(levels(CONTROL), levels(TREATED), unit_cost=2.0, window_months=6,
                        settings=settings)  # fmt: skip
    assert float(cheap["payback_months"].squeeze()) == 4.0  # 0.5 x 4 covers 2


def test_flows_are_discounted_monthly_from_the_start_and_after_the_horizon_too():
    settings = MoneySettings(margin_rate=0.3, value_horizon_months=12, discount_rate=0.10)
    ds = money_draws(levels(CONTROL), levels(TREATED), unit_cost=20.0, window_months=6,
                     settings=settings)  # fmt: skip
    hand = hand_schedule(0.3, 12, 0.10)
    np.testing.assert_allclose(ds["flow"].sel(segment="gold").values.ravel(), hand, rtol=1e-12)
    assert float(ds["net_value"].squeeze()) == pytest.approx(hand.sum() - 20.0)


def test_value_after_the_horizon_is_net_of_the_retained_customers_cost_to_serve():
    settings = MoneySettings(margin_rate=0.3, value_horizon_months=12, discount_rate=0.0)
    costly = dict(TREATED, cost_retained=40.0)  # margin 0.3 x 78 = 23.4 < 40: they cost money
    flows = cash_flows(levels(CONTROL), levels(costly), window_months=6, settings=settings)
    assert (flows["after_horizon"].isel(month=slice(6, None)) < 0).all()
    assert float(flows["window_margin"].sum()) == pytest.approx(0.3 * 10.0)


def test_window_flows_follow_each_arms_monthly_shape():
    settings = MoneySettings(margin_rate=0.5, value_horizon_months=0, discount_rate=0.0)
    totals = pd.DataFrame(
        {
            "segment": "gold",
            "arm": ["control"] * 2 + ["treatment"] * 2,
            "period": [1, 2, 1, 2],
            "revenue": [30.0, 30.0, 70.0, 0.0],  # the treated spend it all in month 1
            "cost_to_serve": [1.0, 1.0, 1.0, 1.0],
        }
    )
    profile = window_profile(totals, "control", "treatment", ["gold"], 2)
    c = {"p_active": 1.0, "revenue": 60.0, "cost_to_serve": 2.0, "revenue_retained": 60.0,
         "cost_retained": 2.0}  # fmt: skip
    t = dict(c, revenue=70.0, revenue_retained=70.0)
    flows = cash_flows(levels(c), levels(t), window_months=2, settings=settings, profile=profile)
    # month 1: 0.5 x (70 - 30) = 20; month 2: 0.5 x (0 - 30) = -15
    np.testing.assert_allclose(flows["flow"].values.ravel(), [20.0, -15.0])


def test_the_overall_row_is_the_weighted_sum_of_the_segment_rows_draw_by_draw():
    rng = np.random.default_rng(3)
    c = {k: v * rng.uniform(0.9, 1.1, (50, 2)) for k, v in CONTROL.items()}
    t = {k: v * rng.uniform(0.9, 1.1, (50, 2)) for k, v in TREATED.items()}
    c["p_active"] = np.clip(c["p_active"], 0, 1)
    t["p_active"] = np.clip(t["p_active"], 0, 1)
    segs = ("gold", "silver")
    weights = pd.Series({"gold": 300, "silver": 100})
    cost = pd.Series({"gold": 20.0, "silver": 12.0})
    ds = money_draws(levels(c, segs, 50), levels(t, segs, 50), unit_cost=cost, window_months=6,
                     weights=weights)  # fmt: skip
    w = weights / weights.sum()
    for var in ("net_value", "window_margin", "after_horizon", "cost"):
        expect = w["gold"] * ds[var].sel(segment="gold") + w["silver"] * ds[var].sel(
            segment="silver"
        )
        np.testing.assert_allclose(ds[var].sel(segment="all"), expect, rtol=1e-12)
    table = summarize_money(ds, n_treated=pd.Series({"gold": 150, "silver": 50, "all": 200}))
    net = table[table.outcome == "net_value"].set_index("segment")["mean"]
    assert net["all"] == pytest.approx(w["gold"] * net["gold"] + w["silver"] * net["silver"])


def test_payback_is_the_first_month_the_cumulative_flow_covers_the_cost():
    cumulative = np.array([[1.0, 3.0, 6.0], [1.0, 2.0, 2.5]])
    np.testing.assert_array_equal(payback_month(cumulative, 3.0), [2.0, np.inf])
    assert np.isnan(payback_month(cumulative[0], 0.0))  # nothing to pay back


def test_summaries_give_interval_probability_and_expected_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(10.0, 5.0, 4000)
    c = dict(CONTROL, revenue=np.full(4000, 60.0))
    t = dict(TREATED, revenue=60.0 + x / 0.3, revenue_retained=70.0, cost_to_serve=12.0)
    settings = MoneySettings(margin_rate=0.3, value_horizon_months=0, discount_rate=0.0)
    ds = money_draws(levels(c, draws=4000), levels(t, draws=4000), unit_cost=5.0,
                     window_months=6, settings=settings)  # fmt: skip
    net = ds["net_value"].values.ravel()
    np.testing.assert_allclose(net, x - 5.0)
    table = summarize_money(ds, n_treated=pd.Series({"gold": 1000}), interval=IntervalSetting(0.9))
    row = table.set_index("outcome").loc["net_value"]
    assert row["lo"] == pytest.approx(np.quantile(net, 0.05))
    assert row["hi"] == pytest.approx(np.quantile(net, 0.95))
    assert row["p_positive"] == pytest.approx((net > 0).mean())
    assert row["expected_loss"] == pytest.approx(np.maximum(0, -net).mean())
    total = table.set_index("outcome").loc["total_net_value"]
    assert total["mean"] == pytest.approx(net.mean() * 1000)
    pay = table.set_index("outcome").loc["payback_months"]
    assert pay["p_positive"] == pytest.approx(np.mean(net >= 0), abs=0.01)
    # the posterior-mean flow (10 - 5 > 0 at the end of the window) pays back within it
    assert 1 <= pay["mean"] <= 6


def test_a_programme_that_never_pays_back_has_no_payback_month():
    settings = MoneySettings(margin_rate=0.3, value_horizon_months=12, discount_rate=0.1)
    ds = money_draws(levels(CONTROL), levels(TREATED), unit_cost=60.0, window_months=6,
                     settings=settings)  # fmt: skip
    row = summarize_money(ds).set_index("outcome").loc["payback_months"]
    assert np.isnan(row["mean"]) and row["p_positive"] == 0.0
    assert float(ds["net_value"].squeeze()) < 0


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


def test_levels_and_costs_are_checked():
    with pytest.raises(InputError, match="control levels miss"):
        money_draws({"p_active": 1.0}, levels(TREATED), unit_cost=1.0, window_months=6)
    with pytest.raises(InputError, match="unit_cost must be finite and >= 0"):
        money_draws(levels(CONTROL), levels(TREATED), unit_cost=-1.0, window_months=6)
    with pytest.raises(InputError, match="window_months must be >= 1"):
        money_draws(levels(CONTROL), levels(TREATED), unit_cost=1.0, window_months=0)


def test_a_held_churn_effect_lets_each_arm_leave_at_its_own_rate():
    """With ``survival`` each arm's retained customers leave at their own monthly rate."""
    rates = xr.Dataset({"control": 0.97, "treated": 0.99})
    m = MoneySettings(margin_rate=0.3, value_horizon_months=3, discount_rate=0.0)
    flow = cash_flows(levels(CONTROL), levels(TREATED), window_months=6, settings=m,
                      survival=rates)["after_horizon"].squeeze()  # fmt: skip
    for j in (1, 2, 3):
        treated = 0.85 * 0.99**j * (0.3 * 78.0 - 13.0) / 6
        control = 0.80 * 0.97**j * (0.3 * 70.0 - 13.0) / 6
        assert float(flow.sel(month=5 + j)) == pytest.approx(treated - control)
    assert float(flow.sel(month=5)) == 0.0  # the window's months carry no value after it


def totals(active_control, active_treated, segment="gold"):
    """Monthly totals of one segment: the active counts given, flat revenue and cost."""
    rows = []
    for arm, counts in (("control", active_control), ("treatment", active_treated)):
        for k, a in enumerate(counts):
            period = pd.Timestamp(2025, 1 + k, 1)
            rows.append((segment, arm, period, 100.0, 10.0, a))
    cols = ["segment", "arm", "period", "revenue", "cost_to_serve", "active"]
    return pd.DataFrame(rows, columns=cols)


def test_late_survival_draws_center_on_the_last_months_churn_and_narrow_with_customers():
    """The monthly rate of the window's last three month ends, Beta draws around it."""
    like = levels(CONTROL, draws=4000)["p_active"]
    means, sds = [], []
    for scale in (1, 100):
        profile = window_profile(
            totals([scale * x for x in (1000, 900, 880, 860, 840, 820)],
                   [scale * x for x in (1000, 950, 940, 930, 920, 910)]),
            "control", "treatment", ["gold"], 6,
        )  # fmt: skip
        s = late_survival(profile, like, seed=1)
        assert s["control"].dims == ("chain", "draw", "segment")
        means.append([float(s[r].mean()) for r in ("control", "treated")])
        sds.append(float(s["control"].std()))
    expect = [(820 / 880) ** (1 / 3), (910 / 940) ** (1 / 3)]  # month 5 over month 2
    assert means[1] == pytest.approx(expect, abs=2e-4)
    assert means[0] == pytest.approx(expect, abs=3e-3)
    assert sds[1] < sds[0] / 5  # 100 times the customers: a tenth of the spread


def test_a_held_effect_spans_from_ending_to_lasting_across_the_draws():
    """Draws run from the control arm's window rate (phi = 0) to each arm's own late rate."""
    like = levels(CONTROL, draws=4000)["p_active"]
    profile = window_profile(
        totals([100_000 * x for x in (1000, 900, 880, 860, 840, 820)],
               [100_000 * x for x in (1000, 950, 940, 930, 920, 910)]),
        "control", "treatment", ["gold"], 6,
    )  # fmt: skip
    s = held_survival(profile, like, 6, seed=3)
    ends = 0.80 ** (1 / 5)
    own = (910 / 940) ** (1 / 3)
    treated = s["treated"].to_numpy().ravel()
    assert treated.min() == pytest.approx(ends, abs=1e-3)
    assert treated.max() == pytest.approx(own, abs=1e-3)
    share = (np.log(treated) - np.log(ends)) / (np.log(own) - np.log(ends))
    assert np.quantile(share, [0.25, 0.5, 0.75]) == pytest.approx([0.25, 0.5, 0.75], abs=0.03)


def test_late_survival_needs_active_counts_and_two_months():
    like = levels(CONTROL)["p_active"]
    no_active = window_profile(totals([10, 9], [10, 9]).drop(columns="active"),
                               "control", "treatment", ["gold"], 2)  # fmt: skip
    with pytest.raises(InputError, match="no active counts"):
        late_survival(no_active, like)
    one_month = window_profile(totals([10], [10]), "control", "treatment", ["gold"], 1)
    with pytest.raises(InputError, match="1-month window has no month ends"):
        late_survival(one_month, like)
