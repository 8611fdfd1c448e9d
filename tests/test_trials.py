"""Observational attribution on staggered treatment: target-trial emulation (issue 17).

One 20k-customer simulated world of 18 months whose targeted outreach is spread over four
months (each month's reach depends on the customer's own recent spend, badly resolved cases and
quiet months). The simulator plants the effect of each trial exactly: for every customer eligible
in a trial month, both paths (reached in that month or not, and then reached or not later as the
targeting goes on), with common random numbers.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import planted_overall

from attribution import compiledcache, gformula, store, synth
from attribution.causal import CHECK_ONLY, attribute, estimators
from attribution.causal.estimators import estimate, resampler
from attribution.causal.propensity import overlap
from attribution.config import config_from_dict
from attribution.errors import InputError
from attribution.observational import TRIAL, observational_frame

OUTREACH = "proactive_outreach"
OUTCOMES = ("retention", "revenue", "cost_to_serve")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    con = store.connect(tmp_path_factory.mktemp("trials") / "world.duckdb")
    synth.simulate(con, 20_000, months=18, seed=1, outreach_months=4)
    yield con
    con.close()


@pytest.fixture(scope="module")
def truth(world):
    return planted_overall(world, OUTREACH)


@pytest.fixture(scope="module")
def pooled(world):
    config = config_from_dict({"causal": {"bootstrap": 100, "refuter_simulations": 3}})
    return attribute(world, OUTREACH, outcome="all", config=config, refuters=[], doubly_robust=True)


# --- the simulator ------------------------------------------------------------------------------


def test_the_staggered_outreach_reaches_customers_over_four_months(world):
    months = world.execute(
        "SELECT strftime(ts, '%Y-%m'), count(*) FROM interventions WHERE intervention = ? "
        "GROUP BY 1 ORDER BY 1",
        [OUTREACH],
    ).fetchall()
    assert [m for m, _ in months] == ["2025-10", "2025-11", "2025-12", "2026-01"]
    assert all(k > 200 for _, k in months)
    (reached_twice,) = world.execute(
        "SELECT count(*) FROM (SELECT customer_id FROM interventions WHERE intervention = ? "
        "GROUP BY 1 HAVING count(*) > 1)",
        [OUTREACH],
    ).fetchone()
    assert reached_twice == 0


def test_one_outreach_month_is_the_unstaggered_world_and_bad_settings_are_named(con):
    def tables(c):
        return {
            t: c.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
            for t in ("outcomes", "interventions", "truth")
        }

    synth.simulate(con, 800, months=8, seed=3)
    other = store.connect(":memory:")
    synth.simulate(other, 800, months=8, seed=3, outreach_months=1)
    assert tables(con) == tables(other)
    with pytest.raises(InputError, match="outreach_months must be a whole number from 1 to 3"):
        synth.simulate(store.connect(":memory:"), 100, months=8, outreach_months=4)


# --- the emulated trials ------------------------------------------------------------------------


def test_pooled_trials_have_a_row_per_eligible_customer_and_month(world, truth):
    frame = observational_frame(world, OUTREACH)
    assert frame.pooled and [f"{m:%Y-%m}" for m in frame.trials] == [
        "2025-10",
        "2025-11",
        "2025-12",
        "2026-01",
    ]
    assert frame.horizon_months == 6  # from the last outreach month to the last period
    # The simulator's trial pairs: every eligible customer in every trial month, once.
    assert len(frame.frame) == truth[("ate", "retention")][1]
    assert frame.n_treated == truth[("att", "retention")][1]
    assert not frame.frame.duplicated(["customer_id", TRIAL]).any()
    assert TRIAL in frame.confounders and TRIAL in frame.categorical
    # A treated customer is treated in one trial and a control in the trials before it only.
    treated = frame.frame[frame.frame["treated"] == 1].set_index("customer_id")[TRIAL]
    rows = frame.frame[frame.frame["customer_id"].isin(treated.index)]
    assert (rows[TRIAL] <= rows["customer_id"].map(treated)).all()
    assert "emulated trials pooled" in frame.design and "customer-trials" in frame.design


def test_confounders_come_strictly_from_before_each_trial_month(world):
    data = observational_frame(world, OUTREACH)
    frame = data.frame
    row = frame[(frame["treated"] == 1) & (frame[TRIAL] == "2025-12")].iloc[0]
    cid = row["customer_id"]
    prior, cases, revenue, retained = world.execute(
        "SELECT avg(revenue) FILTER (WHERE period >= DATE '2025-09-01' "
        "  AND period < DATE '2025-12-01'), "
        " (SELECT count(*) FROM interactions WHERE customer_id = $c "
        "  AND ts >= DATE '2025-09-01' AND ts < DATE '2025-12-01'), "
        " sum(revenue) FILTER (WHERE period >= DATE '2025-12-01' "
        "  AND period <= DATE '2026-05-01'), "
        " bool_or(active) FILTER (WHERE period = DATE '2026-05-01') "
        "FROM outcomes WHERE customer_id = $c",
        {"c": cid},
    ).fetchone()
    assert row["prior_revenue"] == pytest.approx(prior)
    assert row["prior_cases"] == cases
    assert row["revenue"] == pytest.approx(revenue)
    assert row["retained"] == int(retained)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_emulated_trials_hold_the_planted_att_where_the_old_definition_misses(
    world, pooled, truth, outcome
):
    """The old definition (one baseline at the first outreach month; treated = reached at any
    time in the window) credits the outreach with the months its late-reached customers had to
    survive untreated: its cost-to-serve effect has the wrong sign."""
    att = truth[("att", outcome)][0]
    assert pooled.get("dowhy_psw", outcome, "att").contains(att)
    assert pooled.get("dowhy_psw", outcome, "ate").contains(truth[("ate", outcome)][0])
    if outcome == "cost_to_serve":
        old = _old_definition(world)
        cost = next(e for e in old if e.outcome == outcome)
        assert cost.lo > 0 > att


def _old_definition(world):
    data = observational_frame(world, OUTREACH, as_of="2025-10")
    ever = world.execute(
        "SELECT DISTINCT customer_id FROM interventions WHERE intervention = ?", [OUTREACH]
    ).df()["customer_id"]
    frame = data.frame.assign(treated=data.frame["customer_id"].isin(ever).astype(int))
    keep = [c for c in data.confounders if frame[c].nunique() > 1]
    old = replace(
        data, frame=frame, confounders=keep, numeric=[c for c in data.numeric if c in keep]
    )
    ov = overlap(old)
    inside = (ov.propensity >= 0.01) & (ov.propensity <= 0.99)
    old = replace(old, frame=old.frame[inside].reset_index(drop=True))
    estimates = estimate(old, ov.propensity[inside], bootstrap=100)
    return [e for e in estimates if e.estimator == "dowhy_psw" and e.estimand == "att"]


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_the_doubly_robust_check_holds_the_planted_effects(pooled, truth, outcome):
    for estimand in ("ate", "att"):
        est = pooled.get("aipw", outcome, estimand)
        assert est.contains(truth[(estimand, outcome)][0])
        assert est.lo < est.mean < est.hi
    rows = pooled.summary()
    assert set(rows.loc[rows["estimator"] == "aipw", "method"]) == {"backdoor.aipw_crossfit"}


def test_the_design_is_said_and_the_cell_route_fits_propensity_strata(pooled):
    assert "4 emulated trials pooled" in pooled.data.design
    assert sorted(pooled.gformula) == sorted(OUTCOMES)
    for fit in pooled.gformula.values():
        assert fit.diagnostics_.passed
        assert "propensity strata x 4 trial months x arm" in fit.basis
        assert fit.basis in fit.describe()
        assert 0.5 < fit.likelihood_scale < 1.0  # controls repeat across the trials
        assert fit.n_cells < 1_000
    assert any("counts 1/design effect" in n for n in pooled.notes)
    assert not any("is not available" in n for n in pooled.notes)
    assert pooled.to_dict()["design"] == pooled.data.design
    assert pooled.data.design in pooled.describe()


def test_every_g_formula_model_of_the_pooled_trials_is_kept_on_disk_for_the_next_process(pooled):
    # the gamma hurdle's log Gamma once compiled to a C call at a process-specific address, so
    # the spend model could not be stored and every new process compiled it again
    assert pooled.gformula  # fitted in this process (or loaded from the run's cache)
    entries = [e for e in gformula._CACHE._entries.values() if e.compiled is not None]
    assert {k[0] for k in gformula._CACHE._entries} >= {"retention", "spend"}
    assert entries and all(compiledcache.stored(e.fingerprint) for e in entries)


def test_the_cell_route_on_pooled_trials_holds_the_planted_att_and_its_money(pooled, truth):
    for outcome in OUTCOMES:
        assert pooled.get("bayes_gformula", outcome, "att").contains(truth[("att", outcome)][0])
    money = pooled.money
    row = money[(money["estimator"] == "bayes_gformula") & (money["outcome"] == "net_value")]
    row = row[row["segment"] == "all"].iloc[0]
    assert row["lo"] <= truth[("att", "net_value")][0] <= row["hi"]
    assert row["n_treated"] == pooled.data.n_treated


@pytest.mark.slow  # ~30 s (three fits); the fast suite checks the design effect against a
# customer bootstrap (tests/test_strata.py) and that pooled fits are tempered (above)
def test_customers_used_twice_widen_the_cell_posterior_back_to_what_they_hold(pooled):
    """Every customer-trial copied: the design effect doubles, and the tempered posterior is as
    wide as the original one; a likelihood over rows would be about 1/sqrt(2) as wide."""
    from attribution.causal.strata import plan_strata
    from attribution.gformula import fit_gformula

    data, ov = pooled.data, pooled.overlap
    p = ov.propensity[(ov.propensity >= ov.low) & (ov.propensity <= ov.high)]
    copied = replace(data, frame=pd.concat([data.frame] * 2, ignore_index=True))
    config = config_from_dict({"model": {"chains": 2}})

    def width(d, prop, tempered=True):
        plan = plan_strata(d, prop, outcomes=["retention"])
        cell_data, cuts = plan.for_outcome("retention")
        scale = 1.0 / plan.design_effects["retention"] if tempered else 1.0
        fit = fit_gformula(cell_data, "retention", config=config, cuts=cuts, likelihood_scale=scale)
        r = fit.effects.query("segment == 'all' and metric == 'absolute' and estimand == 'ate'")
        return float(r["hi"].iloc[0] - r["lo"].iloc[0]), plan.design_effects["retention"]

    one, deff_one = width(data, p)
    two, deff_two = width(copied, np.tile(p, 2))
    naive, _ = width(copied, np.tile(p, 2), tempered=False)
    assert deff_two == pytest.approx(2 * deff_one, rel=0.05)
    assert two == pytest.approx(one, rel=0.15)
    assert naive < 0.8 * one


def test_rows_say_the_population_they_are_about_after_trimming(pooled):
    pops, ov = pooled.populations, pooled.overlap
    assert ov.trimmed and ov.n_outside > 0
    kept = len(pooled.data.frame)
    assert pops["ate"] == (
        f"the overlap population: {kept:,} of {ov.n:,} customer-trials kept ({kept / ov.n:.1%})"
    )
    treated = pooled.data.n_treated
    assert f"{treated:,} of {treated + ov.n_treated_outside:,} treated" in pops["att"]
    rows = pooled.summary()
    for estimand in ("ate", "att"):  # money rows (att) included
        assert set(rows.loc[rows["estimand"] == estimand, "population"]) == {pops[estimand]}
    assert pooled.get("dowhy_psw", "revenue", "att").population == pops["att"]
    assert pops["ate"] in pooled.describe() and pooled.to_dict()["populations"] == pops
    # the total is over the same population: per treated customer x the treated kept
    money = pooled.money[(pooled.money["estimator"] == "dowhy_psw")]
    per, total = (
        money.loc[(money["outcome"] == o) & (money["segment"] == "all"), "mean"].iloc[0]
        for o in ("net_value", "total_net_value")
    )
    assert total == pytest.approx(per * treated, rel=1e-9)


def test_the_money_of_the_pooled_trials_holds_the_planted_net_value(pooled, truth):
    money = pooled.money
    row = money[(money["estimator"] == "dowhy_psw") & (money["outcome"] == "net_value")]
    row = row[row["segment"] == "all"].iloc[0]
    assert row["lo"] <= truth[("att", "net_value")][0] <= row["hi"]


def test_the_bootstrap_resamples_whole_customers_when_trials_reuse_them():
    frame = pd.DataFrame({"customer_id": ["a", "b", "a", "c", "b", "a"]})
    draw = resampler(frame)
    rng = np.random.default_rng(0)
    for _ in range(20):
        ids = frame["customer_id"].to_numpy()[draw(rng)]
        counts = pd.Series(ids).value_counts()
        # every customer drawn k times brings k copies of each of its rows
        assert all(counts[c] % (frame["customer_id"] == c).sum() == 0 for c in counts.index)
    single = pd.DataFrame({"customer_id": ["a", "b", "c"]})
    assert np.array_equal(
        resampler(single)(np.random.default_rng(5)), np.random.default_rng(5).integers(0, 3, 3)
    )


@pytest.mark.slow
def test_pooled_trial_intervals_cover_the_planted_effects_over_worlds():
    """Coverage over CX_TRIAL_REPS worlds (seeds 0, 1, ...; default 20): every planted ATE and
    ATT of the three outcomes against the weighting, the AIPW, the interacted regression and the
    cell route's (propensity strata) intervals (90% nominal), and the planted net value per
    treated customer and its payback month against the money of the weighting and cell routes
    (ROI is net value over the fixed unit cost: its interval holds when net value's does). The
    six intervals of one world share its data, so the band is wide: at least 80% (75% for the
    money intervals, one per world and route)."""
    import os

    reps = int(os.environ.get("CX_TRIAL_REPS", "20"))
    config = config_from_dict({"causal": {"bootstrap": 100}})
    held: dict[str, list[bool]] = {
        "dowhy_psw": [], "aipw": [], "bayes_gformula": [], "dowhy_regression": [],
    }  # fmt: skip
    money: dict[str, list[bool]] = {"dowhy_psw": [], "bayes_gformula": []}
    payback: dict[str, list[bool]] = {"dowhy_psw": [], "bayes_gformula": []}
    for seed in range(reps):
        con = store.connect(":memory:")
        synth.simulate(con, 20_000, months=18, seed=seed, outreach_months=4)
        truth = planted_overall(con, OUTREACH)
        result = attribute(
            con, OUTREACH, outcome="all", config=config, refuters=[], doubly_robust=True
        )
        assert all(f.diagnostics_.passed for f in result.gformula.values()), seed
        for estimator, hits in held.items():
            for outcome in OUTCOMES:
                for estimand in ("ate", "att"):
                    est = result.get(estimator, outcome, estimand)
                    hits.append(est.contains(truth[(estimand, outcome)][0]))
        rows = result.money[
            (result.money["outcome"] == "net_value") & (result.money["segment"] == "all")
        ]
        for estimator, hits in money.items():
            row = rows[rows["estimator"] == estimator].iloc[0]
            hits.append(row["lo"] <= truth[("att", "net_value")][0] <= row["hi"])
        months = result.money[
            (result.money["outcome"] == "payback_months") & (result.money["segment"] == "all")
        ]
        for estimator, hits in payback.items():
            row = months[months["estimator"] == estimator].iloc[0]
            # a quantile that does not pay back within the schedule (NaN) is "after it"
            lo, hi = (np.inf if pd.isna(x) else x for x in (row["lo"], row["hi"]))
            hits.append(lo <= truth[("att", "payback_months")][0] <= hi)
    print({k: f"{np.mean(v):.0%} of {len(v)}" for k, v in held.items()})
    print({f"net value, {k}": f"{np.mean(v):.0%} of {len(v)}" for k, v in money.items()})
    print({f"payback, {k}": f"{np.mean(v):.0%} of {len(v)}" for k, v in payback.items()})
    for estimator, hits in held.items():
        if estimator in CHECK_ONLY:  # shown, never published: tallied, not held to it
            continue
        assert np.mean(hits) >= 0.8, f"{estimator}: {np.mean(hits):.0%} of {len(hits)}"
    for estimator, hits in money.items():  # one interval per world: the binomial band is wide
        assert np.mean(hits) >= 0.75, f"net value, {estimator}: {np.mean(hits):.0%} of {len(hits)}"
    for estimator, hits in payback.items():
        assert np.mean(hits) >= 0.75, f"payback, {estimator}: {np.mean(hits):.0%} of {len(hits)}"


def _trait_bound(result, n: int) -> tuple[float, float, float]:
    """The Cinelli-Hazlett bias bound on retention at the hidden trait's own strength (seed 1's
    trait, from the simulator), and its partial R-squared with treatment and with retention
    given the confounders."""
    from attribution.causal import sensitivity

    frame = result.data.frame
    u = synth.hidden_confounder(1, n)[frame["customer_id"].str[1:].astype(int) - 1]
    X = estimators._regression_design(frame, result.data)
    T = frame["treated"].to_numpy(float)
    y = frame["retained"].to_numpy(float)

    def resid(v, A):
        return v - A @ np.linalg.lstsq(A, v, rcond=None)[0]

    XT = np.column_stack([X, T])
    r2_treatment = np.corrcoef(resid(u, X), resid(T, X))[0, 1] ** 2
    r2_outcome = np.corrcoef(resid(u, XT), resid(y, XT))[0, 1] ** 2
    bound = sensitivity.bias(r2_treatment, r2_outcome, resid(T, X).std(), resid(y, XT).std())
    return bound, r2_treatment, r2_outcome


def _kept_truth(con, frame) -> dict[tuple[str, str], float]:
    """The planted ATE and ATT of exactly the customer-trials in ``frame`` (after trimming), from
    the simulator's individual effects."""
    own = con.execute(
        "SELECT customer_id, strftime(trial_month, '%Y-%m') AS trial_month, retention, revenue, "
        "cost_to_serve FROM truth_customers WHERE intervention = ?",
        [OUTREACH],
    ).df()
    keys = frame[["customer_id", "trial_month", "treated"]]
    both = keys.merge(own, on=["customer_id", "trial_month"], how="left", validate="one_to_one")
    assert not both[list(OUTCOMES)].isna().any().any()
    treated = both["treated"] == 1
    out = {}
    for o in OUTCOMES:
        out[("ate", o)] = float(both[o].mean())
        out[("att", o)] = float(both.loc[treated, o].mean())
    return out


