"""The whole loop on the simulator: design -> assignment -> nightly readouts -> decision.

A simulated customer base (real store, real outcomes); the design is sized from the store's own
history (:func:`experiments.history.design_inputs`, :func:`experiments.plan.plan_test` with
looks); the eligible customers are assigned by salted hash with a monitoring plan
(:func:`experiments.assign.write_assignment`); every month after the start is one night's
readout (:func:`experiments.decision.decide` on the window to that month, real PyMC fits), and
the test stops at the first verdict other than "continue".

A new assignment on simulated customers has exactly no effect (the arms are a hash of the id,
independent of everything the simulator drew), so under no effect any roll-out is false. The
planted effect adds revenue to the treated arm's active months.

The fast suite runs one loop under no effect (decisions only at the planned looks, the final
look decides) and one with a large planted effect (it rolls out). The slow suite repeats the loop
over salts: false roll-outs over all looks stay at or below the planned 10% (the one-sided
binomial bound allows 2 pp of Monte Carlo error at ``CX_LOOP_REPS`` = 400 salts).
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import date

import pytest
from scipy import stats

from attribution import store, synth
from attribution.config import Config
from attribution.periods import add_months
from attribution.readout import read_out
from experiments import design
from experiments.assign import assign, write_assignment
from experiments.decision import CONTINUE, ROLL_OUT, csat_guardrail, decide
from experiments.history import design_inputs
from experiments.plan import detectable_effect, guardrails_from_history, plan_test

START = "2025-07"
START_DAY = date(2025, 7, 1)
HORIZON = 4
LOOKS = 2
#: The readout without segments (overall effects decide), and a CSAT tolerance a test of a few
#: thousand customers can establish (the default 0.05 points needs far more ratings).
CONFIG = replace(
    Config(),
    model=replace(Config().model, segments=()),
    decision=replace(Config().decision, csat_tolerance=0.3),
)


def _world(seed: int):
    con = store.connect(":memory:")
    synth.simulate(con, 8000, months=10, seed=seed)
    eligible = con.execute(
        "SELECT customer_id FROM outcomes WHERE period = DATE '2025-06-01' AND active "
        "ORDER BY customer_id"
    ).df()
    return con, eligible


def _design(con, n: int):
    """The plan for a test of the eligible customers on the decision's own metric, net value
    (sd and R^2 from the store's history), sized to what ``n`` customers can detect and
    monitored over the looks."""
    inputs = design_inputs(con, horizon_months=HORIZON, as_of=START, money=CONFIG.money)
    net = inputs.for_means("net_value")
    mde, _ = detectable_effect("net_value", customers=n, **net)
    guards = guardrails_from_history(inputs, CONFIG.decision, CONFIG.interval.width)
    return plan_test("net_value", mde, **net, looks=LOOKS, n_eligible=n, guardrails=guards)


def _assign(con, eligible, salt: str, experiment_id: str, plan) -> None:
    result = assign(eligible, salt, control_share=plan.inputs["control_share"])
    write_assignment(
        con,
        experiment_id,
        "loyalty_call",
        result,
        started=START,
        looks=plan.inputs["looks"],
        horizon_months=HORIZON,
        roll_out_threshold=CONFIG.decision.roll_out_threshold,
        interval_width=CONFIG.interval.width,
    )


def _nights(con, experiment_id: str, months=range(1, HORIZON + 1)):
    """One readout a month, as a nightly refresh sees the data grow; stop at a decision."""
    out = []
    for month in months:
        decision = decide(con, experiment_id, horizon_months=month, config=CONFIG)
        out.append((month, decision))
        if decision.verdict != CONTINUE:
            break
    return out


def _plant(con, experiment_id: str, per_month: float) -> None:
    """Add revenue to every active month of the treated arm's customers from the start on."""
    con.execute(
        """
        UPDATE outcomes SET revenue = revenue + $d
        WHERE active AND period >= DATE '2025-07-01' AND customer_id IN (
            SELECT customer_id FROM assignments WHERE experiment_id = $e AND arm = 'treatment'
        )
        """,
        {"d": per_month, "e": experiment_id},
    )


def test_no_effect_is_decided_only_at_the_planned_looks():
    con, eligible = _world(21)
    plan = _design(con, len(eligible))
    assert plan.rule["looks"]["looks"] == LOOKS
    _assign(con, eligible, "loop-null", "exp_loop", plan)
    seen = {month: d for month, d in _nights(con, "exp_loop")}
    first = seen[1]
    assert first.verdict == CONTINUE and first.readout.look.look is None
    look1 = seen[2]
    assert look1.readout.look.look == 1 and look1.to_dict()["look"]["at_look"]
    assert look1.readout.look.fraction == pytest.approx(0.5)
    threshold = look1.readout.look.threshold
    assert threshold > CONFIG.decision.roll_out_threshold
    p = float(look1.money["p_positive"].iloc[0])
    assert (look1.verdict == ROLL_OUT) == (
        p >= threshold and set(look1.guardrails["verdict"]) == {"pass"}
    )
    if 3 in seen:  # between the looks nothing is decided, whatever the numbers say
        assert seen[3].verdict == CONTINUE
        assert seen[3].to_dict()["look"]["at_look"] is False
    if 4 in seen:
        assert seen[4].readout.look.final and seen[4].verdict != CONTINUE


def test_a_large_effect_rolls_out_by_the_last_look():
    con, eligible = _world(22)
    plan = _design(con, len(eligible))
    _assign(con, eligible, "loop-effect", "exp_loop", plan)
    _plant(con, "exp_loop", 40.0)  # 160 revenue over the window: ~48 net value a customer
    nights = _nights(con, "exp_loop", months=(2, 4))
    month, decision = nights[-1]
    assert decision.verdict == ROLL_OUT, decision.describe()
    assert decision.readout.look.month == month


@pytest.mark.slow
def test_false_rollouts_over_the_looks_stay_at_the_planned_rate():
    reps = int(os.environ.get("CX_LOOP_REPS", "400"))
    con, eligible = _world(23)
    plan = _design(con, len(eligible))
    false = 0
    for rep in range(reps):
        experiment_id = f"exp_null_{rep}"
        _assign(con, eligible, f"null-{rep}", experiment_id, plan)
        nights = _nights(con, experiment_id, months=(2, 4))  # the looks; between them: continue
        false += nights[-1][1].verdict == ROLL_OUT
    planned = 1.0 - CONFIG.decision.roll_out_threshold
    # one-sided: the rate may be below the plan (the looks are conservative), not above it
    upper = stats.binom.ppf(0.99, reps, planned) / reps
    assert false / reps <= max(upper, planned + 0.02), (false, reps)


@pytest.mark.parametrize("seed", [21, 22])
def test_the_design_promises_the_width_the_readout_reports(seed):
    """The design's interval width at the horizon (its sd and R^2 from the store's history, the
    arms' counts) within 10% of the width the readout then reports, for revenue, retention and
    the decision's own metric, net value (no intervention cost in this test: none varies)."""
    con, eligible = _world(seed)
    plan = _design(con, len(eligible))
    _assign(con, eligible, f"width-{seed}", "exp_width", plan)
    readout = read_out(con, "exp_width", horizon_months=HORIZON, config=CONFIG)
    n = readout.arms
    inputs = design_inputs(con, horizon_months=HORIZON, as_of=START)
    z = stats.norm.isf((1 - CONFIG.interval.width) / 2)
    t = readout.table
    top = t[(t["segment"] == "all") & (t["metric"] == "absolute")].set_index("outcome")
    revenue = inputs.for_means("revenue")
    retention = inputs.for_retention()
    p = retention["baseline"]
    net = inputs.for_means("net_value")  # the decision's metric: mostly retained value
    pair = 1 / n["control"] + 1 / n["treatment"]
    promised = {
        "revenue": revenue["sd"] ** 2 * design.variance_factor(revenue["r2"]) * pair,
        "retention": p * (1 - p) * design.variance_factor(retention["r2"]) * pair,
        "net_value": net["sd"] ** 2 * design.variance_factor(net["r2"]) * pair,
        # the guardrails: cost-to-serve from the readout, CSAT among customers who rate
        "cost_to_serve": inputs.cost_sd**2 * design.variance_factor(inputs.r2_cost_bands) * pair,
        "csat": inputs.csat_sd**2 * pair / inputs.csat_rated_share,
    }
    csat = csat_guardrail(
        con, "exp_width", start=readout.start, end=add_months(readout.horizon, 1)
    ).iloc[0]
    for outcome, variance in promised.items():
        width = 2 * z * variance**0.5
        row = csat if outcome == "csat" else top.loc[outcome]
        reported = row["hi"] - row["lo"]
        assert reported == pytest.approx(width, rel=0.10), (outcome, width, reported)


def _revenue_for(con, net_value: float) -> float:
    """Revenue to add to each active month of a treated customer for a planted net value effect
    of ``net_value`` per customer: a customer's net value is ``(margin x revenue - cost) x (1 +
    retained x carry)`` (DesignInputs.net_value_sd), so ``delta`` a month adds ``margin x delta
    x months active x (1 + retained x carry)``, averaged over the eligible customers' own
    window (the same in both arms: they are a hash apart)."""
    inputs = design_inputs(con, horizon_months=HORIZON, as_of=START, money=CONFIG.money)
    per_delta = con.execute(
        """
        SELECT avg(months * (1 + retained * $carry)) FROM (
            SELECT o.customer_id,
                   sum(CASE WHEN o.active THEN 1 ELSE 0 END) AS months,
                   max(CASE WHEN o.period = $end AND o.active THEN 1 ELSE 0 END) AS retained
            FROM outcomes o
            WHERE o.period >= DATE '2025-07-01' AND o.period <= $end
              AND o.customer_id IN (SELECT customer_id FROM outcomes
                                    WHERE period = DATE '2025-06-01' AND active)
            GROUP BY o.customer_id
        )
        """,
        {"carry": inputs.value_carry, "end": add_months(START_DAY, HORIZON - 1)},
    ).fetchone()[0]
    return net_value / (CONFIG.money.margin_rate * per_delta)


@pytest.mark.slow
def test_rollouts_at_the_mde_match_the_plan_with_its_guardrails():
    """With the MDE planted, the loop rolls out as often as the plan says the decision will:
    the rule at the looks times the guardrails' chances of passing (cost-to-serve's margin is
    5% of control's cost; CSAT's tolerance here 0.3)."""
    reps = int(os.environ.get("CX_LOOP_REPS", "400"))
    con, eligible = _world(24)
    plan = _design(con, len(eligible))
    predicted = plan.rule["guardrails"]["p_rollout_at_mde_with_guardrails"]
    delta = _revenue_for(con, plan.inputs["mde"])
    rolled = 0
    for rep in range(reps):
        experiment_id = f"exp_mde_{rep}"
        _assign(con, eligible, f"mde-{rep}", experiment_id, plan)
        _plant(con, experiment_id, delta)
        nights = _nights(con, experiment_id, months=(2, 4))
        rolled += nights[-1][1].verdict == ROLL_OUT
        _plant(con, experiment_id, -delta)  # the next salt starts from the same world
    lo, hi = stats.binom.interval(0.99, reps, predicted)
    # the plan's normal approximations (independent guardrails, a flat prior) get 3 pp
    assert lo / reps - 0.03 <= rolled / reps <= hi / reps + 0.03, (rolled, reps, predicted)


def test_the_refresh_and_the_report_show_a_running_test_apart(tmp_path):
    """A nightly refresh on a monitored test between its looks: "continue" with the next look in
    the run's record and log, and the finance report shows it apart from finished tests."""
    from attribution.refresh import refresh
    from attribution.report import build_report

    con, eligible = _world(25)
    plan = _design(con, len(eligible))
    result = assign(eligible, "nightly", control_share=0.5)
    write_assignment(
        con, "exp_running", "loyalty_call", result, started="2025-08", looks=3, horizon_months=6
    )  # looks at months 2, 4, 6; the store's last month, 2025-10, is month 3: look 1 reached
    said: list[str] = []
    both = replace(
        CONFIG,
        experiments=replace(CONFIG.experiments, include=("exp_running", "exp_recovery_gift")),
    )
    outcome = refresh(con, both, log=said.append)
    status = outcome.monitoring["exp_running"]
    assert status["verdict"] in ("continue", "stop")  # look 1 of 3: no roll-out without crossing
    assert status["look"]["look"] == 1 and status["look"]["next_date"] == "2025-12-01"
    assert set(outcome.monitoring) == {"exp_running"}  # the fixed-horizon tests are not in it
    assert any(line.startswith("exp_running: ") and "look 1 of 3" in line for line in said)
    recorded = con.execute(
        "SELECT diagnostics->'$.monitoring.exp_running.look.look' FROM runs WHERE run_id = ?",
        [outcome.run_id],
    ).fetchone()[0]
    assert str(recorded) == "1"
    published = outcome.estimates
    window = published[published["experiment_id"] == "exp_running"]
    assert len(window) and plan.rule["looks"]["looks"] == LOOKS
    report = build_report(con, tmp_path / "report")
    html = report.html.read_text()
    if status["verdict"] == "continue":
        assert "Running tests: interim numbers, not a decision" in html
        assert any("exp_running is a running test" in n for n in report.notes)
    assert "monitored: 3 planned looks over 6 months" in html
