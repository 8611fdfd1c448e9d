"""The simulator: deterministic worlds, calibrated facts and an exact truth table."""

from __future__ import annotations

import json
import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from attribution import store, synth
from attribution.errors import InputError
from attribution.settings import MoneySettings

TABLES = (
    "customers",
    "interactions",
    "interventions",
    "outcomes",
    "experiments",
    "assignments",
    "truth",
)


def _world(n: int, months: int, seed: int, **kwargs):
    con = store.connect(":memory:")
    summary = synth.simulate(con, n, months, seed, **kwargs)
    return con, summary


def _dump(con, table: str) -> pd.DataFrame:
    return con.execute(f"SELECT * FROM {table} ORDER BY ALL").df()


@pytest.fixture(scope="module")
def world12():
    """30k customers over 12 months: experiments start 2025-07, horizon 2025-12."""
    con, summary = _world(30_000, 12, 7)
    yield con, summary
    con.close()


@pytest.fixture(scope="module")
def world24():
    """A 24-month world, long enough to measure 12-month survival after a first case."""
    con, summary = _world(60_000, 24, 11)
    yield con, summary
    con.close()


# --- determinism and shape ------------------------------------------------------------------------


def test_same_seed_gives_identical_tables_and_another_seed_differs(monkeypatch):
    monkeypatch.setattr(synth, "CHUNK_SIZE", 1_000)  # several chunks, the last one partial
    a, _ = _world(2_500, 6, 3)
    b, _ = _world(2_500, 6, 3)
    c, _ = _world(2_500, 6, 4)
    for table in TABLES:
        pd.testing.assert_frame_equal(_dump(a, table), _dump(b, table), obj=table)
    assert not _dump(a, "outcomes").equals(_dump(c, "outcomes"))
    assert not _dump(a, "interactions").equals(_dump(c, "interactions"))


def test_summary_counts_match_the_store_and_name_the_periods(world12):
    con, summary = world12
    counts = store.table_counts(con)
    assert summary.rows == {t: counts[t] for t in TABLES}
    assert summary.customers == 30_000
    assert summary.outcomes == 30_000 * 12
    assert summary.experiments == 2
    assert summary.first_period == date(2025, 1, 1)
    assert summary.experiment_start == date(2025, 7, 1)
    assert summary.horizon == date(2025, 12, 1)
    assert summary.seconds > 0


def test_smallest_world_runs_and_start_month_is_honoured():
    con, summary = _world(1, 3, 0, start="2024-11")
    assert summary.outcomes == 3
    assert con.execute("SELECT min(period), max(period) FROM outcomes").fetchone() == (
        date(2024, 11, 1),
        date(2025, 1, 1),
    )
    assert summary.experiment_start == date(2024, 12, 1)


def test_simulate_leaves_the_transaction_to_the_caller():
    con = store.connect(":memory:")
    con.execute("BEGIN TRANSACTION")
    synth.simulate(con, 200, 4, 1)
    con.execute("ROLLBACK")
    assert store.is_empty(con)


def test_customer_ids_and_segments(world12):
    con, _ = world12
    first, last, n, n_distinct, bad = con.execute(
        "SELECT min(customer_id), max(customer_id), count(*), count(DISTINCT customer_id), "
        "count(*) FILTER (WHERE NOT regexp_full_match(customer_id, 'C[0-9]{8}')) FROM customers"
    ).fetchone()
    assert (first, last, n, n_distinct, bad) == ("C00000001", "C00030000", 30_000, 30_000, 0)
    assert set(synth.SEGMENT_COLUMNS) <= set(store.segment_columns(con))
    levels = con.execute(
        "SELECT list(DISTINCT tier ORDER BY tier), list(DISTINCT region ORDER BY region), "
        "list(DISTINCT channel ORDER BY channel), list(DISTINCT tenure_band ORDER BY tenure_band) "
        "FROM customers"
    ).fetchone()
    assert levels == (
        ["bronze", "gold", "platinum", "silver"],
        ["east", "north", "south", "west"],
        ["partner", "referral", "store", "web"],
        ["1-3y", "3y+", "<1y"],
    )
    tiers = dict(con.execute("SELECT tier, count(*) FROM customers GROUP BY tier").fetchall())
    assert tiers["bronze"] > tiers["silver"] > tiers["gold"] > tiers["platinum"]
    # tenure_band is the tenure at the first month, from signup_date (always before it)
    mismatched = con.execute(
        """
        SELECT count(*) FILTER (WHERE signup_date >= DATE '2025-01-01'),
               count(*) FILTER (WHERE tenure_band <> CASE
                   WHEN date_diff('month', signup_date, DATE '2025-01-01') <= 12 THEN '<1y'
                   WHEN date_diff('month', signup_date, DATE '2025-01-01') <= 36 THEN '1-3y'
                   ELSE '3y+' END)
        FROM customers
        """
    ).fetchone()
    assert mismatched == (0, 0)


