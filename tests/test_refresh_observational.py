"""Observational questions in ``cx refresh``: fitted, gated, published with verdicts, reported.

Real 4,000-customer simulated worlds (file stores) and one question (``proactive_outreach``
adjusted for tier and prior cases, 50 bootstrap resamples, two refuter simulations) so the fits
stay small. The main world has no randomized tests (its experiments are deleted: a store where
only observational questions can be asked); the outcomes-subset test fits the question beside an
experiment. Compiled models are reused across the refreshes (and from tests/test_refresh.py).
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from attribution import runs, store, synth
from attribution.causal import REFUTED_ON, REFUTERS
from attribution.config import config_from_dict, load_config
from attribution.errors import InputError
from attribution.refresh import check_config, data_tables, refresh_store
from attribution.report import build_report

QUESTION = """
[model]
segments = []
chains = 4
draws = 300
tune = 300

[causal]
draws = 300
tune = 300
bootstrap = 50
refuter_simulations = 2

[[observational]]
name = "outreach"
intervention = "proactive_outreach"
confounders = ["tier", "prior_cases"]
"""
# The regression is a check shown by `cx attribute`, never published (CHECK_ONLY).
OBSERVATIONAL_METHODS = {
    "naive_difference",
    "backdoor.propensity_score_weighting",
    "bayes_gformula_cells",
    "money_per_treated_customer",
}
MONEY = {"net_value", "total_net_value", "roi", "payback_months"}


def _config(tmp_path, text: str):
    path = tmp_path / "cx.toml"
    path.write_text(text)
    return load_config(path)


def _world(root, *, experiments: bool):
    path = root / "world.duckdb"
    with store.opened(path) as con:
        synth.simulate(con, 4000, months=12, seed=11)
        if not experiments:
            con.execute("DELETE FROM assignments")
            con.execute("DELETE FROM experiments")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Observational data only: no experiment has assignments."""
    return _world(tmp_path_factory.mktemp("observational"), experiments=False)


@pytest.fixture(scope="module")
def published(world, tmp_path_factory):
    cfg = _config(tmp_path_factory.mktemp("cfg"), QUESTION)
    lines: list[str] = []
    outcome = refresh_store(world, cfg, log=lines.append)
    assert outcome.status == "published", outcome.describe()
    with store.opened(world, read_only=True) as con:
        estimates = runs.current_estimates(con)
        record = runs.run_record(con, outcome.run_id)
    return cfg, outcome, estimates, record, lines


def test_a_store_without_experiments_publishes_the_questions_rows(published):
    _, outcome, est, _, _ = published
    assert len(est) == len(outcome.estimates) > 0 and set(est["run_id"]) == {outcome.run_id}
    assert set(est["question"]) == {"outreach"}  # no experiment: only the question's rows
    asked = est[est["question"] == "outreach"]
    assert set(asked["method"]) == OBSERVATIONAL_METHODS
    assert asked["experiment_id"].isna().all()
    assert set(asked["intervention"]) == {"proactive_outreach"}
    assert set(asked["estimand"]) == {"ate", "att"}
    assert set(asked[asked["method"] == "money_per_treated_customer"]["estimand"]) == {"att"}
    assert set(asked["outcome"]) == {"retention", "revenue", "cost_to_serve"} | MONEY
    naive = asked[asked["method"] == "naive_difference"]
    assert naive["verdict"].str.startswith("not adjusted").all()
    adjusted = asked[asked["method"] != "naive_difference"]
    assert adjusted["verdict"].str.match(r"^(pass|warn): ").all()
    assert (asked["interval_width"] == 0.90).all()


def test_each_rows_verdict_is_the_refutations_of_its_outcome_in_the_run_diagnostics(published):
    _, _, est, record, _ = published
    refutations = record.refutations()
    assert set(refutations["question"]) == {"outreach"}
    for outcome in ("retention", "revenue", "cost_to_serve"):
        mine = refutations[refutations["outcome"] == outcome]
        assert list(mine["refuter"]) == list(REFUTERS)
        warned = mine[mine["verdict"] == "warn"]["refuter"].str.replace("_", " ").tolist()
        rows = est[(est["question"] == "outreach") & (est["outcome"] == outcome)]
        for verdict in rows[rows["method"] != "naive_difference"]["verdict"]:
            assert verdict.startswith("warn" if warned else "pass"), verdict
            for name in warned:
                assert name in verdict.split(";")[0], verdict
        # The refuters ran on DoWhy's additive regression, which no published row is (the
        # regression is a check, not published): every adjusted row says so.
        assert not (rows["method"] == "backdoor.linear_regression").any()
        stored = json.loads(json.dumps(record.diagnostics))["observational"]["outreach"]
        estimate = next(r["estimate"] for r in stored["refutations"] if r["outcome"] == outcome)
        assert np.isfinite(estimate)
        adjusted = rows[~rows["method"].isin(["naive_difference"])]
        assert adjusted["verdict"].str.endswith(REFUTED_ON).all()
    money = est[(est["question"] == "outreach") & est["outcome"].isin(MONEY)]
    assert (
        money["verdict"]
        .str.startswith("warn" if (refutations["verdict"] == "warn").any() else "pass")
        .all()
    )


