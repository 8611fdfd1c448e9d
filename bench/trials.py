"""Emulated-trials benchmark: observational attribution on staggered treatment at scale.

On one simulated world (1M customers by default, 18 months, the targeted outreach staggered
over four months, seed 1) the pooled emulated trials are measured step by step, each in a
process of its own: the frame (one windowed DuckDB scan to a row per customer and trial month),
DoWhy's weighting and regression with a cluster bootstrap (whole customers resampled), the
Bayesian cell route on propensity strata (cold: compiling in the process; then again in a new
process with the compiled models on disk, as a scheduled job runs it), and the cross-fitted
AIPW (only up to ``aipw_max`` customers: at 1M it ran over 28 minutes). Reported: seconds and
peak memory per step, customer-trials, the ratios DoWhy / cell route (cold and warm), and every
overall ATE/ATT beside the simulator's planted truth with whether its interval holds it: the
truth of exactly the customer-trials the overlap keeps (from the simulator's individual
effects), which is what the adjusted rows are about, and, for reference, the whole
population's.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench._measure import step, write


def run(customers: int = 1_000_000, bootstrap: int = 100, aipw_max: int = 200_000) -> Path:
    with tempfile.TemporaryDirectory(prefix="cx-bench-trials-") as tmp:
        path = str(Path(tmp) / "world.duckdb")
        print(f"trials: simulating {customers:,} customers, outreach over 4 months", flush=True)
        sim = step("bench.trials_steps", "simulate", path, str(customers))
        print(f"trials: simulated in {sim['seconds']:.1f} s", flush=True)
        frame = step("bench.trials_steps", "frame", path)
        print(f"trials: frame {frame['seconds']:.1f} s, {frame['rows']:,} rows", flush=True)
        dowhy = step("bench.trials_steps", "dowhy", path, str(bootstrap))
        print(f"trials: DoWhy + cluster bootstrap {dowhy['seconds']:.1f} s", flush=True)
        cells = step("bench.trials_steps", "cells", path)
        print(f"trials: cell route on propensity strata {cells['seconds']:.1f} s", flush=True)
        models = str(Path(tmp) / "models")  # a compiled-model cache of this run only
        step("bench.trials_steps", "cells", path, models)  # fills it
        warm = step("bench.trials_steps", "cells", path, models)
        print(f"trials: the cell route again, models from disk {warm['seconds']:.1f} s", flush=True)
        aipw = None
        if customers <= aipw_max:
            aipw = step("bench.trials_steps", "aipw", path)
            print(f"trials: AIPW {aipw['seconds']:.1f} s", flush=True)
    truth = dowhy["kept_truth"]  # the planted effects of the customer-trials the rows are about
    routes = [
        ("dowhy_psw", dowhy["estimates"]),
        ("dowhy_regression", dowhy["regression"]),
        ("bayes_cells", cells["estimates"]),
    ] + ([("aipw", aipw["estimates"])] if aipw else [])
    held = {
        route: {k: v[1] <= truth[k] <= v[2] for k, v in estimates.items()}
        for route, estimates in routes
    }
    held_whole = {  # against the whole population's planted effects, which trimming leaves
        route: {k: v[1] <= sim["truth"][k] <= v[2] for k, v in estimates.items()}
        for route, estimates in routes
    }
    result = {
        "customers": customers,
        "simulate_seconds": round(sim["seconds"], 1),
        "frame": frame,
        "dowhy": dowhy,
        "cells": cells,
        "ratio_dowhy_over_cells": round(dowhy["seconds"] / cells["seconds"], 2),
        "cells_models_from_disk": warm,
        "ratio_dowhy_over_cells_from_disk": round(dowhy["seconds"] / warm["seconds"], 2),
        "aipw": aipw if aipw else f"not run above {aipw_max:,} customers",
        "truth": truth,
        "overlap": {"kept": dowhy["rows"], "of": frame["rows"]},
        "interval_holds_truth": held,
        "truth_whole_population": sim["truth"],
        "interval_holds_whole_population_truth": held_whole,
    }
    print(f"trials: {result}", flush=True)
    return write("trials", {"bootstrap": bootstrap, "results": result})
