"""One observational question end to end: frame, graph, identification, overlap, estimates,
refutations, the Bayesian cell route and money (:func:`attribute`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import date

import duckdb
import numpy as np
import pandas as pd
import xarray as xr
from threadpoolctl import threadpool_limits

from attribution.causal.estimators import (
    Estimate,
    estimate,
    naive_draws,
    resampler,
    segment_groups,
)
from attribution.causal.graph import causal_graph, identify
from attribution.causal.propensity import overlap
from attribution.causal.refuters import refute
from attribution.causal.result import Attribution
from attribution.causal.sensitivity import money_sensitivity
from attribution.causal.strata import plan_strata
from attribution.causal.terms import REFUTERS, TREATED, outcome_list
from attribution.config import CausalSettings, Config
from attribution.errors import InputError
from attribution.observational import (
    OUTCOME_COLUMNS,
    ObservationalData,
    observational_frame,
)
from attribution.settings import IntervalSetting
from attribution.value import LEVELS, money_draws, summarize_money


def attribute(
    con: duckdb.DuckDBPyConnection,
    intervention: str | None = None,
    *,
    condition: str | None = None,
    outcome: str | Sequence[str],
    confounders: Sequence[str] | None = None,
    as_of: str | date | None = None,
    config: Config | None = None,
    horizon_months: int | None = None,
    segment: str | None = None,
    refuters: Sequence[str] | None = None,
    gformula: bool | None = None,
    doubly_robust: bool = False,
    compare_with: str = "eligible",
) -> Attribution:
    """Attribute outcomes to an untested CX treatment: every route side by side, with checks.

    Reads the customers (:func:`attribution.observational.observational_frame`), builds and
    identifies the graph, checks overlap (and trims), estimates with the naive difference,
    DoWhy's weighting and regression (bootstrap intervals) and, when available, the Bayesian
    standardization on cells, runs the refuters and turns the ATT draws into money.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
    intervention : str, optional
        A name in ``interventions``; or give ``condition``.
    condition : str, optional
        ``column=value`` on ``interactions`` (e.g. ``resolution=very_effective``).
    outcome : str or sequence of str
        ``retention``, ``revenue``, ``cost_to_serve``, or ``"all"``. Money rows need all three.
    confounders : sequence of str, optional
        The adjustment set; default ``config.causal.confounders`` or the module defaults.
    as_of : str or date, optional
        Month outcomes are measured from.
    config : Config, optional
        ``[causal]``, ``[money]``, ``[interval]`` and (for the cell route) ``[model]`` settings.
    horizon_months : int, optional
        Months in the outcome window; default to the last period.
    segment : str, optional
        A categorical confounder (e.g. ``tier``) to break effects and money down by.
    refuters : sequence of str, optional
        Default all of :data:`REFUTERS`; ``[]`` runs none.
    gformula : bool, optional
        Fit the cell route (:mod:`attribution.gformula`). Default (None): yes.
    doubly_robust : bool
        Add the cross-fitted AIPW estimates (:mod:`attribution.causal.aipw`), overall ATE and
        ATT per outcome. Default no (gradient-boosted outcome models per fold: about a minute
        on 50k customer-trials).
    compare_with : str
        ``"eligible"`` (default) or, for a condition, ``"other_events"``: the treated against
        the eligible customers with another ``interactions`` row in the month (see
        :func:`attribution.observational.observational_frame`).

    Returns
    -------
    Attribution

    Raises
    ------
    InputError
        Bad names, no treated or untreated customers, missing outcome values, or no overlap.
    """
    cfg = Config() if config is None else config
    if not isinstance(cfg, Config):
        raise InputError(f"config must be an attribution.config.Config, got {type(cfg).__name__}")
    cs: CausalSettings = cfg.causal
    outcomes = outcome_list(outcome)
    timings: dict[str, float] = {}
    began = time.perf_counter()
    chosen = confounders if confounders is not None else (list(cs.confounders) or None)
    wanted = None if chosen is None else [*chosen, *cs.instruments]
    if wanted is not None and cs.instruments and chosen is not None:
        both = sorted(set(chosen) & set(cs.instruments))
        if both:
            raise InputError(f"{both} declared both a confounder and an instrument")
    data = observational_frame(
        con,
        intervention,
        condition=condition,
        confounders=wanted,
        as_of=as_of,
        horizon_months=horizon_months,
        lookback_months=cs.lookback_months,
        compare_with=compare_with,
    )
    if cs.instruments:
        keep = [c for c in data.confounders if c not in cs.instruments]
        data = replace(
            data,
            confounders=keep,
            numeric=[c for c in data.numeric if c in keep],
            categorical=[c for c in data.categorical if c in keep],
        )
    notes = list(data.notes)
    data = _drop_constant(data, notes)
    timings["data"] = time.perf_counter() - began
    graphs = {
        o: causal_graph(
            data,
            o,
            instruments=cs.instruments,
            unobserved=cs.unobserved,
            descendants=cs.descendants,
        )
        for o in outcomes
    }
    ident = identify(data, graphs[outcomes[0]])
    result = Attribution(
        data=data,
        outcomes=outcomes,
        graphs=graphs,
        identification=ident,
        overlap=None,
        notes=notes,
        timings=timings,
        interval=cfg.interval,
        segment_by=segment,
    )
    segment_groups(data.frame, data, segment)  # an unusable segment fails before any fitting
    if not ident.identifiable:
        est = estimate_naive(
            data, outcomes, bootstrap=cs.bootstrap, seed=cs.seed, interval=cfg.interval
        )
        result.estimates = est
        return result

    # The matrices here are tall and narrow: BLAS threads only fight each other (measured: a
    # bootstrap took 45 s with default threads on a busy 2-core machine, 6 s with one).
    with threadpool_limits(limits=1, user_api="blas"):
        data, propensity = _dowhy_route(result, data, outcomes, segment, refuters, cs, cfg)
    t = time.perf_counter()
    if doubly_robust:
        from attribution.causal.aipw import aipw

        with threadpool_limits(limits=1, user_api="blas"):
            result.estimates += aipw(
                data,
                outcomes=outcomes,
                clip=(cs.overlap_low, cs.overlap_high),
                seed=cs.seed,
                interval=cfg.interval,
            )
        timings["aipw"] = time.perf_counter() - t
        t = time.perf_counter()
    use_gformula = True if gformula is None else gformula
    if use_gformula and data.pooled and cs.cells == "confounders":
        use_gformula = False
        notes.append(
            "The Bayesian cell route on confounder bands (causal.cells = 'confounders') is not "
            "fitted on pooled trials: its cells would count a customer who is a control in "
            "several trial months as several independent customers; propensity strata "
            "(causal.cells = 'propensity') account for it"
        )
    if use_gformula:
        _cell_route(result, data, propensity, outcomes, segment, cfg)
        timings["gformula"] = time.perf_counter() - t
    populations = result.populations
    result.estimates = [replace(e, population=populations[e.estimand]) for e in result.estimates]
    result.sensitivity = money_sensitivity(data, result.estimates, result.refutations)
    result.money = _money(result, cfg)
    return result


def _cell_route(result, data, propensity, outcomes, segment, cfg) -> None:
    """The Bayesian cell route (:mod:`attribution.gformula`) on propensity strata
    (:mod:`attribution.causal.strata`) or on confounder band combinations, into ``result``."""
    from attribution.gformula import fit_gformula

    cs = cfg.causal
    plan = None
    if cs.cells == "propensity":
        plan = plan_strata(
            data,
            propensity,
            outcomes=outcomes,
            segment=segment,
            strata=cs.strata or None,
            seed=cs.seed,
        )
        repeated = {o: d for o, d in plan.design_effects.items() if d > 1.0}
        if repeated:
            result.notes.append(
                "Cell route: customers repeat across the pooled trials; each customer-trial "
                "counts 1/design effect in its likelihood ("
                + ", ".join(f"{o} {d:.2f}" for o, d in repeated.items())
                + ")"
            )
    for o in outcomes:
        if plan is None:
            fit = fit_gformula(data, o, bands=cs.bands, segment=segment, config=cfg)
        else:
            cell_data, cuts = plan.for_outcome(o)
            fit = fit_gformula(
                cell_data,
                o,
                segment=segment,
                config=cfg,
                cuts=cuts,
                likelihood_scale=1.0 / plan.design_effects[o],
            )
            fit = replace(fit, basis=plan.basis(o, fit.n_cells))
        result.gformula[o] = fit
        result.estimates += _gformula_estimates(fit, o)


def _dowhy_route(
    result, data, outcomes, segment, refuters, cs, cfg
) -> tuple[ObservationalData, np.ndarray]:
    """Overlap (and trimming), DoWhy estimates and refutations, recorded into ``result``;
    returns the rows the estimates used and their propensity."""
    timings = result.timings
    t = time.perf_counter()
    ov = overlap(data, low=cs.overlap_low, high=cs.overlap_high, trim=cs.trim, seed=cs.seed)
    result.overlap = ov
    propensity = ov.propensity
    if cs.trim and ov.n_outside:
        inside = (propensity >= cs.overlap_low) & (propensity <= cs.overlap_high)
        data = replace(data, frame=data.frame.loc[inside].reset_index(drop=True))
        propensity = propensity[inside]
        result.data = data
        _check_arms(data)
    timings["overlap"] = time.perf_counter() - t

    t = time.perf_counter()
    result.estimates = estimate(
        data,
        propensity,
        outcomes=outcomes,
        segment=segment,
        bootstrap=cs.bootstrap,
        seed=cs.seed,
        interval=cfg.interval,
        clip=(cs.overlap_low, cs.overlap_high),
    )
    timings["dowhy"] = time.perf_counter() - t

    t = time.perf_counter()
    names = REFUTERS if refuters is None else tuple(refuters)
    for o in outcomes if names else []:
        reg = result.get("dowhy_regression", o, "ate")
        result.refutations += refute(
            data,
            o,
            half_width=reg.half_width,
            refuters=names,
            simulations=cs.refuter_simulations,
            subset_fraction=cs.subset_fraction,
            seed=cs.seed,
        )
    timings["refute"] = time.perf_counter() - t
    return data, propensity


def estimate_naive(
    data: ObservationalData,
    outcomes: Sequence[str],
    *,
    bootstrap: int = 200,
    seed: int = 0,
    interval: IntervalSetting | None = None,
) -> list[Estimate]:
    """The naive difference in means with a bootstrap interval (used when nothing is identified)."""
    interval = interval or IntervalSetting()
    T = data.frame[TREATED].to_numpy(dtype=float)
    Y = data.frame[list(OUTCOME_COLUMNS.values())].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    draws = np.empty((bootstrap, 3))
    resample = resampler(data.frame)
    for b in range(bootstrap):
        idx = resample(rng)
        draws[b] = naive_draws(T[idx], Y[idx])
    point = naive_draws(T, Y)
    q_lo, q_hi = interval.quantiles
    names = list(OUTCOME_COLUMNS)
    out = []
    for o in outcomes:
        j = names.index(o)
        d = draws[:, j]
        out.append(
            Estimate(
                "naive",
                o,
                "ate",
                float(point[j]),
                float(np.quantile(d, q_lo)),
                float(np.quantile(d, q_hi)),
                float(np.mean(d > 0)),
                int(T.sum()),
                int(len(T) - T.sum()),
                d.copy(),
            )
        )
    return out


def _gformula_estimates(fit, outcome: str) -> list[Estimate]:
    """The cell route's absolute effects as :class:`Estimate` rows, overall and per segment."""
    s = fit.summary()
    if "metric" in s:
        s = s[s["metric"] == "absolute"]
    draws_by_segment = {}
    for estimand in ("ate", "att"):
        try:
            arr = fit.effect_draws(estimand, "absolute")
            for seg in arr.coords["segment"].values:
                draws_by_segment[(estimand, str(seg))] = arr.sel(segment=seg).values.ravel()
        except (AttributeError, KeyError, ValueError):
            draws_by_segment[(estimand, "all")] = np.asarray(fit.draws[estimand]).ravel()
    out = []
    for r in s.to_dict(orient="records"):
        segment = str(r.get("segment", "all"))
        key = (r["estimand"], segment)
        if key not in draws_by_segment:
            continue
        out.append(
            Estimate(
                estimator="bayes_gformula",
                outcome=outcome,
                estimand=r["estimand"],
                mean=float(r["mean"]),
                lo=float(r["lo"]),
                hi=float(r["hi"]),
                p_positive=float(r["p_positive"]),
                n_treated=int(r.get("n_treated", 0)),
                n_control=int(r.get("n_control", 0)),
                draws=np.asarray(draws_by_segment[key], dtype=float),
                segment_by="all" if segment == "all" else str(r.get("segment_by", "segment")),
                segment=segment,
            )
        )
    return out


