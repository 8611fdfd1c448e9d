"""Per-customer uplift on a randomized experiment, checked against the simulator's planted
individual effects (``simulate(..., individual_effects=True)``: every customer's treated path
minus untreated path).

The recovery gift's effects differ between customers (by tier: the planted net value is about
2 for bronze and 130 for platinum customers), so a learner should rank customers better than
random; a ranking with no information in it should not, and the evaluation must say so.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from attribution import store, synth
from attribution.cli import main
from attribution.errors import InputError
from attribution.targeting import evaluate, experiment_rows, fit_uplift
from attribution.targeting.data import MIN_PER_ARM
from attribution.targeting.evaluate import qini_area, uplift_curve
from attribution.targeting.learners import customer_value, segment_level
from attribution.targeting.policy import choose, span_interval
from attribution.targeting.population import (
    PICK_COLUMNS,
    check_month,
    in_support,
    population_rows,
    score_population,
)
from attribution.targeting.workflow import POLICY_COLUMNS

GIFT = "exp_recovery_gift"
PREMIUM = "exp_premium_support"
BUDGET = 60_000.0


@pytest.fixture(scope="module")
def world():
    con = store.connect(":memory:")
    synth.simulate(con, 150_000, months=12, seed=1, individual_effects=True)
    yield con
    con.close()


@pytest.fixture(scope="module")
def rows(world):
    return experiment_rows(world, GIFT)


@pytest.fixture(scope="module")
def planted(world, rows):
    truth = world.execute(
        "SELECT customer_id, retention, revenue, cost_to_serve, net_value FROM truth_customers "
        "WHERE experiment_id = ?",
        [GIFT],
    ).df()
    return truth.set_index("customer_id").loc[rows.frame["customer_id"]]


@pytest.fixture(scope="module")
def dr(rows):
    return fit_uplift(rows, "net_value", learner="dr", seed=1)


def test_rows_are_the_assigned_customers_with_features_from_before_the_start(world, rows):
    assigned = world.execute(
        "SELECT customer_id, arm FROM assignments WHERE experiment_id = ? ORDER BY 1", [GIFT]
    ).df()
    f = rows.frame.sort_values("customer_id").reset_index(drop=True)
    assert f["customer_id"].tolist() == assigned["customer_id"].tolist()
    assert (f["treated"] == (assigned["arm"] == rows.arm).astype(int)).all()
    assert rows.control == "control" and rows.start.isoformat() == "2025-07-01"
    # a pre-period feature and the outcomes, recomputed from the raw rows for one customer
    one = f.iloc[0]
    prior, later = world.execute(
        "SELECT avg(revenue) FILTER (WHERE period >= DATE '2025-04-01' AND period < ?), "
        "sum(revenue) FILTER (WHERE period >= ?) FROM outcomes WHERE customer_id = ?",
        [rows.start, rows.start, one["customer_id"]],
    ).fetchone()
    assert one["prior_revenue"] == pytest.approx(prior or 0.0)
    assert one["revenue"] == pytest.approx(later)
    # a feature with one value here (all were active in the lookback) is left out with a note
    assert "prior_active_months" not in rows.features
    assert any("prior_active_months" in n for n in rows.notes)
    assert rows.unit_cost == pytest.approx(20.0)


def test_customer_value_averages_to_the_planted_net_value_of_the_arms(rows, planted):
    """The per-customer value is the money layer on one customer: the difference of its arm
    means, less the unit cost, estimates the planted net value (a difference of means over
    about 4,700 customers: within 3 of its standard errors)."""
    v = customer_value(rows)
    t = rows.frame["treated"].to_numpy() == 1
    diff = v[t].mean() - v[~t].mean() - rows.unit_cost
    se = np.sqrt(v[t].var() / t.sum() + v[~t].var() / (~t).sum())
    assert abs(diff - planted["net_value"].mean()) < 3 * se


def test_a_lasting_interventions_customer_value_follows_its_held_churn_effect(world, rows, dr):
    """Both tests' design records hold their effect on churn after the window: each arm's
    customers leave at the middle of the readout's span, so the arms' mean values, less the
    unit cost, estimate the planted net value (within 3 standard errors, about 1,600 control
    customers for premium support); along the span the gift's value grows with its arm's own
    late-window retention, and the fit keeps the doubly robust scores at the span's ends."""
    gift_control, gift_treated = rows.late_retention
    assert gift_control < gift_treated  # the gap the gift opened is still open at the end
    t = rows.frame["treated"].to_numpy() == 1
    uplift = [customer_value(rows, share=x)[t].mean() - customer_value(rows, share=x)[~t].mean()
              for x in (0.0, 0.5, 1.0)]  # fmt: skip
    assert uplift[0] < uplift[1] < uplift[2], uplift
    lo, hi = dr.span_scores
    assert lo.mean() < dr.scores.mean() < hi.mean()
    prem = experiment_rows(world, PREMIUM)
    control_rate, treated_rate = prem.late_retention
    assert 0.95 < control_rate < treated_rate < 1.0  # premium support cuts churn
    planted = world.execute(
        "SELECT avg(net_value) FROM truth_customers WHERE experiment_id = ?", [PREMIUM]
    ).fetchone()[0]
    v = customer_value(prem)
    t = prem.frame["treated"].to_numpy() == 1
    diff = v[t].mean() - v[~t].mean() - prem.unit_cost
    se = np.sqrt(v[t].var() / t.sum() + v[~t].var() / (~t).sum())
    assert abs(diff - planted) < 3 * se, (diff, planted, se)


