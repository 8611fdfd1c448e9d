"""Control-group design maths: how many customers, how long, and what the test is worth.

Pure functions of the design settings; nothing here reads the store. Every sample size uses the
two-sided normal approximation at level ``alpha``:

    power(N) = Phi((delta - cc - z * se0) / se1) + Phi((-delta - cc - z * se0) / se1)

where ``z = z_{1 - alpha/2}``, ``N`` is the total sample, a share ``c`` of it in control, ``se0``
the standard error of the difference under no effect and ``se1`` under the effect ``delta``; ``cc``
is the continuity correction (zero unless asked for). Both rejection tails are counted, as
``statsmodels`` does. Sample sizes solve ``power(N) = target`` to machine precision, so computing
the power at the unrounded solution gives back the target. The textbook closed forms

    N = (z * s0 + z_beta * s1)^2 / delta^2,   s0^2 = N se0^2,   s1^2 = N se1^2

count only the near tail and are the starting point; the far tail changes N by less than one
customer at the usual settings. Each arm is rounded up separately, so ``n_total`` can exceed the
unrounded total by up to two customers.

Settings that cannot be used raise :class:`attribution.errors.InputError` naming the setting and
the value, never NaN.

Layout: one idea per module, every name importable from here.

- :mod:`experiments.design.sizing`: sample size, power and MDE for proportions, means and
  heavy-tailed spend; several arms and metrics;
- :mod:`experiments.design.clusters`: cluster designs (design effect, clusters per arm);
- :mod:`experiments.design.timing`: churn events and weeks to readout;
- :mod:`experiments.design.value`: money, test and roll, assurance, value-of-information holdouts;
- :mod:`experiments.design.rule`: how often the readout's roll-out rule rolls out at a size;
- :mod:`experiments.design.sequential`: looks at a running test, alpha-spending boundaries;
- the sample-ratio check, run by every readout, lives in :mod:`attribution.srm` and is
  re-exported here.
"""

from attribution.srm import SRM_ALARM_P, SRMCheck, srm_check
from experiments.design.clusters import (
    MIN_CLUSTERS_PER_ARM,
    ClusterSampleSize,
    cluster_sample_size,
    design_effect,
)
from experiments.design.rule import (
    any_rollout_probability,
    guardrail_pass_probability,
    per_arm_threshold,
    rollout_probability,
    rule_sample_size,
)
from experiments.design.sequential import (
    SPENDING,
    Boundaries,
    boundaries,
    crossing_probabilities,
    look_months,
    monitoring_record,
    sequential_drift,
    simulate_crossings,
    spent,
)
from experiments.design.sizing import (
    DesignWarning,
    SampleSize,
    adjust_alpha,
    heavy_tail_sample_sizes,
    means_mde,
    means_power,
    means_sample_size,
    means_se,
    n_comparisons,
    proportions_mde,
    proportions_power,
    proportions_sample_size,
    proportions_se,
    variance_factor,
)
from experiments.design.timing import (
    EventsDesign,
    Timeline,
    schoenfeld_events,
    weeks_to_readout,
)
from experiments.design.value import (
    Assurance,
    HoldoutSize,
    HoldoutValue,
    TestRollSize,
    assurance,
    expected_test_roll_profit,
    holdout_value,
    mde_per_thousand,
    profit_maximizing_test_size,
    value_sized_holdout,
)

__all__ = [
    "Assurance",
    "Boundaries",
    "SPENDING",
    "ClusterSampleSize",
    "DesignWarning",
    "EventsDesign",
    "HoldoutSize",
    "HoldoutValue",
    "MIN_CLUSTERS_PER_ARM",
    "SRMCheck",
    "SRM_ALARM_P",
    "SampleSize",
    "TestRollSize",
    "Timeline",
    "adjust_alpha",
    "any_rollout_probability",
    "assurance",
    "boundaries",
    "crossing_probabilities",
    "look_months",
    "monitoring_record",
    "sequential_drift",
    "simulate_crossings",
    "spent",
    "cluster_sample_size",
    "design_effect",
    "expected_test_roll_profit",
    "guardrail_pass_probability",
    "heavy_tail_sample_sizes",
    "holdout_value",
    "mde_per_thousand",
    "means_mde",
    "means_power",
    "means_sample_size",
    "means_se",
    "n_comparisons",
    "per_arm_threshold",
    "profit_maximizing_test_size",
    "proportions_mde",
    "proportions_power",
    "proportions_sample_size",
    "proportions_se",
    "rollout_probability",
    "rule_sample_size",
    "schoenfeld_events",
    "srm_check",
    "value_sized_holdout",
    "variance_factor",
    "weeks_to_readout",
]
