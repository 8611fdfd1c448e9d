"""One joint posterior of retention, revenue and cost-to-serve from separate cell fits.

Retention status at the horizon is a cell dimension of the spend fits: revenue and cost-to-serve
are modelled conditional on it. Because

    p(active, revenue, cost) = p(active) p(revenue | active) p(cost | active)

and the three models have separate parameters and priors, their posteriors are independent given
the data, and combining their draws index by index gives draws of the joint posterior. Per cell
(segment, pre-period band, arm) and draw::

    E[revenue] = p x E[revenue | retained] + (1 - p) x E[revenue | churned]

so the revenue and cost effects carry the retention effect inside them, and net value inherits
the right correlation between its parts. Segment means weight the bands by the segment's customers
(the same weights as the retention model); the overall mean weights the segments by theirs.

:func:`combine` returns the per-arm levels money needs (:data:`attribution.value.LEVELS`), the
revenue and cost-to-serve effect rows in the uplift models' schema, and the diagnostics gate run
on the combined effects.
"""

from __future__ import annotations

from dataclasses import dataclass

import arviz as az
import pandas as pd
import xarray as xr

from attribution import diagnostics as _diagnostics
from attribution import settings
from attribution.cellmodel import p_text as _p_text
from attribution.cellmodel import summarise_draws
from attribution.errors import InputError
from attribution.estimates import as_estimate_rows
from attribution.forest import forest_plot
from attribution.formatting import RANDOMIZED_METHOD
from attribution.settings import GateSetting, IntervalSetting
from attribution.uplift import CONTROL, RetentionUplift, SpendUplift

__all__ = ["STATUS", "JointFit", "combine"]

#: The cells column holding retention status at the horizon (1 retained, 0 churned).
STATUS = "retained"
_SPEND = ("revenue", "cost_to_serve")
_RETAINED_LEVEL = {"revenue": "revenue_retained", "cost_to_serve": "cost_retained"}
_EFFECT_COLUMNS = [
    "outcome", "arm", "segment_by", "segment", "metric", "mean", "lo", "hi", "p_positive",
    "n_treated", "n_control",
]  # fmt: skip


@dataclass(frozen=True)
class JointFit:
    """Retention, revenue and cost-to-serve combined draw by draw.

    Attributes
    ----------
    levels : xarray.Dataset
        :data:`attribution.value.LEVELS` per customer, dims (chain, draw, arm, segment); ``arm``
        holds ``control`` and every treatment arm; segments without ``"all"``.
    weights : pandas.Series
        Customers per segment (all arms): the weights of the overall row.
    effects : pandas.DataFrame
        Revenue and cost-to-serve effect rows per treatment arm and segment (and ``"all"``), in
        the schema of :meth:`attribution.uplift.RetentionUplift.summary`.
    draws : xarray.Dataset
        ``<outcome>_abs`` / ``<outcome>_rel`` effect draws, dims (chain, draw, arm, segment).
    diagnostics : attribution.diagnostics.Diagnostics
        The gate over the combined effects.
    """

    levels: xr.Dataset
    weights: pd.Series
    effects: pd.DataFrame
    draws: xr.Dataset
    diagnostics: _diagnostics.Diagnostics
    interval: IntervalSetting = settings.INTERVAL

    def summary(self) -> pd.DataFrame:
        """The revenue and cost-to-serve effect rows in the schema of the published estimates
        table (:data:`attribution.estimates.EFFECT_COLUMNS`)."""
        return as_estimate_rows(
            self.effects, method=RANDOMIZED_METHOD, interval_width=self.interval.width
        )

    def plot(self, metric: str = "absolute"):
        """Forest plot of the revenue and cost-to-serve effects on everyone, one panel each
        (:func:`attribution.forest.forest_plot` of :meth:`summary`); returns the Figure."""
        return forest_plot(self.summary(), metric=metric)

    def describe(self, intervention: str = "the treatment") -> str:
        """One plain sentence per outcome and treatment arm on the overall absolute effect."""
        pct = f"{self.interval.width:.0%}"
        kind = "" if self.interval.kind == "eti" else " highest-density"
        eff = self.effects[
            (self.effects["segment"] == "all") & (self.effects["metric"] == "absolute")
        ]
        arms = list(dict.fromkeys(eff["arm"]))
        lines = []
        for outcome in [o for o in _SPEND if o in set(eff["outcome"])]:
            for arm in arms:
                r = eff[(eff["outcome"] == outcome) & (eff["arm"] == arm)].iloc[0]
                name = intervention if len(arms) == 1 else f"{intervention} ({arm})"
                verb = "raised" if r["mean"] >= 0 else "lowered"
                sign = 1.0 if r["mean"] >= 0 else -1.0
                lo, hi = sorted((sign * r["lo"], sign * r["hi"]))
                lines.append(
                    f"{name} {verb} {outcome.replace('_', ' ')} by {abs(r['mean']):,.2f} per "
                    f"customer ({pct}{kind} interval {lo:,.2f} to {hi:,.2f}), "
                    f"{_p_text(r['p_positive'])}"
                )
        return "\n".join(lines)


def _cell_means(model, name: str) -> xr.DataArray:
    post = model.idata_.posterior
    if "cell_mean" not in post:
        raise InputError(f"the {name} fit has no per-cell means; refit it with this version")
    return post["cell_mean"]


