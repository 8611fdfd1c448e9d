"""Refresh: fit every experiment in the store and publish only if every model passed.

Observational questions (``[[observational]]`` in ``cx.toml``, see :mod:`attribution.config`)
are fitted after the experiments with :func:`attribution.causal.attribute` on the same snapshot
and published in the same transaction. Publishing rule: every Bayesian cell-route (g-formula) fit
must pass its diagnostics gate, like an uplift model (else the run fails, exit code 3); a
question that cannot be fitted (no treated customers, not identifiable, ...) fails it as bad
input (exit code 2); refutation verdicts of ``warn`` do not block publishing but are stored with
each row (``verdict``) and in the run's diagnostics under ``"observational"`` (per question: the
g-formula diagnostics, the refutations, overlap, notes, timings). With questions, the data hash
and the snapshot include ``interactions`` (their confounders and conditions read it).

Every experiment passes the sample-ratio-mismatch gate of :func:`attribution.readout.read_out`
first: one that alarms fails the whole run like a failed diagnostics gate (the reason is recorded
on the run, nothing is published, the previous estimates stay current). The run's diagnostics
JSON holds each experiment's SRM check under ``"srm"`` and each model's diagnostics (verdict,
worst R-hat and ESS, divergences, per-variable table) under ``"models"``. Every check of the
run, in the one shape of :class:`attribution.checks.Check` (sample ratio and diagnostics gate per
experiment; overlap, refutations and g-formula gates per question), is under ``"checks"``, keyed
by experiment id or ``"observational <question>"``; the log says each one that did not pass.

``cx refresh`` runs :func:`refresh_store` from cron or an orchestrator. A run whose data and
configuration are unchanged since the last published run does nothing unless forced.

How a refresh stays safe (the choice made here)
-----------------------------------------------
DuckDB lets one process open a file for writing, and fitting takes minutes. Holding the store
open for that long would block every other ``cx`` command (``cx report``, ``cx summary``,
``cx load``). So :func:`refresh_store`:

1. takes the refresh lock, ``fcntl.flock`` on ``<store>.refresh.lock``
   (:func:`attribution.store.refresh_lock`): two refreshes never run at once. A second one
   waits up to ``wait`` seconds, then stops with a message naming the running one's process
   (:class:`~attribution.store.RefreshRunningError`, exit code 1). The operating system drops
   the lock when its holder dies, ``kill -9`` included;
2. opens the store briefly: checks the configuration against it (segment columns, experiments)
   before any work, hashes the data, stops if nothing changed, marks runs left ``running`` by a
   killed refresh as ``abandoned`` (safe: the lock says none is running), registers the run and
   reads what the experiment models fit: their cells and money inputs
   (:func:`attribution.readout.gather`, thousands of rows whatever the number of customers);
   only when observational questions are declared, whose routes read customer rows, it also
   copies those tables into a private snapshot (a temporary DuckDB file); closes;
3. fits with the store closed;
4. reopens the store and, in one transaction, re-hashes the data and publishes: if the data
   changed while fitting the run fails with that reason (estimates are never published for data
   they were not fitted on); otherwise the estimates are inserted and the run marked published.

Killing the process at any moment leaves the store as it was: before step 4's commit nothing
but the ``running`` row exists, which the next refresh marks abandoned. DuckDB writes a
transaction to its log only at commit, so a kill inside step 4 loses the whole transaction.

:func:`refresh` is the in-process form for notebooks and tests: it uses an open connection
throughout (and takes the same refresh lock when the connection is a file).

Exit codes (:attr:`RefreshOutcome.exit_code`): 0 published or unchanged; 1 the data changed
while fitting, or another refresh holds the lock (retry later); 2 bad configuration or input
(unknown segment column or experiment, no experiments, an experiment that cannot be read out);
3 a model failed its diagnostics gate; 4 a sample ratio mismatch stopped an experiment before it
was fitted. When several apply: 4, then 2, then 3, then 1.

Logs: one line per step, with timings, to the ``log`` callable (``cx`` prints them on stderr
with a clock time). :class:`TerminalProgress` adds a live line (step, elapsed time) for people at
a terminal; it is used only when stderr is a TTY.

Test hook: when the environment variable ``CX_TEST_PUBLISH_SLEEP`` holds a number of seconds,
the publish transaction sleeps that long after writing the estimates and before its commit, so
tests can kill a refresh inside it. It has no other use.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import duckdb
import pandas as pd

from attribution import runs, store
from attribution.checks import PASS, Check, describe_checks, tally
from attribution.config import Config, ObservationalQuestion
from attribution.errors import CxError, InputError, SampleRatioError
from attribution.observational import (
    DEFAULT_CONFOUNDERS,
    check_intervention,
    confounder_kind,
    valid_confounders,
)
from attribution.readout import (
    ExperimentReadout,
    ReadoutInputs,
    experiment_ids,
    fit_inputs,
    gather,
    precompile,
)
from attribution.srm import srm_record

UNCHANGED = "unchanged"
#: Seconds a refresh waits for the store at publish time when another process has it open.
PUBLISH_WAIT_S = 60.0
#: Test hook (see the module docstring): seconds to sleep inside the publish transaction.
PUBLISH_SLEEP_ENV = "CX_TEST_PUBLISH_SLEEP"
#: Test hook: the refresh kills its own process (SIGKILL) on reaching the named checkpoint.
KILL_AT_ENV = "CX_TEST_KILL_AT"
#: The checkpoints of a refresh of a store file, in the order it passes them (the kill test
#: kills a refresh at each): before, while and after fitting, inside the publish transaction
#: and after it.
KILL_POINTS = (
    "lock taken",
    "store opened",
    "configuration checked",
    "data hashed",
    "stale runs abandoned",
    "run registered",
    "fit inputs: first part read",
    "fit inputs read",
    "store closed for fitting",
    "fitting an experiment",
    "experiment fitted",
    "everything fitted",
    "store reopened to publish",
    "publish: transaction begun",
    "publish: data hash checked",
    "publish: estimates written",
    "publish: run updated",
    "publish: committed",
    "store closed after publishing",
    "refresh finished",
)


def _checkpoint(name: str) -> None:
    """The kill-test hook: SIGKILL this process at checkpoint ``name`` when asked to."""
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


EXIT_OK, EXIT_RETRY, EXIT_INPUT, EXIT_GATE, EXIT_SRM = 0, 1, 2, 3, 4
#: Why a run failed, by kind, to the exit code it gives (first match wins, in this order).
# How a fit got its compiled model, in the progress lines (cellmodel.ModelCache sources).
_CACHE_WORDS = {
    "compiled": "compile",
    "disk": "compiled model loaded from disk in",
    "memory": "compiled model reused,",
    "none": "PyMC model built in",
}

_EXIT_BY_KIND = (("srm", EXIT_SRM), ("input", EXIT_INPUT), ("gate", EXIT_GATE))


@dataclass
class RefreshOutcome:
    """What a refresh did: its run id, status, why it failed, and the published headline.

    Attributes
    ----------
    run_id : str or None
        The run registered (or, when unchanged, the published run it matched).
    status : str
        ``published``, ``failed`` or ``unchanged``.
    reasons : list of str
        Why it failed, in plain words.
    kinds : set of str
        Kinds of failure: ``srm``, ``input``, ``gate``, ``data_changed``.
    data_hash, config_hash : str
        Fingerprints of the data read and the settings used.
    attributions : dict
        Question name -> :class:`attribution.causal.Attribution` for each observational
        question fitted.
    monitoring : dict
        Experiment id -> where each monitored test stands (:func:`monitoring_status`): its
        verdict (``continue`` until a boundary is crossed), the look, the next decision date.
    """

    run_id: str | None
    status: str
    reasons: list[str] = field(default_factory=list)
    readouts: list[ExperimentReadout] = field(default_factory=list)
    estimates: pd.DataFrame | None = None
    seconds: float = 0.0
    kinds: set[str] = field(default_factory=set)
    data_hash: str | None = None
    config_hash: str | None = None
    attributions: dict = field(default_factory=dict)
    monitoring: dict = field(default_factory=dict)

    @property
    def headline(self) -> pd.DataFrame | None:
        if not self.readouts:
            return None
        return pd.concat([r.headline() for r in self.readouts], ignore_index=True)

    @property
    def exit_code(self) -> int:
        """0 published or unchanged, else 4 SRM, 2 input, 3 gate, 1 data changed (see module)."""
        if self.status in (runs.PUBLISHED, UNCHANGED):
            return EXIT_OK
        for kind, code in _EXIT_BY_KIND:
            if kind in self.kinds:
                return code
        return EXIT_RETRY if "data_changed" in self.kinds else EXIT_GATE

    def records(self) -> list[dict]:
        """The estimates as JSON-ready rows (empty when none)."""
        if self.estimates is None:
            return []
        return json.loads(self.estimates.to_json(orient="records"))

    def to_dict(self) -> dict:
        """JSON-ready: run id, status, exit code, reasons, hashes, seconds and the estimates."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "exit_code": self.exit_code,
            "reasons": list(self.reasons),
            "data_hash": self.data_hash,
            "config_hash": self.config_hash,
            "seconds": round(self.seconds, 2),
            "monitoring": self.monitoring,
            "estimates": self.records(),
        }

    def describe(self) -> str:
        """One line on what happened; the reasons, one a line, when the run failed."""
        if self.status == UNCHANGED:
            return (
                f"nothing to do: data and configuration are unchanged since run {self.run_id} "
                "(use --force to refit)"
            )
        head = f"run {self.run_id}: {self.status} in {self.seconds:.0f} s"
        watched = "".join(
            f"\n{eid}: {m['verdict']}. {m['sentence']}" for eid, m in self.monitoring.items()
        )
        if self.status == runs.PUBLISHED:
            return head + f", {len(self.estimates)} estimates published" + watched
        head += watched
        return (
            head + f" (exit code {self.exit_code}); nothing published, the previous estimates stay "
            "current:\n  " + "\n  ".join(self.reasons)
        )


