"""The DuckDB store: where it lives, how it is opened, its schema and its version.

Every other module reaches the data through a connection from :func:`connect`. Loading with
validation lives in :mod:`attribution.load`; the SQL that collapses customers into cells lives in
:mod:`attribution.cells`.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

import duckdb
import pandas as pd

from attribution.errors import InputError, StoreLockedError

SCHEMA_VERSION = 4
DEFAULT_STORE = Path("data") / "cx.duckdb"
STORE_ENV = "CX_STORE"
#: Memory DuckDB may use before it spills to disk; keeps 10M-customer jobs under a few GiB.
DEFAULT_MEMORY_LIMIT = os.environ.get("CX_MEMORY_LIMIT", "2GB")

#: Tables a user may load; the others are written by cx itself.
LOADABLE_TABLES = (
    "customers",
    "interactions",
    "interventions",
    "outcomes",
    "experiments",
    "assignments",
)
INTERNAL_TABLES = ("runs", "estimates", "loads", "truth", "truth_customers", "schema_meta")
#: Tables that hold data (cleared by :func:`clear`), in an order safe for deleting.
DATA_TABLES = (
    "truth_customers",
    "truth",
    "estimates",
    "runs",
    "loads",
    "assignments",
    "experiments",
    "interventions",
    "interactions",
    "outcomes",
    "customers",
)
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def resolve_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Return the store path: the argument, else ``$CX_STORE``, else ``data/cx.duckdb``.

    Examples
    --------
    >>> resolve_path("/tmp/x.duckdb").name
    'x.duckdb'
    """
    if path is not None:
        return Path(path)
    env = os.environ.get(STORE_ENV)
    return Path(env) if env else DEFAULT_STORE