def test_outcomes_are_monthly_and_churn_is_absorbing(world12):
    con, _ = world12
    per_customer = con.execute(
        "SELECT count(*) FROM (SELECT customer_id FROM outcomes GROUP BY 1 "
        "HAVING count(*) <> 12 OR count(DISTINCT period) <> 12)"
    ).fetchone()[0]
    assert per_customer == 0
    negative, inactive_with_money, returned = con.execute(
        """
        SELECT count(*) FILTER (WHERE revenue < 0 OR cost_to_serve < 0),
               count(*) FILTER (WHERE NOT active AND (revenue > 0 OR cost_to_serve > 0)),
               count(*) FILTER (WHERE active AND NOT prev_active)
        FROM (SELECT *, lag(active, 1, true) OVER (PARTITION BY customer_id ORDER BY period)
                        AS prev_active FROM outcomes)
        """
    ).fetchone()
    assert (negative, inactive_with_money, returned) == (0, 0, 0)
    retained = con.execute(
        "SELECT avg(CAST(active AS DOUBLE)) FROM outcomes WHERE period = DATE '2025-12-01'"
    ).fetchone()[0]
    assert 0.6 < retained < 0.95
    cost_zero = con.execute(
        "SELECT avg(CAST(cost_to_serve = 0 AS DOUBLE)) FROM outcomes WHERE active"
    ).fetchone()[0]
    assert 0.2 < cost_zero < 0.8  # zero in quiet months, positive with cases or orders


def test_revenue_has_many_zero_months_and_a_heavy_tail(world12):
    con, _ = world12
    zero_share = con.execute(
        "SELECT avg(CAST(revenue = 0 AS DOUBLE)) FROM outcomes WHERE active"
    ).fetchone()[0]
    assert 0.4 < zero_share < 0.8
    top1, mean_to_median = con.execute(
        """
        WITH c AS (SELECT customer_id, sum(revenue) AS r FROM outcomes GROUP BY 1),
        ranked AS (SELECT r, row_number() OVER (ORDER BY r DESC) AS k FROM c)
        SELECT sum(r) FILTER (WHERE k <= 300) / sum(r),
               (SELECT avg(revenue) / median(revenue) FROM outcomes WHERE revenue > 0)
        FROM ranked
        """
    ).fetchone()
    assert top1 > 0.08  # the top 1% of customers bring over 8% of revenue
    assert mean_to_median > 1.5  # lognormal purchase amounts: mean far above the median


