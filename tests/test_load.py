"""Loading user data: every bad-input class is rejected whole, with a message that says where."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_unchanged, run_cx, snapshot

from attribution import store
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


# --- messy exports (found by tests/test_load_properties.py and by probing the loader) ----------


OUTCOMES_HEADER = ["customer_id", "period", "active", "revenue", "cost_to_serve"]


@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolon_and_tab_separated_files_load_like_comma_separated_ones(loaded, tmp_path, sep):
    lines = [OUTCOMES_HEADER, ["C1", "2025-04", "1", "12.5", "0"], ["C2", "2025-04", "0", "0", "1"]]
    path = write_csv(tmp_path, "o.csv", "".join(sep.join(line) + "\n" for line in lines))
    assert load(loaded, "outcomes", path).rows_inserted == 2
    got = loaded.execute(
        "SELECT customer_id, active, revenue FROM outcomes WHERE period = DATE '2025-04-01' "
        "ORDER BY 1"
    ).fetchall()
    assert got == [("C1", True, 12.5), ("C2", False, 0.0)]


def test_a_header_with_semicolons_and_tabs_but_no_comma_is_rejected_naming_the_separators(
    loaded, tmp_path
):
    path = write_csv(tmp_path, "o.csv", "customer_id;period\tactive;revenue;cost_to_serve\n")
    message = str(rejected(loaded, "outcomes", path))
    assert "o.csv" in message
    assert "cannot tell how the columns are separated" in message
    assert "semicolons and tabs but no commas" in message


def test_thousands_separators_and_decimal_commas_are_rejected_with_a_hint(loaded, tmp_path):
    semicolons = write_csv(
        tmp_path, "eu.csv", "customer_id;period;active;revenue;cost_to_serve\nC1;2025-04;1;12,5;0\n"
    )
    message = str(rejected(loaded, "outcomes", semicolons))
    assert (
        "row 1 (line 2), column 'revenue': '12,5' is not a number (write numbers without "
        "thousands separators, with '.' as the decimal mark)"
    ) in message
    commas = write_csv(
        tmp_path,
        "us.csv",
        'customer_id,ts,kind,csat,handle_minutes\nC1,2025-04-01,billing,"1,234","1,234.50"\n',
    )
    message = str(rejected(loaded, "interactions", commas))
    assert "column 'csat': '1,234' is not a whole number (write numbers without" in message
    assert "column 'handle_minutes': '1,234.50' is not a number (write numbers without" in message
    plain = write_csv(
        tmp_path, "p.csv", "customer_id,period,active,revenue,cost_to_serve\nC1,2025-04,1,x,0\n"
    )
    assert "thousands" not in str(rejected(loaded, "outcomes", plain))


@pytest.mark.parametrize(("encoding", "line"), [("latin-1", 3), ("utf-16", 1), ("cp1252", 3)])
def test_a_file_not_in_utf8_is_rejected_naming_the_first_bad_line(loaded, tmp_path, encoding, line):
    text = "customer_id,signup_date,region\nC8,2024-01-01,north\nC9,2024-01-01,Zürich\n"
    path = tmp_path / "c.csv"
    path.write_bytes(text.encode(encoding))
    message = str(rejected(loaded, "customers", path))
    assert f"c.csv: rejected, nothing was written (1 problem)\n  line {line}: " in message
    assert "not UTF-8 text" in message


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e400"])
def test_numbers_that_are_not_finite_are_rejected(loaded, tmp_path, value):
    path = write_csv(
        tmp_path,
        "o.csv",
        f"customer_id,period,active,revenue,cost_to_serve\nC1,2025-04,1,{value},0\n",
    )
    assert f"column 'revenue': '{value}' is not a number" in str(rejected(loaded, "outcomes", path))


@pytest.mark.parametrize(
    "value", ["infinity", "-infinity", "epoch", "2024-01-01 (BC)", "99999-01-01", "0000-01-01"]
)
def test_words_and_years_outside_1000_to_9999_are_not_dates(loaded, value):
    customers = pd.DataFrame({"customer_id": ["C9"], "signup_date": [value]})
    assert f"'{value}' is not a date" in str(rejected(loaded, "customers", customers))
    interactions = pd.DataFrame({"customer_id": ["C1"], "ts": [value], "kind": ["billing"]})
    assert f"'{value}' is not a timestamp" in str(rejected(loaded, "interactions", interactions))
    outcomes = pd.DataFrame(
        {
            "customer_id": ["C1"],
            "period": [value],
            "active": [1],
            "revenue": [0.0],
            "cost_to_serve": [0.0],
        }
    )
    assert f"'{value}' is not a month" in str(rejected(loaded, "outcomes", outcomes))


def test_long_integer_segment_attributes_are_kept_exactly(con):
    frame = pd.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "signup_date": ["2024-01-01", "2024-01-01"],
            "account": ["12345678901234567", "-9223372036854775808"],  # beyond 2**53
            "too_long": ["99999999999999999999", "1"],  # beyond BIGINT: a number
        }
    )
    load(con, "customers", frame)
    got = con.execute("SELECT account, too_long FROM customers ORDER BY customer_id").fetchall()
    assert got == [(12345678901234567, 1e20), (-9223372036854775808, 1.0)]


def test_a_segment_column_named_like_a_helper_does_not_change_messages(con):
    frame = pd.DataFrame(
        {"customer_id": ["C1"], "signup_date": ["soon"], "quote_value": ["not this"]}
    )
    assert "row 1, column 'signup_date': 'soon' is not a date" in str(
        rejected(con, "customers", frame)
    )


def test_a_column_named_row_is_rejected_not_dropped(con):
    frame = pd.DataFrame({"customer_id": ["C1"], "signup_date": ["2024-01-01"], "_row": ["x"]})
    assert "column '_row': the name is reserved by the loader" in str(
        rejected(con, "customers", frame)
    )


def test_dataframe_columns_mixing_numbers_and_text_are_read_value_by_value(loaded):
    frame = pd.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "ts": ["2025-04-01", "2025-04-02"],
            "kind": ["billing", "billing"],
            "csat": pd.Series([4, "5"], dtype=object),
            "handle_minutes": pd.Series([2.5, "3"], dtype=object),
        }
    )
    assert load(loaded, "interactions", frame).rows_inserted == 2
    got = loaded.execute("SELECT csat, handle_minutes FROM interactions ORDER BY ts").fetchall()
    assert got == [(4, 2.5), (5, 3.0)]
    frame["csat"] = pd.Series([4, "five"], dtype=object)
    assert "row 2, column 'csat': 'five' is not a whole number" in str(
        rejected(loaded, "interactions", frame)
    )


def test_a_zero_one_column_with_gaps_loads_from_a_dataframe(loaded):
    # pandas holds [1, None, 0] as floats: 1.0, NaN, 0.0.
    frame = pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3"],
            "ts": ["2025-04-01"] * 3,
            "kind": ["billing"] * 3,
            "first_contact_resolution": [1, None, 0],
        }
    )
    load(loaded, "interactions", frame)
    got = loaded.execute(
        "SELECT first_contact_resolution FROM interactions ORDER BY customer_id"
    ).fetchall()
    assert got == [(True,), (None,), (False,)]


def test_dataframe_periods_and_dicts_load_as_months_and_json(loaded):
    outcomes = pd.DataFrame(
        {
            "customer_id": ["C1"],
            "period": pd.period_range("2025-06", periods=1, freq="M"),
            "active": [1],
            "revenue": [1.0],
            "cost_to_serve": [0.0],
        }
    )
    load(loaded, "outcomes", outcomes)
    assert loaded.execute(
        "SELECT count(*) FROM outcomes WHERE period = DATE '2025-06-01'"
    ).fetchone() == (1,)
    # Dicts with different keys: each is written as it is (Arrow would merge them into one
    # struct with nulls for the keys a dict lacks).
    designs = [{"arms": ["control", "gift"]}, {"salt": "x"}]
    experiments = pd.DataFrame(
        {
            "experiment_id": ["E7", "E8"],
            "intervention": ["gift", "gift"],
            "started": ["2025-03-01", "2025-03-01"],
            "design": designs,
        }
    )
    load(loaded, "experiments", experiments)
    got = loaded.execute(
        "SELECT design FROM experiments WHERE experiment_id IN ('E7', 'E8') ORDER BY experiment_id"
    ).fetchall()
    assert [json.loads(g[0]) for g in got] == designs


def test_parquet_list_columns_are_json_text_and_bytes_that_are_not_text_are_rejected(con, tmp_path):
    path = tmp_path / "c.parquet"
    pd.DataFrame(
        {"customer_id": ["C1"], "signup_date": ["2024-01-01"], "tags": [[1, 2]]}
    ).to_parquet(path)
    load(con, "customers", path)
    assert con.execute("SELECT tags FROM customers").fetchone() == ("[1, 2]",)
    pd.DataFrame({"customer_id": [b"\xff"], "signup_date": ["2024-01-01"]}).to_parquet(path)
    message = str(rejected(con, "customers", path))
    assert "column 'customer_id': binary values cannot be read as text" in message


def test_dataframes_with_repeated_columns_or_broken_unicode_are_rejected(con):
    frame = pd.DataFrame(
        [["C1", "2024-01-01", "C2"]], columns=["customer_id", "signup_date", "Customer_ID"]
    )
    assert "column 'customer_id' appears more than once" in str(rejected(con, "customers", frame))
    broken = pd.DataFrame(
        {"customer_id": pd.Series(["C\ud800"], dtype=object), "signup_date": ["2024-01-01"]}
    )
    assert "row 1, column 'customer_id'" in str(rejected(con, "customers", broken))


def test_a_parquet_file_with_a_repeated_column_name_says_so(con, tmp_path):
    path = tmp_path / "c.parquet"
    columns = [pa.array(["C1"]), pa.array(["2024-01-01"]), pa.array(["a"]), pa.array(["b"])]
    pq.write_table(
        pa.Table.from_arrays(columns, ["customer_id", "signup_date", "plan", "plan"]), path
    )
    message = str(rejected(con, "customers", path))
    assert message == (
        "c.parquet: rejected, nothing was written (1 problem)\n"
        "  column 'plan' appears more than once"
    )


def test_a_large_csv_with_line_breaks_inside_quoted_values_loads_whole(loaded, tmp_path):
    # Larger than Arrow's read blocks, so that values with a line break straddle block ends.
    rows = "".join(f'C1,2025-04-01,"line one\nline two {i}"\n' for i in range(60_000))
    path = write_csv(tmp_path, "i.csv", "customer_id,ts,kind\n" + rows)
    assert path.stat().st_size > 2 << 20
    assert load(loaded, "interactions", path).rows_inserted == 60_000
    got = loaded.execute(
        "SELECT count(*) FROM interactions WHERE kind LIKE 'line one' || chr(10) || 'line two %'"
    ).fetchone()
    assert got == (60_000,)


def test_a_header_field_longer_than_the_csv_module_reads_is_rejected_cleanly(con, tmp_path):
    path = write_csv(tmp_path, "c.csv", 'customer_id,"' + "x" * 200_000 + '"\nC1,1\n')
    assert "cannot be parsed as CSV" in str(rejected(con, "customers", path))


def test_cx_load_reads_a_semicolon_export_and_rejects_a_latin1_one_without_a_traceback(tmp_path):
    db = str(tmp_path / "s.duckdb")
    good = write_csv(tmp_path, "c.csv", "customer_id;signup_date;region\nC1;2024-01-01;Zürich\n")
    out = run_cx("load", "customers", str(good), "--store", db)
    assert out.returncode == 0, out.stderr
    assert "customers: loaded c.csv: 1 inserted" in out.stdout
    bad = tmp_path / "l.csv"
    bad.write_bytes("customer_id;signup_date;region\nC2;2024-01-01;Zürich\n".encode("latin-1"))
    out = run_cx("load", "customers", str(bad), "--store", db)
    assert out.returncode == 2
    assert "l.csv: rejected, nothing was written (1 problem)" in out.stderr
    assert "line 2: the file is not UTF-8 text" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_half_read_result_on_the_connection_does_not_stop_a_write(tmp_path):
    """DuckDB refuses to register a frame while a fetchone() result is unfinished; every writer
    registers through store.register, so a readout's probes never block a load or a publish."""
    con = store.connect(tmp_path / "half.duckdb")
    people = pd.DataFrame({"customer_id": ["C1", "C2"], "signup_date": ["2024-01-01"] * 2})
    load(con, "customers", people)
    con.execute("SELECT customer_id FROM customers ORDER BY 1").fetchone()  # left unfinished
    more = pd.DataFrame({"customer_id": ["C3"], "signup_date": ["2024-02-01"]})
    load(con, "customers", more)
    con.execute("SELECT customer_id FROM customers ORDER BY 1").fetchone()
    row = {"experiment_id": ["e"], "intervention": ["x"], "started": [dt.date(2024, 3, 1)]}
    store.append(con, "experiments", pd.DataFrame(row))
    assert store.table_counts(con)["customers"] == 3
    con.close()
