"""The finance report: what it writes, what it shows, how it renders, and that data is escaped.

The main fixture fits a real 20k-customer simulated world (seed 11) with ``refresh`` once per
module; the escaping and failure tests use a tiny store whose run is published with
:func:`attribution.runs.finish_run` directly, because there the report, not the model, is tested.
"""

from __future__ import annotations

import base64
import html
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from attribution import runs, store, synth
from attribution.config import Config, TargetingSettings
from attribution.errors import InputError
from attribution.formatting import fmt_money, fmt_months, fmt_pct, fmt_pp, fmt_prob
from attribution.refresh import refresh
from attribution.report import CSV_NAME, HTML_NAME, PARQUET_NAME, build_report
from attribution.value import MoneySettings

EVIL = "<script>alert(1)</script>"
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)


#: The documented defaults, and targeting of the recovery gift's test (advice beside the run).
CONFIG = replace(
    Config(),
    targeting=TargetingSettings(experiments=("exp_recovery_gift",), score_month="latest"),
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A fitted, published 20k world and its report."""
    root = tmp_path_factory.mktemp("report")
    con = store.connect(root / "cx.duckdb")
    synth.simulate(con, 20000, months=12, seed=11)
    outcome = refresh(con, CONFIG)
    assert outcome.status == runs.PUBLISHED, outcome.describe()
    result = build_report(con, root / "out", config=CONFIG)
    yield con, result, root
    con.close()


def _overall(con, outcome: str) -> pd.DataFrame:
    est = runs.current_estimates(con)
    return est[(est["segment"] == "all") & (est["outcome"] == outcome)].set_index("experiment_id")


# --- the real run -------------------------------------------------------------------------------


def test_csv_and_parquet_hold_every_row_of_the_current_run(world):
    con, result, _ = world
    current = runs.current_estimates(con)
    for frame in (pd.read_csv(result.csv), pd.read_parquet(result.parquet)):
        assert len(frame) == len(current) > 0
        assert set(frame["run_id"]) == {runs.current_run(con)["run_id"]}
        key = ["experiment_id", "arm", "outcome", "segment_by", "segment", "metric"]
        merged = frame.merge(current, on=key, suffixes=("", "_db"))
        assert len(merged) == len(current)
        np.testing.assert_allclose(merged["mean"], merged["mean_db"], rtol=1e-12)
        np.testing.assert_allclose(merged["lo"], merged["lo_db"], rtol=1e-12)


def test_headline_is_the_overall_money_of_each_intervention(world):
    con, result, _ = world
    net, roi = _overall(con, "net_value"), _overall(con, "roi")
    head = result.headline.set_index("experiment_id")
    assert sorted(head.index) == sorted(net.index) == ["exp_premium_support", "exp_recovery_gift"]
    for exp in head.index:
        assert head.loc[exp, "net_value"] == pytest.approx(net.loc[exp, "mean"])
        assert head.loc[exp, "net_value_lo"] == pytest.approx(net.loc[exp, "lo"])
        assert head.loc[exp, "p_positive"] == pytest.approx(net.loc[exp, "p_positive"])
        assert head.loc[exp, "roi_hi"] == pytest.approx(roi.loc[exp, "hi"])
        assert head.loc[exp, "n_treated"] == net.loc[exp, "n_treated"]
    assert result.run_id == runs.current_run(con)["run_id"]
    assert result.to_dict()["headline"][0]["experiment_id"] == head.index[0]
    assert "P(net value > 0)" in result.describe()


def test_drivers_recover_the_cost_per_assigned_customer_and_add_up(world):
    con, _, _ = world
    from attribution.report import gather

    data = gather(con, config=CONFIG)
    assert data.config_matches
    costs = dict(
        con.execute(
            """
            SELECT a.experiment_id, SUM(COALESCE(i.unit_cost, 0)) / COUNT(DISTINCT a.customer_id)
            FROM assignments a LEFT JOIN interventions i
              ON i.customer_id = a.customer_id AND i.experiment_id = a.experiment_id
            WHERE a.arm = 'treatment' GROUP BY a.experiment_id
            """
        ).fetchall()
    )
    d = data.drivers.set_index("experiment_id")
    for exp, cost in costs.items():
        assert d.loc[exp, "unit_cost"] == pytest.approx(cost, rel=1e-6)
        parts = d.loc[exp, ["retained_margin", "spend_margin", "cost_saved"]].sum()
        assert parts - d.loc[exp, "unit_cost"] == pytest.approx(d.loc[exp, "net_value"])
        revenue = _overall(con, "revenue")
        revenue = revenue[revenue["metric"] == "absolute"]
        expected = Config().money.margin_rate * revenue.loc[exp, "mean"]
        assert d.loc[exp, "spend_margin"] == pytest.approx(expected)


def test_page_is_self_contained_and_in_finance_order(world):
    _, result, _ = world
    page = result.html.read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)
    images = re.findall(r'<img [^>]*src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 5  # drivers x2, forest x2, ROI x2
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    order = [
        page.index(f'id="{s}"')
        for s in (
            "headline",
            "drivers",
            "segments",
            "roi",
            "design",
            "freshness",
            "methods",
            "observational",
            "targeting",
        )
    ]
    assert order == sorted(order)
    assert "None are published in this run." in page  # no observational rows in this world


def test_the_targeting_section_shows_the_runs_policy_and_its_check(world):
    """[targeting] in the run's configuration: the refresh records the policy with the run
    (advice beside the published estimates, not an estimate row) and the report shows it."""
    con, result, _ = world
    from attribution.report import gather

    record = gather(con, config=CONFIG).run["diagnostics"]["targeting"]
    assert [f["experiment_id"] for f in record["fits"]] == ["exp_recovery_gift"]
    policies = {p["policy"]: p for p in record["policy"]}
    assert set(policies) == {"targeted", "treat all", "treat none", "best segment rule"}
    assert policies["targeted"]["lo"] <= policies["targeted"]["mean"] <= policies["targeted"]["hi"]
    assert record["budget"] is None  # no budget: everyone expected to gain
    est = runs.current_estimates(con)
    assert not est["method"].astype(str).str.contains("target").any()
    page = result.html.read_text(encoding="utf-8")
    section = page[page.index('id="targeting"') :]
    assert "Who should get it next" in section and "Budget: no limit" in section
    assert html.escape(record["checks"][0]["sentence"], quote=True) in section
    for name in policies:
        assert f"<td>{name}</td>" in section
    # score_month = "latest": the last month's customers, scored within the test's support
    population = record["population"]
    assert population["month"] == "2025-12"
    (gift,) = population["coverage"]
    assert 0 < gift["in_support"] < gift["customers"]
    assert gift["picked"] == population["total"]["customers"] == gift["expected_to_gain"]
    assert "The customers active in 2025-12" in section
    assert "--score-month 2025-12" in section


def test_design_section_shows_arm_counts_and_the_srm_check(world):
    con, result, _ = world
    page = result.html.read_text(encoding="utf-8")
    design = page[page.index('id="design"') : page.index('id="freshness"')]
    for exp, arm, n in con.execute(
        "SELECT experiment_id, arm, count(*) FROM assignments GROUP BY ALL"
    ).fetchall():
        assert exp in design
        assert f"{arm} {n:,}" in design
    assert design.count('class="ok">ok</span>') == 2
    assert "matches the store now" in page
    # the money assumption after the window, per test: both simulated tests hold theirs
    assert design.count("the effect on churn is held (it goes on, or its gap outlasts") == 2
    con.execute(
        "UPDATE experiments SET design = json_merge_patch(design, "
        "'{\"churn_effect_after_window\": null}') WHERE experiment_id = 'exp_recovery_gift'"
    )
    try:
        from attribution.report import gather
        from attribution.report_html import render

        again = render(gather(con, config=CONFIG))
    finally:
        con.execute(
            "UPDATE experiments SET design = json_merge_patch(design, "
            '\'{"churn_effect_after_window": "held"}\') '
            "WHERE experiment_id = 'exp_recovery_gift'"
        )
    design = again[again.index('id="design"') : again.index('id="freshness"')]
    assert design.count("the effect on churn ends with the window") == 1


def test_diagnostics_show_every_fitted_model_and_its_verdict(world):
    con, result, _ = world
    from attribution.report import gather

    diag = gather(con).diagnostics
    experiments = sorted(
        r[0] for r in con.execute("SELECT experiment_id FROM experiments").fetchall()
    )
    assert sorted(diag["experiment_id"].unique()) == experiments
    # retention, revenue, cost-to-serve and their joint combination, by tier
    assert len(diag) == 4 * len(experiments)
    assert diag["passed"].map(bool).all()  # the run was published, so every model passed
    assert (diag["max_rhat"] <= Config().gate.max_rhat).all()
    assert (diag["min_ess_bulk"] >= Config().gate.min_ess_bulk).all()
    page = result.html.read_text(encoding="utf-8")
    section = page[page.index('id="freshness"') : page.index('id="methods"')]
    assert section.count('class="ok">passed</span>') == len(diag)


def test_every_check_of_the_run_is_one_row_of_one_table(world):
    con, result, _ = world
    from attribution.report import gather

    data = gather(con, config=CONFIG)
    recorded, table = data.run["diagnostics"]["checks"], data.checks
    assert set(recorded) == {"exp_premium_support", "exp_recovery_gift", "targeting"}
    assert [c["check"] for c in recorded["targeting"]] == ["targeting: uplift beats random"]
    for experiment_id in ("exp_premium_support", "exp_recovery_gift"):
        mine = table[table["where"] == experiment_id]
        assert list(mine["check"]) == ["sample ratio", "diagnostics"]
        assert set(mine["verdict"]) <= {"pass", "warn", "fail"}
    page = result.html.read_text(encoding="utf-8")
    section = page[page.index("Every check of the run") :]
    assert f"{len(table)} checks" in section
    for sentence in table["sentence"]:
        assert html.escape(sentence, quote=True) in section


def test_settings_other_than_the_runs_leave_the_money_breakdown_out(world):
    con, _, root = world
    other = Config(money=MoneySettings(margin_rate=0.5))
    result = build_report(con, root / "other", config=other)
    page = result.html.read_text(encoding="utf-8")
    assert "not the ones run" in page and "money breakdown is left out" in page
    assert "Value after the window (mean)" not in page
    assert result.notes and "not the ones run" in result.notes[0]


@needs_chromium
def test_chromium_renders_the_headline_numbers_without_errors(world, tmp_path):
    con, result, _ = world
    shot = tmp_path / "report.png"
    url = result.html.resolve().as_uri()
    run = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,4000", url, logging=True)
    assert shot.exists(), run.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.format == "PNG" and im.size == (1280, 4000)
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colours) > 100  # text, tables and plots, not a blank page
    dom = _chromium(tmp_path, "--dump-dom", url, logging=True)
    for text in (dom.stdout,):
        assert 'id="headline"' in text
    for log in (run.stderr, dom.stderr):
        assert "Uncaught" not in log
        assert ":CONSOLE" not in log  # no script ran, nothing was refused or logged
    net, roi, total = (
        _overall(con, "net_value"),
        _overall(con, "roi"),
        _overall(con, "total_net_value"),
    )
    headline = dom.stdout[dom.stdout.index('id="headline"') : dom.stdout.index('id="drivers"')]
    for exp in net.index:
        for value in (net.loc[exp, "mean"], net.loc[exp, "lo"], net.loc[exp, "hi"]):
            assert fmt_money(value) in headline
        assert fmt_prob(net.loc[exp, "p_positive"]) in headline
        assert fmt_pct(roi.loc[exp, "mean"]) in headline
        assert fmt_money(total.loc[exp, "mean"], 0) in headline
    assert runs.current_run(con)["run_id"] in dom.stdout


def _chromium(tmp_path: Path, *args: str, logging: bool = False) -> subprocess.CompletedProcess:
    cmd = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    if logging:
        cmd += ["--enable-logging=stderr", "--v=0"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=180, check=False)


# --- a tiny hand-published store ----------------------------------------------------------------


def _published(
    con,
    *,
    intervention: str,
    segment: str,
    method: str = "bayesian_cells",
    diagnostics: dict | None = None,
) -> str:
    """Publish a run with hand-written estimates (the report is under test, not the models)."""
    con.execute(
        "INSERT INTO experiments VALUES (?, ?, ?, DATE '2025-01-01', NULL)",
        ["exp_x", intervention, '{"allocation": {"control": 0.5, "treatment": 0.5}}'],
    )
    rows = []
    for seg_by, seg in (("all", "all"), ("tier", segment)):
        for outcome, metric, mean, lo, hi, p in (
            ("retention", "absolute", 0.05, 0.01, 0.09, 0.97),
            ("revenue", "absolute", 10.0, 2.0, 18.0, 0.98),
            ("cost_to_serve", "absolute", -1.0, -3.0, 1.0, 0.2),
            ("net_value", "absolute", 12.5, -2.0, 27.0, 0.91),
            ("total_net_value", "absolute", 1250.0, -200.0, 2700.0, 0.91),
            ("roi", "relative", 1.25, -0.2, 2.7, 0.91),
            ("payback_months", "absolute", 2.0, 1.0, 5.0, 0.95),
        ):
            rows.append(
                {
                    "experiment_id": "exp_x",
                    "intervention": intervention,
                    "arm": "treatment",
                    "outcome": outcome,
                    "segment_by": seg_by,
                    "segment": seg,
                    "metric": metric,
                    "mean": mean,
                    "lo": lo,
                    "hi": hi,
                    "p_positive": p,
                    "expected_loss": 0.4 if outcome == "net_value" else np.nan,
                    "n_treated": 100,
                    "n_control": 100,
                    "method": method,
                }
            )
    run_id = runs.start_run(con, Config().hash, runs.data_hash(con))
    diagnostics = {"models": {}} if diagnostics is None else diagnostics
    runs.finish_run(con, run_id, pd.DataFrame(rows), diagnostics, publish=True)
    return run_id


def test_names_from_data_are_escaped_in_page_and_plots(con, tmp_path):
    segment = f"{EVIL} $x$ & co"
    _published(con, intervention=EVIL, segment=segment)
    result = build_report(con, tmp_path / "out")
    page = result.html.read_text(encoding="utf-8")
    assert EVIL not in page and "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; $x$ &amp; co" in page
    assert page.count("data:image/png;base64,") >= 3  # the plots drew the names too
    if CHROMIUM:
        dom = _chromium(tmp_path, "--dump-dom", result.html.resolve().as_uri(), logging=True)
        assert "<script" not in dom.stdout.lower()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom.stdout
        assert "Uncaught" not in dom.stderr and ":CONSOLE" not in dom.stderr


def test_observational_rows_are_shown_apart_as_weaker_evidence(con, tmp_path):
    _published(con, intervention="callback", segment="gold", method="dowhy_backdoor")
    page = build_report(con, tmp_path / "out").html.read_text(encoding="utf-8")
    headline = page[page.index('id="headline"') : page.index('id="drivers"')]
    assert "No randomized estimates are published in this run." in headline
    weak = page[page.index('id="observational"') :]
    assert weak.count("dowhy_backdoor") == 14  # every row, overall and by segment
    assert "No refutation verdicts were published" in weak
    assert "12.50 <span" in weak  # the net value, formatted as money


def test_a_gate_record_per_model_is_shown_with_its_divergences(con, tmp_path):
    record = {
        "passed": False,
        "max_rhat": 1.0234,
        "min_ess_bulk": 812.4,
        "min_ess_tail": 390.0,
        "divergences": 7,
        "variables": [],
    }
    _published(
        con,
        intervention="callback",
        segment="gold",
        diagnostics={"models": {"exp_x": {"retention by tier": record}}},
    )
    page = build_report(con, tmp_path / "out").html.read_text(encoding="utf-8")
    section = page[page.index('id="freshness"') : page.index('id="methods"')]
    row = section[section.index("retention by tier") :]
    for text in ("1.023", "812", "390", ">7<", 'class="bad">failed</span>'):
        assert text in row[: row.index("</tr>")]


def test_a_store_changed_since_the_run_is_flagged(con, tmp_path):
    _published(con, intervention="callback", segment="gold")
    con.execute("INSERT INTO customers VALUES ('C9', DATE '2024-01-01', 'gold', NULL, NULL)")
    result = build_report(con, tmp_path / "out")
    assert any("changed since run" in n for n in result.notes)
    assert "(the data changed since)" in result.html.read_text(encoding="utf-8")


def test_no_published_run_is_an_input_error_and_keeps_the_previous_report(con, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / HTML_NAME).write_text("previous report")
    with pytest.raises(InputError, match="no published estimates: run cx refresh first"):
        build_report(con, out)
    assert (out / HTML_NAME).read_text() == "previous report"
    assert sorted(p.name for p in out.iterdir()) == [HTML_NAME]


def test_a_failed_write_leaves_the_previous_report_whole(con, tmp_path, monkeypatch):
    _published(con, intervention="callback", segment="gold")
    out = tmp_path / "out"
    first = build_report(con, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == sorted([HTML_NAME, CSV_NAME, PARQUET_NAME])

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)  # the disk, not our code, fails
    with pytest.raises(OSError, match="No space left"):
        build_report(con, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temp folder left
    assert first.html.exists()


def test_an_out_dir_that_is_a_file_is_an_input_error(con, tmp_path):
    _published(con, intervention="callback", segment="gold")
    target = tmp_path / "report"
    target.write_text("x")
    with pytest.raises(InputError, match=f"report folder {re.escape(str(target))}"):
        build_report(con, target)


def test_formats_are_pinned():
    assert fmt_money(1234.567) == "1,234.57"
    assert fmt_money(-0.001) == "0.00"
    assert fmt_money(-212226.93, 0) == "-212,227"
    assert fmt_pct(-1.111252) == "-111%"
    assert fmt_pp(0.143061) == "14.3 pp"
    assert fmt_prob(0.9995) == "1.00"
    assert fmt_months(2.653182) == "2.7"
    assert fmt_money(float("nan")) == fmt_pct(None) == fmt_months(float("inf")) == "n/a"
