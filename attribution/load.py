"""Validate and load user data into the store: all of a file or none of it.

A file (CSV or Parquet) or a DataFrame is staged as text, every value is checked in SQL, and the
first problems are reported with the file, row, column and offending value. Only a clean file is
written, in one transaction: new keys are inserted, existing keys whose values changed are updated
(restatements), identical rows are left alone, so loading the same file twice changes nothing.
The data contract (columns, types, allowed values) is documented in ``data/README.md`` and encoded
in :data:`SPECS`.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from attribution import store
from attribution.errors import InputError, LoadError

MAX_PROBLEMS = 20
RESOLUTIONS = ("very_effective", "somewhat_effective", "somewhat_ineffective", "very_ineffective")
#: The staged row number; a file column of this name would shadow it.
ROW = "_row"


@dataclass(frozen=True)
class Column:
    """One column of the data contract.

    ``kind`` says how text becomes a value: text, integer, number, bool01, date, period,
    timestamp or json. ``minimum``/``maximum`` bound numbers; ``allowed`` lists valid text values.
    """

    name: str
    kind: str
    required: bool = True
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSpec:
    """What a loadable table accepts: columns, key, references and cross-column rules."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    references: tuple[tuple[str, str], ...] = ()  # (column, table whose key it must match)
    extras: bool = False  # keep unknown columns as segment attributes (customers only)
    # (column reported, columns needed, bad-if SQL over typed {column} placeholders, message)
    rules: tuple[tuple[str, tuple[str, ...], str, str], ...] = field(default=())

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def _c(name: str, kind: str, **kw) -> Column:
    return Column(name, kind, **kw)


SPECS: dict[str, TableSpec] = {
    "customers": TableSpec(
        "customers",
        (
            _c("customer_id", "text"),
            _c("signup_date", "date"),
            _c("tier", "text", required=False, nullable=True),
            _c("region", "text", required=False, nullable=True),
            _c("channel", "text", required=False, nullable=True),
        ),
        key=("customer_id",),
        extras=True,
    ),
    "interactions": TableSpec(
        "interactions",
        (
            _c("customer_id", "text"),
            _c("ts", "timestamp"),
            _c("channel", "text", required=False, nullable=True),
            _c("kind", "text"),
            _c("resolution", "text", required=False, nullable=True, allowed=RESOLUTIONS),
            _c("csat", "integer", required=False, nullable=True, minimum=1, maximum=5),
            _c("effort", "integer", required=False, nullable=True, minimum=1, maximum=7),
            _c("first_contact_resolution", "bool01", required=False, nullable=True),
            _c("handle_minutes", "number", required=False, nullable=True, minimum=0),
        ),
        key=("customer_id", "ts", "kind"),
        references=(("customer_id", "customers"),),
    ),
    "interventions": TableSpec(
        "interventions",
        (
            _c("customer_id", "text"),
            _c("intervention", "text"),
            _c("ts", "timestamp"),
            _c("unit_cost", "number", minimum=0),
            _c("experiment_id", "text", required=False, nullable=True),
        ),
        key=("customer_id", "intervention", "ts"),
        references=(("customer_id", "customers"), ("experiment_id", "experiments")),
    ),
    "outcomes": TableSpec(
        "outcomes",
        (
            _c("customer_id", "text"),
            _c("period", "period"),
            _c("active", "bool01"),
            _c("revenue", "number", minimum=0),
            _c("cost_to_serve", "number", minimum=0),
        ),
        key=("customer_id", "period"),
        references=(("customer_id", "customers"),),
    ),
    "experiments": TableSpec(
        "experiments",
        (
            _c("experiment_id", "text"),
            _c("intervention", "text"),
            _c("design", "json", required=False, nullable=True),
            _c("started", "date"),
            _c("ended", "date", required=False, nullable=True),
        ),
        key=("experiment_id",),
        rules=(("ended", ("started", "ended"), "{ended} < {started}", "is before started"),),
    ),
    "assignments": TableSpec(
        "assignments",
        (
            _c("experiment_id", "text"),
            _c("customer_id", "text"),
            _c("arm", "text"),
            _c("stratum", "text", required=False, nullable=True),
            _c("assigned_at", "timestamp", required=False, nullable=True),
        ),
        key=("experiment_id", "customer_id"),
        references=(("customer_id", "customers"), ("experiment_id", "experiments")),
    ),
}