@pytest.mark.slow
def test_at_a_quarter_million_customers_the_published_routes_hold_the_kept_truth():
    """One staggered world of 250k customers (~680k customer-trials; seed 1, as the 1M bench):
    the weighting's and the cell route's 90% intervals against the planted effects of exactly
    the customer-trials the overlap keeps (what the rows are about). Twelve intervals of one
    world share its data, so at most two may miss. The regression, a check that is never
    published, is not held to it (at 1M it missed revenue by far). ~5 min."""
    n = 250_000
    con = store.connect(":memory:")
    synth.simulate(con, n, months=18, seed=1, outreach_months=4, individual_effects=True)
    config = config_from_dict({"causal": {"bootstrap": 50}})
    result = attribute(con, OUTREACH, outcome="all", config=config, refuters=[])
    assert all(f.diagnostics_.passed for f in result.gformula.values())
    truth = _kept_truth(con, result.data.frame)
    missed = []
    for route in ("dowhy_psw", "bayes_gformula"):
        for (estimand, outcome), planted in truth.items():
            est = result.get(route, outcome, estimand)
            if not est.contains(planted):
                missed.append((route, outcome, estimand, est.mean, est.lo, est.hi, planted))
    print("missed", missed)
    assert len(missed) <= 2, missed


@pytest.mark.slow
def test_at_a_quarter_million_customers_a_hidden_confounder_is_what_the_bound_says():
    """At 250k customers the intervals are narrow, so a hidden trait (strength 1.5) that no
    adjustment can see puts the weighting ATT of retention clear of its truth; the
    Cinelli-Hazlett bound at the trait's own partial R-squared (from the simulator) is larger
    than the interval's half-width and brackets the truth: the sensitivity analysis says the
    estimate is not robust to a confounder that strong. ~3 min."""

    n = 250_000
    con = store.connect(":memory:")
    synth.simulate(con, n, months=18, seed=1, outreach_months=4, hidden_confounding=1.5)
    truth = planted_overall(con, OUTREACH)[("att", "retention")][0]
    config = config_from_dict({"causal": {"bootstrap": 50}})
    result = attribute(
        con, OUTREACH, outcome="retention", config=config, refuters=[], gformula=False
    )
    att = result.get("dowhy_psw", "retention", "att")
    assert not att.contains(truth) and att.mean > truth

    bound, r2_treatment, r2_outcome = _trait_bound(result, n)
    (sens,) = [s for s in result.sensitivity if s.estimator == "dowhy_psw"]
    print("bound", bound, "att", att, "truth", truth, "r2", r2_treatment, r2_outcome, sens)
    assert bound > att.half_width
    assert att.mean - bound < truth < att.mean


