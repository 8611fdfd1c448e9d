"""Group-sequential boundaries: published values, the error they spend, and the looks' record.

The boundaries come from a numerical integration (experiments.design.sequential); these tests
pin them to gsDesign's published Lan-DeMets values, check by simulation of z paths that they
spend exactly alpha under no effect (and are conservative when the looks are more correlated
than a Brownian motion, as the readout's cumulative windows are), and that a monitored
assignment writes the plan the readout and the decision then follow.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from attribution import load, store
from attribution.errors import InputError
from attribution.looks import look_state
from experiments import design
from experiments.assign import assign, write_assignment


@pytest.mark.parametrize(
    ("fractions", "alpha", "kind", "published"),
    [
        # gsDesign::gsDesign(k=3, test.type=1, sfu=sfLDOF), one-sided 2.5%
        ([1 / 3, 2 / 3, 1.0], 0.025, "obrien-fleming", [3.7103, 2.5114, 1.9930]),
        # k=5
        ([0.2, 0.4, 0.6, 0.8, 1.0], 0.025, "obrien-fleming",
         [4.8769, 3.3569, 2.6803, 2.2898, 2.0310]),
    ],
)  # fmt: skip
def test_boundaries_match_published_values(fractions, alpha, kind, published):
    b = design.boundaries(fractions, alpha, kind)
    assert np.allclose(b.z, published, atol=2e-4)


def test_pocock_first_look_is_its_spent_alpha():
    b = design.boundaries([1 / 3, 2 / 3, 1.0], 0.025, "pocock")
    assert b.z[0] == pytest.approx(stats.norm.isf(0.025 * np.log(1 + (np.e - 1) / 3)))
    assert b.z[0] < b.z[1] < b.z[2]  # Pocock-type: nearly flat, slowly rising


@pytest.mark.parametrize(
    ("fractions", "alpha", "kind"),
    [
        ([0.5, 1.0], 0.1, "obrien-fleming"),
        ([0.25, 0.6, 0.8, 1.0], 0.1, "obrien-fleming"),
        ([1 / 3, 2 / 3, 1.0], 0.05, "pocock"),
    ],
)
def test_boundaries_spend_alpha_under_no_effect(fractions, alpha, kind):
    b = design.boundaries(fractions, alpha, kind)
    exact = design.crossing_probabilities(b.fractions, b.z, 0.0)
    assert exact.sum() == pytest.approx(alpha, abs=1e-7)
    assert np.allclose(np.cumsum(exact), b.spent, atol=1e-7)
    paths = 400_000
    simulated = design.simulate_crossings(b, 0.0, paths=paths, seed=1).sum()
    se = np.sqrt(alpha * (1 - alpha) / paths)
    assert abs(simulated - alpha) < 4 * se


def test_power_under_drift_matches_simulation_and_costs_little_for_obrien_fleming():
    b = design.boundaries([1 / 3, 2 / 3, 1.0], 0.1)
    drift = design.sequential_drift(b, 0.8)
    simulated = design.simulate_crossings(b, drift, paths=400_000, seed=2).sum()
    assert abs(simulated - 0.8) < 4 * np.sqrt(0.8 * 0.2 / 400_000)
    fixed = stats.norm.isf(0.1) + stats.norm.ppf(0.8)
    assert 1.0 < (drift / fixed) ** 2 < 1.06  # O'Brien-Fleming: a few percent more customers


def test_looks_more_correlated_than_brownian_spend_less():
    """Cumulative windows (retention at month m, spend summed to m) make the looks more
    correlated than sqrt(t_j / t_k): the boundaries then spend less than alpha."""
    b = design.boundaries([1 / 3, 2 / 3, 1.0], 0.1)
    t = np.asarray(b.fractions)
    corr = np.minimum.outer(t, t) ** 0.25 / np.maximum.outer(t, t) ** 0.25  # (t_j/t_k)^(1/4)
    rng = np.random.default_rng(3)
    z = rng.multivariate_normal(np.zeros(3), corr, size=400_000)
    rate = (z >= np.asarray(b.z)).any(axis=1).mean()
    assert rate < 0.1 - 3 * np.sqrt(0.09 / 400_000)


def test_monitoring_record_one_look_is_the_fixed_rule_and_arms_share_the_family():
    one = design.monitoring_record(4, 1)
    assert one["thresholds"] == [pytest.approx(0.9, abs=1e-12)]
    assert one["guardrail_z"] == [pytest.approx(stats.norm.isf(0.05), abs=1e-9)]
    three_arms = design.monitoring_record(4, 2, arms=3)
    per_arm = design.per_arm_threshold(3)
    assert three_arms["alpha_per_arm"] == pytest.approx(1 - per_arm)
    assert three_arms["thresholds"][-1] > per_arm  # stricter than one look at the same level
    with pytest.raises(InputError, match="looks must be"):
        design.monitoring_record(3, 4)
    with pytest.raises(InputError, match="spending must be"):
        design.monitoring_record(3, 2, kind="haybittle")


def test_look_state_between_and_after_looks():
    m = design.monitoring_record(6, 3)  # looks at months 2, 4, 6
    start = date(2025, 1, 1)
    before = look_state(m, start, date(2025, 1, 1))
    assert before.look is None and before.next_look == 1 and before.next_date == date(2025, 3, 1)
    between = look_state(m, start, date(2025, 3, 1))  # 3 months observed: look 1 at month 2
    assert (between.look, between.month, between.next_look) == (1, 2, 2)
    assert between.threshold == pytest.approx(m["thresholds"][0])
    after = look_state(m, start, date(2026, 1, 1))
    assert after.final and after.month == 6 and after.next_date is None
    with pytest.raises(InputError, match="monitoring section"):
        look_state({"look_months": [2]}, start, date(2025, 3, 1))


def test_monitored_assignment_records_its_looks():
    con = store.connect(":memory:")
    people = pd.DataFrame(
        {"customer_id": [f"C{i:04d}" for i in range(400)], "signup_date": ["2024-01-01"] * 400}
    )
    load.load(con, "customers", people)
    result = assign(people[["customer_id"]], "monitored", control_share=0.3)
    written = write_assignment(
        con, "exp_m", "call", result, started="2025-04", looks=2, horizon_months=4
    )
    m = written["design"]["monitoring"]
    assert m["look_months"] == [2, 4] and m["horizon_months"] == 4
    assert m["thresholds"] == pytest.approx(design.monitoring_record(4, 2)["thresholds"])
    stored = con.execute("SELECT design->>'$.monitoring.looks' FROM experiments").fetchone()[0]
    assert stored == "2"
    with pytest.raises(InputError, match="both looks and horizon_months"):
        write_assignment(con, "exp_n", "call", result, started="2025-04", looks=2)
    assert con.execute("SELECT count(*) FROM experiments").fetchone()[0] == 1


def test_plan_with_looks_states_the_thresholds_and_what_they_cost():
    from experiments.plan import plan_test

    fixed = plan_test("revenue", 5.0, sd=60.0, value_per_unit=0.3)
    assert fixed.rule["looks"] is None
    watched = plan_test("revenue", 5.0, sd=60.0, value_per_unit=0.3, looks=3)
    w = watched.rule["looks"]
    assert w["thresholds"] == pytest.approx(design.monitoring_record(3, 3)["thresholds"])
    assert w["p_rollout_at_zero"] == pytest.approx(0.1, abs=1e-6)  # no cost: all of it spent
    assert w["p_rollout_at_mde"] < watched.rule["p_rollout_at_mde"]  # looks cost power ...
    assert w["n_total_for_rule"] > watched.rule["n_total_for_rule"]  # ... or customers
    assert 0.5 < w["expected_fraction_at_mde"] < 1.0  # ... and may end early
    b = design.boundaries(w["fractions"], 0.1)
    drift = (5.0 * 0.3) / (0.3 * 60.0 * np.sqrt(4 / watched.size.n_total_exact))
    simulated = design.simulate_crossings(b, drift, paths=200_000, seed=4).sum()
    assert simulated == pytest.approx(w["p_rollout_at_mde"], abs=0.005)
    assert "Monitored over 3 looks" in watched.describe()
    with pytest.raises(InputError, match="looks must be"):
        plan_test("revenue", 5.0, sd=60.0, looks=0)
    # a horizon the looks do not divide: the plan's looks are the months the record will hold
    uneven = plan_test("revenue", 5.0, sd=60.0, value_per_unit=0.3, looks=3, horizon_months=4)
    u, record = uneven.rule["looks"], design.monitoring_record(4, 3)
    assert u["look_months"] == list(record["look_months"]) == [2, 3, 4]
    assert u["fractions"] == pytest.approx([0.5, 0.75, 1.0])
    assert u["thresholds"] == pytest.approx(record["thresholds"])
    assert u["thresholds"] != pytest.approx(w["thresholds"])
    with pytest.raises(InputError, match="looks must be a whole number from 1 to the horizon"):
        plan_test("revenue", 5.0, sd=60.0, looks=5, horizon_months=4)


def test_the_command_lines_spending_choices_are_the_design_modules():
    from attribution.cli import _parser

    parser = _parser()
    for command in ("assign", "design"):
        sub = next(a for a in parser._subparsers._group_actions).choices[command]
        spending = next(a for a in sub._actions if a.dest == "spending")
        assert tuple(spending.choices) == design.SPENDING
