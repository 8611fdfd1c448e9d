"""The run registry and publishing: estimates become current only when a whole run passed.

A run is registered (status ``running``) and committed before any model is fitted, with the
hash of its configuration, the hash of the data it read and the versions of the packages its
results depend on. At the end, one transaction either publishes (inserts every estimate and marks
the run ``published``) or marks it ``failed`` with the reasons, leaving the previous published
estimates current; either way the run's diagnostics (per model) are stored with it. A run killed
in between stays ``running`` until the next refresh, which holds the refresh lock and so knows
it is dead, marks it ``abandoned``: the store never holds half a run.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pandas as pd

from attribution import store
from attribution.errors import InputError
from attribution.estimates import ESTIMATE_COLUMNS
from attribution.settings import INTERVAL, IntervalSetting
from attribution.versions import installed

PUBLISHED, FAILED, RUNNING, ABANDONED = "published", "failed", "running", "abandoned"
#: The tables models read (:data:`attribution.store.DATA_TABLES` are every data table): hashed by
#: :func:`data_hash`.
MODEL_TABLES = ("customers", "outcomes", "interventions", "experiments", "assignments")

_TEXT_COLUMNS = (
    "experiment_id", "intervention", "arm", "outcome", "segment_by", "segment", "metric",
    "method", "estimand", "verdict", "question", "estimator",
)  # fmt: skip
#: Sort order of :func:`current_estimates` (a total order over one run's rows).
_ESTIMATE_ORDER = (
    "experiment_id", "arm", "outcome", "segment_by", "segment", "metric", "question", "method",
    "estimator", "estimand",
)  # fmt: skip
_PACKAGES = ("cx-attribution", "pymc", "pytensor", "arviz", "nutpie", "duckdb", "numpy", "pandas")


def versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on."""
    return installed(_PACKAGES)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def data_hash(
    con: duckdb.DuckDBPyConnection, tables: tuple[str, ...] | list[str] = MODEL_TABLES
) -> str:
    """A fingerprint of the data models read: row counts and content checksums of each table.

    ``tables`` defaults to :data:`MODEL_TABLES`; a refresh with observational questions adds
    ``interactions`` (their confounders and conditions read it).
    """
    parts = []
    for table in tables:
        # hash(t) hashes the whole row (the alias is a struct), whatever columns the table has.
        # fetchall, not fetchone: it finishes the result, so the connection is free for
        # ``register`` inside :func:`finish_run`'s transaction.
        ((count, checksum),) = con.execute(
            f"SELECT count(*), bit_xor(hash(t)) FROM {table} t"
        ).fetchall()
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
    expect_data_hash: str | None = None,
    data_tables: tuple[str, ...] | list[str] = MODEL_TABLES,
    before_commit: Callable[[], None] | None = None,
    checkpoint: Callable[[str], None] | None = None,
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
    expect_data_hash : str, optional
        The hash of the data the models were fitted on. Checked inside the transaction: when the
        store's data hash differs, nothing is published and the run fails with that reason.
    data_tables : sequence of str
        The tables ``expect_data_hash`` was computed over (see :func:`data_hash`).
    before_commit : callable, optional
        Called inside the transaction just before the commit (a test hook).
    checkpoint : callable, optional
        Called with the name of each step of the transaction (``publish: transaction begun``,
        ``publish: data hash checked``, ``publish: estimates written``, ``publish: run
        updated``, ``publish: committed``): the refresh's kill-test hook.

    Returns
    -------
    str
        The run's final status.
    """
    status = PUBLISHED if publish else FAILED
    mark = checkpoint or (lambda _name: None)
    con.execute("BEGIN TRANSACTION")
    try:
        mark("publish: transaction begun")
        if expect_data_hash is not None:
            now = data_hash(con, data_tables)
            if now != expect_data_hash:
                status, publish = FAILED, False
                diagnostics = {
                    **diagnostics,
                    "reasons": [
                        *diagnostics.get("reasons", []),
                        f"the data changed while the models were fitted (data hash "
                        f"{expect_data_hash} when read, {now} at publish); nothing published, "
                        "run the refresh again",
                    ],
                }
        mark("publish: data hash checked")
        if publish and estimates is not None and len(estimates):
            frame = estimates.copy()
            frame["run_id"] = run_id
            frame["interval_width"] = interval.width
            if "method" not in frame:
                frame["method"] = method
            for col in ESTIMATE_COLUMNS:
                if col not in frame:
                    frame[col] = None
            frame = frame[ESTIMATE_COLUMNS]
            for col in _TEXT_COLUMNS:  # missing text is NULL, never the string 'nan'
                frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
            store.register(con, "_cx_estimates", frame)
            con.execute("INSERT INTO estimates BY NAME SELECT * FROM _cx_estimates")
            con.unregister("_cx_estimates")
        mark("publish: estimates written")
        con.execute(
            "UPDATE runs SET finished = ?, status = ?, diagnostics = ? WHERE run_id = ?",
            [_now(), status, json.dumps(diagnostics, default=str), run_id],
        )
        mark("publish: run updated")
        if before_commit is not None:
            before_commit()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    mark("publish: committed")
    return status


def abandon_stale(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Mark runs left ``running`` as ``abandoned``; returns their ids.

    Call only while holding the refresh lock (:func:`attribution.store.refresh_lock`): then no
    refresh is running, so a ``running`` row belongs to a process that died (``kill -9``).
    """
    stale = [
        r[0] for r in con.execute("SELECT run_id FROM runs WHERE status = ?", [RUNNING]).fetchall()
    ]
    if stale:
        reason = json.dumps({"reasons": ["the process ended before the run finished (killed)"]})
        con.execute(
            "UPDATE runs SET status = ?, finished = ?, diagnostics = ? WHERE status = ?",
            [ABANDONED, _now(), reason, RUNNING],
        )
    return stale


