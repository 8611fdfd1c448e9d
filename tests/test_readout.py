"""Readout of a randomized experiment from the store: bad input first, then recovery of truth."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest
from conftest import assert_unchanged, snapshot

from attribution import runs, store, synth, uplift
from attribution.config import Config, ExperimentSelection, ModelSettings
from attribution.diagnostics import DiagnosticsWarning
from attribution.errors import CxError, InputError, SampleRatioError
from attribution.load import load
from attribution.readout import preflight, read_out, srm_gate, srm_record
from attribution.refresh import refresh
from attribution.settings import IntervalSetting


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("readout") / "world.duckdb"
    with store.opened(path) as con:
        synth.simulate(con, 20_000, months=12, seed=11)
    return path


@pytest.fixture
def con(world, tmp_path):
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(world.read_bytes())
    c = store.connect(copy)
    yield c
    c.close()


def test_experiment_without_a_control_arm_is_refused(con):
    con.execute(
        "UPDATE assignments SET arm = 'holdout' "
        "WHERE experiment_id = 'exp_recovery_gift' AND arm = 'control'"
    )
    before = snapshot(con)
    with pytest.raises(InputError, match="has no arm named 'control'"):
        read_out(con, "exp_recovery_gift")
    assert_unchanged(before, con)


def test_arm_without_customers_is_refused(con):
    con.execute(
        "DELETE FROM assignments WHERE experiment_id = 'exp_recovery_gift' AND arm = 'treatment'"
    )
    with pytest.raises(InputError, match=r"arm\(s\) \['\(treatment\)'\] have no customers"):
        read_out(con, "exp_recovery_gift")
    con.execute(
        'UPDATE experiments SET design = \'{"arms": ["control", "treatment", "double"]}\' '
        "WHERE experiment_id = 'exp_premium_support'"
    )
    with pytest.raises(InputError, match=r"arm\(s\) \['double'\] have no customers"):
        read_out(con, "exp_premium_support")


def test_unknown_segment_column_is_refused(con):
    with pytest.raises(InputError, match="segment column 'colour' is not a column of customers"):
        read_out(con, "exp_recovery_gift", segments=["colour"])


def test_outcomes_missing_for_the_horizon_are_refused(con):
    with pytest.raises(InputError, match="outcomes are missing for the horizon 2026-01"):
        read_out(con, "exp_recovery_gift", horizon_months=7)
    con.execute("DELETE FROM outcomes WHERE period >= DATE '2025-07-01'")
    with pytest.raises(InputError, match="no outcomes from its start 2025-07 on"):
        read_out(con, "exp_recovery_gift")


def test_unknown_experiment_is_refused(con):
    with pytest.raises(InputError, match="experiment 'exp_nope' is not in the store"):
        read_out(con, "exp_nope")


def test_a_users_own_experiment_loads_and_is_checked(tmp_path):
    con = store.connect(":memory:")
    load(con, "customers", pd.DataFrame({"customer_id": ["A", "B"], "signup_date": "2024-01-01"}))
    load(
        con,
        "experiments",
        pd.DataFrame(
            {"experiment_id": ["mine"], "intervention": ["call"], "started": ["2025-01-01"]}
        ),
    )
    load(
        con,
        "assignments",
        pd.DataFrame(
            {"experiment_id": "mine", "customer_id": ["A", "B"], "arm": ["control", "treatment"]}
        ),
    )
    with pytest.raises(InputError, match="no outcomes from its start 2025-01 on"):
        read_out(con, "mine", segments=[])


# ------------------------------------------------------------------------------------------
# Recovery and publishing: one refresh of the simulated world, checked against its truth table
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def published(world, tmp_path_factory):
    """A copy of the world after one default refresh (both experiments, segments by tier)."""
    path = tmp_path_factory.mktemp("published") / "world.duckdb"
    path.write_bytes(world.read_bytes())
    with store.opened(path) as c:
        outcome = refresh(c)
    return path, outcome


def _against_truth(con) -> pd.DataFrame:
    est = runs.current_estimates(con)
    truth = con.execute("SELECT * FROM truth WHERE estimand = 'ate'").df()
    keys = ["experiment_id", "arm", "outcome", "segment_by", "segment", "metric"]
    return est.merge(truth[[*keys, "effect"]], on=keys, how="inner")


def test_refresh_publishes_estimates_whose_intervals_hold_the_planted_truth(published):
    path, outcome = published
    assert outcome.status == "published", outcome.reasons
    for readout in outcome.readouts:  # one plot of effects and money, from the summary's rows
        fig = readout.plot()
        assert [a.get_xlabel().split(",")[0] for a in fig.axes] == [
            "retention effect (pp)",
            "revenue effect per customer",
            "cost-to-serve effect per customer",
            "net value per customer",
        ]
        assert set(readout.summary().columns) == set(runs.ESTIMATE_COLUMNS) - {"run_id"}
    with store.opened(path, read_only=True) as con:
        checked = _against_truth(con)
    checked = checked[checked["outcome"] != "payback_months"]  # a month, checked below
    # Both experiments, three outcomes and net value, overall and per tier, matched to the truth.
    assert set(checked["experiment_id"]) == {"exp_recovery_gift", "exp_premium_support"}
    assert set(checked["outcome"]) == {"retention", "revenue", "cost_to_serve", "net_value"}
    assert set(checked["segment_by"]) == {"all", "tier"}
    inside = (checked["lo"] <= checked["effect"]) & (checked["effect"] <= checked["hi"])
    overall = checked["segment"] == "all"
    # The headline: each arm's overall net value interval holds the planted net value.
    net = overall & (checked["outcome"] == "net_value")
    assert net.sum() == 2 and inside[net].all(), checked[net].to_string()
    # 90% intervals miss one time in ten by design: of the 8 overall effects and net values, at
    # most one may miss (P(two or more misses) is about 0.19 for calibrated intervals, so this
    # also fails intervals that are too narrow); calibration over 30 worlds is the slow suite's.
    assert (~inside[overall]).sum() <= 1, checked[overall & ~inside].to_string()
    assert (~overall).sum() >= 12
    assert inside[~overall].mean() >= 0.8, checked[~overall & ~inside].to_string()


def test_the_overall_money_row_is_the_population_weighted_segment_rows(published):
    path, _ = published
    with store.opened(path, read_only=True) as con:
        est = runs.current_estimates(con)
    for (_, arm), rows in est.groupby(["experiment_id", "arm"]):
        net = rows[rows["outcome"] == "net_value"].set_index("segment")
        parts = net.drop(index="all")
        customers = parts["n_treated"] + parts["n_control"]
        weighted = (parts["mean"] * customers).sum() / customers.sum()
        assert net.loc["all", "mean"] == pytest.approx(weighted, rel=1e-9), arm


def test_payback_agrees_with_net_value_and_with_the_planted_payback(published):
    path, _ = published
    with store.opened(path, read_only=True) as con:
        est = runs.current_estimates(con)
        truth = con.execute(
            "SELECT experiment_id, segment, effect FROM truth WHERE estimand = 'ate' "
            "AND outcome = 'payback_months' AND experiment_id IS NOT NULL"
        ).df()
    key = ["experiment_id", "arm", "segment"]
    net = est[est["outcome"] == "net_value"].set_index(key)["mean"]
    pay = est[est["outcome"] == "payback_months"].set_index(key)
    assert set(pay.index) == set(net.index)
    for k, row in pay.iterrows():
        if pd.isna(row["mean"]):  # the mean flow never covers the cost: it loses money
            assert net[k] < 0, k
        if net[k] > 0:  # it makes money, so it covers its cost in some month
            assert row["mean"] >= 1, k
    # Premium support (net value -94 per customer planted) never pays back; the readout agrees.
    premium = truth[truth["experiment_id"] == "exp_premium_support"]
    assert premium["effect"].eq(float("inf")).all()
    assert pd.isna(pay.loc[("exp_premium_support", "treatment", "all"), "mean"])
    assert pay.loc[("exp_premium_support", "treatment", "all"), "p_positive"] < 0.05


def test_published_money_rows_have_intervals_and_expected_loss(published):
    path, _ = published
    with store.opened(path, read_only=True) as con:
        est = runs.current_estimates(con)
    money = est[est["outcome"].isin(["net_value", "roi"])]
    assert not money.empty
    assert (money["lo"] <= money["mean"]).all() and (money["mean"] <= money["hi"]).all()
    assert money.loc[money["outcome"] == "net_value", "expected_loss"].ge(0).all()
    assert est["interval_width"].eq(0.9).all()


def test_refresh_with_nothing_new_is_a_no_op_and_a_failing_gate_publishes_nothing(published):
    path, first = published
    copy = path.with_name("second.duckdb")
    copy.write_bytes(path.read_bytes())
    with store.opened(copy) as con:
        again = refresh(con)
        assert again.status == "unchanged" and again.run_id == first.run_id
        before = runs.current_estimates(con)
        quick = Config(model=ModelSettings(draws=30, tune=30, chains=2))
        with pytest.warns(DiagnosticsWarning):
            failed = refresh(con, quick)
        assert failed.status == "failed"
        assert any("ESS" in r for r in failed.reasons)
        # The failed run is on record, but the published estimates are still the first run's.
        listed = runs.list_runs(con).set_index("run_id")
        assert listed.loc[failed.run_id, "status"] == "failed"
        assert listed.loc[failed.run_id, "estimates"] == 0
        pd.testing.assert_frame_equal(runs.current_estimates(con), before)


# ------------------------------------------------------------------------------------------
# The sample-ratio-mismatch gate: before any cells or models
# ------------------------------------------------------------------------------------------
_DROP_TREATED = (
    "DELETE FROM assignments WHERE experiment_id = 'exp_recovery_gift' AND arm = 'treatment' "
    "AND customer_id IN (SELECT customer_id FROM assignments WHERE experiment_id = "
    "'exp_recovery_gift' AND arm = 'treatment' ORDER BY customer_id LIMIT 120)"
)


def test_a_sample_ratio_mismatch_stops_the_readout_before_anything_is_fitted(con):
    con.execute(_DROP_TREATED)  # 324 control against 193 treated, designed 50/50
    before = snapshot(con)
    fits = uplift.fit_count()
    with pytest.raises(SampleRatioError) as info:
        read_out(con, "exp_recovery_gift")
    assert uplift.fit_count() == fits  # stopped before any model
    message = str(info.value)
    assert "experiment 'exp_recovery_gift' fails the sample-ratio-mismatch check" in message
    assert "control 324, treatment 193" in message and "control 0.5, treatment 0.5" in message
    assert "nothing was fitted or published" in message
    # chi2 of 324 / 193 against 258.5 each, by hand.
    chi2 = 2 * (324 - 258.5) ** 2 / 258.5
    assert info.value.srm.chi2 == pytest.approx(chi2) and info.value.srm.p_value < 0.001
    assert f"chi2 = {chi2:.2f}" in message
    assert info.value.exit_code == 4 and isinstance(info.value, CxError)
    assert_unchanged(before, con)


def test_arms_that_differ_from_the_designed_allocation_are_a_mismatch(con):
    con.execute(
        "UPDATE experiments SET design = ? WHERE experiment_id = 'exp_recovery_gift'",
        [json.dumps({"allocation": {"control": 0.5, "holdout": 0.5}})],
    )
    with pytest.raises(SampleRatioError) as info:
        read_out(con, "exp_recovery_gift")
    message = str(info.value)
    assert "arm(s) ['treatment'] have customers but are not in the design's allocation" in message
    assert "arm(s) ['holdout'] of the design's allocation have no customers" in message
    assert info.value.srm.alarm and info.value.arms == ("control", "treatment", "holdout")


@pytest.mark.parametrize(
    ("allocation", "message"),
    [
        ({"control": 0.5, "treatment": 0.6}, "shares must sum to 1"),
        ({"control": "half", "treatment": 0.5}, r"design.allocation\['control'\] must be a number"),
        ({"control": 1.0, "treatment": 0.0}, r"allocation\['treatment'\] must be a share > 0"),
        (["control", "treatment"], "must map at least two arms"),
    ],
)
def test_an_unusable_allocation_is_an_input_error_naming_it(con, allocation, message):
    con.execute(
        "UPDATE experiments SET design = ? WHERE experiment_id = 'exp_recovery_gift'",
        [json.dumps({"allocation": allocation})],
    )
    with pytest.raises(InputError, match=message) as info:
        read_out(con, "exp_recovery_gift")
    assert "experiment 'exp_recovery_gift': design.allocation" in str(info.value)


def test_srm_gate_without_an_allocation_skips_with_a_note():
    notes: list[str] = []
    check, arms = srm_gate("mine", {"control": 10, "treatment": 90}, {}, notes=notes)
    assert check is None and arms == ("control", "treatment")
    assert notes == [
        "SRM check skipped for mine: its design record has no allocation (designed share per "
        "arm) to check the arm counts against."
    ]
    assert srm_record(check, arms)["p_value"] is None


def test_published_readouts_carry_their_srm_check(published):
    _, outcome = published
    for result in outcome.readouts:
        assert result.srm is not None and not result.srm.alarm
        assert sum(result.srm.counts) == sum(result.arms.values())
        assert result.srm.describe() in result.describe()
        assert {r["srm_p"] for r in result.to_records()} == {result.srm.p_value}


def test_refresh_fails_on_a_sample_ratio_mismatch_and_keeps_the_published_estimates(published):
    path, first = published
    copy = path.with_name("srm.duckdb")
    copy.write_bytes(path.read_bytes())
    with store.opened(copy) as con:
        con.execute(_DROP_TREATED)
        before = runs.current_estimates(con)
        compiles = uplift.compile_count()
        only = Config(experiments=ExperimentSelection(include=("exp_recovery_gift",)))
        failed = refresh(con, only)
        assert uplift.compile_count() == compiles
        assert failed.status == "failed" and not failed.readouts
        assert any("fails the sample-ratio-mismatch check" in r for r in failed.reasons)
        listed = runs.list_runs(con).set_index("run_id")
        assert listed.loc[failed.run_id, "status"] == "failed"
        assert listed.loc[failed.run_id, "estimates"] == 0
        pd.testing.assert_frame_equal(runs.current_estimates(con), before)
        recorded = json.loads(
            con.execute(
                "SELECT diagnostics FROM runs WHERE run_id = ?", [failed.run_id]
            ).fetchone()[0]
        )
        srm = recorded["srm"]["exp_recovery_gift"]
        assert srm["alarm"] and srm["counts"] == {"control": 324, "treatment": 193}
        (check,) = recorded["checks"]["exp_recovery_gift"]
        assert check["check"] == "sample ratio" and check["verdict"] == "fail"
        assert {r["arm"]: r["count"] for r in check["table"]} == srm["counts"]


# Last in the file: reuses the models compiled by the ``published`` fixture (same structure), so
# only sampling runs, with a short chain: diagnostics are not what this test is about.
def test_check_srm_false_overrides_the_alarm_and_the_note_says_so(published, con):
    con.execute(_DROP_TREATED)
    quick = Config(
        model=ModelSettings(draws=200, tune=200, chains=2), interval=IntervalSetting(width=0.8)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        result = read_out(con, "exp_recovery_gift", config=quick, check_srm=False)
    assert result.srm.alarm and result.arms == {"control": 324, "treatment": 193}
    assert any(n.startswith("SRM alarm overridden (check_srm=False)") for n in result.notes)
    assert "sample ratio mismatch: stop and find the cause" in result.describe()
    # the configured interval width labels every interval, net value's included
    net = next(line for line in result.describe().splitlines() if line.startswith("Net value"))
    assert "(80% interval" in net, net
    assert {r["srm_p"] for r in result.to_records()} == {result.srm.p_value}
    assert not result.table.empty


def test_the_window_ends_at_the_last_month_observed_for_the_experiments_customers(con):
    last = con.execute("SELECT max(period) FROM outcomes").fetchone()[0]
    assert preflight(con, "exp_recovery_gift").horizon == last
    # the experiment's customers stop one month before the rest of the store
    con.execute(
        "DELETE FROM outcomes WHERE period = ? AND customer_id IN "
        "(SELECT customer_id FROM assignments WHERE experiment_id = 'exp_recovery_gift')",
        [last],
    )
    before = con.execute("SELECT max(period) FROM outcomes WHERE period < ?", [last]).fetchone()[0]
    assert preflight(con, "exp_recovery_gift").horizon == before
    assert preflight(con, "exp_premium_support").horizon == last


def test_the_design_record_says_whether_the_churn_effect_is_held_after_the_window(con):
    """Both simulated tests keep a churn gap open after the window (held); a record without the
    key reads as "ends"; anything else in the record is an error naming it, and a one-month
    window cannot hold an effect."""
    assert preflight(con, "exp_premium_support").churn_after_window == "held"
    assert preflight(con, "exp_recovery_gift").churn_after_window == "held"
    con.execute(
        "UPDATE experiments SET design = json_merge_patch(design, "
        "'{\"churn_effect_after_window\": null}') WHERE experiment_id = 'exp_recovery_gift'"
    )
    assert preflight(con, "exp_recovery_gift").churn_after_window == "ends"
    one_month = preflight(con, "exp_premium_support", horizon_months=1)
    assert one_month.churn_after_window == "ends"
    assert any("one-month window has no churn to read" in n for n in one_month.notes)
    con.execute(
        "UPDATE experiments SET design = json_merge_patch(design, "
        "'{\"churn_effect_after_window\": \"forever\"}') WHERE experiment_id = 'exp_recovery_gift'"
    )
    with pytest.raises(InputError, match="design.churn_effect_after_window must be one of"):
        preflight(con, "exp_recovery_gift")
