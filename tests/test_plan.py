"""The test plan behind ``cx design``: composition of the design maths, and the command line."""

from __future__ import annotations

import json
import math

import pytest

from attribution.cli import main
from attribution.errors import InputError
from experiments import design
from experiments.plan import detectable_effect, plan_test


def test_two_arm_retention_plan_is_the_published_size():
    plan = plan_test("retention", 0.02, baseline=0.10)
    # Two proportions 0.10 vs 0.12 at alpha 0.05, power 0.8: 3,841 per arm.
    assert (plan.n_control, plan.n_treatment, plan.n_total) == (3841, 3841, 7682)
    assert plan.alpha_per_test == 0.05


def test_more_arms_and_metrics_size_each_comparison_at_the_corrected_level():
    plan = plan_test("revenue", 5.0, sd=120.0, arms=3, metrics=2, correction="bonferroni")
    pair = design.means_sample_size(120.0, 5.0, alpha=0.05 / 4)
    assert plan.alpha_per_test == pytest.approx(0.0125)
    assert plan.n_control == pair.n_control and plan.n_treatment == pair.n_treatment
    assert plan.n_total == pair.n_control + 2 * pair.n_treatment


def test_split_table_shows_control_shrinking_and_total_growing():
    plan = plan_test("retention", 0.02, baseline=0.80, control_share=0.1)
    table = plan.shares.sort_values("control_share", ascending=False)
    assert 0.1 in set(table["control_share"])
    assert table["n_control"].is_monotonic_decreasing
    assert table["n_total"].is_monotonic_increasing
    chosen = table[table["control_share"] == 0.1].iloc[0]
    assert (chosen["n_control"], chosen["n_total"]) == (plan.n_control, plan.n_total)


def test_cluster_delivery_inflates_by_the_design_effect_and_warns_with_few_clusters():
    plain = plan_test("revenue", 5.0, sd=120.0)
    clustered = plan_test("revenue", 5.0, sd=120.0, icc=0.05, cluster_size=2000.0)
    deff = design.design_effect(0.05, 2000.0)
    assert clustered.cluster.design_effect == pytest.approx(deff)
    assert clustered.n_control == math.ceil(plain.size.n_total_exact * 0.5 * deff)
    assert clustered.warnings == []  # hundreds of clusters per arm
    assert clustered.shares["n_total"].min() >= clustered.n_total
    few = plan_test("retention", 0.10, baseline=0.5, icc=0.01, cluster_size=500.0)
    assert few.cluster.clusters_control < design.MIN_CLUSTERS_PER_ARM
    assert any("cluster" in w for w in few.warnings)
    assert "Warning" in few.describe()


def test_timeline_and_money():
    plan = plan_test(
        "retention",
        0.02,
        baseline=0.8,
        eligible_per_week=1000.0,
        horizon_weeks=13.0,
        value_per_unit=600.0,
    )
    assert plan.timeline.readout_weeks == pytest.approx(plan.n_total / 1000.0 + 13.0)
    assert plan.mde_value_per_1000 == pytest.approx(1000 * 0.02 * 600.0)
    text = plan.describe()
    assert f"{plan.n_total:,}" in text and "per 1,000 eligible customers" in text


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"metric": "retention", "mde": 0.02}, "baseline"),
        ({"metric": "revenue", "mde": 5.0}, "sd"),
        ({"metric": "revenue", "mde": 5.0, "sd": 10.0, "continuity": True}, "continuity"),
        ({"metric": "retention", "mde": 0.02, "baseline": 0.8, "icc": 0.1}, "cluster-size"),
        ({"metric": "retention", "mde": 0.02, "baseline": 0.8, "horizon_weeks": 4}, "eligible"),
        ({"metric": "spend", "mde": 1.0, "sd": 1.0}, "metric"),
    ],
)
def test_incomplete_plans_are_named(kwargs, names):
    with pytest.raises(InputError, match=names):
        plan_test(**kwargs)


