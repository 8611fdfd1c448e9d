"""A user's own first data: the minimal store of data/README.md's guide, read out end to end.

No tier, region or channel; one outcome month; cost-to-serve 0 (not tracked); an integer segment
column of the company's own; no cx.toml. The store is built from the example CSV files with
``cx load``; check, readout, decision and refresh run in this process with default settings
(compiling each model structure once), the report through ``cx report``; the intervals are
checked against the difference in means computed directly from the CSV rows. A second store has
no revenue either (retention only). The slow suite also runs the guide's block verbatim, each
command in its own process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from conftest import ROOT, run_cx

from attribution import load, store
from attribution.check import check_store
from attribution.config import Config
from attribution.readout import read_out
from attribution.refresh import refresh_store
from experiments.decision import NOT_MEASURED, decide

EXAMPLE = ROOT / "data" / "example"


def _guide_commands() -> list[str]:
    text = (ROOT / "data" / "README.md").read_text()
    section = text.split("## Mapping your data", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the data guide has no sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


@pytest.fixture(scope="module")
def guide(tmp_path_factory):
    """The guide's block run verbatim in a scratch folder holding data/example (slow: the
    readout and the decision each run in a new process, which compiles its models)."""
    work = tmp_path_factory.mktemp("guide")
    shutil.copytree(EXAMPLE, work / "data" / "example")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CX_STORE", None)
    outputs = []
    for command in _guide_commands():
        done = subprocess.run(
            command, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, (command, done.stderr)
        outputs.append((command, done.stdout))
    return work, dict(outputs)


def _raw_effects() -> dict[str, float]:
    """Treated minus control, straight from the CSV rows."""
    rows = pd.read_csv(EXAMPLE / "outcomes.csv").merge(
        pd.read_csv(EXAMPLE / "assignments.csv"), on="customer_id"
    )
    means = rows.groupby("arm")[["active", "revenue"]].mean()
    diff = means.loc["treatment"] - means.loc["control"]
    return {"retention": float(diff["active"]), "revenue": float(diff["revenue"])}


def _command(outputs: dict, verb: str) -> str:
    return next(out for cmd, out in outputs.items() if f"cx {verb} " in cmd)


@pytest.mark.slow
def test_the_data_guide_runs_verbatim_and_says_what_it_skipped_and_assumed(guide):
    _, outputs = guide
    checked = _command(outputs, "check")
    assert "welcome_call (welcome_call): can be read out." in checked
    assert "plan 3" in checked and "cost_to_serve no" in checked
    readout = _command(outputs, "readout")
    assert "No tier in this store" in readout
    assert "Cost to serve not measured in this store" in readout
    assert "net value assumes no change in cost to serve" in readout
    assert "No outcome months before 2025-03" in readout
    decision = _command(outputs, "decide")
    for guardrail in ("cost_to_serve", "csat"):
        assert f"Guardrail {guardrail} (treatment): not measured" in decision, decision


@pytest.fixture(scope="module")
def minimal(tmp_path_factory):
    """The guide's store, loaded from the example CSV files with ``cx load``."""
    work = tmp_path_factory.mktemp("minimal")
    db = str(work / "my.duckdb")
    assert run_cx("init", "--store", db).returncode == 0
    for table in ("customers", "experiments", "assignments", "outcomes", "interventions"):
        done = run_cx("load", table, str(EXAMPLE / f"{table}.csv"), "--store", db)
        assert done.returncode == 0, done.stderr
    return work, db


def test_check_readout_and_decide_of_the_minimal_store_say_what_they_skipped_and_assumed(
    minimal,
):
    """Default settings, no cx.toml: what ``cx check``, ``cx readout`` and ``cx decide`` run."""
    _, db = minimal
    with store.opened(db, read_only=True) as con:
        checked = check_store(con)
        result = read_out(con, "welcome_call")
        decision = decide(con, "welcome_call")
    assert checked.ok and checked.experiments[0].segments["plan"] == 3
    assert checked.experiments[0].outcomes == {
        "retention": True, "revenue": True, "cost_to_serve": False,
    }  # fmt: skip
    assert result.passed, result.reasons
    said = result.describe()
    assert "No tier in this store" in said and "No outcome months before 2025-03" in said
    assert "Cost to serve not measured in this store" in said
    assert result.assumed == ("cost_to_serve",)
    rows = result.table.query("segment == 'all' and metric == 'absolute'").set_index("outcome")
    for outcome, raw in _raw_effects().items():
        assert rows.loc[outcome, "lo"] <= raw <= rows.loc[outcome, "hi"], (outcome, raw)
    guards = decision.guardrails.set_index("guardrail")["verdict"]
    assert guards.to_dict() == {"cost_to_serve": NOT_MEASURED, "csat": NOT_MEASURED}
    assert decision.to_dict()["assumed_unchanged"] == ["cost_to_serve"]


@pytest.fixture(scope="module")
def retention_only(tmp_path_factory):
    """The example without revenue either: retention is all the store measures."""
    path = tmp_path_factory.mktemp("retention") / "r.duckdb"
    con = store.connect(path)
    for table in ("customers", "experiments", "assignments", "outcomes", "interventions"):
        frame = pd.read_csv(EXAMPLE / f"{table}.csv")
        if table == "outcomes":
            frame["revenue"] = 0.0
        load.load(con, table, frame, name=f"{table}.csv")
    yield con
    con.close()


