"""Observational attribution (issue 5): data preparation, the DoWhy route, refuters, overlap.

One 20k-customer simulated world (12 months, outreach targeted at month 6 on pre-period spend,
recent badly resolved cases and recent inactivity) serves every recovery test; bad-input tests
use small worlds of their own.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import planted_overall

from attribution import causal, store, synth
from attribution.causal import attribute, estimators
from attribution.config import Config, config_from_dict
from attribution.errors import InputError
from attribution.observational import DEFAULT_CONFOUNDERS, observational_frame
from attribution.readout import COLUMNS

OUTREACH = "proactive_outreach"
# The confounders that drive the simulator's outreach targeting are left out here on purpose.
WITHOUT_TARGETING = ["tenure_months", "tier", "region", "channel", "prior_cost", "prior_cases"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("causal") / "world.duckdb"
    con = store.connect(path)
    synth.simulate(con, 20_000, months=12, seed=7)
    yield con
    con.close()


@pytest.fixture(scope="module")
def truth(world):
    return planted_overall(world, OUTREACH)


@pytest.fixture(scope="module")
def fast_config():
    return config_from_dict({"causal": {"bootstrap": 200, "refuter_simulations": 3}})


@pytest.fixture(scope="module")
def outreach(world, fast_config):
    return attribute(
        world, OUTREACH, outcome="all", config=fast_config, segment="tier", gformula=False
    )


# --- data preparation --------------------------------------------------------------------------


def test_frame_population_and_treated_match_the_simulators(world, truth):
    data = observational_frame(world, OUTREACH)
    assert str(data.as_of) == "2025-07-01"  # month 6 of 12: the outreach start
    assert data.horizon_months == 6
    assert len(data.frame) == truth[("ate", "retention")][1]
    assert data.n_treated == truth[("att", "retention")][1]
    assert data.unit_cost == synth.UNIT_COSTS[OUTREACH]
    assert list(data.confounders) == list(DEFAULT_CONFOUNDERS)
    assert data.frame["customer_id"].is_unique
    assert set(data.frame["retained"].unique()) <= {0, 1}


def test_frame_values_agree_with_the_raw_tables(world):
    data = observational_frame(world, OUTREACH)
    row = data.frame.sort_values("prior_bad_cases").iloc[-1]
    cid = row["customer_id"]
    bad, cases = world.execute(
        "SELECT count(*) FILTER (WHERE resolution IN ('somewhat_ineffective', "
        "'very_ineffective')), count(*) FROM interactions "
        "WHERE customer_id = ? AND ts >= DATE '2025-04-01' AND ts < DATE '2025-07-01'",
        [cid],
    ).fetchone()
    revenue, active = world.execute(
        "SELECT sum(revenue), bool_or(active) FILTER (WHERE period = DATE '2025-12-01') "
        "FROM outcomes WHERE customer_id = ? AND period >= DATE '2025-07-01'",
        [cid],
    ).fetchone()
    assert (row["prior_bad_cases"], row["prior_cases"]) == (bad, cases)
    assert row["revenue"] == pytest.approx(revenue)
    assert row["retained"] == int(active)


def test_condition_treats_customers_whose_first_matching_case_falls_in_the_trial_month(world):
    data = observational_frame(world, condition="resolution=very_effective", as_of="2025-07")
    treated, eligible = world.execute(
        "WITH first AS (SELECT customer_id, min(ts) AS ts FROM interactions "
        "  WHERE resolution = 'very_effective' GROUP BY customer_id) "
        "SELECT count(*) FILTER (WHERE f.ts >= DATE '2025-07-01' AND f.ts < DATE '2025-08-01'), "
        "  count(*) FROM outcomes o LEFT JOIN first f USING (customer_id) "
        "WHERE o.period = DATE '2025-07-01' AND o.active "
        "  AND (f.ts IS NULL OR f.ts >= DATE '2025-07-01')"
    ).fetchone()
    assert data.treatment == "condition=resolution=very_effective"
    assert data.n_treated == treated > 0
    assert len(data.frame) == eligible
    # The confounders end before the event: the treating case is not among the prior cases.
    assert data.frame.loc[data.frame["treated"] == 1, "prior_cases"].min() == 0


# --- the proof of issue 5 -------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["retention", "revenue", "cost_to_serve"])
def test_naive_misses_the_planted_truth_while_adjusted_intervals_contain_it(
    outreach, truth, outcome
):
    ate = truth[("ate", outcome)][0]
    att = truth[("att", outcome)][0]
    naive = outreach.get("naive", outcome, "ate")
    assert not naive.contains(ate) and not naive.contains(att)
    assert outreach.get("dowhy_psw", outcome, "ate").contains(ate)
    assert outreach.get("dowhy_psw", outcome, "att").contains(att)
    # the regression interacts treatment and confounders, then standardizes (an additive
    # regression's one coefficient missed the cost ATE here)
    assert outreach.get("dowhy_regression", outcome, "ate").contains(ate)
    assert outreach.get("dowhy_regression", outcome, "att").contains(att)


def test_retention_naive_gets_the_sign_wrong_and_adjustment_recovers_it(outreach, truth):
    assert outreach.get("naive", "retention").mean < 0 < truth[("ate", "retention")][0]
    assert outreach.get("dowhy_psw", "retention").p_positive > 0.95


def test_each_rows_verdict_says_which_estimate_the_refuters_ran_on(outreach):
    rows = outreach.summary()
    adjusted = rows[rows["estimator"].notna() & (rows["estimator"] != "naive")]
    # the refuters refit DoWhy's additive regression; no published row is that estimate (the
    # regression rows interact the treatment with the confounders and standardize)
    assert adjusted["verdict"].str.endswith(causal.REFUTED_ON).all()
    assert adjusted["verdict"].str.match(r"^(pass|warn)").all()


def test_the_regression_is_shown_as_a_check_and_never_published(outreach):
    every = {r["estimator"] for r in outreach.records()}
    published = {r["estimator"] for r in outreach.records(published=True)}
    assert "dowhy_regression" in every and every - published == set(causal.CHECK_ONLY)
    assert "DoWhy linear regression (check) ATE" in outreach.describe()
    assert "never published" in outreach.describe()


def test_money_rows_say_how_strong_a_hidden_confounder_would_have_to_be(outreach):
    """The sensitivity analysis runs on the ATTs money is built on, not only on the regression."""
    sens = outreach.sensitivity
    assert sorted((s.estimator, s.outcome) for s in sens) == [
        ("dowhy_psw", o) for o in sorted(["retention", "revenue", "cost_to_serve"])
    ]
    for s in sens:
        assert s.mean == outreach.get("dowhy_psw", s.outcome, "att").mean
        assert s.verdict in ("pass", "warn") and s.benchmarks
        assert 0 <= s.robustness_value_interval <= s.robustness_value < 1
    money = outreach.summary()
    money = money[money["method"] == "money_per_treated_customer"]
    assert money["verdict"].str.contains("hidden-confounder sensitivity of this route's ATT").all()
    # a warning from either the refuters or the sensitivity leads the verdict (the report's badge)
    warned = any(r.verdict == "warn" for r in outreach.refutations) or any(
        s.verdict == "warn" for s in sens
    )
    assert money["verdict"].str.startswith("warn" if warned else "pass").all()
    assert len(outreach.to_dict()["sensitivity"]) == 3
    assert "Hidden-confounder sensitivity of the ATTs money is built on" in outreach.describe()


def test_bootstrap_replica_equals_dowhy_on_the_full_sample(outreach):
    data = outreach.data
    T = data.frame["treated"].to_numpy(float)
    Y = data.frame[["retained", "revenue", "cost_to_serve"]].to_numpy(float)
    ate, att = estimators._ols_effect(T, Y, estimators._regression_design(data.frame, data))
    psw = estimators._psw(
        T, Y, outreach.overlap.propensity[_inside(outreach)], 0.01, 0.99, att=True
    )
    for j, o in enumerate(["retention", "revenue", "cost_to_serve"]):
        assert ate[j] == pytest.approx(outreach.get("dowhy_regression", o, "ate").mean, rel=1e-6)
        assert att[j] == pytest.approx(outreach.get("dowhy_regression", o, "att").mean, rel=1e-6)
        assert psw[j] == pytest.approx(outreach.get("dowhy_psw", o, "att").mean, rel=1e-9)


def _inside(result):
    p = result.overlap.propensity
    return (p >= result.overlap.low) & (p <= result.overlap.high)


def test_refuters_pass_on_the_full_adjustment_for_retention(outreach):
    verdicts = outreach.verdicts("retention")
    assert verdicts == dict.fromkeys(causal.REFUTERS, "pass")


def test_leaving_out_the_targeting_confounders_is_flagged_by_the_sensitivity_refuter(
    world, fast_config
):
    result = attribute(
        world,
        OUTREACH,
        outcome="retention",
        confounders=WITHOUT_TARGETING,
        config=fast_config,
        refuters=["unobserved_confounder"],
        gformula=False,
    )
    (ref,) = result.refutations
    assert ref.verdict == "warn"
    assert "no longer be distinguishable from zero" in ref.describe()
    assert 0 <= ref.details["robustness_value"] < 0.02


def test_money_per_treated_customer_from_the_att_draws(outreach):
    money = outreach.money
    money = money[(money["estimator"] == "dowhy_psw") & (money["segment"] == "all")]
    net = money[money["outcome"] == "net_value"].iloc[0]
    assert net["lo"] < net["mean"] < net["hi"]
    total = money[money["outcome"] == "total_net_value"].iloc[0]
    assert total["mean"] == pytest.approx(net["mean"] * outreach.data.n_treated)


def test_net_value_of_the_treated_holds_the_planted_net_value(outreach, world):
    """One money formula: ATT draws valued with the treated customers' own levels."""
    planted = dict(
        world.execute(
            "SELECT outcome, effect FROM truth WHERE intervention = ? AND segment_by = 'all' "
            "AND estimand = 'att' AND outcome IN ('net_value', 'payback_months')",
            [OUTREACH],
        ).fetchall()
    )
    money = outreach.money
    rows = money[(money["estimator"] == "dowhy_psw") & (money["segment"] == "all")]
    net = rows[rows["outcome"] == "net_value"].iloc[0]
    assert net["lo"] <= planted["net_value"] <= net["hi"], (net.to_dict(), planted)
    pay = rows[rows["outcome"] == "payback_months"].iloc[0]
    assert net["mean"] > 0 and 1 <= pay["mean"] <= 18
    # the overall row is the treated-weighted sum of the tier rows
    by_tier = money[(money["estimator"] == "dowhy_psw") & (money["outcome"] == "net_value")]
    tiers = by_tier[by_tier["segment"] != "all"]
    weighted = (tiers["mean"] * tiers["n_treated"]).sum() / tiers["n_treated"].sum()
    assert net["mean"] == pytest.approx(weighted, rel=1e-9)


