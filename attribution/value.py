"""Money per posterior draw: a monthly cash-flow schedule, net value, ROI and payback.

Per draw, per segment and per arm ``a`` (control, treated) the models give five levels per
customer: ``p_active`` (share active at the horizon), ``revenue`` and ``cost_to_serve`` (summed
over the readout window of ``W`` months), and ``revenue_retained`` / ``cost_retained`` (the same
sums among the customers active at the horizon). From them, a schedule of months counted from
the start (month 0):

* window months ``k = 0 .. W-1``: ``margin x revenue_a x r_ak - cost_to_serve_a x c_ak``, where
  ``r_ak`` and ``c_ak`` spread the window's totals over its months in the shape observed for the
  arm (uniform when no shape is given);
* value-horizon months ``j = 1 .. H`` after the horizon: the arm's retained customers keep
  bringing what they brought per month in the window, net of their cost to serve,
  ``p_active_a x rho_a^j x (margin x revenue_retained_a - cost_retained_a) / W``, decaying with
  a monthly retention ``rho_a`` that depends on what the intervention's effect on churn does
  after the window (the experiment's design record says, ``churn_effect_after_window``):

  - ``"ends"`` (the default, for an effect on churn that is over by the window's end): both arms
    leave at the control arm's monthly retention ``rho = p_active_control ^ (1 / max(W - 1,
    1))`` (the share active at the horizon has lived through ``W - 1`` month ends): the effect
    on churn is not extrapolated past what the window showed.
  - ``"held"`` (an intervention that goes on, such as a support tier customers keep, or a
    one-off whose churn gap is still open at the window's end, such as the simulator's recovery
    gift): the
    churn gap of the window's end carries on, but how far is uncertain, and the interval says
    so. Each arm's own monthly retention over the window's last ``L = min(3, W - 1)`` month
    ends, ``(active_a[W-1] / active_a[W-1-L]) ^ (1 / L)``, is drawn from a Beta posterior of
    the active counts (:func:`late_survival`); each draw then takes a share ``phi ~ U(0, 1)``
    of the way from the "ends" rate to it, in log retention (:func:`held_survival`): the
    draws span from the gap ending with the window to it lasting at the window's end level.
    Why both ends: on simulated worlds (premium support, whose cut in churn lasts while it
    runs; its planted value after the window is what the simulator's customers do in the 12
    months after it), "ends" read the net value of a 10M-customer world 7.2 a customer too low
    and the arms' own late rates 5.3 too high (probably because churn keeps falling as
    customers age, which neither rate follows); on four 300k worlds the raw arms' value after
    the window came out 10 too low and 4 too high on average.

  These are the assumptions a reader must accept: customers the intervention saved behave
  afterwards like the arm's retained customers, and the churn effect after the window is the
  one the design record states.

The incremental flow (treated minus control) is discounted monthly from the start at the yearly
``discount_rate``. Net value = the sum of discounted flows minus the intervention's cost per
customer (paid in month 0); ROI = net value / cost; payback = the first month (1 = the start
month) from which the cumulative discounted flow covers the cost to the end of the schedule,
``inf`` when it does not within ``W + H`` months (so a draw pays back exactly when its net value
is >= 0). The overall row (``segment = "all"``) is the population-weighted sum of the
segment rows' flows and costs, draw by draw, so it agrees with them by construction.

Summaries give the mean, the interval of :data:`attribution.settings.INTERVAL`, P(> 0) and the
expected loss of rolling out (the mean of the losses, zero where a draw gains). Payback is
summarised as the payback month of the posterior-mean flow (NaN when that flow does not pay back
within the horizon), an interval over the draws (NaN where the quantile does not pay back) and
P(pays back within the horizon).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from attribution import cellmodel
from attribution.errors import InputError
from attribution.settings import INTERVAL, IntervalSetting, MoneySettings, payback_month

__all__ = [
    "LEVELS",
    "MoneySettings",
    "assumption",
    "cash_flows",
    "between",
    "ends_retention",
    "held_survival",
    "late_months",
    "late_retention",
    "late_survival",
    "money_draws",
    "payback_month",
    "summarize_money",
]

#: Per-customer levels per arm that money needs (see the module docstring).
LEVELS = ("p_active", "revenue", "cost_to_serve", "revenue_retained", "cost_retained")
#: The default money assumptions.
MONEY = MoneySettings()
#: Month ends at the window's end whose churn a "held" effect keeps (fewer in a shorter window).
LATE_MONTHS = 3
#: Money outcomes in a summary table, in order.
MONEY_OUTCOMES = ("net_value", "total_net_value", "roi", "payback_months")


def assumption(outcome: str) -> str:
    """What money assumes about an outcome the store does not measure, in words.

    >>> assumption("cost_to_serve")
    'net value assumes no change in cost to serve'
    """
    return f"net value assumes no change in {outcome.replace('_', ' ')}"


def _levels(ds: xr.Dataset | dict, role: str) -> dict[str, xr.DataArray]:
    missing = [v for v in LEVELS if v not in ds]
    if missing:
        raise InputError(f"{role} levels miss {missing}; money needs {list(LEVELS)}")
    return {
        v: xr.DataArray(ds[v]) if not isinstance(ds[v], xr.DataArray) else ds[v] for v in LEVELS
    }


def cash_flows(
    control: xr.Dataset | dict,
    treated: xr.Dataset | dict,
    *,
    window_months: int,
    settings: MoneySettings = MONEY,
    profile: xr.Dataset | None = None,
    survival: xr.Dataset | None = None,
) -> xr.Dataset:
    """Incremental monthly cash flow per customer (treated minus control), before discounting.

    Parameters
    ----------
    control, treated : xarray.Dataset or dict of DataArray
        The :data:`LEVELS` of each arm, any dims (typically (chain, draw, segment)).
    window_months : int
        ``W``, months in the readout window, the start month included.
    settings : MoneySettings
    profile : xarray.Dataset, optional
        ``revenue_share`` and ``cost_share`` with dims (role, [segment,] month), role in
        (``control``, ``treated``) and ``W`` months, each summing to 1 over month: how each
        arm's window totals fall on its months. Default: evenly.
    survival : xarray.Dataset, optional
        ``control`` and ``treated``: each arm's monthly retention after the window (dims
        broadcasting against the levels', e.g. from :func:`late_survival`): the churn effect is
        "held". Default: both arms leave at the control arm's window rate (it "ends").

    Returns
    -------
    xarray.Dataset
        ``flow`` (..., month) over ``W + H`` months and its parts ``window_margin``,
        ``window_cost`` (both over the window months, zero after) and ``after_horizon``.
    """
    W = int(window_months)
    if W < 1:
        raise InputError(f"window_months must be >= 1, got {window_months}")
    H = settings.value_horizon_months
    c, t = _levels(control, "control"), _levels(treated, "treated")
    months = np.arange(W + H)
    in_window = xr.DataArray((months < W).astype(float), dims="month", coords={"month": months})
    after = months - (W - 1)  # 1 .. H after the horizon
    after_da = xr.DataArray(np.where(after > 0, after, 0), dims="month", coords={"month": months})
    if profile is None:
        flat = xr.DataArray(np.full(W + H, 1.0 / W) * (months < W), dims="month",
                            coords={"month": months})  # fmt: skip
        shares = {(role, kind): flat for role in ("control", "treated") for kind in ("r", "c")}
    else:
        shares = {}
        for role in ("control", "treated"):
            for kind, var in (("r", "revenue_share"), ("c", "cost_share")):
                sh = profile[var].sel(role=role, drop=True)
                if sh.sizes["month"] != W:
                    raise InputError(f"profile has {sh.sizes['month']} months, the window {W}")
                sh = sh.assign_coords(month=np.arange(W)).reindex(month=months, fill_value=0.0)
                shares[role, kind] = sh
    m = settings.margin_rate

    def window(levels, role):
        margin = m * levels["revenue"] * shares[role, "r"]
        cost = levels["cost_to_serve"] * shares[role, "c"]
        return margin, cost

    if survival is None:  # both arms leave at the control arm's window rate after the horizon
        rho = ends_retention(c["p_active"], W)
        rates = {"control": rho, "treated": rho}
    else:  # each arm at its own late-window rate
        rates = {role: survival[role].clip(0.0, 1.0) for role in ("control", "treated")}

    def later(levels, role):
        p = levels["p_active"].clip(0.0, 1.0)
        per_month = (m * levels["revenue_retained"] - levels["cost_retained"]) / W
        return p * per_month * xr.where(after_da > 0, rates[role] ** after_da, 0.0)

    mt, ct = window(t, "treated")
    mc, cc = window(c, "control")
    window_margin = (mt - mc) * in_window
    window_cost = -(ct - cc) * in_window
    after_horizon = later(t, "treated") - later(c, "control")
    flow = window_margin + window_cost + after_horizon
    return xr.Dataset(
        {
            "flow": flow,
            "window_margin": window_margin,
            "window_cost": window_cost,
            "after_horizon": after_horizon,
        }
    )


def money_draws(
    control: xr.Dataset | dict,
    treated: xr.Dataset | dict,
    *,
    unit_cost: float | pd.Series,
    window_months: int,
    settings: MoneySettings = MONEY,
    weights: pd.Series | None = None,
    profile: xr.Dataset | None = None,
    survival: xr.Dataset | None = None,
) -> xr.Dataset:
    """Per-draw money per customer, by segment, from each arm's levels.

    Parameters
    ----------
    control, treated : xarray.Dataset or dict of DataArray
        The :data:`LEVELS` with dims (chain, draw, segment).
    unit_cost : float or Series indexed by segment
        Intervention cost per customer (per assigned customer for a randomized test, per
        treated customer observationally).
    window_months : int
        Months in the readout window.
    settings : MoneySettings
    weights : Series indexed by segment, optional
        Customers per segment; adds the segment ``"all"``: flows and costs weighted by them,
        draw by draw. Leave out when the levels already are a single overall segment.
    profile : xarray.Dataset, optional
        Monthly shape of the window totals (see :func:`cash_flows`).
    survival : xarray.Dataset, optional
        Each arm's monthly retention after the window (see :func:`cash_flows`).

    Returns
    -------
    xarray.Dataset
        ``flow`` (discounted, dims (chain, draw, segment, month)), ``cumulative``,
        ``window_margin``, ``window_cost``, ``after_horizon`` (discounted sums), ``cost``,
        ``net_value``, ``roi`` and ``payback_months`` (dims (chain, draw, segment)).

    Examples
    --------
    >>> lv = {"p_active": 0.8, "revenue": 100.0, "cost_to_serve": 10.0,
    ...       "revenue_retained": 110.0, "cost_retained": 11.0}
    >>> up = dict(lv, revenue=130.0)
    >>> ds = money_draws({k: xr.DataArray([[[v]]], dims=("chain", "draw", "segment"),
    ...                   coords={"segment": ["all"]}) for k, v in lv.items()},
    ...                  {k: xr.DataArray([[[v]]], dims=("chain", "draw", "segment"),
    ...                   coords={"segment": ["all"]}) for k, v in up.items()},
    ...                  unit_cost=5.0, window_months=1,
    ...                  settings=MoneySettings(margin_rate=0.5, value_horizon_months=0))
    >>> float(ds["net_value"].squeeze())  # 0.5 x 30 - 5
    10.0
    """
    flows = cash_flows(
        control,
        treated,
        window_months=window_months,
        settings=settings,
        profile=profile,
        survival=survival,
    )
    factors = xr.DataArray(
        settings.discount_factors(flows.sizes["month"]),
        dims="month",
        coords={"month": flows["month"]},
    )
    disc = flows * factors
    segments = [str(s) for s in disc.coords["segment"].values]
    cost = _by_segment(unit_cost, segments, "unit_cost")
    if weights is not None:
        w = _by_segment(weights, segments, "weights")
        if float(w.sum()) <= 0:
            raise InputError("weights must have a positive total")
        w = w / w.sum()
        overall = (disc * w).sum("segment").expand_dims(segment=["all"])
        disc = xr.concat([disc, overall], dim="segment")
        cost = xr.concat([cost, (cost * w).sum("segment").expand_dims(segment=["all"])], "segment")
    flow = disc["flow"].transpose(..., "month")
    cumulative = flow.cumsum("month")
    net = flow.sum("month") - cost
    roi = xr.where(cost > 0, net / cost.where(cost > 0), np.nan)
    payback = xr.apply_ufunc(payback_month, cumulative, cost, input_core_dims=[["month"], []])
    return xr.Dataset(
        {
            "flow": flow,
            "cumulative": cumulative,
            "window_margin": disc["window_margin"].sum("month"),
            "window_cost": disc["window_cost"].sum("month"),
            "after_horizon": disc["after_horizon"].sum("month"),
            "cost": cost,
            "net_value": net,
            "roi": roi,
            "payback_months": payback,
        }
    )


def summarize_money(
    draws: xr.Dataset,
    n_treated: pd.Series | None = None,
    interval: IntervalSetting = INTERVAL,
) -> pd.DataFrame:
    """Summaries of the money draws per segment: mean, interval, P(>0), expected loss.

    Parameters
    ----------
    draws : xarray.Dataset
        From :func:`money_draws`.
    n_treated : Series indexed by segment, optional
        Customers per segment the money is per; adds ``total_net_value`` rows (value x n).
    interval : IntervalSetting

    Returns
    -------
    pandas.DataFrame
        Columns outcome (net_value | total_net_value | roi | payback_months), segment, metric
        (``relative`` for ROI, else ``absolute``), mean, lo, hi, p_positive, expected_loss.
        ``payback_months``: mean is the payback month of the posterior-mean cash flow (NaN when
        it does not pay back within the horizon), lo and hi the quantiles of the draws' payback
        months (NaN where that quantile does not pay back), p_positive P(pays back).
    """
    lo_q, hi_q = interval.quantiles
    rows = []
    for segment in draws.coords["segment"].values:
        d = draws.sel(segment=segment)
        for var in MONEY_OUTCOMES:
            if var == "total_net_value":
                if n_treated is None or str(segment) not in n_treated.index:
                    continue
                x = d["net_value"].values.ravel() * float(n_treated[str(segment)])
            else:
                x = d[var].values.ravel()
            row = {"outcome": var, "segment": str(segment)}
            row["metric"] = "relative" if var == "roi" else "absolute"
            if var == "payback_months":
                if np.isnan(x).all():
                    continue  # no cost: nothing to pay back
                mean_cum = d["cumulative"].mean(("chain", "draw")).values
                cost = float(d["cost"].values.ravel()[0])
                point = float(payback_month(mean_cum, cost))
                qs = np.quantile(x, [lo_q, hi_q], method="inverted_cdf")
                row.update(
                    mean=point if np.isfinite(point) else np.nan,
                    lo=float(qs[0]) if np.isfinite(qs[0]) else np.nan,
                    hi=float(qs[1]) if np.isfinite(qs[1]) else np.nan,
                    p_positive=float(np.mean(np.isfinite(x))),
                    expected_loss=np.nan,
                )
            else:
                finite = x[np.isfinite(x)]
                if finite.size == 0:
                    continue
                lo, hi = cellmodel.interval(finite, interval)
                row.update(
                    mean=float(np.mean(finite)),
                    lo=lo,
                    hi=hi,
                    p_positive=float(np.mean(finite > 0)),
                    expected_loss=float(np.mean(np.maximum(0.0, -finite)))
                    if var != "roi"
                    else np.nan,
                )
            rows.append(row)
    return pd.DataFrame(
        rows,
        columns=["outcome", "segment", "metric", "mean", "lo", "hi", "p_positive", "expected_loss"],
    )


def payback_reason(window_months: int, settings: MoneySettings) -> str:
    """Plain words for a payback that did not happen within the schedule."""
    total = window_months + settings.value_horizon_months
    return (
        f"does not pay back within {total} months ({window_months}-month window + "
        f"{settings.value_horizon_months}-month value horizon)"
    )


def _by_segment(value: float | pd.Series, segments: list[str], name: str) -> xr.DataArray:
    if isinstance(value, pd.Series):
        value = value.copy()
        value.index = value.index.astype(str)
        missing = [s for s in segments if s not in value.index]
        if missing:
            raise InputError(f"{name} has no value for segment(s) {missing}")
        data = value.reindex(segments).to_numpy(dtype=float)
    else:
        data = np.full(len(segments), float(value))
    if np.any(~np.isfinite(data)) or np.any(data < 0):
        raise InputError(f"{name} must be finite and >= 0, got {data.tolist()}")
    return xr.DataArray(data, coords={"segment": segments}, dims="segment")


def window_profile(
    totals: pd.DataFrame, control: str, treated: str, segments: list[str], window_months: int
) -> xr.Dataset:
    """Each arm's monthly share of its window totals, per segment (for :func:`cash_flows`).

    Parameters
    ----------
    totals : pandas.DataFrame
        Columns segment, arm, period, revenue, cost_to_serve and optionally active
        (:func:`attribution.cells.monthly_totals`).
    control, treated : str
        The arms playing each role.
    segments : list of str
    window_months : int

    Returns
    -------
    xarray.Dataset
        ``revenue_share`` and ``cost_share``, dims (role, segment, month); a segment and arm with
        nothing in the window is spread evenly. With an ``active`` column also ``active``, the
        customers active in each month (for :func:`late_survival`).
    """
    months = sorted(pd.unique(totals["period"]))[:window_months] if len(totals) else []
    index = {m: i for i, m in enumerate(months)}
    out = {}
    columns = [("revenue_share", "revenue"), ("cost_share", "cost_to_serve")]
    if "active" in totals.columns:
        columns.append(("active", "active"))
    for var, col in columns:
        arr = np.zeros((2, len(segments), window_months))
        for r, arm in enumerate((control, treated)):
            sub = totals[totals["arm"] == arm]
            for s, seg in enumerate(segments):
                rows = sub[sub["segment"].astype(str) == seg]
                for period, value in zip(rows["period"], rows[col], strict=True):
                    if period in index:
                        arr[r, s, index[period]] += max(float(value), 0.0)
        if var != "active":
            total = arr.sum(axis=-1, keepdims=True)
            arr = np.where(total > 0, arr / np.where(total > 0, total, 1.0), 1.0 / window_months)
        out[var] = xr.DataArray(
            arr,
            dims=("role", "segment", "month"),
            coords={"role": ["control", "treated"], "segment": segments},
        )
    return xr.Dataset(out)


def late_survival(
    profile: xr.Dataset, like: xr.DataArray, *, seed: int = 0, months: int = LATE_MONTHS
) -> xr.Dataset:
    """Each arm's monthly retention over the window's last month ends, as posterior draws.

    Per role and segment, ``n`` customers active ``L = min(months, W - 1)`` months before the
    horizon month and ``k`` active in it (``k`` capped at ``n``: customers who come back are not
    counted twice) give a Beta(``k + 1/2``, ``n - k + 1/2``) posterior (Jeffreys prior) of the
    share kept over those ``L`` month ends; its ``1 / L``-th power is the monthly retention.
    The draws are independent of the models' (a small approximation: the horizon month's
    actives are also the retention model's data).

    Parameters
    ----------
    profile : xarray.Dataset
        From :func:`window_profile` with its ``active`` counts.
    like : xarray.DataArray
        Dims (..., segment) of the draws wanted, e.g. a level's (chain, draw, segment).
    seed : int
    months : int

    Returns
    -------
    xarray.Dataset
        ``control`` and ``treated`` with the dims of ``like``.

    Examples
    --------
    >>> prof = xr.Dataset({"active": (("role", "segment", "month"),
    ...                    [[[1000, 990, 980, 970]], [[1000, 995, 990, 985]]])},
    ...                   coords={"role": ["control", "treated"], "segment": ["all"]})
    >>> like = xr.DataArray(np.zeros((4, 500, 1)), dims=("chain", "draw", "segment"))
    >>> s = late_survival(prof, like)
    >>> round(float(s["control"].mean()), 3), round(float(s["treated"].mean()), 3)
    (0.99, 0.995)
    """
    n, k, L = _late_counts(profile, months)
    rng = np.random.default_rng([int(seed), 0x6C617465])  # "late": a stream of its own
    others = [d for d in like.dims if d != "segment"]
    shape = tuple(like.sizes[d] for d in others)
    segments = like.coords["segment"].values if "segment" in like.coords else n["segment"].values
    out = {}
    for role in ("control", "treated"):
        kr = k.sel(role=role).reindex(segment=segments).to_numpy().astype(float)
        nr = n.sel(role=role).reindex(segment=segments).to_numpy().astype(float)
        kept = rng.beta(kr + 0.5, nr - kr + 0.5, size=(*shape, len(kr)))
        out[role] = xr.DataArray(
            kept ** (1.0 / L),
            dims=(*others, "segment"),
            coords={d: like.coords[d] for d in others if d in like.coords} | {"segment": segments},
        )
    return xr.Dataset(out)


def _late_counts(profile: xr.Dataset, months: int) -> tuple[xr.DataArray, xr.DataArray, int]:
    """Active customers ``L`` months before the horizon month (``n``) and in it (``k <= n``)."""
    if "active" not in profile:
        raise InputError("the window profile has no active counts; late_survival needs them")
    active = profile["active"]
    W = active.sizes["month"]
    L = late_months(W, months)
    if L < 1:
        raise InputError(
            f"a {W}-month window has no month ends to read a churn rate after the window from"
        )
    n = active.isel(month=W - 1 - L).clip(min=0.0)
    k = np.minimum(active.isel(month=W - 1).clip(min=0.0), n)
    return n, k, L


def late_months(window_months: int, months: int = LATE_MONTHS) -> int:
    """Month ends at the window's end that late-window churn is read over: ``min(months, W - 1)``
    (0 for a one-month window)."""
    return min(int(months), int(window_months) - 1)


def late_retention(profile: xr.Dataset, months: int = LATE_MONTHS) -> xr.DataArray:
    """The point estimate of :func:`late_survival`: ``(k / n) ^ (1 / L)`` per role and segment
    (1 where no customer was active ``L`` months before the horizon)."""
    n, k, L = _late_counts(profile, months)
    return xr.where(n > 0, (k / n.where(n > 0, 1.0)) ** (1.0 / L), 1.0)


def held_survival(
    profile: xr.Dataset, control_p_active: xr.DataArray, window_months: int, *, seed: int = 0
) -> xr.Dataset:
    """Each arm's monthly retention after the window when its effect on churn is "held".

    Per draw, a share ``phi ~ U(0, 1)`` of the way (in log retention) from the rate both arms
    leave at when the effect "ends" (the control arm's window rate, ``p_active_control ^ (1 /
    max(W - 1, 1))``) to each arm's own late-window rate (:func:`late_survival`): how long the
    gap at the window's end lasts is not something the window shows, so the interval spans it.

    Parameters
    ----------
    profile : xarray.Dataset
        From :func:`window_profile` with its ``active`` counts.
    control_p_active : xarray.DataArray
        The control arm's share active at the horizon, dims (..., segment), e.g. (chain, draw,
        segment).
    window_months : int
    seed : int

    Returns
    -------
    xarray.Dataset
        ``control`` and ``treated`` with the dims of ``control_p_active``, for the ``survival``
        argument of :func:`cash_flows`.
    """
    own = late_survival(profile, control_p_active, seed=seed)
    ends = ends_retention(control_p_active, window_months)
    others = [d for d in control_p_active.dims if d != "segment"]
    rng = np.random.default_rng([int(seed), 0x68656C64])  # "held"
    phi = xr.DataArray(
        rng.uniform(size=tuple(control_p_active.sizes[d] for d in others)), dims=others
    )
    return xr.Dataset({role: between(ends, own[role], phi) for role in ("control", "treated")})


def ends_retention(p_active_control, window_months: int):
    """The monthly retention both arms leave at when the effect on churn "ends":
    ``p_active_control ^ (1 / max(W - 1, 1))`` (the share active at the horizon has lived
    through ``W - 1`` month ends). Works on floats, arrays and DataArrays.

    >>> round(float(ends_retention(0.8, 6)), 4)
    0.9564
    """
    return np.clip(p_active_control, 0.0, 1.0) ** (1.0 / max(int(window_months) - 1, 1))


def between(ends, own, share):
    """Monthly retention a ``share`` of the way from ``ends`` to ``own``, in log retention
    (the "held" span of :func:`held_survival`; ``share = 0.5`` is its middle).

    >>> round(float(between(0.9, 0.99, 0.5)), 4)
    0.9439
    """
    lo, hi = np.clip(ends, 1e-12, 1.0), np.clip(own, 1e-12, 1.0)
    return np.exp((1.0 - share) * np.log(lo) + share * np.log(hi))
