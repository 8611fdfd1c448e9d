"""Tests sized by experiments.design reach their nominal power when run on the simulator.

The population is a simulated customer base (real store, real outcomes with the simulator's
heavy-tailed spend and churn). Each replicate draws the sized sample, assigns arms with the
salted hash of experiments.assign, plants the effect the test was sized for in the treated arm,
and runs the analysis the formula assumes. The share of replicates that reject must land within
a few points of the target power: the normal approximations behind the sizes hold on data shaped
like ours, not only on textbook normals.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from attribution import store, synth
from experiments import design
from experiments.assign import hash_unit

REPLICATES = 400
TOLERANCE = 0.05  # 2.5 Monte Carlo standard errors at power 0.8 and 400 replicates

_POPULATION_SQL = """
WITH base AS (
    SELECT customer_id FROM outcomes WHERE period = DATE '2025-06-01' AND active
)
SELECT
    b.customer_id,
    bool_or(o.active AND o.period = DATE '2025-09-01') AS retained,
    sum(CASE WHEN o.period >= DATE '2025-07-01' THEN o.revenue ELSE 0 END) AS revenue,
    sum(CASE WHEN o.period < DATE '2025-07-01' THEN o.revenue ELSE 0 END) AS pre_revenue
FROM base b
JOIN outcomes o ON o.customer_id = b.customer_id
WHERE o.period BETWEEN DATE '2025-04-01' AND DATE '2025-09-01'
GROUP BY b.customer_id
ORDER BY b.customer_id
"""


@pytest.fixture(scope="module")
def population():
    con = store.connect(":memory:")
    synth.simulate(con, 60_000, months=12, seed=3)
    frame = con.execute(_POPULATION_SQL).df()
    con.close()
    return frame


def _arms(ids: np.ndarray, replicate: int, control_share: float) -> np.ndarray:
    """True for treated, from the salted hash (as a real assignment would)."""
    return hash_unit(ids, f"power-{replicate}") >= control_share


def test_retention_test_reaches_its_power(population):
    baseline = float(population["retained"].mean())
    mde = 0.03
    size = design.proportions_sample_size(baseline, mde, control_share=0.5)
    rng = np.random.default_rng(11)
    z_crit = stats.norm.ppf(0.975)
    rejected = 0
    for r in range(REPLICATES):
        idx = rng.choice(len(population), size.n_total, replace=False)
        sample = population.iloc[idx]
        treated = _arms(sample["customer_id"].to_numpy(), r, 0.5)
        y = sample["retained"].to_numpy().copy()
        # Plant +mde: each treated churner is saved with probability mde / (1 - baseline).
        saved = treated & ~y & (rng.random(len(y)) < mde / (1.0 - baseline))
        y = y | saved
        n1, n0 = treated.sum(), (~treated).sum()
        p1, p0 = y[treated].mean(), y[~treated].mean()
        pooled = y.mean()
        z = (p1 - p0) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
        rejected += abs(z) > z_crit
    achieved = rejected / REPLICATES
    assert abs(achieved - 0.8) < TOLERANCE, (achieved, size)


def test_revenue_test_with_cuped_reaches_its_power(population):
    y_all = population["revenue"].to_numpy()
    x_all = population["pre_revenue"].to_numpy()
    r2 = float(np.corrcoef(x_all, y_all)[0, 1] ** 2)
    sd = float(y_all.std(ddof=1))
    mde = 0.15 * float(y_all.mean())
    size = design.means_sample_size(sd, mde, control_share=0.3, r2=r2)
    plain = design.means_sample_size(sd, mde, control_share=0.3)
    assert size.n_total < plain.n_total * (1.0 - r2) + 2
    rng = np.random.default_rng(12)
    z_crit = stats.norm.ppf(0.975)
    rejected = 0
    for r in range(REPLICATES):
        idx = rng.choice(len(population), size.n_total, replace=False)
        ids = population["customer_id"].to_numpy()[idx]
        treated = _arms(ids, r, 0.3)
        y = y_all[idx] + mde * treated
        x = x_all[idx]
        # CUPED: y - theta (x - mean x), theta from the pooled sample.
        theta = np.cov(x, y)[0, 1] / x.var(ddof=1)
        adj = y - theta * (x - x.mean())
        a1, a0 = adj[treated], adj[~treated]
        se = np.sqrt(a1.var(ddof=1) / len(a1) + a0.var(ddof=1) / len(a0))
        rejected += abs((a1.mean() - a0.mean()) / se) > z_crit
    achieved = rejected / REPLICATES
    assert abs(achieved - 0.8) < TOLERANCE, (achieved, size, r2)


# --- the readout's rule, not a two-sided test (issue 18) ---------------------------------------


def _rolled_out(est: float, se: float, value: float, cost: float, threshold: float) -> bool:
    """The readout's rule on a normal posterior: roll out when P(net value > 0) >= threshold."""
    return stats.norm.cdf((value * est - cost) / (value * se)) >= threshold