def test_effects_and_money_by_segment(outreach, world):
    tiers = ["bronze", "gold", "platinum", "silver"]
    psw = [outreach.get("dowhy_psw", "retention", "att", tier) for tier in tiers]
    assert sum(e.n_treated for e in psw) == outreach.get("dowhy_psw", "retention").n_treated
    truth = dict(
        world.execute(
            "SELECT segment, effect FROM truth WHERE intervention = ? AND segment_by = 'tier' "
            "AND estimand = 'att' AND outcome = 'retention'",
            [OUTREACH],
        ).fetchall()
    )
    # Four 90% intervals: at least three should hold the planted per-tier effect.
    assert sum(e.contains(truth[t]) for e, t in zip(psw, tiers, strict=True)) >= 3
    net = outreach.money[outreach.money["outcome"] == "net_value"]
    assert sorted(net["segment"]) == sorted(["all", *tiers])
    with pytest.raises(InputError, match="segment 'tenure_months' must be one of"):
        attribute(world, OUTREACH, outcome="retention", segment="tenure_months")


# --- overlap --------------------------------------------------------------------------------------


def test_overlap_reports_and_trims_customers_outside_the_bounds(world, outreach):
    ov = outreach.overlap
    full = observational_frame(world, OUTREACH)
    assert ov.n == len(full.frame)
    assert ov.n_outside == int(((ov.propensity < 0.01) | (ov.propensity > 0.99)).sum()) > 0
    assert len(outreach.data.frame) == ov.n - ov.n_outside
    assert f"{ov.n_outside:,} customers" in ov.describe()


