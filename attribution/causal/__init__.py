"""Observational attribution with DoWhy: graph, identification, estimates, refutations, overlap.

What untested CX work was worth, from observational data, with its assumptions tested. One idea
per module, every name importable from here: :mod:`~attribution.causal.graph` (graph and
identification), :mod:`~attribution.causal.propensity` (overlap),
:mod:`~attribution.causal.estimators`, :mod:`~attribution.causal.refuters`,
:mod:`~attribution.causal.result` (:class:`Attribution`), :mod:`~attribution.causal.workflow`
(:func:`attribute`, the whole question) and :mod:`~attribution.causal.terms` (names, units and
wording they share).

1. **Graph.** One question = one graph: every confounder causes the treatment and the outcome,
   the treatment causes the outcome, declared instruments cause only the treatment and declared
   unobserved common causes (``[causal] unobserved``) cause both (:class:`CausalGraph`; a text
   picture in :meth:`Attribution.describe`, a PNG from :func:`graph_png`).
2. **Identification** with DoWhy's backdoor criterion (:func:`identify`); an effect that is not
   identifiable is reported and not estimated.
3. **Overlap** (:func:`overlap`): a logistic propensity model (scikit-learn) on the confounders
   (money confounders as ``log1p``, numeric confounders with at most 24 distinct values as
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

from attribution.causal.estimators import Estimate, estimate
from attribution.causal.graph import CausalGraph, Identification, causal_graph, graph_png, identify
from attribution.causal.propensity import Overlap, overlap
from attribution.causal.refuters import Refutation, refute
from attribution.causal.result import CHECK_ONLY, REFUTED_ON, Attribution
from attribution.causal.terms import (
    ESTIMATORS,
    MAX_LEVELS_AS_CATEGORY,
    MONEY_CONFOUNDERS,
    NAIVE_VERDICT,
    REFUTERS,
)
from attribution.causal.workflow import attribute, estimate_naive

__all__ = [
    "Attribution",
    "CHECK_ONLY",
    "REFUTED_ON",
    "CausalGraph",
    "ESTIMATORS",
    "Estimate",
    "Identification",
    "MAX_LEVELS_AS_CATEGORY",
    "MONEY_CONFOUNDERS",
    "NAIVE_VERDICT",
    "Overlap",
    "REFUTERS",
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
