"""Observational attribution with DoWhy: graph, identification, estimates, refutations, overlap.

What untested CX work was worth, from observational data, with its assumptions tested:

1. **Graph.** One question = one graph: every confounder causes the treatment and the outcome,
   the treatment causes the outcome, declared instruments cause only the treatment and declared
   unobserved common causes (``[causal] unobserved``) cause both (:class:`CausalGraph`; a text
   picture in :meth:`Attribution.describe`, a PNG from :func:`graph_png`).
2. **Identification** with DoWhy's backdoor criterion (:func:`identify`); an effect that is not
   identifiable is reported and not estimated.
3. **Overlap** (:func:`overlap`): a logistic propensity model (scikit-learn) on the confounders
   (money confounders as ``log1p``, numeric confounders with at most 8 distinct values as
   categories); customers outside ``[overlap_low, overlap_high]`` are counted, reported and by
   default trimmed; an empty overlap region is refused.
4. **Estimates**, side by side (:func:`estimate`): the naive difference in means, DoWhy's
   ``backdoor.propensity_score_weighting`` (ATE and ATT, Hajek weights, on the propensity of
   step 3) and ``backdoor.linear_regression`` (ATE: DoWhy's regression ignores ``target_units``),
   all with percentile bootstrap intervals; and, when :mod:`attribution.gformula` is importable,
   the Bayesian standardization on cells (ATE and ATT with credible intervals). The bootstrap
   refits the same estimators with a vectorised replica of DoWhy's formulas (least squares on
   the same encoded design; Hajek weights on a refitted propensity), because DoWhy refits through
   statsmodels at about a second per fit; the replica equals DoWhy on the full sample.
5. **Refutations** (:func:`refute`, on DoWhy's regression estimate, run by default): placebo
   treatment, random common cause, data subset, and sensitivity to an unobserved confounder
   (DoWhy's ``linear-partial-R2``: the robustness value, and the estimate corrected for a
   confounder as strong as each observed numeric one). Each has a pass/warn verdict in words.
6. **Money** (:mod:`attribution.value`): net value per treated customer from the ATT draws
   (bootstrap draws of the weighting estimator; posterior draws of the cell route).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import duckdb
import networkx as nx
import numpy as np
import pandas as pd
import xarray as xr
from threadpoolctl import threadpool_limits

from attribution.config import CausalSettings, Config
from attribution.errors import InputError
from attribution.jsonready import json_ready
from attribution.observational import (
    OUTCOME_COLUMNS,
    ObservationalData,
    observational_frame,
)
from attribution.settings import IntervalSetting
from attribution.value import LEVELS, money_draws, summarize_money

__all__ = [
    "ESTIMATORS",
    "Attribution",
    "CausalGraph",
    "Estimate",
    "Identification",
    "Overlap",
    "Refutation",
    "attribute",
    "causal_graph",
    "estimate",
    "estimate_naive",
    "graph_png",
    "identify",
    "overlap",
    "refute",
]

#: Estimator names as they appear in result rows.
ESTIMATORS = {
    "naive": "naive difference in means",
    "dowhy_psw": "DoWhy propensity-score weighting",
    "dowhy_regression": "DoWhy linear regression",
    "bayes_gformula": "Bayesian standardization on cells",
}
#: Numeric confounders holding money; the propensity model takes them as log1p.
MONEY_CONFOUNDERS = ("prior_revenue", "prior_cost", "history_revenue")
#: Numeric confounders with at most this many distinct values enter the propensity as categories.
MAX_LEVELS_AS_CATEGORY = 8
#: ``verdict`` of the naive difference's rows: no adjustment, so no refutation applies.
NAIVE_VERDICT = "not adjusted: the raw difference between treated and untreated, for comparison"
#: Refuters run by default, in order.
REFUTERS = ("placebo_treatment", "random_common_cause", "data_subset", "unobserved_confounder")
_TREATED = "treated"
_LOG = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Graph and identification
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CausalGraph:
    """The declared causal graph of one question.

    Attributes
    ----------
    treatment, outcome : str
        Column names (``treated`` and one of ``retained``, ``revenue``, ``cost_to_serve``).
    confounders, instruments, unobserved : tuple of str
    """

    treatment: str
    outcome: str
    confounders: tuple[str, ...]
    instruments: tuple[str, ...] = ()
    unobserved: tuple[str, ...] = ()

    def to_networkx(self) -> nx.DiGraph:
        """The graph as a networkx DiGraph (unobserved nodes carry ``observed="no"``)."""
        g = nx.DiGraph()
        g.add_node(self.treatment)
        g.add_node(self.outcome)
        for c in self.confounders:
            g.add_edge(c, self.treatment)
            g.add_edge(c, self.outcome)
        for z in self.instruments:
            g.add_edge(z, self.treatment)
        for u in self.unobserved:
            g.add_node(u, observed="no")
            g.add_edge(u, self.treatment)
            g.add_edge(u, self.outcome)
        g.add_edge(self.treatment, self.outcome)
        return g

    def edges(self) -> list[tuple[str, str]]:
        """Every edge, causes first."""
        return list(self.to_networkx().edges)

    def text(self) -> str:
        """A text picture of the graph."""
        lines = [f"  {self.treatment} --> {self.outcome}"]
        if self.confounders:
            lines.append(
                f"  [{', '.join(self.confounders)}] --> {self.treatment} and {self.outcome}"
            )
        if self.instruments:
            lines.append(f"  [{', '.join(self.instruments)}] --> {self.treatment} (instruments)")
        if self.unobserved:
            lines.append(
                f"  ({', '.join(self.unobserved)}, unobserved) --> {self.treatment} and "
                f"{self.outcome}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready form: nodes by role and the edge list."""
        return {
            "treatment": self.treatment,
            "outcome": self.outcome,
            "confounders": list(self.confounders),
            "instruments": list(self.instruments),
            "unobserved": list(self.unobserved),
            "edges": [list(e) for e in self.edges()],
        }