def test_the_run_records_each_g_formula_fit_and_its_gate(published):
    _, outcome, _, record, lines = published
    stored = record.diagnostics["observational"]["outreach"]
    assert stored["gate"] == "passed"
    assert sorted(stored["gformula"]) == ["cost_to_serve", "retention", "revenue"]
    for diag in stored["gformula"].values():
        assert diag["passed"] and diag["min_ess_bulk"] >= 400 and diag["max_rhat"] <= 1.01
    assert stored["confounders"] == ["tier", "prior_cases"]
    assert stored["n_treated"] > 0 and stored["n_untreated"] > stored["n_treated"]
    assert record.diagnostics["data_tables"] == list(data_tables(load_config(None))) + [
        "interactions"
    ]
    models = record.models()
    mine = models[models["experiment_id"] == "observational outreach"]
    assert sorted(mine["model"]) == [
        f"{o} g-formula" for o in ("cost_to_serve", "retention", "revenue")
    ]
    assert mine["passed"].all()
    assert "refutations of the observational questions" in record.describe()
    assert set(outcome.attributions) == {"outreach"}
    text = "\n".join(lines)
    for o in ("retention", "revenue", "cost_to_serve"):
        assert f"observational outreach {o}: g-formula compile" in text, text
    assert "observational outreach: fitted in" in text and "passed" in text


def test_the_report_shows_each_question_apart_with_verdicts_and_gate(published, world, tmp_path):
    cfg, _, est, _, _ = published
    with store.opened(world, read_only=True) as con:
        result = build_report(con, tmp_path / "out", config=cfg)
    page = result.html.read_text(encoding="utf-8")
    headline = page[page.index('id="headline"') : page.index('id="drivers"')]
    assert "No randomized estimates are published in this run." in headline
    assert "proactive_outreach" not in headline and "weaker evidence, in section 8" in headline
    # the question's money is in the headline table of the result, marked, but not on page 1
    money = result.headline[result.headline["question"] == "outreach"]
    assert set(money["estimator"]) == {"dowhy_psw", "bayes_gformula"}
    assert "weaker evidence, not a randomized test (question outreach" in result.describe()
    weak = page[page.index('id="observational"') :]
    assert "weaker evidence" in weak and "Question outreach" in weak
    for method in OBSERVATIONAL_METHODS:
        assert method in weak or method == "money_per_treated_customer"
    assert "ATT" in weak and "ATE" in weak
    assert 'g-formula) diagnostics gate: <span class="ok">passed</span>' in weak
    assert "placebo treatment" in weak and "unobserved confounder" in weak
    assert "Money per treated customer from the ATT draws" in weak
    # what the cells were, and how strong a hidden confounder would have to be for each money ATT
    assert "propensity strata x arm" in weak
    assert "How strong a hidden confounder would have to be to erase the ATTs" in weak
    assert weak.count("hidden confounder explaining") == 6  # 2 routes x 3 outcomes
    for frame in (pd.read_csv(result.csv), pd.read_parquet(result.parquet)):
        assert {"estimand", "verdict", "question", "estimator"} <= set(frame.columns)
        assert (frame["question"] == "outreach").sum() == (est["question"] == "outreach").sum()


def test_unchanged_data_and_settings_refit_nothing_and_causal_settings_do(published, world):
    cfg, outcome, _, _, _ = published
    again = refresh_store(world, cfg)
    assert again.status == "unchanged" and again.run_id == outcome.run_id
    raw = {k: v for k, v in cfg.to_dict().items() if k not in ("store", "decision")}
    raw["causal"] = {**raw["causal"], "bootstrap": 60}
    assert config_from_dict(raw).hash != cfg.hash


def test_a_failing_g_formula_gate_fails_the_run_and_keeps_the_estimates(published, world, tmp_path):
    _, first, before, _, _ = published
    strict = QUESTION.replace("[causal]", "[gate]\nmin_ess_bulk = 100000\n\n[causal]")
    outcome = refresh_store(world, _config(tmp_path, strict), force=True)
    assert outcome.status == "failed" and outcome.exit_code == 3
    # no experiment in this store: the cell route's gate alone failed the run
    assert outcome.reasons and all(
        r.startswith("observational outreach ") and "(g-formula cells):" in r
        for r in outcome.reasons
    ), outcome.reasons
    with store.opened(world, read_only=True) as con:
        assert runs.current_run(con)["run_id"] == first.run_id
        pd.testing.assert_frame_equal(runs.current_estimates(con), before)
        failed = runs.run_record(con, outcome.run_id)
    assert failed.status == "failed" and failed.estimates == 0
    assert failed.diagnostics["observational"]["outreach"]["gate"] == "failed"