def test_cases_are_consistent_with_resolution_quality(world12):
    con, _ = world12
    rows = con.execute(
        """
        SELECT resolution, avg(csat), avg(effort), avg(CAST(first_contact_resolution AS DOUBLE)),
               median(handle_minutes), min(csat), max(csat), min(effort), max(effort)
        FROM interactions GROUP BY resolution
        """
    ).fetchall()
    by = {r[0]: r[1:] for r in rows}
    ordered = [by[r] for r in synth.RESOLUTIONS]
    for better, worse in zip(ordered, ordered[1:], strict=False):
        assert better[0] > worse[0]  # csat falls
        assert better[1] < worse[1]  # effort rises
        assert better[2] > worse[2]  # fewer first-contact resolutions
        assert better[3] < worse[3]  # longer handling
    assert min(r[4] for r in ordered) >= 1 and max(r[5] for r in ordered) <= 5
    assert min(r[6] for r in ordered) >= 1 and max(r[7] for r in ordered) <= 7
    outside = con.execute(
        """
        SELECT count(*) FROM interactions i JOIN outcomes o
          ON o.customer_id = i.customer_id AND o.period = CAST(date_trunc('month', i.ts) AS DATE)
        WHERE NOT o.active
        """
    ).fetchone()[0]
    assert outside == 0  # cases only in months the customer is active


# --- calibration to the survey facts --------------------------------------------------------------


def test_resolution_shares_match_the_survey(world24):
    facts = synth.calibration_facts(world24[0])
    assert facts["share_very_effective"] == pytest.approx(0.28, abs=0.015)
    assert facts["share_very_ineffective"] == pytest.approx(0.24, abs=0.015)


def test_twelve_month_survival_after_first_case_matches_the_survey(world24):
    facts = synth.calibration_facts(world24[0])
    assert facts["n_well_resolved"] > 3_000 and facts["n_others"] > 8_000
    assert facts["survival_well_resolved"] == pytest.approx(0.71, abs=0.04)
    assert facts["survival_others"] == pytest.approx(0.46, abs=0.04)


def test_thirteen_percent_of_unhappy_stayers_keep_their_spend(world24):
    # Definition in calibration_facts: purchase-rate ratio after/before a first very ineffective
    # case among stayers, R = s + (1 - s) * UNHAPPY_PURCHASE_FACTOR, solved for s.
    facts = synth.calibration_facts(world24[0])
    assert facts["n_same_level"] > 1_000
    assert facts["same_level_share"] == pytest.approx(0.13, abs=0.05)
    f = synth.UNHAPPY_PURCHASE_FACTOR
    assert facts["purchase_rate_ratio"] == pytest.approx(0.13 + 0.87 * f, abs=0.035)


def test_survival_facts_need_two_years_of_data(world12):
    facts = synth.calibration_facts(world12[0])
    assert facts["survival_well_resolved"] is None and facts["n_others"] == 0


# --- interventions, experiments and truth ---------------------------------------------------------


def test_experiments_assignments_and_interventions_rows(world12):
    con, _ = world12
    exps = con.execute(
        "SELECT experiment_id, intervention, started, ended, json_extract(design, '$.allocation') "
        "FROM experiments ORDER BY 1"
    ).fetchall()
    assert [(e[0], e[1], e[2], e[3]) for e in exps] == [
        ("exp_premium_support", "premium_support", date(2025, 7, 1), date(2025, 12, 31)),
        ("exp_recovery_gift", "recovery_gift", date(2025, 7, 1), date(2025, 12, 31)),
    ]
    arms = dict(
        con.execute(
            "SELECT experiment_id, avg(CAST(arm = 'control' AS DOUBLE)) FROM assignments GROUP BY 1"
        ).fetchall()
    )
    assert arms["exp_recovery_gift"] == pytest.approx(0.5, abs=0.05)
    assert arms["exp_premium_support"] == pytest.approx(0.1, abs=0.02)
    odd = con.execute(
        """
        SELECT count(*) FROM assignments a JOIN customers c USING (customer_id)
        WHERE a.stratum <> c.tier OR a.assigned_at <> TIMESTAMP '2025-07-01'
           OR (a.experiment_id = 'exp_premium_support' AND c.tier NOT IN ('gold', 'platinum'))
        """
    ).fetchone()[0]
    assert odd == 0
    # one interventions row per treated customer, none for controls
    treated_rows = con.execute(
        """
        SELECT i.intervention, count(*), min(i.unit_cost), max(i.unit_cost),
               count(*) FILTER (WHERE a.arm IS DISTINCT FROM 'treatment'
                                AND i.experiment_id IS NOT NULL),
               count(DISTINCT i.experiment_id), min(i.ts), max(i.ts)
        FROM interventions i
        LEFT JOIN assignments a
          ON a.customer_id = i.customer_id AND a.experiment_id = i.experiment_id
        GROUP BY 1 ORDER BY 1
        """
    ).fetchall()
    start = pd.Timestamp("2025-07-01").to_pydatetime()
    for name, n, lo, hi, not_treatment_arm, n_exp, ts_lo, ts_hi in treated_rows:
        assert lo == hi == synth.UNIT_COSTS[name]
        assert not_treatment_arm == 0
        assert n_exp == (0 if name == "proactive_outreach" else 1)
        assert ts_lo == ts_hi == start and n > 0
    n_treatment_arm = con.execute(
        "SELECT count(*) FROM assignments WHERE arm = 'treatment'"
    ).fetchone()[0]
    n_experiment_rows = con.execute(
        "SELECT count(*) FROM interventions WHERE experiment_id IS NOT NULL"
    ).fetchone()[0]
    assert n_treatment_arm == n_experiment_rows