# The written forms of dates and times the casts below may read: a four-digit year from 1000, a
# month, a day, then optionally a time and a UTC offset. Without this check DuckDB's casts also
# read 'infinity', 'epoch', '2024-01-01 (BC)' and five-digit years.
_DAY_RE = "[1-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?"
_OFFSET_RE = "( ?(Z|[+-][0-9][0-9](:?[0-9][0-9])?))?"
_TIME_RE = f"([ T][0-9][0-9]?:[0-9][0-9](:[0-9][0-9]([.][0-9]+)?)?{_OFFSET_RE})?"
_DATE_TEXT = f"regexp_full_match({{v}}, '{_DAY_RE}{_TIME_RE}')"
_MONTH_TEXT = "regexp_full_match({v}, '[1-9][0-9][0-9][0-9]-[0-9][0-9]?')"
_INTEGER_TEXT = "regexp_full_match({v}, '[-+]?[0-9]+')"
# Digits in groups split by ',', '.', a space or a non-breaking space are not a number ('1,234.50',
# '12,5', '1 234'); the message for such a value adds _SEPARATOR_HINT (an SQL string literal).
_GROUPED_DIGITS = "regexp_full_match({v}, '[-+]?[0-9]+([,. \u00a0\u202f][0-9]+)+')"
_SEPARATOR_HINT = "' (write numbers without thousands separators, with ''.'' as the decimal mark)'"

# How each kind turns a text value v into a typed value (NULL when it cannot).
_CONVERT = {
    "text": "{v}",
    # Digits alone are cast exactly (a detour through DOUBLE rounds beyond 2**53).
    "integer": f"CASE WHEN {_INTEGER_TEXT} THEN TRY_CAST({{v}} AS BIGINT) "
    "ELSE TRY_CAST(TRY_CAST({v} AS DOUBLE) AS BIGINT) END",
    # 'nan', 'inf' and overflowing values ('1e400') are not numbers.
    "number": "CASE WHEN isfinite(TRY_CAST({v} AS DOUBLE)) THEN TRY_CAST({v} AS DOUBLE) END",
    # 1.0 and 0.0 are what a DataFrame's float column (0/1 with gaps) holds.
    "bool01": "CASE WHEN lower({v}) IN ('1', 'true') THEN true "
    "WHEN lower({v}) IN ('0', 'false') THEN false "
    "WHEN TRY_CAST({v} AS DOUBLE) = 1 THEN true WHEN TRY_CAST({v} AS DOUBLE) = 0 THEN false END",
    "date": f"CASE WHEN {_DATE_TEXT} THEN COALESCE(TRY_CAST({{v}} AS DATE), "
    "CAST(TRY_CAST({v} AS TIMESTAMP) AS DATE)) END",
    "period": f"CASE WHEN {_MONTH_TEXT} THEN CAST(try_strptime({{v}}, '%Y-%m') AS DATE) "
    f"WHEN {_DATE_TEXT} THEN CAST(date_trunc('month', TRY_CAST({{v}} AS TIMESTAMP)) AS DATE) END",
    "timestamp": f"CASE WHEN {_DATE_TEXT} THEN TRY_CAST({{v}} AS TIMESTAMP) END",
    "json": "CASE WHEN json_valid({v}) THEN {v} END",
}
_EXPECTED = {
    "text": "text",
    "integer": "a whole number",
    "number": "a number",
    "bool01": "0 or 1",
    "date": "a date (YYYY-MM-DD)",
    "period": "a month (YYYY-MM) or a date",
    "timestamp": "a timestamp (YYYY-MM-DD HH:MM:SS) or a date",
    "json": "valid JSON",
}
_TARGET_TYPE = {
    "text": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "bool01": "BOOLEAN",
    "date": "DATE",
    "period": "DATE",
    "timestamp": "TIMESTAMP",
    "json": "VARCHAR",
}
_KIND_OF_TYPE = {
    "VARCHAR": "text",
    "BIGINT": "integer",
    "INTEGER": "integer",
    "SMALLINT": "integer",
    "DOUBLE": "number",
    "BOOLEAN": "bool01",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
}


