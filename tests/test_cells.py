"""Cells: the SQL collapse equals a pandas groupby over the same customer rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from attribution import store
from attribution.cells import STAT_COLUMNS, cells
from attribution.errors import InputError
from attribution.load import load

MONTHS = ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05", "2025-06"]


@pytest.fixture
def world(con):
    rng = np.random.default_rng(11)
    n = 400
    ids = [f"K{i:04d}" for i in range(n)]
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "signup_date": "2024-01-01",
            "tier": rng.choice(["bronze", "silver", "gold"], n),
            "region": rng.choice(["north", "south"], n),
        }
    )
    rows = []
    for cid in ids:
        alive = True
        for month in MONTHS:
            alive = alive and rng.random() > 0.08
            revenue = (
                float(np.round(rng.lognormal(3, 1), 2)) if alive and rng.random() < 0.4 else 0.0
            )
            cost = (
                float(np.round(rng.lognormal(1, 0.5), 2)) if alive and rng.random() < 0.3 else 0.0
            )
            rows.append((cid, month, int(alive), revenue, cost))
    outcomes = pd.DataFrame(
        rows, columns=["customer_id", "period", "active", "revenue", "cost_to_serve"]
    )
    load(con, "customers", customers)
    load(con, "outcomes", outcomes)
    load(
        con,
        "experiments",
        pd.DataFrame(
            {"experiment_id": ["X1"], "intervention": ["gift"], "started": ["2025-03-01"]}
        ),
    )
    assigned = customers.sample(300, random_state=3)
    assignments = pd.DataFrame(
        {
            "experiment_id": "X1",
            "customer_id": assigned["customer_id"],
            "arm": rng.choice(["control", "treatment"], len(assigned)),
        }
    )
    load(con, "assignments", assignments)
    return customers, outcomes, assignments


def expected_cells(customers, outcomes, by, start, horizon, assignments=None):
    """The same statistics computed row by row with pandas."""
    o = outcomes.copy()
    window = o[(o["period"] >= start) & (o["period"] <= horizon)]
    per = window.groupby("customer_id").agg(
        revenue=("revenue", "sum"), cost=("cost_to_serve", "sum")
    )
    at_h = o[o["period"] == horizon].set_index("customer_id")["active"]
    pop = customers if assignments is None else customers.merge(assignments, on="customer_id")
    pop = pop.join(per, on="customer_id").join(at_h.rename("active_h"), on="customer_id")
    out = []
    for key, g in pop.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        rec = dict(zip(by, key, strict=True))
        rec["n"] = len(g)
        rec["n_active"] = int(g["active_h"].sum())
        for fam, col in (("revenue", "revenue"), ("cost_to_serve", "cost")):
            pos = g[col][g[col] > 0]
            rec[f"{fam}_npos"] = len(pos)
            rec[f"{fam}_sum"] = g[col].sum()
            rec[f"{fam}_sum2"] = (g[col] ** 2).sum()
            rec[f"{fam}_sumlog"] = np.log(pos).sum()
            rec[f"{fam}_sumlog2"] = (np.log(pos) ** 2).sum()
        out.append(rec)
    return pd.DataFrame(out)


def compare(got: pd.DataFrame, want: pd.DataFrame, by: list[str]) -> None:
    got = got.sort_values(by).reset_index(drop=True)
    want = want.sort_values(by).reset_index(drop=True)
    assert list(got[by].astype(str).itertuples(index=False)) == list(
        want[by].astype(str).itertuples(index=False)
    )
    for col in [c for c in STAT_COLUMNS if c != "n_missing"]:
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=1e-9)


@pytest.mark.parametrize("by", [["tier"], ["tier", "region"], []])
def test_cells_equal_a_pandas_groupby(con, world, by):
    customers, outcomes, _ = world
    got = cells(con, by, start="2025-02", horizon="2025-05")
    if not by:
        customers = customers.assign(_all="all")
        want = expected_cells(customers, outcomes, ["_all"], "2025-02", "2025-05").drop(
            columns="_all"
        )
        compare(got.assign(_k=1), want.assign(_k=1), ["_k"])
    else:
        compare(got, expected_cells(customers, outcomes, by, "2025-02", "2025-05"), by)
    assert got["n_missing"].sum() == 0


def test_experiment_cells_group_by_arm_from_the_experiment_start(con, world):
    customers, outcomes, assignments = world
    got = cells(con, ["tier"], experiment_id="X1")
    assert list(got.columns[:2]) == ["tier", "arm"]
    assert got.attrs["start"].isoformat() == "2025-03-01"
    assert got.attrs["horizon"].isoformat() == "2025-06-01"
    want = expected_cells(customers, outcomes, ["tier", "arm"], "2025-03", "2025-06", assignments)
    compare(got, want, ["tier", "arm"])
    assert got["n"].sum() == 300


def test_cells_split_by_retention_status_add_up_to_the_unsplit_cells(con, world):
    split = cells(con, ["tier", "retained"], experiment_id="X1")
    whole = cells(con, ["tier"], experiment_id="X1")
    assert set(split["retained"]) == {0, 1}
    # every customer of a retained cell is active at the horizon, none of the others is
    assert (split["n_active"] == split["n"] * split["retained"]).all()
    summed = split.groupby(["tier", "arm"], as_index=False)[list(STAT_COLUMNS)].sum()
    compare(summed, whole, ["tier", "arm"])


def test_missing_horizon_rows_are_an_error_unless_counted_inactive(con, world):
    con.execute(
        "DELETE FROM outcomes WHERE customer_id IN ('K0001', 'K0002') AND period = '2025-06-01'"
    )
    with pytest.raises(
        InputError, match=r"2 customer\(s\) have no outcome row for the horizon 2025-06"
    ):
        cells(con, ["tier"])
    relaxed = cells(con, ["tier"], missing="inactive")
    assert relaxed["n_missing"].sum() == 2


def test_grouping_columns_are_checked_against_the_schema(con, world):
    with pytest.raises(InputError, match="'colour' is not a column of customers"):
        cells(con, ["colour"])
    with pytest.raises(InputError, match="not a column of customers"):
        cells(con, ['tier"; DROP TABLE outcomes; --'])
    with pytest.raises(InputError, match="need an experiment_id"):
        cells(con, ["arm"])
    assert con.execute("SELECT count(*) FROM outcomes").fetchone()[0] == 400 * 6


def test_window_settings_are_checked(con, world):
    with pytest.raises(InputError, match="after the last outcome period"):
        cells(con, ["tier"], horizon="2025-09")
    with pytest.raises(InputError, match="before start"):
        cells(con, ["tier"], start="2025-05", horizon="2025-02")
    with pytest.raises(InputError, match="experiment 'nope' is not in the store"):
        cells(con, ["tier"], experiment_id="nope")


def test_values_are_bound_not_pasted(con, world):
    # An experiment id that would break SQL if pasted is simply an unknown experiment.
    with pytest.raises(InputError, match="is not in the store"):
        cells(con, [], experiment_id="X1' OR '1'='1")


def test_pre_period_bands_split_zero_and_equal_count_tiles(con, world):
    customers, outcomes, assignments = world
    got = cells(con, ["tier"], experiment_id="X1", pre_bands=3, pre_months=6)
    assert list(got.columns[:3]) == ["tier", "arm", "pre_band"]
    # by hand: pre-period = the months before the 2025-03 start (Jan, Feb)
    pre = outcomes[outcomes["period"] < "2025-03"].groupby("customer_id")["revenue"].sum()
    pop = assignments.join(pre.rename("pre"), on="customer_id").fillna({"pre": 0.0})
    positive = pop[pop["pre"] > 0].sort_values(["pre", "customer_id"])
    half = -(-len(positive) // 2)  # NTILE puts the extra row in the first tile
    band = pd.Series(0, index=pop["customer_id"])
    band[positive["customer_id"].iloc[:half]] = 1
    band[positive["customer_id"].iloc[half:]] = 2
    pop = pop.assign(pre_band=pop["customer_id"].map(band))
    want = expected_cells(
        customers,
        outcomes,
        ["tier", "arm", "pre_band"],
        "2025-03",
        "2025-06",
        pop[["customer_id", "arm", "pre_band"]],
    )
    compare(got, want, ["tier", "arm", "pre_band"])
    with pytest.raises(InputError, match="needs history"):
        cells(con, ["tier"], start="2025-01", pre_bands=3)


def test_one_rule_says_which_column_types_hold_numbers():
    # observational confounders and decision balance checks both ask store.is_numeric_type
    from attribution.observational import confounder_kind

    numeric = ["DECIMAL(18,3)", "ubigint", "DOUBLE", "INTEGER", "HUGEINT"]
    other = ["INTEGER[]", "VARCHAR", "BOOLEAN", "DATE"]
    assert all(store.is_numeric_type(t) for t in numeric)
    assert not any(store.is_numeric_type(t) for t in other)
    cols = {"spend_band": "DECIMAL(10,2)", "tier": "VARCHAR"}
    assert confounder_kind("spend_band", cols) == "numeric"
    assert confounder_kind("tier", cols) == "categorical"
