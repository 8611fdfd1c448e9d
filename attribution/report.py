"""The finance report: the current run's estimates as one self-contained HTML file, CSV and Parquet.

:func:`build_report` reads only what the store's current published run holds (never the
simulator's truth) and writes three files into an output folder:

- ``report.html``: one file, plots embedded as PNG, no script, nothing fetched from the network.
  Sections in the order a finance reviewer reads them: per intervention the net value, ROI and
  payback with intervals and P(net value > 0); what drove it; where it worked (forest plots by
  segment); the ROI interval; the test design and sample sizes; data freshness and diagnostics;
  methods and assumptions; estimates not from randomized tests, marked as weaker evidence.
- ``estimates.csv`` and ``estimates.parquet``: every row the current run published.

Writing is atomic per file: everything is written into a temporary folder inside the output
folder first and renamed into place only when all three files are complete, so a report that
fails leaves the previous one intact. The page itself is rendered by
:mod:`attribution.report_html`; this module gathers and shapes the numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from attribution import runs, store
from attribution.checks import CHECK_COLUMNS, check_from_dict, checks_frame
from attribution.config import Config
from attribution.errors import InputError
from attribution.formatting import DRIVERS, RANDOMIZED_METHOD, _finite, headline_sentence
from attribution.readout import design_srm
from attribution.srm import srm_record
from attribution.value import MONEY_OUTCOMES

HTML_NAME, CSV_NAME, PARQUET_NAME = "report.html", "estimates.csv", "estimates.parquet"
_NO_RUN = "no published estimates: run cx refresh first"


# --- what the report holds -----------------------------------------------------------------------


@dataclass
class ReportData:
    """Everything the page shows, gathered from the store (see :func:`gather`).

    Attributes
    ----------
    run : dict
        The current published run: run_id, started, finished, status, config_hash, data_hash,
        versions (dict) and diagnostics (dict).
    estimates : pandas.DataFrame
        Every row the run published.
    headline : pandas.DataFrame
        One row per experiment and treatment arm (see :func:`headline`).
    drivers : pandas.DataFrame
        What drove the net value, per experiment and arm (see :func:`drivers`).
    experiments : pandas.DataFrame
        Per experiment: intervention, dates, design record, customers per arm and the SRM check.
    diagnostics : pandas.DataFrame
        Per experiment and model: the worst R-hat and ESS over published quantities, and whether
        every one passed the gate.
    checks : pandas.DataFrame
        Every check of the run, one row each (see :func:`checks_table`).
    freshness : dict
        first_period, last_period (outcome months), loads (DataFrame, latest load per table),
        data_changed (True when the store's data differ from what the run fitted).
    config : Config
        The settings the report describes (money, interval, gate).
    config_matches : bool
        True when ``config`` hashes to the run's configuration hash, so its money settings are
        the ones the run used.
    notes : list of str
        Caveats about the report as a whole.
    readout_notes : dict
        Per experiment, the readout's notes as the run recorded them (what was skipped or
        assumed: a segment column without values, no history, an outcome not measured).
    assumed : dict
        Per experiment, the outcomes not measured in the store, which the money assumes
        unchanged.
    monitoring : dict
        Per monitored experiment, where it stood in the run (``cx refresh``'s
        :func:`attribution.refresh.monitoring_status`): verdict, look, next decision.
    """

    run: dict
    estimates: pd.DataFrame
    headline: pd.DataFrame
    drivers: pd.DataFrame
    experiments: pd.DataFrame
    diagnostics: pd.DataFrame
    checks: pd.DataFrame
    freshness: dict
    config: Config
    config_matches: bool
    notes: list[str] = field(default_factory=list)
    readout_notes: dict = field(default_factory=dict)
    assumed: dict = field(default_factory=dict)
    monitoring: dict = field(default_factory=dict)

    @property
    def running_ids(self) -> set[str]:
        """Experiments still running at the run (a monitored test whose verdict is continue)."""
        return {e for e, m in self.monitoring.items() if m.get("running")}

    @property
    def interval_width(self) -> float:
        widths = self.estimates["interval_width"].dropna().unique()
        return float(widths[0]) if len(widths) else self.config.interval.width

    @property
    def randomized(self) -> pd.DataFrame:
        """Estimates from randomized tests (the Bayesian cell models)."""
        return self.estimates[self.estimates["method"] == RANDOMIZED_METHOD]

    @property
    def observational(self) -> pd.DataFrame:
        """Estimates from any other method (or none recorded): weaker evidence."""
        return self.estimates[self.estimates["method"] != RANDOMIZED_METHOD]


@dataclass
class ReportResult:
    """What :func:`build_report` wrote and the headline numbers it shows.

    Attributes
    ----------
    out_dir : pathlib.Path
    html, csv, parquet : pathlib.Path
        The files written.
    run_id : str
        The published run the report describes.
    headline : pandas.DataFrame
        One row per experiment and treatment arm (see :func:`headline`).
    notes : list of str
        Caveats shown in the report (data changed since the run, settings that differ, ...).
    """

    out_dir: Path
    html: Path
    csv: Path
    parquet: Path
    run_id: str
    headline: pd.DataFrame = field(repr=False)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        """The headline table (a copy)."""
        return self.headline.copy()

    def describe(self) -> str:
        """Plain lines for a terminal: where the files are and each intervention's headline."""
        lines = [
            f"report for run {self.run_id} written to {self.html}",
            f"estimates: {self.csv}, {self.parquet}",
        ]
        for _, r in self.headline.iterrows():
            lines.append(headline_sentence(r))
        lines += self.notes
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready: the files, the run id, the headline rows and the notes."""
        return {
            "out_dir": str(self.out_dir),
            "files": {"html": str(self.html), "csv": str(self.csv), "parquet": str(self.parquet)},
            "run_id": self.run_id,
            "headline": json.loads(self.headline.to_json(orient="records")),
            "notes": list(self.notes),
        }


# --- the numbers -------------------------------------------------------------------------------


def headline(estimates: pd.DataFrame) -> pd.DataFrame:
    """Overall money per experiment and treatment arm: what a finance reviewer reads first.

    Parameters
    ----------
    estimates : pandas.DataFrame
        Published rows (:func:`attribution.runs.current_estimates`).

    Returns
    -------
    pandas.DataFrame
        One row per (experiment_id, intervention, arm, method, question, estimator) with segment
        ``all`` (``question`` and ``estimator`` are ``""`` for randomized tests; observational
        money rows carry their question and the route whose draws they use): columns
        ``net_value``, ``net_value_lo``, ``net_value_hi``, ``p_positive`` (P(net value > 0)),
        ``expected_loss``, ``total_net_value`` (+ ``_lo``/``_hi``), ``roi`` (+ ``_lo``/``_hi``),
        ``payback_months`` (the payback month of the posterior-mean cash flow, NaN when it
        does not pay back within the window and value horizon, + ``_lo``/``_hi`` over draws),
        ``p_payback``, ``n_treated``, ``n_control``, ``interval_width``. Money is per treated
        customer except ``total_net_value``; a quantity the run did not publish is NaN.

    Examples
    --------
    >>> rows = pd.DataFrame({"experiment_id": ["e"], "intervention": ["gift"],
    ...     "arm": ["treatment"], "method": ["bayesian_cells"], "outcome": ["net_value"],
    ...     "segment": ["all"], "metric": ["absolute"], "mean": [2.0], "lo": [-1.0],
    ...     "hi": [5.0], "p_positive": [0.8], "expected_loss": [0.3], "n_treated": [100],
    ...     "n_control": [100], "interval_width": [0.9]})
    >>> headline(rows)[["intervention", "net_value", "p_positive"]].to_dict("records")
    [{'intervention': 'gift', 'net_value': 2.0, 'p_positive': 0.8}]
    """
    keys = ["experiment_id", "intervention", "arm", "method", "question", "estimator"]
    columns = [
        *keys,
        "net_value",
        "net_value_lo",
        "net_value_hi",
        "p_positive",
        "expected_loss",
        "total_net_value",
        "total_net_value_lo",
        "total_net_value_hi",
        "roi",
        "roi_lo",
        "roi_hi",
        "payback_months",
        "payback_months_lo",
        "payback_months_hi",
        "p_payback",
        "n_treated",
        "n_control",
        "interval_width",
    ]
    rows = _fill_keys(estimates)
    rows = rows[(rows["segment"] == "all") & rows["outcome"].isin(MONEY_OUTCOMES)]
    out = []
    for key, group in rows.groupby(keys, sort=True, dropna=False):
        record = dict(zip(keys, key, strict=True))
        by = group.set_index("outcome")
        for outcome in MONEY_OUTCOMES:
            have = outcome in by.index
            r = by.loc[outcome] if have else None
            record[outcome] = float(r["mean"]) if have else np.nan
            record[f"{outcome}_lo"] = float(r["lo"]) if have else np.nan
            record[f"{outcome}_hi"] = float(r["hi"]) if have else np.nan
        net = by.loc["net_value"] if "net_value" in by.index else None
        record["p_positive"] = float(net["p_positive"]) if net is not None else np.nan
        record["expected_loss"] = float(net["expected_loss"]) if net is not None else np.nan
        pay = by.loc["payback_months"] if "payback_months" in by.index else None
        record["p_payback"] = float(pay["p_positive"]) if pay is not None else np.nan
        first = group.iloc[0]
        record["n_treated"] = first["n_treated"]
        record["n_control"] = first["n_control"]
        record["interval_width"] = first["interval_width"]
        out.append(record)
    return pd.DataFrame(out, columns=columns)


def drivers(estimates: pd.DataFrame, margin_rate: float | None) -> pd.DataFrame:
    """What drove the net value: the effects on retention, spend and cost-to-serve, and money.

    Per experiment and treatment arm (segment ``all``), the published absolute effects with their
    intervals, and, when ``margin_rate`` is known, the mean of each money component per treated
    customer. Net value per draw is ``retained margin + spend margin + cost saved - unit cost``,
    so the means add up exactly:

    - spend margin = margin_rate x revenue effect (its interval scales the same way);
    - cost saved = minus the cost-to-serve effect (interval flipped);
    - unit cost = the intervention cost per assigned customer, recovered from the published
      intervals of net value and ROI (ROI = net value / unit cost draw by draw, so the interval
      widths differ by exactly that factor); 0 when no ROI was published (no recorded cost);
    - retained margin = net value - spend margin - cost saved + unit cost: the value after the
      window (the arms' retained customers' margin net of their cost-to-serve over the value
      horizon) and the discounting of every flow (its mean only: the store does not publish its
      interval).

    Parameters
    ----------
    estimates : pandas.DataFrame
        Published rows.
    margin_rate : float or None
        The run's gross margin rate; None leaves the money columns NaN.

    Returns
    -------
    pandas.DataFrame
        Columns experiment_id, intervention, arm, method, ``{retention,revenue,cost_to_serve}``
        with ``_lo``/``_hi``, and ``retained_margin``, ``spend_margin`` (+ ``_lo``/``_hi``),
        ``cost_saved`` (+ ``_lo``/``_hi``), ``unit_cost``, ``net_value``.
    """
    keys = ["experiment_id", "intervention", "arm", "method"]
    rows = _fill_keys(estimates)
    rows = rows[(rows["segment"] == "all") & (rows["metric"].isin(["absolute", "relative"]))]
    out = []
    for key, group in rows.groupby(keys, sort=True, dropna=False):
        record = dict(zip(keys, key, strict=True))
        absolute = group[group["metric"] == "absolute"].set_index("outcome")
        for outcome in DRIVERS:
            have = outcome in absolute.index
            for col, suffix in (("mean", ""), ("lo", "_lo"), ("hi", "_hi")):
                record[outcome + suffix] = float(absolute.loc[outcome, col]) if have else np.nan
        net = absolute.loc["net_value"] if "net_value" in absolute.index else None
        roi = group[group["outcome"] == "roi"]
        record["net_value"] = float(net["mean"]) if net is not None else np.nan
        record["unit_cost"] = _unit_cost(net, roi.iloc[0] if len(roi) else None)
        m = np.nan if margin_rate is None else float(margin_rate)
        record["spend_margin"] = m * record["revenue"]
        record["spend_margin_lo"] = m * record["revenue_lo"]
        record["spend_margin_hi"] = m * record["revenue_hi"]
        record["cost_saved"] = -record["cost_to_serve"]
        record["cost_saved_lo"] = -record["cost_to_serve_hi"]
        record["cost_saved_hi"] = -record["cost_to_serve_lo"]
        record["retained_margin"] = (
            record["net_value"]
            - record["spend_margin"]
            - record["cost_saved"]
            + record["unit_cost"]
        )
        if any(not _finite(record[d]) for d in DRIVERS):
            record["retained_margin"] = np.nan
        out.append(record)
    return pd.DataFrame(out) if out else pd.DataFrame(columns=keys)


def _unit_cost(net: pd.Series | None, roi: pd.Series | None) -> float:
    if net is None:
        return np.nan
    if roi is None:
        return 0.0
    width_net = float(net["hi"]) - float(net["lo"])
    width_roi = float(roi["hi"]) - float(roi["lo"])
    if width_roi > 0 and width_net > 0:
        return width_net / width_roi
    if _finite(roi["mean"]) and float(roi["mean"]) != 0:
        return float(net["mean"]) / float(roi["mean"])
    return np.nan


def _fill_keys(estimates: pd.DataFrame) -> pd.DataFrame:
    frame = estimates.copy()
    for col in ("experiment_id", "arm"):
        frame[col] = frame[col].fillna("(none)")
    frame["method"] = frame["method"].fillna("(not recorded)")
    for col in ("question", "estimator"):
        frame[col] = frame[col].fillna("") if col in frame else ""
    return frame


def experiments_table(con: duckdb.DuckDBPyConnection, run: dict, ids: list[str]) -> pd.DataFrame:
    """Per experiment: intervention, dates, design record, customers per arm and SRM check.

    The SRM check is the one the run recorded in its diagnostics (what was behind the numbers);
    where the run recorded none it is computed now from the assignments with the same gate as a
    readout (:func:`attribution.readout.design_srm`, never raising).
    """
    recorded = (run.get("diagnostics") or {}).get("srm") or {}
    rows = []
    for experiment_id in ids:
        exp = con.execute(
            "SELECT intervention, started, ended, design FROM experiments WHERE experiment_id = ?",
            [experiment_id],
        ).fetchone()
        arms = store.arm_counts(con, experiment_id)
        design = _json(exp[3]) if exp else {}
        design = design if isinstance(design, dict) else {"design": design}
        srm = recorded.get(experiment_id)
        source = "recorded by the run"
        if srm is None and len(arms) >= 2:
            try:
                check, order, _ = design_srm(
                    con, experiment_id, arms, design, check_srm=False, notes=[]
                )
                srm = srm_record(check, order)
                source = "computed now from the assignments"
            except InputError as exc:
                srm = {"checked": False, "error": str(exc)}
                source = "not checked"
        rows.append(
            {
                "experiment_id": experiment_id,
                "intervention": exp[0] if exp else None,
                "started": exp[1] if exp else None,
                "ended": exp[2] if exp else None,
                "design": design,
                "arms": {str(k): int(v) for k, v in arms.items()},
                "srm": srm,
                "srm_source": source if srm is not None else "not checked",
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "experiment_id",
            "intervention",
            "started",
            "ended",
            "design",
            "arms",
            "srm",
            "srm_source",
        ],
    )


#: Columns of :func:`checks_table`.
RUN_CHECK_COLUMNS = ["where", *CHECK_COLUMNS]


def checks_table(run: dict) -> pd.DataFrame:
    """Every check the run recorded, one row each, in the one shape of
    :class:`attribution.checks.Check`: where (an experiment id or ``observational NAME``),
    check, subject, verdict, sentence. Empty for runs from before checks were recorded."""
    recorded = (run.get("diagnostics") or {}).get("checks") or {}
    frames = [
        checks_frame([check_from_dict(c) for c in found]).assign(where=where)
        for where, found in recorded.items()
        if found
    ]
    if not frames:
        return pd.DataFrame(columns=RUN_CHECK_COLUMNS)
    return pd.concat(frames, ignore_index=True)[RUN_CHECK_COLUMNS]


def diagnostics_table(run: dict) -> pd.DataFrame:
    """Per experiment and model: worst R-hat and ESS over the gated quantities, and the verdict.

    Read from the run's diagnostics JSON (``models``: experiment -> model -> either the gate's
    record, :meth:`attribution.diagnostics.Diagnostics.to_dict`, or a list of per-variable rows
    from which the worst values over the gated variables are taken). The cell-route fits of
    observational questions are listed too, as experiment ``observational NAME``.
    """
    recorded = run.get("diagnostics") or {}
    models = dict(recorded.get("models") or {})
    for question, record in (recorded.get("observational") or {}).items():
        fits = (record or {}).get("gformula") or {}
        if fits:
            models[f"{runs.OBSERVATIONAL_PREFIX}{question}"] = {
                f"{outcome} g-formula cells": diag for outcome, diag in fits.items()
            }
    rows = []
    for experiment_id, fits in models.items():
        for model, record in (fits or {}).items():
            if isinstance(record, dict):
                row = {
                    "max_rhat": _number(record.get("max_rhat")),
                    "min_ess_bulk": _number(record.get("min_ess_bulk")),
                    "min_ess_tail": _number(record.get("min_ess_tail")),
                    "divergences": _number(record.get("divergences")),
                    "passed": record.get("passed"),
                }
            else:
                table = pd.DataFrame(record or [])
                gated = table[table["gated"].astype(bool)] if "gated" in table else table
                row = {
                    "max_rhat": _stat(gated, "max_rhat", max),
                    "min_ess_bulk": _stat(gated, "min_ess_bulk", min),
                    "min_ess_tail": _stat(gated, "min_ess_tail", min),
                    "divergences": np.nan,
                    "passed": bool(gated["passed"].all()) if "passed" in gated else None,
                }
            rows.append({"experiment_id": experiment_id, "model": model, **row})
    return pd.DataFrame(
        rows,
        columns=[
            "experiment_id",
            "model",
            "max_rhat",
            "min_ess_bulk",
            "min_ess_tail",
            "divergences",
            "passed",
        ],
    )


def _number(value) -> float:
    return float(value) if _finite(value) else np.nan


def _stat(frame: pd.DataFrame, col: str, how) -> float:
    if col not in frame:
        return np.nan
    values = pd.to_numeric(frame[col], errors="coerce").dropna()
    return float(how(values)) if len(values) else np.nan


def freshness(con: duckdb.DuckDBPyConnection, run: dict) -> dict:
    """How current the data are: outcome months, the latest load per table, changed since run."""
    first, last = store.periods(con)
    tables = (run.get("diagnostics") or {}).get("data_tables") or runs.MODEL_TABLES
    tables = [t for t in tables if t in runs.MODEL_TABLES or t == "interactions"]
    loads = con.execute(
        """
        SELECT table_name, max(loaded_at) AS last_loaded,
               arg_max(file_name, loaded_at) AS last_file,
               arg_max(rows_in_file, loaded_at) AS rows_in_last_file,
               count(*) AS loads
        FROM loads GROUP BY table_name ORDER BY table_name
        """
    ).df()
    return {
        "first_period": first,
        "last_period": last,
        "loads": loads,
        # hashed over the tables the run hashed (a run with observational questions adds
        # interactions), so an unchanged store matches
        "data_changed": runs.data_hash(con, tables) != run["data_hash"],
    }


def gather(con: duckdb.DuckDBPyConnection, *, config: Config | None = None) -> ReportData:
    """Read the current published run and everything the report shows about it.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open store.
    config : Config, optional
        Settings the methods section describes; defaults to :class:`Config()`.

    Returns
    -------
    ReportData

    Raises
    ------
    InputError
        The store has no published run.
    """
    cfg = config or Config()
    current = runs.current_run(con)
    if current is None:
        raise InputError(_NO_RUN)
    row = con.execute(
        "SELECT run_id, started, finished, status, config_hash, data_hash, versions, diagnostics "
        "FROM runs WHERE run_id = ?",
        [current["run_id"]],
    ).fetchone()
    run = dict(
        zip(
            (
                "run_id",
                "started",
                "finished",
                "status",
                "config_hash",
                "data_hash",
                "versions",
                "diagnostics",
            ),
            row,
            strict=True,
        )
    )
    run["versions"] = _json(run["versions"]) or {}
    run["diagnostics"] = _json(run["diagnostics"]) or {}
    estimates = runs.current_estimates(con)
    if estimates.empty:
        raise InputError(f"{_NO_RUN} (run {run['run_id']} published no estimates)")
    matches = cfg.hash == run["config_hash"]
    notes = []
    if not matches:
        notes.append(
            f"The settings given to the report (configuration {cfg.hash}) are not the ones run "
            f"{run['run_id']} used ({run['config_hash']}): the money settings shown under "
            "methods may differ from the run's, and the money breakdown of the drivers is left "
            "out. The published numbers themselves are the run's."
        )
    fresh = freshness(con, run)
    if fresh["data_changed"]:
        notes.append(
            f"The store's data changed since run {run['run_id']} fitted them: these estimates do "
            "not reflect the latest data until cx refresh publishes a new run."
        )
    ids = sorted({str(e) for e in estimates["experiment_id"].dropna()})
    monitoring = dict(run["diagnostics"].get("monitoring") or {})
    for experiment_id, m in monitoring.items():
        if m.get("running"):
            notes.append(
                f"{experiment_id} is a running test: its numbers are interim, not a decision "
                f"(verdict {m.get('verdict')}). {m.get('sentence', '')}"
            )
    recorded = run["diagnostics"].get("notes") or {}
    assumed = run["diagnostics"].get("assumed_unchanged") or {}
    return ReportData(
        run=run,
        estimates=estimates,
        headline=headline(estimates),
        drivers=drivers(
            estimates[estimates["method"] == RANDOMIZED_METHOD],
            cfg.money.margin_rate if matches else None,
        ),
        experiments=experiments_table(con, run, ids),
        diagnostics=diagnostics_table(run),
        checks=checks_table(run),
        freshness=fresh,
        config=cfg,
        config_matches=matches,
        notes=notes,
        readout_notes={e: list(recorded.get(e) or []) for e in ids},
        assumed={e: list(assumed.get(e) or []) for e in ids},
        monitoring=monitoring,
    )


def _json(value):
    if value is None:
        return None
    if isinstance(value, dict | list):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return {"raw": str(value)}


# --- writing -------------------------------------------------------------------------------------


def build_report(
    con: duckdb.DuckDBPyConnection,
    out_dir: str | os.PathLike[str],
    *,
    config: Config | None = None,
) -> ReportResult:
    """Write the finance report of the current published run: HTML, CSV and Parquet.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open store (read-only is enough).
    out_dir : path-like
        Folder for ``report.html``, ``estimates.csv`` and ``estimates.parquet``; created when
        missing. Files of an earlier report there are replaced only once all three new files
        are complete.
    config : Config, optional
        The settings the run used (money, interval, gate), for the methods section and the money
        breakdown; defaults to :class:`Config()`. When they hash differently from the run's
        configuration the report says so and leaves the money breakdown out.

    Returns
    -------
    ReportResult

    Raises
    ------
    InputError
        No published run ("no published estimates: run cx refresh first"), or ``out_dir`` is not
        a folder that can be written.

    Examples
    --------
    >>> import tempfile
    >>> from attribution import store
    >>> con = store.connect(":memory:")
    >>> build_report(con, tempfile.mkdtemp())
    Traceback (most recent call last):
        ...
    attribution.errors.InputError: no published estimates: run cx refresh first
    """
    from attribution.report_html import render

    data = gather(con, config=config)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"report folder {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".cx-report-", dir=out))
    except OSError as exc:
        raise InputError(f"cannot write the report to {out}: {exc}") from exc
    try:
        (tmp / HTML_NAME).write_text(render(data), encoding="utf-8")
        frame = _export_frame(data.estimates)
        frame.to_csv(tmp / CSV_NAME, index=False)
        frame.to_parquet(tmp / PARQUET_NAME, index=False)
        for name in (CSV_NAME, PARQUET_NAME, HTML_NAME):
            target = out / name
            if target.is_dir():
                raise InputError(f"cannot write {target}: a folder of that name is in the way")
        for name in (CSV_NAME, PARQUET_NAME, HTML_NAME):
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ReportResult(
        out_dir=out,
        html=out / HTML_NAME,
        csv=out / CSV_NAME,
        parquet=out / PARQUET_NAME,
        run_id=data.run["run_id"],
        headline=data.headline,
        notes=list(data.notes),
    )


def _export_frame(estimates: pd.DataFrame) -> pd.DataFrame:
    frame = estimates.copy()
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].map(
                lambda v: v.isoformat() if isinstance(v, date | datetime) else v
            )
    return frame