def test_a_step_in_a_count_is_learnt_by_the_propensity_value_by_value():
    """Targeting on "no purchase for two months" is a step in months since the last purchase
    (15 values here); the propensity must follow it at every value, as a linear term cannot
    (that misfit once made the weighting route's revenue ATT read a third low at scale)."""
    import pandas as pd

    from attribution.observational import ObservationalData

    rng = np.random.default_rng(3)
    n = 40_000
    months = rng.integers(1, 16, n).astype(float)
    other = rng.normal(size=n)
    logit = -2.0 + 1.5 * (months >= 3) + 0.5 * other
    treated = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {"customer_id": np.arange(n), "treated": treated, "months_since_purchase": months,
         "other": other}
    )  # fmt: skip
    data = ObservationalData(
        frame=frame, treatment="t", as_of=None, horizon_months=3,
        confounders=["months_since_purchase", "other"],
        numeric=["months_since_purchase", "other"], categorical=[],
    )  # fmt: skip
    p = causal.overlap(data, trim=False).propensity
    by = pd.DataFrame({"months": months, "p": p, "t": treated}).groupby("months").mean()
    # observed share per value: ~2,700 customers each, standard error about 0.008
    assert (by["p"] - by["t"]).abs().max() < 0.03, by


def test_empty_overlap_region_is_refused(world):
    data = observational_frame(world, OUTREACH)
    with pytest.raises(InputError, match="do not overlap"):
        causal.overlap(data, low=0.9, high=0.95)


