"""Sample-ratio-mismatch check: do the arms' counts match the designed shares?

Run by every readout before any model (:func:`attribution.readout.srm_gate`) and by the design
tools; a broken assignment shows here first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from attribution.errors import InputError
from attribution.validation import open_unit

#: p-value below which :func:`srm_check` raises the sample-ratio-mismatch alarm.
SRM_ALARM_P = 0.001


@dataclass(frozen=True)
class SRMCheck:
    """Chi-square goodness of fit of the arm counts against the designed shares."""

    chi2: float
    p_value: float
    alarm: bool
    counts: tuple[int, ...]
    expected: tuple[float, ...]

    @property
    def text(self) -> str:
        """The verdict in one sentence."""
        verdict = "sample ratio mismatch: stop and find the cause" if self.alarm else "no mismatch"
        return f"SRM check: chi2 = {self.chi2:.3f}, p = {self.p_value:.4g}; {verdict}."


def srm_check(
    counts: Sequence[int],
    expected_shares: Sequence[float] | None = None,
    *,
    threshold: float = SRM_ALARM_P,
) -> SRMCheck:
    """Sample-ratio-mismatch check: chi-square goodness of fit, alarm at ``p < threshold``.

    Parameters
    ----------
    counts : sequence of int
        Customers observed per arm, >= 0, at least two arms.
    expected_shares : sequence of float, optional
        Designed share per arm, > 0, summing to 1. Default: equal shares.
    threshold : float
        Alarm when the p-value is below this. Default 0.001: strict, because the check runs on
        every readout and a false alarm stops a good test.

    Returns
    -------
    SRMCheck

    Examples
    --------
    >>> round(srm_check([5000, 5100]).p_value, 4)
    0.3197
    """
    obs = np.asarray(counts, dtype=float)
    if obs.ndim != 1 or obs.size < 2:
        raise InputError(f"counts must list at least two arms, got {list(np.ravel(obs))!r}")
    if not np.all(np.isfinite(obs)) or np.any(obs < 0) or np.any(obs != np.round(obs)):
        raise InputError(f"counts must be whole numbers >= 0, got {obs.tolist()!r}")
    if obs.sum() <= 0:
        raise InputError(f"counts must not all be zero, got {obs.tolist()!r}")
    if expected_shares is None:
        shares = np.full(obs.size, 1.0 / obs.size)
    else:
        shares = np.asarray(expected_shares, dtype=float)
        if shares.shape != obs.shape:
            raise InputError(
                f"expected_shares must have one share per arm ({obs.size}), got {shares.tolist()}"
            )
        if not np.all(np.isfinite(shares)) or np.any(shares <= 0):
            raise InputError(f"expected_shares must be > 0, got {shares.tolist()}")
        if not math.isclose(float(shares.sum()), 1.0, abs_tol=1e-6):
            raise InputError(f"expected_shares must sum to 1, got {shares.tolist()}")
    t = open_unit("threshold", threshold)
    expected = shares * obs.sum()
    chi2, p = stats.chisquare(obs, expected)
    return SRMCheck(
        chi2=float(chi2),
        p_value=float(p),
        alarm=bool(p < t),
        counts=tuple(int(v) for v in obs),
        expected=tuple(float(v) for v in expected),
    )
