"""Loading user data: every bad-input class is rejected whole, with a message that says where."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import assert_unchanged, snapshot

from attribution.errors import InputError, LoadError
from attribution.load import load


@pytest.fixture
def loaded(con, customers_frame, outcomes_frame):
    load(con, "customers", customers_frame)
    load(con, "outcomes", outcomes_frame)
    load(
        con,
        "experiments",
        pd.DataFrame(
            {"experiment_id": ["E1"], "intervention": ["gift"], "started": ["2025-02-01"]}
        ),
    )
    return con


def write_csv(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def rejected(con, table, source) -> LoadError:
    before = snapshot(con)
    with pytest.raises(LoadError) as info:
        load(con, table, source)
    assert_unchanged(before, con)
    return info.value


# --- the bad-input classes -----------------------------------------------------------------------


def test_missing_required_column_names_file_and_column(loaded, tmp_path):
    path = write_csv(tmp_path, "out.csv", "customer_id,active,revenue,cost_to_serve\nC1,1,2,3\n")
    err = rejected(loaded, "outcomes", path)
    assert "out.csv" in str(err)
    assert "missing required column 'period'" in str(err)


def test_wrong_type_names_row_line_column_and_value(loaded, tmp_path):
    path = write_csv(
        tmp_path,
        "out.csv",
        "customer_id,period,active,revenue,cost_to_serve\nC1,2025-04,1,12.5,1\nC1,2025-05,1,lots,1\n",
    )
    err = rejected(loaded, "outcomes", path)
    assert "row 2 (line 3), column 'revenue': 'lots' is not a number" in str(err)
    assert err.total == 1


def test_active_must_be_zero_or_one(loaded):
    frame = pd.DataFrame(
        {
            "customer_id": ["C1"],
            "period": ["2025-04"],
            "active": [2],
            "revenue": [1.0],
            "cost_to_serve": [0.0],
        }
    )
    err = rejected(loaded, "outcomes", frame)
    assert "row 1, column 'active': '2' is not 0 or 1" in str(err)


def test_negative_cost_to_serve_is_rejected(loaded, tmp_path):
    path = write_csv(
        tmp_path, "o.csv", "customer_id,period,active,revenue,cost_to_serve\nC3,2025-04,1,0,-4.5\n"
    )
    err = rejected(loaded, "outcomes", path)
    assert "column 'cost_to_serve': '-4.5' is below the minimum 0" in str(err)


def test_negative_unit_cost_is_rejected(loaded, tmp_path):
    path = write_csv(
        tmp_path,
        "iv.csv",
        "customer_id,intervention,ts,unit_cost,experiment_id\nC1,gift,2025-02-01,-20,E1\n",
    )
    err = rejected(loaded, "interventions", path)
    assert "row 1 (line 2), column 'unit_cost': '-20' is below the minimum 0" in str(err)


def test_unparseable_period_is_rejected(loaded, tmp_path):
    path = write_csv(
        tmp_path,
        "o.csv",
        "customer_id,period,active,revenue,cost_to_serve\nC1,April 2025x,1,0,0\n",
    )
    err = rejected(loaded, "outcomes", path)
    assert "column 'period': 'April 2025x' is not a month (YYYY-MM) or a date" in str(err)


def test_duplicate_key_inside_a_file_is_rejected(loaded, tmp_path):
    # 2025-04 and a date inside April are the same period.
    path = write_csv(
        tmp_path,
        "o.csv",
        "customer_id,period,active,revenue,cost_to_serve\n"
        "C1,2025-04,1,1,0\nC2,2025-04,1,1,0\nC1,2025-04-20,1,2,0\n",
    )
    err = rejected(loaded, "outcomes", path)
    assert (
        "row 3 (line 4), duplicate key (customer_id=C1, period=2025-04-01): also in row 1"
        in str(err)
    )


@pytest.mark.parametrize(
    ("table", "text"),
    [
        ("outcomes", "customer_id,period,active,revenue,cost_to_serve\nC99,2025-04,1,1,0\n"),
        ("interventions", "customer_id,intervention,ts,unit_cost\nC99,gift,2025-02-03,20\n"),
        ("assignments", "experiment_id,customer_id,arm\nE1,C99,control\n"),
    ],
)
def test_rows_for_unknown_customers_are_rejected(loaded, tmp_path, table, text):
    err = rejected(loaded, table, write_csv(tmp_path, f"{table}.csv", text))
    assert "column 'customer_id': 'C99' is not in customers (load customers first)" in str(err)


def test_assignment_to_unknown_experiment_is_rejected(loaded, tmp_path):
    path = write_csv(tmp_path, "a.csv", "experiment_id,customer_id,arm\nE404,C1,control\n")
    err = rejected(loaded, "assignments", path)
    assert "'E404' is not in experiments" in str(err)


def test_empty_file_is_rejected(loaded, tmp_path):
    err = rejected(loaded, "outcomes", write_csv(tmp_path, "empty.csv", ""))
    assert "empty.csv" in str(err) and "the file is empty" in str(err)
    header_only = write_csv(tmp_path, "h.csv", "customer_id,period,active,revenue,cost_to_serve\n")
    assert "no data rows" in str(rejected(loaded, "outcomes", header_only))


def test_unknown_table_name_is_rejected(loaded, tmp_path):
    path = write_csv(tmp_path, "x.csv", "a\n1\n")
    with pytest.raises(InputError, match="unknown table 'purchases'; loadable tables: customers"):
        load(loaded, "purchases", path)
    with pytest.raises(InputError, match="written by cx itself"):
        load(loaded, "estimates", path)


def test_ragged_csv_row_is_reported_by_line(loaded, tmp_path):
    path = write_csv(
        tmp_path, "o.csv", "customer_id,period,active,revenue,cost_to_serve\nC1,2025-04,1,1\n"
    )
    err = rejected(loaded, "outcomes", path)
    assert "row 1 (line 2): has 4 fields, the header has 5" in str(err)


def test_only_first_twenty_problems_are_listed_then_a_count(loaded, tmp_path):
    body = "".join(f"C1,2025-{m:02d},7,1,0\n" for m in range(1, 13)) + "".join(
        f"C2,2026-{m:02d},9,-1,0\n" for m in range(1, 13)
    )
    path = write_csv(tmp_path, "o.csv", "customer_id,period,active,revenue,cost_to_serve\n" + body)
    err = rejected(loaded, "outcomes", path)
    message = str(err)
    assert err.total == 36  # 24 bad 'active' + 12 negative revenue
    assert message.count("\n  row ") == 20
    assert message.endswith("... and 16 more")
    assert message.index("row 1 (line 2)") < message.index("row 2 (line 3)")


def test_experiment_ending_before_it_starts_is_rejected(loaded):
    frame = pd.DataFrame(
        {
            "experiment_id": ["E2"],
            "intervention": ["x"],
            "started": ["2025-05-01"],
            "ended": ["2025-04-01"],
        }
    )
    assert "column 'ended': '2025-04-01' is before started" in str(
        rejected(loaded, "experiments", frame)
    )


# --- what a good load does ---------------------------------------------------------------------


def test_loading_the_same_file_twice_changes_nothing(loaded, tmp_path):
    path = write_csv(
        tmp_path, "o.csv", "customer_id,period,active,revenue,cost_to_serve\nC1,2025-04,1,9.5,1\n"
    )
    first = load(loaded, "outcomes", path)
    assert (first.rows_inserted, first.rows_updated) == (1, 0)
    before = snapshot(loaded)
    second = load(loaded, "outcomes", path)
    assert not second.changed and second.rows_unchanged == 1
    assert_unchanged(before, loaded)


def test_a_revised_file_updates_rows_and_the_loads_table_says_so(loaded, outcomes_frame):
    revised = outcomes_frame.copy()
    revised.loc[revised["customer_id"] == "C1", "revenue"] += 1.0  # a restatement of 3 rows
    result = load(loaded, "outcomes", revised, name="restated.csv")
    assert (result.rows_inserted, result.rows_updated, result.rows_unchanged) == (0, 3, 9)
    total = loaded.execute("SELECT sum(revenue) FROM outcomes WHERE customer_id = 'C1'").fetchone()
    assert total[0] == pytest.approx(50 + 100 + 150 + 3)
    last = loaded.execute(
        "SELECT file_name, rows_updated, rows_inserted FROM loads ORDER BY load_id DESC LIMIT 1"
    ).fetchone()
    assert last == ("restated.csv", 3, 0)


def test_extra_customer_columns_become_typed_segment_attributes(con, customers_frame):
    frame = customers_frame.assign(age=[34, 51, 29, 44], plan_score=[0.5, 1.5, 2.0, 0.1])
    result = load(con, "customers", frame)
    assert set(result.columns_added) == {"age", "plan_score"}
    types = dict(
        con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'customers'"
        ).fetchall()
    )
    assert types["age"] == "BIGINT" and types["plan_score"] == "DOUBLE"
    bad = customers_frame.assign(age=["x", "51", "29", "44"])
    err = rejected(con, "customers", bad)
    assert "column 'age': 'x' is not a whole number" in str(err)


def test_period_as_month_or_any_date_in_it(loaded):
    frame = pd.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "period": ["2025-06", "2025-07-31"],
            "active": ["1", "0"],
            "revenue": [1.0, 0.0],
            "cost_to_serve": [0.0, 0.0],
        }
    )
    load(loaded, "outcomes", frame)
    got = loaded.execute(
        "SELECT customer_id, period FROM outcomes WHERE period >= DATE '2025-06-01' ORDER BY 1"
    ).fetchall()
    assert got == [("C1", dt.date(2025, 6, 1)), ("C2", dt.date(2025, 7, 1))]


def test_parquet_file_loads_with_native_types(loaded, tmp_path):
    frame = pd.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "intervention": ["gift", "gift"],
            "ts": pd.to_datetime(["2025-02-01 10:00", "2025-02-02 11:30"]),
            "unit_cost": [20.0, 20.0],
            "experiment_id": ["E1", None],
        }
    )
    path = tmp_path / "iv.parquet"
    frame.to_parquet(path)
    result = load(loaded, "interventions", path)
    assert result.rows_inserted == 2 and result.source == "iv.parquet"
    assert loaded.execute("SELECT count(experiment_id) FROM interventions").fetchone()[0] == 1


def test_optional_columns_may_be_left_out(loaded):
    frame = pd.DataFrame(
        {"experiment_id": ["E9"], "intervention": ["call"], "started": ["2025-03"]}
    )
    with pytest.raises(LoadError, match="'2025-03' is not a date"):
        load(loaded, "experiments", frame)
    frame["started"] = "2025-03-01"
    assert load(loaded, "experiments", frame).rows_inserted == 1
    design, ended = loaded.execute(
        "SELECT design, ended FROM experiments WHERE experiment_id = 'E9'"
    ).fetchone()
    assert design is None and ended is None


def test_unknown_column_on_a_fixed_table_is_rejected(loaded):
    frame = pd.DataFrame(
        {"experiment_id": ["E9"], "intervention": ["x"], "started": ["2025-03-01"], "owner": ["me"]}
    )
    assert "unknown column 'owner'" in str(rejected(loaded, "experiments", frame))