def _money(result: Attribution, cfg: Config) -> pd.DataFrame:
    """Net value per treated customer from each estimator's ATT draws, overall and per segment.

    The same formula as a randomized readout (:func:`attribution.value.money_draws`), valued
    with the treated customers' own levels: their observed retention, revenue and cost-to-serve
    (and those among the retained) are the treated arm; the treated arm minus the ATT draws is
    the untreated arm. What the untreated arm's retained customers would have spent is its
    revenue x the share of revenue that retained customers bring among untreated customers.
    Window flows are spread evenly over the months. The overall row is the treated-weighted sum
    of the segment rows, draw by draw; needs all three outcomes.
    """
    if set(result.outcomes) != set(OUTCOME_COLUMNS):
        return pd.DataFrame()
    data = result.data
    frame = data.frame
    window = data.horizon_months
    tables = []
    for estimator in ("dowhy_psw", "bayes_gformula"):
        found = [e for e in result.estimates if e.estimator == estimator and e.estimand == "att"]
        have = [
            seg
            for seg in dict.fromkeys(e.segment for e in found)
            if all(any(e.segment == seg and e.outcome == o for e in found) for o in OUTCOME_COLUMNS)
        ]
        segments = [seg for seg in have if seg != "all"] or [seg for seg in have if seg == "all"]
        if not segments:
            continue
        n = min(len(e.draws) for e in found if e.segment in segments)
        treated_levels, control_levels, n_treated, n_control = {}, {}, {}, {}
        for seg in segments:
            rows = frame if seg == "all" else frame[frame[result.segment_by].astype(str) == seg]
            tr, un = rows[rows[TREATED] == 1], rows[rows[TREATED] == 0]
            n_treated[seg], n_control[seg] = len(tr), len(un)

            def att(outcome: str, seg=seg, found=found, n=n) -> np.ndarray:
                e = next(e for e in found if e.outcome == outcome and e.segment == seg)
                return np.asarray(e.draws[:n], dtype=float)

            kept = tr["retained"] == 1
            p1, r1, c1 = (float(tr[c].mean()) for c in ("retained", "revenue", "cost_to_serve"))
            t_lv = {
                "p_active": p1,
                "revenue": r1,
                "cost_to_serve": c1,
                "revenue_retained": float(tr.loc[kept, "revenue"].mean()) if kept.any() else 0.0,
                "cost_retained": float(tr.loc[kept, "cost_to_serve"].mean()) if kept.any() else 0.0,
            }
            p0 = np.clip(p1 - att("retention"), 1e-9, 1.0)
            r0 = np.maximum(r1 - att("revenue"), 0.0)
            c0 = np.maximum(c1 - att("cost_to_serve"), 0.0)
            share_r, share_c = (_retained_share(un, col) for col in ("revenue", "cost_to_serve"))
            c_lv = {
                "p_active": p0,
                "revenue": r0,
                "cost_to_serve": c0,
                "revenue_retained": share_r * r0 / p0,
                "cost_retained": share_c * c0 / p0,
            }
            treated_levels[seg] = {k: np.full(n, v) for k, v in t_lv.items()}
            control_levels[seg] = c_lv

        def stack(levels: dict, segments=segments) -> xr.Dataset:
            return xr.Dataset(
                {
                    k: xr.DataArray(
                        np.stack([levels[seg][k] for seg in segments], axis=-1)[None],
                        dims=("chain", "draw", "segment"),
                        coords={"segment": segments},
                    )
                    for k in LEVELS
                }
            )

        weights = pd.Series(n_treated) if segments != ["all"] else None
        draws = money_draws(
            stack(control_levels),
            stack(treated_levels),
            unit_cost=data.unit_cost,
            window_months=window,
            settings=cfg.money,
            weights=weights,
        )
        if weights is not None:
            n_treated["all"] = int(sum(n_treated.values()))
            n_control["all"] = int(sum(n_control.values()))
        table = summarize_money(draws, n_treated=pd.Series(n_treated), interval=cfg.interval)
        table["estimator"] = estimator
        table["n_treated"] = table["segment"].map(n_treated)
        table["n_control"] = table["segment"].map(n_control)
        tables.append(table)
    if not tables:
        return pd.DataFrame()
    if data.unit_cost == 0:
        result.notes.append("no intervention cost is known: net value assumes it cost nothing")
    return pd.concat(tables, ignore_index=True)


