"""Turn per-draw effects into money: incremental margin, net value, ROI, payback, expected loss.

Per posterior draw and per treated customer::

    retained value = d_retention x margin_rate x remaining value of a retained customer
    spend value    = d_revenue x margin_rate
    net value      = retained value + spend value - d_cost_to_serve - unit cost
    ROI            = net value / unit cost
    payback months = unit cost / (monthly incremental margin), when that margin is positive

``d_revenue`` and ``d_cost_to_serve`` are the effects summed over the readout window;
``d_retention`` is the effect on being active at the horizon, and each extra retained customer is
worth the discounted margin they bring after the horizon. Net value, ROI and payback are
distributions: summaries report the mean, the interval from :data:`attribution.settings.INTERVAL`,
P(net value > 0) and the expected loss of rolling out (the mean of the losses, zero where the draw
gains). Effect draws from separately fitted models are combined draw by draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from attribution.errors import InputError
from attribution.settings import INTERVAL, IntervalSetting


@dataclass(frozen=True)
class MoneySettings:
    """Assumptions that turn effects into money; all come from configuration.

    Parameters
    ----------
    margin_rate : float
        Gross margin on revenue, in [0, 1]. Default 0.30.
    value_horizon_months : int
        Months after the readout horizon that a retained customer is valued over. Default 12.
    discount_rate : float
        Annual discount rate applied to that future margin. Default 0.10.
    """

    margin_rate: float = 0.30
    value_horizon_months: int = 12
    discount_rate: float = 0.10

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin_rate <= 1.0:
            raise InputError(f"margin_rate must be in [0, 1], got {self.margin_rate}")
        if self.value_horizon_months < 0:
            raise InputError(f"value_horizon_months must be >= 0, got {self.value_horizon_months}")
        if not -0.99 < self.discount_rate < 10:
            raise InputError(
                f"discount_rate must be a yearly rate such as 0.1, got {self.discount_rate}"
            )


def remaining_value(
    monthly_revenue: float | np.ndarray,
    monthly_retention: float | np.ndarray,
    settings: MoneySettings = MoneySettings(),
) -> float | np.ndarray:
    """Discounted revenue a customer still active at the horizon brings over the value horizon.

    Sum over months t = 1..H of revenue x retention^t / (1 + monthly discount)^t.

    Examples
    --------
    >>> round(float(remaining_value(10.0, 1.0, MoneySettings(value_horizon_months=2,
    ...                                                         discount_rate=0.0))), 6)
    20.0
    """
    monthly_discount = (1.0 + settings.discount_rate) ** (1.0 / 12.0) - 1.0
    t = np.arange(1, settings.value_horizon_months + 1)
    survival = np.power.outer(np.asarray(monthly_retention, dtype=float), t)
    factor = (survival / (1.0 + monthly_discount) ** t).sum(axis=-1)
    return np.asarray(monthly_revenue, dtype=float) * factor


def money_draws(
    d_retention: xr.DataArray,
    d_revenue: xr.DataArray,
    d_cost: xr.DataArray,
    *,
    unit_cost: float | pd.Series,
    retained_value: float | pd.Series,
    window_months: int,
    settings: MoneySettings = MoneySettings(),
) -> xr.Dataset:
    """Per-draw money per treated customer, by segment.

    Parameters
    ----------
    d_retention, d_revenue, d_cost : xarray.DataArray
        Absolute effect draws with dims (chain, draw, segment): proportion points of retention
        at the horizon; revenue and cost-to-serve per customer summed over the window.
    unit_cost : float or Series indexed by segment
        Intervention cost per treated customer.
    retained_value : float or Series indexed by segment
        Revenue an extra retained customer brings after the horizon (:func:`remaining_value`).
    window_months : int
        Months in the readout window, for payback.
    settings : MoneySettings

    Returns
    -------
    xarray.Dataset
        ``retained_margin``, ``spend_margin``, ``cost_saved``, ``net_value``, ``roi`` and
        ``payback_months`` with dims (chain, draw, segment).
    """
    if window_months < 1:
        raise InputError(f"window_months must be >= 1, got {window_months}")
    arrays = xr.align(d_retention, d_revenue, d_cost, join="exact")
    segments = arrays[0].coords["segment"].values
    cost = _by_segment(unit_cost, segments, "unit_cost")
    value = _by_segment(retained_value, segments, "retained_value")
    retained_margin = arrays[0] * settings.margin_rate * value
    spend_margin = arrays[1] * settings.margin_rate
    cost_saved = -arrays[2]
    net = retained_margin + spend_margin + cost_saved - cost
    gross = retained_margin + spend_margin + cost_saved
    roi = xr.where(cost > 0, net / cost.where(cost > 0), np.nan)
    monthly = gross / window_months
    payback = xr.where(monthly > 0, cost / monthly.where(monthly > 0), np.inf)
    return xr.Dataset(
        {
            "retained_margin": retained_margin,
            "spend_margin": spend_margin,
            "cost_saved": cost_saved,
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
        Treated customers per segment; adds ``total_net_value`` rows (per-customer value x n).
    interval : IntervalSetting

    Returns
    -------
    pandas.DataFrame
        Columns outcome (net_value | roi | payback_months | total_net_value), segment, metric
        (``relative`` for ROI, else ``absolute``), mean, lo, hi, p_positive, expected_loss.
        Money is per treated customer except ``total_net_value``. For ``payback_months`` the
        mean column holds the median and the interval is over the draws that pay back at all;
        ``p_positive`` is then the probability that it pays back.
    """
    lo_q, hi_q = interval.quantiles
    rows = []
    variables = ["net_value", "roi", "payback_months"]
    for segment in draws.coords["segment"].values:
        for var in variables + (["total_net_value"] if n_treated is not None else []):
            if var == "total_net_value":
                x = draws["net_value"].sel(segment=segment).values.ravel() * float(
                    n_treated[segment]
                )
            else:
                x = draws[var].sel(segment=segment).values.ravel()
            finite = x[np.isfinite(x)]
            if finite.size == 0:
                continue
            rows.append(
                {
                    "outcome": var,
                    "segment": str(segment),
                    "metric": "relative" if var == "roi" else "absolute",
                    "mean": float(np.mean(finite))
                    if var != "payback_months"
                    else float(np.median(finite)),
                    "lo": float(np.quantile(finite, lo_q)),
                    "hi": float(np.quantile(finite, hi_q)),
                    "p_positive": float(np.mean(x > 0))
                    if var != "payback_months"
                    else float(np.mean(np.isfinite(x))),
                    "expected_loss": float(np.mean(np.maximum(0.0, -x)))
                    if var in ("net_value", "total_net_value")
                    else np.nan,
                }
            )
    return pd.DataFrame(rows)


def _by_segment(value: float | pd.Series, segments: np.ndarray, name: str) -> xr.DataArray:
    if isinstance(value, pd.Series):
        missing = [str(s) for s in segments if s not in value.index]
        if missing:
            raise InputError(f"{name} has no value for segment(s) {missing}")
        data = value.reindex(segments).to_numpy(dtype=float)
    else:
        data = np.full(len(segments), float(value))
    if np.any(~np.isfinite(data)) or np.any(data < 0):
        raise InputError(f"{name} must be finite and >= 0, got {data.tolist()}")
    return xr.DataArray(data, coords={"segment": segments}, dims="segment")
