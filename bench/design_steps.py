"""Child-process steps of the design benchmark (see bench/design.py)."""

from __future__ import annotations

import json
import sys
import time

from bench._measure import peak_rss_gib

ELIGIBLE = "tier=gold,silver"
HORIZON, PRE = 3, 3


def inputs(path: str) -> dict:
    """Design inputs from the store, aggregated in DuckDB."""
    from attribution import store
    from experiments.history import design_inputs

    with store.opened(path, read_only=True) as con:
        t0 = time.perf_counter()
        got = design_inputs(con, eligible=ELIGIBLE, horizon_months=HORIZON, pre_months=PRE)
        seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "peak_rss_gib": peak_rss_gib(),
        "n_eligible": got.n_eligible,
        "as_of": got.as_of,
        "retention_baseline": got.retention_baseline,
        "revenue_sd": got.revenue_sd,
        "r2_revenue": got.r2_revenue,
    }


def naive_inputs(path: str, as_of: str) -> dict:
    """The same numbers the way a notebook would: rows into pandas, groupby, numpy least squares."""
    import numpy as np
    import pandas as pd

    from attribution import store

    start = pd.Period(as_of, "M")
    first = (start - PRE).to_timestamp()
    last = (start + HORIZON - 1).to_timestamp()
    with store.opened(path, read_only=True) as con:
        t0 = time.perf_counter()
        customers = con.execute("SELECT customer_id, tier FROM customers").df()
        rows = con.execute(
            "SELECT customer_id, period, active, revenue, cost_to_serve FROM outcomes "
            "WHERE period BETWEEN ? AND ?",
            [first.date(), last.date()],
        ).df()
    eligible = customers[customers["tier"].isin(["gold", "silver"])]["customer_id"]
    rows = rows[rows["customer_id"].isin(eligible)]
    rows["period"] = pd.to_datetime(rows["period"]).dt.to_period("M")
    before = start - 1
    base = rows[(rows["period"] == before) & rows["active"]]["customer_id"]
    rows = rows[rows["customer_id"].isin(base)]
    pre = rows[rows["period"] < start]
    post = rows[rows["period"] >= start]
    x = pre.groupby("customer_id").agg(
        pre_revenue=("revenue", "sum"), pre_cost=("cost_to_serve", "sum")
    )
    y = post.groupby("customer_id")["revenue"].sum().reindex(x.index, fill_value=0.0)
    retained = (
        post[post["period"] == start + HORIZON - 1].set_index("customer_id")["active"]
    ).reindex(x.index, fill_value=False)
    design = np.column_stack(
        [np.ones(len(x)), x["pre_revenue"], x["pre_cost"], np.log1p(x["pre_revenue"])]
    )
    beta, *_ = np.linalg.lstsq(design, y.to_numpy(), rcond=None)
    resid = y.to_numpy() - design @ beta
    r2 = 1.0 - resid.var() / y.to_numpy().var()
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "peak_rss_gib": peak_rss_gib(),
        "n_eligible": int(len(x)),
        "retention_baseline": float(retained.mean()),
        "revenue_sd": float(y.std(ddof=1)),
        "r2_revenue": float(r2),
    }


def assign(path: str) -> dict:
    """Assign every customer stratified by tier and region, and write the experiment."""
    from attribution import store
    from experiments.assign import assign as run_assign
    from experiments.assign import write_assignment

    with store.opened(path) as con:
        eligible = con.execute("SELECT customer_id, tier, region FROM customers").df()
        t0 = time.perf_counter()
        result = run_assign(eligible, "bench", control_share=0.1, strata=["tier", "region"])
        assigned = time.perf_counter() - t0
        write_assignment(con, "exp_bench", "bench", result, started="2025-06")
        written = time.perf_counter() - t0
    return {
        "customers": len(eligible),
        "assign_seconds": assigned,
        "assign_and_write_seconds": written,
        "peak_rss_gib": peak_rss_gib(),
        "srm_p": result.srm.p_value,
    }


def sizing() -> dict:
    """Exact sample-size solves per second (root-finding on the two-tailed power)."""
    from experiments.design import means_sample_size, proportions_sample_size

    t0 = time.perf_counter()
    k = 0
    for baseline in (0.5, 0.7, 0.8, 0.9):
        for mde in (0.005, 0.01, 0.02, 0.03, 0.05):
            for share in (0.5, 0.2, 0.1):
                proportions_sample_size(baseline, mde, control_share=share)
                means_sample_size(120.0, mde * 100, control_share=share, r2=0.3)
                k += 2
    seconds = time.perf_counter() - t0
    return {"solves": k, "seconds": seconds, "solves_per_second": k / seconds}


if __name__ == "__main__":
    name, *args = sys.argv[1:]
    print(json.dumps(globals()[name](*args)))