@dataclass(frozen=True)
class LoadResult:
    """What a load did. ``changed`` is False when the store already held exactly this data."""

    table: str
    source: str
    content_hash: str
    rows_in_file: int
    rows_inserted: int
    rows_updated: int
    rows_unchanged: int
    columns_added: tuple[str, ...] = ()
    load_id: int | None = None

    @property
    def changed(self) -> bool:
        return bool(self.rows_inserted or self.rows_updated or self.columns_added)

    def describe(self) -> str:
        """One line of plain words for the terminal."""
        if not self.changed:
            return f"{self.table}: {self.source} is already loaded; nothing changed"
        extra = f", new segment columns {list(self.columns_added)}" if self.columns_added else ""
        return (
            f"{self.table}: loaded {self.source}: {self.rows_inserted} inserted, "
            f"{self.rows_updated} updated, {self.rows_unchanged} unchanged{extra}"
        )


def load(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    name: str | None = None,
) -> LoadResult:
    """Validate a CSV/Parquet file or a DataFrame and upsert it into a store table.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open, writable store.
    table : str
        One of ``customers, interactions, interventions, outcomes, experiments, assignments``.
    source : path or pandas.DataFrame
        A ``.csv`` or ``.parquet`` file, or a DataFrame.
    name : str, optional
        Name used in messages and the loads table (defaults to the file name, or "DataFrame").

    Returns
    -------
    LoadResult

    Raises
    ------
    LoadError
        The input was rejected; nothing was written. The message names the file, row, column and
        value of the first 20 problems, then how many more there are.
    InputError
        Unknown table, missing or unreadable file.

    Examples
    --------
    >>> import pandas as pd
    >>> from attribution import store
    >>> con = store.connect(":memory:")
    >>> df = pd.DataFrame({"customer_id": ["C1"], "signup_date": ["2024-05-01"], "tier": ["gold"]})
    >>> load(con, "customers", df).rows_inserted
    1
    """
    spec = _spec(table)
    raw, label, digest, is_csv = _read(source, name)
    try:
        return _load_staged(con, spec, raw, label, digest, is_csv)
    finally:
        with contextlib.suppress(duckdb.Error):
            con.unregister("_cx_src")
        con.execute("DROP TABLE IF EXISTS _cx_raw")
        con.execute("DROP TABLE IF EXISTS _cx_stage")


def _spec(table: str) -> TableSpec:
    if table in SPECS:
        return SPECS[table]
    if table in store.INTERNAL_TABLES:
        raise InputError(f"table {table!r} is written by cx itself and cannot be loaded")
    raise InputError(f"unknown table {table!r}; loadable tables: {', '.join(SPECS)}")


# --- reading ---------------------------------------------------------------------------------


def _read(
    source: str | os.PathLike[str] | pd.DataFrame, name: str | None
) -> tuple[pa.Table, str, str, bool]:
    """Return (all-text Arrow table with a _row column, label, content hash, is_csv)."""
    if isinstance(source, pd.DataFrame):
        label = name or "DataFrame"
        table = _frame_table(source, label)
        frame = source.copy()
        frame.columns = [str(c) for c in frame.columns]
        hashed = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
        digest = hashlib.sha256(hashed.tobytes() + "|".join(frame.columns).encode()).hexdigest()
        return _as_text(table, label), label, digest, False
    path = Path(source)
    label = name or path.name
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a file")
    if path.stat().st_size == 0:
        raise LoadError(label, ["the file is empty"])
    digest = _file_hash(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet" or suffix == ".pq":
        try:
            # Repeated column names first: Arrow's own message for them names its internals.
            _check_names(pq.read_schema(path).names, label)
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise LoadError(label, [f"cannot be read as Parquet: {exc}"]) from exc
        return _as_text(table, label), label, digest, False
    if suffix in (".csv", ".txt"):
        return _read_csv(path, label), label, digest, True
    raise InputError(f"{path}: unsupported file type {suffix or '(none)'}; use .csv or .parquet")


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _frame_table(frame: pd.DataFrame, label: str) -> pa.Table:
    """Arrow columns of a DataFrame, one by one, so one odd column cannot stop the others.

    A column Arrow cannot type (an object column mixing numbers and text, say) becomes text value
    by value; pandas periods become their text ('2025-03'), not Arrow's month ordinals.
    """
    names = [str(c) for c in frame.columns]
    _check_names(names, label)
    arrays = []
    for position, name in enumerate(names):
        series = frame.iloc[:, position]
        if isinstance(series.dtype, pd.PeriodDtype):
            series = pd.Series([None if pd.isna(v) else str(v) for v in series], dtype=object)
        try:
            array = pa.array(series, from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError):
            array = None
        if array is None or pa.types.is_nested(array.type):
            # Dicts become JSON as they are: Arrow would merge them into one struct, adding
            # the keys a dict lacks as nulls.
            array = _objects_as_text(series.tolist(), name, label)
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=names)


