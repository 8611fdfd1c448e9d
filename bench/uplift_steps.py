"""Child-process steps of the uplift benchmark (see bench/uplift.py)."""

from __future__ import annotations

import json
import sys
import time

from bench._measure import peak_rss_gib


def simulate(path: str, customers: int, seed: int = 2) -> dict:
    from attribution import store, synth

    t0 = time.perf_counter()
    with store.opened(path) as con:
        con.execute("BEGIN TRANSACTION")
        synth.simulate(con, customers, months=12, seed=seed)
        con.execute("COMMIT")
    return {"seconds": time.perf_counter() - t0}


def refresh(path: str, times: int = 1) -> dict:
    """``cx refresh --force`` as a scheduled job runs it: a new process, the store file.

    The wall time counts from before the package is imported. With ``times=2`` the second
    refresh in the same process (every model compiled and in memory) is timed too.
    """
    t0 = time.perf_counter()
    from attribution import store
    from attribution.refresh import refresh_store

    lines: list[str] = []
    result = refresh_store(path, force=True, log=lines.append)
    out = {"seconds": time.perf_counter() - t0, "status": result.status, "log": lines}
    if times == 2:
        t1 = time.perf_counter()
        again = refresh_store(path, force=True)
        out["same_process_seconds"] = time.perf_counter() - t1
        out["same_process_status"] = again.status
    with store.opened(path, read_only=True) as con:
        out["customers_in_experiments"] = int(
            con.execute("SELECT count(*) FROM assignments").fetchone()[0]
        )
    return out


def readout(path: str) -> dict:
    """``cx readout exp_premium_support`` in a new process: wall time from before the imports."""
    t0 = time.perf_counter()
    from attribution import store
    from attribution.readout import read_out

    with store.opened(path, read_only=True) as con:
        result = read_out(con, "exp_premium_support")
    return {
        "seconds": time.perf_counter() - t0,
        "passed": bool(result.passed),
        "compiled_models": sorted({m.cache_ for m in result.models.values()}),
    }


def cells_retention(path: str) -> dict:
    """Collapse + fit the retention model for one experiment on cells (warm: fitted twice)."""
    from attribution import store
    from attribution.cells import cells
    from attribution.uplift import RetentionUplift

    with store.opened(path, read_only=True) as con:
        n = con.execute(
            "SELECT count(*) FROM assignments WHERE experiment_id = 'exp_premium_support'"
        ).fetchone()[0]
        timings = []
        for _ in range(2):
            t0 = time.perf_counter()
            frame = cells(con, ["tier"], experiment_id="exp_premium_support")
            model = RetentionUplift(seed=1).fit(frame, "tier")
            timings.append(time.perf_counter() - t0)
    return {
        "customers": int(n),
        "cold_seconds": timings[0],
        "warm_seconds": timings[1],
        "cells": len(frame),
        "passed": bool(model.diagnostics_.passed),
    }


def rows_retention(path: str, n_rows: int) -> dict:
    """The same retention model on individual rows with plain PyMC, as a data scientist would."""
    import numpy as np
    import pymc as pm

    from attribution import store

    with store.opened(path, read_only=True) as con:
        rows = con.execute(
            """
            SELECT c.tier, a.arm = 'treatment' AS treated, o.active
            FROM assignments a
            JOIN customers c USING (customer_id)
            JOIN outcomes o ON o.customer_id = a.customer_id
             AND o.period = (SELECT max(period) FROM outcomes)
            WHERE a.experiment_id = 'exp_premium_support'
            ORDER BY hash(a.customer_id) LIMIT ?
            """,
            [n_rows],
        ).df()
    tiers, tier_idx = np.unique(rows["tier"], return_inverse=True)
    t0 = time.perf_counter()
    with pm.Model(coords={"tier": tiers}):
        base = pm.Normal("base", 0, 1.5, dims="tier")
        mu = pm.Normal("mu", 0, 1)
        tau = pm.HalfNormal("tau", 0.5)
        z = pm.Normal("z", 0, 1, dims="tier")
        effect = pm.Deterministic("effect", mu + tau * z, dims="tier")
        logit = base[tier_idx] + effect[tier_idx] * rows["treated"].to_numpy(float)
        pm.Bernoulli("active", logit_p=logit, observed=rows["active"].to_numpy(int))
        pm.sample(draws=1000, tune=1000, chains=4, cores=2, random_seed=1, progressbar=False)
    return {"rows": len(rows), "seconds": time.perf_counter() - t0}


if __name__ == "__main__":
    name, *rest = sys.argv[1:]
    fn = {
        "simulate": simulate,
        "refresh": refresh,
        "readout": readout,
        "cells_retention": cells_retention,
        "rows_retention": rows_retention,
    }[name]
    result = fn(*[int(a) if a.isdigit() else a for a in rest])
    result["peak_rss_gib"] = peak_rss_gib()
    print(json.dumps(result))
