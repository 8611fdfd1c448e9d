"""Uplift benchmark: refresh on 1M and 10M simulated customers, cold and warm, and cells against
a row-level PyMC fit of the same retention model.

Targets on the 2-core machine: a warm 10M-customer refresh under 2 minutes with peak memory under
3 GiB; the cell route at least 100x faster per customer than the row-level fit on 100k customers.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench._measure import step, write

TARGETS = {"warm_refresh_10m_seconds": 120.0, "peak_rss_gib": 3.0, "speedup_per_customer": 100.0}


def run(sizes: list[int], row_level_customers: int = 100_000) -> Path:
    results = []
    comparison = {}
    with tempfile.TemporaryDirectory(prefix="cx-bench-uplift-") as tmp:
        for n in sizes:
            path = str(Path(tmp) / f"world_{n}.duckdb")
            print(f"uplift: simulating {n:,} customers", flush=True)
            sim = step("bench.uplift_steps", "simulate", path, str(n))
            print(f"uplift: refreshing {n:,} customers (cold, then warm)", flush=True)
            ref = step("bench.uplift_steps", "refresh", path)
            row = {"customers": n, "simulate_seconds": round(sim["seconds"], 1)}
            row.update({k: (round(v, 2) if isinstance(v, float) else v) for k, v in ref.items()})
            results.append(row)
            print(f"uplift: {row}", flush=True)
            if n == min(sizes):
                cell = step("bench.uplift_steps", "cells_retention", path)
                rows = step("bench.uplift_steps", "rows_retention", path, str(row_level_customers))
                cell_per = cell["warm_seconds"] / cell["customers"]
                row_per = rows["seconds"] / rows["rows"]
                comparison = {
                    "experiment": "exp_premium_support",
                    "cells_customers": cell["customers"],
                    "cells_cold_seconds": round(cell["cold_seconds"], 2),
                    "cells_warm_seconds": round(cell["warm_seconds"], 2),
                    "cells_passed_gate": cell["passed"],
                    "rows_customers": rows["rows"],
                    "rows_seconds": round(rows["seconds"], 2),
                    "seconds_per_customer_cells_warm": cell_per,
                    "seconds_per_customer_rows": row_per,
                    "speedup_per_customer_warm": round(row_per / cell_per, 1),
                    "speedup_per_customer_cold": round(
                        row_per / (cell["cold_seconds"] / cell["customers"]), 1
                    ),
                }
                print(f"uplift: {comparison}", flush=True)
    big = max(results, key=lambda r: r["customers"])
    verdict = {
        "warm_refresh_under_target": big["warm_seconds"] < TARGETS["warm_refresh_10m_seconds"],
        "memory_under_target": big["peak_rss_gib"] < TARGETS["peak_rss_gib"],
        "every_size_published": all(
            r["cold_status"] == "published" and r["warm_status"] in ("published", "unchanged")
            for r in results
        ),
        "speedup_over_target": comparison.get("speedup_per_customer_warm", 0)
        >= TARGETS["speedup_per_customer"],
        "largest_size": big["customers"],
    }
    return write(
        "uplift",
        {"targets": TARGETS, "results": results, "cells_vs_rows": comparison, "verdict": verdict},
    )