def test_full_targeting_is_the_default_world_and_no_targeting_reaches_at_random(con):
    synth.simulate(con, 800, months=8, seed=4, outreach_months=2)
    same, random = store.connect(":memory:"), store.connect(":memory:")
    synth.simulate(same, 800, months=8, seed=4, outreach_months=2, outreach_targeting=1.0)
    synth.simulate(random, 800, months=8, seed=4, outreach_months=2, outreach_targeting=0)
    sql = "SELECT * FROM interventions ORDER BY ALL"
    assert con.execute(sql).fetchall() == same.execute(sql).fetchall()
    assert con.execute(sql).fetchall() != random.execute(sql).fetchall()


@pytest.mark.slow
def test_with_the_outreach_at_random_the_difference_in_means_recovers_the_planted_effects():
    """The check of the truth itself: with the staggered outreach reaching eligible customers at
    random (``outreach_targeting=0``), each trial month is a randomized test, and the pooled
    difference in means (trial months weighted by their eligible customers, variance with
    customers as clusters) must hold the planted ATE at the nominal rate over CX_ORACLE_REPS
    worlds (seeds 0, 1, ...; default 10) and every outcome."""
    import os

    from attribution.causal.strata import design_effect

    reps = int(os.environ.get("CX_ORACLE_REPS", "10"))
    held = []
    for seed in range(reps):
        con = store.connect(":memory:")
        synth.simulate(con, 200_000, months=18, seed=seed, outreach_months=4, outreach_targeting=0)
        truth = planted_overall(con, OUTREACH)
        f = observational_frame(con, OUTREACH).frame
        month = pd.factorize(f[TRIAL])[0]
        ids = pd.factorize(f["customer_id"])[0]
        t = f["treated"].to_numpy(int)
        for outcome, col in (("retention", "retained"), ("revenue", "revenue"),
                             ("cost_to_serve", "cost_to_serve")):  # fmt: skip
            y = f[col].to_numpy(float)
            est, var = 0.0, 0.0
            for m in np.unique(month):
                rows = month == m
                w = rows.mean()
                a, b = y[rows & (t == 1)], y[rows & (t == 0)]
                est += w * (a.mean() - b.mean())
                var += w**2 * (a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
            half = 1.645 * np.sqrt(var * design_effect(y, t, month, ids))
            held.append(abs(est - truth[("ate", outcome)][0]) <= half)
    assert np.mean(held) >= 0.8, f"{np.mean(held):.0%} of {len(held)}"
    with pytest.raises(InputError, match="outreach_targeting must be a number from 0 to 2"):
        synth.simulate(store.connect(":memory:"), 100, months=8, outreach_targeting=3)


# --- a confounder the data does not hold ---------------------------------------------------------


def test_a_hidden_confounder_of_known_strength_is_what_the_sensitivity_analysis_allows_for():
    """With an unrecorded trait that the outreach targets on and that lowers churn, every
    adjusted route overstates retention; the Cinelli-Hazlett bound computed with the trait's own
    partial R-squared (known here, from the simulator) moves the regression estimate, and the
    weighting ATT that money is built on, by more than their intervals' half-widths, past the
    truth: neither is robust to that confounder. The observed confounders are weaker benchmarks
    than the trait, so the benchmark verdict cannot see it; the robustness values say how strong
    a confounder would have to be."""

    con = store.connect(":memory:")
    synth.simulate(con, 20_000, months=18, seed=1, outreach_months=4, hidden_confounding=1.5)
    truth = dict(
        con.execute(
            "SELECT estimand, effect FROM truth WHERE intervention = ? AND outcome = 'retention' "
            "AND segment_by = 'all'",
            [OUTREACH],
        ).fetchall()
    )
    config = config_from_dict({"causal": {"bootstrap": 100}})
    result = attribute(
        con,
        OUTREACH,
        outcome="retention",
        config=config,
        refuters=["unobserved_confounder"],
        gformula=False,
    )
    reg = result.get("dowhy_regression", "retention")
    assert not reg.contains(truth["ate"]) and not result.get("dowhy_psw", "retention").contains(
        truth["ate"]
    )

    bound, _, _ = _trait_bound(result, 20_000)
    assert bound > reg.half_width
    assert reg.mean - bound < truth["ate"] < reg.mean

    (att,) = [s for s in result.sensitivity if s.estimator == "dowhy_psw"]
    assert (att.outcome, att.mean) == (
        "retention",
        result.get("dowhy_psw", "retention", "att").mean,
    )
    assert bound > (att.hi - att.lo) / 2
    assert att.mean - bound < truth["att"] < att.mean
    assert 0 < att.robustness_value_interval < att.robustness_value < 0.2
    assert all(b["bias"] < bound for b in att.benchmarks)
    assert att.verdict == "pass" and "still clear of zero" in att.sentence


def test_without_hidden_confounding_the_world_is_unchanged_and_bad_strengths_are_named(con):
    synth.simulate(con, 500, months=8, seed=4, outreach_months=2)
    other = store.connect(":memory:")
    synth.simulate(other, 500, months=8, seed=4, outreach_months=2, hidden_confounding=0.0)
    sql = "SELECT * FROM truth ORDER BY ALL"
    assert con.execute(sql).fetchall() == other.execute(sql).fetchall()
    with pytest.raises(InputError, match="hidden_confounding must be a number from 0 to 5"):
        synth.simulate(store.connect(":memory:"), 100, months=8, hidden_confounding=-1)


# --- bad input ----------------------------------------------------------------------------------


def test_a_trial_month_without_untreated_customers_is_named(con):
    synth.simulate(con, 600, months=8, seed=2)
    con.execute(
        "INSERT INTO interventions SELECT o.customer_id, 'call', TIMESTAMP '2025-06-03', 2.0, "
        "NULL FROM outcomes o WHERE o.period = DATE '2025-06-01' AND o.active"
    )
    con.execute(
        "INSERT INTO interventions SELECT customer_id, 'call', TIMESTAMP '2025-05-10', 2.0, NULL "
        "FROM customers WHERE customer_id = 'C00000001'"
    )
    with pytest.raises(InputError, match="trial month 2025-06: no untreated customers"):
        observational_frame(con, "call", horizon_months=2)


def test_a_follow_up_no_trial_month_can_have_is_refused(world):
    with pytest.raises(InputError, match="horizon_months must be 1 to 9"):
        observational_frame(world, OUTREACH, horizon_months=10)