# ------------------------------------------------------------------------------------------------
# Progress for people at a terminal
# ------------------------------------------------------------------------------------------------
class TerminalProgress:
    """A live status line (step and elapsed time) redrawn in place on a terminal.

    Log lines go through :meth:`wrap`, which clears the status line first, so the two never mix.
    Use only when the stream is a TTY (:meth:`for_stream` checks); schedulers get plain lines.

    Examples
    --------
    >>> import io
    >>> TerminalProgress.for_stream(io.StringIO()) is None
    True
    """

    def __init__(self, stream: TextIO, interval: float = 0.5) -> None:
        self.stream = stream
        self.interval = interval
        self._text = ""
        self._since = time.monotonic()
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @classmethod
    def for_stream(cls, stream: TextIO | None = None) -> TerminalProgress | None:
        """A progress line on ``stream`` (default stderr) when it is a TTY, else None."""
        stream = sys.stderr if stream is None else stream
        isatty = getattr(stream, "isatty", None)
        return cls(stream) if isatty is not None and isatty() else None

    def __enter__(self) -> TerminalProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        with self._lock:
            self._clear()

    def step(self, text: str) -> None:
        """Show a new step; its clock starts now."""
        with self._lock:
            self._text, self._since = text, time.monotonic()
            self._draw()

    def wrap(self, log: Callable[[str], None]) -> Callable[[str], None]:
        """A log callable that clears the status line, logs, and redraws it."""

        def say(message: str) -> None:
            with self._lock:
                self._clear()
                log(message)
                self._draw()

        return say

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                self._draw()

    def _draw(self) -> None:
        if not self._text:
            return
        now = time.monotonic()
        since, total = _clock(now - self._since), _clock(now - self._start)
        line = f"\r\x1b[2K... {self._text} ({since}, total {total})"
        self.stream.write(line)
        self.stream.flush()

    def _clear(self) -> None:
        self.stream.write("\r\x1b[2K")
        self.stream.flush()


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


