"""Targeting benchmark: per-customer uplift, evaluation and the budgeted policy at scale.

On simulated worlds (1M and 10M customers by default, 12 months, seed 1, individual effects)
:func:`attribution.targeting.target` runs on the recovery gift and premium support tests with a
budget, in a process of its own, as ``cx target`` runs it: reading the rows (DuckDB), fitting (5
out-of-fold learners and a final one per experiment, with the doubly robust scores), evaluating,
falling back to segment means where a ranking does not beat random, and choosing. Reported:
seconds and peak memory, the rows' reading alone, customers per experiment, the policies'
estimated values beside their planted values (the simulator's individual net values of the
customers each policy treats), and whether each interval holds its planted value. The naive
alternatives in the same run: treating everyone ("treat all") and the best single segment rule.
The budget scales with the world (400,000 per million customers). Above
:data:`attribution.targeting.learners.MAX_TRAIN` customers an experiment's learners train on a
sample and score everyone in batches, so fitting stays flat while reading and scoring grow.
Targets (issue 19): 1M under 3 minutes, 10M under 15 minutes, under 4 GiB.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench._measure import step, write


def run(sizes: tuple[int, ...] = (1_000_000, 10_000_000), budget_per_million=400_000.0) -> Path:
    results = []
    for customers in sizes:
        budget = budget_per_million * customers / 1_000_000
        with tempfile.TemporaryDirectory(prefix="cx-bench-targeting-") as tmp:
            path = str(Path(tmp) / "world.duckdb")
            print(f"targeting: simulating {customers:,} customers", flush=True)
            sim = step("bench.targeting_steps", "simulate", path, str(customers))
            print(f"targeting: simulated in {sim['seconds']:.1f} s", flush=True)
            got = step("bench.targeting_steps", "target", path, str(budget))
            print(f"targeting: {got['seconds']:.1f} s, {got['peak_gib']:.2f} GiB", flush=True)
        result = {"customers": customers, "budget": budget, "simulate_seconds": sim["seconds"],
                  **got}  # fmt: skip
        print(f"targeting: {result}", flush=True)
        results.append(result)
    return write("targeting", {"results": results})
