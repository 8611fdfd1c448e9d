"""The doubly robust check: augmented inverse-propensity weighting (AIPW) with cross-fitting.

Beside the weighting and regression routes, a frequentist reference that stays consistent when
either the propensity model or the outcome model is right: per outcome, gradient-boosted outcome
models for each arm (scikit-learn's ``HistGradientBoosting*``) and the weighting route's logistic
propensity, each fitted on the other folds of a customer-grouped K-fold split (cross-fitting, so
no customer's prediction comes from a model that saw them), combined in the efficient influence
function of the ATE and of the ATT. Intervals come from the influence function summed per
customer (pooled trials reuse customers), a normal approximation.

Written here rather than taken from EconML: EconML's DRLearner targets per-customer effects
(CATE) and its ATE inference is for the final CATE model, not the cluster-robust population
ATE/ATT needed here; the estimator is a dozen lines of numpy on scikit-learn models.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from attribution.causal.estimators import Estimate
from attribution.causal.propensity import propensity_design, propensity_model
from attribution.causal.terms import TREATED
from attribution.observational import OUTCOME_COLUMNS, ObservationalData
from attribution.settings import IntervalSetting

#: Folds of the cross-fitting split (customers, not rows, are split).
FOLDS = 5


def aipw(
    data: ObservationalData,
    *,
    outcomes: Sequence[str] = tuple(OUTCOME_COLUMNS),
    folds: int = FOLDS,
    clip: tuple[float, float] = (0.01, 0.99),
    seed: int = 0,
    draws: int = 1000,
    interval: IntervalSetting | None = None,
) -> list[Estimate]:
    """Cross-fitted AIPW estimates of the ATE and the ATT, per outcome (overall only).

    Parameters
    ----------
    data : ObservationalData
        The customers (or customer-trials) to analyse, already trimmed if trimming.
    outcomes : sequence of str
    folds : int
        Cross-fitting folds (customers are split, so a customer's rows stay in one fold).
    clip : (float, float)
        Propensity bounds, as in the weighting route.
    seed : int
        Seeds the fold split, the boosted models and the normal draws.
    draws : int
        Draws from the normal approximation, for P(effect > 0) and expected loss.
    interval : IntervalSetting, optional

    Returns
    -------
    list of Estimate
        ``estimator="aipw"``, estimands ``ate`` and ``att``.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    interval = interval or IntervalSetting()
    frame = data.frame
    T = frame[TREATED].to_numpy(dtype=float)
    X = propensity_design(frame, data)
    codes, uniques = pd.factorize(frame["customer_id"])
    fold_of_customer = np.random.default_rng(seed).permutation(len(uniques)) % folds
    fold = fold_of_customer[codes]
    e = np.empty(len(T))
    mu = {o: np.empty((len(T), 2)) for o in outcomes}
    for k in range(folds):
        test, train = fold == k, fold != k
        e[test] = propensity_model(seed).fit(X[train], T[train]).predict_proba(X[test])[:, 1]
        for o in outcomes:
            y = frame[OUTCOME_COLUMNS[o]].to_numpy(dtype=float)
            for arm, in_arm in ((0, T == 0), (1, T == 1)):
                rows = train & in_arm
                if o == "retention":
                    model = HistGradientBoostingClassifier(max_iter=100, random_state=seed)
                    model.fit(X[rows], y[rows].astype(int))
                    mu[o][test, arm] = model.predict_proba(X[test])[:, 1]
                else:
                    model = HistGradientBoostingRegressor(max_iter=100, random_state=seed)
                    mu[o][test, arm] = model.fit(X[rows], y[rows]).predict(X[test])
    e = np.clip(e, *clip)
    z = stats.norm.ppf(interval.quantiles[1])
    rng = np.random.default_rng(seed)
    n_t = int(T.sum())
    out = []
    for o in outcomes:
        y = frame[OUTCOME_COLUMNS[o]].to_numpy(dtype=float)
        m0, m1 = mu[o][:, 0], mu[o][:, 1]
        psi_ate = m1 - m0 + T * (y - m1) / e - (1 - T) * (y - m0) / (1 - e)
        share = T.mean()
        resid = T * (y - m0) - (1 - T) * e / (1 - e) * (y - m0)
        att = resid.sum() / T.sum()
        psi_att = (resid - T * att) / share
        for estimand, mean, psi in (("ate", psi_ate.mean(), psi_ate), ("att", att, psi_att)):
            centred = psi - (psi.mean() if estimand == "ate" else 0.0)
            per_customer = np.bincount(codes, weights=centred)
            se = float(np.sqrt((per_customer**2).sum()) / len(T))
            d = rng.normal(mean, se, draws)
            out.append(
                Estimate(
                    estimator="aipw",
                    outcome=o,
                    estimand=estimand,
                    mean=float(mean),
                    lo=float(mean - z * se),
                    hi=float(mean + z * se),
                    p_positive=float(stats.norm.sf(0.0, loc=mean, scale=se)) if se > 0 else 0.5,
                    n_treated=n_t,
                    n_control=len(T) - n_t,
                    draws=d,
                )
            )
    return out