def test_learners_rank_customers_by_their_planted_net_value(rows, planted, dr):
    truth = planted["net_value"].to_numpy()
    assert len(dr.oof) == len(rows.frame)
    assert np.corrcoef(dr.oof, truth)[0, 1] > 0.03  # out of fold, on one world
    assert np.corrcoef(dr.predict(), truth)[0, 1] > 0.05
    # the customers the learner ranks in its top fifth were planted more net value
    top = dr.oof >= np.quantile(dr.oof, 0.8)
    assert truth[top].mean() > truth.mean()
    for learner in ("t", "x"):
        fit = fit_uplift(rows, "revenue", learner=learner, seed=1)
        assert np.corrcoef(fit.oof, planted["revenue"].to_numpy())[0, 1] > 0.0, learner


def test_the_evaluation_reads_a_planted_ranking_and_says_when_one_is_no_better_than_random(
    rows, planted, dr
):
    ev = evaluate(dr, resamples=200, seed=1)
    assert ev.curve["share"].iloc[-1] == 1.0
    assert ev.curve["model"].iloc[-1] == pytest.approx(ev.curve["random"].iloc[-1])
    assert list(ev.calibration["decile"]) == list(range(1, 11))
    assert ev.as_check().verdict == ("pass" if ev.area["lo"] > 0 else "warn")
    t = rows.frame["treated"].to_numpy()
    # ranking by the planted individual effects beats random within its interval
    oracle = evaluate(_with_oof(dr, planted["net_value"].to_numpy()), resamples=200, seed=2)
    assert oracle.beats_random and oracle.area["lo"] > 0
    # rankings that know nothing: the interval includes zero about 90% of the time
    rng = np.random.default_rng(3)
    held = 0
    for k in range(20):
        blind = evaluate(_with_oof(dr, rng.normal(size=len(t))), resamples=100, seed=k)
        held += blind.area["lo"] <= 0 <= blind.area["hi"]
        if not blind.beats_random:
            assert "does not beat random" in blind.as_check().sentence
    assert held >= 15, held


