"""Design inputs from the store, checked against independent pandas/numpy computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import assert_unchanged, snapshot
from scipy import stats

from attribution import store, synth
from attribution.cells import PRE_BANDS, PRE_MONTHS
from attribution.errors import InputError
from experiments import design
from experiments.history import Condition, design_inputs, parse_eligible

BAD = ("very_ineffective", "somewhat_ineffective")


@pytest.fixture(scope="module")
def world():
    """A simulated store (20k customers, 2025-01 .. 2025-12) and its raw tables in pandas."""
    con = store.connect(":memory:")
    synth.simulate(con, 20000, months=12, seed=5)
    tables = {
        name: con.execute(f"SELECT * FROM {name}").df()
        for name in ("customers", "outcomes", "interactions")
    }
    tables["outcomes"]["month"] = tables["outcomes"]["period"].dt.to_period("M")
    tables["interactions"]["month"] = tables["interactions"]["ts"].dt.to_period("M")
    yield con, tables
    con.close()


def expected(tables, as_of, horizon, pre_months, customers=None, trigger=None):
    """The population's outcomes and pre-period features, from the raw rows, in pandas."""
    out, inter = tables["outcomes"], tables["interactions"]
    ref = pd.Period(as_of, "M")
    end = ref + horizon - 1
    first = out["month"].min()
    pre_start = max(first, ref - pre_months)
    ids = tables["customers"]["customer_id"]
    if customers is not None:
        ids = ids[customers(tables["customers"])]
    if trigger is None:
        before = out[(out["month"] == ref - 1) & out["active"]]
        pop = set(before["customer_id"]) & set(ids)
    else:
        hit = inter[(inter["month"] == ref) & trigger(inter)]
        pop = set(hit["customer_id"]) & set(ids)
    pop = pd.Index(sorted(pop), name="customer_id")
    window = out[(out["month"] >= ref) & (out["month"] <= end)]
    y = pd.DataFrame(index=pop)
    y["revenue"] = window.groupby("customer_id")["revenue"].sum().reindex(pop, fill_value=0.0)
    y["cost"] = window.groupby("customer_id")["cost_to_serve"].sum().reindex(pop, fill_value=0.0)
    last = out[(out["month"] == end) & out["active"]]
    y["retention"] = pop.isin(last["customer_id"]).astype(float)
    pre = out[(out["month"] >= pre_start) & (out["month"] < ref)].groupby("customer_id")
    x = pd.DataFrame(index=pop)
    x["revenue"] = pre["revenue"].sum().reindex(pop, fill_value=0.0)
    x["cost"] = pre["cost_to_serve"].sum().reindex(pop, fill_value=0.0)
    x["months_active"] = pre["active"].sum().reindex(pop, fill_value=0).astype(float)
    x["log_revenue"] = np.log1p(x["revenue"])
    cases = inter[(inter["month"] >= pre_start) & (inter["month"] < ref)]
    x["cases"] = cases.groupby("customer_id").size().reindex(pop, fill_value=0).astype(float)
    return x, y


def ols_r2(x: pd.DataFrame, y: pd.Series) -> float:
    design_matrix = np.column_stack([np.ones(len(x)), x.to_numpy()])
    beta = np.linalg.lstsq(design_matrix, y.to_numpy(), rcond=None)[0]
    resid = y.to_numpy() - design_matrix @ beta
    return 1.0 - float(resid @ resid) / float(((y - y.mean()) ** 2).sum())


def anova_icc(values: pd.Series, groups: pd.Series) -> float:
    """ICC(1) from the one-way ANOVA F statistic: (F - 1) / (F - 1 + n0), floored at 0."""
    parts = [g.to_numpy() for _, g in values.groupby(groups)]
    f = stats.f_oneway(*parts).statistic
    sizes = np.array([len(p) for p in parts], dtype=float)
    n, k = sizes.sum(), len(parts)
    n0 = (n - (sizes**2).sum() / n) / (k - 1)
    return max((f - 1.0) / (f - 1.0 + n0), 0.0)


# ---------------------------------------------------------------------------------------------
# Filters


def test_parse_eligible_reads_in_and_not_in_lists():
    conds = parse_eligible(" Tier = gold, platinum ;region!=north;")
    assert conds == [
        Condition("tier", ("gold", "platinum")),
        Condition("region", ("north",), negate=True),
    ]
    assert parse_eligible("") == [] and parse_eligible(None) == []