# ------------------------------------------------------------------------------------------------
# The refresh
# ------------------------------------------------------------------------------------------------
def refresh_store(
    path: str | os.PathLike[str] | None = None,
    config: Config | None = None,
    *,
    force: bool = False,
    wait: float = 0.0,
    log: Callable[[str], None] | None = None,
    progress: bool | None = None,
    _before_publish: Callable[[], None] | None = None,
) -> RefreshOutcome:
    """Refresh a store file safely: lock, snapshot, fit with the store closed, publish atomically.

    See the module docstring for the steps and why. This is what ``cx refresh`` runs.

    Parameters
    ----------
    path : path-like, optional
        The store; default ``config.store``, else :func:`attribution.store.resolve_path`.
    config : Config, optional
        Settings (defaults when omitted).
    force : bool
        Refit even when data and configuration are unchanged since the last published run.
    wait : float
        Seconds to wait for another refresh (the refresh lock) or another process holding the
        store; 0 (default) stops at once with :class:`~attribution.store.RefreshRunningError`.
    log : callable, optional
        Receives one line per step, with timings.
    progress : bool, optional
        Show a live status line on stderr; default: only when stderr is a TTY.

    Returns
    -------
    RefreshOutcome
        ``status`` is ``published``, ``failed`` or ``unchanged``; ``exit_code`` says how a
        scheduler should see it.

    Raises
    ------
    InputError
        A configured segment column or experiment is not in the store, or the store is missing;
        raised before a run is registered.
    RefreshRunningError
        Another refresh still held the lock after ``wait`` seconds.
    StoreLockedError
        Another process held the store open for writing after ``wait`` seconds.

    Examples
    --------
    >>> import tempfile
    >>> from attribution import synth
    >>> target = Path(tempfile.mkdtemp()) / "cx.duckdb"
    >>> with store.opened(target) as con:
    ...     _ = synth.simulate(con, 2000, months=6, seed=1)
    >>> refresh_store(target).status  # doctest: +SKIP
    'published'
    """
    cfg = config or Config()
    target = store.resolve_path(path if path is not None else cfg.store)
    bar = TerminalProgress.for_stream() if progress is None else None
    if progress:
        bar = TerminalProgress(sys.stderr)
    base = log or (lambda _m: None)
    if bar is None:
        return _refresh_store(target, cfg, force, wait, base, None, _before_publish)
    with bar:
        return _refresh_store(target, cfg, force, wait, bar.wrap(base), bar, _before_publish)


