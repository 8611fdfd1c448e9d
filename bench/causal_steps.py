"""Child-process steps of the causal benchmark (see bench/causal.py)."""

from __future__ import annotations

import json
import sys
import time

from bench._measure import peak_rss_gib

OUTCOMES = ("retention", "revenue", "cost_to_serve")


def _data(path: str):
    from attribution import store
    from attribution.observational import observational_frame

    t0 = time.perf_counter()
    with store.opened(path, read_only=True) as con:
        data = observational_frame(con, "proactive_outreach")
    return data, time.perf_counter() - t0


def _overall(rows: list[dict]) -> dict:
    return {f"{r['outcome']}_{r['estimand']}": [r["mean"], r["lo"], r["hi"]] for r in rows}


def dowhy(path: str, bootstrap: int) -> dict:
    """DoWhy's row-level estimators (weighting and regression) with bootstrap intervals."""
    from threadpoolctl import threadpool_limits

    from attribution import causal

    data, data_s = _data(path)
    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        ov = causal.overlap(data, trim=False)
        estimates = causal.estimate(
            data, ov.propensity, outcomes=OUTCOMES, bootstrap=bootstrap, seed=0
        )
    seconds = time.perf_counter() - t0
    rows = [
        {"outcome": e.outcome, "estimand": f"{e.estimator}_{e.estimand}", "mean": e.mean,
         "lo": e.lo, "hi": e.hi}
        for e in estimates
        if e.segment == "all" and e.estimator != "naive"
    ]  # fmt: skip
    return {
        "customers": len(data.frame),
        "data_seconds": data_s,
        "seconds": seconds,
        "bootstrap": bootstrap,
        "estimates": _overall(rows),
    }


def gformula(path: str) -> dict:
    """The Bayesian cell route on the same customers: each outcome cold, then retention warm."""
    from attribution import gformula as g

    data, data_s = _data(path)
    out: dict = {"customers": len(data.frame), "data_seconds": data_s, "fits": {}}
    rows = []
    t_all = time.perf_counter()
    for outcome in OUTCOMES:
        t0 = time.perf_counter()
        fit = g.fit_gformula(data, outcome)
        out["fits"][outcome] = {
            "seconds": time.perf_counter() - t0,
            "cells": fit.n_cells,
            "compiled": fit.compiled,
            "passed_gate": bool(fit.diagnostics_.passed),
            **{k: round(v, 2) for k, v in fit.timings.items()},
        }
        eff = fit.summary()
        rows += eff[(eff.segment == "all") & (eff.metric == "absolute")].to_dict(orient="records")
    out["cold_seconds"] = time.perf_counter() - t_all
    t0 = time.perf_counter()
    warm = g.fit_gformula(data, "retention")
    out["warm_retention_seconds"] = time.perf_counter() - t0
    out["warm_retention_compiled"] = warm.compiled
    out["estimates"] = _overall(rows)
    return out


if __name__ == "__main__":
    name, *rest = sys.argv[1:]
    fn = {"dowhy": dowhy, "gformula": gformula}[name]
    result = fn(*[int(a) if a.isdigit() else a for a in rest])
    result["peak_rss_gib"] = peak_rss_gib()
    print(json.dumps(result, default=float))