def test_above_the_training_cap_every_customer_is_still_scored_out_of_fold(rows, planted):
    """With the models training on a sample (here 2,000 of ~4,700 customers), every customer
    is scored by a fold model that did not train on them, the arms keep their shares in the
    sample, and the scores still follow the planted net value; at or above the number of
    customers the cap changes nothing."""
    from attribution.targeting.learners import _training_sample

    t = rows.frame["treated"].to_numpy(int)
    keep = _training_sample(t, 2_000, seed=1)
    assert abs(int(keep.sum()) - 2_000) <= 1
    assert t[keep].mean() == pytest.approx(t.mean(), abs=0.002)
    small = fit_uplift(rows, "net_value", learner="dr", seed=1, max_train=2_000)
    assert np.isfinite(small.oof).all() and np.isfinite(small.scores).all()
    assert len(small.oof) == len(rows.frame)
    assert np.corrcoef(small.oof, planted["net_value"].to_numpy())[0, 1] > 0.0
    # at or under the cap every customer may train: the folds' training parts are the
    # other folds, as without a cap
    assert _training_sample(t, len(t), seed=1).all()
    with pytest.raises(InputError, match="max_train must be a whole number >= 50"):
        fit_uplift(rows, "net_value", max_train=10)


def test_the_segment_level_fallback_is_each_segments_mean_score_over_the_other_folds(dr):
    fallback = segment_level(dr, "tier")
    tier = dr.data.frame["tier"].to_numpy()
    for k in range(5):
        for level in ("bronze", "platinum"):
            mine = (dr.folds == k) & (tier == level)
            others = (dr.folds != k) & (tier == level)
            assert np.allclose(fallback.oof[mine], dr.scores[others].mean())
    overall = segment_level(dr, None)
    assert np.allclose(overall.oof[dr.folds == 0], dr.scores[dr.folds != 0].mean())


def _with_oof(fit, scores):
    from dataclasses import replace

    return replace(fit, oof=np.asarray(scores, dtype=float))


def test_an_interval_over_the_after_window_span_carries_the_span_and_the_error():
    """A point of each span drawn uniformly (one per pair, independent), plus normal error:
    with a wide span the interval reaches close to the span's ends, with none it is the
    normal one, and two spans add."""
    lo, hi, p = span_interval(0.0, 1.0, [(-10.0, 10.0)])
    assert -10.0 < lo < -8.0 and 8.0 < hi < 10.0 and 0.45 < p < 0.55
    assert span_interval(0.0, 1.0) == pytest.approx((-1.6449, 1.6449, 0.5), abs=1e-3)
    lo2, hi2, _ = span_interval(0.0, 1.0, [(-10.0, 10.0), (-10.0, 10.0)])
    assert lo2 < lo and hi2 > hi
    assert span_interval(5.0, 0.1, [(4.0, 6.0)])[2] == 1.0


def test_the_uplift_curve_and_its_area_by_hand():
    t = np.array([1, 0, 1, 0, 1, 0])
    y = np.array([9.0, 1.0, 4.0, 2.0, 1.0, 3.0])
    best = uplift_curve(np.array([6, 5, 4, 3, 2, 1.0]), t, y, grid=[1 / 3, 2 / 3, 1.0])
    # top 2: 9 - 1 = 8 on 2 of 6; top 4: 6.5 - 1.5 = 5 on 4 of 6; all: 14/3 - 2 on 6 of 6
    assert best.tolist() == pytest.approx([8 * 2 / 6, 5 * 4 / 6, 14 / 3 - 2])
    worst = qini_area(np.array([1, 2, 3, 4, 5, 6.0]), t, y, grid=[1 / 3, 2 / 3, 1.0])
    assert qini_area(np.array([6, 5, 4, 3, 2, 1.0]), t, y, grid=[1 / 3, 2 / 3, 1.0]) > worst


def test_bad_settings_and_too_small_experiments_are_named(world, rows):
    with pytest.raises(InputError, match="learner must be one of"):
        fit_uplift(rows, learner="s")
    with pytest.raises(InputError, match="folds must be"):
        fit_uplift(rows, folds=1)
    with pytest.raises(InputError, match="target must be one of"):
        fit_uplift(rows, "csat")
    with pytest.raises(InputError, match="arm 'gold' is not a treatment arm"):
        experiment_rows(world, GIFT, arm="gold")
    with pytest.raises(InputError, match="feature 'prior_active_months' has one value"):
        experiment_rows(world, GIFT, features=["tier", "prior_active_months"])
    small = store.connect(":memory:")
    synth.simulate(small, 3000, months=8, seed=2)
    with pytest.raises(InputError, match=f"at least {MIN_PER_ARM} per arm"):
        experiment_rows(small, GIFT)


