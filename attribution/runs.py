"""The run registry and publishing: estimates become current only when a whole run passed.

A run is registered (status ``running``) and committed before any model is fitted. At the end,
one transaction either publishes (inserts every estimate and marks the run ``published``) or
marks it ``failed`` with the reasons, leaving the previous published estimates current. A run
killed in between stays ``running`` forever and is ignored: the store never holds half a run.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from importlib import metadata

import duckdb
import pandas as pd

from attribution.settings import INTERVAL, IntervalSetting

PUBLISHED, FAILED, RUNNING = "published", "failed", "running"
_ESTIMATE_COLUMNS = [
    "run_id",
    "experiment_id",
    "intervention",
    "arm",
    "outcome",
    "segment_by",
    "segment",
    "metric",
    "mean",
    "lo",
    "hi",
    "p_positive",
    "expected_loss",
    "n_treated",
    "n_control",
    "interval_width",
    "method",
]
_PACKAGES = ("cx-attribution", "pymc", "pytensor", "arviz", "nutpie", "duckdb", "numpy", "pandas")


def versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on."""
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def data_hash(con: duckdb.DuckDBPyConnection) -> str:
    """A fingerprint of the data models read: row counts and content checksums of each table."""
    parts = []
    for table in ("customers", "outcomes", "interventions", "experiments", "assignments"):
        # hash(t) hashes the whole row (the alias is a struct), whatever columns the table has.
        count, checksum = con.execute(
            f"SELECT count(*), bit_xor(hash(t)) FROM {table} t"
        ).fetchone()
        parts.append(f"{table}:{count}:{checksum}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def start_run(con: duckdb.DuckDBPyConnection, config_hash: str, data: str) -> str:
    """Register a run as ``running`` (committed at once) and return its id."""
    run_id = f"{_now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    con.execute(
        "INSERT INTO runs (run_id, started, status, config_hash, data_hash, versions) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [run_id, _now(), RUNNING, config_hash, data, json.dumps(versions())],
    )
    return run_id


def finish_run(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    estimates: pd.DataFrame | None,
    diagnostics: dict,
    *,
    publish: bool,
    interval: IntervalSetting = INTERVAL,
    method: str = "bayesian_cells",
) -> str:
    """End a run in one transaction: publish its estimates, or record why it failed.

    Parameters
    ----------
    estimates : pandas.DataFrame or None
        Rows with the readout columns; written only when ``publish`` is True.
    diagnostics : dict
        Per-model diagnostics, stored as JSON on the run.
    publish : bool
        True when every model passed the gate.

    Returns
    -------
    str
        The run's final status.
    """
    status = PUBLISHED if publish else FAILED
    con.execute("BEGIN TRANSACTION")
    try:
        if publish and estimates is not None and len(estimates):
            frame = estimates.copy()
            frame["run_id"] = run_id
            frame["interval_width"] = interval.width
            if "method" not in frame:
                frame["method"] = method
            for col in _ESTIMATE_COLUMNS:
                if col not in frame:
                    frame[col] = None
            frame = frame[_ESTIMATE_COLUMNS]
            con.register("_cx_estimates", frame)
            con.execute("INSERT INTO estimates SELECT * FROM _cx_estimates")
            con.unregister("_cx_estimates")
        con.execute(
            "UPDATE runs SET finished = ?, status = ?, diagnostics = ? WHERE run_id = ?",
            [_now(), status, json.dumps(diagnostics, default=str), run_id],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return status


def list_runs(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every run, newest first, with how many estimates it published."""
    return con.execute(
        """
        SELECT r.run_id, r.started, r.finished, r.status, r.config_hash, r.data_hash,
               count(e.run_id) AS estimates
        FROM runs r LEFT JOIN estimates e USING (run_id)
        GROUP BY ALL ORDER BY r.started DESC, r.run_id DESC
        """
    ).df()


def current_run(con: duckdb.DuckDBPyConnection) -> dict | None:
    """The latest published run, or None."""
    row = con.execute(
        "SELECT run_id, config_hash, data_hash, finished FROM runs WHERE status = ? "
        "ORDER BY finished DESC, run_id DESC LIMIT 1",
        [PUBLISHED],
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("run_id", "config_hash", "data_hash", "finished"), row, strict=True))


def current_estimates(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The estimates of the latest published run (empty when none)."""
    run = current_run(con)
    if run is None:
        return pd.DataFrame(columns=_ESTIMATE_COLUMNS)
    return con.execute(
        "SELECT * FROM estimates WHERE run_id = ? "
        "ORDER BY experiment_id, arm, outcome, segment_by, segment, metric",
        [run["run_id"]],
    ).df()
