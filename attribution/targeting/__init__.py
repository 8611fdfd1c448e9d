"""Targeting: who should get a CX intervention, from per-customer uplift, and whether that
ranking beats random.

:func:`experiment_rows` reads one row per customer of a
randomized experiment (pre-period features, outcomes over the readout window);
:func:`fit_uplift` fits T-, X- or doubly robust learners (EconML, gradient boosting) with
cross-fitting, for an outcome or for net value per customer through the money layer (on
features of your own: :class:`CrossFittedUplift`, a scikit-learn style estimator);
:func:`evaluate` gives the Qini curve, its area against random with a bootstrap interval and
calibration by decile, on out-of-fold predictions; :func:`choose` gives each customer at most
one intervention within a budget (and capacities) and estimates the policy's worth beside
treat-all, treat-none and the best segment rule, with intervals; :func:`population_rows` and
:func:`score_population` carry the learners to the customers of a decision month (those like
the experiments' customers), with the experiments' evidence for what the picks are worth.

>>> from attribution.targeting import experiment_rows, fit_uplift, evaluate  # doctest: +SKIP
>>> fit = fit_uplift(experiment_rows(con, "exp_recovery_gift"), "net_value")  # doctest: +SKIP
>>> evaluate(fit).as_check().sentence  # doctest: +SKIP
"""

from attribution.targeting.data import TargetingData, experiment_rows
from attribution.targeting.evaluate import Evaluation, evaluate
from attribution.targeting.learners import CrossFittedUplift, UpliftFit, fit_uplift
from attribution.targeting.policy import Policy, choose
from attribution.targeting.population import PopulationPolicy, population_rows, score_population

__all__ = [
    "CrossFittedUplift",
    "Evaluation",
    "Policy",
    "PopulationPolicy",
    "TargetingData",
    "UpliftFit",
    "choose",
    "evaluate",
    "experiment_rows",
    "fit_uplift",
    "population_rows",
    "score_population",
]