def test_truth_table_has_every_outcome_segment_and_estimand(world12):
    con, _ = world12
    truth = con.execute("SELECT * FROM truth").df()
    assert set(truth["arm"]) == {"treatment"} and set(truth["metric"]) == {"absolute"}
    assert not truth.duplicated(
        ["intervention", "outcome", "segment_by", "segment", "estimand"]
    ).any()
    for name in synth.INTERVENTIONS:
        rows = truth[truth["intervention"] == name]
        expected_exp = {v: k for k, v in synth.EXPERIMENTS.items()}.get(name)
        assert (
            rows["experiment_id"].isna().all()
            if expected_exp is None
            else (rows["experiment_id"] == expected_exp).all()
        )
        for estimand in ("ate", "att"):
            for outcome in synth.OUTCOMES:
                cut = rows[(rows["estimand"] == estimand) & (rows["outcome"] == outcome)]
                assert set(cut["segment_by"]) == {"all", *synth.SEGMENT_COLUMNS}
                overall = cut[cut["segment_by"] == "all"]
                assert list(overall["segment"]) == ["all"]
                for col in synth.SEGMENT_COLUMNS:  # segments partition the population
                    assert cut.loc[cut["segment_by"] == col, "n"].sum() == overall["n"].iloc[0]
    # ate averages over the population, att over those treated
    n = truth[(truth["segment_by"] == "all") & (truth["outcome"] == "retention")]
    n = n.set_index(["intervention", "estimand"])["n"]
    counts = dict(
        con.execute("SELECT intervention, count(*) FROM interventions GROUP BY 1").fetchall()
    )
    population = dict(
        con.execute(
            "SELECT e.intervention, count(*) FROM assignments a JOIN experiments e USING "
            "(experiment_id) GROUP BY 1"
        ).fetchall()
    )
    population["proactive_outreach"] = con.execute(
        "SELECT count(*) FROM outcomes WHERE period = DATE '2025-07-01' AND active"
    ).fetchone()[0]
    for name in synth.INTERVENTIONS:
        assert n[(name, "att")] == counts[name]
        assert n[(name, "ate")] == population[name]


