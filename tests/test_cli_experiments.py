"""`cx design --from-store` and `cx assign` end to end, on a real simulated store."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import assert_unchanged, snapshot

from attribution import store, synth
from attribution.cli import main
from experiments import design
from experiments.assign import hash_unit
from experiments.history import design_inputs


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-exp") / "cx.duckdb"
    with store.opened(path) as con:
        synth.simulate(con, 4_000, months=8, seed=2)
    return path


def _run(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_design_from_store_uses_the_eligible_population(world, capsys):
    code, out, err = _run(
        capsys,
        [
            "design", "retention", "--mde", "0.03", "--from-store", "--store", str(world),
            "--eligible", "tier=gold,platinum", "--horizon-months", "2", "--json",
        ],
    )  # fmt: skip
    assert code == 0, err
    plan = json.loads(out)
    with store.opened(world, read_only=True) as con:
        inputs = design_inputs(con, eligible="tier=gold,platinum", horizon_months=2)
    expected = design.proportions_sample_size(
        inputs.retention_baseline, 0.03, r2=inputs.r2_retention_bands
    )
    assert plan["n_control"] == expected.n_control
    assert plan["n_total"] == expected.n_total
    assert plan["inputs"]["source"]["n_eligible"] == inputs.n_eligible
    assert plan["inputs"]["baseline"] == pytest.approx(inputs.retention_baseline)


def test_design_from_store_with_a_trigger_gives_the_weeks_to_readout(world, capsys):
    trigger = "resolution=very_ineffective,somewhat_ineffective"
    code, out, err = _run(
        capsys,
        [
            "design", "revenue", "--mde", "20", "--from-store", "--store", str(world),
            "--trigger", trigger, "--json",
        ],
    )  # fmt: skip
    assert code == 0, err
    plan = json.loads(out)
    with store.opened(world, read_only=True) as con:
        inputs = design_inputs(con, trigger=trigger)
    weeks = plan["timeline_weeks"]
    assert weeks["enrolment"] == pytest.approx(plan["n_total"] / inputs.eligible_per_week)
    assert weeks["horizon"] == pytest.approx(inputs.horizon_weeks)


def test_design_from_store_bad_filter_is_exit_2(world, capsys):
    code, _, err = _run(
        capsys,
        ["design", "retention", "--mde", "0.02", "--from-store", "--store", str(world),
         "--eligible", "planet=mars"],
    )  # fmt: skip
    assert code == 2 and "planet" in err


def test_assign_writes_the_experiment_and_is_reproducible(world, tmp_path, capsys):
    with store.opened(world, read_only=True) as con:
        ids = con.execute(
            "SELECT customer_id FROM customers WHERE tier = 'silver' ORDER BY customer_id"
        ).df()
    eligible = tmp_path / "eligible.csv"
    ids.sample(frac=1.0, random_state=1).to_csv(eligible, index=False)  # row order shuffled
    argv = [
        "assign", "exp_cli", "--intervention", "proactive_outreach", "--eligible", str(eligible),
        "--salt", "autumn", "--control-share", "0.2", "--store", str(world), "--json",
    ]  # fmt: skip
    code, out, err = _run(capsys, argv)
    assert code == 0, err
    record = json.loads(out)
    with store.opened(world, read_only=True) as con:
        rows = con.execute(
            "SELECT customer_id, arm FROM assignments WHERE experiment_id = 'exp_cli'"
        ).df()
        design_json = con.execute(
            "SELECT design FROM experiments WHERE experiment_id = 'exp_cli'"
        ).fetchone()[0]
    assert len(rows) == len(ids)
    # Unstratified: the arm is control exactly when the salted hash is below the control share.
    u = pd.Series(hash_unit(rows["customer_id"], "autumn"), index=rows.index)
    assert ((u < 0.2) == (rows["arm"] == "control")).all()
    assert json.loads(design_json)["allocation"] == {"control": 0.2, "treatment": 0.8}
    assert json.loads(design_json)["churn_effect_after_window"] == "ends"  # the default
    assert record["salt_used"] == "autumn" and record["counts"]["control"] == (u < 0.2).sum()

    # The same id again is refused and writes nothing.
    with store.opened(world, read_only=True) as con:
        before = snapshot(con)
    code, _, err = _run(capsys, argv)
    assert code == 2 and "exp_cli" in err
    with store.opened(world, read_only=True) as con:
        assert_unchanged(before, con)


def test_assign_bad_file_names_it(world, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("id\nA\n")
    code, _, err = _run(
        capsys,
        ["assign", "exp_bad", "--intervention", "x", "--eligible", str(bad), "--salt", "s",
         "--store", str(world)],
    )  # fmt: skip
    assert code == 2 and "bad.csv" in err and "customer_id" in err


def test_design_from_store_cluster_icc_and_too_few_clusters(world, capsys):
    code, out, err = _run(
        capsys,
        ["design", "revenue", "--mde", "20", "--from-store", "--store", str(world),
         "--cluster", "region", "--json"],
    )  # fmt: skip
    assert code == 0, err
    plan = json.loads(out)
    with store.opened(world, read_only=True) as con:
        inputs = design_inputs(con, cluster="region")
    deff = design.design_effect(
        inputs.icc_revenue, inputs.mean_cluster_size, inputs.cluster_size_cv
    )
    assert plan["cluster"]["design_effect"] == pytest.approx(deff)
    needed = plan["cluster"]["clusters_control"] + plan["cluster"]["clusters_treatment"]
    assert inputs.n_clusters == 4  # the simulator's regions: far too few clusters for this MDE
    assert needed > inputs.n_clusters
    assert any("clusters but only 4 exist" in w for w in plan["warnings"])


@pytest.mark.parametrize("command", ["readout", "decide"])
def test_sample_ratio_mismatch_exits_4_before_fitting(world, tmp_path, capsys, command):
    copy = tmp_path / "srm.duckdb"
    copy.write_bytes(world.read_bytes())
    with store.opened(copy) as con:
        con.execute(
            "DELETE FROM assignments WHERE experiment_id = 'exp_recovery_gift' AND arm = 'control' "
            "AND customer_id IN (SELECT customer_id FROM assignments "
            "WHERE experiment_id = 'exp_recovery_gift' AND arm = 'control' "
            "ORDER BY customer_id LIMIT 40)"
        )
    code, out, err = _run(capsys, [command, "exp_recovery_gift", "--store", str(copy)])
    assert code == 4, err
    assert "sample-ratio-mismatch" in err and "exp_recovery_gift" in err
    assert "--ignore-srm" in err and "nothing was fitted" in err


def test_report_without_a_published_run_is_exit_2_and_writes_nothing(world, tmp_path, capsys):
    out_dir = tmp_path / "reports"
    code, _, err = _run(capsys, ["report", "--store", str(world), "--out", str(out_dir)])
    assert code == 2 and "cx refresh" in err
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_assign_with_looks_writes_a_monitoring_plan_and_design_states_it(world, tmp_path, capsys):
    with store.opened(world, read_only=True) as con:
        ids = con.execute("SELECT customer_id FROM customers ORDER BY customer_id LIMIT 500").df()
    eligible = tmp_path / "eligible.csv"
    ids.to_csv(eligible, index=False)
    base = [
        "assign", "exp_watched", "--intervention", "loyalty_call", "--eligible", str(eligible),
        "--salt", "watch", "--store", str(world), "--started", "2025-05",
    ]  # fmt: skip
    code, _, err = _run(capsys, [*base, "--looks", "3"])
    assert code == 2 and "--horizon-months" in err
    code, out, err = _run(
        capsys,
        [*base, "--looks", "3", "--horizon-months", "3", "--churn-after-window", "held"],
    )
    assert code == 0, err
    assert "Monitored: decided only at 3 look(s)" in out
    with store.opened(world, read_only=True) as con:
        record = json.loads(
            con.execute(
                "SELECT design FROM experiments WHERE experiment_id = 'exp_watched'"
            ).fetchone()[0]
        )
    assert record["monitoring"]["look_months"] == [1, 2, 3]
    assert record["churn_effect_after_window"] == "held"
    assert record["monitoring"]["thresholds"] == pytest.approx(
        design.monitoring_record(3, 3)["thresholds"]
    )
    code, out, err = _run(
        capsys, ["design", "revenue", "--mde", "5", "--sd", "60", "--looks", "3", "--json"]
    )
    assert code == 0, err
    looks = json.loads(out)["rule"]["looks"]
    assert looks["thresholds"] == pytest.approx(record["monitoring"]["thresholds"])