def _objects_as_text(values: list[object], name: str, label: str) -> pa.Array:
    """Text of Python values: missing ones null, lists and dicts as JSON, floats in full."""
    texts: list[str | None] = []
    for row, value in enumerate(values, start=1):
        if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
            texts.append(None)
            continue
        if isinstance(value, dict | list | tuple):
            text = json.dumps(value, default=str, ensure_ascii=False)
        elif isinstance(value, float | np.floating):
            text = repr(float(value))
        else:
            text = str(value)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise LoadError(
                label, [f"row {row}, column {name!r}: {text!r} is not valid Unicode text"]
            ) from None
        texts.append(text)
    return pa.array(texts, pa.string())


def _delimiter(header_line: str, label: str) -> str:
    """The delimiter of a CSV file, told from its header line: a comma unless there is none."""
    if "," in header_line:
        return ","
    found = [d for d in (";", "\t") if d in header_line]
    if len(found) > 1:
        raise LoadError(
            label,
            [
                "cannot tell how the columns are separated: the header line has semicolons and "
                "tabs but no commas; separate columns with one of comma, semicolon or tab"
            ],
        )
    return found[0] if found else ","


def _read_csv(path: Path, label: str) -> pa.Table:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            delimiter = _delimiter(fh.readline(), label)
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh, delimiter=delimiter), [])
    except UnicodeDecodeError:
        raise LoadError(label, [_encoding_problem(path)]) from None
    except csv.Error as exc:
        raise LoadError(label, [f"the header row cannot be parsed as CSV: {exc}"]) from exc
    names = [h.strip() for h in header]
    if not any(names):
        raise LoadError(label, ["the file has no header row"])
    _check_names(names, label)
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
            # newlines_in_values: a quoted value may span lines (Excel writes cells with line
            # breaks so); without it, such a file loads when small and fails when large.
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except (pa.ArrowException, OSError) as exc:
        raise LoadError(label, [_csv_problem(path, len(names), delimiter, exc)]) from exc
    return _as_text(table, label)


def _csv_problem(path: Path, width: int, delimiter: str, exc: Exception) -> str:
    """Where a CSV file Arrow could not parse goes wrong, in words.

    A row of the wrong width, text that is not UTF-8, or else Arrow's own message.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            next(reader, None)
            row_no = 0
            for row in reader:
                if not row:  # a blank line, which Arrow skips too
                    continue
                row_no += 1
                if len(row) != width:
                    return (
                        f"row {row_no} (line {reader.line_num}): has {len(row)} fields, "
                        f"the header has {width}"
                    )
    except UnicodeDecodeError:
        return _encoding_problem(path)
    except csv.Error as err:
        return f"cannot be parsed as CSV: {err}"
    return f"cannot be parsed as CSV: {exc}"


def _encoding_problem(path: Path) -> str:
    """The first line of a file that is not UTF-8, and what to do about it."""
    line_no = 1
    with path.open("rb") as fh:
        for n, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                line_no = n
                break
    return (
        f"line {line_no}: the file is not UTF-8 text (in Excel, save it as 'CSV UTF-8'; "
        "elsewhere, export it with the UTF-8 encoding)"
    )


def _check_names(names: list[str], label: str) -> None:
    """Reject repeated column names (after trimming and lower-casing) and the loader's own."""
    clean = [str(n).strip().lower() for n in names]
    dupes = sorted({n for n in clean if clean.count(n) > 1})
    if dupes:
        raise LoadError(label, [f"column {d!r} appears more than once" for d in dupes])
    if ROW in clean:
        raise LoadError(label, [f"column {ROW!r}: the name is reserved by the loader; rename it"])