def _refresh_store(target, cfg, force, wait, say, bar, before_publish) -> RefreshOutcome:
    started = time.perf_counter()
    step = bar.step if bar is not None else (lambda _t: None)
    step("waiting for the refresh lock")
    with store.refresh_lock(target, wait=wait, on_wait=say) as waited:
        say(f"refresh lock {store.lock_path(target)} taken (waited {waited:.1f} s)")
        _checkpoint("lock taken")
        with tempfile.TemporaryDirectory(prefix="cx-refresh-") as tmp:
            step("reading the store")
            t0 = time.perf_counter()
            con = store.connect_waiting(target, wait=wait, create=False)
            try:
                _checkpoint("store opened")
                prepared = _prepare(con, cfg, force, say, abandon=True)
                if isinstance(prepared, RefreshOutcome):
                    return prepared
                run_id, data, selected = prepared
                snap = None
                try:
                    inputs = _gather(con, cfg, selected)
                    targeting = _gather_targeting(con, cfg)
                    if cfg.observational:  # the observational routes read customer rows
                        path = Path(tmp) / "snapshot.duckdb"
                        snap, rows = _snapshot(con, path, data_tables(cfg))
                except BaseException:
                    _fail_quietly(con, run_id, "the store could not be read")
                    raise
                _checkpoint("fit inputs read")
            finally:
                con.close()
            cell_rows = sum(
                len(split) for i in inputs.values() if isinstance(i, ReadoutInputs)
                for split in i.splits.values()
            )  # fmt: skip
            say(
                f"cells of {len(selected)} experiment(s) ({cell_rows:,} rows)"
                + (f" and a snapshot of {rows:,} rows" if snap is not None else "")
                + f" read in {time.perf_counter() - t0:.1f} s; store closed"
            )
            _checkpoint("store closed for fitting")
            try:
                try:
                    fitted = _fit(inputs, snap, cfg, selected, say, step, targeting)
                finally:
                    if snap is not None:
                        snap.close()
                _checkpoint("everything fitted")
                if before_publish is not None:
                    before_publish()
            except BaseException as exc:
                _fail_after(target, run_id, f"interrupted while fitting: {type(exc).__name__}")
                raise
            step("publishing")
            t0 = time.perf_counter()
            con = store.connect_waiting(target, wait=max(wait, PUBLISH_WAIT_S), create=False)
            try:
                _checkpoint("store reopened to publish")
                outcome = _finish(con, cfg, run_id, data, fitted, say, started)
            finally:
                con.close()
            say(f"publish step took {time.perf_counter() - t0:.1f} s; store closed")
            _checkpoint("store closed after publishing")
        _checkpoint("refresh finished")
        return outcome


