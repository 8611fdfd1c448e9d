"""Cluster designs: the design effect of randomising groups (stores, agents, regions) instead of
customers, and the clusters and customers a cluster test needs.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import pandas as pd

from attribution.errors import InputError
from attribution.validation import finite as _finite
from attribution.validation import non_negative as _non_negative
from experiments.design.sizing import DesignWarning, SampleSize

#: Fewer clusters than this per arm and the normal approximation behind the cluster design effect
#: is not trusted: a common rule of thumb for cluster-randomised trials (with fewer, analyse with
#: small-sample corrections or recruit more clusters). :func:`cluster_sample_size` warns below it.
MIN_CLUSTERS_PER_ARM = 30


# --------------------------------------------------------------------------------------------
# Cluster designs


def design_effect(icc: float, cluster_size: float, cv: float = 0.0) -> float:
    """Variance inflation of a cluster design: ``1 + icc ((m - 1) + m cv^2)``.

    For unequal cluster sizes (Eldridge, Ashby & Kerry 2006), with ``m`` the mean cluster size
    and ``cv`` the coefficient of variation of the sizes.

    Parameters
    ----------
    icc : float
        Intra-cluster correlation of the outcome, in [0, 1].
    cluster_size : float
        Mean customers per cluster (team, store, queue), >= 1.
    cv : float
        Coefficient of variation of the cluster sizes, >= 0.

    Returns
    -------
    float

    Examples
    --------
    >>> round(design_effect(0.15, 30), 2)
    5.35
    """
    rho = _finite("icc", icc)
    if not 0.0 <= rho <= 1.0:
        raise InputError(f"icc must be in [0, 1], got {icc!r}")
    m = _finite("cluster_size", cluster_size)
    if m < 1.0:
        raise InputError(f"cluster_size must be >= 1, got {cluster_size!r}")
    k = _non_negative("cv", cv)
    return 1.0 + rho * ((m - 1.0) + m * k**2)


@dataclass(frozen=True)
class ClusterSampleSize:
    """Individual sample size inflated by the design effect, and the clusters it needs."""

    design_effect: float
    n_control: int
    n_treatment: int
    n_total: int
    clusters_control: int
    clusters_treatment: int

    def summary(self) -> pd.DataFrame:
        """One row per arm: customers and clusters."""
        return pd.DataFrame(
            {
                "arm": ["control", "treatment"],
                "n": [self.n_control, self.n_treatment],
                "clusters": [self.clusters_control, self.clusters_treatment],
                "design_effect": [self.design_effect] * 2,
            }
        )


def cluster_sample_size(
    size: SampleSize, icc: float, cluster_size: float, cv: float = 0.0
) -> ClusterSampleSize:
    """Inflate an individually randomised size for delivery by cluster.

    Each arm's unrounded n is multiplied by :func:`design_effect` and rounded up; clusters per
    arm are that n over the mean cluster size, rounded up. Warns (:class:`DesignWarning`) when
    either arm has fewer than :data:`MIN_CLUSTERS_PER_ARM` (30) clusters: the design effect rests
    on a normal approximation that few clusters do not support.

    Parameters
    ----------
    size : SampleSize
        From :func:`proportions_sample_size` or :func:`means_sample_size`.
    icc, cluster_size, cv
        As in :func:`design_effect`.

    Returns
    -------
    ClusterSampleSize

    Examples
    --------
    >>> from experiments.design import means_sample_size
    >>> base = means_sample_size(1.0, 0.2)
    >>> cluster_sample_size(base, 0.01, 10).clusters_control
    43
    """
    deff = design_effect(icc, cluster_size, cv)
    m = float(cluster_size)
    n_control = math.ceil(round(size.n_control_exact * deff, 6))
    n_treatment = math.ceil(round(size.n_treatment_exact * deff, 6))
    k_control = math.ceil(round(n_control / m, 6))
    k_treatment = math.ceil(round(n_treatment / m, 6))
    fewest = min(k_control, k_treatment)
    if fewest < MIN_CLUSTERS_PER_ARM:
        warnings.warn(
            f"only {fewest} clusters in an arm (fewer than {MIN_CLUSTERS_PER_ARM}): the normal "
            "approximation behind the design effect is not trustworthy; add clusters or plan a "
            "small-sample analysis",
            DesignWarning,
            stacklevel=2,
        )
    return ClusterSampleSize(
        design_effect=deff,
        n_control=n_control,
        n_treatment=n_treatment,
        n_total=n_control + n_treatment,
        clusters_control=k_control,
        clusters_treatment=k_treatment,
    )
