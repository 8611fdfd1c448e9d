"""Causal benchmark: the Bayesian cell route (g-formula) against DoWhy's row-level estimators.

On one simulated world (1M customers by default) the proactive-outreach programme's effects on
retention, revenue and cost-to-serve are estimated twice in the same run, on the same customers
and the default confounders:

* ``dowhy``: :func:`attribution.causal.overlap` (the propensity model) and
  :func:`attribution.causal.estimate` (DoWhy's propensity-score weighting, ATE and ATT, and linear
  regression, each with a percentile bootstrap of ``bootstrap`` resamples);
* ``gformula``: :func:`attribution.gformula.fit_gformula` per outcome (cold: compiling each model
  shape once), then retention again (warm: the compiled model reused).

Reported: both times, the ratio ``dowhy_seconds / gformula_seconds`` (above 1: the cell route is
faster), the cells per outcome and whether each fit passed the diagnostics gate, and the overall
estimates of both routes beside the simulator's planted truth.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench._measure import step, write


def run(customers: int = 1_000_000, bootstrap: int = 100) -> Path:
    with tempfile.TemporaryDirectory(prefix="cx-bench-causal-") as tmp:
        path = str(Path(tmp) / "world.duckdb")
        print(f"causal: simulating {customers:,} customers", flush=True)
        sim = step("bench.uplift_steps", "simulate", path, str(customers))
        print(f"causal: DoWhy estimators with {bootstrap} bootstrap resamples", flush=True)
        dowhy = step("bench.causal_steps", "dowhy", path, str(bootstrap))
        print(f"causal: dowhy {dowhy['seconds']:.1f} s", flush=True)
        print("causal: Bayesian standardization on cells", flush=True)
        cells = step("bench.causal_steps", "gformula", path)
        print(f"causal: gformula cold {cells['cold_seconds']:.1f} s", flush=True)
        truth = _truth(path)
    result = {
        "customers": customers,
        "population": dowhy["customers"],
        "simulate_seconds": round(sim["seconds"], 1),
        "dowhy_seconds": round(dowhy["seconds"], 2),
        "gformula_cold_seconds": round(cells["cold_seconds"], 2),
        "gformula_warm_retention_seconds": round(cells["warm_retention_seconds"], 2),
        "dowhy_retention_share_seconds": round(dowhy["seconds"] / 3, 2),
        "ratio_dowhy_over_gformula_cold": round(dowhy["seconds"] / cells["cold_seconds"], 3),
        "ratio_dowhy_per_outcome_over_gformula_warm": round(
            dowhy["seconds"] / 3 / cells["warm_retention_seconds"], 3
        ),
        "gformula_fits": cells["fits"],
        "every_gformula_fit_passed_gate": all(f["passed_gate"] for f in cells["fits"].values()),
        "dowhy": dowhy,
        "gformula": cells,
        "truth": truth,
    }
    print(f"causal: {result}", flush=True)
    return write("causal", {"bootstrap": bootstrap, "results": result})


def _truth(path: str) -> dict:
    from attribution import store

    with store.opened(path, read_only=True) as con:
        rows = con.execute(
            "SELECT outcome, estimand, effect FROM truth WHERE intervention = ? "
            "AND segment_by = 'all'",
            ["proactive_outreach"],
        ).fetchall()
    return {f"{o}_{e}": v for o, e, v in rows}