def _as_text(table: pa.Table, label: str) -> pa.Table:
    names = [str(n).strip().lower() for n in table.column_names]
    _check_names(names, label)
    if table.num_rows == 0:
        raise LoadError(label, ["the file has no data rows"])
    arrays = []
    for name, col in zip(names, table.columns, strict=True):
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            arrays.append(col.cast(pa.string()))
        elif pa.types.is_floating(col.type):
            # repr keeps full precision; NaN means missing.
            values = col.to_numpy(zero_copy_only=False)
            text = [None if v is None or np.isnan(v) else repr(float(v)) for v in values]
            arrays.append(pa.array(text, pa.string()))
        elif pa.types.is_null(col.type):
            arrays.append(pa.nulls(table.num_rows, pa.string()))
        elif pa.types.is_nested(col.type):  # lists, structs, maps: as JSON text
            arrays.append(_objects_as_text(col.to_pylist(), name, label))
        else:
            try:
                arrays.append(col.cast(pa.string()))
            except pa.ArrowException as exc:
                raise LoadError(
                    label, [f"column {name!r}: {col.type} values cannot be read as text ({exc})"]
                ) from exc
    arrays.append(pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64)))
    return pa.Table.from_arrays(arrays, names=[*names, ROW])


# --- validating ------------------------------------------------------------------------------


def _load_staged(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    raw: pa.Table,
    label: str,
    digest: str,
    is_csv: bool,
) -> LoadResult:
    names = [n for n in raw.column_names if n != "_row"]
    missing = [c.name for c in spec.columns if c.required and c.name not in names]
    if missing:
        expected = ", ".join(c.name for c in spec.columns)
        raise LoadError(
            label,
            [f"missing required column {m!r} (expected columns: {expected})" for m in missing],
        )
    cols = _file_columns(con, spec, names, label)
    store.register(con, "_cx_src", raw)
    con.execute("DROP TABLE IF EXISTS _cx_raw")
    con.execute(
        "CREATE TEMP TABLE _cx_raw AS SELECT "
        + ", ".join(f"NULLIF(trim({_q(c.name)}), '') AS {_q(c.name)}" for c in cols)
        + ", _row FROM _cx_src"
    )
    con.unregister("_cx_src")
    con.execute("DROP TABLE IF EXISTS _cx_stage")
    con.execute(
        "CREATE TEMP TABLE _cx_stage AS SELECT "
        + ", ".join(f"{_convert(c)} AS {_q(c.name)}" for c in cols)
        + ", _row FROM _cx_raw"
    )
    parts = _value_checks(spec, cols) + _key_and_reference_checks(spec, cols)
    problems, total = _collect(con, parts, is_csv)
    if total:
        raise LoadError(label, problems, total, MAX_PROBLEMS)
    return _write(con, spec, cols, label, digest, raw.num_rows)


def _file_columns(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, names: list[str], label: str
) -> list[Column]:
    known = {c.name for c in spec.columns}
    unknown = [n for n in names if n not in known]
    if unknown and not spec.extras:
        expected = ", ".join(c.name for c in spec.columns)
        raise LoadError(
            label, [f"unknown column {u!r} (expected columns: {expected})" for u in unknown]
        )
    cols = [c for c in spec.columns if c.name in names]
    have = store.columns(con, spec.name)
    bad_names = []
    for extra in unknown:
        try:
            store.quote_identifier(extra)
        except InputError:
            bad_names.append(
                f"column {extra!r}: segment column names must be lower-case letters, digits and _"
            )
            continue
        kind = _KIND_OF_TYPE.get(have[extra], "text") if extra in have else "infer"
        cols.append(Column(extra, kind, required=False, nullable=True))
    if bad_names:
        raise LoadError(label, bad_names)
    return cols


def _q(name: str) -> str:
    return f'"{name}"'


def _convert(col: Column) -> str:
    if col.kind == "infer":  # typed later, once the values are known to be clean
        return _q(col.name)
    return _CONVERT[col.kind].format(v=_q(col.name))


def _row_ref(is_csv: bool) -> str:
    # CSV rows are also given as file lines (the header is line 1).
    if is_csv:
        return "'row ' || _row || ' (line ' || (_row + 1) || ')'"
    return "'row ' || _row"