@pytest.mark.parametrize("text", ["tier", "tier=", "tier=gold,,silver", "=gold", "tier==gold"])
def test_malformed_filter_raises_quoting_the_condition(text):
    with pytest.raises(InputError, match="filter condition") as caught:
        parse_eligible(f"region=north;{text}")
    assert repr(text.strip()) in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Numbers against independent computations


def test_default_reference_month_leaves_the_horizon_observed(world):
    con, _ = world
    inputs = design_inputs(con, horizon_months=3, pre_months=3)
    assert (inputs.as_of, inputs.horizon_end, inputs.pre_start) == ("2025-10", "2025-12", "2025-07")
    assert inputs.pre_months == 3
    longer = design_inputs(con, horizon_months=6, pre_months=12)
    assert (longer.as_of, longer.horizon_end) == ("2025-07", "2025-12")
    # only six months precede July 2025: the pre-period is cut to what exists
    assert (longer.pre_start, longer.pre_months) == ("2025-01", 6)


def test_baseline_spreads_and_r2_match_pandas_and_numpy(world):
    con, tables = world
    inputs = design_inputs(con, horizon_months=3, pre_months=3)
    x, y = expected(tables, "2025-10", 3, 3)
    assert inputs.n_eligible == len(y) > 10_000
    assert inputs.retention_baseline == pytest.approx(y["retention"].mean(), rel=1e-12)
    assert inputs.churn_per_month == pytest.approx(1 - y["retention"].mean() ** (1 / 3))
    assert inputs.revenue_mean == pytest.approx(y["revenue"].mean(), rel=1e-9)
    assert inputs.revenue_sd == pytest.approx(y["revenue"].std(ddof=1), rel=1e-9)
    assert inputs.cost_mean == pytest.approx(y["cost"].mean(), rel=1e-9)
    assert inputs.cost_sd == pytest.approx(y["cost"].std(ddof=1), rel=1e-9)
    assert inputs.r2_revenue == pytest.approx(ols_r2(x, y["revenue"]), abs=1e-8)
    assert inputs.r2_cost == pytest.approx(ols_r2(x, y["cost"]), abs=1e-8)
    assert inputs.r2_retention == pytest.approx(ols_r2(x, y["retention"]), abs=1e-8)
    # pre-period spend predicts spend: a real, not a token, adjustment
    assert 0.1 < inputs.r2_revenue < 0.9
    assert inputs.eligible_per_week is None and inputs.events_per_week is None


def test_eligible_filter_restricts_the_population_to_gold(world):
    con, tables = world
    inputs = design_inputs(con, eligible="tier=gold")
    x, y = expected(tables, "2025-10", 3, 3, customers=lambda c: c["tier"] == "gold")
    tiers = tables["customers"].set_index("customer_id")["tier"]
    assert set(tiers[y.index]) == {"gold"}
    assert inputs.n_eligible == len(y) < design_inputs(con).n_eligible
    assert inputs.revenue_mean == pytest.approx(y["revenue"].mean(), rel=1e-9)
    assert inputs.r2_revenue == pytest.approx(ols_r2(x, y["revenue"]), abs=1e-8)
    both = design_inputs(con, eligible="tier=gold,platinum;region!=north")
    _, y2 = expected(
        tables,
        "2025-10",
        3,
        3,
        customers=lambda c: c["tier"].isin(["gold", "platinum"]) & (c["region"] != "north"),
    )
    assert both.n_eligible == len(y2)
    assert both.retention_baseline == pytest.approx(y2["retention"].mean(), rel=1e-12)


def test_trigger_population_rate_and_events_match_pandas(world):
    con, tables = world
    trigger = "resolution=" + ",".join(BAD)
    inputs = design_inputs(con, trigger=trigger, horizon_months=2, as_of="2025-09")
    x, y = expected(tables, "2025-09", 2, 3, trigger=lambda i: i["resolution"].isin(BAD))
    assert inputs.n_eligible == len(y) > 300
    assert inputs.retention_baseline == pytest.approx(y["retention"].mean(), rel=1e-12)
    assert inputs.r2_revenue == pytest.approx(ols_r2(x, y["revenue"]), abs=1e-8)
    inter = tables["interactions"]
    recent = inter[inter["resolution"].isin(BAD) & (inter["month"] >= pd.Period("2025-07", "M"))]
    per_month = recent.groupby("month")["customer_id"].nunique()
    days = (pd.Timestamp("2026-01-01") - pd.Timestamp("2025-07-01")).days
    assert inputs.rate_months == 6
    assert inputs.eligible_per_week == pytest.approx(per_month.sum() / (days / 7), rel=1e-12)
    assert inputs.events_per_week == pytest.approx(
        inputs.eligible_per_week * (1 - y["retention"].mean()), rel=1e-12
    )


