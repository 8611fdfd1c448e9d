"""Per-customer uplift (CATE) with cross-fitting: T-, X- and doubly robust learners.

The learners are EconML's (``TLearner``, ``XLearner``, ``DRLearner``; DoWhy wraps the same
library), with scikit-learn's histogram gradient boosting for every outcome model. The
propensity is the design's: in a randomized experiment the chance of the treatment arm is the
same for every customer, so it is the arm's share (a constant classifier), not a model that
could only add noise.

Every prediction a skeptic checks is out of fold: the customers are split into ``folds``
folds (stratified by arm), and each fold's uplift comes from a learner fitted on the other
folds, so the evaluation (:mod:`attribution.targeting.evaluate`) never scores a customer with a
model that saw them. A final learner on every customer (or the sample) scores new ones. Above
:data:`MAX_TRAIN` customers the models train on a random sample of that size and score every
customer in batches (:func:`fit_uplift`): fitting time and memory stay flat at 10M customers.

Net value per customer goes through the money layer (:func:`attribution.value.cash_flows`):
each customer's own outcomes, as the levels of one "arm" of one customer, give the value of
their path: the window's margin less cost to serve, spread evenly over the window's months, and,
when they are active at the horizon, the months of the value horizon at their window's monthly
margin less cost, leaving at the control arm's monthly retention (or, when the experiment's
design holds the effect on churn after the window, at the middle of the readout's span from
that rate to their arm's late-window rate: :func:`customer_value`), discounted from the start.
The uplift of that value, less the intervention's cost per customer, is the incremental net
value per customer: the same definition as the readout's net value and the simulator's planted
one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import StratifiedKFold

from attribution import value
from attribution.errors import InputError
from attribution.settings import MoneySettings
from attribution.targeting.data import OUTCOMES, TargetingData, align

__all__ = [
    "CrossFittedUplift",
    "LEARNERS",
    "MAX_TRAIN",
    "TARGETS",
    "UpliftFit",
    "customer_value",
    "dr_scores",
    "fit_uplift",
    "segment_level",
]

#: The learners by name.
LEARNERS = ("t", "x", "dr")
#: Most customers the learners train on (per fit: the cross-fitting folds' training parts and the
#: final model draw from one random sample of this size, in the arms' proportions); every
#: customer is still scored, out of fold. Gradient boosting with leaves of at least 2,000
#: customers learns no more from millions of rows, and its time and memory stay flat.
MAX_TRAIN = 200_000
#: Customers scored at a time (prediction memory stays flat).
SCORE_BATCH = 250_000
#: What a learner can fit: an outcome of :data:`attribution.targeting.data.OUTCOMES`, or
#: ``net_value`` (:func:`customer_value` less the unit cost).
TARGETS = (*OUTCOMES, "net_value")


def _booster(seed: int, leaf: int) -> HistGradientBoostingRegressor:
    """The outcome model: gradient-boosted stumps of up to 4 leaves, each leaf at least ``leaf``
    customers. CX outcomes are noisy (a customer's net value is mostly their own luck), and
    measured on 4 simulated worlds (recovery gift, ~4,700 customers) the out-of-fold correlation
    with the planted individual net value was 0.06-0.21 with leaves of a tenth of the training
    customers and 4 leaves a tree, against -0.08-0.13 with leaves of 50 and 15 leaves a tree,
    which fitted the noise of a few big spenders."""
    return HistGradientBoostingRegressor(
        max_iter=100, learning_rate=0.05, max_leaf_nodes=4, min_samples_leaf=leaf,
        early_stopping=False, random_state=seed,
    )  # fmt: skip


def leaf_size(n: int) -> int:
    """Fewest customers per leaf for ``n`` training customers: a tenth, within [50, 2000].

    Examples
    --------
    >>> [leaf_size(n) for n in (300, 4000, 10**6)]
    [50, 400, 2000]
    """
    return int(np.clip(n // 10, 50, 2000))


def _learner(name: str, seed: int, n: int):
    from econml.dr import DRLearner
    from econml.metalearners import TLearner, XLearner

    design = DummyClassifier(strategy="prior")  # the arm's share: the randomized propensity
    leaf = leaf_size(n)
    if name == "t":
        return TLearner(models=_booster(seed, leaf))
    if name == "x":
        return XLearner(models=_booster(seed, leaf), propensity_model=design)
    return DRLearner(
        model_propensity=design, model_regression=_booster(seed, leaf),
        model_final=_booster(seed, leaf), cv=2, random_state=seed,
    )  # fmt: skip


def dr_scores(X_fit, t_fit, y_fit, X, t, y, *, seed: int = 0) -> np.ndarray:
    """Doubly robust scores of held-out customers: ``mu1 - mu0 + t (y - mu1) / p - (1 - t)
    (y - mu0) / (1 - p)``, the outcome models ``mu`` (one per arm) and the treated share ``p``
    fitted on other customers. In a randomized test ``p`` is the design's, so the score's mean
    over customers chosen by anything but their outcomes is unbiased for their mean uplift
    whatever the outcome models' errors; the models only make it less noisy."""
    p = float(np.mean(t_fit))
    mu = {}
    for arm in (0, 1):
        rows = t_fit == arm
        mu[arm] = (
            _booster(seed, leaf_size(int(rows.sum()))).fit(X_fit[rows], y_fit[rows]).predict(X)
        )
    return mu[1] - mu[0] + t * (y - mu[1]) / p - (1 - t) * (y - mu[0]) / (1 - p)


def customer_value(
    data: TargetingData, settings: MoneySettings | None = None, *, share: float = 0.5
) -> np.ndarray:
    """Each customer's discounted value over the window and the value horizon, before the
    intervention's cost (see the module docstring): the outcome whose uplift is net value.

    After the window a customer active at the horizon leaves at the control arm's monthly
    retention when the experiment's effect on churn ends with the window; when its design
    record holds it (:attr:`TargetingData.late_retention`), at the point ``share`` of the way
    (in log retention; default the middle) along the span the readout draws over, from that
    rate to their own arm's late-window rate.
    """
    settings = settings or MoneySettings()
    f = data.frame
    W = data.horizon_months
    control = f["treated"] == 0
    p_control = float(f.loc[control, "retained"].mean())
    own = {
        "p_active": f["retained"].to_numpy(float),
        "revenue": f["revenue"].to_numpy(float),
        "cost_to_serve": f["cost_to_serve"].to_numpy(float),
        "revenue_retained": f["revenue"].to_numpy(float),
        "cost_retained": f["cost_to_serve"].to_numpy(float),
    }
    late = None
    if data.late_retention is not None:
        late_control, late_treated = data.late_retention
        own_arm = np.where(f["treated"].to_numpy() == 1, late_treated, late_control)
        late = value.between(value.ends_retention(p_control, W), own_arm, share)
    disc = xr.DataArray(settings.discount_factors(W + settings.value_horizon_months), dims="month")
    out = np.empty(len(f))
    for lo in range(0, len(f), SCORE_BATCH):  # (customers x months) arrays, a batch at a time
        part = slice(lo, lo + SCORE_BATCH)
        n = len(out[part])
        # a "control arm" with nothing but the control arm's retention, which sets the decay
        base = {k: np.zeros(n) for k in value.LEVELS} | {"p_active": np.full(n, p_control)}
        wrap = {k: xr.DataArray(v[part], dims="customer") for k, v in own.items()}
        wrap_base = {k: xr.DataArray(v, dims="customer") for k, v in base.items()}
        survival = None
        if late is not None:
            rate = xr.DataArray(late[part], dims="customer")
            survival = xr.Dataset({"control": rate, "treated": rate})
        flows = value.cash_flows(
            wrap_base, wrap, window_months=W, settings=settings, survival=survival
        )["flow"]
        out[part] = (flows * disc).sum("month").to_numpy()
    return out


def _target(data: TargetingData, target: str, settings: MoneySettings | None) -> np.ndarray:
    if target == "net_value":
        return customer_value(data, settings)
    if target not in OUTCOMES:
        raise InputError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    return data.frame[OUTCOMES[target]].to_numpy(float)


@dataclass(frozen=True)
class UpliftFit:
    """Out-of-fold uplift per customer of one experiment arm, and a learner to score others.

    Attributes
    ----------
    data : TargetingData
    target : str
        An entry of :data:`TARGETS`.
    learner : str
        An entry of :data:`LEARNERS`.
    oof : numpy.ndarray
        Each customer's uplift from the fold model that did not see them (net value: less the
        unit cost).
    scores : numpy.ndarray
        Each customer's doubly robust score (:func:`dr_scores`, out of fold, net value less the
        unit cost): its mean over any set of customers chosen without looking at their outcomes
        estimates their mean uplift.
    y : numpy.ndarray
        The observed outcome the learner fitted (net value: each customer's value).
    folds : numpy.ndarray
        Each customer's fold (0 .. folds - 1).
    columns : tuple of str
        The feature matrix's columns.
    model : object
        The learner fitted on every customer.
    span_scores : tuple of numpy.ndarray, or None
        For net value of an experiment whose design record holds its churn effect after the
        window: the doubly robust scores (less the unit cost) at the two ends of the span the
        readout draws over (the "ends" rate, and each arm's own late-window rate);
        :attr:`scores` is at its middle. Intervals draw a point of the span (uniform, one per
        experiment and resample), as the readout does: how long the effect lasts is not in
        the data. None otherwise.
    segment_values : pandas.Series or None
        Set by :func:`segment_level`: the mean doubly robust score per value of its segment
        (the index, named after the segment; unnamed for everyone), which then scores new
        customers instead of ``model``.
    """

    data: TargetingData
    target: str
    learner: str
    oof: np.ndarray
    scores: np.ndarray
    y: np.ndarray
    folds: np.ndarray
    columns: tuple[str, ...]
    model: object
    segment_values: pd.Series | None = None
    span_scores: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def deciles(self) -> np.ndarray:
        """Each customer's decile of out-of-fold uplift, 1 = the highest predicted."""
        ranks = pd.Series(self.oof).rank(method="first")
        return (10 - pd.qcut(ranks, 10, labels=False)).to_numpy()

    @property
    def offset(self) -> float:
        """What is subtracted from the learner's uplift: the unit cost for net value."""
        return self.data.unit_cost if self.target == "net_value" else 0.0

    def predict(self, frame: pd.DataFrame | None = None) -> np.ndarray:
        """Uplift per row of ``frame`` (features as in :attr:`TargetingData.frame`), from the
        learner fitted on every customer (a :func:`segment_level` fit: the mean doubly robust
        score of the row's segment); default the experiment's own customers."""
        d = self.data if frame is None else _with_frame(self.data, frame)
        if self.segment_values is not None:  # a segment-level fit scores by segment
            means = self.segment_values
            if means.index.name is None:
                return np.full(len(d.frame), float(means.iloc[0]))
            overall = float(self.scores.mean())
            return d.frame[means.index.name].map(means).fillna(overall).to_numpy(float)
        X = align(d.matrix(), self.columns)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return _batched(self.model.effect, X, np.arange(len(X))) - self.offset

    def table(self) -> pd.DataFrame:
        """``customer_id``, ``treated``, ``uplift`` (out of fold) and the observed outcome."""
        f = self.data.frame
        return pd.DataFrame(
            {"customer_id": f["customer_id"], "treated": f["treated"], "uplift": self.oof,
             "outcome": self.y}
        )  # fmt: skip


def segment_level(fit: UpliftFit, segment: str | None) -> UpliftFit:
    """``fit`` with each customer's uplift replaced by the mean doubly robust score of their
    ``segment`` (None: everyone) over the other folds: the segment-level reading a ranking that
    does not beat random falls back to, still out of fold."""
    f = fit.data.frame
    key = f[segment].to_numpy() if segment in fit.data.categorical else np.zeros(len(f), int)
    out = np.empty(len(fit.oof))
    for k in np.unique(fit.folds):
        test = fit.folds == k
        other = pd.Series(fit.scores[~test]).groupby(key[~test]).mean()
        overall = float(fit.scores[~test].mean())
        out[test] = pd.Series(key[test]).map(other).fillna(overall).to_numpy(float)
    values = pd.Series(fit.scores).groupby(key).mean()
    values.index.name = segment if segment in fit.data.categorical else None
    return replace(fit, oof=out, segment_values=values)


def _training_sample(t: np.ndarray, max_train: int, seed: int) -> np.ndarray:
    """Which customers the models may train on: all, or ``max_train`` drawn at random with
    each arm keeping its share (a stream of its own, so the folds do not move with it)."""
    keep = np.ones(len(t), dtype=bool)
    if len(t) <= max_train:
        return keep
    keep[:] = False
    rng = np.random.default_rng([int(seed), 0x7472616E])  # "tran"
    for arm in (0, 1):
        rows = np.flatnonzero(t == arm)
        take = int(round(max_train * len(rows) / len(t)))
        keep[rng.choice(rows, size=min(take, len(rows)), replace=False)] = True
    return keep


def _batched(score, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``score`` of ``X[rows]``, :data:`SCORE_BATCH` rows at a time."""
    out = np.empty(len(rows))
    for lo in range(0, len(rows), SCORE_BATCH):
        part = rows[lo : lo + SCORE_BATCH]
        out[lo : lo + len(part)] = score(X[part])
    return out


def _with_frame(data: TargetingData, frame: pd.DataFrame) -> TargetingData:
    missing = [c for c in data.features if c not in frame.columns]
    if missing:
        raise InputError(f"frame to score has no column(s) {', '.join(missing)}")
    return replace(data, frame=frame)


class CrossFittedUplift(BaseEstimator):
    """Per-customer uplift with cross-fitting, on arrays: a scikit-learn style estimator.

    ``fit(X, treatment, y)`` returns self; what it learnt ends in ``_``. :func:`fit_uplift` is
    this on an experiment's rows; use the class directly with features of your own (any
    numeric matrix, one row per customer of a randomized test).

    Parameters
    ----------
    learner : {"dr", "t", "x"}
        Doubly robust (default), T- or X-learner (the X-learner suits unbalanced arms).
    folds : int
        Outer folds for the out-of-fold predictions (>= 2), stratified by arm.
    seed : int
    max_train : int
        Most customers the models train on (default :data:`MAX_TRAIN`): above it a random
        sample of that size (the arms in their proportions), every customer still scored out
        of fold, in batches.

    Attributes
    ----------
    oof_ : numpy.ndarray
        Each customer's uplift from the fold model that did not see them.
    scores_ : numpy.ndarray
        Each customer's doubly robust score (:func:`dr_scores`), out of fold.
    folds_ : numpy.ndarray
        Each customer's fold.
    model_ : object
        The learner fitted on every customer (or the sample): :meth:`predict` uses it.
    trains_ : numpy.ndarray
        Which customers the models trained on (all, or the sample).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 2)); t = rng.integers(0, 2, 2000)
    >>> y = X[:, 0] + t * (1 + X[:, 1]) + rng.normal(size=2000)
    >>> est = CrossFittedUplift(learner="t", seed=0).fit(X, t, y)
    >>> bool(np.corrcoef(est.oof_, 1 + X[:, 1])[0, 1] > 0.5)
    True
    """

    def __init__(self, learner: str = "dr", folds: int = 5, seed: int = 0,
                 max_train: int = MAX_TRAIN) -> None:  # fmt: skip
        self.learner = learner
        self.folds = folds
        self.seed = seed
        self.max_train = max_train

    def _check(self) -> None:
        if self.learner not in LEARNERS:
            raise InputError(f"learner must be one of {', '.join(LEARNERS)}, got {self.learner!r}")
        folds = self.folds
        if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
            raise InputError(f"folds must be a whole number >= 2, got {folds!r}")
        cap = self.max_train
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 10 * folds:
            raise InputError(f"max_train must be a whole number >= {10 * folds}, got {cap!r}")

    def fit(self, X, treatment, y) -> CrossFittedUplift:
        """Fit the fold learners and the final one; ``treatment`` is 0/1 per row."""
        self._check()
        X = np.asarray(X, dtype=float)
        t = np.asarray(treatment).astype(int)
        y = np.asarray(y, dtype=float)
        if not (len(X) == len(t) == len(y)) or not set(np.unique(t)) <= {0, 1}:
            raise InputError("X, treatment and y need one row per customer; treatment 0 or 1")
        seed, folds = self.seed, self.folds
        trains = _training_sample(t, self.max_train, seed)
        oof, scores, fold_of = np.empty(len(y)), np.empty(len(y)), np.empty(len(y), dtype=int)
        split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            # EconML notes that a constant propensity model's scores are not probabilities it
            # checked; the design's share is exactly the propensity of a randomized test
            warnings.simplefilter("ignore", UserWarning)
            for k, (_, test) in enumerate(split.split(X, t)):
                fold_of[test] = k
            for k in range(folds):
                train = np.flatnonzero(trains & (fold_of != k))
                test = np.flatnonzero(fold_of == k)
                model = _learner(self.learner, seed + k, len(train))
                model.fit(y[train], t[train], X=X[train])
                oof[test] = _batched(model.effect, X, test)
                scores[test] = dr_scores(X[train], t[train], y[train], X[test], t[test],
                                         y[test], seed=seed + k)  # fmt: skip
            everyone = np.flatnonzero(trains)
            final = _learner(self.learner, seed, len(everyone))
            final.fit(y[everyone], t[everyone], X=X[everyone])
        self.oof_, self.scores_, self.folds_, self.model_ = oof, scores, fold_of, final
        self.trains_ = trains
        return self

    def scores_for(self, treatment, y_new, y) -> np.ndarray:
        """Out-of-fold doubly robust scores of another outcome ``y_new`` of the same customers,
        keeping the outcome models fitted on ``y`` (the one :meth:`fit` saw): each score moves
        by ``(t / p - (1 - t) / (1 - p)) (y_new - y)``, ``p`` the fold's training share. With
        the propensity known (a randomized test) a doubly robust score is unbiased whatever
        its outcome models, so no model is refitted."""
        t = np.asarray(treatment).astype(int)
        change = np.asarray(y_new, dtype=float) - np.asarray(y, dtype=float)
        out = np.array(self.scores_, dtype=float)
        for k in range(self.folds):
            p = float(t[self.trains_ & (self.folds_ != k)].mean())
            test = self.folds_ == k
            out[test] += (t[test] / p - (1 - t[test]) / (1 - p)) * change[test]
        return out

    def predict(self, X) -> np.ndarray:
        """Uplift per row of ``X`` from the final learner, in batches."""
        X = np.asarray(X, dtype=float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return _batched(self.model_.effect, X, np.arange(len(X)))


def fit_uplift(
    data: TargetingData,
    target: str = "net_value",
    *,
    learner: str = "dr",
    folds: int = 5,
    seed: int = 0,
    settings: MoneySettings | None = None,
    max_train: int = MAX_TRAIN,
) -> UpliftFit:
    """Fit a per-customer uplift learner with cross-fitting (:class:`CrossFittedUplift`).

    Every customer is in one of ``folds`` folds and is scored by the model fitted on the other
    folds; above ``max_train`` customers the models train on a random sample of that size (the
    arms in their proportions) and score every customer, in batches: a customer outside the
    sample is out of sample for every model.

    Parameters
    ----------
    data : TargetingData
        From :func:`attribution.targeting.data.experiment_rows`.
    target : str
        ``retention``, ``revenue``, ``cost_to_serve`` or ``net_value`` (default).
    learner : {"dr", "t", "x"}
        Doubly robust (default), T- or X-learner (the X-learner suits unbalanced arms such as a
        10% holdout).
    folds : int
        Outer folds for the out-of-fold predictions (>= 2).
    seed : int
    settings : MoneySettings, optional
        Margin, value horizon and discount rate for net value.
    max_train : int
        Most customers the models train on (default :data:`MAX_TRAIN`).

    Returns
    -------
    UpliftFit
    """
    estimator = CrossFittedUplift(learner=learner, folds=folds, seed=seed, max_train=max_train)
    estimator._check()  # before the net value of every customer is computed
    y = _target(data, target, settings)
    matrix = data.matrix()
    X, t = matrix.to_numpy(dtype=float), data.frame["treated"].to_numpy(int)
    estimator.fit(X, t, y)
    offset = data.unit_cost if target == "net_value" else 0.0
    span = None
    if target == "net_value" and data.late_retention is not None:
        span = tuple(
            estimator.scores_for(t, customer_value(data, settings, share=end), y) - offset
            for end in (0.0, 1.0)
        )
    return UpliftFit(
        data=data, target=target, learner=learner, oof=estimator.oof_ - offset,
        scores=estimator.scores_ - offset, y=y, folds=estimator.folds_,
        columns=tuple(matrix.columns), model=estimator.model_, span_scores=span,
    )  # fmt: skip
