"""Collapse customers into cells of sufficient statistics, the step that makes models fast.

Customers that share segment, arm and period window are exchangeable for the uplift models, so
DuckDB reduces millions of outcome rows to a few thousand cells. Each cell carries:

- ``n``: customers; ``n_active``: active at the horizon; ``n_missing``: without an outcome row
  at the horizon;
- for ``revenue`` and ``cost_to_serve`` (each summed per customer over ``start .. horizon``):
  ``*_npos`` (customers with a positive total), ``*_sum`` and ``*_sum2`` (sum and sum of squares),
  ``*_sumlog`` and ``*_sumlog2`` (sum of log and squared log over the positive totals).

That is exactly enough for a binomial retention likelihood and the hurdle likelihoods of the
spend models. Grouping by ``retained`` (1 when active at the horizon) splits each cell by
retention status, so spend can be modelled conditional on it (see :mod:`attribution.joint`).
The SQL lives in ``cells.sql``, portable to Spark SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from importlib import resources

import duckdb
import pandas as pd

from attribution import store
from attribution.errors import InputError
from attribution.lake import arrow_frame, arrow_result
from attribution.periods import add_months

VALUE_FAMILIES = ("revenue", "cost_to_serve")
STAT_COLUMNS = ("n", "n_active", "n_missing") + tuple(
    f"{f}_{s}" for f in VALUE_FAMILIES for s in ("npos", "sum", "sum2", "sumlog", "sumlog2")
)
_COUNT_COLUMNS = ("n", "n_active", "n_missing", "revenue_npos", "cost_to_serve_npos")
#: Label of the customers without a value in a segment column.
MISSING_SEGMENT = "(missing)"
#: The one segment label when nothing is broken down (:func:`segment_sql` with no column).
EVERYONE = "everyone"


#: Pre-period spend bands a readout adjusts for when history exists: no pre-period revenue, then
#: three equal-count tiles (the Bayesian analogue of CUPED). A design measures its R^2
#: (:func:`experiments.history.design_inputs`), so it sizes for the adjustment the readout makes.
PRE_BANDS = 4
#: Months before the start the pre-period spend is summed over.
PRE_MONTHS = 6


def hurdle_sql(value: str, prefix: str = "") -> str:
    """SQL for the hurdle statistics of an amount per customer, the same wherever cells are made.

    Count of positive amounts, sum, sum of squares, sum of logs and of squared logs of the
    positive ones, named ``{prefix}npos``, ``{prefix}sum``, ``{prefix}sum2``, ``{prefix}sumlog``,
    ``{prefix}sumlog2``. ``value`` must be a DECIMAL(38, 6) expression (an internal column name,
    never user text; a narrower decimal overflows in the sum of squares above about 3,000):
    decimal sums are exact, so the statistics do not depend on the order the
    engine's threads add them up in; the logs are rounded to 1e-12 before they are summed.

    Examples
    --------
    >>> print(hurdle_sql("y").splitlines()[0])
    SUM(CASE WHEN y > 0 THEN 1 ELSE 0 END) AS npos,
    """
    log = f"LN({value})"
    return ",\n       ".join(
        [
            f"SUM(CASE WHEN {value} > 0 THEN 1 ELSE 0 END) AS {prefix}npos",
            f"SUM({value}) AS {prefix}sum",
            f"SUM({value} * {value}) AS {prefix}sum2",
            f"SUM(CASE WHEN {value} > 0 THEN CAST({log} AS DECIMAL(18, 12)) ELSE 0 END)"
            f" AS {prefix}sumlog",
            f"SUM(CASE WHEN {value} > 0 THEN CAST({log} * {log} AS DECIMAL(18, 12)) ELSE 0 END)"
            f" AS {prefix}sumlog2",
        ]
    )


def cells(
    con: duckdb.DuckDBPyConnection,
    by: Sequence[str] = (),
    *,
    experiment_id: str | None = None,
    start: str | date | None = None,
    horizon: str | date | None = None,
    missing: str = "error",
    pre_bands: int = 0,
    pre_months: int = PRE_MONTHS,
) -> pd.DataFrame:
    """Collapse customers into cells with sufficient statistics for the models.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open store.
    by : sequence of str
        Grouping columns: segment columns of ``customers``, ``retained`` (active at the horizon,
        0 or 1) and, with an experiment, ``arm`` (added automatically when missing) or
        ``stratum``.
    experiment_id : str, optional
        Restrict to the experiment's assigned customers and group by arm. Without it every
        customer in the store is in the population.
    start, horizon : str or date, optional
        First and last month of the outcome window (``YYYY-MM`` or any date in the month).
        ``start`` defaults to the experiment's start month, else the first period in the store;
        ``horizon`` to the last period in the store.
    missing : {"error", "inactive"}
        What to do with customers that have no outcome row at the horizon: raise (default) or
        count them as inactive with whatever revenue and cost they had in the window.
    pre_bands : int
        0 (default) for none; else group also by ``pre_band``: 0 for customers without revenue
        in the ``pre_months`` months before ``start``, 1 .. pre_bands - 1 for equal-count tiles
        of those with revenue. Needs at least one outcome month before ``start``.
    pre_months : int
        Length of the pre-period window.

    Returns
    -------
    pandas.DataFrame
        One row per cell: the grouping columns, then :data:`STAT_COLUMNS`. Empty cells do not
        appear. Segment columns come back as text labels (integers too), customers without a
        value in the segment :data:`MISSING_SEGMENT`. ``attrs`` holds ``start``, ``horizon``
        and ``experiment_id``.

    Examples
    --------
    >>> from attribution import store
    >>> con = store.connect(":memory:")
    >>> cells(con, ["tier"]).empty
    True
    """
    if missing not in ("error", "inactive"):
        raise InputError(f"missing must be 'error' or 'inactive', got {missing!r}")
    if pre_bands < 0 or pre_bands == 1 or pre_months < 1:
        raise InputError(
            f"pre_bands must be 0 or >= 2 and pre_months >= 1, got {pre_bands} and {pre_months}"
        )
    groups = _check_groups(con, by, experiment_id)
    start_d, horizon_d = _window(con, experiment_id, start, horizon)
    if horizon_d is None:
        return pd.DataFrame(columns=[*groups, *STAT_COLUMNS])
    params = {
        "experiment_id": experiment_id,
        "start": start_d,
        "horizon": horizon_d,
        "from": start_d,
    }
    if pre_bands:
        first, _ = store.periods(con)
        if first is None or first >= start_d:
            raise InputError(
                f"no outcome months before {start_d:%Y-%m}: a pre-period adjustment needs "
                "history; use pre_bands=0"
            )
        params["from"] = max(first, add_months(start_d, -pre_months))  # the pre-period's start
        params["pre_bands"] = pre_bands
        groups = [*groups, "pre_band"]
    sql = _render(groups)
    # exact decimals out of either engine, one conversion to float (attribution.lake)
    frame = arrow_frame(arrow_result(con, sql, params))
    if frame.empty or (not groups and frame["n"].iloc[0] == 0):
        if experiment_id is not None:
            raise InputError(f"experiment {experiment_id!r} has no assigned customers")
        return pd.DataFrame(columns=[*groups, *STAT_COLUMNS])
    for col in _COUNT_COLUMNS:
        frame[col] = frame[col].astype("int64")
    if missing == "error" and frame["n_missing"].sum() > 0:
        _raise_missing(con, experiment_id, horizon_d, int(frame["n_missing"].sum()))
    frame.attrs.update(start=start_d, horizon=horizon_d, experiment_id=experiment_id)
    return frame


def _check_groups(
    con: duckdb.DuckDBPyConnection, by: Sequence[str], experiment_id: str | None
) -> list[str]:
    if isinstance(by, str):
        by = [c.strip() for c in by.split(",") if c.strip()]
    groups = list(dict.fromkeys(by))
    segments = store.segment_columns(con)
    allowed = segments + ["retained"] + (["arm", "stratum"] if experiment_id is not None else [])
    for col in groups:
        if col not in allowed:
            hint = " (arm and stratum need an experiment_id)" if col in ("arm", "stratum") else ""
            raise InputError(
                f"grouping column {col!r} is not a column of customers{hint}; choose from {allowed}"
            )
    if experiment_id is not None and "arm" not in groups:
        groups.append("arm")
    return groups


def _window(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str | None,
    start: str | date | None,
    horizon: str | date | None,
) -> tuple[date | None, date | None]:
    first, last = store.periods(con)
    if experiment_id is not None:
        row = con.execute(
            "SELECT started FROM experiments WHERE experiment_id = ?", [experiment_id]
        ).fetchone()
        if row is None:
            raise InputError(f"experiment {experiment_id!r} is not in the store")
        first = store.parse_period(row[0])
    start_d = store.parse_period(start) if start is not None else first
    horizon_d = store.parse_period(horizon) if horizon is not None else last
    if start_d is not None and horizon_d is not None and horizon_d < start_d:
        raise InputError(f"horizon {horizon_d:%Y-%m} is before start {start_d:%Y-%m}")
    if horizon is not None and last is not None and horizon_d > last:
        raise InputError(
            f"horizon {horizon_d:%Y-%m} is after the last outcome period in the store "
            f"({last:%Y-%m})"
        )
    return start_d, horizon_d


def _blocks() -> tuple[str, dict[str, str]]:
    """The main query and the named optional blocks of cells.sql."""
    text = resources.files("attribution").joinpath("cells.sql").read_text()
    main, *rest = text.split("-- block: ")
    blocks = {}
    for chunk in rest:
        name, _, body = chunk.partition("\n")
        inline = name.strip() in ("pre_select", "pre_sum")  # continue a select list
        blocks[name.strip()] = body.rstrip() if inline else "\n" + body.rstrip()
    return main, blocks


def pre_band_sql() -> str:
    """The pre-period spend band CTEs of cells.sql (``pre_revenue``, ``pre_band``), for another
    query that must band customers exactly as a readout does (the design's R^2,
    :func:`experiments.history.design_inputs`).

    The text ends with a comma; it needs a ``population(customer_id)`` CTE before it and the
    parameters ``$pre_start``, ``$start`` and ``$pre_bands``; ``pre_band(customer_id,
    pre_band)`` is what it defines.
    """
    blocks = _blocks()[1]
    return blocks["pre_revenue_scan"] + blocks["pre_band"]


def _render(groups: list[str]) -> str:
    template, blocks = _blocks()
    pre = "pre_band" in groups
    select = []
    for col in [g for g in groups if g not in ("pre_band", "retained")]:
        quoted = store.quote_identifier(col)
        if col in ("arm", "stratum"):
            select.append(f", a.{quoted} AS {quoted}")
        else:  # a segment label: text, missing values labelled (as segment_sql does)
            select.append(
                f", COALESCE(CAST(c.{quoted} AS STRING), '{MISSING_SEGMENT}') AS {quoted}"
            )
    quoted = [store.quote_identifier(c) for c in groups]
    return template.format(
        revenue_stats=hurdle_sql("revenue_total", "revenue_"),
        cost_stats=hurdle_sql("cost_total", "cost_to_serve_"),
        pre_sum=blocks["pre_sum"] if pre else "",
        pre_cte=blocks["pre_cte"] + blocks["pre_band"] if pre else "",
        pre_join=blocks["pre_join"] if pre else "",
        pre_select=blocks["pre_select"] if pre else "",
        group_select="".join(select),
        group_select_plain="".join(f"{q}, " for q in quoted),
        group_by=f"GROUP BY {', '.join(quoted)}" if quoted else "",
        order_by=f"ORDER BY {', '.join(quoted)}" if quoted else "",
    )


def _raise_missing(
    con: duckdb.DuckDBPyConnection, experiment_id: str | None, horizon: date, count: int
) -> None:
    sample = con.execute(
        """
        SELECT c.customer_id FROM customers c
        LEFT JOIN assignments a
          ON a.customer_id = c.customer_id AND a.experiment_id = $experiment_id
        WHERE ($experiment_id IS NULL OR a.experiment_id IS NOT NULL)
          AND NOT EXISTS (SELECT 1 FROM outcomes o
                          WHERE o.customer_id = c.customer_id AND o.period = $horizon)
        ORDER BY c.customer_id LIMIT 5
        """,
        {"experiment_id": experiment_id, "horizon": horizon},
    ).fetchall()
    ids = ", ".join(r[0] for r in sample)
    raise InputError(
        f"{count} customer(s) have no outcome row for the horizon {horizon:%Y-%m} "
        f"(e.g. {ids}); load outcomes for that month, choose an earlier horizon, "
        "or count them as inactive with missing='inactive'"
    )


def segment_sql(con: duckdb.DuckDBPyConnection, segment: str | None) -> str:
    """SQL for a customer's segment label as text (``customers`` aliased ``c``).

    The column is checked against the schema and quoted, never pasted from user text; None gives
    the one segment ``'everyone'``. Labels match the models' segment labels (the cells'
    segment columns): the value as text, :data:`MISSING_SEGMENT` for a customer without one.
    """
    if segment is None:
        return f"'{EVERYONE}'"
    if segment not in store.segment_columns(con):
        raise InputError(f"segment column {segment!r} is not a column of customers")
    return f"COALESCE(CAST(c.{store.quote_identifier(segment)} AS STRING), '{MISSING_SEGMENT}')"


_MONTHLY_SQL = """
SELECT {segment} AS segment, a.arm AS arm, o.period AS period,
       SUM(CAST(o.revenue AS DECIMAL(18, 6))) AS revenue,
       SUM(CAST(o.cost_to_serve AS DECIMAL(18, 6))) AS cost_to_serve,
       SUM(CAST(o.active AS INTEGER)) AS active
FROM assignments a
JOIN customers c ON c.customer_id = a.customer_id
JOIN outcomes o ON o.customer_id = a.customer_id
WHERE a.experiment_id = $experiment_id AND o.period >= $start AND o.period <= $horizon
GROUP BY ALL
ORDER BY segment, arm, period
"""


def monthly_totals(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    segment: str | None,
    start: date,
    horizon: date,
) -> pd.DataFrame:
    """Revenue, cost-to-serve and active customers per segment, arm and month of the window.

    The monthly shape the money layer spreads the models' window totals over, and the active
    counts its late-window churn rates come from (:func:`attribution.value.window_profile`).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
    experiment_id : str
    segment : str or None
        A segment column of ``customers``; None: one segment ``"everyone"``.
    start, horizon : date
        First and last month of the window.

    Returns
    -------
    pandas.DataFrame
        Columns segment (text), arm, period, revenue, cost_to_serve, active (customers active in
        the month).
    """
    sql = _MONTHLY_SQL.format(segment=segment_sql(con, segment))
    params = {"experiment_id": experiment_id, "start": start, "horizon": horizon}
    return arrow_frame(arrow_result(con, sql, params))  # decimals to floats as the cells are
