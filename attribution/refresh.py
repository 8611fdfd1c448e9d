"""Refresh: fit every experiment in the store and publish only if every model passed.

Every experiment passes the sample-ratio-mismatch gate of :func:`attribution.readout.read_out`
first: one that alarms fails the whole run like a failed diagnostics gate (the reason is recorded
on the run, nothing is published, the previous estimates stay current). The run's diagnostics
JSON holds each experiment's SRM check under ``"srm"``.

``cx refresh`` runs this from cron or an orchestrator. A run whose data and configuration are
unchanged since the last published run does nothing unless forced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from attribution import runs
from attribution.config import Config
from attribution.errors import CxError, SampleRatioError
from attribution.readout import ExperimentReadout, experiment_ids, read_out, srm_record

UNCHANGED = "unchanged"


@dataclass
class RefreshOutcome:
    """What a refresh did: its run id, status, why it failed, and the published headline."""

    run_id: str | None
    status: str
    reasons: list[str] = field(default_factory=list)
    readouts: list[ExperimentReadout] = field(default_factory=list)
    estimates: pd.DataFrame | None = None
    seconds: float = 0.0

    @property
    def headline(self) -> pd.DataFrame | None:
        if not self.readouts:
            return None
        return pd.concat([r.headline() for r in self.readouts], ignore_index=True)

    def records(self) -> list[dict]:
        if self.estimates is None:
            return []
        import json

        return json.loads(self.estimates.to_json(orient="records"))

    def describe(self) -> str:
        if self.status == UNCHANGED:
            return (
                f"nothing to do: data and configuration are unchanged since run {self.run_id} "
                "(use --force to refit)"
            )
        head = f"run {self.run_id}: {self.status} in {self.seconds:.0f} s"
        if self.status == runs.PUBLISHED:
            return head + f", {len(self.estimates)} estimates published"
        return (
            head
            + "; nothing published, the previous estimates stay current:\n  "
            + "\n  ".join(self.reasons)
        )


def refresh(
    con: duckdb.DuckDBPyConnection,
    config: Config | None = None,
    *,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> RefreshOutcome:
    """Fit every selected experiment and publish the estimates in one transaction.

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
    """
    cfg = config or Config()
    say = log or (lambda _m: None)
    started = time.perf_counter()
    data = runs.data_hash(con)
    current = runs.current_run(con)
    if (
        not force
        and current is not None
        and current["data_hash"] == data
        and current["config_hash"] == cfg.hash
    ):
        say(f"unchanged since run {current['run_id']}")
        return RefreshOutcome(current["run_id"], UNCHANGED)
    run_id = runs.start_run(con, cfg.hash, data)
    say(f"run {run_id} started (config {cfg.hash}, data {data})")
    selected = list(cfg.experiments.include) or experiment_ids(con)
    readouts, reasons, diagnostics, srm = [], [], {}, {}
    for experiment_id in selected:
        t0 = time.perf_counter()
        try:
            result = read_out(con, experiment_id, config=cfg)
        except SampleRatioError as exc:
            reasons.append(f"{experiment_id}: {exc}")
            srm[experiment_id] = srm_record(exc.srm, exc.arms)
            say(f"{experiment_id}: failed the sample-ratio-mismatch check, not fitted")
            continue
        except CxError as exc:
            reasons.append(f"{experiment_id}: {exc}")
            say(f"{experiment_id}: failed: {exc}")
            continue
        readouts.append(result)
        srm[experiment_id] = result.srm_dict()
        reasons += [f"{experiment_id}: {r}" for r in result.reasons]
        diagnostics[experiment_id] = {
            f"{outcome} by {seg}": model.diagnostics_.summary().to_dict(orient="records")
            for (outcome, seg), model in result.models.items()
        }
        verdict = "passed" if result.passed else "FAILED the diagnostics gate"
        say(f"{experiment_id}: fitted in {time.perf_counter() - t0:.1f} s, {verdict}")
    if not selected:
        reasons.append("no experiments with assignments in the store")
    estimates = (
        pd.concat([r.table for r in readouts], ignore_index=True).drop(columns="diagnostics")
        if readouts
        else None
    )
    status = runs.finish_run(
        con,
        run_id,
        estimates,
        {"models": diagnostics, "srm": srm, "reasons": reasons},
        publish=not reasons,
        interval=cfg.interval,
    )
    seconds = time.perf_counter() - started
    say(f"run {run_id} {status} in {seconds:.1f} s")
    return RefreshOutcome(run_id, status, reasons, readouts, estimates, seconds)