def causal_graph(
    data: ObservationalData,
    outcome: str,
    *,
    instruments: Sequence[str] = (),
    unobserved: Sequence[str] = (),
) -> CausalGraph:
    """The graph of one question: treatment, outcome, the data's confounders and declared extras.

    Parameters
    ----------
    data : ObservationalData
    outcome : {"retention", "revenue", "cost_to_serve"}
    instruments : sequence of str
        Columns of ``data.frame`` that cause the treatment only.
    unobserved : sequence of str
        Names of unobserved common causes (not columns).

    Examples
    --------
    >>> import pandas as pd
    >>> from datetime import date
    >>> frame = pd.DataFrame({"treated": [0, 1], "tier": ["a", "b"], "retained": [1, 1]})
    >>> d = ObservationalData(frame, "x", date(2025, 1, 1), 1, ["tier"], [], ["tier"])
    >>> causal_graph(d, "retention").edges()
    [('treated', 'retained'), ('tier', 'treated'), ('tier', 'retained')]
    """
    column = _outcome_column(outcome)
    for z in instruments:
        if z not in data.frame.columns:
            raise InputError(f"instrument {z!r} is not a column of the data")
        if z in data.confounders:
            raise InputError(f"{z!r} is declared both a confounder and an instrument")
    for u in unobserved:
        if not isinstance(u, str) or not u or u in data.frame.columns:
            raise InputError(
                f"unobserved common cause {u!r} must be a new name, not a column of the data"
            )
    return CausalGraph(
        treatment=_TREATED,
        outcome=column,
        confounders=tuple(data.confounders),
        instruments=tuple(instruments),
        unobserved=tuple(unobserved),
    )


def graph_png(graph: CausalGraph, path: str | Path) -> Path:
    """Draw the graph into a PNG file (matplotlib, no display needed).

    Treatment and outcome are dark, confounders light, instruments green, unobserved causes
    dashed grey. Returns the path written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    g = graph.to_networkx()
    pos: dict[str, tuple[float, float]] = {graph.treatment: (0.0, 0.0), graph.outcome: (2.0, 0.0)}
    top = list(graph.confounders)
    for i, c in enumerate(top):
        pos[c] = (2.0 * (i + 0.5) / max(len(top), 1), 1.0 + 0.25 * (i % 2))
    for i, z in enumerate(graph.instruments):
        pos[z] = (-1.0, -0.5 - 0.4 * i)
    for i, u in enumerate(graph.unobserved):
        pos[u] = (1.0 + 0.5 * i, -1.0)
    colors = []
    for node in g.nodes:
        if node in (graph.treatment, graph.outcome):
            colors.append("#1f3b73")
        elif node in graph.instruments:
            colors.append("#2e8b57")
        elif node in graph.unobserved:
            colors.append("#bbbbbb")
        else:
            colors.append("#9ecae1")
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(g.nodes)), 4.5))
    nx.draw_networkx(
        g,
        pos=pos,
        ax=ax,
        node_color=colors,
        font_size=8,
        node_size=900,
        arrowsize=12,
        font_color="black",
    )
    ax.set_title(f"{graph.treatment} -> {graph.outcome}")
    ax.axis("off")
    out = Path(path)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


@dataclass(frozen=True)
class Identification:
    """DoWhy's identification of the effect.

    Attributes
    ----------
    identifiable : bool
        True when the backdoor criterion identifies the effect.
    adjustment_set : list of str
        The backdoor variables DoWhy adjusts for.
    instruments : list of str
        Instruments DoWhy found (reported; the estimators here use the backdoor set).
    estimand : str
        DoWhy's printed estimand.
    """

    identifiable: bool
    adjustment_set: list[str]
    instruments: list[str]
    estimand: str = field(repr=False, default="")

    def text(self) -> str:
        """One sentence on what was identified."""
        if not self.identifiable:
            return (
                "Not identifiable: the graph declares unobserved common causes of treatment and "
                "outcome, so no adjustment set blocks every backdoor path; nothing is estimated."
            )
        return (
            "Identified by the backdoor criterion, adjusting for "
            f"{len(self.adjustment_set)} confounder(s): {', '.join(self.adjustment_set)}."
        )

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "identifiable": self.identifiable,
            "adjustment_set": list(self.adjustment_set),
            "instruments": list(self.instruments),
            "text": self.text(),
        }


def identify(data: ObservationalData, graph: CausalGraph) -> Identification:
    """Identify the effect of the graph's treatment on its outcome with DoWhy (backdoor).

    Returns an :class:`Identification`; ``identifiable`` is False when no backdoor set exists
    (declared unobserved common causes).
    """
    model = _causal_model(data.frame, graph)
    with _Quiet():
        estimand = model.identify_effect(proceed_when_unidentifiable=False)
    backdoor = estimand.get_backdoor_variables()
    ok = estimand.estimands.get("backdoor") is not None and not graph.unobserved
    return Identification(
        identifiable=bool(ok),
        adjustment_set=sorted(backdoor) if ok else [],
        instruments=sorted(estimand.get_instrumental_variables() or []),
        estimand=str(estimand),
    )


def _causal_model(frame: pd.DataFrame, graph: CausalGraph):
    from dowhy import CausalModel

    cols = [graph.treatment, graph.outcome, *graph.confounders, *graph.instruments]
    with _Quiet():
        return CausalModel(
            data=frame[cols],
            treatment=graph.treatment,
            outcome=graph.outcome,
            graph=graph.to_networkx(),
        )


# --------------------------------------------------------------------------------------------
# Overlap
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Overlap:
    """Propensity overlap of treated and untreated customers.

    Attributes
    ----------
    low, high : float
        The bounds.
    n, n_outside, n_treated_outside, n_untreated_outside : int
        Customers, and those with a propensity outside the bounds.
    trimmed : bool
        Whether the customers outside were left out of the estimates.
    propensity : numpy.ndarray
        Every customer's propensity (same order as the data's frame).
    """

    low: float
    high: float
    n: int
    n_outside: int
    n_treated_outside: int
    n_untreated_outside: int
    trimmed: bool
    propensity: np.ndarray = field(repr=False)

    @property
    def share_outside(self) -> float:
        """Share of customers outside the bounds."""
        return self.n_outside / self.n if self.n else 0.0

    @property
    def verdict(self) -> str:
        """``"pass"`` when every customer is inside the bounds, else ``"warn"``."""
        return "pass" if self.n_outside == 0 else "warn"

    def text(self) -> str:
        """The overlap check in words."""
        if self.n_outside == 0:
            return (
                f"Overlap: pass. Every customer's propensity lies in [{self.low:g}, {self.high:g}]."
            )
        action = (
            f"they are left out of every estimate ({self.n - self.n_outside:,} customers remain)"
            if self.trimmed
            else "they are kept (trimming is off): estimates extrapolate there"
        )
        return (
            f"Overlap: warn. {self.n_outside:,} customers ({100 * self.share_outside:.1f}%; "
            f"{self.n_treated_outside:,} treated, {self.n_untreated_outside:,} untreated) have a "
            f"propensity outside [{self.low:g}, {self.high:g}]: treated and untreated customers "
            f"do not overlap there; {action}."
        )

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "n_outside": self.n_outside,
            "share_outside": self.share_outside,
            "n_treated_outside": self.n_treated_outside,
            "n_untreated_outside": self.n_untreated_outside,
            "trimmed": self.trimmed,
            "verdict": self.verdict,
            "text": self.text(),
        }


def overlap(
    data: ObservationalData,
    *,
    low: float = 0.01,
    high: float = 0.99,
    trim: bool = True,
    seed: int = 0,
) -> Overlap:
    """Fit the propensity model and check that treated and untreated customers overlap.

    Parameters
    ----------
    data : ObservationalData
    low, high : float
        Propensity bounds; customers outside are reported (and trimmed with ``trim``).
    trim : bool
        Record that the customers outside are to be left out.
    seed : int
        Seed of the logistic regression's solver.

    Raises
    ------
    InputError
        The overlap region is empty: no treated or no untreated customer has a propensity
        inside the bounds, so any estimate would be pure extrapolation.
    """
    X = _propensity_design(data.frame, data)
    T = data.frame[_TREATED].to_numpy(dtype=float)
    p = _propensity_model(seed).fit(X, T).predict_proba(X)[:, 1]
    outside = (p < low) | (p > high)
    inside_t = int(((~outside) & (T == 1)).sum())
    inside_u = int(((~outside) & (T == 0)).sum())
    if inside_t == 0 or inside_u == 0:
        who = "treated" if inside_t == 0 else "untreated"
        raise InputError(
            f"{data.treatment}: no {who} customer has a propensity inside [{low:g}, {high:g}]; "
            "treated and untreated customers do not overlap on the confounders, so the effect "
            "cannot be estimated without extrapolating (change the confounders or the bounds "
            "causal.overlap_low / causal.overlap_high)"
        )
    return Overlap(
        low=low,
        high=high,
        n=len(T),
        n_outside=int(outside.sum()),
        n_treated_outside=int((outside & (T == 1)).sum()),
        n_untreated_outside=int((outside & (T == 0)).sum()),
        trimmed=trim,
        propensity=p,
    )


def _propensity_model(seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000, random_state=seed)


def _propensity_design(frame: pd.DataFrame, data: ObservationalData) -> np.ndarray:
    """Standardised propensity features: log1p money, few-valued numerics as categories."""
    parts = pd.DataFrame(index=frame.index)
    cats = []
    for c in data.confounders:
        col = frame[c]
        if c in data.numeric and col.nunique() <= MAX_LEVELS_AS_CATEGORY:
            parts[c] = col.astype(float).map(lambda v: f"{v:g}")
            cats.append(c)
        elif c in data.numeric:
            parts[c] = np.log1p(col.clip(lower=0)) if c in MONEY_CONFOUNDERS else col
        else:
            parts[c] = col.astype(str)
            cats.append(c)
    X = pd.get_dummies(parts, columns=cats, drop_first=True, dtype=float).to_numpy(dtype=float)
    return _standardise(X)


def _standardise(X: np.ndarray) -> np.ndarray:
    sd = X.std(axis=0)
    keep = sd > 0
    return (X[:, keep] - X[:, keep].mean(axis=0)) / sd[keep]


# --------------------------------------------------------------------------------------------
# Estimates
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """One effect from one estimator.

    Attributes
    ----------
    estimator : str
        A key of :data:`ESTIMATORS`.
    outcome : str
        ``retention``, ``revenue`` or ``cost_to_serve``.
    estimand : str
        ``ate`` (over everyone analysed) or ``att`` (over the treated).
    mean, lo, hi : float
        The estimate and its interval (bootstrap percentile, or posterior for the cell route).
    p_positive : float
        Share of bootstrap (or posterior) draws above zero.
    n_treated, n_control : int
    draws : numpy.ndarray
        Bootstrap or posterior draws of the effect.
    segment_by, segment : str
        ``"all"`` for the overall effect, else the segment column and level.
    """

    estimator: str
    outcome: str
    estimand: str
    mean: float
    lo: float
    hi: float
    p_positive: float
    n_treated: int
    n_control: int
    draws: np.ndarray = field(repr=False)
    segment_by: str = "all"
    segment: str = "all"

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the interval."""
        return self.lo <= value <= self.hi

    @property
    def half_width(self) -> float:
        """Half the interval's width."""
        return (self.hi - self.lo) / 2.0