# --- identification, graph, output -------------------------------------------------------------


def test_a_declared_unobserved_common_cause_makes_the_effect_unidentifiable(world):
    cfg = config_from_dict({"causal": {"unobserved": ["motivation"], "bootstrap": 20}})
    result = attribute(world, OUTREACH, outcome="retention", config=cfg, gformula=False)
    assert not result.identification.identifiable
    assert {e.estimator for e in result.estimates} == {"naive"}
    assert "Not identifiable" in result.describe()


def test_output_has_the_readout_fields_plus_estimators_and_refutations(outreach, tmp_path):
    out = json.loads(json.dumps(outreach.to_dict()))
    row = out["rows"][0]
    assert set(COLUMNS) <= set(row) and {"estimator", "estimand", "method"} <= set(row)
    assert {r["estimator"] for r in out["rows"]} >= {"naive", "dowhy_psw", "dowhy_regression"}
    assert len(out["refutations"]) == 3 * len(causal.REFUTERS)
    assert out["identification"]["identifiable"] is True
    text = outreach.describe()
    assert "Placebo treatment: pass" in text and "treated --> retained" in text
    png = outreach.graph_png(tmp_path / "graph.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # every estimator side by side, one panel per outcome, from the estimate-schema summary
    rows = outreach.summary()
    fig = outreach.plot()
    assert len(fig.axes) == len(outreach.outcomes)
    for ax, o in zip(fig.axes, outreach.outcomes, strict=True):
        mine = rows[(rows["outcome"] == o) & rows["estimator"].notna()]
        assert len(ax.containers) == len(mine[["estimator", "estimand"]].drop_duplicates())


# --- bad input ----------------------------------------------------------------------------------


@pytest.fixture
def small(con):
    synth.simulate(con, 1500, months=6, seed=2)
    return con


def test_a_confounder_declared_a_descendant_of_the_treatment_is_refused(small):
    """A variable the treatment caused (measured after it) is drawn between treatment and outcome
    and never adjusted for; naming it a confounder too is refused before anything is fitted."""
    cfg = config_from_dict({"causal": {"descendants": ["prior_bad_cases"]}})
    with pytest.raises(InputError, match=r"\['prior_bad_cases'\] are declared descendants"):
        attribute(small, OUTREACH, outcome="retention", config=cfg, gformula=False)
    data = observational_frame(small, OUTREACH)
    graph = causal.causal_graph(data, "retention", descendants=["csat_after"])
    assert ("treated", "csat_after") in graph.edges()
    assert ("csat_after", "retained") in graph.edges()
    assert "not adjusted for" in graph.describe()
    assert causal.identify(data, graph).identifiable
    with pytest.raises(InputError, match="must name a variable"):
        causal.causal_graph(data, "retention", descendants=["retained"])


def test_a_confounder_that_is_not_a_column_is_named(small):
    with pytest.raises(InputError, match=r"confounder 'shoe_size' is not a column.*tenure_band"):
        observational_frame(small, OUTREACH, confounders=["tier", "shoe_size"])
    with pytest.raises(InputError, match="shoe_size"):
        attribute(small, OUTREACH, outcome="retention", confounders=["shoe_size"])


def test_no_treated_customers_is_an_error(small):
    with pytest.raises(InputError, match="no treated customers"):
        observational_frame(small, condition="resolution=not_a_resolution", as_of="2025-04")


def test_no_untreated_customers_is_an_error(small):
    small.execute(
        "INSERT INTO interventions SELECT customer_id, 'everyone', TIMESTAMP '2025-04-01', 1.0, "
        "NULL FROM customers"
    )
    with pytest.raises(InputError, match="no untreated customers"):
        observational_frame(small, "everyone")


def test_an_outcome_column_with_nulls_is_named_with_customer_and_period(small):
    small.execute("ALTER TABLE outcomes ALTER COLUMN revenue DROP NOT NULL")
    small.execute(
        "UPDATE outcomes SET revenue = NULL WHERE customer_id = 'C00000007' "
        "AND period = DATE '2025-05-01'"
    )
    with pytest.raises(InputError, match=r"outcomes\.revenue.*C00000007.*2025-05"):
        observational_frame(small, OUTREACH)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"intervention": "no_such_thing"}, "no rows in interventions"),
        ({"intervention": None, "condition": "mood=happy"}, "not an interactions column"),
        ({"intervention": OUTREACH, "condition": "resolution=x"}, "exactly one"),
        ({"intervention": OUTREACH, "horizon_months": 9}, "horizon_months must be 1 to 3"),
        (
            {"intervention": OUTREACH, "as_of": "2025-01", "confounders": ["tier", "prior_cost"]},
            "no history before it.*prior_cost are measured over earlier months",
        ),
        ({"intervention": OUTREACH, "as_of": "2024-12"}, "before the first outcome period"),
    ],
)
def test_bad_questions_are_clear_errors(small, kwargs, message):
    intervention = kwargs.pop("intervention")
    with pytest.raises(InputError, match=message):
        observational_frame(small, intervention, **kwargs)


