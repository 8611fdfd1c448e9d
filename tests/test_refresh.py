"""A refresh you can trust: one at a time, killed at any moment without harm, checked at publish.

Real stores, real processes, real ``kill -9``. The fits are small (one experiment, overall only,
a 5,000-customer world) and compile once in this process; the process killed inside the publish
transaction is forked from it after that compile, so it samples without compiling again.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from importlib import metadata

import pandas as pd
import pytest
from conftest import ROOT

from attribution import runs, store, synth
from attribution.config import config_from_dict, load_config
from attribution.errors import InputError
from attribution.refresh import (
    KILL_AT_ENV,
    KILL_POINTS,
    PUBLISH_SLEEP_ENV,
    TerminalProgress,
    refresh,
    refresh_store,
)
from attribution.store import RefreshRunningError

TOML = """
[model]
segments = []
chains = 4
draws = 300
tune = 300

[experiments]
include = ["exp_recovery_gift"]
"""

REFRESH_SCRIPT = """
import sys
from attribution.config import load_config
from attribution.refresh import refresh_store
outcome = refresh_store(sys.argv[1], load_config(sys.argv[2]), force=True,
                        log=lambda m: print(m, file=sys.stderr, flush=True))
sys.exit(outcome.exit_code)
"""

HOLD_SCRIPT = """
import sys, time
from attribution import store
with store.refresh_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _python(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", *args], cwd=ROOT, text=True, env={**os.environ}, **kwargs
    )


def _hold_lock(path, seconds: float) -> subprocess.Popen:
    """Another process holding the store's refresh lock for ``seconds``."""
    proc = _python(HOLD_SCRIPT, str(path), str(seconds), stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _wait_for_line(stream, needle: str, timeout: float) -> list[str]:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"no line with {needle!r} within {timeout} s:\n{''.join(seen)}")


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "cx.toml"
    path.write_text(TOML)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("refresh") / "world.duckdb"
    with store.opened(path) as con:
        con.execute("BEGIN TRANSACTION")
        synth.simulate(con, 5000, months=12, seed=11)
        con.execute("COMMIT")
    return path


@pytest.fixture
def empty_store(tmp_path):
    path = tmp_path / "empty.duckdb"
    store.connect(path).close()
    return path


# ------------------------------------------------------------------------------------------
# Before any work: configuration against the store, and one refresh at a time
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[model]\nsegments = ['colour']\n", r"model\.segments: \['colour'\] not a column"),
        ("[experiments]\ninclude = ['exp_nope']\n", r"experiments\.include: \['exp_nope'\]"),
        ("[targeting]\nexperiments = ['exp_nope']\n", r"targeting\.experiments: \['exp_nope'\]"),
    ],
)
def test_settings_the_store_cannot_satisfy_are_named_before_a_run_starts(
    world, tmp_path, toml, message
):
    path = tmp_path / "cx.toml"
    path.write_text(toml)
    with pytest.raises(InputError, match=message):
        refresh_store(world, load_config(path))
    with store.opened(world, read_only=True) as con:
        assert runs.list_runs(con).empty


def test_a_second_refresh_stops_at_once_naming_the_running_one(empty_store):
    holder = _hold_lock(empty_store, 60)
    try:
        t0 = time.monotonic()
        with pytest.raises(
            RefreshRunningError,
            match=f"another refresh is running \\(process {holder.pid}, since .*--wait SECONDS",
        ):
            refresh_store(empty_store)
        assert time.monotonic() - t0 < 5
        # The in-process form takes the same lock.
        with store.opened(empty_store) as con, pytest.raises(RefreshRunningError):
            refresh(con)
        with store.opened(empty_store, read_only=True) as con:
            assert runs.list_runs(con).empty
    finally:
        holder.kill()
        holder.wait()


def test_a_second_refresh_waits_for_the_first_then_runs(empty_store):
    holder = _hold_lock(empty_store, 2)
    lines: list[str] = []
    t0 = time.monotonic()
    outcome = refresh_store(empty_store, wait=60, log=lines.append)
    waited = time.monotonic() - t0
    holder.wait()
    assert 1.0 < waited < 30
    assert any(
        "another refresh is running" in line and "waiting up to 60 s" in line for line in lines
    )
    # It ran: the store has no experiments, so the run fails as bad input (exit code 2).
    assert outcome.status == "failed" and outcome.exit_code == 2
    assert outcome.reasons == ["no experiments with assignments in the store"]


