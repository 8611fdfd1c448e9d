"""``kill -9`` at each of the refresh's 20 checkpoints: the store is never left half-published.

Before, during and after fitting, at every step of the publish transaction and after it, a
refresh of a store file kills its own process with SIGKILL (the test hook
:data:`attribution.refresh.KILL_AT_ENV`). After each kill the store opens and holds either the
previous published run's estimates, unchanged, or (killed once the transaction committed) the
new run's, complete: never a mix, never a run published without its estimates. The next refresh
marks every run a kill left ``running`` as ``abandoned``.

The children are forked from this process after it compiled the models, so each samples without
compiling (a few seconds). A 3,000-customer world, one experiment, overall only.
"""

from __future__ import annotations

import multiprocessing
import os
import signal

import pandas as pd
import pytest

from attribution import runs, store, synth
from attribution.config import config_from_dict
from attribution.refresh import KILL_AT_ENV, KILL_POINTS, refresh_store

CONFIG = {
    "model": {"segments": [], "chains": 4, "draws": 300, "tune": 300},
    "experiments": {"include": ["exp_recovery_gift"]},
}
#: From this checkpoint on, the new run has committed: it is the published one.
COMMITTED = KILL_POINTS.index("publish: committed")
#: From this checkpoint on, a run has been registered (and left running by the kill).
REGISTERED = KILL_POINTS.index("run registered")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("kill") / "world.duckdb"
    with store.opened(path) as con:
        synth.simulate(con, 3000, months=8, seed=5)
    first = refresh_store(path, config_from_dict(CONFIG), force=True)  # compiles, here
    assert first.status == "published", first.reasons
    return path


def _published(path) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    with store.opened(path, read_only=True) as con:
        current = runs.current_run(con)["run_id"]
        estimates = runs.current_estimates(con)
        listed = runs.list_runs(con).set_index("run_id")
    return current, estimates, listed


def _refresh_killed_at(path, point: str) -> None:  # runs in a forked child
    os.environ[KILL_AT_ENV] = point
    refresh_store(path, config_from_dict(CONFIG), force=True)
    os._exit(0)  # not reached when the checkpoint is passed


KEYS = ["experiment_id", "arm", "outcome", "segment_by", "segment", "metric"]


def _key(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEYS).reset_index(drop=True)


def test_kill_9_at_twenty_checkpoints_never_leaves_a_mix_and_the_next_refresh_cleans_up(world):
    assert len(KILL_POINTS) == 20
    context = multiprocessing.get_context("fork")
    killed_running = []
    for i, point in enumerate(KILL_POINTS):
        before_id, before, listed_before = _published(world)
        child = context.Process(target=_refresh_killed_at, args=(world, point))
        child.start()
        child.join(timeout=600)
        assert child.exitcode == -signal.SIGKILL, (point, child.exitcode)
        after_id, after, listed = _published(world)  # the store opens and reads
        new = [r for r in listed.index if r not in listed_before.index]
        assert len(new) == (1 if i >= REGISTERED else 0), (point, new)
        if i >= COMMITTED:  # the new run is the published one, with every estimate
            assert after_id == new[0] != before_id, point
            assert set(after["run_id"]) == {after_id} and len(after) == len(before), point
            pd.testing.assert_frame_equal(_key(after)[KEYS], _key(before)[KEYS])
        else:  # the previous run is still current, its estimates untouched
            assert after_id == before_id, point
            pd.testing.assert_frame_equal(after, before)
            if new:
                assert listed.loc[new[0], "status"] == "running", point
                assert listed.loc[new[0], "estimates"] == 0, point
                killed_running.append(new[0])
        # every published run has all its estimates, every other run none: never a mix
        with store.opened(world, read_only=True) as con:
            counts = con.execute(
                "SELECT r.run_id, r.status, count(e.run_id) FROM runs r "
                "LEFT JOIN estimates e USING (run_id) GROUP BY ALL"
            ).fetchall()
        for run_id, status, n in counts:
            assert n == (len(before) if status == "published" else 0), (point, run_id, status)
    final = refresh_store(world, config_from_dict(CONFIG), force=True)
    assert final.status == "published"
    _, _, listed = _published(world)
    assert "running" not in set(listed["status"])
    assert set(listed.loc[killed_running, "status"]) == {"abandoned"}
    assert len(killed_running) == COMMITTED - REGISTERED