def estimate(
    data: ObservationalData,
    propensity: np.ndarray,
    *,
    outcomes: Sequence[str] = tuple(OUTCOME_COLUMNS),
    segment: str | None = None,
    bootstrap: int = 200,
    seed: int = 0,
    interval: IntervalSetting | None = None,
    clip: tuple[float, float] = (0.01, 0.99),
) -> list[Estimate]:
    """Naive, DoWhy weighting and DoWhy regression estimates with bootstrap intervals.

    Parameters
    ----------
    data : ObservationalData
        The customers to analyse (already trimmed, if trimming).
    propensity : numpy.ndarray
        Each customer's propensity (from :func:`overlap`), used by the weighting estimator.
    outcomes : sequence of str
        Outcomes to report (the bootstrap covers all three at once).
    segment : str, optional
        A categorical confounder to break the effects down by, beside the overall ``"all"``.
        Per segment the weighting estimator uses the overall propensity within the segment and
        the regression is refitted on the segment's customers (the replica's numbers; DoWhy's
        own run gives the overall ones).
    bootstrap : int
        Resamples; the propensity model is refitted on each.
    seed : int
    interval : IntervalSetting, optional
        Width of the intervals; default the project's :data:`attribution.settings.INTERVAL`.
    clip : (float, float)
        DoWhy's propensity clipping bounds (``min_ps_score``, ``max_ps_score``).

    Returns
    -------
    list of Estimate
        Per outcome and segment: naive ATE and ATT (the same number), DoWhy PSW ATE and ATT,
        DoWhy regression ATE.
    """
    interval = interval or IntervalSetting()
    for o in outcomes:
        _outcome_column(o)
    frame = data.frame
    groups = _groups(frame, data, segment)
    T = frame[_TREATED].to_numpy(dtype=float)
    Y = frame[list(OUTCOME_COLUMNS.values())].to_numpy(dtype=float)
    X_reg = _regression_design(frame, data)
    X_ps = _propensity_design(frame, data)
    lo_c, hi_c = clip
    keys = ("naive", "psw_ate", "psw_att", "reg")

    def effects(Tb, Yb, pb, Xb, masks) -> dict:
        out = {}
        for name, m in masks.items():
            if Tb[m].min(initial=1) == Tb[m].max(initial=0):  # one arm only
                for k in keys:
                    out[(k, name)] = np.full(3, np.nan)
                continue
            out[("naive", name)] = _naive(Tb[m], Yb[m])
            out[("psw_ate", name)] = _psw(Tb[m], Yb[m], pb[m], lo_c, hi_c, att=False)
            out[("psw_att", name)] = _psw(Tb[m], Yb[m], pb[m], lo_c, hi_c, att=True)
            out[("reg", name)] = _ols_effect(Tb[m], Yb[m], Xb[m])
        return out

    point = effects(T, Y, propensity, X_reg, groups)
    dowhy = _dowhy_point(data, propensity, outcomes, clip)
    rng = np.random.default_rng(seed)
    model = _propensity_model(seed).fit(X_ps, T)
    beta0 = np.concatenate([model.intercept_, model.coef_.ravel()])
    A_ps = np.column_stack([np.ones(len(T)), X_ps])
    draws = {k: np.empty((bootstrap, 3)) for k in point}
    n = len(T)
    for b in range(bootstrap):
        idx = rng.integers(0, n, n)
        if T[idx].min() == T[idx].max():  # a resample without treated or untreated: redraw once
            idx = rng.integers(0, n, n)
        Tb = T[idx]
        pb = _logistic_refit(A_ps[idx], Tb, beta0)
        masks = {name: m[idx] for name, m in groups.items()}
        for k, v in effects(Tb, Y[idx], pb, X_reg[idx], masks).items():
            draws[k][b] = v
    out = []
    q_lo, q_hi = interval.quantiles
    names = list(OUTCOME_COLUMNS)
    plan = [
        ("naive", "ate", "naive"),
        ("naive", "att", "naive"),
        ("dowhy_psw", "ate", "psw_ate"),
        ("dowhy_psw", "att", "psw_att"),
        ("dowhy_regression", "ate", "reg"),
    ]
    for o in outcomes:
        j = names.index(o)
        for name, m in groups.items():
            n_t = int(T[m].sum())
            for estimator, estimand, key in plan:
                mean = point[(key, name)][j]
                if name == "all":
                    mean = dowhy.get((key, o), mean)
                d = draws[(key, name)][:, j]
                d = d[np.isfinite(d)]
                if not np.isfinite(mean) or d.size == 0:
                    continue
                out.append(
                    Estimate(
                        estimator=estimator,
                        outcome=o,
                        estimand=estimand,
                        mean=float(mean),
                        lo=float(np.quantile(d, q_lo)),
                        hi=float(np.quantile(d, q_hi)),
                        p_positive=float(np.mean(d > 0)),
                        n_treated=n_t,
                        n_control=int(m.sum()) - n_t,
                        draws=d.copy(),
                        segment_by="all" if name == "all" else str(segment),
                        segment=name,
                    )
                )
    return out


