"""Shared fixtures: real DuckDB stores, small hand-written data files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from attribution import store

ROOT = Path(__file__).resolve().parents[1]
_OWN_MODEL_CACHE = "CX_TEST_OWN_MODEL_CACHE"


def pytest_configure(config):
    """One compiled-model cache per test run, shared by the xdist workers and subprocesses.

    Set by the controller before the workers start (they inherit the environment), so each
    model structure compiles once per run; a run never reads the user's cache, and a clean
    run measures compiling as CI sees it. A cache given in ``CX_MODEL_CACHE`` is used as is.
    """
    if hasattr(config, "workerinput"):
        return
    # hand the test files to the workers in SLOWEST_FIRST order (see below), not by test count
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    # the xdist workers already use both cores: no helper processes compiling beside them
    # (tests/test_compiledcache.py turns them on where it tests them)
    os.environ.setdefault("CX_PARALLEL_COMPILE", "0")
    # ... and one OpenMP/BLAS thread each: scikit-learn's gradient boosting (targeting, AIPW)
    # otherwise starts a thread per core in each worker, and OpenMP threads that spin while
    # waiting for a core the other worker holds made those tests 2-3x slower in the suite
    for threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(threads, "1")
    if os.environ.get("CX_MODEL_CACHE"):
        return
    os.environ["CX_MODEL_CACHE"] = tempfile.mkdtemp(prefix="cx-test-models-")
    os.environ[_OWN_MODEL_CACHE] = os.environ["CX_MODEL_CACHE"]


#: The slowest test files, slowest first (worker seconds in a full run on 2 cores, 2026-12-05:
#: 150, 145, 132, 110, 98, 94, 67, 59, 57, 47, 44, 40, 39, 35, 35, 33). ``--dist loadfile``
#: hands whole files to the two workers in collection order; starting with the longest and
#: ending with the many short ones keeps both workers busy to the end (the longest-first rule).
#: Measured: ordered by test count, one worker idled 160 s of a 13-minute run.
SLOWEST_FIRST = (
    "test_decision.py",
    "test_trials.py",
    "test_lake.py",
    "test_clusters.py",
    "test_notebooks.py",
    "test_compiledcache.py",
    "test_uplift.py",
    "test_gformula.py",
    "test_loop.py",
    "test_assign.py",
    "test_power_simulation.py",
    "test_own_data.py",
    "test_refresh_observational.py",
    "test_report.py",
    "test_load_properties.py",
    "test_targeting.py",
)


def pytest_collection_modifyitems(config, items):
    """The files of :data:`SLOWEST_FIRST` first, in that order; the rest after them as collected
    (a stable sort: the tests of a file keep their order)."""
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_unconfigure(config):
    if hasattr(config, "workerinput"):
        return
    own = os.environ.pop(_OWN_MODEL_CACHE, None)
    if own:
        shutil.rmtree(own, ignore_errors=True)
        os.environ.pop("CX_MODEL_CACHE", None)


@pytest.fixture
def con():
    """A fresh in-memory store with the schema."""
    c = store.connect(":memory:")
    yield c
    c.close()


@pytest.fixture
def customers_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3", "C4"],
            "signup_date": ["2023-01-10", "2023-06-01", "2024-02-15", "2024-03-01"],
            "tier": ["gold", "silver", "gold", "bronze"],
            "region": ["north", "south", "north", "east"],
        }
    )


@pytest.fixture
def outcomes_frame() -> pd.DataFrame:
    rows = []
    for cid, base in [("C1", 50.0), ("C2", 0.0), ("C3", 20.0), ("C4", 5.0)]:
        for m, month in enumerate(["2025-01", "2025-02", "2025-03"]):
            active = 0 if (cid == "C2" and m == 2) else 1
            rows.append((cid, month, active, base * (m + 1) * active, 2.0 * active))
    return pd.DataFrame(
        rows, columns=["customer_id", "period", "active", "revenue", "cost_to_serve"]
    )


def snapshot(con) -> dict[str, pd.DataFrame]:
    """Every table's rows, sorted, to compare a store before and after a call."""
    out = {}
    for table in store.LOADABLE_TABLES + store.INTERNAL_TABLES:
        frame = con.execute(f"SELECT * FROM {table}").df()
        out[table] = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    out["_customer_columns"] = pd.DataFrame({"c": list(store.columns(con, "customers"))})
    return out


def planted_overall(con, intervention: str) -> dict[tuple[str, str], tuple[float, int]]:
    """The simulator's overall truth of an intervention: (estimand, outcome) -> (effect, n)."""
    rows = con.execute(
        "SELECT estimand, outcome, effect, n FROM truth "
        "WHERE intervention = ? AND segment_by = 'all'",
        [intervention],
    ).fetchall()
    return {(e, o): (eff, n) for e, o, eff, n in rows}


def assert_unchanged(before: dict[str, pd.DataFrame], con) -> None:
    after = snapshot(con)
    for table, frame in before.items():
        pd.testing.assert_frame_equal(frame, after[table], obj=table)


def run_cx(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 300):
    """Run the real ``cx`` command in a subprocess; returns CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "attribution", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=timeout,
    )