@pytest.fixture(scope="module")
def premium(world):
    # a 10% holdout: the X-learner is the one meant for unbalanced arms
    return fit_uplift(experiment_rows(world, PREMIUM), "net_value", learner="x", seed=1)


def _true_values(con, policy) -> dict[str, float]:
    """Each policy's planted total: the individual net values of the customers it treats."""
    truth = con.execute(
        "SELECT experiment_id, customer_id, net_value FROM truth_customers "
        "WHERE experiment_id IS NOT NULL"
    ).df()
    m = policy.members.merge(truth, on=["experiment_id", "customer_id"], validate="1:1")
    assert len(m) == len(policy.members)
    return {name: float(m.loc[m[name], "net_value"].sum()) for name in policy.comparison.policy}


def test_the_budgeted_policy_beats_treating_all_and_the_best_segment_and_its_interval_holds(
    world, dr, premium
):
    policy = choose([dr, premium], BUDGET, seed=1)
    picks = policy.picks
    assert picks["customer_id"].is_unique  # at most one intervention per customer
    assert picks["cost"].sum() <= BUDGET and (picks["expected"] > 0).all()
    assert set(policy.comparison.policy) == {
        "targeted", "treat all", "treat none", "best segment rule"
    }  # fmt: skip
    true = _true_values(world, policy)
    assert true["targeted"] > true["treat all"] and true["targeted"] > true["best segment rule"]
    got = policy.value("targeted")
    assert got["lo"] <= true["targeted"] <= got["hi"], (got, true["targeted"])
    assert policy.value("treat none") == {"mean": 0.0, "lo": 0.0, "hi": 0.0, "p_positive": 0.0}
    groups = policy.groups
    assert set(groups.intervention) == {"recovery_gift", "premium_support"}
    assert ((groups.lo <= groups.estimated) & (groups.estimated <= groups.hi)).all()
    # a capacity caps an intervention's customers; what it frees goes to the other
    capped = choose([dr, premium], BUDGET, capacity={"recovery_gift": 100}, seed=1)
    counts = capped.picks["intervention"].value_counts()
    assert counts.get("recovery_gift", 0) == 100


def test_policy_settings_that_cannot_work_are_named(dr, premium):
    with pytest.raises(InputError, match="below the cheapest intervention's unit cost"):
        choose([dr, premium], 19.0)
    with pytest.raises(InputError, match="one fit per intervention"):
        choose([dr, dr], BUDGET)
    with pytest.raises(InputError, match="capacity names 'phone_call'"):
        choose([dr], BUDGET, capacity={"phone_call": 10})
    revenue = fit_uplift(dr.data, "revenue", learner="t", seed=1)
    with pytest.raises(InputError, match="needs net-value fits"):
        choose([revenue], BUDGET)


def _carried(con, pop) -> tuple[int, float, float, float]:
    """The picks of a month's policy that were in a test (their planted effect is known): how
    many, their groups' carried estimate, its interval's half width (the normal interval of a
    sum of group means, each counted once per pick: n_g x mean_g, variance n_g^2 se_g^2), and
    their planted total."""
    truth = con.execute(
        "SELECT experiment_id, customer_id, net_value FROM truth_customers "
        "WHERE experiment_id IS NOT NULL"
    ).df()
    known = pop.picks.merge(truth, on=["experiment_id", "customer_id"])
    keys = [known["intervention"], known["group"]]
    n, group_half = known.groupby(keys).size(), ((known["hi"] - known["lo"]) / 2).groupby(keys)
    half = float(np.sqrt((n**2 * group_half.first() ** 2).sum()))
    return len(known), float(known["group_estimate"].sum()), half, float(known["net_value"].sum())


