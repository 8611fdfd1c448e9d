"""``cx check`` on a simulated store: what it reports and what makes it say no (fits nothing)."""

from __future__ import annotations

import json

import pytest
from conftest import assert_unchanged, run_cx, snapshot

from attribution import store, synth
from attribution.check import check_store
from attribution.config import config_from_dict


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("check") / "world.duckdb"
    with store.opened(path) as con:
        synth.simulate(con, 4000, months=8, seed=3)
    return path


def test_a_simulated_store_can_be_read_out_and_the_check_says_what_it_will_use(world):
    cfg = config_from_dict(
        {"observational": [{"name": "outreach", "intervention": "proactive_outreach"}]}
    )
    with store.opened(world, read_only=True) as con:
        before = snapshot(con)
        result = check_store(con, cfg)
        assert_unchanged(before, con)
    assert result.ok, result.describe()
    assert [e.experiment_id for e in result.experiments] == [
        "exp_premium_support", "exp_recovery_gift",
    ]  # fmt: skip
    gift = result.experiments[1]
    assert gift.has_control and sum(gift.arms.values()) > 0
    assert gift.used == ["tier"] and gift.segments["tier"] >= 2
    assert gift.outcomes == {"retention": True, "revenue": True, "cost_to_serve": True}
    assert gift.history_months >= 1 and gift.window_months >= 1
    [question] = result.questions
    assert question.ok and question.treated > 0 and question.untreated > 0
    payload = result.to_dict()
    assert payload["ok"] is True and json.loads(json.dumps(payload)) == payload


def test_an_alarming_sample_ratio_and_an_unknown_intervention_are_problems(world, tmp_path):
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(world.read_bytes())
    with store.opened(copy) as con:
        con.execute(
            "DELETE FROM assignments WHERE experiment_id = 'exp_recovery_gift' "
            "AND arm = 'treatment' AND customer_id IN (SELECT customer_id FROM assignments "
            "WHERE experiment_id = 'exp_recovery_gift' AND arm = 'treatment' "
            "ORDER BY customer_id LIMIT 60)"
        )
    cfg = config_from_dict({"observational": [{"name": "q", "intervention": "no_such_thing"}]})
    with store.opened(copy, read_only=True) as con:
        result = check_store(con, cfg)
    assert not result.ok
    gift = next(e for e in result.experiments if e.experiment_id == "exp_recovery_gift")
    assert any("sample-ratio" in p for p in gift.problems), gift.problems
    assert result.questions[0].problems and "no_such_thing" in result.questions[0].problems[0]
    out = run_cx("check", "--store", str(copy))
    assert out.returncode == 2 and "CANNOT be read out" in out.stdout, out.stdout