def test_the_lock_of_a_killed_refresh_is_released_by_the_operating_system(empty_store):
    holder = _hold_lock(empty_store, 60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with store.refresh_lock(empty_store) as waited:
        assert waited == 0.0


# ------------------------------------------------------------------------------------------
# Publish, kill -9 while fitting and inside the publish transaction, refresh again
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def published(world, config_file):
    lines: list[str] = []
    outcome = refresh_store(world, load_config(config_file), log=lines.append)
    assert outcome.status == "published", outcome.reasons
    with store.opened(world, read_only=True) as con:
        before = runs.current_estimates(con)
    return outcome, before, lines


def _current(path) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    with store.opened(path, read_only=True) as con:
        return (
            runs.current_run(con)["run_id"],
            runs.current_estimates(con),
            runs.list_runs(con).set_index("run_id"),
        )


def test_a_published_run_logs_one_line_per_step_with_timings(published):
    outcome, before, lines = published
    assert outcome.exit_code == 0 and len(before) == len(outcome.estimates) > 0
    text = "\n".join(lines)
    for step in (
        "refresh lock",
        "data hash",
        "started",
        "cells of 1 experiment(s)",
        "fitting",
        "retention by _overall: ",
        "fitted in",
        "published in",
        "publish step",
    ):
        assert step in text, text
    # the compiled model: compiled here, loaded from the run's disk cache or reused in-process
    assert re.search(
        r"retention by _overall: (compile|compiled model loaded from disk in|compiled model "
        r"reused,) ",
        text,
    )
    assert sum(" s" in line for line in lines) >= len(lines) - 3


def test_kill_9_while_fitting_leaves_the_published_estimates_current(world, config_file, published):
    first, before, _ = published
    proc = _python(REFRESH_SCRIPT, str(world), str(config_file), stderr=subprocess.PIPE)
    try:
        _wait_for_line(proc.stderr, "fitting", timeout=180)
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    run_id, now, listed = _current(world)
    assert run_id == first.run_id
    pd.testing.assert_frame_equal(now, before)
    assert list(listed["status"]).count("running") == 1


def _refresh_in_child(path, config_file, log_path) -> None:  # runs in a forked process
    with open(log_path, "w", buffering=1) as log:
        refresh_store(path, load_config(config_file), force=True, log=lambda m: print(m, file=log))
    os._exit(0)


def test_kill_9_inside_the_publish_transaction_publishes_nothing(
    world, config_file, published, tmp_path, monkeypatch
):
    first, before, _ = published
    log_path = tmp_path / "child.log"
    monkeypatch.setenv(PUBLISH_SLEEP_ENV, "120")
    child = multiprocessing.get_context("fork").Process(
        target=_refresh_in_child, args=(world, config_file, log_path)
    )
    child.start()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and child.is_alive():
        if log_path.exists() and "in the publish transaction" in log_path.read_text():
            break
        time.sleep(0.2)
    text = log_path.read_text()
    assert "in the publish transaction" in text, text
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    killed = next(line.split()[1] for line in text.splitlines() if line.startswith("run "))
    run_id, now, listed = _current(world)
    assert run_id == first.run_id and killed != first.run_id
    pd.testing.assert_frame_equal(now, before)
    assert listed.loc[killed, "status"] == "running" and listed.loc[killed, "estimates"] == 0


def test_a_later_refresh_publishes_and_marks_killed_runs_abandoned(world, config_file, published):
    first, before, _ = published
    lines: list[str] = []
    outcome = refresh_store(world, load_config(config_file), force=True, log=lines.append)
    assert outcome.status == "published" and outcome.exit_code == 0
    run_id, now, listed = _current(world)
    assert run_id == outcome.run_id != first.run_id
    assert len(now) == len(before) and set(now["run_id"]) == {outcome.run_id}
    assert "running" not in set(listed["status"])
    assert (listed["status"] == "abandoned").sum() == 2
    # The run killed while fitting was marked by the refresh forked after it; this one marked
    # the run killed inside the publish transaction.
    assert any("marked 1 run(s) left running by a killed refresh" in line for line in lines)
    # Unchanged data and configuration: nothing to do, and no new run.
    again = refresh_store(world, load_config(config_file))
    assert again.status == "unchanged" and again.run_id == outcome.run_id and again.exit_code == 0
    assert len(_current(world)[2]) == len(listed)


def test_the_registry_holds_versions_data_hash_and_diagnostics_per_model(world):
    with store.opened(world, read_only=True) as con:
        current = runs.current_run(con)["run_id"]
        record = runs.run_record(con, current)
        data = runs.data_hash(con)
        listed = runs.list_runs(con).set_index("run_id")
    assert record.versions["pymc"] == metadata.version("pymc")
    assert record.versions["duckdb"] == metadata.version("duckdb")
    assert record.data_hash == data
    models = record.models()
    # the three models and their combination into one joint posterior (attribution.joint)
    assert sorted(models["model"]) == [
        f"{o} by _overall" for o in ("cost_to_serve", "joint", "retention", "revenue")
    ]
    assert models["passed"].all() and (models["min_ess_bulk"] >= 400).all()
    assert (models["max_rhat"] <= 1.01).all() and (models["divergences"] == 0).all()
    assert listed.loc[current, "models"] == 4 and listed.loc[current, "models_failed"] == 0
    assert json.loads(json.dumps(record.to_dict()))["versions"] == record.versions
    assert "pymc" in record.describe()


def test_targeting_that_cannot_be_fitted_is_recorded_and_the_estimates_still_publish(
    world, tmp_path, published
):
    """Targeting is advice beside the estimates: the small world's gift test has too few
    control customers to cross-fit per-customer uplift, which stops the targeting (recorded
    with the run, said in the log), not the run."""
    copy = tmp_path / "world.duckdb"  # the module's world keeps its runs for the other tests
    shutil.copyfile(world, copy)
    path = tmp_path / "cx.toml"
    path.write_text(TOML + "\n[targeting]\nexperiments = ['exp_recovery_gift']\n")
    lines: list[str] = []
    outcome = refresh_store(copy, load_config(path), force=True, log=lines.append)
    assert outcome.status == "published", outcome.reasons
    with store.opened(copy, read_only=True) as con:
        record = runs.run_record(con, runs.current_run(con)["run_id"])
    error = record.diagnostics["targeting"]["error"]
    assert re.search(r"arm control has \d+ customers; .* needs at least 200 per arm", error)
    assert any(
        line.startswith("targeting: not fitted: experiment exp_recovery_gift") for line in lines
    )
    assert not outcome.reasons


def test_data_changed_while_fitting_fails_the_run_and_publishes_nothing(world, config_file):
    before_id, before, _ = _current(world)

    def change_data() -> None:
        with store.opened(world) as con:
            con.execute(
                "UPDATE outcomes SET revenue = revenue + 1 WHERE customer_id = "
                "(SELECT min(customer_id) FROM outcomes) "
                "AND period = (SELECT min(period) FROM outcomes)"
            )

    outcome = refresh_store(
        world, load_config(config_file), force=True, _before_publish=change_data
    )
    assert outcome.status == "failed" and outcome.exit_code == 1
    assert any("the data changed while the models were fitted" in r for r in outcome.reasons)
    run_id, now, listed = _current(world)
    assert run_id == before_id
    pd.testing.assert_frame_equal(now, before)
    assert listed.loc[outcome.run_id, "status"] == "failed"
    assert "data changed" in listed.loc[outcome.run_id, "reason"]


# ------------------------------------------------------------------------------------------
# People at a terminal get a live line; schedulers get plain lines
# ------------------------------------------------------------------------------------------
def _read_all(fd: int) -> str:
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        chunks.append(os.read(fd, 65536))
    return b"".join(chunks).decode()


def test_the_progress_line_is_drawn_on_a_terminal_only(tmp_path):
    master, slave = os.openpty()
    try:
        with open(slave, "w", closefd=False) as tty, open(tmp_path / "plain.txt", "w") as plain:
            assert TerminalProgress.for_stream(plain) is None
            bar = TerminalProgress.for_stream(tty)
            assert bar is not None
            bar.interval = 0.05
            logged = []
            with bar:
                say = bar.wrap(lambda m: (logged.append(m), tty.write(m + "\n"), tty.flush()))
                bar.step("fitting exp_a [1/2]")
                time.sleep(0.3)
                say("exp_a: fitted in 0.3 s")
        out = _read_all(master)
    finally:
        os.close(master)
        os.close(slave)
    assert "... fitting exp_a [1/2] (0:00, total 0:00)" in out
    assert out.count("fitting exp_a") >= 3  # redrawn while it runs
    # The status line is cleared before a log line (the terminal turns "\n" into "\r\n").
    assert "\r\x1b[2Kexp_a: fitted in 0.3 s\r\n" in out
    assert logged == ["exp_a: fitted in 0.3 s"]


# ------------------------------------------------------------------------------------------
# kill -9 at every checkpoint
# ------------------------------------------------------------------------------------------
#: From this checkpoint on, the new run has committed: it is the published one.
_COMMITTED = KILL_POINTS.index("publish: committed")
#: From this checkpoint on, a run has been registered (and left running by the kill).
_REGISTERED = KILL_POINTS.index("run registered")


def _published_run(path) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    with store.opened(path, read_only=True) as con:
        current = runs.current_run(con)["run_id"]
        estimates = runs.current_estimates(con)
        listed = runs.list_runs(con).set_index("run_id")
    return current, estimates, listed


# The same model structures as ``published`` (compiled there), shorter chains and a lenient
# gate: what is tested is the store after a kill, not the fits.
_KILL_CONFIG = {
    "model": {"segments": [], "chains": 4, "draws": 150, "tune": 200},
    "gate": {"min_ess_bulk": 100, "min_ess_tail": 100, "max_rhat": 1.05, "max_divergences": 5},
    "experiments": {"include": ["exp_recovery_gift"]},
}


def _refresh_killed_at(path, point: str) -> None:  # runs in a forked child
    os.environ[KILL_AT_ENV] = point
    refresh_store(path, config_from_dict(_KILL_CONFIG), force=True)
    os._exit(0)  # not reached when the checkpoint is passed


_KEYS = ["experiment_id", "arm", "outcome", "segment_by", "segment", "metric"]


def _key(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(_KEYS).reset_index(drop=True)


@pytest.mark.slow  # ~30 s: a sweep; the fast suite kills while fitting and inside the publish
# transaction (above), the two places a mix could come from
def test_kill_9_at_twenty_checkpoints_never_leaves_a_mix_and_the_next_refresh_cleans_up(
    world, config_file, published, tmp_path
):
    """``kill -9`` at each of the refresh's 20 checkpoints (:data:`KILL_POINTS`: before, while
    and after fitting, each step of the publish transaction, after it), on a copy of the world.

    After each kill the store opens and holds either the previous run's estimates, untouched,
    or (killed once the transaction committed) the new run's, complete: never a mix. The next
    refresh marks every run a kill left ``running`` as ``abandoned``. The children are forked
    after ``published`` compiled the models, so each samples without compiling.
    """
    assert len(KILL_POINTS) == 20
    path = tmp_path / "kill.duckdb"
    path.write_bytes(world.read_bytes())
    context = multiprocessing.get_context("fork")
    killed_running = []
    for i, point in enumerate(KILL_POINTS):
        before_id, before, listed_before = _published_run(path)
        child = context.Process(target=_refresh_killed_at, args=(path, point))
        child.start()
        child.join(timeout=600)
        assert child.exitcode == -signal.SIGKILL, (point, child.exitcode)
        after_id, after, listed = _published_run(path)  # the store opens and reads
        new = [r for r in listed.index if r not in listed_before.index]
        assert len(new) == (1 if i >= _REGISTERED else 0), (point, new)
        if i >= _COMMITTED:  # the new run is the published one, with every estimate
            assert listed.loc[new[0], "status"] == "published", (point, listed.loc[new[0]])
            assert after_id == new[0] != before_id, point
            assert set(after["run_id"]) == {after_id} and len(after) == len(before), point
            pd.testing.assert_frame_equal(_key(after)[_KEYS], _key(before)[_KEYS])
        else:  # the previous run is still current, its estimates untouched
            assert after_id == before_id, point
            pd.testing.assert_frame_equal(after, before)
            if new:
                assert listed.loc[new[0], "status"] == "running", point
                assert listed.loc[new[0], "estimates"] == 0, point
                killed_running.append(new[0])
        # every published run has all its estimates, every other run none: never a mix
        with store.opened(path, read_only=True) as con:
            counts = con.execute(
                "SELECT r.run_id, r.status, count(e.run_id) FROM runs r "
                "LEFT JOIN estimates e USING (run_id) GROUP BY ALL"
            ).fetchall()
        for run_id, status, n in counts:
            assert n == (len(before) if status == "published" else 0), (point, run_id, status)
    final = refresh_store(path, config_from_dict(_KILL_CONFIG), force=True)
    assert final.status == "published"
    _, _, listed = _published_run(path)
    assert "running" not in set(listed["status"])
    assert set(listed.loc[killed_running, "status"]) == {"abandoned"}
    assert len(killed_running) == _COMMITTED - _REGISTERED
