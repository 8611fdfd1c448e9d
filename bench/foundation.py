"""Foundation benchmark: simulate and collapse 1M and 10M customers x 12 months.

Targets on the 2-core machine: 10M customers simulated in under 3 minutes and collapsed into
cells in under 10 seconds, peak memory under 4 GiB. The naive alternative (pull rows into pandas
and group) runs at the smallest size in the same run, and the ratio is reported.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench._measure import step, write

TARGETS = {"simulate_10m_seconds": 180.0, "collapse_10m_seconds": 10.0, "peak_rss_gib": 4.0}


def run(sizes: list[int], months: int = 12) -> Path:
    results = []
    with tempfile.TemporaryDirectory(prefix="cx-bench-") as tmp:
        for n in sizes:
            path = str(Path(tmp) / f"world_{n}.duckdb")
            print(f"foundation: simulating {n:,} customers x {months} months", flush=True)
            sim = step("bench.foundation_steps", "simulate", path, str(n), str(months))
            col = step("bench.foundation_steps", "collapse", path)
            row = {
                "customers": n,
                "months": months,
                "simulate_seconds": round(sim["seconds"], 2),
                "simulate_peak_rss_gib": round(sim["peak_rss_gib"], 3),
                "collapse_seconds": round(col["seconds"], 3),
                "collapse_peak_rss_gib": round(col["peak_rss_gib"], 3),
                "cells": col["cells"],
                "store_gib": round(os.path.getsize(path) / 2**30, 3),
            }
            if n == min(sizes):
                naive = step("bench.foundation_steps", "naive", path)
                row["naive_pandas_seconds"] = round(naive["seconds"], 2)
                row["naive_pandas_peak_rss_gib"] = round(naive["peak_rss_gib"], 3)
                row["speedup_vs_naive"] = round(naive["seconds"] / col["seconds"], 1)
            print(f"foundation: {row}", flush=True)
            results.append(row)
            os.remove(path)
    big = max(results, key=lambda r: r["customers"])
    verdict = {
        "simulate_under_target": big["simulate_seconds"] < TARGETS["simulate_10m_seconds"],
        "collapse_under_target": big["collapse_seconds"] < TARGETS["collapse_10m_seconds"],
        "memory_under_target": max(
            max(r["simulate_peak_rss_gib"], r["collapse_peak_rss_gib"]) for r in results
        )
        < TARGETS["peak_rss_gib"],
        "largest_size": big["customers"],
    }
    return write("foundation", {"targets": TARGETS, "results": results, "verdict": verdict})