def _groups(frame: pd.DataFrame, data: ObservationalData, segment: str | None) -> dict:
    """``{"all": mask, level: mask, ...}`` for the overall and per-segment estimates."""
    groups = {"all": np.ones(len(frame), dtype=bool)}
    if segment is None:
        return groups
    if segment not in data.categorical:
        raise InputError(
            f"segment {segment!r} must be one of the categorical confounders: "
            f"{', '.join(data.categorical) or '(none)'}"
        )
    values = frame[segment].astype(str).to_numpy()
    for level in sorted(set(values)):
        groups[level] = values == level
    return groups


def _naive(T: np.ndarray, Y: np.ndarray) -> np.ndarray:
    return Y[T == 1].mean(axis=0) - Y[T == 0].mean(axis=0)


def _psw(T, Y, p, lo: float, hi: float, *, att: bool) -> np.ndarray:
    """DoWhy's Hajek weighting (``ips_weight`` / ``tips_weight``) after clipping to [lo, hi]."""
    p = np.clip(p, lo, hi)
    w = T + (1 - T) * p / (1 - p) if att else T / p + (1 - T) / (1 - p)
    wt, wc = w * T, w * (1 - T)
    return (wt @ Y) / wt.sum() - (wc @ Y) / wc.sum()


def _regression_design(frame: pd.DataFrame, data: ObservationalData) -> np.ndarray:
    """DoWhy's linear-regression design without the treatment: intercept + one-hot + numerics."""
    parts = frame[data.confounders]
    X = pd.get_dummies(parts, columns=data.categorical, drop_first=True, dtype=float)
    return np.column_stack([np.ones(len(frame)), X.to_numpy(dtype=float)])