def test_a_retention_only_store_reads_out_and_its_money_says_what_it_assumed(retention_only):
    result = read_out(retention_only, "welcome_call")
    assert result.passed, result.reasons
    assert result.assumed == ("revenue", "cost_to_serve")
    assert set(result.table["outcome"]) == {
        "retention", "net_value", "total_net_value", "roi", "payback_months",
    }  # fmt: skip
    net = result.table.query("outcome == 'net_value' and segment == 'all'").iloc[0]
    assert net["mean"] == pytest.approx(-2.5)  # every treated customer's call cost 2.50
    money = [r for r in result.to_records() if r["outcome"] == "net_value"]
    assert money[0]["assumed_unchanged"] == ["revenue", "cost_to_serve"]
    assert money[0]["churn_effect_after_window"] == "ends"  # no design record says otherwise
    raw = _raw_effects()["retention"]
    ret = result.table.query("outcome == 'retention' and metric == 'absolute'").iloc[0]
    assert ret["lo"] <= raw <= ret["hi"]
    decision = decide(retention_only, "welcome_call")
    assert set(decision.guardrails["verdict"]) == {NOT_MEASURED}
    assert decision.to_dict()["assumed_unchanged"] == ["revenue", "cost_to_serve"]
    assert any("Revenue is not measured" in r for r in decision.reasons)


def test_check_exits_2_naming_what_stops_a_readout(tmp_path):
    db = tmp_path / "s.duckdb"
    con = store.connect(db)
    for table in ("customers", "experiments", "outcomes"):
        load.load(con, table, pd.read_csv(EXAMPLE / f"{table}.csv"), name=f"{table}.csv")
    arms = pd.read_csv(EXAMPLE / "assignments.csv")
    arms["arm"] = arms["arm"].replace({"control": "holdout"})
    load.load(con, "assignments", arms, name="assignments.csv")
    result = check_store(con)
    con.close()
    assert not result.ok
    [exp] = result.experiments
    assert exp.arms == {"holdout": int((arms["arm"] == "holdout").sum()),
                        "treatment": int((arms["arm"] == "treatment").sum())}  # fmt: skip
    assert "no arm named 'control'" in exp.problems[0]
    out = run_cx("check", "--store", str(db), "--json")
    assert out.returncode == 2, out.stderr
    payload = json.loads(out.stdout)
    assert payload["ok"] is False and "control" in payload["experiments"][0]["problems"][0]


def test_an_asked_for_segment_without_values_is_an_error_naming_the_columns_with_values(
    retention_only,
):
    from attribution.errors import InputError

    with pytest.raises(InputError, match=r"'tier' has no value.*columns with values: plan"):
        read_out(retention_only, "welcome_call", segments=["tier"])


def test_an_outcome_with_a_handful_of_positive_values_still_fits(tmp_path):
    """Cost-to-serve recorded for 6 of 3,000 customers: measured, fitted, gate passed."""
    con = store.connect(":memory:")
    for table in ("customers", "experiments", "assignments", "outcomes", "interventions"):
        frame = pd.read_csv(EXAMPLE / f"{table}.csv")
        if table == "outcomes":
            frame["cost_to_serve"] = 0.0
            frame.loc[frame.index[:6], "cost_to_serve"] = [3.0, 5.0, 1.0, 2.0, 8.0, 4.0]
        load.load(con, table, frame, name=f"{table}.csv")
    result = read_out(con, "welcome_call")
    con.close()
    assert result.passed, result.reasons
    assert result.assumed == ()
    cost = result.table.query("outcome == 'cost_to_serve' and metric == 'absolute'").iloc[0]
    assert cost["lo"] < 0.0 < cost["hi"]  # 6 values, nothing to tell the arms apart


def test_refresh_and_report_of_the_minimal_store_publish_intervals_holding_the_raw_effects(
    minimal,
):
    """In this process, after the fits above compiled the same model structures; default
    settings, no cx.toml (what ``cx refresh`` with no flags runs); then ``cx report``."""
    work, db = minimal
    refreshed = refresh_store(db, Config())
    assert refreshed.status == "published", refreshed.reasons
    con = duckdb.connect(db, read_only=True)
    est = con.execute(
        "SELECT outcome, mean, lo, hi FROM estimates WHERE segment = 'all' AND metric = 'absolute'"
    ).df()
    record = json.loads(con.execute("SELECT diagnostics FROM runs").fetchone()[0])
    con.close()
    est = est.set_index("outcome")
    assert "cost_to_serve" not in est.index  # not measured: not published as an effect
    for outcome, raw in _raw_effects().items():
        assert est.loc[outcome, "lo"] <= raw <= est.loc[outcome, "hi"], (outcome, raw, est)
    assert record["assumed_unchanged"] == {"welcome_call": ["cost_to_serve"]}
    report = run_cx("report", "--store", db, "--out", str(work / "reports"), cwd=work)
    assert report.returncode == 0, report.stderr
    page = (work / "reports" / "report.html").read_text()
    assert "Cost to serve is not measured in this store" in page
    assert "not measured (assumed unchanged)" in page
    assert "No tier in this store" in page


def test_a_design_record_that_is_not_strict_json_is_a_clear_error(tmp_path):
    """DuckDB's JSON type takes a trailing comma; the readout names the record, no traceback."""
    from attribution.errors import InputError

    con = store.connect(":memory:")
    for table in ("customers", "experiments", "assignments", "outcomes"):
        load.load(con, table, pd.read_csv(EXAMPLE / f"{table}.csv"), name=f"{table}.csv")
    con.execute("UPDATE experiments SET design = '{\"allocation\": 1,}'")
    with pytest.raises(InputError, match="'welcome_call': its design record is not strict JSON"):
        read_out(con, "welcome_call")
    con.close()
