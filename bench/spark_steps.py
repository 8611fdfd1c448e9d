"""Child-process steps of the Spark benchmark (see bench/spark.py)."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from bench._measure import peak_rss_gib

#: The cells every step computes: premium support's readout cells (tier, retention status, arm,
#: pre-period spend band), the one heavy data step of a readout.
CELLS = {
    "by": ["tier", "retained"],
    "experiment_id": "exp_premium_support",
    "pre_bands": 4,
}


def lake(path: str, customers: int, months: int, seed: int = 2) -> dict:
    """``cx simulate --lake``: the world as Parquet folders, through a temporary store."""
    import tempfile

    from attribution import lake as lakes
    from attribution import store, synth

    t0 = time.perf_counter()
    root = Path(path)
    with (
        tempfile.TemporaryDirectory(dir=root.parent, prefix=".bench-") as tmp,
        store.opened(Path(tmp) / "world.duckdb") as con,
    ):
        synth.simulate(con, customers, months=months, seed=seed)
        simulated = time.perf_counter() - t0
        rows = lakes.write_lake(con, root)
    return {"seconds": time.perf_counter() - t0, "simulate_seconds": simulated, "rows": rows}


def duckdb_cells(path: str) -> dict:
    """DuckDB reading the same Parquet folders (views over read_parquet), the same SQL."""
    t0 = time.perf_counter()
    from attribution import lake as lakes
    from attribution import store
    from attribution.cells import cells

    con = store.connect(":memory:")
    for table in lakes.TABLES:
        con.execute(f"DROP TABLE IF EXISTS {table}")
        files = str(Path(path) / table / "*.parquet").replace("'", "''")
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{files}')")
    t1 = time.perf_counter()
    frame = cells(con, **CELLS)
    return {
        "seconds": time.perf_counter() - t0,
        "cells_seconds": time.perf_counter() - t1,
        "cells": len(frame),
        "customers": int(frame["n"].sum()),
        "peak_rss_gib": peak_rss_gib(),
        "checksum": _checksum(frame),
    }


def spark_cells(path: str, memory: str = "6g") -> dict:
    """Spark local[2] on the lake: session start, table registration, the cells."""
    t0 = time.perf_counter()
    from attribution import lake as lakes
    from attribution.cells import cells

    peak = _Peak()
    peak.start()
    spark = lakes.session("local[2]", memory=memory)
    started = time.perf_counter()
    opened = lakes.open_lake(path, spark=spark)
    t1 = time.perf_counter()
    frame = cells(opened, **CELLS)
    cells_seconds = time.perf_counter() - t1
    total = time.perf_counter() - t0
    spark.stop()
    peak.stop()
    return {
        "seconds": total,
        "session_seconds": started - t0,
        "cells_seconds": cells_seconds,
        "cells": len(frame),
        "customers": int(frame["n"].sum()),
        "peak_rss_gib": peak.gib,
        "checksum": _checksum(frame),
    }


class _Peak(threading.Thread):
    """Peak resident memory of this process and its children (the JVM), sampled every 0.2 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.gib = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._halt.is_set():
            try:
                rss = me.memory_info().rss + sum(
                    c.memory_info().rss for c in me.children(recursive=True)
                )
            except psutil.Error:
                rss = 0
            self.gib = max(self.gib, rss / 2**30)
            time.sleep(0.2)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _checksum(frame) -> dict:
    """Totals that must agree between the engines."""
    return {
        "n": int(frame["n"].sum()),
        "n_active": int(frame["n_active"].sum()),
        "revenue_sum": round(float(frame["revenue_sum"].sum()), 4),
        "cost_to_serve_sum2": round(float(frame["cost_to_serve_sum2"].sum()), 2),
    }


if __name__ == "__main__":
    name, *args = sys.argv[1:]
    if name == "lake":
        out = lake(args[0], int(args[1]), int(args[2]))
    elif name == "duckdb_cells":
        out = duckdb_cells(args[0])
    elif name == "spark_cells":
        out = spark_cells(args[0], *args[1:])
    else:
        raise SystemExit(f"unknown step {name!r}")
    print(json.dumps(out))