def _arm_means(con, name: str) -> pd.DataFrame:
    """Per arm: n, mean and variance of each readout outcome (sums over start..horizon)."""
    experiment_id = {v: k for k, v in synth.EXPERIMENTS.items()}.get(name)
    return (
        con.execute(
            """
        WITH per AS (
            SELECT customer_id,
                   bool_or(active) FILTER (WHERE period = DATE '2025-07-01') AS at_start,
                   CAST(bool_or(active) FILTER (WHERE period = DATE '2025-12-01') AS DOUBLE)
                       AS retention,
                   sum(revenue) FILTER (WHERE period >= DATE '2025-07-01') AS revenue,
                   sum(cost_to_serve) FILTER (WHERE period >= DATE '2025-07-01')
                       AS cost_to_serve
            FROM outcomes GROUP BY customer_id
        ),
        labelled AS (
            SELECT per.*, a.experiment_id,
                   coalesce(a.arm, CASE WHEN i.customer_id IS NULL THEN 'control'
                                        ELSE 'treatment' END) AS arm
            FROM per
            LEFT JOIN assignments a ON a.customer_id = per.customer_id AND a.experiment_id = $2
            LEFT JOIN interventions i
              ON i.customer_id = per.customer_id AND i.intervention = $1
        )
        SELECT arm, count(*) AS n,
               avg(retention) AS retention, var_samp(retention) AS v_retention,
               avg(revenue) AS revenue, var_samp(revenue) AS v_revenue,
               avg(cost_to_serve) AS cost_to_serve, var_samp(cost_to_serve) AS v_cost_to_serve
        FROM labelled
        WHERE CASE WHEN $2 IS NULL THEN at_start ELSE experiment_id IS NOT NULL END
        GROUP BY arm
        """,
            [name, experiment_id],
        )
        .df()
        .set_index("arm")
    )


def _z_scores(con, name: str, estimand: str) -> dict[str, float]:
    arms = _arm_means(con, name)
    truth = dict(
        con.execute(
            "SELECT outcome, effect FROM truth WHERE intervention = ? AND segment_by = 'all' "
            "AND estimand = ?",
            [name, estimand],
        ).fetchall()
    )
    t, c = arms.loc["treatment"], arms.loc["control"]
    out = {}
    for outcome in synth.OUTCOMES:
        diff = t[outcome] - c[outcome]
        se = math.sqrt(t[f"v_{outcome}"] / t["n"] + c[f"v_{outcome}"] / c["n"])
        out[outcome] = (diff - truth[outcome]) / se
    return out


@pytest.mark.parametrize("name", ["recovery_gift", "premium_support"])
def test_randomized_difference_in_means_recovers_the_ate(world12, name):
    z = _z_scores(world12[0], name, "ate")
    assert all(abs(v) < 3 for v in z.values()), z


def test_naive_comparison_of_targeted_outreach_is_biased(world12):
    # Outreach targets high spenders at risk, so treated-minus-untreated is far from the truth.
    z = _z_scores(world12[0], "proactive_outreach", "att")
    assert abs(z["revenue"]) > 5 and abs(z["cost_to_serve"]) > 5, z


def test_planted_effects_have_the_documented_signs_and_differ_by_tier(world12):
    con, _ = world12
    truth = con.execute(
        "SELECT intervention, outcome, segment, effect FROM truth "
        "WHERE estimand = 'ate' AND segment_by IN ('all', 'tier')"
    ).df()
    eff = truth.set_index(["intervention", "outcome", "segment"])["effect"]
    assert eff[("recovery_gift", "retention", "all")] > 0.05
    assert eff[("recovery_gift", "revenue", "all")] > 0
    assert (
        eff[("recovery_gift", "retention", "bronze")]
        > eff[("recovery_gift", "retention", "platinum")]
    )
    assert eff[("premium_support", "retention", "all")] > 0.01
    assert eff[("premium_support", "cost_to_serve", "all")] > 10  # premium handling costs more
    assert (
        eff[("premium_support", "retention", "gold")]
        != eff[("premium_support", "retention", "platinum")]
    )
    assert eff[("proactive_outreach", "retention", "all")] > 0
    assert eff[("proactive_outreach", "cost_to_serve", "all")] < 0  # fewer cases
    outreach_revenue = [eff[("proactive_outreach", "revenue", t)] for t in synth.TIERS]
    assert outreach_revenue == sorted(outreach_revenue)  # more value in higher tiers