def test_an_outcomes_subset_fits_only_those_beside_an_experiment_and_publishes_no_money(tmp_path):
    full = _world(tmp_path, experiments=True)
    subset = (
        QUESTION.replace("segments = []", 'segments = []\noutcomes = ["retention"]')
        .replace('name = "outreach"', 'name = "outreach"\noutcomes = ["retention"]')
        .replace("[causal]", '[experiments]\ninclude = ["exp_recovery_gift"]\n\n[causal]')
    )
    cfg = _config(tmp_path, subset)
    outcome = refresh_store(full, cfg)
    assert outcome.status == "published", outcome.describe()
    with store.opened(full, read_only=True) as con:
        est = runs.current_estimates(con)
        record = runs.run_record(con, outcome.run_id)
        result = build_report(con, tmp_path / "out", config=cfg)
    assert set(est["run_id"]) == {outcome.run_id}  # experiment and question in one transaction
    randomized = est[est["question"].isna()]
    assert set(randomized["experiment_id"]) == {"exp_recovery_gift"}
    assert set(randomized["method"]) == {"bayesian_cells"}
    assert set(randomized["estimand"]) == {"itt"} and randomized["verdict"].isna().all()
    assert set(est[est["question"] == "outreach"]["method"]) == OBSERVATIONAL_METHODS - {
        "money_per_treated_customer"
    }
    assert set(est["outcome"]) == {"retention"}
    assert not est["outcome"].isin(MONEY).any()
    assert "money_per_treated_customer" not in set(est["method"])
    assert sorted(record.models()["model"]) == ["retention by _overall", "retention g-formula"]
    page = result.html.read_text(encoding="utf-8")
    headline = page[page.index('id="headline"') : page.index('id="drivers"')]
    assert "No net value, ROI or payback is published: the run fitted only retention" in headline
    roi = page[page.index('id="roi"') : page.index('id="design"')]
    assert "money needs retention, revenue and cost_to_serve" in roi
    weak = page[page.index('id="observational"') :]
    assert "No net value, ROI or payback for outreach: this question fits only retention" in weak
    assert result.headline.empty


@pytest.mark.parametrize(
    ("question", "message"),
    [
        (
            'intervention = "nope"',
            r"observational 'q': intervention 'nope' has no rows in interventions; known: \[",
        ),
        (
            'condition = "mood=happy"',
            r"observational 'q': condition 'mood=happy': 'mood' is not an interactions column",
        ),
        (
            'intervention = "proactive_outreach"\nconfounders = ["shoe_size"]',
            r"observational 'q': confounders \['shoe_size'\] not a confounder the store has",
        ),
        (
            'intervention = "proactive_outreach"\nconfounders = ["tier", "prior_cases"]\n'
            'segment = "prior_cases"',
            r"observational 'q': segment 'prior_cases' must be one of its categorical "
            r"confounders: \['tier'\]",
        ),
    ],
)
def test_questions_the_store_cannot_answer_are_named_before_a_run(
    world, tmp_path, question, message
):
    cfg = _config(tmp_path, f'[[observational]]\nname = "q"\n{question}\n')
    with store.opened(world, read_only=True) as con:
        with pytest.raises(InputError, match=message):
            check_config(con, cfg)
        count = len(runs.list_runs(con))
    with pytest.raises(InputError, match=message):
        refresh_store(world, cfg)
    with store.opened(world, read_only=True) as con:
        assert len(runs.list_runs(con)) == count  # no run registered


def test_a_version_1_store_gains_the_estimate_columns_when_opened(tmp_path):
    path = tmp_path / "old.duckdb"
    with store.opened(path) as con:
        for col in ("estimand", "verdict", "question", "estimator", "population"):
            con.execute(f"ALTER TABLE estimates DROP COLUMN {col}")
        con.execute("DROP TABLE truth_customers")  # added by version 4
        con.execute("UPDATE schema_meta SET value = '1' WHERE key = 'schema_version'")
        run_id = runs.start_run(con, "c", "d")
        con.execute(
            "INSERT INTO estimates (run_id, intervention, outcome, segment_by, segment, metric, "
            "mean, method) VALUES (?, 'gift', 'retention', 'all', 'all', 'absolute', 0.1, "
            "'bayesian_cells')",
            [run_id],
        )
        con.execute(
            "UPDATE runs SET status = 'published', finished = now() WHERE run_id = ?", [run_id]
        )
    with store.opened(path, read_only=True) as con:  # read-only: read as it is, not migrated
        assert store.schema_version(con) == 1
        assert store.table_counts(con)["truth_customers"] == 0  # not there yet: counted as 0
        est = runs.current_estimates(con)
        assert list(est.columns) == runs.ESTIMATE_COLUMNS and est["verdict"].isna().all()
    with store.opened(path) as con:
        assert store.schema_version(con) == store.SCHEMA_VERSION == 4
        assert list(store.columns(con, "estimates")) == runs.ESTIMATE_COLUMNS
        assert "net_value" in store.columns(con, "truth_customers")
        assert runs.current_estimates(con)["mean"].tolist() == [0.1]
    fresh = duckdb.connect(":memory:")
    store.init_schema(fresh)
    assert list(store.columns(fresh, "estimates")) == runs.ESTIMATE_COLUMNS