def refresh(
    con: duckdb.DuckDBPyConnection,
    config: Config | None = None,
    *,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> RefreshOutcome:
    """Fit every selected experiment and publish the estimates in one transaction (in-process).

    The same steps as :func:`refresh_store` on an already open connection, which stays open
    throughout: for notebooks and tests. On a store file it takes the refresh lock (no wait).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open, writable store.
    config : Config, optional
        Settings (defaults when omitted).
    force : bool
        Refit even when data and configuration are unchanged since the last published run.
    log : callable, optional
        Receives one line per step, with timings.

    Returns
    -------
    RefreshOutcome
        ``status`` is ``published``, ``failed`` or ``unchanged``.

    Raises
    ------
    InputError
        A configured segment column or experiment is not in the store (before any run).
    RefreshRunningError
        A refresh of the same store file is running in another process.
    """
    cfg = config or Config()
    say = log or (lambda _m: None)
    started = time.perf_counter()
    path = store.store_path(con)
    if path is None:
        return _refresh_open(con, cfg, force, say, started, abandon=False)
    with store.refresh_lock(path):
        return _refresh_open(con, cfg, force, say, started, abandon=True)


def _refresh_open(con, cfg, force, say, started, *, abandon: bool) -> RefreshOutcome:
    prepared = _prepare(con, cfg, force, say, abandon=abandon)
    if isinstance(prepared, RefreshOutcome):
        return prepared
    run_id, data, selected = prepared
    try:
        inputs, targeting = _gather(con, cfg, selected), _gather_targeting(con, cfg)
        fitted = _fit(inputs, con, cfg, selected, say, lambda _t: None, targeting)
    except BaseException as exc:
        _fail_quietly(con, run_id, f"interrupted while fitting: {type(exc).__name__}")
        raise
    return _finish(con, cfg, run_id, data, fitted, say, started)


def data_tables(cfg: Config) -> tuple[str, ...]:
    """The tables a refresh with these settings reads: hashed, and copied into its snapshot.

    :data:`attribution.runs.MODEL_TABLES`, plus ``interactions`` when observational questions or
    targeting are declared (their confounders, conditions and features read it).

    Examples
    --------
    >>> "interactions" in data_tables(Config())
    False
    """
    extra = ("interactions",) if cfg.observational or cfg.targeting.experiments else ()
    return (*runs.MODEL_TABLES, *extra)


def check_config(con: duckdb.DuckDBPyConnection, cfg: Config) -> list[str]:
    """Check the configuration against the store; returns the experiments to fit.

    Raises
    ------
    InputError
        A segment column that is not a column of ``customers``, an included or targeted
        experiment that is not in the store or has no assignments, or an observational
        question whose intervention, condition column, confounders or segment the store does
        not have; the message names the setting.
    """
    for question in cfg.observational:
        check_question(con, cfg, question)
    known = store.segment_columns(con)
    unknown = [c for c in cfg.model.segments if c not in known]
    if unknown:
        raise InputError(
            f"model.segments: {unknown} not a column of customers; the store has {known}"
        )
    have = experiment_ids(con)
    for setting, named in (
        ("experiments.include", cfg.experiments.include),
        ("targeting.experiments", cfg.targeting.experiments),
    ):
        missing = [e for e in named if e not in have]
        if missing:
            raise InputError(
                f"{setting}: {missing} not an experiment with assignments in the store; "
                f"it has {have}"
            )
    return list(cfg.experiments.include) or have


def check_question(
    con: duckdb.DuckDBPyConnection, cfg: Config, question: ObservationalQuestion
) -> list[str]:
    """Check one observational question against the store (cheap look-ups, no fitting).

    Returns
    -------
    list of str
        The confounders it will adjust for.

    Raises
    ------
    InputError
        An intervention with no rows in ``interventions``, a condition column that is not an
        ``interactions`` column, a confounder that is neither derived nor a ``customers`` column,
        or a segment that is not one of its categorical confounders; the message names the
        question and the value.
    """
    key = f"observational {question.name!r}"
    if question.intervention:
        check_intervention(con, question.intervention, where=f"{key}: ")
    else:
        column = question.condition.partition("=")[0].strip()
        cols = [c for c in store.columns(con, "interactions") if c not in ("customer_id", "ts")]
        if column not in cols:
            raise InputError(
                f"{key}: condition {question.condition!r}: {column!r} is not an interactions "
                f"column; valid: {cols}"
            )
    chosen = list(question.confounders or cfg.causal.confounders or DEFAULT_CONFOUNDERS)
    valid = valid_confounders(con)
    unknown = [c for c in chosen if c not in valid]
    if unknown:
        where = "confounders" if question.confounders else "causal.confounders"
        raise InputError(f"{key}: {where} {unknown} not a confounder the store has; valid: {valid}")
    if question.segment:
        customers = store.columns(con, "customers")
        categorical = [c for c in chosen if confounder_kind(c, customers) == "categorical"]
        if question.segment not in categorical:
            raise InputError(
                f"{key}: segment {question.segment!r} must be one of its categorical "
                f"confounders: {categorical}"
            )
    return chosen


def _prepare(con, cfg: Config, force: bool, say, *, abandon: bool):
    """Checks, hash, unchanged test and run registration; an outcome when there is nothing to do."""
    t0 = time.perf_counter()
    selected = check_config(con, cfg)
    _checkpoint("configuration checked")
    data = runs.data_hash(con, data_tables(cfg))
    _checkpoint("data hashed")
    say(f"data hash {data}, config hash {cfg.hash} ({time.perf_counter() - t0:.1f} s)")
    current = runs.current_run(con)
    if (
        not force
        and current is not None
        and current["data_hash"] == data
        and current["config_hash"] == cfg.hash
    ):
        say(f"unchanged since run {current['run_id']}: nothing to do")
        return RefreshOutcome(current["run_id"], UNCHANGED, data_hash=data, config_hash=cfg.hash)
    if abandon:
        stale = runs.abandon_stale(con)
        if stale:
            say(f"marked {len(stale)} run(s) left running by a killed refresh as abandoned")
        _checkpoint("stale runs abandoned")
    run_id = runs.start_run(con, cfg.hash, data)
    _checkpoint("run registered")
    questions = [q.name for q in cfg.observational]
    say(
        f"run {run_id} started: {len(selected)} experiment(s) {selected}"
        + (f", {len(questions)} observational question(s) {questions}" if questions else "")
    )
    return run_id, data, selected


def _snapshot(
    con: duckdb.DuckDBPyConnection, path: Path, tables: tuple[str, ...] = runs.MODEL_TABLES
) -> tuple[duckdb.DuckDBPyConnection, int]:
    """Copy the tables the models read into a private store file; returns it open and its rows."""
    snap = store.connect(path)
    try:
        extra = {
            c: t
            for c, t in store.columns(con, "customers").items()
            if c in store.segment_columns(con)
        }
        store.add_customer_columns(snap, extra)
        rows = 0
        source = con.cursor()  # a cursor of its own: no pending result of ``con`` in the way
        for table in tables:
            reader = source.sql(f"SELECT * FROM {table}").to_arrow_reader(500_000)
            writer = snap.cursor()
            writer.register("_cx_snapshot", reader)
            writer.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _cx_snapshot")
            rows += writer.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            writer.close()
            _checkpoint("fit inputs: first part read")
    except BaseException:
        snap.close()
        raise
    return snap, rows


@dataclass
class _Fitted:
    readouts: list[ExperimentReadout]
    reasons: list[str]
    kinds: set[str]
    diagnostics: dict
    srm: dict
    attributions: dict = field(default_factory=dict)
    observational: dict = field(default_factory=dict)
    targeting: dict = field(default_factory=dict)
    rows: list[pd.DataFrame] = field(default_factory=list)
    checks: dict = field(default_factory=dict)

    def add_checks(self, where: str, key: str, checks: list[Check], say) -> None:
        """Record ``checks`` under ``key`` and say the count and every one that did not pass."""
        self.checks[key] = [c.to_dict() for c in checks]
        say(f"{where}: checks {tally(checks)}")
        for line in describe_checks([c for c in checks if c.verdict != PASS], indent=""):
            say(f"{where}: {line}")


def _gather(con, cfg: Config, selected: list[str]) -> dict[str, ReadoutInputs | CxError]:
    """Each selected experiment's readout inputs (cells, costs, totals), or why it can't be read."""
    out: dict[str, ReadoutInputs | CxError] = {}
    for experiment_id in selected:
        try:
            out[experiment_id] = gather(con, experiment_id, config=cfg)
        except CxError as exc:  # reported by _fit, in the experiment's turn
            out[experiment_id] = exc
        _checkpoint("fit inputs: first part read")
    return out


def _gather_targeting(con, cfg: Config):
    """The targeting rows of ``[targeting]``'s experiments and, with ``score_month``, the
    month's customers to score (``(month, frame)``), read while the store is open; or why they
    cannot be read; None without targeting."""
    if not cfg.targeting.experiments:
        return None
    from attribution.targeting import experiment_rows, population_rows
    from attribution.targeting.population import check_month

    try:
        rows = [experiment_rows(con, e, config=cfg) for e in cfg.targeting.experiments]
        month, population = cfg.targeting.score_month, None
        if month:
            start = check_month(con, month)
            population = (f"{start:%Y-%m}", population_rows(con, f"{start:%Y-%m}", rows))
        return rows, population
    except CxError as exc:
        return exc


def _fit(inputs: dict, con, cfg: Config, selected: list[str], say, step, targeting=None) -> _Fitted:
    """Fit the experiments from their gathered ``inputs``, then the observational questions
    on ``con`` (a snapshot of the store, or the open store in-process), then targeting from its
    gathered rows."""
    readouts, reasons, kinds, diagnostics, srm = [], [], set(), {}, {}
    fitted = _Fitted(readouts, reasons, kinds, diagnostics, srm)
    # every experiment's models compiled side by side first (a no-op once they are cached)
    t0 = time.perf_counter()
    step("compiling models")
    compiled = precompile([i for i in inputs.values() if isinstance(i, ReadoutInputs)], cfg)
    if compiled:
        say(
            f"{compiled} models compiled side by side in {time.perf_counter() - t0:.1f} s "
            "(kept on disk: the next process loads them)"
        )
    for i, experiment_id in enumerate(selected, start=1):
        where = f"{experiment_id} [{i}/{len(selected)}]"
        step(f"fitting {where}")
        say(f"{where}: fitting")
        _checkpoint("fitting an experiment")
        t0 = time.perf_counter()
        try:
            gathered = inputs[experiment_id]
            if isinstance(gathered, CxError):
                raise gathered
            result = fit_inputs(gathered, cfg)
        except SampleRatioError as exc:
            reasons.append(f"{experiment_id}: {exc}")
            kinds.add("srm")
            srm[experiment_id] = srm_record(exc.srm, exc.arms)
            say(f"{where}: failed the sample-ratio-mismatch check, not fitted")
            stopped = [] if exc.srm is None else [exc.srm.as_check(exc.arms)]
            fitted.add_checks(where, experiment_id, stopped, say)
            continue
        except CxError as exc:
            reasons.append(f"{experiment_id}: {exc}")
            kinds.add("input")
            say(f"{where}: failed: {exc}")
            continue
        readouts.append(result)
        _checkpoint("experiment fitted")
        srm[experiment_id] = result.srm_dict()
        if not result.passed:
            kinds.add("gate")
        reasons += [f"{experiment_id}: {r}" for r in result.reasons]
        diagnostics[experiment_id] = {}
        for (outcome, seg), model in result.models.items():
            d = model.diagnostics_
            diagnostics[experiment_id][f"{outcome} by {seg}"] = {
                **d.to_dict(),
                "timings": {k: round(v, 2) for k, v in model.timings_.items()},
                "sampler": model.sampler_,
                "compiled_model": model.cache_,
            }
            say(
                f"{where}: {outcome} by {seg}: "
                f"{_CACHE_WORDS[model.cache_]} {model.timings_['compile_s']:.1f} s, "
                f"sample {model.timings_['sample_s']:.1f} s, "
                + ("passed" if d.passed else "FAILED")
                + f" (max R-hat {d.max_rhat:.3f}, min bulk ESS {d.min_ess_bulk:.0f}, "
                f"{d.divergences} divergences)"
            )
        for seg, combined in result.joints.items():
            diagnostics[experiment_id][f"joint by {seg}"] = combined.diagnostics.to_dict()
        verdict = "passed" if result.passed else "FAILED the diagnostics gate"
        say(f"{where}: fitted in {time.perf_counter() - t0:.1f} s, {verdict}")
        fitted.add_checks(where, experiment_id, result.checks(), say)
    if not selected and not cfg.observational:
        reasons.append("no experiments with assignments in the store")
        kinds.add("input")
    for i, question in enumerate(cfg.observational, start=1):
        step(f"observational {question.name} [{i}/{len(cfg.observational)}]")
        _fit_question(con, cfg, question, fitted, say)
    if targeting is not None:
        step("targeting")
        _fit_targeting(targeting, cfg, fitted, say)
    return fitted


def _fit_targeting(gathered, cfg: Config, fitted: _Fitted, say) -> None:
    """Per-customer uplift and the budgeted policy into ``fitted.targeting``. Advisory: what
    cannot be fitted is recorded and said, and does not stop the estimates being published."""
    from attribution.targeting import score_population
    from attribution.targeting.workflow import target_rows

    t0 = time.perf_counter()
    t = cfg.targeting
    try:
        if isinstance(gathered, CxError):
            raise gathered
        rows, population = gathered
        result = target_rows(rows, budget=t.budget, learner=t.learner, seed=t.seed, config=cfg)
        scored = None
        if population is not None:
            month, frame = population
            scored = score_population(result.fits, frame, month=month, budget=t.budget,
                                      setting=cfg.interval)  # fmt: skip
    except CxError as exc:
        fitted.targeting = {"error": str(exc)}
        say(f"targeting: not fitted: {exc}")
        return
    fitted.targeting = result.to_dict()
    fitted.add_checks("targeting", "targeting", result.checks, say)
    best = result.policy.value("targeted")
    say(
        f"targeting: {len(result.policy.picks):,} customers picked, incremental net value "
        f"{best['mean']:,.0f} [{best['lo']:,.0f}, {best['hi']:,.0f}] "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    if scored is not None:
        fitted.targeting["population"] = scored.to_dict()
        total = scored.total
        say(
            f"targeting: of the customers active in {scored.month}, {total['customers']:,} "
            f"picked, incremental net value {total['mean']:,.0f} "
            f"[{total['lo']:,.0f}, {total['hi']:,.0f}]"
        )


def _fit_question(con, cfg: Config, q: ObservationalQuestion, fitted: _Fitted, say) -> None:
    """Fit one observational question into ``fitted``: rows, diagnostics, reasons, kinds."""
    from attribution.causal import attribute

    where = f"observational {q.name}"
    say(f"{where}: fitting {q.label} ({', '.join(q.outcomes)})")
    t0 = time.perf_counter()
    try:
        result = attribute(
            con,
            q.intervention or None,
            condition=q.condition or None,
            outcome=list(q.outcomes),
            confounders=list(q.confounders) or None,
            as_of=q.as_of or None,
            config=cfg,
            horizon_months=cfg.model.horizon_months or None,
            segment=q.segment or None,
            gformula=q.gformula,
            compare_with=q.compare_with,
        )
    except CxError as exc:
        fitted.reasons.append(f"{where}: {exc}")
        fitted.kinds.add("input")
        fitted.observational[q.name] = {"question": _question_dict(q), "error": str(exc)}
        say(f"{where}: failed: {exc}")
        return
    fitted.attributions[q.name] = result
    record = _question_record(q, result)
    fitted.observational[q.name] = record
    if not result.identification.identifiable:
        fitted.reasons.append(f"{where}: {result.identification.text()}")
        fitted.kinds.add("input")
        say(f"{where}: not identifiable, nothing estimated")
        return
    d = result.data
    tm = result.timings
    say(
        f"{where}: {d.n_treated:,} treated and {d.n_untreated:,} untreated "
        f"{'customer-trials' if d.pooled else 'customers'}; {d.design}; "
        f"data {tm.get('data', 0):.1f} s, "
        f"overlap {tm.get('overlap', 0):.1f} s, DoWhy estimates {tm.get('dowhy', 0):.1f} s, "
        f"refutations {tm.get('refute', 0):.1f} s"
    )
    for outcome in result.outcomes:
        fit = result.gformula.get(outcome)
        words = result.verdict_words([outcome])
        if fit is None:
            say(f"{where} {outcome}: refutations {words}")
            continue
        g = fit.diagnostics_
        timings = fit.timings
        say(
            f"{where} {outcome}: g-formula {_CACHE_WORDS[fit.cache]} "
            f"{timings.get('compile_s', 0):.1f} s, "
            f"sample {timings.get('sample_s', 0):.1f} s, "
            + ("passed" if g.passed else "FAILED")
            + f" (max R-hat {g.max_rhat:.3f}, min bulk ESS {g.min_ess_bulk:.0f}, "
            f"{g.divergences} divergences); refutations {words}"
        )
        if not g.passed:
            fitted.kinds.add("gate")
            fitted.reasons += [f"{where} {outcome} (g-formula cells): {r}" for r in g.reasons]
    # the cell route's gate verdict lives in the run's diagnostics; rows carry the refutations
    rows = pd.DataFrame(result.records(published=True)).drop(columns="diagnostics")
    rows["question"] = q.name
    fitted.rows.append(rows)
    failed = any(not f.diagnostics_.passed for f in result.gformula.values())
    verdict = "FAILED the diagnostics gate" if failed else "passed"
    say(f"{where}: fitted in {time.perf_counter() - t0:.1f} s, {len(rows)} rows, {verdict}")
    fitted.add_checks(where, where, result.checks(), say)


def _question_dict(q: ObservationalQuestion) -> dict:
    return {
        "intervention": q.intervention or None,
        "condition": q.condition or None,
        "outcomes": list(q.outcomes),
        "confounders": list(q.confounders),
        "segment": q.segment or None,
        "as_of": q.as_of or None,
        "gformula": q.gformula,
        "compare_with": q.compare_with,
    }


def _question_record(q: ObservationalQuestion, result) -> dict:
    """What the run's diagnostics JSON holds for one question (see the module docstring)."""
    d = result.data
    fits = result.gformula
    if not q.gformula or (d.pooled and not fits):
        gate = "not fitted"
    else:
        gate = "passed" if fits and all(f.diagnostics_.passed for f in fits.values()) else "failed"
    return {
        "question": _question_dict(q),
        "treatment": d.treatment,
        "as_of": str(d.as_of),
        "horizon_months": d.horizon_months,
        "design": d.design,
        "populations": result.populations,
        "n_treated": d.n_treated,
        "n_untreated": d.n_untreated,
        "confounders": list(d.confounders),
        "identification": result.identification.to_dict(),
        "overlap": None if result.overlap is None else result.overlap.to_dict(),
        "refutations": [r.to_dict() for r in result.refutations],
        "sensitivity": [x.to_dict() for x in result.sensitivity],
        "verdict": result.verdict_words(),
        "gate": gate,
        "gformula": {
            o: {
                **f.diagnostics_.to_dict(),
                "timings": {k: round(v, 2) for k, v in f.timings.items()},
                "sampler": f.sampler,
                "n_cells": f.n_cells,
                "basis": f.basis,
                "likelihood_scale": f.likelihood_scale,
            }
            for o, f in fits.items()
        },
        "money": not result.money.empty,
        "notes": list(result.notes),
        "timings": {k: round(v, 2) for k, v in result.timings.items()},
    }


def _finish(
    con, cfg: Config, run_id: str, data: str, fitted: _Fitted, say, started
) -> RefreshOutcome:
    parts = [r.table.drop(columns="diagnostics") for r in fitted.readouts] + fitted.rows
    estimates = pd.concat(parts, ignore_index=True) if parts else None
    sleep = float(os.environ.get(PUBLISH_SLEEP_ENV) or 0)
    hook = None
    if sleep > 0:

        def hook() -> None:
            say(f"test hook {PUBLISH_SLEEP_ENV}: sleeping {sleep:g} s in the publish transaction")
            time.sleep(sleep)

    reasons, kinds = list(fitted.reasons), set(fitted.kinds)
    monitoring = monitoring_status(con, cfg, fitted.readouts, say)
    record = {
        "models": fitted.diagnostics,
        "srm": fitted.srm,
        "checks": fitted.checks,
        "reasons": reasons,
        "notes": {r.experiment_id: list(r.notes) for r in fitted.readouts},
        "assumed_unchanged": {r.experiment_id: list(r.assumed) for r in fitted.readouts},
    }
    if monitoring:
        record["monitoring"] = monitoring
    if cfg.observational:
        record["observational"] = fitted.observational
    if cfg.targeting.experiments:
        record["targeting"] = fitted.targeting
    if cfg.observational or cfg.targeting.experiments:
        record["data_tables"] = list(data_tables(cfg))
    status = runs.finish_run(
        con,
        run_id,
        estimates,
        record,
        publish=not reasons,
        interval=cfg.interval,
        expect_data_hash=data,
        data_tables=data_tables(cfg),
        before_commit=hook,
        checkpoint=_checkpoint,
    )
    if status == runs.FAILED and not reasons:
        kinds.add("data_changed")
        reasons = json.loads(
            con.execute("SELECT diagnostics FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
        )["reasons"]
    seconds = time.perf_counter() - started
    say(f"run {run_id} {status} in {seconds:.1f} s")
    return RefreshOutcome(
        run_id,
        status,
        reasons,
        fitted.readouts,
        estimates if status == runs.PUBLISHED else None,
        seconds,
        kinds,
        data,
        cfg.hash,
        fitted.attributions,
        monitoring,
    )


def monitoring_status(
    con: duckdb.DuckDBPyConnection, cfg: Config, readouts: list[ExperimentReadout], say
) -> dict:
    """Where each monitored test among ``readouts`` stands, decided as ``cx decide`` would.

    A test whose design record plans looks (``cx assign --looks``) is decided with the look's
    thresholds (:func:`experiments.decision.decide_readout`): "continue" until a boundary is
    crossed or the last look is reached. Fixed-horizon tests are not in the result.

    Returns
    -------
    dict
        Experiment id -> ``verdict``, ``verdicts`` (per arm), ``running``, ``look`` (the
        look record of :meth:`experiments.decision.Decision.to_dict`), ``sentence`` and
        ``reasons``.
    """
    from experiments.decision import decide_readout

    out = {}
    for readout in readouts:
        if readout.look is None:
            continue
        try:
            decision = decide_readout(con, readout, config=cfg)
        except CxError as exc:
            say(f"{readout.experiment_id}: warning: monitoring status not computed: {exc}")
            continue
        record = decision.to_dict()
        sentence = readout.look.sentence(readout.start)
        out[readout.experiment_id] = {
            "verdict": decision.verdict,
            "verdicts": record["verdicts"],
            "running": decision.running,
            "look": record["look"],
            "sentence": sentence,
            "reasons": record["reasons"],
        }
        say(f"{readout.experiment_id}: {decision.verdict}. {sentence}")
    return out


def _fail_quietly(con, run_id: str, reason: str) -> None:
    """Best effort: record a run that stopped early as failed (a kill leaves it to be abandoned)."""
    with contextlib.suppress(Exception):  # never hide the error that stopped the run
        runs.finish_run(con, run_id, None, {"reasons": [reason]}, publish=False)


def _fail_after(target: Path, run_id: str, reason: str) -> None:
    try:
        con = store.connect(target, create=False)
    except Exception:  # noqa: BLE001 - the store may be held; the next refresh abandons the run
        return
    try:
        _fail_quietly(con, run_id, reason)
    finally:
        con.close()