def connect(
    path: str | os.PathLike[str] | None = None,
    *,
    read_only: bool = False,
    create: bool = True,
    memory_limit: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the store, creating it with the current schema when it does not exist.

    Parameters
    ----------
    path : path-like, optional
        Store file; ``":memory:"`` for a throw-away store. Defaults to :func:`resolve_path`.
    read_only : bool
        Open without write access (several readers may share a store).
    create : bool
        Create the file and schema when missing. With ``False`` a missing store is an error.
    memory_limit : str, optional
        DuckDB memory limit such as ``"2GB"``; defaults to ``$CX_MEMORY_LIMIT`` or 2GB.

    Returns
    -------
    duckdb.DuckDBPyConnection

    Raises
    ------
    StoreLockedError
        Another process holds the store for writing.
    InputError
        The store is missing (with ``create=False``) or has an unknown schema version.

    Examples
    --------
    >>> con = connect(":memory:")
    >>> schema_version(con)
    4
    """
    target = str(path) if path == ":memory:" else str(resolve_path(path))
    if target != ":memory:":
        p = Path(target)
        if not p.exists():
            if read_only or not create:
                raise InputError(f"store {p} does not exist; create it with `cx init --store {p}`")
            p.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(target, read_only=read_only)
    except duckdb.IOException as exc:
        raise _locked_error(target, exc) from exc
    con.execute(f"SET memory_limit = '{_memory_limit(memory_limit)}'")
    con.execute("SET preserve_insertion_order = true")
    if not read_only:
        init_schema(con)
    else:
        _check_version(con, target, migrate=False)
    return con


@contextmanager
def opened(
    path: str | os.PathLike[str] | None = None, **kwargs
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Context manager around :func:`connect` that always closes the connection.

    Examples
    --------
    >>> with opened(":memory:") as con:
    ...     table_counts(con)["customers"]
    0
    """
    con = connect(path, **kwargs)
    try:
        yield con
    finally:
        con.close()


def _memory_limit(value: str | None) -> str:
    limit = value or DEFAULT_MEMORY_LIMIT
    if not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", limit.strip(), re.I):
        raise InputError(f"memory limit {limit!r} is not a size such as '2GB'")
    return limit.strip()


def _locked_error(target: str, exc: Exception) -> Exception:
    text = str(exc)
    if "lock" in text.lower():
        pid = re.search(r"PID (\d+)", text)
        who = f" (process {pid.group(1)})" if pid else ""
        return StoreLockedError(
            f"store {target} is in use by another process{who}; wait for it to finish and try again"
        )
    return InputError(f"cannot open store {target}: {text}")


def init_schema(con: duckdb.DuckDBPyConnection) -> bool:
    """Create the schema when absent; a no-op on a store of the current version.

    Returns
    -------
    bool
        True when the schema was created by this call.
    """
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_meta'"
    ).fetchone()[0]
    if exists:
        _check_version(con, "store")
        return False
    sql = resources.files("attribution").joinpath("schema.sql").read_text()
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(sql)
        con.execute(
            "INSERT INTO schema_meta VALUES ('schema_version', ?), ('created_at', ?)",
            [str(SCHEMA_VERSION), datetime.now(UTC).isoformat(timespec="seconds")],
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return True


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """Return the schema version recorded in the store."""
    rows = con.execute("SELECT value FROM schema_meta WHERE key = 'schema_version'").fetchall()
    row = rows[0] if rows else None
    if row is None:
        raise InputError("store has no schema version; it was not created by cx")
    return int(row[0])


def _create_statement(table: str) -> str:
    """schema.sql's own CREATE statement of ``table`` (a migration that adds a table runs it)."""
    sql = resources.files("attribution").joinpath("schema.sql").read_text()
    found = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \(.*?\);", sql, flags=re.DOTALL)
    if found is None:
        raise InputError(f"schema.sql creates no table {table!r}")
    return found.group(0)


# Migrations from version v to v + 1 (their SQL), applied in order by _check_version, each in one
# transaction. Callables are called when the migration runs.
_MIGRATIONS: dict[int, str | Callable[[], str]] = {
    # 1 -> 2: what an observational estimate needs to say (cx refresh fits [[observational]]).
    1: """
        ALTER TABLE estimates ADD COLUMN IF NOT EXISTS estimand VARCHAR;
        ALTER TABLE estimates ADD COLUMN IF NOT EXISTS verdict VARCHAR;
        ALTER TABLE estimates ADD COLUMN IF NOT EXISTS question VARCHAR;
        ALTER TABLE estimates ADD COLUMN IF NOT EXISTS estimator VARCHAR;
    """,
    # 2 -> 3: whom an observational row is about after trimming (issue 17).
    2: """
        ALTER TABLE estimates ADD COLUMN IF NOT EXISTS population VARCHAR;
    """,
    # 3 -> 4: the simulator's individual effects (issue 19's truth for per-customer uplift).
    3: lambda: _create_statement("truth_customers"),
}


def _check_version(con: duckdb.DuckDBPyConnection, where: str, *, migrate: bool = True) -> None:
    """Refuse a newer store; migrate an older one (unless ``migrate`` is False: read-only).

    A read-only connection cannot migrate: it reads the older schema as it is (readers such as
    :func:`attribution.runs.current_estimates` fill columns it lacks with nulls), and the next
    writable open migrates it.
    """
    found = schema_version(con)
    if found > SCHEMA_VERSION:
        raise InputError(
            f"{where} has schema version {found}, newer than this cx ({SCHEMA_VERSION}); "
            "upgrade cx-attribution"
        )
    while migrate and found < SCHEMA_VERSION:
        con.execute("BEGIN TRANSACTION")
        try:
            step = _MIGRATIONS[found]
            con.execute(step() if callable(step) else step)
            con.execute(
                "UPDATE schema_meta SET value = ? WHERE key = 'schema_version'", [str(found + 1)]
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        found += 1


def quote_identifier(name: str) -> str:
    """Quote a column name after checking it is a plain lower-case identifier.

    Examples
    --------
    >>> quote_identifier("tier")
    '"tier"'
    """
    if not _IDENTIFIER.match(name):
        raise InputError(
            f"column name {name!r} is not allowed: use lower-case letters, digits and _ "
            "(starting with a letter or _)"
        )
    return f'"{name}"'


def columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Return ``{column: duckdb type}`` for a table, in table order (of a Spark lake's table
    too: :class:`attribution.lake.Lake`)."""
    if getattr(con, "is_lake", False):
        return con.columns(table)
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    if not rows:
        raise InputError(f"unknown table {table!r}")
    return {name: dtype for name, dtype in rows}


def segment_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Return the customers columns usable as segments (all but the id and signup date)."""
    return [c for c in columns(con, "customers") if c not in ("customer_id", "signup_date")]


def add_customer_columns(con: duckdb.DuckDBPyConnection, new: Mapping[str, str]) -> list[str]:
    """Add segment attribute columns to ``customers``; existing ones are left alone.

    Parameters
    ----------
    new : mapping
        ``{column name: DuckDB type}`` with types VARCHAR, BIGINT, DOUBLE, BOOLEAN or DATE.

    Returns
    -------
    list of str
        The columns that were added.
    """
    allowed = {"VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN", "DATE"}
    have = columns(con, "customers")
    added = []
    for name, dtype in new.items():
        if name in have:
            continue
        if dtype not in allowed:
            raise InputError(
                f"customers column {name!r}: type {dtype} is not one of {sorted(allowed)}"
            )
        con.execute(f"ALTER TABLE customers ADD COLUMN {quote_identifier(name)} {dtype}")
        added.append(name)
    return added


def register(con: duckdb.DuckDBPyConnection, name: str, frame) -> None:
    """Register ``frame`` as the view ``name`` on ``con``, whatever ran on ``con`` before.

    DuckDB refuses to register while a previous query's result is unfinished (a ``fetchone()``
    leaves one: "connection has an unfinished result from execute()"), so a readout followed by
    an assignment or a publish on the same connection failed. A finished trivial query replaces
    that result first.
    """
    con.execute("SELECT 1").fetchall()
    con.register(name, frame)


def append(con: duckdb.DuckDBPyConnection, table: str, frame) -> int:
    """Append trusted rows (a DataFrame or Arrow table) to a table, matching columns by name.

    This skips validation: it is for cx's own writers (the simulator, run publishing). User data
    goes through :func:`attribution.load.load`.
    """
    cols = list(columns(con, table))
    names = list(frame.columns) if hasattr(frame, "columns") else frame.schema.names
    unknown = [c for c in names if c not in cols]
    if unknown:
        raise InputError(f"{table}: unknown columns {unknown}")
    register(con, "_cx_append", frame)
    try:
        col_sql = ", ".join(quote_identifier(c) for c in names)
        con.execute(f"INSERT INTO {table} ({col_sql}) SELECT {col_sql} FROM _cx_append")
    finally:
        con.unregister("_cx_append")
    return len(frame)


def clear(con: duckdb.DuckDBPyConnection) -> None:
    """Delete every row of every data table (the schema stays). Used by ``simulate --replace``."""
    for table in DATA_TABLES:
        con.execute(f"DELETE FROM {table}")


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Return the number of rows in each table of the store (0 for a table an older store,
    opened read-only and so not migrated, does not have yet)."""
    present = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    out = {}
    for table in LOADABLE_TABLES + INTERNAL_TABLES:
        if table not in present:
            out[table] = 0
            continue
        out[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return out


def is_empty(con: duckdb.DuckDBPyConnection) -> bool:
    """True when no loadable table holds any row."""
    counts = table_counts(con)
    return all(counts[t] == 0 for t in LOADABLE_TABLES)


def parse_period(value: str | date | datetime | pd.Timestamp) -> date:
    """Parse a month: ``YYYY-MM`` or any date inside the month; returns its first day.

    Examples
    --------
    >>> parse_period("2025-03")
    datetime.date(2025, 3, 1)
    >>> parse_period("2025-03-17")
    datetime.date(2025, 3, 1)
    """
    if isinstance(value, datetime | pd.Timestamp):
        return date(value.year, value.month, 1)
    if isinstance(value, date):
        return date(value.year, value.month, 1)
    text = str(value).strip()
    m = re.fullmatch(r"(\d{4})-(\d{1,2})", text)
    try:
        if m:
            return date(int(m.group(1)), int(m.group(2)), 1)
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise InputError(f"period {value!r} is not a month (YYYY-MM) or a date") from exc
    if pd.isna(ts):
        raise InputError(f"period {value!r} is not a month (YYYY-MM) or a date")
    return date(ts.year, ts.month, 1)


#: DuckDB numeric type names (``DECIMAL(p, s)`` matches by its name; list types do not).
NUMERIC_TYPES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL",
)  # fmt: skip


def is_numeric_type(type_name: str) -> bool:
    """Whether a DuckDB column type (as :func:`columns` gives it) holds numbers.

    Examples
    --------
    >>> [is_numeric_type(t) for t in ("DECIMAL(18,3)", "ubigint", "INTEGER[]", "VARCHAR")]
    [True, True, False, False]
    """
    return type_name.upper().split("(")[0].strip() in NUMERIC_TYPES


def periods(con: duckdb.DuckDBPyConnection) -> tuple[date | None, date | None]:
    """Return the first and last outcome period in the store (None when empty)."""
    first, last = con.execute("SELECT min(period), max(period) FROM outcomes").fetchone()
    return first, last


# ------------------------------------------------------------------------------------------------
# Locking: DuckDB lets one process open a file for writing; a refresh also takes its own lock so
# that two refreshes never overlap, even while neither holds the store open (see refresh.py).
# ------------------------------------------------------------------------------------------------
#: Seconds between attempts while waiting for a lock.
LOCK_POLL_S = 0.2


class RefreshRunningError(StoreLockedError):
    """Another refresh holds the store's refresh lock (exit 1: retrying later can succeed)."""


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The refresh lock file beside a store: ``<store>.refresh.lock``.

    Examples
    --------
    >>> lock_path("data/cx.duckdb").name
    'cx.duckdb.refresh.lock'
    """
    p = Path(path)
    return p.with_name(p.name + ".refresh.lock")


def store_path(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The file behind a connection's current database, or None for an in-memory store."""
    row = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return Path(row[0]) if row and row[0] else None


@contextmanager
def refresh_lock(
    path: str | os.PathLike[str], *, wait: float = 0.0, on_wait=None
) -> Iterator[float]:
    """Hold the store's refresh lock (``fcntl.flock`` on :func:`lock_path`) for the block.

    The operating system releases the lock when its holder exits, however it exits (``kill -9``
    included), so a crashed refresh never leaves a stale lock behind. The file itself stays; it
    records the holder's process id and start time for the message others get.

    Parameters
    ----------
    path : path-like
        The store file.
    wait : float
        Seconds to wait for a refresh that holds the lock; 0 fails at once.
    on_wait : callable, optional
        Called once with a line of text when the lock is held and this call starts waiting.

    Yields
    ------
    float
        Seconds spent waiting for the lock.

    Raises
    ------
    RefreshRunningError
        Another refresh still held the lock after ``wait`` seconds; the message names its
        process id and start time.
    InputError
        ``wait`` is negative or not a number.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "cx.duckdb"
    >>> with refresh_lock(target) as waited:
    ...     waited
    0.0
    """
    import fcntl

    if not isinstance(wait, int | float) or not wait >= 0:
        raise InputError(f"wait must be a number of seconds >= 0, got {wait!r}")
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    started = time.monotonic()
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                holder = _lock_holder(lock)
                if waited >= wait:
                    advice = (
                        f"waited {waited:.0f} s; "
                        if wait
                        else "pass a wait (cx refresh --wait SECONDS) to wait for it, or "
                    )
                    raise RefreshRunningError(
                        f"store {path}: another refresh is running ({holder}, lock file {lock}); "
                        f"{advice}try again when it has finished"
                    ) from None
                if not told and on_wait is not None:
                    on_wait(f"another refresh is running ({holder}); waiting up to {wait:g} s")
                    told = True
                time.sleep(min(LOCK_POLL_S, max(wait - waited, 0.01)))
        waited = round(time.monotonic() - started, 3) if told else 0.0
        os.ftruncate(fd, 0)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        os.write(fd, json.dumps({"pid": os.getpid(), "since": stamp}).encode())
        try:
            yield waited
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _lock_holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if "pid" not in info:
        return "process unknown"
    return f"process {info['pid']}, since {info.get('since', '?')}"


def connect_waiting(
    path: str | os.PathLike[str] | None = None, *, wait: float = 0.0, **kwargs
) -> duckdb.DuckDBPyConnection:
    """:func:`connect`, retrying while another process holds the store, for up to ``wait`` s.

    Raises
    ------
    StoreLockedError
        The store was still held after ``wait`` seconds.
    """
    started = time.monotonic()
    while True:
        try:
            return connect(path, **kwargs)
        except StoreLockedError:
            if time.monotonic() - started >= wait:
                raise
            time.sleep(LOCK_POLL_S)


def segment_profile(
    con: duckdb.DuckDBPyConnection, experiment_id: str | None = None
) -> pd.DataFrame:
    """Per segment column of ``customers``: how many distinct values and missing values it has.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
    experiment_id : str, optional
        Count over the experiment's assigned customers only (default: every customer).

    Returns
    -------
    pandas.DataFrame
        ``column``, ``values`` (distinct non-missing values), ``missing`` (customers without a
        value) and ``customers``, one row per column of :func:`segment_columns`.
    """
    cols = segment_columns(con)
    if not cols:
        return pd.DataFrame(columns=["column", "values", "missing", "customers"])
    counts = ", ".join(
        f"COUNT(DISTINCT c.{quote_identifier(col)}), COUNT(*) - COUNT(c.{quote_identifier(col)})"
        for col in cols
    )
    sql = (
        f"SELECT COUNT(*), {counts} FROM customers c "
        "WHERE $e IS NULL OR c.customer_id IN "
        "(SELECT customer_id FROM assignments WHERE experiment_id = $e)"
    )
    row = con.execute(sql, {"e": experiment_id}).fetchone()
    total = int(row[0])
    return pd.DataFrame(
        [
            {
                "column": col,
                "values": int(row[1 + 2 * i]),
                "missing": int(row[2 + 2 * i]),
                "customers": total,
            }
            for i, col in enumerate(cols)
        ]  # fmt: skip
    )


def cluster_counts(
    con: duckdb.DuckDBPyConnection, experiment_id: str, column: str
) -> tuple[dict[str, int], list[str]]:
    """Clusters per arm of a cluster-randomized experiment (``column`` a customers column), and
    the clusters found in more than one arm (at most five, for messages)."""
    per = f"""
        WITH per AS (
            SELECT CAST(c.{quote_identifier(column)} AS STRING) AS cluster, MIN(a.arm) AS arm,
                   COUNT(DISTINCT a.arm) AS arms
            FROM assignments a JOIN customers c ON c.customer_id = a.customer_id
            WHERE a.experiment_id = ?
            GROUP BY 1
        )
    """
    rows = con.execute(
        per + "SELECT arm, COUNT(*), SUM(CASE WHEN arms > 1 THEN 1 ELSE 0 END) "
        "FROM per GROUP BY arm ORDER BY arm",
        [experiment_id],
    ).fetchall()
    counts = {str(arm): int(n) for arm, n, _ in rows}
    if not any(m for _, _, m in rows):
        return counts, []
    mixed = con.execute(
        per + "SELECT cluster FROM per WHERE arms > 1 ORDER BY cluster LIMIT 5", [experiment_id]
    ).fetchall()
    return counts, [str(m[0]) for m in mixed]


def arm_counts(con: duckdb.DuckDBPyConnection, experiment_id: str) -> dict[str, int]:
    """Customers assigned per arm of an experiment, by arm name (empty when none)."""
    rows = con.execute(
        "SELECT arm, count(*) FROM assignments WHERE experiment_id = ? GROUP BY arm ORDER BY arm",
        [experiment_id],
    ).fetchall()
    return {str(arm): int(n) for arm, n in rows}
