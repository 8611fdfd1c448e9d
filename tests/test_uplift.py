"""The uplift models: exact cell likelihoods, compile reuse, the gate and bad input.

Recovery of the simulator's planted effects through the whole readout lives in
tests/test_readout.py; the 20-seed coverage sweep is in the slow suite below.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pymc as pm
import pytest

from attribution import uplift
from attribution.diagnostics import DiagnosticsWarning
from attribution.errors import InputError

SEGMENTS = ("bronze", "silver", "gold")
ARMS = ("control", "treatment", "double")


def _rows(seed: int, n: int = 3000, arms=ARMS, bands: int = 3) -> pd.DataFrame:
    """Individual customers with a segment, pre-period band, arm, retention and two hurdles."""
    rng = np.random.default_rng(seed)
    seg = rng.choice(SEGMENTS, n)
    arm = rng.choice(arms, n)
    band = rng.integers(0, bands, n)
    lift = np.where(arm == "control", 0.0, 0.4)
    active = rng.random(n) < 1 / (1 + np.exp(-(0.3 + 0.2 * band + lift)))
    out = pd.DataFrame({"tier": seg, "pre_band": band, "arm": arm, "active": active})
    for family, median in (("revenue", 60.0), ("cost_to_serve", 12.0)):
        positive = rng.random(n) < 0.6 + 0.1 * (arm != "control")
        out[family] = np.where(positive, median * np.exp(rng.normal(0.1 * band, 0.9, n)), 0.0)
    return out


def _cells(rows: pd.DataFrame, by=("tier", "pre_band", "arm")) -> pd.DataFrame:
    """Sufficient statistics per cell, the same columns attribution.cells.cells writes."""
    frame = rows.assign(n=1, n_active=rows["active"].astype(int))
    for f in ("revenue", "cost_to_serve"):
        pos = frame[f] > 0
        log = np.log(frame[f].where(pos, 1.0))
        frame[f"{f}_npos"] = pos.astype(int)
        frame[f"{f}_sum"] = frame[f]
        frame[f"{f}_sum2"] = frame[f] ** 2
        frame[f"{f}_sumlog"] = log.where(pos, 0.0)
        frame[f"{f}_sumlog2"] = (log**2).where(pos, 0.0)
    stats = [c for c in frame.columns if c.startswith(("n", "revenue_", "cost_to_serve_"))]
    return frame.groupby(list(by), as_index=False)[stats].sum()


def _random_point(model: pm.Model, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    point = model.initial_point()
    return {k: v + rng.normal(0.0, 0.7, np.shape(v)) for k, v in point.items()}


def _cell_and_row_logp(outcome: str, seed: int, clustered: bool = False) -> tuple[float, float]:
    rows = _rows(seed)
    if clustered:  # seven branches; the likelihood must hold at any parameter point
        rows["branch"] = np.random.default_rng(seed + 100).choice([f"B{i}" for i in range(7)], 3000)
        c = uplift._prepare(
            _cells(rows, by=("tier", "pre_band", "arm", "branch")), "tier", outcome, "branch"
        )
    else:
        c = uplift._prepare(_cells(rows), "tier", outcome)
    priors = uplift.LogitPriors() if outcome == "retention" else uplift.SpendPriors()
    model, tensors = uplift._build_model(c, priors)
    spend = ["loglik_positive", "loglik_values"]
    names = ["loglik_active"] if outcome == "retention" else spend
    outs = [model[n] for n in names] + [tensors[k] for k in sorted(tensors)]
    outs = model.replace_rvs_by_values(outs)
    values = model.compile_fn(outs, inputs=model.value_vars, point_fn=True)(
        _random_point(model, seed)
    )
    cell_logp = float(sum(values[: len(names)]))
    per_cell = dict(zip(sorted(tensors), values[len(names) :], strict=True))

    # The same parameters, evaluated customer by customer with PyMC's own distributions.
    s = rows["tier"].map({v: i for i, v in enumerate(c.segments)}).to_numpy()
    b = rows["pre_band"].map({int(v): i for i, v in enumerate(c.bands)}).to_numpy()
    a = rows["arm"].map({v: i for i, v in enumerate(c.arms)}).to_numpy()
    idx = (s, b, a)
    if clustered:
        idx = (s, b, a, rows["branch"].map({v: i for i, v in enumerate(c.clusters)}).to_numpy())
    eta = per_cell["eta"][idx]
    if outcome == "retention":
        row_logp = pm.logp(pm.Bernoulli.dist(logit_p=eta), rows["active"].astype(int)).sum()
        return cell_logp, float(row_logp.eval())
    y = rows[outcome].to_numpy()
    pos = y > 0
    row_logp = pm.logp(pm.Bernoulli.dist(logit_p=eta), pos.astype(int)).sum()
    mean, sd = per_cell["mean"][idx][pos], per_cell["sd"][idx][pos]
    row_logp += pm.logp(pm.Normal.dist(mu=mean, sigma=sd), y[pos]).sum()
    return cell_logp, float(row_logp.eval())


@pytest.mark.parametrize("outcome", ["retention", "revenue", "cost_to_serve"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cell_likelihood_equals_the_row_likelihood(outcome, seed):
    cell, row = _cell_and_row_logp(outcome, seed)
    assert np.isfinite(cell)
    assert abs(cell - row) / abs(row) < 1e-6


@pytest.mark.parametrize("outcome", ["retention", "revenue"])
def test_cell_likelihood_with_a_cluster_level_equals_the_row_likelihood(outcome):
    cell, row = _cell_and_row_logp(outcome, 5, clustered=True)
    assert np.isfinite(cell)
    assert abs(cell - row) / abs(row) < 1e-6


def test_clustered_cells_split_the_plain_cells_and_weigh_clusters_by_their_customers():
    rows = _rows(6, arms=("control", "treatment"))
    rows["branch"] = np.where(rows.index % 3 == 0, "north", "south")
    frame = _cells(rows, by=("tier", "pre_band", "arm", "branch"))
    c = uplift._prepare(frame, "tier", "retention", cluster="branch")
    plain = uplift._prepare(_cells(rows), "tier", "retention")
    assert c.clusters == ["north", "south"] and c.cluster_by == "branch"
    np.testing.assert_array_equal(c.cluster_stats["n"].sum(axis=3), plain.stats["n"])
    w = c.cluster_weights()
    assert w.shape == (3, 3, 2) and np.allclose(w.sum(axis=2), 1.0)
    north = rows[(rows.tier == c.segments[0]) & (rows.pre_band == 0)]
    assert w[0, 0, 0] == pytest.approx((north.branch == "north").mean())
    padded = uplift._pad(c)
    assert len(padded.clusters) == 8 and padded.cluster_stats["n"][..., 2:].sum() == 0
    with pytest.raises(InputError, match="cluster column 'shop' not in cells"):
        uplift._prepare(frame, "tier", "retention", cluster="shop")
    with pytest.raises(InputError, match="cannot be a segment"):
        uplift._prepare(frame, "branch", "retention", cluster="branch")


def test_cells_with_one_segment_and_no_bands_are_exact_too():
    rows = _rows(4, arms=("control", "treatment"), bands=1)
    frame = _cells(rows, by=("tier", "arm")).assign(tier="everyone")
    c = uplift._prepare(frame, "tier", "retention")
    assert c.segments == ["everyone"] and c.bands == ["all"]
    assert c.stats["n"].sum() == len(rows)
    assert c.stats["n_active"].sum() == rows["active"].sum()


def test_one_to_four_segments_and_bands_share_one_padded_structure_of_empty_cells():
    rows = _rows(4, arms=("control", "treatment"), bands=3)
    one = uplift._prepare(_cells(rows, by=("tier", "arm")).assign(tier="x"), "tier", "retention")
    full = uplift._prepare(_cells(rows), "tier", "retention")
    keys = {uplift._structure_key(uplift._pad(c), uplift.LogitPriors()) for c in (one, full)}
    assert len(keys) == 1 and next(iter(keys))[1:3] == (4, 4)
    padded = uplift._pad(one)
    assert padded.stats["n"].shape == (4, 4, 2)
    # the customers stay in the one real cell pair; padding holds no one
    assert padded.stats["n"][0, 0].sum() == len(rows) == padded.stats["n"].sum()


# ------------------------------------------------------------------------------------------
# Fitting: planted effects, compile reuse, the gate
# ------------------------------------------------------------------------------------------
def _world(seed: int, n: int, segments=SEGMENTS, lift=0.05) -> tuple[pd.DataFrame, dict]:
    """Cells of a randomized test with a known retention lift per segment (probability scale)."""
    rng = np.random.default_rng(seed)
    base = dict(zip(segments, np.linspace(0.55, 0.8, len(segments)), strict=True))
    rows = []
    truth = {}
    for s in segments:
        m = n // len(segments)
        treated = rng.random(m) < 0.5
        p = base[s] + lift * treated
        active = rng.random(m) < p
        truth[s] = lift
        rows.append(pd.DataFrame({"tier": s, "arm": np.where(treated, "treatment", "control"),
                                  "active": active, "pre_band": 0}))  # fmt: skip
    frame = pd.concat(rows, ignore_index=True)
    # Retained customers spend a lognormal amount with mean 50 (cost: mean 5); others nothing.
    amount = np.exp(rng.normal(-0.125, 0.5, len(frame)))
    frame["revenue"] = np.where(frame["active"], 50.0 * amount, 0.0)
    frame["cost_to_serve"] = np.where(frame["active"], 5.0 * amount[::-1], 0.0)
    return _cells(frame, by=("tier", "arm")), truth


@pytest.fixture(scope="module")
def retention_fit():
    frame, truth = _world(11, 40_000)
    return uplift.RetentionUplift(intervention="recovery gift", seed=5).fit(frame, "tier"), truth


def test_retention_fit_recovers_a_planted_lift_and_passes_the_gate(retention_fit):
    model, truth = retention_fit
    assert model.diagnostics_.passed, model.diagnostics_.reasons
    eff = model.summary()
    absolute = eff[eff.metric == "absolute"].set_index("segment")
    for seg, lift in [*truth.items(), ("all", 0.05)]:
        assert absolute.loc[seg, "lo"] < lift < absolute.loc[seg, "hi"], seg
    assert absolute.loc["all", "p_positive"] > 0.99
    assert set(absolute.index) == {*SEGMENTS, "all"}
    assert (absolute["n_treated"] > 0).all() and (absolute["n_control"] > 0).all()
    draws = model.effect_draws("absolute")
    assert draws.dims == ("chain", "draw", "segment")
    assert "raised retention by" in model.describe()
    # the plot draws exactly the summary's rows: segments then the overall effect, in pp
    (ax,) = model.plot().axes
    (bars,) = ax.containers
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(ticks[:-1]) == sorted(SEGMENTS) and ticks[-1] == "all"
    drawn = absolute.loc[ticks, "mean"].to_numpy(dtype=float)
    np.testing.assert_allclose(bars.lines[0].get_xdata(), 100 * drawn)


def test_summary_uses_the_interval_setting(retention_fit):
    model, _ = retention_fit
    all_abs = model.summary().query("segment == 'all' and metric == 'absolute'").iloc[0]
    draws = model.effect_draws("absolute").sel(segment="all").to_numpy().ravel()
    assert all_abs["lo"] == pytest.approx(np.quantile(draws, 0.05))
    assert all_abs["hi"] == pytest.approx(np.quantile(draws, 0.95))
    assert all_abs["p_positive"] == pytest.approx((draws > 0).mean())


def test_same_structure_reuses_the_compiled_model(retention_fit):
    first, _ = retention_fit
    before, fits = uplift.compile_count(), uplift.fit_count()
    frame, _ = _world(12, 20_000, segments=("north", "south", "east", "west"), lift=0.0)
    again = uplift.RetentionUplift(seed=6).fit(frame, "tier")
    assert uplift.compile_count() == before and uplift.fit_count() == fits + 1
    assert not again.compiled_ and again.timings_["compile_s"] == 0.0
    assert again.cache_ == "memory"
    assert again.segments_ == ["east", "north", "south", "west"]
    assert first.segments_ == sorted(SEGMENTS)


def test_revenue_and_cost_to_serve_share_one_compiled_spend_model():
    frame, _ = _world(13, 8_000)
    before = uplift.compile_count()
    revenue = uplift.SpendUplift(family="revenue", seed=1).fit(frame, "tier")
    cost = uplift.SpendUplift(family="cost_to_serve", seed=1).fit(frame, "tier")
    assert uplift.compile_count() - before == (1 if revenue.compiled_ else 0)
    assert not cost.compiled_
    rev = revenue.summary().query("segment == 'all' and metric == 'absolute'").iloc[0]
    # Retained customers spend 50 on average and the lift is 5 pp: 2.5 per customer.
    assert rev["lo"] < 2.5 < rev["hi"]
    assert cost.summary()["outcome"].eq("cost_to_serve").all()


def test_too_few_draws_fail_the_gate_with_reasons():
    frame, _ = _world(14, 4_000)
    with pytest.warns(DiagnosticsWarning, match="failed the diagnostics gate"):
        model = uplift.RetentionUplift(draws=30, tune=30, chains=2, seed=1).fit(frame, "tier")
    assert not model.diagnostics_.passed
    assert any("ESS" in r for r in model.diagnostics_.reasons)
    assert "failed the gate" in model.diagnostics_.describe()


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------
@pytest.fixture
def good_cells():
    return _cells(_rows(7, n=600, arms=("control", "treatment"), bands=1), by=("tier", "arm"))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: f.assign(arm="treatment"), "no 'control' arm in cells"),
        (lambda f: f[f.arm == "control"], "only the 'control' arm"),
        (
            lambda f: f.assign(n=np.where(f.arm == "treatment", 0, f.n), n_active=0),
            r"arm\(s\) \['treatment'\] have no customers",
        ),  # fmt: skip
        (lambda f: f.drop(columns="n_active"), r"missing column\(s\) \['n_active'\]"),
        (lambda f: f.assign(n_active=f.n + 1), "n_active > n"),
        (lambda f: f.assign(n=-f.n), "negative count"),
        (lambda f: f.assign(tier="all"), "reserved for the overall effect"),
        (lambda f: f.iloc[0:0], "cells is empty"),
    ],
)
def test_bad_cells_are_refused_before_any_sampling(good_cells, change, message):
    before = uplift.compile_count()
    with pytest.raises(InputError, match=message):
        uplift.RetentionUplift().fit(change(good_cells.copy()), "tier")
    assert uplift.compile_count() == before


def test_bad_settings_and_segment_columns_are_named(good_cells):
    with pytest.raises(InputError, match=r"segment column\(s\) \['colour'\] not in cells"):
        uplift.RetentionUplift().fit(good_cells, "colour")
    with pytest.raises(InputError, match=r"sampler must be one of \['nutpie', 'pymc'\]"):
        uplift.RetentionUplift(sampler="stan").fit(good_cells, "tier")
    with pytest.raises(InputError, match="draws must be a whole number >= 1"):
        uplift.RetentionUplift(draws=0).fit(good_cells, "tier")
    with pytest.raises(InputError, match="family must be one of"):
        uplift.SpendUplift(family="margin").fit(good_cells, "tier")
    with pytest.raises(InputError, match="not fitted yet"):
        uplift.RetentionUplift().summary()


# ------------------------------------------------------------------------------------------
# Slow: interval coverage over many seeds
# ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ninety_percent_intervals_cover_the_truth_80_to_98_percent_of_the_time():
    """20 independent worlds, 3 segments + overall each: 80 intervals per outcome."""
    hits = {"retention": [], "revenue": []}
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiagnosticsWarning)  # every fit must pass the gate
        for seed in range(20):
            frame, truth = _world(100 + seed, 6_000, lift=0.04)
            ret = uplift.RetentionUplift(seed=seed).fit(frame, "tier").summary()
            rev = uplift.SpendUplift(family="revenue", seed=seed).fit(frame, "tier").summary()
            for name, eff, scale in (("retention", ret, 1.0), ("revenue", rev, 50.0)):
                absolute = eff[eff.metric == "absolute"].set_index("segment")
                for seg, lift in [*truth.items(), ("all", 0.04)]:
                    lo, hi = absolute.loc[seg, ["lo", "hi"]]
                    hits[name].append(lo <= lift * scale <= hi)
    for name, h in hits.items():
        assert 0.80 <= np.mean(h) <= 0.98, (name, np.mean(h))
