"""Slow: over 30 simulated worlds, the 90% intervals of every headline number cover the truth.

Each world is simulated with its own seed and read out with the default configuration (segments
by tier, 4 chains x 1000 draws); the overall rows of retention, revenue, cost-to-serve and net
value of both experiments are checked against the simulator's planted truth (ATE over the
experiment's population, which is the intention-to-treat effect: every assigned customer is
treated), and the payback month (planted: of the mean cash flow, ``inf`` when it does not pay
back; estimated: the interval of the draws' payback months). 30 worlds x 2 experiments = 60
intervals per quantity; a calibrated 90% interval covers 54 of them on average (binomial 5-95%:
51 to 57), so the band 82-97% fails a model whose intervals are clearly too narrow or too wide;
each experiment must also hold at least 23 of its 30.
About 6-9 minutes on 2 cores.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from attribution import store, synth
from attribution.diagnostics import DiagnosticsWarning
from attribution.readout import read_out

QUANTITIES = ("retention", "revenue", "cost_to_serve", "net_value")
EXPERIMENTS = ("exp_recovery_gift", "exp_premium_support")


@pytest.mark.slow
def test_ninety_percent_intervals_of_effects_and_net_value_cover_the_planted_truth():
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiagnosticsWarning)  # every fit must pass the gate
        for seed in range(30):
            con = store.connect(":memory:")
            synth.simulate(con, 20_000, months=12, seed=1000 + seed)
            truth = con.execute(
                "SELECT experiment_id, outcome, effect FROM truth "
                "WHERE estimand = 'ate' AND segment_by = 'all' AND experiment_id IS NOT NULL"
            ).df()
            for experiment in EXPERIMENTS:
                r = read_out(con, experiment)
                assert r.passed, r.reasons
                t = r.table
                t = t[(t["segment"] == "all") & (t["metric"] == "absolute")]
                for q in (*QUANTITIES, "payback_months"):
                    row = t[t["outcome"] == q].iloc[0]
                    effect = truth.query("experiment_id == @experiment and outcome == @q")
                    effect = float(effect["effect"].iloc[0])
                    # payback: a quantile that does not pay back (NaN) is "after the horizon"
                    lo, hi = (np.inf if pd.isna(x) else x for x in (row["lo"], row["hi"]))
                    rows.append(
                        {
                            "seed": seed,
                            "experiment": experiment,
                            "quantity": q,
                            "truth": effect,
                            "lo": lo,
                            "hi": hi,
                            "covered": lo <= effect <= hi,
                        }  # fmt: skip
                    )
            con.close()
    table = pd.DataFrame(rows)
    coverage = table.groupby("quantity")["covered"].mean()
    print("\n90% interval coverage over 30 worlds x 2 experiments:")
    print(table.groupby(["quantity", "experiment"])["covered"].mean().unstack().to_string())
    print(coverage.to_string())
    for q in QUANTITIES:
        assert 0.82 <= coverage[q] <= 0.97, (q, coverage[q])
    # Per experiment (30 intervals each) the binomial noise is wide: a calibrated 90% interval
    # holds 23 of 30 or more with probability 0.992; premium support's net value held 22 of 30
    # before its cell means were unpooled and money stopped extrapolating the churn effect.
    by_experiment = table.groupby(["quantity", "experiment"])["covered"].mean()
    for q in QUANTITIES:
        for experiment in EXPERIMENTS:
            assert by_experiment[q, experiment] >= 23 / 30, (
                q,
                experiment,
                by_experiment[q, experiment],
            )
    # Payback is a whole month with an atom at "never": its equal-tailed interval is conservative
    # by construction (measured 2026-12-03: 100% of 60), so only too-narrow intervals fail here.
    assert coverage["payback_months"] >= 0.82, coverage["payback_months"]
