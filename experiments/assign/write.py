"""Writing an assignment to the store, from a DataFrame or a file (:func:`write_assignment`,
:func:`assign_from_file`): refused when the experiment exists or a customer is unknown.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from attribution import load, store
from attribution.errors import InputError
from attribution.settings import CHURN_AFTER_WINDOW
from attribution.validation import text as text_setting
from experiments.assign.balance import is_numeric
from experiments.assign.hashing import assignment_hash
from experiments.assign.randomize import Assignment, assign_frame, customer_ids
from experiments.assign.record import start_day
from experiments.assign.rules import CONTROL, setting_names
from experiments.design.sequential import monitoring_record


def _refuse_existing(con: duckdb.DuckDBPyConnection, experiment_id: str) -> None:
    for table in ("experiments", "assignments"):
        n = con.execute(
            f"SELECT count(*) FROM {table} WHERE experiment_id = ?", [experiment_id]
        ).fetchall()[0][0]
        if n:
            raise InputError(
                f"experiment_id {experiment_id!r} is already in the store's {table} table; "
                "choose a new id (an assignment is never overwritten)"
            )


_UNKNOWN_SQL = """
SELECT v.customer_id FROM {view} v
WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = v.customer_id)
"""


def _refuse_unknown(con: duckdb.DuckDBPyConnection, view: str, where: str) -> None:
    unknown = con.execute(
        "SELECT count(*), list(customer_id ORDER BY customer_id)[1:5] "
        f"FROM ({_UNKNOWN_SQL.format(view=view)})"
    ).fetchall()[0]
    if unknown[0]:
        raise InputError(
            f"{where}: {unknown[0]} customer(s) are not in the store's customers table, e.g. "
            f"{unknown[1]}; load them first (cx load customers FILE)"
        )


def write_assignment(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    intervention: str,
    assignment: Assignment,
    *,
    started: date | str | None = None,
    source: str | None = None,
    looks: int | None = None,
    horizon_months: int | None = None,
    spending: str = "obrien-fleming",
    roll_out_threshold: float = 0.9,
    interval_width: float = 0.9,
    churn_after_window: str = CHURN_AFTER_WINDOW[0],
) -> dict:
    """Write the experiment row (with its design record) and all its assignments, all or nothing.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store; every customer must be in ``customers``.
    experiment_id : str
        A new experiment id (an existing one is refused, never overwritten).
    intervention : str
        The intervention tested, non-empty.
    assignment : Assignment
        From :func:`assign`.
    started : date or str, optional
        First day of the test: a date, ``"YYYY-MM-DD"`` or ``"YYYY-MM"`` (the first of the
        month). Default: today (UTC).
    source : str, optional
        Name of the eligible file, recorded in the design record when it names none.
    looks, horizon_months : int, optional
        A monitored test: ``looks`` planned looks over an outcome horizon of ``horizon_months``
        months (both or neither). The record gets a ``monitoring`` section
        (:func:`experiments.design.monitoring_record`): readouts and decisions are then taken at
        the planned looks only, with thresholds that keep the false roll-out rate over all
        looks at ``1 - roll_out_threshold``.
    spending : {"obrien-fleming", "pocock"}
        The alpha spending function of the looks.
    roll_out_threshold, interval_width : float
        The ``[decision] roll_out_threshold`` and ``[interval] width`` the test will be read
        out with (the boundaries spend their complements).
    churn_after_window : {"ends", "held"}
        What the intervention's effect on churn does after the readout window, recorded as
        ``churn_effect_after_window``: "ends" for a one-off (a gift, a call), "held" for one
        that goes on (a support tier customers keep). Net value's months after the window
        follow it (:mod:`attribution.value`).

    Returns
    -------
    dict
        ``experiment_id``, ``intervention``, ``started``, ``customers``, ``counts``,
        ``salt_used``, ``assignment_hash`` and ``design`` (the record as stored, with
        ``experiment_id``, ``intervention`` and ``started`` added).

    Raises
    ------
    InputError
        An existing experiment id, an empty intervention, a bad ``started``, customers not in the
        store (the first few are named, with the count), or a frame that no longer matches the
        record's assignment hash. Nothing is written.

    Examples
    --------
    >>> from attribution import load
    >>> from experiments.assign import assign
    >>> con = store.connect(":memory:")
    >>> people = pd.DataFrame({"customer_id": ["C1", "C2"], "signup_date": ["2024-01-01"] * 2})
    >>> _ = load.load(con, "customers", people)
    >>> result = assign(people[["customer_id"]], "s")
    >>> write_assignment(con, "exp1", "gift", result, started="2025-04")["customers"]
    2
    """
    eid = text_setting("experiment_id", experiment_id)
    name = text_setting("intervention", intervention)
    day = start_day(started)
    frame = assignment.frame
    for col in ("customer_id", "arm", "stratum"):
        if col not in frame.columns:
            raise InputError(f"assignment frame has no {col!r} column; columns: {list(frame)}")
    digest = assignment_hash(frame)
    if digest != assignment.design.get("assignment_hash"):
        raise InputError(
            "the assignment frame does not match its design record's assignment_hash; it was "
            "changed after assign(): assign again"
        )
    record = json.loads(json.dumps(assignment.design))
    if source and not record["inputs"].get("eligible_file"):
        record["inputs"]["eligible_file"] = str(source)
    if churn_after_window not in CHURN_AFTER_WINDOW:
        raise InputError(
            "churn_after_window must be one of "
            f"{', '.join(repr(r) for r in CHURN_AFTER_WINDOW)}, got {churn_after_window!r}"
        )
    record.update(experiment_id=eid, intervention=name, started=day.isoformat())
    record["churn_effect_after_window"] = churn_after_window
    monitoring = _monitoring(
        record, looks, horizon_months, spending, roll_out_threshold, interval_width
    )
    if monitoring is not None:
        record["monitoring"] = monitoring
    design_json = json.dumps(record, allow_nan=False, sort_keys=False)
    rows = frame[["customer_id", "arm", "stratum"]]
    view = "_cx_assign_rows"
    now = datetime.now(UTC).replace(tzinfo=None)
    store.register(con, view, rows)
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            _refuse_existing(con, eid)
            _refuse_unknown(con, view, f"experiment {eid!r}")
            con.execute(
                "INSERT INTO experiments (experiment_id, intervention, design, started, ended) "
                "VALUES (?, ?, ?, ?, NULL)",
                [eid, name, design_json, day],
            )
            con.execute(
                "INSERT INTO assignments (experiment_id, customer_id, arm, stratum, assigned_at) "
                f"SELECT ?, CAST(customer_id AS VARCHAR), CAST(arm AS VARCHAR), "
                f"CAST(stratum AS VARCHAR), CAST(? AS TIMESTAMP) FROM {view}",
                [eid, now],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.unregister(view)
    return {
        "experiment_id": eid,
        "intervention": name,
        "started": day.isoformat(),
        "customers": len(rows),
        "counts": dict(record["counts"]),
        "salt_used": record["salt_used"],
        "assignment_hash": digest,
        "design": record,
    }


def assign_from_file(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    intervention: str,
    eligible_path: str | Path,
    salt: str,
    *,
    control_share: float = 0.5,
    arms: Sequence[str] = (CONTROL, "treatment"),
    shares: Sequence[float] | None = None,
    strata: Sequence[str] = (),
    covariates: Sequence[str] = (),
    rerandomize_p: float | None = None,
    max_tries: int = 1000,
    started: date | str | None = None,
    cluster: str | None = None,
    **monitoring,
) -> Assignment:
    """Read eligible customers from a CSV or Parquet file, assign them and write the experiment.

    The file needs a ``customer_id`` column (ids are read as text and trimmed). Strata and
    covariate columns not in the file are taken from the store's customers table. Text covariate
    columns from a file whose every value is a number are used as numbers.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store holding every eligible customer.
    experiment_id, intervention, started
        As in :func:`write_assignment`.
    eligible_path : str or Path
        ``.csv`` (header row) or ``.parquet`` file.
    salt, control_share, arms, shares, strata, covariates, rerandomize_p, max_tries, cluster
        As in :func:`assign` (a cluster column not in the file is taken from customers).
    **monitoring
        ``looks``, ``horizon_months``, ``spending``, ``roll_out_threshold`` and
        ``interval_width`` of :func:`write_assignment` (a monitored test), and its
        ``churn_after_window``.

    Returns
    -------
    Assignment
        Its ``design`` is the record as stored (with the file name and its sha256).

    Raises
    ------
    InputError
        Naming the file: missing, unreadable or empty, no ``customer_id`` column, missing or
        duplicate ids (with row numbers), unknown customers, a column neither in the file nor
        in customers; and every error of :func:`assign` and :func:`write_assignment`.
    """
    eid = text_setting("experiment_id", experiment_id)
    text_setting("intervention", intervention)
    _refuse_existing(con, eid)
    raw, label, digest, _ = load._read(Path(eligible_path), None)
    frame = raw.to_pandas()
    if "customer_id" not in frame.columns:
        cols = [c for c in frame.columns if c != "_row"]
        raise InputError(f"{label}: no customer_id column; columns: {cols}")
    frame = frame.drop(columns="_row")
    ids = frame["customer_id"].str.strip()
    frame["customer_id"] = ids.where(ids != "", None)
    ids = customer_ids(frame, label)
    frame["customer_id"] = ids
    strata_names = setting_names("strata", strata)
    covariate_names = setting_names("covariates", covariates)
    cluster_names = setting_names("cluster", [] if cluster is None else [cluster])
    wanted = strata_names + covariate_names + cluster_names
    needed = [c for c in dict.fromkeys(wanted) if c not in frame.columns]
    view = "_cx_eligible_ids"
    store.register(con, view, pd.DataFrame({"customer_id": ids}))
    try:
        _refuse_unknown(con, view, label)
        if needed:
            segments = store.segment_columns(con)
            for col in needed:
                if col not in segments:
                    raise InputError(
                        f"{label}: column {col!r} is neither in the file (columns: "
                        f"{list(frame.columns)}) nor a customers column {segments}"
                    )
            cols = ", ".join(f"c.{store.quote_identifier(c)}" for c in needed)
            extra = con.execute(
                f"SELECT c.customer_id, {cols} FROM customers c "
                f"WHERE c.customer_id IN (SELECT customer_id FROM {view})"
            ).df()
            frame = frame.merge(extra, on="customer_id", how="left")
    finally:
        con.unregister(view)
    for col in covariate_names:
        if col not in needed:
            frame[col] = _maybe_numeric(frame[col])
    result = assign_frame(
        frame,
        salt,
        control_share=control_share,
        arms=arms,
        shares=shares,
        strata=strata_names,
        covariates=covariate_names,
        rerandomize_p=rerandomize_p,
        max_tries=max_tries,
        label=label,
        source=(label, digest),
        cluster=cluster,
    )
    written = write_assignment(
        con, eid, intervention, result, started=started, source=label, **monitoring
    )
    return replace(result, design=written["design"])


def _monitoring(
    record: dict,
    looks: int | None,
    horizon_months: int | None,
    spending: str,
    roll_out_threshold: float,
    interval_width: float,
) -> dict | None:
    """The record's ``monitoring`` section, or None for a fixed-horizon test."""
    if looks is None and horizon_months is None:
        return None
    if looks is None or horizon_months is None:
        raise InputError(
            "a monitored test needs both looks and horizon_months (--looks K --horizon-months H)"
        )
    shares = [float(v) for v in record["allocation"].values()]
    control = shares[0] / (shares[0] + sum(shares[1:]) / max(len(shares) - 1, 1))
    return monitoring_record(
        horizon_months,
        looks,
        roll_out_threshold=roll_out_threshold,
        interval_width=interval_width,
        arms=len(shares),
        control_share=control,
        kind=spending,
    )


def _maybe_numeric(series: pd.Series) -> pd.Series:
    """A text column as numbers when every value present is a number, else as it is."""
    if is_numeric(series):
        return series
    numbers = pd.to_numeric(series, errors="coerce")
    if (numbers.notna() == series.notna()).all():
        return numbers.astype("float64")
    return series