def combine(
    retention: RetentionUplift,
    spend: dict[str, SpendUplift],
    *,
    interval: IntervalSetting | None = None,
    gate: GateSetting | None = None,
) -> JointFit:
    """Combine a retention fit with spend fits conditional on retention status.

    Parameters
    ----------
    retention : RetentionUplift
        Fitted on cells by (segment, [pre_band], arm).
    spend : dict
        ``{"revenue": SpendUplift, "cost_to_serve": SpendUplift}``, each fitted on the same
        cells split by :data:`STATUS` with segment ``[segment, STATUS]`` (labels
        ``"<segment>/0"`` and ``"<segment>/1"``). An outcome left out was not measured: its
        levels are 0 in every arm (no change) and it has no effect rows. A segment without
        churned customers uses the retained customers' means for the churned (they carry a
        weight ``1 - p`` near 0).
    interval, gate : optional
        Defaults :data:`attribution.settings.INTERVAL` and :data:`attribution.settings.GATE`.

    Returns
    -------
    JointFit
    """
    interval = settings.INTERVAL if interval is None else interval
    unknown = [o for o in spend if o not in _SPEND]
    if unknown:
        raise InputError(f"combine takes spend fits for {list(_SPEND)}; got {unknown}")
    p = _cell_means(retention, "retention")  # (chain, draw, seg, band, cell_arm)
    segments = list(retention.segments_)
    table = retention.cells_
    n_sb = (
        table.groupby(["segment", "pre_band"])["n"].sum().unstack("pre_band")
        .reindex(index=segments, columns=[str(b) for b in p.coords["band"].values])
        .fillna(0.0)
    )  # fmt: skip
    w_band = xr.DataArray(
        (n_sb.to_numpy() / n_sb.to_numpy().sum(axis=1, keepdims=True)),
        dims=("seg", "band"),
        coords={"seg": segments, "band": p.coords["band"].values},
    )
    weights = pd.Series(n_sb.to_numpy().sum(axis=1), index=segments)

    levels = {"p_active": (w_band * p).sum("band")}
    for outcome in _SPEND:
        if outcome not in spend:  # not measured: no change, and nothing to add to the flows
            levels[outcome] = levels[_RETAINED_LEVEL[outcome]] = xr.zeros_like(levels["p_active"])
            continue
        means = _cell_means(spend[outcome], outcome)
        if list(means.coords["band"].values) != list(p.coords["band"].values):
            raise InputError(
                f"the {outcome} fit has bands {list(means.coords['band'].values)}, the retention "
                f"fit {list(p.coords['band'].values)}: fit both on the same cells"
            )
        labels = set(means.coords["seg"].values)
        rows_1, rows_0 = [], []
        for seg in segments:
            kept, lost = (
                means.sel(seg=f"{seg}/{st}", drop=True) if f"{seg}/{st}" in labels else None
                for st in ("1", "0")
            )
            if kept is None and lost is None:
                raise InputError(f"the {outcome} fit has no customers of segment {seg!r}")
            rows_1.append(kept if kept is not None else lost)
            rows_0.append(lost if lost is not None else kept)
        m1 = xr.concat(rows_1, dim=pd.Index(segments, name="seg"))
        m0 = xr.concat(rows_0, dim=pd.Index(segments, name="seg"))
        cell = p * m1 + (1.0 - p) * m0
        levels[outcome] = (w_band * cell).sum("band")
        levels[_RETAINED_LEVEL[outcome]] = (w_band * p * m1).sum("band") / (w_band * p).sum("band")
    ds = xr.Dataset(levels).rename({"seg": "segment", "cell_arm": "arm"})
    ds = ds.transpose("chain", "draw", "arm", "segment")

    arms = [a for a in ds.coords["arm"].values if a != CONTROL]
    w = xr.DataArray(weights / weights.sum(), dims="segment")
    draws = {}
    for outcome in [o for o in _SPEND if o in spend]:
        level = ds[outcome]
        level = xr.concat([level, (level * w).sum("segment").expand_dims(segment=["all"])],
                          dim="segment")  # fmt: skip
        control = level.sel(arm=CONTROL, drop=True)
        treated = level.sel(arm=arms)
        draws[f"{outcome}_abs"] = treated - control
        draws[f"{outcome}_rel"] = treated / control - 1.0
    if draws:
        draws = xr.Dataset(draws).transpose("chain", "draw", "arm", "segment")
        checked = _diagnostics.check(
            az.InferenceData(posterior=draws), list(draws.data_vars), gate=gate
        )
    else:  # retention only: nothing combined, so the retention fit's own gate is the verdict
        draws, checked = xr.Dataset(), retention.diagnostics_
    effects = _effect_rows(draws, retention, interval)
    return JointFit(levels=ds, weights=weights, effects=effects, draws=draws, diagnostics=checked)


def _effect_rows(
    draws: xr.Dataset, retention: RetentionUplift, interval: IntervalSetting
) -> pd.DataFrame:
    counts = retention.summary()
    counts = counts[(counts["outcome"] == "retention") & (counts["metric"] == "absolute")]
    counts = counts.set_index(["arm", "segment"])[["n_treated", "n_control"]]
    rows = []
    for outcome in [o for o in _SPEND if f"{o}_abs" in draws]:
        for metric, suffix in (("absolute", "abs"), ("relative", "rel")):
            da = draws[f"{outcome}_{suffix}"]
            for arm in da.coords["arm"].values:
                for seg in da.coords["segment"].values:
                    x = da.sel(arm=arm, segment=seg).to_numpy()
                    n = counts.loc[(arm, seg)]
                    rows.append(
                        {
                            "outcome": outcome,
                            "arm": str(arm),
                            "segment_by": retention.segment_by_,
                            "segment": str(seg),
                            "metric": metric,
                            **summarise_draws(x, interval),
                            "n_treated": int(n["n_treated"]),
                            "n_control": int(n["n_control"]),
                        }
                    )
    return pd.DataFrame(rows, columns=_EFFECT_COLUMNS)
