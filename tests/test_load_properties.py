"""Whatever the file, never a traceback: the loader over generated messy files, for every table.

Hypothesis writes small CSV files, Parquet files and DataFrames that mix valid rows with the mess
real exports hold (a byte-order mark, ';' or tab separators, quoted fields, odd headers, empty
cells, text in number columns, bad dates and periods, negative money, out-of-range scores,
duplicate keys, unknown customers, a ragged last line, random unicode). Every generated value
knows what it means and whether the contract in data/README.md allows it, so each file is
expected to be accepted exactly when all of it is valid. Three properties are checked:

(a) only the project's own errors escape; a rejection names the file and, for a bad value, its
    row (and, for CSV, its line) and column;
(b) a rejected file changes nothing: a full snapshot of the store is the same before and after;
(c) an accepted file reads back as exactly the values meant, after the documented normalisation
    (trimming, a period as the first day of its month, 0/1 as a boolean, a date as midnight, ...),
    upserted over the rows the store already held.

Every example starts from the same store: the customers and experiments the table needs and one
or two rows of the table itself, so that files also update rows. (One in-memory store per test,
reset before each example: a new store per example would cost a third of the run time.)
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from attribution import store
from attribution.errors import CxError, LoadError
from attribution.load import load

# The store fixture is shared by a test's examples on purpose: check_load resets it before each.
_CHECKS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
FAST = settings(max_examples=50, deadline=None, suppress_health_check=_CHECKS)
SLOW = settings(max_examples=1000, deadline=None, suppress_health_check=_CHECKS)

# --- the contract, as data/README.md states it ---------------------------------------------------


@dataclass(frozen=True)
class Col:
    """A loadable column: its kind (as the README names them) and what it allows.

    Kinds beyond the README's: ``one_of`` (text from a list), ``customer`` and ``experiment``
    (text that must name a stored customer or experiment).
    """

    name: str
    kind: str
    required: bool = True
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Table:
    cols: tuple[Col, ...]
    key: tuple[str, ...]

    def col(self, name: str) -> Col:
        return next(c for c in self.cols if c.name == name)


RESOLUTIONS = ("very_effective", "somewhat_effective", "somewhat_ineffective", "very_ineffective")

CONTRACT = {
    "customers": Table(
        (
            Col("customer_id", "text"),
            Col("signup_date", "date"),
            Col("tier", "text", False),
            Col("region", "text", False),
            Col("channel", "text", False),
        ),
        ("customer_id",),
    ),
    "outcomes": Table(
        (
            Col("customer_id", "customer"),
            Col("period", "period"),
            Col("active", "bool01"),
            Col("revenue", "number", low=0),
            Col("cost_to_serve", "number", low=0),
        ),
        ("customer_id", "period"),
    ),
    "interactions": Table(
        (
            Col("customer_id", "customer"),
            Col("ts", "timestamp"),
            Col("kind", "text"),
            Col("channel", "text", False),
            Col("resolution", "one_of", False),
            Col("csat", "integer", False, 1, 5),
            Col("effort", "integer", False, 1, 7),
            Col("first_contact_resolution", "bool01", False),
            Col("handle_minutes", "number", False, low=0),
        ),
        ("customer_id", "ts", "kind"),
    ),
    "interventions": Table(
        (
            Col("customer_id", "customer"),
            Col("intervention", "text"),
            Col("ts", "timestamp"),
            Col("unit_cost", "number", low=0),
            Col("experiment_id", "experiment", False),
        ),
        ("customer_id", "intervention", "ts"),
    ),
    "experiments": Table(
        (
            Col("experiment_id", "text"),
            Col("intervention", "text"),
            Col("design", "json", False),
            Col("started", "date"),
            Col("ended", "date", False),
        ),
        ("experiment_id",),
    ),
    "assignments": Table(
        (
            Col("experiment_id", "experiment"),
            Col("customer_id", "customer"),
            Col("arm", "text"),
            Col("stratum", "text", False),
            Col("assigned_at", "timestamp", False),
        ),
        ("experiment_id", "customer_id"),
    ),
}

# --- what each store holds before the load ------------------------------------------------------

CUSTOMERS = ("C1", "C2", "C3", "Zoë 4")
EXPERIMENTS = ("E1", "E2")
D = dt.date
T = dt.datetime
BASE_ROWS: dict[str, list[dict[str, object]]] = {
    "customers": [
        {
            "customer_id": c,
            "signup_date": D(2023, 1 + i, 10),
            "tier": "gold",
            "region": None,
            "channel": "web",
        }
        for i, c in enumerate(CUSTOMERS)
    ],
    "experiments": [
        {
            "experiment_id": "E1",
            "intervention": "gift",
            "design": None,
            "started": D(2025, 1, 1),
            "ended": None,
        },
        {
            "experiment_id": "E2",
            "intervention": "call",
            "design": '{"arms": ["control", "call"]}',
            "started": D(2025, 2, 1),
            "ended": D(2025, 6, 30),
        },
    ],
    "outcomes": [
        {
            "customer_id": "C1",
            "period": D(2025, 1, 1),
            "active": True,
            "revenue": 10.0,
            "cost_to_serve": 1.5,
        }
    ],
    "interactions": [
        {
            "customer_id": "C1",
            "ts": T(2025, 1, 5, 10, 0),
            "kind": "billing",
            "channel": "phone",
            "resolution": None,
            "csat": 4,
            "effort": 2,
            "first_contact_resolution": True,
            "handle_minutes": 12.5,
        }
    ],
    "interventions": [
        {
            "customer_id": "C2",
            "intervention": "gift",
            "ts": T(2025, 1, 3),
            "unit_cost": 20.0,
            "experiment_id": "E1",
        }
    ],
    "assignments": [
        {
            "experiment_id": "E1",
            "customer_id": "C1",
            "arm": "control",
            "stratum": "s1",
            "assigned_at": None,
        }
    ],
}


CUSTOMER_COLUMNS = ("customer_id", "signup_date", "tier", "region", "channel")


def reset(con, table: str) -> None:
    """Put a store back to what a fresh one holds, with the base rows ``table`` needs.

    That is the customers and experiments and the base rows of ``table`` itself; no loads, no
    segment columns beyond tier, region and channel.

    One store serves all examples of a test and is reset before each: creating a store costs
    about 50 ms, a third of an example, which would put the fast tests well over a minute.
    """
    store.clear(con)
    for (column,) in con.execute("SELECT name FROM pragma_table_info('customers')").fetchall():
        if column not in CUSTOMER_COLUMNS:
            con.execute(f"ALTER TABLE customers DROP COLUMN {store.quote_identifier(column)}")
    for name in dict.fromkeys(("customers", "experiments", table)):
        rows = BASE_ROWS[name]
        names = ", ".join(rows[0])
        values = ", ".join("(" + ", ".join("?" for _ in row) + ")" for row in rows)
        params = [v for row in rows for v in row.values()]
        con.execute(f"INSERT INTO {name} ({names}) VALUES {values}", params)


def snapshot(con) -> dict[str, object]:
    """Every table's rows and every table's columns, temporary tables' and views' too."""
    out: dict[str, object] = {
        "_columns": sorted(
            con.execute(
                "SELECT database_name, table_name, column_name, data_type FROM duckdb_columns() "
                "WHERE NOT internal"
            ).fetchall()
        )
    }
    for table in store.LOADABLE_TABLES + store.INTERNAL_TABLES:
        out[table] = sorted(map(repr, con.execute(f"SELECT * FROM {table}").fetchall()))
    return out


# --- generated values -----------------------------------------------------------------------------

NO_NATIVE = object()


@dataclass(frozen=True)
class Cell:
    """One generated value.

    ``text`` is how a CSV (or a text column of a DataFrame) holds it, None for an empty cell;
    ``native`` how a typed DataFrame column holds it; ``meant`` the value the store should hold
    (None: missing); ``problem`` is empty for a valid value, else why it must be rejected
    ('ref' for a well-formed text naming no stored customer or experiment).
    """

    text: str | None
    native: object = NO_NATIVE
    meant: object = None
    problem: str = ""


def _edges() -> st.SearchStrategy[str]:
    # Characters no trimming touches: letters, digits, punctuation, symbols.
    return st.characters(categories=("L", "N", "P", "S"))


# Random unicode text: anything inside (quotes, separators, control characters, line breaks),
# letters or symbols at both ends so that trimming leaves it whole.
UNICODE = st.builds(
    lambda a, mid, b: a + mid + b,
    _edges(),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=6),
    _edges(),
) | st.text(_edges(), min_size=1, max_size=4)


def _padded(text: str) -> st.SearchStrategy[str]:
    return st.sampled_from([text, f" {text}", f"{text}  ", f"  {text} "])


def _text_cell(value: str) -> st.SearchStrategy[Cell]:
    return _padded(value).map(lambda t: Cell(t, value, value))


def _missing_cell(problem: str = "") -> st.SearchStrategy[Cell]:
    return st.sampled_from([None, "", "   "]).map(lambda t: Cell(t, None, None, problem))


def _integer_cells(n: int) -> st.SearchStrategy[Cell]:
    texts = [str(n), f" {n} ", f"{n}.0", f"+{n}"]
    return st.builds(
        lambda t, native: Cell(t, native, n), st.sampled_from(texts), st.sampled_from([n, float(n)])
    )


def _number_cells(x: float) -> st.SearchStrategy[Cell]:
    texts = [repr(x), f" {x!r} "]
    if float(f"{x:.2f}") == x:
        texts.append(f"{x:.2f}")
    if x.is_integer() and x < 1e15:
        texts.append(str(int(x)))
    return st.sampled_from(texts).map(lambda t: Cell(t, x, x))


def _bool_cells(b: bool) -> st.SearchStrategy[Cell]:
    texts = ["1", "true", "TRUE", " 1 ", "1.0"] if b else ["0", "false", "False", " 0", "0.0"]
    return st.builds(
        lambda t, native: Cell(t, native, b),
        st.sampled_from(texts),
        st.sampled_from([b, int(b), float(b)]),
    )


def _date_cells(d: dt.date) -> st.SearchStrategy[Cell]:
    iso = d.isoformat()
    texts = [iso, f" {iso} ", f"{iso} 00:00:00", f"{iso} 13:45:10", f"{iso}T08:30"]
    natives = [d, T(d.year, d.month, d.day, 9, 15)]
    return st.builds(
        lambda t, native: Cell(t, native, d), st.sampled_from(texts), st.sampled_from(natives)
    )


def _timestamp_cells(t: dt.datetime) -> st.SearchStrategy[Cell]:
    texts = [t.isoformat(sep=" "), t.isoformat(), f" {t.isoformat(sep=' ')} "]
    if t.time() == dt.time(0):
        texts.append(t.date().isoformat())
    natives = [t, pd.Timestamp(t)]
    return st.builds(
        lambda x, native: Cell(x, native, t), st.sampled_from(texts), st.sampled_from(natives)
    )


def _period_cells(month: dt.date) -> st.SearchStrategy[Cell]:
    def render(day: int, form: int) -> Cell:
        inside = month.replace(day=day)
        text = [
            f"{month:%Y-%m}",
            f" {month:%Y-%m} ",
            inside.isoformat(),
            f"{inside.isoformat()} 12:00:00",
        ][form]
        return Cell(text, inside, month)

    return st.builds(render, st.integers(1, 28), st.integers(0, 3))


JSON_VALUES = st.dictionaries(
    st.text(max_size=4),
    st.one_of(st.integers(-5, 5), st.text(max_size=4), st.booleans(), st.none()),
    max_size=3,
)


def _json_cells(obj: dict) -> st.SearchStrategy[Cell]:
    text = json.dumps(obj)
    return st.sampled_from([text, f" {text} "]).map(lambda t: Cell(t, obj, obj))


def _meant_values(col: Col) -> st.SearchStrategy[object]:
    """Valid meant values of a column."""
    kind = col.kind
    if kind == "text":  # stored keys among them, so that files also update rows
        return st.sampled_from([*CUSTOMERS, *EXPERIMENTS, "E3", "billing", "gift", "a b"]) | UNICODE
    if kind == "one_of":
        return st.sampled_from(RESOLUTIONS)
    if kind == "customer":
        return st.sampled_from(CUSTOMERS)
    if kind == "experiment":
        return st.sampled_from(EXPERIMENTS)
    if kind == "integer":
        return st.integers(int(col.low), int(col.high))
    if kind == "number":
        return st.integers(0, 10**7).map(lambda c: c / 100) | st.floats(
            0, 1e12, allow_nan=False, allow_infinity=False
        )
    if kind == "bool01":
        return st.booleans()
    if kind == "date":
        return st.dates(D(2000, 1, 1), D(2030, 12, 31))
    if kind == "timestamp":
        whole = st.datetimes(T(2000, 1, 1), T(2030, 12, 31)).map(lambda t: t.replace(microsecond=0))
        return (
            st.sampled_from([T(2025, 1, 5, 10, 0), T(2025, 1, 3)])
            | whole
            | st.datetimes(T(2000, 1, 1), T(2030, 12, 31))
        )
    if kind == "period":
        return st.dates(D(2024, 10, 1), D(2025, 3, 31)).map(lambda d: d.replace(day=1))
    if kind == "json":
        return JSON_VALUES
    raise AssertionError(kind)


def valid_cells(col: Col, meant: object) -> st.SearchStrategy[Cell]:
    """Ways to write a valid meant value (None: an empty cell)."""
    if meant is None:
        return _missing_cell()
    render: dict[str, Callable[[object], st.SearchStrategy[Cell]]] = {
        "text": _text_cell,
        "one_of": _text_cell,
        "customer": _text_cell,
        "experiment": _text_cell,
        "integer": _integer_cells,
        "number": _number_cells,
        "bool01": _bool_cells,
        "date": _date_cells,
        "timestamp": _timestamp_cells,
        "period": _period_cells,
        "json": _json_cells,
    }
    return render[col.kind](meant)


def _bad(texts: list[str], problem: str) -> st.SearchStrategy[Cell]:
    return st.sampled_from(texts).map(lambda t: Cell(t, NO_NATIVE, None, problem))


WORDS = st.text("abcdfghjklmopqrsuvwxyz", min_size=1, max_size=5).map(lambda w: "x" + w)
GROUPED = ["1,234.50", "12,5", "1 234", "1,234"]


def bad_cells(col: Col) -> st.SearchStrategy[Cell] | None:
    """Values the contract does not allow in a column (None: every text is allowed)."""
    kind = col.kind
    options: list[st.SearchStrategy[Cell]] = []
    if col.required:
        options.append(_missing_cell("missing"))
    if kind in ("integer", "number", "bool01", "date", "timestamp", "period"):
        options.append(WORDS.map(lambda w: Cell(w, NO_NATIVE, None, "not a value")))
    if kind == "integer":
        outside = st.integers(-50, int(col.low) - 1) | st.integers(int(col.high) + 1, 10**6)
        options += [
            outside.map(lambda n: Cell(str(n), n, None, "out of range")),
            _bad(["2.5", "three"], "not whole"),
            _bad(GROUPED, "grouped"),
        ]
    elif kind == "number":
        negative = st.floats(-1e9, -0.01, allow_nan=False)
        options += [
            negative.map(lambda x: Cell(repr(x), x, None, "negative")),
            _bad(["nan", "inf", "-inf", "1e400", "NaN"], "not finite"),
            _bad(GROUPED, "grouped"),
        ]
    elif kind == "bool01":
        options += [
            _bad(["2", "yes", "-1", "0.5"], "not 0/1"),
            st.just(Cell("2", 2, None, "not 0/1")),
        ]
    elif kind == "date":
        texts = ["01/02/2024", "2024-02-30", "2024-13-01", "infinity", "-infinity", "epoch"]
        texts += ["2024-01-01 (BC)", "99999-01-01", "0000-01-01", "2024-01-01x", "20240105"]
        options.append(_bad(texts, "not a date"))
    elif kind == "timestamp":
        texts = ["2024-01-01 25:00:00", "01/02/2024 10:00", "infinity", "epoch", "2024-01-01 (BC)"]
        options.append(_bad(texts, "not a timestamp"))
    elif kind == "period":
        texts = ["2025-13", "April 2025", "infinity", "2025-00", "25-04", "epoch", "202504"]
        options.append(_bad(texts, "not a period"))
    elif kind == "json":
        options.append(_bad(["{a: 1}", "[1,", '{"a": }', "{'a': 1}"], "not JSON"))
    elif kind == "one_of":
        options.append(_bad(["great", "very effective", "Very_Effective"], "not allowed"))
    elif kind == "customer":
        options.append(_bad(["C99", "c1", "C1x"], "ref"))
    elif kind == "experiment":
        options.append(_bad(["E404", "e1"], "ref"))
    return st.one_of(options) if options else None


# --- generated files ------------------------------------------------------------------------------


@dataclass
class Messy:
    """A generated file: headers as written, the column each means, and the cells by row."""

    table: str
    source: str  # csv, frame or parquet
    headers: list[str]
    means: list[str | None]  # contract column (or customers segment column) of each header
    rows: list[list[Cell]]
    extras: dict[str, str]  # customers segment column -> integer, number or text
    header_problems: list[tuple[int, str]]  # (stage, words the message must hold)
    delimiter: str = ","
    bom: bool = False
    quote_all: bool = False
    crlf: bool = False
    ragged_last: bool = False
    native: tuple[bool, ...] = ()  # per header: a typed DataFrame column rather than text

    def _repr_pretty_(self, printer, cycle) -> None:
        """Show a failing example as the file itself (hypothesis prints it so)."""
        if self.source == "csv":
            lines = csv_bytes(self).splitlines(keepends=True)
            shown = f"CSV file for {self.table}, line by line:\n" + "\n".join(map(repr, lines))
        else:
            shown = f"{self.source} for {self.table}, native columns {self.native}:\n" + repr(
                [self.headers, *([_column_values(self, i) for i in range(len(self.headers))])]
            )
        problems = value_problems(self) if not self.header_problems else self.header_problems
        printer.text(f"{shown}\nexpected problems: {problems}")


EXTRA_NAMES = st.sampled_from(["plan", "quote_value", "first_row", "problem", "select", "order"])
EXTRA_NAMES = EXTRA_NAMES | st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
RESERVED = {c.name for t in CONTRACT.values() for c in t.cols} | {"_row"}


@st.composite
def _extra_column(draw) -> tuple[str, str, st.SearchStrategy[object]]:
    """A customers segment column: its name, its kind and a strategy for its values."""
    name = draw(EXTRA_NAMES.filter(lambda n: n not in RESERVED))
    family = draw(st.sampled_from(["integer", "number", "text"]))
    value = {
        "integer": st.integers(-(10**18), 10**18),  # beyond 2**53: exact, not via a float
        "number": st.floats(-1e9, 1e9, allow_nan=False),
        "text": UNICODE.map(lambda s: "x" + s),  # never a number
    }[family]
    return name, family, value


def _extra_cell(family: str, value: object) -> Cell:
    if value is None:
        return Cell(None, None, None)
    if family == "number":
        return Cell(repr(value), value, value)
    return Cell(str(value), value, value)


@st.composite
def messy_files(draw, table: str, source: str) -> Messy:
    spec = CONTRACT[table]
    # Half the files are valid throughout; the others have one to three kinds of problem.
    kinds = ["values"] * 4 + ["header", "duplicate key"] + (["ragged"] if source == "csv" else [])
    trouble = set(draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=3)))
    if draw(st.booleans()):
        trouble = set()
    optional = [c for c in spec.cols if not c.required]
    present = [c for c in spec.cols if c.required or c in draw(st.sets(st.sampled_from(optional)))]
    # Distinct keys; with a 'duplicate key', one more row repeats one (perhaps written otherwise).
    key_cols = [spec.col(k) for k in spec.key]
    keys = draw(
        st.lists(st.tuples(*(_meant_values(c) for c in key_cols)), min_size=1, max_size=5).map(
            lambda ks: list(dict.fromkeys(ks))
        )
    )
    if "duplicate key" in trouble:
        keys.append(draw(st.sampled_from(keys)))
    rows: list[list[Cell]] = []
    for key in keys:
        row = []
        for col in present:
            if col.name in spec.key:
                meant = key[spec.key.index(col.name)]
            elif col.required:
                meant = draw(_meant_values(col))
            else:
                meant = draw(st.none() | _meant_values(col))
            if col.name == "ended" and meant is not None:  # not before started, unless bad
                started = row[[c.name for c in present].index("started")].meant
                earliest = -5 if "values" in trouble else 0
                meant = started + dt.timedelta(days=draw(st.integers(earliest, 400)))
            row.append(draw(valid_cells(col, meant)))
        rows.append(row)
    headers = [c.name for c in present]
    means: list[str | None] = [c.name for c in present]
    extras: dict[str, str] = {}
    if table == "customers":
        for name, family, values in draw(
            st.lists(_extra_column(), max_size=2, unique_by=lambda e: e[0])
        ):
            extras[name] = family
            headers.append(name)
            means.append(name)
            for row in rows:
                row.append(_extra_cell(family, draw(st.none() | values)))
    if "values" in trouble:  # bad values in one to three cells
        can_be_bad = [i for i, c in enumerate(present) if bad_cells(c) is not None]
        for _ in range(draw(st.integers(1, 3))):
            r = draw(st.integers(0, len(rows) - 1))
            c = draw(st.sampled_from(can_be_bad))
            rows[r][c] = draw(bad_cells(present[c]))
    # Headers in any case and padded with spaces, as allowed; then perhaps a header problem.
    style = draw(st.sampled_from(["as is", "upper", "padded"]))
    headers = [
        {"as is": h, "upper": h.upper(), "padded": f" {h}  "}[style]
        if m in RESERVED
        else draw(st.sampled_from([h, h.title()]))
        for h, m in zip(headers, means, strict=True)
    ]
    header_problems: list[tuple[int, str]] = []  # (stage the loader finds it at, words)
    mess = draw(st.sampled_from(["missing", "unknown", "repeated"])) if "header" in trouble else ""
    if mess == "missing" and len(headers) >= 3:  # two columns left: a separator to tell
        gone = draw(st.sampled_from([i for i, c in enumerate(present) if c.required]))
        header_problems.append((2, f"missing required column '{present[gone].name}'"))
        del headers[gone], means[gone]
        for row in rows:
            del row[gone]
    elif mess in ("missing", "unknown"):
        name = "notes 2" if table == "customers" else "notes"
        header_problems.append((3, f"column '{name}'"))
        headers.append(name)
        means.append(None)
        for row in rows:
            row.append(Cell(draw(UNICODE), NO_NATIVE, None))
    elif mess == "repeated":
        again = draw(st.integers(0, len(headers) - 1))
        name = headers[again].strip().lower()
        header_problems.append((0, f"column '{name}' appears more than once"))
        headers.append(headers[again].strip().title())
        means.append(None)
        for row in rows:
            row.append(row[again])
    order = draw(st.permutations(range(len(headers))))
    headers = [headers[i] for i in order]
    means = [means[i] for i in order]
    rows = [[row[i] for i in order] for row in rows]
    messy = Messy(table, source, headers, means, rows, extras, header_problems)
    if source == "csv":
        return replace(
            messy,
            delimiter=draw(st.sampled_from([",", ";", "\t"])),
            bom=draw(st.booleans()),
            quote_all=draw(st.booleans()),
            crlf=draw(st.booleans()),
            ragged_last="ragged" in trouble,
        )
    return replace(messy, native=tuple(draw(st.booleans()) for _ in headers))


def csv_bytes(m: Messy) -> bytes:
    # Python's writer quotes a value with a line break only if the break is in its line
    # terminator; a bare carriage return left unquoted would end the line for any reader.
    has_cr = any("\r" in (c.text or "") for row in m.rows for c in row)
    out = io.StringIO()
    writer = csv.writer(
        out,
        delimiter=m.delimiter,
        quoting=csv.QUOTE_ALL if m.quote_all or has_cr else csv.QUOTE_MINIMAL,
        lineterminator="\r\n" if m.crlf else "\n",
    )
    writer.writerow(m.headers)
    for row in m.rows:
        writer.writerow(["" if c.text is None else c.text for c in row])
    text = out.getvalue()
    if m.ragged_last:
        text += m.delimiter.join(["C1"] * ragged_width(m)) + ("\r\n" if m.crlf else "\n")
    return (("\ufeff" if m.bom else "") + text).encode("utf-8")


def ragged_width(m: Messy) -> int:
    """Fields on the bad last line: one too few (one too many for a one-column file)."""
    return len(m.headers) - 1 if len(m.headers) > 1 else 2


def _column_values(m: Messy, i: int) -> list[object]:
    if not m.native[i]:
        return [r[i].text for r in m.rows]
    values = [c.text if c.native is NO_NATIVE else c.native for c in (r[i] for r in m.rows)]
    return values


def frame_of(m: Messy) -> pd.DataFrame:
    columns = {}
    for i in range(len(m.headers)):
        values = _column_values(m, i)
        if m.native[i] and m.extras.get(m.means[i] or "") == "integer":
            columns[i] = pd.array(values, dtype="Int64")  # ints with gaps stay integers
        else:
            columns[i] = pd.Series(values, dtype=object if not m.native[i] else None)
    frame = pd.DataFrame(columns)
    frame.columns = m.headers
    return frame


def parquet_table(m: Messy) -> pa.Table:
    arrays = []
    for i in range(len(m.headers)):
        values = _column_values(m, i)
        try:
            array = pa.array(values, from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError):  # a mixed column: written as text
            array = None
        if array is None or pa.types.is_nested(array.type):  # JSON as text, not as structs
            array = pa.array([c.text for c in (r[i] for r in m.rows)], pa.string())
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=m.headers)


# --- what the loader must say --------------------------------------------------------------------


def value_problems(m: Messy) -> list[tuple[int, str | None, Cell | None]]:
    """Every problem the loader must find in the values, as (row, column, cell).

    Column and cell are None for a row repeating the key of an earlier one.
    """
    spec = CONTRACT[m.table]
    found: list[tuple[int, str | None, Cell | None]] = []
    seen: set[tuple[object, ...]] = set()
    index = {name: i for i, name in enumerate(m.means) if name is not None}
    for r, row in enumerate(m.rows, start=1):
        for i, name in enumerate(m.means):
            if name is not None and row[i].problem:
                found.append((r, name, row[i]))
        if "started" in index and "ended" in index:
            started, ended = row[index["started"]], row[index["ended"]]
            valid = not started.problem and not ended.problem and ended.meant is not None
            if valid and ended.meant < started.meant:
                found.append((r, "ended", ended))
        cells = [row[index[k]] for k in spec.key]
        if all(c.problem in ("", "ref") for c in cells):
            key = tuple(c.meant if c.problem == "" else c.text.strip() for c in cells)
            if key in seen:
                found.append((r, None, None))
            seen.add(key)
    return found


def row_ref(m: Messy, row: int) -> str:
    """How a message starts for a data row: with the row and, for CSV, the line."""
    if m.source != "csv":
        return f"row {row},"
    if any("\n" in (c.text or "") or "\r" in (c.text or "") for r in m.rows for c in r):
        return f"row {row} (line "  # a value with a line break: lines are not rows + 1
    return f"row {row} (line {row + 1})"


def check_rejection(m: Messy, err: LoadError, label: str) -> None:
    """Property (a): the message names the file and what is wrong where."""
    message = str(err)
    assert message.startswith(f"{label}: rejected, nothing was written"), message
    stages = sorted(m.header_problems)
    if stages and stages[0][0] == 0:  # repeated column names are found first
        assert stages[0][1] in message, message
        return
    if m.ragged_last:
        n = len(m.rows) + 1
        assert f"{row_ref(m, n)}" in message, message
        assert f"has {ragged_width(m)} fields, the header has {len(m.headers)}" in message, message
        return
    if stages:
        assert stages[0][1] in message, message
        return
    problems = value_problems(m)
    assert problems, f"rejected a valid file:\n{message}"
    assert err.total <= 20
    for row, column, cell in problems:
        lines = [p for p in err.problems if p.startswith(row_ref(m, row))]
        if column is None:
            assert any("duplicate key" in p for p in lines), (row, message)
            continue
        named = [p for p in lines if f"column '{column}'" in p]
        assert named, (row, column, cell, message)
        if cell.problem == "grouped":
            assert any("without thousands separators" in p for p in named), message


def expected_rows(m: Messy) -> tuple[dict[tuple, dict[str, object]], int, int]:
    """The table after an accepted load, and the numbers of rows inserted and already stored.

    The base rows upserted with the file's: a stored key gets the file's columns, the columns
    the file leaves out keep their values; a new key gets the file's columns, others empty.
    """
    spec = CONTRACT[m.table]
    rows = {tuple(r[k] for k in spec.key): dict(r) for r in BASE_ROWS[m.table]}
    for row in rows.values():
        row.update(dict.fromkeys(m.extras))
    index = {name: i for i, name in enumerate(m.means)}
    inserted = existing = 0
    for cells in m.rows:
        key = tuple(cells[index[k]].meant for k in spec.key)
        values = {name: cells[i].meant for name, i in index.items()}
        if key in rows:
            existing += 1
            rows[key].update(values)
        else:
            inserted += 1
            blank = dict.fromkeys([c.name for c in spec.cols] + list(m.extras))
            rows[key] = blank | values
    return rows, inserted, existing


def stored_rows(con, m: Messy) -> dict[tuple, dict[str, object]]:
    spec = CONTRACT[m.table]
    names = [c.name for c in spec.cols] + list(m.extras)
    quoted = ", ".join(store.quote_identifier(n) for n in names)
    out = {}
    for values in con.execute(f"SELECT {quoted} FROM {m.table}").fetchall():
        row = dict(zip(names, values, strict=True))
        for col in spec.cols:
            if col.kind == "json" and row[col.name] is not None:
                row[col.name] = json.loads(row[col.name])
        out[tuple(row[k] for k in spec.key)] = row
    return out


def _comparable(rows: dict[tuple, dict[str, object]]) -> dict[tuple, dict[str, object]]:
    """Expected rows with stored JSON text (the base rows') parsed, as stored_rows reads it."""
    return {
        key: {n: json.loads(v) if n == "design" and isinstance(v, str) else v for n, v in r.items()}
        for key, r in rows.items()
    }


# --- the properties -------------------------------------------------------------------------------


def write_source(m: Messy, folder: Path) -> tuple[Path | pd.DataFrame, str]:
    """The file (or DataFrame) to load, and the name a rejection must start with."""
    if m.source == "csv":
        path = folder / f"{m.table}.csv"
        path.write_bytes(csv_bytes(m))
        return path, path.name
    if m.source == "parquet":
        path = folder / f"{m.table}.parquet"
        pq.write_table(parquet_table(m), path)
        return path, path.name
    return frame_of(m), "DataFrame"


def check_load(con, m: Messy) -> None:
    """Load a generated file into a reset store and check properties (a), (b) and (c)."""
    reset(con, m.table)
    before = snapshot(con)
    with tempfile.TemporaryDirectory() as folder:
        source, label = write_source(m, Path(folder))
        try:
            result = load(con, m.table, source)
        except LoadError as err:
            event(f"{m.source}: rejected")
            check_rejection(m, err, label)
            assert snapshot(con) == before, "a rejected file changed the store"
            return
        except CxError as err:
            raise AssertionError(f"rejected without a LoadError: {err!r}") from err
    problems = m.header_problems or m.ragged_last or value_problems(m)
    assert not problems, f"accepted a file with problems: {problems}"
    event(f"{m.source}: accepted")
    want, inserted, existing = expected_rows(m)
    assert stored_rows(con, m) == _comparable(want)
    assert result.rows_in_file == len(m.rows)
    assert result.rows_inserted == inserted
    assert result.rows_updated + result.rows_unchanged == existing
    after = snapshot(con)
    for table in store.LOADABLE_TABLES + store.INTERNAL_TABLES:
        if table not in (m.table, "loads"):
            assert after[table] == before[table], table
    if not m.extras:
        assert after["_columns"] == before["_columns"]


SOURCES = st.sampled_from(["csv", "csv", "frame", "parquet"])


def _files(table: str) -> st.SearchStrategy[Messy]:
    return SOURCES.flatmap(lambda source: messy_files(table, source))


@pytest.fixture
def shared():
    """An in-memory store for all examples of one test (check_load resets it before each)."""
    with store.opened(":memory:") as con:
        yield con


@pytest.mark.parametrize("table", list(CONTRACT))
@FAST
@given(data=st.data())
def test_any_file_is_loaded_exactly_or_rejected_cleanly(shared, table, data):
    check_load(shared, data.draw(_files(table)))


@pytest.mark.slow
@pytest.mark.parametrize("table", list(CONTRACT))
@SLOW
@given(data=st.data())
def test_any_file_is_loaded_exactly_or_rejected_cleanly_many_times(shared, table, data):
    check_load(shared, data.draw(_files(table)))


def test_the_contract_here_covers_every_loadable_table_and_column():
    with store.opened(":memory:") as con:
        assert set(CONTRACT) == set(store.LOADABLE_TABLES)
        for table, spec in CONTRACT.items():
            assert {c.name for c in spec.cols} == set(store.columns(con, table))
