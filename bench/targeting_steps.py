"""Child-process steps of the targeting benchmark (see bench/targeting.py)."""

from __future__ import annotations

import json
import sys
import time

from bench._measure import peak_rss_gib

EXPERIMENTS = ("exp_recovery_gift", "exp_premium_support")


def simulate(path: str, customers: int) -> dict:
    from attribution import store, synth

    t0 = time.perf_counter()
    with store.opened(path) as con:
        con.execute("BEGIN TRANSACTION")
        synth.simulate(con, customers, months=12, seed=1, individual_effects=True)
        con.execute("COMMIT")
    return {"seconds": time.perf_counter() - t0}


def target(path: str, budget: float) -> dict:
    from attribution import store
    from attribution.targeting import experiment_rows
    from attribution.targeting.workflow import target as run_target

    with store.opened(path, read_only=True) as con:
        t0 = time.perf_counter()
        sizes = {e: len(experiment_rows(con, e).frame) for e in EXPERIMENTS}
        rows_seconds = time.perf_counter() - t0  # reading the rows alone, for the breakdown
        t1 = time.perf_counter()
        result = run_target(con, EXPERIMENTS, budget=budget, seed=1)
        seconds = time.perf_counter() - t1
        truth = con.execute(
            "SELECT experiment_id, customer_id, net_value FROM truth_customers "
            "WHERE experiment_id IS NOT NULL"
        ).df()
    policy = result.policy
    m = policy.members.merge(truth, on=["experiment_id", "customer_id"], validate="1:1")
    policies = {}
    for r in policy.comparison.itertuples(index=False):
        planted = float(m.loc[m[r.policy], "net_value"].sum())
        policies[r.policy] = {
            "rule": r.rule, "customers": r.customers, "cost": r.cost,
            "estimate": [r.mean, r.lo, r.hi], "planted": planted,
            "interval_holds_planted": bool(r.lo <= planted <= r.hi),
        }  # fmt: skip
    return {
        "seconds": seconds,
        "rows_seconds": rows_seconds,
        "peak_gib": peak_rss_gib(),
        "customers": sizes,
        "learners": {f.data.experiment_id: f.learner for f in result.fits},
        "qini": {e.fit.data.experiment_id: e.area for e in result.evaluations},
        "notes": list(policy.notes),
        "policies": policies,
    }


if __name__ == "__main__":
    name, *args = sys.argv[1:]
    funcs = {"simulate": simulate, "target": target}
    casts = {"simulate": (str, int), "target": (str, float)}
    result = funcs[name](*(c(a) for c, a in zip(casts[name], args, strict=True)))
    print(json.dumps(result, default=str))