def test_without_history_the_defaults_adapt_and_customer_columns_need_none(small):
    """At the first outcome month the history confounders cannot be measured: the defaults drop
    them and say so; customer columns and tenure, asked for by name, need no history."""
    case = {"condition": "resolution=very_effective", "as_of": "2025-01"}
    data = observational_frame(small, **case)
    assert not set(data.confounders) & {"prior_revenue", "prior_cost", "history_revenue"}
    assert "tier" in data.confounders
    assert any("No outcome months before 2025-01" in n for n in data.notes)
    named = observational_frame(small, **case, confounders=["tier", "region"])
    assert named.confounders == ["tier", "region"]
    assert named.n_treated > 0


def test_bad_outcome_and_causal_settings_are_rejected(small):
    with pytest.raises(InputError, match="outcome 'churn'"):
        attribute(small, OUTREACH, outcome="churn")
    with pytest.raises(InputError, match="causal.overlap_low"):
        config_from_dict({"causal": {"overlap_low": 0.6, "overlap_high": 0.4}})
    with pytest.raises(InputError, match="unknown setting causal.bootstraps"):
        config_from_dict({"causal": {"bootstraps": 5}})
    assert Config().causal.bootstrap == 200


def test_nothing_is_written_to_the_store(small):
    before = store.table_counts(small)
    cfg = config_from_dict({"causal": {"bootstrap": 20, "refuter_simulations": 1}})
    result = attribute(small, OUTREACH, outcome="retention", config=cfg, gformula=False)
    assert store.table_counts(small) == before
    assert np.isfinite(result.get("dowhy_psw", "retention").mean)


@pytest.mark.slow  # ~4 min: three cell-route fits on 20k customers with the 11 default confounders
def test_bayesian_cell_route_contains_the_truth_and_agrees_with_dowhy_regression(world, truth):
    pytest.importorskip("attribution.gformula")
    cfg = config_from_dict({"causal": {"bootstrap": 100}, "model": {"chains": 4, "seed": 1}})
    result = attribute(world, OUTREACH, outcome="all", config=cfg, refuters=[])
    for outcome in ("retention", "revenue", "cost_to_serve"):
        assert result.gformula[outcome].diagnostics_.passed, outcome
        naive = result.get("naive", outcome, "ate")
        for estimand in ("ate", "att"):
            bayes = result.get("bayes_gformula", outcome, estimand)
            value = truth[(estimand, outcome)][0]
            assert bayes.contains(value), (outcome, estimand, value, bayes)
            assert not bayes.contains(naive.mean), (outcome, estimand, naive.mean, bayes)
    bayes = result.get("bayes_gformula", "retention", "ate")
    regression = result.get("dowhy_regression", "retention", "ate")
    assert regression.lo <= bayes.mean <= regression.hi
    assert bayes.lo <= regression.mean <= bayes.hi
    # the cell route's money: the same formula as the randomized readout, on its ATT draws
    planted = truth[("att", "net_value")][0]
    money = result.money
    net = money[
        (money["estimator"] == "bayes_gformula")
        & (money["segment"] == "all")
        & (money["outcome"] == "net_value")
    ]
    assert len(net) == 1, money[["estimator", "segment", "outcome"]].drop_duplicates()
    net = net.iloc[0]
    assert net["lo"] <= planted <= net["hi"], (net.to_dict(), planted)