# --- arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"n_customers": 0}, "n_customers"),
        ({"n_customers": 2.5}, "n_customers"),
        ({"n_customers": True}, "n_customers"),
        ({"n_customers": 100_000_000}, "n_customers"),
        ({"months": 2}, "months"),
        ({"seed": -1}, "seed"),
        ({"start": "2025-13"}, "start"),
        ({"start": "January 2025"}, "start"),
        ({"start": "2025-01-15"}, "start"),
    ],
)
def test_bad_arguments_raise_input_error_naming_the_setting(kwargs, setting):
    args = {"n_customers": 10, "months": 6, "seed": 0, "start": "2025-01"} | kwargs
    con = store.connect(":memory:")
    with pytest.raises(InputError, match=setting):
        synth.simulate(con, args.pop("n_customers"), args.pop("months"), args.pop("seed"), **args)
    assert store.is_empty(con)


def test_planted_net_value_is_the_discounted_cash_flow_of_the_planted_effects():
    """With no value horizon and no discounting, net value is margin x revenue - cost - unit cost.

    The value horizon runs both paths on past the window; it must not change any table the
    models read, only the planted money.
    """
    plain = MoneySettings(margin_rate=0.3, value_horizon_months=0, discount_rate=0.0)
    a, b = store.connect(":memory:"), store.connect(":memory:")
    synth.simulate(a, 3000, months=8, seed=2, money=plain)
    synth.simulate(b, 3000, months=8, seed=2)  # the default: 12 months, 10% a year
    wide = a.execute(
        "PIVOT (SELECT intervention, estimand, segment_by, segment, outcome, effect FROM truth) "
        "ON outcome USING first(effect)"
    ).df()
    cost = wide["intervention"].map(synth.UNIT_COSTS)
    expected = 0.3 * wide["revenue"] - wide["cost_to_serve"] - cost
    np.testing.assert_allclose(wide["net_value"], expected, rtol=1e-9, atol=1e-9)
    paid = wide["payback_months"]
    assert ((expected < 0) <= np.isinf(paid)).all()  # losing money: never pays back
    assert paid[np.isfinite(paid)].between(1, 4).all()  # within the 4-month window
    for table in ("customers", "outcomes", "interactions", "interventions", "assignments"):
        left = a.execute(f"SELECT * FROM {table} ORDER BY ALL").df()
        right = b.execute(f"SELECT * FROM {table} ORDER BY ALL").df()
        pd.testing.assert_frame_equal(left, right)
    longer = b.execute(
        "SELECT effect FROM truth WHERE intervention = 'recovery_gift' AND segment_by = 'all' "
        "AND estimand = 'ate' AND outcome = 'net_value'"
    ).fetchone()[0]
    short = wide.query(
        "intervention == 'recovery_gift' and segment_by == 'all' and estimand == 'ate'"
    )["net_value"].iloc[0]
    assert longer != short
    design = json.loads(b.execute("SELECT design FROM experiments LIMIT 1").fetchone()[0])
    assert design["money"] == {"margin_rate": 0.3, "value_horizon_months": 12, "discount_rate": 0.1}


# --- branches: clusters whose customers share part of their outcomes ------------------------------
def _one_way_icc(frame: pd.DataFrame, group: str, y: str) -> float:
    """One-way ANOVA ICC of ``y`` between ``group`` values (unequal sizes)."""
    g = frame.groupby(group)[y]
    k, n = g.size(), len(frame)
    msb = (k * (g.mean() - frame[y].mean()) ** 2).sum() / (len(k) - 1)
    msw = ((frame[y] - g.transform("mean")) ** 2).sum() / (n - len(k))
    m0 = (n - (k**2).sum() / n) / (len(k) - 1)
    return float((msb - msw) / (msb + (m0 - 1) * msw))


def _per_customer(con) -> pd.DataFrame:
    return con.execute(
        """
        SELECT c.*, SUM(o.revenue) AS revenue,
               MAX(CASE WHEN o.period = DATE '2025-10-01' AND o.active THEN 1 ELSE 0 END) AS active
        FROM outcomes o JOIN customers c USING (customer_id)
        WHERE o.period >= DATE '2025-07-01'
        GROUP BY ALL ORDER BY c.customer_id
        """
    ).df()


