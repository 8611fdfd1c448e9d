"""Readout of a randomized experiment from the store: bad input first, then recovery of truth."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import assert_unchanged, snapshot

from attribution import runs, store, synth
from attribution.config import Config, ModelSettings
from attribution.diagnostics import DiagnosticsWarning
from attribution.errors import InputError
from attribution.load import load
from attribution.readout import read_out
from attribution.refresh import refresh


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
    with store.opened(path, read_only=True) as con:
        checked = _against_truth(con)
    # Both experiments, three outcomes, overall and per tier, all matched to a truth row.
    assert set(checked["experiment_id"]) == {"exp_recovery_gift", "exp_premium_support"}
    assert set(checked["outcome"]) == {"retention", "revenue", "cost_to_serve"}
    assert set(checked["segment_by"]) == {"all", "tier"}
    inside = (checked["lo"] <= checked["effect"]) & (checked["effect"] <= checked["hi"])
    overall = checked["segment"] == "all"
    assert inside[overall].all(), checked[overall & ~inside].to_string()
    # 90% intervals miss one segment in ten by design; calibration is the slow suite's job.
    assert (~overall).sum() >= 12
    assert inside[~overall].mean() >= 0.8, checked[~overall & ~inside].to_string()


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