def _value_checks(spec: TableSpec, cols: list[Column]) -> list[str]:
    """SQL selecting (_row, col_order, problem) for every bad value in the raw text."""
    checks = []
    for order, col in enumerate(cols):
        if col.kind == "infer":
            continue
        v = _q(col.name)
        conv = _convert(col)
        label = col.name.replace("'", "''")
        quoted = _quoted(col.name)
        if not col.nullable:
            checks.append((order, f"{v} IS NULL", f"'column ''{label}'': value is missing'"))
        expected = _EXPECTED[col.kind]
        hint = ""
        if col.kind in ("integer", "number"):
            hint = f" || CASE WHEN {_GROUPED_DIGITS.format(v=v)} THEN {_SEPARATOR_HINT} ELSE '' END"
        checks.append(
            (
                order,
                f"{v} IS NOT NULL AND ({conv}) IS NULL",
                f"'column ''{label}'': ' || {quoted} || ' is not {expected}'{hint}",
            )
        )
        if col.kind == "integer":
            checks.append(
                (
                    order,
                    f"TRY_CAST({v} AS DOUBLE) IS NOT NULL "
                    f"AND TRY_CAST({v} AS DOUBLE) <> floor(TRY_CAST({v} AS DOUBLE))",
                    f"'column ''{label}'': ' || {quoted} || ' is not a whole number'",
                )
            )
        if col.minimum is not None:
            checks.append(
                (
                    order,
                    f"({conv}) < {float(col.minimum)!r}",
                    f"'column ''{label}'': ' || {quoted} || ' is below the minimum "
                    f"{col.minimum:g}'",
                )
            )
        if col.maximum is not None:
            checks.append(
                (
                    order,
                    f"({conv}) > {float(col.maximum)!r}",
                    f"'column ''{label}'': ' || {quoted} || ' is above the maximum "
                    f"{col.maximum:g}'",
                )
            )
        if col.allowed:
            allowed_sql = ", ".join("'" + a.replace("'", "''") + "'" for a in col.allowed)
            checks.append(
                (
                    order,
                    f"{v} IS NOT NULL AND {v} NOT IN ({allowed_sql})",
                    f"'column ''{label}'': ' || {quoted} || ' is not one of "
                    f"{', '.join(col.allowed)}'",
                )
            )
    by_name = {c.name: c for c in cols}
    for column, needs, bad_sql, message in spec.rules:
        if all(n in by_name for n in needs):
            typed = bad_sql.format(**{n: f"({_convert(by_name[n])})" for n in needs})
            order = cols.index(by_name[column])
            quoted = _quoted(column)
            checks.append((order, typed, f"'column ''{column}'': ' || {quoted} || ' {message}'"))
    # Only _row and the columns are selected: a file column named like a helper column
    # ('quote_value', say) cannot take its place in a message.
    return [
        f"SELECT _row, {order} AS col_order, {message} AS problem FROM _cx_raw WHERE {bad}"
        for order, bad, message in checks
    ]


def _quoted(name: str) -> str:
    """SQL for a column's raw value in single quotes, as messages show it ('NULL' if missing)."""
    return f"('''' || coalesce({_q(name)}, 'NULL') || '''')"


def _collect(
    con: duckdb.DuckDBPyConnection, parts: list[str], is_csv: bool
) -> tuple[list[str], int]:
    if not parts:
        return [], 0
    union_sql = " UNION ALL ".join(parts)
    total = con.execute(f"SELECT count(*) FROM ({union_sql})").fetchone()[0]
    if not total:
        return [], 0
    rows = con.execute(
        f"SELECT {_row_ref(is_csv)} || ', ' || problem FROM ({union_sql}) "
        f"ORDER BY _row, col_order LIMIT {MAX_PROBLEMS}"
    ).fetchall()
    return [r[0] for r in rows], int(total)


