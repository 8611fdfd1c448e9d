"""Bayesian hierarchical uplift models fitted on cells of sufficient statistics.

Customers that share segment, arm (and optionally a pre-period band) are exchangeable, so the
models here read one row per cell, never per customer (see DESIGN.md, "Why it is fast"). The
cells frame comes from :func:`attribution.cells.cells` and carries, per cell:

* the segment column(s), ``arm`` (exactly one arm is ``"control"``), optionally ``pre_band``;
* ``n`` customers and ``n_active`` customers active at the horizon;
* for each value family ``f`` in ``("revenue", "cost_to_serve")``: ``f_npos`` (customers with a
  positive total), ``f_sum`` and ``f_sum2`` (sum and sum of squares of the values).

Two estimators, one contract (scikit-learn style: ``fit`` returns self, results end in ``_``):

* :class:`RetentionUplift`: binomial likelihood on ``n_active`` out of ``n``, logit link.
* :class:`SpendUplift`: a hurdle for ``family="revenue"`` or ``"cost_to_serve"``; the positive
  share is binomial (``f_npos`` out of ``n``) and the positive values normal with a mean (log
  link) and a standard deviation of their own per (segment, band, arm) cell, written exactly from
  ``f_npos``, ``f_sum`` and ``f_sum2``. The normal is not a claim about the shape of spend: it is
  the likelihood under which each cell mean's uncertainty is the central-limit one, ``sd /
  sqrt(k)``, whatever the shape. Measured alternatives: a lognormal's mean ``exp(mu +
  sigma^2/2)`` hangs on sigma; a gamma's shape, fitted from the mean of the logs, understates
  the variance of heavy-tailed window sums (premium-support revenue: CV^2 0.92 implied against
  1.37 observed); and a normal whose sd is tied to its mean (``sd = cv x mean``) reads the mean
  off the spread too, and claimed about half the post-stratified standard error: over 30
  simulated worlds its 90% revenue intervals held the planted effect 70% of the time.

Retention pools segment baselines and per-segment arm effects across segments with non-centred
hierarchies (``effect_s = mu + tau * z_s``), one effect per treatment arm, and shifts every
segment alike per pre-period band. Spend gives every (segment, band, arm) cell a positive share
of its own, partially pooled across cells (:func:`_cell_linear`), and a mean of the positive
values of its own under a weak prior centred on the (segment, band)'s mean over all arms
(:func:`_cell_means`): the treated-minus-control difference in each cell is a post-stratified
comparison. Measured over 30 simulated worlds, pooling the means on the log scale read premium
support's small control cells about 5% low (its revenue effect's 90% intervals held the planted
effect 77% of the time; 90% with the means unpooled), and independent shares under a weak beta
prior sampled badly where every customer of a cell spends.

Effects are reported per segment and for ``"all"`` (weights: each segment's share of the
experiment's customers), absolute (retention: difference in proportions; spend: currency per
customer over the horizon) and relative (treated / control - 1), with the interval of
:data:`attribution.settings.INTERVAL` and P(effect > 0). Draws are kept per segment as
``effect_abs`` / ``effect_rel`` with dims ``(chain, draw, arm, segment)`` in
``idata_.posterior``.

Clusters (a test randomized by branch, team or store: ``cluster="branch"``): the cells are also
split by cluster and every likelihood gains a random intercept per cluster, ``u_c ~ Normal(0,
sd_u)`` on the logit of retention and of the positive share, ``v_c ~ Normal(0, sd_v)`` on the
log of the mean positive value (:func:`_cluster_level`). Customers of one cluster share what
their cluster does to them, so the effect's interval carries the between-cluster variation (a
design effect), not only the customers' own. A (segment, band, arm) cell's published mean is the
average over the experiment's clusters, each weighted by its customers in the segment and band,
of the cluster's mean under that arm: the effect on these customers, wherever they were served.

The compiled model is cached per structure (outcome, segments, pre-bands, arms, priors); a later
fit of the same structure swaps the data in instead of recompiling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from attribution import cellmodel, settings
from attribution.errors import InputError
from attribution.estimates import as_estimate_rows
from attribution.forest import forest_plot
from attribution.formatting import RANDOMIZED_METHOD, fmt_pp
from attribution.settings import SAMPLERS, GateSetting, IntervalSetting
from attribution.validation import one_of, whole

__all__ = [
    "CONTROL",
    "LogitPriors",
    "RetentionUplift",
    "SpendPriors",
    "SpendUplift",
    "clear_cache",
    "compile_count",
    "fit_count",
    "precompile",
]

CONTROL = "control"
SPEND_FAMILIES = ("revenue", "cost_to_serve")
PUBLISHED = ("effect_abs", "effect_rel")
_METRIC_VAR = {"absolute": "effect_abs", "relative": "effect_rel"}
_SUMMARY_COLUMNS = [
    "outcome", "arm", "segment_by", "segment", "metric", "mean", "lo", "hi", "p_positive",
    "n_treated", "n_control",
]  # fmt: skip


# --------------------------------------------------------------------------------------------
# Priors: every default in one place per model.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogitPriors:
    """Priors of a hierarchical logit model (retention, or the positive share of a hurdle).

    All on the logit scale. Segment baselines (the control arm's level averaged over the
    segment's pre-period bands, weighted by their customers): ``Normal(baseline_loc,
    baseline_scale)`` pooled mean, ``HalfNormal(baseline_spread)`` spread. Pre-period bands
    (when present): fixed offsets ``Normal(0, band_scale)`` against the first band. Arm
    effects, per treatment arm: ``Normal(0, effect_scale)`` mean, ``HalfNormal(effect_spread)``
    between-segment spread.
    With clusters: ``HalfNormal(cluster_spread)`` between-cluster spread of the intercepts.
    """

    baseline_loc: float = 0.0
    baseline_scale: float = 2.5
    baseline_spread: float = 1.5
    band_scale: float = 2.0
    effect_scale: float = 1.0
    effect_spread: float = 0.5
    cluster_spread: float = 0.5


@dataclass(frozen=True)
class SpendPriors:
    """Priors of :class:`SpendUplift`: the positive share (logit) and the positive values' mean.

    The positive share of every (segment, band, arm) cell is partially pooled across cells
    (``positive``, see :func:`_cell_linear`). The mean of the positive values is a cell's own
    (:func:`_cell_means`), ``Normal(centre, value_relative_sd x centre)``, ``centre`` being the
    (segment, band)'s mean positive value over all arms: weak whatever the currency. The spread
    of the values is plugged in from the cells (see :func:`_value_guesses`), not sampled.
    With clusters, ``HalfNormal(cluster_log_spread)`` is the between-cluster spread of the log
    mean positive value.
    """

    positive: LogitPriors = field(default_factory=LogitPriors)
    value_relative_sd: float = 2.0
    cluster_log_spread: float = 0.5

    def __post_init__(self):
        v = self.value_relative_sd
        if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise InputError(f"SpendPriors.value_relative_sd must be a positive number, got {v!r}")


# --------------------------------------------------------------------------------------------
# Cells -> dense arrays (segment, band, arm)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Cells:
    """Validated cells as dense float arrays over (segment, band, arm); control is arm 0."""

    outcome: str
    segment_by: str
    segments: list[str]
    bands: list[str]
    arms: list[str]
    stats: dict[str, np.ndarray]
    table: pd.DataFrame
    cluster_by: str | None = None
    clusters: list[str] = field(default_factory=list)
    cluster_stats: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def treatments(self) -> list[str]:
        return self.arms[1:]

    def cluster_weights(self) -> np.ndarray:
        """Each cluster's share of a (segment, band)'s customers, all arms together (S, B, C);
        a (segment, band) without customers takes the clusters' shares of everyone."""
        n_sbc = self.cluster_stats["n"].sum(axis=2)
        n_sb = n_sbc.sum(axis=2, keepdims=True)
        n_c = n_sbc.sum(axis=(0, 1))
        overall = n_c / max(n_c.sum(), 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n_sb > 0, n_sbc / n_sb, overall[None, None, :])

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Band weights within segment (S, B) and segment weights in the population (S,)."""
        n_sb = self.stats["n"].sum(axis=2)
        n_s = n_sb.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            w_band = np.where(n_s[:, None] > 0, n_sb / n_s[:, None], 1.0 / n_sb.shape[1])
        return w_band, n_s / n_s.sum()


def _stat_columns(outcome: str) -> list[str]:
    if outcome == "retention":
        return ["n", "n_active"]
    return ["n", f"{outcome}_npos", f"{outcome}_sum", f"{outcome}_sum2"]


def _sorted_labels(values) -> list:
    uniq = list(pd.unique(pd.Series(values)))
    try:
        return sorted(uniq)
    except TypeError:
        return sorted(uniq, key=str)


def _prepare(cells, segment, outcome: str, cluster: str | None = None) -> _Cells:
    """Validate a cells frame and turn it into dense arrays; raise InputError on bad input."""
    if not isinstance(cells, pd.DataFrame):
        raise InputError(f"cells must be a pandas DataFrame, got {type(cells).__name__}")
    if isinstance(segment, str):
        seg_cols = [segment]
    elif isinstance(segment, list | tuple) and segment and all(isinstance(s, str) for s in segment):
        seg_cols = list(segment)
    else:
        raise InputError(f"segment must be a column name or a list of them, got {segment!r}")
    missing_seg = [c for c in seg_cols if c not in cells.columns]
    if missing_seg:
        raise InputError(
            f"segment column(s) {missing_seg} not in cells; cells has columns {list(cells.columns)}"
        )
    stat_cols = _stat_columns(outcome)
    missing = [c for c in ["arm", *stat_cols] if c not in cells.columns]
    if missing:
        raise InputError(
            f"cells is missing column(s) {missing} needed for the {outcome} model; expected "
            f"{['arm', *stat_cols]} as produced by attribution.cells.cells(...)"
        )
    if len(cells) == 0:
        raise InputError("cells is empty: no customers to fit")

    band_cols = ["pre_band"] if "pre_band" in cells.columns else []
    cluster_cols = _cluster_columns(cells, cluster, seg_cols)
    key_cols = seg_cols + band_cols + ["arm"] + cluster_cols
    if cells[key_cols].isna().any().any():
        bad = [c for c in key_cols if cells[c].isna().any()]
        raise InputError(f"cells has missing values in key column(s) {bad}")
    df = cells[key_cols + stat_cols].copy()
    for c in stat_cols:
        try:
            df[c] = pd.to_numeric(df[c]).astype(float)
        except (TypeError, ValueError) as exc:
            raise InputError(f"cells column {c!r} must be numeric: {exc}") from None
        if df[c].isna().any() or not np.isfinite(df[c]).all():
            raise InputError(f"cells column {c!r} has missing or infinite values")
    count_cols = ["n", "n_active" if outcome == "retention" else f"{outcome}_npos"]
    for c in count_cols:
        neg = df[c] < 0
        if neg.any():
            row = df.index[neg.to_numpy()][0]
            raise InputError(
                f"cells column {c!r} has {int(neg.sum())} negative count(s), e.g. row {row}: "
                f"{df.loc[row, c]:g}"
            )
        if (df[c] != np.round(df[c])).any():
            raise InputError(f"cells column {c!r} must hold whole counts")
    sub = count_cols[1]
    over = df[sub] > df["n"]
    if over.any():
        row = df.index[over.to_numpy()][0]
        raise InputError(
            f"cells has {int(over.sum())} row(s) with {sub} > n, e.g. row {row}: "
            f"{sub}={df.loc[row, sub]:g}, n={df.loc[row, 'n']:g}"
        )
    if outcome != "retention":
        k, s1, s2 = (df[f"{outcome}_{s}"] for s in ("npos", "sum", "sum2"))
        if ((k == 0) & ((s1.abs() > 1e-9) | (s2.abs() > 1e-9))).any():
            raise InputError(
                f"cells has rows with {outcome}_npos = 0 but non-zero {outcome}_sum or "
                f"{outcome}_sum2"
            )
        if (s1 < 0).any() or (s2 < 0).any():
            raise InputError(f"cells columns {outcome}_sum and {outcome}_sum2 must be >= 0")
        if (s1**2 > k * s2 * (1 + 1e-9) + 1e-9).any():
            raise InputError(
                f"cells has rows where {outcome}_sum^2 > {outcome}_npos x {outcome}_sum2, "
                "which no set of values can give"
            )

    df["arm"] = df["arm"].astype(str)
    arms_seen = _sorted_labels(df["arm"])
    if CONTROL not in arms_seen:
        raise InputError(f"no {CONTROL!r} arm in cells; arms found: {arms_seen}")
    treatments = [a for a in arms_seen if a != CONTROL]
    if not treatments:
        raise InputError(f"cells has only the {CONTROL!r} arm; nothing to compare it with")
    arms = [CONTROL, *treatments]
    n_arm = df.groupby("arm")["n"].sum()
    empty = [a for a in arms if n_arm.get(a, 0) == 0]
    if empty:
        raise InputError(f"arm(s) {empty} have no customers (n == 0 in every cell)")

    seg_label = df[seg_cols].astype(str).agg("/".join, axis=1) if len(seg_cols) > 1 else None
    df["_segment"] = seg_label if seg_label is not None else df[seg_cols[0]]
    segments_raw = _sorted_labels(df["_segment"])
    df["_segment"] = df["_segment"].astype(str)
    segments = [str(s) for s in segments_raw]
    if "all" in segments:
        raise InputError("a segment is named 'all', which is reserved for the overall effect")
    if len(set(segments)) != len(segments):
        raise InputError(f"segment labels collide when written as text: {segments}")
    if band_cols:
        bands_raw = _sorted_labels(df["pre_band"])
        df["_band"] = df["pre_band"].astype(str)
        bands = [str(b) for b in bands_raw]
    else:
        df["_band"] = "all"
        bands = ["all"]

    agg = df.groupby(["_segment", "_band", "arm"], sort=False)[stat_cols].sum()
    full = pd.MultiIndex.from_product([segments, bands, arms], names=["_segment", "_band", "arm"])
    agg = agg.reindex(full, fill_value=0.0)
    shape = (len(segments), len(bands), len(arms))
    stats = {c: agg[c].to_numpy(dtype=float).reshape(shape) for c in stat_cols}
    table = agg.reset_index().rename(columns={"_segment": "segment", "_band": "pre_band"})
    clusters, cluster_stats = [], {}
    if cluster_cols:
        df["_cluster"] = df[cluster].astype(str)
        clusters = sorted(pd.unique(df["_cluster"]).tolist())
        names = ["_segment", "_band", "arm", "_cluster"]
        by_cluster = df.groupby(names, sort=False)[stat_cols].sum()
        full = pd.MultiIndex.from_product([segments, bands, arms, clusters], names=names)
        by_cluster = by_cluster.reindex(full, fill_value=0.0)
        shape4 = (*shape, len(clusters))
        cluster_stats = {c: by_cluster[c].to_numpy(dtype=float).reshape(shape4) for c in stat_cols}
    return _Cells(
        outcome=outcome,
        segment_by="+".join(seg_cols),
        segments=segments,
        bands=bands,
        arms=arms,
        stats=stats,
        table=table,
        cluster_by=cluster if cluster_cols else None,
        clusters=clusters,
        cluster_stats=cluster_stats,
    )


def _cluster_columns(cells: pd.DataFrame, cluster: str | None, seg_cols: list[str]) -> list[str]:
    """The cluster column as a key list ([] without clusters), checked against the cells."""
    if cluster is None:
        return []
    if not isinstance(cluster, str) or not cluster:
        raise InputError(f"cluster must be a column name, got {cluster!r}")
    if cluster not in cells.columns:
        raise InputError(
            f"cluster column {cluster!r} not in cells; cells has columns {list(cells.columns)}"
        )
    if cluster in seg_cols or cluster in ("arm", "pre_band"):
        raise InputError(
            f"cluster column {cluster!r} is also a segment or key column: a cluster sits in one "
            "arm, so it cannot be a segment the arms are compared within"
        )
    return [cluster]


_PAD = "__pad{}__"
_CLUSTER_PAD = "__cluster_pad{}__"
_BAND_PAD = "__band_pad{}__"


def _pad(c: _Cells) -> _Cells:
    """Cells with empty segments added up to 4, 8, 16, ... segments, and empty pre-period bands
    up to 4, 8, ... bands (clusters, when there are any, to 8, 16, 32, ...).

    The compiled model depends on these counts; padding lets experiments with 1 to 4 segments
    and 1 to 4 bands (say) share one compiled model, so a refresh, a notebook or the test suite
    compiles a few models, not one per experiment. Padding changes no published number: an empty
    segment or band carries no customers, so it has zero weight in every mean, and its values
    come from the pooled prior without informing it (a value without data integrates out of the
    posterior of the others); they are dropped before anything is reported or gated.
    """
    extra = cellmodel.padded_count(len(c.segments), 4) - len(c.segments)
    more_bands = cellmodel.padded_count(len(c.bands), 4) - len(c.bands)
    more_clusters = cellmodel.padded_count(len(c.clusters), 8) - len(c.clusters)
    if extra == more_bands == more_clusters == 0:
        return c

    def grow(v: np.ndarray) -> np.ndarray:
        for axis, k in ((0, extra), (1, more_bands), (3, more_clusters)):
            if k and axis < v.ndim:
                shape = list(v.shape)
                shape[axis] = k
                v = np.concatenate([v, np.zeros(shape)], axis=axis)
        return v

    return replace(
        c,
        segments=[*c.segments, *(_PAD.format(i) for i in range(extra))],
        bands=[*c.bands, *(_BAND_PAD.format(i) for i in range(more_bands))],
        stats={k: grow(v) for k, v in c.stats.items()},
        clusters=[*c.clusters, *(_CLUSTER_PAD.format(i) for i in range(more_clusters))],
        cluster_stats={k: grow(v) for k, v in c.cluster_stats.items()},
    )


def _trim(idata: az.InferenceData, c: _Cells) -> az.InferenceData:
    """Drop the padded segments, bands and clusters of :func:`_pad` from every group of a fit
    (and the band offsets altogether when the cells have one band)."""
    keep = {
        "seg": c.segments,
        "segment": [*c.segments, "all"],
        "band": c.bands,
        "band_rest": c.bands[1:],
        "band_rest_": c.bands[1:],
        "cluster": c.clusters,
    }
    return cellmodel.unpad(idata, keep)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------
def _coords(c: _Cells) -> dict[str, list[str]]:
    coords = {
        "seg": c.segments,
        "band": c.bands,
        "cell_arm": c.arms,
        "arm": c.treatments,
        "segment": [*c.segments, "all"],
    }
    if len(c.bands) > 1:
        coords["band_rest"] = c.bands[1:]
        coords["band_rest_"] = c.bands[1:]  # the second axis of band_chol
    if c.clusters:
        coords["cluster"] = c.clusters
    return coords


def _hierarchy(name: str, loc, scale, spread, est, se, dims, mu_dims=None, axis=0):
    """Values partially pooled across segments: ``value = mu + tau * z``, ``z ~ Normal(0, 1)``.

    The model is exactly the hierarchy ``mu ~ Normal(loc, scale)``, ``tau ~ HalfNormal(spread)``,
    ``value ~ Normal(mu, tau)`` along ``axis`` (all axes when None). Only the coordinates the
    sampler moves in are chosen with care. With weak data the non-centred ``z`` samples best, with
    strong data the centred ``value``; a cell model over millions of customers meets both within
    one posterior, because ``tau`` ranges from far below to far above the data's standard error.
    So the sampler moves ``u`` with ``value = m + s * u``, ``m`` and ``s`` being the conditional
    posterior mean and sd of ``value`` given ``mu, tau`` under a normal approximation of the
    likelihood (estimate ``est``, standard error ``se``, both computed from the cells):
    ``w = tau^2 / (tau^2 + se^2)``, ``m = mu + w (est - mu)``, ``s = sqrt(w) se`` (``w -> 0`` is
    the non-centred form, ``w -> 1`` the centred one). Likewise ``mu`` is moved through its
    conditional mean and sd given ``tau``, which removes the funnel between ``mu`` and ``tau``.
    The moved coordinates have flat priors; the normal priors and the Jacobians enter as a
    potential, so the posterior is exact however rough ``est`` and ``se`` are.

    Returns the pooled values (a Deterministic ``name``); ``name_mu`` and ``name_sd`` are the
    pooled mean and spread.
    """
    tau = pm.HalfNormal(f"{name}_sd", spread, dims=mu_dims)
    v2 = tau**2 + se**2
    prec = 1.0 / scale**2 + pt.sum(1.0 / v2, axis=axis)
    mean = (loc / scale**2 + pt.sum(est / v2, axis=axis)) / prec
    mu = pm.Deterministic(
        f"{name}_mu", mean + pm.Flat(f"{name}_mu_u", dims=mu_dims) / pt.sqrt(prec), dims=mu_dims
    )
    w = tau**2 / v2
    value = mu + w * (est - mu) + pt.sqrt(w) * se * pm.Flat(f"{name}_u", dims=dims)
    log_jac = pt.sum(pt.log(tau) + pt.log(se) - 0.5 * pt.log(v2)) - 0.5 * pt.sum(pt.log(prec))
    prior = pt.sum(pm.logp(pm.Normal.dist(loc, scale), mu))
    prior += pt.sum(pm.logp(pm.Normal.dist(mu, tau), value))
    pm.Potential(f"{name}_prior", prior + log_jac)
    return pm.Deterministic(name, value, dims=dims)


def _hier_linear(prefix: str, c: _Cells, pri: dict, d: dict, w_band):
    """Linear predictor over (segment, band, arm): pooled baselines + bands + pooled arm effects.

    ``baseline_s ~ Normal(baseline_mu, baseline_sd)`` per segment, fixed band offsets against the
    first band, ``effect_{s,t} ~ Normal(effect_mu_t, effect_sd_t)`` per segment and treatment arm
    (see :func:`_hierarchy` for how they are sampled). ``pri`` holds the prior scales, ``d`` the
    data tensors ``baseline_est/se``, ``effect_est/se`` and ``band_chol``; ``w_band`` the bands'
    shares of each segment's customers (S, B).

    A baseline is the segment's control level averaged over its bands (``w_band``), not the
    first band's level, and the band offsets are moved through ``offset = band_chol @ v``
    (``v`` flat; ``band_chol`` the Cholesky factor of the offsets' covariance under a normal
    approximation, from the cells): with the first band as the baseline and the offsets as the
    sampler's coordinates, every offset shared the first band's uncertainty with the baseline
    and with each other (posterior correlations 0.8-0.9), and at 10M customers the sampler
    took 61 leapfrog steps a draw instead of 34 at 1M. A linear map with a fixed matrix has a
    constant Jacobian, so the offsets' prior is the same.
    """
    S, B = len(c.segments), len(c.bands)
    base = _hierarchy(
        f"{prefix}baseline", pri["loc"], pri["scale"], pri["spread"], d["baseline_est"],
        d["baseline_se"], "seg",
    )  # fmt: skip
    if B > 1:
        v = pm.Flat(f"{prefix}band_v", dims="band_rest")
        band_off = pm.Deterministic(
            f"{prefix}band_offset", pt.dot(d["band_chol"], v), dims="band_rest"
        )
        pm.Potential(
            f"{prefix}band_prior",
            pt.sum(pm.logp(pm.Normal.dist(0.0, pri["band_scale"]), band_off)),
        )
        band = pt.concatenate([pt.zeros(1), band_off])
        band = band[None, :] - pt.sum(w_band * band[None, :], axis=1, keepdims=True)  # (S, B)
    else:
        band = pt.zeros((1, 1))
    eff = _hierarchy(
        f"{prefix}effect", 0.0, pri["effect_scale"], pri["effect_spread"], d["effect_est"],
        d["effect_se"], ("seg", "arm"), mu_dims="arm",
    )  # fmt: skip
    eff_full = pt.concatenate([pt.zeros((S, 1)), eff], axis=1)  # (S, A)
    return base[:, None, None] + band[:, :, None] + eff_full[:, None, :]


def _cell_linear(prefix: str, pri: dict, d: dict):
    """Linear predictor with a value of its own per (segment, band, arm) cell.

    ``value_{s,b,a} ~ Normal(mu, tau)`` over every cell, arms included, partially pooled (see
    :func:`_hierarchy`; with data, a cell's value is its own): the treated-minus-control
    difference in each cell is a post-stratified comparison. Measured on 30 simulated worlds,
    any structure that let cells borrow an effect from each other (a band shifting every
    segment alike, one effect for every band, effects pooled across cells) bought revenue
    intervals that held the planted effect only 60-70% of the time at 90%: spend effects differ
    between low and high spenders and between retained and lost customers more than one cell's
    data can show. A baseline plus an unpooled effect per cell samples badly (divergences where
    a control cell is nearly empty); one pooled value per cell does not.
    """
    return _hierarchy(
        f"{prefix}cell", pri["loc"], pri["scale"], pri["spread"], d["cell_est"], d["cell_se"],
        ("seg", "band", "cell_arm"), axis=None,
    )  # fmt: skip


def _cell_means(p: SpendPriors, d: dict):
    """Mean of the positive values, one of its own per (segment, band, arm) cell.

    Prior: ``mean ~ Normal(centre, value_relative_sd x centre)``, ``centre`` being the (segment,
    band)'s mean over all arms (data): weak, and flat on the currency scale where the data are,
    so a cell's posterior mean is its own mean. Not pooled across cells and not on the log
    scale: measured over 30 simulated worlds, a log-scale hierarchy pulled the means of small
    cells down (a prior locally flat in ``log mean`` is ``1 / mean`` in the mean, and a cell's
    pull towards the pooled centre grows with its standard error, which grows with its mean),
    so premium support's small control arm read revenue about 5% low and its revenue effect's
    90% intervals held the planted effect 77% of the time; pooling towards each arm's own level
    in the segment (on the currency scale) did worse (57-67%). Not truncated at zero either: in
    cells of a few customers a truncated posterior's mean sits above the cell's mean, more so
    in the arm with less spend, and shrank the recovery gift's revenue effect. Like the normal
    likelihood, the prior is a statement about a mean, not about spend: a near-empty cell may
    draw a negative mean, which only its (small) share of the population carries. The sampler
    moves ``u`` with ``mean = est + se u`` (the cell's mean and standard error).
    """
    mean = d["est"] + d["se"] * pm.Flat("value_u", dims=("seg", "band", "cell_arm"))
    prior = pm.logp(pm.Normal.dist(d["centre"], p.value_relative_sd * d["centre"]), mean)
    pm.Potential("value_prior", pt.sum(prior))
    return pm.Deterministic("value_mean", mean, dims=("seg", "band", "cell_arm"))


def _binomial_kernel(k, n, eta):
    """Sum over cells of k*log(p) + (n-k)*log(1-p), p = sigmoid(eta).

    Equals the Bernoulli log-likelihood of the cell's customers exactly (the binomial
    coefficient, a constant, is left out so cell and row likelihoods agree).
    """
    return pt.sum(-k * pt.softplus(-eta) - (n - k) * pt.softplus(eta))


def _value_kernel(k, s1, s2, mean, sd):
    """Sum over cells of ``log Normal(y | mean, sd^2)`` over the positive values.

    From ``k`` values, their sum ``s1`` and sum of squares ``s2``: exactly the row-level sum.
    """
    return pt.sum(
        -k * pt.log(sd)
        - 0.5 * k * math.log(2.0 * math.pi)
        - (s2 - 2.0 * mean * s1 + k * mean**2) / (2.0 * sd**2)
    )


def _publish(cell_mean, w_band, w_seg):
    """Effect deterministics from per-cell means (S, B, A): per segment and population-weighted.

    The per-cell means are kept as ``cell_mean`` (seg, band, cell_arm): :mod:`attribution.joint`
    combines them across models cell by cell.
    """
    pm.Deterministic("cell_mean", cell_mean, dims=("seg", "band", "cell_arm"))
    seg_mean = (w_band[:, :, None] * cell_mean).sum(axis=1)  # (S, A)
    # Segments without customers (padding) have weight 0 and prior-only means that may overflow;
    # leave them out rather than multiply inf by 0.
    weighted = pt.switch(pt.gt(w_seg, 0.0)[:, None], w_seg[:, None] * seg_mean, 0.0)
    all_mean = weighted.sum(axis=0)  # (A,)
    means = pt.concatenate([seg_mean, all_mean[None, :]], axis=0)  # (S+1, A)
    control = pm.Deterministic("control_mean", means[:, 0], dims="segment")
    treated = pm.Deterministic("treated_mean", means[:, 1:].T, dims=("arm", "segment"))
    pm.Deterministic("effect_abs", treated - control[None, :], dims=("arm", "segment"))
    pm.Deterministic("effect_rel", treated / control[None, :] - 1.0, dims=("arm", "segment"))


# Standard error standing in for "no data" in the sampling coordinates: so large that a value
# without data (an empty or padded segment) is sampled in the plain non-centred form.
_WEAK_SE = 1e3


def _logit_guess(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical logit and its standard error (with 0.5 added to both counts)."""
    a, b = k + 0.5, n - k + 0.5
    return np.log(a / b), np.where(n > 0, np.sqrt(1.0 / a + 1.0 / b), _WEAK_SE)


def _logit_guesses(k: np.ndarray, n: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
    """Rough estimates of control baselines and arm effects per segment, for `_hierarchy`, and
    the Cholesky factor of the band offsets' covariance (see `_hier_linear`)."""
    arm, arm_se = _logit_guess(k.sum(axis=1), n.sum(axis=1))  # (S, A), bands pooled
    out = {
        f"{prefix}baseline_est": arm[..., 0],
        f"{prefix}baseline_se": arm_se[..., 0],
        f"{prefix}effect_est": arm[..., 1:] - arm[..., :1],
        f"{prefix}effect_se": np.sqrt(arm_se[..., 1:] ** 2 + arm_se[..., :1] ** 2),
    }
    if k.shape[1] > 1:
        # each band's level from all its customers; offset b = level b - level 0, so the
        # offsets share the first band's variance; the prior bounds bands without data (the
        # default prior's scale: only the sampler's coordinates depend on it, not the model)
        _, band_se = _logit_guess(k.sum(axis=(0, 2)), n.sum(axis=(0, 2)))
        var = np.minimum(band_se**2, _WEAK_SE**2)
        cov = np.diag(var[1:]) + var[0]
        prior_var = LogitPriors().band_scale ** 2
        post = np.linalg.inv(np.linalg.inv(cov) + np.eye(len(cov)) / prior_var)
        out[f"{prefix}band_chol"] = np.linalg.cholesky((post + post.T) / 2)
    return out


def _share_guesses(k: np.ndarray, n: np.ndarray) -> dict[str, np.ndarray]:
    """Per (segment, band, arm) cell: empirical logit of the positive share and its standard
    error, for `_hierarchy` (see `_cell_linear`)."""
    est, se = _logit_guess(k, n)
    return {"positive_cell_est": est, "positive_cell_se": se}


#: Pseudo-values with the segment and arm's coefficient of variation that each cell's spread is
#: shrunk with (see :func:`_value_guesses`).
_SD_PSEUDO_VALUES = 5.0


def _value_guesses(K, S1, S2, center: float, within=None) -> dict[str, np.ndarray]:
    """Per (segment, band, arm) cell: the sampler's coordinates, the prior's centre, the spread.

    The spread of the positive values is plugged in, not sampled: a cell with one or two values
    leaves a free sd unbounded (the likelihood grows without limit as sd -> 0 at the value), and
    sampling it gave divergences. Each cell's variance is its within-cell sum of squares shrunk
    towards the segment and arm's pooled coefficient of variation (times the cell's mean) with
    :data:`_SD_PSEUDO_VALUES` pseudo-values: ``(SS + nu cv^2 mean^2) / (K - 1 + nu)``.

    ``within``: the (sum of squares, degrees of freedom) within clusters, when the cells are
    split by cluster: the spread is then the customers' own around their cluster's mean, the
    cluster-to-cluster part being the cluster level's (:func:`_cluster_level`).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(K > 0, S1 / np.maximum(K, 1), center)
        if within is None:
            ss = np.maximum(S2 - np.where(K > 0, S1**2 / np.maximum(K, 1), 0.0), 0.0)
            dof = np.maximum(K - 1, 0)
        else:
            ss, dof = within
        dof_sa, ss_sa = dof.sum(axis=1), (ss / np.maximum(mean, 1e-12) ** 2).sum(axis=1)
        cv2_sa = np.where(dof_sa > 0, ss_sa / np.maximum(dof_sa, 1), 1.0)  # (S, A)
        cv2_sa = np.where(np.isfinite(cv2_sa) & (cv2_sa > 1e-8), cv2_sa, 1.0)
        nu = _SD_PSEUDO_VALUES
        var = (ss + nu * cv2_sa[:, None, :] * mean**2) / (dof + nu)
        sd = np.sqrt(np.maximum(var, 1e-12 * center**2))
        se = sd / np.sqrt(np.maximum(K, 1))
        # the prior's centre: the (segment, band)'s mean over its arms, else the segment's
        K_sb, S1_sb = K.sum(axis=2), S1.sum(axis=2)
        K_s, S1_s = K_sb.sum(axis=1), S1_sb.sum(axis=1)
        seg = np.where(K_s > 0, S1_s / np.maximum(K_s, 1), center)
        prior = np.where(K_sb > 0, S1_sb / np.maximum(K_sb, 1), seg[:, None])
        prior = np.broadcast_to(prior[:, :, None], K.shape).copy()
    return {
        "value_est": np.where(K > 0, mean, prior),
        # a cell without positive values is its prior: moved on the prior's (default) scale
        "value_se": np.where(K > 0, se, SpendPriors().value_relative_sd * prior),
        "value_centre": prior,
        "sd_positive": sd,
    }


def _data_arrays(c: _Cells) -> dict[str, np.ndarray]:
    """Everything that changes with the data, by pm.Data name (what `with_data` swaps)."""
    w_band, w_seg = c.weights()
    n = c.stats["n"]
    out = {"w_band": w_band, "w_segment": w_seg, "n": n}
    if c.outcome == "retention":
        out["n_active"] = c.stats["n_active"]
        out.update(_logit_guesses(c.stats["n_active"], n, ""))
        if c.clusters:
            out.update(
                cluster_n=c.cluster_stats["n"],
                cluster_active=c.cluster_stats["n_active"],
                cluster_w=c.cluster_weights(),
            )
        return out
    f = c.outcome
    k, s1, s2 = (c.stats[f"{f}_{s}"] for s in ("npos", "sum", "sum2"))
    total = k.sum()
    if total == 0:
        raise InputError(f"no customer has a positive {f}; its values cannot be modelled")
    center = s1.sum() / total
    out.update(npos=k, sum_positive=s1, sum2_positive=s2)
    out.update(_share_guesses(k, n))
    within = None
    if c.clusters:
        cs = c.cluster_stats
        k4, s14, s24 = (cs[f"{f}_{s}"] for s in ("npos", "sum", "sum2"))
        out.update(cluster_n=cs["n"], cluster_npos=k4, cluster_sum=s14, cluster_sum2=s24)
        out["cluster_w"] = c.cluster_weights()
        with np.errstate(invalid="ignore", divide="ignore"):
            ss4 = np.maximum(s24 - np.where(k4 > 0, s14**2 / np.maximum(k4, 1), 0.0), 0.0)
        within = (ss4.sum(axis=3), np.maximum(k4 - 1, 0).sum(axis=3))
    out.update(_value_guesses(k, s1, s2, center, within))
    return out


#: Per-cell counts and sums a clustered model reads split by cluster instead (``cluster_*``).
_UNCLUSTERED = ("n", "n_active", "npos", "sum_positive", "sum2_positive")


def _model_data(c: _Cells) -> dict[str, np.ndarray]:
    """:func:`_data_arrays` as the model holds them: a clustered model has no unsplit counts."""
    data = _data_arrays(c)
    return {k: v for k, v in data.items() if not (c.clusters and k in _UNCLUSTERED)}


_GUESS_DIMS = {
    "baseline_est": "seg",
    "baseline_se": "seg",
    "effect_est": ("seg", "arm"),
    "effect_se": ("seg", "arm"),
}
_RETENTION_GUESS_DIMS = {**_GUESS_DIMS, "band_chol": ("band_rest", "band_rest_")}
# Per (segment, band, arm) cell: the positive share (`_cell_linear`) and mean (`_cell_means`).
_CELL_GUESS_DIMS = {
    "cell_est": ("seg", "band", "cell_arm"),
    "cell_se": ("seg", "band", "cell_arm"),
}
_VALUE_DIMS = {
    "est": ("seg", "band", "cell_arm"),
    "se": ("seg", "band", "cell_arm"),
    "centre": ("seg", "band", "cell_arm"),
}


def _guess_data(data: dict, prefix: str, dims_of: dict = _GUESS_DIMS) -> dict:
    """pm.Data for the sampling-coordinate guesses of one hierarchical part."""
    out = {}
    for key, dims in dims_of.items():
        name = f"{prefix}{key}"
        if name in data:
            out[key] = pm.Data(name, data[name], dims=dims)
    return out


def _build_model(c: _Cells, priors) -> tuple[pm.Model, dict]:
    """The PyMC model for validated cells; returns the model and its per-cell tensors.

    The second value maps names to per-cell tensors over (segment, band, arm): ``eta`` (logit of
    the retained / positive share) and, for spend, ``mean`` and ``sd`` (plugged in) of the positive
    values. Tests
    use them to compare the cell likelihood with the row likelihood.
    """
    data = _data_arrays(c)
    dims3 = ("seg", "band", "cell_arm")
    dims4 = (*dims3, "cluster")
    with pm.Model(coords=_coords(c)) as model:
        w_band = pm.Data("w_band", data["w_band"], dims=("seg", "band"))
        w_seg = pm.Data("w_segment", data["w_segment"], dims="seg")
        if c.clusters:
            n4 = pm.Data("cluster_n", data["cluster_n"], dims=dims4)
            w4 = pm.Data("cluster_w", data["cluster_w"], dims=("seg", "band", "cluster"))
        if c.outcome == "retention":
            eta = _hier_linear(
                "", c, _logit_scales(priors), _guess_data(data, "", _RETENTION_GUESS_DIMS), w_band
            )
            if not c.clusters:
                n = pm.Data("n", data["n"], dims=dims3)
                k = pm.Data("n_active", data["n_active"], dims=dims3)
                pm.Potential("loglik_active", _binomial_kernel(k, n, eta))
                _publish(pm.math.sigmoid(eta), w_band, w_seg)
                return model, {"eta": eta}
            k4 = pm.Data("cluster_active", data["cluster_active"], dims=dims4)
            eta4 = eta[..., None] + _cluster_level("", priors.cluster_spread)[None, None, None, :]
            pm.Potential("loglik_active", _binomial_kernel(k4, n4, eta4))
            p4 = pm.math.sigmoid(eta4)
            _publish((w4[:, :, None, :] * p4).sum(axis=3), w_band, w_seg)
            return model, {"eta": eta4}

        eta = _cell_linear(
            "positive_",
            _logit_scales(priors.positive),
            _guess_data(data, "positive_", _CELL_GUESS_DIMS),
        )
        mean = _cell_means(priors, _guess_data(data, "value_", _VALUE_DIMS))
        sd = pm.Data("sd_positive", data["sd_positive"], dims=dims3)
        if not c.clusters:
            n = pm.Data("n", data["n"], dims=dims3)
            k = pm.Data("npos", data["npos"], dims=dims3)
            s1 = pm.Data("sum_positive", data["sum_positive"], dims=dims3)
            s2 = pm.Data("sum2_positive", data["sum2_positive"], dims=dims3)
            pm.Potential("loglik_positive", _binomial_kernel(k, n, eta))
            pm.Potential("loglik_values", _value_kernel(k, s1, s2, mean, sd))
            _publish(pm.math.sigmoid(eta) * mean, w_band, w_seg)
            return model, {"eta": eta, "mean": mean, "sd": sd}
        k4 = pm.Data("cluster_npos", data["cluster_npos"], dims=dims4)
        s14 = pm.Data("cluster_sum", data["cluster_sum"], dims=dims4)
        s24 = pm.Data("cluster_sum2", data["cluster_sum2"], dims=dims4)
        u = _cluster_level("positive_", priors.positive.cluster_spread)
        v = _cluster_level("value_", priors.cluster_log_spread)
        eta4 = eta[..., None] + u[None, None, None, :]
        mean4 = mean[..., None] * pt.exp(v)[None, None, None, :]
        sd4 = sd[..., None] * pt.ones_like(v)[None, None, None, :]
        pm.Potential("loglik_positive", _binomial_kernel(k4, n4, eta4))
        pm.Potential("loglik_values", _value_kernel(k4, s14, s24, mean4, sd4))
        spend4 = pm.math.sigmoid(eta4) * mean4
        _publish((w4[:, :, None, :] * spend4).sum(axis=3), w_band, w_seg)
        return model, {"eta": eta4, "mean": mean4, "sd": sd4}


def _cluster_level(prefix: str, spread: float):
    """Random intercepts, one per cluster: ``effect_c = sd z_c``, ``z_c ~ Normal(0, 1)``,
    ``sd ~ HalfNormal(spread)``.

    Non-centred: a cluster holds tens to hundreds of customers, so its own data say about as
    much as the between-cluster spread (where the centred form would be the better one, the
    clusters are large enough that the design needs no cluster level). Padded clusters carry no
    customers and no weight: their intercepts are prior draws, dropped before reporting.
    """
    sd = pm.HalfNormal(f"{prefix}cluster_sd", spread)
    z = pm.Normal(f"{prefix}cluster_z", 0.0, 1.0, dims="cluster")
    return pm.Deterministic(f"{prefix}cluster_effect", sd * z, dims="cluster")


def _logit_scales(p: LogitPriors) -> dict:
    return {
        "loc": p.baseline_loc,
        "scale": p.baseline_scale,
        "spread": p.baseline_spread,
        "band_scale": p.band_scale,
        "effect_scale": p.effect_scale,
        "effect_spread": p.effect_spread,
    }


# --------------------------------------------------------------------------------------------
# Compile cache and samplers
# --------------------------------------------------------------------------------------------
_CACHE = cellmodel.ModelCache()


def compile_count() -> int:
    """How many times nutpie has compiled a model in this process (cache misses)."""
    return _CACHE.compilations


def fit_count() -> int:
    """How many uplift models this process has fitted (or started to fit)."""
    return _CACHE.requests


def clear_cache() -> None:
    """Forget every cached compiled model (the next fit of each structure compiles again)."""
    _CACHE.clear()


def _model_only(c: _Cells, priors) -> pm.Model:
    return _build_model(c, priors)[0]


def precompile(fits: Sequence[tuple[_CellUplift, pd.DataFrame, str | list[str]]]) -> int:
    """Compile the models that these fits will need, side by side (first run on a machine).

    Parameters
    ----------
    fits : sequence of (estimator, cells, segment)
        What will be passed to each estimator's :meth:`fit`. Models already compiled in this
        process or on disk are skipped (:meth:`attribution.cellmodel.ModelCache.prefetch`).

    Returns
    -------
    int
        How many models were compiled.
    """
    jobs = []
    for est, cells, segment in fits:
        if est.sampler != "nutpie":
            continue
        _, padded, priors, key = est._structure(cells, segment)
        jobs.append((key, _model_only, (padded, priors)))
    return _CACHE.prefetch(jobs)


def _structure_key(c: _Cells, priors) -> tuple:
    """What the compiled model depends on: revenue and cost-to-serve share one spend model."""
    kind = "retention" if c.outcome == "retention" else "spend"
    return (kind, len(c.segments), len(c.bands), len(c.arms), len(c.clusters), priors)


def _hyper(model: pm.Model) -> list[str]:
    """Variables reported (not gated) by the diagnostics: hyper-parameters and the means."""
    names = [rv.name for rv in model.free_RVs if not rv.name.endswith(("_u", "_z"))]
    skip = (*PUBLISHED, "cluster_effect", "positive_cluster_effect", "value_cluster_effect")
    return names + [d.name for d in model.deterministics if d.name not in skip]


# --------------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------------
class _CellUplift:
    """Shared fit / report logic; use :class:`RetentionUplift` or :class:`SpendUplift`."""

    _outcome: str

    def __init__(
        self,
        *,
        intervention: str | None = None,
        priors=None,
        sampler: str = "nutpie",
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        target_accept: float = 0.95,
        retry_target_accept: float | None = 0.99,
        cores: int | None = None,
        seed: int | None = None,
        interval: IntervalSetting | None = None,
        gate: GateSetting | None = None,
        cluster: str | None = None,
    ):
        self.intervention = intervention
        self.priors = priors
        self.sampler = sampler
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.target_accept = target_accept
        self.retry_target_accept = retry_target_accept
        self.cores = cores
        self.seed = seed
        self.interval = interval
        self.gate = gate
        self.cluster = cluster

    # -- fitting -----------------------------------------------------------------------------
    def _default_priors(self):
        raise NotImplementedError

    def _validate_params(self):
        one_of("sampler", self.sampler, SAMPLERS)
        for name in ("draws", "tune", "chains"):
            whole(name, getattr(self, name), minimum=0 if name == "tune" else 1)
        priors = self._default_priors() if self.priors is None else self.priors
        if not isinstance(priors, type(self._default_priors())):
            raise InputError(
                f"priors must be a {type(self._default_priors()).__name__}, "
                f"got {type(priors).__name__}"
            )
        return priors

    def _structure(self, cells: pd.DataFrame, segment: str | list[str]):
        """Validated cells, the padded cells the model is built on, the priors and the key."""
        priors = self._validate_params()
        c = _prepare(cells, segment, self._outcome, self.cluster)
        padded = _pad(c)
        return c, padded, priors, _structure_key(padded, priors)

    def fit(self, cells: pd.DataFrame, segment: str | list[str]):
        """Fit on a cells frame; returns self.

        Parameters
        ----------
        cells : pandas.DataFrame
            One row per (segment, [pre_band], arm) cell with the sufficient statistics described
            in the module docstring. Rows sharing a key are added together.
        segment : str or list of str
            Segment column(s); effects are reported per segment value (joined by ``/`` when
            several columns) and for ``"all"``.

        Returns
        -------
        self
            With ``idata_``, ``effects_``, ``diagnostics_``, ``cells_``, ``segments_``, ``arms_``,
            ``compiled_`` (whether this fit compiled), ``cache_`` (where the compiled model came
            from: ``"memory"``, ``"disk"``, ``"compiled"`` or ``"none"``), ``sampler_`` and
            ``timings_``.
        """
        c, padded, priors, key = self._structure(cells, segment)
        fitted = cellmodel.fit(
            _CACHE,
            key,
            lambda: _model_only(padded, priors),
            _model_data(padded),
            what=f"{self._outcome} uplift",
            published=PUBLISHED,
            settings=cellmodel.SamplerSettings(
                sampler=self.sampler,
                draws=self.draws,
                tune=self.tune,
                chains=self.chains,
                cores=self.cores,
                seed=self.seed,
                target_accept=self.target_accept,
                retry_target_accept=self.retry_target_accept,
            ),
            gate=self.gate,
            tidy=lambda idata: _trim(cellmodel.relabel(idata, _coords(padded)), c),
            report=_hyper,
        )
        idata = fitted.idata
        idata.posterior.attrs.update(
            outcome=self._outcome,
            segment_by=c.segment_by,
            intervention=self.intervention or "",
            target_accept=fitted.target_accept,
        )

        self.cells_ = c.table
        self.segment_by_ = c.segment_by
        self.segments_ = list(c.segments)
        self.clusters_ = list(c.clusters)
        self.arms_ = list(c.treatments)
        self.idata_ = idata
        self.compiled_ = fitted.compiled
        self.cache_ = fitted.cache
        self.sampler_ = fitted.sampler
        self.target_accept_ = fitted.target_accept
        self.timings_ = {"compile_s": fitted.compile_s, "sample_s": fitted.sample_s}
        self.diagnostics_ = fitted.diagnostics
        self.effects_ = self._summarise(c)
        return self

    def _summarise(self, c: _Cells) -> pd.DataFrame:
        interval = settings.INTERVAL if self.interval is None else self.interval
        n = c.stats["n"].sum(axis=1)  # (S, A)
        n_all = n.sum(axis=0)
        post = self.idata_.posterior
        rows = []
        for a_idx, arm in enumerate(c.treatments, start=1):
            for metric, var in _METRIC_VAR.items():
                for s_idx, seg in enumerate([*c.segments, "all"]):
                    draws = post[var].sel(arm=arm, segment=seg).to_numpy()
                    counts = n_all if seg == "all" else n[s_idx]
                    rows.append(
                        {
                            "outcome": self._outcome,
                            "arm": arm,
                            "segment_by": c.segment_by,
                            "segment": seg,
                            "metric": metric,
                            **cellmodel.summarise_draws(draws, interval),
                            "n_treated": int(counts[a_idx]),
                            "n_control": int(counts[0]),
                        }
                    )
        return pd.DataFrame(rows, columns=_SUMMARY_COLUMNS)

    # -- results -----------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "idata_"):
            raise InputError(f"{type(self).__name__} is not fitted yet; call .fit(cells, segment)")

    def summary(self) -> pd.DataFrame:
        """Effects per arm, segment (and ``"all"``) and metric, with interval and P(effect > 0).

        Rows in the schema of the published estimates table
        (:data:`attribution.estimates.EFFECT_COLUMNS`): outcome, arm, segment_by, segment, metric
        (absolute|relative), mean, lo, hi, p_positive, n_treated, n_control, with
        ``intervention``, ``method`` (``"bayesian_cells"``) and ``interval_width`` filled in and
        the columns of a readout or an observational row (experiment_id, estimand...) null.
        Absolute retention effects are differences in proportions (0.021 = 2.1 pp); absolute
        spend effects are currency per customer over the horizon; relative effects are treated /
        control - 1.
        """
        self._check_fitted()
        interval = settings.INTERVAL if self.interval is None else self.interval
        return as_estimate_rows(
            self.effects_,
            intervention=self.intervention,
            method=RANDOMIZED_METHOD,
            interval_width=interval.width,
        )

    def effect_draws(self, metric: str = "absolute", arm: str | None = None) -> xr.DataArray:
        """Posterior draws of the effect per segment, dims (chain, draw, segment), incl. "all".

        With several treatment arms and ``arm=None`` the ``arm`` dimension is kept.
        """
        self._check_fitted()
        if metric not in _METRIC_VAR:
            raise InputError(f"metric must be 'absolute' or 'relative', got {metric!r}")
        da = self.idata_.posterior[_METRIC_VAR[metric]]
        if arm is not None:
            if arm not in self.arms_:
                raise InputError(f"unknown arm {arm!r}; treatment arms are {self.arms_}")
            return da.sel(arm=arm, drop=True)
        return da.isel(arm=0, drop=True) if len(self.arms_) == 1 else da

    def describe(self) -> str:
        """One plain sentence per treatment arm on the overall absolute effect."""
        self._check_fitted()
        interval = settings.INTERVAL if self.interval is None else self.interval
        pct = f"{interval.width:.0%}"
        kind = "" if interval.kind == "eti" else " highest-density"
        eff = self.effects_
        lines = []
        for arm in self.arms_:
            r = eff[(eff.arm == arm) & (eff.segment == "all") & (eff.metric == "absolute")].iloc[0]
            name = self._name(arm)
            verb = "raised" if r["mean"] >= 0 else "lowered"
            sign = 1.0 if r["mean"] >= 0 else -1.0
            mean, lo, hi = abs(r["mean"]), sign * r["lo"], sign * r["hi"]
            lo, hi = min(lo, hi), max(lo, hi)
            what, fmt = self._wording()
            lines.append(
                f"{name} {verb} {what} by {fmt(mean)} ({pct}{kind} interval {fmt(lo, False)} to "
                f"{fmt(hi, False)}), {cellmodel.p_text(r['p_positive'])}"
            )
        return "\n".join(lines)

    def _name(self, arm: str) -> str:
        if self.intervention:
            return self.intervention if len(self.arms_) == 1 else f"{self.intervention} ({arm})"
        return "the treatment" if arm == "treatment" else arm

    def _wording(self):
        raise NotImplementedError

    def plot(self, metric: str = "absolute", ax=None):
        """Forest plot of per-segment and overall effects with their intervals
        (:func:`attribution.forest.forest_plot` of :meth:`summary`).

        Returns the matplotlib Figure (the one ``ax`` belongs to when given).
        """
        self._check_fitted()
        return forest_plot(self.summary(), metric=metric, ax=ax, ylabel=self.segment_by_)


class RetentionUplift(_CellUplift):
    """Hierarchical binomial uplift on retention (active at the horizon), fitted on cells.

    Parameters
    ----------
    intervention : str, optional
        Name used in :meth:`describe` (e.g. ``"recovery gift"``); default: the arm name.
    priors : LogitPriors, optional
        Default ``LogitPriors()``.
    sampler : {"nutpie", "pymc"}
        nutpie by default; falls back to PyMC's NUTS (with a warning) when nutpie fails to
        compile.
    draws, tune, chains : int
        Per chain; defaults 1000, 1000, 4 (bulk ESS well above 400 on the effects).
    target_accept : float
        NUTS target acceptance rate; default 0.95.
    retry_target_accept : float or None
        When a fit has divergences, sample once more with this (smaller-step) target acceptance;
        default 0.99, ``None`` to never retry. The retried fit must pass the gate like any other;
        ``target_accept_`` records the value used.
    cores : int, optional
        Chains run in parallel; default all cores.
    seed : int, optional
        For reproducible draws.
    interval : IntervalSetting, optional
        Default :data:`attribution.settings.INTERVAL`.
    gate : GateSetting, optional
        Default :data:`attribution.settings.GATE`.
    cluster : str, optional
        A cells column of clusters (the unit a test was randomized by: branch, team, store):
        each cluster gets a random intercept, so intervals carry the between-cluster variation
        (see the module docstring). Default: customers are independent.

    Examples
    --------
    >>> m = RetentionUplift(intervention="recovery gift", seed=1)
    >>> m = m.fit(cells, segment="tier")  # doctest: +SKIP
    >>> m.summary()  # doctest: +SKIP
    >>> print(m.describe())  # doctest: +SKIP
    recovery gift raised retention by 2.1 pp (90% interval 1.4 to 2.9), P(>0) > 0.99
    """

    _outcome = "retention"

    def _default_priors(self):
        return LogitPriors()

    def _wording(self):
        def fmt(x, unit=True):
            return fmt_pp(x, unit=unit)

        return "retention", fmt


class SpendUplift(_CellUplift):
    """Hierarchical hurdle uplift on revenue or cost-to-serve, fitted on cells.

    Parameters
    ----------
    family : {"revenue", "cost_to_serve"}
        Which value family of the cells to model.
    **kwargs
        As for :class:`RetentionUplift`; ``priors`` is a :class:`SpendPriors`.

    Examples
    --------
    >>> m = SpendUplift(family="revenue", seed=1).fit(cells, segment="tier")  # doctest: +SKIP
    >>> m.effect_draws("absolute").sel(segment="all").mean()  # doctest: +SKIP
    """

    def __init__(self, family: str = "revenue", **kwargs):
        super().__init__(**kwargs)
        self.family = family

    @property
    def _outcome(self) -> str:  # type: ignore[override]
        return self.family

    def _validate_params(self):
        if self.family not in SPEND_FAMILIES:
            raise InputError(f"family must be one of {list(SPEND_FAMILIES)}, got {self.family!r}")
        return super()._validate_params()

    def _default_priors(self):
        return SpendPriors()

    def _wording(self):
        def fmt(x, unit=True):
            return f"{x:,.2f}" + (" per customer" if unit else "")

        return self.family.replace("_", " "), fmt