def test_icc_and_cluster_sizes_match_the_anova_f_statistic(world):
    con, tables = world
    inputs = design_inputs(con, cluster="tier")
    _, y = expected(tables, "2025-10", 3, 3)
    tier = tables["customers"].set_index("customer_id")["tier"].reindex(y.index)
    sizes = tier.value_counts().to_numpy(dtype=float)
    assert inputs.n_clusters == 4
    assert inputs.mean_cluster_size == pytest.approx(sizes.mean())
    assert inputs.cluster_size_cv == pytest.approx(sizes.std(ddof=0) / sizes.mean())
    # the ICC the readout meets: of each outcome within its pre-period spend band
    band = pre_bands(tables, "2025-10", y.index)
    within = y - y.groupby(band).transform("mean")
    assert inputs.icc_revenue == pytest.approx(anova_icc(within["revenue"], tier), abs=1e-9)
    assert inputs.icc_cost == pytest.approx(anova_icc(within["cost"], tier), abs=1e-9)
    assert inputs.icc_retention == pytest.approx(anova_icc(within["retention"], tier), abs=1e-9)
    assert 0.05 < inputs.icc_revenue < anova_icc(y["revenue"], tier)  # bands take a part
    kwargs = inputs.for_cluster("revenue")
    m, cv = sizes.mean(), sizes.std(ddof=0) / sizes.mean()
    expected_deff = 1 + inputs.icc_revenue * ((m - 1) + m * cv**2)
    assert design.design_effect(**kwargs) == pytest.approx(expected_deff)
    size = design.means_sample_size(mde=10.0, **inputs.for_means("revenue"))
    clustered = design.cluster_sample_size(size, **kwargs)
    assert clustered.n_total >= size.n_total_exact * expected_deff


def band_r2(tables, as_of: str, y: pd.Series) -> float:
    """Adjusted R^2 of ``y`` on the readout's pre-period spend bands (:func:`pre_bands`)."""
    band = pre_bands(tables, as_of, y.index)
    between = y.groupby(band).agg(["size", "mean"])
    grand = y.mean()
    r2 = (between["size"] * (between["mean"] - grand) ** 2).sum() / ((y - grand) ** 2).sum()
    return max(0.0, 1 - (1 - r2) * (len(y) - 1) / (len(y) - len(between)))


def pre_bands(tables, as_of: str, index: pd.Index) -> pd.Series:
    """The readout's pre-period spend band of each customer in ``index``, from the raw rows:
    revenue over the PRE_MONTHS months before ``as_of``; band 0 without any, else
    NTILE(PRE_BANDS - 1) by (revenue, customer_id) as DuckDB deals them (the first n mod k
    tiles one row larger)."""
    out = tables["outcomes"]
    ref = pd.Period(as_of, "M")
    start = max(out["month"].min(), ref - PRE_MONTHS)
    pre = out[(out["month"] >= start) & (out["month"] < ref)].groupby("customer_id")["revenue"]
    revenue = pre.sum().reindex(index, fill_value=0.0)
    band = pd.Series(0, index=index)
    positive = revenue[revenue > 0].sort_index().sort_values(kind="stable")
    n, k = len(positive), PRE_BANDS - 1
    q, r = divmod(n, k)
    sizes = [q + 1] * r + [q] * (k - r)
    band[positive.index] = np.repeat(np.arange(1, k + 1), sizes)
    return band


def test_design_r2_is_the_readouts_own_adjustment_the_pre_period_spend_bands(world):
    """CUPED at design, bands at readout sized designs smaller than the readout could support:
    the R^2 a design uses is now the adjusted R^2 on the readout's pre-period spend bands."""
    con, tables = world
    inputs = design_inputs(con, horizon_months=3, pre_months=3)
    x, y = expected(tables, "2025-10", 3, 3)
    for key in ("revenue", "cost", "retention"):
        got = getattr(inputs, f"r2_{key}_bands")
        assert got == pytest.approx(band_r2(tables, "2025-10", y[key]), abs=1e-9), key
    assert inputs.for_retention()["r2"] == inputs.r2_retention_bands
    assert "readout's own adjustment" in inputs.describe()


