"""Deterministic assignment of customers to experiment arms, its balance, and its design record.

Every customer's arm follows from a salted hash of the customer id, so the same salt gives the
same arms on any machine, in any row order, and another system can reproduce them::

    u(id) = int.from_bytes(sha256((salt + ":" + id).encode("utf-8")).digest()[:8], "big") / 2**64

Reproduction recipe (Python, then SQL in DuckDB's dialect; any SHA-256 gives the same bytes)::

    import hashlib; h = hashlib.sha256(f"{salt}:{customer_id}".encode("utf-8")).digest()
    u = int.from_bytes(h[:8], "big") / 2**64        # first 8 bytes, big-endian, over 2^64
    -- SQL: CAST('0x' || left(sha256(salt || ':' || customer_id), 16) AS UBIGINT) / 2^64

``u`` is a double in [0, 1) (the 64-bit integer rounded to the nearest double; an id whose
integer lies within 2^10 of 2^64, probability 2^-54, rounds to 1.0 and goes to the last arm).

Arms, with shares ``s_0`` (control, always first), ``s_1``, ... summing to 1:

* **unstratified** (Bernoulli by hash): the arm is the first ``j`` with ``u < s_0 + ... + s_j``;
  each customer's arm depends only on the salt and its id, so adding or removing customers never
  moves anyone else.
* **stratified**: within each stratum (the combination of the strata columns' values, labelled
  ``"tier=gold|region=north"``; a missing value is the level ``(missing)``) customers are ordered
  by ``(u, customer_id)``. The stratum's ``n`` is split into counts ``floor(s_j n)``; the
  leftover units go one each to the arms hit by the points ``v, v + 1, ...`` on the cumulative
  remainders ``s_j n - floor(s_j n)`` (control first), ``v`` the hash unit of the stratum's label
  under the salt ``salt + "#leftover"``. So an arm gets its extra unit with probability equal to
  its remainder, and every customer's chance of each arm is the design share, in a stratum of one
  too (version 1 gave leftover ties to control: a stratum of one always went to control). The
  first ``n_0`` customers in that order are control, the next ``n_1`` the second arm, and so on.
  Counts are exact in every stratum (up to the one leftover unit) and independent of row order.
* **re-randomized** (Morgan & Rubin 2012, optional): the salts ``salt``, ``salt#1``, ``salt#2``,
  ... are tried in turn and the first assignment accepted whose Mahalanobis distance between the
  covariate means of each treatment arm and control, ``M = (n_t n_c / n) d' S^-1 d`` (``d`` the
  difference in means, ``S`` the covariance of the covariates over all eligible customers,
  ``n = n_t + n_c``), is below the ``rerandomize_p`` quantile of chi-square with ``k`` degrees of
  freedom (``k`` the rank of ``S``). Categorical covariates enter as indicators of every level but
  the first in sorted order. With several treatment arms every arm must pass.

The balance report gives standardized mean differences ``(mean_arm - mean_control) /
sqrt((var_control + var_arm) / 2)`` per covariate (and level), and the sample-ratio-mismatch check
(:func:`experiments.design.srm_check`) compares the arm counts with the intended shares.
:func:`write_assignment` writes the experiment, its assignments and a design record a finance
reviewer can file, in one transaction.

Layout: one idea per module, every name importable from here. :mod:`~experiments.assign.rules`
(arm names, the hashing rule, the balance settings and the rules in words);
:mod:`~experiments.assign.hashing` (the salted hash, the assignment's fingerprint);
:mod:`~experiments.assign.balance` (standardized mean differences, the Mahalanobis distance);
:mod:`~experiments.assign.record` (the design record); :mod:`~experiments.assign.randomize`
(:func:`assign`); :mod:`~experiments.assign.write` (:func:`write_assignment`,
:func:`assign_from_file`).
"""

from experiments.assign.balance import balance_report, store_balance
from experiments.assign.hashing import assignment_hash, hash_unit
from experiments.assign.randomize import Assignment, assign
from experiments.assign.rules import (
    CONTROL,
    HASH_ALGORITHM,
    MISSING_LEVEL,
    PRE_COVARIATES,
    PRE_MONTHS,
    SMD_THRESHOLD,
)
from experiments.assign.write import assign_from_file, write_assignment

__all__ = [
    "Assignment",
    "CONTROL",
    "HASH_ALGORITHM",
    "MISSING_LEVEL",
    "PRE_COVARIATES",
    "PRE_MONTHS",
    "SMD_THRESHOLD",
    "assign",
    "assign_from_file",
    "assignment_hash",
    "balance_report",
    "hash_unit",
    "store_balance",
    "write_assignment",
]