def list_runs(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every run, newest first: times, status, hashes, model verdicts, estimates, first reason.

    Columns: ``run_id, started, finished, seconds, status, config_hash, data_hash, cx_version,
    models, models_failed, estimates, reason``. ``models`` counts the fitted models recorded in
    the run's diagnostics and ``models_failed`` those that failed the gate; :func:`run_record`
    gives one run in full (package versions, per-model diagnostics).
    """
    frame = con.execute(
        """
        SELECT r.run_id, r.started, r.finished,
               date_diff('millisecond', r.started, r.finished) / 1000.0 AS seconds,
               r.status, r.config_hash, r.data_hash, r.versions, r.diagnostics,
               count(e.run_id) AS estimates
        FROM runs r LEFT JOIN estimates e USING (run_id)
        GROUP BY ALL ORDER BY r.started DESC, r.run_id DESC
        """
    ).df()
    parsed = [_models(d) for d in frame["diagnostics"]]
    frame["cx_version"] = [_loads(v).get("cx-attribution") for v in frame["versions"]]
    frame["models"] = [len(m) for m in parsed]
    frame["models_failed"] = [
        sum(1 for d in m.values() if d.get("passed") is False) for m in parsed
    ]
    frame["reason"] = [
        next(iter(_loads(d).get("reasons") or []), None) for d in frame["diagnostics"]
    ]
    cols = [
        "run_id", "started", "finished", "seconds", "status", "config_hash", "data_hash",
        "cx_version", "models", "models_failed", "estimates", "reason",
    ]  # fmt: skip
    return frame[cols]


def _loads(text) -> dict:
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return {}
    return json.loads(text) if isinstance(text, str) else dict(text)


def _models(text) -> dict[str, dict]:
    """``{"experiment: model": diagnostics}`` from a run's diagnostics JSON.

    The cell-route fits of observational questions count as models too, keyed
    ``"observational NAME: OUTCOME g-formula"``.
    """
    out = {}
    loaded = _loads(text)
    for experiment, models in (loaded.get("models") or {}).items():
        for name, diag in models.items():
            out[f"{experiment}: {name}"] = diag if isinstance(diag, dict) else {"variables": diag}
    for question, record in (loaded.get("observational") or {}).items():
        for outcome, diag in ((record or {}).get("gformula") or {}).items():
            out[f"{OBSERVATIONAL_PREFIX}{question}: {outcome} g-formula"] = diag
    return out


#: How an observational question is named where experiments are listed (run models, reports).
OBSERVATIONAL_PREFIX = "observational "


@dataclass
class RunRecord:
    """One run of the registry in full.

    Attributes
    ----------
    run_id, status, config_hash, data_hash : str
    started, finished : datetime or None
    versions : dict
        Package versions the run's results depend on.
    diagnostics : dict
        As stored: ``models`` (per experiment and model), ``srm``, ``reasons``.
    estimates : int
        Estimates the run published.
    """

    run_id: str
    started: object
    finished: object
    status: str
    config_hash: str | None
    data_hash: str | None
    versions: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    estimates: int = 0

    def models(self) -> pd.DataFrame:
        """One row per fitted model: verdict, worst R-hat and ESS, divergences, timings."""
        rows = []
        for name, d in _models(json.dumps(self.diagnostics)).items():
            experiment, model = name.split(": ", 1)
            rows.append(
                {
                    "experiment_id": experiment,
                    "model": model,
                    "passed": d.get("passed"),
                    "max_rhat": d.get("max_rhat"),
                    "min_ess_bulk": d.get("min_ess_bulk"),
                    "min_ess_tail": d.get("min_ess_tail"),
                    "divergences": d.get("divergences"),
                    "sample_s": (d.get("timings") or {}).get("sample_s"),
                }
            )
        return pd.DataFrame(
            rows,
            columns=[
                "experiment_id", "model", "passed", "max_rhat", "min_ess_bulk", "min_ess_tail",
                "divergences", "sample_s",
            ],
        )  # fmt: skip

    def refutations(self) -> pd.DataFrame:
        """One row per observational question, outcome and refuter: the verdict and its words."""
        return refutation_table(self.diagnostics)

    @property
    def reasons(self) -> list[str]:
        return list(self.diagnostics.get("reasons") or [])

    def to_dict(self) -> dict:
        """JSON-ready: every field, the per-model table as records."""
        return {
            "run_id": self.run_id,
            "started": None if self.started is None else str(self.started),
            "finished": None if self.finished is None else str(self.finished),
            "status": self.status,
            "config_hash": self.config_hash,
            "data_hash": self.data_hash,
            "versions": self.versions,
            "estimates": self.estimates,
            "reasons": self.reasons,
            "models": json.loads(self.models().to_json(orient="records")),
            "refutations": json.loads(self.refutations().to_json(orient="records")),
            "diagnostics": self.diagnostics,
        }

    def describe(self) -> str:
        """Plain text: the run, its versions, a line per model, the reasons."""
        lines = [
            f"run {self.run_id}: {self.status}, started {self.started}, finished {self.finished}, "
            f"{self.estimates} estimates",
            f"config {self.config_hash}, data {self.data_hash}",
            "versions: " + ", ".join(f"{k} {v}" for k, v in self.versions.items()),
        ]
        models = self.models()
        if len(models):
            lines.append(models.to_string(index=False))
        refutations = self.refutations()
        if len(refutations):
            lines.append("refutations of the observational questions:")
            lines += [
                f"  {r.question} {r.outcome}: {r.text}" for r in refutations.itertuples(index=False)
            ]
        lines += [f"  {r}" for r in self.reasons]
        return "\n".join(lines)


REFUTATION_COLUMNS = ["question", "outcome", "refuter", "verdict", "text"]


def refutation_table(diagnostics: dict) -> pd.DataFrame:
    """The refutations a run's diagnostics JSON records per observational question.

    Parameters
    ----------
    diagnostics : dict
        A run's diagnostics (``observational``: question -> ``refutations``: list of dicts with
        ``outcome``, ``refuter``, ``verdict`` and ``text``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`REFUTATION_COLUMNS`, one row per question, outcome and refuter.

    Examples
    --------
    >>> d = {"observational": {"q": {"refutations": [{"outcome": "retention",
    ...      "refuter": "placebo_treatment", "verdict": "pass", "text": "Placebo: pass."}]}}}
    >>> refutation_table(d)["verdict"].tolist()
    ['pass']
    """
    rows = []
    for question, record in ((diagnostics or {}).get("observational") or {}).items():
        for r in (record or {}).get("refutations") or []:
            rows.append({"question": question, **{k: r.get(k) for k in REFUTATION_COLUMNS[1:]}})
    return pd.DataFrame(rows, columns=REFUTATION_COLUMNS)


def run_record(con: duckdb.DuckDBPyConnection, run_id: str) -> RunRecord:
    """One run in full (package versions, per-model diagnostics, reasons).

    Raises
    ------
    InputError
        No run with that id.
    """
    row = con.execute(
        "SELECT r.run_id, r.started, r.finished, r.status, r.config_hash, r.data_hash, "
        "r.versions, r.diagnostics, (SELECT count(*) FROM estimates e WHERE e.run_id = r.run_id) "
        "FROM runs r WHERE r.run_id = ?",
        [run_id],
    ).fetchone()
    if row is None:
        raise InputError(f"no run {run_id!r} in the store; `cx runs` lists them")
    return RunRecord(*row[:6], _loads(row[6]), _loads(row[7]), int(row[8]))


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
        return pd.DataFrame(columns=ESTIMATE_COLUMNS)
    have = store.columns(con, "estimates")
    order = ", ".join(c for c in _ESTIMATE_ORDER if c in have)
    frame = con.execute(
        f"SELECT * FROM estimates WHERE run_id = ? ORDER BY {order}", [run["run_id"]]
    ).df()
    # A store opened read-only before its migration lacks the newer columns: they are null.
    return frame.reindex(columns=ESTIMATE_COLUMNS)
