"""Spark benchmark: the readout's cells from a lake, by Spark local[2] and by DuckDB.

A simulated world of ``customers`` x ``months`` (default 10M x 24: 240M outcome rows) is written
as the contract's Parquet folders (``cx simulate --lake``); then, each in a fresh process, DuckDB
reading the same Parquet and Spark in local mode on two cores compute premium support's readout
cells (the one heavy data step), with wall time and peak memory (Spark's: the driver JVM and
Python together). The two must give the same totals.

From the measured Spark time a paper estimate scales to 500M customers on a 20-node cluster:
the per-row cost of the cells query on one core (wall x cores / outcome rows, session start
excluded) times the rows, over the cluster's cores, plus a fixed allowance for scheduling and
the shuffle. It is an estimate, not a measurement; the assumptions are written with it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench._measure import step, write

#: The cluster of the paper estimate.
CLUSTER = {"customers": 500_000_000, "months": 24, "nodes": 20, "cores_per_node": 16}
#: Seconds added to the paper estimate for task scheduling, stragglers and the shuffle.
OVERHEAD_SECONDS = 60.0


def run(customers: int = 10_000_000, months: int = 24) -> Path:
    with tempfile.TemporaryDirectory(prefix="cx-bench-spark-") as tmp:
        path = str(Path(tmp) / "lake")
        print(f"spark: simulating {customers:,} customers x {months} months as a lake", flush=True)
        made = step("bench.spark_steps", "lake", path, str(customers), str(months), timeout=14400)
        duck = step("bench.spark_steps", "duckdb_cells", path, timeout=7200)
        spark = step("bench.spark_steps", "spark_cells", path, timeout=14400)
    rows = made["rows"]["outcomes"]
    per_row_core = spark["cells_seconds"] * 2 / rows  # local[2]: two cores
    cluster_rows = CLUSTER["customers"] * CLUSTER["months"]
    cores = CLUSTER["nodes"] * CLUSTER["cores_per_node"]
    estimate = per_row_core * cluster_rows / cores + OVERHEAD_SECONDS
    result = {
        "customers": customers,
        "months": months,
        "outcome_rows": rows,
        "lake": made,
        "duckdb": duck,
        "spark": spark,
        "same_totals": duck["checksum"] == spark["checksum"],
        "spark_over_duckdb": round(spark["cells_seconds"] / duck["cells_seconds"], 2),
        "paper_estimate": {
            **CLUSTER,
            "outcome_rows": cluster_rows,
            "seconds_per_row_per_core": per_row_core,
            "overhead_seconds": OVERHEAD_SECONDS,
            "cells_minutes": round(estimate / 60, 1),
            "assumes": "the cells query scales linearly in rows and cores (one scan of outcomes, "
            "aggregations with small shuffles), the measured local per-row cost holds per "
            "cluster core, and data are read from storage as fast as from local disk",
        },
    }
    print(f"spark: {result}", flush=True)
    return write("spark", {"results": result, "verdict": {"same_totals": result["same_totals"]}})