def test_r2_from_history_lowers_the_sample_size_by_one_minus_r2(world):
    con, _ = world
    inputs = design_inputs(con)
    kwargs = inputs.for_means("revenue")
    assert kwargs == {"sd": inputs.revenue_sd, "r2": inputs.r2_revenue_bands}
    adjusted = design.means_sample_size(mde=10.0, **kwargs)
    plain = design.means_sample_size(inputs.revenue_sd, 10.0)
    ratio = adjusted.n_total_exact / plain.n_total_exact
    assert ratio == pytest.approx(1 - inputs.r2_revenue_bands, rel=1e-9)
    assert adjusted.n_total < plain.n_total
    retention = design.proportions_sample_size(mde=0.02, **inputs.for_retention())
    assert (
        retention.n_total_exact
        < design.proportions_sample_size(inputs.retention_baseline, 0.02).n_total_exact
    )


def test_results_are_json_ready_and_described(world):
    con, _ = world
    inputs = design_inputs(con, eligible="tier=gold", cluster="region", trigger="kind=billing")
    data = json.loads(json.dumps(inputs.to_dict()))
    assert data["n_eligible"] == inputs.n_eligible
    assert data["horizon_weeks"] == pytest.approx(3 * 365.25 / 12 / 7)
    text = inputs.describe()
    assert f"{inputs.n_eligible:,} customers" in text
    assert "tier=gold" in text and "kind=billing" in text and "Clusters by region" in text


# ---------------------------------------------------------------------------------------------
# A hand-built store: exact counts, missing values, read-only


@pytest.fixture
def tiny(con):
    customers = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D"],
            "signup_date": pd.to_datetime(["2024-01-01"] * 4),
            "tier": ["gold", None, "silver", "gold"],
        }
    )
    rows = []
    for cid, revenue in [("A", 10.0), ("B", 20.0), ("C", 30.0), ("D", 40.0)]:
        for m, month in enumerate(["2025-01-01", "2025-02-01", "2025-03-01"]):
            active = not (cid == "D" and m == 2)
            rows.append((cid, pd.Timestamp(month), active, revenue * active * (m + 1), 1.0))
    outcomes = pd.DataFrame(
        rows, columns=["customer_id", "period", "active", "revenue", "cost_to_serve"]
    )
    interactions = pd.DataFrame(
        {
            "customer_id": ["A", "A", "B", "C", "D"],
            "ts": pd.to_datetime(
                ["2025-02-03", "2025-02-20", "2025-02-10", "2025-03-05", "2025-01-09"]
            ),
            "kind": ["billing", "billing", "billing", "delivery", "billing"],
        }
    )
    for name, frame in [
        ("customers", customers),
        ("outcomes", outcomes),
        ("interactions", interactions),
    ]:
        store.append(con, name, frame)
    return con


def test_not_in_filter_keeps_missing_values_and_rates_count_customers_once_a_month(tiny):
    before = snapshot(tiny)
    everyone = design_inputs(tiny, horizon_months=2)
    assert (everyone.as_of, everyone.n_eligible) == ("2025-02", 4)
    assert everyone.retention_baseline == pytest.approx(0.75)
    assert everyone.revenue_mean == pytest.approx((50 + 100 + 150 + 80) / 4)
    not_gold = design_inputs(tiny, eligible="tier!=gold", horizon_months=2)
    assert not_gold.n_eligible == 2  # B (no tier) and C
    billing = design_inputs(tiny, trigger="kind=billing", horizon_months=2)
    assert billing.n_eligible == 2  # A (twice in February, counted once) and B
    # January to March: D, then A and B, then nobody: 3 customer-months over 90 days
    assert billing.rate_months == 3
    assert billing.eligible_per_week == pytest.approx(3 / (90 / 7))
    assert_unchanged(before, tiny)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"eligible": "segment=gold", "horizon_months": 1}, ["'segment'", "'tier'", "customers"]),
        (
            {"trigger": "reason=billing", "horizon_months": 1},
            ["'reason'", "'kind'", "interactions"],
        ),
        ({"eligible": "tier=gold;oops", "horizon_months": 1}, ["'oops'"]),
        ({"cluster": "team", "horizon_months": 1}, ["'team'", "'tier'"]),
        ({"horizon_months": 3}, ["horizon_months=3", "3 months"]),
        ({"horizon_months": 0}, ["horizon_months", "0"]),
        ({"pre_months": -1}, ["pre_months", "-1"]),
        ({"as_of": "2025-01"}, ["as_of", "2025-01"]),
        ({"as_of": "2025-03", "horizon_months": 2}, ["horizon_months=2", "2025-04"]),
        ({"eligible": "tier=platinum", "horizon_months": 1}, ["tier=platinum", "no customers"]),
        ({"cluster": "tier", "eligible": "tier=gold", "horizon_months": 1}, ["single value"]),
    ],
)
def test_bad_settings_raise_input_error_naming_them(tiny, kwargs, words):
    with pytest.raises(InputError) as caught:
        design_inputs(tiny, **kwargs)
    for word in words:
        assert word in str(caught.value)


