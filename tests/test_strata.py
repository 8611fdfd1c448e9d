"""Propensity strata for the Bayesian cell route (issue 17): the rule, the cuts, the prognostic
scores and the design effect of customers repeated across pooled trials."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from attribution.causal.strata import (
    SCORE,
    design_effect,
    n_strata,
    plan_strata,
    prognosis_column,
)
from attribution.config import config_from_dict
from attribution.errors import InputError
from attribution.gformula import fit_gformula
from attribution.observational import ObservationalData

OUTCOMES = ["retention", "revenue", "cost_to_serve"]


def _data(n: int = 6_000, seed: int = 0, repeat: int = 1) -> tuple[ObservationalData, np.ndarray]:
    """Rows with one confounder that drives both treatment and the outcomes; each customer
    ``repeat`` times (the copies as independent as pooled trials' reused controls are not)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(-2.0 + 1.2 * x)))
    t = (rng.random(n) < p).astype(int)
    level = np.exp(3 + 0.5 * x + 0.2 * t)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "treated": t,
            "x": x,
            "retained": (rng.random(n) < 1 / (1 + np.exp(-(0.5 + x + 0.3 * t)))).astype(int),
            "revenue": rng.gamma(2.0, level / 2.0),
            "cost_to_serve": rng.gamma(2.0, np.exp(1 + 0.3 * x) / 2.0),
        }
    )
    frame = pd.concat([frame] * repeat, ignore_index=True)
    data = ObservationalData(
        frame=frame,
        treatment="outreach",
        as_of=pd.Timestamp("2025-01-01").date(),
        horizon_months=6,
        confounders=["x"],
        numeric=["x"],
        categorical=[],
    )
    return data, np.tile(p, repeat)


def test_the_number_of_strata_follows_the_stated_rule():
    assert [n_strata(k) for k in (0, 999, 1_500, 2_499, 4_999, 50_000)] == [20, 20, 30, 40, 90, 100]


def test_strata_hold_equal_numbers_of_treated_and_every_row_gets_its_prognosis():
    data, p = _data()
    plan = plan_strata(data, p, outcomes=OUTCOMES, strata=10)
    frame = plan.data.frame
    assert plan.n_strata == 10 and len(frame) == len(data.frame)
    band = np.searchsorted(plan.cuts, frame[SCORE].to_numpy(), side="left")
    treated = np.bincount(band[frame["treated"] == 1], minlength=10)
    assert treated.max() - treated.min() <= 2, treated
    np.testing.assert_allclose(frame[SCORE], np.log(p / (1 - p)))
    untreated = frame[frame["treated"] == 0]
    for o, col in (("revenue", "revenue"), ("cost_to_serve", "cost_to_serve")):
        prog = untreated[prognosis_column(o)]
        assert (prog > 0).all()
        # the confounder drives the outcome: its prediction tracks the outcome
        assert np.corrcoef(prog, untreated[col])[0, 1] > 0.2
    data_r, cuts = plan.for_outcome("retention")
    assert data_r.confounders == [SCORE, prognosis_column("retention")]
    assert cuts == {SCORE: plan.cuts, prognosis_column("retention"): []}
    assert plan.design_effects == {o: 1.0 for o in OUTCOMES}  # one row per customer


def test_the_design_effect_is_what_a_customer_bootstrap_says():
    """Controls repeated four times with outcomes that barely change between copies (as a reused
    control's overlapping follow-up windows): the stratified ATE's variance over a bootstrap of
    customers is the design effect times its variance over a bootstrap of rows."""
    rng = np.random.default_rng(3)
    n_c, n_t, k = 3_000, 3_000, 4
    base = rng.normal(size=n_c)
    y = np.concatenate([np.repeat(base, k) + 0.2 * rng.normal(size=n_c * k), rng.normal(size=n_t)])
    t = np.r_[np.zeros(n_c * k, int), np.ones(n_t, int)]
    ids = np.r_[np.repeat(np.arange(n_c), k), n_c + np.arange(n_t)]
    stratum = rng.integers(0, 5, size=len(y))

    def ate(idx):
        yy, tt, ss = y[idx], t[idx], stratum[idx]
        total = 0.0
        for s in range(5):
            m = ss == s
            total += m.mean() * (yy[m & (tt == 1)].mean() - yy[m & (tt == 0)].mean())
        return total

    rows = [ate(rng.integers(0, len(y), len(y))) for _ in range(300)]
    by_customer = []
    members = pd.Series(np.arange(len(y))).groupby(ids).apply(np.asarray).to_numpy()
    for _ in range(300):
        drawn = rng.integers(0, len(members), len(members))
        by_customer.append(ate(np.concatenate(members[drawn])))
    measured = np.var(by_customer) / np.var(rows)
    deff = design_effect(y, t, stratum, ids)
    assert 1.4 < deff < 2.0  # the treated arm, used once, carries part of the variance
    assert deff == pytest.approx(measured, rel=0.25)
    assert (
        design_effect(y[: n_c * k : k], t[: n_c * k : k], stratum[: n_c * k : k], ids[::k][:n_c])
        == 1.0
    )


@pytest.mark.slow  # gradient boosting twice; the default linear prognosis is tested above
def test_boosted_prognostic_scores_track_the_outcome_as_well():
    data, p = _data(1_000, seed=1)
    plan = plan_strata(data, p, outcomes=["revenue"], strata=10, prognosis="boosted")
    untreated = plan.data.frame[plan.data.frame["treated"] == 0]
    assert np.corrcoef(untreated[prognosis_column("revenue")], untreated["revenue"])[0, 1] > 0.2
    with pytest.raises(InputError, match="prognosis must be"):
        plan_strata(data, p, outcomes=["revenue"], prognosis="forest")


def test_bad_strata_inputs_are_named():
    data, p = _data(500)
    with pytest.raises(InputError, match="propensity has"):
        plan_strata(data, p[:-1], outcomes=OUTCOMES)
    with pytest.raises(InputError, match="between 0 and 1"):
        plan_strata(data, np.r_[p[:-1], np.nan], outcomes=OUTCOMES)
    with pytest.raises(InputError, match="at least 2"):
        plan_strata(data, p, outcomes=OUTCOMES, strata=1)
    with pytest.raises(InputError, match="likelihood_scale must be in"):
        fit_gformula(data, "retention", likelihood_scale=0.0)
    with pytest.raises(InputError, match="not numeric confounders"):
        fit_gformula(data, "retention", cuts={"tier": [1.0]})
    with pytest.raises(InputError, match="causal.cells must be"):
        config_from_dict({"causal": {"cells": "bands"}})
    with pytest.raises(InputError, match="causal.strata must be"):
        config_from_dict({"causal": {"strata": 1}})
