"""Readout of a randomized experiment from the store: bad input first, then recovery of truth."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import assert_unchanged, snapshot

from attribution import store, synth
from attribution.errors import InputError
from attribution.load import load
from attribution.readout import read_out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("readout") / "world.duckdb"
    with store.opened(path) as con:
        synth.simulate(con, 20_000, months=12, seed=3)
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
