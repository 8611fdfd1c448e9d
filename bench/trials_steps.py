"""Child-process steps of the emulated-trials benchmark (see bench/trials.py)."""

from __future__ import annotations

import json
import sys
import time

from bench._measure import peak_rss_gib

OUTCOMES = ("retention", "revenue", "cost_to_serve")


def simulate(path: str, customers: int) -> dict:
    from attribution import store, synth

    t0 = time.perf_counter()
    with store.opened(path) as con:
        con.execute("BEGIN TRANSACTION")
        synth.simulate(
            con, customers, months=18, seed=1, outreach_months=4, individual_effects=True
        )
        con.execute("COMMIT")
        seconds = time.perf_counter() - t0
        rows = con.execute(
            "SELECT outcome, estimand, effect FROM truth WHERE intervention = "
            "'proactive_outreach' AND segment_by = 'all' AND outcome IN "
            "('retention', 'revenue', 'cost_to_serve')"
        ).fetchall()
    return {"seconds": seconds, "truth": {f"{o}_{e}": v for o, e, v in rows}}


def _data(path: str):
    from dataclasses import replace

    from attribution import store
    from attribution.observational import observational_frame

    t0 = time.perf_counter()
    with store.opened(path, read_only=True) as con:
        data = observational_frame(con, "proactive_outreach")
    seconds = time.perf_counter() - t0
    keep = [c for c in data.confounders if data.frame[c].nunique() > 1]
    data = replace(data, confounders=keep, numeric=[c for c in data.numeric if c in keep],
                   categorical=[c for c in data.categorical if c in keep])  # fmt: skip
    return data, seconds


def frame(path: str) -> dict:
    data, seconds = _data(path)
    return {
        "seconds": seconds,
        "rows": len(data.frame),
        "customers": int(data.frame["customer_id"].nunique()),
        "trials": len(data.trials),
        "treated": data.n_treated,
    }


def _kept_truth(path: str, kept) -> dict:
    """The planted ATE and ATT of exactly the customer-trials the adjusted rows are about (the
    overlap's ``kept`` frame), from the simulator's individual effects: the truth for them."""
    from attribution import store

    with store.opened(path, read_only=True) as con:
        own = con.execute(
            "SELECT customer_id, strftime(trial_month, '%Y-%m') AS trial_month, retention, "
            "revenue, cost_to_serve FROM truth_customers WHERE intervention = "
            "'proactive_outreach'"
        ).df()
    keys = kept[["customer_id", "trial_month", "treated"]]
    both = keys.merge(own, on=["customer_id", "trial_month"], how="left", validate="one_to_one")
    if both[list(OUTCOMES)].isna().any().any():
        raise RuntimeError("a kept customer-trial has no planted individual effect")
    treated = both["treated"] == 1
    out = {}
    for o in OUTCOMES:
        out[f"{o}_ate"] = float(both[o].mean())
        out[f"{o}_att"] = float(both.loc[treated, o].mean())
    return out


def _trimmed(data):
    from dataclasses import replace

    from attribution import causal

    ov = causal.overlap(data)
    inside = (ov.propensity >= ov.low) & (ov.propensity <= ov.high)
    return replace(data, frame=data.frame.loc[inside].reset_index(drop=True)), ov.propensity[inside]


def dowhy(path: str, bootstrap: int) -> dict:
    """Overlap (trimmed), DoWhy's weighting and regression with a cluster bootstrap."""
    from threadpoolctl import threadpool_limits

    from attribution import causal

    data, data_s = _data(path)
    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        data, propensity = _trimmed(data)
        estimates = causal.estimate(
            data, propensity, outcomes=OUTCOMES, bootstrap=bootstrap, seed=0
        )
    seconds = time.perf_counter() - t0
    return {
        "rows": len(data.frame),
        "data_seconds": data_s,
        "seconds": seconds,
        # after the clock: the same trimmed customer-trials every adjusted route is about
        "kept_truth": _kept_truth(path, data.frame),
        "estimates": {
            f"{e.outcome}_{e.estimand}": [e.mean, e.lo, e.hi]
            for e in estimates
            if e.segment == "all" and e.estimator == "dowhy_psw"
        },
        "regression": {
            f"{e.outcome}_{e.estimand}": [e.mean, e.lo, e.hi]
            for e in estimates
            if e.segment == "all" and e.estimator == "dowhy_regression"
        },
    }


def cells(path: str, cache: str = "off") -> dict:
    """The Bayesian cell route on propensity strata: overlap (the propensity fit, trimmed),
    strata with prognostic scores and design effects, then one fit per outcome. ``cache``
    ``"off"``: cold, each model shape compiled in this process with the on-disk cache off;
    else the compiled-model cache folder (a second process with the same folder loads them,
    as a scheduled job does after its first run)."""
    import os

    os.environ["CX_MODEL_CACHE"] = cache
    from threadpoolctl import threadpool_limits

    from attribution.causal.strata import plan_strata
    from attribution.gformula import fit_gformula

    data, data_s = _data(path)
    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        data, propensity = _trimmed(data)
        plan = plan_strata(data, propensity, outcomes=list(OUTCOMES))
    plan_s = time.perf_counter() - t0
    fits, estimates = {}, {}
    for outcome in OUTCOMES:
        cell_data, cuts = plan.for_outcome(outcome)
        t = time.perf_counter()
        fit = fit_gformula(
            cell_data, outcome, cuts=cuts, likelihood_scale=1.0 / plan.design_effects[outcome]
        )
        fits[outcome] = {
            "seconds": time.perf_counter() - t,
            "cells": fit.n_cells,
            "design_effect": plan.design_effects[outcome],
            "passed_gate": bool(fit.diagnostics_.passed),
            "model_from": fit.cache,
            **{k: round(v, 2) for k, v in fit.timings.items()},
        }
        eff = fit.effects
        for r in eff[(eff.segment == "all") & (eff.metric == "absolute")].to_dict("records"):
            estimates[f"{outcome}_{r['estimand']}"] = [r["mean"], r["lo"], r["hi"]]
    return {
        "rows": len(data.frame),
        "data_seconds": data_s,
        "strata": plan.n_strata,
        "propensity_and_strata_seconds": plan_s,
        "seconds": time.perf_counter() - t0,
        "fits": fits,
        "estimates": estimates,
    }


def aipw(path: str) -> dict:
    from threadpoolctl import threadpool_limits

    from attribution.causal.aipw import aipw as fit

    data, data_s = _data(path)
    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        data, _ = _trimmed(data)
        estimates = fit(data, outcomes=OUTCOMES)
    return {
        "rows": len(data.frame),
        "data_seconds": data_s,
        "seconds": time.perf_counter() - t0,
        "estimates": {f"{e.outcome}_{e.estimand}": [e.mean, e.lo, e.hi] for e in estimates},
    }


if __name__ == "__main__":
    name, *rest = sys.argv[1:]
    fn = {
        "simulate": simulate, "frame": frame, "dowhy": dowhy, "aipw": aipw, "cells": cells,
    }[name]  # fmt: skip
    result = fn(*[int(a) if a.isdigit() else a for a in rest])
    result["peak_rss_gib"] = peak_rss_gib()
    print(json.dumps(result, default=float))
