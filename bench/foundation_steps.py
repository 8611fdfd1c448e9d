"""Child-process steps of the foundation benchmark (see bench/foundation.py)."""

from __future__ import annotations

import json
import sys
import time

from bench._measure import peak_rss_gib


def simulate(path: str, customers: int, months: int) -> dict:
    from attribution import store, synth

    t0 = time.perf_counter()
    with store.opened(path) as con:
        con.execute("BEGIN TRANSACTION")
        synth.simulate(con, customers, months=months, seed=1)
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    return {"seconds": time.perf_counter() - t0}


def collapse(path: str) -> dict:
    from attribution import store
    from attribution.cells import cells

    with store.opened(path, read_only=True) as con:
        t0 = time.perf_counter()
        frame = cells(con, ["tier", "region"])
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "cells": len(frame), "customers": int(frame["n"].sum())}


def naive(path: str) -> dict:
    """What a data scientist would do without cells: pull the rows into pandas and group."""
    import numpy as np

    from attribution import store

    t0 = time.perf_counter()
    with store.opened(path, read_only=True) as con:
        outcomes = con.execute("SELECT * FROM outcomes").df()
        customers = con.execute("SELECT customer_id, tier, region FROM customers").df()
    last = outcomes["period"].max()
    per = outcomes.groupby("customer_id").agg(
        revenue=("revenue", "sum"), cost=("cost_to_serve", "sum")
    )
    per["active"] = outcomes[outcomes["period"] == last].set_index("customer_id")["active"]
    rows = customers.join(per, on="customer_id")
    for col in ("revenue", "cost"):
        positive = rows[col].where(rows[col] > 0)
        rows[f"{col}_npos"] = positive.notna()
        rows[f"{col}_log"] = np.log(positive)
        rows[f"{col}_log2"] = rows[f"{col}_log"] ** 2
    frame = rows.groupby(["tier", "region"]).agg(
        n=("customer_id", "size"),
        n_active=("active", "sum"),
        revenue_npos=("revenue_npos", "sum"),
        revenue_sum=("revenue", "sum"),
        revenue_sumlog=("revenue_log", "sum"),
        revenue_sumlog2=("revenue_log2", "sum"),
        cost_npos=("cost_npos", "sum"),
        cost_sum=("cost", "sum"),
        cost_sumlog=("cost_log", "sum"),
        cost_sumlog2=("cost_log2", "sum"),
    )
    return {"seconds": time.perf_counter() - t0, "cells": len(frame)}


if __name__ == "__main__":
    name, *rest = sys.argv[1:]
    fn = {"simulate": simulate, "collapse": collapse, "naive": naive}[name]
    args = [int(a) if a.isdigit() else a for a in rest]
    result = fn(*args)
    result["peak_rss_gib"] = peak_rss_gib()
    print(json.dumps(result))