def _ols_effect(T: np.ndarray, Y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The treatment coefficient of ``Y ~ 1 + T + X`` per outcome column (minimum-norm).

    Solved through the normal equations with a pseudo-inverse (the design is tall and narrow),
    which gives the same minimum-norm solution as statsmodels' ``pinv`` fit in DoWhy.
    """
    A = np.column_stack([X[:, :1], T, X[:, 1:]])
    coef = np.linalg.pinv(A.T @ A) @ (A.T @ Y)
    return coef[1]


def _logistic_refit(A: np.ndarray, T: np.ndarray, beta: np.ndarray, steps: int = 6) -> np.ndarray:
    """Propensities from scikit-learn's L2 logistic objective (C = 1), refitted by Newton steps.

    ``A`` carries an intercept column (not penalised); ``beta`` is the full-sample solution, a
    close start on a bootstrap resample, so a few Newton steps converge.
    """
    penalty = np.ones(A.shape[1])
    penalty[0] = 0.0
    b = beta.copy()
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(A @ b, -30, 30)))
        grad = A.T @ (p - T) + penalty * b
        hess = (A * (p * (1 - p))[:, None]).T @ A + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        b -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return 1.0 / (1.0 + np.exp(-np.clip(A @ b, -30, 30)))


def _dowhy_point(data, propensity, outcomes, clip) -> dict:
    """Point estimates from DoWhy itself, per (estimator key, outcome)."""
    from dowhy.causal_estimators.linear_regression_estimator import LinearRegressionEstimator
    from dowhy.causal_estimators.propensity_score_weighting_estimator import (
        PropensityScoreWeightingEstimator,
    )

    out = {}
    for o in outcomes:
        graph = causal_graph(data, o)
        model = _causal_model(data.frame, graph)
        with _Quiet():
            estimand = model.identify_effect(proceed_when_unidentifiable=False)
            frame = data.frame[[_TREATED, graph.outcome, *data.confounders]].copy()
            reg = LinearRegressionEstimator(estimand).fit(frame)
            out[("reg", o)] = reg.estimate_effect(frame).value
            ps_frame = frame.assign(propensity_score=propensity)
            psw = PropensityScoreWeightingEstimator(
                estimand, min_ps_score=clip[0], max_ps_score=clip[1]
            ).fit(ps_frame.copy())
            out[("psw_ate", o)] = psw.estimate_effect(ps_frame.copy(), target_units="ate").value
            out[("psw_att", o)] = psw.estimate_effect(ps_frame.copy(), target_units="att").value
    return out


# --------------------------------------------------------------------------------------------
# Refutations
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refutation:
    """One refutation test of one estimate, with a verdict.

    Attributes
    ----------
    refuter : str
        A name in :data:`REFUTERS`.
    outcome : str
    estimate : float
        The estimate refuted (DoWhy regression ATE).
    new_effect : float or None
        What the refuter found (the placebo effect, the effect with a random common cause or on
        subsets, or the estimate corrected for the strongest benchmark confounder).
    verdict : str
        ``"pass"`` or ``"warn"``.
    text : str
        The verdict in plain words.
    details : dict
        Refuter-specific numbers (p-value, robustness value, benchmarks).
    """

    refuter: str
    outcome: str
    estimate: float
    new_effect: float | None
    verdict: str
    text: str
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "refuter": self.refuter,
            "outcome": self.outcome,
            "estimate": self.estimate,
            "new_effect": self.new_effect,
            "verdict": self.verdict,
            "text": self.text,
            "details": json_ready(self.details),
        }


def refute(
    data: ObservationalData,
    outcome: str,
    *,
    half_width: float,
    refuters: Sequence[str] = REFUTERS,
    simulations: int = 10,
    subset_fraction: float = 0.8,
    seed: int = 0,
) -> list[Refutation]:
    """Run DoWhy's refuters on the linear-regression estimate of one outcome.

    Verdicts (``h`` = ``half_width``, the half-width of the estimate's interval):

    - placebo treatment (treatment permuted): pass when the placebo effect is within ``h`` of 0;
    - random common cause (a random covariate added): pass when the estimate moves by less
      than ``h / 4``;
    - data subset (``subset_fraction`` of the customers): pass when the subsets' mean estimate
      is within ``h / 2`` of the estimate;
    - unobserved confounder (DoWhy ``linear-partial-R2``): for each observed numeric confounder
      as a benchmark, the estimate corrected for an unobserved confounder as strong as it (with
      both treatment and outcome); pass when every corrected 95% interval keeps the estimate's
      sign (excludes 0). The robustness value (the partial R² with both that would bring the
      estimate to 0) is reported.

    Parameters
    ----------
    data : ObservationalData
    outcome : {"retention", "revenue", "cost_to_serve"}
    half_width : float
        Half-width of the estimate's interval (the scale of "moved a lot").
    refuters : sequence of str
        Names from :data:`REFUTERS`.
    simulations : int
        Simulations per placebo / random-common-cause / subset refuter.
    subset_fraction : float
    seed : int
    """
    unknown = [r for r in refuters if r not in REFUTERS]
    if unknown:
        raise InputError(f"unknown refuter(s) {unknown}; choose from {list(REFUTERS)}")
    graph = causal_graph(data, outcome)
    model = _causal_model(data.frame, graph)
    frame = data.frame[[_TREATED, graph.outcome, *data.confounders]].copy()
    with _Quiet():
        estimand = model.identify_effect(proceed_when_unidentifiable=False)
        est = model.estimate_effect(estimand, method_name="backdoor.linear_regression")
    value = float(est.value)
    h = float(half_width)
    out = []
    for name in refuters:
        began = time.perf_counter()
        with _Quiet():
            if name == "placebo_treatment":
                r = model.refute_estimate(
                    estimand,
                    est,
                    method_name="placebo_treatment_refuter",
                    placebo_type="permute",
                    num_simulations=simulations,
                    random_seed=seed,
                )
                new = float(r.new_effect)
                ok = abs(new) <= h
                text = (
                    f"Placebo treatment: {_verdict(ok)}. With the treatment shuffled at random the "
                    f"effect is {_fmt(outcome, new)} (the estimate is {_fmt(outcome, value)}); "
                    + (
                        "a fake treatment shows no effect beyond the estimate's own noise."
                        if ok
                        else "a fake treatment shows an effect: the model finds effects where "
                        "there are none."
                    )
                )
                details = {"p_value": _p_value(r)}
            elif name == "random_common_cause":
                r = model.refute_estimate(
                    estimand,
                    est,
                    method_name="random_common_cause",
                    num_simulations=simulations,
                    random_seed=seed,
                )
                new = float(r.new_effect)
                ok = abs(new - value) <= h / 4
                text = (
                    f"Random common cause: {_verdict(ok)}. Adding a random covariate moves the "
                    f"estimate to {_fmt(outcome, new)} from {_fmt(outcome, value)}"
                    + ("; it is stable." if ok else "; it should not move: the model is unstable.")
                )
                details = {"p_value": _p_value(r)}
            elif name == "data_subset":
                r = model.refute_estimate(
                    estimand,
                    est,
                    method_name="data_subset_refuter",
                    subset_fraction=subset_fraction,
                    num_simulations=simulations,
                    random_seed=seed,
                )
                new = float(r.new_effect)
                ok = abs(new - value) <= h / 2
                text = (
                    f"Data subset: {_verdict(ok)}. On random {subset_fraction:.0%} subsets the "
                    f"estimate averages {_fmt(outcome, new)} against {_fmt(outcome, value)} on "
                    "everyone" + ("." if ok else ": it depends on which customers are included.")
                )
                details = {"p_value": _p_value(r), "subset_fraction": subset_fraction}
            else:
                new, ok, text, details = _sensitivity(
                    model, estimand, est, data, frame, outcome, value
                )
        details["seconds"] = round(time.perf_counter() - began, 3)
        out.append(
            Refutation(
                refuter=name,
                outcome=outcome,
                estimate=value,
                new_effect=new,
                verdict="pass" if ok else "warn",
                text=text,
                details=details,
            )
        )
    return out


def _sensitivity(model, estimand, est, data, frame, outcome, value):
    """Cinelli-Hazlett sensitivity with DoWhy's analyzer, benchmarked on each numeric confounder.

    DoWhy's ``LinearSensitivityAnalyzer`` computes every benchmark's partial R² but keeps the
    bias-adjusted numbers of the last one only, so they are recomputed here per benchmark with
    its formulas (confounder as strong as the benchmark with both treatment and outcome).
    """
    from dowhy.causal_refuters.linear_sensitivity_analyzer import LinearSensitivityAnalyzer

    bench = [c for c in data.numeric if frame[c].std() > 0]
    analyzer = LinearSensitivityAnalyzer(
        estimator=est.estimator,
        data=frame,
        treatment_name=[_TREATED],
        benchmark_common_causes=bench,
        frac_strength_treatment=[1.0],
        frac_strength_outcome=[1.0],
        common_causes_order=est.estimator._observed_common_causes.columns,
    )
    analyzer.check_sensitivity(plot=False)
    rv = float(analyzer.stats["robustness_value"])
    rows = []
    for c, r2t, r2y in zip(bench, analyzer.r2twj_w, analyzer.r2ywj_tw, strict=True):
        r2tu = r2t / (1 - r2t)
        r2uwj = r2t**2 / ((1 - r2t) * (1 - r2t))
        r2yu = min(1.0, ((1 + math.sqrt(r2uwj)) / math.sqrt(1 - r2uwj)) ** 2 * (r2y / (1 - r2y)))
        if r2tu >= 1:
            r2tu = 0.999
        b = analyzer.compute_bias_adjusted(np.array([r2tu]), np.array([r2yu]))
        rows.append(
            {
                "benchmark": c,
                "r2_treatment": float(r2tu),
                "r2_outcome": float(r2yu),
                "adjusted_estimate": float(np.ravel(b["bias_adjusted_estimate"])[0]),
                "adjusted_lo": float(np.ravel(b["bias_adjusted_lower_CI"])[0]),
                "adjusted_hi": float(np.ravel(b["bias_adjusted_upper_CI"])[0]),
            }
        )
    details: dict = {"robustness_value": rv, "benchmarks": rows}
    if not rows:
        text = (
            "Unobserved confounder: warn. No numeric confounder to benchmark against; a hidden "
            f"confounder explaining {100 * rv:.1f}% of the remaining variation of both treatment "
            "and outcome would erase the effect."
        )
        return None, False, text, details
    sign = 1.0 if value >= 0 else -1.0

    def keeps(row: dict) -> bool:
        return sign * row["adjusted_lo"] > 0 and sign * row["adjusted_hi"] > 0

    worst = min(rows, key=lambda r: sign * min(r["adjusted_lo"], r["adjusted_hi"]))
    ok = all(keeps(r) for r in rows) and value != 0
    text = (
        f"Unobserved confounder: {_verdict(ok)}. A hidden confounder would have to explain "
        f"{100 * rv:.1f}% of the remaining variation of both treatment and outcome to erase the "
        f"effect (robustness value). One as strong as the observed {worst['benchmark']} "
        f"would move the estimate to {_fmt(outcome, worst['adjusted_estimate'])} (95% interval "
        f"{_fmt(outcome, worst['adjusted_lo'], False)} to "
        f"{_fmt(outcome, worst['adjusted_hi'], False)})"
        + (
            ", still clear of zero."
            if ok
            else ": the effect would no longer be distinguishable from zero, so a confounder "
            "left out of the graph could explain it."
        )
    )
    details["worst"] = worst["benchmark"]
    return worst["adjusted_estimate"], ok, text, details


def _p_value(r) -> float | None:
    sig = getattr(r, "refutation_result", None)
    if isinstance(sig, dict) and "p_value" in sig:
        return float(sig["p_value"])
    return None


def _verdict(ok: bool) -> str:
    return "pass" if ok else "warn"


# --------------------------------------------------------------------------------------------
# The side-by-side result
# --------------------------------------------------------------------------------------------
@dataclass
class Attribution:
    """Observational attribution of one treatment: every route side by side, with its checks.

    Attributes
    ----------
    data : ObservationalData
        The customers analysed (after trimming).
    outcomes : list of str
        The outcomes reported.
    graphs : dict
        Outcome -> :class:`CausalGraph`.
    identification : Identification
    overlap : Overlap or None
        None when the effect was not identifiable (nothing was fitted).
    estimates : list of Estimate
    refutations : list of Refutation
    money : pandas.DataFrame
        Net value, ROI, payback and total net value per treated customer, per estimator (rows
        shaped like the readout's money rows, plus ``estimator``).
    gformula : dict
        Outcome -> the cell route's fit (``attribution.gformula.GFormulaFit``), when available.
    notes : list of str
    timings : dict
        Seconds per stage (``data``, ``overlap``, ``dowhy``, ``refute``, ``gformula``).
    interval : IntervalSetting
    segment_by : str or None
        The segment column effects are also broken down by.
    """

    data: ObservationalData
    outcomes: list[str]
    graphs: dict[str, CausalGraph]
    identification: Identification
    overlap: Overlap | None
    estimates: list[Estimate] = field(default_factory=list)
    refutations: list[Refutation] = field(default_factory=list)
    money: pd.DataFrame = field(default_factory=pd.DataFrame)
    gformula: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    interval: IntervalSetting = field(default_factory=IntervalSetting)
    segment_by: str | None = None

    def get(
        self, estimator: str, outcome: str, estimand: str = "ate", segment: str = "all"
    ) -> Estimate:
        """The estimate of one estimator, outcome, estimand and segment (``"all"``: overall)."""
        for e in self.estimates:
            if (e.estimator, e.outcome, e.estimand, e.segment) == (
                estimator,
                outcome,
                estimand,
                segment,
            ):
                return e
        raise KeyError((estimator, outcome, estimand, segment))

    def verdicts(self, outcome: str | None = None) -> dict[str, str]:
        """Refuter -> verdict (for one outcome, or the worst over the outcomes)."""
        out: dict[str, str] = {}
        for r in self.refutations:
            if (outcome is None or r.outcome == outcome) and out.get(r.refuter) != "warn":
                out[r.refuter] = r.verdict
        return out

    def summary(self) -> pd.DataFrame:
        """Every estimate as a row: estimator, outcome, segment_by, segment, estimand, mean, lo,
        hi, p_positive, n_treated, n_control."""
        return pd.DataFrame(
            [
                {
                    "estimator": e.estimator,
                    "outcome": e.outcome,
                    "segment_by": e.segment_by,
                    "segment": e.segment,
                    "estimand": e.estimand,
                    "mean": e.mean,
                    "lo": e.lo,
                    "hi": e.hi,
                    "p_positive": e.p_positive,
                    "n_treated": e.n_treated,
                    "n_control": e.n_control,
                }
                for e in self.estimates
            ]
        )

    def records(self) -> list[dict]:
        """Rows with the fields of ``cx readout --json`` plus estimator, estimand, method, verdict.

        ``method`` names the route (``naive_difference``, ``backdoor.propensity_score_weighting``,
        ``backdoor.linear_regression``, ``bayes_gformula_cells``, and for money
        ``money_per_treated_customer``); ``estimand`` is ``ate`` or ``att`` (money: ``att``);
        ``verdict`` puts the refutations of the row's outcome (money rows: of all three) in
        words, starting with ``pass`` or ``warn`` (``not adjusted`` for the naive difference,
        ``not refuted`` when no refuter ran); ``diagnostics`` is the cell route's gate
        (``passed`` / ``failed``), ``refutation_pass`` / ``refutation_warn``, ``not_adjusted``
        or ``money``.
        """
        name = self.data.intervention or self.data.treatment
        warn = {r.outcome for r in self.refutations if r.verdict == "warn"}
        rows = []
        for e in self.estimates:
            verdict = self.verdict_words([e.outcome])
            if e.estimator == "bayes_gformula":
                fit = self.gformula.get(e.outcome)
                diag = "passed" if fit is not None and fit.diagnostics_.passed else "failed"
                method = "bayes_gformula_cells"
            elif e.estimator == "naive":
                diag, method = "not_adjusted", "naive_difference"
                verdict = NAIVE_VERDICT
            else:
                diag = "refutation_warn" if e.outcome in warn else "refutation_pass"
                method = (
                    "backdoor.propensity_score_weighting"
                    if e.estimator == "dowhy_psw"
                    else "backdoor.linear_regression"
                )
            rows.append(
                {
                    "experiment_id": None,
                    "question": None,  # named by a refresh question (cx.toml), not here
                    "intervention": name,
                    "arm": "treatment",
                    "outcome": e.outcome,
                    "segment_by": e.segment_by,
                    "segment": e.segment,
                    "metric": "absolute",
                    "mean": e.mean,
                    "lo": e.lo,
                    "hi": e.hi,
                    "p_positive": e.p_positive,
                    "expected_loss": float(np.mean(np.maximum(0.0, -e.draws))),
                    "n_treated": e.n_treated,
                    "n_control": e.n_control,
                    "diagnostics": diag,
                    "estimator": e.estimator,
                    "estimand": e.estimand,
                    "method": method,
                    "verdict": verdict,
                }
            )
        money_verdict = self.verdict_words(self.outcomes)
        for m in self.money.to_dict(orient="records"):
            rows.append(
                {
                    "experiment_id": None,
                    "question": None,  # named by a refresh question (cx.toml), not here
                    "intervention": name,
                    "arm": "treatment",
                    "outcome": m["outcome"],
                    "segment_by": "all" if m["segment"] == "all" else self.segment_by,
                    "segment": m["segment"],
                    "metric": m["metric"],
                    "mean": m["mean"],
                    "lo": m["lo"],
                    "hi": m["hi"],
                    "p_positive": m["p_positive"],
                    "expected_loss": m["expected_loss"],
                    "n_treated": m["n_treated"],
                    "n_control": m["n_control"],
                    "diagnostics": "money",
                    "estimator": m["estimator"],
                    "estimand": "att",
                    "method": "money_per_treated_customer",
                    "verdict": money_verdict,
                }
            )
        return [json_ready(r) for r in rows]

    def verdict_words(self, outcomes: Sequence[str] | None = None) -> str:
        """The refutations of some outcomes (default all) in words, led by ``pass`` or ``warn``.

        Examples: ``"pass: placebo treatment, data subset pass"``; ``"warn: unobserved
        confounder warns (retention, revenue); placebo treatment passes"``; ``"not refuted: no
        refuter was run"``.
        """
        wanted = list(self.outcomes if outcomes is None else outcomes)
        refs = [r for r in self.refutations if r.outcome in wanted]
        if not refs:
            return "not refuted: no refuter was run"
        order = list(dict.fromkeys([*(n for n in REFUTERS), *(r.refuter for r in refs)]))
        warned: dict[str, list[str]] = {}
        ran: set[str] = set()
        for r in refs:
            ran.add(r.refuter)
            if r.verdict == "warn":
                warned.setdefault(r.refuter, []).append(r.outcome)
        ok = [n.replace("_", " ") for n in order if n in ran and n not in warned]
        if not warned:
            return f"pass: {', '.join(ok)} " + ("pass" if len(ok) > 1 else "passes")
        parts = []
        for n in order:
            if n in warned:
                where = f" ({', '.join(warned[n])})" if len(wanted) > 1 else ""
                parts.append(n.replace("_", " ") + where)
        text = f"warn: {'; '.join(parts)} " + ("warn" if len(parts) > 1 else "warns")
        if ok:
            text += f"; {', '.join(ok)} " + ("pass" if len(ok) > 1 else "passes")
        return text

    def to_dict(self) -> dict:
        """JSON-ready output for ``cx attribute --json``."""
        return {
            "treatment": self.data.treatment,
            "intervention": self.data.intervention,
            "as_of": str(self.data.as_of),
            "horizon_months": self.data.horizon_months,
            "n_treated": self.data.n_treated,
            "n_untreated": self.data.n_untreated,
            "confounders": list(self.data.confounders),
            "interval_width": self.interval.width,
            "graphs": {o: g.to_dict() for o, g in self.graphs.items()},
            "identification": self.identification.to_dict(),
            "overlap": None if self.overlap is None else self.overlap.to_dict(),
            "rows": self.records(),
            "refutations": [r.to_dict() for r in self.refutations],
            "notes": list(self.notes),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def describe(self) -> str:
        """Terminal text: the question, graph, checks, the estimates side by side, verdicts."""
        d = self.data
        pct = f"{self.interval.width:.0%}"
        lines = [
            f"Observational attribution of {d.treatment}: outcomes from {d.as_of:%Y-%m} over "
            f"{d.horizon_months} month(s); {d.n_treated:,} treated and {d.n_untreated:,} "
            "untreated customers.",
            "Causal graph:",
        ]
        first = next(iter(self.graphs.values()), None)
        if first is not None:
            lines.append(first.text())
        lines.append(self.identification.text())
        if self.overlap is not None:
            lines.append(self.overlap.text())
        for o in self.outcomes:
            lines.append("")
            lines.append(f"{o} ({_unit(o)}), {pct} intervals:")
            for e in self.estimates:
                if e.outcome != o or e.segment != "all":
                    continue
                if e.estimator == "naive" and e.estimand == "att":
                    continue
                label = ESTIMATORS[e.estimator] + (
                    "" if e.estimator == "naive" else f" {e.estimand.upper()}"
                )
                lines.append(
                    f"  {label:<48} {_fmt(o, e.mean):>14}  "
                    f"[{_fmt(o, e.lo, False)}, {_fmt(o, e.hi, False)}]  P(>0) {e.p_positive:.2f}"
                )
            for e in self.estimates:
                by_segment = e.outcome == o and e.segment != "all" and e.estimand == "att"
                if by_segment and e.estimator in ("dowhy_psw", "bayes_gformula"):
                    label = f"{ESTIMATORS[e.estimator]} ATT, {e.segment_by}={e.segment}"
                    lines.append(
                        f"  {label:<48} {_fmt(o, e.mean):>14}  "
                        f"[{_fmt(o, e.lo, False)}, {_fmt(o, e.hi, False)}]  "
                        f"P(>0) {e.p_positive:.2f}"
                    )
            for r in self.refutations:
                if r.outcome == o:
                    lines.append(f"  - {r.text}")
        if not self.money.empty:
            lines.append("")
            lines.append(f"Net value per treated customer (ATT, {pct} intervals):")
            for m in self.money.to_dict(orient="records"):
                if m["outcome"] == "net_value":
                    label = ESTIMATORS[m["estimator"]]
                    if m["segment"] != "all":
                        label += f", {self.segment_by}={m['segment']}"
                    lines.append(
                        f"  {label:<48} {m['mean']:>14,.2f}  "
                        f"[{m['lo']:,.2f}, {m['hi']:,.2f}]  P(>0) {m['p_positive']:.2f}"
                    )
        for note in self.notes:
            lines.append(f"Note: {note}")
        return "\n".join(lines)

    def graph_png(self, path: str | Path, outcome: str | None = None) -> Path:
        """Write the graph of one outcome (default the first) as a PNG."""
        key = outcome or self.outcomes[0]
        if key not in self.graphs:
            raise InputError(f"no graph for outcome {key!r}; have {list(self.graphs)}")
        return graph_png(self.graphs[key], path)


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
    outcomes = _outcomes(outcome)
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
        o: causal_graph(data, o, instruments=cs.instruments, unobserved=cs.unobserved)
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
    _groups(data.frame, data, segment)  # an unusable segment fails before any fitting
    if not ident.identifiable:
        est = estimate_naive(
            data, outcomes, bootstrap=cs.bootstrap, seed=cs.seed, interval=cfg.interval
        )
        result.estimates = est
        return result

    # The matrices here are tall and narrow: BLAS threads only fight each other (measured: a
    # bootstrap took 45 s with default threads on a busy 2-core machine, 6 s with one).
    with threadpool_limits(limits=1, user_api="blas"):
        data = _dowhy_route(result, data, outcomes, segment, refuters, cs, cfg)
    t = time.perf_counter()
    use_gformula = True if gformula is None else gformula
    if use_gformula:
        from attribution.gformula import fit_gformula

        for o in outcomes:
            fit = fit_gformula(data, o, bands=cs.bands, segment=segment, config=cfg)
            result.gformula[o] = fit
            result.estimates += _gformula_estimates(fit, o)
        timings["gformula"] = time.perf_counter() - t
    elif gformula is None:
        notes.append("attribution.gformula is not available: the Bayesian cell route was skipped")
    result.money = _money(result, cfg)
    return result


def _dowhy_route(result, data, outcomes, segment, refuters, cs, cfg) -> ObservationalData:
    """Overlap (and trimming), DoWhy estimates and refutations, recorded into ``result``."""
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
    return data


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
    T = data.frame[_TREATED].to_numpy(dtype=float)
    Y = data.frame[list(OUTCOME_COLUMNS.values())].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    draws = np.empty((bootstrap, 3))
    for b in range(bootstrap):
        idx = rng.integers(0, len(T), len(T))
        draws[b] = _naive(T[idx], Y[idx])
    point = _naive(T, Y)
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
            tr, un = rows[rows[_TREATED] == 1], rows[rows[_TREATED] == 0]
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


def _outcomes(outcome: str | Sequence[str]) -> list[str]:
    if isinstance(outcome, str):
        items = list(OUTCOME_COLUMNS) if outcome == "all" else [outcome]
    else:
        items = list(outcome)
    if not items:
        raise InputError("outcome: give retention, revenue, cost_to_serve or all")
    for o in items:
        _outcome_column(o)
    return list(dict.fromkeys(items))


def _outcome_column(outcome: str) -> str:
    if outcome not in OUTCOME_COLUMNS:
        raise InputError(f"outcome {outcome!r} is not one of {', '.join(OUTCOME_COLUMNS)} (or all)")
    return OUTCOME_COLUMNS[outcome]


def _unit(outcome: str) -> str:
    return (
        "share active at the horizon" if outcome == "retention" else "per customer over the window"
    )


def _fmt(outcome: str, x: float | None, unit: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if outcome == "retention":
        return f"{100 * x:+.2f}" + (" pp" if unit else "")
    return f"{x:+,.2f}"


class _Quiet:
    """Silence DoWhy's logging and warnings (statsmodels, pandas) inside a block."""

    def __enter__(self):
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        self._level = logging.getLogger("dowhy").level
        logging.getLogger("dowhy").setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc):
        logging.getLogger("dowhy").setLevel(self._level)
        self._warnings.__exit__(*exc)
        return False
