"""Sample-ratio-mismatch check: do the arms' counts match the designed shares?

Run by every readout before any model (:func:`attribution.readout.srm_gate`) and by the design
tools; a broken assignment shows here first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from attribution.checks import FAIL, PASS, Check
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

    def describe(self) -> str:
        """The verdict in one sentence."""
        verdict = "sample ratio mismatch: stop and find the cause" if self.alarm else "no mismatch"
        return f"SRM check: chi2 = {self.chi2:.3f}, p = {self.p_value:.4g}; {verdict}."

    def __str__(self) -> str:
        return self.describe()

    def to_dict(self, arms: Sequence[str] | None = None) -> dict:
        """JSON-ready: ``checked``, ``arms``, ``counts``, ``expected``, ``chi2``, ``p_value``,
        ``alarm``; counts and expected keyed by arm (``arm_1``, ``arm_2``... without ``arms``).
        An infinite chi2 (customers in arms the design does not have) is null."""
        names = _arm_names(arms, len(self.counts))
        return {
            "checked": True,
            "arms": names,
            "counts": dict(zip(names, self.counts, strict=True)),
            "expected": dict(zip(names, self.expected, strict=True)),
            "chi2": self.chi2 if math.isfinite(self.chi2) else None,
            "p_value": self.p_value,
            "alarm": self.alarm,
        }

    def as_check(self, arms: Sequence[str] | None = None) -> Check:
        """The check in the shape every check has (:class:`attribution.checks.Check`): fail on
        an alarm, the table one row per arm (``arm``, ``count``, ``expected``)."""
        names = _arm_names(arms, len(self.counts))
        table = pd.DataFrame(
            {"arm": names, "count": list(self.counts), "expected": list(self.expected)}
        )
        return Check("sample ratio", FAIL if self.alarm else PASS, self.describe(), table)


def srm_record(check: SRMCheck | None, arms: Sequence[str]) -> dict:
    """:meth:`SRMCheck.to_dict`, or ``{"checked": False, ...}`` when the check was skipped.

    Parameters
    ----------
    check : SRMCheck or None
        The check, or None when it was skipped (no allocation to check against).
    arms : sequence of str
        Arm names in the order of ``check.counts``.
    """
    if check is None:
        return {"checked": False, "arms": list(arms), "chi2": None, "p_value": None}
    return check.to_dict(arms)


def _arm_names(arms: Sequence[str] | None, n: int) -> list[str]:
    names = [f"arm_{i + 1}" for i in range(n)] if arms is None else [str(a) for a in arms]
    if len(names) != n:
        raise InputError(f"arms must name the {n} arms counted, got {names!r}")
    return names


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