def test_cx_design_json_carries_n_per_arm_and_total(capsys):
    code = main(
        [
            "design",
            "retention",
            "--baseline",
            "0.80",
            "--mde",
            "0.02",
            "--control-share",
            "0.1",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    expected = design.proportions_sample_size(0.80, 0.02, control_share=0.1)
    assert code == 0
    assert out["n_control"] == expected.n_control
    assert out["n_treatment_per_arm"] == expected.n_treatment
    assert out["n_total"] == expected.n_total


def test_cx_design_revenue_text(capsys):
    assert main(["design", "revenue", "--sd", "120", "--mde", "5"]) == 0
    n = design.means_sample_size(120.0, 5.0).n_control
    assert f"control {n:,}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ("design retention --baseline 1.2 --mde 0.02", "baseline"),
        ("design retention --baseline 0.8 --mde 0", "mde"),
        ("design retention --baseline 0.8 --mde 0.02 --control-share 1.5", "control_share"),
        ("design retention --baseline 0.8 --mde 0.02 --power 1.0", "power"),
        ("design revenue --mde 5", "sd"),
        ("design revenue --sd 10 --mde 5 --eligible tier=gold", "from-store"),
    ],
)
def test_cx_design_bad_settings_exit_2_with_a_message(capsys, argv, needle):
    assert main(argv.split()) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_prior_gives_assurance_and_the_holdout_sized_by_value():
    plan = plan_test(
        "retention",
        0.02,
        baseline=0.8,
        control_share=0.1,
        r2=0.1,
        prior_mean=0.01,
        prior_sd=0.01,
        value_per_unit=600.0,
        unit_cost=3.0,
        population=200_000,
    )
    unit_sd = math.sqrt(0.8 * 0.2 * 0.9)
    expected = design.assurance(0.01, 0.01, unit_sd, plan.n_control, plan.n_treatment)
    assert plan.assurance.probability == pytest.approx(expected.probability)
    holdout = design.value_sized_holdout(
        200_000, 600 * 0.01 - 3.0, 600 * 0.01, 600 * unit_sd, control_share=0.1
    )
    assert (plan.holdout.n_control, plan.holdout.n_treatment) == (
        holdout.n_control,
        holdout.n_treatment,
    )
    # The control arm forgoes the prior net value of 3 per customer.
    assert plan.holdout.value.cost_control == pytest.approx(3.0 * holdout.n_control)
    assert "Holdout sized by value" in plan.describe()
    assert plan.to_dict()["holdout_by_value"]["n_control"] == holdout.n_control


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"prior_mean": 1.0}, "prior"),
        ({"prior_mean": 1.0, "prior_sd": 1.0, "population": 1e5}, "value-per-unit"),
        ({"population": 1e5}, "prior"),
    ],
)
def test_incomplete_money_of_information_is_named(kwargs, needle):
    with pytest.raises(InputError, match=needle):
        plan_test("revenue", 5.0, sd=120.0, **kwargs)


def test_hazard_ratio_gives_events_and_weeks():
    plan = plan_test("retention", 0.02, baseline=0.8, hazard_ratio=0.8, events_per_week=50.0)
    # Schoenfeld: 630.5 events for a hazard ratio of 0.8 at 1:1.
    assert plan.events.events_exact == pytest.approx(630.5, abs=0.05)
    assert plan.events.weeks == pytest.approx(plan.events.events_exact / 50.0)
    assert "631 churn events" in plan.describe()
    with pytest.raises(InputError, match="hazard-ratio"):
        plan_test("retention", 0.02, baseline=0.8, events_per_week=50.0)


# --- the question asked the other way round, and designs that cannot finish in time ------------


@pytest.mark.parametrize(
    ("metric", "kw"),
    [("retention", {"baseline": 0.8}), ("revenue", {"sd": 134.5, "r2": 0.07})],
)
@pytest.mark.parametrize(("arms", "share"), [(2, 0.5), (2, 0.1), (3, 0.4)])
def test_the_mde_for_the_customers_one_has_is_the_effect_that_needs_just_them(
    metric, kw, arms, share
):
    mde, n = detectable_effect(metric, customers=40_000, arms=arms, control_share=share, **kw)
    assert n == 40_000
    plan = plan_test(metric, mde, arms=arms, control_share=share, **kw)
    # sized back at that MDE, the test needs the same customers (each arm rounded up)
    assert 40_000 <= plan.n_total <= 40_000 + arms
    bigger = plan_test(metric, mde * 0.98, arms=arms, control_share=share, **kw)
    assert bigger.n_total > 40_000


def test_the_mde_in_a_number_of_weeks_counts_the_customers_who_can_enrol_before_the_horizon():
    mde, n = detectable_effect(
        "revenue", weeks=26, eligible_per_week=39.1, horizon_weeks=13, sd=134.5
    )
    assert n == math.floor(39.1 * 13)
    assert mde == pytest.approx(design.means_mde(134.5, n))
    plan = plan_test("revenue", mde, sd=134.5, eligible_per_week=39.1, horizon_weeks=13,
                     max_weeks=26)  # fmt: skip
    assert plan.deadline["fits"]  # rounding each arm up does not make it "too long"
    with pytest.raises(InputError, match="too few for any test"):
        detectable_effect("revenue", weeks=13, eligible_per_week=39.1, horizon_weeks=13, sd=1.0)
    with pytest.raises(InputError, match="either the customers the test has or the weeks"):
        detectable_effect("revenue", customers=100, weeks=20, sd=1.0)


