"""Slow: at a million customers, where intervals are narrow, net value still holds its truth.

The 30-world coverage sweep (``test_money_coverage``) runs 20k-customer worlds, whose intervals
are wide enough to hide a biased extrapolation after the window. Here two simulated worlds of
1M customers each (seeds 0 and 1) and both experiments: of the four overall net value
intervals at most one may miss its planted net value (a calibrated 90% interval misses two or
more of four 5% of the time). Premium support's design record holds its effect on churn after
the window (it goes on), the recovery gift's ends with it (see :mod:`attribution.value`).
Measured 2026-12-05: premium support valued with the gift's rule missed low in both worlds
(-107.3 [-116.1, -98.4] against a planted -98.35, -107.6 [-115.7, -99.1] against -98.28), so
this test fails it; with its own rule -99.2 [-111.1, -87.3] and -101.8 [-111.7, -91.8].
About 2 minutes on 2 cores.
"""

from __future__ import annotations

import warnings

import pytest

from attribution import store, synth
from attribution.diagnostics import DiagnosticsWarning
from attribution.readout import read_out

EXPERIMENTS = ("exp_recovery_gift", "exp_premium_support")


@pytest.mark.slow
def test_net_value_intervals_hold_the_planted_truth_at_a_million_customers(tmp_path):
    checked = []
    for seed in (0, 1):
        with store.opened(tmp_path / f"big{seed}.duckdb") as con:
            synth.simulate(con, 1_000_000, months=12, seed=seed)
            truth = (
                con.execute(
                    "SELECT experiment_id, effect FROM truth WHERE estimand = 'ate' "
                    "AND segment_by = 'all' AND outcome = 'net_value' AND experiment_id IS NOT NULL"
                )
                .df()
                .set_index("experiment_id")["effect"]
            )
            with warnings.catch_warnings():
                warnings.simplefilter("error", DiagnosticsWarning)  # every fit passes the gate
                for experiment in EXPERIMENTS:
                    r = read_out(con, experiment)
                    assert r.passed, r.reasons
                    t = r.table
                    row = t[(t["segment"] == "all") & (t["outcome"] == "net_value")
                            & (t["metric"] == "absolute")].iloc[0]  # fmt: skip
                    held = bool(row["lo"] <= truth[experiment] <= row["hi"])
                    checked.append((seed, experiment, truth[experiment], row["mean"],
                                    row["lo"], row["hi"], held))  # fmt: skip
    assert sum(not c[-1] for c in checked) <= 1, checked