def test_branches_correlate_outcomes_within_a_branch_and_leave_the_rest_of_the_world_alone():
    plain, branched = store.connect(":memory:"), store.connect(":memory:")
    synth.simulate(plain, 6000, months=10, seed=4)
    synth.simulate(branched, 6000, months=10, seed=4, branches=50)
    a, b = _per_customer(plain), _per_customer(branched)
    assert "branch" not in a.columns
    assert b["branch"].str.fullmatch(r"B\d{4}").all() and b["branch"].nunique() == 50
    same = ["customer_id", "signup_date", *synth.SEGMENT_COLUMNS]
    pd.testing.assert_frame_equal(a[same], b[same])  # the same customers, only served by branches
    sizes = b.groupby("branch").size()
    assert 0.3 < sizes.std() / sizes.mean() < 0.8  # branch sizes vary
    # outcomes correlate within branches (design effects well above 1), not by chance labels
    for y in ("active", "revenue"):
        planted = _one_way_icc(b, "branch", y)
        shuffled = b.assign(branch=b["branch"].sample(frac=1.0, random_state=0).to_numpy())
        assert planted > 0.005 and planted > 3 * abs(_one_way_icc(shuffled, "branch", y))
        assert 1 + (sizes.mean() - 1) * planted > 1.5


@pytest.mark.parametrize("branches", [-1, 10_000, 2.5, True])
def test_bad_branches_raise_input_error_naming_the_setting(branches):
    with pytest.raises(InputError, match="branches"):
        synth.simulate(store.connect(":memory:"), 100, months=4, branches=branches)


@pytest.mark.parametrize("stagger", [1, 3])
def test_individual_effects_are_every_customers_own_and_average_to_the_planted_truth(stagger):
    """``truth_customers`` (issue 19's truth for per-customer uplift): a row per customer of
    each population (per trial month when the outreach is staggered) whose averages are the
    truth table's overall rows, to rounding; off by default, and the other tables unchanged."""
    con, summary = _world(3000, 10, 5, outreach_months=stagger, individual_effects=True)
    ind = con.execute("SELECT * FROM truth_customers").df()
    assert summary.truth_customers == len(ind) == summary.rows["truth_customers"]
    truth = con.execute(
        "SELECT intervention, estimand, outcome, effect, n FROM truth WHERE segment_by = 'all' "
        "AND outcome <> 'payback_months'"
    ).df()
    assert len(truth) == 3 * 2 * 4
    for row in truth.itertuples():
        rows = ind[ind["intervention"] == row.intervention]
        rows = rows[rows["treated"]] if row.estimand == "att" else rows
        assert len(rows) == row.n, row
        assert rows[row.outcome].mean() == pytest.approx(row.effect, rel=1e-9, abs=1e-12), row
    outreach = ind[ind["intervention"] == "proactive_outreach"]
    assert outreach["trial_month"].nunique(dropna=False) == stagger
    assert outreach["experiment_id"].isna().all()
    assert ind.loc[ind["intervention"] != "proactive_outreach", "trial_month"].isna().all()
    # individual effects differ between customers (heterogeneity to target on) ...
    assert (ind.groupby("intervention")["net_value"].std() > 0).all()
    # ... and each customer of an experiment appears once, with the arm they were assigned
    arms = con.execute("SELECT experiment_id, customer_id, arm FROM assignments").df()
    both = ind.dropna(subset=["experiment_id"]).merge(arms, on=["experiment_id", "customer_id"])
    assert len(both) == ind["experiment_id"].notna().sum()
    assert (both["treated"] == (both["arm"] == "treatment")).all()
    plain, _ = _world(3000, 10, 5, outreach_months=stagger)
    assert plain.execute("SELECT count(*) FROM truth_customers").fetchone()[0] == 0
    for table in TABLES:
        pd.testing.assert_frame_equal(_dump(con, table), _dump(plain, table), obj=table)
    with pytest.raises(InputError, match="individual_effects must be True or False"):
        synth.simulate(store.connect(":memory:"), 100, months=4, individual_effects="yes")