def test_a_design_that_cannot_finish_in_a_year_says_so_with_the_mde_that_can():
    """The review's case: +5 revenue among gold and silver after a bad case needed 455.5 weeks."""
    plan = plan_test(
        "revenue", 5.0, sd=134.5, r2=0.07, eligible_per_week=39.1, horizon_weeks=13,
        value_per_unit=0.3,
    )  # fmt: skip
    d = plan.deadline
    assert not d["fits"] and d["max_weeks"] == 52 and plan.timeline.readout_weeks > 500
    assert d["n_within"] == math.floor(39.1 * (52 - 13))
    assert d["mde_within"] == pytest.approx(design.means_mde(134.5, d["n_within"], r2=0.07))
    text = plan.describe()
    assert "Too long: this design cannot finish within 52 weeks" in text
    assert f"{d['mde_within']:,.2f} of revenue per customer" in text
    assert plan.to_dict()["deadline"]["mde_within"] == d["mde_within"]
    # a horizon longer than the time allowed: said, no MDE
    late = plan_test("revenue", 5.0, sd=134.5, eligible_per_week=39.1, horizon_weeks=60)
    assert "the outcome horizon alone is longer" in late.deadline["sentence"]
    # a plan that fits says nothing more
    fits = plan_test("retention", 0.02, baseline=0.8, eligible_per_week=2000, horizon_weeks=13)
    assert fits.deadline["fits"] and "Too long" not in fits.describe()