@pytest.mark.parametrize("planted", ["mde", "zero"])
def test_retention_test_rolls_out_as_often_as_the_plan_says(population, planted):
    from experiments.plan import plan_test

    baseline = float(population["retained"].mean())
    mde = 0.03
    plan = plan_test("retention", mde, baseline=baseline)
    expected = plan.rule[f"p_rollout_at_{planted}"]
    effect = mde if planted == "mde" else 0.0
    rng = np.random.default_rng(21 if planted == "mde" else 22)
    rolled = 0
    for r in range(REPLICATES):
        idx = rng.choice(len(population), plan.n_total, replace=False)
        sample = population.iloc[idx]
        treated = _arms(sample["customer_id"].to_numpy(), r, 0.5)
        y = sample["retained"].to_numpy().copy()
        saved = treated & ~y & (rng.random(len(y)) < effect / (1.0 - baseline))
        y = y | saved
        p1, p0 = y[treated].mean(), y[~treated].mean()
        se = np.sqrt(p1 * (1 - p1) / treated.sum() + p0 * (1 - p0) / (~treated).sum())
        rolled += _rolled_out(p1 - p0, se, 1.0, 0.0, plan.rule["threshold"])
    achieved = rolled / REPLICATES
    assert abs(achieved - expected) < TOLERANCE, (achieved, expected, plan.n_total)


def test_a_costly_intervention_rolls_out_less_often_at_the_mde_as_the_plan_says(population):
    """With a cost the rule needs the net value, not the effect, above zero: at the MDE the
    sized test rolls out well under its nominal power, as the plan predicts."""
    from experiments.plan import plan_test

    y_all = population["revenue"].to_numpy()
    sd = float(y_all.std(ddof=1))
    mde = 0.15 * float(y_all.mean())
    value, cost = 0.3, 0.3 * mde * 0.5  # the cost is half the margin the MDE brings
    plan = plan_test("revenue", mde, sd=sd, value_per_unit=value, unit_cost=cost)
    expected = plan.rule["p_rollout_at_mde"]
    assert expected < 0.8 - TOLERANCE  # the size's "80% power" overstates it
    rng = np.random.default_rng(23)
    rolled = 0
    for r in range(REPLICATES):
        idx = rng.choice(len(population), plan.n_total, replace=False)
        treated = _arms(population["customer_id"].to_numpy()[idx], r, 0.5)
        y = y_all[idx] + mde * treated
        a1, a0 = y[treated], y[~treated]
        se = np.sqrt(a1.var(ddof=1) / len(a1) + a0.var(ddof=1) / len(a0))
        rolled += _rolled_out(a1.mean() - a0.mean(), se, value, cost, plan.rule["threshold"])
    achieved = rolled / REPLICATES
    assert abs(achieved - expected) < TOLERANCE, (achieved, expected, plan.n_total)


def test_with_several_arms_the_chance_some_arm_rolls_out_with_no_effect_is_as_the_plan_says(
    population,
):
    """With two treated arms sharing the control and no effect anywhere, the chance one of them
    rolls out is what the plan says: 10% at decide()'s per-arm threshold, and about 17% had
    each arm kept the one-arm threshold 0.9."""
    from experiments.plan import plan_test

    y_all = population["revenue"].to_numpy()
    sd = float(y_all.std(ddof=1))
    plan = plan_test("revenue", 0.15 * float(y_all.mean()), sd=sd, arms=3, control_share=0.4)
    expected = plan.rule["p_any_rollout_at_zero"]
    assert expected == pytest.approx(0.10, abs=1e-6) and plan.rule["threshold"] > 0.9
    rng = np.random.default_rng(24)
    shares = np.cumsum([plan.n_control, plan.n_treatment, plan.n_treatment]) / plan.n_total
    rolled = 0
    for r in range(REPLICATES):
        idx = rng.choice(len(population), plan.n_total, replace=False)
        u = hash_unit(population["customer_id"].to_numpy()[idx], f"arms-{r}")
        arm = np.searchsorted(shares, u, side="right")
        y = y_all[idx]
        c = y[arm == 0]
        any_arm = False
        for j in (1, 2):
            t = y[arm == j]
            se = np.sqrt(t.var(ddof=1) / len(t) + c.var(ddof=1) / len(c))
            any_arm |= _rolled_out(t.mean() - c.mean(), se, 1.0, 0.0, plan.rule["threshold"])
        rolled += any_arm
    achieved = rolled / REPLICATES
    assert abs(achieved - expected) < TOLERANCE, (achieved, expected, plan.n_total)


def test_the_per_arm_threshold_keeps_the_chance_of_any_false_roll_out_at_ten_percent(population):
    """decide() raises each arm's threshold with several arms (design.per_arm_threshold): with
    two treated arms sharing the control and no effect, some arm rolls out 10% of the time."""
    y_all = population["revenue"].to_numpy()
    n_each, control_share = 3_000, 0.5
    per_arm = design.per_arm_threshold(3, control_share=control_share, family=0.1)
    rng = np.random.default_rng(25)
    rolled = 0
    for r in range(REPLICATES):
        idx = rng.choice(len(population), 3 * n_each, replace=False)
        u = hash_unit(population["customer_id"].to_numpy()[idx], f"per-arm-{r}")
        arm = np.minimum((u * 3).astype(int), 2)
        y = y_all[idx]
        c = y[arm == 0]
        any_arm = False
        for j in (1, 2):
            t = y[arm == j]
            se = np.sqrt(t.var(ddof=1) / len(t) + c.var(ddof=1) / len(c))
            any_arm |= _rolled_out(t.mean() - c.mean(), se, 1.0, 0.0, per_arm)
        rolled += any_arm
    assert abs(rolled / REPLICATES - 0.10) < TOLERANCE, (rolled, per_arm)
