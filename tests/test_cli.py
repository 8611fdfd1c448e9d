"""The cx command, run for real in subprocesses: conventions, exit codes, store handling."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import duckdb
import pytest
from conftest import run_cx

from attribution import store


@pytest.fixture
def files(tmp_path, customers_frame, outcomes_frame):
    customers_frame.to_csv(tmp_path / "customers.csv", index=False)
    outcomes_frame.to_parquet(tmp_path / "outcomes.parquet")
    (tmp_path / "bad.csv").write_text(
        "customer_id,period,active,revenue,cost_to_serve\nC1,2025-09,1,ten,0\n"
    )
    return tmp_path


def test_init_creates_then_is_a_no_op(tmp_path):
    path = tmp_path / "s.duckdb"
    first = run_cx("init", "--store", str(path), "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {
        "store": str(path),
        "schema_version": store.SCHEMA_VERSION,
        "created": True,
    }
    second = run_cx("init", "--store", str(path))
    assert second.returncode == 0
    assert "already initialised" in second.stdout


def test_store_from_environment_variable(tmp_path):
    path = tmp_path / "env.duckdb"
    result = run_cx("init", env={"CX_STORE": str(path)})
    assert result.returncode == 0, result.stderr
    assert path.exists()


def test_load_good_files_and_json_output(files):
    db = str(files / "s.duckdb")
    out = run_cx("load", "customers", str(files / "customers.csv"), "--store", db, "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["rows_inserted"] == 4 and payload["table"] == "customers"
    out = run_cx("load", "outcomes", str(files / "outcomes.parquet"), "--store", db)
    assert out.returncode == 0 and "12 inserted" in out.stdout
    again = run_cx("load", "outcomes", str(files / "outcomes.parquet"), "--store", db)
    assert "nothing changed" in again.stdout


def test_bad_file_exits_2_with_file_row_column_and_value(files):
    db = str(files / "s.duckdb")
    run_cx("load", "customers", str(files / "customers.csv"), "--store", db)
    out = run_cx("load", "outcomes", str(files / "bad.csv"), "--store", db, "--json")
    assert out.returncode == 2
    assert out.stdout == ""
    assert "bad.csv" in out.stderr
    assert "row 1 (line 2), column 'revenue': 'ten' is not a number" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_table_and_usage_errors_exit_2(files):
    db = str(files / "s.duckdb")
    assert run_cx("load", "nonsense", str(files / "bad.csv"), "--store", db).returncode == 2
    assert run_cx("frobnicate").returncode == 2
    assert run_cx("simulate", "--customers", "many").returncode == 2


def test_summary_json_is_only_json(files):
    db = str(files / "s.duckdb")
    run_cx("load", "customers", str(files / "customers.csv"), "--store", db)
    run_cx("load", "outcomes", str(files / "outcomes.parquet"), "--store", db)
    out = run_cx("summary", "--store", db, "--json", "--by", "tier,region")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["customers"] == 4 and payload["months"] == 3
    gold = next(s for s in payload["segments"] if s["segment"] == "gold")
    assert gold["customers"] == 2 and gold["retention"] == 1.0
    text = run_cx("summary", "--store", db)
    assert "customers: 4" in text.stdout and "gold" in text.stdout


def test_summary_of_a_missing_store_is_an_input_error(tmp_path):
    out = run_cx("summary", "--store", str(tmp_path / "nope.duckdb"))
    assert out.returncode == 2
    assert "does not exist" in out.stderr


def test_second_writer_gets_a_clear_message_not_a_traceback(tmp_path, files):
    db = tmp_path / "locked.duckdb"
    store.connect(db).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "print('ready', flush=True); time.sleep(60)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        out = run_cx("load", "customers", str(files / "customers.csv"), "--store", str(db))
        assert out.returncode == 1
        assert "is in use by another process" in out.stderr
        assert "Traceback" not in out.stderr
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.2)
    # Nothing was written while it was locked, and the store is usable afterwards.
    with duckdb.connect(str(db), read_only=True) as c:
        assert c.execute("SELECT count(*) FROM customers").fetchone()[0] == 0


def test_store_with_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.duckdb"
    with store.opened(path) as con:
        con.execute("UPDATE schema_meta SET value = '99' WHERE key = 'schema_version'")
    out = run_cx("init", "--store", str(path))
    assert out.returncode == 2
    assert "schema version 99, newer than this cx" in out.stderr


def test_warnings_reach_a_cx_user_as_one_line_each(capsys):
    import logging
    import warnings

    from attribution.cli import plain_warnings
    from attribution.diagnostics import DiagnosticsWarning

    with plain_warnings("refresh"):
        warnings.warn("retention uplift fit failed the diagnostics gate", DiagnosticsWarning, 1)
        logging.getLogger("attribution.compiledcache").warning("entry x is unusable; compiling")
        logging.getLogger("attribution.compiledcache").info("not shown")
    assert capsys.readouterr().err.splitlines() == [
        "cx refresh: warning: retention uplift fit failed the diagnostics gate",
        "cx refresh: warning: entry x is unusable; compiling",
    ]
    # restored afterwards: the package's logger propagates again
    assert logging.getLogger("attribution").propagate


def test_simulate_writes_individual_effects_only_when_asked(tmp_path, capsys):
    from attribution.cli import main

    for flag, expected in (([], 0), (["--individual-effects"], 1)):
        path = tmp_path / f"s{expected}.duckdb"
        argv = ["simulate", "--customers", "500", "--months", "6", "--store", str(path), "--json"]
        assert main([*argv, *flag]) == 0
        rows = json.loads(capsys.readouterr().out)["rows"]
        assert ("truth_customers" in rows) == bool(expected)
        with store.opened(path, read_only=True) as con:
            n = con.execute("SELECT count(*) FROM truth_customers").fetchone()[0]
        assert (n > 0) == bool(expected) and rows.get("truth_customers", 0) == n