def test_a_months_customers_are_measured_as_the_experiments_were_and_scored_in_support(
    world, rows, dr, premium
):
    """At the experiments' start month the customers of the month carry exactly the features
    their experiment rows have; each intervention scores only customers like its experiment's;
    the evidence for what the picks are worth holds the planted value of the picks that have
    one (the experiments' customers), and a segment-level fit scores by segment."""
    start = f"{rows.start:%Y-%m}"
    frame = population_rows(world, start, [dr.data, premium.data])
    assert frame["customer_id"].is_unique
    same = rows.frame.merge(frame, on="customer_id", suffixes=("", "_month"), validate="1:1")
    assert len(same) == len(rows.frame)  # every gift customer was active at the start
    for name in rows.features:
        assert (same[name] == same[f"{name}_month"]).all(), name
    gift_ok, premium_ok = in_support(dr, frame), in_support(premium, frame)
    assert set(frame.loc[premium_ok, "tier"]) == {"gold", "platinum"}
    assert (frame.loc[gift_ok, "prior_bad_cases"] >= 1).all()
    assert gift_ok.sum() >= len(rows.frame) and gift_ok.mean() < 0.2

    pop = score_population([dr, premium], frame, month=start, budget=BUDGET)
    picks = pop.picks
    assert tuple(picks.columns) == PICK_COLUMNS and picks["customer_id"].is_unique
    assert picks["cost"].sum() <= BUDGET and (picks["expected"] > 0).all()
    assert set(picks["group"]) <= {f"decile {d}" for d in range(1, 11)}
    for fit, ok in ((dr, gift_ok), (premium, premium_ok)):
        mine = picks[picks["intervention"] == fit.data.intervention]
        assert mine["customer_id"].isin(frame.loc[ok, "customer_id"]).all()
    covered = pop.coverage.set_index("intervention")
    assert covered.loc["premium_support", "in_support"] == premium_ok.sum()
    why = next(n for n in pop.notes if n.startswith("premium_support:"))
    assert "tier at a level it did not see" in why, why
    assert covered["picked"].sum() == len(picks)
    known, estimate, half, planted = _carried(world, pop)
    assert known >= 0.3 * len(picks)
    assert abs(estimate - planted) <= half, (estimate, half, planted)
    t = pop.total
    assert t["lo"] < t["mean"] < t["hi"] and t["customers"] == len(picks)

    by_tier = segment_level(dr, "tier")
    scored = by_tier.predict(frame.loc[gift_ok])
    means = pd.Series(by_tier.scores).groupby(rows.frame["tier"].to_numpy()).mean()
    assert np.allclose(scored, frame.loc[gift_ok, "tier"].map(means).to_numpy())
    pop = score_population([by_tier], frame, month=start)
    assert set(pop.picks["group"]) <= {f"tier = {t}" for t in means.index}
    assert len(pop.picks) == pop.coverage["expected_to_gain"].sum()  # no budget: all who gain
    with pytest.raises(InputError, match="score month 2026-01 is not a month of the store"):
        check_month(world, "2026-01")
    with pytest.raises(InputError, match="is after the last outcome period"):
        population_rows(world, "2026-01", [dr.data])


