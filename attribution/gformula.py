"""Bayesian standardization (the g-formula) on cells: observational effects with credible intervals.

Route 2 of the observational attribution (issue 5). Given one row per customer with a treatment
flag, the confounders of the identified adjustment set and the outcomes
(:class:`attribution.observational.ObservationalData`), this module

1. collapses the customers into cells with DuckDB: numeric confounders are cut into quantile bands
   (cut points computed once over everyone), categorical confounders keep their levels, and each
   (treated, band combination) cell carries the sufficient statistics of ``attribution/cells.py``
   (``n`` and retained count; for revenue and cost-to-serve ``npos``, ``sum``, ``sumlog``,
   ``sumlog2``) and, per numeric confounder whose values vary inside a band, the cell's mean of
   ``z = sign(x) ln(1 + |x|)``;
2. fits an outcome model with PyMC on the cells, exactly equal to the row-level likelihood of a
   model whose customers share their cell's terms:

   * retention: binomial, ``logit p = a + X beta + Z lambda + t (delta + Xm gamma)``;
   * revenue / cost-to-serve: a hurdle. ``P(>0)`` logistic in the same terms; the positive values
     gamma with ``log E[Y | Y > 0]`` linear in the same terms and one shape (written with the
     sufficient statistics ``npos``, ``sum`` and ``sumlog``). A gamma GLM with a log link
     estimates the mean consistently whenever the mean model is right, whatever the shape of the
     distribution; a lognormal's mean ``exp(mu + sigma^2 / 2)`` hangs on its sigma being right,
     and window sums of monthly spend are not lognormal: on the simulator's outreach question the
     lognormal hurdle put the revenue ATE at 60.6 [38.4, 85.1] against a truth of 19.7 (20k
     customers) and 44.3 [40.9, 47.6] against 17.5 (1M);

   ``X`` holds the confounders' bands / levels (reference coding, columns centred on their
   population mean), ``Z`` the cell's within-band position of each numeric confounder (its mean
   ``z`` minus the band's mean over everyone; one slope per confounder, shared by its bands),
   ``t`` the treatment, ``Xm`` the columns of the effect modifiers (by default every confounder,
   so the treated and untreated outcome surfaces may differ; with a segment the segment column is
   always a modifier). Coefficients get weakly informative normal priors (:class:`GFormulaPriors`),
   the interactions tighter ones than the main effects. Bands alone leave the variation inside a
   band unadjusted: when treatment is targeted on a continuous score the treated sit higher
   inside each band than the untreated, which on the simulator's outreach question (20k) put the
   revenue ATE at 51.0 [31.3, 71.3] against a truth of 19.7; with the slopes 20.5 [2.7, 40.1];
3. standardizes per posterior draw: ``E[Y | t, cell]`` at both arms for every observed cell,
   averaged with the cells' customer counts over everyone (ATE) and over the treated cells
   (ATT), overall and per segment; the effect is ``E[Y1] - E[Y0]`` (absolute) and
   ``E[Y1] / E[Y0] - 1`` (relative). For the hurdle, ``E[Y | t, cell] = P(>0) E[Y | Y > 0, t,
   cell]``.

The standardization happens inside the model, so the posterior holds only a few numbers per draw
(``effect_abs`` and ``effect_rel`` with dims (estimand, segment)) and the diagnostics gate judges
exactly the published quantities. Compiled models are cached per shape, and shapes are padded
(:func:`_pad`: cells, confounder columns and coefficients rounded up), so a refit, a pooled and
a single trial, or another store of similar size swaps its data into one compiled model.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import arviz as az
import duckdb
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from attribution import cellmodel, store
from attribution import diagnostics as _diagnostics
from attribution.cells import hurdle_sql
from attribution.config import Config
from attribution.errors import InputError
from attribution.estimates import EFFECT_COLUMNS, as_estimate_rows
from attribution.forest import forest_plot
from attribution.formatting import fmt_pp
from attribution.settings import IntervalSetting
from attribution.validation import one_of, whole

if TYPE_CHECKING:  # the data class lives in attribution/observational.py
    from attribution.observational import ObservationalData

__all__ = [
    "METHOD",
    "OUTCOMES",
    "GFormulaFit",
    "GFormulaPriors",
    "clear_cache",
    "collapse",
    "compile_count",
    "fit_gformula",
]

METHOD = "bayes_gformula_cells"
OUTCOMES = {"retention": "retained", "revenue": "revenue", "cost_to_serve": "cost_to_serve"}
ESTIMANDS = ("ate", "att")
PUBLISHED = ("effect_abs", "effect_rel")
_EFFECT_COLUMNS = [
    "outcome", "segment_by", "segment", "metric", "estimand", "mean", "lo", "hi", "p_positive",
    "n_treated", "n_control", "method",
]  # fmt: skip
#: Columns of :meth:`GFormulaFit.summary`: the estimate schema.
SUMMARY_COLUMNS = EFFECT_COLUMNS
_METRIC_VAR = {"absolute": "effect_abs", "relative": "effect_rel"}
_ROWS = "gformula_rows"  # name the frame is registered under in the private DuckDB connection


@dataclass(frozen=True)
class GFormulaPriors:
    """Priors of the g-formula outcome model; every default in one place.

    Logit parts (retention, and the positive share of a hurdle): intercept
    ``Normal(0, intercept_scale)``, confounder band / level offsets ``Normal(0, confounder_scale)``,
    the average treatment term ``Normal(0, effect_scale)`` and treatment x modifier terms
    ``Normal(0, modifier_scale)``. Log-mean part of a hurdle (the log of the mean positive value,
    centred on the log of the overall mean positive value, in units of the sd of the log
    values): ``log_intercept_scale``, ``log_confounder_scale``, ``log_effect_scale``,
    ``log_modifier_scale`` likewise, and the gamma shape ``log(shape) ~ Normal(log_shape_loc,
    log_shape_scale)``.
    """

    intercept_scale: float = 2.5
    confounder_scale: float = 1.5
    effect_scale: float = 1.0
    modifier_scale: float = 0.5
    log_intercept_scale: float = 1.0
    log_confounder_scale: float = 1.0
    log_effect_scale: float = 1.0
    log_modifier_scale: float = 0.5
    log_shape_loc: float = 0.0
    log_shape_scale: float = 1.5

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if name != "log_shape_loc" and not (math.isfinite(value) and value > 0):
                raise InputError(f"prior {name} must be a positive number, got {value!r}")


# --------------------------------------------------------------------------------------------
# Rows -> cells (DuckDB)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _StrataCells:
    """Cells of one outcome and how the confounders were coded."""

    table: pd.DataFrame  # confounder columns (band index or level), treated, statistics
    levels: dict[str, list[str]]  # confounder -> labels of its bands / levels, in code order
    cuts: dict[str, list[float]]  # numeric confounder -> upper edges of its bands but the last
    slopes: list[str]  # numeric confounders with values varying inside a band (``<col>_z``)


def collapse(
    data: ObservationalData, outcome: str, *, bands: int = 4, slopes: bool = True
) -> pd.DataFrame:
    """Collapse an observational frame into (treated, confounder band combination) cells.

    Parameters
    ----------
    data : ObservationalData
        One row per customer (see :mod:`attribution.observational`).
    outcome : {"retention", "revenue", "cost_to_serve"}
        Which sufficient statistics to compute.
    bands : int
        Quantile bands per numeric confounder (fewer when values tie).
    slopes : bool
        Add ``<col>_z``, the cell's mean of ``sign(x) ln(1 + |x|)``, for each numeric
        confounder whose values vary inside a band (what the within-band slopes are fitted on).

    Returns
    -------
    pandas.DataFrame
        One row per non-empty cell: each confounder (band label or level), ``treated`` (0/1),
        ``n`` and, for retention, ``n_active``; for revenue / cost-to-serve ``npos``, ``sum``,
        ``sumlog``, ``sumlog2``; with ``slopes`` the ``<col>_z`` means. ``attrs["cuts"]`` holds
        each numeric confounder's cut points.

    Examples
    --------
    >>> cells = collapse(data, "retention", bands=4)  # doctest: +SKIP
    >>> int(cells["n"].sum()) == len(data.frame)  # doctest: +SKIP
    True
    """
    one_of("outcome", outcome, OUTCOMES)
    whole("bands", bands, minimum=2)
    _check_data(data, outcome)
    c = _collapse(data, outcome, bands, slopes=bool(slopes))
    out = c.table.copy()
    for col, labels in c.levels.items():
        out[col] = np.asarray(labels, dtype=object)[out[col].to_numpy()]
    out.attrs["cuts"] = {k: list(v) for k, v in c.cuts.items()}
    return out


def _check_data(data, outcome: str) -> None:
    """Everything the cells need, checked before any SQL runs."""
    for attr in ("frame", "confounders", "numeric", "categorical"):
        if not hasattr(data, attr):
            raise InputError(
                f"data must be an ObservationalData (attribution.observational); it has no {attr!r}"
            )
    frame = data.frame
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"data.frame must be a pandas DataFrame, got {type(frame).__name__}")
    ycol = OUTCOMES[outcome]
    confounders = list(data.confounders)
    if len(set(confounders)) != len(confounders):
        raise InputError(f"confounders repeat a column: {confounders}")
    missing = [c for c in ["customer_id", "treated", ycol, *confounders] if c not in frame.columns]
    if missing:
        raise InputError(
            f"observational frame has no column(s) {missing}; it has {list(frame.columns)}"
        )
    for col in confounders:
        if col in ("customer_id", "treated", *OUTCOMES.values()):
            raise InputError(f"confounder {col!r} is the id, the treatment or an outcome")
        if col not in data.numeric and col not in data.categorical:
            raise InputError(f"confounder {col!r} is listed neither as numeric nor as categorical")
        store.quote_identifier(col)
    if len(frame) == 0:
        raise InputError("observational frame has no customers")
    for col in ["treated", ycol, *confounders]:
        _no_nulls(frame, col)
    treated = frame["treated"]
    bad = ~treated.isin([0, 1, True, False])
    if bad.any():
        _raise_row(frame, bad, "treated", "must be 0 or 1")
    n_treated = int(treated.astype(int).sum())
    if n_treated == 0 or n_treated == len(frame):
        side = "treated" if n_treated == 0 else "untreated"
        raise InputError(
            f"treatment {getattr(data, 'treatment', 'treated')!r} has no {side} customers "
            f"({n_treated} of {len(frame)} treated); there is nothing to compare"
        )
    y = frame[ycol]
    if outcome == "retention":
        bad = ~y.isin([0, 1, True, False])
        if bad.any():
            _raise_row(frame, bad, ycol, "must be 0 or 1")
    else:
        try:
            values = pd.to_numeric(y).astype(float)
        except (TypeError, ValueError):
            raise InputError(f"outcome column {ycol!r} must be numeric") from None
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            _raise_row(frame, bad, ycol, "must be a finite number >= 0")
    for col in data.numeric:
        if col in confounders:
            try:
                values = pd.to_numeric(frame[col]).astype(float)
            except (TypeError, ValueError):
                raise InputError(f"numeric confounder {col!r} holds non-numbers") from None
            bad = ~np.isfinite(values)
            if bad.any():
                _raise_row(frame, bad, col, "must be a finite number")


def _no_nulls(frame: pd.DataFrame, col: str) -> None:
    nulls = frame[col].isna()
    if nulls.any():
        _raise_row(frame, nulls, col, f"is null ({int(nulls.sum())} null value(s) in all)")


def _raise_row(frame: pd.DataFrame, bad: pd.Series, col: str, what: str) -> None:
    pos = int(np.flatnonzero(np.asarray(bad))[0])
    cid = frame["customer_id"].iloc[pos]
    raise InputError(
        f"observational frame column {col!r} {what}: row {pos} (customer {cid}) has "
        f"{frame[col].iloc[pos]!r}"
    )


def _collapse(
    data, outcome: str, bands: int, slopes: bool = True, given: dict | None = None
) -> _StrataCells:
    """Cells via DuckDB: cut points once per numeric confounder, then one GROUP BY.

    With ``slopes``, each cell also carries the mean of ``sign(x) ln(1 + |x|)`` of every numeric
    confounder whose values vary inside a band (``<col>_z``), for the within-band slopes.
    ``given`` maps numeric confounders to cut points chosen by the caller (upper edges of every
    band but the last); the others get ``bands`` quantile bands over everyone.
    """
    given = given or {}
    ycol = OUTCOMES[outcome]
    confounders = list(data.confounders)
    numeric = [c for c in confounders if c in data.numeric]
    rows = data.frame[["treated", ycol, *confounders]]
    con = duckdb.connect()
    try:
        con.register(_ROWS, rows)
        probs = [i / bands for i in range(1, bands)]
        cuts: dict[str, list[float]] = {}
        sloped: list[str] = []
        for col in numeric:
            q = store.quote_identifier(col)
            if col in given:  # the caller's cut points: no quantiles to compute
                top, distinct = con.execute(
                    f"SELECT max({q}::DOUBLE), count(DISTINCT {q}) FROM {_ROWS}"
                ).fetchone()
                got = given[col]
            else:
                got, top, distinct = con.execute(
                    f"SELECT quantile_disc({q}::DOUBLE, ?::DOUBLE[]), max({q}::DOUBLE), "
                    f"count(DISTINCT {q}) FROM {_ROWS}",
                    [probs],
                ).fetchone()
            cuts[col] = sorted({float(v) for v in got if float(v) < float(top)})
            if slopes and distinct > len(cuts[col]) + 1:
                sloped.append(col)
        select, params = [], []
        for i, col in enumerate(confounders):
            q = store.quote_identifier(col)
            if col in cuts:
                whens = " ".join(f"WHEN {q}::DOUBLE <= ? THEN {j}" for j in range(len(cuts[col])))
                select.append(
                    f"CASE {whens} ELSE {len(cuts[col])} END AS k{i}" if whens else f"0 AS k{i}"
                )
                params += cuts[col]
            else:
                select.append(f"CAST({q} AS VARCHAR) AS k{i}")
        for i, col in enumerate(sloped):
            q = store.quote_identifier(col)
            select.append(f"sign({q}::DOUBLE) * ln(1 + abs({q}::DOUBLE)) AS z{i}")
        # the hurdle statistics of the randomized cells (cells.sql), summed as exact decimals
        y = store.quote_identifier(ycol)
        if outcome == "retention":
            stats, y = "SUM(y) AS n_active", f"{y}::DOUBLE"
        else:
            stats, y = hurdle_sql("y"), f"CAST({y} AS DECIMAL(38, 6))"
        stats += "".join(f", AVG(z{i}) AS z{i}" for i in range(len(sloped)))
        keys = "".join(f"k{i}, " for i in range(len(confounders)))
        sql = (
            f"SELECT {keys}treated, COUNT(*) AS n, {stats} FROM ("
            f"SELECT {''.join(s + ', ' for s in select)}CAST(treated AS INTEGER) AS treated, "
            f"{y} AS y FROM {_ROWS}) "
            f"GROUP BY {keys}treated ORDER BY {keys}treated"
        )
        table = con.execute(sql, params).df()
    finally:
        con.close()

    levels: dict[str, list[str]] = {}
    for i, col in enumerate(confounders):
        key = f"k{i}"
        if col in cuts:
            levels[col] = _band_labels(cuts[col])
            table[key] = table[key].astype("int64")
        else:
            labels = sorted(table[key].unique().tolist())
            levels[col] = labels
            table[key] = table[key].map({v: j for j, v in enumerate(labels)}).astype("int64")
    table = table.rename(
        columns={
            **{f"k{i}": col for i, col in enumerate(confounders)},
            **{f"z{i}": f"{col}_z" for i, col in enumerate(sloped)},
        }
    )
    for col in ("treated", "n", "n_active", "npos"):
        if col in table:
            table[col] = table[col].astype("int64")
    return _StrataCells(table=table, levels=levels, cuts=cuts, slopes=sloped)


def _band_labels(cuts: list[float]) -> list[str]:
    if not cuts:
        return ["all"]
    edges = [f"{c:.4g}" for c in cuts]
    labels = [f"<= {edges[0]}"]
    labels += [f"({lo}, {hi}]" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return labels + [f"> {edges[-1]}"]


# --------------------------------------------------------------------------------------------
# Cells -> model arrays (one stratum = one confounder band combination, both arms)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Strata:
    outcome: str
    codes: np.ndarray  # (S, J) confounder codes per stratum
    index: np.ndarray  # (S, J) per confounder: 0 at its reference level, else 1 + coef position
    index_m: np.ndarray  # (S, Jm) the same over the effect modifiers' coefficients
    xbar: np.ndarray  # (P,) population mean of each reference-coded column (the centring)
    xbar_m: np.ndarray  # (Q,)
    coef: list[str]
    mod: list[str]
    slopes: list[str]  # numeric confounders with a within-band slope
    segments: list[str]  # segment labels, then "all"
    counts: np.ndarray  # (G + 1, 2) customers per segment and arm
    cell_stratum: np.ndarray  # (C,) stratum of each observed (stratum, arm) cell
    cell_t: np.ndarray  # (C,) its arm (0 untreated, 1 treated)
    cell_z: np.ndarray  # (C, K) its mean z of each sloped confounder minus the band's mean
    cell_stats: dict[str, np.ndarray]  # each (C,): the cell's sufficient statistics
    W: np.ndarray  # (2, G + 1, C) standardization weights: estimand x segment x cell


def _stat_names(outcome: str) -> list[str]:
    if outcome == "retention":
        return ["n", "n_active"]
    return ["n", "npos", "sum", "sumlog", "sumlog2"]


def _strata(
    c: _StrataCells, outcome: str, confounders: list[str], modifiers: list[str], segment: str | None
) -> _Strata:
    table = c.table
    if confounders:
        keys = table[confounders].to_numpy(dtype=np.int64)
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
    else:
        uniq, inverse = np.zeros((1, 0), dtype=np.int64), np.zeros(len(table), dtype=np.int64)
    S = len(uniq)
    arm = table["treated"].to_numpy(dtype=np.int64)
    cell_stats = {name: table[name].to_numpy(dtype=float) for name in _stat_names(outcome)}
    n_c = cell_stats["n"]
    n_s = np.bincount(inverse, weights=n_c, minlength=S)

    def design(cols: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        # Reference coding without the dense matrix: a stratum's row of it has one 1 per
        # confounder, so X beta is a sum of J gathered coefficients (J << P). Dense matrices
        # of (cells x columns) did not fit in cache at a million customers (45 ms a gradient).
        index, means, names = [], [], []
        for col in cols:
            j = confounders.index(col)
            labels = c.levels[col]
            if len(labels) < 2:
                continue
            code = uniq[:, j]
            index.append(np.where(code == 0, 0, len(names) + code))
            for lvl in range(1, len(labels)):
                means.append(float(n_s @ (code == lvl)) / n_s.sum())
                names.append(f"{col}={labels[lvl]}")
        idx = np.column_stack(index) if index else np.zeros((S, 0), dtype=np.int64)
        return idx.astype(np.int64), np.asarray(means, dtype=float), names

    index, xbar, coef = design(confounders)
    index_m, xbar_m, mod = design(modifiers)
    slopes = [col for col in c.slopes if col in confounders]
    cell_z = np.zeros((len(table), len(slopes)))
    for k, col in enumerate(slopes):
        # Centred inside each band, so the slope is what varies within bands and the band
        # offsets keep the levels (less posterior correlation between the two).
        z = table[f"{col}_z"].to_numpy(dtype=float)
        band = table[col].to_numpy(dtype=np.int64)
        band_mean = np.bincount(band, weights=n_c * z) / np.maximum(np.bincount(band, n_c), 1)
        cell_z[:, k] = z - band_mean[band]

    if segment is None:
        seg_code = np.zeros(len(table), dtype=np.int64)
        seg_labels: list[str] = []
    else:
        seg_code = table[segment].to_numpy(dtype=np.int64)
        seg_labels = list(c.levels[segment])
    G = len(seg_labels)
    groups = [seg_code == g for g in range(G)] + [np.ones(len(table), dtype=bool)]
    W = np.zeros((2, G + 1, len(table)))
    counts = np.zeros((G + 1, 2), dtype=np.int64)
    for g, mask in enumerate(groups):
        counts[g] = [int(n_c[mask & (arm == t)].sum()) for t in (0, 1)]
        label = "all" if g == G else f"{segment}={seg_labels[g]}"
        if counts[g, 0] == 0 or counts[g, 1] == 0:
            side = "untreated" if counts[g, 0] == 0 else "treated"
            raise InputError(
                f"segment {label} has no {side} customers; its effect cannot be estimated "
                "(choose another segment column or fewer bands)"
            )
        W[0, g] = np.where(mask, n_c, 0.0) / counts[g].sum()
        W[1, g] = np.where(mask & (arm == 1), n_c, 0.0) / counts[g, 1]
    if "all" in seg_labels:
        raise InputError(f"segment {segment!r} has a level named 'all', which is reserved")
    return _Strata(
        outcome=outcome,
        codes=uniq,
        index=index,
        index_m=index_m,
        xbar=xbar,
        xbar_m=xbar_m,
        coef=coef,
        mod=mod,
        slopes=slopes,
        segments=[*seg_labels, "all"],
        counts=counts,
        cell_stratum=inverse.astype(np.int64),
        cell_t=arm,
        cell_z=cell_z,
        cell_stats=cell_stats,
        W=W,
    )


def _padded_size(n: int, minimum: int = 16) -> int:
    """``n`` rounded up to 2^k x {1, 1.25, 1.5, 1.75}: shapes repeat, at most 25% is padding."""
    if n <= minimum:
        return minimum
    base = 1 << ((n - 1).bit_length() - 1)
    return next(base * q // 4 for q in (5, 6, 7, 8) if base * q // 4 >= n)


#: Fewest cells, confounder index columns and coefficients a compiled model is built for.
_MIN_CELLS, _MIN_COLUMNS, _MIN_COEFS = 256, 2, 32
_COEF_PAD = "__pad{}__"


def _pad(s: _Strata) -> _Strata:
    """Cells, index columns and coefficients padded so shapes repeat across fits.

    Cells to :func:`_padded_size` (at least :data:`_MIN_CELLS`), confounder and modifier index
    columns and their coefficients to a power of two (at least :data:`_MIN_COLUMNS` and
    :data:`_MIN_COEFS`; none stays none). A refit of similar data, a pooled and a single trial, a
    small store and a notebook's then share one compiled model per kind. Padding changes no
    published number: empty cells carry no customers and zero weight, a padded index column
    points at the fixed zero (every row at its reference level) and a padded coefficient is
    used by no row, so it only adds a prior-only dimension that integrates out; padded
    coefficients are dropped before anything is reported or gated (``cellmodel.unpad``).
    """
    extra = _padded_size(len(s.cell_t), minimum=_MIN_CELLS) - len(s.cell_t)

    def grow(a: np.ndarray, k: int, axis: int = 0) -> np.ndarray:
        shape = list(a.shape)
        shape[axis] = k
        return np.concatenate([a, np.zeros(shape, dtype=a.dtype)], axis=axis)

    def columns(index: np.ndarray) -> np.ndarray:
        more = cellmodel.padded_count(index.shape[1], _MIN_COLUMNS) - index.shape[1]
        return grow(index, more, axis=1)

    more_coef = cellmodel.padded_count(len(s.coef), _MIN_COEFS) - len(s.coef)
    more_mod = cellmodel.padded_count(len(s.mod), _MIN_COEFS) - len(s.mod)
    return dataclasses.replace(
        s,
        index=columns(s.index),
        index_m=columns(s.index_m),
        xbar=grow(s.xbar, more_coef),
        xbar_m=grow(s.xbar_m, more_mod),
        coef=[*s.coef, *(_COEF_PAD.format(i) for i in range(more_coef))],
        mod=[*s.mod, *(_COEF_PAD.format(i) for i in range(more_mod))],
        cell_stratum=grow(s.cell_stratum, extra),
        cell_t=grow(s.cell_t, extra),
        cell_z=grow(s.cell_z, extra),
        cell_stats={k: grow(v, extra) for k, v in s.cell_stats.items()},
        W=grow(s.W, extra, axis=2),
    )


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
def _data_arrays(s: _Strata) -> dict[str, np.ndarray]:
    """Everything that changes with the data, by pm.Data name (what nutpie's with_data swaps).

    Everything is per observed (stratum, arm) cell: the likelihood at the cell's own arm, the
    standardization at both arms with the weights ``W``.
    """
    out = {
        "xbar": s.xbar,
        "xbar_m": s.xbar_m,
        "W": s.W,
        "index_c": s.index[s.cell_stratum],
        "index_mc": s.index_m[s.cell_stratum],
        "zc": s.cell_z,
        "tc": s.cell_t.astype(float),
        "n": s.cell_stats["n"],
    }
    if not s.coef:
        for name in ("xbar", "index_c"):
            del out[name]
    if not s.mod:
        for name in ("xbar_m", "index_mc"):
            del out[name]
    if not s.slopes:
        del out["zc"]
    if s.outcome == "retention":
        out["n_active"] = s.cell_stats["n_active"]
        return out
    k, total_y, s1, s2 = (s.cell_stats[name] for name in ("npos", "sum", "sumlog", "sumlog2"))
    total = k.sum()
    if total == 0:
        raise InputError(f"no customer has a positive {s.outcome}; a gamma cannot be fitted")
    mean_log = s1.sum() / total
    var = s2.sum() / total - mean_log**2
    scale = math.sqrt(var) if total > 1 and var > 1e-12 else 1.0
    out.update(npos=k, sum_positive=total_y, sumlog=s1)
    out["log_center"] = np.array(math.log(total_y.sum() / total))
    out["log_scale"] = np.array(scale)
    return out


def _coords(s: _Strata) -> dict[str, list[str]]:
    return {
        "cell": [str(i) for i in range(len(s.cell_t))],
        "t": ["untreated", "treated"],
        "coef": list(s.coef),
        "mod": list(s.mod),
        "sloped": list(s.slopes),
        "confounder": [str(i) for i in range(s.index.shape[1])],
        "modifier": [str(i) for i in range(s.index_m.shape[1])],
        "estimand": list(ESTIMANDS),
        "segment": list(s.segments),
    }


@dataclass(frozen=True)
class _Linear:
    """One linear predictor: ``a + (X - xbar) beta + z slope + t (delta + (Xm - xbar_m) gamma)``.

    ``X`` is reference coded; a row of it is given by its index row (see :func:`_strata`), so
    ``X beta`` is the sum of the gathered coefficients and the centring is one dot product.
    ``z`` holds the cell's within-band position of each sloped numeric confounder.
    """

    intercept: pt.TensorVariable
    beta: pt.TensorVariable | None
    slope: pt.TensorVariable | None
    effect: pt.TensorVariable
    gamma: pt.TensorVariable | None

    @staticmethod
    def _terms(coefs, index, xbar):
        ext = pt.concatenate([pt.zeros(1), coefs])
        return ext[index].sum(axis=1) - pt.dot(xbar, coefs)

    def arms(self, d: dict, cells) -> tuple[pt.TensorVariable, pt.TensorVariable]:
        """Per cell: the linear predictor untreated, and the treated one (both arms)."""
        base = self.intercept + pt.zeros(cells)
        if self.beta is not None:
            base = base + self._terms(self.beta, d["index_c"], d["xbar"])
        if self.slope is not None:
            base = base + pt.dot(d["zc"], self.slope)
        effect = self.effect
        if self.gamma is not None:
            effect = effect + self._terms(self.gamma, d["index_mc"], d["xbar_m"])
        return base, base + effect


def _linear(prefix: str, scales: tuple[float, float, float, float], s: _Strata) -> _Linear:
    s_int, s_conf, s_eff, s_mod = scales
    return _Linear(
        intercept=pm.Normal(f"{prefix}intercept", 0.0, s_int),
        beta=pm.Normal(f"{prefix}beta", 0.0, s_conf, dims="coef") if s.coef else None,
        slope=pm.Normal(f"{prefix}slope", 0.0, s_conf, dims="sloped") if s.slopes else None,
        effect=pm.Normal(f"{prefix}effect", 0.0, s_eff),
        gamma=pm.Normal(f"{prefix}gamma", 0.0, s_mod, dims="mod") if s.mod else None,
    )


def _binomial(k, n, eta):
    """``k log p + (n - k) log(1 - p)``, ``p = sigmoid(eta)``, with one softplus per cell."""
    return pt.sum(k * eta - n * pt.softplus(eta))


# Lanczos approximation (g = 7, 9 terms; relative error about 1e-15 for x > 0), as in Numerical
# Recipes and Python's own math.lgamma before 3.x: log Gamma in elementary operations only.
_LANCZOS_G = 7.0
_LANCZOS = (
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
)


def _lgamma(x):
    """``log Gamma(x)`` for ``x > 0`` in elementary operations (Lanczos, with one recurrence).

    PyTensor's ``gammaln`` compiles to a call into a C library whose address numba embeds in
    the machine code, so the compiled model cannot be stored on disk
    (:mod:`attribution.compiledcache`) and every new process compiled it again. This form (and
    its gradient, which PyTensor derives from it) has no such call. ``log Gamma(x) =
    log Gamma(x + 1) - log x``, and the Lanczos series is used at ``x + 1 >= 1``.
    """
    series = _LANCZOS[0] + sum(c / (x + i) for i, c in enumerate(_LANCZOS[1:], start=1))
    t = x + _LANCZOS_G + 0.5
    lgamma_x1 = 0.5 * math.log(2.0 * math.pi) + (x + 0.5) * pt.log(t) - t + pt.log(series)
    return lgamma_x1 - pt.log(x)


def _gamma(k, sum_y, sum_log, log_mean, shape):
    """Sum over cells of the gamma log-likelihood of the positive values, from k, sum, sum of logs.

    Per value ``a log(a / m) - lgamma(a) + (a - 1) log y - a y / m`` with mean ``m`` and shape
    ``a``; summed over a cell's ``k`` values it needs only ``k``, ``sum y`` and ``sum log y``.
    """
    return pt.sum(
        k * shape * (pt.log(shape) - log_mean)
        - k * _lgamma(shape)
        + (shape - 1.0) * sum_log
        - shape * sum_y * pt.exp(-log_mean)
    )


def _build_model(s: _Strata, priors: GFormulaPriors) -> tuple[pm.Model, dict]:
    """The PyMC model; returns it and per-(cell, arm) tensors (for the tests)."""
    data = _data_arrays(s)
    with pm.Model(coords=_coords(s)) as model:
        # Containers only for the terms the model has: nutpie drops unused data, and swapping
        # data into a container it dropped fails (``modifiers=[]`` has no modifier index).
        d = {
            name: pm.Data(name, data[name], dims=dims)
            for name, dims in (
                ("xbar", "coef"),
                ("xbar_m", "mod"),
                ("index_c", ("cell", "confounder")),
                ("index_mc", ("cell", "modifier")),
                ("zc", ("cell", "sloped")),
                ("tc", "cell"),
                ("n", "cell"),
            )
            if name in data
        }
        W = pm.Data("W", data["W"], dims=("estimand", "segment", "cell"))
        n, tc, cells = d["n"], d["tc"], len(s.cell_t)
        logit_scales = (
            priors.intercept_scale,
            priors.confounder_scale,
            priors.effect_scale,
            priors.modifier_scale,
        )
        if s.outcome == "retention":
            k = pm.Data("n_active", data["n_active"], dims="cell")
            eta0, eta1 = _linear("", logit_scales, s).arms(d, cells)
            pm.Potential("loglik_retained", _binomial(k, n, eta0 + tc * (eta1 - eta0)))
            _publish(pm.math.sigmoid(eta0), pm.math.sigmoid(eta1), W)
            return model, {"eta": pt.stack([eta0, eta1], axis=1)}
        k = pm.Data("npos", data["npos"], dims="cell")
        sum_y = pm.Data("sum_positive", data["sum_positive"], dims="cell")
        sum_log = pm.Data("sumlog", data["sumlog"], dims="cell")
        center = pm.Data("log_center", data["log_center"])
        scale = pm.Data("log_scale", data["log_scale"])
        eta0, eta1 = _linear("positive_", logit_scales, s).arms(d, cells)
        log_scales = (
            priors.log_intercept_scale,
            priors.log_confounder_scale,
            priors.log_effect_scale,
            priors.log_modifier_scale,
        )
        lv0, lv1 = _linear("log_", log_scales, s).arms(d, cells)
        log_mean0, log_mean1 = center + scale * lv0, center + scale * lv1
        log_shape = pm.Normal("log_shape", priors.log_shape_loc, priors.log_shape_scale)
        shape = pt.exp(log_shape)
        pm.Potential("loglik_positive", _binomial(k, n, eta0 + tc * (eta1 - eta0)))
        log_mean_c = log_mean0 + tc * (log_mean1 - log_mean0)
        pm.Potential("loglik_values", _gamma(k, sum_y, sum_log, log_mean_c, shape))
        _publish(
            pm.math.sigmoid(eta0) * pt.exp(log_mean0), pm.math.sigmoid(eta1) * pt.exp(log_mean1), W
        )
        return model, {
            "eta": pt.stack([eta0, eta1], axis=1),
            "log_mean": pt.stack([log_mean0, log_mean1], axis=1),
            "shape": shape,
        }


def _publish(mean0, mean1, W) -> None:
    """Standardized means and effects from per-cell means at both arms and the weights W."""
    means = pt.stack(
        [pt.tensordot(W, mean0, axes=[[2], [0]]), pt.tensordot(W, mean1, axes=[[2], [0]])],
        axis=-1,
    )  # (estimand, segment, t)
    pm.Deterministic("potential_mean", means, dims=("estimand", "segment", "t"))
    pm.Deterministic("effect_abs", means[..., 1] - means[..., 0], dims=("estimand", "segment"))
    pm.Deterministic(
        "effect_rel", means[..., 1] / means[..., 0] - 1.0, dims=("estimand", "segment")
    )


# --------------------------------------------------------------------------------------------
# Compile cache and sampling
# --------------------------------------------------------------------------------------------
_CACHE = cellmodel.ModelCache()


def compile_count() -> int:
    """How many times nutpie has compiled a g-formula model in this process (cache misses)."""
    return _CACHE.compilations


def clear_cache() -> None:
    """Forget every cached compiled g-formula model."""
    _CACHE.clear()


def _structure_key(s: _Strata, priors: GFormulaPriors) -> tuple:
    """What the compiled g-formula model depends on."""
    kind = "retention" if s.outcome == "retention" else "spend"
    return (
        kind,
        len(s.cell_t),
        s.index.shape[1],
        s.index_m.shape[1],
        len(s.coef),
        len(s.mod),
        len(s.slopes),
        len(s.segments),
        priors,
    )


# --------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------
@dataclass
class GFormulaFit:
    """A fitted Bayesian standardization: effects, draws, diagnostics and the cells behind them.

    Attributes
    ----------
    outcome, treatment : str
    segment_by : str or None
        The segment column effects are broken down by (None: overall only).
    effects : pandas.DataFrame
        See :meth:`summary`.
    draws : dict
        ``{"ate": array, "att": array}``: draws of the overall absolute effect (chains
        concatenated), for the money layer.
    idata : arviz.InferenceData
        Posterior with ``effect_abs``, ``effect_rel`` (dims estimand, segment) and
        ``potential_mean`` (estimand, segment, t) beside the model's coefficients.
    diagnostics_ : attribution.diagnostics.Diagnostics
        The gate's verdict on the published effects.
    cells : pandas.DataFrame
        The cells the model was fitted on (confounder bands / levels as labels).
    cuts : dict
        Numeric confounder -> upper edges of its bands (all but the last).
    confounders, modifiers : list of str
    slopes : list of str
        Numeric confounders fitted with a within-band slope.
    n_cells, n_customers : int
    sampler : str
        ``"nutpie"`` or ``"pymc"``.
    compiled : bool
        Whether this fit compiled its model (False: a cached one was reused).
    cache : str
        Where the compiled model came from: ``"memory"``, ``"disk"``, ``"compiled"`` or
        ``"none"`` (PyMC sampled).
    timings : dict
        ``collapse_s``, ``compile_s``, ``sample_s``.
    interval : IntervalSetting
    as_of : date or None
    horizon_months : int or None
    basis : str
        What the cells are, in a sentence (empty: confounder band combinations).
    likelihood_scale : float
        What each row counted in the likelihood (below 1 when rows repeat customers).
    """

    outcome: str
    treatment: str
    segment_by: str | None
    effects: pd.DataFrame
    draws: dict[str, np.ndarray]
    idata: az.InferenceData
    diagnostics_: _diagnostics.Diagnostics
    cells: pd.DataFrame
    cuts: dict[str, list[float]]
    confounders: list[str]
    modifiers: list[str]
    slopes: list[str]
    n_cells: int
    n_customers: int
    sampler: str
    compiled: bool
    cache: str
    timings: dict[str, float]
    interval: IntervalSetting = field(default_factory=IntervalSetting)
    as_of: date | None = None
    horizon_months: int | None = None
    basis: str = ""
    likelihood_scale: float = 1.0

    def summary(self) -> pd.DataFrame:
        """Effects per estimand, segment (and ``"all"``) and metric.

        Rows in the schema of the published estimates table
        (:data:`attribution.estimates.EFFECT_COLUMNS`): outcome, segment_by, segment, metric
        (absolute|relative), estimand (ate|att), mean, lo, hi (interval of
        :data:`attribution.settings.INTERVAL` or the configured one), p_positive, n_treated,
        n_control, method (``"bayes_gformula_cells"``), interval_width, arm ``"treatment"``.
        Absolute retention effects are differences in proportions (0.021 = 2.1 pp); absolute
        revenue / cost effects are currency per customer over the horizon; relative ones are
        E[Y1] / E[Y0] - 1.
        """
        return as_estimate_rows(self.effects, arm="treatment", interval_width=self.interval.width)

    def plot(self, metric: str = "absolute", ax=None):
        """Forest plot of the ATE and ATT per segment and overall
        (:func:`attribution.forest.forest_plot` of :meth:`summary`); returns the Figure."""
        return forest_plot(self.summary(), metric=metric, ax=ax, ylabel=self.segment_by)

    def effect_draws(self, estimand: str = "ate", metric: str = "absolute") -> xr.DataArray:
        """Posterior draws of one effect, dims (chain, draw, segment) with ``"all"`` last.

        Shaped for :func:`attribution.value.money_draws`.
        """
        if estimand not in ESTIMANDS:
            raise InputError(f"estimand must be one of {list(ESTIMANDS)}, got {estimand!r}")
        if metric not in _METRIC_VAR:
            raise InputError(f"metric must be 'absolute' or 'relative', got {metric!r}")
        return self.idata.posterior[_METRIC_VAR[metric]].sel(estimand=estimand, drop=True)

    def describe(self) -> str:
        """Plain sentences on the overall ATE and ATT, then the diagnostics verdict."""
        pct = f"{self.interval.width:.0%}"
        kind = "" if self.interval.kind == "eti" else " highest-density"
        what = {"retention": "retention", "revenue": "revenue", "cost_to_serve": "cost-to-serve"}
        eff = self.effects
        lines = []
        for estimand, who in (("ate", "on average over everyone"), ("att", "for those treated")):
            r = eff[
                (eff.segment == "all") & (eff.metric == "absolute") & (eff.estimand == estimand)
            ].iloc[0]
            rel = eff[
                (eff.segment == "all") & (eff.metric == "relative") & (eff.estimand == estimand)
            ].iloc[0]
            verb = "raised" if r["mean"] >= 0 else "lowered"
            fmt = self._fmt
            lines.append(
                f"{self.treatment} {verb} {what[self.outcome]} {who} ({estimand.upper()}) by "
                f"{fmt(abs(r['mean']))} ({pct}{kind} interval {fmt(r['lo'], False)} to "
                f"{fmt(r['hi'], False)}; {100 * rel['mean']:+.1f}% relative), "
                f"{cellmodel.p_text(r['p_positive'])}."
            )
        cells = self.basis or (
            f"Bayesian standardization over {len(self.confounders)} confounder(s) on "
            f"{self.n_cells:,} cells of {self.n_customers:,} customers."
        )
        lines.append(f"{cells} {self.diagnostics_.describe()}")
        return "\n".join(lines)

    def _fmt(self, x: float, unit: bool = True) -> str:
        if self.outcome == "retention":
            return fmt_pp(x, unit=unit)
        return f"{x:,.2f}" + (" per customer" if unit else "")

    def to_dict(self) -> dict:
        """JSON-ready form: settings, effects rows, diagnostics and timings (NaN becomes None)."""
        rows = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in self.effects.to_dict(orient="records")
        ]
        return {
            "method": METHOD,
            "outcome": self.outcome,
            "treatment": self.treatment,
            "segment_by": self.segment_by,
            "confounders": list(self.confounders),
            "modifiers": list(self.modifiers),
            "slopes": list(self.slopes),
            "cuts": {k: list(v) for k, v in self.cuts.items()},
            "as_of": None if self.as_of is None else str(self.as_of),
            "horizon_months": self.horizon_months,
            "n_customers": self.n_customers,
            "n_cells": self.n_cells,
            "basis": self.basis,
            "likelihood_scale": self.likelihood_scale,
            "interval": {"width": self.interval.width, "kind": self.interval.kind},
            "effects": rows,
            "diagnostics": self.diagnostics_.to_dict(),
            "sampler": self.sampler,
            "compiled": self.compiled,
            "cache": self.cache,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def __str__(self) -> str:
        return self.describe()


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------
def fit_gformula(
    data: ObservationalData,
    outcome: str,
    *,
    bands: int = 4,
    segment: str | None = None,
    config: Config | None = None,
    modifiers: Sequence[str] | None = None,
    slopes: bool = True,
    priors: GFormulaPriors | None = None,
    target_accept: float = 0.95,
    retry_target_accept: float | None = 0.99,
    cuts: dict[str, Sequence[float]] | None = None,
    likelihood_scale: float = 1.0,
    basis: str = "",
) -> GFormulaFit:
    """Bayesian standardization (g-formula) of one outcome over the confounders, on cells.

    Parameters
    ----------
    data : ObservationalData
        One row per customer: ``customer_id``, ``treated`` (0/1), the confounders (numeric or
        categorical, listed in ``data.confounders``), ``retained``, ``revenue``,
        ``cost_to_serve`` (see :func:`attribution.observational.observational_frame`).
    outcome : {"retention", "revenue", "cost_to_serve"}
    bands : int
        Quantile bands per numeric confounder (cut points computed once over everyone; tied
        values may leave fewer).
    segment : str, optional
        A confounder to break the effects down by (it also becomes an effect modifier).
    config : Config, optional
        Sampler, chains and seed from ``config.model``; draws and tune per chain from
        ``config.causal`` (500 each by default); interval width and the diagnostics gate from
        ``config.interval`` / ``config.gate``. Default ``Config()``.
    modifiers : sequence of str, optional
        Confounders whose bands / levels may change the treatment effect (treatment x
        confounder terms). Default: every confounder. ``[]`` gives one common effect on the
        logit / log scale (plus the segment, when given).
    slopes : bool
        Give each numeric confounder whose values vary inside its bands a within-band slope on
        the cell's mean of ``sign(x) ln(1 + |x|)`` (default). Bands alone leave the variation
        inside a band unadjusted: when treatment is targeted on a continuous score (spend),
        the treated sit higher inside each band than the untreated, and on the simulator's
        outreach question four bands alone put the revenue ATE at about 2.5 times the truth.
    priors : GFormulaPriors, optional
    target_accept, retry_target_accept : float
        NUTS target acceptance; on divergences the fit is sampled once more at
        ``retry_target_accept`` (None: never), and the gate judges the retry.
    cuts : dict, optional
        Numeric confounder -> cut points (upper edges of every band but the last) to use
        instead of its ``bands`` quantile bands (the propensity strata of
        :mod:`attribution.causal.strata`).
    likelihood_scale : float
        What each row counts in the likelihood, in (0, 1]: ``1 / design effect`` when rows
        repeat customers (pooled emulated trials), so the posterior is as wide as the
        customers, not the rows, allow (a magnitude-adjusted composite likelihood). The
        standardization weights keep the full row counts. Default 1.
    basis : str
        A sentence on what the cells are, said by :meth:`GFormulaFit.describe`.

    Returns
    -------
    GFormulaFit
        Warns with :class:`attribution.diagnostics.DiagnosticsWarning` when the fit fails the
        diagnostics gate (its estimates must then not be published).

    Raises
    ------
    InputError
        Unknown outcome or segment, a confounder that is not a column, no treated or no
        untreated customers, nulls or impossible values in a used column, bad settings.

    Examples
    --------
    >>> from attribution.observational import observational_frame  # doctest: +SKIP
    >>> data = observational_frame(con, "proactive_outreach")  # doctest: +SKIP
    >>> fit = fit_gformula(data, "retention", segment="tier")  # doctest: +SKIP
    >>> fit.summary().query("segment == 'all' and metric == 'absolute'")  # doctest: +SKIP
    >>> print(fit.describe())  # doctest: +SKIP
    """
    cfg = Config() if config is None else config
    if not isinstance(cfg, Config):
        raise InputError(f"config must be an attribution.config.Config, got {type(cfg).__name__}")
    priors = GFormulaPriors() if priors is None else priors
    if not isinstance(priors, GFormulaPriors):
        raise InputError(f"priors must be a GFormulaPriors, got {type(priors).__name__}")
    for name, value in (
        ("target_accept", target_accept),
        ("retry_target_accept", retry_target_accept),
    ):
        if value is not None and not 0.0 < value < 1.0:
            raise InputError(f"{name} must be in (0, 1), got {value!r}")
    one_of("outcome", outcome, OUTCOMES)
    whole("bands", bands, minimum=2)
    if not (isinstance(likelihood_scale, int | float) and 0.0 < likelihood_scale <= 1.0):
        raise InputError(f"likelihood_scale must be in (0, 1], got {likelihood_scale!r}")
    _check_data(data, outcome)
    confounders = list(data.confounders)
    given = {k: [float(v) for v in vals] for k, vals in (cuts or {}).items()}
    odd = [k for k in given if k not in confounders or k not in data.numeric]
    if odd:
        raise InputError(f"cuts given for {odd}, which are not numeric confounders")
    if segment is not None and segment not in confounders:
        raise InputError(
            f"segment {segment!r} is not one of the confounders {confounders}; a segment must be "
            "a confounder so the model adjusts for it"
        )
    mods = confounders if modifiers is None else list(dict.fromkeys(modifiers))
    unknown = [m for m in mods if m not in confounders]
    if unknown:
        raise InputError(f"modifier(s) {unknown} are not confounders; choose from {confounders}")
    if segment is not None and segment not in mods:
        mods.append(segment)
    mods = [c for c in confounders if c in mods]

    t0 = time.perf_counter()
    c = _collapse(data, outcome, bands, slopes=bool(slopes), given=given)
    collapse_s = time.perf_counter() - t0
    s = _strata(c, outcome, confounders, mods, segment)
    if likelihood_scale != 1.0:  # the weights W were made from the full counts above
        s = dataclasses.replace(
            s, cell_stats={k: v * likelihood_scale for k, v in s.cell_stats.items()}
        )
    padded = _pad(s)
    arrays = _data_arrays(padded)
    ms = cfg.model
    fitted = cellmodel.fit(
        _CACHE,
        _structure_key(padded, priors),
        lambda: _build_model(padded, priors)[0],
        arrays,
        what=f"g-formula of {outcome}",
        published=PUBLISHED,
        settings=cellmodel.SamplerSettings(
            sampler=ms.sampler,
            draws=cfg.causal.draws,
            tune=cfg.causal.tune,
            chains=ms.chains,
            seed=ms.seed,
            target_accept=target_accept,
            retry_target_accept=retry_target_accept,
            # A low-rank mass matrix halves the leapfrog steps here (confounders correlate:
            # measured 44 -> 15 steps per draw on the simulator's 11 default confounders); the
            # matrices are tall and narrow, so BLAS threads only compete with the chains.
            nutpie_options={"low_rank_modified_mass_matrix": True},
            single_blas_thread=True,
        ),
        gate=cfg.gate,
        tidy=lambda idata: cellmodel.unpad(
            _drop_strata(cellmodel.relabel(idata, _coords(padded))),
            {"coef": list(s.coef), "mod": list(s.mod)},
        ),
        report=lambda model: [rv.name for rv in model.free_RVs],
    )
    idata, diag = fitted.idata, fitted.diagnostics
    compile_s, sample_s = fitted.compile_s, fitted.sample_s
    effects = _summarise(idata, s, outcome, segment, cfg.interval)
    post = idata.posterior["effect_abs"]
    draws = {e: post.sel(estimand=e, segment="all").to_numpy().ravel() for e in ESTIMANDS}
    cells = c.table.copy()
    for col, labels in c.levels.items():
        cells[col] = np.asarray(labels, dtype=object)[cells[col].to_numpy()]
    cells.attrs["cuts"] = {k: list(v) for k, v in c.cuts.items()}
    fit = GFormulaFit(
        outcome=outcome,
        treatment=str(getattr(data, "intervention", None) or getattr(data, "treatment", "it")),
        segment_by=segment,
        effects=effects,
        draws=draws,
        idata=idata,
        diagnostics_=diag,
        cells=cells,
        cuts={k: list(v) for k, v in c.cuts.items()},
        confounders=confounders,
        modifiers=mods,
        slopes=list(s.slopes),
        n_cells=len(cells),
        n_customers=int(s.counts[-1].sum()),
        sampler=fitted.sampler,
        compiled=fitted.compiled,
        cache=fitted.cache,
        timings={"collapse_s": collapse_s, "compile_s": compile_s, "sample_s": sample_s},
        interval=cfg.interval,
        as_of=getattr(data, "as_of", None),
        horizon_months=getattr(data, "horizon_months", None),
        basis=basis,
        likelihood_scale=float(likelihood_scale),
    )
    return fit


def _drop_strata(idata: az.InferenceData) -> az.InferenceData:
    """Per-stratum and per-cell quantities (data, mostly) never reach the result."""
    for group in idata.groups():
        ds = idata[group]
        names = [v for v in ds.data_vars if {"stratum", "cell"} & set(ds[v].dims)]
        if names:
            idata[group] = ds.drop_vars(names)
    return idata


def _summarise(
    idata: az.InferenceData,
    s: _Strata,
    outcome: str,
    segment: str | None,
    interval: IntervalSetting,
) -> pd.DataFrame:
    post = idata.posterior
    rows = []
    for estimand in ESTIMANDS:
        for metric, var in _METRIC_VAR.items():
            for g, label in enumerate(s.segments):
                d = post[var].sel(estimand=estimand, segment=label).to_numpy()
                rows.append(
                    {
                        "outcome": outcome,
                        "segment_by": segment if segment is not None else "all",
                        "segment": label,
                        "metric": metric,
                        "estimand": estimand,
                        **cellmodel.summarise_draws(d, interval),
                        "n_treated": int(s.counts[g, 1]),
                        "n_control": int(s.counts[g, 0]),
                        "method": METHOD,
                    }
                )
    return pd.DataFrame(rows, columns=_EFFECT_COLUMNS)
