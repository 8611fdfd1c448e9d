"""A data lake read by Spark: the store's own SQL on the contract's tables, only aggregates out.

When customers outgrow one machine, the tables stay where they are (Parquet folders in a lake,
or a Spark catalog's tables) and Spark computes what the models read: the cells, and the few
other aggregations a readout needs (arm counts, the outcome window, intervention costs, monthly
totals). Customer rows never reach the driver; what comes back is a frame of thousands of rows.

The SQL is the text DuckDB runs (:mod:`attribution.cells`, :mod:`attribution.store`,
:mod:`attribution.readout`): a :class:`Lake` answers the small part of DuckDB's connection
interface those functions use (``execute(sql, params)`` with ``.df()``, ``.fetchone()``,
``.fetchall()``), so every query is written once. What makes one text run on both engines:

- parameters: DuckDB's ``$name`` markers become Spark's ``:name``; ``?`` is the same in both;
- identifiers: double-quoted column names are identifiers in Spark's ANSI mode with
  ``spark.sql.ansi.doubleQuotedIdentifiers`` (set on every session this module builds, and
  required of a session passed in);
- decimals: money is summed as DECIMAL in both engines; with
  ``spark.sql.decimalOperations.allowPrecisionLoss`` off, Spark keeps the scale of a product
  as DuckDB does (a sum of squares at 12 decimals), so both engines add the same exact numbers;
  decimals come back as float64, as DuckDB's ``.df()`` gives them;
- types: ``STRING`` (not ``VARCHAR``: Spark wants a length), ``EXISTS``, ``GROUP BY ALL``,
  ``NTILE`` and ``LN`` mean the same in both.

Where the tables are: :func:`open_lake` with a folder holding the contract's tables as Parquet
folders (``customers/``, ``outcomes/``, ``assignments/``, ``experiments/``, ``interventions/``,
``interactions/``; the first two required), or a Spark catalog database holding tables of those
names. The Spark session is the caller's (a ``SparkSession`` passed in) or built by
:func:`session` from a master URL. :func:`write_lake` writes a DuckDB store (e.g. a simulated
world) as such a folder.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from attribution.errors import InputError

__all__ = [
    "REQUIRED",
    "SPARK_CONF",
    "TABLES",
    "Lake",
    "active_session",
    "arrow_frame",
    "arrow_result",
    "open_lake",
    "session",
    "write_lake",
]

#: The data contract's tables a lake may hold.
TABLES = ("customers", "outcomes", "assignments", "experiments", "interventions", "interactions")
#: Tables without which nothing can be read out.
REQUIRED = ("customers", "outcomes")
#: Settings every session must have for the store's SQL to mean the same on Spark.
SPARK_CONF = {
    "spark.sql.ansi.enabled": "true",
    "spark.sql.ansi.doubleQuotedIdentifiers": "true",
    "spark.sql.decimalOperations.allowPrecisionLoss": "false",
    "spark.sql.session.timeZone": "UTC",
}
#: Settings of a session built here (a local session for one user: no UI, few partitions).
_LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
}
_WRITABLE = (*TABLES, "truth")
#: Where the Spark JVM of a session built here writes its own output.
LOG = Path(tempfile.gettempdir()) / "cx-attribution" / "spark.log"
_NAMED = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def session(master: str = "local[2]", *, app: str = "cx-attribution", memory: str | None = None):
    """A Spark session with the settings the store's SQL needs (:data:`SPARK_CONF`).

    Parameters
    ----------
    master : str
        Spark master URL: ``local[2]`` (two cores of this machine, the default),
        ``local[*]``, ``spark://host:7077``, ``yarn``...
    app : str
        Application name shown by the cluster manager.
    memory : str, optional
        Driver memory, e.g. ``"4g"`` (a local session's executors live in the driver).

    Spark's own output (JVM start-up, log4j, warnings) goes to :data:`LOG`, not the terminal.

    Returns
    -------
    pyspark.sql.SparkSession
    """
    builder = _pyspark().builder.master(master).appName(app)
    for key, value in {**_LOCAL_CONF, **SPARK_CONF}.items():
        builder = builder.config(key, value)
    if memory:
        builder = builder.config("spark.driver.memory", memory)
    # The JVM inherits this process's stderr when it starts: point it at a log file, so its
    # start-up lines and warnings (hostname, native libraries, log4j) never reach a user.
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("ab") as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            spark = builder.getOrCreate()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def active_session():
    """The Spark session active in this process (a notebook's), or None."""
    return _pyspark().getActiveSession()


def _pyspark():
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError(
            "the Spark engine needs pyspark and Java 17: pip install 'cx-attribution[spark]'"
        ) from None
    return SparkSession


@dataclass(frozen=True)
class LakeResult:
    """The result of one query, as DuckDB's result offers it (``df``, ``fetchone``,
    ``fetchall``)."""

    table: pa.Table

    def df(self) -> pd.DataFrame:
        """A pandas frame; decimals as float64 and dates as datetime64, as DuckDB gives them."""
        return arrow_frame(self.table)

    def to_arrow_table(self) -> pa.Table:
        """The result as Arrow, decimals exact (as DuckDB's ``to_arrow_table``)."""
        return self.table

    @property
    def description(self) -> list[tuple]:
        """Column names as DB-API's ``description`` gives them (name first)."""
        return [
            (name, str(typ), None, None, None, None, None)
            for name, typ in zip(self.table.column_names, self.table.schema.types, strict=True)
        ]

    def fetchall(self) -> list[tuple]:
        """Rows as tuples of Python values."""
        names = self.table.column_names
        return [tuple(row[n] for n in names) for row in self.table.to_pylist()]

    def fetchone(self) -> tuple | None:
        """The first row (None when there is none)."""
        rows = self.table.slice(0, 1)
        return self.__class__(rows).fetchall()[0] if rows.num_rows else None


@dataclass(frozen=True)
class Lake:
    """The contract's tables in Spark, queried with the store's SQL.

    Attributes
    ----------
    spark : pyspark.sql.SparkSession
    source : str
        Where the tables are: the lake folder, or ``catalog database <name>``.
    tables : tuple of str
        The contract's tables found (registered as temporary views of the session).
    """

    spark: Any = field(repr=False)
    source: str
    tables: tuple[str, ...]
    #: What :mod:`attribution.store` checks to tell a lake from a DuckDB connection.
    is_lake: ClassVar[bool] = True

    def execute(self, sql: str, params: dict | list | tuple | None = None) -> LakeResult:
        """Run one statement of the store's SQL on Spark; parameters as DuckDB takes them."""
        text, args = _spark_sql(sql, params)
        return LakeResult(self.spark.sql(text, args=args).toArrow())

    def columns(self, table: str) -> dict[str, str]:
        """``{column: type}`` of a table, in table order (DuckDB's type names for the few
        types the contract uses)."""
        if table not in self.tables:
            raise InputError(f"unknown table {table!r} in the lake {self.source}")
        fields = self.spark.table(table).schema.fields
        return {f.name: _duck_type(f.dataType.simpleString()) for f in fields}

    def close(self) -> None:
        """Drop the views this lake registered (the session stays: it may be the caller's)."""
        for table in self.tables:
            self.spark.catalog.dropTempView(table)


def open_lake(
    path: str | Path | None = None,
    *,
    spark=None,
    database: str | None = None,
    master: str = "local[2]",
) -> Lake:
    """Register the contract's tables of a lake folder or a catalog database with Spark.

    Parameters
    ----------
    path : str or Path, optional
        A folder with one Parquet folder (or file) per table: ``customers``, ``outcomes`` and
        any of ``assignments``, ``experiments``, ``interventions``, ``interactions``.
    spark : pyspark.sql.SparkSession, optional
        The session to use (a notebook's, a cluster's); it must have :data:`SPARK_CONF`.
        Default: :func:`session` on ``master``.
    database : str, optional
        Instead of ``path``: a catalog database holding tables of the contract's names.
    master : str
        Master URL when the session is built here.

    Returns
    -------
    Lake

    Raises
    ------
    InputError
        Neither or both of ``path`` and ``database``; a missing folder or required table; a
        session without the settings the SQL needs (named).
    """
    if (path is None) == (database is None):
        raise InputError("give the lake as a folder (path) or a catalog database, not both")
    spark = session(master) if spark is None else spark
    wrong = {
        k: spark.conf.get(k, None)
        for k, v in SPARK_CONF.items()
        if str(spark.conf.get(k, "")).lower() != v.lower()
    }
    if wrong:
        raise InputError(
            f"the Spark session's settings {sorted(wrong)} are {wrong}; the store's SQL needs "
            f"{ {k: SPARK_CONF[k] for k in wrong} } (attribution.lake.SPARK_CONF)"
        )
    found = []
    if path is not None:
        root = Path(path)
        if not root.is_dir():
            raise InputError(f"lake folder {str(root)!r} does not exist")
        for table in TABLES:
            where = _parquet(root, table)
            if where is not None:
                spark.read.parquet(str(where)).createOrReplaceTempView(table)
                found.append(table)
        source = str(root)
    else:
        names = {t.name for t in spark.catalog.listTables(database) if not t.isTemporary}
        for table in TABLES:
            if table in names:
                spark.table(f"{database}.{table}").createOrReplaceTempView(table)
                found.append(table)
        source = f"catalog database {database}"
    missing = [t for t in REQUIRED if t not in found]
    if missing:
        raise InputError(
            f"the lake {source} has no {' or '.join(missing)} table: a readout needs "
            f"{', '.join(REQUIRED)} (tables found: {found or 'none'})"
        )
    return Lake(spark=spark, source=source, tables=tuple(found))


def write_lake(
    con: duckdb.DuckDBPyConnection, path: str | Path, *, extra: tuple[str, ...] = ()
) -> dict[str, int]:
    """Write a store's contract tables as a lake folder: one Parquet folder per table.

    Used by ``cx simulate --lake`` so anyone can try the Spark path without their own data.
    DuckDB streams each table to Parquet (a table is never held in memory whole). ``extra``:
    more tables of the store to write beside them (the simulator's ``truth``).

    Returns
    -------
    dict
        Rows written per table.
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    rows = {}
    for table in (*TABLES, *extra):
        if table not in _WRITABLE:
            raise InputError(f"write_lake: {table!r} is not a table of the store")
        target = root / table
        if target.exists():
            raise InputError(f"lake folder {str(target)!r} exists already; choose a new --lake")
        target.mkdir()
        n = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
        con.execute(
            f"COPY (SELECT * FROM {table}) TO '{_literal(target / 'part-0.parquet')}' "  # noqa: S608
            "(FORMAT parquet, ROW_GROUP_SIZE 1000000)"
        )
        rows[table] = int(n)
    return rows


def arrow_result(con, sql: str, params: dict | list | None) -> pa.Table:
    """A query's result as Arrow, decimals exact, from a DuckDB connection or a :class:`Lake`.

    DuckDB warns that Arrow out of an ``execute`` result copies the rows; the results read this
    way are aggregates (cells: thousands of rows), so the copy costs nothing worth a warning.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
        return con.execute(sql, params).to_arrow_table()


def arrow_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow result as pandas, decimals as float64 and dates as datetime64.

    Both engines' exact decimal sums go through this one conversion (Arrow's cast), so the same
    decimals give the same floats whichever engine summed them: DuckDB's own ``.df()`` and
    Arrow may round a decimal to the nearest double differently in the last bit.
    """
    columns = []
    for col, typ in zip(table.columns, table.schema.types, strict=True):
        if pa.types.is_decimal(typ):
            col = col.cast(pa.float64())
        elif pa.types.is_date(typ):
            col = col.cast(pa.timestamp("us"))
        columns.append(col)
    return pa.table(columns, names=table.column_names).to_pandas()


# --------------------------------------------------------------------------------------------
# Helpers


def _parquet(root: Path, table: str) -> Path | None:
    for candidate in (root / table, root / f"{table}.parquet"):
        if candidate.exists():
            return candidate
    return None


def _literal(path: Path) -> str:
    """A file path as the body of a SQL string literal (quotes doubled)."""
    return str(path).replace("'", "''")


def _spark_sql(sql: str, params) -> tuple[str, dict | list | None]:
    """DuckDB's parameter markers as Spark's, and the values as Spark literals take them."""
    if params is None:
        return sql, None
    if isinstance(params, dict):
        return _NAMED.sub(r":\1", sql), {k: _value(v) for k, v in params.items()}
    return sql, [_value(v) for v in params]


def _value(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp):
        return v.date() if v == v.normalize() else v.to_pydatetime()
    if isinstance(v, date | datetime | str | int | float | bool | Decimal) or v is None:
        return v
    raise InputError(f"a query parameter of type {type(v).__name__} cannot go to Spark: {v!r}")


def _duck_type(spark_type: str) -> str:
    return {
        "string": "VARCHAR",
        "bigint": "BIGINT",
        "int": "INTEGER",
        "double": "DOUBLE",
        "boolean": "BOOLEAN",
        "date": "DATE",
        "timestamp": "TIMESTAMP",
        "timestamp_ntz": "TIMESTAMP",
        "smallint": "SMALLINT",
    }.get(spark_type, spark_type.upper())