def test_cx_target_prints_the_evaluation_and_writes_the_policy(tmp_path, capsys):
    path = tmp_path / "cx.duckdb"
    with store.opened(path) as con:
        synth.simulate(con, 60_000, months=12, seed=4)
    out = tmp_path / "policy.csv"
    argv = ["target", GIFT, "--budget", "20000", "--capacity", "recovery_gift=300",
            "--out", str(out), "--store", str(path), "--json"]  # fmt: skip
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [f["learner"] for f in payload["fits"]] == ["dr"]  # auto: balanced arms
    assert {c["check"] for c in payload["checks"]} == {"targeting: uplift beats random"}
    # a fit whose ranking is no better than random ranks its customers by segment instead
    named = {f["experiment_id"]: f["intervention"] for f in payload["fits"]}
    for check in payload["checks"]:
        said = any(n.startswith(f"{named[check['subject']]}: customers ranked by their tier")
                   for n in payload["notes"])  # fmt: skip
        assert said == (check["verdict"] == "warn"), check
    assert {p["policy"] for p in payload["policy"]} >= {"targeted", "treat all", "treat none"}
    table = pd.read_csv(out)
    assert tuple(table.columns) == POLICY_COLUMNS and len(table) == payload["customers_picked"]
    assert table["customer_id"].is_unique and table["cost"].sum() <= 20_000
    assert len(table) <= 300
    assert ((table["lo"] <= table["hi"]) & table["p_positive"].between(0, 1)).all()
    # the customers of the last month instead of the experiment's: the picks file and the total
    months = tmp_path / "month.parquet"
    argv = ["target", GIFT, "--budget", "20000", "--score-month", "2025-12", "--out",
            str(months), "--store", str(path), "--json"]  # fmt: skip
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)["population"]
    table = pd.read_parquet(months)
    assert tuple(table.columns) == PICK_COLUMNS and len(table) == payload["customers_picked"]
    assert payload["month"] == "2025-12" and table["cost"].sum() <= 20_000
    assert payload["coverage"][0]["in_support"] < payload["coverage"][0]["customers"]
    assert any("respond alike" in n for n in payload["notes"])
    # settings that cannot work: exit 2, the setting named, nothing written
    for bad, words in (
        (["--score-month", "2031-01"], "score month 2031-01 is not a month of the store"),
        (["--budget", "5"], "below the cheapest intervention's unit cost (20)"),
        (["--capacity", "premium_support"], "give INTERVENTION=N"),
        (["--out", str(tmp_path / "policy.txt")], "must end in .csv or .parquet"),
    ):
        assert main(["target", GIFT, "--store", str(path), *bad]) == 2, bad
        assert words in capsys.readouterr().err, bad
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cx.duckdb", "month.parquet",
                                                          "policy.csv"]  # fmt: skip


def _true_groups(con, fits) -> pd.DataFrame:
    """Each (intervention, decile) group's planted mean individual net value."""
    truth = con.execute(
        "SELECT experiment_id, customer_id, net_value FROM truth_customers "
        "WHERE experiment_id IS NOT NULL"
    ).df()
    parts = []
    for f in fits:
        frame = pd.DataFrame(
            {"experiment_id": f.data.experiment_id, "customer_id": f.data.frame["customer_id"],
             "intervention": f.data.intervention, "decile": f.deciles}
        )  # fmt: skip
        parts.append(frame.merge(truth, on=["experiment_id", "customer_id"], validate="1:1"))
    rows = pd.concat(parts, ignore_index=True)
    return rows.groupby(["intervention", "decile"], as_index=False)["net_value"].mean()


@pytest.mark.slow
def test_over_worlds_the_budgeted_policy_is_worth_more_than_the_alternatives_and_covered():
    """Eight worlds: the targeted policy's planted value beats treat-all and the best segment
    rule in every world, and the 90% intervals of what a user reads hold the planted values
    (the best segment rule's own interval is optimistic, being the best of many estimates,
    and is not checked):

    - the targeted and the treat-all totals: in at least 6 of the 8 worlds each;
    - the per-group means (intervention x decile of expected net value, the interval each
      picked customer carries in the policy file): 160 intervals, held 82-97% of the time
      (binomial 5-95% for a calibrated 90% interval: 137-151 of 160);
    - P(> 0) of the groups: where it is above 0.95, the planted mean is positive in at least
      90% of the groups;
    - the customers of the tests' start month, scored by the same learners within budget:
      the evidence their picks carry holds the planted total of the picks that were in a
      test in at least 6 of the 8 worlds.
    """
    held, held_all, better, carried = 0, 0, 0, 0
    groups = []
    for seed in range(1, 9):
        con = store.connect(":memory:")
        synth.simulate(con, 150_000, months=12, seed=seed, individual_effects=True)
        fits = [
            fit_uplift(experiment_rows(con, GIFT), "net_value", learner="dr", seed=seed),
            fit_uplift(experiment_rows(con, PREMIUM), "net_value", learner="x", seed=seed),
        ]
        policy = choose(fits, BUDGET, seed=seed)
        true = _true_values(con, policy)
        got, everyone = policy.value("targeted"), policy.value("treat all")
        held += got["lo"] <= true["targeted"] <= got["hi"]
        held_all += everyone["lo"] <= true["treat all"] <= everyone["hi"]
        better += true["targeted"] > max(true["treat all"], true["best segment rule"])
        merged = policy.groups.merge(
            _true_groups(con, fits), on=["intervention", "decile"], validate="1:1"
        )
        groups.append(merged.assign(seed=seed))
        start = f"{fits[0].data.start:%Y-%m}"
        month = population_rows(con, start, [f.data for f in fits])
        _, estimate, half, planted = _carried(
            con, score_population(fits, month, month=start, budget=BUDGET)
        )
        carried += abs(estimate - planted) <= half
        con.close()
    groups = pd.concat(groups, ignore_index=True)
    assert len(groups) == 160
    covered = (groups["lo"] <= groups["net_value"]) & (groups["net_value"] <= groups["hi"])
    sure = groups[groups["p_positive"] > 0.95]
    summary = (better, held, held_all, covered.mean(), len(sure), (sure["net_value"] > 0).mean(),
               carried)  # fmt: skip
    assert better == 8 and held >= 6 and held_all >= 6 and carried >= 6, summary
    assert 0.82 <= covered.mean() <= 0.97, summary
    assert len(sure) >= 10 and (sure["net_value"] > 0).mean() >= 0.9, summary


