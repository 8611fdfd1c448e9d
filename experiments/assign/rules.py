"""The rules of assignment, written once: the arm names, the hashing rule's name, the balance
settings, the plain-words rules every design record states, and the check of a list of names.
"""

from __future__ import annotations

from collections.abc import Sequence

from attribution.errors import InputError

#: Name and version of the hashing rule, stored in every design record.
HASH_ALGORITHM = "sha256(salt:customer_id)[:8]/2^64 v1"
#: The arm every experiment compares against; always the first arm.
CONTROL = "control"
#: Level that stands for a missing value in strata labels and categorical covariates.
MISSING_LEVEL = "(missing)"
#: Covariates :func:`store_balance` derives from outcomes before the experiment's start.
PRE_COVARIATES = ("pre_revenue", "pre_cost", "pre_active")
#: Months of history before the start that ``pre_revenue`` and ``pre_cost`` average over.
PRE_MONTHS = 3
#: |SMD| above which the balance report flags a covariate.
SMD_THRESHOLD = 0.1

UNIT_RULE = (
    'u = int.from_bytes(sha256((salt + ":" + customer_id).encode("utf-8")).digest()[:8], '
    '"big") / 2**64'
)
BERNOULLI_RULE = (
    "arm = the first arm j (control first) with u < s_0 + ... + s_j, s_j the arm shares"
)
STRATIFIED_RULE = (
    "within each stratum order customers by (u, customer_id); counts per arm floor(s_j n), and "
    "the n - sum floor(s_j n) leftover units one each to the arms hit by the points v, v + 1, ... "
    "on the cumulative remainders s_j n - floor(s_j n) (arms in order, control first), v the "
    'hash unit of the stratum label under the salt salt + "#leftover" (so each arm gets its '
    "extra unit with probability equal to its remainder, and every customer's chance of arm j is "
    "s_j); the first n_0 in that order are control, the next n_1 the second arm, and so on"
)
RERANDOMIZATION_RULE = (
    'try salts salt, salt + "#1", salt + "#2", ... and accept the first assignment with '
    "M = (n_t n_c / n) d' S^-1 d < chi2.ppf(rerandomize_p, k) for every treatment arm "
    "(d: difference in covariate means from control; S: covariance of the covariates over all "
    "eligible customers, pseudo-inverse; k = rank S; categorical covariates as indicators of all "
    "levels but the first in sorted order) (Morgan & Rubin 2012)"
)
CLUSTER_RULE = (
    "cluster randomization: the unit is the cluster; u is computed from the cluster's label in "
    "place of the customer_id and the stratified rule is applied to the clusters (strata of "
    "clusters when stratified, a cluster's stratum being its customers' one; otherwise all "
    "clusters are one stratum labelled '(all clusters)', so the clusters per arm are exact), "
    "and every customer takes their cluster's arm"
)
SMD_RULE = "smd = (mean_arm - mean_control) / sqrt((var_control + var_arm) / 2), var with ddof 1"
BALANCE_COLUMNS = ["arm", "covariate", "level", "mean_control", "mean_arm", "smd", "flagged"]


def setting_names(setting: str, names: Sequence[str] | str) -> list[str]:
    """Column names from a list or a comma-separated string, stripped, checked as names of
    ``setting``."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out = []
    for name in names:
        if not isinstance(name, str) or not name:
            raise InputError(f"{setting}: column names must be non-empty text, got {name!r}")
        if name in out:
            raise InputError(f"{setting}: column {name!r} is listed twice")
        if name in ("customer_id", "arm"):
            raise InputError(f"{setting}: {name!r} cannot be a stratum or covariate")
        out.append(name)
    return out