def test_cx_design_answers_what_a_number_of_customers_or_weeks_can_detect(capsys):
    assert main(["design", "retention", "--baseline", "0.8", "--customers", "40000"]) == 0
    out = capsys.readouterr().out
    mde, _ = detectable_effect("retention", customers=40_000, baseline=0.8)
    assert out.startswith(f"With 40,000 customers the smallest retention effect the test can "
                          f"detect is {mde * 100:.2f} pp")  # fmt: skip
    argv = "design revenue --sd 134.5 --weeks 26 --eligible-per-week 39.1 --horizon-weeks 13"
    assert main([*argv.split(), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["asked"]["weeks"] == 26 and payload["asked"]["n_total"] == math.floor(39.1 * 13)
    assert payload["deadline"]["fits"] and payload["inputs"]["max_weeks"] == 26
    assert main(["design", "revenue", "--sd", "10", "--mde", "5", "--weeks", "3"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_plan_gives_how_often_the_readouts_rule_rolls_out():
    plan = plan_test("retention", 0.02, baseline=0.8)
    r = plan.rule
    # P(net value > 0) >= 0.9 is a one-sided test at 10%: at no effect it rolls out 10% of the
    # time, at the MDE of a two-sided 5% / 80% design more often than 80%
    assert r["p_rollout_at_zero"] == pytest.approx(0.10, abs=1e-9)
    assert r["p_rollout_at_mde"] > 0.9
    assert r["n_total_for_rule"] < plan.n_total
    assert "rolls out 94% of the time at the MDE and 10.0% with no effect" in plan.describe()
    assert plan.to_dict()["rule"]["n_total_for_rule"] == r["n_total_for_rule"]
    # the size the rule needs gives the rule's power, back through the same approximation
    again = plan_test("retention", 0.02, baseline=0.8, control_share=0.5)
    assert again.rule == r
    costly = plan_test("revenue", 5.0, sd=60.0, value_per_unit=0.3, unit_cost=0.5)
    assert costly.rule["p_rollout_at_mde"] < 0.8 and costly.rule["p_rollout_at_zero"] < 0.1
    three = plan_test("retention", 0.02, baseline=0.8, arms=3)
    # decide()'s rule for several arms: each arm's threshold raised so any false roll-out is 10%
    assert three.rule["threshold"] == pytest.approx(design.per_arm_threshold(3), abs=1e-9)
    assert three.rule["p_any_rollout_at_zero"] == pytest.approx(0.10, abs=1e-6)
    assert "each is rolled out at P(net value > 0) >= 0.943" in three.describe()
    assert design.any_rollout_probability(3, 1.0) == pytest.approx(0.168, abs=1e-3)
    assert "treated arms" not in plan.describe()
    unpaid = plan_test("revenue", 5.0, sd=60.0, value_per_unit=0.3, unit_cost=2.0)
    assert unpaid.rule["n_total_for_rule"] is None
    assert "does not pay its cost" in unpaid.describe()


def test_rule_sizes_invert_the_rollout_probability():
    def se_at(n):
        return 60.0 * math.sqrt(4.0 / n)

    n = design.rule_sample_size(se_at, 5.0, value_per_unit=0.3, unit_cost=0.5)
    p = design.rollout_probability(5.0, se_at(n), value_per_unit=0.3, unit_cost=0.5)
    assert p == pytest.approx(0.8, abs=1e-9)
    with pytest.raises(InputError, match="power must exceed 1 - threshold"):
        design.rule_sample_size(se_at, 5.0, power=0.05)
    assert math.isinf(design.rule_sample_size(se_at, 1.0, value_per_unit=0.3, unit_cost=0.3))


def test_guardrails_enter_the_plan_with_their_chances_and_the_decisions_size():
    """The decision rolls out only when its guardrails pass: the plan gives each guardrail's
    standard error and chance at this size, and the size for rule and guardrails together."""
    from scipy import stats

    from experiments.plan import Guardrails

    g = Guardrails(
        cost_margin=0.5, cost_sd=6.0, cost_r2=0.1, csat_tolerance=0.05, csat_sd=1.2,
        csat_rated_share=0.2,
    )  # fmt: skip
    plan = plan_test("net_value", 20.0, sd=380.0, r2=0.13, guardrails=g)
    out = plan.rule["guardrails"]
    n_c, n_t = plan.n_control, plan.n_treatment
    se_cost = 6.0 * math.sqrt(0.9 * (1 / n_c + 1 / n_t))
    se_csat = 1.2 * math.sqrt((1 / n_c + 1 / n_t) / 0.2)
    z = stats.norm.isf(0.05)
    assert out["cost_to_serve"]["se"] == pytest.approx(se_cost, rel=1e-3)
    assert out["cost_to_serve"]["p_pass"] == pytest.approx(stats.norm.cdf(0.5 / se_cost - z), 1e-2)
    assert out["csat"]["p_pass"] == pytest.approx(stats.norm.cdf(0.05 / se_csat - z), 1e-2)
    assert out["p_rollout_at_mde_with_guardrails"] == pytest.approx(
        plan.rule["p_rollout_at_mde"] * out["cost_to_serve"]["p_pass"] * out["csat"]["p_pass"]
    )
    # at the decision's size the three chances multiply to the power
    n = out["n_total_for_decision"]
    assert n > plan.n_total  # the guardrails cost customers
    scale = math.sqrt(plan.n_total / n)
    chance = (
        design.rollout_probability(
            20.0, 380.0 * math.sqrt(0.87 * 4 / plan.size.n_total_exact) * scale
        )
        * design.guardrail_pass_probability(se_cost * scale, 0.5)
        * design.guardrail_pass_probability(se_csat * scale, 0.05)
    )
    assert chance == pytest.approx(0.8, abs=0.01)
    assert "Guardrails at this size" in plan.describe()
    assert plan_test("net_value", 20.0, sd=380.0).rule["guardrails"] is None


def test_assurance_of_the_decision_is_its_rollout_chance_over_the_prior():
    """Assurance for the rule the readout uses (roll out at P(net value > 0) >= 0.90, the
    intervention's cost counted), checked by simulating effects from the prior and estimates."""
    import numpy as np
    from scipy import stats

    plan = plan_test(
        "retention", 0.02, baseline=0.80, control_share=0.1, value_per_unit=600.0,
        prior_mean=0.01, prior_sd=0.01, unit_cost=3.0,
    )  # fmt: skip
    p1 = 0.82
    se = math.sqrt(0.8 * 0.2 / plan.n_control + p1 * (1 - p1) / plan.n_treatment)
    rng = np.random.default_rng(5)
    theta = rng.normal(0.01, 0.01, 400_000)
    estimate = rng.normal(theta, se)
    simulated = np.mean(estimate >= 3.0 / 600.0 + stats.norm.ppf(0.9) * se)
    got = plan.rule["assurance"]["p_rollout"]
    assert got == pytest.approx(simulated, abs=0.005)
    assert got < plan.assurance.probability  # the cost makes the decision harder than > 0
    assert "the decision's rule rolls out" in plan.describe()


def test_several_metrics_are_sized_but_the_decision_is_one_metric_and_says_so():
    plan = plan_test("revenue", 5.0, sd=120.0, metrics=3)
    assert plan.alpha_per_test == pytest.approx(0.05 / 3)
    assert any("intersection-union" in w for w in plan.warnings)
    assert not any("intersection-union" in w for w in plan_test("revenue", 5.0, sd=120.0).warnings)