def test_store_without_outcomes_is_refused(con):
    with pytest.raises(InputError, match="no outcomes"):
        design_inputs(con)


def test_for_means_refuses_an_unknown_metric(world):
    con, _ = world
    inputs = design_inputs(con)
    with pytest.raises(InputError, match="'margin'"):
        inputs.for_means("margin")
    assert inputs.for_means("cost_to_serve") == {"sd": inputs.cost_sd, "r2": inputs.r2_cost_bands}
    assert math.isclose(inputs.for_retention()["baseline"], inputs.retention_baseline)


def test_net_value_is_the_readouts_money_per_customer_from_the_raw_rows(world):
    """Net value per customer before the intervention's cost: the window's margin less cost,
    and for a customer active at the horizon that flow carried over the value horizon with the
    population's decay and the discount (attribution.value's schedule)."""
    from attribution.settings import MoneySettings

    con, tables = world
    money = MoneySettings(margin_rate=0.25, value_horizon_months=6, discount_rate=0.08)
    inputs = design_inputs(con, horizon_months=3, pre_months=3, money=money)
    _, y = expected(tables, "2025-10", 3, 3)
    rho = y["retention"].mean() ** (1 / 2)
    d = 1.08 ** (-1 / 12)
    carry = sum(rho**j * d ** (3 + j) for j in range(1, 7)) / 3
    assert inputs.value_carry == pytest.approx(carry, rel=1e-12)
    net = (0.25 * y["revenue"] - y["cost"]) * (1 + y["retention"] * carry)
    assert inputs.net_value_mean == pytest.approx(net.mean(), rel=1e-9)
    assert inputs.net_value_sd == pytest.approx(net.std(ddof=1), rel=1e-9)
    assert inputs.r2_net_value_bands == pytest.approx(band_r2(tables, "2025-10", net), abs=1e-9)
    assert inputs.for_means("net_value") == {
        "sd": inputs.net_value_sd,
        "r2": inputs.r2_net_value_bands,
    }
    assert "Net value per customer" in inputs.describe()


def test_csat_share_and_spread_are_the_guardrails_from_the_raw_rows(world):
    """What the CSAT guardrail's precision follows from: who rates service over the horizon and
    the spread of their mean rating."""
    con, tables = world
    inputs = design_inputs(con, horizon_months=3, pre_months=3)
    _, y = expected(tables, "2025-10", 3, 3)
    inter = tables["interactions"]
    ref = pd.Period("2025-10", "M")
    rated = inter[(inter["month"] >= ref) & (inter["month"] <= ref + 2) & inter["csat"].notna()]
    rated = rated[rated["customer_id"].isin(y.index)]
    per_customer = rated.groupby("customer_id")["csat"].mean()
    assert inputs.csat_rated_share == pytest.approx(len(per_customer) / len(y), rel=1e-12)
    assert inputs.csat_sd == pytest.approx(per_customer.std(ddof=1), rel=1e-9)
    assert "rate service" in inputs.describe()


def test_a_triggered_population_counts_ratings_after_its_trigger_only(world):
    """The test starts at the trigger: its own (rated) triggering case is not CSAT evidence."""
    con, tables = world
    inputs = design_inputs(con, trigger="resolution=" + ",".join(BAD), horizon_months=2,
                           as_of="2025-09")  # fmt: skip
    _, y = expected(tables, "2025-09", 2, 3, trigger=lambda i: i["resolution"].isin(BAD))
    inter = tables["interactions"]
    ref = pd.Period("2025-09", "M")
    hits = inter[(inter["month"] == ref) & inter["resolution"].isin(BAD)]
    first = hits.groupby("customer_id")["ts"].min()
    rated = inter[(inter["month"] >= ref) & (inter["month"] <= ref + 1) & inter["csat"].notna()]
    rated = rated[rated["customer_id"].isin(y.index)]
    rated = rated[rated["ts"] > rated["customer_id"].map(first)]
    per_customer = rated.groupby("customer_id")["csat"].mean()
    assert 0 < inputs.csat_rated_share == pytest.approx(len(per_customer) / len(y), rel=1e-12)
    assert inputs.csat_rated_share < 1.0  # the triggering ratings alone would make it 1
    assert inputs.csat_sd == pytest.approx(per_customer.std(ddof=1), rel=1e-9)