def _key_and_reference_checks(spec: TableSpec, cols: list[Column]) -> list[str]:
    """SQL selecting (_row, col_order, problem) for duplicate keys and unknown references.

    Runs on the typed stage, so rows whose key did not parse are left to the value checks.
    """
    key_sql = ", ".join(_q(k) for k in spec.key)
    key_text = " || ', ' || ".join(f"'{k}=' || CAST({_q(k)} AS VARCHAR)" for k in spec.key)
    parts = [
        f"""SELECT _row, 0 AS col_order,
               'duplicate key (' || {key_text} || '): also in row ' || first_row AS problem
            FROM (SELECT _row, {key_sql},
                         min(_row) OVER (PARTITION BY {key_sql}) AS first_row
                  FROM _cx_stage WHERE {" AND ".join(f"{_q(k)} IS NOT NULL" for k in spec.key)})
            WHERE _row <> first_row"""
    ]
    present = {c.name for c in cols}
    for order, (column, ref_table) in enumerate(spec.references, start=100):
        if column not in present:
            continue
        ref_key = SPECS[ref_table].key[0]
        parts.append(
            f"""SELECT _row, {order} AS col_order,
                   'column ''{column}'': ''' || {_q(column)} || ''' is not in {ref_table} '
                   || '(load {ref_table} first)' AS problem
                FROM _cx_stage s
                WHERE {_q(column)} IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM {ref_table} r WHERE r.{_q(ref_key)} = s.{_q(column)})"""
        )
    return parts


# --- writing ---------------------------------------------------------------------------------


def _infer_kind(con: duckdb.DuckDBPyConnection, name: str) -> str:
    # Counted with the conversions the column will be typed with, so no value is lost to them.
    v = _q(name)
    digits = _INTEGER_TEXT.format(v=v)
    n_values, n_int, n_num = con.execute(
        f"""SELECT count({v}),
                   count(CASE WHEN {digits} THEN TRY_CAST({v} AS BIGINT) END),
                   count({_CONVERT["number"].format(v=v)})
            FROM _cx_raw"""
    ).fetchone()
    if n_values and n_int == n_values:
        return "integer"
    if n_values and n_num == n_values:
        return "number"
    return "text"


def _write(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    cols: list[Column],
    label: str,
    digest: str,
    rows_in_file: int,
) -> LoadResult:
    con.execute("BEGIN TRANSACTION")
    try:
        added: list[str] = []
        final_cols = []
        for col in cols:
            if col.kind == "infer":
                kind = _infer_kind(con, col.name)
                added += store.add_customer_columns(con, {col.name: _TARGET_TYPE[kind]})
                con.execute(
                    f"ALTER TABLE _cx_stage ALTER {_q(col.name)} TYPE {_TARGET_TYPE[kind]} "
                    f"USING {_CONVERT[kind].format(v=_q(col.name))}"
                )
                col = Column(col.name, kind, required=False, nullable=True)
            final_cols.append(col)
        key = list(spec.key)
        values = [c.name for c in final_cols if c.name not in key]
        match = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in key)
        differs = " OR ".join(f"t.{_q(c)} IS DISTINCT FROM s.{_q(c)}" for c in values) or "false"
        n_existing = con.execute(
            f"SELECT count(*) FROM _cx_stage s WHERE EXISTS "
            f"(SELECT 1 FROM {spec.name} t WHERE {match})"
        ).fetchone()[0]
        n_changed = con.execute(
            f"SELECT count(*) FROM _cx_stage s JOIN {spec.name} t ON {match} WHERE {differs}"
        ).fetchone()[0]
        if n_changed:
            assign = ", ".join(f"{_q(c)} = s.{_q(c)}" for c in values)
            con.execute(
                f"UPDATE {spec.name} AS t SET {assign} FROM _cx_stage s "
                f"WHERE {match} AND ({differs})"
            )
        names = ", ".join(_q(c.name) for c in final_cols)
        inserted = rows_in_file - n_existing
        if inserted:
            con.execute(
                f"INSERT INTO {spec.name} ({names}) SELECT {names} FROM _cx_stage s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {spec.name} t WHERE {match})"
            )
        result = LoadResult(
            spec.name,
            label,
            digest,
            rows_in_file,
            inserted,
            n_changed,
            n_existing - n_changed,
            tuple(added),
        )
        load_id = None
        if result.changed:
            load_id = con.execute("SELECT coalesce(max(load_id), 0) + 1 FROM loads").fetchone()[0]
            con.execute(
                "INSERT INTO loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    load_id,
                    spec.name,
                    label,
                    digest,
                    rows_in_file,
                    inserted,
                    n_changed,
                    result.rows_unchanged,
                    datetime.now(UTC).replace(tzinfo=None),
                ],
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return LoadResult(**{**result.__dict__, "load_id": load_id})