@pytest.mark.slow
def test_over_worlds_the_learners_rank_by_planted_net_value_and_mostly_beat_random():
    """Eight worlds of 150k customers (about 4,700 in the recovery gift's test each): the
    doubly robust learner's out-of-fold uplift correlates with the planted individual net value
    in every world and on average by more than 0.1, and its Qini interval lies above zero in
    most of them (measured: 0.06 to 0.21 on the first four worlds, above zero in three)."""
    corr, beats = [], 0
    for seed in range(1, 9):
        con = store.connect(":memory:")
        synth.simulate(con, 150_000, months=12, seed=seed, individual_effects=True)
        data = experiment_rows(con, GIFT)
        truth = con.execute(
            "SELECT customer_id, net_value FROM truth_customers WHERE experiment_id = ?", [GIFT]
        ).df()
        truth = truth.set_index("customer_id").loc[data.frame["customer_id"], "net_value"]
        fit = fit_uplift(data, "net_value", learner="dr", seed=seed)
        corr.append(np.corrcoef(fit.oof, truth.to_numpy())[0, 1])
        beats += evaluate(fit, seed=seed).beats_random
        con.close()
    assert min(corr) > 0 and np.mean(corr) > 0.1, corr
    assert beats >= 5, (beats, corr)


@pytest.mark.slow
def test_with_no_effect_planted_the_qini_interval_includes_random_and_the_tool_says_so():
    """Twenty tests assigned by hash on a simulated world after the fact: nothing was done to
    the treatment arm, so every customer's planted effect is exactly zero (no heterogeneity at
    all). The Qini interval of the doubly robust learner includes zero about 90% of the time,
    and whenever it does the check says the ranking does not beat random."""
    from experiments.assign import assign, write_assignment

    con = store.connect(":memory:")
    synth.simulate(con, 150_000, months=12, seed=1)
    eligible = con.execute(
        "SELECT customer_id FROM outcomes WHERE period = DATE '2025-06-01' AND active "
        "ORDER BY md5(customer_id) LIMIT 6000"
    ).df()
    held = 0
    for k in range(20):
        result = assign(eligible, f"null-{k}")
        write_assignment(con, f"exp_null_{k}", "nothing", result, started="2025-07")
        fit = fit_uplift(experiment_rows(con, f"exp_null_{k}"), "net_value", seed=k)
        ev = evaluate(fit, seed=k)
        covers = ev.area["lo"] <= 0 <= ev.area["hi"]
        held += covers
        if covers:
            assert ev.as_check().verdict == "warn"
            assert "does not beat random" in ev.as_check().sentence
    assert held >= 15, held