def _retained_share(rows: pd.DataFrame, col: str) -> float:
    """Share of a value that customers retained at the horizon bring (1 when nothing is spent)."""
    total = float(rows[col].sum())
    if total <= 0:
        return 1.0
    return float(rows.loc[rows["retained"] == 1, col].sum()) / total


def _drop_constant(data: ObservationalData, notes: list[str]) -> ObservationalData:
    """Leave out confounders with one value among these customers (they adjust for nothing)."""
    const = [c for c in data.confounders if data.frame[c].nunique() <= 1]
    if not const:
        return data
    notes.append(
        f"confounder(s) {', '.join(const)} take a single value here and adjust for nothing: "
        "left out"
    )
    keep = [c for c in data.confounders if c not in const]
    if not keep:
        raise InputError("every confounder takes a single value: there is nothing to adjust for")
    return replace(
        data,
        frame=data.frame.drop(columns=const),
        confounders=keep,
        numeric=[c for c in data.numeric if c in keep],
        categorical=[c for c in data.categorical if c in keep],
    )


def _check_arms(data: ObservationalData) -> None:
    if data.n_treated == 0 or data.n_untreated == 0:
        who = "treated" if data.n_treated == 0 else "untreated"
        raise InputError(f"{data.treatment}: no {who} customers are left after trimming")
